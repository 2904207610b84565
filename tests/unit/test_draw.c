/* draw: the verifiable draw core (server/core/draw.c, docs/DRAW.md). The plan's normalisation,
 * canonical values, the staffing check at commit; determinism (same inputs, in any list order,
 * give the same bytes); tamper detection of every field of a document; the rules (recusal, away,
 * booked, two inspectors, exact strata counts) over thousands of random rosters; and fairness:
 * chi-square tests over 10,000 draws with different secrets, from fixed seeds so the p-values are
 * the same on every run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"

#define T_CREATED 1796090400000LL  /* 2026-12-01T02:00:00Z */
#define T_EXECUTED 1796522400000LL /* 2026-12-06T02:00:00Z */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static unsigned below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static void shuffle(cJSON *a)
{
	int n = cJSON_GetArraySize(a);
	for (int i = n - 1; i > 0; i--) {
		int j = (int)below((unsigned)i + 1);
		cJSON *x = cJSON_DetachItemFromArray(a, j);
		cJSON_AddItemToArray(a, x); /* moves a random element to the end */
	}
}

/* A secret of 32 bytes from a counter (fixed seeds: the tests are deterministic). */
static void secret_of(unsigned i, char out[65])
{
	for (int k = 0; k < 32; k++)
		snprintf(out + 2 * k, 3, "%02x",
		         (unsigned)((i * 2654435761u >> (k % 4 * 8)) ^ k) & 255);
}

struct world {
	cJSON *plan, *targets, *inspectors, *items, *previous, *randomness, *sessions;
};

static void world_free(struct world *w)
{
	cJSON_Delete(w->plan);
	cJSON_Delete(w->targets);
	cJSON_Delete(w->inspectors);
	cJSON_Delete(w->items);
	cJSON_Delete(w->previous);
	cJSON_Delete(w->randomness);
	cJSON_Delete(w->sessions);
	memset(w, 0, sizeof *w);
}

static cJSON *target(const char *org, const char *city, const char *risk, int nsites)
{
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "org", org);
	cJSON_AddStringToObject(t, "name", "职业技能培训学校");
	cJSON_AddStringToObject(t, "city", city);
	cJSON_AddStringToObject(t, "level", "city");
	cJSON *o = cJSON_AddArrayToObject(t, "occupations");
	cJSON_AddItemToArray(o, cJSON_CreateString("电工"));
	cJSON_AddStringToObject(t, "risk", risk);
	cJSON *s = cJSON_AddArrayToObject(t, "sites");
	for (int i = 0; i < nsites; i++) {
		char site[64];
		snprintf(site, sizeof site, "%s-s%d", org, i + 1);
		cJSON_AddItemToArray(s, cJSON_CreateString(site));
	}
	return t;
}

static cJSON *inspector(const char *id, const char *city)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "id", id);
	cJSON_AddStringToObject(r, "name", "检查员");
	cJSON_AddStringToObject(r, "city", city);
	cJSON_AddStringToObject(r, "department", "职业能力建设处");
	cJSON_AddArrayToObject(r, "ties");
	cJSON_AddArrayToObject(r, "away");
	return r;
}

static void tie(cJSON *insp, const char *org)
{
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "org", org);
	cJSON_AddStringToObject(t, "kind", "affiliation");
	cJSON_AddItemToArray(cJSON_GetObjectItem(insp, "ties"), t);
}

static void away(cJSON *insp, const char *from, const char *to)
{
	cJSON *a = cJSON_CreateArray();
	cJSON_AddItemToArray(a, cJSON_CreateString(from));
	cJSON_AddItemToArray(a, cJSON_CreateString(to));
	cJSON_AddItemToArray(cJSON_GetObjectItem(insp, "away"), a);
}

static void session(cJSON *sessions, int id, const char *org, int day, int hour)
{
	char st[64], en[64], site[64];
	snprintf(st, sizeof st, "2026-12-%02dT%02d:00:00Z", day, hour);
	snprintf(en, sizeof en, "2026-12-%02dT%02d:30:00Z", day, hour);
	snprintf(site, sizeof site, "%s-s1", org);
	cJSON *s = cJSON_CreateObject();
	cJSON_AddNumberToObject(s, "id", id);
	cJSON_AddStringToObject(s, "org", org);
	cJSON_AddStringToObject(s, "site", site);
	cJSON_AddStringToObject(s, "start", st);
	cJSON_AddStringToObject(s, "end", en);
	cJSON_AddItemToArray(sessions, s);
}

static cJSON *randomness(int nrep)
{
	cJSON *r =
	    cJSON_Parse("{\"sources\":[{\"name\":\"福彩3D\",\"expected\":\"2026-12-05T13:30:00Z\","
	                "\"form\":\"ordered\"},{\"name\":\"上证指数\",\"expected\":"
	                "\"2026-12-05T07:00:00Z\",\"form\":\"sorted\"}],\"replacements\":[]}");
	cJSON *rep = cJSON_GetObjectItem(r, "replacements");
	for (int i = 0; i < nrep; i++) {
		char name[32];
		snprintf(name, sizeof name, "替补%d", i + 1);
		cJSON *s = cJSON_CreateObject();
		cJSON_AddStringToObject(s, "name", name);
		cJSON_AddStringToObject(s, "expected", "2026-12-10T13:30:00Z");
		cJSON_AddStringToObject(s, "form", "ordered");
		cJSON_AddItemToArray(rep, s);
	}
	return r;
}

