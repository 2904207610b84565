/* exams: exam sessions (考试场次) at the collector, their authority — POST/GET
 * /api/v1/sessions, GET/PATCH/DELETE /api/v1/sessions/{ref}, and the agents' GET
 * /api/v1/agent/sessions (ETag = the site's version). A session's org and city are the
 * site's as enrollment recorded them (auth.db), or the store's agents table for sites that
 * reported before; never the request's. Scoped like sites (authz_site_visible). Loop thread;
 * every request's context is freed by its last callback. See docs/API.md "Exam sessions". */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "conf.h"
#include "exams_csv.h"
#include "vtime.h"

/* The store's period reads rely on no session being longer (store.h). */
_Static_assert(EXAMS_MAX_DURATION_MS == STORE_EXAM_MAX_MS, "one bound for a session's length");

/* One POST carries one org's plan for a while, not a province's year (that is the CSV
 * import's job). */
#define POST_MAX_SESSIONS 1000
/* The agent endpoint's window: sessions that ended within this are still sent, so an
 * agent restarted just after a session still knows it (the contract: 90 days). */
#define AGENT_WINDOW_MS (90LL * 86400000)
#define RESPONSE_MAX (16u << 20)

/* --- shared -------------------------------------------------------------------------------- */

static void put_local(struct vw_buf *b, const char *key, int64_t ms)
{
	char t[EXAMS_LOCAL_LEN];
	exams_time_local(ms, t);
	vw_buf_puts(b, key);
	vw_buf_json_str(b, t);
}

static void put_rooms(struct vw_buf *b, const char *rooms)
{
	vw_buf_puts(b, "[");
	for (const char *p = rooms; *p;) {
		size_t n = strcspn(p, ",");
		char room[128];
		snprintf(room, sizeof(room), "%.*s", (int)n, p);
		if (p != rooms)
			vw_buf_puts(b, ",");
		vw_buf_json_str(b, room);
		p += n + (p[n] == ',');
	}
	vw_buf_puts(b, "]");
}

/* A session for people: "id" is the org's own code (as entered), "ref" the collector's
 * number that the /api/v1/sessions/{ref} URLs take. */
static void put_session(struct vw_buf *b, const struct store_exam_session *e, int for_agent)
{
	vw_buf_puts(b, "{\"id\":");
	vw_buf_json_str(b, e->code);
	if (!for_agent) {
		vw_buf_printf(b, ",\"ref\":%lld,\"org\":", (long long)e->id);
		vw_buf_json_str(b, e->org);
		vw_buf_puts(b, ",\"city\":");
		vw_buf_json_str(b, e->city);
		vw_buf_puts(b, ",\"site\":");
		vw_buf_json_str(b, e->site);
	}
	vw_buf_puts(b, ",\"occupation\":");
	vw_buf_json_str(b, e->occupation);
	vw_buf_puts(b, ",\"level\":");
	vw_buf_json_str(b, e->level);
	put_local(b, ",\"start\":", e->start_ms);
	put_local(b, ",\"end\":", e->end_ms);
	vw_buf_printf(b, ",\"start_ms\":%lld,\"end_ms\":%lld,\"rooms\":", (long long)e->start_ms,
	              (long long)e->end_ms);
	put_rooms(b, e->rooms);
	vw_buf_printf(b, ",\"candidates\":%lld", (long long)e->candidates);
	if (!for_agent) {
		if (e->cancelled_ms)
			put_local(b, ",\"cancelled\":", e->cancelled_ms);
		put_local(b, ",\"created\":", e->created_ms);
		put_local(b, ",\"updated\":", e->updated_ms);
	}
	vw_buf_puts(b, "}");
}

static void respond_buf(struct conn *c, int status, struct vw_buf *b, const char *extra)
{
	if (b->err)
		conn_respond_error(c, 507, "response too large", NULL);
	else
		conn_respond(c, status, extra, b->data, b->len);
	vw_buf_free(b);
}

/* {"error":what,"field":field[,"index":i]}: bad input names the field and, in an array,
 * the element. */
static void respond_field(struct conn *c, int status, const char *what, const char *field,
                          long index)
{
	struct vw_buf b;
	vw_buf_init(&b, 4096);
	vw_buf_puts(&b, "{\"error\":");
	vw_buf_json_str(&b, what);
	if (field) {
		vw_buf_puts(&b, ",\"field\":");
		vw_buf_json_str(&b, field);
	}
	if (index >= 0)
		vw_buf_printf(&b, ",\"index\":%ld", index);
	vw_buf_puts(&b, "}");
	respond_buf(c, status, &b, NULL);
}

