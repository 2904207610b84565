#include "api_int.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ca.h"
#include "conf.h"
#include "seen.h"
#include "log.h"
#include "vtime.h"


/* The uplink test: what the agent sends (2 MiB by default) with room to spare; the
 * connection's own body limit applies first. */
#define SPEEDTEST_MAX (8u << 20)

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

void api_set_pki(struct api *a, struct signer *signer, struct seen *seen)
{
	a->signer = signer;
	a->seen = seen;
}

/* One warn line per refusal, rate-limited; never the token itself. */
void api_log_refused(struct api *a, const struct conn *c, const struct http_request *req,
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
int api_bearer(const struct http_request *req, char *out, size_t outlen)
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
	int rc = api_bearer(req, tok, sizeof(tok));
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
		api_log_refused(a, c, req, "token=-",
		            rc == -EKEYREVOKED ? "revoked_token" : "unknown_token");
		return 401;
	}
	/* public reads only published material, and nothing is published yet; inspectors
	 * read the targets a draw assigns them, and there are no draws yet. Both are refused
	 * rather than given a city's view they were never granted. */
	if (who->role == AUTH_PUBLIC || who->role == AUTH_INSPECTOR) {
		char w[64];
		snprintf(w, sizeof(w), "token=%s role=%s", who->id, auth_role_name(who->role));
		api_log_refused(a, c, req, w, "role_reads_no_sites");
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
		api_log_refused(a, c, req, "cert=-", "no_certificate");
		conn_respond_error(c, 401, "client certificate required", NULL);
		return 0;
	}
	if (!id->site[0]) {
		api_log_refused(a, c, req, "cert=verified", "no_site_in_certificate");
		conn_respond_error(c, 403, "client certificate names no site", NULL);
		return 0;
	}
	/* Bookkeeping, not a gate: queued for a worker (a write may wait on auth.db's lock,
	 * never on the loop), once per serial; a failed write is logged there. */
	if (id->serial[0])
		seen_note(a->seen, id->serial, id->site, id->org, id->city, conn_peer(c));
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
			api_enroll_post(a, c, req);
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
		api_sites_list(a, c, &who);
	else
		api_site_get(a, c, path + sizeof(sites_prefix) - 1, &who);
}
