/* bench_store: the collector's store, measured without the network.
 *
 *   bench_store raw DIR ROWS            the same rows into the results table only, 500
 *                                       per transaction, durability full, through the
 *                                       store's own insert statement (store_bench_raw),
 *                                       no latest/high-water bookkeeping (the floor)
 *   bench_store group DIR ROWS BATCH INFLIGHT full|normal [rollup]
 *                                       the store's writer thread and group commit, with
 *                                       INFLIGHT batches of BATCH rows always queued (as
 *                                       that many agents uploading at once would keep it);
 *                                       with "rollup", the rollup job runs between the
 *                                       commits as in the server (without, ingest alone)
 *
 * BENCH_FLAP=N (environment): every camera is down, with a fault, at one check in N (and
 * ok again at the next), so 2 results in N change their target's status: each change is a
 * status event and a problem opened or closed in the commit (issue 16's feed). Unset: every
 * result ok, as before.
 *
 * BENCH_PG_DSN=DSN (environment, issue 13): the PostgreSQL backend on that database instead
 * (DIR unused; its store tables are dropped first, so the run starts empty; the password from
 * PGPASSFILE). tests/bench/store_pg.sh runs both modes beside a throw-away PostgreSQL.
 *
 * Prints one line: mode=.. rows=.. seconds=.. rows_per_s=.. commits=.. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "store.h"
#include "vtime.h"

static long flap; /* BENCH_FLAP, read once in main */

static void make_result(struct vw_result *r, long k)
{
	char target[32];
	snprintf(target, sizeof(target), "cam-%03ld", k % 200);
	vw_result_init(r, VW_KIND_STREAM, target);
	r->seq = k + 1;
	/* Each of the 200 cameras checked once a minute, from 2026-12-01 09:00 +08:00. */
	r->ts_ms = 1764550800000LL + k * 300;
	snprintf(r->session, sizeof(r->session), "2026-11-26-am");
	snprintf(r->codec, sizeof(r->codec), "h264");
	vw_result_set_metric(r, VW_M_WIDTH, 1920);
	vw_result_set_metric(r, VW_M_HEIGHT, 1080);
	vw_result_set_metric(r, VW_M_FPS, 25);
	vw_result_set_metric(r, VW_M_BITRATE_KBPS, 4000 + (double)(k % 97));
	vw_result_set_metric(r, VW_M_OPEN_MS, 180 + (double)(k % 41));
	vw_result_set_metric(r, VW_M_FIRST_KEYFRAME_MS, 420 + (double)(k % 53));
	vw_result_set_metric(r, VW_M_CHECK_MS, 2100 + (double)(k % 71));
	vw_result_set_metric(r, VW_M_FRAMES_ANALYSED, 3);
	vw_result_set_metric(r, VW_M_LUMA_MEAN, 112.4);
	vw_result_set_metric(r, VW_M_LUMA_STDDEV, 41.7);
	vw_result_set_metric(r, VW_M_BLUR, 2.31);
	if (flap > 0 && ((k / 200) + k % 200) % flap == 0) {
		r->status = VW_STATUS_DOWN;
		vw_result_add_fault(r, VW_FAULT_TIMEOUT);
	}
}

/* An empty PostgreSQL store: the tables the backend made last run dropped. */
static int pg_fresh(const char *dsn)
{
	PGconn *c = PQconnectdb(dsn);
	PGresult *r = PQexec(c, "DROP TABLE IF EXISTS results, latest, agents, epochs, seq_gaps,"
	                        " schema_version CASCADE");
	int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
	if (rc)
		fprintf(stderr, "bench_store: %s", PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return rc;
}

static int open_fresh(const char *dir, enum store_durability d, int rollup, struct store **st)
{
	char err[512], path[4096];
	const char *pg = getenv("BENCH_PG_DSN");
	if (pg && pg_fresh(pg))
		return -1;
	/* A fresh store: the backend keeps venuewatch.db (and its WAL) in dir. */
	static const char *const suffix[] = {"", "-wal", "-shm"};
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/venuewatch.db%s", dir, suffix[i]);
		remove(path);
	}
	struct store_options so = {.backend = pg ? "postgresql" : "sqlite",
	                           .dsn = pg,
	                           .dir = dir,
	                           .durability = d,
	                           .readers = 1,
	                           .rollup_tick_ms = rollup ? 0 : -1};
	if (store_open(&so, st, err, sizeof(err))) {
		fprintf(stderr, "bench_store: %s\n", err);
		return -1;
	}
	return 0;
}

