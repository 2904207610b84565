#include "store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "log.h"
#include "vtime.h"

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
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
_Static_assert(NMIGRATIONS == STORE_SCHEMA_VERSION, "a migration per schema version");

enum wstmt { W_AGENT, W_RESULT, W_OLD_STATUS, W_LATEST, W_HIGH, W_GAP, W_COUNT };
static const char *const wsql[W_COUNT] = {
    [W_AGENT] = "INSERT INTO agents(site, agent, org, city, last_report_ms)"
                " VALUES(?1, ?2, ?3, ?4, ?5)"
                " ON CONFLICT(site, agent) DO UPDATE SET org = excluded.org,"
                " city = excluded.city, last_report_ms = excluded.last_report_ms"
                " RETURNING id, high_seq",
    [W_RESULT] = "INSERT INTO results(agent_id, seq, ts_ms, mono_ms, kind, target, status,"
                 " session, codec, faults, metrics, received_ms)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [W_LATEST] = "INSERT INTO latest(agent_id, kind, target, result_id, status)"
                 " VALUES(?1, ?2, ?3, ?4, ?5)"
                 " ON CONFLICT(agent_id, kind, target) DO UPDATE SET"
                 " result_id = excluded.result_id, status = excluded.status",
    [W_OLD_STATUS] = "SELECT status FROM latest WHERE agent_id = ?1 AND kind = ?2 AND target = ?3",
    [W_HIGH] = "UPDATE agents SET high_seq = ?2, cam_ok = cam_ok + ?3,"
               " cam_degraded = cam_degraded + ?4, cam_down = cam_down + ?5 WHERE id = ?1",
    [W_GAP] = "INSERT INTO seq_gaps(agent_id, first_seq, last_seq, received_ms)"
              " VALUES(?1, ?2, ?3, ?4)",
};

enum rstmt { R_SITES, R_SITE, R_TARGETS, R_HIGH, R_COUNT_RESULTS, R_COUNT };
#define SITE_SUMMARY(where)                                                                        \
	"SELECT site, org, city, max(last_report_ms), sum(cam_ok), sum(cam_degraded),"             \
	" sum(cam_down) FROM agents " where " GROUP BY site ORDER BY site"
static const char *const rsql[R_COUNT] = {
    /* org and city come from the site's most recently reporting agent: with one max()
     * aggregate, SQLite takes bare columns from the row that holds it. */
    [R_SITES] = SITE_SUMMARY(""),
    [R_SITE] = SITE_SUMMARY("WHERE site = ?1"),
    [R_TARGETS] = "SELECT a.agent, l.kind, l.target, r.status, r.session, r.codec, r.faults,"
                  " r.metrics, r.ts_ms, r.seq"
                  " FROM agents a JOIN latest l ON l.agent_id = a.id"
                  " JOIN results r ON r.id = l.result_id"
                  " WHERE a.site = ?1 ORDER BY l.kind, l.target, a.agent",
    [R_HIGH] = "SELECT high_seq FROM agents WHERE site = ?1 AND agent = ?2",
    [R_COUNT_RESULTS] = "SELECT count(*) FROM results",
};

struct store {
	char *path;
	sqlite3 *wdb; /* writer thread only, once started */
	sqlite3 *rdb; /* loop thread */
	sqlite3_stmt *w[W_COUNT];
	sqlite3_stmt *r[R_COUNT];

	uv_loop_t *loop;
	uv_async_t async;
	uv_thread_t thread;
	int started;

	uv_mutex_t mu; /* guards everything below */
	uv_cond_t cond;
	struct store_batch *q_head, *q_tail; /* waiting for the writer */
	size_t queued, queue_max;
	struct store_batch *d_head, *d_tail; /* committed, waiting for the loop */
	int stopping;
	struct store_stats stats;
};

/* --- batches ---------------------------------------------------------------------------- */

struct store_batch *store_batch_create(void)
{
	struct store_batch *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	/* Offsets are 32-bit; offset 0 is the empty string. */
	vw_buf_init(&b->arena, (size_t)UINT32_MAX);
	if (vw_buf_append(&b->arena, "", 1)) {
		free(b);
		return NULL;
	}
	return b;
}

void store_batch_destroy(struct store_batch *b)
{
	if (!b)
		return;
	vw_buf_free(&b->arena);
	free(b->rows);
	free(b);
}

