/* problems: GET /api/v1/problems, POST /api/v1/problems/{id}/ack and GET /api/v1/labels
 * (issue 16, part A; docs/API.md "Problems", "Labels"). Problems are opened and closed by
 * the store's writer in the batches' own transactions (store/sqlite.c); this file reads
 * them, in the principal's scope, and acknowledges one: a store write (its problem_acked
 * event goes to the streams) and a row of the audit chain. Loop thread only. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "conf.h"
#include "log.h"
#include "result.h"
#include "store.h"
#include "utf8.h"
#include "vtime.h"

#define PROBLEMS_LIMIT_DEFAULT 100
#define PROBLEMS_LIMIT_MAX 1000
/* An acknowledgement's message: a line or two for the duty log, not a report. 1000 bytes
 * hold ~330 Chinese characters. */
#define ACK_MESSAGE_MAX 1000
#define RESPONSE_MAX (16u << 20)

static void respond_field(struct conn *c, int status, const char *what, const char *field)
{
	struct vw_buf b;
	vw_buf_init(&b, 4096);
	vw_buf_puts(&b, "{\"error\":");
	vw_buf_json_str(&b, what);
	if (field) {
		vw_buf_puts(&b, ",\"field\":");
		vw_buf_json_str(&b, field);
	}
	vw_buf_puts(&b, "}");
	if (b.err)
		conn_respond_error(c, 500, "internal error", NULL);
	else
		conn_respond(c, status, NULL, b.data, b.len);
	vw_buf_free(&b);
}

static void respond_store(struct conn *c, int rc)
{
	if (rc == -EAGAIN)
		conn_respond(c, 503, "Retry-After: 1\r\n", "{\"error\":\"server busy\"}", 23);
	else if (rc == -E2BIG)
		conn_respond_error(c, 507, "response too large", NULL);
	else
		conn_respond_error(c, 503, "store unavailable", NULL);
}

/* --- GET /api/v1/problems ------------------------------------------------------------------ */

struct list_ctx {
	struct conn *c;
	struct authz_principal who;
	size_t limit;
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
	vw_buf_puts(&b, "{\"problems\":[");
	size_t k = 0;
	for (size_t i = 0; i < r->nevents && !b.err; i++) {
		const struct store_event *e = &r->events[i];
		/* The query was narrowed to the scope already; this is the one check that
		 * decides (authz.h). */
		if (!authz_site_visible(&x->who, e->site, e->org, e->city))
			continue;
		if (k++)
			vw_buf_puts(&b, ",");
		vw_buf_puts(&b, e->data);
	}
	if (k < r->nevents)
		/* The store's narrowing and the scope disagree: nothing of the rows not shown may
		 * reach the answer, not even as a cursor, so the paging ends here. */
		log_error("event=problems_scope_mismatch token=%s rows=%zu shown=%zu",
		          x->who.person.id, r->nevents, k);
	vw_buf_puts(&b, "],\"next_cursor\":");
	/* A full page, every row of it shown, has a next one (perhaps empty): its cursor is
	 * the last row's place in (start desc, id desc). */
	if (r->nevents == x->limit && r->nevents && k == r->nevents) {
		const struct store_event *last = &r->events[r->nevents - 1];
		vw_buf_printf(&b, "\"%" PRId64 "_%" PRId64 "\"", last->ts_ms, last->id);
	} else {
		vw_buf_puts(&b, "null");
	}
	vw_buf_puts(&b, "}");
	if (b.err)
		conn_respond_error(x->c, 507, "response too large", NULL);
	else
		conn_respond(x->c, 200, "Cache-Control: private, no-store\r\n", b.data, b.len);
	vw_buf_free(&b);
	free(x);
}

static int parse_cursor(const char *v, int64_t *start, int64_t *id)
{
	char *end;
	errno = 0;
	long long s = strtoll(v, &end, 10);
	if (errno || end == v || *end != '_')
		return -EINVAL;
	const char *p = end + 1;
	long long i = strtoll(p, &end, 10);
	if (errno || end == p || *end || i <= 0)
		return -EINVAL;
	*start = s;
	*id = i;
	return 0;
}

