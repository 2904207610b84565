/* rollup: the store's rollup job and the score's reads, through store.h with real SQLite
 * files, real writer and reader threads and a real loop. Results go in as ingest sends them
 * (batches); exam sessions go in as rows of the same database file (their API is another
 * module's). What the job credits per session, class and target is checked against the
 * rule worked out by hand; pruning is checked not to change a score's inputs; and a
 * database from before the rollups migrates and rolls its old results. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include <cmocka.h>

#include "store.h"
#include "testdir.h"
#include "testpg.h"
#include "vtime.h"

#define S 1000LL
#define MINUTE (60 * S)
#define H (60 * MINUTE)
#define DAY (24 * H)
/* 2025-06-02T09:00:00+08:00: far enough in the past that every hold is closed by now. */
#define T0 1748826000000LL

struct ctx {
	char dir[64];
	char db[64], dsn[512]; /* issue 13, postgresql: this test's own database ("" = sqlite) */
	struct store_options opt;
	uv_loop_t loop;
	struct store *st;
	int done;
	int64_t seq;
	struct store_batch *b; /* being filled */
	int64_t received_ms;
	size_t sent;
	const char *agent; /* result()'s agent: "a" unless a test says */
};

static int setup(void **state)
{
	struct ctx *x = calloc(1, sizeof(*x));
	if (!x || testdir_make(x->dir, sizeof(x->dir), "rollup")) {
		free(x);
		return -1;
	}
	x->opt.backend = "sqlite";
	x->opt.dir = x->dir;
	x->opt.rollup_tick_ms = 50;
	/* Tests wait for flushes; credits_follow_the_rule keeps the default interval. */
	x->opt.rollup_flush_ms = 100;
	x->received_ms = vw_now_ms();
	*state = x;
	return 0;
}

/* issue 13: the same job on PostgreSQL (testpg.h), under tests/tools/pg.sh. Short leases:
 * a child that dies holding the rollup lease (crash_between_flushes_counts_nothing_twice)
 * frees it for the next store in a second. */
static int setup_pg(void **state)
{
	if (setup(state))
		return -1;
	struct ctx *x = *state;
	if (testpg_make("rollup", x->db, sizeof(x->db), x->dsn, sizeof(x->dsn)))
		return -1;
	x->opt.backend = "postgresql";
	x->opt.dsn = x->dsn;
	x->opt.password_file = getenv("VW_PG_PASSFILE");
	x->opt.lease_ttl_ms = 1000;
	x->opt.lease_renew_ms = 200;
	return 0;
}

static int (*setup_any)(void **state) = setup;

static int teardown(void **state)
{
	struct ctx *x = *state;
	int rc = x->db[0] ? testpg_remove(x->db) : 0;
	if (testdir_remove(x->dir))
		rc = -1;
	free(x);
	return rc;
}

static void open_h(struct ctx *x)
{
	char err[256];
	assert_int_equal(uv_loop_init(&x->loop), 0);
	if (store_open(&x->opt, &x->st, err, sizeof(err)))
		fail_msg("store_open: %s", err);
	assert_int_equal(store_start(x->st, &x->loop, 64), 0);
}

static void close_h(struct ctx *x)
{
	store_close(x->st);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&x->loop), 0);
	x->st = NULL;
}

static sqlite3 *db_h(struct ctx *x)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/venuewatch.db", x->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void sql_exec(struct ctx *x, const char *sql)
{
	if (x->db[0]) {
		assert_int_equal(testpg_query(x->dsn, sql, NULL), 0);
		return;
	}
	sqlite3 *db = db_h(x);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

static int64_t sql_value(struct ctx *x, const char *sql)
{
	if (x->db[0]) {
		int64_t v = 0;
		assert_int_equal(testpg_query(x->dsn, sql, &v), 0);
		return v;
	}
	sqlite3 *db = db_h(x);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* An exam session of org-1 in Jinan, as helper S's module will write it. */
static void add_exam(struct ctx *x, int64_t id, const char *site, const char *code, int64_t start,
                     int64_t end, const char *rooms, int cancelled)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "INSERT INTO exam_sessions(id, org, city, site, code, occupation, level, start_ms,"
	         " end_ms, rooms, candidates, cancelled_ms, created_ms, updated_ms) VALUES(%lld,"
	         " 'org-1', 'Jinan', '%s', '%s', '电工', '四级', %lld, %lld, '%s', 30, %s, 1, 1)",
	         (long long)id, site, code, (long long)start, (long long)end, rooms,
	         cancelled ? "1" : "NULL");
	sql_exec(x, sql);
}

static void on_done(struct store_batch *b)
{
	struct ctx *x = b->data;
	x->done++;
}

static void flush(struct ctx *x)
{
	struct store_batch *b = x->b;
	if (!b)
		return;
	x->b = NULL;
	store_batch_sort(b);
	b->done = on_done;
	b->data = x;
	int want = x->done + 1;
	assert_int_equal(store_submit(x->st, b), 0);
	while (x->done < want)
		uv_run(&x->loop, UV_RUN_ONCE);
	assert_int_equal(b->status, 0);
	x->sent += b->stored;
	store_batch_destroy(b);
}

/* One result from agent a of site-1, in seq order; every 40 a batch goes. interval_ms < 0
 * sends no interval metric. */
static void result(struct ctx *x, enum vw_kind kind, const char *target, int64_t ts,
                   enum vw_status status, double interval_ms)
{
	if (!x->b) {
		x->b = store_batch_create();
		assert_non_null(x->b);
		snprintf(x->b->site, sizeof(x->b->site), "site-1");
		snprintf(x->b->agent, sizeof(x->b->agent), "%s", x->agent ? x->agent : "a");
		snprintf(x->b->org, sizeof(x->b->org), "org-1");
		snprintf(x->b->city, sizeof(x->b->city), "Jinan");
		x->b->received_ms = x->received_ms;
	}
	struct vw_result r;
	vw_result_init(&r, kind, target);
	r.seq = ++x->seq;
	r.ts_ms = ts;
	r.status = status;
	if (interval_ms >= 0)
		vw_result_set_metric_name(&r, "interval_ms", interval_ms);
	assert_int_equal(store_batch_add(x->b, &r), 0);
	if (x->b->nrows == 40)
		flush(x);
}

struct poll {
	struct ctx *x;
	uint64_t rolled, pruned;
	int64_t deadline;
	int ok;
};

static void on_poll(uv_timer_t *t)
{
	struct poll *p = t->data;
	struct store_stats st;
	store_get_stats(p->x->st, &st);
	if ((st.rows_rolled >= p->rolled && st.rows_pruned >= p->pruned) ||
	    vw_mono_ms() > p->deadline) {
		p->ok = st.rows_rolled >= p->rolled && st.rows_pruned >= p->pruned;
		uv_timer_stop(t);
		uv_close((uv_handle_t *)t, NULL);
	}
}

