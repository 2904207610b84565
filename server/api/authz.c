#include "authz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_int.h"
#include "inspect.h"
#include "inspections.h"
#include "log.h"
#include "seen.h"
#include "session.h"

unsigned authz_role_bit(enum auth_role r)
{
	switch (r) {
	case AUTH_PROVINCE:
		return AUTHZ_PROVINCE;
	case AUTH_CITY:
		return AUTHZ_CITY;
	case AUTH_ORG:
		return AUTHZ_ORG;
	case AUTH_INSPECTOR:
		return AUTHZ_INSPECTOR;
	case AUTH_PUBLIC:
		return AUTHZ_PUBLIC;
	case AUTH_METRICS:
		return AUTHZ_METRICS;
	}
	return 0; /* a role this build does not know admits nothing */
}

/* Agent paths: a verified certificate that names a site. Records the certificate the
 * first time it is used (certificate -> org, site, city). */
static int identify_agent(struct api *a, const struct conn *c, const struct http_request *req,
                          struct authz_principal *who)
{
	const struct tls_identity *id = conn_identity(c);
	if (!id->verified) {
		/* A certificate that failed to verify never gets here: the handshake refused
		 * it (event=tls_refused). This is a client that sent none. */
		api_log_refused(a, c, req, "cert=-", "no_certificate");
		return 401;
	}
	if (!id->site[0]) {
		api_log_refused(a, c, req, "cert=verified", "no_site_in_certificate");
		return 403;
	}
	/* Bookkeeping, not a gate: queued for a worker (a write may wait on auth.db's lock,
	 * never on the loop), once per serial; a failed write is logged there. */
	if (id->serial[0])
		seen_note(a->seen, id->serial, id->site, id->org, id->city, conn_peer(c));
	who->kind = AUTHZ_AGENT;
	who->agent = *id;
	return 0;
}

/* RFC 6750 2.1 only. The query-string form (2.3) puts the secret in every access log,
 * proxy log and browser history on the way; it is refused (query_has_token). */
int authz_bearer(const struct http_request *req, char *out, size_t outlen)
{
	const char *h = req->authorization;
	if (!h || !h[0])
		return -ENOENT;
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return -EINVAL;
	h += 7;
	while (*h == ' ')
		h++;
	if (strlen(h) >= outlen)
		return -EINVAL;
	snprintf(out, outlen, "%s", h);
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* n bytes of a query part, percent-decoded into out (room for n + 1). '+' stays as it is: it
 * is no part of the key or of a token either way. */
static size_t query_decode(const char *p, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (p[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)p[i + 1])) >= 0 &&
		    (lo = hexval((unsigned char)p[i + 2])) >= 0) {
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[o++] = p[i];
		}
	}
	out[o] = '\0';
	return o;
}

