/* GET /api/v1/sites, /api/v1/sites.csv and /api/v1/sites/{site}: the read API, scoped by
 * authz_site_visible (province all, city its city, org its org). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "conf.h"
#include "csvout.h"
#include "vtime.h"

/* A read response is built whole before it is sent; this bounds what one can cost. */
#define RESPONSE_MAX (64u << 20)

/* Who sees which site is authz's decision (属地管理), asked for every site shown. */
static int in_scope(const struct authz_principal *who, const struct store_site *s)
{
	return authz_site_visible(who, s->site, s->org, s->city);
}

static void put_iso(struct vw_buf *b, int64_t ms)
{
	char iso[VW_ISO_LEN];
	vw_time_iso(ms, iso);
	vw_buf_json_str(b, iso);
}

/* key is the JSON before the value, punctuation included: ",\"org\":". */
static void put_str(struct vw_buf *b, const char *key, const char *v)
{
	vw_buf_puts(b, key);
	vw_buf_json_str(b, v);
}

/* A count as decimal digits: the province's list writes five per site, and printf's
 * machinery was a tenth of the request's CPU (perf, docs/BENCHMARKS.md "Feed"). */
static void put_i64(struct vw_buf *b, const char *key, int64_t v)
{
	char d[24], *p = d + sizeof(d);
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--p = '-';
	vw_buf_puts(b, key);
	vw_buf_append(b, p, (size_t)(d + sizeof(d) - p));
}

/* issue 16 E: a class's word from its targets' latest statuses: the worst one present,
 * "unknown" when it has none. */
static const char *health_word(const int64_t n[VW_STATUS_COUNT])
{
	return n[VW_STATUS_DOWN] > 0       ? "down"
	       : n[VW_STATUS_DEGRADED] > 0 ? "degraded"
	       : n[VW_STATUS_OK] > 0       ? "ok"
	                                   : "unknown";
}

/* key then a word of ours (no escaping needed) in quotes. */
static void put_word(struct vw_buf *b, const char *key, const char *word)
{
	vw_buf_puts(b, key);
	vw_buf_append(b, "\"", 1);
	vw_buf_puts(b, word);
	vw_buf_append(b, "\"", 1);
}

/* The site's status: silent while a site_silent problem is open, else the worst latest
 * status of all its targets (connected is a subset of network, so not counted twice). */
static const char *site_status(const struct store_site *s)
{
	if (s->silent)
		return "silent";
	int64_t all[VW_STATUS_COUNT] = {0};
	for (int h = STORE_H_NETWORK; h < STORE_H_COUNT; h++)
		for (int k = 0; k < VW_STATUS_COUNT; k++)
			all[k] += s->health[h][k];
	return health_word(all);
}

static void put_site_head(struct vw_buf *b, const struct store_site *s)
{
	put_str(b, "\"site\":", s->site);
	put_str(b, ",\"org\":", s->org);
	put_str(b, ",\"city\":", s->city);
	vw_buf_puts(b, ",\"last_report\":");
	put_iso(b, s->last_report_ms);
	/* issue 16 E: status, session, problems and the four 3.6 criteria (DOMAIN.md). */
	put_word(b, ",\"status\":", site_status(s));
	put_i64(b, ",\"cameras\":{\"ok\":", s->ok);
	put_i64(b, ",\"degraded\":", s->degraded);
	put_i64(b, ",\"down\":", s->down);
	vw_buf_puts(b, s->in_session ? "},\"in_session\":true" : "},\"in_session\":false");
	put_i64(b, ",\"open_problems\":", s->open_problems);
	put_word(b, ",\"criteria\":{\"connected\":", health_word(s->health[STORE_H_CONNECTED]));
	put_word(b, ",\"network\":", health_word(s->health[STORE_H_NETWORK]));
	put_word(b, ",\"picture\":", health_word(s->health[STORE_H_STREAM]));
	put_word(b, ",\"coverage\":", health_word(s->health[STORE_H_COVERAGE]));
	put_word(b, ",\"recordings\":", health_word(s->health[STORE_H_RECORDING]));
	vw_buf_puts(b, "}");
}