static void respond_store(struct conn *c, int rc)
{
	if (rc == -EAGAIN)
		conn_respond_error(c, 503, "server busy", NULL);
	else if (rc == -E2BIG)
		conn_respond_error(c, 507, "response too large", NULL);
	else
		conn_respond_error(c, 503, "store unavailable", NULL);
}

/* Who changed it, for exam_session_changes and the log: the token's id and holder. */
static void actor_of(const struct authz_principal *who, char *out, size_t n)
{
	snprintf(out, n, "%s:%s (%s)", auth_role_name(who->person.role), who->person.id,
	         who->person.name);
}

/* The session's code in a log line: quotes and backslashes would end the value early. */
static void log_safe(const char *s, char *out, size_t n)
{
	size_t i = 0;
	for (; *s && i + 1 < n; s++)
		out[i++] = *s == '"' || *s == '\\' ? '_' : *s;
	out[i] = '\0';
}

static void log_change(const char *action, const struct store_exam_session *e, const char *actor)
{
	char code[130], act[300];
	log_safe(e->code, code, sizeof(code));
	log_safe(actor, act, sizeof(act));
	log_info("event=exam_session_change action=%s ref=%lld org=%s site=%s code=\"%s\" "
	         "actor=\"%s\"",
	         action, (long long)e->id, e->org, e->site, code, act);
}

/* What the store's refusal means for the client. */
static void respond_write_refused(struct conn *c, const struct store_write *w, long index)
{
	switch (w->status) {
	case -EALREADY:
		respond_field(c, 409, w->err, "start", index);
		break;
	case -ECANCELED:
		respond_field(c, 409, w->err, NULL, index);
		break;
	case -EEXIST:
		respond_field(c, 409, w->err, "id", index);
		break;
	case -ETIMEDOUT:
		respond_field(c, 422, w->err, "start", index);
		break;
	case -ENOENT:
		conn_respond_error(c, 404, "no such session", NULL);
		break;
	default:
		respond_store(c, w->status);
		break;
	}
}

/* A JSON member as the text exams_in_set takes: strings as they are, rooms as an array of
 * names (joined), candidates as a whole number. NULL when fine, else what is wrong. */
static const char *set_json(struct exams_in *e, enum exams_field f, const cJSON *v)
{
	char text[1100];
	if (f == EXAMS_F_ROOMS && cJSON_IsArray(v)) {
		size_t len = 0;
		text[0] = '\0';
		const cJSON *r;
		int k = 0;
		cJSON_ArrayForEach(r, v)
		{
			if (!cJSON_IsString(r))
				return "expected an array of room names";
			size_t n = strlen(r->valuestring);
			/* The full-width comma splits a list as the CSV import reads one, so a
			 * name holding it would come back as two rooms. */
			if (strchr(r->valuestring, ',') || strstr(r->valuestring, "\xef\xbc\x8c"))
				return "a room name holds a comma (, or \xef\xbc\x8c)";
			if (len + n + 2 > sizeof(text))
				return "the room list is longer than 1023 bytes";
			if (k++)
				text[len++] = ',';
			memcpy(text + len, r->valuestring, n + 1);
			len += n;
		}
		if (!k)
			return "expected at least one room (or \"*\")";
	} else if (f == EXAMS_F_CANDIDATES && cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		/* Range first: a cast of a double long long cannot hold (1e300) is undefined. */
		if (!(d >= 0 && d <= 100000) || d != (double)(long long)d)
			return "expected a whole number 0-100000";
		snprintf(text, sizeof(text), "%lld", (long long)d);
	} else if (cJSON_IsString(v)) {
		if (strlen(v->valuestring) >= sizeof(text))
			return "too long";
		snprintf(text, sizeof(text), "%s", v->valuestring);
	} else {
		return "expected a string";
	}
	return exams_in_set(e, f, text);
}

static int field_of(const char *name)
{
	for (int f = 0; f < EXAMS_F_COUNT; f++)
		if (strcmp(name, exams_field_names[f]) == 0)
			return f;
	return -1;
}

/* --- POST /api/v1/sessions ------------------------------------------------------------------ */