/* Waits (20 s at most: a loaded machine) until the job rolled and pruned that many rows. */
static void wait_job(struct ctx *x, uint64_t rolled, uint64_t pruned)
{
	struct poll p = {x, rolled, pruned, vw_mono_ms() + 20000, 0};
	uv_timer_t t;
	uv_timer_init(&x->loop, &t);
	t.data = &p;
	uv_timer_start(&t, on_poll, 0, 10);
	while (uv_is_active((uv_handle_t *)&t) || !uv_is_closing((uv_handle_t *)&t))
		uv_run(&x->loop, UV_RUN_ONCE);
	uv_run(&x->loop, UV_RUN_NOWAIT); /* the timer's close */
	if (!p.ok)
		fail_msg("rollup job did not reach rolled=%llu pruned=%llu in 20 s",
		         (unsigned long long)rolled, (unsigned long long)pruned);
}

/* A score's inputs copied out of the reply. */
struct inputs {
	int calls, status;
	int64_t value;
	size_t nexams, ncredits, ntargets;
	struct store_exam exams[8];
	char codes[8][32];
	struct store_credit credits[32];
	char ctargets[32][32];
	int64_t first_ts, last_ts;
};

static void on_inputs(void *ud, const struct store_reply *r)
{
	struct inputs *in = ud;
	in->calls++;
	in->status = r->status;
	in->value = r->value;
	in->nexams = r->nexams;
	in->ncredits = r->ncredits;
	in->ntargets = r->ntargets;
	for (size_t i = 0; i < r->nexams && i < 8; i++) {
		in->exams[i] = r->exams[i];
		snprintf(in->codes[i], sizeof(in->codes[i]), "%s", r->exams[i].code);
		in->exams[i].org = in->exams[i].city = in->exams[i].site = in->exams[i].code = NULL;
		in->exams[i].occupation = in->exams[i].level = in->exams[i].rooms = NULL;
	}
	for (size_t i = 0; i < r->ncredits && i < 32; i++) {
		/* Field by field into zeroed memory: the tests compare these bytewise, and a
		 * struct copy would carry the padding after cls. */
		const struct store_credit *c = &r->credits[i];
		struct store_credit *o = &in->credits[i];
		memset(o, 0, sizeof(*o));
		o->exam_id = c->exam_id;
		o->cls = c->cls;
		o->ok_ms = c->ok_ms;
		o->degraded_ms = c->degraded_ms;
		o->down_ms = c->down_ms;
		o->results = c->results;
		snprintf(in->ctargets[i], sizeof(in->ctargets[i]), "%s", c->target);
	}
	if (r->ntargets) {
		in->first_ts = r->targets[0].ts_ms;
		in->last_ts = r->targets[r->ntargets - 1].ts_ms;
	}
}

static void wait_inputs(struct ctx *x, struct inputs *in, int rc)
{
	assert_int_equal(rc, 0);
	while (!in->calls)
		uv_run(&x->loop, UV_RUN_ONCE);
	assert_int_equal(in->status, 0);
}

static void read_inputs(struct ctx *x, const struct store_score_query *q, struct inputs *in)
{
	memset(in, 0, sizeof(*in));
	wait_inputs(x, in, store_score_inputs(x->st, q, on_inputs, in));
}

static const struct store_credit *credit_of(const struct inputs *in, int64_t exam, int cls,
                                            const char *target)
{
	for (size_t i = 0; i < in->ncredits; i++)
		if (in->credits[i].exam_id == exam && in->credits[i].cls == cls &&
		    strcmp(in->ctargets[i], target) == 0)
			return &in->credits[i];
	fail_msg("no credit for exam %lld class %d target %s", (long long)exam, cls, target);
	return NULL;
}

/* Sessions (site-1): 1 = 09:00-11:00 in room A101; 2 = 10:00-12:00 in every room; 3 =
 * cancelled; site-2 has 4. Results, 08:59 to 12:00:
 *  cam1 (stream, checked every minute, interval_ms 60000): ok, but down 10:00-10:30;
 *  collector (network, no interval metric: the 120 s default): ok every minute, silent
 *   from 10:40 to 10:50;
 *  A101 and B202 (coverage, every minute): ok. */
static void feed_minutes(struct ctx *x, int64_t from, int64_t to)
{
	for (int64_t m = from; m <= to; m++) {
		int64_t ts = T0 + m * MINUTE;
		result(x, VW_KIND_STREAM, "cam1", ts,
		       m >= 60 && m < 90 ? VW_STATUS_DOWN : VW_STATUS_OK, 60000);
		if (m <= 100 || m >= 110)
			result(x, VW_KIND_NETWORK, "collector", ts, VW_STATUS_OK, -1);
		result(x, VW_KIND_COVERAGE, "A101", ts + 5 * S, VW_STATUS_OK, 60000);
		result(x, VW_KIND_COVERAGE, "B202", ts + 5 * S, VW_STATUS_OK, 60000);
	}
	flush(x);
}

static void feed_exams(struct ctx *x)
{
	add_exam(x, 1, "site-1", "2025-0001", T0, T0 + 2 * H, "A101", 0);
	add_exam(x, 2, "site-1", "2025-0002", T0 + H, T0 + 3 * H, "*", 0);
	add_exam(x, 3, "site-1", "2025-0003", T0, T0 + 3 * H, "*", 1);
	add_exam(x, 4, "site-2", "2025-0004", T0, T0 + 3 * H, "*", 0);
}

static void feed_day(struct ctx *x)
{
	feed_exams(x);
	feed_minutes(x, -1, 180);
}

