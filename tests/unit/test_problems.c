/* problems: the feed's problems and stored events (issue 16, part A), through store.h with
 * real SQLite files (or, with the argument "postgresql" under tests/tools/pg.sh, a real
 * PostgreSQL database: issue 13), the real writer and reader threads and a real loop. A target's
 * latest status leaving ok opens a problem in the batch's own transaction, a new status or new
 * fault codes update it, ok closes it; every change is a stored event with a monotonic id,
 * delivered to the store's event callback in id order; a rolled-back batch leaves neither.
 * Silence is the feed tick's (a write), closed by the site's next batch; acks happen once,
 * in scope; the backlog read and the problems list page as the API needs. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include <cmocka.h>

#include "store.h"
#include "testdir.h"
#include "testpg.h"
#include "vtime.h"

#define MINUTE 60000LL

struct ev {
	int64_t id;
	char type[32], site[64];
	cJSON *data;
};

struct ctx {
	char dir[64];
	char db[64], dsn[512]; /* issue 13, postgresql: this test's own database ("" = sqlite) */
	struct store_options opt;
	uv_loop_t loop;
	struct store *st;
	struct store *other; /* a second collector's, closed by teardown on a failure too */
	int done;
	int64_t seq;
	struct ev evs[256];
	size_t nevs;
	/* issue 13: the ids the second collector's event_cb got, in order */
	int64_t other_ids[256];
	size_t nother;
	/* a read's reply, copied */
	int rstatus;
	size_t rn;
	struct ev rev[64];
	int64_t pruned_id, last_id;
	int reads_done;
};

static void on_event(void *ud, const struct store_event *e)
{
	struct ctx *x = ud;
	assert_true(x->nevs < 256);
	struct ev *v = &x->evs[x->nevs++];
	v->id = e->id;
	snprintf(v->type, sizeof(v->type), "%s", e->type);
	snprintf(v->site, sizeof(v->site), "%s", e->site);
	v->data = cJSON_Parse(e->data);
	assert_non_null(v->data);
}

static void on_other_event(void *ud, const struct store_event *e)
{
	struct ctx *x = ud;
	assert_true(x->nother < 256);
	x->other_ids[x->nother++] = e->id;
}

static void evs_free(struct ctx *x)
{
	for (size_t i = 0; i < x->nevs; i++)
		cJSON_Delete(x->evs[i].data);
	x->nevs = 0;
	for (size_t i = 0; i < x->rn; i++)
		cJSON_Delete(x->rev[i].data);
	x->rn = 0;
}

static int setup(void **state)
{
	struct ctx *x = calloc(1, sizeof(*x));
	if (!x || testdir_make(x->dir, sizeof(x->dir), "problems")) {
		free(x);
		return -1;
	}
	x->opt.backend = "sqlite";
	x->opt.dir = x->dir;
	x->opt.rollup_tick_ms = -1; /* the job is not what this tests */
	*state = x;
	return 0;
}

/* issue 13: the same tests on PostgreSQL (testpg.h), under tests/tools/pg.sh. */
static int setup_pg(void **state)
{
	if (setup(state))
		return -1;
	struct ctx *x = *state;
	if (testpg_make("problems", x->db, sizeof(x->db), x->dsn, sizeof(x->dsn)))
		return -1;
	x->opt.backend = "postgresql";
	x->opt.dsn = x->dsn;
	x->opt.password_file = getenv("VW_PG_PASSFILE");
	return 0;
}

static void open_h(struct ctx *x)
{
	char err[256];
	assert_int_equal(uv_loop_init(&x->loop), 0);
	if (store_open(&x->opt, &x->st, err, sizeof(err)))
		fail_msg("store_open: %s", err);
	store_set_event_cb(x->st, on_event, x);
	assert_int_equal(store_start(x->st, &x->loop, 64), 0);
}

static void close_h(struct ctx *x)
{
	store_close(x->st);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&x->loop), 0);
	x->st = NULL;
}

static int teardown(void **state)
{
	struct ctx *x = *state;
	if (x->other)
		store_close(x->other);
	if (x->st)
		close_h(x);
	evs_free(x);
	int rc = testdir_remove(x->dir);
	if (x->db[0] && testpg_remove(x->db))
		rc = -1;
	free(x);
	return rc;
}