struct post_ctx {
	struct api *a;
	struct conn *c;
	struct authz_principal who;
	int array;
	size_t n;
	struct exams_in *in;
	char (*org)[65];
	char (*city)[129];
	struct store_exam_session *ex;
	struct store_write w;
	char actor[300];
};

static void post_free(struct post_ctx *x)
{
	free(x->in);
	free(x->org);
	free(x->city);
	free(x->ex);
	free(x);
}

static long idx(const struct post_ctx *x, size_t i)
{
	return x->array ? (long)i : -1;
}

static void on_created(struct store_write *w)
{
	struct post_ctx *x = w->data;
	if (w->status) {
		respond_write_refused(x->c, w, idx(x, w->bad));
		post_free(x);
		return;
	}
	struct vw_buf b;
	vw_buf_init(&b, RESPONSE_MAX);
	vw_buf_puts(&b, "{\"sessions\":[");
	for (size_t i = 0; i < x->n; i++) {
		log_change("create", &x->ex[i], x->actor);
		if (i)
			vw_buf_puts(&b, ",");
		put_session(&b, &x->ex[i], 0);
	}
	vw_buf_puts(&b, "]}");
	respond_buf(x->c, 201, &b, NULL);
	post_free(x);
}

/* Every site placed: check each is the principal's to plan, then write them all. */
static void post_write(struct post_ctx *x)
{
	for (size_t i = 0; i < x->n; i++) {
		const struct exams_in *e = &x->in[i];
		/* A site outside the principal's jurisdiction answers like an unknown one: a 403
		 * would tell an org which site ids exist elsewhere. */
		if (!x->org[i][0] || !authz_site_visible(&x->who, e->site, x->org[i], x->city[i])) {
			respond_field(x->c, 422, "unknown site (not enrolled, or not yours)",
			              "site", idx(x, i));
			post_free(x);
			return;
		}
		if (e->org[0] && strcmp(e->org, x->org[i]) != 0) {
			respond_field(x->c, 422, "the site belongs to another organisation", "org",
			              idx(x, i));
			post_free(x);
			return;
		}
		x->ex[i] = (struct store_exam_session){
		    .org = x->org[i],
		    .city = x->city[i],
		    .site = e->site,
		    .code = e->code,
		    .occupation = e->occupation,
		    .level = e->level,
		    .rooms = e->rooms,
		    .start_ms = e->start_ms,
		    .end_ms = e->end_ms,
		    .candidates = e->candidates,
		};
	}
	actor_of(&x->who, x->actor, sizeof(x->actor));
	x->w = (struct store_write){.op = STORE_EXAM_CREATE,
	                            .actor = x->actor,
	                            .now_ms = vw_now_ms(),
	                            .exams = x->ex,
	                            .nexams = x->n,
	                            .done = on_created,
	                            .data = x};
	int rc = store_write_submit(x->a->store, &x->w);
	if (rc) {
		respond_store(x->c, rc);
		post_free(x);
	}
}

/* Sites not in auth.db but known to the store (they reported before enrollment kept
 * records): placed from the agents table. */
static void on_sites_for_post(void *ud, const struct store_reply *r)
{
	struct post_ctx *x = ud;
	if (r->status) {
		respond_store(x->c, r->status);
		post_free(x);
		return;
	}
	for (size_t i = 0; i < x->n; i++)
		for (size_t k = 0; !x->org[i][0] && k < r->nsites; k++)
			if (strcmp(r->sites[k].site, x->in[i].site) == 0) {
				snprintf(x->org[i], sizeof(x->org[i]), "%s", r->sites[k].org);
				snprintf(x->city[i], sizeof(x->city[i]), "%s", r->sites[k].city);
			}
	post_write(x);
}