static void credits_follow_the_rule(void **state)
{
	struct ctx *x = *state;
	x->opt.rollup_flush_ms = 0; /* STORE_ROLLUP_FLUSH_MS: the server's own */
	open_h(x);
	feed_day(x);
	wait_job(x, x->sent, 0);

	struct inputs in;
	struct store_score_query q = {
	    .org = "org-1", .from_ms = T0 - DAY, .to_ms = T0 + DAY, .with_credits = 1};
	read_inputs(x, &q, &in);
	/* the cancelled session is never scored; site-2's session is org-1's too */
	assert_int_equal(in.nexams, 3);
	assert_string_equal(in.codes[0], "2025-0001");
	assert_string_equal(in.codes[1], "2025-0004");
	assert_string_equal(in.codes[2], "2025-0002");
	const struct store_exam *e1 = &in.exams[0], *e2 = &in.exams[2], *e4 = &in.exams[1];
	assert_int_equal(e1->id, 1);
	assert_int_equal(e1->start_ms, T0);
	assert_int_equal(e1->end_ms, T0 + 2 * H);
	assert_int_equal(e1->candidates, 30);

	/* cam1: 09:00-10:00 and 10:30-11:00 ok, 10:00-10:30 down */
	assert_int_equal(e1->ok_ms[STORE_CLASS_STREAM], 90 * MINUTE);
	assert_int_equal(e1->down_ms[STORE_CLASS_STREAM], 30 * MINUTE);
	assert_int_equal(e2->ok_ms[STORE_CLASS_STREAM], 90 * MINUTE);
	assert_int_equal(e2->down_ms[STORE_CLASS_STREAM], 30 * MINUTE);
	/* collector: the 10:40 result holds 2 minutes, then 8 minutes have no evidence */
	assert_int_equal(e1->ok_ms[STORE_CLASS_CONNECTED], 112 * MINUTE);
	assert_int_equal(e2->ok_ms[STORE_CLASS_CONNECTED], 112 * MINUTE);
	assert_int_equal(e1->ok_ms[STORE_CLASS_NETWORK], 112 * MINUTE);
	assert_int_equal(e1->ntargets[STORE_CLASS_CONNECTED], 1);
	/* coverage: session 1 lists A101 only; session 2 is every room (both reported) */
	assert_int_equal(e1->ok_ms[STORE_CLASS_COVERAGE], 120 * MINUTE);
	assert_int_equal(e1->ntargets[STORE_CLASS_COVERAGE], 1);
	assert_int_equal(e2->ok_ms[STORE_CLASS_COVERAGE], 240 * MINUTE);
	assert_int_equal(e2->ntargets[STORE_CLASS_COVERAGE], 2);
	/* nothing reported recordings; site-2 has no agent at all */
	assert_int_equal(e1->ntargets[STORE_CLASS_RECORDING], 0);
	for (int c = 0; c < STORE_CLASS_COUNT; c++)
		assert_int_equal(e4->ok_ms[c] + e4->degraded_ms[c] + e4->down_ms[c], 0);
	assert_int_equal(e1->rolled_to_ms, T0 + 180 * MINUTE + 5 * S);
	assert_int_equal(e4->rolled_to_ms, 0);

	/* per target: 120 results of cam1 checked in session 1 (09:00 .. 10:59) */
	const struct store_credit *c = credit_of(&in, 1, STORE_CLASS_STREAM, "cam1");
	assert_int_equal(c->results, 120);
	assert_int_equal(c->ok_ms, 90 * MINUTE);
	c = credit_of(&in, 2, STORE_CLASS_COVERAGE, "B202");
	assert_int_equal(c->ok_ms, 120 * MINUTE);

	/* by site: only site-1's two sessions; ranking reads without credits */
	struct store_score_query qs = {.site = "site-1", .from_ms = T0 - DAY, .to_ms = T0 + DAY};
	read_inputs(x, &qs, &in);
	assert_int_equal(in.nexams, 2);
	assert_int_equal(in.ncredits, 0);
	/* a window that ends before session 2 starts */
	struct store_score_query qw = {.from_ms = T0 - DAY, .to_ms = T0 + H};
	read_inputs(x, &qw, &in);
	assert_int_equal(in.nexams, 2); /* sessions 1 and 4 */

	/* evidence: cam1's rows from 08:58 (start - 2 x its cadence) to 11:00, by seq */
	memset(&in, 0, sizeof(in));
	wait_inputs(x, &in,
	            store_score_evidence(x->st, 1, STORE_CLASS_STREAM, "cam1", on_inputs, &in));
	assert_int_equal(in.ntargets, 121);
	assert_int_equal(in.first_ts, T0 - MINUTE);
	assert_int_equal(in.last_ts, T0 + 119 * MINUTE);
	assert_int_equal(in.value, 0);
	/* coverage of session 1: A101's rows only */
	memset(&in, 0, sizeof(in));
	wait_inputs(x, &in,
	            store_score_evidence(x->st, 1, STORE_CLASS_COVERAGE, NULL, on_inputs, &in));
	assert_int_equal(in.ntargets, 121); /* A101 at 08:59:05 .. 10:59:05 */
	memset(&in, 0, sizeof(in));
	assert_int_equal(store_score_evidence(x->st, 99, STORE_CLASS_STREAM, NULL, on_inputs, &in),
	                 0);
	while (!in.calls)
		uv_run(&x->loop, UV_RUN_ONCE);
	assert_int_equal(in.status, -ENOENT);
	close_h(x);

	/* per local day: cam1 held from 08:59 to 12:02 of one Shanghai day */
	assert_int_equal(sql_value(x, "SELECT count(*) FROM rollup_days WHERE target = 'cam1'"), 1);
	assert_int_equal(
	    sql_value(x, "SELECT ok_ms + down_ms FROM rollup_days WHERE target = 'cam1'"),
	    183 * MINUTE);
	assert_int_equal(sql_value(x, "SELECT results FROM rollup_days WHERE target = 'cam1'"),
	                 182);
	assert_int_equal(sql_value(x, "SELECT result_id FROM rollup_mark"),
	                 sql_value(x, "SELECT max(id) FROM results"));
}

/* An agent cut off from 09:30 to 10:30 sends its backlog late: while it is silent its last
 * result holds 2 minutes only, and once the backlog is in the session has its full time —
 * each result counted at its check time, the open hold's credit corrected. */
static void backlog_counts_at_check_time(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	add_exam(x, 1, "site-1", "2025-0001", T0, T0 + 2 * H, "*", 0);
	for (int64_t m = 0; m <= 30; m++)
		result(x, VW_KIND_STREAM, "cam1", T0 + m * MINUTE, VW_STATUS_OK, 60000);
	flush(x);
	wait_job(x, x->sent, 0);
	struct store_score_query q = {.site = "site-1", .from_ms = T0, .to_ms = T0 + 1};
	struct inputs in;
	read_inputs(x, &q, &in);
	assert_int_equal(in.nexams, 1);
	assert_int_equal(in.exams[0].ok_ms[STORE_CLASS_STREAM], 32 * MINUTE);
	assert_int_equal(in.exams[0].rolled_to_ms, T0 + 30 * MINUTE);
	for (int64_t m = 31; m <= 120; m++)
		result(x, VW_KIND_STREAM, "cam1", T0 + m * MINUTE, VW_STATUS_OK, 60000);
	flush(x);
	wait_job(x, x->sent, 0);
	read_inputs(x, &q, &in);
	assert_int_equal(in.exams[0].ok_ms[STORE_CLASS_STREAM], 120 * MINUTE);
	assert_int_equal(in.exams[0].down_ms[STORE_CLASS_STREAM], 0);
	close_h(x);
}

/* Pruning deletes raw results, never credits: the inputs of a score are the same before and
 * after, and evidence then says its window was pruned. */
static void pruning_keeps_score_inputs(void **state)
{
	struct ctx *x = *state;
	x->received_ms = vw_now_ms() - 200 * DAY; /* arrived long ago */
	open_h(x);
	feed_day(x);
	wait_job(x, x->sent, 0);
	struct store_score_query q = {
	    .org = "org-1", .from_ms = T0 - DAY, .to_ms = T0 + DAY, .with_credits = 1};
	struct inputs before, after;
	read_inputs(x, &q, &before);
	close_h(x);
	int64_t rows = sql_value(x, "SELECT count(*) FROM results");

	x->opt.raw_retention_ms = 90 * DAY;
	open_h(x);
	/* every row but each target's latest (the site page's), in batches of 2000 at most */
	wait_job(x, 0, (uint64_t)rows - 4);
	read_inputs(x, &q, &after);
	assert_int_equal(before.nexams, after.nexams);
	assert_int_equal(before.ncredits, after.ncredits);
	assert_true(before.ncredits > 0);
	assert_memory_equal(before.exams, after.exams, before.nexams * sizeof(before.exams[0]));
	assert_memory_equal(before.credits, after.credits,
	                    before.ncredits * sizeof(before.credits[0]));
	assert_memory_equal(before.ctargets, after.ctargets, sizeof(before.ctargets));

	struct inputs ev;
	memset(&ev, 0, sizeof(ev));
	wait_inputs(x, &ev,
	            store_score_evidence(x->st, 1, STORE_CLASS_STREAM, "cam1", on_inputs, &ev));
	assert_int_equal(ev.value, 1);
	assert_int_equal(ev.ntargets, 0);
	close_h(x);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM results"), 4);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM results r JOIN latest l"
	                              " ON l.result_id = r.id"),
	                 4);
}

