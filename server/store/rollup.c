/* rollup: the rollup job's memory and rules, shared by the backends (rollup.h says what it
 * does and what stays with each backend). Moved here from sqlite.c for issue 13, unchanged
 * in what it computes: test_rollup checks the credits against the rule by hand on both. */
#include "rollup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vtime.h"

size_t rollup_result_classes(const char *kind, const char *target, int cls[2])
{
	if (strcmp(kind, "network") == 0) {
		cls[0] = STORE_CLASS_NETWORK;
		if (strcmp(target, "collector") != 0)
			return 1;
		cls[1] = STORE_CLASS_CONNECTED;
		return 2;
	}
	static const struct {
		const char *kind;
		int cls;
	} map[] = {{"stream", STORE_CLASS_STREAM},
	           {"recording", STORE_CLASS_RECORDING},
	           {"coverage", STORE_CLASS_COVERAGE}};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(kind, map[i].kind) == 0) {
			cls[0] = map[i].cls;
			return 1;
		}
	return 0;
}

/* The job's memory (rollup.h). Per result that leaves a hash lookup and a few additions; per
 * flush, one write per dirty row. */
/* Sessions of a site are cached from this long before the job's clock on (and further back
 * when a late backlog asks): a hold starting before the cached range reloads the site. */
#define EXAMS_CACHE_BACK_MS (2 * CREDIT_DAY_MS)

/* One key shape for every table: holds (agent, 0, kind, target), session credits (exam,
 * class, "", target), day credits (agent, day, kind, target), agents (agent, 0, "", ""),
 * sites (0, 0, "", site). */
struct rkey {
	int64_t a, b;
	char kind[16];
	char name[VW_NAME_MAX];
};
/* A sum this hold last added to, so the hold's next result finds it without a lookup:
 * valid while its table's gen is unchanged (a resize moves entries, a flush clears them).
 * The hold's kind and target complete the sum's key, so (k.a, k.b) identify it. */
struct rsum_ref {
	struct rent *e;
	uint64_t gen;
};
/* used and h come first: a probe reads one cache line, and with the key's ints and a short
 * name in that line too, a hit usually costs one miss (perf showed rtab_get's time on the
 * probe's load of used, which sat after the 96-byte key: a probe and its compare touched
 * two lines). */
struct rent {
	uint64_t h; /* rkey_hash(&k) */
	int used, dirty;
	struct rkey k;
	int64_t site_ix;             /* holds and agents: index into rollup_mem.sites */
	int ncls, cls[2];            /* holds: result_classes(k.kind, k.name); ncls -1 = unset */
	struct rsum_ref day_ref;     /* holds: the last local-day sum credited */
	struct rsum_ref exam_ref[2]; /* holds: the last session sum, per class */
	struct credit_state cs;      /* holds */
	int64_t ms[VW_STATUS_COUNT]; /* credits and days */
	int64_t results;             /* credits and days */
	int64_t ts_ms;               /* agents: last check time rolled */
};
struct rtab {
	struct rent *v;
	size_t cap, n; /* cap a power of two, n < 0.7 cap */
	uint64_t gen;  /* bumped whenever entries move or go: a resize, a clear */
};

struct exam_at {
	int64_t id, start_ms, end_ms;
	char *rooms;
};
/* A site's sessions with end_ms > from_ms (loaded = 0: none read yet, or invalidated). */
struct site_exams {
	char site[64];
	int loaded;
	int64_t from_ms;
	size_t n;
	struct exam_at *v;
};

struct rollup_mem {
	struct rollup_pos pos;
	int64_t none_ix;      /* the site "" of holds whose agent is not in rollup_agents */
	int64_t next_tail_ms; /* no open hold's bound passes before this (a lower bound) */
	struct rtab holds, credits, days, agents, site_ix;
	struct rsum_ref last_agent; /* results come in batches of one agent: its entry */
	struct site_exams *sites;
	size_t nsites, capsites;
};

