/* Exam sessions: the plan parser (every error as file:line: column: what, BOM, the Chinese
 * column names of a 认定计划, Asia/Shanghai local times) and the store's write path (all or
 * nothing, late changes refused, every change audited with the site's version moved), and
 * a v3 database migrating in place. Real SQLite files in a temporary directory, a real
 * libuv loop and the store's real writer and reader threads. */
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
#include <uv.h>
#include <cmocka.h>

#include "exams_csv.h"
#include "store.h"
#include "testdir.h"
#include "testpg.h"
#include "vtime.h"

/* --- the parser -------------------------------------------------------------------------- */

static int has_error(const struct exams_errs *e, const char *want)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->msg[i], want) == 0)
			return 1;
	return 0;
}

static void print_errors(const struct exams_errs *e)
{
	for (size_t i = 0; i < e->n; i++)
		print_message("  %s\n", e->msg[i]);
}

static void local_times_are_shanghai(void **state)
{
	(void)state;
	int64_t ms;
	/* 2026-12-01 09:00 in Shanghai is 01:00 UTC (1796086800 s). */
	assert_int_equal(exams_time_parse("2026-12-01 09:00", &ms), 0);
	assert_int_equal(ms, 1796086800000LL);
	assert_int_equal(exams_time_parse("2026-12-01T09:00:00+08:00", &ms), 0);
	assert_int_equal(ms, 1796086800000LL);
	assert_int_equal(exams_time_parse("2026-12-01T01:00:00Z", &ms), 0);
	assert_int_equal(ms, 1796086800000LL);
	assert_int_equal(exams_time_parse("2026-11-30T20:00:00-05:00", &ms), 0);
	assert_int_equal(ms, 1796086800000LL);
	/* A local time across midnight UTC: 07:30 on 1 Dec is 23:30 on 30 Nov UTC. */
	assert_int_equal(exams_time_parse("2026-12-01 07:30:00", &ms), 0);
	char out[EXAMS_LOCAL_LEN];
	exams_time_local(ms, out);
	assert_string_equal(out, "2026-12-01T07:30:00+08:00");
	/* RFC 3339 needs its offset; dates that do not exist are refused. */
	assert_int_equal(exams_time_parse("2026-12-01T09:00:00", &ms), -EINVAL);
	assert_int_equal(exams_time_parse("2026-02-30 09:00", &ms), -EINVAL);
	assert_int_equal(exams_time_parse("2026-12-01 24:00", &ms), -EINVAL);
	assert_int_equal(exams_time_parse("09:00", &ms), -EINVAL);
}

static void chinese_header_and_bom_parse(void **state)
{
	(void)state;
	const char csv[] =
	    "\xef\xbb\xbf"
	    "机构编号,考点,场次编号,职业(工种),等级,开始时间,结束时间,考场,计划人数\r\n"
	    "org-a,site-a,2026-0412,电工,四级,2026-12-01 09:00,2026-12-01 11:00,"
	    "\"A101,A102\",30\r\n"
	    "org-a,site-a,2026-0413,焊工,三级,2026-12-02 09:00,2026-12-02 "
	    "11:30,A101，A103,\r\n";
	struct exams_in *in;
	size_t n;
	struct exams_errs errs = {0};
	int rc = exams_csv_parse("plan.csv", csv, sizeof(csv) - 1, NULL, &in, &n, &errs);
	print_errors(&errs);
	assert_int_equal(rc, 0);
	assert_int_equal(n, 2);
	assert_string_equal(in[0].org, "org-a");
	assert_string_equal(in[0].site, "site-a");
	assert_string_equal(in[0].code, "2026-0412");
	assert_string_equal(in[0].occupation, "电工");
	assert_string_equal(in[0].level, "四级");
	assert_string_equal(in[0].rooms, "A101,A102");
	assert_int_equal(in[0].start_ms, 1796086800000LL);
	assert_int_equal(in[0].end_ms, 1796094000000LL);
	assert_int_equal(in[0].candidates, 30);
	assert_int_equal(in[0].line, 2);
	/* A full-width comma separates rooms too; an empty 计划人数 is 0. */
	assert_string_equal(in[1].rooms, "A101,A103");
	assert_int_equal(in[1].candidates, 0);
	assert_int_equal(in[1].line, 3);
	free(in);
	exams_errs_free(&errs);
}

