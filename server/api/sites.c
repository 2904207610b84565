/* GET /api/v1/sites, /api/v1/sites.csv and /api/v1/sites/{site}: the read API, scoped by
 * authz_site_visible (province all, city its city, org its org). */
#include <cjson/cJSON.h>
#include <csv.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "conf.h"
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

static void put_site_head(struct vw_buf *b, const struct store_site *s)
{
	vw_buf_puts(b, "\"site\":");
	vw_buf_json_str(b, s->site);
	vw_buf_puts(b, ",\"org\":");
	vw_buf_json_str(b, s->org);
	vw_buf_puts(b, ",\"city\":");
	vw_buf_json_str(b, s->city);
	vw_buf_puts(b, ",\"last_report\":");
	put_iso(b, s->last_report_ms);
}

struct list_ctx {
	struct vw_buf *b;
	int n;
	const struct authz_principal *who;
	int hidden; /* the site exists but lies outside the reader's jurisdiction */
};

static int on_site(void *ud, const struct store_site *s)
{
	struct list_ctx *x = ud;
	if (!in_scope(x->who, s))
		return 0;
	vw_buf_puts(x->b, x->n++ ? ",{" : "{");
	put_site_head(x->b, s);
	vw_buf_printf(x->b, ",\"cameras\":{\"ok\":%lld,\"degraded\":%lld,\"down\":%lld}}",
	              (long long)s->ok, (long long)s->degraded, (long long)s->down);
	return x->b->err;
}

static void send_buf(struct conn *c, struct vw_buf *b)
{
	if (b->err)
		conn_respond_error(c, b->err == -E2BIG ? 507 : 500, "response too large", NULL);
	else
		conn_respond(c, 200, NULL, b->data, b->len);
}

void api_sites_list(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)m;
	struct vw_buf b;
	vw_buf_init(&b, RESPONSE_MAX);
	struct list_ctx x = {&b, 0, who, 0};
	vw_buf_puts(&b, "{\"sites\":[");
	if (store_list_sites(a->store, on_site, &x)) {
		conn_respond_error(c, 503, "store unavailable", NULL);
		vw_buf_free(&b);
		return;
	}
	vw_buf_puts(&b, "]}");
	send_buf(c, &b);
	vw_buf_free(&b);
}

static int on_site_head(void *ud, const struct store_site *s)
{
	struct list_ctx *x = ud;
	if (!in_scope(x->who, s)) {
		x->hidden = 1;
		return 1; /* stop: nothing of it is read */
	}
	vw_buf_puts(x->b, "{");
	put_site_head(x->b, s);
	vw_buf_puts(x->b, ",\"targets\":[");
	return x->b->err;
}

static int on_target(void *ud, const struct store_target *t)
{
	struct list_ctx *x = ud;
	struct vw_buf *b = x->b;
	vw_buf_puts(b, x->n++ ? ",{\"kind\":" : "{\"kind\":");
	vw_buf_json_str(b, t->kind);
	vw_buf_puts(b, ",\"target\":");
	vw_buf_json_str(b, t->target);
	vw_buf_puts(b, ",\"agent\":");
	vw_buf_json_str(b, t->agent);
	vw_buf_puts(b, ",\"status\":");
	vw_buf_json_str(b, t->status);
	/* Stored as JSON text written by vw_result_encode_*: copied through, not re-parsed. */
	vw_buf_puts(b, ",\"faults\":");
	vw_buf_puts(b, t->faults[0] ? t->faults : "[]");
	vw_buf_puts(b, ",\"metrics\":");
	vw_buf_puts(b, t->metrics[0] ? t->metrics : "{}");
	vw_buf_puts(b, ",\"ts\":");
	put_iso(b, t->ts_ms);
	vw_buf_printf(b, ",\"seq\":%lld", (long long)t->seq);
	if (t->session[0]) {
		vw_buf_puts(b, ",\"session\":");
		vw_buf_json_str(b, t->session);
	}
	if (t->codec[0]) {
		vw_buf_puts(b, ",\"codec\":");
		vw_buf_json_str(b, t->codec);
	}
	vw_buf_puts(b, "}");
	return b->err;
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
	struct vw_buf b;
	vw_buf_init(&b, RESPONSE_MAX);
	struct list_ctx x = {&b, 0, who, 0};
	int rc = store_get_site(a->store, site, on_site_head, on_target, &x);
	/* Another city's site answers exactly like a site that does not exist: a 403 would
	 * tell a city token which site ids exist elsewhere. */
	if (rc == -ENOENT || (!rc && x.hidden))
		conn_respond_error(c, 404, "no such site", NULL);
	else if (rc)
		conn_respond_error(c, 503, "store unavailable", NULL);
	else {
		vw_buf_puts(&b, "]}");
		send_buf(c, &b);
	}
	vw_buf_free(&b);
}


/* --- CSV --------------------------------------------------------------------------------- */

/* One field, quoted by libcsv (csv_write doubles embedded quotes), never by hand. */
static void csv_field(struct vw_buf *b, const char *v, int last)
{
	size_t n = strlen(v), need = csv_write(NULL, 0, v, n);
	if (vw_buf_reserve(b, need + 2) == 0) {
		b->len += csv_write(b->data + b->len, need, v, n);
		vw_buf_puts(b, last ? "\r\n" : ",");
	}
}

static int on_site_csv(void *ud, const struct store_site *s)
{
	struct list_ctx *x = ud;
	if (!in_scope(x->who, s))
		return 0;
	char iso[VW_ISO_LEN], ok[24], deg[24], down[24];
	vw_time_iso(s->last_report_ms, iso);
	snprintf(ok, sizeof(ok), "%lld", (long long)s->ok);
	snprintf(deg, sizeof(deg), "%lld", (long long)s->degraded);
	snprintf(down, sizeof(down), "%lld", (long long)s->down);
	const char *row[] = {s->site, s->org, s->city, iso, ok, deg, down};
	for (size_t i = 0; i < sizeof(row) / sizeof(row[0]); i++)
		csv_field(x->b, row[i], i + 1 == sizeof(row) / sizeof(row[0]));
	x->n++;
	return x->b->err;
}

/* The same sites as GET /api/v1/sites, for a spreadsheet: RFC 4180 rows (CRLF), UTF-8
 * with a BOM so Excel does not read the city names in the local code page. */
void api_sites_csv(struct api *a, struct conn *c, const struct http_request *req,
                   const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)m;
	struct vw_buf b;
	vw_buf_init(&b, RESPONSE_MAX);
	struct list_ctx x = {&b, 0, who, 0};
	vw_buf_puts(&b, HTTP_CSV_BOM);
	static const char *const head[] = {"site",        "org",              "city",
	                                   "last_report", "cameras_ok",       "cameras_degraded",
	                                   "cameras_down"};
	for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
		csv_field(&b, head[i], i + 1 == sizeof(head) / sizeof(head[0]));
	if (store_list_sites(a->store, on_site_csv, &x)) {
		conn_respond_error(c, 503, "store unavailable", NULL);
		vw_buf_free(&b);
		return;
	}
	char disp[128];
	if (b.err) {
		conn_respond_error(c, b.err == -E2BIG ? 507 : 500, "response too large", NULL);
	} else if (http_attachment_header(disp, sizeof(disp), "sites.csv") == 0) {
		conn_respond_typed(c, 200, HTTP_CT_CSV, disp, b.data, b.len);
	} else {
		conn_respond_error(c, 500, "internal", NULL);
	}
	vw_buf_free(&b);
}
