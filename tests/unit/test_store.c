/* The store's contract, written against store.h only and run once per backend (the table
 * `backends` below: a new backend adds one line and passes the same suite): a resent batch
 * is acknowledged and not stored twice (the per-agent high-water mark), acks are the mark
 * after the commit, gaps are counted, the latest result per target is what reads show,
 * reads are asynchronous, bounded and see every acknowledged batch, and close commits and
 * answers what is queued. Then the SQLite backend's own promises (schema versions,
 * migrations, the seq_gaps rows), checked in its file. Real files in a temporary
 * directory, a real libuv loop, real writer and reader threads. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <inttypes.h>
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

/* --- backends under test ------------------------------------------------------------------ */

struct ctx;
struct backend {
	const char *name;
	/* An empty place for one test's store: sets the options store_open gets. */
	int (*make)(struct ctx *x);
	int (*remove)(struct ctx *x);
};

struct ctx {
	const struct backend *be;
	char dir[64];
	char db[64], dsn[512]; /* postgresql: this test's own database */
	struct store_options opt;
	uv_loop_t loop;
	struct store *st;
	int done;
};

static int sqlite_make(struct ctx *x)
{
	if (testdir_make(x->dir, sizeof(x->dir), "store"))
		return -1;
	x->opt.backend = "sqlite";
	x->opt.dir = x->dir;
	return 0;
}

static int sqlite_remove(struct ctx *x)
{
	return testdir_remove(x->dir);
}

/* PostgreSQL: a fresh database per test (testpg.h); the password reaches libpq only through
 * the store's password_file. */
static int pg_make(struct ctx *x)
{
	if (testpg_make("store", x->db, sizeof(x->db), x->dsn, sizeof(x->dsn)))
		return -1;
	x->opt.backend = "postgresql";
	x->opt.dsn = x->dsn;
	x->opt.password_file = getenv("VW_PG_PASSFILE");
	return 0;
}

static int pg_remove(struct ctx *x)
{
	return testpg_remove(x->db);
}

static const struct backend backends[] = {
    {"sqlite", sqlite_make, sqlite_remove},
    {"postgresql", pg_make, pg_remove},
};

static int setup(void **state)
{
	struct ctx *x = calloc(1, sizeof(*x));
	if (!x)
		return -1;
	x->be = *state; /* the prestate: which backend */
	if (x->be->make(x)) {
		free(x);
		return -1;
	}
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;
	int rc = x->be->remove(x);
	free(x);
	return rc;
}

/* --- helpers --------------------------------------------------------------------------- */

static void open_h(struct ctx *x)
{
	char err[256];
	assert_int_equal(uv_loop_init(&x->loop), 0);
	int rc = store_open(&x->opt, &x->st, err, sizeof(err));
	if (rc)
		fail_msg("store_open: %s", err);
	assert_int_equal(store_start(x->st, &x->loop, 64), 0);
	x->done = 0;
}

static void close_h(struct ctx *x)
{
	store_close(x->st);
	uv_run(&x->loop, UV_RUN_DEFAULT); /* the async handle's close frees the store */
	assert_int_equal(uv_loop_close(&x->loop), 0);
	x->st = NULL;
}

static void on_done(struct store_batch *b)
{
	struct ctx *x = b->data;
	x->done++;
}

static struct store_batch *batch(const char *site, const char *agent, const int64_t *seqs, size_t n,
                                 const char *target, enum vw_status status)
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
static struct store_batch *commit(struct ctx *x, struct store_batch *b)
{
	b->done = on_done;
	b->data = x;
	int want = x->done + 1;
	assert_int_equal(store_submit(x->st, b), 0);
	while (x->done < want)
		uv_run(&x->loop, UV_RUN_ONCE);
	assert_int_equal(b->status, 0);
	return b;
}

/* What a reply said, copied out during its callback (the reply dies with it). */
struct got {
	int calls, in_call, sync; /* sync: the callback ran inside the read call */
	int status;
	int64_t value;
	int sites;
	char first_site[64], last_site[64], city[32];
	int64_t ok, degraded, down;
	int targets;
	char statuses[8][64];
	char faults[8][64];
};

static void on_reply(void *ud, const struct store_reply *r)
{
	struct got *g = ud;
	g->calls++;
	g->sync |= g->in_call;
	g->status = r->status;
	g->value = r->value;
	g->sites = (int)r->nsites;
	for (size_t i = 0; i < r->nsites; i++) {
		const struct store_site *s = &r->sites[i];
		if (i == 0)
			snprintf(g->first_site, sizeof(g->first_site), "%s", s->site);
		snprintf(g->last_site, sizeof(g->last_site), "%s", s->site);
		snprintf(g->city, sizeof(g->city), "%s", s->city);
		g->ok = s->ok;
		g->degraded = s->degraded;
		g->down = s->down;
	}
	g->targets = (int)r->ntargets;
	for (size_t i = 0; i < r->ntargets && i < 8; i++) {
		const struct store_target *t = &r->targets[i];
		snprintf(g->statuses[i], 64, "%s/%s=%s#%lld", t->kind, t->target, t->status,
		         (long long)t->seq);
		snprintf(g->faults[i], 64, "%s", t->faults);
	}
}

/* Waits for the reply of a read that returned rc; returns the reply's status. */
static int wait_reply(struct ctx *x, struct got *g, int rc)
{
	g->in_call = 0;
	assert_int_equal(rc, 0);
	while (!g->calls)
		uv_run(&x->loop, UV_RUN_ONCE);
	assert_int_equal(g->calls, 1);
	assert_false(g->sync); /* never from inside the call: callers rely on it */
	return g->status;
}

#define READ(x, g, call) ((g)->in_call = 1, wait_reply((x), (g), (call)))

static int64_t epoch_high_seq(struct ctx *x, const char *site, const char *agent, const char *epoch)
{
	struct got g = {0};
	assert_int_equal(READ(x, &g, store_high_seq(x->st, site, agent, epoch, on_reply, &g)), 0);
	return g.value;
}

/* The legacy epoch's mark (batches without an epoch). */
static int64_t high_seq(struct ctx *x, const char *site, const char *agent)
{
	return epoch_high_seq(x, site, agent, "");
}

static struct store_batch *in_epoch(struct store_batch *b, const char *epoch)
{
	snprintf(b->epoch, sizeof(b->epoch), "%s", epoch);
	return b;
}

#define EPOCH_1 "00112233445566778899aabbccddeeff"
#define EPOCH_2 "ffeeddccbbaa99887766554433221100"

static int64_t count(struct ctx *x)
{
	struct got g = {0};
	assert_int_equal(READ(x, &g, store_count_results(x->st, on_reply, &g)), 0);
	return g.value;
}

static int get_site(struct ctx *x, const char *site, struct got *g)
{
	memset(g, 0, sizeof(*g));
	return READ(x, g, store_get_site(x->st, site, on_reply, g));
}

