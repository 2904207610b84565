#include "score.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credit.h"

static const struct {
	const char *name, *zh;
	int cls;
} crits[SCORE_NCRIT] = {
    [SCORE_CONNECTED] = {"connected", "接入平台", STORE_CLASS_CONNECTED},
    [SCORE_NETWORK] = {"network", "网络连接顺畅", STORE_CLASS_NETWORK},
    [SCORE_PICTURE] = {"picture", "视频画面清晰", STORE_CLASS_STREAM},
    [SCORE_FLOOR] = {"floor", "评价现场全覆盖", STORE_CLASS_COVERAGE},
    [SCORE_RECORDS] = {"records", "影像资料有保存", STORE_CLASS_RECORDING},
};

const char *score_criterion_name(int c)
{
	return c >= 0 && c < SCORE_NCRIT ? crits[c].name : NULL;
}

const char *score_criterion_label_zh(int c)
{
	return c >= 0 && c < SCORE_NCRIT ? crits[c].zh : NULL;
}

int score_criterion_parse(const char *name)
{
	for (int c = 0; name && c < SCORE_NCRIT; c++)
		if (strcmp(name, crits[c].name) == 0)
			return c;
	return -1;
}

int score_criterion_class(int c)
{
	return c >= 0 && c < SCORE_NCRIT ? crits[c].cls : -1;
}

/* Connected and records kept ask only that the link or the recording exists: a degraded
 * one still is. Smoothness, picture and coverage are about quality, so only ok counts. */
static int counts_degraded(int c)
{
	return c == SCORE_CONNECTED || c == SCORE_RECORDS;
}

void score_rubric_default(struct score_rubric *r)
{
	/* issue 11 / DOMAIN.md: 5 when every criterion holds >= 99 % of session time. */
	*r = (struct score_rubric){.full_pct = 99,
	                           .step4_pct = 95,
	                           .step3_pct = 80,
	                           .step2_pct = 50,
	                           .default_stale_ms = 120000,
	                           .settle_ms = 3600000};
	char err[128];
	score_rubric_finish(r, err, sizeof(err));
}

/* The shortest %g form that reads back as the same double, so 99 is "99" and the text does
 * not depend on how the value was written in the config. */