/* One value of sql, on whichever store the test runs (the SQL is the same on both). */
static int64_t sql_value(struct ctx *x, const char *sql)
{
	if (x->db[0]) {
		int64_t v = -1;
		assert_int_equal(testpg_query(x->dsn, sql, &v), 0);
		return v;
	}
	char path[128];
	snprintf(path, sizeof(path), "%s/venuewatch.db", x->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (sqlite3_exec(db, "SELECT 1", NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("db");
	sqlite3_close(db);
	return v;
}

static void sql_exec(struct ctx *x, const char *sql)
{
	if (x->db[0]) {
		assert_int_equal(testpg_query(x->dsn, sql, NULL), 0);
		return;
	}
	char path[128];
	snprintf(path, sizeof(path), "%s/venuewatch.db", x->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

static void on_done(struct store_batch *b)
{
	struct ctx *x = b->data;
	x->done++;
}

/* One batch of one result of site (org / city) from agent a; returns the batch status. */
static int send_place(struct ctx *x, const char *site, const char *org, const char *city,
                      const char *target, enum vw_status status, const char *fault, int64_t ts,
                      int64_t received)
{
	struct store_batch *b = store_batch_create();
	assert_non_null(b);
	snprintf(b->site, sizeof(b->site), "%s", site);
	snprintf(b->agent, sizeof(b->agent), "a");
	snprintf(b->org, sizeof(b->org), "%s", org);
	snprintf(b->city, sizeof(b->city), "%s", city);
	b->received_ms = received;
	b->cadence_ms = 15000;
	struct vw_result r;
	vw_result_init(&r, VW_KIND_STREAM, target);
	r.seq = ++x->seq;
	r.ts_ms = ts;
	r.status = status;
	if (fault)
		vw_result_add_fault_name(&r, fault);
	assert_int_equal(store_batch_add(b, &r), 0);
	store_batch_sort(b);
	b->done = on_done;
	b->data = x;
	int want = x->done + 1;
	assert_int_equal(store_submit(x->st, b), 0);
	while (x->done < want)
		uv_run(&x->loop, UV_RUN_ONCE);
	int rc = b->status;
	/* Valid during done only: the store cleared a failed batch's events. */
	if (rc)
		assert_int_equal(b->events.n, 0);
	store_batch_destroy(b);
	return rc;
}

static int send_city(struct ctx *x, const char *site, const char *city, const char *target,
                     enum vw_status status, const char *fault, int64_t ts, int64_t received)
{
	return send_place(x, site, "org-1", city, target, status, fault, ts, received);
}

static int send1(struct ctx *x, const char *target, enum vw_status status, const char *fault,
                 int64_t ts)
{
	return send_city(x, "site-1", "Jinan", target, status, fault, ts, ts);
}

static void on_write(struct store_write *w)
{
	struct ctx *x = w->data;
	x->done++;
}

static int write_now(struct ctx *x, struct store_write *w)
{
	w->done = on_write;
	w->data = x;
	int want = x->done + 1;
	assert_int_equal(store_write_submit(x->st, w), 0);
	while (x->done < want)
		uv_run(&x->loop, UV_RUN_ONCE);
	store_events_clear(&w->events);
	return w->status;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t jint(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
}

static void assert_ids_rise(struct ctx *x)
{
	for (size_t i = 1; i < x->nevs; i++)
		assert_true(x->evs[i].id > x->evs[i - 1].id);
}

static void change_opens_updates_and_closes_a_problem(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	int64_t t = vw_now_ms() - 10 * MINUTE;
	assert_int_equal(send1(x, "cam1", VW_STATUS_OK, NULL, t), 0);
	assert_int_equal(send1(x, "cam1", VW_STATUS_OK, NULL, t + 1000), 0);
	assert_int_equal(x->nevs, 0); /* first seen ok, then unchanged: nothing to say */

	assert_int_equal(send1(x, "cam1", VW_STATUS_DOWN, "black", t + 2000), 0);
	assert_int_equal(x->nevs, 2);
	assert_string_equal(x->evs[0].type, "status");
	assert_string_equal(jstr(x->evs[0].data, "from"), "ok");
	assert_string_equal(jstr(x->evs[0].data, "to"), "down");
	assert_string_equal(x->evs[1].type, "problem_opened");
	const cJSON *p = x->evs[1].data;
	assert_string_equal(jstr(p, "state"), "open");
	assert_string_equal(jstr(p, "severity"), "major");
	assert_string_equal(jstr(p, "target"), "cam1");
	assert_string_equal(jstr(p, "city"), "Jinan");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(p, "end")));
	int64_t id = jint(p, "id");

	/* Same status, same fault: nothing. Same status, a new fault: updated (union). */
	assert_int_equal(send1(x, "cam1", VW_STATUS_DOWN, "black", t + 3000), 0);
	assert_int_equal(x->nevs, 2);
	assert_int_equal(send1(x, "cam1", VW_STATUS_DOWN, "frozen", t + 4000), 0);
	assert_int_equal(x->nevs, 3);
	assert_string_equal(x->evs[2].type, "problem_updated");
	const cJSON *f = cJSON_GetObjectItem(x->evs[2].data, "faults");
	assert_int_equal(cJSON_GetArraySize(f), 2);
	/* degraded: a status change, the worst stays down. */
	assert_int_equal(send1(x, "cam1", VW_STATUS_DEGRADED, NULL, t + 5000), 0);
	assert_int_equal(x->nevs, 5);
	assert_string_equal(x->evs[4].type, "problem_updated");
	assert_string_equal(jstr(x->evs[4].data, "status"), "degraded");
	assert_string_equal(jstr(x->evs[4].data, "worst"), "down");
	assert_int_equal(jint(x->evs[4].data, "id"), id);
	/* ok closes it, after 4 s. */
	assert_int_equal(send1(x, "cam1", VW_STATUS_OK, NULL, t + 6000), 0);
	assert_int_equal(x->nevs, 7);
	assert_string_equal(x->evs[5].type, "status");
	assert_string_equal(x->evs[6].type, "problem_closed");
	assert_string_equal(jstr(x->evs[6].data, "state"), "closed");
	assert_int_equal(jint(x->evs[6].data, "duration_s"), 4);
	assert_ids_rise(x);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM problems"), 1);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM events"), 7);
	/* A second spell is a second problem. */
	assert_int_equal(send1(x, "cam1", VW_STATUS_DEGRADED, "blurred", t + 7000), 0);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM problems WHERE end_ms IS NULL"), 1);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM problems"), 2);
	assert_string_equal(jstr(x->evs[x->nevs - 1].data, "severity"), "minor");
}

static void first_seen_down_opens_and_survives_restart(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	int64_t t = vw_now_ms() - MINUTE;
	assert_int_equal(send1(x, "cam9", VW_STATUS_DOWN, "unreachable", t), 0);
	assert_int_equal(x->nevs, 2);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(x->evs[0].data, "from")));
	int64_t last = x->evs[1].id;
	close_h(x);
	evs_free(x);
	open_h(x);
	/* Still open after a restart: the next ok closes that same problem, and ids go on. */
	assert_int_equal(send1(x, "cam9", VW_STATUS_OK, NULL, t + 1000), 0);
	assert_int_equal(x->nevs, 2);
	assert_string_equal(x->evs[1].type, "problem_closed");
	assert_true(x->evs[0].id > last);
}