/* --- the contract ----------------------------------------------------------------------- */

static void resent_batch_is_acked_and_stored_once(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static const int64_t s123[] = {3, 1, 2};
	struct store_batch *b = commit(x, batch("site-1", "a", s123, 3, "cam1", VW_STATUS_OK));
	assert_int_equal(b->acked_seq, 3);
	assert_int_equal(b->stored, 3);
	store_batch_destroy(b);

	b = commit(x, batch("site-1", "a", s123, 3, "cam1", VW_STATUS_OK));
	assert_int_equal(b->acked_seq, 3); /* the whole batch was a duplicate: still acked */
	assert_int_equal(b->stored, 0);
	store_batch_destroy(b);
	assert_int_equal(count(x), 3);

	static const int64_t s2345[] = {2, 3, 4, 5, 5};
	b = commit(x, batch("site-1", "a", s2345, 5, "cam1", VW_STATUS_OK));
	assert_int_equal(b->acked_seq, 5);
	assert_int_equal(b->stored, 2); /* 4 and 5; the repeated 5 once */
	store_batch_destroy(b);
	assert_int_equal(count(x), 5);

	/* another agent of the same site has its own mark */
	b = commit(x, batch("site-1", "b", s123, 3, "cam9", VW_STATUS_OK));
	assert_int_equal(b->acked_seq, 3);
	assert_int_equal(b->stored, 3);
	store_batch_destroy(b);

	/* an empty batch reports the mark */
	b = commit(x, batch("site-1", "a", NULL, 0, "x", VW_STATUS_OK));
	assert_int_equal(b->acked_seq, 5);
	store_batch_destroy(b);

	assert_int_equal(high_seq(x, "site-1", "a"), 5);
	assert_int_equal(high_seq(x, "site-1", "b"), 3);
	assert_int_equal(high_seq(x, "site-1", "nobody"), 0);
	close_h(x);
}

/* A batch that overlaps what is stored adds only the new rows; one that starts past the
 * mark + 1 (seqs the agent dropped) is stored, the hole counted, and the ack moves past
 * it; a stale batch arriving after a newer one changes nothing. */
static void overlaps_store_the_new_and_gaps_are_counted(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static const int64_t s1_5[] = {1, 2, 3, 4, 5}, s3_8[] = {3, 4, 5, 6, 7, 8};
	static const int64_t s12_14[] = {12, 13, 14, 16}, s1_3[] = {1, 2, 3};
	store_batch_destroy(commit(x, batch("site-1", "a", s1_5, 5, "cam1", VW_STATUS_OK)));
	struct store_batch *b = commit(x, batch("site-1", "a", s3_8, 6, "cam1", VW_STATUS_OK));
	assert_int_equal(b->stored, 3);
	assert_int_equal(b->acked_seq, 8);
	assert_int_equal(b->gap_seqs, 0);
	store_batch_destroy(b);

	b = commit(x, batch("site-1", "a", s12_14, 4, "cam1", VW_STATUS_OK));
	assert_int_equal(b->stored, 4);
	assert_int_equal(b->acked_seq, 16);
	assert_int_equal(b->gap_seqs, 4); /* 9-11 and 15 */
	store_batch_destroy(b);

	b = commit(x, batch("site-1", "a", s1_3, 3, "cam1", VW_STATUS_OK));
	assert_int_equal(b->stored, 0);
	assert_int_equal(b->acked_seq, 16);
	assert_int_equal(b->gap_seqs, 0);
	store_batch_destroy(b);
	assert_int_equal(count(x), 12);
	assert_int_equal(high_seq(x, "site-1", "a"), 16);
	struct store_stats stats;
	store_get_stats(x->st, &stats);
	assert_int_equal(stats.gap_seqs, 4);
	assert_int_equal(stats.rows_stored, 12);
	close_h(x);
}

/* A reinstalled agent starts again at seq 1 under a new epoch: its rows are stored (not
 * skipped as resends of the old run), each epoch keeps its own mark across resends and
 * reopen, and a new epoch's gaps count from its own start. */
static void each_epoch_has_its_own_mark(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static const int64_t s1_5[] = {1, 2, 3, 4, 5}, s1_3[] = {1, 2, 3}, s2_3[] = {2, 3};
	store_batch_destroy(commit(x, batch("site-1", "a", s1_5, 5, "cam1", VW_STATUS_OK)));
	struct store_batch *b =
	    commit(x, in_epoch(batch("site-1", "a", s1_3, 3, "cam1", VW_STATUS_OK), EPOCH_1));
	assert_int_equal(b->stored, 3);
	assert_int_equal(b->acked_seq, 3);
	assert_int_equal(b->gap_seqs, 0);
	store_batch_destroy(b);
	/* resends stay resends, within each epoch */
	b = commit(x, in_epoch(batch("site-1", "a", s1_3, 3, "cam1", VW_STATUS_OK), EPOCH_1));
	assert_int_equal(b->stored, 0);
	assert_int_equal(b->acked_seq, 3);
	store_batch_destroy(b);
	b = commit(x, batch("site-1", "a", s1_5, 5, "cam1", VW_STATUS_OK));
	assert_int_equal(b->stored, 0);
	assert_int_equal(b->acked_seq, 5);
	store_batch_destroy(b);
	/* a fresh epoch whose first rows were dropped: the hole is counted from 1 */
	b = commit(x, in_epoch(batch("site-1", "a", s2_3, 2, "cam1", VW_STATUS_OK), EPOCH_2));
	assert_int_equal(b->stored, 2);
	assert_int_equal(b->acked_seq, 3);
	assert_int_equal(b->gap_seqs, 1);
	store_batch_destroy(b);
	/* another agent's epoch of the same id is another mark */
	b = commit(x, in_epoch(batch("site-1", "b", s1_5, 5, "cam9", VW_STATUS_OK), EPOCH_1));
	assert_int_equal(b->acked_seq, 5);
	store_batch_destroy(b);
	close_h(x);

	open_h(x);
	assert_int_equal(count(x), 5 + 3 + 2 + 5);
	assert_int_equal(high_seq(x, "site-1", "a"), 5);
	assert_int_equal(epoch_high_seq(x, "site-1", "a", EPOCH_1), 3);
	assert_int_equal(epoch_high_seq(x, "site-1", "a", EPOCH_2), 3);
	assert_int_equal(epoch_high_seq(x, "site-1", "b", EPOCH_1), 5);
	assert_int_equal(epoch_high_seq(x, "site-1", "b", EPOCH_2), 0);
	assert_int_equal(high_seq(x, "site-1", "b"), 0);
	close_h(x);
}

/* Epochs change nothing about what the site shows: one agent, the newest result per target
 * whichever epoch it came from, each camera counted once. */
