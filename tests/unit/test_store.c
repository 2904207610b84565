/* The collector's store: a resent batch is acknowledged and not stored twice (the per-agent
 * high-water mark), acks are the mark after the commit, everything survives a reopen, the
 * latest table tracks the newest result per target, and queued batches share commits.
 * Real SQLite files in a temporary directory, a real libuv loop and writer thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "store.h"
#include "vtime.h"
#include "testdir.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	if (testdir_make(dir, sizeof(dir), "store"))
		return -1;
	snprintf(path, sizeof(path), "%s/venuewatch.db", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return testdir_remove(dir);
}

struct harness {
	uv_loop_t loop;
	struct store *st;
	int done;
};

static void open_h(struct harness *h)
{
	char err[256];
	assert_int_equal(uv_loop_init(&h->loop), 0);
	int rc = store_open(path, &h->st, err, sizeof(err));
	if (rc)
		fail_msg("store_open: %s", err);
	assert_int_equal(store_start(h->st, &h->loop, 64), 0);
}

static void close_h(struct harness *h)
{
	store_close(h->st);
	uv_run(&h->loop, UV_RUN_DEFAULT); /* the async handle's close frees the store */
	assert_int_equal(uv_loop_close(&h->loop), 0);
}

static void on_done(struct store_batch *b)
{
	struct harness *h = b->data;
	h->done++;
}

static struct store_batch *batch(const char *site, const char *agent, const int64_t *seqs,
				 size_t n, const char *target, enum vw_status status)
{
	struct store_batch *b = store_batch_create();
	assert_non_null(b);
	snprintf(b->site, sizeof(b->site), "%s", site);
	snprintf(b->agent, sizeof(b->agent), "%s", agent);
	snprintf(b->org, sizeof(b->org), "org-1");
	snprintf(b->city, sizeof(b->city), "Jinan");
	b->received_ms = vw_now_ms();
	for (size_t i = 0; i < n; i++) {
		struct vw_result r;
		vw_result_init(&r, VW_KIND_STREAM, target);
		r.seq = seqs[i];
		r.ts_ms = 1700000000000LL + seqs[i] * 1000;
		r.status = status;
		if (status != VW_STATUS_OK)
			vw_result_add_fault(&r, VW_FAULT_TIMEOUT);
		vw_result_set_metric(&r, VW_M_FPS, 25);
		assert_int_equal(store_batch_add(b, &r), 0);
	}
	store_batch_sort(b);
	return b;
}

/* Submits, waits for the commit's callback, returns the batch (caller destroys). */
static struct store_batch *commit(struct harness *h, struct store_batch *b)
{
	b->done = on_done;
	b->data = h;
	int want = h->done + 1;
	assert_int_equal(store_submit(h->st, b), 0);
	while (h->done < want)
		uv_run(&h->loop, UV_RUN_ONCE);
	assert_int_equal(b->status, 0);
	return b;
}

static int64_t count(struct harness *h)
{
	int64_t n = -1;
	assert_int_equal(store_count_results(h->st, &n), 0);
	return n;
}