static void exam_session_raises_severity(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	int64_t now = vw_now_ms();
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "INSERT INTO exam_sessions(org, city, site, code, occupation, level, start_ms,"
	         " end_ms, rooms, created_ms, updated_ms) VALUES('org-1', 'Jinan', 'site-1', 'x1',"
	         " '电工', '四级', %lld, %lld, '*', 1, 1)",
	         (long long)(now - 10 * MINUTE), (long long)(now + 10 * MINUTE));
	sql_exec(x, sql);
	/* A cancelled one at another site changes nothing there. */
	snprintf(sql, sizeof(sql),
	         "INSERT INTO exam_sessions(org, city, site, code, occupation, level, start_ms,"
	         " end_ms, rooms, created_ms, updated_ms, cancelled_ms) VALUES('org-1', 'Jinan',"
	         " 'site-2', 'x2', '电工', '四级', %lld, %lld, '*', 1, 1, 1)",
	         (long long)(now - 10 * MINUTE), (long long)(now + 10 * MINUTE));
	sql_exec(x, sql);
	assert_int_equal(send1(x, "cam1", VW_STATUS_DOWN, "black", now), 0);
	assert_string_equal(jstr(x->evs[1].data, "severity"), "critical");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(x->evs[1].data, "in_session")));
	assert_int_equal(
	    send_city(x, "site-2", "Jinan", "cam1", VW_STATUS_DEGRADED, NULL, now, now), 0);
	assert_string_equal(jstr(x->evs[3].data, "severity"), "minor");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(x->evs[3].data, "in_session")));
}

static void refused_batch_leaves_no_problem_and_no_event(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	int64_t t = vw_now_ms();
	assert_int_equal(send1(x, "cam1", VW_STATUS_OK, NULL, t), 0);
	/* The same site from another city: refused (-EPERM) and rolled back. */
	assert_int_equal(
	    send_city(x, "site-1", "Qingdao", "cam1", VW_STATUS_DOWN, "black", t + 1, t), -EPERM);
	assert_int_equal(x->nevs, 0);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM problems"), 0);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM events"), 0);
}

static void silent_site_opens_site_silent_and_its_batch_closes_it(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	int64_t now = vw_now_ms();
	/* Heard from 100 s ago with a 15 s cadence: 3 x = 45 s, so silent. site-2 reported
	 * just now. */
	assert_int_equal(
	    send_city(x, "site-1", "Jinan", "cam1", VW_STATUS_OK, NULL, now - 100000, now - 100000),
	    0);
	assert_int_equal(send_city(x, "site-2", "Jinan", "cam1", VW_STATUS_OK, NULL, now, now), 0);
	struct store_write w = {.op = STORE_FEED_TICK, .silent_factor = 3, .since_ms = 0};
	assert_int_equal(write_now(x, &w), 0);
	assert_int_equal(x->nevs, 2);
	assert_string_equal(x->evs[0].type, "status");
	assert_string_equal(jstr(x->evs[0].data, "kind"), "site");
	assert_string_equal(x->evs[1].type, "problem_opened");
	assert_string_equal(x->evs[1].site, "site-1");
	const cJSON *f = cJSON_GetObjectItem(x->evs[1].data, "faults");
	assert_string_equal(cJSON_GetArrayItem(f, 0)->valuestring, "site_silent");
	assert_string_equal(jstr(x->evs[1].data, "kind"), "site");
	/* A second tick does not open it again, nor does a restarted store's. */
	struct store_write w2 = {.op = STORE_FEED_TICK, .silent_factor = 3};
	assert_int_equal(write_now(x, &w2), 0);
	assert_int_equal(x->nevs, 2);
	close_h(x);
	open_h(x);
	struct store_write w2b = {.op = STORE_FEED_TICK, .silent_factor = 3};
	assert_int_equal(write_now(x, &w2b), 0);
	assert_int_equal(x->nevs, 2);
	/* Silence counts from since_ms (the server's start) at the earliest. */
	assert_int_equal(sql_value(x, "SELECT count(*) FROM problems WHERE target = ''"), 1);
	/* The next batch closes it, in its own commit. */
	assert_int_equal(send_city(x, "site-1", "Jinan", "cam1", VW_STATUS_OK, NULL, now, now), 0);
	assert_int_equal(x->nevs, 4);
	assert_string_equal(x->evs[3].type, "problem_closed");
	assert_int_equal(
	    sql_value(x, "SELECT count(*) FROM feed_sites WHERE silent_id IS NOT NULL"), 0);
	/* A server that just started (since_ms = now) gives every site its whole bound. */
	sql_exec(x, "UPDATE feed_sites SET last_batch_ms = 1");
	struct store_write w3 = {.op = STORE_FEED_TICK, .silent_factor = 3, .since_ms = now};
	assert_int_equal(write_now(x, &w3), 0);
	assert_int_equal(x->nevs, 4);
	/* A fixed bound applies whatever the cadence. */
	struct store_write w4 = {.op = STORE_FEED_TICK, .silent_ms = 1000, .since_ms = 0};
	assert_int_equal(write_now(x, &w4), 0);
	assert_int_equal(x->nevs, 8); /* both sites */
}

static void ack_once_in_scope(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	int64_t t = vw_now_ms();
	assert_int_equal(send1(x, "cam1", VW_STATUS_DOWN, "black", t), 0);
	int64_t id = jint(x->evs[1].data, "id");
	struct store_write w = {.op = STORE_PROBLEM_ACK,
	                        .problem_id = id,
	                        .ack_by = "张三",
	                        .ack_message = "已通知考点",
	                        .scope_city = "Qingdao"};
	assert_int_equal(write_now(x, &w), -ENOENT); /* another city's: as if none */
	assert_int_equal(x->nevs, 2);
	struct store_write w2 = {.op = STORE_PROBLEM_ACK,
	                         .problem_id = id,
	                         .ack_by = "张三",
	                         .ack_message = "已通知考点",
	                         .scope_city = "Jinan"};
	assert_int_equal(write_now(x, &w2), 0);
	assert_int_equal(x->nevs, 3);
	assert_string_equal(x->evs[2].type, "problem_acked");
	const cJSON *ack = cJSON_GetObjectItem(x->evs[2].data, "ack");
	assert_string_equal(jstr(ack, "by"), "张三");
	assert_string_equal(jstr(ack, "message"), "已通知考点");
	struct store_write w3 = {.op = STORE_PROBLEM_ACK, .problem_id = id, .ack_by = "李四"};
	assert_int_equal(write_now(x, &w3), -EALREADY);
	struct store_write w4 = {.op = STORE_PROBLEM_ACK, .problem_id = id + 100, .ack_by = "李四"};
	assert_int_equal(write_now(x, &w4), -ENOENT);
	assert_int_equal(x->nevs, 3);
}