static void a_new_epoch_continues_the_agents_latest_state(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static const int64_t s7[] = {7}, s1[] = {1};
	store_batch_destroy(commit(x, batch("site-1", "a", s7, 1, "cam1", VW_STATUS_OK)));
	store_batch_destroy(
	    commit(x, in_epoch(batch("site-1", "a", s1, 1, "cam1", VW_STATUS_DOWN), EPOCH_1)));
	struct got g;
	assert_int_equal(get_site(x, "site-1", &g), 0);
	assert_int_equal(g.targets, 1);
	assert_string_equal(g.statuses[0], "stream/cam1=down#1");
	assert_int_equal(g.ok, 0);
	assert_int_equal(g.down, 1);
	close_h(x);
}

static void marks_and_rows_survive_reopen(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static const int64_t s[] = {1, 2, 3, 4};
	store_batch_destroy(commit(x, batch("site-1", "a", s, 4, "cam1", VW_STATUS_OK)));
	close_h(x);

	open_h(x);
	assert_int_equal(count(x), 4);
	assert_int_equal(high_seq(x, "site-1", "a"), 4);
	static const int64_t s2[] = {4, 5};
	struct store_batch *b = commit(x, batch("site-1", "a", s2, 2, "cam1", VW_STATUS_OK));
	assert_int_equal(b->stored, 1);
	assert_int_equal(b->acked_seq, 5);
	store_batch_destroy(b);
	close_h(x);
}

static void latest_follows_the_newest_result_per_target(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static const int64_t s1[] = {1, 2}, s2[] = {3}, s3[] = {4}, s4[] = {5, 6};
	store_batch_destroy(commit(x, batch("site-1", "a", s1, 2, "cam1", VW_STATUS_OK)));
	store_batch_destroy(commit(x, batch("site-1", "a", s2, 1, "cam2", VW_STATUS_OK)));
	store_batch_destroy(commit(x, batch("site-1", "a", s3, 1, "cam1", VW_STATUS_DOWN)));
	store_batch_destroy(commit(x, batch("site-2", "a", s4, 2, "cam1", VW_STATUS_DEGRADED)));
	/* a resend of an old seq must not move latest back */
	store_batch_destroy(commit(x, batch("site-1", "a", s1, 2, "cam1", VW_STATUS_OK)));

	struct got g = {0};
	assert_int_equal(READ(x, &g, store_list_sites(x->st, on_reply, &g)), 0);
	assert_int_equal(g.sites, 2);
	assert_string_equal(g.first_site, "site-1"); /* ordered by site */
	assert_string_equal(g.last_site, "site-2");
	assert_int_equal(g.degraded, 1);
	assert_int_equal(g.targets, 0);

	assert_int_equal(get_site(x, "site-1", &g), 0);
	assert_int_equal(g.sites, 1);
	assert_int_equal(g.ok, 1);
	assert_int_equal(g.down, 1);
	assert_int_equal(g.degraded, 0);
	assert_string_equal(g.city, "Jinan");
	assert_int_equal(g.targets, 2);
	assert_string_equal(g.statuses[0], "stream/cam1=down#4");
	assert_string_equal(g.faults[0], "[\"timeout\"]");
	assert_string_equal(g.statuses[1], "stream/cam2=ok#3");

	assert_int_equal(get_site(x, "site-9", &g), -ENOENT);
	assert_int_equal(g.sites, 0);
	close_h(x);
}

/* The overview's camera counts against a model of latest kept by the test itself: each
 * (site, agent, camera)'s newest stream status, counted per site. */
static void camera_counts_follow_status_changes(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	enum { SITES = 3, AGENTS = 2, CAMS = 9 };
	int model[SITES][AGENTS][CAMS]; /* -1 = never seen, else enum vw_status */
	memset(model, 0xff, sizeof(model));
	/* cameras change status across batches and several times within one batch */
	static const enum vw_status cycle[] = {VW_STATUS_OK, VW_STATUS_DOWN, VW_STATUS_DEGRADED,
	                                       VW_STATUS_OK, VW_STATUS_DOWN};
	int64_t seq = 0;
	for (int round = 0; round < 40; round++) {
		int site = round % SITES, agent = round % AGENTS;
		struct store_batch *b = store_batch_create();
		snprintf(b->site, sizeof(b->site), "site-%d", site);
		snprintf(b->agent, sizeof(b->agent), "a%d", agent);
		for (int k = 0; k < 12; k++) {
			struct vw_result r;
			char target[16];
			int cam = (round * 7 + k * 3) % CAMS;
			snprintf(target, sizeof(target), "cam%d", cam);
			int stream = k % 4 != 3;
			vw_result_init(&r, stream ? VW_KIND_STREAM : VW_KIND_NETWORK, target);
			r.seq = ++seq + 1000 * agent; /* per-agent seqs stay increasing */
			r.status = cycle[(round + k) % 5];
			if (stream)
				model[site][agent][cam] = (int)r.status;
			assert_int_equal(store_batch_add(b, &r), 0);
		}
		store_batch_sort(b);
		store_batch_destroy(commit(x, b));
		for (int s = 0; s < SITES; s++) {
			int64_t want[VW_STATUS_COUNT] = {0};
			int seen = 0;
			for (int a = 0; a < AGENTS; a++)
				for (int c = 0; c < CAMS; c++)
					if (model[s][a][c] >= 0)
						want[model[s][a][c]]++, seen = 1;
			char name[16];
			snprintf(name, sizeof(name), "site-%d", s);
			struct got g;
			int rc = get_site(x, name, &g);
			if (!seen)
				continue; /* may not exist yet */
			assert_int_equal(rc, 0);
			assert_int_equal(g.ok, want[VW_STATUS_OK]);
			assert_int_equal(g.degraded, want[VW_STATUS_DEGRADED]);
			assert_int_equal(g.down, want[VW_STATUS_DOWN]);
		}
	}
	close_h(x);
}

static void pending_batches_share_commits(void **state)
{
	struct ctx *x = *state;
	open_h(x);
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
		bs[i]->data = x;
		assert_int_equal(store_submit(x->st, bs[i]), 0);
	}
	while (x->done < N)
		uv_run(&x->loop, UV_RUN_ONCE);
	struct store_stats stats;
	store_get_stats(x->st, &stats);
	assert_int_equal(stats.batches, N);
	assert_int_equal(stats.rows_stored, N * 10);
	assert_true(stats.commits < N); /* the writer took several at once */
	for (int i = 0; i < N; i++) {
		assert_int_equal(bs[i]->status, 0);
		assert_int_equal(bs[i]->acked_seq, 10);
		store_batch_destroy(bs[i]);
	}
	printf("# %s: %d batches in %llu commits\n", x->be->name, N,
	       (unsigned long long)stats.commits);
	assert_int_equal(count(x), N * 10);
	close_h(x);
}

