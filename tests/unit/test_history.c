/* issue 16 E: a site's history and its overview fields, against store.h (and the SQLite
 * file for the query plan and the counters). History: pages come newest first by (check
 * time, results id) across the site's agents, a cursor continues exactly where the page
 * ended (nothing repeated, nothing skipped, equal check times included), the kind, target
 * and from/to filters select what a model of the stored rows says, bounds are refused, and
 * the reads range over an index in order (EXPLAIN QUERY PLAN: no scan, no sort). Overview:
 * the per-class counts (status and the 3.6 criteria) follow latest, the migration fills
 * them from latest, and a running exam session marks the site in_session. Real files, a
 * real loop, real writer and reader threads. */
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

#include "api_int.h"
#include "store.h"
#include "store_backend.h"
#include "testdir.h"
#include "testpg.h"
#include "vtime.h"

struct ctx {
	char dir[64];
	char db[64], dsn[512]; /* issue 13, postgresql: this test's own database ("" = sqlite) */
	struct store_options opt;
	uv_loop_t loop;
	struct store *st;
	int done;
};

static int setup(void **state)
{
	struct ctx *x = calloc(1, sizeof(*x));
	if (!x || testdir_make(x->dir, sizeof(x->dir), "history")) {
		free(x);
		return -1;
	}
	x->opt.backend = "sqlite";
	x->opt.dir = x->dir;
	x->opt.rollup_tick_ms = -1; /* the job is not what these tests are about */
	*state = x;
	return 0;
}

/* issue 13: the same tests on PostgreSQL (testpg.h), under tests/tools/pg.sh. */
static int setup_pg(void **state)
{
	if (setup(state))
		return -1;
	struct ctx *x = *state;
	if (testpg_make("history", x->db, sizeof(x->db), x->dsn, sizeof(x->dsn)))
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
	x->st = NULL;
}

static void on_done(struct store_batch *b)
{
	((struct ctx *)b->data)->done++;
}

static void commit(struct ctx *x, struct store_batch *b)
{
	store_batch_sort(b);
	b->done = on_done;
	b->data = x;
	int want = x->done + 1;
	assert_int_equal(store_submit(x->st, b), 0);
	while (x->done < want)
		uv_run(&x->loop, UV_RUN_ONCE);
	assert_int_equal(b->status, 0);
	store_batch_destroy(b);
}

static struct store_batch *batch_for(const char *site, const char *agent, const char *city)
{
	struct store_batch *b = store_batch_create();
	assert_non_null(b);
	snprintf(b->site, sizeof(b->site), "%s", site);
	snprintf(b->agent, sizeof(b->agent), "%s", agent);
	snprintf(b->org, sizeof(b->org), "org-1");
	snprintf(b->city, sizeof(b->city), "%s", city);
	b->received_ms = vw_now_ms();
	return b;
}

static void add(struct store_batch *b, int64_t seq, int64_t ts, enum vw_kind kind,
                const char *target, enum vw_status status)
{
	struct vw_result r;
	vw_result_init(&r, kind, target);
	r.seq = seq;
	r.ts_ms = ts;
	r.status = status;
	if (status != VW_STATUS_OK)
		vw_result_add_fault(&r, VW_FAULT_TIMEOUT);
	assert_int_equal(store_batch_add(b, &r), 0);
}

/* --- a model of what was stored ------------------------------------------------------------ */

#define ROWS_MAX 2000
struct row {
	int64_t id; /* the order the store gave it: rows are inserted in this order */
	char agent[8], target[16];
	const char *kind;
	int64_t ts, seq;
};
struct model {
	struct row r[ROWS_MAX];
	size_t n;
};

/* Newest first: (ts, id) descending. */
static int row_cmp(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->ts != y->ts)
		return x->ts < y->ts ? 1 : -1;
	return x->id < y->id ? 1 : x->id > y->id ? -1 : 0;
}

