#include "published.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "worker.h"

/* Published scores are few (an org, a period, now and then) and written once: a file of
 * their own keeps them out of the results store's writer and its migrations, and survives
 * a results store rebuilt from the agents' resends. */
static const char *const migrations[] = {
    /* 1: a published score is never updated: a new publication is a new row. */
    "CREATE TABLE published_scores("
    " id INTEGER PRIMARY KEY,"
    " org TEXT NOT NULL,"
    " scope_city TEXT NOT NULL,"
    " from_ms INTEGER NOT NULL,"
    " to_ms INTEGER NOT NULL,"
    " published_ms INTEGER NOT NULL,"
    " score INTEGER NOT NULL,"
    " rubric_version TEXT NOT NULL,"
    " rubric_text TEXT NOT NULL,"
    " actor TEXT NOT NULL,"
    " doc TEXT NOT NULL);"
    "CREATE INDEX published_scores_org ON published_scores(org, published_ms);"
    "CREATE TRIGGER published_scores_frozen BEFORE UPDATE ON published_scores"
    " BEGIN SELECT RAISE(ABORT, 'a published score is never changed'); END;",
    /* 2: nor taken back: a deleted row would be a published score that silently went away.
     * Pages run newest first per org by id (an index on org orders by rowid within it). */
    "CREATE TRIGGER published_scores_kept BEFORE DELETE ON published_scores"
    " BEGIN SELECT RAISE(ABORT, 'a published score is never deleted'); END;"
    "CREATE INDEX published_scores_org_id ON published_scores(org, id);",
};

#define PUBLISHED_JOBS_MAX 64

struct published {
	sqlite3 *db;
	struct vw_worker *worker;
};

enum { JOB_ADD, JOB_LIST };

struct job {
	int op, status;
	struct published_row in; /* JOB_ADD: strings owned (strdup) */
	char *org, *scope_city;  /* JOB_LIST (scope_city NULL: any) */
	int64_t before_id;
	size_t limit;
	struct published_row *rows;
	size_t nrows;
	char **strs; /* every string of rows, owned */
	size_t nstrs;
	published_cb cb;
	void *ud;
};

static void job_free(struct job *j)
{
	if (!j)
		return;
	free((char *)j->in.org);
	free((char *)j->in.scope_city);
	free((char *)j->in.rubric_version);
	free((char *)j->in.rubric_text);
	free((char *)j->in.actor);
	free((char *)j->in.doc);
	free(j->org);
	free(j->scope_city);
	for (size_t i = 0; i < j->nstrs; i++)
		free(j->strs[i]);
	free(j->strs);
	free(j->rows);
	free(j);
}

static const char *keep(struct job *j, const unsigned char *s)
{
	char *c = strdup(s ? (const char *)s : "");
	char **n = c ? realloc(j->strs, (j->nstrs + 1) * sizeof(*n)) : NULL;
	if (!n) {
		free(c);
		return NULL;
	}
	j->strs = n;
	j->strs[j->nstrs++] = c;
	return c;
}

static int insert(sqlite3 *db, struct job *j)
{
	sqlite3_stmt *st = NULL;
	const char *sql = "INSERT INTO published_scores(org, scope_city, from_ms, to_ms,"
	                  " published_ms, score, rubric_version, rubric_text, actor, doc)"
	                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	const struct published_row *r = &j->in;
	sqlite3_bind_text(st, 1, r->org, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->scope_city, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, r->from_ms);
	sqlite3_bind_int64(st, 4, r->to_ms);
	sqlite3_bind_int64(st, 5, r->published_ms);
	sqlite3_bind_int(st, 6, r->score);
	sqlite3_bind_text(st, 7, r->rubric_version, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, r->rubric_text, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, r->actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, r->doc, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : vw_db_errno(db);
	sqlite3_finalize(st);
	if (rc)
		return rc;
	j->rows = malloc(sizeof(*j->rows));
	if (!j->rows)
		return -ENOMEM;
	j->rows[0] = j->in;
	j->rows[0].id = sqlite3_last_insert_rowid(db);
	j->nrows = 1;
	return 0;
}

static int list(sqlite3 *db, struct job *j)
{
	sqlite3_stmt *st = NULL;
	/* limit + 1 rows: the one past the page tells the caller there is a next page. */
	const char *sql = "SELECT id, org, scope_city, from_ms, to_ms, published_ms, score,"
	                  " rubric_version, rubric_text, actor, doc FROM published_scores"
	                  " WHERE org = ?1 AND (?2 IS NULL OR scope_city = ?2) AND id < ?3"
	                  " ORDER BY id DESC LIMIT ?4";
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, j->org, -1, SQLITE_STATIC);
	if (j->scope_city)
		sqlite3_bind_text(st, 2, j->scope_city, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_int64(st, 3, j->before_id > 0 ? j->before_id : INT64_MAX);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)j->limit + 1);
	int step, rc = 0;
	size_t cap = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (j->nrows == cap) {
			cap = cap ? cap * 2 : 8;
			struct published_row *n = realloc(j->rows, cap * sizeof(*n));
			if (!n) {
				rc = -ENOMEM;
				break;
			}
			j->rows = n;
		}
		struct published_row r = {
		    .id = sqlite3_column_int64(st, 0),
		    .org = keep(j, sqlite3_column_text(st, 1)),
		    .scope_city = keep(j, sqlite3_column_text(st, 2)),
		    .from_ms = sqlite3_column_int64(st, 3),
		    .to_ms = sqlite3_column_int64(st, 4),
		    .published_ms = sqlite3_column_int64(st, 5),
		    .score = sqlite3_column_int(st, 6),
		    .rubric_version = keep(j, sqlite3_column_text(st, 7)),
		    .rubric_text = keep(j, sqlite3_column_text(st, 8)),
		    .actor = keep(j, sqlite3_column_text(st, 9)),
		    .doc = keep(j, sqlite3_column_text(st, 10)),
		};
		if (!r.org || !r.scope_city || !r.rubric_version || !r.rubric_text || !r.actor ||
		    !r.doc) {
			rc = -ENOMEM;
			break;
		}
		j->rows[j->nrows++] = r;
	}
	if (!rc && step != SQLITE_DONE)
		rc = -EIO;
	sqlite3_finalize(st);
	return rc;
}

