/* bench_sees_site: the inspector's site check (inspections_sees_site, issue 12 D) that every
 * per-site request of an inspector token asks on the loop thread. A synthetic inspect.db:
 * INSPECTIONS inspections (one org of 3 sites each, 1 in 10 still assigned), 2 members each,
 * spread over INSPECTORS inspectors; then CHECKS checks of random (inspector, site) pairs,
 * and as many for an inspector of no inspection. Its fixture rows are SQL of its own; the
 * timed path is the product's.
 *
 *   bench_sees_site DIR [INSPECTIONS=20000] [INSPECTORS=400] [CHECKS=20000] */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "inspect.h"
#include "inspections.h"

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int fill(const char *path, int n, int inspectors)
{
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -EIO;
	sqlite3_exec(db,
	             "BEGIN; INSERT INTO draws(id, scope_city, state, plan, created_ms, actor)"
	             " VALUES ('bench', '', 'executed', '{}', 1, 'bench')",
	             NULL, NULL, NULL);
	sqlite3_stmt *t, *i, *m;
	sqlite3_prepare_v2(db,
	                   "INSERT INTO targets VALUES (?1, 'n', 'c', 'city', '[]', 'high',"
	                   " json_array(?1 || '-s0', ?1 || '-s1', ?1 || '-s2'), 1)",
	                   -1, &t, NULL);
	sqlite3_prepare_v2(db,
	                   "INSERT INTO inspections(id, draw, seq, org, city, mode, site, state)"
	                   " VALUES (?1, 'bench', ?1, ?2, 'c', 'onsite', ?2 || '-s0', ?3)",
	                   -1, &i, NULL);
	sqlite3_prepare_v2(db,
	                   "INSERT INTO inspection_inspectors(inspection, inspector) VALUES (?, ?)",
	                   -1, &m, NULL);
	char org[32], who[32];
	for (int k = 0; k < n; k++) {
		snprintf(org, sizeof(org), "org-%d", k);
		sqlite3_bind_text(t, 1, org, -1, SQLITE_STATIC);
		sqlite3_step(t);
		sqlite3_reset(t);
		sqlite3_bind_int(i, 1, k + 1);
		sqlite3_bind_text(i, 2, org, -1, SQLITE_STATIC);
		sqlite3_bind_text(i, 3, k % 10 ? "published" : "assigned", -1, SQLITE_STATIC);
		sqlite3_step(i);
		sqlite3_reset(i);
		for (int j = 0; j < 2; j++) {
			snprintf(who, sizeof(who), "I%04d", (k * 2 + j) % inspectors);
			sqlite3_bind_int(m, 1, k + 1);
			sqlite3_bind_text(m, 2, who, -1, SQLITE_STATIC);
			sqlite3_step(m);
			sqlite3_reset(m);
		}
	}
	sqlite3_finalize(t);
	sqlite3_finalize(i);
	sqlite3_finalize(m);
	int rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
	sqlite3_close(db);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_sees_site DIR [INSPECTIONS] [INSPECTORS] [CHECKS]\n");
		return 2;
	}
	int n = argc > 2 ? atoi(argv[2]) : 20000, inspectors = argc > 3 ? atoi(argv[3]) : 400;
	int checks = argc > 4 ? atoi(argv[4]) : 20000;
	char path[4096], err[256];
	snprintf(path, sizeof(path), "%s/inspect.db", argv[1]);
	remove(path);
	struct inspect *in;
	if (inspect_open(NULL, path, &in, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (fill(path, n, inspectors)) {
		fprintf(stderr, "fill failed\n");
		return 1;
	}
	for (int none = 0; none < 2; none++) {
		int hits = 0;
		char who[32], site[48];
		double t0 = now_us();
		for (int k = 0; k < checks; k++) {
			snprintf(who, sizeof(who), none ? "X%04d" : "I%04d", k % inspectors);
			snprintf(site, sizeof(site), "org-%d-s1", (k * 7) % n);
			hits += inspections_sees_site(in, who, site) == 1;
		}
		double us = (now_us() - t0) / checks;
		printf("%s: %d checks, %.1f us each, %d granted (%d inspections, %d memberships "
		       "per inspector)\n",
		       none ? "inspector of none" : "inspector of many", checks, us, hits, n,
		       none ? 0 : 2 * n / inspectors);
	}
	inspect_close(in);
	return 0;
}