/* Shutdown with batches queued: close commits every accepted batch and runs its callback;
 * what the store refused it never calls back. */
static void queue_is_bounded_and_close_commits_the_queue(void **state)
{
	struct ctx *x = *state;
	char err[256];
	assert_int_equal(uv_loop_init(&x->loop), 0);
	assert_int_equal(store_open(&x->opt, &x->st, err, sizeof(err)), 0);
	struct store_batch *b = batch("s", "a", NULL, 0, "x", VW_STATUS_OK);
	assert_int_equal(store_submit(x->st, b), -ESHUTDOWN); /* not started */
	/* queue of 1: the writer may already hold the first, so fill until refused */
	assert_int_equal(store_start(x->st, &x->loop, 1), 0);
	struct store_batch *more[64];
	int accepted = 0, refused = 0;
	for (int i = 0; i < 64; i++) {
		int64_t seq = i + 1;
		more[i] = batch("s", "a", &seq, 1, "x", VW_STATUS_OK);
		more[i]->done = on_done;
		more[i]->data = x;
		int rc = store_submit(x->st, more[i]);
		if (rc == 0)
			accepted++;
		else {
			assert_int_equal(rc, -EAGAIN);
			more[i]->status = 1; /* marks "not accepted" for the check below */
			refused++;
		}
	}
	assert_true(refused > 0);
	store_close(x->st); /* commits what was accepted and runs their callbacks */
	assert_int_equal(x->done, accepted);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&x->loop), 0);
	int stored = 0;
	for (int i = 0; i < 64; i++) {
		if (more[i]->status == 0)
			stored += (int)more[i]->stored;
		store_batch_destroy(more[i]);
	}
	store_batch_destroy(b);
	/* every accepted batch's row is there after a reopen */
	open_h(x);
	assert_int_equal(count(x), stored);
	assert_true(stored >= 1);
	close_h(x);
}

/* Reads go through the queue: refused before start, answered later on the loop, each
 * exactly once, and bounded — past max_reads in flight the store says -EAGAIN at once. */
static void reads_are_asynchronous_and_bounded(void **state)
{
	struct ctx *x = *state;
	char err[256];
	x->opt.max_reads = 3;
	assert_int_equal(uv_loop_init(&x->loop), 0);
	assert_int_equal(store_open(&x->opt, &x->st, err, sizeof(err)), 0);
	struct got early = {0};
	assert_int_equal(store_count_results(x->st, on_reply, &early), -ESHUTDOWN);
	assert_int_equal(store_start(x->st, &x->loop, 8), 0);
	struct got g[4];
	memset(g, 0, sizeof(g));
	for (int i = 0; i < 3; i++)
		assert_int_equal(store_list_sites(x->st, on_reply, &g[i]), 0);
	/* the loop has not run: the three are still in flight, whatever the readers did */
	assert_int_equal(store_high_seq(x->st, "s", "a", "", on_reply, &g[3]), -EAGAIN);
	struct store_stats stats;
	store_get_stats(x->st, &stats);
	assert_int_equal(stats.reads_refused, 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(wait_reply(x, &g[i], 0), 0);
		assert_int_equal(g[i].sites, 0);
	}
	assert_int_equal(g[3].calls, 0); /* refused means no callback */
	/* room again once the callbacks ran */
	memset(&g[3], 0, sizeof(g[3]));
	assert_int_equal(READ(x, &g[3], store_high_seq(x->st, "s", "a", "", on_reply, &g[3])), 0);
	assert_int_equal(early.calls, 0);
	close_h(x);
}

/* Close answers the reads it had accepted (the API owes each a response). */
static void close_answers_queued_reads(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static const int64_t s[] = {1, 2};
	store_batch_destroy(commit(x, batch("site-1", "a", s, 2, "cam1", VW_STATUS_OK)));
	struct got g[8];
	memset(g, 0, sizeof(g));
	for (int i = 0; i < 8; i++)
		assert_int_equal(store_get_site(x->st, "site-1", on_reply, &g[i]), 0);
	store_close(x->st);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(g[i].calls, 1);
		assert_int_equal(g[i].status, 0);
		assert_int_equal(g[i].targets, 1);
	}
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&x->loop), 0);
}

/* Reads while the writer commits: a read issued after a batch's ack sees at least that
 * mark (the ack follows the commit), and never more than was ever submitted. */
struct rw {
	struct ctx *x;
	int64_t acked, submitted, seq;
	int batches_left, inflight;
	int reads, reads_inflight;
	int64_t read_floor; /* the ack known when the outstanding read was issued */
	struct got g;
};

static void rw_submit(struct rw *w);

static void rw_done(struct store_batch *b)
{
	struct rw *w = b->data;
	assert_int_equal(b->status, 0);
	if (b->acked_seq > w->acked)
		w->acked = b->acked_seq;
	w->inflight--;
	store_batch_destroy(b);
	rw_submit(w);
}

static void rw_submit(struct rw *w)
{
	while (w->batches_left > 0 && w->inflight < 4) {
		int64_t seqs[50];
		for (int i = 0; i < 50; i++)
			seqs[i] = ++w->seq;
		struct store_batch *b = batch("site-rw", "a", seqs, 50, "cam1", VW_STATUS_OK);
		b->done = rw_done;
		b->data = w;
		assert_int_equal(store_submit(w->x->st, b), 0);
		w->submitted = w->seq;
		w->inflight++;
		w->batches_left--;
	}
}

static void rw_on_read(void *ud, const struct store_reply *r)
{
	struct rw *w = ud;
	assert_int_equal(r->status, 0);
	assert_true(r->value >= w->read_floor);
	assert_true(r->value <= w->submitted);
	w->reads++;
	w->reads_inflight--;
}

static void reads_during_writes_see_every_ack(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	struct rw w = {.x = x, .batches_left = 200};
	rw_submit(&w);
	while (w.inflight || w.reads_inflight) {
		if (!w.reads_inflight && w.inflight) {
			w.read_floor = w.acked;
			assert_int_equal(store_high_seq(x->st, "site-rw", "a", "", rw_on_read, &w),
			                 0);
			w.reads_inflight++;
		}
		uv_run(&x->loop, UV_RUN_ONCE);
	}
	assert_int_equal(w.acked, 200 * 50);
	assert_true(w.reads > 0);
	printf("# %s: %d reads answered during 200 commits of 50 rows\n", x->be->name, w.reads);
	assert_int_equal(high_seq(x, "site-rw", "a"), 200 * 50);
	assert_int_equal(count(x), 200 * 50);
	close_h(x);
}

/* The measurement entry points run the writer's own path: what store_bench_commit wrote
 * is what the store then serves, with the same marks. */
