/* sqlite: the store's SQLite backend — one database file (<dir>/venuewatch.db) in WAL mode,
 * its schema and in-place migrations, the writer's prepared statements and group-commit
 * transaction, and read-only connections for the reader threads. Implements store_ops
 * (store_backend.h); nothing SQLite leaves this file.
 * Threads: open/close on the store_open/store_close caller; the write connection on the
 * writer thread only; each read connection on one reader thread. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "store_backend.h"
#include "vtime.h"

#define DB_FILE "venuewatch.db"

/* Schema history: migrations[i] takes user_version i to i + 1, in one transaction.
 *
 * results is append-only in arrival order with no secondary index, so an insert touches
 * one b-tree page at the end; duplicates are kept out by the per-agent high-water mark in
 * agents.high_seq, not by a unique index. latest holds one row per (agent, kind, target)
 * with the status copied in, so a site's page reads current state without history; and
 * agents.cam_* count the agent's cameras by latest stream status, kept by the writer as
 * latest changes, so the overview of every site reads one row per agent instead of every
 * camera (3000 sites x 200 cameras: ~0.2 s of loop time per request otherwise).
 * No foreign keys: the writer is the only code that inserts, and the per-row lookup a
 * foreign key costs is most of an insert's price. */
static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE agents("
    " id INTEGER PRIMARY KEY,"
    " site TEXT NOT NULL,"
    " agent TEXT NOT NULL,"
    " org TEXT NOT NULL DEFAULT '',"
    " city TEXT NOT NULL DEFAULT '',"
    " high_seq INTEGER NOT NULL DEFAULT 0,"
    " last_report_ms INTEGER NOT NULL DEFAULT 0,"
    " cam_ok INTEGER NOT NULL DEFAULT 0,"
    " cam_degraded INTEGER NOT NULL DEFAULT 0,"
    " cam_down INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE(site, agent));"
    "CREATE TABLE results("
    " id INTEGER PRIMARY KEY,"
    " agent_id INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " ts_ms INTEGER NOT NULL,"
    " mono_ms INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " target TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " session TEXT,"
    " codec TEXT,"
    " faults TEXT NOT NULL,"  /* JSON array of fault codes */
    " metrics TEXT NOT NULL," /* JSON object name -> number */
    " received_ms INTEGER NOT NULL);"
    "CREATE TABLE latest("
    " agent_id INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " target TEXT NOT NULL,"
    " result_id INTEGER NOT NULL,"
    " status TEXT NOT NULL,"
    " PRIMARY KEY(agent_id, kind, target)) WITHOUT ROWID;",
    /* 2: seqs an agent never sent. A batch that starts (or continues) beyond the agent's
     * mark + 1 means the agent no longer holds those seqs: its outbox dropped them at its
     * bound (and said so in a buffer_overflow result) or, after a collector power loss, they
     * were acknowledged here and rolled back. Either way nobody can send them again, so the
     * mark moves on and the hole is written down instead of waited for. */
    "CREATE TABLE seq_gaps("
    " agent_id INTEGER NOT NULL,"
    " first_seq INTEGER NOT NULL,"
    " last_seq INTEGER NOT NULL,"
    " received_ms INTEGER NOT NULL);",
    /* 3: agent epochs. A venue machine that is reinstalled loses its outbox and starts
     * again at seq 1; its new outbox draws a new epoch id, and the mark is kept per
     * (agent, epoch), so the new run is neither skipped as resends nor refused. The agent's
     * row (site, org, city, latest, camera counts) stays one, so the old history is still
     * the site's and the new results replace its latest state. ord numbers an agent's
     * epochs in order of first sight, 0 being the legacy epoch '' (batches that carry
     * none); results and gaps keep the ord, which keeps the rows small and lets the
     * ALTERs add a constant default (no rewrite of existing rows). agents.high_seq stays
     * as the mark of the epoch that stored last, for people and tools; the dedup reads
     * epochs. */
    "CREATE TABLE epochs("
    " agent_id INTEGER NOT NULL,"
    " epoch TEXT NOT NULL,"
    " ord INTEGER NOT NULL,"
    " high_seq INTEGER NOT NULL DEFAULT 0,"
    " first_ms INTEGER NOT NULL,"
    " last_ms INTEGER NOT NULL,"
    " PRIMARY KEY(agent_id, epoch)) WITHOUT ROWID;"
    "INSERT INTO epochs(agent_id, epoch, ord, high_seq, first_ms, last_ms)"
    " SELECT id, '', 0, high_seq, last_report_ms, last_report_ms FROM agents;"
    "ALTER TABLE results ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE seq_gaps ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;",
    /* 4: exam sessions (考试场次), entered by the organisation or the bureau; the collector is
     * their authority. code is the organisation's own id for the session (unique within the
     * org); rooms is a comma-separated list of room names, or "*" for every room of the site.
     * A session changes only before it starts; every change is a row of exam_session_changes
     * in the same transaction. site_versions counts each site's changes, so an agent asks
     * for its sessions again only when its site's number moved. */
    "CREATE TABLE exam_sessions("
    " id INTEGER PRIMARY KEY,"
    " org TEXT NOT NULL,"
    " city TEXT NOT NULL,"
    " site TEXT NOT NULL,"
    " code TEXT NOT NULL,"
    " occupation TEXT NOT NULL,"
    " level TEXT NOT NULL,"
    " start_ms INTEGER NOT NULL,"
    " end_ms INTEGER NOT NULL,"
    " rooms TEXT NOT NULL,"
    " candidates INTEGER NOT NULL DEFAULT 0,"
    " cancelled_ms INTEGER,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " UNIQUE(org, code));"
    "CREATE INDEX exam_sessions_site ON exam_sessions(site, start_ms);"
    "CREATE INDEX exam_sessions_org ON exam_sessions(org, start_ms);"
    "CREATE INDEX exam_sessions_city ON exam_sessions(city, start_ms);"
    "CREATE TABLE exam_session_changes("
    " id INTEGER PRIMARY KEY,"
    " session_id INTEGER NOT NULL,"
    " at_ms INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " before TEXT,"
    " after TEXT NOT NULL);"
    "CREATE TABLE site_versions("
    " site TEXT PRIMARY KEY,"
    " sessions INTEGER NOT NULL) WITHOUT ROWID;",
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
_Static_assert(NMIGRATIONS == STORE_SCHEMA_VERSION, "a migration per schema version");