/* One element of the body into x->in[i]; 0, or -1 after answering. */
static int parse_one(struct post_ctx *x, size_t i, const cJSON *o)
{
	if (!cJSON_IsObject(o)) {
		respond_field(x->c, 400, "expected an object", NULL, idx(x, i));
		return -1;
	}
	struct exams_in *e = &x->in[i];
	const cJSON *m;
	cJSON_ArrayForEach(m, o)
	{
		int f = field_of(m->string);
		if (f < 0) {
			respond_field(x->c, 422, "unknown field", m->string, idx(x, i));
			return -1;
		}
		const char *why = set_json(e, (enum exams_field)f, m);
		if (why) {
			respond_field(x->c, 422, why, m->string, idx(x, i));
			return -1;
		}
	}
	enum exams_field bad;
	const char *why = exams_in_check(e, &bad);
	if (why) {
		respond_field(x->c, 422, why, exams_field_names[bad], idx(x, i));
		return -1;
	}
	/* An org token plans its own org's sessions only; naming another is refused outright
	 * (the org is the principal's own, nothing to hide). */
	if (x->who.person.role == AUTH_ORG && e->org[0] && strcmp(e->org, x->who.person.org)) {
		respond_field(x->c, 403, "an org token enters its own organisation's sessions",
		              "org", idx(x, i));
		return -1;
	}
	for (size_t k = 0; k < i; k++)
		if (strcmp(x->in[k].code, e->code) == 0 && strcmp(x->in[k].site, e->site) == 0) {
			respond_field(x->c, 422, "the same id twice in one request", "id",
			              idx(x, i));
			return -1;
		}
	return 0;
}

void api_exams_post(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who)
{
	(void)m;
	cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
	if (!root || (!cJSON_IsObject(root) && !cJSON_IsArray(root))) {
		cJSON_Delete(root);
		respond_field(c, 400, "expected a JSON object or an array of objects", NULL, -1);
		return;
	}
	int array = cJSON_IsArray(root);
	size_t n = array ? (size_t)cJSON_GetArraySize(root) : 1;
	if (n == 0 || n > POST_MAX_SESSIONS) {
		cJSON_Delete(root);
		respond_field(c, 422, "expected 1-1000 sessions", NULL, -1);
		return;
	}
	struct post_ctx *x = calloc(1, sizeof(*x));
	if (x) {
		x->in = calloc(n, sizeof(*x->in));
		x->org = calloc(n, sizeof(*x->org));
		x->city = calloc(n, sizeof(*x->city));
		x->ex = calloc(n, sizeof(*x->ex));
	}
	if (!x || !x->in || !x->org || !x->city || !x->ex) {
		if (x)
			post_free(x);
		cJSON_Delete(root);
		conn_respond_error(c, 500, "out of memory", NULL);
		return;
	}
	x->a = a;
	x->c = c;
	x->who = *who;
	x->array = array;
	x->n = n;
	size_t i = 0;
	const cJSON *o;
	int failed = 0;
	if (array) {
		cJSON_ArrayForEach(o, root)
		{
			if ((failed = parse_one(x, i++, o)) != 0)
				break;
		}
	} else {
		failed = parse_one(x, 0, root);
	}
	cJSON_Delete(root);
	if (failed) {
		post_free(x);
		return;
	}
	int unplaced = 0;
	for (i = 0; i < n; i++) {
		int rc = a->auth ? auth_site_place(a->auth, x->in[i].site, x->org[i], x->city[i])
		                 : -ENOENT;
		if (rc == -EIO) {
			conn_respond_error(c, 503, "access records unavailable", NULL);
			post_free(x);
			return;
		}
		unplaced |= rc != 0;
	}
	if (!unplaced) {
		post_write(x);
		return;
	}
	int rc = store_list_sites(a->store, on_sites_for_post, x);
	if (rc) {
		respond_store(c, rc);
		post_free(x);
	}
}

/* --- GET /api/v1/sessions ------------------------------------------------------------------- */

/* key's value in the query string, percent-decoded ('+' stays '+', so an offset such as
 * +08:00 may be written as it is). 1 found, 0 absent, -1 too long or malformed. */
int api_query_get(const char *q, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	for (const char *p = q; *p;) {
		size_t n = strcspn(p, "&;");
		if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t o = 0;
			for (size_t i = kl + 1; i < n; i++) {
				char ch = p[i];
				if (ch == '%') {
					if (i + 2 >= n || !isxdigit((unsigned char)p[i + 1]) ||
					    !isxdigit((unsigned char)p[i + 2]))
						return -1;
					char hex[3] = {p[i + 1], p[i + 2], 0};
					ch = (char)strtol(hex, NULL, 16);
					if (!ch)
						return -1;
					i += 2;
				}
				if (o + 1 >= outlen)
					return -1;
				out[o++] = ch;
			}
			out[o] = '\0';
			return 1;
		}
		p += n + (p[n] != '\0');
	}
	return 0;
}

/* A query time: RFC 3339, local "YYYY-MM-DD HH:MM", or a local date (its midnight). */
int api_query_time(const char *v, int64_t *ms)
{
	if (exams_time_parse(v, ms) == 0)
		return 0;
	char t[32];
	if (strlen(v) != 10)
		return -EINVAL;
	snprintf(t, sizeof(t), "%s 00:00", v);
	return exams_time_parse(t, ms);
}

