/* api: request routing and who may make which request. Agents (client certificate):
 * POST /api/v1/ingest (passed to ingest), POST /api/v1/speedtest. Enrolling agents (one-time
 * token, no certificate yet): POST /api/v1/enroll. People (bearer token with a role and a
 * jurisdiction): GET /api/v1/sites, /api/v1/sites/{site}. Anyone: GET /healthz.
 * Loop thread only; reads go through the store's read-only connection and the auth
 * database's loop-thread connection. The api object holds borrowed pointers (store,
 * ingest, auth, signer, seen) and is freed by api_destroy. */
#ifndef VW_API_H
#define VW_API_H

#include "auth.h"
#include "conn.h"
#include "ingest.h"
#include "store.h"

struct api;

struct api *api_create(struct store *store, struct ingest *ingest);
void api_destroy(struct api *a); /* accepts NULL */
/* Without it every token-guarded path answers 503: no access records, no access. pki_dir
 * (copied) holds the CA that signs enrollments. 0 or -ENOMEM. */
int api_set_auth(struct api *a, struct auth *auth, const char *pki_dir);
struct signer;
struct seen;
/* The signer that redeems enrollments (without it, or while it is down, enrollment answers
 * 503) and the worker that records agents' first use. Borrowed. */
void api_set_pki(struct api *a, struct signer *signer, struct seen *seen);
/* The conn_handler: ud is the struct api. */
void api_handle(void *ud, struct conn *c, const struct http_request *req);
/* Whether this person may read the sites API: 0 with *who filled, or the HTTP status to
 * refuse with (401 no or bad token, 403 a role that reads no sites, 503 no records). */
int api_authorize(struct api *a, const struct conn *c, const struct http_request *req,
                  struct auth_principal *who);

#endif