static int run_raw(const char *dir, long rows)
{
	struct store *st;
	if (open_fresh(dir, STORE_DURABLE_FULL, 0, &st))
		return 1;
	struct vw_result r;
	long commits = 0;
	/* As before the store interface: making and encoding the rows is inside the clock. */
	int64_t t0 = vw_mono_ms();
	for (long k = 0; k < rows;) {
		struct store_batch *b = store_batch_create();
		if (!b)
			return 1;
		snprintf(b->site, sizeof(b->site), "site-raw");
		snprintf(b->agent, sizeof(b->agent), "site-raw");
		for (long i = 0; i < 500 && k < rows; i++, k++) {
			make_result(&r, k);
			store_batch_add(b, &r);
		}
		b->received_ms = r.ts_ms;
		int rc = store_bench_raw(st, b);
		store_batch_destroy(b);
		if (rc) {
			fprintf(stderr, "bench_store: raw insert: %s\n", strerror(-rc));
			store_close(st);
			return 1;
		}
		commits++;
	}
	double s = (double)(vw_mono_ms() - t0) / 1000.0;
	printf("mode=raw rows=%ld seconds=%.2f rows_per_s=%.0f commits=%ld\n", rows, s, rows / s,
	       commits);
	store_close(st);
	return 0;
}

struct group {
	uv_loop_t loop;
	struct store *st;
	long rows, next, batch, done_rows;
	int inflight, agents;
	int failed;
};

static void submit_next(struct group *g);

static void on_done(struct store_batch *b)
{
	struct group *g = b->data;
	if (b->status)
		g->failed = 1;
	g->done_rows += (long)b->stored;
	g->inflight--;
	store_batch_destroy(b);
	submit_next(g);
}

/* Each agent i owns seqs i, i + agents, ...: a batch is one agent's next BATCH rows. */
static void submit_next(struct group *g)
{
	while (!g->failed && g->next < g->rows && g->inflight < g->agents) {
		struct store_batch *b = store_batch_create();
		long agent = (g->next / g->batch) % g->agents;
		snprintf(b->site, sizeof(b->site), "site-%03ld", agent);
		snprintf(b->agent, sizeof(b->agent), "site-%03ld", agent);
		b->received_ms = vw_now_ms();
		long round = g->next / (g->batch * g->agents);
		for (long i = 0; i < g->batch && g->next < g->rows; i++, g->next++) {
			struct vw_result r;
			make_result(&r, g->next);
			r.seq = round * g->batch + i + 1;
			store_batch_add(b, &r);
		}
		b->done = on_done;
		b->data = g;
		if (store_submit(g->st, b)) {
			g->failed = 1;
			store_batch_destroy(b);
			return;
		}
		g->inflight++;
	}
}

static int run_group(const char *dir, long rows, long batch, int agents, int full, int rollup)
{
	struct group g = {.rows = rows, .batch = batch, .agents = agents};
	uv_loop_init(&g.loop);
	if (open_fresh(dir, full ? STORE_DURABLE_FULL : STORE_DURABLE_NORMAL, rollup, &g.st))
		return 1;
	if (store_start(g.st, &g.loop, (size_t)agents))
		return 1;
	int64_t t0 = vw_mono_ms();
	submit_next(&g);
	while (!g.failed && g.done_rows < rows)
		uv_run(&g.loop, UV_RUN_ONCE);
	double s = (double)(vw_mono_ms() - t0) / 1000.0;
	struct store_stats stats;
	store_get_stats(g.st, &stats);
	/* The job's CPU is counted once it has flushed every row (it lags by up to a flush
	 * interval); the rate is ingest's. 60 s at most. */
	for (int64_t end = vw_mono_ms() + 60000;
	     rollup && stats.rows_rolled < (uint64_t)rows && vw_mono_ms() < end;) {
		uv_sleep(50);
		store_get_stats(g.st, &stats);
	}
	printf("mode=group sync=%s rollup=%s rows=%ld batch=%ld inflight=%d seconds=%.2f "
	       "rows_per_s=%.0f commits=%llu ms_per_commit=%.2f rolled=%llu flushes=%llu"
	       " commit_cpu_ms=%.0f rollup_cpu_ms=%.0f rollup_per_commit_cpu=%.3f\n",
	       full ? "full" : "normal", rollup ? "on" : "off", rows, batch, agents, s, rows / s,
	       (unsigned long long)stats.commits, s * 1000.0 / (double)stats.commits,
	       (unsigned long long)stats.rows_rolled, (unsigned long long)stats.rollup_flushes,
	       stats.commit_cpu_ns / 1e6, stats.rollup_cpu_ns / 1e6,
	       stats.commit_cpu_ns ? (double)stats.rollup_cpu_ns / (double)stats.commit_cpu_ns
	                           : 0.0);
	store_close(g.st);
	uv_run(&g.loop, UV_RUN_DEFAULT);
	uv_loop_close(&g.loop);
	return g.failed;
}

int main(int argc, char **argv)
{
	const char *fl = getenv("BENCH_FLAP");
	flap = fl ? strtol(fl, NULL, 10) : 0;
	if (argc >= 4 && strcmp(argv[1], "raw") == 0)
		return run_raw(argv[2], strtol(argv[3], NULL, 10));
	if (argc >= 7 && strcmp(argv[1], "group") == 0)
		return run_group(argv[2], strtol(argv[3], NULL, 10), strtol(argv[4], NULL, 10),
		                 atoi(argv[5]), strcmp(argv[6], "full") == 0,
		                 argc >= 8 && strcmp(argv[7], "rollup") == 0);
	fprintf(stderr, "usage: bench_store raw DIR ROWS | group DIR ROWS BATCH INFLIGHT "
	                "full|normal [rollup]\n");
	return 2;
}
