/* router: the route table's matcher — a method and a path pattern of literal segments and
 * {name} parameters (each a valid id, vw_conf_id_valid) against a request line. Pure: no
 * I/O and no allocation, so it is unit-tested on its own. The table itself (which route
 * admits whom, which handler) lives in api.c. Any thread; a match borrows nothing. */
#ifndef VW_ROUTER_H
#define VW_ROUTER_H

#include <stddef.h>

#include "http.h"

#define ROUTER_MAX_PARAMS 4
#define ROUTER_PARAM_LEN 65 /* the longest id vw_conf_id_valid accepts, + NUL */

struct api;
struct conn;
struct authz_principal;
struct router_match;

typedef void (*router_handler)(struct api *a, struct conn *c, const struct http_request *req,
                               const struct router_match *m, const struct authz_principal *who);

struct router_route {
	enum http_verb verb; /* GET routes answer HEAD too */
	const char *pattern; /* "/api/v1/sites/{site}" */
	unsigned roles;      /* AUTHZ_* bits (authz.h) */
	router_handler handler;
};

/* Verbs as bits, for Allow. */
#define ROUTER_ALLOW_GET (1u << 0)
#define ROUTER_ALLOW_POST (1u << 1)
#define ROUTER_ALLOW_DELETE (1u << 2)
#define ROUTER_ALLOW_PATCH (1u << 3)

struct router_match {
	const struct router_route *route; /* NULL unless ROUTER_FOUND */
	unsigned allow;                   /* ROUTER_ALLOW_* of every route whose path matched */
	size_t nparams;
	const char *names[ROUTER_MAX_PARAMS]; /* points into the pattern, up to '}' */
	size_t name_len[ROUTER_MAX_PARAMS];
	char params[ROUTER_MAX_PARAMS][ROUTER_PARAM_LEN];
};

enum router_result { ROUTER_FOUND, ROUTER_NO_PATH, ROUTER_NO_METHOD };

/* First route whose pattern matches path and whose verb is verb (HEAD matches GET). A
 * parameter segment that is not a valid id matches nothing, so /api/v1/sites/..%2f is an
 * unknown path. NO_METHOD: the path exists, m->allow says with which verbs. */
enum router_result router_match(const struct router_route *table, size_t n, enum http_verb verb,
                                const char *path, struct router_match *m);
/* A parameter by name, or NULL. */
const char *router_param(const struct router_match *m, const char *name);
/* "Allow: GET, HEAD, POST\r\n" for the bits in allow. 0 or -ENOSPC. */
int router_allow_header(unsigned allow, char *out, size_t outlen);

#endif