static int is_b64url(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* Whether s holds what a token looks like: "vwt_" or "vwe_" and 43 base64url characters
 * (auth.h), anywhere in it and in any case of the prefix. */
static int looks_like_token(const char *s, size_t n)
{
	for (size_t i = 0; i + 4 + 43 <= n; i++) {
		if (strncasecmp(s + i, "vwt_", 4) != 0 && strncasecmp(s + i, "vwe_", 4) != 0)
			continue;
		size_t k = 0;
		while (k < 43 && is_b64url((unsigned char)s[i + 4 + k]))
			k++;
		if (k == 43)
			return 1;
	}
	return 0;
}

/* A credential anywhere in the query string: an access_token key (percent-decoded, any
 * case; pairs split on '&' and on ';', which some servers and proxies also split on), or a
 * value (or bare key) that looks like one of our tokens, under whatever name. Exact matching
 * of "access_token=" alone let %61ccess_token, ACCESS_TOKEN and a=1;access_token= through. */
static int query_has_token(const char *q)
{
	static const char key[] = "access_token";
	if (!q || !q[0])
		return 0;
	size_t cap = strlen(q) + 1;
	char *part = malloc(cap);
	if (!part)
		return 1; /* fail closed: the request is refused, not let through unchecked */
	int found = 0;
	while (*q && !found) {
		size_t n = strcspn(q, "&;");
		const char *eq = memchr(q, '=', n);
		size_t kn = eq ? (size_t)(eq - q) : n;
		size_t dn = query_decode(q, kn, part);
		found = (dn == sizeof(key) - 1 && strcasecmp(part, key) == 0) ||
		        looks_like_token(part, dn);
		if (!found && eq) {
			dn = query_decode(eq + 1, n - kn - 1, part);
			found = looks_like_token(part, dn);
		}
		q += n + (q[n] ? 1 : 0);
	}
	explicit_bzero(part, cap); /* it may hold a token */
	free(part);
	return found;
}

const char *authz_credential_reason(int rc)
{
	switch (rc) {
	case -EKEYREVOKED:
		return "revoked_token";
	case -EKEYEXPIRED:
		return "expired_token";
	case -ETIMEDOUT:
		return "expired_session";
	default:
		return NULL;
	}
}

static const char *refusal_reason(int rc)
{
	const char *r = authz_credential_reason(rc);
	return r ? r : "unknown_token";
}

/* "https://host[:port]" against "host[:port]" (ASCII case-insensitive, RFC 6454 origins are
 * lower-case but Host need not be); the default port may be left out on either side. */
static int origin_is_host(const char *origin, const char *host)
{
	static const char scheme[] = "https://";
	if (!host[0] || strncasecmp(origin, scheme, sizeof(scheme) - 1) != 0)
		return 0;
	origin += sizeof(scheme) - 1;
	size_t ol = strlen(origin), hl = strlen(host);
	if (ol >= 4 && strcmp(origin + ol - 4, ":443") == 0)
		ol -= 4;
	if (hl >= 4 && strcmp(host + hl - 4, ":443") == 0)
		hl -= 4;
	return ol == hl && strncasecmp(origin, host, ol) == 0;
}

static int origin_listed(const char *origin, const char *list)
{
	for (const char *p = list; *p;) {
		const char *comma = strchr(p, ',');
		const char *b = p, *e = comma ? comma : p + strlen(p);
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '/'))
			e--;
		if (e > b && strlen(origin) == (size_t)(e - b) &&
		    strncasecmp(origin, b, (size_t)(e - b)) == 0)
			return 1;
		p = comma ? comma + 1 : e;
		if (!comma)
			break;
	}
	return 0;
}

int authz_origin_ok(const struct api *a, const struct http_request *req)
{
	if (!req->has_origin)
		/* Browsers that send no Origin on a same-origin request still send this (Fetch
		 * Metadata); a client sending neither is no browser we can vouch for. */
		return strcmp(req->sec_fetch_site, "same-origin") == 0;
	const char *origin = req->origin;
	if (strcmp(origin, "null") == 0 || strcmp(origin, "invalid") == 0)
		return 0;
	const struct session_opts *o = a->session ? session_opts(a->session) : NULL;
	if (o && o->origins && o->origins[0])
		return origin_listed(origin, o->origins);
	return origin_is_host(origin, req->host);
}

/* What kind of Origin a refused request sent, for the log: never the value, which the
 * client chose (a quote in it once forged fields in the line). */
static const char *origin_class(const struct http_request *req)
{
	if (!req->has_origin)
		return "none";
	if (strcmp(req->origin, "null") == 0)
		return "null";
	if (strcmp(req->origin, "invalid") == 0)
		return "invalid";
	return "foreign";
}

/* A checked person: the role gate, then the use noted (queued for the worker). */
static int admit_person(struct api *a, const struct conn *c, const struct http_request *req,
                        unsigned roles, struct authz_principal *who)
{
	who->kind = AUTHZ_PERSON;
	if (!(authz_role_bit(who->person.role) & roles)) {
		char w[64];
		snprintf(w, sizeof(w), "token=%s role=%s", who->person.id,
		         auth_role_name(who->person.role));
		api_log_refused(a, c, req, w,
		                roles & AUTHZ_SITE_READERS ? "role_reads_no_sites"
		                                           : "role_not_allowed");
		return 403;
	}
	if (a->session)
		session_note_use(a->session, &who->person, who->by_session ? &who->sess : NULL);
	return 0;
}