struct list_ctx {
	struct conn *c;
	struct authz_principal who;
};

static void on_list(void *ud, const struct store_reply *r)
{
	struct list_ctx *x = ud;
	if (r->status) {
		respond_store(x->c, r->status);
		free(x);
		return;
	}
	struct vw_buf b;
	vw_buf_init(&b, RESPONSE_MAX);
	vw_buf_puts(&b, "{\"sessions\":[");
	int k = 0;
	for (size_t i = 0; i < r->nexam_sessions && !b.err; i++) {
		const struct store_exam_session *e = &r->exam_sessions[i];
		if (!authz_site_visible(&x->who, e->site, e->org, e->city))
			continue;
		if (k++)
			vw_buf_puts(&b, ",");
		put_session(&b, e, 0);
	}
	vw_buf_puts(&b, "]}");
	respond_buf(x->c, 200, &b, NULL);
	free(x);
}

void api_exams_list(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who)
{
	(void)m;
	char site[64] = "", org[65] = "", from[64] = "", to[64] = "", cancelled[8] = "";
	struct {
		const char *key;
		char *out;
		size_t n;
	} params[] = {{"site", site, sizeof(site)},
	              {"org", org, sizeof(org)},
	              {"from", from, sizeof(from)},
	              {"to", to, sizeof(to)},
	              {"cancelled", cancelled, sizeof(cancelled)}};
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		if (api_query_get(req->query, params[i].key, params[i].out, params[i].n) < 0) {
			respond_field(c, 400, "malformed or too long", params[i].key, -1);
			return;
		}
	if ((site[0] && !vw_conf_id_valid(site)) || (org[0] && !vw_conf_id_valid(org))) {
		respond_field(c, 400, "expected an id",
		              site[0] && !vw_conf_id_valid(site) ? "site" : "org", -1);
		return;
	}
	struct store_exam_query q = {.site = site, .org = org};
	if ((from[0] && api_query_time(from, &q.from_ms)) ||
	    (to[0] && api_query_time(to, &q.to_ms))) {
		respond_field(c, 400, "expected a time (2026-12-01, 2026-12-01 09:00 or RFC 3339)",
		              from[0] && api_query_time(from, &q.from_ms) ? "from" : "to", -1);
		return;
	}
	if (from[0] && !to[0])
		q.to_ms = INT64_MAX;
	q.with_cancelled = strcmp(cancelled, "1") == 0;
	/* The principal's jurisdiction narrows the query itself (and on_list checks each row). */
	if (who->person.role == AUTH_ORG) {
		if (org[0] && strcmp(org, who->person.org) != 0) {
			respond_field(c, 403, "an org token sees its own organisation's sessions",
			              "org", -1);
			return;
		}
		q.org = who->person.org;
	} else if (who->person.role == AUTH_CITY) {
		q.city = who->person.city;
	}
	struct list_ctx *x = malloc(sizeof(*x));
	int rc = x ? store_exam_list(a->store, &q, on_list, x) : -ENOMEM;
	if (x) {
		x->c = c;
		x->who = *who;
	}
	if (rc) {
		free(x);
		respond_store(c, rc);
	}
}

/* --- GET, PATCH, DELETE /api/v1/sessions/{ref} ------------------------------------------------ */

struct one_ctx {
	struct api *a;
	struct conn *c;
	struct authz_principal who;
	enum { ONE_GET, ONE_PATCH, ONE_CANCEL } op;
	cJSON *patch;
	struct exams_in in;
	char org[65], city[129], site[64];
	struct store_exam_session ex;
	struct store_write w;
	char actor[300];
};

static void one_free(struct one_ctx *x)
{
	cJSON_Delete(x->patch);
	free(x);
}

static void on_changed(struct store_write *w)
{
	struct one_ctx *x = w->data;
	if (w->status) {
		respond_write_refused(x->c, w, -1);
		one_free(x);
		return;
	}
	x->ex.updated_ms = w->now_ms;
	if (x->op == ONE_CANCEL)
		x->ex.cancelled_ms = w->now_ms;
	log_change(x->op == ONE_CANCEL ? "cancel" : "update", &x->ex, x->actor);
	struct vw_buf b;
	vw_buf_init(&b, 65536);
	put_session(&b, &x->ex, 0);
	respond_buf(x->c, 200, &b, NULL);
	one_free(x);
}