/* A target that goes silent in a session under way: its last result is credited up to the
 * job's clock when it is read, and once its bound has passed the tick credits the rest of
 * its hold (2 x its 1 s cadence) and nothing more. */
static void silent_target_is_credited_to_its_bound(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	int64_t now = vw_now_ms();
	add_exam(x, 1, "site-1", "live-1", now - 60 * S, now + H, "*", 0);
	result(x, VW_KIND_STREAM, "cam1", now - 500, VW_STATUS_OK, 1000);
	flush(x);
	struct store_score_query q = {.site = "site-1", .from_ms = now, .to_ms = now + 1};
	struct inputs in;
	int64_t deadline = vw_mono_ms() + 20000;
	for (;;) {
		read_inputs(x, &q, &in);
		assert_int_equal(in.nexams, 1);
		assert_true(in.exams[0].ok_ms[STORE_CLASS_STREAM] <= 2 * S);
		if (in.exams[0].ok_ms[STORE_CLASS_STREAM] == 2 * S)
			break;
		if (vw_mono_ms() > deadline)
			fail_msg("the silent hold was not closed: %lld ms",
			         (long long)in.exams[0].ok_ms[STORE_CLASS_STREAM]);
		uv_sleep(20);
	}
	close_h(x);
}

/* A collector's database from before exam sessions and rollups (schema 1, as the first
 * release wrote it) migrates in place to this schema, and the job rolls the results it
 * already held from the start: their hold time is in the per-day rollups. */
static void old_database_migrates_and_its_results_are_rolled(void **state)
{
	struct ctx *x = *state;
	char sql[2048];
	snprintf(
	    sql, sizeof(sql),
	    "CREATE TABLE agents(id INTEGER PRIMARY KEY, site TEXT NOT NULL, agent TEXT NOT NULL,"
	    " org TEXT NOT NULL DEFAULT '', city TEXT NOT NULL DEFAULT '',"
	    " high_seq INTEGER NOT NULL DEFAULT 0, last_report_ms INTEGER NOT NULL DEFAULT 0,"
	    " cam_ok INTEGER NOT NULL DEFAULT 0, cam_degraded INTEGER NOT NULL DEFAULT 0,"
	    " cam_down INTEGER NOT NULL DEFAULT 0, UNIQUE(site, agent));"
	    "CREATE TABLE results(id INTEGER PRIMARY KEY, agent_id INTEGER NOT NULL,"
	    " seq INTEGER NOT NULL, ts_ms INTEGER NOT NULL, mono_ms INTEGER NOT NULL,"
	    " kind TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL, session TEXT,"
	    " codec TEXT, faults TEXT NOT NULL, metrics TEXT NOT NULL,"
	    " received_ms INTEGER NOT NULL);"
	    "CREATE TABLE latest(agent_id INTEGER NOT NULL, kind TEXT NOT NULL,"
	    " target TEXT NOT NULL, result_id INTEGER NOT NULL, status TEXT NOT NULL,"
	    " PRIMARY KEY(agent_id, kind, target)) WITHOUT ROWID;"
	    "INSERT INTO agents(id, site, agent, high_seq, cam_ok) VALUES(1, 'site-1', 'a', 3, 1);"
	    "INSERT INTO results(agent_id, seq, ts_ms, mono_ms, kind, target, status, faults,"
	    " metrics, received_ms) VALUES"
	    " (1, 1, %lld, 1, 'stream', 'cam1', 'ok', '[]', '{\"interval_ms\":60000}', 1),"
	    " (1, 2, %lld, 2, 'stream', 'cam1', 'down', '[\"timeout\"]', '{}', 2),"
	    " (1, 3, %lld, 3, 'stream', 'cam1', 'ok', '[]', '{\"interval_ms\":60000}', 3);"
	    "INSERT INTO latest VALUES(1, 'stream', 'cam1', 3, 'ok');"
	    "PRAGMA user_version = 1;",
	    (long long)T0, (long long)(T0 + MINUTE), (long long)(T0 + 10 * MINUTE));
	sql_exec(x, sql);
	open_h(x);
	wait_job(x, 3, 0);
	close_h(x);
	assert_int_equal(sql_value(x, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(sql_value(x, "SELECT result_id FROM rollup_mark"), 3);
	/* ok 09:00-09:01; down 09:01 for the default 120 s; ok 09:10-09:12 */
	assert_int_equal(sql_value(x, "SELECT ok_ms FROM rollup_days WHERE target = 'cam1'"),
	                 3 * MINUTE);
	assert_int_equal(sql_value(x, "SELECT down_ms FROM rollup_days WHERE target = 'cam1'"),
	                 2 * MINUTE);
	assert_int_equal(sql_value(x, "SELECT results FROM rollup_days WHERE target = 'cam1'"), 3);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM sqlite_master"
	                              " WHERE name = 'results_agent_ts'"),
	                 1);
}

/* Everything the job persists, as one text (updated_ms and at_ms, clock readings, left
 * out): two stores that rolled the same results compare equal. */
static char *rollup_dump(struct ctx *x)
{
	static const char *const q[] = {
	    "SELECT group_concat(v, ';') FROM (SELECT exam_id || ',' || cls || ',' || target"
	    " || ',' || ok_ms || ',' || degraded_ms || ',' || down_ms || ',' || results v"
	    " FROM exam_credits ORDER BY exam_id, cls, target)",
	    "SELECT group_concat(v, ';') FROM (SELECT exam_id || ',' || connected_ok_ms || ','"
	    " || network_ok_ms || ',' || network_down_ms || ',' || stream_ok_ms || ','"
	    " || stream_down_ms || ',' || coverage_ok_ms || ',' || coverage_targets || ','"
	    " || stream_targets v FROM exam_totals ORDER BY exam_id)",
	    "SELECT group_concat(v, ';') FROM (SELECT agent_id || ',' || kind || ',' || target"
	    " || ',' || day || ',' || ok_ms || ',' || degraded_ms || ',' || down_ms || ','"
	    " || results v FROM rollup_days ORDER BY agent_id, kind, target, day)",
	    "SELECT group_concat(v, ';') FROM (SELECT agent_id || ',' || kind || ',' || target"
	    " || ',' || status || ',' || ts_ms || ',' || stale_ms || ',' || until_ms v"
	    " FROM rollup_state ORDER BY agent_id, kind, target)",
	    "SELECT group_concat(v, ';') FROM (SELECT agent_id || ',' || site || ','"
	    " || last_ts_ms v FROM rollup_agents ORDER BY agent_id)",
	    "SELECT result_id || ',' || (SELECT max(id) FROM results) FROM rollup_mark",
	};
	size_t len = 0, cap = 1 << 16;
	char *out = calloc(1, cap);
	assert_non_null(out);
	if (x->db[0]) {
		/* the same texts in PostgreSQL's words: string_agg, and an alias per subquery */
		PGconn *c = testpg_connect(x->dsn);
		assert_non_null(c);
		for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
			char sql[1024];
			const char *from = strstr(q[i], " FROM (");
			if (from)
				snprintf(sql, sizeof(sql),
				         "SELECT string_agg(v, ';' ORDER BY v)%s q", from);
			else
				snprintf(sql, sizeof(sql), "%s", q[i]);
			PGresult *r = PQexec(c, sql);
			if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
				fail_msg("%s: %s", sql, PQresultErrorMessage(r));
			int n = snprintf(out + len, cap - len, "%s\n",
			                 PQgetisnull(r, 0, 0) ? "(none)" : PQgetvalue(r, 0, 0));
			assert_true(n > 0 && (size_t)n < cap - len);
			len += (size_t)n;
			PQclear(r);
		}
		PQfinish(c);
		return out;
	}
	sqlite3 *db = db_h(x);
	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db, q[i], -1, &st, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		const char *v = (const char *)sqlite3_column_text(st, 0);
		int n = snprintf(out + len, cap - len, "%s\n", v ? v : "(none)");
		assert_true(n > 0 && (size_t)n < cap - len);
		len += (size_t)n;
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return out;
}