void api_problems_list(struct api *a, struct conn *c, const struct http_request *req,
                       const struct router_match *m, const struct authz_principal *who)
{
	(void)m;
	char state[16] = "", city[129] = "", site[64] = "", from[64] = "", to[64] = "",
	     limit[16] = "", cursor[48] = "";
	struct {
		const char *key;
		char *out;
		size_t n;
	} params[] = {{"state", state, sizeof(state)},
	              {"city", city, sizeof(city)},
	              {"site", site, sizeof(site)},
	              {"from", from, sizeof(from)},
	              {"to", to, sizeof(to)},
	              {"limit", limit, sizeof(limit)},
	              {"cursor", cursor, sizeof(cursor)}};
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		if (api_query_get(req->query, params[i].key, params[i].out, params[i].n) < 0) {
			respond_field(c, 400, "malformed or too long", params[i].key);
			return;
		}
	struct store_problem_query q = {.limit = PROBLEMS_LIMIT_DEFAULT};
	if (!state[0] || strcmp(state, "all") == 0)
		q.state = 0;
	else if (strcmp(state, "open") == 0)
		q.state = 1;
	else if (strcmp(state, "closed") == 0)
		q.state = 2;
	else {
		respond_field(c, 400, "expected open, closed or all", "state");
		return;
	}
	if (site[0] && !vw_conf_id_valid(site)) {
		respond_field(c, 400, "expected a site id", "site");
		return;
	}
	if (city[0] && vw_utf8_check(city, strlen(city), NULL)) {
		respond_field(c, 400, "expected a city name (UTF-8)", "city");
		return;
	}
	if ((from[0] && api_query_time(from, &q.from_ms)) ||
	    (to[0] && api_query_time(to, &q.to_ms))) {
		respond_field(c, 400, "expected a time (2026-12-01, 2026-12-01 09:00 or RFC 3339)",
		              from[0] && api_query_time(from, &q.from_ms) ? "from" : "to");
		return;
	}
	if (from[0] && to[0] && q.to_ms <= q.from_ms) {
		respond_field(c, 400, "must be after from", "to");
		return;
	}
	if (limit[0]) {
		char *end;
		long v = strtol(limit, &end, 10);
		if (*end || end == limit || v < 1 || v > PROBLEMS_LIMIT_MAX) {
			respond_field(c, 400, "expected 1 to 1000", "limit");
			return;
		}
		q.limit = (size_t)v;
	}
	if (cursor[0] && parse_cursor(cursor, &q.before_start_ms, &q.before_id)) {
		respond_field(c, 400, "not a cursor this server gave", "cursor");
		return;
	}
	q.site = site;
	q.city = city;
	/* The jurisdiction narrows the query itself: a city asking for another city's problems
	 * gets none, as if there were none (属地管理). */
	/* A credential naming no city (no org) sees none: "\x01" is no city's or org's
	 * name, where "" would mean any. */
	if (who->person.role == AUTH_CITY) {
		if (!who->person.city[0] || (city[0] && strcmp(city, who->person.city) != 0))
			q.city = "\x01"; /* matches no city: an empty answer, not a 403 */
		else
			q.city = who->person.city;
	} else if (who->person.role == AUTH_ORG) {
		q.org = who->person.org[0] ? who->person.org : "\x01";
	} else if (who->person.role != AUTH_PROVINCE) {
		q.city = "\x01"; /* the route admits site readers only; nobody else sees any */
	}
	struct list_ctx *x = malloc(sizeof(*x));
	if (!x) {
		conn_respond_error(c, 503, "server busy", NULL);
		return;
	}
	*x = (struct list_ctx){c, *who, q.limit};
	int rc = store_problems_list(a->store, &q, on_list, x);
	if (rc) {
		free(x);
		respond_store(c, rc);
	}
}

/* --- POST /api/v1/problems/{id}/ack -------------------------------------------------------- */

struct ack_ctx {
	struct api *a;
	struct conn *c;
	struct store_write w;
	char by[129], message[ACK_MESSAGE_MAX + 1], actor[300], city[129];
};

static void on_acked(struct store_write *w)
{
	struct ack_ctx *x = w->data;
	if (w->status == -ENOENT) {
		conn_respond_error(x->c, 404, "no such problem", NULL);
	} else if (w->status == -EALREADY) {
		respond_field(x->c, 409, w->err[0] ? w->err : "already acknowledged", "id");
	} else if (w->status) {
		respond_store(x->c, w->status);
	} else if (!w->events.n) {
		conn_respond_error(x->c, 500, "internal error", NULL);
	} else {
		/* Audited after the commit: what the chain records happened. A failure to append
		 * is loud (the chain's own checks say why) but does not undo the ack. */
		char subject[64], detail[ACK_MESSAGE_MAX + 128];
		snprintf(subject, sizeof(subject), "problem:%lld", (long long)w->problem_id);
		snprintf(detail, sizeof(detail), "site=%s message=%s", w->site, x->message);
		int arc = x->a->auth
		              ? auth_audit(x->a->auth, x->actor, "problem_ack", subject, detail)
		              : -ENOENT;
		if (arc)
			log_error("event=audit_failed action=problem_ack problem=%lld error=%d",
			          (long long)w->problem_id, arc);
		log_info("event=problem_acked problem=%lld site=%s actor=\"%s\"",
		         (long long)w->problem_id, w->site, x->actor);
		const char *data = w->events.v[w->events.n - 1].data;
		conn_respond(x->c, 200, NULL, data, strlen(data));
	}
	store_events_clear(&w->events);
	free(x);
}

