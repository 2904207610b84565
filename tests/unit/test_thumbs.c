/* thumbnails on the collector (issue 16 C): ingest's bounded decode of a result's
 * "thumbnail" (base64 of a JPEG, <= 30 KB) with errors naming the result, and the store —
 * the picture committed with its row, read back newest-at-or-before a time with the site's
 * summary, each camera's newest time on the site page, every access recorded by the writer,
 * and pictures older than the retention pruned by the job while younger ones stay. Real
 * SQLite files (or, with the argument "postgresql" under tests/tools/pg.sh, a real PostgreSQL
 * database: issue 13), real writer and reader threads, a real loop. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <cmocka.h>

#include "ingest.h"
#include "store.h"
#include "testdir.h"
#include "testpg.h"
#include "vtime.h"

static const unsigned char JPEG[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0xff, 0xd9};

static char *b64(const unsigned char *p, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

static void decode_accepts_a_jpeg(void **state)
{
	(void)state;
	char *s = b64(JPEG, sizeof(JPEG)), why[96];
	unsigned char out[INGEST_THUMB_MAX + 3];
	size_t len = 0;
	assert_int_equal(ingest_thumb_decode(s, strlen(s), out, &len, why, sizeof(why)), 0);
	assert_int_equal(len, sizeof(JPEG)); /* padding is not part of it */
	assert_memory_equal(out, JPEG, sizeof(JPEG));
	free(s);
}

static void decode_refuses_what_is_not_a_small_jpeg(void **state)
{
	(void)state;
	char why[96];
	static unsigned char out[INGEST_THUMB_MAX + 3];
	size_t len;
	/* Too large, told before decoding: 30 KB + 3 bytes of a JPEG-looking body. */
	size_t n = INGEST_THUMB_MAX + 3;
	unsigned char *big = calloc(1, n);
	memcpy(big, JPEG, 4);
	big[n - 2] = 0xff;
	big[n - 1] = 0xd9;
	char *s = b64(big, n);
	assert_int_equal(ingest_thumb_decode(s, strlen(s), out, &len, why, sizeof(why)), -E2BIG);
	assert_non_null(strstr(why, "30720"));
	free(s);
	/* Exactly at the bound: taken. */
	big[INGEST_THUMB_MAX - 2] = 0xff;
	big[INGEST_THUMB_MAX - 1] = 0xd9;
	s = b64(big, INGEST_THUMB_MAX);
	assert_int_equal(ingest_thumb_decode(s, strlen(s), out, &len, why, sizeof(why)), 0);
	assert_int_equal(len, INGEST_THUMB_MAX);
	free(s);
	free(big);
	/* A PNG is no JPEG. */
	static const unsigned char png[] = {0x89, 'P', 'N', 'G', 13, 10, 26, 10, 0, 0, 0, 0};
	s = b64(png, sizeof(png));
	assert_int_equal(ingest_thumb_decode(s, strlen(s), out, &len, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "JPEG"));
	free(s);
	/* Not base64: a stray character, a bad length, padding in the middle, empty. */
	assert_int_equal(ingest_thumb_decode("/9j/4A*=", 8, out, &len, why, sizeof(why)), -EINVAL);
	assert_int_equal(ingest_thumb_decode("/9j/4A", 6, out, &len, why, sizeof(why)), -EINVAL);
	assert_int_equal(ingest_thumb_decode("/9==/9j/", 8, out, &len, why, sizeof(why)), -EINVAL);
	assert_int_equal(ingest_thumb_decode("", 0, out, &len, why, sizeof(why)), -EINVAL);
}