/* The job keeps its holds and sums in memory between flushes. A process that dies with
 * results rolled but not flushed (here: a child that _exit()s, skipping store_close and
 * its last flush) leaves the database at its last flush; the next open resumes from that
 * mark with those holds, and what it ends with equals a run that never stopped. */
static void crash_between_flushes_counts_nothing_twice(void **state)
{
	struct ctx *clean = *state;
	clean->opt.rollup_flush_ms = 200;
	open_h(clean);
	feed_exams(clean);
	feed_minutes(clean, -1, 95);
	wait_job(clean, clean->sent, 0);
	feed_minutes(clean, 96, 180);
	wait_job(clean, clean->sent, 0);
	close_h(clean);
	char *want = rollup_dump(clean);

	struct ctx *x;
	void *st2 = NULL;
	assert_int_equal(setup_any(&st2), 0);
	x = st2;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The child: the first half flushed, then the second half ingested and (partly)
		 * rolled into memory only: the next flush is 1 s after the previous. */
		x->opt.rollup_flush_ms = 1000;
		open_h(x);
		feed_exams(x);
		feed_minutes(x, -1, 95);
		wait_job(x, x->sent, 0);
		feed_minutes(x, 96, 180);
		struct store_stats stats;
		store_get_stats(x->st, &stats);
		_exit(stats.rows_rolled < x->sent ? 0 : 3);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	/* 3: the flush came before the exit (a very slow machine); the resume is tested all
	 * the same, from a later mark. */
	assert_true(WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 3);
	int64_t left = sql_value(x, "SELECT (SELECT max(id) FROM results) - result_id"
	                            " FROM rollup_mark");
	if (WEXITSTATUS(status) == 0)
		assert_true(left > 0);
	open_h(x);
	wait_job(x, (uint64_t)left, 0);
	close_h(x);
	char *got = rollup_dump(x);
	assert_string_equal(got, want);
	free(got);
	free(want);
	assert_int_equal(teardown(&st2), 0);
}

/* A session entered while the job runs (another connection's commit) reaches the job's
 * cached sessions of the site: results rolled after it are credited to it. */
static void session_added_later_is_credited(void **state)
{
	struct ctx *x = *state;
	x->opt.rollup_flush_ms = 100;
	open_h(x);
	add_exam(x, 1, "site-1", "2025-0001", T0, T0 + H, "*", 0);
	for (int64_t m = 0; m < 60; m++)
		result(x, VW_KIND_STREAM, "cam1", T0 + m * MINUTE, VW_STATUS_OK, 60000);
	flush(x);
	wait_job(x, x->sent, 0);
	add_exam(x, 2, "site-1", "2025-0002", T0 + 2 * H, T0 + 3 * H, "*", 0);
	for (int64_t m = 120; m < 180; m++)
		result(x, VW_KIND_STREAM, "cam1", T0 + m * MINUTE, VW_STATUS_OK, 60000);
	flush(x);
	wait_job(x, x->sent, 0);
	close_h(x);
	assert_int_equal(sql_value(x, "SELECT ok_ms FROM exam_credits WHERE exam_id = 1"), H);
	assert_int_equal(sql_value(x, "SELECT ok_ms FROM exam_credits WHERE exam_id = 2"), H);
}

/* The cadence goes into results.interval_ms at ingest (0 without the metric) and the job
 * reads it from there: a 5-minute cadence holds 10 minutes, not the default 120 s. */
static void cadence_is_stored_in_its_column(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	result(x, VW_KIND_STREAM, "cam1", T0, VW_STATUS_OK, 300000);
	result(x, VW_KIND_STREAM, "cam1", T0 + H, VW_STATUS_OK, 300000);
	result(x, VW_KIND_STREAM, "cam2", T0, VW_STATUS_OK, -1);
	result(x, VW_KIND_STREAM, "cam3", T0, VW_STATUS_OK, 1500.5);
	flush(x);
	wait_job(x, x->sent, 0);
	close_h(x);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM results WHERE target = 'cam1'"
	                              " AND interval_ms = 300000"),
	                 2);
	assert_int_equal(sql_value(x, "SELECT interval_ms FROM results WHERE target = 'cam2'"), 0);
	assert_int_equal(sql_value(x, "SELECT interval_ms * 10 FROM results WHERE target = 'cam3'"),
	                 15005);
	assert_int_equal(sql_value(x, "SELECT sum(ok_ms) FROM rollup_days WHERE target = 'cam1'"),
	                 20 * MINUTE);
	assert_int_equal(sql_value(x, "SELECT sum(ok_ms) FROM rollup_days WHERE target = 'cam2'"),
	                 2 * MINUTE);
	assert_int_equal(sql_value(x, "SELECT sum(ok_ms) FROM rollup_days WHERE target = 'cam3'"),
	                 3000); /* 2 x 1500 ms: credit_stale_ms cuts the fraction */
	assert_int_equal(sql_value(x, "SELECT count(*) FROM sqlite_master"
	                              " WHERE name = 'rollup_state_open'"),
	                 0);
}

/* A schema-5 database with results the job had not rolled yet (a server stopped while it
 * lagged, then upgraded): migration 6 gives those rows interval_ms 0, and the job reads
 * their cadence from the metrics as before — a 5-minute cadence still holds 10 minutes.
 * New rows after the upgrade use the column. */
