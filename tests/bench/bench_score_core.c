/* bench_score_core: the score's own arithmetic (server/core/score.c) on synthetic sessions — what
 * an org's or the province's score costs once the store has answered, reasons included.
 *
 *   build/tests/bench_score_core SESSIONS CAMERAS SITES
 *
 * e.g. 3120 40 10: one org with 10 venues, 2 sessions a week for 3 years, 40 cameras each
 * (issue 11's scale). Prints the time of one score_compute with reasons (an org's score) and
 * one without (a ranking's per-org step). The store's read is measured by bench_store. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "score.h"

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s SESSIONS CAMERAS SITES\n", argv[0]);
		return 2;
	}
	size_t nex = (size_t)atol(argv[1]);
	int cams = atoi(argv[2]), sites = atoi(argv[3]);
	if (nex == 0 || cams < 0 || cams > 1000 || sites <= 0 || sites > 100000) {
		fprintf(stderr, "%s: SESSIONS > 0, CAMERAS 0-1000, SITES 1-100000\n", argv[0]);
		return 2;
	}
	struct store_exam *e = calloc(nex, sizeof(*e));
	struct store_credit *c = calloc(nex * (size_t)(2 * cams + 4), sizeof(*c));
	char(*cam)[8] = calloc((size_t)cams + 1, 8);
	char(*site)[12] = calloc((size_t)sites, 12);
	if (!e || !c || !cam || !site)
		return 1;
	for (int i = 0; i < cams; i++)
		snprintf(cam[i], 8, "c%d", i);
	for (int i = 0; i < sites; i++)
		snprintf(site[i], 12, "S%d", i);
	const int64_t D = 7200000; /* 2 h sessions, every camera 200 s not clear */
	size_t k = 0;
	for (size_t i = 0; i < nex; i++) {
		e[i] = (struct store_exam){.id = (int64_t)i + 1,
		                           .org = "O",
		                           .city = "C",
		                           .site = site[i % (size_t)sites],
		                           .code = "x",
		                           .occupation = "o",
		                           .level = "l",
		                           .rooms = "A101,A102",
		                           .start_ms = (int64_t)i * 3600000,
		                           .end_ms = (int64_t)i * 3600000 + D};
		for (int cl = 0; cl < STORE_CLASS_COUNT; cl++) {
			int n = cl == STORE_CLASS_STREAM || cl == STORE_CLASS_RECORDING ? cams : 2;
			e[i].ntargets[cl] = cl == STORE_CLASS_CONNECTED ? 1 : n;
			e[i].ok_ms[cl] = e[i].ntargets[cl] * (D - 200000);
		}
		c[k++] =
		    (struct store_credit){e[i].id, STORE_CLASS_CONNECTED, "collector", D, 0, 0, 1};
		c[k++] =
		    (struct store_credit){e[i].id, STORE_CLASS_NETWORK, "collector", D, 0, 0, 1};
		for (int j = 0; j < cams; j++)
			c[k++] = (struct store_credit){
			    e[i].id, STORE_CLASS_STREAM, cam[j], D - 200000, 0, 200000, 1};
		for (int j = 0; j < cams; j++)
			c[k++] = (struct store_credit){
			    e[i].id, STORE_CLASS_RECORDING, cam[j], D, 0, 0, 1};
		c[k++] = (struct store_credit){e[i].id, STORE_CLASS_COVERAGE, "A101", D, 0, 0, 1};
		c[k++] = (struct store_credit){
		    e[i].id, STORE_CLASS_COVERAGE, "A102", D - 100000, 0, 100000, 1};
	}
	struct score_rubric r;
	score_rubric_default(&r);
	struct score_result res;
	double t = now_s();
	if (score_compute(&r, e, nex, c, k, 1, &res))
		return 1;
	double with = now_s() - t;
	int score = res.score;
	score_result_free(&res);
	t = now_s();
	if (score_compute(&r, e, nex, NULL, 0, 0, &res))
		return 1;
	double without = now_s() - t;
	score_result_free(&res);
	printf("sessions=%zu credits=%zu score=%d with_reasons_ms=%.1f totals_only_ms=%.1f\n", nex,
	       k, score, with * 1000, without * 1000);
	free(e);
	free(c);
	free(cam);
	free(site);
	return 0;
}
