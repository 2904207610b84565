/* bench_feed: a synthetic province for the live feed's read figures (issue 16, docs/
 * BENCHMARKS.md "Feed"), written through the store's own write path.
 *
 *   bench_feed gen DIR [VENUES [CAMERAS [DAYS [DETAILED [STEP_S [DETAIL_STEP_S [CITIES]]]]]]]
 *       defaults 3000 40 7 20 3600 120 16
 *
 * Every venue (site-NNNN, org-(i % 50), city-(i % CITIES), one agent named as the site) reports
 * CAMERAS cameras, two network targets (collector, uplink), one coverage target per 10
 * cameras (rooms) and one assessment every STEP_S seconds over the last DAYS days ("the
 * province"), and a recording result per camera once at the end; DETAILED venues (the first
 * ones) report every DETAIL_STEP_S seconds instead, the agent's real out-of-session
 * camera cadence — their history is what the history page figures read. A full province
 * at the real cadence would be ~10^9 rows; see BENCHMARKS.md for what this stands for.
 * Statuses: ~3 % of camera results degraded, ~1 % down, a few venues with the collector
 * down at the end; one in ten venues has an exam session running now.
 *
 * Rows go in as batches through store_bench_commit (the writer's statements: results,
 * latest, the per-agent counts), 200 batches a transaction, in arrival (time) order across
 * venues. The rollup mark is then set to the last row with SQL of its own, so a server
 * opened on DIR does not spend its first minutes rolling the synthetic history (the rollups
 * are not what these figures read). Prints rows, seconds and the database's size. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "result.h"
#include "store.h"
#include "vtime.h"

#define GROUP 200

static unsigned long long rng = 88172645463325252ULL;
static unsigned next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng >> 11);
}

struct venue {
	int64_t seq;
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void add(struct store_batch *b, struct venue *v, int64_t ts, enum vw_kind kind,
                const char *target, int vi, int cameras)
{
	struct vw_result r;
	vw_result_init(&r, kind, target);
	r.seq = ++v->seq;
	r.ts_ms = ts;
	r.mono_ms = ts % 1000000000;
	unsigned x = next_rand() % 1000;
	r.status = VW_STATUS_OK;
	switch (kind) {
	case VW_KIND_STREAM:
		if (x < 10) {
			r.status = VW_STATUS_DOWN;
			vw_result_add_fault(&r, x < 5 ? VW_FAULT_TIMEOUT : VW_FAULT_BLACK);
		} else if (x < 40) {
			r.status = VW_STATUS_DEGRADED;
			vw_result_add_fault(&r, VW_FAULT_FROZEN);
		}
		snprintf(r.codec, sizeof(r.codec), "h264");
		vw_result_set_metric(&r, VW_M_FPS, 25);
		vw_result_set_metric(&r, VW_M_BITRATE_KBPS, 2000 + x);
		vw_result_set_metric(&r, VW_M_WIDTH, 1920);
		vw_result_set_metric(&r, VW_M_HEIGHT, 1080);
		vw_result_set_metric(&r, VW_M_INTERVAL_MS, 120000);
		break;
	case VW_KIND_NETWORK:
		/* a few venues' collector is down at the end (vi % 97 == 0) */
		if (vi % 97 == 0 && strcmp(target, "collector") == 0)
			r.status = VW_STATUS_DOWN;
		vw_result_set_metric(&r, VW_M_RTT_MS, 5 + x % 20);
		break;
	default:
		(void)cameras;
		break;
	}
	if (store_batch_add(b, &r)) {
		fprintf(stderr, "bench_feed: store_batch_add failed\n");
		exit(1);
	}
}

static int cities = 16;

static struct store_batch *venue_batch(int vi, struct venue *v, int64_t ts, int cameras,
                                       int recordings)
{
	struct store_batch *b = store_batch_create();
	if (!b)
		exit(1);
	snprintf(b->site, sizeof(b->site), "site-%04d", vi + 1);
	snprintf(b->agent, sizeof(b->agent), "site-%04d", vi + 1);
	snprintf(b->org, sizeof(b->org), "org-%d", (vi + 1) % 50);
	snprintf(b->city, sizeof(b->city), "city-%d", (vi + 1) % cities);
	b->received_ms = ts;
	char t[24];
	for (int c = 0; c < cameras; c++) {
		snprintf(t, sizeof(t), "cam%02d", c + 1);
		add(b, v, ts, recordings ? VW_KIND_RECORDING : VW_KIND_STREAM, t, vi, cameras);
	}
	if (!recordings) {
		add(b, v, ts, VW_KIND_NETWORK, "collector", vi, cameras);
		add(b, v, ts, VW_KIND_NETWORK, "uplink", vi, cameras);
		for (int r = 0; r < (cameras + 9) / 10; r++) {
			snprintf(t, sizeof(t), "room%d", r + 1);
			add(b, v, ts, VW_KIND_COVERAGE, t, vi, cameras);
		}
		add(b, v, ts, VW_KIND_ASSESSMENT, "item-3.6", vi, cameras);
	}
	store_batch_sort(b);
	return b;
}

/* Commits the list (one transaction) and frees it. */
static size_t flush(struct store *s, struct store_batch **list, size_t *n)
{
	size_t rows = 0;
	if (!*list)
		return 0;
	int rc = store_bench_commit(s, *list);
	if (rc) {
		fprintf(stderr, "bench_feed: store_bench_commit: %d\n", rc);
		exit(1);
	}
	for (struct store_batch *b = *list, *next; b; b = next) {
		next = b->next;
		rows += b->stored;
		store_batch_destroy(b);
	}
	*list = NULL;
	*n = 0;
	return rows;
}