static void results_from_before_the_column_keep_their_cadence(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	close_h(x);
	char sql[2048];
	snprintf(sql, sizeof(sql),
	         /* back to schema 5 (undoing issue 16 E's migration first) */
	         "DROP TABLE agent_health;"
	         /* back to schema 5 (7 first: issue 16's feed tables) */
	         "DROP TABLE problems; DROP TABLE events; DROP TABLE feed_mark;"
	         " DROP TABLE feed_sites;"
	         /* and issue 16 D's */
	         "DROP TABLE notifications;"
	         "ALTER TABLE results DROP COLUMN interval_ms;"
	         "ALTER TABLE rollup_mark DROP COLUMN legacy_id;"
	         /* issue 16 C's migration 8 */
	         "DROP TABLE thumbnails; DROP TABLE thumbnail_access;"
	         "CREATE INDEX rollup_state_open ON rollup_state(ts_ms + stale_ms)"
	         " WHERE until_ms < ts_ms + stale_ms;"
	         "INSERT INTO agents(id, site, agent, org, city, high_seq)"
	         " VALUES(1, 'site-1', 'a', 'org-1', 'Jinan', 2);"
	         "INSERT INTO epochs(agent_id, epoch, ord, high_seq, first_ms, last_ms)"
	         " VALUES(1, '', 0, 2, 1, 1);"
	         "INSERT INTO results(agent_id, seq, ts_ms, mono_ms, kind, target, status, faults,"
	         " metrics, received_ms) VALUES"
	         " (1, 1, %lld, 1, 'stream', 'cam1', 'ok', '[]', '{\"interval_ms\":300000}', 1),"
	         " (1, 2, %lld, 2, 'stream', 'cam2', 'ok', '[]', '{}', 2);"
	         "INSERT INTO latest VALUES(1, 'stream', 'cam1', 1, 'ok');"
	         "INSERT INTO latest VALUES(1, 'stream', 'cam2', 2, 'ok');"
	         "PRAGMA user_version = 5;",
	         (long long)T0, (long long)T0);
	sql_exec(x, sql);
	open_h(x);
	wait_job(x, 2, 0);
	x->seq = 2;
	result(x, VW_KIND_STREAM, "cam3", T0, VW_STATUS_OK, 300000);
	flush(x);
	wait_job(x, 3, 0);
	close_h(x);
	assert_int_equal(sql_value(x, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(sql_value(x, "SELECT legacy_id FROM rollup_mark"), 2);
	assert_int_equal(sql_value(x, "SELECT ok_ms FROM rollup_days WHERE target = 'cam1'"),
	                 10 * MINUTE);
	assert_int_equal(sql_value(x, "SELECT ok_ms FROM rollup_days WHERE target = 'cam2'"),
	                 2 * MINUTE);
	assert_int_equal(sql_value(x, "SELECT ok_ms FROM rollup_days WHERE target = 'cam3'"),
	                 10 * MINUTE);
	assert_int_equal(sql_value(x, "SELECT result_id FROM rollup_mark"), 3);
	/* the agent's site, read from its row on first sight (no join per result) */
	assert_int_equal(sql_value(x, "SELECT count(*) FROM rollup_agents WHERE agent_id = 1"
	                              " AND site = 'site-1'"),
	                 1);
}

/* The job remembers, in each target's hold, the day and session sums it last added to, and
 * the last agent's entry. 1000 targets grow the sums' tables (and move their entries)
 * while earlier targets' holds still point into them; every target's second result must
 * still land in the same sums as its first. One batch, so one slice reads all of it and no
 * flush (which clears the sums) comes between the two rounds. */
static void sums_survive_their_tables_growing(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	add_exam(x, 1, "site-1", "2025-0001", T0 - H, T0 + H, "*", 0);
	enum { TARGETS = 1000 };
	struct store_batch *b = store_batch_create();
	assert_non_null(b);
	snprintf(b->site, sizeof(b->site), "site-1");
	snprintf(b->agent, sizeof(b->agent), "a");
	snprintf(b->org, sizeof(b->org), "org-1");
	snprintf(b->city, sizeof(b->city), "Jinan");
	b->received_ms = x->received_ms;
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < TARGETS; i++) {
			char target[32];
			snprintf(target, sizeof(target), "cam-%04d", i);
			struct vw_result r;
			vw_result_init(&r, VW_KIND_STREAM, target);
			r.seq = ++x->seq;
			r.ts_ms = T0 + round * MINUTE;
			r.status = VW_STATUS_OK;
			vw_result_set_metric_name(&r, "interval_ms", 60000);
			assert_int_equal(store_batch_add(b, &r), 0);
		}
	x->b = b;
	flush(x);
	wait_job(x, x->sent, 0);
	close_h(x);
	assert_int_equal(x->sent, 2 * TARGETS);
	/* Each target: [T0, T0 + 1 min) up to its next result, then that one's hold of
	 * 2 x its 60 s cadence: 3 minutes ok, 2 results, in one local day and one session. */
	assert_int_equal(sql_value(x, "SELECT count(*) FROM rollup_days"), TARGETS);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM rollup_days"
	                              " WHERE ok_ms = 180000 AND results = 2"),
	                 TARGETS);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM exam_credits WHERE exam_id = 1"),
	                 TARGETS);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM exam_credits WHERE exam_id = 1"
	                              " AND ok_ms = 180000 AND results = 2"),
	                 TARGETS);
}

/* issue 13, PostgreSQL only: ids come from one sequence, and two collectors' transactions
 * commit in any order. Here a transaction takes an id for agent b's result and stays open
 * (as a slow collector's would) while agent a's later results commit and the job runs
 * several slices; then it commits. Its result must be rolled all the same: a cursor that
 * had moved past its id would never read it. */
static void ids_committed_out_of_order_are_all_rolled(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	add_exam(x, 1, "site-1", "2025-0001", T0 - H, T0 + 2 * H, "*", 0);
	struct store_batch *b = store_batch_create();
	assert_non_null(b);
	snprintf(b->site, sizeof(b->site), "site-1");
	snprintf(b->agent, sizeof(b->agent), "b");
	snprintf(b->org, sizeof(b->org), "org-1");
	snprintf(b->city, sizeof(b->city), "Jinan");
	b->received_ms = x->received_ms;
	struct vw_result r;
	vw_result_init(&r, VW_KIND_STREAM, "camB");
	r.seq = 1;
	r.ts_ms = T0;
	r.status = VW_STATUS_OK;
	vw_result_set_metric_name(&r, "interval_ms", 60000);
	assert_int_equal(store_batch_add(b, &r), 0);
	x->b = b;
	flush(x);
	wait_job(x, x->sent, 0);

	/* as ingest does: the agent row locked (the transaction's id assigned), then an id */
	PGconn *c = testpg_connect(x->dsn);
	assert_non_null(c);
	char sql[1024];
	snprintf(sql, sizeof(sql),
	         "BEGIN; SELECT id FROM agents WHERE site = 'site-1' AND agent = 'b' FOR UPDATE;"
	         " INSERT INTO results(agent_id, epoch, seq, ts_ms, mono_ms, kind, target, status,"
	         " faults, metrics, received_ms, interval_ms) SELECT a.id, e.ord, 2, %lld, 0,"
	         " 'stream', 'camB', 'ok', '', '{}', %lld, 60000 FROM agents a JOIN epochs e"
	         " ON e.agent_id = a.id WHERE a.site = 'site-1' AND a.agent = 'b'",
	         (long long)(T0 + MINUTE), (long long)x->received_ms);
	PGresult *res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("%s", PQresultErrorMessage(res));
	PQclear(res);

	for (int64_t m = 0; m < 40; m++)
		result(x, VW_KIND_STREAM, "cam1", T0 + m * MINUTE, VW_STATUS_OK, 60000);
	flush(x);
	struct store_stats st;
	store_get_stats(x->st, &st);
	uint64_t slices = st.rollup_slices;
	int64_t deadline = vw_mono_ms() + 20000;
	while (st.rollup_slices < slices + 5) {
		if (vw_mono_ms() > deadline)
			fail_msg("the job ran no slices");
		uv_sleep(20);
		store_get_stats(x->st, &st);
	}
	res = PQexec(c, "COMMIT");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	PQfinish(c);
	wait_job(x, x->sent + 1, 0);
	close_h(x);
	assert_int_equal(sql_value(x, "SELECT results FROM rollup_days WHERE target = 'camB'"), 2);
	assert_int_equal(sql_value(x, "SELECT results FROM exam_credits WHERE target = 'camB'"), 2);
	assert_int_equal(sql_value(x, "SELECT result_id FROM rollup_mark"),
	                 sql_value(x, "SELECT max(id) FROM results"));
}