/* The fixed world of the determinism and tamper tests: a province draw over two cities. */
static void world_fixed(struct world *w)
{
	static const char *cities[2] = {"济南市", "青岛市"};
	w->plan =
	    cJSON_Parse("{\"grades\":[{\"risk\":\"high\",\"ratio\":0.5,\"min\":1},"
	                "{\"risk\":\"low\",\"ratio\":0.25}],\"inspectors_per\":2,"
	                "\"recusal\":{\"home_city\":true},\"window\":{\"from\":\"2026-12-07\","
	                "\"to\":\"2026-12-18\"},\"items\":[\"item-1\"]}");
	w->targets = cJSON_CreateArray();
	w->inspectors = cJSON_CreateArray();
	w->sessions = cJSON_CreateArray();
	int sid = 1;
	for (int c = 0; c < 2; c++)
		for (int i = 0; i < 8; i++) {
			char org[32];
			snprintf(org, sizeof org, "o%d-%02d", c, i);
			cJSON_AddItemToArray(w->targets,
			                     target(org, cities[c], i % 2 ? "low" : "high", 2));
			for (int d = 0; d < 2; d++)
				session(w->sessions, sid++, org, 8 + (i + d * 3) % 9, 1 + d);
		}
	for (int c = 0; c < 2; c++)
		for (int i = 0; i < 6; i++) {
			char id[32], org[32];
			snprintf(id, sizeof id, "I%d%02d", c, i);
			cJSON *r = inspector(id, cities[c]);
			snprintf(org, sizeof org, "o%d-%02d", 1 - c, i);
			tie(r, org);
			if (i == 2)
				away(r, "2026-12-09", "2026-12-12");
			cJSON_AddItemToArray(w->inspectors, r);
		}
	w->items = cJSON_Parse("[{\"id\":\"item-1\",\"title\":\"视频监控\",\"basis\":\"第十条\","
	                       "\"method\":\"现场检查\"}]");
	w->previous = cJSON_Parse("[{\"org\":\"o0-00\",\"inspectors\":[\"I100\",\"I101\"]}]");
	w->randomness = randomness(3);
}

struct drawn {
	char *manifest, *sha, *priv, *doc;
};

static void drawn_free(struct drawn *d)
{
	free(d->manifest);
	free(d->sha);
	free(d->priv);
	free(d->doc);
	memset(d, 0, sizeof *d);
}

static int run_draw(const struct world *w, const char *secret, const char *values, struct drawn *d,
                    char *err, size_t errlen)
{
	char com[65];
	unsigned char salt[DRAW_SALT_LEN];
	memset(salt, 0x5a, sizeof salt);
	memset(d, 0, sizeof *d);
	assert_int_equal(draw_commitment(secret, com, err, errlen), 0);
	char *plan = cJSON_PrintUnformatted(w->plan), *tg = cJSON_PrintUnformatted(w->targets);
	char *ro = cJSON_PrintUnformatted(w->inspectors), *it = cJSON_PrintUnformatted(w->items);
	char *pv = cJSON_PrintUnformatted(w->previous), *rn = cJSON_PrintUnformatted(w->randomness);
	char *ss = cJSON_PrintUnformatted(w->sessions);
	int rc = draw_commit_build_salted("t-1", plan, tg, ro, it, pv, rn, com, T_CREATED, salt,
	                                  &d->manifest, &d->sha, &d->priv, err, errlen);
	if (rc == 0)
		rc = draw_execute(d->manifest, d->priv, values, secret, ss, T_EXECUTED, &d->doc,
		                  err, errlen);
	free(plan);
	free(tg);
	free(ro);
	free(it);
	free(pv);
	free(rn);
	free(ss);
	return rc;
}

/* ---- plan, values, commit ------------------------------------------------------------- */