/* PATCH's members over the stored session; 0 or -1 after answering. */
static int apply_patch(struct one_ctx *x)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, x->patch)
	{
		int f = field_of(m->string);
		if (f < 0) {
			respond_field(x->c, 422, "unknown field", m->string, -1);
			return -1;
		}
		if (f == EXAMS_F_ORG || f == EXAMS_F_SITE || f == EXAMS_F_ID) {
			respond_field(x->c, 422,
			              "cannot be changed: cancel the session and create a new one",
			              m->string, -1);
			return -1;
		}
		const char *why = set_json(&x->in, (enum exams_field)f, m);
		if (why) {
			respond_field(x->c, 422, why, m->string, -1);
			return -1;
		}
	}
	enum exams_field bad;
	const char *why = exams_in_check(&x->in, &bad);
	if (why) {
		respond_field(x->c, 422, why, exams_field_names[bad], -1);
		return -1;
	}
	x->ex.occupation = x->in.occupation;
	x->ex.level = x->in.level;
	x->ex.rooms = x->in.rooms;
	x->ex.start_ms = x->in.start_ms;
	x->ex.end_ms = x->in.end_ms;
	x->ex.candidates = x->in.candidates;
	return 0;
}

static void on_one(void *ud, const struct store_reply *r)
{
	struct one_ctx *x = ud;
	const struct store_exam_session *e =
	    !r->status && r->nexam_sessions == 1 ? &r->exam_sessions[0] : NULL;
	if (r->status == -ENOENT || (e && !authz_site_visible(&x->who, e->site, e->org, e->city))) {
		conn_respond_error(x->c, 404, "no such session", NULL);
		one_free(x);
		return;
	}
	if (!e) {
		respond_store(x->c, r->status ? r->status : -EIO);
		one_free(x);
		return;
	}
	if (x->op == ONE_GET) {
		struct vw_buf b;
		vw_buf_init(&b, 65536);
		put_session(&b, e, 0);
		respond_buf(x->c, 200, &b, NULL);
		one_free(x);
		return;
	}
	/* The reply's strings go when this returns: the session is copied into x. */
	struct exams_in *in = &x->in;
	snprintf(in->code, sizeof(in->code), "%s", e->code);
	snprintf(in->occupation, sizeof(in->occupation), "%s", e->occupation);
	snprintf(in->level, sizeof(in->level), "%s", e->level);
	snprintf(in->rooms, sizeof(in->rooms), "%s", e->rooms);
	snprintf(x->org, sizeof(x->org), "%s", e->org);
	snprintf(x->city, sizeof(x->city), "%s", e->city);
	snprintf(x->site, sizeof(x->site), "%s", e->site);
	in->start_ms = e->start_ms;
	in->end_ms = e->end_ms;
	in->candidates = e->candidates;
	in->seen = ~0u;
	x->ex = *e;
	x->ex.org = x->org;
	x->ex.city = x->city;
	x->ex.site = x->site;
	x->ex.code = in->code;
	x->ex.occupation = in->occupation;
	x->ex.level = in->level;
	x->ex.rooms = in->rooms;
	if (x->op == ONE_PATCH && apply_patch(x)) {
		one_free(x);
		return;
	}
	actor_of(&x->who, x->actor, sizeof(x->actor));
	/* The store checks again, in the write's transaction, that the session has not
	 * started (or been cancelled) since this read. */
	x->w = (struct store_write){
	    .op = x->op == ONE_PATCH ? STORE_EXAM_UPDATE : STORE_EXAM_CANCEL,
	    .actor = x->actor,
	    .now_ms = vw_now_ms(),
	    .scope_org = x->who.person.role == AUTH_ORG ? x->who.person.org : "",
	    .scope_city = x->who.person.role == AUTH_CITY ? x->who.person.city : "",
	    .exams = &x->ex,
	    .nexams = 1,
	    .done = on_changed,
	    .data = x};
	int rc = store_write_submit(x->a->store, &x->w);
	if (rc) {
		respond_store(x->c, rc);
		one_free(x);
	}
}