static void batch_errors_name_the_result(void **state)
{
	(void)state;
	char *ok = b64(JPEG, sizeof(JPEG)), body[1024], error[32], detail[256];
	static const char fmt[] =
	    "{\"site\":\"s1\",\"results\":["
	    "{\"seq\":1,\"ts\":\"2026-01-01T00:00:00.000Z\",\"kind\":\"stream\",\"target\":\"c1\","
	    "\"status\":\"down\",\"faults\":[\"black\"],\"metrics\":{},\"thumbnail\":\"%s\"},"
	    "{\"seq\":2,\"ts\":\"2026-01-01T00:00:00.000Z\",\"kind\":\"%s\",\"target\":\"c2\","
	    "\"status\":\"ok\",\"faults\":[],\"metrics\":{},\"thumbnail\":\"%s\"}]}";
	struct store_batch *b = store_batch_create();
	snprintf(body, sizeof(body), fmt, ok, "stream", ok);
	assert_int_equal(
	    ingest_decode(body, strlen(body), b, error, sizeof(error), detail, sizeof(detail)), 0);
	assert_int_equal(b->nrows, 2);
	assert_int_equal(b->rows[0].thumb_len, sizeof(JPEG));
	assert_memory_equal(b->arena.data + b->rows[0].thumb, JPEG, sizeof(JPEG));
	store_batch_destroy(b);

	b = store_batch_create();
	snprintf(body, sizeof(body), fmt, ok, "stream", "iVBORw0KGgo=");
	assert_int_equal(
	    ingest_decode(body, strlen(body), b, error, sizeof(error), detail, sizeof(detail)),
	    -EINVAL);
	assert_string_equal(error, "invalid result");
	assert_non_null(strstr(detail, "results[1]: field 'thumbnail': not a JPEG"));
	store_batch_destroy(b);

	b = store_batch_create();
	snprintf(body, sizeof(body), fmt, ok, "network", ok);
	assert_int_equal(
	    ingest_decode(body, strlen(body), b, error, sizeof(error), detail, sizeof(detail)),
	    -EINVAL);
	assert_non_null(strstr(detail, "results[1]: field 'thumbnail': only stream results"));
	store_batch_destroy(b);
	free(ok);
}

/* --- the store ------------------------------------------------------------------------- */

struct ctx {
	char dir[64];
	char db[64], dsn[512]; /* issue 13, postgresql: this test's own database ("" = sqlite) */
	struct store_options opt;
	uv_loop_t loop;
	struct store *st;
	int done;
	struct store_reply got; /* the last read's reply, copied where needed */
	unsigned char jpeg[64];
	size_t jpeg_len;
	int64_t thumb_ts;
	int64_t site_thumb_ts[4];
	int status;
	uv_timer_t poll; /* poll_count's */
};

static int setup(void **state)
{
	struct ctx *x = calloc(1, sizeof(*x));
	if (!x || testdir_make(x->dir, sizeof(x->dir), "thumbs")) {
		free(x);
		return -1;
	}
	x->opt.backend = "sqlite";
	x->opt.dir = x->dir;
	x->opt.rollup_tick_ms = 50;
	x->opt.rollup_flush_ms = 100;
	x->opt.raw_retention_ms = 3600 * 1000LL;
	x->opt.thumb_retention_ms = 3600 * 1000LL;
	x->opt.thumb_access_retention_ms = 3600 * 1000LL;
	*state = x;
	return 0;
}

/* issue 13: the same tests on PostgreSQL (testpg.h), under tests/tools/pg.sh. */
static int setup_pg(void **state)
{
	if (setup(state))
		return -1;
	struct ctx *x = *state;
	if (testpg_make("thumbs", x->db, sizeof(x->db), x->dsn, sizeof(x->dsn)))
		return -1;
	x->opt.backend = "postgresql";
	x->opt.dsn = x->dsn;
	x->opt.password_file = getenv("VW_PG_PASSFILE");
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;
	int rc = testdir_remove(x->dir);
	if (x->db[0] && testpg_remove(x->db))
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
}

static void wait_done(struct ctx *x, int want)
{
	while (x->done < want)
		uv_run(&x->loop, UV_RUN_ONCE);
}

static void on_batch(struct store_batch *b)
{
	struct ctx *x = b->data;
	x->status = b->status;
	x->done++;
}

/* One batch of site-1 agent a: a stream result of camera at ts, with picture p (or none),
 * arrived at received. */