/* The message is a person's text for other people: UTF-8, no control characters (no line
 * breaks either: one line in logs and the duty list), at most ACK_MESSAGE_MAX bytes. */
static const char *message_bad(const char *s, size_t len)
{
	if (len > ACK_MESSAGE_MAX)
		return "at most 1000 bytes";
	if (vw_utf8_check(s, len, NULL))
		return "not valid UTF-8";
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f)
			return "control characters are not allowed";
		/* C1 controls (U+0080..U+009F) are C2 80..C2 9F in UTF-8; U+2028/9 break lines. */
		if (ch == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] < 0xa0)
			return "control characters are not allowed";
		if (ch == 0xe2 && i + 2 < len && (unsigned char)s[i + 1] == 0x80 &&
		    ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9))
			return "control characters are not allowed";
	}
	return NULL;
}

void api_problem_ack(struct api *a, struct conn *c, const struct http_request *req,
                     const struct router_match *m, const struct authz_principal *who)
{
	const char *idv = router_param(m, "id");
	char *end;
	errno = 0;
	long long id = idv ? strtoll(idv, &end, 10) : 0;
	if (!idv || errno || end == idv || *end || id <= 0 || idv[0] == '+') {
		respond_field(c, 400, "expected a problem id", "id");
		return;
	}
	const char *msg = "";
	cJSON *doc = NULL;
	if (req->body_len) {
		doc = cJSON_ParseWithLength(req->body, req->body_len);
		if (!cJSON_IsObject(doc)) {
			cJSON_Delete(doc);
			respond_field(c, 400, "expected a JSON object", NULL);
			return;
		}
		const cJSON *mv = cJSON_GetObjectItemCaseSensitive(doc, "message");
		if (mv && !cJSON_IsNull(mv)) {
			if (!cJSON_IsString(mv)) {
				cJSON_Delete(doc);
				respond_field(c, 400, "expected a string", "message");
				return;
			}
			msg = mv->valuestring;
		}
	}
	const char *why = message_bad(msg, strlen(msg));
	if (why) {
		cJSON_Delete(doc);
		respond_field(c, 400, why, "message");
		return;
	}
	struct ack_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		cJSON_Delete(doc);
		conn_respond_error(c, 503, "server busy", NULL);
		return;
	}
	x->a = a;
	x->c = c;
	snprintf(x->message, sizeof(x->message), "%s", msg);
	cJSON_Delete(doc);
	snprintf(x->by, sizeof(x->by), "%s", who->person.name);
	snprintf(x->actor, sizeof(x->actor), "%s:%s (%s)", auth_role_name(who->person.role),
	         who->person.id, who->person.name);
	x->w.op = STORE_PROBLEM_ACK;
	x->w.actor = x->actor;
	x->w.problem_id = id;
	x->w.ack_by = x->by;
	x->w.ack_message = x->message;
	/* A city acknowledges its own city's problems only; another's is "no such problem". */
	if (who->person.role == AUTH_CITY) {
		snprintf(x->city, sizeof(x->city), "%s", who->person.city);
		x->w.scope_city = x->city[0] ? x->city : "\x01";
	}
	x->w.done = on_acked;
	x->w.data = x;
	int rc = store_write_submit(a->store, &x->w);
	if (rc) {
		free(x);
		respond_store(c, rc);
	}
}

/* --- GET /api/v1/labels -------------------------------------------------------------------- */

void api_labels_get(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who)
{
	(void)a, (void)req, (void)m, (void)who;
	struct vw_buf b;
	vw_buf_init(&b, 1u << 20);
	if (vw_labels_json(&b))
		conn_respond_error(c, 500, "internal error", NULL);
	else
		/* The same bytes for everyone until an upgrade: a day's cache is safe. */
		conn_respond(c, 200, "Cache-Control: public, max-age=86400\r\n", b.data, b.len);
	vw_buf_free(&b);
}