static uint64_t rkey_hash(const struct rkey *k)
{
	uint64_t h = 1469598103934665603ULL;
	h = (h ^ (uint64_t)k->a) * 1099511628211ULL;
	h = (h ^ (uint64_t)k->b) * 1099511628211ULL;
	for (const char *p = k->kind; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (const char *p = k->name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h ^= h >> 33; /* fmix64: FNV's low bits are weak for the table's mask */
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static int rkey_eq(const struct rkey *x, const struct rkey *y)
{
	return x->a == y->a && x->b == y->b && strcmp(x->kind, y->kind) == 0 &&
	       strcmp(x->name, y->name) == 0;
}

static struct rent *rtab_slot(struct rent *v, size_t cap, const struct rkey *k, uint64_t h)
{
	for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1))
		if (!v[i].used || (v[i].h == h && rkey_eq(&v[i].k, k)))
			return &v[i];
}

/* The entry of k; a new zeroed one when absent; NULL when out of memory. */
static struct rent *rtab_get(struct rtab *t, const struct rkey *k)
{
	if ((t->n + 1) * 10 >= t->cap * 7) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct rent *v = calloc(cap, sizeof(*v));
		if (!v)
			return NULL;
		for (size_t i = 0; i < t->cap; i++)
			if (t->v[i].used)
				*rtab_slot(v, cap, &t->v[i].k, t->v[i].h) = t->v[i];
		free(t->v);
		t->v = v;
		t->cap = cap;
		t->gen++;
	}
	uint64_t h = rkey_hash(k);
	struct rent *e = rtab_slot(t->v, t->cap, k, h);
	if (!e->used) {
		memset(e, 0, sizeof(*e));
		e->k = *k;
		e->h = h;
		e->used = 1;
		e->site_ix = -1;
		e->ncls = -1;
		t->n++;
	}
	return e;
}

static void rtab_clear(struct rtab *t)
{
	if (t->v)
		memset(t->v, 0, t->cap * sizeof(*t->v));
	t->n = 0;
	t->gen++;
}

static void rtab_free(struct rtab *t)
{
	free(t->v);
	*t = (struct rtab){0};
}

/* Copies at most n - 1 bytes and terminates (names longer than the store keeps are cut
 * the same way everywhere). Per result this runs a few times: no snprintf. */
static void name_copy(char *dst, const char *src, size_t n)
{
	size_t i = 0;
	for (; i + 1 < n && src[i]; i++)
		dst[i] = src[i];
	dst[i] = 0;
}

static void rkey_set(struct rkey *k, int64_t a, int64_t b, const char *kind, const char *name)
{
	k->a = a;
	k->b = b;
	name_copy(k->kind, kind, sizeof(k->kind));
	name_copy(k->name, name, sizeof(k->name));
}

static void site_exams_drop(struct site_exams *se)
{
	for (size_t i = 0; i < se->n; i++)
		free(se->v[i].rooms);
	free(se->v);
	se->v = NULL;
	se->n = 0;
	se->loaded = 0;
}

void rollup_mem_free(struct rollup_mem *m)
{
	if (!m)
		return;
	rtab_free(&m->holds);
	rtab_free(&m->credits);
	rtab_free(&m->days);
	rtab_free(&m->agents);
	rtab_free(&m->site_ix);
	for (size_t i = 0; i < m->nsites; i++)
		site_exams_drop(&m->sites[i]);
	free(m->sites);
	free(m);
}