static void put(struct ctx *x, int64_t seq, const char *camera, int64_t ts, unsigned char p,
                int64_t received)
{
	struct store_batch *b = store_batch_create();
	snprintf(b->site, sizeof(b->site), "site-1");
	snprintf(b->agent, sizeof(b->agent), "a");
	snprintf(b->org, sizeof(b->org), "org-1");
	snprintf(b->city, sizeof(b->city), "Jinan");
	b->received_ms = received;
	struct vw_result r;
	vw_result_init(&r, VW_KIND_STREAM, camera);
	r.seq = seq;
	r.ts_ms = ts;
	unsigned char jpeg[sizeof(JPEG)];
	memcpy(jpeg, JPEG, sizeof(JPEG));
	jpeg[6] = p; /* tells the pictures apart */
	if (p) {
		r.thumb = jpeg;
		r.thumb_len = sizeof(jpeg);
	}
	assert_int_equal(store_batch_add(b, &r), 0);
	b->done = on_batch;
	b->data = x;
	int want = x->done + 1;
	assert_int_equal(store_submit(x->st, b), 0);
	wait_done(x, want);
	assert_int_equal(x->status, 0);
	store_batch_destroy(b);
}

static void on_thumb(void *ud, const struct store_reply *r)
{
	struct ctx *x = ud;
	x->status = r->status;
	x->jpeg_len = 0;
	x->thumb_ts = 0;
	if (!r->status) {
		assert_int_equal(r->nsites, 1);
		assert_string_equal(r->sites[0].city, "Jinan");
		if (r->thumb) {
			assert_true(r->thumb_len <= sizeof(x->jpeg));
			memcpy(x->jpeg, r->thumb, r->thumb_len);
			x->jpeg_len = r->thumb_len;
			x->thumb_ts = r->thumb_ts_ms;
			assert_string_equal(r->thumb_agent, "a");
		}
	}
	x->done++;
}

static void get_thumb(struct ctx *x, const char *site, const char *camera, int64_t at)
{
	int want = x->done + 1;
	assert_int_equal(store_thumbnail(x->st, site, camera, at, on_thumb, x), 0);
	wait_done(x, want);
}

static void on_site(void *ud, const struct store_reply *r)
{
	struct ctx *x = ud;
	x->status = r->status;
	for (size_t i = 0; i < r->ntargets && i < 4; i++)
		x->site_thumb_ts[i] = r->targets[i].thumb_ts_ms;
	x->done++;
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
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void stored_with_its_row_and_read_back(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	int64_t now = vw_now_ms(), t1 = now - 60000, t2 = now - 30000;
	put(x, 1, "cam1", t1, 1, now);
	put(x, 2, "cam1", t2, 2, now);
	put(x, 3, "cam2", t2, 0, now); /* no picture */
	get_thumb(x, "site-1", "cam1", 0);
	assert_int_equal(x->jpeg_len, sizeof(JPEG));
	assert_int_equal(x->jpeg[6], 2); /* the newest */
	assert_int_equal(x->thumb_ts, t2);
	get_thumb(x, "site-1", "cam1", t2 - 1); /* at or before */
	assert_int_equal(x->jpeg[6], 1);
	assert_int_equal(x->thumb_ts, t1);
	get_thumb(x, "site-1", "cam1", t1 - 1);
	assert_int_equal(x->status, 0);
	assert_int_equal(x->jpeg_len, 0); /* none that early */
	get_thumb(x, "site-1", "cam2", 0);
	assert_int_equal(x->jpeg_len, 0);
	get_thumb(x, "site-9", "cam1", 0);
	assert_int_equal(x->status, -ENOENT);
	/* The site page: each stream target's newest picture time (targets by kind, target). */
	int want = x->done + 1;
	assert_int_equal(store_get_site(x->st, "site-1", on_site, x), 0);
	wait_done(x, want);
	assert_int_equal(x->site_thumb_ts[0], t2);
	assert_int_equal(x->site_thumb_ts[1], 0);
	/* A resend stores neither the row nor its picture again. */
	put(x, 2, "cam1", t2, 2, now);
	close_h(x);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM thumbnails"), 2);
}

static void on_written(struct store_write *w)
{
	struct ctx *x = w->data;
	x->status = w->status;
	x->done++;
}

static void every_access_is_recorded(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	struct store_thumb_access a = {.actor = "city:t1 (Jinan duty)",
	                               .site = "site-1",
	                               .camera = "cam1",
	                               .asked_ms = 0,
	                               .thumb_ts_ms = 1767225600000LL,
	                               .peer = "127.0.0.1:5000"};
	struct store_write w = {.op = STORE_THUMB_ACCESS,
	                        .actor = a.actor,
	                        .access = &a,
	                        .done = on_written,
	                        .data = x};
	int want = x->done + 1;
	assert_int_equal(store_write_submit(x->st, &w), 0);
	wait_done(x, want);
	assert_int_equal(x->status, 0);
	close_h(x);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM thumbnail_access WHERE site = 'site-1'"
	                              " AND camera = 'cam1' AND actor = 'city:t1 (Jinan duty)'"
	                              " AND asked_ms IS NULL AND thumb_ts_ms = 1767225600000"
	                              " AND at_ms > 0"),
	                 1);
}

