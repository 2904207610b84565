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

static void put_site_head(struct vw_buf *b, const struct store_site *s)
{
	put_str(b, "\"site\":", s->site);
	put_str(b, ",\"org\":", s->org);
	put_str(b, ",\"city\":", s->city);
	vw_buf_puts(b, ",\"last_report\":");
	put_iso(b, s->last_report_ms);
}

/* A read in flight: what the completion needs once the store answers. The principal is
 * copied, because the router's lives on its stack. The conn stays valid until conn_respond
 * even if the client has gone (conn.c frees it only after the owed response). */
struct read_ctx {
	struct conn *c;
	struct authz_principal who;
};

static struct read_ctx *read_ctx_new(struct conn *c, const struct authz_principal *who)
{
	struct read_ctx *x = malloc(sizeof(*x));
	if (x) {
		x->c = c;
		x->who = *who;
	}
	return x;
}

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
		if (in_scope(&x->who, s))
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

static void on_sites(void *ud, const struct store_reply *r)
{
	struct read_ctx *x = ud;
	struct vw_buf b;
	if (reply_begin(x, r->status, &b))
		return;
	vw_buf_puts(&b, "{\"sites\":[");
	int n = 0;
	const struct store_site *s;
	for (size_t i = 0; (s = next_visible(x, r, &i, &b));) {
		vw_buf_puts(&b, n++ ? ",{" : "{");
		put_site_head(&b, s);
		vw_buf_printf(&b, ",\"cameras\":{\"ok\":%lld,\"degraded\":%lld,\"down\":%lld}}",
		              (long long)s->ok, (long long)s->degraded, (long long)s->down);
	}
	vw_buf_puts(&b, "]}");
	reply_finish(x, &b, NULL);
}

void api_sites_list(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)m;
	struct read_ctx *x = read_ctx_new(c, who);
	read_or_respond(x ? store_list_sites(a->store, on_sites, x) : -ENOMEM, x, c);
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

void api_site_get(struct api *a, struct conn *c, const struct http_request *req,
                  const struct router_match *m, const struct authz_principal *who)
{
	(void)req;
	const char *site = router_param(m, "site");
	if (!site || !vw_conf_id_valid(site)) {
		conn_respond_error(c, 404, "no such site", NULL);
		return;
	}
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
	(void)req, (void)m;
	struct read_ctx *x = read_ctx_new(c, who);
	read_or_respond(x ? store_list_sites(a->store, on_sites_csv, x) : -ENOMEM, x, c);
}