static void bench_commit_is_the_ingest_path(void **state)
{
	struct ctx *x = *state;
	char err[256];
	assert_int_equal(uv_loop_init(&x->loop), 0);
	assert_int_equal(store_open(&x->opt, &x->st, err, sizeof(err)), 0);
	static const int64_t s1[] = {1, 2, 3}, s2[] = {2, 3, 4, 6};
	struct store_batch *a = batch("site-b", "a", s1, 3, "cam1", VW_STATUS_OK);
	struct store_batch *b = batch("site-b", "a", s2, 4, "cam1", VW_STATUS_DOWN);
	a->next = b;
	assert_int_equal(store_bench_commit(x->st, a), 0);
	assert_int_equal(a->acked_seq, 3);
	assert_int_equal(b->stored, 2);   /* 4 and 6 */
	assert_int_equal(b->gap_seqs, 1); /* 5 */
	assert_int_equal(b->acked_seq, 6);
	struct store_batch *r = batch("site-raw", "r", s1, 3, "cam1", VW_STATUS_OK);
	assert_int_equal(store_bench_raw(x->st, r), 0);
	assert_int_equal(store_start(x->st, &x->loop, 8), 0);
	assert_int_equal(store_bench_commit(x->st, a), -EBUSY); /* the writer's connection now */
	assert_int_equal(high_seq(x, "site-b", "a"), 6);
	assert_int_equal(count(x), 5 + 3);                 /* raw rows are results too ... */
	assert_int_equal(high_seq(x, "site-raw", "r"), 0); /* ... without a mark */
	struct got g;
	assert_int_equal(get_site(x, "site-b", &g), 0);
	assert_int_equal(g.down, 1);
	close_h(x);
	store_batch_destroy(a);
	store_batch_destroy(b);
	store_batch_destroy(r);
}

static void thousand_row_batch_rate(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	enum { ROWS = 1000, ROUNDS = 20 };
	double best = 0, total_ms = 0;
	for (int round = 0; round < ROUNDS; round++) {
		/* 200 cameras, 5 checks each: latest sees repeats as a real batch would */
		struct store_batch *b = store_batch_create();
		snprintf(b->site, sizeof(b->site), "site-bench");
		snprintf(b->agent, sizeof(b->agent), "a");
		for (int i = 0; i < ROWS; i++) {
			struct vw_result r;
			char target[16];
			snprintf(target, sizeof(target), "cam%03d", i % 200);
			vw_result_init(&r, VW_KIND_STREAM, target);
			r.seq = (int64_t)round * ROWS + i + 1;
			vw_result_set_metric(&r, VW_M_FPS, 25);
			vw_result_set_metric(&r, VW_M_WIDTH, 1920);
			vw_result_set_metric(&r, VW_M_HEIGHT, 1080);
			vw_result_set_metric(&r, VW_M_BITRATE_KBPS, 4096.5);
			store_batch_add(b, &r);
		}
		int64_t t0 = vw_mono_ms();
		b = commit(x, b);
		double ms = (double)(vw_mono_ms() - t0);
		assert_int_equal(b->stored, ROWS);
		store_batch_destroy(b);
		total_ms += ms;
		double rate = ROWS / (ms > 0 ? ms : 0.5) * 1000;
		if (rate > best)
			best = rate;
	}
	printf("# %s: %d x %d-row batches, mean %.1f ms/batch, %.0f rows/s mean, %.0f rows/s "
	       "best\n",
	       x->be->name, ROUNDS, ROWS, total_ms / ROUNDS,
	       ROWS * ROUNDS / (total_ms > 0 ? total_ms : 1) * 1000, best);
	close_h(x);
}

static void unknown_backend_is_refused(void **state)
{
	(void)state;
	struct store_options o = {.backend = "oracle", .dir = "/nonexistent"};
	struct store *st = NULL;
	char err[256] = "";
	assert_int_equal(store_open(&o, &st, err, sizeof(err)), -EINVAL);
	assert_null(st);
	assert_non_null(strstr(err, "'oracle'"));
	assert_non_null(strstr(err, store_backend_names));
}

/* --- the SQLite backend's own promises ----------------------------------------------------- */

static int64_t sql_value(struct ctx *x, const char *sql)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/venuewatch.db", x->dir);
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

static void sql_exec(struct ctx *x, const char *sql)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/venuewatch.db", x->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* Gaps are rows in seq_gaps: one per hole, first and last seq. */
static void sqlite_gaps_are_recorded(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static const int64_t s1_5[] = {1, 2, 3, 4, 5}, s12_16[] = {12, 13, 14, 16};
	store_batch_destroy(commit(x, batch("site-1", "a", s1_5, 5, "cam1", VW_STATUS_OK)));
	store_batch_destroy(commit(x, batch("site-1", "a", s12_16, 4, "cam1", VW_STATUS_OK)));
	close_h(x);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM seq_gaps"), 2);
	assert_int_equal(sql_value(x, "SELECT first_seq FROM seq_gaps ORDER BY first_seq"), 6);
	assert_int_equal(sql_value(x, "SELECT last_seq FROM seq_gaps ORDER BY first_seq"), 11);
	assert_int_equal(sql_value(x, "SELECT sum(last_seq - first_seq + 1) FROM seq_gaps"), 7);
}

/* A schema-1 database as the collector of that version wrote it (its DDL, verbatim), with
 * one agent that stored seqs 1-3. */
static void sql_make_schema_1(struct ctx *x)
{
	sql_exec(
	    x,
	    "CREATE TABLE agents(id INTEGER PRIMARY KEY, site TEXT NOT NULL,"
	    " agent TEXT NOT NULL, org TEXT NOT NULL DEFAULT '', city TEXT NOT NULL DEFAULT '',"
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
	    " metrics, received_ms) VALUES(1, 1, 1, 1, 'stream', 'cam1', 'ok', '[]', '{}', 1),"
	    " (1, 2, 2, 2, 'stream', 'cam1', 'ok', '[]', '{}', 2),"
	    " (1, 3, 3, 3, 'stream', 'cam1', 'ok', '[]', '{}', 3);"
	    "INSERT INTO latest VALUES(1, 'stream', 'cam1', 3, 'ok');"
	    "PRAGMA user_version = 1;");
}

/* A collector from before seq_gaps and epochs (schema 1) migrates in place: the old mark
 * becomes the legacy epoch's, so the agent's resends are still resends, its old rows are
 * the legacy epoch's, and a reinstalled machine's new epoch starts its own mark. */