/* issue 13, PostgreSQL only: retention drops a whole day of arrivals, and only once the job
 * has rolled (and flushed) every row of it. Results that arrived 200 days ago, with a 90-day
 * retention from the first open on: their day stays while the job cannot roll them, then
 * goes, and the score's inputs are those of a store that kept everything; evidence then
 * says its window was pruned. */
static void pruning_drops_rolled_days(void **state)
{
	struct ctx *keep = *state;
	keep->received_ms = vw_now_ms() - 200 * DAY;
	open_h(keep);
	feed_day(keep);
	wait_job(keep, keep->sent, 0);
	struct store_score_query q = {
	    .org = "org-1", .from_ms = T0 - DAY, .to_ms = T0 + DAY, .with_credits = 1};
	struct inputs want, got;
	read_inputs(keep, &q, &want);
	close_h(keep);
	assert_true(want.ncredits > 0);

	void *st2 = NULL;
	assert_int_equal(setup_any(&st2), 0);
	struct ctx *x = st2;
	x->received_ms = keep->received_ms;
	x->opt.raw_retention_ms = 90 * DAY;
	open_h(x);
	/* A transaction left open meanwhile holds the job's horizon (as a slow collector's
	 * would): the results are in, not rolled, and their day must stay while it is open. */
	PGconn *c = testpg_connect(x->dsn);
	assert_non_null(c);
	PGresult *res = PQexec(c, "BEGIN; SELECT txid_current()");
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	PQclear(res);
	feed_day(x);
	struct store_stats st;
	store_get_stats(x->st, &st);
	uint64_t slices = st.rollup_slices;
	int64_t deadline = vw_mono_ms() + 20000;
	while (st.rollup_slices < slices + 5) {
		if (vw_mono_ms() > deadline)
			fail_msg("the job ran no slices");
		uv_sleep(20);
		store_get_stats(x->st, &st);
	}
	assert_int_equal(sql_value(x, "SELECT count(*) FROM results"), (int64_t)x->sent);
	res = PQexec(c, "COMMIT");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	PQfinish(c);
	deadline = vw_mono_ms() + 20000;
	while (sql_value(x, "SELECT count(*) FROM results") > 0) {
		if (vw_mono_ms() > deadline)
			fail_msg("the day past retention was not dropped");
		uv_sleep(20);
	}
	wait_job(x, x->sent, 0);
	read_inputs(x, &q, &got);
	assert_int_equal(got.nexams, want.nexams);
	assert_int_equal(got.ncredits, want.ncredits);
	assert_memory_equal(got.exams, want.exams, want.nexams * sizeof(want.exams[0]));
	assert_memory_equal(got.credits, want.credits, want.ncredits * sizeof(want.credits[0]));
	assert_memory_equal(got.ctargets, want.ctargets, sizeof(want.ctargets));
	struct inputs ev;
	memset(&ev, 0, sizeof(ev));
	wait_inputs(x, &ev,
	            store_score_evidence(x->st, 1, STORE_CLASS_STREAM, "cam1", on_inputs, &ev));
	assert_int_equal(ev.value, 1);
	assert_int_equal(ev.ntargets, 0);
	close_h(x);
	assert_int_equal(teardown(&st2), 0);
}

/* The rollup lease's holder, of x and y: x, y or NULL. */
static struct ctx *rollup_holder(struct ctx *x, struct ctx *y)
{
	struct store_lease lx[STORE_LEASES], ly[STORE_LEASES];
	store_leases(x->st, lx);
	store_leases(y->st, ly);
	assert_false(lx[STORE_LEASE_ROLLUP].held && ly[STORE_LEASE_ROLLUP].held);
	return lx[STORE_LEASE_ROLLUP].held ? x : ly[STORE_LEASE_ROLLUP].held ? y : NULL;
}

/* Polls (20 s at most) until the stores' flushed rows, together, reach rolled. */
static void wait_rolled_by_either(struct ctx *x, struct ctx *y, uint64_t rolled)
{
	int64_t deadline = vw_mono_ms() + 20000;
	for (;;) {
		struct store_stats a = {0}, b = {0};
		if (x->st)
			store_get_stats(x->st, &a);
		if (y->st)
			store_get_stats(y->st, &b);
		if (a.rows_rolled + b.rows_rolled >= rolled)
			return;
		if (vw_mono_ms() > deadline)
			fail_msg("the collectors rolled %llu of %llu rows in 20 s",
			         (unsigned long long)(a.rows_rolled + b.rows_rolled),
			         (unsigned long long)rolled);
		uv_sleep(20);
	}
}

/* issue 13, PostgreSQL only: two collectors on one database, each ingesting its own agent.
 * Only the rollup lease's holder rolls, so every result is credited once; when the holder
 * goes, the other takes the lease over (a new epoch), resumes from the persisted mark and
 * rolls what arrives after, still once each. */