static void on_read(void *ud, const struct store_reply *r)
{
	struct ctx *x = ud;
	x->reads_done++;
	x->rstatus = r->status;
	x->pruned_id = r->events_pruned_id;
	x->last_id = r->events_last_id;
	for (size_t i = 0; i < x->rn; i++)
		cJSON_Delete(x->rev[i].data);
	x->rn = 0;
	for (size_t i = 0; i < r->nevents && i < 64; i++) {
		struct ev *v = &x->rev[x->rn++];
		v->id = r->events[i].id;
		snprintf(v->type, sizeof(v->type), "%s", r->events[i].type);
		snprintf(v->site, sizeof(v->site), "%s", r->events[i].site);
		v->data = cJSON_Parse(r->events[i].data);
		assert_non_null(v->data);
	}
}

static void wait_read(struct ctx *x, int rc)
{
	assert_int_equal(rc, 0);
	int want = x->reads_done + 1;
	while (x->reads_done < want)
		uv_run(&x->loop, UV_RUN_ONCE);
}

static void backlog_and_list_read_what_was_stored(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	int64_t t = vw_now_ms() - 10 * MINUTE;
	for (int i = 0; i < 5; i++) {
		char cam[16];
		snprintf(cam, sizeof(cam), "cam%d", i);
		assert_int_equal(send1(x, cam, VW_STATUS_DOWN, "black", t + i * 1000), 0);
	}
	assert_int_equal(send1(x, "cam0", VW_STATUS_OK, NULL, t + 9000), 0);
	assert_int_equal(x->nevs, 12);
	int64_t mid = x->evs[5].id;
	wait_read(x, store_events_after(x->st, mid, 100, on_read, x));
	assert_int_equal(x->rstatus, 0);
	assert_int_equal(x->rn, 6);
	assert_int_equal(x->rev[0].id, x->evs[6].id);
	assert_int_equal(x->last_id, x->evs[11].id);
	assert_int_equal(x->pruned_id, 0);
	/* Paged by the limit. */
	wait_read(x, store_events_after(x->st, 0, 4, on_read, x));
	assert_int_equal(x->rn, 4);
	assert_int_equal(x->rev[3].id, x->evs[3].id);

	/* Open problems newest first, two a page. */
	struct store_problem_query q = {.state = 1, .limit = 2};
	wait_read(x, store_problems_list(x->st, &q, on_read, x));
	assert_int_equal(x->rn, 2);
	assert_string_equal(jstr(x->rev[0].data, "target"), "cam4");
	assert_string_equal(jstr(x->rev[1].data, "target"), "cam3");
	q.before_start_ms = t + 3000;
	q.before_id = x->rev[1].id;
	wait_read(x, store_problems_list(x->st, &q, on_read, x));
	assert_int_equal(x->rn, 2);
	assert_string_equal(jstr(x->rev[0].data, "target"), "cam2");
	struct store_problem_query closed = {.state = 2, .limit = 10};
	wait_read(x, store_problems_list(x->st, &closed, on_read, x));
	assert_int_equal(x->rn, 1);
	assert_string_equal(jstr(x->rev[0].data, "target"), "cam0");
	struct store_problem_query other = {.state = 0, .city = "Qingdao", .limit = 10};
	wait_read(x, store_problems_list(x->st, &other, on_read, x));
	assert_int_equal(x->rn, 0);
	/* Overlapping [from, to): cam0 ran t .. t + 9 s. */
	struct store_problem_query win = {.from_ms = t + 9500, .to_ms = t + 20000, .limit = 10};
	wait_read(x, store_problems_list(x->st, &win, on_read, x));
	assert_int_equal(x->rn, 4);

	/* Pruning: every event is older than a 1 min retention (stamped at t .. t + 9 s). */
	struct store_write w = {
	    .op = STORE_FEED_TICK, .silent_ms = 86400000, .event_retention_ms = MINUTE};
	assert_int_equal(write_now(x, &w), 0);
	wait_read(x, store_events_after(x->st, 0, 100, on_read, x));
	assert_int_equal(x->rn, 0);
	assert_int_equal(x->pruned_id, x->evs[11].id);
	assert_int_equal(x->last_id, x->evs[11].id);
}

/* The query plan of sql (the store's statement shape) names index. */
static void plan_uses(struct ctx *x, const char *sql, const char *index)
{
	if (x->db[0])
		return; /* SQLite's plan; PostgreSQL's: pg_scoped_reads_use_their_indexes */
	char path[128];
	snprintf(path, sizeof(path), "%s/venuewatch.db", x->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char q[1024];
	snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	char plan[1024] = "";
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 3);
		snprintf(plan + strlen(plan), sizeof(plan) - strlen(plan), "%s; ", d ? d : "");
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (!strstr(plan, index))
		fail_msg("%s: plan '%s' does not use %s", sql, plan, index);
}

/* A resume's backlog and a problems list read their own scope's rows in SQL: a city's or
 * an org's never sees (or pages through) another's, "\x01" names no scope, and a page ends
 * at max_bytes of data. */
