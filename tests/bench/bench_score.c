/* bench_score: item 3.6 scores read from a synthetic province's rollups.
 *
 *   bench_score gen DIR [VENUES [YEARS [CAMERAS]]]   fill DIR/venuewatch.db (3000, 3, 40)
 *   bench_score run DIR [REPS]                       time the reads and the scoring (20)
 *
 * gen writes the rollup tables directly: 3 years of a province's sessions would be ~10^10 raw
 * results, which no machine replays; tests/unit/test_rollup.c is what shows the rollups equal
 * the hold rule applied to the raw results. Every other step is the product's own: run opens
 * the store with store_open/store_start, reads with store_score_inputs on a reader thread and
 * scores with score_compute, as the score API does.
 * Prints one line per figure: what=.. reps=.. p50_ms=.. p99_ms=.. max_ms=.. plus sizes. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "score.h"
#include "store.h"
#include "vtime.h"

#define DAY_MS 86400000LL
#define HOUR_MS 3600000LL
#define CST_MS (8 * HOUR_MS)
/* 2023-12-05 00:00 +08:00, a Tuesday: the province's sessions begin then. */
#define T0_MS (1701705600000LL - CST_MS)
#define ROOMS 4

static unsigned long long rng = 88172645463325252ULL;
static unsigned long long next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "bench_score: %s: %s\n", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fprintf(stderr, "bench_score: %s: %s\n", sql, sqlite3_errmsg(db));
	return st;
}