static void test_plan_is_normalised_and_checked(void **state)
{
	(void)state;
	char *out = NULL, err[256];
	assert_int_equal(
	    draw_plan_check("{\"scope_city\":\"济南市\",\"grades\":[{\"risk\":\"high\","
	                    "\"ratio\":0.05}],\"recusal\":{\"home_city\":true},"
	                    "\"window\":{\"from\":\"2026-12-07\",\"to\":\"2026-12-18\"}}",
	                    &out, err, sizeof err),
	    0);
	assert_string_equal(out,
	                    "{\"grades\":[{\"min\":0,\"ratio_bp\":500,\"risk\":\"high\"}],"
	                    "\"inspectors_per\":2,\"items\":[],\"mode\":\"onsite\","
	                    "\"recusal\":{\"home_city\":false,\"same_pair\":true,\"ties\":true},"
	                    "\"scope_city\":\"济南市\",\"window\":{\"from\":\"2026-12-07\","
	                    "\"to\":\"2026-12-18\"}}");
	free(out);
	static const struct {
		const char *plan, *err;
	} bad[] = {
	    {"{\"grades\":[{\"risk\":\"high\",\"ratio\":0.00005}],\"window\":{\"from\":\"2026-12-"
	     "07\","
	     "\"to\":\"2026-12-18\"}}",
	     "plan.grades[0].ratio: at most 4 decimals"},
	    {"{\"grades\":[{\"risk\":\"high\",\"ratio\":1},{\"risk\":\"low\",\"ratio\":1.5}],"
	     "\"window\":{\"from\":\"2026-12-07\",\"to\":\"2026-12-18\"}}",
	     "plan.grades[1].ratio: must be in (0, 1]"},
	    {"{\"grades\":[{\"risk\":\"high\",\"ratio\":1}],\"recusal\":{\"ties\":false},"
	     "\"window\":{\"from\":\"2026-12-07\",\"to\":\"2026-12-18\"}}",
	     "plan.recusal.ties: cannot be turned off"},
	    {"{\"grades\":[{\"risk\":\"high\",\"ratio\":1}],\"inspectors_per\":1,"
	     "\"window\":{\"from\":\"2026-12-07\",\"to\":\"2026-12-18\"}}",
	     "plan.inspectors_per: must be an integer in 2..16"},
	    {"{\"grades\":[{\"risk\":\"high\",\"ratio\":1}],\"window\":{\"from\":\"2026-02-30\","
	     "\"to\":\"2026-12-18\"}}",
	     "plan.window.from: must be a date"},
	    {"{\"grades\":[{\"risk\":\"high\",\"ratio\":1}],\"window\":{\"from\":\"2026-12-07\","
	     "\"to\":\"2026-12-18\"},\"colour\":1}",
	     "plan.colour: unknown field"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		out = NULL;
		assert_int_equal(draw_plan_check(bad[i].plan, &out, err, sizeof err), -EINVAL);
		assert_null(out);
		if (strncmp(err, bad[i].err, strlen(bad[i].err)))
			fail_msg("plan %zu: error \"%s\", expected \"%s...\"", i, err, bad[i].err);
	}
}

static void test_values_are_canonical_rfc3797(void **state)
{
	(void)state;
	char *out = NULL, err[256];
	assert_int_equal(draw_value_canonical("03 12, 7", "sorted", &out, err, sizeof err), 0);
	assert_string_equal(out, "3.7.12/");
	free(out);
	assert_int_equal(draw_value_canonical("03 12, 7", "ordered", &out, err, sizeof err), 0);
	assert_string_equal(out, "3.12.7/");
	free(out);
	assert_int_equal(draw_value_canonical("3,412.56 +000 -9", "ordered", &out, err, sizeof err),
	                 0);
	assert_string_equal(out, "3.412.56.0.9/");
	free(out);
	assert_int_equal(draw_value_canonical("12 a", "sorted", &out, err, sizeof err), -EINVAL);
	assert_int_equal(draw_value_canonical(" , ", "sorted", &out, err, sizeof err), -EINVAL);
	/* execute names the source of a bad value */
	struct world w;
	struct drawn d;
	world_fixed(&w);
	char secret[65];
	secret_of(1, secret);
	assert_int_equal(run_draw(&w, secret, "[\"1 2 3\",\"三\"]", &d, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "values[1] (source 上证指数)"));
	drawn_free(&d);
	/* and refuses a wrong secret */
	assert_int_equal(run_draw(&w, secret, "[\"1 2 3\",\"4\"]", &d, err, sizeof err), 0);
	char *doc = NULL, other[65];
	secret_of(2, other);
	assert_int_equal(draw_execute(d.manifest, d.priv, "[\"1 2 3\",\"4\"]", other, "[]", 0, &doc,
	                              err, sizeof err),
	                 -EPERM);
	assert_string_equal(err, "secret: does not match the commitment");
	drawn_free(&d);
	world_free(&w);
}

static void test_commit_refuses_a_target_without_enough_untied_inspectors(void **state)
{
	(void)state;
	struct world w;
	struct drawn d;
	char err[256], secret[65];
	world_fixed(&w);
	/* every inspector but one is tied to o1-03 */
	int i = 0;
	for (cJSON *r = w.inspectors->child; r; r = r->next, i++)
		if (i)
			tie(r, "o1-03");
	secret_of(3, secret);
	assert_int_equal(run_draw(&w, secret, "[\"1\",\"2\"]", &d, err, sizeof err), -EINVAL);
	assert_string_equal(
	    err, "targets: o1-03 has 1 roster inspectors not tied to it, the plan needs 2");
	drawn_free(&d);
	world_free(&w);
}

/* ---- determinism ---------------------------------------------------------------------- */

static void test_same_inputs_in_any_order_give_the_same_document(void **state)
{
	(void)state;
	struct world w;
	struct drawn a, b;
	char err[256], secret[65];
	world_fixed(&w);
	secret_of(7, secret);
	assert_int_equal(run_draw(&w, secret, "[\"3 7 1\",\"3,412.56\"]", &a, err, sizeof err), 0);
	assert_int_equal(run_draw(&w, secret, "[\"3 7 1\",\"3,412.56\"]", &b, err, sizeof err), 0);
	assert_string_equal(a.doc, b.doc);
	drawn_free(&b);
	rng_state = 0x9e3779b97f4a7c15ULL;
	for (int k = 0; k < 20; k++) {
		shuffle(w.targets);
		shuffle(w.inspectors);
		shuffle(w.sessions);
		for (cJSON *r = w.inspectors->child; r; r = r->next)
			shuffle(cJSON_GetObjectItem(r, "ties"));
		assert_int_equal(
		    run_draw(&w, secret, "[\"3 7 1\",\"3,412.56\"]", &b, err, sizeof err), 0);
		assert_string_equal(a.manifest, b.manifest);
		assert_string_equal(a.doc, b.doc);
		drawn_free(&b);
	}
	/* and the document is a function of the secret */
	secret_of(8, secret);
	assert_int_equal(run_draw(&w, secret, "[\"3 7 1\",\"3,412.56\"]", &b, err, sizeof err), 0);
	assert_string_not_equal(a.doc, b.doc);
	assert_int_equal(draw_verify(a.doc, a.priv, a.sha, err, sizeof err), 0);
	assert_int_equal(draw_verify(a.doc, NULL, a.sha, err, sizeof err), 0);
	drawn_free(&a);
	drawn_free(&b);
	world_free(&w);
}

/* ---- tamper detection ----------------------------------------------------------------- */

struct leaf {
	char path[256];
	cJSON *node;
};

static void leaves(cJSON *j, char *path, struct leaf *out, size_t *n, size_t cap)
{
	size_t len = strlen(path);
	if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
		int i = 0;
		for (cJSON *c = j->child; c; c = c->next, i++) {
			if (cJSON_IsObject(j))
				snprintf(path + len, 256 - len, "%s%s", len ? "." : "", c->string);
			else
				snprintf(path + len, 256 - len, "[%d]", i);
			leaves(c, path, out, n, cap);
		}
		path[len] = '\0';
		return;
	}
	if (*n < cap) {
		snprintf(out[*n].path, sizeof out[*n].path, "%s", path);
		out[(*n)++].node = j;
	}
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A different value of the same kind, so that it still parses where it can: a time moves by
 * a second, a digit changes, other text gets another last character. */
static void mutate(cJSON *j)
{
	if (cJSON_IsString(j)) {
		size_t n = strlen(j->valuestring);
		char *s = malloc(n + 2);
		memcpy(s, j->valuestring, n + 1);
		int is_time = n >= 20 && s[n - 1] == 'Z' && s[n - 5] == '.';
		size_t at = is_time ? n - 6 : n - 1;
		if (n == 0)
			strcpy(s, "x");
		else if (s[at] >= '0' && s[at] <= '9')
			s[at] = s[at] == '9' ? '8' : (char)(s[at] + 1);
		else
			s[at] = s[at] == 'x' ? 'y' : 'x';
		cJSON_SetValuestring(j, s);
		free(s);
	} else if (cJSON_IsNumber(j)) {
		cJSON_SetNumberValue(j, j->valuedouble + 1);
	} else if (cJSON_IsBool(j)) {
		j->type = cJSON_IsTrue(j) ? cJSON_False : cJSON_True;
	} else if (cJSON_IsNull(j)) {
		j->type = cJSON_Number;
		cJSON_SetNumberValue(j, 1);
	}
}

/* Every leaf of a document (manifest, reveal, sessions, outputs) changed in turn: verify names
 * the change. Outputs are named by their own path; an input by the part it belongs to. The only
 * leaves a verifier cannot check are the recorded statements that no computation uses (when
 * execute ran, a replacement's reason and time) and fields of sessions that were not chosen and did
 * not change any choice (docs/DRAW.md "Sessions"); the test lists which those are. */
static void test_every_field_of_a_document_is_checked(void **state)
{
	(void)state;
	struct world w;
	struct drawn d;
	char err[512], secret[65];
	world_fixed(&w);
	secret_of(11, secret);
	assert_int_equal(run_draw(&w, secret, "[\"3 7 1\",\"3,412.56\"]", &d, err, sizeof err), 0);
	char *doc = d.doc, *next = NULL;
	for (int k = 0; k < 2; k++) { /* two replacements, so their fields are there to tamper */
		cJSON *j = cJSON_Parse(doc);
		cJSON *ins = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "inspections"), 2 * k);
		const char *out =
		    cJSON_GetArrayItem(cJSON_GetObjectItem(ins, "inspectors"), 0)->valuestring;
		assert_int_equal(draw_replace(doc, d.priv, 2 * k + 1, out, "病假",
		                              k ? "4 4 2" : "0 1 8", T_EXECUTED + 3600000, &next,
		                              err, sizeof err),
		                 0);
		cJSON_Delete(j);
		free(doc);
		doc = next;
	}
	d.doc = doc;
	assert_int_equal(draw_verify(doc, d.priv, d.sha, err, sizeof err), 0);
	assert_int_equal(draw_verify(doc, NULL, d.sha, err, sizeof err), 0);

	cJSON *pub = cJSON_Parse(doc);
	static struct leaf all[20000];
	size_t n = 0;
	char path[256] = "";
	leaves(pub, path, all, &n, sizeof all / sizeof *all);
	print_message("%zu leaves\n", n);
	assert_true(n > 200);
	/* which sessions were chosen */
	cJSON *chosen = cJSON_CreateArray();
	for (cJSON *i = cJSON_GetObjectItem(pub, "inspections")->child; i; i = i->next) {
		cJSON *s = cJSON_GetObjectItem(i, "session");
		if (cJSON_IsObject(s))
			cJSON_AddItemToArray(
			    chosen, cJSON_CreateNumber(cJSON_GetObjectItem(s, "id")->valuedouble));
	}
	int unchecked = 0;
	for (size_t i = 0; i < n; i++) {
		cJSON *t = cJSON_Parse(doc);
		char p2[256] = "";
		/* find the same leaf in the copy by walking the same path order */
		static struct leaf copy[20000];
		size_t nc = 0;
		leaves(t, p2, copy, &nc, sizeof copy / sizeof *copy);
		assert_int_equal(nc, n);
		mutate(copy[i].node);
		char *bad = cJSON_PrintUnformatted(t);
		int rc_priv = draw_verify(bad, d.priv, d.sha, err, sizeof err);
		char err2[512];
		int rc_pub = draw_verify(bad, NULL, d.sha, err2, sizeof err2);
		const char *lp = all[i].path;
		/* statements recorded, not computed: when execute ran, why and when someone left */
		int is_reason =
		    !strcmp(lp, "executed") ||
		    (strstr(lp, "replacements[") && (strstr(lp, "].reason") || strstr(lp, "].at")));
		int is_session = strncmp(lp, "sessions[", 9) == 0;
		int session_chosen = 0;
		if (is_session) {
			int si = atoi(lp + 9);
			double id =
			    cJSON_GetObjectItem(
			        cJSON_GetArrayItem(cJSON_GetObjectItem(pub, "sessions"), si), "id")
			        ->valuedouble;
			for (cJSON *c = chosen->child; c; c = c->next)
				session_chosen |= c->valuedouble == id;
		}
		if (rc_priv == 0 || rc_pub == 0) {
			if (is_reason || (is_session && !session_chosen)) {
				unchecked++;
				assert_int_equal(rc_priv, 0); /* consistent: neither can see it */
				assert_int_equal(rc_pub, 0);
			} else {
				fail_msg(
				    "%s: tampering not detected (with private: %d, without: %d)",
				    lp, rc_priv, rc_pub);
			}
		} else {
			assert_int_equal(rc_priv, -EBADMSG);
			assert_int_equal(rc_pub, -EBADMSG);
			/* named: an output by its own path, an input by its part */
			char top[64];
			size_t k = strcspn(lp, ".[");
			snprintf(top, sizeof top, "%.*s", (int)k, lp);
			int output = !strncmp(lp, "inspections[", 12) ||
			             !strncmp(lp, "strata[", 7) ||
			             !strncmp(lp, "reveal.canonical", 16) ||
			             (!strncmp(lp, "replacements[", 13) &&
			              (ends_with(lp, "].in") || strstr(lp, "].skipped") ||
			               ends_with(lp, "].canonical") || ends_with(lp, "].source") ||
			               ends_with(lp, "].seq")));
			if (output && strncmp(err, lp, strlen(lp)))
				fail_msg("%s: named as \"%s\"", lp, err);
			if (!output && !strstr(err, top) && !strstr(err, "inspections[") &&
			    !strstr(err, "sessions"))
				fail_msg("%s: named as \"%s\"", lp, err);
		}
		free(bad);
		cJSON_Delete(t);
	}
	print_message(
	    "tampered %zu fields; %d not checkable by design (reasons, unchosen sessions)\n", n,
	    unchecked);
	assert_true(unchecked < 40);
	/* the hash published at commit is checked too */
	assert_int_equal(draw_verify(doc, d.priv,
	                             "00000000000000000000000000000000000000000000000000"
	                             "00000000000000",
	                             err, sizeof err),
	                 -EBADMSG);
	assert_non_null(strstr(err, "differs from the hash published at commit"));
	cJSON_Delete(chosen);
	cJSON_Delete(pub);
	drawn_free(&d);
	world_free(&w);
}