static int64_t before_start(const struct store_write *w)
{
	return w->now_ms;
}

static int gen(int argc, char **argv)
{
	const char *dir = argv[2];
	int venues = argc > 3 ? atoi(argv[3]) : 3000, cameras = argc > 4 ? atoi(argv[4]) : 40,
	    days = argc > 5 ? atoi(argv[5]) : 7, detailed = argc > 6 ? atoi(argv[6]) : 20;
	int step_s = argc > 7 ? atoi(argv[7]) : 3600, detail_s = argc > 8 ? atoi(argv[8]) : 120;
	cities = argc > 9 ? atoi(argv[9]) : 16;
	if (venues < 1 || cameras < 1 || days < 1 || detailed < 0 || detailed > venues ||
	    step_s < 1 || detail_s < 1 || step_s % detail_s || cities < 1) {
		fprintf(stderr, "bench_feed: bad sizes (STEP_S must be a multiple of "
		                "DETAIL_STEP_S)\n");
		return 2;
	}
	mkdir(dir, 0700);
	struct store_options so = {
	    .backend = "sqlite", .dir = dir, .durability = STORE_DURABLE_NORMAL, .readers = 1};
	struct store *s;
	char err[512];
	if (store_open(&so, &s, err, sizeof(err))) {
		fprintf(stderr, "bench_feed: %s\n", err);
		return 1;
	}
	struct venue *v = calloc((size_t)venues, sizeof(*v));
	int64_t end = vw_now_ms(), start = end - (int64_t)days * 86400000;
	double t0 = now_s();
	size_t rows = 0, n = 0;
	struct store_batch *list = NULL, **tail = &list;
	int64_t sub = step_s / detail_s;
	for (int64_t ts = start; ts < end; ts += (int64_t)detail_s * 1000) {
		int province_step = ((ts - start) / ((int64_t)detail_s * 1000)) % sub == 0;
		for (int i = 0; i < venues; i++) {
			if (i >= detailed && !province_step)
				continue;
			struct store_batch *b =
			    venue_batch(i, &v[i], ts + (i % 60) * 1000, cameras, 0);
			*tail = b;
			tail = &b->next;
			if (++n == GROUP) {
				rows += flush(s, &list, &n);
				tail = &list;
			}
		}
	}
	for (int i = 0; i < venues; i++) {
		struct store_batch *b = venue_batch(i, &v[i], end - 60000, cameras, 1);
		*tail = b;
		tail = &b->next;
		if (++n == GROUP) {
			rows += flush(s, &list, &n);
			tail = &list;
		}
	}
	rows += flush(s, &list, &n);
	/* One venue in ten has a session running now (planned before it began). */
	int sessions = 0;
	for (int i = 0; i < venues; i += 10) {
		char site[24], org[24], city[24], code[24];
		snprintf(site, sizeof(site), "site-%04d", i + 1);
		snprintf(org, sizeof(org), "org-%d", (i + 1) % 50);
		snprintf(city, sizeof(city), "city-%d", (i + 1) % cities);
		snprintf(code, sizeof(code), "bench-%d", i + 1);
		struct store_exam_session e = {.org = org,
		                               .city = city,
		                               .site = site,
		                               .code = code,
		                               .occupation = "电工",
		                               .level = "四级",
		                               .rooms = "*",
		                               .start_ms = end - 1800000,
		                               .end_ms = end + 2 * 3600000,
		                               .candidates = 30};
		struct store_write w = {.op = STORE_EXAM_CREATE,
		                        .actor = "bench_feed",
		                        .now_ms = end - 3600000,
		                        .clock = before_start,
		                        .exams = &e,
		                        .nexams = 1};
		if (store_write_now(s, &w)) {
			fprintf(stderr, "bench_feed: session %s: %s\n", code, w.err);
			return 1;
		}
		sessions++;
	}
	store_close(s);
	double secs = now_s() - t0;
	/* The rollup job would start from the first row: mark everything rolled. */
	char path[4096];
	snprintf(path, sizeof(path), "%s/venuewatch.db", dir);
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db,
	                 "UPDATE rollup_mark SET result_id = (SELECT max(id) FROM results),"
	                 " at_ms = (SELECT max(received_ms) FROM results) WHERE id = 1;",
	                 NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench_feed: %s: %s\n", path, sqlite3_errmsg(db));
		return 1;
	}
	sqlite3_close(db);
	struct stat st;
	stat(path, &st);
	printf("gen venues=%d cameras=%d days=%d detailed=%d step_s=%d detail_step_s=%d rows=%zu "
	       "sessions_running=%d seconds=%.1f rows_per_s=%.0f db_bytes=%lld\n",
	       venues, cameras, days, detailed, step_s, detail_s, rows, sessions, secs,
	       (double)rows / secs, (long long)st.st_size);
	free(v);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "gen") == 0)
		return gen(argc, argv);
	fprintf(stderr, "usage: bench_feed gen DIR [VENUES [CAMERAS [DAYS [DETAILED [STEP_S "
	                "[DETAIL_STEP_S [CITIES]]]]]]]\n");
	return 2;
}
