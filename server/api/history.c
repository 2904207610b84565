/* history: GET /api/v1/sites/{site}/history (issue 16 E) — a site's stored results, newest
 * first, a page at a time behind an opaque cursor, read by the store from its indexes
 * (store_site_history). Scoped like GET /api/v1/sites/{site}: another jurisdiction's site
 * answers 404 exactly like an unknown one. Loop thread only. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "conf.h"
#include "exams_csv.h"
#include "store.h"
#include "vtime.h"

#define HISTORY_DEFAULT_LIMIT 100
#define HISTORY_RESPONSE_MAX (64u << 20)

static int hexv(int c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* The value of key in the query string, percent-decoded ('+' as a space). 1 found, 0
 * absent, -1 too long for out or a NUL in it. */
static int query_get(const char *q, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	for (const char *p = q; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t n = amp ? (size_t)(amp - p) : strlen(p);
		if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
			size_t o = 0;
			for (size_t i = kl + 1; i < n; i++) {
				int c = (unsigned char)p[i], hi, lo;
				if (c == '%' && i + 2 < n && (hi = hexv(p[i + 1])) >= 0 &&
				    (lo = hexv(p[i + 2])) >= 0) {
					c = hi * 16 + lo;
					i += 2;
				} else if (c == '+') {
					c = ' ';
				}
				if (o + 1 >= outlen || c == 0)
					return -1;
				out[o++] = (char)c;
			}
			out[o] = '\0';
			return 1;
		}
		p = amp ? amp + 1 : NULL;
	}
	return 0;
}

static int hex64(const char **p, int64_t *out)
{
	uint64_t v = 0;
	int n = 0;
	for (int d; (d = hexv((unsigned char)**p)) >= 0; (*p)++, n++) {
		if (n == 16)
			return -1; /* 16 hex digits hold any uint64 */
		v = v * 16 + (uint64_t)d;
	}
	if (n == 0 || v > INT64_MAX)
		return -1;
	*out = (int64_t)v;
	return 0;
}

void api_history_cursor_format(char out[API_HISTORY_CURSOR_LEN], int64_t ts_ms, int64_t id)
{
	snprintf(out, API_HISTORY_CURSOR_LEN, "h1.%" PRIx64 ".%" PRIx64, (uint64_t)ts_ms,
	         (uint64_t)id);
}

int api_history_cursor_parse(const char *s, int64_t *ts_ms, int64_t *id)
{
	if (strncmp(s, "h1.", 3) != 0)
		return -EINVAL;
	const char *p = s + 3;
	if (hex64(&p, ts_ms) || *p++ != '.' || hex64(&p, id) || *p || *id == 0)
		return -EINVAL;
	return 0;
}

/* A time as the other queries take it: RFC 3339, local "YYYY-MM-DD HH:MM", a local date
 * (its midnight). */
static int query_time(const char *v, int64_t *ms)
{
	if (exams_time_parse(v, ms) == 0)
		return 0;
	char t[32];
	if (strlen(v) != 10)
		return -EINVAL;
	snprintf(t, sizeof(t), "%s 00:00", v);
	return exams_time_parse(t, ms);
}

struct history_ctx {
	struct conn *c;
	struct authz_principal who;
	char site[64];
};

static void bad_param(struct conn *c, const char *param, const char *what)
{
	char why[160];
	snprintf(why, sizeof(why), "query parameter %s: %s", param, what);
	conn_respond_error(c, 400, "bad request", why);
}

