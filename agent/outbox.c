#include "outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "vtime.h"

/* 2 (issue 16): outbox.thumb, a stream result's JPEG beside its body. */
#define OUTBOX_SCHEMA_VERSION 2
/* Space given back when the disk is full, so the delete that makes room can itself be
 * written (SQLite needs WAL space to delete). 4 MiB holds thousands of pages. */
#define OUTBOX_BALLAST_BYTES (4 << 20)

/* What a row costs against the bound: its body and its thumbnail (issue 16), if any. */
#define ROW_BYTES "length(body) + coalesce(length(thumb), 0)"

enum ostmt { O_INSERT, O_PEEK, O_ACK, O_SET_META, O_OLDEST, O_LATEST, O_COUNT };
static const char *const stmt_sql[O_COUNT] = {
    [O_INSERT] = "INSERT INTO outbox(seq, ts_ms, body, thumb) VALUES(?,?,?,?)",
    [O_PEEK] = "SELECT seq, body, thumb FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
    [O_ACK] = "DELETE FROM outbox WHERE seq <= ?",
    [O_SET_META] = "UPDATE meta SET value = ? WHERE key = ?",
    [O_OLDEST] = "SELECT seq, " ROW_BYTES " FROM outbox WHERE seq > ? ORDER BY seq",
    [O_LATEST] = "INSERT OR REPLACE INTO latest VALUES(?,?,?,?)",
};

