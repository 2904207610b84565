#include "api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "vtime.h"

struct api {
	struct store *store;
	struct ingest *ingest;
};

/* A read response is built whole before it is sent; this bounds what one can cost. */
#define RESPONSE_MAX (64u << 20)

struct api *api_create(struct store *store, struct ingest *ingest)
{
	struct api *a = calloc(1, sizeof(*a));
	if (a) {
		a->store = store;
		a->ingest = ingest;
	}
	return a;
}

void api_destroy(struct api *a)
{
	free(a);
}

int api_authorize(const struct conn *c, const struct http_request *req)
{
	/* For now every TLS client may read: the supervisor issue adds bearer tokens with a
	 * role and a jurisdiction here (a city sees only its own sites). Agents' writes are
	 * authorised by their certificate in ingest. */
	(void)c;
	(void)req;
	return 0;
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
};

static int on_site(void *ud, const struct store_site *s)
{
	struct list_ctx *x = ud;
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

static void get_sites(struct api *a, struct conn *c)
{
	struct vw_buf b;
	vw_buf_init(&b, RESPONSE_MAX);
	struct list_ctx x = {&b, 0};
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

static void get_site(struct api *a, struct conn *c, const char *site)
{
	if (!vw_conf_id_valid(site)) {
		conn_respond_error(c, 404, "no such site", NULL);
		return;
	}
	struct vw_buf b;
	vw_buf_init(&b, RESPONSE_MAX);
	struct list_ctx x = {&b, 0};
	int rc = store_get_site(a->store, site, on_site_head, on_target, &x);
	if (rc == -ENOENT)
		conn_respond_error(c, 404, "no such site", NULL);
	else if (rc)
		conn_respond_error(c, 503, "store unavailable", NULL);
	else {
		vw_buf_puts(&b, "]}");
		send_buf(c, &b);
	}
	vw_buf_free(&b);
}

static int only(struct conn *c, const struct http_request *req, enum http_verb verb)
{
	if (req->verb == verb)
		return 1;
	const char *allow = verb == HTTP_VERB_GET ? "Allow: GET\r\n" : "Allow: POST\r\n";
	static const char body[] = "{\"error\":\"method not allowed\"}";
	conn_respond(c, 405, allow, body, sizeof(body) - 1);
	return 0;
}

void api_handle(void *ud, struct conn *c, const struct http_request *req)
{
	struct api *a = ud;
	static const char sites_prefix[] = "/api/v1/sites/";
	const char *path = req->path;

	if (strcmp(path, "/healthz") == 0) {
		static const char ok[] = "{\"status\":\"ok\"}";
		if (only(c, req, HTTP_VERB_GET))
			conn_respond(c, 200, NULL, ok, sizeof(ok) - 1);
		return;
	}
	if (strcmp(path, "/api/v1/ingest") == 0) {
		if (only(c, req, HTTP_VERB_POST))
			ingest_handle(a->ingest, c, req);
		return;
	}
	int is_list = strcmp(path, "/api/v1/sites") == 0;
	int is_site = strncmp(path, sites_prefix, sizeof(sites_prefix) - 1) == 0 &&
	              path[sizeof(sites_prefix) - 1] &&
	              !strchr(path + sizeof(sites_prefix) - 1, '/');
	if (!is_list && !is_site) {
		conn_respond_error(c, 404, "not found", NULL);
		return;
	}
	if (!only(c, req, HTTP_VERB_GET))
		return;
	int deny = api_authorize(c, req);
	if (deny) {
		conn_respond_error(c, deny, deny == 401 ? "authentication required" : "forbidden",
		                   NULL);
		return;
	}
	if (is_list)
		get_sites(a, c);
	else
		get_site(a, c, path + sizeof(sites_prefix) - 1);
}