static uint32_t put_str(struct store_batch *b, const char *s)
{
	if (!s[0])
		return 0;
	uint32_t off = (uint32_t)b->arena.len;
	vw_buf_append(&b->arena, s, strlen(s) + 1);
	return off;
}

int store_batch_add(struct store_batch *b, const struct vw_result *r)
{
	if (b->nrows == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct store_row *rows = realloc(b->rows, cap * sizeof(*rows));
		if (!rows)
			return -ENOMEM;
		b->rows = rows;
		b->cap = cap;
	}
	struct store_row *row = &b->rows[b->nrows];
	row->seq = r->seq;
	row->ts_ms = r->ts_ms;
	row->mono_ms = r->mono_ms;
	row->kind = (uint8_t)r->kind;
	row->status = (uint8_t)r->status;
	row->target = put_str(b, r->target);
	row->session = put_str(b, r->session);
	row->codec = put_str(b, r->codec);
	row->faults = (uint32_t)b->arena.len;
	vw_result_encode_faults(r, &b->arena);
	vw_buf_append(&b->arena, "", 1);
	row->metrics = (uint32_t)b->arena.len;
	vw_result_encode_metrics(r, &b->arena);
	vw_buf_append(&b->arena, "", 1);
	if (b->arena.err)
		return b->arena.err;
	b->nrows++;
	return 0;
}

static int row_cmp(const void *a, const void *b)
{
	int64_t x = ((const struct store_row *)a)->seq, y = ((const struct store_row *)b)->seq;
	return (x > y) - (x < y);
}

void store_batch_sort(struct store_batch *b)
{
	if (b->nrows > 1)
		qsort(b->rows, b->nrows, sizeof(*b->rows), row_cmp);
}

const char *store_batch_str(const struct store_batch *b, uint32_t off)
{
	return b->arena.data + off;
}

/* --- open ------------------------------------------------------------------------------- */

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	if (err)
		snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return -EIO;
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -EIO;
	if (!rc)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

static int migrate(sqlite3 *db, char *err, size_t errlen)
{
	int64_t v;
	if (pragma_int(db, "PRAGMA user_version", &v)) {
		snprintf(err, errlen, "cannot read schema version: %s", sqlite3_errmsg(db));
		return -EIO;
	}
	if (v > NMIGRATIONS) {
		snprintf(err, errlen,
		         "database schema version %lld is newer than this server's (%d); "
		         "run a newer venuewatch-server",
		         (long long)v, NMIGRATIONS);
		return -EPROTO;
	}
	for (int i = (int)v; i < NMIGRATIONS; i++) {
		char sql[64], why[256];
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", i + 1);
		if (exec(db, "BEGIN IMMEDIATE", why, sizeof(why)) ||
		    exec(db, migrations[i], why, sizeof(why)) || exec(db, sql, why, sizeof(why)) ||
		    exec(db, "COMMIT", why, sizeof(why))) {
			exec(db, "ROLLBACK", NULL, 0);
			snprintf(err, errlen, "migration to schema version %d failed: %s", i + 1,
			         why);
			return -EIO;
		}
		log_info("event=store_migrated version=%d", i + 1);
	}
	return 0;
}

