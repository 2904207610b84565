/* GET /api/v1/sites/{site}/cameras/{camera}/thumbnail[?at=] (issue 16 C): the newest JPEG
 * an agent sent for the camera, checked at or before `at`. The pictures show candidates, so
 * only the roles that may read the site get one (authz_site_visible; another scope's site
 * answers like an unknown one), nothing caches them (Cache-Control: private, no-store), and
 * each one served is first recorded in thumbnail_access through the store's writer (who,
 * site, camera, the time asked for, the picture's time): no record, no picture (503).
 * Loop thread; the read and the record run on the store's threads. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "conf.h"
#include "exams_csv.h"
#include "vtime.h"

struct thumb_ctx {
	struct api *a;
	struct conn *c;
	struct authz_principal who;
	char site[64], camera[VW_NAME_MAX + 1], actor[300], peer[64];
	int64_t asked_ms;
	int head;            /* a HEAD request: headers only, no picture bytes, no access row */
	unsigned char *jpeg; /* copied from the read's reply: it is gone after the callback */
	size_t len;
	int64_t ts_ms;
	struct store_thumb_access access;
	struct store_write w;
	struct inflight *slot; /* the principal's count this request holds (NULL: none) */
};

/* At most THUMB_INFLIGHT_MAX thumbnail requests of one principal (token id) in flight, read
 * to answer: one token looping on a picture cannot fill the store's queues and crowd out
 * ingest and everyone else's looks. More: 429 with Retry-After. A venue page's 40 tiles
 * come in by the browser's 6 connections per host, well under the bound. Loop thread only:
 * a small table of the principals with requests in flight, a slot freed at 0. */
#define THUMB_INFLIGHT_MAX 16
#define THUMB_PRINCIPALS 256
#define THUMB_STR_(n) #n
#define THUMB_STR(n) THUMB_STR_(n)
struct inflight {
	char id[AUTH_ID_LEN];
	int n;
	int64_t warned_ms; /* a looping token's refusals are logged every 10 s, not each */
	long refused;      /* since that line */
};
static struct inflight inflight[THUMB_PRINCIPALS];

/* 0 and *slot held; 1: the principal is at its bound (*slot: its entry, not held); -1: the
 * table is full. */
static int inflight_take(const char *id, struct inflight **slot)
{
	struct inflight *free_slot = NULL;
	for (size_t i = 0; i < THUMB_PRINCIPALS; i++) {
		struct inflight *e = &inflight[i];
		if (e->n && strcmp(e->id, id) == 0) {
			if (e->n >= THUMB_INFLIGHT_MAX) {
				*slot = e;
				return 1;
			}
			e->n++;
			*slot = e;
			return 0;
		}
		if (!e->n && !free_slot)
			free_slot = e;
	}
	if (!free_slot)
		return -1;
	*free_slot = (struct inflight){.n = 1};
	snprintf(free_slot->id, sizeof(free_slot->id), "%s", id);
	*slot = free_slot;
	return 0;
}

static void ctx_free(struct thumb_ctx *x)
{
	if (x->slot)
		x->slot->n--;
	free(x->jpeg);
	free(x);
}

/* A path segment percent-decoded into out; -1 when malformed, too long or holding a byte no
 * target name may (controls, '/'). */
static int segment_decode(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; in[i]; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (ch == '%') {
			if (!isxdigit((unsigned char)in[i + 1]) ||
			    !isxdigit((unsigned char)in[i + 2]))
				return -1;
			char hex[3] = {in[i + 1], in[i + 2], 0};
			ch = (unsigned char)strtol(hex, NULL, 16);
			i += 2;
		}
		if (ch < 0x20 || ch == 0x7f || ch == '/' || o + 1 >= outlen)
			return -1;
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	return o ? 0 : -1;
}

/* ?at=: RFC 3339 (an offset's '+' as it is or %2B), local "YYYY-MM-DD HH:MM[:SS]" (space as
 * %20 or '+' is not taken: '+' is the offset's) or epoch ms. 1 found, 0 absent, -1 bad. */