/* What a page read back, copied during the callback. */
struct page {
	int calls, status;
	size_t n;
	struct {
		char agent[8], target[16], kind[16];
		int64_t ts, seq;
	} r[ROWS_MAX];
	int64_t next_ts, next_id;
	char city[32];
};

static void on_page(void *ud, const struct store_reply *rep)
{
	struct page *p = ud;
	p->calls++;
	p->status = rep->status;
	p->n = rep->ntargets;
	assert_true(p->n <= ROWS_MAX);
	for (size_t i = 0; i < rep->ntargets; i++) {
		const struct store_target *t = &rep->targets[i];
		snprintf(p->r[i].agent, sizeof(p->r[i].agent), "%s", t->agent);
		snprintf(p->r[i].target, sizeof(p->r[i].target), "%s", t->target);
		snprintf(p->r[i].kind, sizeof(p->r[i].kind), "%s", t->kind);
		p->r[i].ts = t->ts_ms;
		p->r[i].seq = t->seq;
	}
	p->next_ts = rep->next_ts_ms;
	p->next_id = rep->next_id;
	if (rep->nsites)
		snprintf(p->city, sizeof(p->city), "%s", rep->sites[0].city);
}

static int read_page(struct ctx *x, const struct store_history_query *q, struct page *p)
{
	memset(p, 0, sizeof(*p));
	int rc = store_site_history(x->st, q, on_page, p);
	if (rc)
		return rc;
	while (!p->calls)
		uv_run(&x->loop, UV_RUN_ONCE);
	return p->status;
}

/* Reads every page of q (limit as given), through the API's own cursor text, and checks
 * the concatenation against the model's rows that match, in order. */
static void check_paged(struct ctx *x, const struct model *m, struct store_history_query q,
                        const char *kind, const char *target, int64_t from, int64_t to)
{
	static struct row want[ROWS_MAX];
	size_t nw = 0;
	for (size_t i = 0; i < m->n; i++) {
		const struct row *r = &m->r[i];
		if ((kind && strcmp(r->kind, kind)) || (target && strcmp(r->target, target)) ||
		    (from && r->ts < from) || (to && r->ts >= to))
			continue;
		want[nw++] = *r;
	}
	qsort(want, nw, sizeof(want[0]), row_cmp);
	q.kind = kind;
	q.target = target;
	q.from_ms = from;
	q.to_ms = to;
	static struct page p;
	size_t got = 0;
	int pages = 0;
	for (;;) {
		assert_int_equal(read_page(x, &q, &p), 0);
		pages++;
		assert_true(p.n <= (size_t)q.limit);
		for (size_t i = 0; i < p.n; i++, got++) {
			assert_true(got < nw);
			assert_string_equal(p.r[i].agent, want[got].agent);
			assert_string_equal(p.r[i].target, want[got].target);
			assert_string_equal(p.r[i].kind, want[got].kind);
			assert_int_equal(p.r[i].ts, want[got].ts);
			assert_int_equal(p.r[i].seq, want[got].seq);
		}
		if (!p.next_id)
			break;
		/* only a full page has a next one, unless the page stopped at scan_max */
		if (!q.scan_max)
			assert_int_equal(p.n, q.limit);
		char cur[API_HISTORY_CURSOR_LEN];
		api_history_cursor_format(cur, p.next_ts, p.next_id);
		assert_int_equal(api_history_cursor_parse(cur, &q.before_ts_ms, &q.before_id), 0);
		assert_int_equal(q.before_ts_ms, p.next_ts);
		assert_int_equal(q.before_id, p.next_id);
	}
	assert_int_equal(got, nw);
	assert_true(pages >= (int)(nw / (size_t)q.limit));
	if (q.scan_max) /* every page examined at most scan_max rows */
		assert_true(pages >= (int)(m->n / 2 / (size_t)q.scan_max));
}

