/* bench_draw: the draw core (server/core/draw.c) on a synthetic province — TARGETS targets in
 * 16 cities and three risk grades, INSPECTORS inspectors with TIES recusal ties each, one exam
 * session per target in the window (docs/BENCHMARKS.md "Draw", tests/bench/draw_bench.sh).
 *   bench_draw gen DIR TARGETS INSPECTORS TIES   commit → DIR/{manifest,private,sessions}.json
 *   bench_draw execute DIR                       execute → DIR/document.json
 *   bench_draw verify DIR [--public]             verify (with the private part unless --public)
 *   bench_draw json DIR                          cJSON alone: parse + print of the document
 * Each step prints its own wall time for the core call alone (reading the files excluded) and
 * is run under /usr/bin/time -v by the script for the peak RSS of the whole process. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "draw.h"

static const char *cities[16] = {"济南市", "青岛市", "淄博市", "枣庄市", "东营市", "烟台市",
                                 "潍坊市", "济宁市", "泰安市", "威海市", "日照市", "临沂市",
                                 "德州市", "聊城市", "滨州市", "菏泽市"};
static const char *risks[3] = {"high", "medium", "low"};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The process's resident set now (VmRSS), KiB. */
static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static char *slurp(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "bench_draw: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)n + 1);
	if (!s || fread(s, 1, (size_t)n, f) != (size_t)n)
		exit(2);
	s[n] = '\0';
	fclose(f);
	return s;
}

static void spill(const char *dir, const char *name, const char *s)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fputs(s, f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "bench_draw: %s: cannot write\n", path);
		exit(2);
	}
}

/* A growing string (the bench's own, so the core's inputs are plain JSON text). */
struct sb {
	char *p;
	size_t n, cap;
};

static void sb_add(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct sb *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (k >= 0 && (size_t)k < b->cap - b->n) {
			b->n += (size_t)k;
			return;
		}
		b->cap = b->cap ? 2 * b->cap + (size_t)k : 1 << 20;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			exit(2);
	}
}

static int gen(const char *dir, long nt, long ni, long ties)
{
	struct sb t = {0}, r = {0}, s = {0};
	sb_add(&t, "[");
	sb_add(&s, "[");
	for (long i = 0; i < nt; i++) {
		const char *c = cities[i % 16];
		sb_add(
		    &t,
		    "%s{\"org\":\"org-%06ld\",\"name\":\"%s第%ld职业技能培训学校\",\"city\":\"%s\","
		    "\"level\":\"city\",\"occupations\":[\"电工\",\"焊工\"],\"risk\":\"%s\","
		    "\"sites\":[\"site-%06ld-1\",\"site-%06ld-2\"]}",
		    i ? "," : "", i, c, i, c, risks[(i / 16) % 3], i, i);
		sb_add(&s,
		       "%s{\"id\":%ld,\"org\":\"org-%06ld\",\"site\":\"site-%06ld-1\","
		       "\"start\":\"2026-12-%02ldT01:00:00Z\",\"end\":\"2026-12-%02ldT03:00:00Z\"}",
		       i ? "," : "", i + 1, i, i, 7 + i % 12, 7 + i % 12);
	}
	sb_add(&t, "]");
	sb_add(&s, "]");
	sb_add(&r, "[");
	unsigned long x = 88172645463325252UL;
	for (long i = 0; i < ni; i++) {
		sb_add(&r,
		       "%s{\"id\":\"I%05ld\",\"name\":\"检查员%ld\",\"city\":\"%s\","
		       "\"department\":\"职业能力建设处\",\"ties\":[",
		       i ? "," : "", i, i, cities[i % 16]);
		for (long k = 0; k < ties; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			sb_add(&r, "%s{\"org\":\"org-%06lu\",\"kind\":\"affiliation\"}",
			       k ? "," : "", x % (unsigned long)nt);
		}
		sb_add(&r, "],\"away\":[%s]}",
		       i % 10 == 0 ? "[\"2026-12-09\",\"2026-12-11\"]" : "");
	}
	sb_add(&r, "]");
	const char *plan =
	    "{\"scope_city\":\"\",\"grades\":[{\"risk\":\"high\",\"ratio\":0.3,"
	    "\"min\":1},{\"risk\":\"medium\",\"ratio\":0.1},{\"risk\":\"low\","
	    "\"ratio\":0.02}],\"inspectors_per\":2,\"recusal\":{\"ties\":true,"
	    "\"home_city\":true,\"same_pair\":true},\"window\":{\"from\":"
	    "\"2026-12-07\",\"to\":\"2026-12-18\"},\"mode\":\"onsite\",\"items\":[]}";
	const char *rnd =
	    "{\"sources\":[{\"name\":\"福彩3D\",\"expected\":\"2026-12-05T13:30:00Z\","
	    "\"form\":\"ordered\"}],\"replacements\":[]}";
	const char *secret = "5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f";
	char com[65], err[512];
	draw_commitment(secret, com, err, sizeof err);
	char *man, *sha, *priv;
	double t0 = now_s();
	int rc = draw_commit_build("bench", plan, t.p, r.p, "[]", "[]", rnd, com, 0, &man, &sha,
	                           &priv, err, sizeof err);
	double t1 = now_s();
	if (rc < 0) {
		fprintf(stderr, "bench_draw: commit: %s\n", err);
		return 1;
	}
	spill(dir, "manifest.json", man);
	spill(dir, "private.json", priv);
	spill(dir, "sessions.json", s.p);
	printf("commit_s=%.3f manifest_bytes=%zu private_bytes=%zu sessions_bytes=%zu\n", t1 - t0,
	       strlen(man), strlen(priv), s.n);
	return 0;
}

