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
struct inspect;
/* issue 12: the inspections' records (NULL: their routes answer 503). */
void api_set_inspect(struct api *a, struct inspect *inspect);
/* issue 12 E: the results' deadline for /public/ and the inspections' due dates — cal's days
 * (taken over: the api frees them; cal is left empty), result_due_days, and the outcomes'
 * id:label list (parsed; server_conf_load checked it). 0 or -EINVAL. */
struct calendar;
int api_set_publication(struct api *a, struct calendar *cal, long result_due_days,
                        const char *outcomes);
/* issue 12 D: the remote checks' capture (manual captures answer 503 without it) and the
 * [inspection] outcomes a result may name (copied; NULL keeps the default); the site
 * renderer the capture keeps the status evidence with (GET /api/v1/sites/{site}'s JSON). */
struct capture;
struct vw_buf;
struct store_reply;
void api_set_capture(struct api *a, struct capture *capture, const char *outcomes);
void api_site_render(struct vw_buf *b, const struct store_reply *r);
/* issue 12 B: the risk grades targets are checked against (default
 * INSPECT_RISK_GRADES_DEFAULT); copied. */
struct inspect_labels;
void api_set_risk_grades(struct api *a, const struct inspect_labels *risk);
/* The [score] rubric (copied) and the published scores (NULL: publishing answers 503). */
void api_set_score(struct api *a, const struct score_rubric *rubric, struct published *published);
void api_set_events(struct api *a, struct events *events);
void api_set_web(struct api *a, struct web_static *web);
/* The dashboard's sessions (session.h); NULL: cookies are refused. Borrowed. */
struct session;
void api_set_session(struct api *a, struct session *session);
/* issue 14: GET /metrics's sources (borrowed; NULL: 503) and the [metrics] allow list
 * (copied; NULL: token only). */
struct metrics_sources;
struct metrics_allow;
void api_set_metrics(struct api *a, const struct metrics_sources *src,
                     const struct metrics_allow *allow);
/* The conn_handler: ud is the struct api. */
void api_handle(void *ud, struct conn *c, const struct http_request *req);

#endif