static void every_error_names_its_line_and_column(void **state)
{
	(void)state;
	/* English header without org (filled by default_org). A quoted field spanning lines
	 * is refused (a line break in an occupation would break logs and tables) and keeps
	 * the line numbers of the rows after it right. */
	const char csv[] =
	    "site,id,occupation,level,start,end,rooms,candidates\n"
	    "site-a,S1,\"电工\n(维修)\",四级,2026-12-01 09:00,2026-12-01 11:00,A1,3\n"
	    "site-a,S2,电工,四级,2026-13-01 09:00,2026-12-01 11:00,A1,3\n"
	    "\n"
	    "site-a,S3,电工,四级,2026-12-01 11:00,2026-12-01 09:00,A1,x\n"
	    "bad site,S4,电工,,2026-12-01 09:00,2026-12-01 11:00,\"A1,,A2\",3\n"
	    "site-a,S5,电工,四级,2026-12-01 09:00,2026-12-01 11:00,*,3\n"
	    "site-a,S5,电工,四级,2026-12-01 09:00,2026-12-01 11:00,*,3\n";
	struct exams_in *in = (void *)1;
	size_t n = 7;
	struct exams_errs errs = {0};
	int rc = exams_csv_parse("plan.csv", csv, sizeof(csv) - 1, "org-a", &in, &n, &errs);
	print_errors(&errs);
	assert_int_equal(rc, -EINVAL);
	assert_null(in);
	assert_int_equal(n, 0);
	assert_true(has_error(&errs,
	                      "plan.csv:4: start: expected a time: "
	                      "2026-12-01T09:00:00+08:00 or 2026-12-01 09:00 (Asia/Shanghai)"));
	assert_true(has_error(&errs, "plan.csv:6: candidates: expected a whole number 0-100000"));
	assert_true(has_error(&errs, "plan.csv:7: site: expected an id: 1-63 of [A-Za-z0-9._-]"));
	assert_true(has_error(&errs, "plan.csv:7: rooms: an empty room name (two commas, or a "
	                             "comma at an end)"));
	assert_true(has_error(&errs, "plan.csv:2: occupation: holds a control character"));
	assert_true(has_error(&errs, "plan.csv:9: id: \"S5\" already on line 8"));
	assert_int_equal(errs.total, 6);
	exams_errs_free(&errs);

	/* Without --org, a plan with no org column names what is missing on each row. */
	const char noorg[] = "site,id,occupation,level,start,end,rooms\n"
	                     "site-a,S1,电工,四级,2026-12-01 09:00,2026-12-01 11:00,A1\n";
	rc = exams_csv_parse("p.csv", noorg, sizeof(noorg) - 1, NULL, &in, &n, &errs);
	assert_int_equal(rc, -EINVAL);
	assert_true(has_error(&errs, "p.csv:2: org: missing (or give --org)"));
	exams_errs_free(&errs);

	/* A header without a required column; a stray quote; bytes that are not UTF-8. */
	const char nocol[] = "site,id,level,start,end,rooms\nsite-a,S1,四级,2026-12-01 "
	                     "09:00,2026-12-01 11:00,A1\n";
	rc = exams_csv_parse("p.csv", nocol, sizeof(nocol) - 1, "o", &in, &n, &errs);
	assert_int_equal(rc, -EINVAL);
	assert_true(has_error(&errs, "p.csv:1: occupation: no such column in the header "
	                             "(职业(工种))"));
	exams_errs_free(&errs);
	const char gbk[] = "site,id\n\xb5\xe7\xb9\xa4,1\n";
	rc = exams_csv_parse("p.csv", gbk, sizeof(gbk) - 1, "o", &in, &n, &errs);
	assert_int_equal(rc, -EINVAL);
	assert_true(has_error(&errs, "p.csv:2: not valid UTF-8 (byte 9): save the plan as UTF-8"));
	exams_errs_free(&errs);
}

static void errors_are_bounded_but_counted(void **state)
{
	(void)state;
	char *csv = malloc(200 * 80 + 100);
	size_t len = (size_t)sprintf(csv, "org,site,id,occupation,level,start,end,rooms\n");
	for (int i = 0; i < 200; i++)
		len += (size_t)sprintf(csv + len, "o,s,S%d,x,y,never,2026-12-01 11:00,A\n", i);
	struct exams_in *in;
	size_t n;
	struct exams_errs errs = {0};
	assert_int_equal(exams_csv_parse("p.csv", csv, len, NULL, &in, &n, &errs), -EINVAL);
	assert_int_equal(errs.n, EXAMS_MAX_ERRORS);
	assert_int_equal(errs.total, 200);
	assert_string_equal(errs.msg[0], "p.csv:2: start: expected a time: "
	                                 "2026-12-01T09:00:00+08:00 or 2026-12-01 09:00 "
	                                 "(Asia/Shanghai)");
	exams_errs_free(&errs);
	free(csv);
}