static void two_collectors_roll_each_result_once(void **state)
{
	struct ctx *x = *state, *y;
	void *st2 = NULL;
	assert_int_equal(setup(&st2), 0); /* a directory of its own; x's database */
	y = st2;
	y->opt.backend = x->opt.backend;
	y->opt.dsn = x->dsn;
	y->opt.password_file = x->opt.password_file;
	y->opt.lease_ttl_ms = x->opt.lease_ttl_ms;
	y->opt.lease_renew_ms = x->opt.lease_renew_ms;
	y->agent = "b";
	open_h(x);
	open_h(y);
	add_exam(x, 1, "site-1", "2025-0001", T0, T0 + 2 * H, "*", 0);
	for (int64_t m = 0; m < 60; m++) {
		result(x, VW_KIND_STREAM, "cam-a", T0 + m * MINUTE, VW_STATUS_OK, 60000);
		result(y, VW_KIND_STREAM, "cam-b", T0 + m * MINUTE, VW_STATUS_OK, 60000);
	}
	flush(x);
	flush(y);
	wait_rolled_by_either(x, y, 120);
	struct ctx *holder = rollup_holder(x, y), *other = holder == x ? y : x;
	assert_non_null(holder);
	struct store_lease before[STORE_LEASES];
	store_leases(holder->st, before);
	struct store_stats hs;
	store_get_stats(holder->st, &hs);
	assert_int_equal(hs.rows_rolled, 120); /* the holder rolled both agents' results */
	close_h(holder);

	/* the second hour through the one left: it takes the lease when the holder's expires */
	for (int64_t m = 60; m < 120; m++)
		result(other, VW_KIND_STREAM, other == x ? "cam-a" : "cam-b", T0 + m * MINUTE,
		       VW_STATUS_OK, 60000);
	flush(other);
	int64_t deadline = vw_mono_ms() + 20000;
	struct store_lease now[STORE_LEASES];
	for (store_leases(other->st, now); !now[STORE_LEASE_ROLLUP].held;
	     store_leases(other->st, now)) {
		if (vw_mono_ms() > deadline)
			fail_msg("the rollup lease was not taken over");
		uv_sleep(20);
	}
	assert_true(now[STORE_LEASE_ROLLUP].epoch > before[STORE_LEASE_ROLLUP].epoch);
	wait_job(other, 60, 0);
	close_h(other);
	/* each target: its 60 or 120 results, credited once, 09:00 to its last hold's end */
	assert_int_equal(sql_value(x, "SELECT results FROM exam_credits WHERE target = 'cam-a'"),
	                 other == x ? 120 : 60);
	assert_int_equal(sql_value(x, "SELECT results FROM exam_credits WHERE target = 'cam-b'"),
	                 other == y ? 120 : 60);
	assert_int_equal(sql_value(x, "SELECT sum(results) FROM rollup_days"), 180);
	assert_int_equal(sql_value(x, "SELECT result_id FROM rollup_mark"),
	                 sql_value(x, "SELECT max(id) FROM results"));
	assert_int_equal(teardown(&st2), 0);
}

/* No argument: SQLite. "postgresql" (ctest test_rollup_postgresql, under tests/tools/pg.sh):
 * the same job on PostgreSQL, all but SQLite's own migrations and its row pruning (retention
 * there drops whole days: pruning_drops_rolled_days). */
/* The feed writes every second, more often than the job's tick: the tick is a deadline,
 * so an idle collector's job still rolls and flushes (it never ran between writes: each
 * write pushed the wait back, and the scale benchmark's backlog stayed unrolled). */
struct ticker {
	struct ctx *x;
	struct store_write w;
	int inflight;
	uint64_t writes;
};

static void on_tick_write(struct store_write *w)
{
	struct ticker *k = w->data;
	k->inflight = 0;
	k->writes++;
	store_events_clear(&w->events);
}

static void on_ticker(uv_timer_t *t)
{
	struct ticker *k = t->data;
	struct store_stats st;
	store_get_stats(k->x->st, &st);
	if (st.rows_rolled >= k->x->sent) {
		uv_timer_stop(t);
		uv_close((uv_handle_t *)t, NULL);
		return;
	}
	if (k->inflight)
		return;
	memset(&k->w, 0, sizeof(k->w));
	k->w.op = STORE_FEED_TICK;
	k->w.actor = "feed";
	k->w.silent_factor = 3;
	k->w.since_ms = k->x->received_ms;
	k->w.done = on_tick_write;
	k->w.data = k;
	if (store_write_submit(k->x->st, &k->w) == 0)
		k->inflight = 1;
}

static void job_runs_between_writes_faster_than_its_tick(void **state)
{
	struct ctx *x = *state;
	x->opt.rollup_tick_ms = 300;
	x->opt.rollup_flush_ms = 3000; /* so the slice after the commit flushes nothing */
	open_h(x);
	int64_t t0 = vw_now_ms() - 3600000;
	for (int i = 0; i < 200; i++)
		result(x, VW_KIND_STREAM, "cam-1", t0 + i * 1000, VW_STATUS_OK, 1000);
	flush(x);
	struct ticker k = {x, {0}, 0, 0};
	uv_timer_t t;
	uv_timer_init(&x->loop, &t);
	t.data = &k;
	uv_timer_start(&t, on_ticker, 0, 50);
	int64_t deadline = vw_mono_ms() + 20000;
	while (!uv_is_closing((uv_handle_t *)&t) && vw_mono_ms() < deadline)
		uv_run(&x->loop, UV_RUN_ONCE);
	if (!uv_is_closing((uv_handle_t *)&t)) {
		uv_timer_stop(&t);
		uv_close((uv_handle_t *)&t, NULL);
	}
	while (k.inflight)
		uv_run(&x->loop, UV_RUN_ONCE);
	uv_run(&x->loop, UV_RUN_NOWAIT);
	struct store_stats st;
	store_get_stats(x->st, &st);
	if (st.rows_rolled < x->sent)
		fail_msg("rolled %llu of %zu in 20 s beside %llu writes",
		         (unsigned long long)st.rows_rolled, x->sent, (unsigned long long)k.writes);
	assert_true(k.writes > 0);
	close_h(x);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "postgresql") == 0) {
		if (!getenv("VW_PG_DSN")) {
			fprintf(stderr, "test_rollup postgresql: no VW_PG_DSN (run it under "
			                "tests/tools/pg.sh)\n");
			return 1;
		}
		setup_any = setup_pg;
		const struct CMUnitTest pg[] = {
		    cmocka_unit_test_setup_teardown(credits_follow_the_rule, setup_pg, teardown),
		    cmocka_unit_test_setup_teardown(backlog_counts_at_check_time, setup_pg,
		                                    teardown),
		    cmocka_unit_test_setup_teardown(silent_target_is_credited_to_its_bound,
		                                    setup_pg, teardown),
		    cmocka_unit_test_setup_teardown(crash_between_flushes_counts_nothing_twice,
		                                    setup_pg, teardown),
		    cmocka_unit_test_setup_teardown(session_added_later_is_credited, setup_pg,
		                                    teardown),
		    cmocka_unit_test_setup_teardown(sums_survive_their_tables_growing, setup_pg,
		                                    teardown),
		    cmocka_unit_test_setup_teardown(ids_committed_out_of_order_are_all_rolled,
		                                    setup_pg, teardown),
		    cmocka_unit_test_setup_teardown(pruning_drops_rolled_days, setup_pg, teardown),
		    cmocka_unit_test_setup_teardown(two_collectors_roll_each_result_once, setup_pg,
		                                    teardown),
		    cmocka_unit_test_setup_teardown(job_runs_between_writes_faster_than_its_tick,
		                                    setup_pg, teardown),
		};
		return cmocka_run_group_tests_name("rollup: postgresql store", pg, NULL, NULL);
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(credits_follow_the_rule, setup, teardown),
	    cmocka_unit_test_setup_teardown(backlog_counts_at_check_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(pruning_keeps_score_inputs, setup, teardown),
	    cmocka_unit_test_setup_teardown(silent_target_is_credited_to_its_bound, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(old_database_migrates_and_its_results_are_rolled, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(crash_between_flushes_counts_nothing_twice, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(session_added_later_is_credited, setup, teardown),
	    cmocka_unit_test_setup_teardown(cadence_is_stored_in_its_column, setup, teardown),
	    cmocka_unit_test_setup_teardown(results_from_before_the_column_keep_their_cadence,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(sums_survive_their_tables_growing, setup, teardown),
	    cmocka_unit_test_setup_teardown(job_runs_between_writes_faster_than_its_tick, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
