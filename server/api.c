#include "api.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ca.h"
#include "conf.h"
#include "log.h"
#include "vtime.h"

struct api {
	struct store *store;
	struct ingest *ingest;
	struct auth *auth; /* NULL: token-guarded paths fail closed */
	char *pki_dir;
	struct vw_log_limit refused_log;
};

/* A read response is built whole before it is sent; this bounds what one can cost. */
#define RESPONSE_MAX (64u << 20)
/* The uplink test: what the agent sends (2 MiB by default) with room to spare; the
 * connection's own body limit applies first. */
#define SPEEDTEST_MAX (8u << 20)
/* An enrollment is a token and a CSR of ~1 KiB (P-256) to ~4 KiB (RSA 4096). */
#define ENROLL_BODY_MAX (64u << 10)

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
	if (!a)
		return;
	free(a->pki_dir);
	free(a);
}

int api_set_auth(struct api *a, struct auth *auth, const char *pki_dir)
{
	char *p = strdup(pki_dir);
	if (!p)
		return -ENOMEM;
	free(a->pki_dir);
	a->pki_dir = p;
	a->auth = auth;
	return 0;
}

/* One warn line per refusal, rate-limited; never the token itself. */
static void log_refused(struct api *a, const struct conn *c, const struct http_request *req,
                        const char *who, const char *reason)
{
	unsigned suppressed = 0;
	if (vw_log_limit_ok(&a->refused_log, vw_mono_ms(), &suppressed))
		log_warn("event=auth_refused peer=%s path=%.64s %s reason=%s suppressed=%u",
		         conn_peer(c), req->path, who, reason, suppressed);
}

/* The bearer token: from "Authorization: Bearer T" when the HTTP layer passes that header
 * on, else from the access_token query parameter (RFC 6750 2.3). 0 with the token in out,
 * -ENOENT when none was sent, -EINVAL when it is malformed or sent twice. */
static int bearer(const struct http_request *req, char *out, size_t outlen)
{
	int found = 0;
#ifdef HTTP_HAVE_AUTHORIZATION
	const char *h = req->authorization;
	if (h && h[0]) {
		if (strncasecmp(h, "Bearer ", 7) != 0)
			return -EINVAL;
		h += 7;
		while (*h == ' ')
			h++;
		if (strlen(h) >= outlen)
			return -EINVAL;
		snprintf(out, outlen, "%s", h);
		found = 1;
	}
#endif
	static const char key[] = "access_token=";
	for (const char *q = req->query; q && *q;) {
		const char *amp = strchr(q, '&');
		size_t n = amp ? (size_t)(amp - q) : strlen(q);
		if (n >= sizeof(key) - 1 && strncmp(q, key, sizeof(key) - 1) == 0) {
			size_t vl = n - (sizeof(key) - 1);
			if (found || vl >= outlen)
				return -EINVAL; /* RFC 6750 2: one method only */
			memcpy(out, q + sizeof(key) - 1, vl);
			out[vl] = '\0';
			found = 1;
		}
		q += n + (amp ? 1 : 0);
	}
	return found ? 0 : -ENOENT;
}

int api_authorize(struct api *a, const struct conn *c, const struct http_request *req,
                  struct auth_principal *who)
{
	char tok[AUTH_TOKEN_LEN + 16];
	int rc = bearer(req, tok, sizeof(tok));
	if (rc == -ENOENT) {
		log_debug("event=auth_refused peer=%s path=%.64s reason=no_token", conn_peer(c),
		          req->path);
		return 401;
	}
	if (!a->auth) {
		explicit_bzero(tok, sizeof(tok));
		return 503;
	}
	rc = rc ? -ENOENT : auth_token_check(a->auth, tok, who);
	explicit_bzero(tok, sizeof(tok));
	if (rc == -EIO)
		return 503;
	if (rc) {
		log_refused(a, c, req, "token=-",
		            rc == -EKEYREVOKED ? "revoked_token" : "unknown_token");
		return 401;
	}
	/* public reads only published material, and nothing is published yet; inspectors
	 * read the targets a draw assigns them, and there are no draws yet. Both are refused
	 * rather than given a city's view they were never granted. */
	if (who->role == AUTH_PUBLIC || who->role == AUTH_INSPECTOR) {
		char w[64];
		snprintf(w, sizeof(w), "token=%s role=%s", who->id, auth_role_name(who->role));
		log_refused(a, c, req, w, "role_reads_no_sites");
		return 403;
	}
	return 0;
}

static void respond_auth_error(struct conn *c, int status)
{
	switch (status) {
	case 401: {
		static const char body[] = "{\"error\":\"authentication required\","
		                           "\"detail\":\"send Authorization: Bearer TOKEN\"}";
		conn_respond(c, 401, "WWW-Authenticate: Bearer realm=\"venuewatch\"\r\n", body,
		             sizeof(body) - 1);
		break;
	}
	case 403:
		conn_respond_error(c, 403, "forbidden", "this token's role reads no site data");
		break;
	default:
		conn_respond_error(c, 503, "access records unavailable", NULL);
		break;
	}
}

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