/* A plan at the 100,000-row bound: every (org, code) checked against all before it (by a
 * hash: a scan was 5e9 comparisons), the same code under two orgs is no duplicate, and a
 * duplicate far apart still names the line of the first. */
static void duplicates_found_in_a_full_plan(void **state)
{
	(void)state;
	const size_t rows = 100000;
	char *csv = malloc(rows * 80 + 100);
	assert_non_null(csv);
	size_t len = (size_t)sprintf(csv, "org,site,id,occupation,level,start,end,rooms\n");
	for (size_t i = 0; i + 1 < rows; i++)
		len += (size_t)sprintf(csv + len,
		                       "%s,s,S%zu,x,y,2026-12-01 09:00,2026-12-01 11:00,A\n",
		                       i % 2 ? "o2" : "o1", i / 2);
	struct exams_in *in;
	size_t n;
	struct exams_errs errs = {0};
	assert_int_equal(exams_csv_parse("p.csv", csv, len, NULL, &in, &n, &errs), 0);
	assert_int_equal(n, rows - 1);
	free(in);
	/* The last row repeats o1's S7, on line 16 (row 14 of the data, after the header). */
	len += (size_t)sprintf(csv + len, "o1,s,S7,x,y,2026-12-01 09:00,2026-12-01 11:00,A\n");
	assert_int_equal(exams_csv_parse("p.csv", csv, len, NULL, &in, &n, &errs), -EINVAL);
	print_errors(&errs);
	assert_int_equal(errs.total, 1);
	assert_true(has_error(&errs, "p.csv:100001: id: \"S7\" already on line 16"));
	exams_errs_free(&errs);
	free(csv);
}

/* --- the store --------------------------------------------------------------------------- */

struct ctx {
	char dir[64];
	char db[64], dsn[512]; /* issue 13, postgresql: this test's own database ("" = sqlite) */
	struct store_options opt;
	uv_loop_t loop;
	struct store *st;
	int done;
	struct store_exam_session got[16];
	char strs[16][7][160];
	size_t ngot;
	int64_t value;
	int status;
};

static int setup(void **state)
{
	struct ctx *x = calloc(1, sizeof(*x));
	if (!x || testdir_make(x->dir, sizeof(x->dir), "exams"))
		return -1;
	x->opt = (struct store_options){.dir = x->dir, .durability = STORE_DURABLE_NORMAL};
	*state = x;
	return 0;
}

/* issue 13: the same tests on PostgreSQL (testpg.h), under tests/tools/pg.sh. */
static int setup_pg(void **state)
{
	if (setup(state))
		return -1;
	struct ctx *x = *state;
	if (testpg_make("exams", x->db, sizeof(x->db), x->dsn, sizeof(x->dsn)))
		return -1;
	x->opt.backend = "postgresql";
	x->opt.dsn = x->dsn;
	x->opt.password_file = getenv("VW_PG_PASSFILE");
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;
	int rc = x->db[0] ? testpg_remove(x->db) : 0;
	testdir_remove(x->dir);
	free(x);
	return rc;
}

static void open_h(struct ctx *x)
{
	char err[256];
	assert_int_equal(uv_loop_init(&x->loop), 0);
	if (store_open(&x->opt, &x->st, err, sizeof(err)))
		fail_msg("store_open: %s", err);
	assert_int_equal(store_start(x->st, &x->loop, 16), 0);
}

static void close_h(struct ctx *x)
{
	store_close(x->st);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&x->loop), 0);
}

static void on_write(struct store_write *w)
{
	((struct ctx *)w->data)->done = 1;
}

static int write_wait(struct ctx *x, struct store_write *w)
{
	w->done = on_write;
	w->data = x;
	x->done = 0;
	assert_int_equal(store_write_submit(x->st, w), 0);
	while (!x->done)
		uv_run(&x->loop, UV_RUN_ONCE);
	return w->status;
}

