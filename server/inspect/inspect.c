#include "inspect.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "worker.h"

/* Schema (docs/ARCHITECTURE.md "Inspections"). Times are UTC ms; dates (a day away, a holiday) are
 * local "YYYY-MM-DD" text; lists and documents are JSON text. */
static const char *const migrations[] = {
    /* 1: registers, draws, inspections. */
    /* --- registers (一单两库): the current rows, and every change as a numbered version */
    "CREATE TABLE register_changes("
    " version INTEGER PRIMARY KEY," /* the registers' version after this change */
    " at_ms INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " register TEXT NOT NULL," /* targets | inspectors | items */
    " key TEXT NOT NULL,"      /* the row's id (org, inspector id, item id) */
    " action TEXT NOT NULL,"   /* create | update | delete */
    " before TEXT,"            /* the row's JSON before (NULL: created) */
    " after TEXT);"            /* and after (NULL: deleted) */
    "CREATE INDEX register_changes_key ON register_changes(register, key, version);"
    "CREATE TRIGGER register_changes_kept BEFORE DELETE ON register_changes"
    " BEGIN SELECT RAISE(ABORT, 'register history is never deleted'); END;"
    "CREATE TRIGGER register_changes_frozen BEFORE UPDATE ON register_changes"
    " BEGIN SELECT RAISE(ABORT, 'register history is never changed'); END;"
    /* An inspection target: an organisation (社评组织) and its sites. */
    "CREATE TABLE targets("
    " org TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " city TEXT NOT NULL,"
    " level TEXT NOT NULL,"       /* city | province (市级/省级 registration) */
    " occupations TEXT NOT NULL," /* JSON array of strings */
    " risk TEXT NOT NULL,"        /* a grade id of [inspection] risk_grades */
    " sites TEXT NOT NULL,"       /* JSON array of site ids */
    " version INTEGER NOT NULL);" /* register_changes.version of its last change */
    "CREATE INDEX targets_city ON targets(city, org);"
    /* 抽查事项: what is checked, on what legal basis, how. */
    "CREATE TABLE items("
    " id TEXT PRIMARY KEY,"
    " title TEXT NOT NULL,"
    " basis TEXT NOT NULL,"
    " method TEXT NOT NULL,"
    " version INTEGER NOT NULL);"
    "CREATE TABLE inspectors("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " city TEXT NOT NULL," /* home city */
    " department TEXT NOT NULL,"
    " ties TEXT NOT NULL," /* JSON [{"org":..,"kind":"affiliation|former|relative"}] */
    " away TEXT NOT NULL," /* JSON [["YYYY-MM-DD","YYYY-MM-DD"], ...], inclusive */
    " version INTEGER NOT NULL);"
    "CREATE INDEX inspectors_city ON inspectors(city, id);"
    /* --- draws */
    "CREATE TABLE draws("
    " id TEXT PRIMARY KEY,"
    " scope_city TEXT NOT NULL," /* '' = the province (stratified by city) */
    " state TEXT NOT NULL,"      /* created | committed | executed | published */
    " plan TEXT NOT NULL,"       /* JSON, docs/DRAW.md */
    " manifest TEXT,"            /* JSON, frozen at commit */
    " manifest_sha256 TEXT,"
    " private TEXT,"  /* the rosters' private part at commit: never public */
    " document TEXT," /* the published document after execute (and replacements) */
    " created_ms INTEGER NOT NULL,"
    " committed_ms INTEGER,"
    " executed_ms INTEGER,"
    " published_ms INTEGER,"
    " actor TEXT NOT NULL);"
    "CREATE TABLE draw_log("
    " id INTEGER PRIMARY KEY,"
    " draw TEXT NOT NULL REFERENCES draws(id),"
    " at_ms INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL," /* create | commit | execute | replace | publish */
    " detail TEXT NOT NULL);"
    "CREATE INDEX draw_log_draw ON draw_log(draw, id);"
    /* --- inspections: one per drawn target */
    "CREATE TABLE inspections("
    " id INTEGER PRIMARY KEY,"
    " draw TEXT NOT NULL REFERENCES draws(id),"
    " seq INTEGER NOT NULL," /* its index in the document's inspections (1-based) */
    " org TEXT NOT NULL,"
    " city TEXT NOT NULL,"
    " mode TEXT NOT NULL,"                      /* onsite | remote */
    " site TEXT NOT NULL DEFAULT '',"           /* the slot's session's site ('' none) */
    " exam_session INTEGER NOT NULL DEFAULT 0," /* exam_sessions.id of the slot (0 none) */
    " slot_start_ms INTEGER NOT NULL DEFAULT 0,"
    " slot_end_ms INTEGER NOT NULL DEFAULT 0,"
    " finding TEXT NOT NULL DEFAULT '',"       /* no_session: no session in the window */
    " state TEXT NOT NULL DEFAULT 'assigned'," /* assigned | recorded | confirmed | published */
    " outcome TEXT NOT NULL DEFAULT '',"       /* an id of [inspection] outcomes */
    " findings TEXT NOT NULL DEFAULT '',"      /* public text */
    " note TEXT NOT NULL DEFAULT '',"          /* internal, never published */
    " evidence TEXT NOT NULL DEFAULT '',"      /* the 3.6 evidence snapshot (JSON) at recording */
    " result_version INTEGER NOT NULL DEFAULT 0," /* bumps with each recorded result */
    " recorded_by TEXT NOT NULL DEFAULT '',"      /* inspector id */
    " recorded_ms INTEGER NOT NULL DEFAULT 0,"
    " confirmed_ms INTEGER NOT NULL DEFAULT 0,"
    " published_ms INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE(draw, seq));"
    "CREATE INDEX inspections_org ON inspections(org, id);"
    "CREATE INDEX inspections_slot ON inspections(slot_start_ms);"
    "CREATE TABLE inspection_inspectors("
    " inspection INTEGER NOT NULL REFERENCES inspections(id),"
    " inspector TEXT NOT NULL,"
    " active INTEGER NOT NULL DEFAULT 1," /* 0: replaced */
    " replaced_by TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY(inspection, inspector));"
    "CREATE INDEX inspection_inspectors_by ON inspection_inspectors(inspector, inspection);"
    "CREATE TABLE inspection_confirmations("
    " inspection INTEGER NOT NULL REFERENCES inspections(id),"
    " inspector TEXT NOT NULL,"
    " result_version INTEGER NOT NULL," /* the result it confirms */
    " at_ms INTEGER NOT NULL,"
    " PRIMARY KEY(inspection, inspector, result_version));"
    "CREATE TABLE inspection_evidence("
    " id INTEGER PRIMARY KEY,"
    " inspection INTEGER NOT NULL REFERENCES inspections(id),"
    " captured_ms INTEGER NOT NULL,"
    " kind TEXT NOT NULL," /* status | thumbnail | score */
    " camera TEXT NOT NULL DEFAULT '',"
    " data TEXT NOT NULL DEFAULT ''," /* JSON */
    " jpeg BLOB);"
    "CREATE INDEX inspection_evidence_by ON inspection_evidence(inspection, id);",
};