static int step_reset(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* A session's held fraction for one target: most venues hold nearly always; some targets of
 * some sessions fail for a while (what the worst-camera lists are about). */
static double held_frac(void)
{
	unsigned long long r = next_rand() % 1000;
	if (r < 950)
		return 1.0;
	if (r < 990)
		return 0.9 + (double)(next_rand() % 100) / 1000.0;
	return (double)(next_rand() % 1000) / 1000.0;
}

static const int class_targets[STORE_CLASS_COUNT] = {
    [STORE_CLASS_CONNECTED] = 1, [STORE_CLASS_NETWORK] = 2, [STORE_CLASS_COVERAGE] = ROOMS};

static int gen(const char *dir, long venues, long years, long cameras)
{
	char err[512], path[4096];
	struct store *s;
	struct store_options so = {.backend = "sqlite", .dir = dir, .readers = 1};
	/* The product makes (or migrates) the schema; the rows come below. */
	if (store_open(&so, &s, err, sizeof(err))) {
		fprintf(stderr, "bench_score: %s\n", err);
		return -1;
	}
	store_close(s);

	snprintf(path, sizeof(path), "%s/venuewatch.db", dir);
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -1;
	if (exec(db, "PRAGMA synchronous=OFF; BEGIN") ||
	    exec(db, "DELETE FROM exam_sessions; DELETE FROM exam_totals; DELETE FROM exam_credits;"
	             " DELETE FROM rollup_agents"))
		return -1;
	sqlite3_stmt *ses =
	    prep(db, "INSERT INTO exam_sessions(id, org, city, site, code, occupation,"
	             " level, start_ms, end_ms, rooms, candidates, created_ms,"
	             " updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, '电工', '四级', ?6, ?7,"
	             " 'R1,R2,R3,R4', 60, ?6 - 604800000, ?6 - 604800000)");
	sqlite3_stmt *cred =
	    prep(db, "INSERT INTO exam_credits(exam_id, cls, target, ok_ms,"
	             " degraded_ms, down_ms, results) VALUES(?1, ?2, ?3, ?4, 0, ?5, ?6)");
	sqlite3_stmt *tot =
	    prep(db, "INSERT INTO exam_totals(exam_id, connected_ok_ms,"
	             " connected_down_ms, connected_targets, network_ok_ms,"
	             " network_down_ms, network_targets, stream_ok_ms, stream_down_ms,"
	             " stream_targets, recording_ok_ms, recording_down_ms,"
	             " recording_targets, coverage_ok_ms, coverage_down_ms,"
	             " coverage_targets, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6,"
	             " ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)");
	sqlite3_stmt *agt = prep(db, "INSERT INTO rollup_agents(agent_id, site, last_ts_ms)"
	                             " VALUES(?1, ?2, ?3)");
	if (!ses || !cred || !tot || !agt)
		return -1;

	long orgs =
	    venues * 2 / 3 > 0 ? venues * 2 / 3 : 1; /* a third of the orgs have two venues */
	long weeks = years * 52;
	int64_t id = 0, ncred = 0, now = vw_now_ms();
	for (long v = 0; v < venues; v++) {
		char site[32], org[32], city[16];
		snprintf(site, sizeof(site), "S%05ld", v);
		snprintf(org, sizeof(org), "O%05ld", v % orgs);
		snprintf(city, sizeof(city), "37%02ld", v % 16 + 1);
		sqlite3_bind_int64(agt, 1, v + 1);
		sqlite3_bind_text(agt, 2, site, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(agt, 3, now);
		if (step_reset(agt))
			return -1;
		for (long w = 0; w < weeks; w++) {
			/* Tuesday 09:00-12:00 and Saturday 14:00-17:00, local time. */
			for (int k = 0; k < 2; k++) {
				int64_t start = T0_MS + w * 7 * DAY_MS +
				                (k ? 4 * DAY_MS + 14 * HOUR_MS : 9 * HOUR_MS);
				int64_t dur = 3 * HOUR_MS, end = start + dur;
				char code[96];
				snprintf(code, sizeof(code), "%s-%04ld-%d", site, w, k);
				id++;
				sqlite3_bind_int64(ses, 1, id);
				sqlite3_bind_text(ses, 2, org, -1, SQLITE_TRANSIENT);
				sqlite3_bind_text(ses, 3, city, -1, SQLITE_TRANSIENT);
				sqlite3_bind_text(ses, 4, site, -1, SQLITE_TRANSIENT);
				sqlite3_bind_text(ses, 5, code, -1, SQLITE_TRANSIENT);
				sqlite3_bind_int64(ses, 6, start);
				sqlite3_bind_int64(ses, 7, end);
				if (step_reset(ses))
					return -1;
				int64_t ok[STORE_CLASS_COUNT] = {0}, down[STORE_CLASS_COUNT] = {0};
				int64_t nt[STORE_CLASS_COUNT];
				for (int c = 0; c < STORE_CLASS_COUNT; c++) {
					nt[c] = class_targets[c] ? class_targets[c] : cameras;
					for (int64_t t = 0; t < nt[c]; t++) {
						char target[32];
						if (c == STORE_CLASS_CONNECTED)
							snprintf(target, sizeof(target),
							         "collector");
						else if (c == STORE_CLASS_NETWORK)
							snprintf(target, sizeof(target), "%s",
							         t ? "platform" : "collector");
						else if (c == STORE_CLASS_COVERAGE)
							snprintf(target, sizeof(target), "R%lld",
							         (long long)t + 1);
						else
							snprintf(target, sizeof(target),
							         "cam-%03lld", (long long)t);
						int64_t held = (int64_t)(held_frac() * (double)dur);
						ok[c] += held;
						down[c] += dur - held;
						sqlite3_bind_int64(cred, 1, id);
						sqlite3_bind_int(cred, 2, c);
						sqlite3_bind_text(cred, 3, target, -1,
						                  SQLITE_TRANSIENT);
						sqlite3_bind_int64(cred, 4, held);
						sqlite3_bind_int64(cred, 5, dur - held);
						sqlite3_bind_int64(
						    cred, 6, c == STORE_CLASS_RECORDING ? 18 : 180);
						if (step_reset(cred))
							return -1;
						ncred++;
					}
				}
				sqlite3_bind_int64(tot, 1, id);
				for (int c = 0; c < STORE_CLASS_COUNT; c++) {
					sqlite3_bind_int64(tot, 2 + 3 * c, ok[c]);
					sqlite3_bind_int64(tot, 3 + 3 * c, down[c]);
					sqlite3_bind_int64(tot, 4 + 3 * c, nt[c]);
				}
				sqlite3_bind_int64(tot, 17, end);
				if (step_reset(tot))
					return -1;
			}
		}
		if (v % 100 == 99 && (exec(db, "COMMIT") || exec(db, "BEGIN")))
			return -1;
	}
	if (exec(db, "COMMIT") || exec(db, "ANALYZE"))
		return -1;
	sqlite3_finalize(ses);
	sqlite3_finalize(cred);
	sqlite3_finalize(tot);
	sqlite3_finalize(agt);
	sqlite3_close(db);
	printf("generated venues=%ld orgs=%ld years=%ld cameras=%ld sessions=%lld credits=%lld\n",
	       venues, orgs, years, cameras, (long long)id, (long long)ncred);
	return 0;
}

/* --- run ------------------------------------------------------------------------------- */

struct run {
	uv_loop_t loop;
	struct store *st;
	struct score_rubric rubric;
	int ranking; /* 1: group by org and score each, as the ranking does */
	int done, status;
	size_t nexams, ncredits, norgs;
	size_t total_orgs; /* orgs scored by the last timed ranking, over its reads */
	int score;
};

static int by_org(const void *a, const void *b)
{
	const struct store_exam *x = *(const struct store_exam *const *)a;
	const struct store_exam *y = *(const struct store_exam *const *)b;
	return strcmp(x->org, y->org);
}

static void on_read(void *ud, const struct store_reply *r)
{
	struct run *g = ud;
	g->done = 1;
	g->status = r->status;
	if (r->status)
		return;
	g->nexams = r->nexams;
	g->ncredits = r->ncredits;
	struct score_result res;
	if (!g->ranking) {
		if (score_compute(&g->rubric, r->exams, r->nexams, r->credits, r->ncredits, 1,
		                  &res)) {
			g->status = -ENOMEM;
			return;
		}
		g->score = res.score;
		score_result_free(&res);
		return;
	}
	/* One org's sessions at a time: the store gives them by start, the ranking by org. */
	const struct store_exam **p = malloc(r->nexams * sizeof(*p));
	struct store_exam *copy = malloc(r->nexams * sizeof(*copy));
	if (!p || !copy) {
		free(p);
		free(copy);
		g->status = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < r->nexams; i++)
		p[i] = &r->exams[i];
	qsort(p, r->nexams, sizeof(*p), by_org);
	for (size_t i = 0; i < r->nexams; i++)
		copy[i] = *p[i];
	g->norgs = 0;
	for (size_t i = 0, j; i < r->nexams; i = j) {
		for (j = i + 1; j < r->nexams && !strcmp(copy[j].org, copy[i].org); j++)
			;
		if (score_compute(&g->rubric, copy + i, j - i, NULL, 0, 0, &res)) {
			g->status = -ENOMEM;
			break;
		}
		g->norgs++;
		score_result_free(&res);
	}
	free(p);
	free(copy);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One read (and its scoring) to completion; the time goes to *ms. */
static int read_one(struct run *g, const struct store_score_query *q, double *ms)
{
	g->done = 0;
	g->norgs = 0;
	double t0 = now_ms();
	if (store_score_inputs(g->st, q, on_read, g))
		return -1;
	while (!g->done)
		uv_run(&g->loop, UV_RUN_ONCE);
	*ms += now_ms() - t0;
	if (g->status) {
		fprintf(stderr, "bench_score: read failed: %s\n", strerror(-g->status));
		return -1;
	}
	return 0;
}

/* vary: 'o' a random org per rep; 'c' the province as the ranking reads it, city by city
 * (one read of a whole province's year would outgrow STORE_REPLY_MAX). */
static int timed(struct run *g, const char *what, const struct store_score_query *q0, int vary,
                 long orgs, int reps)
{
	double *ms = calloc((size_t)reps, sizeof(*ms));
	if (!ms)
		return -1;
	size_t sessions = 0, credits = 0, norgs = 0;
	for (int i = 0; i < reps; i++) {
		char name[32];
		struct store_score_query q = *q0;
		sessions = credits = norgs = 0;
		for (int c = 0; c < (vary == 'c' ? 16 : 1); c++) {
			if (vary == 'o') {
				snprintf(name, sizeof(name), "O%05ld",
				         (long)(next_rand() % (unsigned long long)orgs));
				q.org = name;
			} else if (vary == 'c') {
				snprintf(name, sizeof(name), "37%02d", c + 1);
				q.city = name;
			}
			if (read_one(g, &q, &ms[i])) {
				free(ms);
				return -1;
			}
			sessions += g->nexams;
			credits += g->ncredits;
			norgs += g->norgs;
		}
	}
	g->total_orgs = norgs;
	qsort(ms, (size_t)reps, sizeof(*ms), cmp_double);
	int p99 = (int)((double)reps * 0.99);
	if (p99 >= reps)
		p99 = reps - 1;
	printf("what=%s reps=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f sessions=%zu credits=%zu"
	       " orgs=%zu\n",
	       what, reps, ms[reps / 2], ms[p99], ms[reps - 1], sessions, credits, norgs);
	free(ms);
	return 0;
}

static int run(const char *dir, int reps)
{
	struct run g = {0};
	char err[512];
	struct store_options so = {.backend = "sqlite", .dir = dir, .readers = 2};
	score_rubric_default(&g.rubric);
	if (store_open(&so, &g.st, err, sizeof(err))) {
		fprintf(stderr, "bench_score: %s\n", err);
		return -1;
	}
	uv_loop_init(&g.loop);
	if (store_start(g.st, &g.loop, 16)) {
		store_close(g.st);
		return -1;
	}
	/* How many orgs: a read of every session says (and warms the cache as a server that
	 * has run for a while would be). */
	int64_t now = vw_now_ms();
	struct store_score_query all = {.from_ms = 0, .to_ms = now + 365 * DAY_MS};
	g.ranking = 1;
	int rc = timed(&g, "warm_all_sessions", &all, 'c', 0, 1);
	long orgs = (long)g.total_orgs;
	/* One org, three years, with every per-target credit (the org's score page). */
	struct store_score_query one = {
	    .from_ms = now - 3 * 365 * DAY_MS, .to_ms = now, .with_credits = 1};
	g.ranking = 0;
	if (!rc)
		rc = timed(&g, "org_score_3y", &one, 'o', orgs, reps);
	/* Every org of the province over the last year, totals only, scored one by one. */
	struct store_score_query year = {.from_ms = now - 365 * DAY_MS, .to_ms = now};
	g.ranking = 1;
	if (!rc)
		rc = timed(&g, "province_ranking_1y", &year, 'c', 0, reps < 10 ? reps : 10);
	store_close(g.st);
	uv_run(&g.loop, UV_RUN_DEFAULT);
	uv_loop_close(&g.loop);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "gen"))
		return gen(argv[2], argc > 3 ? atol(argv[3]) : 3000, argc > 4 ? atol(argv[4]) : 3,
		           argc > 5 ? atol(argv[5]) : 40)
		           ? 1
		           : 0;
	if (argc >= 3 && !strcmp(argv[1], "run"))
		return run(argv[2], argc > 3 ? atoi(argv[3]) : 20) ? 1 : 0;
	fprintf(stderr, "usage: bench_score gen DIR [VENUES [YEARS [CAMERAS]]]\n"
	                "       bench_score run DIR [REPS]\n");
	return 2;
}