static void fmt_num(char out[32], double v)
{
	if (v == (double)(long long)v && v > -1e15 && v < 1e15) {
		snprintf(out, 32, "%lld", (long long)v); /* %g would write 80 as 8e+01 */
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, 32, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

int score_rubric_canonical(const struct score_rubric *r, char *buf, size_t len)
{
	char a[32], b[32], c[32], d[32];
	fmt_num(a, r->full_pct);
	fmt_num(b, r->step4_pct);
	fmt_num(c, r->step3_pct);
	fmt_num(d, r->step2_pct);
	return snprintf(buf, len,
	                "venuewatch score rubric 1\nfull_pct=%s\nstep4_pct=%s\nstep3_pct=%s\n"
	                "step2_pct=%s\ndefault_stale_ms=%lld\n",
	                a, b, c, d, (long long)r->default_stale_ms);
}

int score_rubric_finish(struct score_rubric *r, char *err, size_t errlen)
{
	if (!(r->step2_pct >= 0 && r->step2_pct <= r->step3_pct && r->step3_pct <= r->step4_pct &&
	      r->step4_pct <= r->full_pct && r->full_pct <= 100)) {
		snprintf(err, errlen,
		         "[score] needs 0 <= step2 <= step3 <= step4 <= full_pct <= 100 "
		         "(have %g, %g, %g, %g)",
		         r->step2_pct, r->step3_pct, r->step4_pct, r->full_pct);
		return -EINVAL;
	}
	if (r->default_stale_ms <= 0) {
		snprintf(err, errlen, "[score] default_stale must be positive");
		return -EINVAL;
	}
	char text[256];
	int n = score_rubric_canonical(r, text, sizeof(text));
	unsigned char md[32];
	unsigned int mdlen = 0;
	if (n < 0 || (size_t)n >= sizeof(text) ||
	    !EVP_Digest(text, (size_t)n, md, &mdlen, EVP_sha256(), NULL)) {
		snprintf(err, errlen, "[score] could not hash the rubric");
		return -EIO;
	}
	for (int i = 0; i < 6; i++)
		snprintf(r->version + 2 * i, 3, "%02x", md[i]);
	return 0;
}

int score_from_fractions(const struct score_rubric *r, const double frac[SCORE_NCRIT], int *weakest)
{
	int w = 0;
	for (int c = 1; c < SCORE_NCRIT; c++)
		if (frac[c] < frac[w])
			w = c;
	if (weakest)
		*weakest = w;
	/* issue 11: "no results = not connected" — never connected is not done at all (0);
	 * connected at all earns at least 1 whatever else failed. */
	if (frac[SCORE_CONNECTED] <= 0)
		return 0;
	double pct = 100.0 * frac[w];
	if (pct >= r->full_pct)
		return 5;
	if (pct >= r->step4_pct)
		return 4;
	if (pct >= r->step3_pct)
		return 3;
	if (pct >= r->step2_pct)
		return 2;
	return 1;
}

/* --- local time -------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int score_parse_time(const char *s, int64_t *ms)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0)
		return -EINVAL;
	if (strspn(s, "0123456789") == n) {
		if (n > 15) /* past the year 33000: a typo, not a time */
			return -EINVAL;
		*ms = strtoll(s, NULL, 10);
		return 0;
	}
	int y, mo, d, h = 0, mi = 0, sec = 0;
	if (n < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
	    digits(s + 8, 2, &d))
		return -EINVAL;
	const char *p = s + 10;
	if (*p == 'T' || *p == ' ') {
		if (digits(p + 1, 2, &h) || p[3] != ':' || digits(p + 4, 2, &mi))
			return -EINVAL;
		p += 6;
		if (*p == ':') {
			if (digits(p + 1, 2, &sec))
				return -EINVAL;
			p += 3;
		}
	}
	int64_t off = CREDIT_TZ_OFFSET_MS;
	if (*p == 'Z') {
		off = 0;
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 14 ||
		    om > 59)
			return -EINVAL;
		off = (*p == '-' ? -1 : 1) * ((int64_t)oh * 3600 + om * 60) * 1000;
		p += 6;
	}
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (*p || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 59)
		return -EINVAL;
	int64_t days = days_from_civil(y, mo, d);
	int yy, mm, dd;
	civil_from_days(days, &yy, &mm, &dd);
	if (mm != mo || dd != d) /* 29 February of a common year */
		return -EINVAL;
	*ms = ((days * 24 + h) * 60 + mi) * 60000LL + sec * 1000LL - off;
	return 0;
}