static void tick(uv_timer_t *t)
{
	(void)t;
}

/* Polls (a 50 ms timer keeps the loop turning) until sql's count is want or 20 s pass. */
static int64_t poll_count(struct ctx *x, const char *sql, int64_t want)
{
	int64_t deadline = vw_mono_ms() + 20000, n;
	uv_timer_t *t = &x->poll;
	uv_timer_init(&x->loop, t);
	while ((n = sql_value(x, sql)) != want && vw_mono_ms() < deadline) {
		uv_timer_start(t, tick, 50, 0);
		uv_run(&x->loop, UV_RUN_ONCE);
	}
	uv_close((uv_handle_t *)t, NULL);
	uv_run(&x->loop, UV_RUN_NOWAIT); /* the close completes while t is still ours */
	return n;
}

/* Many accesses queued at once (a venue page's tiles) go in one transaction: every one is
 * answered only after its row is committed, each with status 0, and a request without a
 * row (a caller's bug) fails alone. A batch queued among them is committed too. */
#define NACCESS 40
static void queued_accesses_are_committed_together(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	struct store_thumb_access a[NACCESS];
	struct store_write w[NACCESS + 1];
	char cam[NACCESS][16];
	int want = x->done;
	for (int i = 0; i <= NACCESS; i++) {
		if (i < NACCESS) {
			snprintf(cam[i], sizeof(cam[i]), "cam%d", i);
			a[i] = (struct store_thumb_access){.actor = "org:t2 (org duty)",
			                                   .site = "site-1",
			                                   .camera = cam[i],
			                                   .thumb_ts_ms = 1767225600000LL + i,
			                                   .peer = "127.0.0.1:5001"};
		}
		w[i] = (struct store_write){.op = STORE_THUMB_ACCESS,
		                            .actor = "org:t2 (org duty)",
		                            .access = i < NACCESS ? &a[i] : NULL,
		                            .done = on_written,
		                            .data = x};
		assert_int_equal(store_write_submit(x->st, &w[i]), 0);
		want++;
	}
	wait_done(x, want);
	for (int i = 0; i < NACCESS; i++)
		assert_int_equal(w[i].status, 0);
	assert_int_equal(w[NACCESS].status, -EINVAL);
	put(x, 1, "cam1", vw_now_ms(), 1, vw_now_ms()); /* the writer still takes batches */
	close_h(x);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM thumbnail_access"), NACCESS);
	assert_int_equal(sql_value(x, "SELECT count(DISTINCT camera) FROM thumbnail_access"
	                              " WHERE thumb_ts_ms - 1767225600000 = CAST(substr(camera, 4)"
	                              " AS INTEGER)"),
	                 NACCESS);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM thumbnails"), 1);
}

/* The access log is kept for thumb_access_retention_ms: the job's slices delete older rows
 * (oldest first, in bounded batches) and keep the young ones. */
static void old_accesses_are_pruned_young_ones_stay(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	int64_t now = vw_now_ms(), old = now - 2 * 3600 * 1000LL;
	struct store_thumb_access a[4];
	struct store_write w[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct store_thumb_access){.at_ms = i < 3 ? old + i : now,
		                                   .actor = i < 3 ? "city:old (a)" : "city:new (b)",
		                                   .site = "site-1",
		                                   .camera = "cam1",
		                                   .thumb_ts_ms = old,
		                                   .peer = "127.0.0.1:5002"};
		w[i] = (struct store_write){.op = STORE_THUMB_ACCESS,
		                            .actor = a[i].actor,
		                            .access = &a[i],
		                            .done = on_written,
		                            .data = x};
		int want = x->done + 1;
		assert_int_equal(store_write_submit(x->st, &w[i]), 0);
		wait_done(x, want);
		assert_int_equal(x->status, 0);
	}
	assert_int_equal(poll_count(x, "SELECT count(*) FROM thumbnail_access", 1), 1);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM thumbnail_access"
	                              " WHERE actor = 'city:new (b)'"),
	                 1);
	close_h(x);
}