static int query_at(const char *q, int64_t *ms)
{
	const char *p = q;
	while (*p) {
		size_t n = strcspn(p, "&;");
		if (n > 3 && strncmp(p, "at=", 3) == 0) {
			char v[64];
			size_t o = 0;
			for (size_t i = 3; i < n; i++) {
				char ch = p[i];
				if (ch == '%' && i + 2 < n && isxdigit((unsigned char)p[i + 1]) &&
				    isxdigit((unsigned char)p[i + 2])) {
					char hex[3] = {p[i + 1], p[i + 2], 0};
					ch = (char)strtol(hex, NULL, 16);
					i += 2;
				}
				if (!ch || o + 1 >= sizeof(v))
					return -1;
				v[o++] = ch;
			}
			v[o] = '\0';
			char *end;
			long long num = strtoll(v, &end, 10);
			if (*v && !*end && num > 0) {
				*ms = num;
				return 1;
			}
			/* The API's own times (X-Thumbnail-Time, thumbnail_at) carry milliseconds.
			 */
			return vw_time_parse_iso(v, ms) == 0 || exams_time_parse(v, ms) == 0 ? 1
			                                                                     : -1;
		}
		p += n + (p[n] != '\0');
	}
	return 0;
}

/* A value inside a quoted log field: quotes, backslashes and spaces-to-be become '_'. */
static void log_safe(const char *s, char *out, size_t n)
{
	size_t i = 0;
	for (; *s && i + 1 < n; s++)
		out[i++] = *s == '"' || *s == '\\' ? '_' : *s;
	out[i] = '\0';
}

static void respond_picture(struct thumb_ctx *x);

static void on_recorded(struct store_write *w)
{
	struct thumb_ctx *x = w->data;
	if (w->status) {
		/* Fail closed: a picture whose access was not recorded is not shown. */
		log_warn(
		    "event=thumbnail_refused site=%s camera=%s reason=access_not_recorded err=%d",
		    x->site, x->camera, w->status);
		conn_respond_error(x->c, 503, "access log unavailable", NULL);
		ctx_free(x);
		return;
	}
	respond_picture(x);
}

/* The picture with its headers; logged as an access unless it is a HEAD's (no bytes). */
static void respond_picture(struct thumb_ctx *x)
{
	char iso[VW_ISO_LEN], extra[256];
	vw_time_iso(x->ts_ms, iso);
	snprintf(extra, sizeof(extra),
	         "Cache-Control: private, no-store\r\nX-Thumbnail-Time: %s\r\n"
	         "X-Content-Type-Options: nosniff\r\n",
	         iso);
	char actor[sizeof(x->actor)], camera[sizeof(x->camera)];
	log_safe(x->actor, actor, sizeof(actor));
	log_safe(x->camera, camera, sizeof(camera));
	if (!x->head)
		log_info(
		    "event=thumbnail_access site=%s camera=\"%s\" actor=\"%s\" thumb_ts=%s peer=%s",
		    x->site, camera, actor, iso, x->peer);
	conn_respond_typed(x->c, 200, "image/jpeg", extra, (const char *)x->jpeg, x->len);
	ctx_free(x);
}