/* Two agents of one site and a second site, cameras and network targets, check times that
 * collide within and across agents (the id breaks the tie), batches arriving out of check
 * time order. */
static void fill(struct ctx *x, struct model *m)
{
	static const char *const cams[] = {"cam1", "cam2", "cam3"};
	int64_t seq[2] = {0, 0};
	int64_t id = 0;
	for (int round = 0; round < 60; round++) {
		int a = round % 2;
		char agent[8];
		snprintf(agent, sizeof(agent), "a%d", a);
		struct store_batch *b = batch_for("site-1", agent, "Jinan");
		/* a late batch every 7th round: older check times than the ones before it */
		int64_t base = 1700000000000LL + (round % 7 == 6 ? round - 5 : round) * 10000;
		for (int k = 0; k < 8; k++) {
			int net = k % 4 == 3;
			const char *target = net ? (k == 3 ? "collector" : "uplink") : cams[k % 3];
			int64_t ts = base + (k / 2) * 1000; /* pairs share a check time */
			add(b, ++seq[a], ts, net ? VW_KIND_NETWORK : VW_KIND_STREAM, target,
			    (round + k) % 5 == 0 ? VW_STATUS_DOWN : VW_STATUS_OK);
			struct row *r = &m->r[m->n++];
			r->id = ++id;
			snprintf(r->agent, sizeof(r->agent), "%s", agent);
			snprintf(r->target, sizeof(r->target), "%s", target);
			r->kind = net ? "network" : "stream";
			r->ts = ts;
			r->seq = seq[a];
		}
		commit(x, b);
		/* another site's rows never show in site-1's history */
		struct store_batch *o = batch_for("site-2", "a0", "Qingdao");
		add(o, round + 1, base, VW_KIND_STREAM, "cam1", VW_STATUS_OK);
		commit(x, o);
		id++;
	}
}

static void pages_follow_the_cursor_newest_first(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static struct model m;
	m.n = 0;
	fill(x, &m);
	struct store_history_query q = {.site = "site-1", .limit = 7};
	check_paged(x, &m, q, NULL, NULL, 0, 0);
	q.limit = 1;
	check_paged(x, &m, q, "network", NULL, 0, 0);
	q.limit = 13;
	check_paged(x, &m, q, "stream", NULL, 0, 0);
	check_paged(x, &m, q, NULL, "cam2", 0, 0);
	check_paged(x, &m, q, "network", "collector", 0, 0);
	check_paged(x, &m, q, "stream", "collector", 0, 0); /* no such pair: empty */
	check_paged(x, &m, q, NULL, NULL, 1700000000000LL + 100000, 1700000000000LL + 300000);
	check_paged(x, &m, q, "stream", "cam1", 1700000000000LL + 155000, 0);
	q.limit = STORE_HISTORY_MAX;
	check_paged(x, &m, q, NULL, NULL, 0, 0);
	/* A rare match within a small scan bound: short pages, each cursor continuing from the
	 * last row examined, the concatenation still exactly the matching rows. */
	q.limit = 5;
	q.scan_max = 7;
	check_paged(x, &m, q, "network", "collector", 0, 0);
	check_paged(x, &m, q, NULL, "cam3", 1700000000000LL + 100000, 0);
	check_paged(x, &m, q, "stream", "collector", 0, 0); /* none at all */
	q.scan_max = 1;
	check_paged(x, &m, q, NULL, NULL, 0, 0);
	close_h(x);
}