static void resent_batch_is_acked_and_stored_once(void **state)
{
	(void)state;
	struct harness h = {0};
	open_h(&h);
	static const int64_t s123[] = {3, 1, 2};
	struct store_batch *b = commit(&h, batch("site-1", "a", s123, 3, "cam1", VW_STATUS_OK));
	assert_int_equal(b->acked_seq, 3);
	assert_int_equal(b->stored, 3);
	store_batch_destroy(b);

	b = commit(&h, batch("site-1", "a", s123, 3, "cam1", VW_STATUS_OK));
	assert_int_equal(b->acked_seq, 3); /* the whole batch was a duplicate: still acked */
	assert_int_equal(b->stored, 0);
	store_batch_destroy(b);
	assert_int_equal(count(&h), 3);

	static const int64_t s2345[] = {2, 3, 4, 5, 5};
	b = commit(&h, batch("site-1", "a", s2345, 5, "cam1", VW_STATUS_OK));
	assert_int_equal(b->acked_seq, 5);
	assert_int_equal(b->stored, 2); /* 4 and 5; the repeated 5 once */
	store_batch_destroy(b);
	assert_int_equal(count(&h), 5);

	/* another agent of the same site has its own mark */
	b = commit(&h, batch("site-1", "b", s123, 3, "cam9", VW_STATUS_OK));
	assert_int_equal(b->acked_seq, 3);
	assert_int_equal(b->stored, 3);
	store_batch_destroy(b);

	/* an empty batch reports the mark */
	b = commit(&h, batch("site-1", "a", NULL, 0, "x", VW_STATUS_OK));
	assert_int_equal(b->acked_seq, 5);
	store_batch_destroy(b);

	int64_t hs;
	assert_int_equal(store_high_seq(h.st, "site-1", "a", &hs), 0);
	assert_int_equal(hs, 5);
	assert_int_equal(store_high_seq(h.st, "site-1", "nobody", &hs), 0);
	assert_int_equal(hs, 0);
	close_h(&h);
}