struct inspect {
	sqlite3 *db;     /* the worker's (or the CLI's) connection */
	sqlite3 *reader; /* the loop thread's, read-only */
	struct vw_worker *worker;
	sqlite3_stmt *reader_st[INSPECT_READER_STMTS]; /* issue 12 D: inspect_reader_stmt */
};

struct job {
	inspect_run_fn run;
	inspect_done_fn done;
	void *arg;
	int status;
};

static void job_run(struct vw_worker *w, void *p, void *ud)
{
	(void)w;
	struct inspect *in = ud;
	struct job *j = p;
	j->status = j->run(in->db, j->arg);
}

static void job_done(void *p, int status, void *ud)
{
	(void)ud;
	struct job *j = p;
	j->done(j->arg, status ? status : j->status);
	free(j);
}

int inspect_open(uv_loop_t *loop, const char *path, struct inspect **out, char *err, size_t errlen)
{
	*out = NULL;
	struct inspect *in = calloc(1, sizeof(*in));
	if (!in) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	struct vw_db_opts o = {.busy_ms = 5000, .synchronous = "FULL", .wal = 1, .foreign_keys = 1};
	int rc = vw_db_open(path, &o, &in->db, err, errlen);
	if (!rc)
		rc = vw_db_migrate(in->db, "inspect", migrations, INSPECT_SCHEMA_VERSION, err,
		                   errlen);
	if (!rc && loop) {
		struct vw_db_opts ro = {.flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
		                        .busy_ms = 1000};
		rc = vw_db_open(path, &ro, &in->reader, err, errlen);
		if (!rc && (rc = vw_worker_create(loop, job_run, NULL, job_done, in,
		                                  INSPECT_JOBS_MAX, &in->worker)) != 0)
			snprintf(err, errlen, "%s: worker: %s", path, strerror(-rc));
	}
	if (rc) {
		inspect_close(in);
		return rc;
	}
	*out = in;
	return 0;
}

void inspect_close(struct inspect *in)
{
	if (!in)
		return;
	vw_worker_destroy(in->worker);
	for (size_t i = 0; i < INSPECT_READER_STMTS; i++)
		sqlite3_finalize(in->reader_st[i]);
	sqlite3_close(in->reader);
	sqlite3_close(in->db);
	free(in);
}

int inspect_submit(struct inspect *in, inspect_run_fn run, inspect_done_fn done, void *arg)
{
	if (!in->worker)
		return -ESHUTDOWN;
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	*j = (struct job){.run = run, .done = done, .arg = arg};
	int rc = vw_worker_submit(in->worker, j);
	if (rc)
		free(j);
	return rc;
}

int inspect_run_now(struct inspect *in, inspect_run_fn run, void *arg)
{
	if (in->worker)
		return -EBUSY; /* the worker owns the connection */
	return run(in->db, arg);
}

sqlite3 *inspect_reader(struct inspect *in)
{
	return in->reader;
}

int inspect_txn(sqlite3 *db, int (*fn)(sqlite3 *db, void *arg), void *arg)
{
	int rc = vw_db_exec(db, "BEGIN IMMEDIATE", NULL, 0);
	if (rc)
		return rc;
	rc = fn(db, arg);
	if (!rc)
		rc = vw_db_exec(db, "COMMIT", NULL, 0);
	if (rc)
		vw_db_exec(db, "ROLLBACK", NULL, 0);
	return rc;
}

int inspect_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK)
		return 0;
	log_error("event=inspect_sql_failed error=\"%s\" sql=\"%.80s\"", sqlite3_errmsg(db), sql);
	*st = NULL;
	return -EIO;
}

sqlite3_stmt *inspect_reader_stmt(struct inspect *in, unsigned slot, const char *sql)
{
	if (!in || slot >= INSPECT_READER_STMTS)
		return NULL;
	if (!in->reader_st[slot] &&
	    inspect_prepare(in->reader ? in->reader : in->db, sql, &in->reader_st[slot]))
		return NULL;
	return in->reader_st[slot];
}