/* A read in flight: what the completion needs once the store answers. The principal is
 * copied, because the router's lives on its stack. The conn stays valid until conn_respond
 * even if the client has gone (conn.c frees it only after the owed response). */
struct read_ctx {
	struct conn *c;
	struct api *a;
	struct authz_principal who;
	/* issue 16 E2: the list's filters (?city=&org=&status=); "" = any. */
	char city[64], org[64], status[16];
};

static struct read_ctx *read_ctx_new(struct conn *c, const struct authz_principal *who)
{
	struct read_ctx *x = calloc(1, sizeof(*x));
	if (x) {
		x->c = c;
		x->who = *who;
	}
	return x;
}

/* issue 16 E2: the words a site's status can be (site_status), the only ones status= takes. */
static int status_word_valid(const char *w)
{
	static const char *const words[] = {"ok", "degraded", "down", "silent", "unknown"};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(w, words[i]) == 0)
			return 1;
	return 0;
}

/* The list's filters from the query into x: 0, or -1 after a 400 naming the parameter. A
 * filter only narrows what authz_site_visible lets through: a city token asking for another
 * city gets an empty list, never that city's sites. */
static int filters_parse(struct read_ctx *x, const struct http_request *req)
{
	struct {
		const char *key;
		char *out;
		size_t n;
	} p[] = {{"city", x->city, sizeof(x->city)},
	         {"org", x->org, sizeof(x->org)},
	         {"status", x->status, sizeof(x->status)}};
	char why[128];
	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
		if (api_query_get(req->query, p[i].key, p[i].out, p[i].n) < 0) {
			snprintf(why, sizeof(why), "query parameter %s: too long or malformed",
			         p[i].key);
			conn_respond_error(x->c, 400, "bad request", why);
			return -1;
		}
	}
	if (x->status[0] && !status_word_valid(x->status)) {
		conn_respond_error(x->c, 400, "bad request",
		                   "query parameter status: not one of ok, degraded, down, silent, "
		                   "unknown");
		return -1;
	}
	return 0;
}

static int filters_match(const struct read_ctx *x, const struct store_site *s);

/* A read the store did not take, or one that failed. */
static void respond_store_error(struct conn *c, int rc)
{
	if (rc == -E2BIG)
		conn_respond_error(c, 507, "response too large", NULL);
	else if (rc == -EAGAIN)
		conn_respond_error(c, 503, "server busy", NULL); /* adds Retry-After */
	else
		conn_respond_error(c, 503, "store unavailable", NULL);
}

/* Queues a read whose completion answers c; on refusal answers at once. */
static void read_or_respond(int rc, struct read_ctx *x, struct conn *c)
{
	if (rc) {
		free(x);
		respond_store_error(c, rc);
	}
}

/* How every store-reply handler starts: a failed read (rc) is answered here and x freed
 * (-1); otherwise b is ready for the body (0). */
static int reply_begin(struct read_ctx *x, int rc, struct vw_buf *b)
{
	if (rc) {
		respond_store_error(x->c, rc);
		free(x);
		return -1;
	}
	vw_buf_init(b, RESPONSE_MAX);
	return 0;
}

/* The reply's next site, from *i on, that the principal may see; NULL at the end or once
 * the body has failed (too large). */
static const struct store_site *next_visible(const struct read_ctx *x, const struct store_reply *r,
                                             size_t *i, const struct vw_buf *b)
{
	while (*i < r->nsites && !b->err) {
		const struct store_site *s = &r->sites[(*i)++];
		if (in_scope(&x->who, s) && filters_match(x, s))
			return s;
	}
	return NULL;
}

/* How every one ends: b as JSON, or as an attachment named csv_name; then b and x freed. */
static void reply_finish(struct read_ctx *x, struct vw_buf *b, const char *csv_name)
{
	char disp[128];
	if (b->err)
		conn_respond_error(x->c, b->err == -E2BIG ? 507 : 500, "response too large", NULL);
	else if (!csv_name)
		conn_respond(x->c, 200, NULL, b->data, b->len);
	else if (http_attachment_header(disp, sizeof(disp), csv_name) == 0)
		conn_respond_typed(x->c, 200, HTTP_CT_CSV, disp, b->data, b->len);
	else
		conn_respond_error(x->c, 500, "internal", NULL);
	vw_buf_free(b);
	free(x);
}