/* ---- properties over random rosters --------------------------------------------------- */

static int64_t day_of(const char *date)
{
	return atoi(date + 8);
} /* December 2026 only */

static void test_rules_hold_over_random_rosters(void **state)
{
	(void)state;
	static const char *cities[3] = {"济南市", "青岛市", "淄博市"};
	static const char *risks[3] = {"high", "medium", "low"};
	rng_state = 0x2545F4914F6CDD1DULL;
	int runs = 0, refused = 0, unstaffed = 0, skips = 0;
	for (int iter = 0; iter < 2000; iter++) {
		struct world w = {0};
		int province = iter % 2, nt = 3 + (int)below(30), ni = 2 + (int)below(16);
		int per = 2 + (int)below(2);
		char plan[512];
		snprintf(
		    plan, sizeof plan,
		    "{\"scope_city\":\"%s\",\"grades\":[{\"risk\":\"high\",\"ratio_bp\":%u,"
		    "\"min\":1},{\"risk\":\"medium\",\"ratio_bp\":%u},{\"risk\":\"low\","
		    "\"ratio_bp\":%u,\"min\":%u}],\"inspectors_per\":%d,\"recusal\":"
		    "{\"home_city\":%s,\"same_pair\":true},\"window\":{\"from\":\"2026-12-07\","
		    "\"to\":\"2026-12-11\"}}",
		    province ? "" : "济南市", 1 + below(10000), 1 + below(5000), 1 + below(2000),
		    below(3), per, below(2) ? "true" : "false");
		w.plan = cJSON_Parse(plan);
		w.targets = cJSON_CreateArray();
		w.inspectors = cJSON_CreateArray();
		w.sessions = cJSON_CreateArray();
		w.items = cJSON_CreateArray();
		w.previous = cJSON_CreateArray();
		w.randomness = randomness(0);
		int sid = 1;
		for (int i = 0; i < nt; i++) {
			char org[32];
			snprintf(org, sizeof org, "org%03d", i);
			cJSON_AddItemToArray(w.targets,
			                     target(org, province ? cities[below(3)] : "济南市",
			                            risks[below(3)], 1));
			int ns = (int)below(4);
			for (int s = 0; s < ns; s++) /* days 6..12: some outside the window */
				session(w.sessions, sid++, org, 6 + (int)below(7), (int)below(24));
			if (below(4) == 0) {
				cJSON *p = cJSON_CreateObject();
				cJSON_AddStringToObject(p, "org", org);
				cJSON *ids = cJSON_AddArrayToObject(p, "inspectors");
				for (int k = 0; k < per; k++) {
					char id[16];
					snprintf(id, sizeof id, "I%02d", (int)below((unsigned)ni));
					int dup = 0;
					for (cJSON *c = ids->child; c; c = c->next)
						dup |= !strcmp(c->valuestring, id);
					if (!dup)
						cJSON_AddItemToArray(ids, cJSON_CreateString(id));
				}
				cJSON_AddItemToArray(w.previous, p);
			}
		}
		for (int i = 0; i < ni; i++) {
			char id[16], from[32], to[32];
			snprintf(id, sizeof id, "I%02d", i);
			cJSON *r = inspector(id, province ? cities[below(3)] : "济南市");
			int nties = (int)below(4);
			for (int k = 0; k < nties; k++) {
				char org[32];
				snprintf(org, sizeof org, "org%03d", (int)below((unsigned)nt));
				tie(r, org);
			}
			if (below(3) == 0) {
				int a = 6 + (int)below(6);
				snprintf(from, sizeof from, "2026-12-%02d", a);
				snprintf(to, sizeof to, "2026-12-%02d", a + (int)below(3));
				away(r, from, to);
			}
			cJSON_AddItemToArray(w.inspectors, r);
		}
		char secret[65], err[512], values[64];
		struct drawn d;
		secret_of((unsigned)iter + 100, secret);
		snprintf(values, sizeof values, "[\"%u %u %u\",\"%u\"]", below(10), below(10),
		         below(10), below(100000));
		int rc = run_draw(&w, secret, values, &d, err, sizeof err);
		if (rc == -EINVAL && strstr(err, "roster inspectors not tied to it")) {
			refused++;
			drawn_free(&d);
			world_free(&w);
			continue;
		}
		if (rc != 0)
			fail_msg("iteration %d: %s", iter, err);
		runs++;
		assert_int_equal(draw_verify(d.doc, d.priv, d.sha, err, sizeof err), 0);
		assert_int_equal(draw_verify(d.doc, NULL, d.sha, err, sizeof err), 0);

		/* the rules, checked against the registers as given */
		cJSON *doc = cJSON_Parse(d.doc);
		cJSON *man = cJSON_GetObjectItem(doc, "manifest");
		int booked[64][32] = {{0}};
		int per_stratum_seen = 0;
		for (cJSON *s = cJSON_GetObjectItem(doc, "strata")->child; s; s = s->next) {
			const char *city = cJSON_GetObjectItem(s, "city")->valuestring;
			const char *risk = cJSON_GetObjectItem(s, "risk")->valuestring;
			int N = 0, k = 0;
			for (cJSON *t = cJSON_GetObjectItem(man, "targets")->child; t; t = t->next)
				N += !strcmp(cJSON_GetObjectItem(t, "risk")->valuestring, risk) &&
				     (!province ||
				      !strcmp(cJSON_GetObjectItem(t, "city")->valuestring, city));
			for (cJSON *g =
			         cJSON_GetObjectItem(cJSON_GetObjectItem(man, "plan"), "grades")
			             ->child;
			     g; g = g->next)
				if (!strcmp(cJSON_GetObjectItem(g, "risk")->valuestring, risk)) {
					int bp = cJSON_GetObjectItem(g, "ratio_bp")->valueint;
					int mn = cJSON_GetObjectItem(g, "min")->valueint;
					k = (bp * N + 9999) / 10000;
					k = k < mn ? mn : k;
					k = k > N ? N : k;
				}
			assert_int_equal(cJSON_GetObjectItem(s, "population")->valueint, N);
			assert_int_equal(cJSON_GetObjectItem(s, "drawn")->valueint, k);
			int got = 0;
			for (cJSON *i = cJSON_GetObjectItem(doc, "inspections")->child; i;
			     i = i->next)
				got += !strcmp(cJSON_GetObjectItem(i, "risk")->valuestring, risk) &&
				       !strcmp(cJSON_GetObjectItem(i, "city")->valuestring, city);
			assert_int_equal(got, k);
			per_stratum_seen += got;
		}
		assert_int_equal(per_stratum_seen,
		                 cJSON_GetArraySize(cJSON_GetObjectItem(doc, "inspections")));
		for (cJSON *i = cJSON_GetObjectItem(doc, "inspections")->child; i; i = i->next) {
			const char *org = cJSON_GetObjectItem(i, "org")->valuestring;
			cJSON *date = cJSON_GetObjectItem(i, "date");
			cJSON *m = cJSON_GetObjectItem(i, "inspectors");
			const char *finding = cJSON_GetObjectItem(i, "finding")->valuestring;
			int nm = cJSON_GetArraySize(m);
			skips += cJSON_GetArraySize(cJSON_GetObjectItem(i, "skipped"));
			if (nm < per) {
				assert_string_equal(finding, "unstaffed");
				unstaffed++;
				/* the roster really ran out: everyone was chosen or skipped */
				assert_int_equal(
				    nm + cJSON_GetArraySize(cJSON_GetObjectItem(i, "skipped")),
				    cJSON_GetArraySize(cJSON_GetObjectItem(man, "inspectors")));
			} else {
				assert_int_equal(
				    nm, per); /* never fewer than 2, never more than asked */
			}
			if (cJSON_IsNull(date))
				assert_true(!strcmp(finding, "no_session") ||
				            !strcmp(finding, "unstaffed"));
			for (cJSON *x = m->child; x; x = x->next) {
				for (cJSON *y = x->next; y; y = y->next)
					assert_string_not_equal(x->valuestring, y->valuestring);
				cJSON *r = NULL;
				for (r = w.inspectors->child; r; r = r->next)
					if (!strcmp(cJSON_GetObjectItem(r, "id")->valuestring,
					            x->valuestring))
						break;
				assert_non_null(r);
				for (cJSON *t = cJSON_GetObjectItem(r, "ties")->child; t;
				     t = t->next)
					if (!strcmp(cJSON_GetObjectItem(t, "org")->valuestring,
					            org))
						fail_msg("%s: %s is tied to it", org,
						         x->valuestring);
				if (cJSON_IsString(date)) {
					int64_t day = day_of(date->valuestring);
					for (cJSON *a = cJSON_GetObjectItem(r, "away")->child; a;
					     a = a->next)
						if (day >= day_of(cJSON_GetArrayItem(a, 0)
						                      ->valuestring) &&
						    day <=
						        day_of(
						            cJSON_GetArrayItem(a, 1)->valuestring))
							fail_msg("%s: %s is away on %s", org,
							         x->valuestring, date->valuestring);
					int idx = atoi(x->valuestring + 1);
					if (booked[idx][day]++)
						fail_msg("%s booked twice on %s", x->valuestring,
						         date->valuestring);
				}
			}
			/* the slot lies in the window, by local date */
			if (cJSON_IsString(date))
				assert_true(strcmp(date->valuestring, "2026-12-07") >= 0 &&
				            strcmp(date->valuestring, "2026-12-11") <= 0);
		}
		cJSON_Delete(doc);
		drawn_free(&d);
		world_free(&w);
	}
	print_message(
	    "%d draws checked, %d refused at commit, %d unstaffed inspections, %d skips\n", runs,
	    refused, unstaffed, skips);
	assert_true(runs > 1000);
	assert_true(skips > 1000);
}