int main(int argc, char **argv)
{
	char err[512];
	if (argc == 6 && strcmp(argv[1], "gen") == 0)
		return gen(argv[2], atol(argv[3]), atol(argv[4]), atol(argv[5]));
	if (argc == 3 && strcmp(argv[1], "execute") == 0) {
		char *man = slurp(argv[2], "manifest.json"), *priv = slurp(argv[2], "private.json");
		char *sess = slurp(argv[2], "sessions.json"), *doc = NULL;
		double t0 = now_s();
		int rc =
		    draw_execute(man, priv, "[\"3 7 1\"]",
		                 "5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f",
		                 sess, 1, &doc, err, sizeof err);
		double t1 = now_s();
		if (rc < 0) {
			fprintf(stderr, "bench_draw: execute: %s\n", err);
			return 1;
		}
		spill(argv[2], "document.json", doc);
		printf("execute_s=%.3f document_bytes=%zu\n", t1 - t0, strlen(doc));
		return 0;
	}
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "verify") == 0) {
		int pub = argc == 4 && strcmp(argv[3], "--public") == 0;
		char *doc = slurp(argv[2], "document.json");
		char *priv = pub ? NULL : slurp(argv[2], "private.json");
		double t0 = now_s();
		int rc = draw_verify(doc, priv, NULL, err, sizeof err);
		double t1 = now_s();
		if (rc < 0) {
			fprintf(stderr, "bench_draw: verify: %s\n", err);
			return 1;
		}
		printf("verify%s_s=%.3f\n", pub ? "_public" : "", t1 - t0);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "json") == 0) {
		/* cJSON alone on the document: what the core's JSON handling costs by itself */
		char *doc = slurp(argv[2], "document.json");
		long rss0 = rss_kib();
		double t0 = now_s();
		cJSON *j = cJSON_Parse(doc);
		double t1 = now_s();
		long rss1 = rss_kib();
		char *out = cJSON_PrintUnformatted(j);
		double t2 = now_s();
		if (!j || !out)
			return 1;
		cJSON_Delete(j);
		double t3 = now_s();
		printf("cjson_parse_s=%.3f cjson_tree_mib=%.0f cjson_print_s=%.3f "
		       "cjson_delete_s=%.3f\n",
		       t1 - t0, (double)(rss1 - rss0) / 1024, t2 - t1, t3 - t2);
		free(out);
		return 0;
	}
	fprintf(stderr, "usage: bench_draw gen DIR TARGETS INSPECTORS TIES | execute DIR | "
	                "verify DIR [--public] | json DIR\n");
	return 2;
}