static void on_history(void *ud, const struct store_reply *r)
{
	struct history_ctx *x = ud;
	struct conn *c = x->c;
	int found = !r->status && r->nsites == 1;
	if (r->status == -ENOENT ||
	    (found &&
	     !authz_site_visible(&x->who, r->sites[0].site, r->sites[0].org, r->sites[0].city))) {
		conn_respond_error(c, 404, "no such site", NULL);
		goto done;
	}
	if (!found) {
		int rc = r->status ? r->status : -EIO;
		if (rc == -EAGAIN)
			conn_respond_error(c, 503, "server busy", NULL);
		else if (rc == -E2BIG)
			conn_respond_error(c, 507, "response too large", NULL);
		else
			conn_respond_error(c, 503, "store unavailable", NULL);
		goto done;
	}
	struct vw_buf b;
	vw_buf_init(&b, HISTORY_RESPONSE_MAX);
	vw_buf_puts(&b, "{\"site\":");
	vw_buf_json_str(&b, x->site);
	vw_buf_puts(&b, ",\"results\":[");
	for (size_t i = 0; i < r->ntargets && !b.err; i++) {
		const struct store_target *t = &r->targets[i];
		char iso[VW_ISO_LEN];
		vw_time_iso(t->ts_ms, iso);
		vw_buf_puts(&b, i ? ",{\"agent\":" : "{\"agent\":");
		vw_buf_json_str(&b, t->agent);
		vw_buf_puts(&b, ",\"kind\":");
		vw_buf_json_str(&b, t->kind);
		vw_buf_puts(&b, ",\"target\":");
		vw_buf_json_str(&b, t->target);
		vw_buf_puts(&b, ",\"status\":");
		vw_buf_json_str(&b, t->status);
		/* Stored as JSON text written by vw_result_encode_*: copied through. */
		vw_buf_puts(&b, ",\"faults\":");
		vw_buf_puts(&b, t->faults[0] ? t->faults : "[]");
		vw_buf_puts(&b, ",\"metrics\":");
		vw_buf_puts(&b, t->metrics[0] ? t->metrics : "{}");
		vw_buf_puts(&b, ",\"session\":");
		if (t->session[0])
			vw_buf_json_str(&b, t->session);
		else
			vw_buf_puts(&b, "null");
		vw_buf_puts(&b, ",\"ts\":");
		vw_buf_json_str(&b, iso);
		vw_buf_printf(&b, ",\"seq\":%lld}", (long long)t->seq);
	}
	vw_buf_puts(&b, "],\"next_cursor\":");
	if (r->next_id) {
		char cur[API_HISTORY_CURSOR_LEN];
		api_history_cursor_format(cur, r->next_ts_ms, r->next_id);
		vw_buf_json_str(&b, cur);
	} else {
		vw_buf_puts(&b, "null");
	}
	vw_buf_puts(&b, "}");
	if (b.err)
		conn_respond_error(c, b.err == -E2BIG ? 507 : 500, "response too large", NULL);
	else
		conn_respond(c, 200, NULL, b.data, b.len);
	vw_buf_free(&b);
done:
	free(x);
}

void api_site_history(struct api *a, struct conn *c, const struct http_request *req,
                      const struct router_match *m, const struct authz_principal *who)
{
	const char *site = router_param(m, "site");
	if (!site || !vw_conf_id_valid(site) || strlen(site) >= 64) {
		conn_respond_error(c, 404, "no such site", NULL);
		return;
	}
	struct authz_principal granted = *who; /* issue 12 D: an inspector's one site */
	if (authz_site_grant_or_refuse(a, c, &granted, site))
		return;
	who = &granted;
	char kind[32] = "", target[VW_NAME_MAX + 1] = "", from[64] = "", to[64] = "",
	     limit[16] = "", cursor[API_HISTORY_CURSOR_LEN] = "";
	struct {
		const char *key;
		char *out;
		size_t n;
		int got;
	} p[] = {{"kind", kind, sizeof(kind), 0},    {"target", target, sizeof(target), 0},
	         {"from", from, sizeof(from), 0},    {"to", to, sizeof(to), 0},
	         {"limit", limit, sizeof(limit), 0}, {"cursor", cursor, sizeof(cursor), 0}};
	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
		if ((p[i].got = query_get(req->query, p[i].key, p[i].out, p[i].n)) < 0) {
			bad_param(c, p[i].key, "malformed or too long");
			return;
		}
	struct store_history_query q = {.site = site, .limit = HISTORY_DEFAULT_LIMIT};
	enum vw_kind k;
	if (p[0].got) {
		if (vw_kind_parse(kind, &k)) {
			bad_param(
			    c, "kind",
			    "expected stream, network, recording, coverage, assessment or buffer");
			return;
		}
		q.kind = vw_kind_name(k);
	}
	if (p[1].got) {
		if (!target[0]) {
			bad_param(c, "target", "empty");
			return;
		}
		q.target = target;
	}
	if ((p[2].got && query_time(from, &q.from_ms)) || (p[3].got && query_time(to, &q.to_ms))) {
		bad_param(c, p[2].got && query_time(from, &q.from_ms) ? "from" : "to",
		          "expected a time (2026-12-01, 2026-12-01 09:00 or RFC 3339)");
		return;
	}
	if (p[2].got && p[3].got && q.to_ms <= q.from_ms) {
		bad_param(c, "to", "must be after from");
		return;
	}
	if (p[4].got) {
		char *end;
		long n = strtol(limit, &end, 10);
		if (!limit[0] || *end || n < 1 || n > STORE_HISTORY_MAX) {
			bad_param(c, "limit", "expected an integer from 1 to 1000");
			return;
		}
		q.limit = (int)n;
	}
	if (p[5].got && api_history_cursor_parse(cursor, &q.before_ts_ms, &q.before_id)) {
		bad_param(c, "cursor", "malformed (pass the next_cursor of the previous page)");
		return;
	}
	struct history_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		conn_respond_error(c, 503, "server busy", NULL);
		return;
	}
	x->c = c;
	x->who = *who;
	memcpy(x->site, site, strlen(site) + 1);
	int rc = store_site_history(a->store, &q, on_history, x);
	if (rc) {
		free(x);
		conn_respond_error(c, 503, rc == -EAGAIN ? "server busy" : "store unavailable",
		                   NULL);
	}
}