static int filters_match(const struct read_ctx *x, const struct store_site *s)
{
	return (!x->city[0] || strcmp(x->city, s->city) == 0) &&
	       (!x->org[0] || strcmp(x->org, s->org) == 0) &&
	       (!x->status[0] || strcmp(x->status, site_status(s)) == 0);
}

/* A kept body larger than this is let go after the answer: one province's list is ~1 MB
 * (3,000 sites × ~290 bytes, docs/BENCHMARKS.md "Feed"), so 4 MiB keeps a large province's
 * and does not pin a one-off 64 MiB answer. */
#define SITES_BODY_KEEP (4u << 20)

static void on_sites(void *ud, const struct store_reply *r)
{
	struct read_ctx *x = ud;
	if (r->status) {
		respond_store_error(x->c, r->status);
		free(x);
		return;
	}
	/* The api's kept buffer (loop thread: no other answer is being built meanwhile);
	 * conn_respond copies it out, so it is free again once reply_finish returns. */
	struct vw_buf *b = &x->a->sites_body;
	vw_buf_reset(b);
	b->max = RESPONSE_MAX;
	/* about 290 bytes a site: one allocation instead of a doubling series */
	vw_buf_reserve(b, r->nsites * 320);
	vw_buf_puts(b, "{\"sites\":[");
	int n = 0;
	const struct store_site *s;
	for (size_t i = 0; (s = next_visible(x, r, &i, b));) {
		vw_buf_puts(b, n++ ? ",{" : "{");
		put_site_head(b, s);
		vw_buf_puts(b, "}");
	}
	vw_buf_puts(b, "]}");
	if (b->err)
		conn_respond_error(x->c, b->err == -E2BIG ? 507 : 500, "response too large", NULL);
	else
		conn_respond(x->c, 200, NULL, b->data, b->len);
	if (b->err || b->cap > SITES_BODY_KEEP)
		vw_buf_free(b);
	else
		vw_buf_reset(b);
	free(x);
}

void api_sites_list(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who)
{
	(void)m;
	struct read_ctx *x = read_ctx_new(c, who);
	if (!x) {
		respond_store_error(c, -ENOMEM);
		return;
	}
	x->a = a;
	if (filters_parse(x, req)) {
		free(x);
		return;
	}
	read_or_respond(store_list_sites(a->store, on_sites, x), x, c);
}

static void put_target(struct vw_buf *b, const struct store_target *t, int first)
{
	put_str(b, first ? "{\"kind\":" : ",{\"kind\":", t->kind);
	put_str(b, ",\"target\":", t->target);
	put_str(b, ",\"agent\":", t->agent);
	put_str(b, ",\"status\":", t->status);
	/* Stored as JSON text written by vw_result_encode_*: copied through, not re-parsed. */
	vw_buf_puts(b, ",\"faults\":");
	vw_buf_puts(b, t->faults[0] ? t->faults : "[]");
	vw_buf_puts(b, ",\"metrics\":");
	vw_buf_puts(b, t->metrics[0] ? t->metrics : "{}");
	vw_buf_puts(b, ",\"ts\":");
	put_iso(b, t->ts_ms);
	vw_buf_printf(b, ",\"seq\":%lld", (long long)t->seq);
	if (t->session[0])
		put_str(b, ",\"session\":", t->session);
	if (t->codec[0])
		put_str(b, ",\"codec\":", t->codec);
	if (strcmp(t->kind, "stream") == 0) { /* issue 16 C: the camera's newest picture */
		vw_buf_puts(b, ",\"thumbnail_at\":");
		if (t->thumb_ts_ms)
			put_iso(b, t->thumb_ts_ms);
		else
			vw_buf_puts(b, "null");
	}
	vw_buf_puts(b, "}");
}