int authz_person_token(struct api *a, const struct conn *c, const struct http_request *req,
                       const char *token, struct authz_principal *who)
{
	if (!a->auth)
		return 503;
	int rc = auth_token_check(a->auth, token, &who->person);
	if (rc == -EIO)
		return 503;
	if (rc) {
		api_log_refused(a, c, req, "token=-", refusal_reason(rc));
		who->why = rc == -EKEYEXPIRED ? "this token has expired: ask for a new one" : NULL;
		return 401;
	}
	return admit_person(a, c, req, AUTHZ_PEOPLE, who);
}

static int identify_session(struct api *a, const struct conn *c, const struct http_request *req,
                            unsigned roles, struct authz_principal *who)
{
	who->clear_cookie = 1; /* whatever it was, a refused cookie is of no more use */
	if (req->session_cookies > 1) {
		/* Two __Host-vw_session cookies: one was planted (another path or a parent domain);
		 * picking either could log the person in as someone else. */
		api_log_refused(a, c, req, "session=-", "ambiguous_cookie");
		who->why = "more than one __Host-vw_session cookie: log in again";
		return 401;
	}
	if (!a->auth || !a->session)
		return 503;
	const struct session_opts *o = session_opts(a->session);
	int rc =
	    auth_session_check(a->auth, req->session_cookie, o->idle_ms, &who->person, &who->sess);
	if (rc == -EIO)
		return 503;
	if (rc) {
		api_log_refused(a, c, req, "session=-",
		                rc == -ENOENT ? "unknown_session" : refusal_reason(rc));
		who->why = "the session has ended: log in again (POST /api/v1/session)";
		return 401;
	}
	who->clear_cookie = 0;
	who->by_session = 1;
	/* A browser sends the cookie with requests other sites make it send (a form posted
	 * from elsewhere): SameSite=Strict stops most, this stops the rest. GET and HEAD
	 * change nothing. */
	if (req->verb != HTTP_VERB_GET && req->verb != HTTP_VERB_HEAD && !authz_origin_ok(a, req)) {
		char w[96];
		snprintf(w, sizeof(w), "token=%s origin=%s", who->person.id, origin_class(req));
		api_log_refused(a, c, req, w, "bad_origin");
		who->why = "a state-changing request with the session cookie must come from this "
		           "server's own origin";
		return 403;
	}
	return admit_person(a, c, req, roles, who);
}

static int identify_person(struct api *a, const struct conn *c, const struct http_request *req,
                           unsigned roles, struct authz_principal *who)
{
	char tok[AUTH_TOKEN_LEN + 16];
	int rc = authz_bearer(req, tok, sizeof(tok));
	if (rc == -ENOENT) {
		/* No token: the dashboard's cookie, if it sent one. An explicit Authorization
		 * wins over it (a script's own token, not a browser's ambient credential). */
		if (req->session_cookies)
			return identify_session(a, c, req, roles, who);
		log_debug("event=auth_refused peer=%s path=%.64s reason=no_token", conn_peer(c),
		          req->path);
		return 401;
	}
	if (!a->auth) {
		explicit_bzero(tok, sizeof(tok));
		return 503;
	}
	rc = rc ? -ENOENT : auth_token_check(a->auth, tok, &who->person);
	explicit_bzero(tok, sizeof(tok));
	if (rc == -EIO)
		return 503;
	if (rc) {
		api_log_refused(a, c, req, "token=-", refusal_reason(rc));
		if (rc == -EKEYEXPIRED)
			who->why = "this token has expired: ask for a new one";
		return 401;
	}
	return admit_person(a, c, req, roles, who);
}

int authz_identify(struct api *a, const struct conn *c, const struct http_request *req,
                   unsigned roles, struct authz_principal *who)
{
	memset(who, 0, sizeof(*who));
	who->kind = AUTHZ_ANONYMOUS;
	/* Before any route's own rules, anonymous ones included (a login's URL is logged as
	 * much as any other): the token in it has leaked already, so it is never used. */
	if (query_has_token(req->query)) {
		api_log_refused(a, c, req, "token=-", "token_in_query");
		who->why = "a token in the URL is not accepted (it would be logged): send "
		           "Authorization: Bearer TOKEN, or use the session cookie from POST "
		           "/api/v1/session";
		return 401;
	}
	if (roles & AUTHZ_ANON)
		return 0;
	if (roles & AUTHZ_AGENT_CERT)
		return identify_agent(a, c, req, who);
	if (roles & (AUTHZ_PEOPLE | AUTHZ_METRICS))
		return identify_person(a, c, req, roles, who);
	return 403; /* a route that admits nobody: fail closed */
}