static void get_sites(struct api *a, struct conn *c, const struct auth_principal *who)
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

static void get_site(struct api *a, struct conn *c, const char *site,
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

static int only(struct conn *c, const struct http_request *req, enum http_verb verb)
{
	if (req->verb == verb)
		return 1;
	const char *allow = verb == HTTP_VERB_GET ? "Allow: GET\r\n" : "Allow: POST\r\n";
	static const char body[] = "{\"error\":\"method not allowed\"}";
	conn_respond(c, 405, allow, body, sizeof(body) - 1);
	return 0;
}

/* Agent paths: a verified certificate that names a site. Records the certificate the
 * first time it is used (certificate -> org, site, city). 1 when the request may go on. */
static int agent_ok(struct api *a, struct conn *c, const struct http_request *req)
{
	const struct tls_identity *id = conn_identity(c);
	if (!id->verified) {
		/* A certificate that failed to verify never gets here: the handshake refused
		 * it (event=tls_refused). This is a client that sent none. */
		log_refused(a, c, req, "cert=-", "no_certificate");
		conn_respond_error(c, 401, "client certificate required", NULL);
		return 0;
	}
	if (!id->site[0]) {
		log_refused(a, c, req, "cert=verified", "no_site_in_certificate");
		conn_respond_error(c, 403, "client certificate names no site", NULL);
		return 0;
	}
	/* Bookkeeping, not a gate: a failed write is logged by auth and the request goes on. */
	if (a->auth && id->serial[0])
		auth_agent_seen(a->auth, id->serial, id->site, id->org, id->city, conn_peer(c));
	return 1;
}

static void post_speedtest(struct api *a, struct conn *c, const struct http_request *req)
{
	if (!agent_ok(a, c, req))
		return;
	if (req->body_len > SPEEDTEST_MAX) {
		conn_respond_error(c, 413, "request body too large", NULL);
		return;
	}
	/* The body was read to measure the uplink; it is dropped with the request. */
	char body[48];
	int n = snprintf(body, sizeof(body), "{\"bytes\":%zu}", req->body_len);
	conn_respond(c, 200, NULL, body, (size_t)n);
}

static const char *enroll_reason(int rc)
{
	switch (rc) {
	case -ENOENT:
		return "unknown enrollment token";
	case -EALREADY:
		return "enrollment token already used";
	case -EKEYEXPIRED:
		return "enrollment token expired";
	default:
		return "enrollment refused";
	}
}

/* POST /api/v1/enroll {"token": T, "csr": PEM}: one certificate per one-time token, for the
 * site the token names (whatever the CSR's subject says). Runs on the loop thread: one
 * indexed read, a signature and two small commits, and it happens once per venue. */
static void post_enroll(struct api *a, struct conn *c, const struct http_request *req)
{
	char tok[AUTH_TOKEN_LEN + 16] = "";
	cJSON *root = NULL;
	char *cert = NULL, *ca = NULL;
	struct auth_enrollment e = {0};
	if (!a->auth) {
		conn_respond_error(c, 503, "access records unavailable", NULL);
		return;
	}
	if (req->body_len > ENROLL_BODY_MAX) {
		conn_respond_error(c, 413, "request body too large", NULL);
		return;
	}
	root = cJSON_ParseWithLength(req->body, req->body_len);
	const cJSON *jt = cJSON_GetObjectItemCaseSensitive(root, "token");
	const cJSON *jc = cJSON_GetObjectItemCaseSensitive(root, "csr");
	int rc = bearer(req, tok, sizeof(tok));
	if (rc == -ENOENT && cJSON_IsString(jt) && strlen(jt->valuestring) < sizeof(tok)) {
		snprintf(tok, sizeof(tok), "%s", jt->valuestring);
		rc = 0;
	}
	if (!root || !cJSON_IsString(jc) || rc) {
		conn_respond_error(c, 400, "invalid enrollment request",
		                   "expected {\"token\": \"vwe_...\", \"csr\": \"-----BEGIN "
		                   "CERTIFICATE REQUEST-----...\"}");
		goto out;
	}
	/* Checked before signing, consumed after: a forged token costs one indexed read and
	 * no write lock, and a bad CSR does not burn a good token. */
	char w[64];
	if ((rc = auth_enroll_check(a->auth, tok, &e)) != 0) {
		snprintf(w, sizeof(w), "token=%s", rc == -ENOENT ? "-" : e.id);
		log_refused(a, c, req, w,
		            rc == -ENOENT        ? "unknown_enroll_token"
		            : rc == -EALREADY    ? "enroll_token_used"
		            : rc == -EKEYEXPIRED ? "enroll_token_expired"
		                                 : "auth_db_error");
		if (rc == -EIO)
			conn_respond_error(c, 503, "access records unavailable", NULL);
		else
			conn_respond_error(c, 403, "enrollment refused", enroll_reason(rc));
		goto out;
	}
	char serial[64], err[256];
	int64_t not_after;
	rc = ca_sign_csr(a->pki_dir, jc->valuestring, strlen(jc->valuestring), e.site, e.org,
	                 e.city, &cert, &ca, serial, sizeof(serial), &not_after, err, sizeof(err));
	if (rc) {
		log_warn("event=enroll_failed peer=%s site=%s token=%s error=\"%s\"", conn_peer(c),
		         e.site, e.id, err);
		conn_respond_error(c, rc == -EINVAL ? 400 : 500,
		                   rc == -EINVAL ? "invalid certificate signing request"
		                                 : "cannot sign",
		                   rc == -EINVAL ? err : NULL);
		goto out;
	}
	/* Two requests with one token: the lock decides, the loser's certificate is dropped
	 * unsent. */
	if ((rc = auth_enroll_consume(a->auth, tok, conn_peer(c), &e)) != 0) {
		snprintf(w, sizeof(w), "token=%s", e.id);
		log_refused(a, c, req, w, "enroll_token_used");
		conn_respond_error(c, rc == -EIO ? 503 : 403, "enrollment refused",
		                   enroll_reason(rc));
		goto out;
	}
	char actor[96], detail[512];
	snprintf(actor, sizeof(actor), "enroll:%s", e.id);
	snprintf(detail, sizeof(detail), "serial=%s org=%s city=%s peer=%s", serial, e.org,
	         e.city[0] ? e.city : "-", conn_peer(c));
	if (auth_cert_record(a->auth, serial, e.site, e.org, e.city, not_after, "enroll") ||
	    auth_audit(a->auth, actor, "enroll", e.site, detail)) {
		/* Not on record means not revocable by site and not audited: do not hand it
		 * out. The token is spent; the operator issues another. */
		log_error("event=enroll_failed peer=%s site=%s token=%s error=not_recorded",
		          conn_peer(c), e.site, e.id);
		conn_respond_error(c, 503, "access records unavailable", NULL);
		goto out;
	}
	log_info("event=enrolled site=%s org=%s city=%s serial=%s peer=%s", e.site, e.org,
	         e.city[0] ? e.city : "-", serial, conn_peer(c));
	char iso[VW_ISO_LEN];
	vw_time_iso(not_after, iso);
	cJSON *resp = cJSON_CreateObject();
	char *text = NULL;
	if (resp && cJSON_AddStringToObject(resp, "site", e.site) &&
	    cJSON_AddStringToObject(resp, "org", e.org) &&
	    cJSON_AddStringToObject(resp, "city", e.city) &&
	    cJSON_AddStringToObject(resp, "serial", serial) &&
	    cJSON_AddStringToObject(resp, "not_after", iso) &&
	    cJSON_AddStringToObject(resp, "certificate", cert) &&
	    cJSON_AddStringToObject(resp, "ca", ca))
		text = cJSON_PrintUnformatted(resp);
	cJSON_Delete(resp);
	if (text)
		conn_respond(c, 200, NULL, text, strlen(text));
	else
		conn_respond_error(c, 500, "out of memory", NULL);
	free(text);
out:
	explicit_bzero(tok, sizeof(tok));
	free(cert);
	free(ca);
	cJSON_Delete(root);
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
		if (only(c, req, HTTP_VERB_POST) && agent_ok(a, c, req))
			ingest_handle(a->ingest, c, req);
		return;
	}
	if (strcmp(path, "/api/v1/speedtest") == 0) {
		if (only(c, req, HTTP_VERB_POST))
			post_speedtest(a, c, req);
		return;
	}
	if (strcmp(path, "/api/v1/enroll") == 0) {
		if (only(c, req, HTTP_VERB_POST))
			post_enroll(a, c, req);
		return;
	}
	int is_list = strcmp(path, "/api/v1/sites") == 0;
	int is_site = strncmp(path, sites_prefix, sizeof(sites_prefix) - 1) == 0 &&
	              path[sizeof(sites_prefix) - 1] &&
	              vw_conf_id_valid(path + sizeof(sites_prefix) - 1);
	if (!is_list && !is_site) {
		conn_respond_error(c, 404, "not found", NULL);
		return;
	}
	if (!only(c, req, HTTP_VERB_GET))
		return;
	struct auth_principal who;
	int deny = api_authorize(a, c, req, &who);
	if (deny) {
		respond_auth_error(c, deny);
		return;
	}
	if (is_list)
		get_sites(a, c, &who);
	else
		get_site(a, c, path + sizeof(sites_prefix) - 1, &who);
}