static void sqlite_schema_1_migrates_and_keeps_marks(void **state)
{
	struct ctx *x = *state;
	sql_make_schema_1(x);
	open_h(x);
	assert_int_equal(high_seq(x, "site-1", "a"), 3);
	static const int64_t s1_4[] = {1, 2, 3, 4};
	struct store_batch *b = commit(x, batch("site-1", "a", s1_4, 4, "cam1", VW_STATUS_OK));
	assert_int_equal(b->stored, 1);
	assert_int_equal(b->acked_seq, 4);
	store_batch_destroy(b);
	b = commit(x, in_epoch(batch("site-1", "a", s1_4, 2, "cam1", VW_STATUS_OK), EPOCH_1));
	assert_int_equal(b->stored, 2);
	assert_int_equal(b->acked_seq, 2);
	store_batch_destroy(b);
	close_h(x);
	assert_int_equal(sql_value(x, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM seq_gaps"), 0);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM results WHERE epoch = 0"), 4);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM results WHERE epoch = 1"), 2);
	assert_int_equal(sql_value(x, "SELECT high_seq FROM epochs WHERE epoch = ''"), 4);
	assert_int_equal(sql_value(x, "SELECT ord FROM epochs WHERE epoch = '" EPOCH_1 "'"), 1);
	/* still one agent, one camera */
	assert_int_equal(sql_value(x, "SELECT count(*) FROM agents"), 1);
	assert_int_equal(sql_value(x, "SELECT cam_ok FROM agents"), 1);
}

/* Each epoch's rows and gaps carry its ord: the site's history holds both runs. */
static void sqlite_epochs_are_numbered_in_results_and_gaps(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static const int64_t s1_2[] = {1, 2}, s3[] = {3};
	store_batch_destroy(commit(x, batch("site-1", "a", s1_2, 2, "cam1", VW_STATUS_OK)));
	store_batch_destroy(
	    commit(x, in_epoch(batch("site-1", "a", s1_2, 2, "cam1", VW_STATUS_OK), EPOCH_1)));
	store_batch_destroy(
	    commit(x, in_epoch(batch("site-1", "a", s3, 1, "cam1", VW_STATUS_OK), EPOCH_2)));
	close_h(x);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM epochs"), 3);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM results WHERE epoch = 0"), 2);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM results WHERE epoch = 1"), 2);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM results WHERE epoch = 2"), 1);
	assert_int_equal(sql_value(x, "SELECT epoch FROM seq_gaps"), 2);
	assert_int_equal(sql_value(x, "SELECT last_seq FROM seq_gaps"), 2);
	/* agents.high_seq follows the epoch that stored last */
	assert_int_equal(sql_value(x, "SELECT high_seq FROM agents"), 3);
}

static void sqlite_newer_schema_is_refused(void **state)
{
	struct ctx *x = *state;
	sql_exec(x, "PRAGMA user_version = 99");
	struct store *st = NULL;
	char err[256];
	assert_int_equal(store_open(&x->opt, &st, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "newer"));
	assert_non_null(strstr(err, x->dir)); /* which file */
	assert_null(st);
}

/* The per-agent counters the overview reads against a recount of latest, in the file. */
static void sqlite_counters_match_latest(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static const int64_t s1[] = {1, 2}, s2[] = {3, 4}, s3[] = {5};
	store_batch_destroy(commit(x, batch("site-1", "a", s1, 2, "cam1", VW_STATUS_OK)));
	store_batch_destroy(commit(x, batch("site-1", "a", s2, 2, "cam2", VW_STATUS_DOWN)));
	store_batch_destroy(commit(x, batch("site-1", "a", s3, 1, "cam1", VW_STATUS_DEGRADED)));
	close_h(x);
	assert_int_equal(sql_value(x, "SELECT cam_ok FROM agents"),
	                 sql_value(x, "SELECT count(*) FROM latest WHERE status = 'ok'"));
	assert_int_equal(sql_value(x, "SELECT cam_degraded FROM agents"), 1);
	assert_int_equal(sql_value(x, "SELECT cam_down FROM agents"), 1);
	assert_int_equal(sql_value(x, "SELECT count(*) FROM latest"), 2);
}

/* --- the PostgreSQL backend's own promises ------------------------------------------------- */

/* The first column of the first row of sql (-1: no row). */
static int64_t pg_value(struct ctx *x, const char *sql)
{
	int64_t v = -1;
	if (testpg_query(x->dsn, sql, &v))
		fail_msg("postgresql: %s failed", sql);
	return v;
}

static void pg_sql(struct ctx *x, const char *sql)
{
	if (testpg_query(x->dsn, sql, NULL))
		fail_msg("postgresql: %s failed", sql);
}

static void pg_gaps_are_recorded(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static const int64_t s1_5[] = {1, 2, 3, 4, 5}, s12_16[] = {12, 13, 14, 16};
	store_batch_destroy(commit(x, batch("site-1", "a", s1_5, 5, "cam1", VW_STATUS_OK)));
	store_batch_destroy(commit(x, batch("site-1", "a", s12_16, 4, "cam1", VW_STATUS_OK)));
	close_h(x);
	assert_int_equal(pg_value(x, "SELECT count(*) FROM seq_gaps"), 2);
	assert_int_equal(pg_value(x, "SELECT first_seq FROM seq_gaps ORDER BY first_seq"), 6);
	assert_int_equal(pg_value(x, "SELECT last_seq FROM seq_gaps ORDER BY first_seq"), 11);
}

/* results is natively partitioned by arrival day, the days ahead made at open, and a
 * row lands in its arrival day's partition. */
static void pg_results_are_partitioned_by_arrival_day(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static const int64_t s[] = {1, 2, 3};
	struct store_batch *b = batch("site-1", "a", s, 3, "cam1", VW_STATUS_OK);
	int64_t day = b->received_ms / 86400000;
	store_batch_destroy(commit(x, b));
	close_h(x);
	assert_int_equal(pg_value(x, "SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c"
	                             " ON c.oid = p.partrelid WHERE c.relname = 'results'"
	                             " AND p.partstrat = 'r'"),
	                 1);
	assert_true(pg_value(x, "SELECT count(*) FROM pg_inherits"
	                        " WHERE inhparent = 'results'::regclass") >= 3);
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM results WHERE tableoid = (SELECT i.inhrelid FROM"
	         " pg_inherits i WHERE i.inhparent = 'results'::regclass AND"
	         " pg_get_expr((SELECT relpartbound FROM pg_class WHERE oid = i.inhrelid),"
	         " i.inhrelid) LIKE '%%(''%lld'')%%')",
	         (long long)(day * 86400000));
	assert_int_equal(pg_value(x, sql), 3);
}

/* Found by review: arrivals on a day before the known partitions, then after them, left
 * the days between claimed but never made, and every COPY into them failed. Each of
 * these arrival days must store its rows. */
static void pg_arrivals_on_scattered_days_all_store(void **state)
{
	struct ctx *x = *state;
	x->opt.rollup_tick_ms = -1;
	open_h(x);
	static const int64_t offsets[] = {-3, 6, 4, -1, 1}; /* days from today */
	for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		int64_t seq[] = {(int64_t)i + 1};
		struct store_batch *b = batch("site-1", "a", seq, 1, "cam1", VW_STATUS_OK);
		b->received_ms += offsets[i] * 86400000LL;
		struct store_batch *done = commit(x, b);
		if (done->status != 0)
			fail_msg("arrival %+lld days: status %d", (long long)offsets[i],
			         done->status);
		store_batch_destroy(done);
	}
	assert_int_equal(count(x), 5);
	close_h(x);
}