static int64_t gap_rows(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -1;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* A batch that overlaps what is stored adds only the new rows; one that starts past the
 * mark + 1 (seqs the agent dropped) is stored, the hole written to seq_gaps, and the ack
 * moves past it; a stale batch arriving after a newer one changes nothing. */
static void overlaps_store_the_new_and_gaps_are_recorded(void **state)
{
	(void)state;
	struct harness h = {0};
	open_h(&h);
	static const int64_t s1_5[] = {1, 2, 3, 4, 5}, s3_8[] = {3, 4, 5, 6, 7, 8};
	static const int64_t s12_14[] = {12, 13, 14, 16}, s1_3[] = {1, 2, 3};
	struct store_batch *b = commit(&h, batch("site-1", "a", s1_5, 5, "cam1", VW_STATUS_OK));
	store_batch_destroy(b);
	b = commit(&h, batch("site-1", "a", s3_8, 6, "cam1", VW_STATUS_OK));
	assert_int_equal(b->stored, 3);
	assert_int_equal(b->acked_seq, 8);
	assert_int_equal(b->gap_seqs, 0);
	store_batch_destroy(b);

	b = commit(&h, batch("site-1", "a", s12_14, 4, "cam1", VW_STATUS_OK));
	assert_int_equal(b->stored, 4);
	assert_int_equal(b->acked_seq, 16);
	assert_int_equal(b->gap_seqs, 4); /* 9-11 and 15 */
	store_batch_destroy(b);

	b = commit(&h, batch("site-1", "a", s1_3, 3, "cam1", VW_STATUS_OK));
	assert_int_equal(b->stored, 0);
	assert_int_equal(b->acked_seq, 16);
	store_batch_destroy(b);
	assert_int_equal(count(&h), 12);
	struct store_stats stats;
	store_get_stats(h.st, &stats);
	assert_int_equal(stats.gap_seqs, 4);
	close_h(&h);
	assert_int_equal(gap_rows("SELECT count(*) FROM seq_gaps"), 2);
	assert_int_equal(gap_rows("SELECT first_seq FROM seq_gaps ORDER BY first_seq"), 9);
	assert_int_equal(gap_rows("SELECT last_seq FROM seq_gaps ORDER BY first_seq"), 11);
	assert_int_equal(gap_rows("SELECT sum(last_seq - first_seq + 1) FROM seq_gaps"), 4);
}

/* A collector from before seq_gaps existed (schema 1) migrates in place and keeps marks. */
static void schema_1_migrates_and_keeps_marks(void **state)
{
	(void)state;
	struct harness h = {0};
	open_h(&h);
	static const int64_t s1_3[] = {1, 2, 3};
	store_batch_destroy(commit(&h, batch("site-1", "a", s1_3, 3, "cam1", VW_STATUS_OK)));
	close_h(&h);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE seq_gaps; PRAGMA user_version = 1", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	open_h(&h);
	int64_t hs;
	assert_int_equal(store_high_seq(h.st, "site-1", "a", &hs), 0);
	assert_int_equal(hs, 3);
	close_h(&h);
	assert_int_equal(gap_rows("PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(gap_rows("SELECT count(*) FROM seq_gaps"), 0);
}

static void marks_and_rows_survive_reopen(void **state)
{
	(void)state;
	struct harness h = {0};
	open_h(&h);
	static const int64_t s[] = {1, 2, 3, 4};
	store_batch_destroy(commit(&h, batch("site-1", "a", s, 4, "cam1", VW_STATUS_OK)));
	close_h(&h);

	memset(&h, 0, sizeof(h));
	open_h(&h);
	assert_int_equal(count(&h), 4);
	int64_t hs;
	assert_int_equal(store_high_seq(h.st, "site-1", "a", &hs), 0);
	assert_int_equal(hs, 4);
	static const int64_t s2[] = {4, 5};
	struct store_batch *b = commit(&h, batch("site-1", "a", s2, 2, "cam1", VW_STATUS_OK));
	assert_int_equal(b->stored, 1);
	assert_int_equal(b->acked_seq, 5);
	store_batch_destroy(b);
	close_h(&h);

	/* the schema version is recorded */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), STORE_SCHEMA_VERSION);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void newer_schema_is_refused(void **state)
{
	(void)state;
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct store *st = NULL;
	char err[256];
	assert_int_equal(store_open(path, &st, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "newer"));
	assert_null(st);
}

struct seen {
	int sites;
	char last_site[64];
	int64_t ok, degraded, down;
	char city[32];
	int targets;
	char statuses[8][64];
	char faults[8][64];
};

static int on_site(void *ud, const struct store_site *s)
{
	struct seen *x = ud;
	x->sites++;
	snprintf(x->last_site, sizeof(x->last_site), "%s", s->site);
	snprintf(x->city, sizeof(x->city), "%s", s->city);
	x->ok = s->ok;
	x->degraded = s->degraded;
	x->down = s->down;
	return 0;
}

static int on_target(void *ud, const struct store_target *t)
{
	struct seen *x = ud;
	if (x->targets < 8) {
		snprintf(x->statuses[x->targets], 64, "%s/%s=%s#%lld", t->kind, t->target, t->status,
			 (long long)t->seq);
		snprintf(x->faults[x->targets], 64, "%s", t->faults);
	}
	x->targets++;
	return 0;
}

static void latest_follows_the_newest_result_per_target(void **state)
{
	(void)state;
	struct harness h = {0};
	open_h(&h);
	static const int64_t s1[] = {1, 2}, s2[] = {3}, s3[] = {4}, s4[] = {5, 6};
	store_batch_destroy(commit(&h, batch("site-1", "a", s1, 2, "cam1", VW_STATUS_OK)));
	store_batch_destroy(commit(&h, batch("site-1", "a", s2, 1, "cam2", VW_STATUS_OK)));
	store_batch_destroy(commit(&h, batch("site-1", "a", s3, 1, "cam1", VW_STATUS_DOWN)));
	store_batch_destroy(commit(&h, batch("site-2", "a", s4, 2, "cam1", VW_STATUS_DEGRADED)));
	/* a resend of an old seq must not move latest back */
	store_batch_destroy(commit(&h, batch("site-1", "a", s1, 2, "cam1", VW_STATUS_OK)));

	struct seen x = {0};
	assert_int_equal(store_list_sites(h.st, on_site, &x), 0);
	assert_int_equal(x.sites, 2);
	assert_string_equal(x.last_site, "site-2"); /* ordered by site */
	assert_int_equal(x.degraded, 1);

	memset(&x, 0, sizeof(x));
	assert_int_equal(store_get_site(h.st, "site-1", on_site, on_target, &x), 0);
	assert_int_equal(x.ok, 1);
	assert_int_equal(x.down, 1);
	assert_int_equal(x.degraded, 0);
	assert_string_equal(x.city, "Jinan");
	assert_int_equal(x.targets, 2);
	assert_string_equal(x.statuses[0], "stream/cam1=down#4");
	assert_string_equal(x.faults[0], "[\"timeout\"]");
	assert_string_equal(x.statuses[1], "stream/cam2=ok#3");

	memset(&x, 0, sizeof(x));
	assert_int_equal(store_get_site(h.st, "site-9", on_site, on_target, &x), -ENOENT);
	assert_int_equal(x.sites, 0);
	close_h(&h);
}

/* The overview's per-agent counters against a recount of latest, straight from the file. */
static void assert_counts_match_latest(struct harness *h)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(
	    sqlite3_prepare_v2(db,
			       "SELECT a.site, sum(l.status = 'ok'), sum(l.status = 'degraded'),"
			       " sum(l.status = 'down') FROM latest l JOIN agents a ON a.id = l.agent_id"
			       " WHERE l.kind = 'stream' GROUP BY a.site ORDER BY a.site",
			       -1, &st, NULL),
	    SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct seen x = {0};
		const char *site = (const char *)sqlite3_column_text(st, 0);
		assert_int_equal(store_get_site(h->st, site, on_site, on_target, &x), 0);
		assert_int_equal(x.ok, sqlite3_column_int64(st, 1));
		assert_int_equal(x.degraded, sqlite3_column_int64(st, 2));
		assert_int_equal(x.down, sqlite3_column_int64(st, 3));
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void camera_counts_follow_status_changes(void **state)
{
	(void)state;
	struct harness h = {0};
	open_h(&h);
	/* cameras change status across batches and several times within one batch */
	static const enum vw_status cycle[] = {VW_STATUS_OK, VW_STATUS_DOWN, VW_STATUS_DEGRADED,
					       VW_STATUS_OK, VW_STATUS_DOWN};
	int64_t seq = 0;
	for (int round = 0; round < 40; round++) {
		struct store_batch *b = store_batch_create();
		snprintf(b->site, sizeof(b->site), "site-%d", round % 3);
		snprintf(b->agent, sizeof(b->agent), "a%d", round % 2);
		for (int k = 0; k < 12; k++) {
			struct vw_result r;
			char target[16];
			snprintf(target, sizeof(target), "cam%d", (round * 7 + k * 3) % 9);
			vw_result_init(&r, k % 4 == 3 ? VW_KIND_NETWORK : VW_KIND_STREAM, target);
			r.seq = ++seq + 1000 * (round % 2); /* per-agent seqs stay increasing */
			r.status = cycle[(round + k) % 5];
			assert_int_equal(store_batch_add(b, &r), 0);
		}
		store_batch_sort(b);
		store_batch_destroy(commit(&h, b));
		assert_counts_match_latest(&h);
	}
	close_h(&h);
}

static void pending_batches_share_commits(void **state)
{
	(void)state;
	struct harness h = {0};
	open_h(&h);
	enum { N = 50 };
	struct store_batch *bs[N];
	for (int i = 0; i < N; i++) {
		char agent[16];
		snprintf(agent, sizeof(agent), "a%d", i);
		int64_t seqs[10];
		for (int k = 0; k < 10; k++)
			seqs[k] = k + 1;
		bs[i] = batch("site-1", agent, seqs, 10, "cam", VW_STATUS_OK);
		bs[i]->done = on_done;
		bs[i]->data = &h;
		assert_int_equal(store_submit(h.st, bs[i]), 0);
	}
	while (h.done < N)
		uv_run(&h.loop, UV_RUN_ONCE);
	struct store_stats stats;
	store_get_stats(h.st, &stats);
	assert_int_equal(stats.batches, N);
	assert_int_equal(stats.rows_stored, N * 10);
	assert_true(stats.commits < N); /* the writer took several at once */
	for (int i = 0; i < N; i++) {
		assert_int_equal(bs[i]->status, 0);
		assert_int_equal(bs[i]->acked_seq, 10);
		store_batch_destroy(bs[i]);
	}
	printf("# %d batches in %llu commits\n", N, (unsigned long long)stats.commits);
	assert_int_equal(count(&h), N * 10);
	close_h(&h);
}

static void queue_is_bounded_and_close_refuses(void **state)
{
	(void)state;
	struct harness h = {0};
	char err[256];
	assert_int_equal(uv_loop_init(&h.loop), 0);
	assert_int_equal(store_open(path, &h.st, err, sizeof(err)), 0);
	struct store_batch *b = batch("s", "a", NULL, 0, "x", VW_STATUS_OK);
	assert_int_equal(store_submit(h.st, b), -ESHUTDOWN); /* not started */
	/* queue of 1: the writer may already hold the first, so fill until refused */
	assert_int_equal(store_start(h.st, &h.loop, 1), 0);
	struct store_batch *more[64];
	int accepted = 0, refused = 0;
	for (int i = 0; i < 64; i++) {
		more[i] = batch("s", "a", NULL, 0, "x", VW_STATUS_OK);
		more[i]->done = on_done;
		more[i]->data = &h;
		int rc = store_submit(h.st, more[i]);
		if (rc == 0)
			accepted++;
		else {
			assert_int_equal(rc, -EAGAIN);
			refused++;
		}
	}
	assert_true(refused > 0);
	store_close(h.st); /* commits what was accepted and runs their callbacks */
	assert_int_equal(h.done, accepted);
	uv_run(&h.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&h.loop), 0);
	for (int i = 0; i < 64; i++)
		store_batch_destroy(more[i]);
	store_batch_destroy(b);
}

static void thousand_row_batch_rate(void **state)
{
	(void)state;
	struct harness h = {0};
	open_h(&h);
	enum { ROWS = 1000, ROUNDS = 20 };
	int64_t *seqs = malloc(ROWS * sizeof(*seqs));
	double best = 0, total_ms = 0;
	for (int round = 0; round < ROUNDS; round++) {
		for (int i = 0; i < ROWS; i++)
			seqs[i] = (int64_t)round * ROWS + i + 1;
		/* 200 cameras, 5 checks each: latest sees repeats as a real batch would */
		struct store_batch *b = store_batch_create();
		snprintf(b->site, sizeof(b->site), "site-bench");
		snprintf(b->agent, sizeof(b->agent), "a");
		for (int i = 0; i < ROWS; i++) {
			struct vw_result r;
			char target[16];
			snprintf(target, sizeof(target), "cam%03d", i % 200);
			vw_result_init(&r, VW_KIND_STREAM, target);
			r.seq = seqs[i];
			vw_result_set_metric(&r, VW_M_FPS, 25);
			vw_result_set_metric(&r, VW_M_WIDTH, 1920);
			vw_result_set_metric(&r, VW_M_HEIGHT, 1080);
			vw_result_set_metric(&r, VW_M_BITRATE_KBPS, 4096.5);
			store_batch_add(b, &r);
		}
		int64_t t0 = vw_mono_ms();
		b = commit(&h, b);
		double ms = (double)(vw_mono_ms() - t0);
		assert_int_equal(b->stored, ROWS);
		store_batch_destroy(b);
		total_ms += ms;
		double rate = ROWS / (ms > 0 ? ms : 0.5) * 1000;
		if (rate > best)
			best = rate;
	}
	printf("# store: %d x %d-row batches, mean %.1f ms/batch, %.0f rows/s mean, %.0f rows/s best\n",
	       ROUNDS, ROWS, total_ms / ROUNDS, ROWS * ROUNDS / total_ms * 1000, best);
	free(seqs);
	close_h(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(resent_batch_is_acked_and_stored_once, setup, teardown),
		cmocka_unit_test_setup_teardown(marks_and_rows_survive_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(overlaps_store_the_new_and_gaps_are_recorded, setup,
						teardown),
		cmocka_unit_test_setup_teardown(schema_1_migrates_and_keeps_marks, setup, teardown),
		cmocka_unit_test_setup_teardown(newer_schema_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(latest_follows_the_newest_result_per_target, setup,
						teardown),
		cmocka_unit_test_setup_teardown(camera_counts_follow_status_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(pending_batches_share_commits, setup, teardown),
		cmocka_unit_test_setup_teardown(queue_is_bounded_and_close_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(thousand_row_batch_rate, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