void score_format_local(int64_t ms, char out[SCORE_LOCAL_LEN])
{
	int64_t t = ms + CREDIT_TZ_OFFSET_MS;
	int64_t days = t >= 0 ? t / CREDIT_DAY_MS : -((-t + CREDIT_DAY_MS - 1) / CREDIT_DAY_MS);
	int64_t rem = (t - days * CREDIT_DAY_MS) / 1000;
	int y, m, d;
	civil_from_days(days, &y, &m, &d);
	snprintf(out, SCORE_LOCAL_LEN, "%04d-%02d-%02dT%02d:%02d:%02d+08:00", y, m, d,
	         (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
}

/* --- reasons ---------------------------------------------------------------------------- */

/* The next name of a comma-separated room list: its start and length (trimmed), or NULL at
 * the end. Empty names are skipped. */
static const char *room_next(const char **p, size_t *len)
{
	while (*p) {
		const char *s = *p;
		while (*s == ' ')
			s++;
		const char *end = strchr(s, ',');
		size_t n = end ? (size_t)(end - s) : strlen(s);
		while (n && s[n - 1] == ' ')
			n--;
		*p = end ? end + 1 : NULL;
		if (n) {
			*len = n;
			return s;
		}
	}
	return NULL;
}

/* Whether the name [s, s+n) comes earlier in the list than s itself. */
static int room_seen_before(const char *rooms, const char *s, size_t n)
{
	const char *p = rooms, *q;
	size_t ql;
	while ((q = room_next(&p, &ql)) && q < s)
		if (ql == n && memcmp(q, s, n) == 0)
			return 1;
	return 0;
}

int score_rooms_count(const char *rooms)
{
	const char *p = rooms ? rooms : "", *s;
	size_t n;
	int count = 0;
	while ((s = room_next(&p, &n))) {
		if (n == 1 && s[0] == '*')
			return -1;
		/* A name listed twice is one room: the rollup credits it once. */
		count += !room_seen_before(rooms, s, n);
	}
	return count;
}

/* One target's unmet time in one session. target is not NUL-terminated (a room may point
 * into the session's room list): tlen bytes. */
struct unmet {
	int crit;
	const char *site, *target;
	size_t tlen;
	int64_t ms;
	int64_t sessions; /* merged entries: how many sessions' unmet time ms sums */
	uint64_t hash;    /* 0 = a free slot of the table */
};

static int unmet_cmp_key(const void *a, const void *b)
{
	const struct unmet *x = a, *y = b;
	if (x->crit != y->crit)
		return x->crit < y->crit ? -1 : 1;
	int c = strcmp(x->site, y->site);
	if (c)
		return c;
	size_t n = x->tlen < y->tlen ? x->tlen : y->tlen;
	c = memcmp(x->target, y->target, n);
	return c ? c : (x->tlen > y->tlen) - (x->tlen < y->tlen);
}

static int reason_cmp(const void *a, const void *b)
{
	const struct score_reason *x = a, *y = b;
	if (x->unmet_ms != y->unmet_ms)
		return x->unmet_ms > y->unmet_ms ? -1 : 1;
	int c = strcmp(x->site, y->site);
	return c ? c : strcmp(x->target, y->target);
}

struct exam_ix {
	int64_t id;
	size_t i;
};

static int exam_ix_cmp(const void *a, const void *b)
{
	const struct exam_ix *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int64_t counted_ms(int c, int64_t ok, int64_t degraded)
{
	return ok + (counts_degraded(c) ? degraded : 0);
}

static int crit_of_class(int cls)
{
	for (int c = 0; c < SCORE_NCRIT; c++)
		if (crits[c].cls == cls)
			return c;
	return -1;
}

/* The unmet time per (criterion, site, target), merged as it is added: an open-addressing
 * table, because an org's years hold hundreds of thousands of credits but only its sites'
 * few hundred targets (sorting every credit instead cost 0.7 s for 3,120 sessions). */
struct unmet_vec {
	struct unmet *v; /* cap slots, a power of two */
	size_t n, cap;
};

static uint64_t unmet_hash(const struct unmet *x)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)x->crit; /* FNV-1a */
	for (const char *p = x->site; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull; /* between site and target: "ab"+"c" != "a"+"bc" */
	for (size_t i = 0; i < x->tlen; i++)
		h = (h ^ (unsigned char)x->target[i]) * 1099511628211ull;
	return h ? h : 1;
}

static struct unmet *unmet_slot(struct unmet *v, size_t cap, const struct unmet *x)
{
	for (size_t i = x->hash & (cap - 1);; i = (i + 1) & (cap - 1))
		if (!v[i].hash || (v[i].hash == x->hash && unmet_cmp_key(&v[i], x) == 0))
			return &v[i];
}

static int push(struct unmet_vec *u, struct unmet x)
{
	if (2 * (u->n + 1) > u->cap) {
		size_t nc = u->cap ? u->cap * 2 : 64;
		struct unmet *p = calloc(nc, sizeof(*p));
		if (!p)
			return -ENOMEM;
		for (size_t i = 0; i < u->cap; i++)
			if (u->v[i].hash)
				*unmet_slot(p, nc, &u->v[i]) = u->v[i];
		free(u->v);
		u->v = p;
		u->cap = nc;
	}
	x.hash = unmet_hash(&x);
	struct unmet *slot = unmet_slot(u->v, u->cap, &x);
	if (slot->hash) {
		slot->ms += x.ms;
		slot->sessions++;
	} else {
		x.sessions = 1;
		*slot = x;
		u->n++;
	}
	return 0;
}

/* Whether the session's credits (credits[from..], by exam_id) hold class cls for target
 * [t, t+n) (n = 0: any target). */
static int credited(const struct store_credit *cr, size_t ncr, size_t from, int64_t exam_id,
                    int cls, const char *t, size_t n)
{
	for (size_t k = from; k < ncr && cr[k].exam_id == exam_id; k++)
		if (cr[k].cls == cls &&
		    (!n || (strlen(cr[k].target) == n && memcmp(cr[k].target, t, n) == 0)))
			return 1;
	return 0;
}

static int add_session_unmet(struct unmet_vec *u, const struct store_exam *e,
                             const struct score_session *s, const struct store_credit *credits,
                             size_t ncredits, size_t from)
{
	for (size_t k = from; k < ncredits && credits[k].exam_id == e->id; k++) {
		const struct store_credit *cr = &credits[k];
		int c = crit_of_class(cr->cls);
		if (c < 0)
			continue;
		int64_t got = counted_ms(c, cr->ok_ms, cr->degraded_ms);
		int64_t miss = got >= s->dur_ms ? 0 : s->dur_ms - got;
		if (push(u, (struct unmet){c, e->site, cr->target, strlen(cr->target), miss, 0, 0}))
			return -ENOMEM;
	}
	/* A collector never heard from in the session was never connected; a listed room
	 * without one coverage result was never covered. Neither has a credit row. */
	if (!credited(credits, ncredits, from, e->id, STORE_CLASS_CONNECTED, NULL, 0) &&
	    push(u, (struct unmet){SCORE_CONNECTED, e->site, "collector", 9, s->dur_ms, 0, 0}))
		return -ENOMEM;
	if (score_rooms_count(e->rooms) < 0)
		return 0;
	const char *p = e->rooms, *room;
	size_t n;
	while ((room = room_next(&p, &n)))
		if (!room_seen_before(e->rooms, room, n) &&
		    !credited(credits, ncredits, from, e->id, STORE_CLASS_COVERAGE, room, n) &&
		    push(u, (struct unmet){SCORE_FLOOR, e->site, room, n, s->dur_ms, 0, 0}))
			return -ENOMEM;
	return 0;
}

static int build_reasons(const struct store_exam *exams, size_t nexams,
                         const struct store_credit *credits, size_t ncredits,
                         struct score_result *out)
{
	int rc = -ENOMEM;
	struct unmet_vec u = {0};
	struct exam_ix *ix = calloc(nexams ? nexams : 1, sizeof(*ix));
	struct score_reason *all = NULL;
	if (!ix)
		goto fail;
	for (size_t i = 0; i < nexams; i++)
		ix[i] = (struct exam_ix){exams[i].id, i};
	qsort(ix, nexams, sizeof(*ix), exam_ix_cmp);
	/* Each session once, with where its credits begin (credits come by exam_id). */
	char *done = calloc(nexams ? nexams : 1, 1);
	if (!done)
		goto fail;
	for (size_t k = 0; k <= ncredits; k++) {
		if (k < ncredits && k > 0 && credits[k].exam_id == credits[k - 1].exam_id)
			continue;
		if (k == ncredits)
			break;
		struct exam_ix key = {credits[k].exam_id, 0};
		const struct exam_ix *hit = bsearch(&key, ix, nexams, sizeof(*ix), exam_ix_cmp);
		if (!hit || done[hit->i] || out->sessions[hit->i].dur_ms <= 0)
			continue;
		done[hit->i] = 1;
		if (add_session_unmet(&u, &exams[hit->i], &out->sessions[hit->i], credits, ncredits,
		                      k)) {
			free(done);
			goto fail;
		}
	}
	for (size_t i = 0; i < nexams; i++)
		if (!done[i] && out->sessions[i].dur_ms > 0 &&
		    add_session_unmet(&u, &exams[i], &out->sessions[i], credits, 0, 0)) {
			free(done);
			goto fail;
		}
	free(done);
	/* The table's entries, dense and in key order (grouped by criterion). */
	size_t dense = 0;
	for (size_t i = 0; i < u.cap; i++)
		if (u.v[i].hash)
			u.v[dense++] = u.v[i];
	if (u.n) /* qsort's base may not be NULL, even for no elements */
		qsort(u.v, u.n, sizeof(*u.v), unmet_cmp_key);

	/* Merge per (criterion, site, target); keep each criterion's worst. */
	all = calloc(u.n ? u.n : 1, sizeof(*all));
	if (!all)
		goto fail;
	for (size_t a = 0; a < u.n;) {
		size_t b = a, na = 0;
		int c = u.v[a].crit;
		while (b < u.n && u.v[b].crit == c)
			b++;
		for (size_t i = a; i < b;) {
			size_t j = i;
			struct score_reason r = {strdup(u.v[i].site),
			                         strndup(u.v[i].target, u.v[i].tlen), 0, 0};
			all[na++] = r;
			if (!r.site || !r.target) {
				for (size_t k = 0; k < na; k++) {
					free(all[k].target);
					free(all[k].site);
				}
				goto fail;
			}
			while (j < b && unmet_cmp_key(&u.v[i], &u.v[j]) == 0) {
				all[na - 1].unmet_ms += u.v[j].ms;
				all[na - 1].sessions += u.v[j].sessions;
				j++;
			}
			i = j;
		}
		qsort(all, na, sizeof(*all), reason_cmp);
		size_t keep = 0;
		while (keep < na && keep < SCORE_WORST_MAX && all[keep].unmet_ms > 0)
			keep++;
		for (size_t i = keep; i < na; i++) {
			free(all[i].target);
			free(all[i].site);
		}
		out->worst[c] = malloc((keep ? keep : 1) * sizeof(*all));
		if (!out->worst[c]) {
			for (size_t i = 0; i < keep; i++) {
				free(all[i].target);
				free(all[i].site);
			}
			goto fail;
		}
		memcpy(out->worst[c], all, keep * sizeof(*all));
		out->nworst[c] = keep;
		a = b;
	}
	rc = 0;
fail:
	free(all);
	free(u.v);
	free(ix);
	return rc;
}

int score_compute(const struct score_rubric *r, const struct store_exam *exams, size_t nexams,
                  const struct store_credit *credits, size_t ncredits, int with_reasons,
                  struct score_result *out)
{
	memset(out, 0, sizeof(*out));
	out->score = out->weakest = -1;
	out->sessions = calloc(nexams ? nexams : 1, sizeof(*out->sessions));
	if (!out->sessions)
		return -ENOMEM;
	out->nsessions = nexams;
	for (size_t i = 0; i < nexams; i++) {
		const struct store_exam *e = &exams[i];
		struct score_session *s = &out->sessions[i];
		s->exam = e;
		s->dur_ms = e->end_ms > e->start_ms ? e->end_ms - e->start_ms : 0;
		for (int c = 0; c < SCORE_NCRIT; c++) {
			int cls = crits[c].cls;
			int64_t n = e->ntargets[cls];
			if (c == SCORE_CONNECTED)
				n = 1; /* one target, "collector": no result at all is not connected
				        */
			if (c == SCORE_FLOOR) {
				int rooms = score_rooms_count(e->rooms);
				if (rooms >= 0)
					n = rooms; /* a listed room that never reported counts 0 */
			}
			s->targets[c] = n;
			double got = (double)counted_ms(c, e->ok_ms[cls], e->degraded_ms[cls]);
			double held = n > 0 ? got / (double)n : 0;
			if (held > (double)s->dur_ms)
				held = (double)s->dur_ms;
			s->held_ms[c] = held;
			/* 100 * held / dur, not held / dur * 100: whole milliseconds stay exact, so
			 * a session at exactly 95 % is at 95 %, not at 94.99999. */
			s->frac[c] = s->dur_ms > 0 ? held / (double)s->dur_ms : 0;
			out->held_ms[c] += held;
		}
		s->score = score_from_fractions(r, s->frac, &s->weakest);
		out->dur_ms += s->dur_ms;
	}
	if (out->dur_ms > 0) {
		for (int c = 0; c < SCORE_NCRIT; c++) {
			out->frac[c] = out->held_ms[c] / (double)out->dur_ms;
			out->unmet_ms[c] = (double)out->dur_ms - out->held_ms[c];
		}
		out->score = score_from_fractions(r, out->frac, &out->weakest);
	}
	int rc = with_reasons ? build_reasons(exams, nexams, credits, ncredits, out) : 0;
	if (rc)
		score_result_free(out);
	return rc;
}

void score_result_free(struct score_result *res)
{
	if (!res)
		return;
	for (int c = 0; c < SCORE_NCRIT; c++) {
		for (size_t i = 0; i < res->nworst[c]; i++) {
			free(res->worst[c][i].site);
			free(res->worst[c][i].target);
		}
		free(res->worst[c]);
	}
	free(res->sessions);
	memset(res, 0, sizeof(*res));
}

int score_provisional(const struct score_rubric *r, const struct store_exam *e)
{
	return e->rolled_to_ms < e->end_ms + r->settle_ms;
}