static void tick_cb(uv_timer_t *t)
{
	(void)t;
}

/* Retention drops whole partitions of days that arrived before raw_retention: the old
 * day's rows go with their partition (no DELETE), today's stay, and latest still shows
 * the target. */
static void pg_retention_drops_whole_partitions(void **state)
{
	struct ctx *x = *state;
	x->opt.rollup_tick_ms = -1; /* no job while the old rows go in */
	open_h(x);
	static const int64_t s_old[] = {1, 2}, s_new[] = {3, 4, 5};
	struct store_batch *b = batch("site-1", "a", s_old, 2, "cam1", VW_STATUS_OK);
	b->received_ms -= 5 * 86400000LL;
	store_batch_destroy(commit(x, b));
	store_batch_destroy(commit(x, batch("site-1", "a", s_new, 3, "cam1", VW_STATUS_DOWN)));
	assert_int_equal(count(x), 5);
	int64_t parts = pg_value(x, "SELECT count(*) FROM pg_inherits"
	                            " WHERE inhparent = 'results'::regclass");
	close_h(x);

	x->opt.rollup_tick_ms = 20;
	x->opt.raw_retention_ms = 2 * 86400000LL;
	open_h(x);
	/* the job runs on its own tick: poll, with a deadline, never a fixed sleep */
	/* The old arrival's day and the days up to today were made (no hole in the range);
	 * every one of them wholly before the retention goes, one per slice. */
	int64_t now_day = vw_now_ms() / 86400000, cutoff = vw_now_ms() - 2 * 86400000LL;
	int64_t old_days = 0;
	for (int64_t d = now_day - 5; d < now_day; d++)
		old_days += (d + 1) * 86400000 <= cutoff;
	int64_t deadline = vw_mono_ms() + 60000, n, left = parts;
	while (
	    ((n = count(x)) != 3 ||
	     (left = pg_value(x, "SELECT count(*) FROM pg_inherits"
	                         " WHERE inhparent = 'results'::regclass")) != parts - old_days) &&
	    vw_mono_ms() < deadline) {
		uv_timer_t t; /* 20 ms between reads */
		uv_timer_init(&x->loop, &t);
		uv_timer_start(&t, tick_cb, 20, 0);
		uv_run(&x->loop, UV_RUN_ONCE);
		uv_close((uv_handle_t *)&t, NULL);
		uv_run(&x->loop, UV_RUN_NOWAIT);
	}
	assert_int_equal(n, 3);
	struct got g;
	assert_int_equal(get_site(x, "site-1", &g), 0);
	assert_string_equal(g.statuses[0], "stream/cam1=down#5");
	close_h(x);
	assert_int_equal(left, parts - old_days);
	assert_true(old_days >= 2);
}

static void pg_newer_schema_is_refused(void **state)
{
	struct ctx *x = *state;
	pg_sql(x, "CREATE TABLE schema_version(version integer NOT NULL);"
	          "INSERT INTO schema_version VALUES(99)");
	struct store *st = NULL;
	char err[512];
	assert_int_equal(store_open(&x->opt, &st, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "newer"));
	assert_non_null(strstr(err, x->db)); /* which database */
	assert_null(st);
}

/* A password in the dsn is refused, and the error does not repeat it. */
static void pg_password_in_dsn_is_refused(void **state)
{
	struct ctx *x = *state;
	char dsn[600];
	snprintf(dsn, sizeof(dsn), "%s password=hunter2", x->dsn);
	x->opt.dsn = dsn;
	struct store *st = NULL;
	char err[512] = "";
	assert_int_equal(store_open(&x->opt, &st, err, sizeof(err)), -EINVAL);
	assert_null(st);
	assert_non_null(strstr(err, "password file"));
	assert_null(strstr(err, "hunter2"));
	/* and without the password file the server refuses the connection: the file is
	 * what carried the password */
	x->opt.dsn = x->dsn;
	x->opt.password_file = "/dev/null";
	char env[] = "PGPASSFILE=/dev/null";
	putenv(env);
	assert_int_equal(store_open(&x->opt, &st, err, sizeof(err)), -ECONNREFUSED);
	assert_non_null(strstr(err, x->db));
	unsetenv("PGPASSFILE");
}

/* Two collectors on one database, the same batches submitted to both at once (an agent's
 * retries reaching both): every (agent, seq) is stored once, both ack the mark. */
static void two_collectors_never_store_a_seq_twice(void **state)
{
	struct ctx *x = *state;
	char err[512];
	open_h(x);
	struct store *other;
	if (store_open(&x->opt, &other, err, sizeof(err)))
		fail_msg("store_open: %s", err);
	assert_int_equal(store_start(other, &x->loop, 64), 0);
	enum { ROUNDS = 30, ROWS = 20 };
	size_t stored = 0;
	for (int round = 0; round < ROUNDS; round++) {
		int64_t seqs[ROWS];
		for (int i = 0; i < ROWS; i++)
			seqs[i] = round * ROWS + i + 1;
		struct store_batch *b[2];
		for (int k = 0; k < 2; k++) {
			b[k] = batch("site-1", "a", seqs, ROWS, "cam1", VW_STATUS_OK);
			b[k]->done = on_done;
			b[k]->data = x;
		}
		int want = x->done + 2;
		assert_int_equal(store_submit(x->st, b[0]), 0);
		assert_int_equal(store_submit(other, b[1]), 0);
		while (x->done < want)
			uv_run(&x->loop, UV_RUN_ONCE);
		for (int k = 0; k < 2; k++) {
			assert_int_equal(b[k]->status, 0);
			assert_int_equal(b[k]->acked_seq, (round + 1) * ROWS);
			stored += b[k]->stored;
			store_batch_destroy(b[k]);
		}
		assert_int_equal(stored, (size_t)(round + 1) * ROWS);
	}
	store_close(other);
	assert_int_equal(count(x), ROUNDS * ROWS);
	close_h(x);
	assert_int_equal(pg_value(x, "SELECT count(*) FROM (SELECT agent_id, epoch, seq FROM"
	                             " results GROUP BY 1, 2, 3 HAVING count(*) > 1) d"),
	                 0);
}

/* issue 13: the database refuses this store's connections (ALLOW_CONNECTIONS false, its
 * sessions terminated) and then takes them again. Meanwhile batches fail with -ENOTCONN
 * and store nothing, store_get_avail says down with a growing count of failed attempts and
 * a wait within the bound, reads fail too; afterwards the writer reconnects by itself and
 * the next batches are stored and acked. */