/* 0: the access log is never pruned by the store (the config refuses less than a day). */
static void no_access_retention_keeps_them(void **state)
{
	struct ctx *x = *state;
	x->opt.thumb_access_retention_ms = 0;
	open_h(x);
	int64_t old = vw_now_ms() - 2 * 3600 * 1000LL;
	struct store_thumb_access a = {
	    .at_ms = old, .actor = "city:old (a)", .site = "site-1", .camera = "cam1", .peer = "p"};
	struct store_write w = {.op = STORE_THUMB_ACCESS,
	                        .actor = a.actor,
	                        .access = &a,
	                        .done = on_written,
	                        .data = x};
	int want = x->done + 1;
	assert_int_equal(store_write_submit(x->st, &w), 0);
	wait_done(x, want);
	/* A young picture that the job's slices see go by: they ran over the old access. */
	put(x, 1, "cam1", vw_now_ms(), 1, vw_now_ms());
	assert_int_equal(poll_count(x,
	                            "SELECT count(*) FROM results r, rollup_mark m"
	                            " WHERE r.id <= m.result_id",
	                            1),
	                 1);
	close_h(x);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM thumbnail_access"), 1);
}

static void old_pictures_are_pruned_young_ones_stay(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	int64_t now = vw_now_ms(), old = now - 2 * 3600 * 1000LL;
	for (int i = 1; i <= 3; i++)
		put(x, i, "cam1", old, (unsigned char)i, old); /* arrived 2 h ago */
	put(x, 4, "cam1", now, 4, now);
	/* The job's next slices prune; poll with a deadline (no sleeps). */
	int64_t deadline = vw_mono_ms() + 20000;
	uv_timer_t t;
	uv_timer_init(&x->loop, &t);
	int64_t n;
	while ((n = sql_value(x, "SELECT count(*) FROM thumbnails")) > 1 &&
	       vw_mono_ms() < deadline) {
		uv_timer_start(&t, tick, 50, 0);
		uv_run(&x->loop, UV_RUN_ONCE);
	}
	uv_close((uv_handle_t *)&t, NULL);
	assert_int_equal(n, 1);
	get_thumb(x, "site-1", "cam1", 0);
	assert_int_equal(x->jpeg[6], 4);
	get_thumb(x, "site-1", "cam1", now - 1); /* the old ones are gone */
	assert_int_equal(x->jpeg_len, 0);
	close_h(x);
}

/* No argument: the decoder and the store on SQLite. "postgresql" (ctest
 * test_thumbs_postgresql, under tests/tools/pg.sh): the store's tests on PostgreSQL, all but
 * no_access_retention_keeps_them, which watches SQLite's rollup job go by (the rollups are not
 * on PostgreSQL yet). */
int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "postgresql") == 0) {
		if (!getenv("VW_PG_DSN")) {
			fprintf(stderr, "test_thumbs postgresql: no VW_PG_DSN (run it under "
			                "tests/tools/pg.sh)\n");
			return 1;
		}
#define PG(f) cmocka_unit_test_setup_teardown(f, setup_pg, teardown)
		const struct CMUnitTest pg[] = {
		    PG(stored_with_its_row_and_read_back),
		    PG(every_access_is_recorded),
		    PG(old_pictures_are_pruned_young_ones_stay),
		    PG(queued_accesses_are_committed_together),
		    PG(old_accesses_are_pruned_young_ones_stay),
		};
		return cmocka_run_group_tests_name("thumbs: postgresql store", pg, NULL, NULL);
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(decode_accepts_a_jpeg),
	    cmocka_unit_test(decode_refuses_what_is_not_a_small_jpeg),
	    cmocka_unit_test(batch_errors_name_the_result),
	    cmocka_unit_test_setup_teardown(stored_with_its_row_and_read_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(every_access_is_recorded, setup, teardown),
	    cmocka_unit_test_setup_teardown(old_pictures_are_pruned_young_ones_stay, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(queued_accesses_are_committed_together, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(old_accesses_are_pruned_young_ones_stay, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(no_access_retention_keeps_them, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
