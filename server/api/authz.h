/* authz: who is asking and what they may see, decided in one place. A principal is an
 * agent (its verified client certificate: site, org, city), a person (a bearer token in
 * Authorization, or the dashboard's __Host-vw_session cookie: the same role and jurisdiction as the
 * token it came from) or anonymous; every resource asks authz_site_visible before it shows
 * a site. A state-changing request carried by the cookie must come from our own origin
 * (Origin, else Sec-Fetch-Site); a token in the URL is refused on every route. Loop thread only
 * (checks read the auth database's loop-thread connection). Principals are plain values: nothing to
 * free. */
#ifndef VW_AUTHZ_H
#define VW_AUTHZ_H

#include "auth.h"
#include "conn.h"
#include "http.h"

struct api;

enum authz_kind { AUTHZ_ANONYMOUS, AUTHZ_AGENT, AUTHZ_PERSON };

/* Who a route admits, as a bit set. */
#define AUTHZ_ANON (1u << 0)
#define AUTHZ_AGENT_CERT (1u << 1)
#define AUTHZ_PROVINCE (1u << 2)
#define AUTHZ_CITY (1u << 3)
#define AUTHZ_ORG (1u << 4)
#define AUTHZ_INSPECTOR (1u << 5)
#define AUTHZ_PUBLIC (1u << 6)
/* issue 14: the metrics role's bit, on GET /metrics only. Not among AUTHZ_PEOPLE: a route
 * must name it to admit a scraper (no dashboard login, no site data: fail closed). */
#define AUTHZ_METRICS (1u << 7)
#define AUTHZ_PEOPLE (AUTHZ_PROVINCE | AUTHZ_CITY | AUTHZ_ORG | AUTHZ_INSPECTOR | AUTHZ_PUBLIC)
/* The roles that read site data. public reads only published material (/public/). Inspectors
 * read only the sites their inspections assign them, on the per-site routes that add
 * AUTHZ_INSPECTOR and ask authz_site_grant — never lists, events or problems. */
#define AUTHZ_SITE_READERS (AUTHZ_PROVINCE | AUTHZ_CITY | AUTHZ_ORG)

struct authz_principal {
	enum authz_kind kind;
	struct tls_identity agent;    /* AUTHZ_AGENT */
	struct auth_principal person; /* AUTHZ_PERSON */
	int by_session;               /* the person came by the cookie: sess is theirs */
	/* issue 12 D: the one site an inspector's request may read, granted by
	 * authz_site_grant from his inspections (authz_site_visible shows him nothing else). */
	char site_grant[64];
	struct auth_session sess;
	/* After a refusal: the detail for the answer (static text), and whether to clear a
	 * session cookie the browser should stop sending. */
	const char *why;
	int clear_cookie;
};

/* The route-table bit of a person's role. */
unsigned authz_role_bit(enum auth_role r);
/* Establishes the principal a route admitting `roles` needs: 0 with *who filled, or the
 * status to refuse with — first, on any route, 401 for a query string holding access_token
 * (any case, percent-encoded, after '&' or ';') or a value shaped like a token; then
 * 401 (no or bad credential), 403 (authenticated, not admitted),
 * 503 (no access records). Refusals are logged (event=auth_refused, rate-limited). */
int authz_identify(struct api *a, const struct conn *c, const struct http_request *req,
                   unsigned roles, struct authz_principal *who);
/* The log reason for a credential that auth refused: revoked_token (-EKEYREVOKED),
 * expired_token (-EKEYEXPIRED), expired_session (-ETIMEDOUT); NULL for any other code. */
const char *authz_credential_reason(int rc);
/* Sends the refusal authz_identify decided: 401 with WWW-Authenticate on people's routes. */
void authz_respond(struct conn *c, int status, unsigned roles, const struct authz_principal *who);
/* "Set-Cookie: __Host-vw_session=; ...; Max-Age=0\r\n": ends the cookie in the browser. */
extern const char authz_clear_cookie[];
/* A person's token given some other way than Authorization (POST /api/v1/session's body):
 * checked, refusals logged, its use noted, as authz_identify would. 0, 401 or 503. */
int authz_person_token(struct api *a, const struct conn *c, const struct http_request *req,
                       const char *token, struct authz_principal *who);
/* Whether req comes from our own origin: Origin equals one of [web] origins, or (none
 * configured) https:// + Host; without Origin, Sec-Fetch-Site says same-origin. */
int authz_origin_ok(const struct api *a, const struct http_request *req);
/* The bearer token from Authorization: 0 with it in out, -ENOENT none sent, -EINVAL
 * malformed. The query string is never read (see authz_identify). */
int authz_bearer(const struct http_request *req, char *out, size_t outlen);
/* Whether who may see a site of this org and city (属地管理): province every site; city its
 * own city's; org its own org's; an agent its own site; nobody else any. Empty never
 * matches empty: a token or a site without a city (or org) matches nothing. */
int authz_site_visible(const struct authz_principal *who, const char *site, const char *org,
                       const char *city);
/* issue 12 D: the per-site routes' gate for the inspector role, asked by every handler of a
 * route that admits AUTHZ_INSPECTOR before it reads the store: for an inspector, whether an
 * inspection he is an active member of, in state assigned or recorded, covers site
 * (inspections_sees_site on inspect_reader); granted, who->site_grant = site and
 * authz_site_visible shows him that site only. 0 go on (every other principal: a no-op),
 * -ENOENT not his (answer 404, as for a site that does not exist), -EIO (503). */
int authz_site_grant(struct api *a, struct authz_principal *who, const char *site);
/* authz_site_grant, answering the refusal itself (404 or 503): non-zero means answered. */
int authz_site_grant_or_refuse(struct api *a, struct conn *c, struct authz_principal *who,
                               const char *site);

#endif