static void on_read(void *ud, const struct store_reply *r)
{
	struct ctx *x = ud;
	x->status = r->status;
	x->value = r->value;
	x->ngot = r->nexam_sessions < 16 ? r->nexam_sessions : 16;
	for (size_t i = 0; i < x->ngot; i++) {
		const struct store_exam_session *e = &r->exam_sessions[i];
		x->got[i] = *e;
		const char *s[7] = {e->org,        e->city,  e->site, e->code,
		                    e->occupation, e->level, e->rooms};
		for (int k = 0; k < 7; k++)
			snprintf(x->strs[i][k], sizeof(x->strs[i][k]), "%s", s[k]);
		x->got[i].org = x->strs[i][0];
		x->got[i].site = x->strs[i][2];
		x->got[i].code = x->strs[i][3];
		x->got[i].rooms = x->strs[i][6];
	}
	x->done = 1;
}

static int read_wait(struct ctx *x, int rc)
{
	assert_int_equal(rc, 0);
	x->done = 0;
	while (!x->done)
		uv_run(&x->loop, UV_RUN_ONCE);
	return x->status;
}

static int64_t count_sql(struct ctx *x, const char *sql)
{
	if (x->db[0]) {
		int64_t v = -1;
		assert_int_equal(testpg_query(x->dsn, sql, &v), 0);
		return v;
	}
	char path[128];
	snprintf(path, sizeof(path), "%s/venuewatch.db", x->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

#define NOW 1764000000000LL /* 2025-11-24: every session below is after it */
#define HOUR 3600000LL

/* The store's clock for these tests: the time the submitter queued the write at, so a test
 * says when each write runs. */
static int64_t queued_clock(const struct store_write *w)
{
	return w->now_ms;
}

/* A writer that got to the write 2 ms after it was queued (behind a group commit). */
static int64_t ran_2ms_later(const struct store_write *w)
{
	return w->now_ms + 2;
}

static struct store_exam_session exam(const char *site, const char *code, int64_t start)
{
	return (struct store_exam_session){.org = "org-a",
	                                   .city = "jinan",
	                                   .site = site,
	                                   .code = code,
	                                   .occupation = "电工",
	                                   .level = "四级",
	                                   .rooms = "A101,A102",
	                                   .start_ms = start,
	                                   .end_ms = start + 2 * HOUR,
	                                   .candidates = 30};
}

static void create_is_all_or_nothing(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	/* The third collides with the first (UNIQUE(org, code)): none of the three is kept. */
	struct store_exam_session e[3] = {exam("site-a", "S1", NOW + 10 * HOUR),
	                                  exam("site-b", "S2", NOW + 20 * HOUR),
	                                  exam("site-a", "S1", NOW + 30 * HOUR)};
	struct store_write w = {.op = STORE_EXAM_CREATE,
	                        .actor = "test",
	                        .now_ms = NOW,
	                        .clock = queued_clock,
	                        .exams = e,
	                        .nexams = 3};
	assert_int_equal(write_wait(x, &w), -EEXIST);
	assert_int_equal(w.bad, 2);
	assert_string_equal(w.err, "the organisation already has a session S1");
	assert_int_equal(e[0].id, 0);
	struct store_exam_query q = {0};
	assert_int_equal(read_wait(x, store_exam_list(x->st, &q, on_read, x)), 0);
	assert_int_equal(x->ngot, 0);
	assert_int_equal(read_wait(x, store_exam_version(x->st, "site-a", on_read, x)), 0);
	assert_int_equal(x->value, 0);
	/* A session starting now is in the past for a plan. */
	struct store_exam_session late = exam("site-a", "S9", NOW);
	w = (struct store_write){.op = STORE_EXAM_CREATE,
	                         .actor = "test",
	                         .now_ms = NOW,
	                         .clock = queued_clock,
	                         .exams = &late,
	                         .nexams = 1};
	assert_int_equal(write_wait(x, &w), -ETIMEDOUT);

	/* Without the collision both go in, each with an audit row and a version step. */
	w = (struct store_write){.op = STORE_EXAM_CREATE,
	                         .actor = "test",
	                         .now_ms = NOW,
	                         .clock = queued_clock,
	                         .exams = e,
	                         .nexams = 2};
	assert_int_equal(write_wait(x, &w), 0);
	assert_true(e[0].id > 0 && e[1].id > 0 && e[0].id != e[1].id);
	assert_int_equal(read_wait(x, store_exam_list(x->st, &q, on_read, x)), 0);
	assert_int_equal(x->ngot, 2);
	assert_string_equal(x->got[0].code, "S1");
	assert_string_equal(x->got[0].rooms, "A101,A102");
	assert_int_equal(x->got[0].start_ms, NOW + 10 * HOUR);
	q = (struct store_exam_query){.site = "site-b"};
	assert_int_equal(read_wait(x, store_exam_list(x->st, &q, on_read, x)), 0);
	assert_int_equal(x->ngot, 1);
	assert_string_equal(x->got[0].code, "S2");
	/* A window that ends before S2 starts finds S1 only. */
	q = (struct store_exam_query){.from_ms = NOW, .to_ms = NOW + 15 * HOUR};
	assert_int_equal(read_wait(x, store_exam_list(x->st, &q, on_read, x)), 0);
	assert_int_equal(x->ngot, 1);
	assert_string_equal(x->got[0].code, "S1");
	assert_int_equal(read_wait(x, store_exam_version(x->st, "site-a", on_read, x)), 0);
	assert_int_equal(x->value, 1);
	close_h(x);
	assert_int_equal(count_sql(x, "SELECT count(*) FROM exam_session_changes"
	                              " WHERE action = 'create' AND before IS NULL"
	                              " AND after LIKE '%\"id\":\"S1\"%' AND actor = 'test'"),
	                 1);
	assert_int_equal(count_sql(x, "SELECT count(*) FROM exam_session_changes"), 2);
}

/* The late-change check and the audit use the time the write runs, not the one it was queued
 * at: a change queued 1 ms before the start and run 1 ms after it is late. */
static void the_write_runs_at_the_writers_time(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	struct store_exam_session e = exam("site-a", "S1", NOW + HOUR);
	struct store_write w = {.op = STORE_EXAM_CREATE,
	                        .actor = "t",
	                        .now_ms = NOW,
	                        .clock = queued_clock,
	                        .exams = &e,
	                        .nexams = 1};
	assert_int_equal(write_wait(x, &w), 0);
	struct store_exam_session up = exam("site-a", "S1", NOW + 3 * HOUR);
	up.id = e.id;
	w = (struct store_write){.op = STORE_EXAM_UPDATE,
	                         .actor = "t",
	                         .now_ms = NOW + 10,
	                         .clock = ran_2ms_later,
	                         .exams = &up,
	                         .nexams = 1};
	assert_int_equal(write_wait(x, &w), 0);
	assert_int_equal(w.now_ms, NOW + 12);
	assert_int_equal(read_wait(x, store_exam_get(x->st, e.id, on_read, x)), 0);
	assert_int_equal(x->got[0].updated_ms, NOW + 12);
	for (int op = 0; op < 2; op++) {
		w = (struct store_write){.op = op ? STORE_EXAM_CANCEL : STORE_EXAM_UPDATE,
		                         .actor = "t",
		                         .now_ms = NOW + 3 * HOUR - 1,
		                         .clock = ran_2ms_later,
		                         .exams = &up,
		                         .nexams = 1};
		assert_int_equal(write_wait(x, &w), -EALREADY);
	}
	/* A create queued 1 ms before its start and run after: in the past. */
	struct store_exam_session c = exam("site-a", "S2", NOW + 5 * HOUR);
	w = (struct store_write){.op = STORE_EXAM_CREATE,
	                         .actor = "t",
	                         .now_ms = NOW + 5 * HOUR - 1,
	                         .clock = ran_2ms_later,
	                         .exams = &c,
	                         .nexams = 1};
	assert_int_equal(write_wait(x, &w), -ETIMEDOUT);
	close_h(x);
	assert_int_equal(count_sql(x, "SELECT count(*) FROM exam_session_changes WHERE action ="
	                              " 'update' AND at_ms = 1764000000012"),
	                 1);
	assert_int_equal(count_sql(x, "SELECT count(*) FROM exam_session_changes"), 2);
}

static void late_changes_are_refused(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	struct store_exam_session e = exam("site-a", "S1", NOW + HOUR);
	struct store_write w = {.op = STORE_EXAM_CREATE,
	                        .actor = "org:1 (a)",
	                        .now_ms = NOW,
	                        .clock = queued_clock,
	                        .exams = &e,
	                        .nexams = 1};
	assert_int_equal(write_wait(x, &w), 0);
	int64_t id = e.id;

	/* Before the start: an update moves it, audited with before and after. */
	struct store_exam_session up = exam("site-a", "S1", NOW + 2 * HOUR);
	up.id = id;
	up.rooms = "*";
	w = (struct store_write){.op = STORE_EXAM_UPDATE,
	                         .actor = "org:1 (a)",
	                         .now_ms = NOW + 1,
	                         .clock = queued_clock,
	                         .exams = &up,
	                         .nexams = 1};
	assert_int_equal(write_wait(x, &w), 0);
	assert_string_equal(w.site, "site-a");
	assert_int_equal(read_wait(x, store_exam_get(x->st, id, on_read, x)), 0);
	assert_int_equal(x->got[0].start_ms, NOW + 2 * HOUR);
	assert_string_equal(x->got[0].rooms, "*");

	/* Out of scope: another org's principal does not find it. */
	w = (struct store_write){.op = STORE_EXAM_CANCEL,
	                         .actor = "org:2 (b)",
	                         .now_ms = NOW + 2,
	                         .clock = queued_clock,
	                         .scope_org = "org-b",
	                         .exams = &up,
	                         .nexams = 1};
	assert_int_equal(write_wait(x, &w), -ENOENT);

	/* At its start, and after: neither update nor cancel. */
	w = (struct store_write){.op = STORE_EXAM_UPDATE,
	                         .actor = "org:1 (a)",
	                         .now_ms = NOW + 2 * HOUR,
	                         .clock = queued_clock,
	                         .exams = &up,
	                         .nexams = 1};
	up.start_ms = NOW + 5 * HOUR;
	up.end_ms = NOW + 6 * HOUR;
	assert_int_equal(write_wait(x, &w), -EALREADY);
	assert_non_null(strstr(w.err, "has already started"));
	w = (struct store_write){.op = STORE_EXAM_CANCEL,
	                         .actor = "org:1 (a)",
	                         .now_ms = NOW + 3 * HOUR,
	                         .clock = queued_clock,
	                         .exams = &up,
	                         .nexams = 1};
	assert_int_equal(write_wait(x, &w), -EALREADY);
	assert_int_equal(read_wait(x, store_exam_get(x->st, id, on_read, x)), 0);
	assert_int_equal(x->got[0].start_ms, NOW + 2 * HOUR);
	assert_int_equal(x->got[0].cancelled_ms, 0);

	/* Cancelled before it starts: gone from lists, still there to read, not changeable. */
	w = (struct store_write){.op = STORE_EXAM_CANCEL,
	                         .actor = "org:1 (a)",
	                         .now_ms = NOW + 5,
	                         .clock = queued_clock,
	                         .exams = &up,
	                         .nexams = 1};
	assert_int_equal(write_wait(x, &w), 0);
	struct store_exam_query q = {.site = "site-a"};
	assert_int_equal(read_wait(x, store_exam_list(x->st, &q, on_read, x)), 0);
	assert_int_equal(x->ngot, 0);
	q.with_cancelled = 1;
	assert_int_equal(read_wait(x, store_exam_list(x->st, &q, on_read, x)), 0);
	assert_int_equal(x->ngot, 1);
	assert_int_equal(x->got[0].cancelled_ms, NOW + 5);
	w = (struct store_write){.op = STORE_EXAM_UPDATE,
	                         .actor = "org:1 (a)",
	                         .now_ms = NOW + 6,
	                         .clock = queued_clock,
	                         .exams = &up,
	                         .nexams = 1};
	assert_int_equal(write_wait(x, &w), -ECANCELED);
	assert_int_equal(read_wait(x, store_exam_version(x->st, "site-a", on_read, x)), 0);
	assert_int_equal(x->value, 3); /* create, update, cancel */
	close_h(x);
	assert_int_equal(count_sql(x, "SELECT count(*) FROM exam_session_changes WHERE action ="
	                              " 'update' AND before LIKE '%\"rooms\":\"A101,A102\"%'"
	                              " AND after LIKE '%\"rooms\":\"*\"%'"),
	                 1);
	assert_int_equal(count_sql(x, "SELECT count(*) FROM exam_session_changes WHERE action ="
	                              " 'cancel' AND after LIKE '%\"cancelled_ms\":%'"),
	                 1);
	assert_int_equal(count_sql(x, "SELECT count(*) FROM exam_session_changes"), 3);
}

static void version_3_database_migrates_in_place(void **state)
{
	struct ctx *x = *state;
	/* A v3 database: today's schema less everything migrations 4 and later made (v1-v3
	 * made the tables below and no named index), with an agent in it. */
	open_h(x);
	close_h(x);
	char path[128];
	snprintf(path, sizeof(path), "%s/venuewatch.db", x->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db,
	                                    "SELECT type, name FROM sqlite_master WHERE type IN"
	                                    " ('table', 'index') AND name NOT LIKE 'sqlite_%' AND"
	                                    " name NOT IN ('agents', 'results', 'latest',"
	                                    " 'seq_gaps', 'epochs') ORDER BY type = 'table'",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	char drops[8192] = "";
	size_t len = 0;
	while (sqlite3_step(st) == SQLITE_ROW)
		len += (size_t)snprintf(drops + len, sizeof(drops) - len, "DROP %s %s;",
		                        (const char *)sqlite3_column_text(st, 0),
		                        (const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	assert_true(len < sizeof(drops));
	assert_int_equal(sqlite3_exec(db, drops, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                              "PRAGMA user_version = 3;"
	                              " ALTER TABLE results DROP COLUMN interval_ms;" /* 6 */
	                              " INSERT INTO agents(site, agent, org, city)"
	                              " VALUES('site-a', 'site-a', 'org-a', 'jinan');",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(count_sql(x, "SELECT count(*) FROM sqlite_master WHERE name ="
	                              " 'exam_sessions'"),
	                 0);
	open_h(x);
	struct store_exam_session e = exam("site-a", "S1", NOW + HOUR);
	struct store_write w = {.op = STORE_EXAM_CREATE,
	                        .actor = "t",
	                        .now_ms = NOW,
	                        .clock = queued_clock,
	                        .exams = &e,
	                        .nexams = 1};
	assert_int_equal(write_wait(x, &w), 0);
	close_h(x);
	assert_int_equal(count_sql(x, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(count_sql(x, "SELECT count(*) FROM sqlite_master WHERE name IN"
	                              " ('exam_sessions', 'exam_session_changes', 'site_versions',"
	                              " 'exam_sessions_site', 'exam_sessions_org',"
	                              " 'exam_sessions_city')"),
	                 6);
	assert_int_equal(count_sql(x, "SELECT count(*) FROM agents WHERE site = 'site-a'"), 1);
	assert_int_equal(count_sql(x, "SELECT sessions FROM site_versions WHERE site = 'site-a'"),
	                 1);
}

/* No argument: the parser and the store on SQLite. "postgresql" (ctest
 * test_exams_postgresql, under tests/tools/pg.sh): the store's tests on PostgreSQL, all but
 * SQLite's own migration. */
int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "postgresql") == 0) {
		if (!getenv("VW_PG_DSN")) {
			fprintf(stderr, "test_exams postgresql: no VW_PG_DSN (run it under "
			                "tests/tools/pg.sh)\n");
			return 1;
		}
		const struct CMUnitTest pg[] = {
		    cmocka_unit_test_setup_teardown(create_is_all_or_nothing, setup_pg, teardown),
		    cmocka_unit_test_setup_teardown(late_changes_are_refused, setup_pg, teardown),
		    cmocka_unit_test_setup_teardown(the_write_runs_at_the_writers_time, setup_pg,
		                                    teardown),
		};
		return cmocka_run_group_tests_name("exams: postgresql store", pg, NULL, NULL);
	}
	const struct CMUnitTest parser[] = {
	    cmocka_unit_test(local_times_are_shanghai),
	    cmocka_unit_test(chinese_header_and_bom_parse),
	    cmocka_unit_test(every_error_names_its_line_and_column),
	    cmocka_unit_test(errors_are_bounded_but_counted),
	    cmocka_unit_test(duplicates_found_in_a_full_plan),
	};
	const struct CMUnitTest store[] = {
	    cmocka_unit_test_setup_teardown(create_is_all_or_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(late_changes_are_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(the_write_runs_at_the_writers_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(version_3_database_migrates_in_place, setup, teardown),
	};
	int failed = cmocka_run_group_tests_name("exams: plan parser", parser, NULL, NULL);
	failed += cmocka_run_group_tests_name("exams: store", store, NULL, NULL);
	return failed;
}