enum wstmt {
	W_AGENT,
	W_EPOCH,
	W_RESULT,
	W_OLD_STATUS,
	W_LATEST,
	W_HIGH,
	W_EPOCH_HIGH,
	W_GAP,
	W_EPOCH_FIND,
	W_EPOCH_RECENT,
	W_EPOCH_LAST,
	W_SITE_PLACE,
	W_COUNT
};
static const char *const wsql[W_COUNT] = {
    [W_AGENT] = "INSERT INTO agents(site, agent, org, city, last_report_ms)"
                " VALUES(?1, ?2, ?3, ?4, ?5)"
                " ON CONFLICT(site, agent) DO UPDATE SET org = excluded.org,"
                " city = excluded.city, last_report_ms = excluded.last_report_ms"
                " RETURNING id, high_seq",
    /* A new epoch gets the next ord of its agent (0 only for the legacy ''). */
    [W_EPOCH] = "INSERT INTO epochs(agent_id, epoch, ord, first_ms, last_ms)"
                " VALUES(?1, ?2, CASE WHEN ?2 = '' THEN 0 ELSE"
                " (SELECT coalesce(max(ord), 0) + 1 FROM epochs WHERE agent_id = ?1) END,"
                " ?3, ?3)"
                " ON CONFLICT(agent_id, epoch) DO UPDATE SET last_ms = excluded.last_ms"
                " RETURNING ord, high_seq",
    [W_RESULT] = "INSERT INTO results(agent_id, seq, ts_ms, mono_ms, kind, target, status,"
                 " session, codec, faults, metrics, received_ms, epoch)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [W_LATEST] = "INSERT INTO latest(agent_id, kind, target, result_id, status)"
                 " VALUES(?1, ?2, ?3, ?4, ?5)"
                 " ON CONFLICT(agent_id, kind, target) DO UPDATE SET"
                 " result_id = excluded.result_id, status = excluded.status",
    [W_OLD_STATUS] = "SELECT status FROM latest WHERE agent_id = ?1 AND kind = ?2 AND target = ?3",
    [W_HIGH] = "UPDATE agents SET high_seq = ?2, cam_ok = cam_ok + ?3,"
               " cam_degraded = cam_degraded + ?4, cam_down = cam_down + ?5 WHERE id = ?1",
    [W_EPOCH_HIGH] = "UPDATE epochs SET high_seq = ?3 WHERE agent_id = ?1 AND epoch = ?2",
    [W_GAP] = "INSERT INTO seq_gaps(agent_id, first_seq, last_seq, received_ms, epoch)"
              " VALUES(?1, ?2, ?3, ?4, ?5)",
    [W_EPOCH_FIND] = "SELECT 1 FROM epochs WHERE agent_id = ?1 AND epoch = ?2",
    /* The primary key's agent_id prefix bounds the scan to one agent's epochs. */
    [W_EPOCH_RECENT] = "SELECT count(*) FROM epochs"
                       " WHERE agent_id = ?1 AND epoch <> '' AND first_ms > ?2",
    /* UNIQUE(site, agent)'s index: the site's first row. All its rows agree (see
     * check_site_place). */
    [W_SITE_PLACE] = "SELECT org, city FROM agents WHERE site = ?1 LIMIT 1",
    [W_EPOCH_LAST] = "SELECT ord, high_seq, last_ms FROM epochs WHERE agent_id = ?1"
                     " ORDER BY ord DESC LIMIT 1",
};