static void pg_admin(struct ctx *x, const char *fmt)
{
	char admin[512], sql[256];
	snprintf(admin, sizeof(admin), "%s dbname=postgres", getenv("VW_PG_DSN"));
	snprintf(sql, sizeof(sql), fmt, x->db);
	if (testpg_query(admin, sql, NULL))
		fail_msg("postgresql: %s failed", sql);
}

static int submit_status(struct ctx *x, int64_t seq)
{
	struct store_batch *b = batch("site-1", "a", &seq, 1, "cam1", VW_STATUS_OK);
	b->done = on_done;
	b->data = x;
	int want = x->done + 1;
	assert_int_equal(store_submit(x->st, b), 0);
	while (x->done < want)
		uv_run(&x->loop, UV_RUN_ONCE);
	int rc = b->status;
	store_batch_destroy(b);
	return rc;
}

static void pg_lost_database_fails_fast_and_reconnects(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	struct store_avail av;
	store_get_avail(x->st, &av);
	assert_true(av.up);
	assert_int_equal(av.up_since_ms, 0);
	assert_int_equal(submit_status(x, 1), 0);

	pg_admin(x, "ALTER DATABASE %s ALLOW_CONNECTIONS false");
	pg_admin(x, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'");
	/* The first batch finds the connection gone, resets it at once, is refused again. */
	assert_int_equal(submit_status(x, 2), -ENOTCONN);
	store_get_avail(x->st, &av);
	assert_false(av.up);
	assert_true(av.down_since_ms > 0);
	assert_true(av.attempts >= 1);
	assert_true(av.retry_in_ms <= 30000 * 5 / 4);
	assert_true(strlen(av.why) > 0);
	/* The attempts back off and keep failing; each batch is refused and stores nothing. */
	int64_t seq = 3, t0 = vw_mono_ms();
	while (av.attempts < 3) {
		if (vw_mono_ms() - t0 > 60000)
			fail_msg("3 reconnect attempts not seen in 60 s (%" PRId64 ")",
			         av.attempts);
		assert_int_equal(submit_status(x, seq++), -ENOTCONN);
		store_get_avail(x->st, &av);
		assert_false(av.up);
		usleep(50000);
	}
	/* Reads fail while it is away; they do not hang. */
	struct got g = {0};
	assert_int_not_equal(READ(x, &g, store_count_results(x->st, on_reply, &g)), 0);

	pg_admin(x, "ALTER DATABASE %s ALLOW_CONNECTIONS true");
	int rc;
	t0 = vw_mono_ms();
	while ((rc = submit_status(x, seq)) == -ENOTCONN) {
		if (vw_mono_ms() - t0 > 90000)
			fail_msg("the store did not reconnect within 90 s");
		usleep(50000);
	}
	assert_int_equal(rc, 0);
	store_get_avail(x->st, &av);
	assert_true(av.up);
	assert_true(av.up_since_ms > 0);
	assert_int_equal(av.attempts, 0);
	/* Stored: seq 1 and the one after the reconnect; the refused ones are not (the agent
	 * keeps them); the mark is the last acked seq. */
	t0 = vw_mono_ms();
	for (;;) { /* a reader resets on its own backoff */
		memset(&g, 0, sizeof(g));
		if (READ(x, &g, store_count_results(x->st, on_reply, &g)) == 0) {
			assert_int_equal(g.value, 2);
			break;
		}
		if (vw_mono_ms() - t0 > 90000)
			fail_msg("reads still failing 90 s after the reconnect (%d)", g.status);
		usleep(50000);
	}
	close_h(x);
	assert_int_equal(pg_value(x, "SELECT count(*) FROM results"), 2);
}

/* --- running -------------------------------------------------------------------------------- */

#define T(f, be) cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, (void *)(be))

static int run_contract(const struct backend *be)
{
	const struct CMUnitTest tests[] = {
	    T(resent_batch_is_acked_and_stored_once, be),
	    T(overlaps_store_the_new_and_gaps_are_counted, be),
	    T(marks_and_rows_survive_reopen, be),
	    T(each_epoch_has_its_own_mark, be),
	    T(a_new_epoch_continues_the_agents_latest_state, be),
	    T(latest_follows_the_newest_result_per_target, be),
	    T(camera_counts_follow_status_changes, be),
	    T(pending_batches_share_commits, be),
	    T(queue_is_bounded_and_close_commits_the_queue, be),
	    T(reads_are_asynchronous_and_bounded, be),
	    T(close_answers_queued_reads, be),
	    T(reads_during_writes_see_every_ack, be),
	    T(bench_commit_is_the_ingest_path, be),
	    T(thousand_row_batch_rate, be),
	};
	char name[64];
	snprintf(name, sizeof(name), "store contract: %s", be->name);
	return _cmocka_run_group_tests(name, tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
}

/* No argument: the contract on SQLite and SQLite's own tests. "postgresql" (under
 * tests/tools/pg.sh, ctest test_store_postgresql): the same contract on PostgreSQL, then
 * its own tests. */
int main(int argc, char **argv)
{
	int failed = 0;
	if (argc > 1 && strcmp(argv[1], "postgresql") == 0) {
		if (!getenv("VW_PG_DSN")) {
			fprintf(stderr, "test_store postgresql: no VW_PG_DSN (run it under "
			                "tests/tools/pg.sh)\n");
			return 1;
		}
		const struct backend *pg = &backends[1];
		failed += run_contract(pg);
		const struct CMUnitTest pg_tests[] = {
		    T(pg_gaps_are_recorded, pg),
		    T(pg_results_are_partitioned_by_arrival_day, pg),
		    T(pg_retention_drops_whole_partitions, pg),
		    T(pg_arrivals_on_scattered_days_all_store, pg),
		    T(pg_newer_schema_is_refused, pg),
		    T(pg_password_in_dsn_is_refused, pg),
		    T(two_collectors_never_store_a_seq_twice, pg),
		    T(pg_lost_database_fails_fast_and_reconnects, pg),
		};
		failed +=
		    cmocka_run_group_tests_name("store: postgresql backend", pg_tests, NULL, NULL);
		return failed;
	}
	failed += run_contract(&backends[0]);
	const struct backend *sq = &backends[0];
	const struct CMUnitTest sqlite_tests[] = {
	    cmocka_unit_test(unknown_backend_is_refused),
	    T(sqlite_gaps_are_recorded, sq),
	    T(sqlite_schema_1_migrates_and_keeps_marks, sq),
	    T(sqlite_epochs_are_numbered_in_results_and_gaps, sq),
	    T(sqlite_newer_schema_is_refused, sq),
	    T(sqlite_counters_match_latest, sq),
	};
	failed += cmocka_run_group_tests_name("store: sqlite backend", sqlite_tests, NULL, NULL);
	return failed;
}