/* ---- fairness ------------------------------------------------------------------------- */

/* Regularised upper incomplete gamma Q(a, x) (Numerical Recipes' gammq: series for x < a + 1,
 * Lentz's continued fraction otherwise). */
static double gamma_q(double a, double x)
{
	if (x <= 0)
		return 1;
	double gln = lgamma(a);
	if (x < a + 1) {
		double ap = a, sum = 1 / a, del = sum;
		for (int n = 0; n < 1000; n++) {
			ap += 1;
			del *= x / ap;
			sum += del;
			if (fabs(del) < fabs(sum) * 1e-15)
				break;
		}
		return 1 - sum * exp(-x + a * log(x) - gln);
	}
	double b = x + 1 - a, c = 1 / 1e-300, d = 1 / b, h = d;
	for (int i = 1; i < 1000; i++) {
		double an = -i * (i - a);
		b += 2;
		d = an * d + b;
		if (fabs(d) < 1e-300)
			d = 1e-300;
		c = b + an / c;
		if (fabs(c) < 1e-300)
			c = 1e-300;
		d = 1 / d;
		double del = d * c;
		h *= del;
		if (fabs(del - 1) < 1e-15)
			break;
	}
	return exp(-x + a * log(x) - gln) * h;
}

/* p-value of counts o[0..N) of `draws` samplings of k out of N without replacement: each count
 * has variance draws·p(1-p) and the pairs covariance -draws·p(1-p)/(N-1), so
 * X = (N-1)/N · Σ(o-e)² / (draws·p(1-p)) is asymptotically chi-square with N-1 degrees. */