static void scoped_reads_read_their_own_scope_only(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	int64_t t = vw_now_ms() - 10 * MINUTE;
	static const struct {
		const char *site, *org, *city;
		int cams;
	} places[] = {{"site-jn", "org-1", "Jinan", 3},
	              {"site-qd", "org-1", "Qingdao", 2},
	              {"site-wh", "org-2", "Weihai", 2}};
	for (size_t p = 0; p < 3; p++)
		for (int i = 0; i < places[p].cams; i++) {
			char cam[16];
			snprintf(cam, sizeof(cam), "cam%d", i);
			int64_t ts = t + (int64_t)(p * 10 + (size_t)i) * 1000;
			assert_int_equal(send_place(x, places[p].site, places[p].org,
			                            places[p].city, cam, VW_STATUS_DOWN, "black",
			                            ts, ts),
			                 0);
		}
	assert_int_equal(x->nevs, 14); /* a status and a problem_opened per camera */

	struct store_events_query q = {.limit = 100, .city = "Jinan"};
	wait_read(x, store_events_scoped(x->st, &q, on_read, x));
	assert_int_equal(x->rstatus, 0);
	assert_int_equal(x->rn, 6);
	for (size_t i = 0; i < x->rn; i++)
		assert_string_equal(x->rev[i].site, "site-jn");
	assert_int_equal(x->last_id, x->evs[13].id); /* the marks are the whole table's */
	q = (struct store_events_query){.limit = 100, .org = "org-2"};
	wait_read(x, store_events_scoped(x->st, &q, on_read, x));
	assert_int_equal(x->rn, 4);
	for (size_t i = 0; i < x->rn; i++)
		assert_string_equal(x->rev[i].site, "site-wh");
	q = (struct store_events_query){.limit = 100, .org = "org-1"};
	wait_read(x, store_events_scoped(x->st, &q, on_read, x));
	assert_int_equal(x->rn, 10);
	q = (struct store_events_query){.limit = 100, .city = "\x01"};
	wait_read(x, store_events_scoped(x->st, &q, on_read, x));
	assert_int_equal(x->rn, 0);
	/* Paged after an id, by rows and by bytes: one byte of data ends a page at its row. */
	q = (struct store_events_query){.limit = 2, .city = "Qingdao"};
	wait_read(x, store_events_scoped(x->st, &q, on_read, x));
	assert_int_equal(x->rn, 2);
	q.after_id = x->rev[1].id;
	q.limit = 100;
	q.max_bytes = 1;
	wait_read(x, store_events_scoped(x->st, &q, on_read, x));
	assert_int_equal(x->rn, 1);
	assert_true(x->rev[0].id > q.after_id);
	assert_string_equal(x->rev[0].site, "site-qd");
	q = (struct store_events_query){.limit = 10, .org = "org-1", .city = "Jinan"};
	assert_int_equal(store_events_scoped(x->st, &q, on_read, x), -EINVAL);
	plan_uses(x,
	          "SELECT id, data FROM events WHERE city = 'x' AND id > 0 ORDER BY id LIMIT 500",
	          "events_city");
	plan_uses(x, "SELECT id, data FROM events WHERE org = 'x' AND id > 0 ORDER BY id LIMIT 500",
	          "events_org");

	/* Problems: narrowed by the city's, the org's or the site's own index. */
	struct store_problem_query pq = {.limit = 10, .city = "Jinan"};
	wait_read(x, store_problems_list(x->st, &pq, on_read, x));
	assert_int_equal(x->rn, 3);
	for (size_t i = 0; i < x->rn; i++)
		assert_string_equal(x->rev[i].site, "site-jn");
	pq = (struct store_problem_query){.limit = 10, .org = "org-2"};
	wait_read(x, store_problems_list(x->st, &pq, on_read, x));
	assert_int_equal(x->rn, 2);
	assert_string_equal(x->rev[0].site, "site-wh");
	pq = (struct store_problem_query){.limit = 10, .org = "org-1", .city = "Qingdao"};
	wait_read(x, store_problems_list(x->st, &pq, on_read, x));
	assert_int_equal(x->rn, 2);
	assert_string_equal(x->rev[0].site, "site-qd");
	pq = (struct store_problem_query){.limit = 10, .city = "\x01"};
	wait_read(x, store_problems_list(x->st, &pq, on_read, x));
	assert_int_equal(x->rn, 0);
	pq = (struct store_problem_query){.limit = 10, .org = "\x01"};
	wait_read(x, store_problems_list(x->st, &pq, on_read, x));
	assert_int_equal(x->rn, 0);
	/* A page of a city, then the next from its cursor: still that city's only. */
	pq = (struct store_problem_query){.limit = 2, .city = "Jinan"};
	wait_read(x, store_problems_list(x->st, &pq, on_read, x));
	assert_int_equal(x->rn, 2);
	pq.before_id = x->rev[1].id;
	pq.before_start_ms = t + 1000; /* cam1 of Jinan started at t + 1 s */
	wait_read(x, store_problems_list(x->st, &pq, on_read, x));
	assert_int_equal(x->rn, 1);
	assert_string_equal(x->rev[0].site, "site-jn");
	assert_string_equal(jstr(x->rev[0].data, "target"), "cam0");
	plan_uses(x,
	          "SELECT id FROM problems WHERE city = 'x' AND (0 = 0 OR start_ms < 5)"
	          " ORDER BY start_ms DESC, id DESC LIMIT 100",
	          "problems_city_start");
	plan_uses(x,
	          "SELECT id FROM problems WHERE org = 'x' AND (0 = 0 OR start_ms < 5)"
	          " ORDER BY start_ms DESC, id DESC LIMIT 100",
	          "problems_org_start");
}

/* issue 13: the PostgreSQL backend's scoped reads take the city's, org's or site's own index
 * (the planner's choice, on tables analysed with these rows: few rows would make a whole
 * scan cheaper than any index, so the tables are padded first). */
static void pg_plan_uses(struct ctx *x, const char *sql, const char *index)
{
	PGconn *c = testpg_connect(x->dsn);
	assert_non_null(c);
	char q[1024];
	snprintf(q, sizeof(q), "EXPLAIN %s", sql);
	PGresult *r = PQexec(c, q);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	char plan[2048] = "";
	for (int i = 0; i < PQntuples(r); i++)
		snprintf(plan + strlen(plan), sizeof(plan) - strlen(plan), "%s; ",
		         PQgetvalue(r, i, 0));
	PQclear(r);
	PQfinish(c);
	if (!strstr(plan, index))
		fail_msg("%s: plan '%s' does not use %s", sql, plan, index);
}