enum rstmt { R_SITES, R_SITE, R_TARGETS, R_HIGH, R_COUNT_RESULTS, R_COUNT };
#define SITE_SUMMARY(where)                                                                        \
	"SELECT site, org, city, max(last_report_ms), sum(cam_ok), sum(cam_degraded),"             \
	" sum(cam_down) FROM agents " where " GROUP BY site ORDER BY site"
static const char *const rsql[R_COUNT] = {
    /* Every agent row of a site holds the same org and city (check_site_place refuses a
     * certificate naming others), so the bare columns are the site's. */
    [R_SITES] = SITE_SUMMARY(""),
    [R_SITE] = SITE_SUMMARY("WHERE site = ?1"),
    [R_TARGETS] = "SELECT a.agent, l.kind, l.target, r.status, r.session, r.codec, r.faults,"
                  " r.metrics, r.ts_ms, r.seq"
                  " FROM agents a JOIN latest l ON l.agent_id = a.id"
                  " JOIN results r ON r.id = l.result_id"
                  " WHERE a.site = ?1 ORDER BY l.kind, l.target, a.agent",
    [R_HIGH] = "SELECT e.high_seq FROM agents a JOIN epochs e ON e.agent_id = a.id"
               " WHERE a.site = ?1 AND a.agent = ?2 AND e.epoch = ?3",
    [R_COUNT_RESULTS] = "SELECT count(*) FROM results",
};

struct sqlite_be {
	char *path;
	sqlite3 *wdb; /* the writer thread's, once started */
	sqlite3_stmt *w[W_COUNT];
};

struct sqlite_rd {
	struct sqlite_be *be;
	sqlite3 *db; /* read-only, one reader thread */
	sqlite3_stmt *r[R_COUNT];
};

/* --- open ------------------------------------------------------------------------------- */