struct outbox {
	sqlite3 *db;
	sqlite3_stmt *st[O_COUNT];
	int64_t next_seq; /* persisted in meta in every append transaction */
	int64_t bytes;    /* sum of stored body lengths */
	/* rows stored, kept like bytes: count(*) walks the whole table (170 ms at 670,000
	 * rows, a full 256 MiB outbox), too slow for a metrics write every second */
	int64_t rows;
	int64_t max_bytes;
	int64_t in_flight; /* highest seq of the batch being uploaded */
	int64_t dropped_total;
	int64_t unstored;       /* results refused by a full disk, not yet reported */
	int64_t unstored_total; /* the same since open, never reset: the metrics' counter */
	int64_t acked_total;    /* rows released by acks since open */
	char ballast[4096];
	char dir[4096]; /* the state dir, for free-space checks */
	int have_ballast;
	char epoch[33]; /* "" = the legacy epoch (an outbox from before epochs) */
	struct vw_buf enc;
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS outbox(seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL,"
    " body TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS latest(kind TEXT NOT NULL, target TEXT NOT NULL,"
    " seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY(kind, target));"
    "CREATE TABLE IF NOT EXISTS status(key TEXT PRIMARY KEY, value TEXT NOT NULL,"
    " ts_ms INTEGER NOT NULL);"
    /* One row: this outbox's epoch (see outbox_epoch). */
    "CREATE TABLE IF NOT EXISTS epoch(id TEXT NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES('next_seq', 1);"
    "INSERT OR IGNORE INTO meta VALUES('dropped_total', 0);";

static int sql_err(struct outbox *ob, const char *what)
{
	log_error("event=outbox_error op=%s err=\"%s\"", what, sqlite3_errmsg(ob->db));
	int rc = vw_db_errno(ob->db);
	return rc == -ENOSPC || rc == -ENOMEM ? rc : -EIO;
}

static int exec(struct outbox *ob, const char *sql)
{
	char msg[256];
	int rc = vw_db_exec(ob->db, sql, msg, sizeof(msg));
	if (rc) {
		log_error("event=outbox_error sql=\"%.40s\" err=\"%s\"", sql, msg);
		return -EIO;
	}
	return 0;
}

/* Every query passed here returns one row (count, coalesce, meta rows made by the schema). */
static int64_t query_int(struct outbox *ob, const char *sql)
{
	int64_t v;
	return vw_db_pragma_int(ob->db, sql, &v) ? -1 : v;
}

/* 128 random bits as 32 lower-case hex digits (the collector checks that form). */
static int epoch_draw(char out[33], char *why, size_t whylen)
{
	unsigned char r[16];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		snprintf(why, whylen, "cannot draw the outbox epoch: %s", strerror(errno));
		return -EIO;
	}
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	return 0;
}

/* The epoch is decided once, inside the transaction that makes (or first upgrades) the
 * outbox: a new outbox draws 128 random bits, so a reinstalled machine starting again at
 * seq 1 gets a high-water mark of its own at the collector; an outbox from before epochs
 * keeps the legacy epoch "", because its seqs continue the collector's legacy mark (a new
 * epoch there would record seqs 1..next_seq-1 as a gap and store again a batch that was
 * in flight at the upgrade). */
static int epoch_init(struct outbox *ob, int fresh, char *why, size_t whylen)
{
	sqlite3_stmt *st = NULL;
	int rc = -EIO;
	if (sqlite3_prepare_v2(ob->db, "SELECT id FROM epoch", -1, &st, NULL) != SQLITE_OK)
		goto out;
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		const unsigned char *id = sqlite3_column_text(st, 0);
		snprintf(ob->epoch, sizeof(ob->epoch), "%s", id ? (const char *)id : "");
		rc = 0;
		goto out;
	}
	if (step != SQLITE_DONE)
		goto out;
	sqlite3_finalize(st);
	st = NULL;
	ob->epoch[0] = '\0';
	if (fresh && epoch_draw(ob->epoch, why, whylen))
		return -EIO;
	if (sqlite3_prepare_v2(ob->db, "INSERT INTO epoch(id) VALUES(?)", -1, &st, NULL) !=
	    SQLITE_OK)
		goto out;
	sqlite3_bind_text(st, 1, ob->epoch, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
out:
	if (rc && !why[0])
		snprintf(why, whylen, "%s", sqlite3_errmsg(ob->db));
	sqlite3_finalize(st);
	return rc;
}

/* Best effort: with no ballast a full disk is still handled, only with less room.
 * Only when the disk has room for the ballast twice over: right after a disk-full, taking
 * back the space just released would make every following append hit the wall again. */
static void ballast_make(struct outbox *ob)
{
	if (ob->have_ballast)
		return;
	struct stat st;
	if (stat(ob->ballast, &st) == 0 && st.st_blocks * 512 >= OUTBOX_BALLAST_BYTES) {
		ob->have_ballast = 1; /* an earlier run's, still whole */
		return;
	}
	struct statvfs vfs;
	if (statvfs(ob->dir, &vfs) != 0 ||
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < 2ull * OUTBOX_BALLAST_BYTES)
		return;
	int fd = open(ob->ballast, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (posix_fallocate(fd, 0, OUTBOX_BALLAST_BYTES) == 0)
		ob->have_ballast = 1;
	close(fd);
	if (!ob->have_ballast)
		unlink(ob->ballast); /* a partial ballast would only hide how full the disk is */
}

static void ballast_release(struct outbox *ob)
{
	if (!ob->have_ballast)
		return;
	unlink(ob->ballast);
	ob->have_ballast = 0;
	log_warn("event=disk_full action=ballast_released path=%s", ob->ballast);
}

int outbox_open(const char *path, long long max_bytes, struct outbox **out, char *err,
                size_t errlen)
{
	struct outbox *ob = calloc(1, sizeof(*ob));
	if (!ob)
		return -ENOMEM;
	vw_buf_init(&ob->enc, 1 << 20);
	ob->max_bytes = max_bytes;
	/* WAL + FULL: the WAL is fsync'd at every commit, so a committed result survives a
	 * power cut too. NORMAL would survive kill -9 but could roll the last commits back on
	 * power loss, and with them meta.next_seq: the agent would then hand out seqs the
	 * collector already holds, and the collector would skip the new results as resends.
	 * One fsync per append (a scheduler batch, a few a second) is cheap next to that. */
	static const struct vw_db_opts opts = {.busy_ms = 5000, .synchronous = "FULL", .wal = 1};
	char why[256] = "";
	if (vw_db_open(path, &opts, &ob->db, err, errlen))
		goto fail;
	/* The schema is made idempotently at every open, not by numbered migrations: tables
	 * were added (latest, status) while user_version stayed 1, and an outbox of that age
	 * gets them here. A later change that is not a CREATE IF NOT EXISTS goes through
	 * vw_db_migrate with version 2. */
	int64_t ver = 0, had_meta = 0;
	if (vw_db_exec(ob->db, "BEGIN IMMEDIATE", why, sizeof(why)) ||
	    vw_db_pragma_int(ob->db, "SELECT count(*) FROM sqlite_master WHERE name = 'meta'",
	                     &had_meta) ||
	    vw_db_exec(ob->db, schema_sql, why, sizeof(why)) ||
	    epoch_init(ob, !had_meta, why, sizeof(why)) || vw_db_user_version(ob->db, &ver)) {
		snprintf(err, errlen, "%s: %s", path, why[0] ? why : sqlite3_errmsg(ob->db));
		goto fail;
	}
	if (ver > OUTBOX_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %lld is newer than this agent (%d)", path,
		         (long long)ver, OUTBOX_SCHEMA_VERSION);
		goto fail;
	}
	/* 2: a stream result's thumbnail travels in its own row, so it is committed, sent and
	 * released exactly with its result. ADD COLUMN with no default rewrites no row; in the
	 * same transaction as the version, so it runs once. */
	if (ver < 2 &&
	    vw_db_exec(ob->db, "ALTER TABLE outbox ADD COLUMN thumb BLOB", why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	if (vw_db_set_user_version(ob->db, OUTBOX_SCHEMA_VERSION, why, sizeof(why)) ||
	    vw_db_exec(ob->db, "COMMIT", why, sizeof(why)) ||
	    vw_db_prepare_all(ob->db, stmt_sql, ob->st, O_COUNT, 0, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	ob->next_seq = query_int(ob, "SELECT value FROM meta WHERE key='next_seq'");
	ob->dropped_total = query_int(ob, "SELECT value FROM meta WHERE key='dropped_total'");
	/* A next_seq behind the stored rows would reuse a seq: never trust it blindly. */
	int64_t max_seq = query_int(ob, "SELECT coalesce(max(seq), 0) FROM outbox");
	if (ob->next_seq <= max_seq)
		ob->next_seq = max_seq + 1;
	ob->bytes = query_int(ob, "SELECT coalesce(sum(" ROW_BYTES "), 0) FROM outbox");
	ob->rows = query_int(ob, "SELECT count(*) FROM outbox");
	snprintf(ob->ballast, sizeof(ob->ballast), "%s.ballast", path);
	snprintf(ob->dir, sizeof(ob->dir), "%s", path);
	char *slash = strrchr(ob->dir, '/');
	if (slash)
		slash[slash == ob->dir ? 1 : 0] = '\0';
	else
		snprintf(ob->dir, sizeof(ob->dir), ".");
	ballast_make(ob);
	*out = ob;
	return 0;
fail:
	outbox_close(&ob);
	return -EIO;
}

void outbox_close(struct outbox **obp)
{
	struct outbox *ob = *obp;
	if (!ob)
		return;
	vw_db_finalize_all(ob->st, O_COUNT);
	sqlite3_close(ob->db);
	vw_buf_free(&ob->enc);
	free(ob);
	*obp = NULL;
}

static int set_meta(struct outbox *ob, const char *key, int64_t v)
{
	sqlite3_bind_int64(ob->st[O_SET_META], 1, v);
	sqlite3_bind_text(ob->st[O_SET_META], 2, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(ob->st[O_SET_META]);
	sqlite3_reset(ob->st[O_SET_META]);
	return rc == SQLITE_DONE ? 0 : sql_err(ob, "set_meta");
}

static int insert_one(struct outbox *ob, struct vw_result *r)
{
	r->seq = ob->next_seq;
	vw_buf_reset(&ob->enc);
	if (vw_result_encode(r, &ob->enc))
		return -E2BIG;
	sqlite3_bind_int64(ob->st[O_INSERT], 1, r->seq);
	sqlite3_bind_int64(ob->st[O_INSERT], 2, r->ts_ms);
	sqlite3_bind_text(ob->st[O_INSERT], 3, ob->enc.data, (int)ob->enc.len, SQLITE_STATIC);
	if (r->thumb && r->thumb_len)
		sqlite3_bind_blob(ob->st[O_INSERT], 4, r->thumb, (int)r->thumb_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(ob->st[O_INSERT], 4);
	int rc = sqlite3_step(ob->st[O_INSERT]);
	sqlite3_reset(ob->st[O_INSERT]);
	if (rc != SQLITE_DONE)
		return sql_err(ob, "insert");
	sqlite3_bind_text(ob->st[O_LATEST], 1, vw_kind_name(r->kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(ob->st[O_LATEST], 2, r->target, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ob->st[O_LATEST], 3, r->seq);
	sqlite3_bind_text(ob->st[O_LATEST], 4, ob->enc.data, (int)ob->enc.len, SQLITE_STATIC);
	rc = sqlite3_step(ob->st[O_LATEST]);
	sqlite3_reset(ob->st[O_LATEST]);
	if (rc != SQLITE_DONE)
		return sql_err(ob, "latest");
	ob->next_seq++;
	ob->bytes += (int64_t)ob->enc.len + (r->thumb ? (int64_t)r->thumb_len : 0);
	ob->rows++;
	return 0;
}

/* A buffer_overflow row about to be dropped carries the only record of an earlier drop:
 * fold it into the new report (its range start, its counts) so no drop goes unreported.
 * The new range may then include rows delivered before the drop (they were in flight); the
 * report's meaning stays exact: seqs in [first, last] the collector lacks were dropped. */
static int carry_reports(struct outbox *ob, int64_t from, int64_t to, int64_t *first,
                         int64_t *carried, int64_t *unstored)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(ob->db,
	                       "SELECT json_extract(body, '$.metrics.dropped_first_seq'),"
	                       " json_extract(body, '$.metrics.dropped_count'),"
	                       " json_extract(body, '$.metrics.unstored_count')"
	                       " FROM outbox WHERE seq BETWEEN ?1 AND ?2"
	                       " AND json_extract(body, '$.kind') = 'buffer'",
	                       -1, &st, NULL) != SQLITE_OK)
		return sql_err(ob, "carry");
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, to);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
			int64_t f = sqlite3_column_int64(st, 0);
			if (f > 0 && f < *first)
				*first = f;
		}
		*carried += sqlite3_column_int64(st, 1);
		*unstored += sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sql_err(ob, "carry");
}

/* Drops the oldest rows above in_flight until `need` more bytes fit; fills the range. */
static int drop_oldest(struct outbox *ob, int64_t target, int64_t *count, int64_t *first,
                       int64_t *last, int64_t *carried, int64_t *unstored)
{
	*count = 0;
	*first = *last = 0;
	int64_t freed = 0;
	sqlite3_bind_int64(ob->st[O_OLDEST], 1, ob->in_flight);
	while (freed < target && sqlite3_step(ob->st[O_OLDEST]) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(ob->st[O_OLDEST], 0);
		freed += sqlite3_column_int64(ob->st[O_OLDEST], 1);
		if (!*first)
			*first = seq;
		*last = seq;
		(*count)++;
	}
	sqlite3_reset(ob->st[O_OLDEST]);
	if (!*count)
		return 0;
	int rc = carry_reports(ob, *first, *last, first, carried, unstored);
	if (rc)
		return rc;
	sqlite3_stmt *del;
	if (sqlite3_prepare_v2(ob->db, "DELETE FROM outbox WHERE seq BETWEEN ? AND ?", -1, &del,
	                       NULL) != SQLITE_OK)
		return sql_err(ob, "drop");
	sqlite3_bind_int64(del, 1, *first);
	sqlite3_bind_int64(del, 2, *last);
	rc = sqlite3_step(del);
	int64_t gone = sqlite3_changes(ob->db);
	sqlite3_finalize(del);
	if (rc != SQLITE_DONE)
		return sql_err(ob, "drop");
	ob->bytes -= freed;
	ob->rows -= gone;
	return 0;
}

/* One transaction: make room if needed, insert, report drops. disk_full: free a quarter
 * of what is stored (or what the bound needs, if more) before inserting. */
static int append_tx(struct outbox *ob, struct vw_result *results, size_t n, int disk_full)
{
	int rc;
	int64_t saved_next = ob->next_seq, saved_bytes = ob->bytes, saved_rows = ob->rows;
	int64_t dropped = 0, first = 0, last = 0, report_seq = 0, carried = 0, carried_unstored = 0;
	if ((rc = exec(ob, "BEGIN IMMEDIATE")))
		return sqlite3_errcode(ob->db) == SQLITE_FULL ? -ENOSPC : rc;
	/* ~400 bytes a row: a cheap upper estimate decides whether to make room first;
	 * dropping down to 90% keeps a burst from dropping on every append. */
	int64_t need = (int64_t)(n + 1) * 512, target = 0;
	for (size_t i = 0; i < n; i++)
		need += results[i].thumb ? (int64_t)results[i].thumb_len : 0;
	if (ob->bytes + need > ob->max_bytes)
		target = ob->bytes + need - ob->max_bytes * 9 / 10;
	if (disk_full && target < ob->bytes / 4)
		target = ob->bytes / 4 > need ? ob->bytes / 4 : need;
	if (target > 0 &&
	    (rc = drop_oldest(ob, target, &dropped, &first, &last, &carried, &carried_unstored)))
		goto fail;
	int64_t unstored = ob->unstored + carried_unstored;
	for (size_t i = 0; i < n; i++)
		if ((rc = insert_one(ob, &results[i])))
			goto fail;
	if (dropped || unstored) {
		struct vw_result ov;
		vw_result_init(&ov, VW_KIND_BUFFER, "outbox");
		ov.status = VW_STATUS_DEGRADED;
		vw_result_add_fault(&ov, VW_FAULT_BUFFER_OVERFLOW);
		vw_result_set_metric(&ov, VW_M_DROPPED_COUNT, (double)(dropped + carried));
		if (dropped) {
			vw_result_set_metric(&ov, VW_M_DROPPED_FIRST_SEQ, (double)first);
			vw_result_set_metric(&ov, VW_M_DROPPED_LAST_SEQ, (double)last);
		}
		vw_result_set_metric(&ov, VW_M_DROPPED_TOTAL,
		                     (double)(ob->dropped_total + dropped));
		if (unstored)
			vw_result_set_metric(&ov, VW_M_UNSTORED_COUNT, (double)unstored);
		if ((rc = insert_one(ob, &ov)))
			goto fail;
		report_seq = ov.seq;
		if ((rc = set_meta(ob, "dropped_total", ob->dropped_total + dropped)))
			goto fail;
	}
	if ((rc = set_meta(ob, "next_seq", ob->next_seq)) || (rc = exec(ob, "COMMIT")))
		goto fail;
	/* The agent's own ledger of what it produced: written only after the commit, so every
	 * seq range here is durable (the fault suite compares it with the collector's rows). */
	log_debug("event=outbox_committed first_seq=%lld last_seq=%lld count=%lld",
	          (long long)saved_next, (long long)ob->next_seq - 1,
	          (long long)(ob->next_seq - saved_next));
	if (dropped || unstored) {
		ob->dropped_total += dropped;
		log_warn("event=buffer_overflow dropped=%lld first_seq=%lld last_seq=%lld "
		         "carried=%lld unstored=%lld report_seq=%lld cause=%s",
		         (long long)dropped, (long long)first, (long long)last, (long long)carried,
		         (long long)unstored, (long long)report_seq,
		         disk_full || !dropped ? "disk_full" : "bound");
		ob->unstored = 0;
	}
	return 0;
fail:
	if (sqlite3_errcode(ob->db) == SQLITE_FULL)
		rc = -ENOSPC;
	exec(ob, "ROLLBACK");
	ob->next_seq = saved_next;
	ob->bytes = saved_bytes;
	ob->rows = saved_rows;
	for (size_t i = 0; i < n; i++)
		results[i].seq = 0;
	return rc;
}

int outbox_append(struct outbox *ob, struct vw_result *results, size_t n)
{
	int rc = append_tx(ob, results, n, 0);
	if (rc == -ENOSPC) {
		ballast_release(ob);
		rc = append_tx(ob, results, n, 1);
		/* Give the WAL's pages back to the file system now, not at some later checkpoint.
		 */
		sqlite3_wal_checkpoint_v2(ob->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	}
	if (rc) {
		ob->unstored += (int64_t)n;
		ob->unstored_total += (int64_t)n;
		log_error("event=results_not_stored count=%zu unstored_total=%lld err=%s", n,
		          (long long)ob->unstored, strerror(-rc));
		return rc;
	}
	if (!ob->have_ballast)
		ballast_make(ob);
	return 0;
}

int outbox_set_status(struct outbox *ob, const char *key, const char *value)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(ob->db, "INSERT OR REPLACE INTO status VALUES(?,?,?)", -1, &st,
	                       NULL) != SQLITE_OK)
		return sql_err(ob, "status");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, vw_now_ms());
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sql_err(ob, "status");
}

/* The stored body (a JSON object, vw_result_encode's) with "thumbnail": base64 of the JPEG
 * (RFC 4648, no line breaks: OpenSSL's EVP_EncodeBlock) as its last field. */
static void append_with_thumb(struct vw_buf *b, const unsigned char *body, size_t len,
                              const void *thumb, size_t tlen)
{
	vw_buf_append(b, body, len - 1);
	vw_buf_puts(b, ",\"thumbnail\":\"");
	size_t enc = 4 * ((tlen + 2) / 3);
	if (vw_buf_reserve(b, enc) == 0) {
		EVP_EncodeBlock((unsigned char *)b->data + b->len, thumb, (int)tlen);
		b->len += enc;
	}
	vw_buf_puts(b, "\"}");
}

int outbox_peek(struct outbox *ob, int64_t after_seq, size_t max_rows, size_t max_bytes,
                struct vw_buf *b, size_t *count, int64_t *last_seq)
{
	size_t start = b->len;
	*count = 0;
	*last_seq = after_seq;
	sqlite3_bind_int64(ob->st[O_PEEK], 1, after_seq);
	sqlite3_bind_int64(ob->st[O_PEEK], 2, (int64_t)max_rows);
	vw_buf_append(b, "[", 1);
	int rc;
	while ((rc = sqlite3_step(ob->st[O_PEEK])) == SQLITE_ROW) {
		const unsigned char *body = sqlite3_column_text(ob->st[O_PEEK], 1);
		size_t len = (size_t)sqlite3_column_bytes(ob->st[O_PEEK], 1);
		const void *thumb = sqlite3_column_blob(ob->st[O_PEEK], 2);
		size_t tlen = thumb ? (size_t)sqlite3_column_bytes(ob->st[O_PEEK], 2) : 0;
		/* The thumbnail counts toward the batch bound as it goes on the wire. */
		size_t wire =
		    len + (tlen ? sizeof(",\"thumbnail\":\"\"") + 4 * ((tlen + 2) / 3) : 0);
		if (*count && b->len - start + wire > max_bytes) {
			rc = SQLITE_DONE;
			break;
		}
		if (*count)
			vw_buf_append(b, ",", 1);
		if (tlen && len && body[len - 1] == '}')
			append_with_thumb(b, body, len, thumb, tlen);
		else
			vw_buf_append(b, body, len);
		*last_seq = sqlite3_column_int64(ob->st[O_PEEK], 0);
		(*count)++;
	}
	sqlite3_reset(ob->st[O_PEEK]);
	if (rc != SQLITE_DONE)
		return sql_err(ob, "peek");
	return vw_buf_append(b, "]", 1);
}

int outbox_ack(struct outbox *ob, int64_t acked_seq)
{
	/* The byte count must follow the delete exactly: measure what goes. */
	sqlite3_stmt *sum;
	int64_t gone = 0;
	if (sqlite3_prepare_v2(ob->db,
	                       "SELECT coalesce(sum(" ROW_BYTES "),0) FROM outbox WHERE seq <= ?",
	                       -1, &sum, NULL) != SQLITE_OK)
		return sql_err(ob, "ack");
	sqlite3_bind_int64(sum, 1, acked_seq);
	if (sqlite3_step(sum) == SQLITE_ROW)
		gone = sqlite3_column_int64(sum, 0);
	sqlite3_finalize(sum);
	sqlite3_bind_int64(ob->st[O_ACK], 1, acked_seq);
	int rc = sqlite3_step(ob->st[O_ACK]);
	sqlite3_reset(ob->st[O_ACK]);
	if (rc != SQLITE_DONE)
		return sql_err(ob, "ack");
	ob->bytes -= gone;
	ob->rows -= sqlite3_changes(ob->db);
	ob->acked_total += sqlite3_changes(ob->db);
	return 0;
}

int outbox_renew_epoch(struct outbox *ob)
{
	char fresh[33], why[160] = "";
	if (epoch_draw(fresh, why, sizeof(why))) {
		log_error("event=outbox_error op=renew_epoch err=\"%s\"", why);
		return -EIO;
	}
	/* One transaction: the row is replaced, never missing, so a crash here leaves either
	 * epoch, each one whole (its rows and next_seq are untouched either way). */
	sqlite3_stmt *st = NULL;
	int rc = exec(ob, "BEGIN IMMEDIATE");
	if (rc)
		return rc;
	if (sqlite3_exec(ob->db, "DELETE FROM epoch", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(ob->db, "INSERT INTO epoch(id) VALUES(?)", -1, &st, NULL) !=
	        SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, fresh, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = exec(ob, "COMMIT")))
		goto fail_rc;
	memcpy(ob->epoch, fresh, sizeof(ob->epoch));
	return 0;
fail:
	rc = sql_err(ob, "renew_epoch");
fail_rc:
	sqlite3_finalize(st);
	exec(ob, "ROLLBACK");
	return rc;
}

int64_t outbox_oldest_seq(struct outbox *ob)
{
	int64_t v = query_int(ob, "SELECT coalesce(min(seq), 0) FROM outbox");
	return v < 0 ? 0 : v;
}

void outbox_set_in_flight(struct outbox *ob, int64_t in_flight_seq)
{
	ob->in_flight = in_flight_seq;
}
const char *outbox_epoch(const struct outbox *ob)
{
	return ob->epoch;
}

int64_t outbox_next_seq(const struct outbox *ob)
{
	return ob->next_seq;
}
int64_t outbox_bytes(const struct outbox *ob)
{
	return ob->bytes;
}
int64_t outbox_dropped_total(const struct outbox *ob)
{
	return ob->dropped_total;
}

int64_t outbox_oldest_ts_ms(struct outbox *ob)
{
	/* seq is the primary key: the first row by seq is one index step, not a scan. */
	int64_t v =
	    query_int(ob, "SELECT coalesce((SELECT ts_ms FROM outbox ORDER BY seq LIMIT 1), 0)");
	return v < 0 ? 0 : v;
}

int64_t outbox_unstored_total(const struct outbox *ob)
{
	return ob->unstored_total;
}

int64_t outbox_acked_total(const struct outbox *ob)
{
	return ob->acked_total;
}

int64_t outbox_pending(struct outbox *ob)
{
	return ob->rows;
}