/* The cookie's deletion: the same attributes it was set with, and Max-Age=0 (RFC 6265
 * 5.3 step 11 replaces the stored cookie, which then expires at once). */
const char authz_clear_cookie[] =
    "Set-Cookie: " SESSION_COOKIE "=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0\r\n";

void authz_respond(struct conn *c, int status, unsigned roles, const struct authz_principal *who)
{
	int people = !(roles & AUTHZ_AGENT_CERT);
	const char *why = who ? who->why : NULL;
	switch (status) {
	case 401:
		if (!people) {
			conn_respond_error(c, 401, "client certificate required", why);
		} else {
			char body[512], hdr[256];
			int n = snprintf(
			    body, sizeof(body),
			    "{\"error\":\"authentication required\",\"detail\":\"%s\"}",
			    why ? why
			        : "send Authorization: Bearer TOKEN, or the session cookie "
			          "from POST /api/v1/session");
			snprintf(hdr, sizeof(hdr),
			         "WWW-Authenticate: Bearer realm=\"venuewatch\"\r\n%s",
			         who && who->clear_cookie ? authz_clear_cookie : "");
			conn_respond(c, 401, hdr, body, (size_t)n);
		}
		break;
	case 403:
		if (!people)
			conn_respond_error(c, 403, "client certificate names no site", NULL);
		else if (why)
			conn_respond_error(c, 403, "forbidden", why);
		else if (roles & AUTHZ_SITE_READERS)
			conn_respond_error(c, 403, "forbidden",
			                   "this token's role reads no site data");
		else
			conn_respond_error(c, 403, "forbidden",
			                   "this token's role may not do this");
		break;
	default:
		conn_respond_error(c, 503, "access records unavailable", NULL);
		break;
	}
}

static int same(const char *a, const char *b)
{
	return a && b && a[0] && b[0] && strcmp(a, b) == 0;
}

int authz_site_visible(const struct authz_principal *who, const char *site, const char *org,
                       const char *city)
{
	switch (who->kind) {
	case AUTHZ_AGENT:
		return same(who->agent.site, site);
	case AUTHZ_PERSON:
		switch (who->person.role) {
		case AUTH_PROVINCE:
			return 1;
		case AUTH_CITY:
			return same(who->person.city, city);
		case AUTH_ORG:
			return same(who->person.org, org);
		case AUTH_INSPECTOR:
			return same(who->site_grant, site);
		case AUTH_PUBLIC:
		case AUTH_METRICS:
			return 0;
		}
		return 0;
	case AUTHZ_ANONYMOUS:
		break;
	}
	return 0;
}

int authz_site_grant_or_refuse(struct api *a, struct conn *c, struct authz_principal *who,
                               const char *site)
{
	int rc = authz_site_grant(a, who, site);
	if (rc == -ENOENT)
		conn_respond_error(c, 404, "no such site", NULL);
	else if (rc)
		conn_respond_error(c, 503, "inspections unavailable", NULL);
	return rc;
}

int authz_site_grant(struct api *a, struct authz_principal *who, const char *site)
{
	if (who->kind != AUTHZ_PERSON || who->person.role != AUTH_INSPECTOR)
		return 0;
	who->site_grant[0] = '\0';
	if (!site || !site[0] || strlen(site) >= sizeof(who->site_grant))
		return -ENOENT;
	int rc = a->inspect ? inspections_sees_site(a->inspect, who->person.inspector, site) : -EIO;
	if (rc < 0)
		return -EIO; /* fail closed */
	if (!rc)
		return -ENOENT;
	snprintf(who->site_grant, sizeof(who->site_grant), "%s", site);
	return 0;
}