static void on_thumb(void *ud, const struct store_reply *r)
{
	struct thumb_ctx *x = ud;
	int found = !r->status && r->nsites == 1;
	/* Another scope's site answers exactly like one that does not exist. */
	if (r->status == -ENOENT ||
	    (found &&
	     !authz_site_visible(&x->who, r->sites[0].site, r->sites[0].org, r->sites[0].city))) {
		conn_respond_error(x->c, 404, "no such site", NULL);
		ctx_free(x);
		return;
	}
	if (!found) {
		conn_respond_error(x->c, 503, "store unavailable", NULL);
		ctx_free(x);
		return;
	}
	if (!r->thumb) {
		conn_respond_error(x->c, 404, "no thumbnail",
		                   x->asked_ms ? "none of this camera at or before 'at'"
		                               : "none of this camera is kept");
		ctx_free(x);
		return;
	}
	if (!(x->jpeg = malloc(r->thumb_len ? r->thumb_len : 1))) {
		conn_respond_error(x->c, 503, "server busy", NULL);
		ctx_free(x);
		return;
	}
	memcpy(x->jpeg, r->thumb, r->thumb_len);
	x->len = r->thumb_len;
	x->ts_ms = r->thumb_ts_ms;
	if (x->head) {
		/* HEAD: the headers a GET would get (Content-Length included) and no picture
		 * bytes (conn.c sends no body for HEAD), so nothing was shown: no access row. */
		respond_picture(x);
		return;
	}
	x->access = (struct store_thumb_access){.actor = x->actor,
	                                        .site = x->site,
	                                        .camera = x->camera,
	                                        .asked_ms = x->asked_ms,
	                                        .thumb_ts_ms = x->ts_ms,
	                                        .peer = x->peer};
	x->w = (struct store_write){.op = STORE_THUMB_ACCESS,
	                            .actor = x->actor,
	                            .access = &x->access,
	                            .done = on_recorded,
	                            .data = x};
	int rc = store_write_submit(x->a->store, &x->w);
	if (rc) {
		conn_respond_error(x->c, 503, rc == -EAGAIN ? "server busy" : "store unavailable",
		                   NULL);
		ctx_free(x);
	}
}

void api_thumbnail_get(struct api *a, struct conn *c, const struct http_request *req,
                       const struct router_match *m, const struct authz_principal *who)
{
	const char *site = router_param(m, "site"), *camera = router_param(m, "camera");
	if (!site || !vw_conf_id_valid(site)) {
		conn_respond_error(c, 404, "no such site", NULL);
		return;
	}
	struct authz_principal granted = *who; /* issue 12 D: an inspector's one site */
	if (authz_site_grant_or_refuse(a, c, &granted, site))
		return;
	struct thumb_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		conn_respond_error(c, 503, "server busy", NULL);
		return;
	}
	if (!site || !vw_conf_id_valid(site) || !camera ||
	    segment_decode(camera, x->camera, sizeof(x->camera) - 1)) {
		conn_respond_error(c, 404, "no such site", NULL);
		free(x);
		return;
	}
	int at = query_at(req->query, &x->asked_ms);
	if (at < 0) {
		conn_respond_error(c, 400, "bad parameter 'at'",
		                   "expected RFC 3339 (2026-12-02T09:30:00+08:00), "
		                   "YYYY-MM-DD HH:MM (Asia/Shanghai) or epoch milliseconds");
		free(x);
		return;
	}
	int busy = inflight_take(who->person.id, &x->slot);
	if (busy > 0) {
		static const char body[] =
		    "{\"error\":\"too many thumbnail requests\","
		    "\"detail\":\"at most " THUMB_STR(THUMB_INFLIGHT_MAX) " in flight per token\"}";
		struct inflight *e = x->slot;
		int64_t now = vw_mono_ms();
		e->refused++;
		if (!e->warned_ms || now - e->warned_ms >= 10000) {
			log_warn("event=thumbnail_throttled actor=%s:%s in_flight=%d refused=%ld",
			         auth_role_name(who->person.role), who->person.id,
			         THUMB_INFLIGHT_MAX, e->refused);
			e->warned_ms = now;
			e->refused = 0;
		}
		conn_respond(c, 429, "Retry-After: 1\r\n", body, sizeof(body) - 1);
		free(x);
		return;
	}
	if (busy < 0) { /* 256 principals each with requests in flight */
		conn_respond_error(c, 503, "server busy", NULL);
		free(x);
		return;
	}
	x->a = a;
	x->c = c;
	x->head = req->verb == HTTP_VERB_HEAD;
	x->who = granted;
	snprintf(x->site, sizeof(x->site), "%s", site);
	snprintf(x->actor, sizeof(x->actor), "%s:%s (%s)", auth_role_name(who->person.role),
	         who->person.id, who->person.name);
	snprintf(x->peer, sizeof(x->peer), "%s", conn_peer(c));
	int rc = store_thumbnail(a->store, x->site, x->camera, x->asked_ms, on_thumb, x);
	if (rc) {
		conn_respond_error(c, 503, rc == -EAGAIN ? "server busy" : "store unavailable",
		                   NULL);
		ctx_free(x);
	}
}