static void on_site(void *ud, const struct store_reply *r)
{
	struct read_ctx *x = ud;
	int found = !r->status && r->nsites == 1;
	/* Another city's site answers exactly like a site that does not exist: a 403 would
	 * tell a city token which site ids exist elsewhere. */
	if (r->status == -ENOENT || (found && !in_scope(&x->who, &r->sites[0]))) {
		conn_respond_error(x->c, 404, "no such site", NULL);
		free(x);
		return;
	}
	/* The contract gives exactly one site on success; anything else is the store's fault,
	 * never an out-of-bounds read here. */
	struct vw_buf b;
	if (reply_begin(x, found ? 0 : r->status ? r->status : -EIO, &b))
		return;
	vw_buf_puts(&b, "{");
	put_site_head(&b, &r->sites[0]);
	vw_buf_puts(&b, ",\"targets\":[");
	for (size_t i = 0; i < r->ntargets && !b.err; i++)
		put_target(&b, &r->targets[i], i == 0);
	vw_buf_puts(&b, "]}");
	reply_finish(x, &b, NULL);
}

/* issue 12 D: the site JSON of GET /api/v1/sites/{site} from store_get_site's reply, for the
 * remote checks' status evidence (capture.c). */
void api_site_render(struct vw_buf *b, const struct store_reply *r)
{
	if (r->nsites != 1) {
		b->err = -EIO;
		return;
	}
	vw_buf_puts(b, "{");
	put_site_head(b, &r->sites[0]);
	vw_buf_puts(b, ",\"targets\":[");
	for (size_t i = 0; i < r->ntargets && !b->err; i++)
		put_target(b, &r->targets[i], i == 0);
	vw_buf_puts(b, "]}");
}

void api_site_get(struct api *a, struct conn *c, const struct http_request *req,
                  const struct router_match *m, const struct authz_principal *who)
{
	(void)req;
	const char *site = router_param(m, "site");
	if (!site || !vw_conf_id_valid(site)) {
		conn_respond_error(c, 404, "no such site", NULL);
		return;
	}
	struct authz_principal granted = *who; /* issue 12 D: an inspector's one site */
	if (authz_site_grant_or_refuse(a, c, &granted, site))
		return;
	who = &granted;
	struct read_ctx *x = read_ctx_new(c, who);
	read_or_respond(x ? store_get_site(a->store, site, on_site, x) : -ENOMEM, x, c);
}

/* --- CSV (fields by csvout: libcsv quoting, formula-safe) --------------------------------- */

static void on_sites_csv(void *ud, const struct store_reply *r)
{
	struct read_ctx *x = ud;
	struct vw_buf b;
	if (reply_begin(x, r->status, &b))
		return;
	vw_buf_puts(&b, HTTP_CSV_BOM);
	static const char *const head[] = {
	    "site", "org", "city", "last_report", "cameras_ok", "cameras_degraded", "cameras_down"};
	csvout_row(&b, head, sizeof(head) / sizeof(head[0]));
	const struct store_site *s;
	for (size_t k = 0; (s = next_visible(x, r, &k, &b));) {
		char iso[VW_ISO_LEN], ok[24], deg[24], down[24];
		vw_time_iso(s->last_report_ms, iso);
		snprintf(ok, sizeof(ok), "%lld", (long long)s->ok);
		snprintf(deg, sizeof(deg), "%lld", (long long)s->degraded);
		snprintf(down, sizeof(down), "%lld", (long long)s->down);
		const char *row[] = {s->site, s->org, s->city, iso, ok, deg, down};
		csvout_row(&b, row, sizeof(row) / sizeof(row[0]));
	}
	reply_finish(x, &b, "sites.csv");
}

/* The same sites as GET /api/v1/sites, for a spreadsheet: RFC 4180 rows (CRLF), UTF-8
 * with a BOM so Excel does not read the city names in the local code page. */
void api_sites_csv(struct api *a, struct conn *c, const struct http_request *req,
                   const struct router_match *m, const struct authz_principal *who)
{
	(void)m;
	struct read_ctx *x = read_ctx_new(c, who);
	if (!x) {
		respond_store_error(c, -ENOMEM);
		return;
	}
	x->a = a;
	if (filters_parse(x, req)) { /* the same filters as the JSON list */
		free(x);
		return;
	}
	read_or_respond(store_list_sites(a->store, on_sites_csv, x), x, c);
}
