/* api: the route table (api.c: method, path pattern, who is admitted, handler) and the
 * dispatch around it — 404 unknown path, 405 with Allow, 401/403 from authz, HEAD for every
 * GET, and the dashboard's static files for the rest. Agents (client certificate): POST
 * /api/v1/ingest, /api/v1/speedtest. Enrolling agents: POST /api/v1/enroll. People (bearer
 * token or session cookie): GET /api/v1/sites, /api/v1/sites.csv, /api/v1/sites/{site},
 * /api/v1/events; GET/DELETE /api/v1/session; exam sessions: POST/GET /api/v1/sessions,
 * GET/PATCH/DELETE /api/v1/sessions/{ref} (agents: GET /api/v1/agent/sessions). Anyone with a
 * token: POST /api/v1/session. Anyone: GET /healthz, / (the dashboard, when [web] root is set).
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
/* Borrowed; NULL turns the resource off (events: 503, web: 404). */
struct events;
struct web_static;
struct score_rubric;
struct published;
/* The [score] rubric (copied) and the published scores (NULL: publishing answers 503). */
void api_set_score(struct api *a, const struct score_rubric *rubric, struct published *published);
void api_set_events(struct api *a, struct events *events);
void api_set_web(struct api *a, struct web_static *web);
/* The dashboard's sessions (session.h); NULL: cookies are refused. Borrowed. */
struct session;
void api_set_session(struct api *a, struct session *session);
/* The conn_handler: ud is the struct api. */
void api_handle(void *ud, struct conn *c, const struct http_request *req);

#endif