static void bounds_and_unknown_sites_are_refused(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	struct store_batch *b = batch_for("site-1", "a0", "Jinan");
	add(b, 1, 1700000000000LL, VW_KIND_STREAM, "cam1", VW_STATUS_OK);
	commit(x, b);
	static struct page p;
	struct store_history_query q = {.site = "site-1", .limit = 0};
	assert_int_equal(store_site_history(x->st, &q, on_page, &p), -EINVAL);
	q.limit = STORE_HISTORY_MAX + 1;
	assert_int_equal(store_site_history(x->st, &q, on_page, &p), -EINVAL);
	q.limit = 10;
	q.site = "site-9";
	assert_int_equal(read_page(x, &q, &p), -ENOENT);
	q.site = "site-1";
	assert_int_equal(read_page(x, &q, &p), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.next_id, 0);
	assert_string_equal(p.city, "Jinan"); /* the API scopes with it */
	close_h(x);

	/* cursor text: round trip, and everything else refused */
	char cur[API_HISTORY_CURSOR_LEN];
	int64_t ts, id;
	api_history_cursor_format(cur, 1764554400123LL, 987654321);
	assert_int_equal(api_history_cursor_parse(cur, &ts, &id), 0);
	assert_int_equal(ts, 1764554400123LL);
	assert_int_equal(id, 987654321);
	api_history_cursor_format(cur, INT64_MAX, INT64_MAX);
	assert_int_equal(api_history_cursor_parse(cur, &ts, &id), 0);
	assert_int_equal(ts, INT64_MAX);
	static const char *const bad[] = {"",
	                                  "h1.",
	                                  "h1.10",
	                                  "h1.10.",
	                                  "h1..5",
	                                  "h2.10.5",
	                                  "h1.10.5x",
	                                  "h1.10.0",
	                                  "h1.-10.5",
	                                  "h1.8000000000000000.1",
	                                  "h1.10000000000000000.1",
	                                  "h1.10.5.7",
	                                  "1764554400123.5"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (api_history_cursor_parse(bad[i], &ts, &id) != -EINVAL)
			fail_msg("cursor \"%s\" was accepted", bad[i]);
}

/* The plan of a history stream: a range over results_agent_ts in the index's own order —
 * no full scan of results and no temporary b-tree to sort (a page then costs its own rows,
 * not the site's whole history). */
static void history_reads_range_over_an_index(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	struct store_batch *b = batch_for("site-1", "a0", "Jinan");
	add(b, 1, 1700000000000LL, VW_KIND_STREAM, "cam1", VW_STATUS_OK);
	commit(x, b);
	close_h(x);
	char path[128];
	snprintf(path, sizeof(path), "%s/venuewatch.db", x->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char sql[2048];
	snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s", store_sqlite_history_sql());
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	char plan[1024] = "";
	while (sqlite3_step(st) == SQLITE_ROW) {
		strncat(plan, (const char *)sqlite3_column_text(st, 3),
		        sizeof(plan) - strlen(plan) - 2);
		strcat(plan, ";");
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (!strstr(plan, "SEARCH results USING INDEX results_agent_ts (agent_id=?") ||
	    strstr(plan, "SCAN") || strstr(plan, "TEMP B-TREE"))
		fail_msg("history stream plan: %s", plan);
}

/* --- the overview's fields ------------------------------------------------------------------ */

struct sites {
	int calls, status;
	size_t n;
	struct store_site s[4];
	char name[4][16];
};

static void on_sites(void *ud, const struct store_reply *r)
{
	struct sites *g = ud;
	g->calls++;
	g->status = r->status;
	g->n = r->nsites;
	for (size_t i = 0; i < r->nsites && i < 4; i++) {
		g->s[i] = r->sites[i];
		snprintf(g->name[i], sizeof(g->name[i]), "%s", r->sites[i].site);
		g->s[i].site = g->s[i].org = g->s[i].city = NULL;
	}
}

static void list(struct ctx *x, struct sites *g)
{
	memset(g, 0, sizeof(*g));
	assert_int_equal(store_list_sites(x->st, on_sites, g), 0);
	while (!g->calls)
		uv_run(&x->loop, UV_RUN_ONCE);
	assert_int_equal(g->status, 0);
}

/* Against a model of latest kept by the test: each (site, agent, kind, target)'s newest
 * status, counted per site and class (network target "collector" also as connected). */
static void health_counts_follow_latest(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	enum { SITES = 2, AGENTS = 2, TARGETS = 5 };
	static const enum vw_kind kinds[] = {VW_KIND_STREAM, VW_KIND_NETWORK, VW_KIND_RECORDING,
	                                     VW_KIND_COVERAGE, VW_KIND_ASSESSMENT};
	static const enum store_health cls[] = {STORE_H_STREAM, STORE_H_NETWORK, STORE_H_RECORDING,
	                                        STORE_H_COVERAGE, STORE_H_ASSESSMENT};
	int model[SITES][AGENTS][5][TARGETS];
	memset(model, 0xff, sizeof(model));
	int64_t seq[SITES][AGENTS] = {{0}};
	for (int round = 0; round < 30; round++) {
		int s = round % SITES, a = (round / 2) % AGENTS;
		char site[16], agent[8];
		snprintf(site, sizeof(site), "site-%d", s);
		snprintf(agent, sizeof(agent), "a%d", a);
		struct store_batch *b = batch_for(site, agent, "Jinan");
		for (int k = 0; k < 9; k++) {
			int kd = (round + k) % 5, t = (round * 3 + k) % TARGETS;
			char target[16];
			if (kinds[kd] == VW_KIND_NETWORK && t == 0)
				snprintf(target, sizeof(target), "collector");
			else
				snprintf(target, sizeof(target), "t%d", t);
			enum vw_status st = (enum vw_status)((round * 7 + k) % 3);
			add(b, ++seq[s][a], 1700000000000LL + round * 1000 + k, kinds[kd], target,
			    st);
			model[s][a][kd][t] = (int)st;
		}
		commit(x, b);
		struct sites g;
		list(x, &g);
		for (size_t i = 0; i < g.n; i++) {
			int si = g.name[i][5] - '0';
			int64_t want[STORE_H_COUNT][VW_STATUS_COUNT] = {{0}};
			for (int aa = 0; aa < AGENTS; aa++)
				for (int kd = 0; kd < 5; kd++)
					for (int t = 0; t < TARGETS; t++) {
						int v = model[si][aa][kd][t];
						if (v < 0)
							continue;
						want[cls[kd]][v]++;
						if (kinds[kd] == VW_KIND_NETWORK && t == 0)
							want[STORE_H_CONNECTED][v]++;
					}
			for (int h = 0; h < STORE_H_COUNT; h++)
				for (int k = 0; k < VW_STATUS_COUNT; k++)
					if (g.s[i].health[h][k] != want[h][k])
						fail_msg("round %d %s class %d status %d: %lld, "
						         "want %lld",
						         round, g.name[i], h, k,
						         (long long)g.s[i].health[h][k],
						         (long long)want[h][k]);
			assert_int_equal(g.s[i].ok, want[STORE_H_STREAM][VW_STATUS_OK]);
			assert_int_equal(g.s[i].down, want[STORE_H_STREAM][VW_STATUS_DOWN]);
		}
	}
	close_h(x);
	if (x->db[0])
		return; /* what follows is SQLite's migration 10 (PostgreSQL had the counts from 1)
		         */

	/* The migration's backfill from latest gives the same counts: undo it and reopen. */
	char path[128];
	snprintf(path, sizeof(path), "%s/venuewatch.db", x->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	static const char *const cols[] = {"stream_ok",    "network_down",    "connected_degraded",
	                                   "recording_ok", "assessment_down", "coverage_degraded"};
	int64_t before[6];
	for (int i = 0; i < 6; i++) {
		char sql[128];
		snprintf(sql, sizeof(sql), "SELECT sum(%s) FROM agent_health", cols[i]);
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		before[i] = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	/* issue 16 E's migration is the last one */
	char undo[256];
	snprintf(undo, sizeof(undo), "DROP TABLE agent_health; PRAGMA user_version = %d;",
	         STORE_SCHEMA_VERSION - 1);
	assert_int_equal(sqlite3_exec(db, undo, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	open_h(x);
	close_h(x);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	for (int i = 0; i < 6; i++) {
		char sql[128];
		snprintf(sql, sizeof(sql), "SELECT sum(%s) FROM agent_health", cols[i]);
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int64(st, 0), before[i]);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
}

static void written(struct store_write *w)
{
	(*(int *)w->data)++;
}

static int64_t before_start(const struct store_write *w)
{
	return w->now_ms; /* the submitter's time: a plan made before the session started */
}

/* in_session: a session running now (not cancelled) marks its site, in the list and in
 * the site's own read; another site's and a future session do not. */
static void running_sessions_mark_their_site(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	for (int s = 0; s < 3; s++) {
		char site[16];
		snprintf(site, sizeof(site), "site-%d", s);
		struct store_batch *b = batch_for(site, "a0", "Jinan");
		add(b, 1, vw_now_ms(), VW_KIND_STREAM, "cam1", VW_STATUS_OK);
		commit(x, b);
	}
	int64_t now = vw_now_ms();
	struct store_exam_session e[2] = {
	    {.org = "org-1",
	     .city = "Jinan",
	     .site = "site-1",
	     .code = "running",
	     .occupation = "电工",
	     .level = "四级",
	     .rooms = "*",
	     .start_ms = now - 60000,
	     .end_ms = now + 3600000},
	    {.org = "org-1",
	     .city = "Jinan",
	     .site = "site-2",
	     .code = "later",
	     .occupation = "电工",
	     .level = "四级",
	     .rooms = "*",
	     .start_ms = now + 3600000,
	     .end_ms = now + 7200000},
	};
	int done = 0;
	struct store_write w = {.op = STORE_EXAM_CREATE,
	                        .actor = "test",
	                        .now_ms = now - 120000,
	                        .clock = before_start,
	                        .exams = e,
	                        .nexams = 2,
	                        .done = written,
	                        .data = &done};
	assert_int_equal(store_write_submit(x->st, &w), 0);
	while (!done)
		uv_run(&x->loop, UV_RUN_ONCE);
	assert_int_equal(w.status, 0);
	struct sites g;
	list(x, &g);
	assert_int_equal(g.n, 3);
	assert_false(g.s[0].in_session);
	assert_true(g.s[1].in_session);
	assert_false(g.s[2].in_session);
	memset(&g, 0, sizeof(g));
	assert_int_equal(store_get_site(x->st, "site-1", on_sites, &g), 0);
	while (!g.calls)
		uv_run(&x->loop, UV_RUN_ONCE);
	assert_int_equal(g.status, 0);
	assert_true(g.s[0].in_session);
	memset(&g, 0, sizeof(g));
	assert_int_equal(store_get_site(x->st, "site-2", on_sites, &g), 0);
	while (!g.calls)
		uv_run(&x->loop, UV_RUN_ONCE);
	assert_false(g.s[0].in_session);
	close_h(x);
}

/* issue 13: a PostgreSQL history stream ranges backwards over each partition's
 * results_agent_ts (an index scan, never a sequential scan of results nor a sort of the
 * agent's whole history: a page costs its own rows). */
static void pg_history_reads_range_over_an_index(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	struct store_batch *b = batch_for("site-1", "a0", "Jinan");
	add(b, 1, 1700000000000LL, VW_KIND_STREAM, "cam1", VW_STATUS_OK);
	commit(x, b);
	close_h(x);
	PGconn *c = testpg_connect(x->dsn);
	assert_non_null(c);
	/* the planner's choice as if results were large: no sequential scans */
	PGresult *r = PQexec(c, "SET enable_seqscan = off; SET enable_bitmapscan = off;"
	                        " SET plan_cache_mode = force_generic_plan");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	r = PQexec(c, "PREPARE h AS SELECT id, kind, target, status, session, codec, faults,"
	              " metrics, ts_ms, seq FROM results WHERE agent_id = $1 AND ts_ms >= $2"
	              " AND ts_ms <= $3 AND (ts_ms < $3 OR id < $4)"
	              " ORDER BY ts_ms DESC, id DESC LIMIT $5");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	r = PQexec(c, "EXPLAIN EXECUTE h(1, 0, 9223372036854775807, 9223372036854775807, 500)");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	char plan[4096] = "";
	for (int i = 0; i < PQntuples(r); i++)
		snprintf(plan + strlen(plan), sizeof(plan) - strlen(plan), "%s; ",
		         PQgetvalue(r, i, 0));
	PQclear(r);
	PQfinish(c);
	if (!strstr(plan, "Index Scan Backward") || !strstr(plan, "agent_id_ts_ms_idx") ||
	    strstr(plan, "Seq Scan") || strstr(plan, "  Sort  ") || strstr(plan, "; Sort"))
		fail_msg("history plan: %s", plan);
}

/* issue 13: PostgreSQL reads each agent's stream a chunk (500 rows) at a time: a page longer
 * than a chunk, from two agents whose rows interleave, continues each stream exactly where
 * its chunk ended. */
static void pg_pages_longer_than_a_chunk(void **state)
{
	struct ctx *x = *state;
	open_h(x);
	static struct model m;
	m.n = 0;
	int64_t seq[2] = {0, 0};
	for (int round = 0; round < 4; round++) { /* 960 rows per agent, ROWS_MAX in all */
		int a = round % 2;
		char agent[8];
		snprintf(agent, sizeof(agent), "a%d", a);
		struct store_batch *b = batch_for("site-1", agent, "Jinan");
		for (int k = 0; k < 480; k++) {
			int64_t ts = 1700000000000LL + (int64_t)k * 1000 + a; /* interleaved */
			add(b, ++seq[a], ts, VW_KIND_STREAM, "cam1", VW_STATUS_OK);
			struct row *r = &m.r[m.n];
			r->id = (int64_t)m.n;
			m.n++;
			snprintf(r->agent, sizeof(r->agent), "%s", agent);
			snprintf(r->target, sizeof(r->target), "cam1");
			r->kind = "stream";
			r->ts = ts;
			r->seq = seq[a];
		}
		commit(x, b);
	}
	struct store_history_query q = {.site = "site-1", .limit = STORE_HISTORY_MAX};
	check_paged(x, &m, q, NULL, NULL, 0, 0);
	close_h(x);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* No argument: SQLite. "postgresql" (ctest test_history_postgresql, under tests/tools/pg.sh):
 * the same on PostgreSQL, but for SQLite's own query plan. */
int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "postgresql") == 0) {
		if (!getenv("VW_PG_DSN")) {
			fprintf(stderr, "test_history postgresql: no VW_PG_DSN (run it under "
			                "tests/tools/pg.sh)\n");
			return 1;
		}
#define PG(f) cmocka_unit_test_setup_teardown(f, setup_pg, teardown)
		const struct CMUnitTest pg[] = {
		    PG(pages_follow_the_cursor_newest_first),
		    PG(bounds_and_unknown_sites_are_refused),
		    PG(health_counts_follow_latest),
		    PG(running_sessions_mark_their_site),
		    PG(pg_history_reads_range_over_an_index),
		    PG(pg_pages_longer_than_a_chunk),
		};
		return cmocka_run_group_tests_name("site history: postgresql store", pg, NULL,
		                                   NULL);
	}
	const struct CMUnitTest tests[] = {
	    T(pages_follow_the_cursor_newest_first), T(bounds_and_unknown_sites_are_refused),
	    T(history_reads_range_over_an_index),    T(health_counts_follow_latest),
	    T(running_sessions_mark_their_site),
	};
	return cmocka_run_group_tests_name("site history and overview (issue 16 E)", tests, NULL,
	                                   NULL);
}