static void one_start(struct api *a, struct conn *c, const struct http_request *req,
                      const struct router_match *m, const struct authz_principal *who, int op)
{
	const char *ref = router_param(m, "ref");
	char *end = NULL;
	long long id = ref ? strtoll(ref, &end, 10) : 0;
	if (!ref || !*ref || *end || id <= 0) {
		conn_respond_error(c, 404, "no such session", NULL);
		return;
	}
	struct one_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		conn_respond_error(c, 500, "out of memory", NULL);
		return;
	}
	x->a = a;
	x->c = c;
	x->who = *who;
	x->op = op;
	if (op == ONE_PATCH) {
		x->patch = cJSON_ParseWithLength(req->body, req->body_len);
		if (!cJSON_IsObject(x->patch)) {
			respond_field(c, 400, "expected a JSON object of the fields to change",
			              NULL, -1);
			one_free(x);
			return;
		}
	}
	int rc = store_exam_get(a->store, id, on_one, x);
	if (rc) {
		respond_store(c, rc);
		one_free(x);
	}
}

void api_exam_get(struct api *a, struct conn *c, const struct http_request *req,
                  const struct router_match *m, const struct authz_principal *who)
{
	one_start(a, c, req, m, who, ONE_GET);
}

void api_exam_patch(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who)
{
	one_start(a, c, req, m, who, ONE_PATCH);
}

void api_exam_delete(struct api *a, struct conn *c, const struct http_request *req,
                     const struct router_match *m, const struct authz_principal *who)
{
	one_start(a, c, req, m, who, ONE_CANCEL);
}

/* --- GET /api/v1/agent/sessions -------------------------------------------------------------- */

struct agent_ctx {
	struct api *a;
	struct conn *c;
	char site[64];
	char inm[64]; /* the If-None-Match the agent sent */
	int64_t version;
};

static void etag_of(int64_t v, char *out, size_t n)
{
	snprintf(out, n, "\"%lld\"", (long long)v);
}

static void on_agent_list(void *ud, const struct store_reply *r)
{
	struct agent_ctx *x = ud;
	if (r->status) {
		respond_store(x->c, r->status);
		free(x);
		return;
	}
	struct vw_buf b;
	vw_buf_init(&b, RESPONSE_MAX);
	vw_buf_puts(&b, "{\"site\":");
	vw_buf_json_str(&b, x->site);
	vw_buf_printf(&b, ",\"version\":%lld,\"sessions\":[", (long long)x->version);
	for (size_t i = 0; i < r->nexam_sessions && !b.err; i++) {
		if (i)
			vw_buf_puts(&b, ",");
		put_session(&b, &r->exam_sessions[i], 1);
	}
	vw_buf_puts(&b, "]}");
	char tag[32], extra[64];
	etag_of(x->version, tag, sizeof(tag));
	snprintf(extra, sizeof(extra), "ETag: %s\r\n", tag);
	respond_buf(x->c, 200, &b, extra);
	free(x);
}

static void on_agent_version(void *ud, const struct store_reply *r)
{
	struct agent_ctx *x = ud;
	if (r->status) {
		respond_store(x->c, r->status);
		free(x);
		return;
	}
	x->version = r->value;
	char tag[32];
	etag_of(x->version, tag, sizeof(tag));
	if (x->inm[0] && strcmp(x->inm, tag) == 0) {
		char extra[64];
		snprintf(extra, sizeof(extra), "ETag: %s\r\n", tag);
		conn_respond(x->c, 304, extra, NULL, 0);
		free(x);
		return;
	}
	/* The version is read before the list: a change between the two makes the list newer
	 * than its tag, and the agent merely fetches once more, never misses one. */
	struct store_exam_query q = {
	    .site = x->site, .from_ms = vw_now_ms() - AGENT_WINDOW_MS, .to_ms = INT64_MAX};
	int rc = store_exam_list(x->a->store, &q, on_agent_list, x);
	if (rc) {
		respond_store(x->c, rc);
		free(x);
	}
}

void api_agent_sessions(struct api *a, struct conn *c, const struct http_request *req,
                        const struct router_match *m, const struct authz_principal *who)
{
	(void)m;
	struct agent_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		conn_respond_error(c, 500, "out of memory", NULL);
		return;
	}
	x->a = a;
	x->c = c;
	/* The certificate's site, verified by authz: an agent sees its own site only. */
	snprintf(x->site, sizeof(x->site), "%s", who->agent.site);
	snprintf(x->inm, sizeof(x->inm), "%s", req->if_none_match);
	int rc = store_exam_version(a->store, x->site, on_agent_version, x);
	if (rc) {
		respond_store(c, rc);
		free(x);
	}
}