static void pg_scoped_reads_use_their_indexes(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	/* 20,000 events and problems of 200 cities: a city is 1/200 of either */
	sql_exec(x,
	         "INSERT INTO events(id, ts_ms, type, site, org, city, data)"
	         " SELECT g, g, 'status', 's' || (g % 200), 'o' || (g % 200), 'c' || (g % 200),"
	         " '{}' FROM generate_series(1, 20000) g;"
	         "INSERT INTO problems(site, org, city, agent, kind, target, status, worst,"
	         " severity, faults, start_ms, end_ms) SELECT 's' || (g % 200), 'o' || (g % 200),"
	         " 'c' || (g % 200), 'a', 'stream', 'cam' || g, 'down', 'down', 'major', '[]', g,"
	         " g + 1 FROM generate_series(1, 20000) g;"
	         "ANALYZE events; ANALYZE problems");
	pg_plan_uses(x, "SELECT id FROM events WHERE city = 'c7' AND id > 0 ORDER BY id LIMIT 500",
	             "events_city");
	pg_plan_uses(x, "SELECT id FROM events WHERE org = 'o7' AND id > 0 ORDER BY id LIMIT 500",
	             "events_org");
	pg_plan_uses(x,
	             "SELECT id FROM problems WHERE city = 'c7' ORDER BY start_ms DESC, id DESC"
	             " LIMIT 100",
	             "problems_city_start");
	pg_plan_uses(x,
	             "SELECT id FROM problems WHERE org = 'o7' ORDER BY start_ms DESC, id DESC"
	             " LIMIT 100",
	             "problems_org_start");
}

/* issue 13: two collectors on one database. Their events' ids are one sequence of the
 * database's, never handed out twice, and the backlog read on either holds both's; each
 * collector's event_cb (its streams, its notifier) gets every event of both, once, in id
 * order (the fan-out: read back from the store); their
 * feed ticks at once open a silent site's site_silent once, and only the feed lease's holder
 * (issue 13) does. */
static void pg_two_collectors_share_the_feed(void **state)
{
	struct ctx *x = *state;
	char err[256];
	open_h(x);
	if (store_open(&x->opt, &x->other, err, sizeof(err)))
		fail_msg("store_open: %s", err);
	struct store *other = x->other;
	store_set_event_cb(other, on_other_event, x);
	assert_int_equal(store_start(other, &x->loop, 64), 0);
	int64_t now = vw_now_ms();
	struct store *mine = x->st;
	for (int i = 0; i < 10; i++) {
		char site[16];
		snprintf(site, sizeof(site), "site-%d", i);
		x->st = i % 2 ? other : mine; /* send_place submits to x->st */
		int rc = send_city(x, site, "Jinan", "cam1", VW_STATUS_DOWN, "black", now - 100000,
		                   now - 100000);
		x->st = mine;
		assert_int_equal(rc, 0);
	}
	/* each got both's 20 (2 per site: status, problem_opened), its own at once and the
	 * other's within a follow read: poll the loop with a deadline */
	int64_t t0 = vw_mono_ms();
	while (x->nevs < 20 || x->nother < 20) {
		if (vw_mono_ms() - t0 > 60000)
			fail_msg("fan-out: %zu and %zu of 20 events", x->nevs, x->nother);
		uv_run(&x->loop, UV_RUN_NOWAIT);
		usleep(10000);
	}
	assert_int_equal(x->nevs, 20);
	assert_int_equal(x->nother, 20);
	assert_ids_rise(x);
	for (size_t i = 0; i < 20; i++)
		assert_int_equal(x->other_ids[i], x->evs[i].id);
	wait_read(x, store_events_after(x->st, 0, 100, on_read, x));
	assert_int_equal(x->rn, 20);
	for (size_t i = 1; i < x->rn; i++)
		assert_true(x->rev[i].id > x->rev[i - 1].id);
	/* issue 13: the feed lease is mine (taken at open): other's tick alone detects nothing */
	struct store_write lone = {
	    .op = STORE_FEED_TICK, .silent_factor = 3, .done = on_write, .data = x};
	int lone_done = x->done + 1;
	assert_int_equal(store_write_submit(other, &lone), 0);
	while (x->done < lone_done)
		uv_run(&x->loop, UV_RUN_ONCE);
	assert_int_equal(lone.status, 0);
	store_events_clear(&lone.events);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM problems WHERE kind = 'site'"), 0);
	/* every site silent (heard 100 s ago, 15 s cadence): both ticks at once */
	struct store_write w[2] = {{.op = STORE_FEED_TICK, .silent_factor = 3},
	                           {.op = STORE_FEED_TICK, .silent_factor = 3}};
	int want = x->done + 2;
	for (int k = 0; k < 2; k++) {
		w[k].done = on_write;
		w[k].data = x;
		assert_int_equal(store_write_submit(k ? other : mine, &w[k]), 0);
	}
	while (x->done < want)
		uv_run(&x->loop, UV_RUN_ONCE);
	assert_int_equal(w[0].status, 0);
	assert_int_equal(w[1].status, 0);
	store_events_clear(&w[0].events);
	store_events_clear(&w[1].events);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM problems WHERE kind = 'site'"), 10);
	t0 = vw_mono_ms();
	while (x->nevs < 40 || x->nother < 40) {
		if (vw_mono_ms() - t0 > 60000)
			fail_msg("fan-out: %zu and %zu of 40 events", x->nevs, x->nother);
		uv_run(&x->loop, UV_RUN_NOWAIT);
		usleep(10000);
	}
	assert_int_equal(x->nevs, 40);
	assert_int_equal(x->nother, 40);
	for (size_t i = 20; i < 40; i++)
		assert_int_equal(x->other_ids[i], x->evs[i].id);
	store_close(other);
	x->other = NULL;
}

/* issue 13: many status changes of many targets in one group commit (the backend works a
 * batch's feed out in memory and writes it by one statement per kind, and the group's
 * events by one write before its COMMIT), with one batch of the group rolled back to its
 * savepoint by a real failure of the database (a trigger refuses its last problem): the
 * others' problems and events are what one statement per change gave, their event ids rise
 * with no gap in the group's order, and the failed batch leaves no row, problem change,
 * event or id behind (sent again, it is stored whole, its ids next). */
struct spec {
	const char *target;
	enum vw_status status;
	const char *fault;
};

static struct store_batch *spec_batch(const char *site, const char *agent, int64_t *seq,
                                      const struct spec *v, size_t n, int64_t t)
{
	struct store_batch *b = store_batch_create();
	assert_non_null(b);
	snprintf(b->site, sizeof(b->site), "%s", site);
	snprintf(b->agent, sizeof(b->agent), "%s", agent);
	snprintf(b->org, sizeof(b->org), "org-1");
	snprintf(b->city, sizeof(b->city), "Jinan");
	b->received_ms = t + 60000;
	b->cadence_ms = 15000;
	for (size_t i = 0; i < n; i++) {
		struct vw_result r;
		vw_result_init(&r, VW_KIND_STREAM, v[i].target);
		r.seq = ++*seq;
		r.ts_ms = t + *seq * 1000;
		r.status = v[i].status;
		if (v[i].fault)
			vw_result_add_fault_name(&r, v[i].fault);
		assert_int_equal(store_batch_add(b, &r), 0);
	}
	store_batch_sort(b);
	return b;
}

