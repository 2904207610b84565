#include "authz.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api_int.h"
#include "log.h"
#include "seen.h"

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

static int identify_person(struct api *a, const struct conn *c, const struct http_request *req,
                           unsigned roles, struct authz_principal *who)
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
	rc = rc ? -ENOENT : auth_token_check(a->auth, tok, &who->person);
	explicit_bzero(tok, sizeof(tok));
	if (rc == -EIO)
		return 503;
	if (rc) {
		api_log_refused(a, c, req, "token=-",
		                rc == -EKEYREVOKED ? "revoked_token" : "unknown_token");
		return 401;
	}
	who->kind = AUTHZ_PERSON;
	if (!(authz_role_bit(who->person.role) & roles)) {
		char w[64];
		snprintf(w, sizeof(w), "token=%s role=%s", who->person.id,
		         auth_role_name(who->person.role));
		api_log_refused(a, c, req, w,
		                roles & AUTHZ_SITE_READERS ? "role_reads_no_sites" : "role_not_allowed");
		return 403;
	}
	return 0;
}

int authz_identify(struct api *a, const struct conn *c, const struct http_request *req,
                   unsigned roles, struct authz_principal *who)
{
	memset(who, 0, sizeof(*who));
	who->kind = AUTHZ_ANONYMOUS;
	if (roles & AUTHZ_ANON)
		return 0;
	if (roles & AUTHZ_AGENT_CERT)
		return identify_agent(a, c, req, who);
	if (roles & AUTHZ_PEOPLE)
		return identify_person(a, c, req, roles, who);
	return 403; /* a route that admits nobody: fail closed */
}

void authz_respond(struct conn *c, int status, unsigned roles)
{
	int people = !(roles & AUTHZ_AGENT_CERT);
	switch (status) {
	case 401:
		if (!people) {
			conn_respond_error(c, 401, "client certificate required", NULL);
		} else {
			static const char body[] = "{\"error\":\"authentication required\","
			                           "\"detail\":\"send Authorization: Bearer TOKEN\"}";
			conn_respond(c, 401, "WWW-Authenticate: Bearer realm=\"venuewatch\"\r\n", body,
			             sizeof(body) - 1);
		}
		break;
	case 403:
		if (!people)
			conn_respond_error(c, 403, "client certificate names no site", NULL);
		else if (roles & AUTHZ_SITE_READERS)
			conn_respond_error(c, 403, "forbidden", "this token's role reads no site data");
		else
			conn_respond_error(c, 403, "forbidden", "this token's role may not do this");
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
		case AUTH_PUBLIC:
			return 0;
		}
		return 0;
	case AUTHZ_ANONYMOUS:
		break;
	}
	return 0;
}