static void free_store(struct store *s)
{
	for (int i = 0; i < W_COUNT; i++)
		sqlite3_finalize(s->w[i]);
	for (int i = 0; i < R_COUNT; i++)
		sqlite3_finalize(s->r[i]);
	/* Reader first: the last connection to close checkpoints and removes the WAL, and a
	 * read-only one cannot. */
	sqlite3_close(s->rdb);
	if (s->wdb && sqlite3_close(s->wdb) != SQLITE_OK)
		log_error("event=store_close_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
	uv_mutex_destroy(&s->mu);
	uv_cond_destroy(&s->cond);
	free(s->path);
	free(s);
}

int store_open(const char *path, struct store **out, char *err, size_t errlen)
{
	struct store *s = calloc(1, sizeof(*s));
	int rc = -ENOMEM;
	if (!s || !(s->path = strdup(path))) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (uv_mutex_init(&s->mu)) {
		free(s->path);
		free(s);
		snprintf(err, errlen, "mutex init failed");
		return -ENOMEM;
	}
	uv_cond_init(&s->cond);

	/* NOMUTEX: each connection is used by one thread at a time (the write connection is
	 * handed to the writer thread once, at store_start). */
	/* 0600 before SQLite creates it 0644: venues' evidence is the collector's alone. */
	if ((rc = vw_file_precreate(path, 0600, err, errlen)) != 0)
		goto fail;
	if (sqlite3_open_v2(path, &s->wdb,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		         s->wdb ? sqlite3_errmsg(s->wdb) : "out of memory");
		rc = -EIO;
		goto fail;
	}
	sqlite3_busy_timeout(s->wdb, 5000);
	char why[256];
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->wdb, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		sqlite3_finalize(st);
		snprintf(err, errlen, "cannot switch %s to WAL: %s", path, sqlite3_errmsg(s->wdb));
		rc = -EIO;
		goto fail;
	}
	sqlite3_finalize(st);
	/* synchronous=FULL in WAL: the WAL is fsync'd at every (group) commit, so what we
	 * acknowledge survives a power cut, not only a crash of this process. NORMAL would
	 * fsync only at checkpoints and could take back acknowledged batches whose rows the
	 * agent has already released: a silent loss. Group commit pays the fsync once per
	 * group, which keeps FULL cheap; docs/DELIVERY.md has the measurement.
	 * journal_size_limit bounds the WAL file that a long read would otherwise let grow. */
	if (exec(s->wdb, "PRAGMA synchronous = FULL", why, sizeof(why)) ||
	    exec(s->wdb, "PRAGMA journal_size_limit = 67108864", why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", path, why);
		rc = -EIO;
		goto fail;
	}
	if ((rc = migrate(s->wdb, err, errlen)) != 0)
		goto fail;
	for (int i = 0; i < W_COUNT; i++) {
		if (sqlite3_prepare_v3(s->wdb, wsql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->w[i],
		                       NULL) != SQLITE_OK) {
			snprintf(err, errlen, "prepare: %s", sqlite3_errmsg(s->wdb));
			rc = -EIO;
			goto fail;
		}
	}
	if (sqlite3_open_v2(path, &s->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s read-only: %s", path,
		         s->rdb ? sqlite3_errmsg(s->rdb) : "out of memory");
		rc = -EIO;
		goto fail;
	}
	/* Readers wait only on WAL recovery or a truncating checkpoint; the loop must not
	 * wait long for either. */
	sqlite3_busy_timeout(s->rdb, 250);
	for (int i = 0; i < R_COUNT; i++) {
		if (sqlite3_prepare_v3(s->rdb, rsql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->r[i],
		                       NULL) != SQLITE_OK) {
			snprintf(err, errlen, "prepare: %s", sqlite3_errmsg(s->rdb));
			rc = -EIO;
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	free_store(s);
	return rc;
}

int store_set_synchronous(struct store *s, int full)
{
	if (s->started)
		return -EBUSY;
	return exec(s->wdb, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
	            NULL, 0);
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

static int step_done(struct store *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return 0;
	log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
	return sqlite_errno(rc);
}

static int record_gap(struct store *s, struct store_batch *b, int64_t agent_id, int64_t first,
                      int64_t last)
{
	log_warn("event=ingest_seq_gap site=%s agent=%s first_seq=%lld last_seq=%lld count=%lld "
	         "hint=\"the agent no longer held these; look for its buffer_overflow result\"",
	         b->site, b->agent, (long long)first, (long long)last,
	         (long long)(last - first + 1));
	sqlite3_stmt *st = s->w[W_GAP];
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_int64(st, 2, first);
	sqlite3_bind_int64(st, 3, last);
	sqlite3_bind_int64(st, 4, b->received_ms);
	int rc = step_done(s, st);
	if (!rc)
		b->gap_seqs += (size_t)(last - first + 1);
	return rc;
}

static int apply_batch(struct store *s, struct store_batch *b)
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
	int64_t agent_id = sqlite3_column_int64(st, 0);
	int64_t high = sqlite3_column_int64(st, 1);
	b->gap_seqs = 0;
	if ((rc = step_done(s, st)) != 0)
		return rc;

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
		    (rc = record_gap(s, b, agent_id, last + 1, row->seq - 1)) != 0)
			return rc;
		const char *kind = vw_kind_name((enum vw_kind)row->kind);
		const char *status = vw_status_name((enum vw_status)row->status);
		const char *target = store_batch_str(b, row->target);
		st = s->w[W_RESULT];
		sqlite3_bind_int64(st, 1, agent_id);
		sqlite3_bind_int64(st, 2, row->seq);
		sqlite3_bind_int64(st, 3, row->ts_ms);
		sqlite3_bind_int64(st, 4, row->mono_ms);
		sqlite3_bind_text(st, 5, kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, target, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, status, -1, SQLITE_STATIC);
		if (row->session)
			sqlite3_bind_text(st, 8, store_batch_str(b, row->session), -1,
			                  SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 8);
		if (row->codec)
			sqlite3_bind_text(st, 9, store_batch_str(b, row->codec), -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 9);
		sqlite3_bind_text(st, 10, store_batch_str(b, row->faults), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 11, store_batch_str(b, row->metrics), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 12, b->received_ms);
		if ((rc = step_done(s, st)) != 0)
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
	}
	b->acked_seq = last;
	b->stored = stored;
	return 0;
}

/* One transaction for everything that was waiting: the fsync/WAL cost is paid once per
 * group, not per request. A savepoint per batch keeps one bad batch from sinking the
 * others. */
static void commit_group(struct store *s, struct store_batch *list, uint64_t *rows,
                         uint64_t *skipped, uint64_t *gaps)
{
	int64_t t0 = vw_mono_ms();
	size_t nb = 0;
	int rc = exec(s->wdb, "BEGIN IMMEDIATE", NULL, 0);
	if (rc)
		log_error("event=store_begin_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
	for (struct store_batch *b = list; b; b = b->next) {
		nb++;
		b->status = rc;
		if (rc)
			continue;
		if (exec(s->wdb, "SAVEPOINT batch", NULL, 0)) {
			b->status = -EIO;
			continue;
		}
		b->status = apply_batch(s, b);
		if (b->status)
			exec(s->wdb, "ROLLBACK TO batch", NULL, 0);
		exec(s->wdb, "RELEASE batch", NULL, 0);
	}
	if (!rc && exec(s->wdb, "COMMIT", NULL, 0)) {
		log_error("event=store_commit_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		exec(s->wdb, "ROLLBACK", NULL, 0);
		rc = -EIO;
	}
	if (rc)
		for (struct store_batch *b = list; b; b = b->next)
			b->status = rc;
	*rows = *skipped = *gaps = 0;
	for (struct store_batch *b = list; b; b = b->next) {
		if (b->status)
			continue;
		*rows += b->stored;
		*skipped += b->nrows - b->stored;
		*gaps += b->gap_seqs;
	}
	log_debug("event=store_commit batches=%zu rows=%llu skipped=%llu ms=%lld status=%d", nb,
	          (unsigned long long)*rows, (unsigned long long)*skipped,
	          (long long)(vw_mono_ms() - t0), rc);
}

static void writer_main(void *arg)
{
	struct store *s = arg;
	uv_mutex_lock(&s->mu);
	for (;;) {
		while (!s->q_head && !s->stopping)
			uv_cond_wait(&s->cond, &s->mu);
		if (!s->q_head)
			break; /* stopping, and nothing left to commit */
		struct store_batch *list = s->q_head, *tail = s->q_tail;
		s->q_head = s->q_tail = NULL;
		s->queued = 0;
		uv_mutex_unlock(&s->mu);

		uint64_t rows, skipped, gaps;
		size_t nb = 0;
		commit_group(s, list, &rows, &skipped, &gaps);
		for (struct store_batch *b = list; b; b = b->next)
			nb++;

		uv_mutex_lock(&s->mu);
		if (s->d_tail)
			s->d_tail->next = list;
		else
			s->d_head = list;
		s->d_tail = tail;
		s->stats.commits++;
		s->stats.batches += nb;
		s->stats.rows_stored += rows;
		s->stats.rows_skipped += skipped;
		s->stats.gap_seqs += gaps;
		uv_mutex_unlock(&s->mu);
		uv_async_send(&s->async);
		uv_mutex_lock(&s->mu);
	}
	uv_mutex_unlock(&s->mu);
}

/* Loop thread: hand committed batches back, in commit order. */
static void deliver(struct store *s)
{
	uv_mutex_lock(&s->mu);
	struct store_batch *b = s->d_head;
	s->d_head = s->d_tail = NULL;
	uv_mutex_unlock(&s->mu);
	while (b) {
		struct store_batch *next = b->next;
		b->next = NULL;
		b->done(b); /* may free b */
		b = next;
	}
}

static void on_async(uv_async_t *a)
{
	deliver(a->data);
}

int store_start(struct store *s, uv_loop_t *loop, size_t queue_max)
{
	s->loop = loop;
	s->queue_max = queue_max;
	int rc = uv_async_init(loop, &s->async, on_async);
	if (rc)
		return rc;
	s->async.data = s;
	rc = uv_thread_create(&s->thread, writer_main, s);
	if (rc) {
		uv_close((uv_handle_t *)&s->async, NULL);
		return rc;
	}
	s->started = 1;
	return 0;
}

int store_submit(struct store *s, struct store_batch *b)
{
	int rc = 0;
	b->next = NULL;
	b->status = 0;
	uv_mutex_lock(&s->mu);
	if (!s->started || s->stopping)
		rc = -ESHUTDOWN;
	else if (s->queued >= s->queue_max)
		rc = -EAGAIN;
	if (!rc) {
		if (s->q_tail)
			s->q_tail->next = b;
		else
			s->q_head = b;
		s->q_tail = b;
		s->queued++;
		uv_cond_signal(&s->cond);
	}
	uv_mutex_unlock(&s->mu);
	return rc;
}

static void on_async_closed(uv_handle_t *h)
{
	free_store(h->data);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (!s->started) {
		free_store(s);
		return;
	}
	uv_mutex_lock(&s->mu);
	s->stopping = 1;
	uv_cond_signal(&s->cond);
	uv_mutex_unlock(&s->mu);
	uv_thread_join(&s->thread); /* the writer commits what is queued before it exits */
	deliver(s);
	s->started = 0;
	uv_close((uv_handle_t *)&s->async, on_async_closed);
}

void store_get_stats(struct store *s, struct store_stats *out)
{
	uv_mutex_lock(&s->mu);
	*out = s->stats;
	uv_mutex_unlock(&s->mu);
}

/* --- reads ------------------------------------------------------------------------------ */

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

static int read_failed(struct store *s, sqlite3_stmt *st)
{
	log_error("event=store_read_failed error=\"%s\"", sqlite3_errmsg(s->rdb));
	sqlite3_reset(st);
	return -EIO;
}

int store_list_sites(struct store *s, int (*fn)(void *ud, const struct store_site *site), void *ud)
{
	sqlite3_stmt *st = s->r[R_SITES];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_site site;
		read_site_row(st, &site);
		if (fn(ud, &site))
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return read_failed(s, st);
	sqlite3_reset(st);
	return 0;
}

int store_get_site(struct store *s, const char *site,
                   int (*site_fn)(void *ud, const struct store_site *site),
                   int (*target_fn)(void *ud, const struct store_target *t), void *ud)
{
	/* One read transaction: the summary and the targets come from the same snapshot. */
	if (exec(s->rdb, "BEGIN", NULL, 0))
		return -EIO;
	int rc = 0;
	sqlite3_stmt *st = s->r[R_SITE];
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	int step = sqlite3_step(st);
	if (step == SQLITE_DONE) {
		sqlite3_reset(st);
		rc = -ENOENT;
		goto out;
	}
	if (step != SQLITE_ROW) {
		rc = read_failed(s, st);
		goto out;
	}
	struct store_site summary;
	read_site_row(st, &summary);
	int stop = site_fn(ud, &summary);
	sqlite3_reset(st);
	if (stop)
		goto out;

	st = s->r[R_TARGETS];
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
		if (target_fn(ud, &t))
			break;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = read_failed(s, st);
	sqlite3_reset(st);
out:
	exec(s->rdb, "COMMIT", NULL, 0);
	return rc;
}

int store_high_seq(struct store *s, const char *site, const char *agent, int64_t *out)
{
	sqlite3_stmt *st = s->r[R_HIGH];
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, agent, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return read_failed(s, st);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return 0;
}

int store_count_results(struct store *s, int64_t *out)
{
	sqlite3_stmt *st = s->r[R_COUNT_RESULTS];
	if (sqlite3_step(st) != SQLITE_ROW)
		return read_failed(s, st);
	*out = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}