/* b's events' types, space-separated, and each id one more than the one before (from
 * *last, which moves on). */
static void assert_events(const struct store_batch *b, const char *types, int64_t *last)
{
	char got[512] = "";
	size_t len = 0;
	for (size_t i = 0; i < b->events.n; i++) {
		len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s", i ? " " : "",
		                        b->events.v[i].type);
		if (b->events.v[i].id != *last + 1)
			fail_msg("%s/%s event %zu (%s): id %lld after %lld", b->site, b->agent, i,
			         b->events.v[i].type, (long long)b->events.v[i].id,
			         (long long)*last);
		*last = b->events.v[i].id;
	}
	assert_string_equal(got, types);
}

static cJSON *ev_json(const struct store_batch *b, size_t i)
{
	assert_true(i < b->events.n);
	cJSON *j = cJSON_Parse(b->events.v[i].data);
	assert_non_null(j);
	return j;
}

static void group_of_many_changes_with_a_batch_rolled_back(void **state)
{
	struct ctx *x = *state;
	char err[256];
	assert_int_equal(uv_loop_init(&x->loop), 0);
	if (store_open(&x->opt, &x->st, err, sizeof(err)))
		fail_msg("store_open: %s", err);
	int64_t t = vw_now_ms() - 30 * MINUTE, seq[3] = {0, 0, 0};
	static const char *const sites[3] = {"site-1", "site-2", "site-3"};
	/* Group 1: three agents, each with cam1, cam2 down, cam3 ok and cam4 degraded. */
	static const struct spec first[] = {{"cam1", VW_STATUS_DOWN, "black"},
	                                    {"cam2", VW_STATUS_DOWN, "black"},
	                                    {"cam3", VW_STATUS_OK, NULL},
	                                    {"cam4", VW_STATUS_DEGRADED, "low_fps"}};
	struct store_batch *g1[3];
	for (int i = 0; i < 3; i++) {
		g1[i] = spec_batch(sites[i], "a", &seq[i], first, 4, t);
		if (i)
			g1[i - 1]->next = g1[i];
	}
	assert_int_equal(store_bench_commit(x->st, g1[0]), 0);
	int64_t last = 0;
	for (int i = 0; i < 3; i++)
		assert_events(g1[i],
		              "status problem_opened status problem_opened status problem_opened",
		              &last);
	int64_t cam1_first = -1;
	{
		cJSON *j = ev_json(g1[0], 1);
		cam1_first = jint(j, "id");
		cJSON_Delete(j);
	}
	/* The database refuses site-2's poison problem: that batch fails in the middle of the
	 * next group. */
	if (x->db[0])
		sql_exec(
		    x, "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN"
		       " IF NEW.target = 'poison' THEN RAISE EXCEPTION 'poisoned problem'; END IF;"
		       " RETURN NEW; END$$;"
		       " CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON problems FOR EACH ROW"
		       " EXECUTE FUNCTION poison()");
	else
		sql_exec(x,
		         "CREATE TRIGGER poison BEFORE INSERT ON problems"
		         " WHEN NEW.target = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END");
	static const struct spec s1a[] = {
	    {"cam1", VW_STATUS_DOWN, "frozen"},      /* new fault: updated */
	    {"cam1", VW_STATUS_DEGRADED, NULL},      /* status: updated, worst stays down */
	    {"cam1", VW_STATUS_OK, NULL},            /* closed */
	    {"cam1", VW_STATUS_DEGRADED, "blurred"}, /* a second spell: opened */
	    {"cam2", VW_STATUS_OK, NULL},            /* closed */
	    {"cam3", VW_STATUS_DOWN, "black"},       /* opened */
	    {"cam5", VW_STATUS_OK, NULL},            /* first seen ok: nothing */
	};
	static const struct spec s2[] = {
	    {"cam1", VW_STATUS_OK, NULL},
	    {"cam2", VW_STATUS_DOWN, "frozen"},
	    {"cam3", VW_STATUS_DOWN, "black"},
	    {"poison", VW_STATUS_DOWN, "black"},
	};
	static const struct spec s3[] = {
	    {"cam1", VW_STATUS_OK, NULL},
	    {"cam4", VW_STATUS_DOWN, "timeout"}, /* degraded -> down: worst down, major */
	};
	static const struct spec s1b[] = {
	    {"cam3", VW_STATUS_OK, NULL}, /* closes what s1a opened in this same group */
	    {"cam1", VW_STATUS_OK, NULL}, /* closes the second spell */
	};
	int64_t seq2 = seq[1];
	struct store_batch *b1 = spec_batch("site-1", "a", &seq[0], s1a, 7, t);
	struct store_batch *b2 = spec_batch("site-2", "a", &seq[1], s2, 4, t);
	struct store_batch *b3 = spec_batch("site-3", "a", &seq[2], s3, 2, t);
	struct store_batch *b4 = spec_batch("site-1", "a", &seq[0], s1b, 2, t);
	b1->next = b2, b2->next = b3, b3->next = b4;
	assert_int_not_equal(store_bench_commit(x->st, b1), 0); /* b2's status */
	assert_int_equal(b1->status, 0);
	assert_int_not_equal(b2->status, 0);
	assert_int_equal(b3->status, 0);
	assert_int_equal(b4->status, 0);
	assert_int_equal(b2->events.n, 0);
	assert_events(b1,
	              "problem_updated status problem_updated status problem_closed status "
	              "problem_opened status problem_closed status problem_opened",
	              &last);
	assert_events(b3, "status problem_closed status problem_updated", &last);
	assert_events(b4, "status problem_closed status problem_closed", &last);
	/* each problem event as the problem stood at that row */
	cJSON *j = ev_json(b1, 0);
	assert_int_equal(jint(j, "id"), cam1_first);
	assert_string_equal(jstr(j, "status"), "down");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "faults")), 2);
	cJSON_Delete(j);
	j = ev_json(b1, 2);
	assert_string_equal(jstr(j, "status"), "degraded");
	assert_string_equal(jstr(j, "worst"), "down");
	assert_string_equal(jstr(j, "state"), "open");
	cJSON_Delete(j);
	j = ev_json(b1, 4);
	assert_int_equal(jint(j, "id"), cam1_first);
	assert_string_equal(jstr(j, "state"), "closed");
	assert_string_equal(jstr(j, "status"), "degraded");
	cJSON_Delete(j);
	j = ev_json(b1, 6);
	int64_t cam1_second = jint(j, "id");
	assert_true(cam1_second > cam1_first);
	assert_string_equal(jstr(j, "state"), "open");
	assert_string_equal(jstr(j, "severity"), "minor");
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "faults"), 0)->valuestring,
	                    "blurred");
	cJSON_Delete(j);
	j = ev_json(b1, 10);
	int64_t cam3_id = jint(j, "id");
	assert_true(cam3_id > cam1_second);
	cJSON_Delete(j);
	j = ev_json(b3, 3);
	assert_string_equal(jstr(j, "worst"), "down");
	assert_string_equal(jstr(j, "severity"), "major");
	cJSON_Delete(j);
	j = ev_json(b4, 1);
	assert_int_equal(jint(j, "id"), cam3_id);
	assert_string_equal(jstr(j, "state"), "closed");
	cJSON_Delete(j);
	j = ev_json(b4, 3);
	assert_int_equal(jint(j, "id"), cam1_second);
	cJSON_Delete(j);
	/* the stored rows: the events with no gap; the problems as the events say */
	assert_int_equal(sql_value(x, "SELECT count(*) FROM events"), last);
	assert_int_equal(sql_value(x, "SELECT max(id) - min(id) + 1 FROM events"), last);
	if (x->db[0])
		assert_int_equal(sql_value(x, "SELECT events_last_id FROM feed_mark"), last);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM problems"), 3 + 3 + 2 + 3);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM problems WHERE site = 'site-1'"
	                              " AND end_ms IS NULL"),
	                 1); /* cam4 */
	assert_int_equal(
	    sql_value(x, "SELECT count(*) FROM problems WHERE site = 'site-1'"
	                 " AND target = 'cam1' AND end_ms IS NOT NULL AND worst = 'down'"
	                 " AND status = 'degraded' AND faults = '[\"black\",\"frozen\"]'"),
	    1);
	assert_int_equal(
	    sql_value(x, "SELECT count(*) FROM problems WHERE site = 'site-3'"
	                 " AND target = 'cam4' AND end_ms IS NULL AND worst = 'down'"
	                 " AND severity = 'major' AND faults = '[\"low_fps\",\"timeout\"]'"),
	    1);
	/* site-2 as group 1 left it: no row, problem change or event of its batch */
	assert_int_equal(sql_value(x, "SELECT count(*) FROM problems WHERE site = 'site-2'"
	                              " AND end_ms IS NULL AND faults = '[\"black\"]'"
	                              " AND target IN ('cam1', 'cam2')"),
	                 2);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM problems WHERE site = 'site-2'"), 3);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM events WHERE site = 'site-2'"), 6);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM results r JOIN agents a"
	                              " ON a.id = r.agent_id WHERE a.site = 'site-2'"),
	                 4);
	/* Sent again once the database takes it: stored whole, its ids next. */
	sql_exec(x, x->db[0] ? "DROP TRIGGER poison ON problems" : "DROP TRIGGER poison");
	seq[1] = seq2;
	struct store_batch *again = spec_batch("site-2", "a", &seq[1], s2, 4, t);
	assert_int_equal(store_bench_commit(x->st, again), 0);
	assert_int_equal(again->stored, 4);
	assert_events(again,
	              "status problem_closed problem_updated status problem_opened status "
	              "problem_opened",
	              &last);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM problems WHERE site = 'site-2'"), 5);
	for (int i = 0; i < 3; i++)
		store_batch_destroy(g1[i]);
	store_batch_destroy(b1);
	store_batch_destroy(b2);
	store_batch_destroy(b3);
	store_batch_destroy(b4);
	store_batch_destroy(again);
	assert_int_equal(store_start(x->st, &x->loop, 8), 0);
	close_h(x);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "postgresql") == 0) {
		if (!getenv("VW_PG_DSN")) {
			fprintf(stderr, "test_problems postgresql: no VW_PG_DSN (run it under "
			                "tests/tools/pg.sh)\n");
			return 1;
		}
#define PG(f) cmocka_unit_test_setup_teardown(f, setup_pg, teardown)
		const struct CMUnitTest pg[] = {
		    PG(change_opens_updates_and_closes_a_problem),
		    PG(first_seen_down_opens_and_survives_restart),
		    PG(exam_session_raises_severity),
		    PG(refused_batch_leaves_no_problem_and_no_event),
		    PG(silent_site_opens_site_silent_and_its_batch_closes_it),
		    PG(ack_once_in_scope),
		    PG(backlog_and_list_read_what_was_stored),
		    PG(scoped_reads_read_their_own_scope_only),
		    PG(pg_scoped_reads_use_their_indexes),
		    PG(pg_two_collectors_share_the_feed),
		    PG(group_of_many_changes_with_a_batch_rolled_back),
		};
		return cmocka_run_group_tests_name("problems: postgresql store", pg, NULL, NULL);
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(change_opens_updates_and_closes_a_problem, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(first_seen_down_opens_and_survives_restart, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(exam_session_raises_severity, setup, teardown),
	    cmocka_unit_test_setup_teardown(refused_batch_leaves_no_problem_and_no_event, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(silent_site_opens_site_silent_and_its_batch_closes_it,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(ack_once_in_scope, setup, teardown),
	    cmocka_unit_test_setup_teardown(backlog_and_list_read_what_was_stored, setup, teardown),
	    cmocka_unit_test_setup_teardown(scoped_reads_read_their_own_scope_only, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(group_of_many_changes_with_a_batch_rolled_back, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