static double p_value(const int *o, int N, int k, int draws)
{
	double p = (double)k / N, e = draws * p, x = 0;
	for (int i = 0; i < N; i++)
		x += (o[i] - e) * (o[i] - e);
	x *= (double)(N - 1) / N / (draws * p * (1 - p));
	return gamma_q((N - 1) / 2.0, x / 2);
}

static void test_gamma_q_matches_known_values(void **state)
{
	(void)state;
	/* chi-square survival: df 1 at 3.841 → 0.05; df 10 at 23.209 → 0.01; df 9 at 9 → 0.4373 */
	assert_true(fabs(gamma_q(0.5, 3.841459 / 2) - 0.05) < 1e-5);
	assert_true(fabs(gamma_q(5, 23.209251 / 2) - 0.01) < 1e-6);
	assert_true(fabs(gamma_q(4.5, 4.5) - 0.437274) < 1e-5);
}

static void test_selection_is_uniform_within_strata(void **state)
{
	(void)state;
	/* a city draw: high 10 targets at 30 % (3 drawn), low 20 at 10 % (2 drawn); 12 inspectors
	 * without ties, 2 per inspection; no sessions, so no day and no booking: the first
	 * inspection's inspectors are a uniform pair of the roster. */
	struct world w = {0};
	w.plan =
	    cJSON_Parse("{\"scope_city\":\"济南市\",\"grades\":[{\"risk\":\"high\",\"ratio\":0.3},"
	                "{\"risk\":\"low\",\"ratio\":0.1}],\"window\":{\"from\":\"2026-12-07\","
	                "\"to\":\"2026-12-11\"}}");
	w.targets = cJSON_CreateArray();
	w.inspectors = cJSON_CreateArray();
	w.sessions = cJSON_CreateArray();
	w.items = cJSON_CreateArray();
	w.previous = cJSON_CreateArray();
	w.randomness = randomness(0);
	for (int i = 0; i < 30; i++) {
		char org[16];
		snprintf(org, sizeof org, "t%02d", i);
		cJSON_AddItemToArray(w.targets, target(org, "济南市", i < 10 ? "high" : "low", 1));
	}
	for (int i = 0; i < 12; i++) {
		char id[16];
		snprintf(id, sizeof id, "I%02d", i);
		cJSON_AddItemToArray(w.inspectors, inspector(id, "济南市"));
	}
	char com[65], err[512], secret[65];
	unsigned char salt[DRAW_SALT_LEN] = {0};
	char *plan = cJSON_PrintUnformatted(w.plan), *tg = cJSON_PrintUnformatted(w.targets);
	char *ro = cJSON_PrintUnformatted(w.inspectors), *rn = cJSON_PrintUnformatted(w.randomness);
	int hi[10] = {0}, lo[20] = {0}, insp[12] = {0};
	const int draws = 10000;
	for (int n = 0; n < draws; n++) {
		char *man = NULL, *sha = NULL, *priv = NULL, *doc = NULL;
		secret_of((unsigned)n + 1000000, secret);
		assert_int_equal(draw_commitment(secret, com, err, sizeof err), 0);
		assert_int_equal(draw_commit_build_salted("fair", plan, tg, ro, "[]", "[]", rn, com,
		                                          0, salt, &man, &sha, &priv, err,
		                                          sizeof err),
		                 0);
		assert_int_equal(draw_execute(man, priv, "[\"1 2 3\",\"4\"]", secret, "[]", 0, &doc,
		                              err, sizeof err),
		                 0);
		cJSON *d = cJSON_Parse(doc);
		int q = 0;
		for (cJSON *i = cJSON_GetObjectItem(d, "inspections")->child; i; i = i->next, q++) {
			int t = atoi(cJSON_GetObjectItem(i, "org")->valuestring + 1);
			if (t < 10)
				hi[t]++;
			else
				lo[t - 10]++;
			if (q == 0)
				for (cJSON *m = cJSON_GetObjectItem(i, "inspectors")->child; m;
				     m = m->next)
					insp[atoi(m->valuestring + 1)]++;
		}
		assert_int_equal(q, 5);
		cJSON_Delete(d);
		free(man);
		free(sha);
		free(priv);
		free(doc);
	}
	double p_hi = p_value(hi, 10, 3, draws), p_lo = p_value(lo, 20, 2, draws);
	double p_in = p_value(insp, 12, 2, draws);
	print_message("chi-square p: high stratum %.4f, low stratum %.4f, inspectors %.4f\n", p_hi,
	              p_lo, p_in);
	assert_true(p_hi > 0.01);
	assert_true(p_lo > 0.01);
	assert_true(p_in > 0.01);
	/* the test can fail: a draw that favours one target is caught */
	hi[0] += 300;
	hi[1] -= 300;
	assert_true(p_value(hi, 10, 3, draws) < 0.01);
	free(plan);
	free(tg);
	free(ro);
	free(rn);
	world_free(&w);
}