/* The index of site in m->sites, added when new; -ENOMEM. */
static int64_t site_intern(struct rollup_mem *m, const char *site)
{
	struct rkey k;
	rkey_set(&k, 0, 0, "", site);
	struct rent *e = rtab_get(&m->site_ix, &k);
	if (!e)
		return -ENOMEM;
	if (e->dirty) /* dirty = interned */
		return e->site_ix;
	if (m->nsites == m->capsites) {
		size_t cap = m->capsites ? m->capsites * 2 : 64;
		struct site_exams *v = realloc(m->sites, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		m->sites = v;
		m->capsites = cap;
	}
	struct site_exams *se = &m->sites[m->nsites];
	memset(se, 0, sizeof(*se));
	snprintf(se->site, sizeof(se->site), "%s", site);
	e->dirty = 1;
	e->site_ix = (int64_t)m->nsites++;
	return e->site_ix;
}

/* The site's sessions that a span starting at lo can overlap (cancelled ones too: what is
 * added to a session is taken back from the same one; reads leave them out). */
int rollup_exams_add(struct rollup_exams *out, int64_t id, int64_t start_ms, int64_t end_ms,
                     const char *rooms)
{
	struct site_exams *se = (struct site_exams *)out;
	if (se->n % 8 == 0) {
		struct exam_at *v = realloc(se->v, (se->n + 8) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		se->v = v;
	}
	struct exam_at *e = &se->v[se->n];
	*e = (struct exam_at){id, start_ms, end_ms, strdup(rooms ? rooms : "")};
	if (!e->rooms)
		return -ENOMEM;
	se->n++;
	return 0;
}

static int site_exams(struct rollup_mem *m, const struct rollup_io *io, int64_t ix, int64_t lo,
                      int64_t now_ms, const struct site_exams **out)
{
	struct site_exams *se = &m->sites[ix];
	*out = se;
	if (se->loaded && lo >= se->from_ms)
		return 0;
	int64_t from = now_ms - EXAMS_CACHE_BACK_MS;
	if (lo < from)
		from = lo;
	if (se->loaded && se->from_ms < from)
		from = se->from_ms;
	site_exams_drop(se);
	int rc = io->site_exams(io->db, se->site, from, (struct rollup_exams *)se);
	if (rc) {
		site_exams_drop(se);
		return rc;
	}
	se->loaded = 1;
	se->from_ms = from;
	m->pos.exam_loads++;
	return 0;
}

/* What one step of the job works on: the target whose spans are being credited. */
struct roll_target {
	int64_t agent_id, site_ix;
	const char *kind, *target;
	struct rent *hold; /* the target's hold: its sum refs and classes */
};

/* ref is the hold's reference for this sum's kind of key: a hit skips the hash lookup (one
 * per result on the days table and per session class otherwise), a miss looks up and
 * remembers. */
static int sum_add(struct rtab *t, struct rsum_ref *ref, int64_t a, int64_t b, const char *kind,
                   const char *name, const int64_t ms[VW_STATUS_COUNT], int64_t results)
{
	struct rent *e = ref->e;
	if (!e || ref->gen != t->gen || e->k.a != a || e->k.b != b) {
		struct rkey k;
		rkey_set(&k, a, b, kind, name);
		if (!(e = rtab_get(t, &k)))
			return -ENOMEM;
		*ref = (struct rsum_ref){e, t->gen}; /* after rtab_get: a resize bumps gen */
	}
	for (int i = 0; i < VW_STATUS_COUNT; i++)
		e->ms[i] += ms[i];
	e->results += results;
	return 0;
}

/* Everything one step of a target changes (credit_next's or credit_advance's spans, and
 * with count the result itself at ts_ms), added to the in-memory sums of the sessions and
 * local days it overlaps. */
static int credit_apply(struct rollup_mem *m, const struct rollup_io *io,
                        const struct roll_target *t, const struct credit_span *sp, size_t nsp,
                        int count, int64_t ts_ms, int64_t now_ms)
{
	int64_t lo = count ? ts_ms : INT64_MAX, hi = count ? ts_ms + 1 : INT64_MIN;
	for (size_t i = 0; i < nsp; i++) {
		lo = sp[i].from_ms < lo ? sp[i].from_ms : lo;
		hi = sp[i].to_ms > hi ? sp[i].to_ms : hi;
	}
	if (hi <= lo)
		return 0;
	struct rent *h = t->hold;
	if (h->ncls < 0)
		h->ncls = (int)rollup_result_classes(t->kind, t->target, h->cls);
	int rc = 0;
	const int *cls = h->cls;
	size_t ncls = (size_t)h->ncls;
	if (ncls) {
		const struct site_exams *se;
		if ((rc = site_exams(m, io, t->site_ix, lo, now_ms, &se)) != 0)
			return rc;
		enum { MAX_AT = 64 };
		size_t nhit = 0;
		for (size_t j = 0; j < se->n && !rc; j++) {
			const struct exam_at *e = &se->v[j];
			if (e->end_ms <= lo || e->start_ms >= hi)
				continue;
			if (nhit == MAX_AT) {
				log_warn("event=rollup_sessions_capped site=%s from_ms=%lld max=%d",
				         se->site, (long long)lo, MAX_AT);
				break;
			}
			if (cls[0] == STORE_CLASS_COVERAGE &&
			    !credit_room_listed(e->rooms, t->target))
				continue;
			nhit++;
			int64_t ms[VW_STATUS_COUNT] = {0},
			        results = count && ts_ms >= e->start_ms && ts_ms < e->end_ms;
			for (size_t i = 0; i < nsp; i++)
				ms[sp[i].status] +=
				    sp[i].sign * credit_overlap(sp[i].from_ms, sp[i].to_ms,
				                                e->start_ms, e->end_ms);
			if (!ms[0] && !ms[1] && !ms[2] && !results)
				continue;
			for (size_t c = 0; c < ncls && !rc; c++)
				rc = sum_add(&m->credits, &h->exam_ref[c], e->id, cls[c], "",
				             t->target, ms, results);
		}
	}
	/* Local days: a hold is at most 2 x a day-long cadence, so a handful. */
	enum { MAX_DAYS = 8 };
	size_t ndays = 0;
	for (int64_t d = credit_local_day(lo);
	     !rc && credit_day_start_ms(d) < hi && ndays < MAX_DAYS; d++) {
		int64_t a = credit_day_start_ms(d), b = credit_day_start_ms(d + 1);
		int64_t ms[VW_STATUS_COUNT] = {0}, results = count && ts_ms >= a && ts_ms < b;
		int any = (int)results;
		for (size_t i = 0; i < nsp; i++) {
			int64_t v = credit_overlap(sp[i].from_ms, sp[i].to_ms, a, b);
			ms[sp[i].status] += sp[i].sign * v;
			any |= v != 0;
		}
		if (!any)
			continue;
		ndays++;
		rc =
		    sum_add(&m->days, &h->day_ref, t->agent_id, d, t->kind, t->target, ms, results);
	}
	return rc;
}

/* The site of an agent the job has not seen yet (a new agent, or one known from holds only),
 * from its agents row: an agent's site never changes (UNIQUE(site, agent) names the row), so
 * it is read once, not joined to every result. -ENOENT when the row is missing. */
static int agent_site(struct rollup_mem *m, const struct rollup_io *io, int64_t agent_id,
                      struct rent *a)
{
	char site[VW_NAME_MAX];
	int rc = io->agent_site(io->db, agent_id, site, sizeof(site));
	int64_t ix = rc ? rc : site_intern(m, site);
	if (ix < 0)
		return (int)ix;
	a->site_ix = ix;
	return 0;
}

/* One new result: settles its target's previous hold and credits the new one up to now.
 * A result whose agent has no agents row (never written so; the join this replaced left
 * such rows out too) is skipped. */
int rollup_result(struct rollup_mem *m, const struct rollup_io *io, int64_t agent_id,
                  const char *kind, const char *target, int status, int64_t ts_ms, int64_t stale_ms,
                  int64_t now_ms)
{
	struct rkey k;
	struct rent *a = m->last_agent.e;
	if (!a || m->last_agent.gen != m->agents.gen || a->k.a != agent_id) {
		rkey_set(&k, agent_id, 0, "", "");
		if (!(a = rtab_get(&m->agents, &k)))
			return -ENOMEM;
		m->last_agent = (struct rsum_ref){a, m->agents.gen};
	}
	if (a->site_ix < 0 || a->site_ix == m->none_ix) {
		int rc = agent_site(m, io, agent_id, a);
		if (rc == -ENOENT) {
			log_warn("event=rollup_agent_missing agent_id=%lld", (long long)agent_id);
			return 0;
		}
		if (rc)
			return rc;
	}
	if (ts_ms > a->ts_ms)
		a->ts_ms = ts_ms;
	a->dirty = 1;
	rkey_set(&k, agent_id, 0, kind, target);
	struct rent *h = rtab_get(&m->holds, &k);
	if (!h)
		return -ENOMEM;
	h->site_ix = a->site_ix;
	h->dirty = 1;
	struct credit_span sp[2];
	size_t n = credit_next(&h->cs, status, ts_ms, stale_ms, now_ms, sp);
	struct roll_target t = {agent_id, a->site_ix, h->k.kind, h->k.name, h};
	if (h->cs.ts_ms + h->cs.stale_ms < m->next_tail_ms)
		m->next_tail_ms = h->cs.ts_ms + h->cs.stale_ms;
	return credit_apply(m, io, &t, sp, n, 1, ts_ms, now_ms);
}

/* Holds whose bound passed with no next result (a silent target), credited to their end.
 * A hold still within its bound is settled by its target's next result instead. Runs at
 * each flush: an open hold's credit is read from the flushed sums only anyway. */
int rollup_tails(struct rollup_mem *m, const struct rollup_io *io, int64_t now_ms)
{
	int64_t next = INT64_MAX;
	int rc = 0;
	for (size_t i = 0; i < m->holds.cap && !rc; i++) {
		struct rent *h = &m->holds.v[i];
		if (!h->used || !h->cs.has)
			continue;
		int64_t bound = h->cs.ts_ms + h->cs.stale_ms;
		if (h->cs.until_ms >= bound)
			continue;
		if (bound > now_ms) {
			next = bound < next ? bound : next;
			continue;
		}
		struct credit_span sp[1];
		if (credit_advance(&h->cs, now_ms, sp) == 0)
			continue;
		h->dirty = 1;
		struct roll_target t = {h->k.a, h->site_ix, h->k.kind, h->k.name, h};
		rc = credit_apply(m, io, &t, sp, 1, 0, 0, now_ms);
	}
	if (!rc)
		m->next_tail_ms = next;
	return rc;
}

struct rollup_mem *rollup_mem_new(void)
{
	struct rollup_mem *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	int64_t none = site_intern(m, ""); /* a hold whose agent row is missing */
	if (none < 0) {
		rollup_mem_free(m);
		return NULL;
	}
	m->none_ix = none;
	m->pos.last_flush_ms = vw_now_ms();
	return m;
}

struct rollup_pos *rollup_pos(struct rollup_mem *m)
{
	return &m->pos;
}

int rollup_load_agent(struct rollup_mem *m, int64_t agent_id, const char *site, int64_t ts_ms)
{
	struct rkey k;
	rkey_set(&k, agent_id, 0, "", "");
	struct rent *e = rtab_get(&m->agents, &k);
	int64_t ix = e ? site_intern(m, site) : -ENOMEM;
	if (ix < 0)
		return -ENOMEM;
	e->site_ix = ix;
	e->ts_ms = ts_ms;
	return 0;
}

int rollup_load_hold(struct rollup_mem *m, int64_t agent_id, const char *kind, const char *target,
                     const struct credit_state *cs)
{
	struct rkey k, ak;
	rkey_set(&k, agent_id, 0, kind, target);
	struct rent *e = rtab_get(&m->holds, &k);
	rkey_set(&ak, agent_id, 0, "", "");
	struct rent *a = e ? rtab_get(&m->agents, &ak) : NULL;
	if (!a)
		return -ENOMEM;
	if (a->site_ix < 0)
		a->site_ix = m->none_ix;
	e->site_ix = a->site_ix;
	e->cs = *cs;
	return 0;
}

void rollup_exams_changed(struct rollup_mem *m)
{
	for (size_t i = 0; i < m->nsites; i++)
		site_exams_drop(&m->sites[i]);
}

int rollup_flush_due(const struct rollup_mem *m, int64_t now_ms, int64_t flush_ms)
{
	int64_t since = now_ms - m->pos.last_flush_ms;
	return (m->pos.pending && (since >= flush_ms || m->pos.pending >= ROLLUP_FLUSH_ROWS)) ||
	       (now_ms >= m->next_tail_ms && since >= flush_ms);
}

int rollup_write(struct rollup_mem *m, const struct rollup_io *io, size_t *holds)
{
	int rc = 0;
	*holds = 0;
	for (size_t i = 0; i < m->holds.cap && !rc; i++) {
		const struct rent *h = &m->holds.v[i];
		if (h->used && h->dirty) {
			rc = io->put_hold(io->db, h->k.a, h->k.kind, h->k.name, &h->cs);
			(*holds)++;
		}
	}
	for (size_t i = 0; i < m->credits.cap && !rc; i++) {
		const struct rent *c = &m->credits.v[i];
		if (c->used)
			rc = io->put_credit(io->db, c->k.a, (int)c->k.b, c->k.name, c->ms,
			                    c->results);
	}
	for (size_t i = 0; i < m->days.cap && !rc; i++) {
		const struct rent *d = &m->days.v[i];
		if (d->used)
			rc = io->put_day(io->db, d->k.a, d->k.kind, d->k.name, d->k.b, d->ms,
			                 d->results);
	}
	for (size_t i = 0; i < m->agents.cap && !rc; i++) {
		const struct rent *a = &m->agents.v[i];
		if (a->used && a->dirty)
			rc = io->put_agent(io->db, a->k.a, m->sites[a->site_ix].site, a->ts_ms);
	}
	return rc;
}

void rollup_written(struct rollup_mem *m, int64_t now_ms)
{
	for (size_t i = 0; i < m->holds.cap; i++)
		m->holds.v[i].dirty = 0;
	for (size_t i = 0; i < m->agents.cap; i++)
		m->agents.v[i].dirty = 0;
	rtab_clear(&m->credits);
	rtab_clear(&m->days);
	m->pos.pending = 0;
	m->pos.flushed_mark = m->pos.mark;
	m->pos.last_flush_ms = now_ms;
}