static void run_job(struct vw_worker *w, void *job, void *ud)
{
	(void)w;
	struct published *p = ud;
	struct job *j = job;
	j->status = j->op == JOB_ADD ? insert(p->db, j) : list(p->db, j);
	if (j->status)
		log_warn("event=published_failed op=%s error=\"%s\"",
		         j->op == JOB_ADD ? "add" : "list", sqlite3_errmsg(p->db));
}

static void job_done(void *job, int status, void *ud)
{
	(void)ud;
	struct job *j = job;
	if (status == 0)
		j->cb(j->ud, j->status, j->rows, j->status ? 0 : j->nrows);
	else
		j->cb(j->ud, -ESHUTDOWN, NULL, 0);
	job_free(j);
}

int published_open(uv_loop_t *loop, const char *path, struct published **out, char *err,
                   size_t errlen)
{
	*out = NULL;
	if (errlen)
		err[0] = '\0';
	struct published *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	struct vw_db_opts o = {.busy_ms = 5000, .synchronous = "FULL", .wal = 1};
	int rc = vw_db_open(path, &o, &p->db, err, errlen);
	if (!rc)
		rc = vw_db_migrate(p->db, "scores", migrations,
		                   sizeof(migrations) / sizeof(migrations[0]), err, errlen);
	if (!rc && loop)
		rc = vw_worker_create(loop, run_job, NULL, job_done, p, PUBLISHED_JOBS_MAX,
		                      &p->worker);
	if (rc) {
		if (!err[0])
			snprintf(err, errlen, "%s: cannot start its worker (%s)", path,
			         strerror(-rc));
		sqlite3_close(p->db);
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void published_close(struct published *p)
{
	if (!p)
		return;
	vw_worker_destroy(p->worker);
	sqlite3_close(p->db);
	free(p);
}

static int submit(struct published *p, struct job *j)
{
	int rc = p->worker ? vw_worker_submit(p->worker, j) : -ESHUTDOWN;
	if (rc)
		job_free(j);
	return rc;
}

int published_add(struct published *p, const struct published_row *row, published_cb cb, void *ud)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->op = JOB_ADD;
	j->cb = cb;
	j->ud = ud;
	j->in = *row;
	j->in.org = strdup(row->org);
	j->in.scope_city = strdup(row->scope_city);
	j->in.rubric_version = strdup(row->rubric_version);
	j->in.rubric_text = strdup(row->rubric_text);
	j->in.actor = strdup(row->actor);
	j->in.doc = strdup(row->doc);
	if (!j->in.org || !j->in.scope_city || !j->in.rubric_version || !j->in.rubric_text ||
	    !j->in.actor || !j->in.doc) {
		job_free(j);
		return -ENOMEM;
	}
	return submit(p, j);
}

int published_list(struct published *p, const struct published_query *q, published_cb cb, void *ud)
{
	if (q->limit < 1 || q->limit > PUBLISHED_PAGE_MAX)
		return -EINVAL;
	struct job *j = calloc(1, sizeof(*j));
	if (!j || !(j->org = strdup(q->org)) ||
	    (q->scope_city && !(j->scope_city = strdup(q->scope_city)))) {
		job_free(j);
		return -ENOMEM;
	}
	j->before_id = q->before_id;
	j->limit = q->limit;
	j->op = JOB_LIST;
	j->cb = cb;
	j->ud = ud;
	return submit(p, j);
}
