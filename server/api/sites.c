/* GET /api/v1/sites and /api/v1/sites/{site}: the read API, scoped by city. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "conf.h"
#include "vtime.h"

/* A read response is built whole before it is sent; this bounds what one can cost. */
#define RESPONSE_MAX (64u << 20)

/* A city supervisor sees its own city's sites only (属地管理). A city token without a city,
 * or a site without one, matches nothing: empty must never equal empty here. */
static int in_scope(const struct auth_principal *who, const char *city)
{
	return who->role == AUTH_PROVINCE ||
	       (who->role == AUTH_CITY && who->city[0] && city && city[0] &&
	        strcmp(who->city, city) == 0);
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
	const struct auth_principal *who;
	int hidden; /* the site exists but lies outside the reader's jurisdiction */
};

static int on_site(void *ud, const struct store_site *s)
{
	struct list_ctx *x = ud;
	if (!in_scope(x->who, s->city))
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

void api_sites_list(struct api *a, struct conn *c, const struct auth_principal *who)
{
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
	if (!in_scope(x->who, s->city)) {
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

void api_site_get(struct api *a, struct conn *c, const char *site,
                     const struct auth_principal *who)
{
	if (!vw_conf_id_valid(site)) {
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