static void sq_close(void *p)
{
	struct sqlite_be *s = p;
	if (!s)
		return;
	vw_db_finalize_all(s->w, W_COUNT);
	/* The readers are closed first (store.c): the last connection to close checkpoints and
	 * removes the WAL, and a read-only one cannot. */
	if (s->wdb && sqlite3_close(s->wdb) != SQLITE_OK)
		log_error("event=store_close_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
	free(s->path);
	free(s);
}

static int sq_open(const struct store_options *o, void **out, char *err, size_t errlen)
{
	if (!o->dir || !o->dir[0]) {
		snprintf(err, errlen, "sqlite store: no directory given");
		return -EINVAL;
	}
	struct sqlite_be *s = calloc(1, sizeof(*s));
	size_t n = strlen(o->dir) + sizeof("/" DB_FILE);
	if (!s || !(s->path = malloc(n))) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(s->path, n, "%s/" DB_FILE, o->dir);
	const char *path = s->path;
	int rc;

	/* synchronous=FULL in WAL: the WAL is fsync'd at every (group) commit, so what we
	 * acknowledge survives a power cut, not only a crash of this process. NORMAL would
	 * fsync only at checkpoints and could take back acknowledged batches whose rows the
	 * agent has already released: a silent loss, so it is for measurements only. Group
	 * commit pays the fsync once per group, which keeps FULL cheap; docs/DELIVERY.md has
	 * the measurement. NOMUTEX (vw_db_open's default): each connection is used by one
	 * thread at a time (the write connection is handed to the writer thread once, at
	 * store_start). */
	struct vw_db_opts wo = {
	    .busy_ms = 5000,
	    .synchronous = o->durability == STORE_DURABLE_NORMAL ? "NORMAL" : "FULL",
	    .wal = 1,
	};
	char why[256];
	if ((rc = vw_db_open(path, &wo, &s->wdb, err, errlen)) != 0)
		goto fail;
	/* journal_size_limit bounds the WAL file that a long read would otherwise let grow. */
	if (vw_db_exec(s->wdb, "PRAGMA journal_size_limit = 67108864", why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", path, why);
		rc = -EIO;
		goto fail;
	}
	if ((rc = vw_db_migrate(s->wdb, "store", migrations, NMIGRATIONS, why, sizeof(why))) != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	if ((rc = vw_db_prepare_all(s->wdb, wsql, s->w, W_COUNT, SQLITE_PREPARE_PERSISTENT, why,
	                            sizeof(why))) != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	sq_close(s);
	return rc;
}

/* --- writer thread ---------------------------------------------------------------------- */

static int sqlite_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static int step_done(struct sqlite_be *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return 0;
	log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
	return sqlite_errno(rc);
}

/* One row into results, through the writer's statement (ingest and the raw measurement). */
static int insert_result(struct sqlite_be *s, const struct store_batch *b,
                         const struct store_row *row, int64_t agent_id, int64_t epoch_ord)
{
	sqlite3_stmt *st = s->w[W_RESULT];
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_int64(st, 2, row->seq);
	sqlite3_bind_int64(st, 3, row->ts_ms);
	sqlite3_bind_int64(st, 4, row->mono_ms);
	sqlite3_bind_text(st, 5, vw_kind_name((enum vw_kind)row->kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, store_batch_str(b, row->target), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, vw_status_name((enum vw_status)row->status), -1, SQLITE_STATIC);
	if (row->session)
		sqlite3_bind_text(st, 8, store_batch_str(b, row->session), -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 8);
	if (row->codec)
		sqlite3_bind_text(st, 9, store_batch_str(b, row->codec), -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 9);
	sqlite3_bind_text(st, 10, store_batch_str(b, row->faults), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, store_batch_str(b, row->metrics), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 12, b->received_ms);
	sqlite3_bind_int64(st, 13, epoch_ord);
	return step_done(s, st);
}

static int record_gap(struct sqlite_be *s, struct store_batch *b, int64_t agent_id,
                      int64_t epoch_ord, int64_t first, int64_t last)
{
	log_warn("event=ingest_seq_gap site=%s agent=%s epoch=%s first_seq=%lld last_seq=%lld "
	         "count=%lld hint=\"the agent no longer held these; look for its buffer_overflow "
	         "result\"",
	         b->site, b->agent, b->epoch[0] ? b->epoch : "-", (long long)first, (long long)last,
	         (long long)(last - first + 1));
	sqlite3_stmt *st = s->w[W_GAP];
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_int64(st, 2, first);
	sqlite3_bind_int64(st, 3, last);
	sqlite3_bind_int64(st, 4, b->received_ms);
	sqlite3_bind_int64(st, 5, epoch_ord);
	int rc = step_done(s, st);
	if (!rc)
		b->gap_seqs += (size_t)(last - first + 1);
	return rc;
}

/* The batch's agent row (created on first sight, org/city/last report refreshed): its id and
 * high-water mark. */
static int upsert_agent(struct sqlite_be *s, const struct store_batch *b, int64_t *agent_id,
                        int64_t *high)
{
	sqlite3_stmt *st = s->w[W_AGENT];
	sqlite3_bind_text(st, 1, b->site, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b->agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, b->org, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, b->city, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, b->received_ms);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		sqlite3_reset(st);
		return sqlite_errno(rc);
	}
	*agent_id = sqlite3_column_int64(st, 0);
	*high = sqlite3_column_int64(st, 1);
	return step_done(s, st); /* RETURNING: the statement ends at its next step */
}

/* The batch's epoch of that agent (created on first sight): its ord and high-water mark. */
static int upsert_epoch(struct sqlite_be *s, const struct store_batch *b, int64_t agent_id,
                        int64_t *ord, int64_t *high)
{
	sqlite3_stmt *st = s->w[W_EPOCH];
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_text(st, 2, b->epoch, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, b->received_ms);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		sqlite3_reset(st);
		return sqlite_errno(rc);
	}
	*ord = sqlite3_column_int64(st, 0);
	*high = sqlite3_column_int64(st, 1);
	return step_done(s, st);
}

static const char *col_text(sqlite3_stmt *st, int i);

/* Steps a one-row query; *found says whether it had a row (its columns then readable until
 * the caller resets it). */
static int step_row(struct sqlite_be *s, sqlite3_stmt *st, int *found)
{
	int rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
	sqlite3_reset(st);
	return sqlite_errno(rc);
}

/* Before the batch's epoch is upserted: a first sight is logged, and refused (-EDQUOT)
 * when the agent already started b->new_epochs_max new epochs in the last 24 h. Every new
 * epoch restarts the agent's seqs at a mark of 0, so a certificate drawing fresh epochs
 * at will could fill the epochs table, and a cloned machine would pass unnoticed. */
static int check_new_epoch(struct sqlite_be *s, const struct store_batch *b, int64_t agent_id)
{
	sqlite3_stmt *st = s->w[W_EPOCH_FIND];
	int found, rc;
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_text(st, 2, b->epoch, -1, SQLITE_STATIC);
	if ((rc = step_row(s, st, &found)) != 0)
		return rc;
	sqlite3_reset(st);
	if (found)
		return 0;
	if (b->epoch[0] && b->new_epochs_max > 0) {
		st = s->w[W_EPOCH_RECENT];
		sqlite3_bind_int64(st, 1, agent_id);
		sqlite3_bind_int64(st, 2, b->received_ms - 24LL * 3600 * 1000);
		if ((rc = step_row(s, st, &found)) != 0)
			return rc;
		int64_t recent = found ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_reset(st);
		if (recent >= b->new_epochs_max) {
			log_warn("event=agent_epoch_refused site=%s agent=%s epoch=%s "
			         "reason=epoch_limit new_epochs_24h=%lld limit=%ld",
			         b->site, b->agent, b->epoch, (long long)recent, b->new_epochs_max);
			return -EDQUOT;
		}
	}
	st = s->w[W_EPOCH_LAST];
	sqlite3_bind_int64(st, 1, agent_id);
	if ((rc = step_row(s, st, &found)) != 0)
		return rc;
	int64_t prev_ord = found ? sqlite3_column_int64(st, 0) : -1;
	int64_t prev_high = found ? sqlite3_column_int64(st, 1) : 0;
	int64_t prev_last = found ? sqlite3_column_int64(st, 2) : 0;
	sqlite3_reset(st);
	/* The ord W_EPOCH will give it. */
	int64_t ord = !b->epoch[0] ? 0 : (prev_ord > 0 ? prev_ord + 1 : 1);
	char prev[24] = "-";
	if (prev_ord >= 0)
		snprintf(prev, sizeof(prev), "%lld", (long long)prev_ord);
	if (prev_ord >= 0 && prev_high > 0 && b->received_ms - prev_last < 3600LL * 1000)
		log_warn("event=agent_epoch_new site=%s agent=%s epoch=%s ord=%lld prev_ord=%s "
		         "prev_high_seq=%lld hint=\"the previous epoch stored results within the "
		         "last hour: a restored outbox, or a cloned machine using this "
		         "certificate?\"",
		         b->site, b->agent, b->epoch[0] ? b->epoch : "-", (long long)ord, prev,
		         (long long)prev_high);
	else
		log_info("event=agent_epoch_new site=%s agent=%s epoch=%s ord=%lld prev_ord=%s",
		         b->site, b->agent, b->epoch[0] ? b->epoch : "-", (long long)ord, prev);
	return 0;
}

/* A site is one org's, in one city: a certificate naming another (a second machine issued
 * with a mistyped --city) is refused (-EPERM) instead of moving the site, which would make
 * it flicker in and out of a city's view. The CLI refuses to issue such a certificate;
 * this holds for any made before that check, or by hand. */
static int check_site_place(struct sqlite_be *s, const struct store_batch *b)
{
	sqlite3_stmt *st = s->w[W_SITE_PLACE];
	int found, rc;
	sqlite3_bind_text(st, 1, b->site, -1, SQLITE_STATIC);
	if ((rc = step_row(s, st, &found)) != 0)
		return rc;
	/* "" is unknown (rows from before certificates carried O and L): filled, not refused. */
	const char *org = found ? col_text(st, 0) : "", *city = found ? col_text(st, 1) : "";
	if ((org[0] && strcmp(org, b->org) != 0) || (city[0] && strcmp(city, b->city) != 0)) {
		log_warn("event=site_jurisdiction_refused site=%s agent=%s cert_org=\"%s\" "
		         "cert_city=\"%s\" site_org=\"%s\" site_city=\"%s\" "
		         "reason=site_jurisdiction_mismatch",
		         b->site, b->agent, b->org, b->city, org, city);
		rc = -EPERM;
	}
	sqlite3_reset(st);
	return rc;
}

static int apply_batch(struct sqlite_be *s, struct store_batch *b)
{
	int64_t agent_id, agent_high, ord = 0, high = 0;
	b->gap_seqs = 0;
	int rc = check_site_place(s, b);
	if (!rc)
		rc = upsert_agent(s, b, &agent_id, &agent_high);
	if (!rc)
		rc = check_new_epoch(s, b, agent_id);
	if (!rc)
		rc = upsert_epoch(s, b, agent_id, &ord, &high);
	if (rc)
		return rc;
	sqlite3_stmt *st;

	int64_t last = high;
	size_t stored = 0;
	int64_t cams[VW_STATUS_COUNT] = {0}; /* change in this agent's cameras per status */
	for (size_t i = 0; i < b->nrows; i++) {
		const struct store_row *row = &b->rows[i];
		if (row->seq <= last)
			continue; /* already stored (a resend), or a repeat within the batch */
		/* Rows come sorted and the agent sends its oldest first, one batch at a time, so
		 * a hole below this row can never be filled later (see migration 2). */
		if (row->seq > last + 1 &&
		    (rc = record_gap(s, b, agent_id, ord, last + 1, row->seq - 1)) != 0)
			return rc;
		const char *kind = vw_kind_name((enum vw_kind)row->kind);
		const char *status = vw_status_name((enum vw_status)row->status);
		const char *target = store_batch_str(b, row->target);
		if ((rc = insert_result(s, b, row, agent_id, ord)) != 0)
			return rc;
		int64_t result_id = sqlite3_last_insert_rowid(s->wdb);

		if (row->kind == VW_KIND_STREAM) {
			/* The camera leaves its old status count and joins the new one. */
			st = s->w[W_OLD_STATUS];
			sqlite3_bind_int64(st, 1, agent_id);
			sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
			rc = sqlite3_step(st);
			if (rc == SQLITE_ROW) {
				enum vw_status old;
				if (vw_status_parse((const char *)sqlite3_column_text(st, 0),
				                    &old) == 0)
					cams[old]--;
			}
			sqlite3_reset(st);
			if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
				log_error("event=store_write_failed error=\"%s\"",
				          sqlite3_errmsg(s->wdb));
				return sqlite_errno(rc);
			}
			cams[row->status]++;
		}
		st = s->w[W_LATEST];
		sqlite3_bind_int64(st, 1, agent_id);
		sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, result_id);
		sqlite3_bind_text(st, 5, status, -1, SQLITE_STATIC);
		if ((rc = step_done(s, st)) != 0)
			return rc;
		last = row->seq;
		stored++;
	}
	if (last > high) {
		st = s->w[W_HIGH];
		sqlite3_bind_int64(st, 1, agent_id);
		sqlite3_bind_int64(st, 2, last);
		sqlite3_bind_int64(st, 3, cams[VW_STATUS_OK]);
		sqlite3_bind_int64(st, 4, cams[VW_STATUS_DEGRADED]);
		sqlite3_bind_int64(st, 5, cams[VW_STATUS_DOWN]);
		if ((rc = step_done(s, st)) != 0)
			return rc;
		st = s->w[W_EPOCH_HIGH];
		sqlite3_bind_int64(st, 1, agent_id);
		sqlite3_bind_text(st, 2, b->epoch, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, last);
		if ((rc = step_done(s, st)) != 0)
			return rc;
	}
	b->acked_seq = last;
	b->stored = stored;
	return 0;
}

/* One transaction for everything that was waiting: the fsync/WAL cost is paid once per
 * group, not per request. A savepoint per batch keeps one bad batch from sinking the
 * others. */
static int sq_commit(void *p, struct store_batch *list)
{
	struct sqlite_be *s = p;
	int rc = vw_db_exec(s->wdb, "BEGIN IMMEDIATE", NULL, 0);
	if (rc)
		log_error("event=store_begin_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
	for (struct store_batch *b = list; b; b = b->next) {
		b->status = rc;
		if (rc)
			continue;
		if (vw_db_exec(s->wdb, "SAVEPOINT batch", NULL, 0)) {
			b->status = -EIO;
			continue;
		}
		b->status = apply_batch(s, b);
		if (b->status)
			vw_db_exec(s->wdb, "ROLLBACK TO batch", NULL, 0);
		vw_db_exec(s->wdb, "RELEASE batch", NULL, 0);
	}
	if (!rc && vw_db_exec(s->wdb, "COMMIT", NULL, 0)) {
		log_error("event=store_commit_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
		rc = -EIO;
	}
	if (rc)
		for (struct store_batch *b = list; b; b = b->next)
			b->status = rc;
	return rc;
}

/* The writer's own W_AGENT and W_RESULT statements, without the mark, latest or counters. */
static int sq_raw(void *p, const struct store_batch *b)
{
	struct sqlite_be *s = p;
	int rc = vw_db_exec(s->wdb, "BEGIN IMMEDIATE", NULL, 0);
	if (rc)
		return rc;
	int64_t agent_id, high;
	if ((rc = upsert_agent(s, b, &agent_id, &high)) != 0)
		goto fail;
	for (size_t i = 0; i < b->nrows; i++)
		if ((rc = insert_result(s, b, &b->rows[i], agent_id, 0)) != 0)
			goto fail;
	if (vw_db_exec(s->wdb, "COMMIT", NULL, 0)) {
		rc = -EIO;
		goto fail;
	}
	return 0;
fail:
	vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
	return rc;
}

/* --- reads (reader threads) ------------------------------------------------------------- */

static void sq_reader_close(void *p)
{
	struct sqlite_rd *rd = p;
	if (!rd)
		return;
	vw_db_finalize_all(rd->r, R_COUNT);
	sqlite3_close(rd->db);
	free(rd);
}

static int sq_reader_open(void *p, void **out, char *err, size_t errlen)
{
	struct sqlite_be *s = p;
	struct sqlite_rd *rd = calloc(1, sizeof(*rd));
	if (!rd) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rd->be = s;
	/* Readers wait only on WAL recovery or a truncating checkpoint. They run off the
	 * loop now, but a reply that waits long is a request that times out. */
	struct vw_db_opts ro = {.flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
	                        .busy_ms = 1000};
	char why[256];
	int rc = vw_db_open(s->path, &ro, &rd->db, err, errlen);
	if (!rc && (rc = vw_db_prepare_all(rd->db, rsql, rd->r, R_COUNT, SQLITE_PREPARE_PERSISTENT,
	                                   why, sizeof(why))) != 0)
		snprintf(err, errlen, "%s: %s", s->path, why);
	if (rc) {
		sq_reader_close(rd);
		return rc;
	}
	*out = rd;
	return 0;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? (const char *)t : "";
}

static void read_site_row(sqlite3_stmt *st, struct store_site *out)
{
	out->site = col_text(st, 0);
	out->org = col_text(st, 1);
	out->city = col_text(st, 2);
	out->last_report_ms = sqlite3_column_int64(st, 3);
	out->ok = sqlite3_column_int64(st, 4);
	out->degraded = sqlite3_column_int64(st, 5);
	out->down = sqlite3_column_int64(st, 6);
}

static int read_failed(struct sqlite_rd *rd, sqlite3_stmt *st)
{
	log_error("event=store_read_failed error=\"%s\"", sqlite3_errmsg(rd->db));
	sqlite3_reset(st);
	return -EIO;
}

static int sq_list_sites(void *p, struct store_fill *f)
{
	struct sqlite_rd *rd = p;
	sqlite3_stmt *st = rd->r[R_SITES];
	int rc, step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_site site;
		read_site_row(st, &site);
		if ((rc = store_fill_site(f, &site)) != 0) {
			sqlite3_reset(st);
			return rc;
		}
	}
	if (step != SQLITE_DONE)
		return read_failed(rd, st);
	sqlite3_reset(st);
	return 0;
}

static int sq_get_site(void *p, const char *site, struct store_fill *f)
{
	struct sqlite_rd *rd = p;
	/* One read transaction: the summary and the targets come from the same snapshot. */
	if (vw_db_exec(rd->db, "BEGIN", NULL, 0))
		return -EIO;
	int rc = 0;
	sqlite3_stmt *st = rd->r[R_SITE];
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	int step = sqlite3_step(st);
	if (step == SQLITE_DONE) {
		sqlite3_reset(st);
		rc = -ENOENT;
		goto out;
	}
	if (step != SQLITE_ROW) {
		rc = read_failed(rd, st);
		goto out;
	}
	struct store_site summary;
	read_site_row(st, &summary);
	rc = store_fill_site(f, &summary);
	sqlite3_reset(st);
	if (rc)
		goto out;

	st = rd->r[R_TARGETS];
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_target t = {
		    .agent = col_text(st, 0),
		    .kind = col_text(st, 1),
		    .target = col_text(st, 2),
		    .status = col_text(st, 3),
		    .session = col_text(st, 4),
		    .codec = col_text(st, 5),
		    .faults = col_text(st, 6),
		    .metrics = col_text(st, 7),
		    .ts_ms = sqlite3_column_int64(st, 8),
		    .seq = sqlite3_column_int64(st, 9),
		};
		if ((rc = store_fill_target(f, &t)) != 0)
			break;
	}
	if (!rc && step != SQLITE_DONE)
		rc = read_failed(rd, st);
	sqlite3_reset(st);
out:
	vw_db_exec(rd->db, "COMMIT", NULL, 0);
	return rc;
}

static int sq_high_seq(void *p, const char *site, const char *agent, const char *epoch,
                       int64_t *out)
{
	struct sqlite_rd *rd = p;
	sqlite3_stmt *st = rd->r[R_HIGH];
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, agent, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, epoch, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return read_failed(rd, st);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return 0;
}

static int sq_count_results(void *p, int64_t *out)
{
	struct sqlite_rd *rd = p;
	sqlite3_stmt *st = rd->r[R_COUNT_RESULTS];
	if (sqlite3_step(st) != SQLITE_ROW)
		return read_failed(rd, st);
	*out = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .commit = sq_commit,
    .raw = sq_raw,
    .reader_open = sq_reader_open,
    .reader_close = sq_reader_close,
    .list_sites = sq_list_sites,
    .get_site = sq_get_site,
    .high_seq = sq_high_seq,
    .count_results = sq_count_results,
};