/* ---- reading the large arrays as text ------------------------------------------------ */

/* execute and verify read a target row that is already canonical text as it is, and parse only
 * the others with cJSON: the same document must follow either way (whitespace, key order, the
 * escapes cJSON prints), and a changed row must be found either way. */
static void test_rows_read_as_text_or_parsed_agree(void **state)
{
	(void)state;
	struct world w;
	struct drawn d;
	char err[512], secret[65];
	world_fixed(&w);
	/* a name with every kind of escape cJSON prints (", \, \n, \u0001) in a row */
	cJSON *t0 = cJSON_GetArrayItem(w.targets, 0);
	cJSON_ReplaceItemInObject(t0, "name", cJSON_CreateString("甲\"乙\\丙\n丁\x01戊/"));
	secret_of(5, secret);
	assert_int_equal(run_draw(&w, secret, "[\"3 7 1\",\"3,412.56\"]", &d, err, sizeof err), 0);
	assert_non_null(strstr(d.manifest, "\\u0001"));
	assert_int_equal(draw_verify(d.doc, d.priv, d.sha, err, sizeof err), 0);

	/* the manifest and the sessions with whitespace and keys out of order: every row parsed */
	cJSON *m = cJSON_Parse(d.manifest);
	cJSON *tg = cJSON_GetObjectItem(m, "targets");
	cJSON *rows = cJSON_CreateArray();
	for (cJSON *r = tg->child; r; r = r->next) { /* each row's keys in reverse order */
		cJSON *o = cJSON_CreateObject();
		cJSON *last = r->child;
		while (last && last->next)
			last = last->next;
		for (cJSON *c = last; c; c = c == r->child ? NULL : c->prev)
			cJSON_AddItemToObject(o, c->string, cJSON_Duplicate(c, 1));
		cJSON_AddItemToArray(rows, o);
	}
	cJSON_ReplaceItemInObject(m, "targets", rows);
	char *loose = cJSON_PrintUnformatted(m); /* no whitespace: only the key order is off */
	assert_non_null(strstr(loose, "\"targets\":[{\"sites\":"));
	char *doc2 = NULL;
	char *ss = cJSON_Print(w.sessions);
	assert_int_equal(draw_execute(loose, d.priv, "[\"3 7 1\",\"3,412.56\"]", secret, ss,
	                              T_EXECUTED, &doc2, err, sizeof err),
	                 0);
	assert_string_equal(doc2, d.doc);
	free(doc2);
	doc2 = NULL;

	/* the document printed with whitespace: verify takes the cJSON way for every row */
	cJSON *dj = cJSON_Parse(d.doc);
	char *pretty = cJSON_Print(dj);
	assert_int_equal(draw_verify(pretty, d.priv, d.sha, err, sizeof err), 0);
	assert_int_equal(draw_verify(pretty, NULL, d.sha, err, sizeof err), 0);

	/* one byte of the escaped name changed, in the canonical text and in the pretty one */
	char *bad = strdup(d.doc), *at = strstr(bad, "\\u0001");
	at[5] = '2';
	assert_int_equal(draw_verify(bad, d.priv, NULL, err, sizeof err), -EBADMSG);
	assert_non_null(strstr(err, "manifest.targets: sha256 differs"));
	char *badp = strdup(pretty);
	strstr(badp, "\\u0001")[5] = '2';
	assert_int_equal(draw_verify(badp, d.priv, NULL, err, sizeof err), -EBADMSG);
	assert_non_null(strstr(err, "manifest.targets: sha256 differs"));

	/* a non-canonical number or a duplicate key in a row: refused as before */
	char *dupk = strdup(d.doc), *o = strstr(dupk, "\"targets\":[{\"city\":");
	memcpy(o + 11, "{\"risk\":", 8); /* the first row names risk twice and no city */
	assert_int_equal(draw_verify(dupk, NULL, NULL, err, sizeof err), -EBADMSG);
	assert_string_equal(err, "manifest.targets: not a canonical array");
	char *man2 = strdup(d.manifest);
	o = strstr(man2, "\"targets\":[{\"city\":");
	memcpy(o + 11, "{\"risk\":", 8);
	assert_int_equal(draw_execute(man2, d.priv, "[\"3 7 1\",\"3,412.56\"]", secret, ss,
	                              T_EXECUTED, &doc2, err, sizeof err),
	                 -EINVAL);
	assert_string_equal(err, "risk: duplicate key");
	free(man2);

	free(dupk);
	free(badp);
	free(bad);
	free(pretty);
	cJSON_Delete(dj);
	free(ss);
	free(doc2);
	free(loose);
	cJSON_Delete(m);
	drawn_free(&d);
	world_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plan_is_normalised_and_checked),
	    cmocka_unit_test(test_values_are_canonical_rfc3797),
	    cmocka_unit_test(test_commit_refuses_a_target_without_enough_untied_inspectors),
	    cmocka_unit_test(test_same_inputs_in_any_order_give_the_same_document),
	    cmocka_unit_test(test_every_field_of_a_document_is_checked),
	    cmocka_unit_test(test_rules_hold_over_random_rosters),
	    cmocka_unit_test(test_gamma_q_matches_known_values),
	    cmocka_unit_test(test_selection_is_uniform_within_strata),
	    cmocka_unit_test(test_rows_read_as_text_or_parsed_agree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
