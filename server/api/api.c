#include "api_int.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ca.h"
#include "conf.h"
#include "events.h"
#include "inspections.h"
#include "log.h"
#include "session.h"
#include "static.h"
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
		score_rubric_default(&a->rubric);
		snprintf(a->outcomes, sizeof(a->outcomes), "%s", INSPECTIONS_OUTCOMES_DEFAULT);
		a->result_due_days = 20; /* until api_set_publication: [inspection]'s default */
		inspect_labels_parse("clear:未发现问题,rectify:责令整改,refer:移交处理",
		                     &a->outcome_labels, NULL, 0);
		char err[128];
		if (inspect_labels_parse(INSPECT_RISK_GRADES_DEFAULT, &a->risk_grades, err,
		                         sizeof(err)))
			log_error("event=bug what=risk_grades_default error=\"%s\"", err);
	}
	return a;
}

void api_destroy(struct api *a)
{
	if (!a)
		return;
	free(a->pki_dir);
	vw_buf_free(&a->sites_body);
	vw_buf_free(&a->metrics_body);
	calendar_free(&a->calendar);
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

/* The bearer token, from Authorization only (authz_bearer): never from the URL. */
int api_bearer(const struct http_request *req, char *out, size_t outlen)
{
	return authz_bearer(req, out, outlen);
}

void api_set_session(struct api *a, struct session *session)
{
	a->session = session;
}

void api_set_events(struct api *a, struct events *events)
{
	a->events = events;
}

void api_set_inspect(struct api *a, struct inspect *inspect)
{
	a->inspect = inspect;
}

int api_set_publication(struct api *a, struct calendar *cal, long result_due_days,
                        const char *outcomes)
{
	struct inspect_labels l = {0};
	char err[128];
	/* server_conf_load checked it already: a failure here is a caller's bug */
	if (outcomes && outcomes[0] && inspect_labels_parse(outcomes, &l, err, sizeof(err)))
		return -EINVAL;
	a->outcome_labels = l;
	calendar_free(&a->calendar);
	a->calendar = *cal;
	*cal = (struct calendar){0};
	a->result_due_days = result_due_days;
	return 0;
}

void api_set_capture(struct api *a, struct capture *capture, const char *outcomes)
{
	a->capture = capture;
	snprintf(a->outcomes, sizeof(a->outcomes), "%s",
	         outcomes ? outcomes : INSPECTIONS_OUTCOMES_DEFAULT);
}

void api_set_score(struct api *a, const struct score_rubric *rubric, struct published *published)
{
	a->rubric = *rubric;
	a->published = published;
}

void api_set_web(struct api *a, struct web_static *web)
{
	a->web = web;
}

/* --- handlers ---------------------------------------------------------------------------- */

static void get_healthz(struct api *a, struct conn *c, const struct http_request *req,
                        const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)m, (void)who;
	/* issue 13: which singleton jobs' leases this collector holds (on a store several
	 * collectors share; alone, it holds them all and says only "ok"); and a
	 * collector without its database cannot take results: 503, so that a load balancer
	 * sends agents elsewhere. Anonymous callers get the state, never the database's
	 * address or libpq's error (they are in the log). */
	struct store_avail av;
	store_get_avail(a->store, &av);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", av.up ? "ok" : "store_unavailable");
	if (!av.up) {
		cJSON *st = cJSON_AddObjectToObject(o, "store");
		cJSON_AddBoolToObject(st, "up", 0);
		cJSON_AddNumberToObject(st, "down_since_ms", (double)av.down_since_ms);
		cJSON_AddNumberToObject(st, "retry_in_ms", (double)av.retry_in_ms);
		cJSON_AddNumberToObject(st, "failed_attempts", (double)av.attempts);
	}
	if (a->store && store_shared(a->store)) { /* alone on its store: nothing to say */
		struct store_lease held[STORE_LEASES];
		store_leases(a->store, held);
		cJSON *l = cJSON_AddObjectToObject(o, "leases");
		for (int i = 0; i < STORE_LEASES; i++)
			cJSON_AddBoolToObject(l, store_lease_names[i], held[i].held);
	}
	char *body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!body) {
		conn_respond_error(c, 503, "out of memory", NULL);
		return;
	}
	char ra[40];
	snprintf(ra, sizeof(ra), "Retry-After: %d\r\n", store_avail_retry_s(&av));
	conn_respond(c, av.up ? 200 : 503, av.up ? NULL : ra, body, strlen(body));
	cJSON_free(body);
}

static void post_ingest(struct api *a, struct conn *c, const struct http_request *req,
                        const struct router_match *m, const struct authz_principal *who)
{
	(void)m, (void)who;
	ingest_handle(a->ingest, c, req);
}

static void post_speedtest(struct api *a, struct conn *c, const struct http_request *req,
                           const struct router_match *m, const struct authz_principal *who)
{
	(void)a, (void)m, (void)who;
	if (req->body_len > SPEEDTEST_MAX) {
		conn_respond_error(c, 413, "request body too large", NULL);
		return;
	}
	/* The body was read to measure the uplink; it is dropped with the request. */
	char body[48];
	int n = snprintf(body, sizeof(body), "{\"bytes\":%zu}", req->body_len);
	conn_respond(c, 200, NULL, body, (size_t)n);
}

static void post_enroll(struct api *a, struct conn *c, const struct http_request *req,
                        const struct router_match *m, const struct authz_principal *who)
{
	(void)m, (void)who;
	api_enroll_post(a, c, req); /* the one-time token in the body is its credential */
}

static void get_events(struct api *a, struct conn *c, const struct http_request *req,
                       const struct router_match *m, const struct authz_principal *who)
{
	(void)m;
	if (!a->events) {
		conn_respond_error(c, 503, "event stream unavailable", NULL);
		return;
	}
	events_subscribe(a->events, c, who, req->last_event_id);
}

/* The route table: every path the collector answers, who may ask, and the handler. A GET
 * route answers HEAD too; a path with no route for the method gets 405 and Allow. */
static const struct router_route routes[] = {
    {HTTP_VERB_GET, "/healthz", AUTHZ_ANON, get_healthz},
    /* issue 14: the Prometheus scrape — the metrics role only (no other role reads it, and
     * that role reads nothing else), or a [metrics] allow address without a credential. */
    {HTTP_VERB_GET, "/metrics", AUTHZ_METRICS, api_metrics_get},
    {HTTP_VERB_POST, "/api/v1/ingest", AUTHZ_AGENT_CERT, post_ingest},
    {HTTP_VERB_POST, "/api/v1/speedtest", AUTHZ_AGENT_CERT, post_speedtest},
    {HTTP_VERB_POST, "/api/v1/enroll", AUTHZ_ANON, post_enroll},
    {HTTP_VERB_GET, "/api/v1/sites", AUTHZ_SITE_READERS, api_sites_list},
    {HTTP_VERB_GET, "/api/v1/sites.csv", AUTHZ_SITE_READERS, api_sites_csv},
    /* issue 12 D: the per-site routes also admit an inspector, for the sites of his
     * inspections only (authz_site_grant in each handler). */
    {HTTP_VERB_GET, "/api/v1/sites/{site}", AUTHZ_SITE_READERS | AUTHZ_INSPECTOR, api_site_get},
    {HTTP_VERB_GET, "/api/v1/events", AUTHZ_SITE_READERS, get_events},
    /* Exam sessions (exams.c): planned by the org for its own sites, or by the city or
     * province; agents read their own site's. */
    {HTTP_VERB_POST, "/api/v1/sessions", AUTHZ_SITE_READERS, api_exams_post},
    {HTTP_VERB_GET, "/api/v1/sessions", AUTHZ_SITE_READERS, api_exams_list},
    {HTTP_VERB_GET, "/api/v1/sessions/{ref}", AUTHZ_SITE_READERS, api_exam_get},
    {HTTP_VERB_PATCH, "/api/v1/sessions/{ref}", AUTHZ_SITE_READERS, api_exam_patch},
    {HTTP_VERB_DELETE, "/api/v1/sessions/{ref}", AUTHZ_SITE_READERS, api_exam_delete},
    {HTTP_VERB_GET, "/api/v1/agent/sessions", AUTHZ_AGENT_CERT, api_agent_sessions},
    /* Item 3.6 (api/score.c). Publishing is the supervisors' act, never the org's own. */
    {HTTP_VERB_GET, "/api/v1/orgs/{org}/score", AUTHZ_SITE_READERS, api_score_org},
    {HTTP_VERB_POST, "/api/v1/orgs/{org}/score/publish", AUTHZ_PROVINCE | AUTHZ_CITY,
     api_score_publish},
    {HTTP_VERB_GET, "/api/v1/orgs/{org}/score/published", AUTHZ_SITE_READERS, api_score_published},
    {HTTP_VERB_GET, "/api/v1/orgs/{org}/report.html", AUTHZ_SITE_READERS, api_score_report_html},
    {HTTP_VERB_GET, "/api/v1/orgs/{org}/report.csv", AUTHZ_SITE_READERS, api_score_report_csv},
    {HTTP_VERB_GET, "/api/v1/sites/{site}/score", AUTHZ_SITE_READERS | AUTHZ_INSPECTOR,
     api_score_site},
    {HTTP_VERB_GET, "/api/v1/score/ranking", AUTHZ_SITE_READERS, api_score_ranking},
    {HTTP_VERB_GET, "/api/v1/evidence/{id}", AUTHZ_SITE_READERS, api_evidence_get},
    /* issue 16 E: a site's history (api/history.c). */
    {HTTP_VERB_GET, "/api/v1/sites/{site}/history", AUTHZ_SITE_READERS | AUTHZ_INSPECTOR,
     api_site_history},
    /* issue 16 (A, api/problems.c): problems and their ack (the supervisors', never the
     * org's own), and the labels of every code, which anyone may read (no site data). */
    {HTTP_VERB_GET, "/api/v1/problems", AUTHZ_SITE_READERS, api_problems_list},
    {HTTP_VERB_POST, "/api/v1/problems/{id}/ack", AUTHZ_PROVINCE | AUTHZ_CITY, api_problem_ack},
    {HTTP_VERB_GET, "/api/v1/labels", AUTHZ_ANON, api_labels_get},
    /* issue 16 C: picture evidence (api/thumbs.c). Personal information: the site's readers
     * only, never public, every access recorded. */
    {HTTP_VERB_GET, "/api/v1/sites/{site}/cameras/{camera}/thumbnail",
     AUTHZ_SITE_READERS | AUTHZ_INSPECTOR, api_thumbnail_get},
    /* Issue 16 D: notification delivery state (notifications.c), for the supervisors. */
    {HTTP_VERB_GET, "/api/v1/notifications", AUTHZ_PROVINCE | AUTHZ_CITY, api_notifications_list},
    /* Issue 12 C: the double-random draws (api/draws.c); a city's are its city's only. */
    {HTTP_VERB_POST, "/api/v1/draws", AUTHZ_PROVINCE | AUTHZ_CITY, api_draws_post},
    {HTTP_VERB_GET, "/api/v1/draws", AUTHZ_PROVINCE | AUTHZ_CITY, api_draws_list},
    {HTTP_VERB_GET, "/api/v1/draws/{id}", AUTHZ_PROVINCE | AUTHZ_CITY, api_draw_get},
    {HTTP_VERB_GET, "/api/v1/draws/{id}/document", AUTHZ_PROVINCE | AUTHZ_CITY, api_draw_document},
    {HTTP_VERB_POST, "/api/v1/draws/{id}/commit", AUTHZ_PROVINCE | AUTHZ_CITY, api_draw_commit},
    {HTTP_VERB_POST, "/api/v1/draws/{id}/execute", AUTHZ_PROVINCE | AUTHZ_CITY, api_draw_execute},
    {HTTP_VERB_POST, "/api/v1/draws/{id}/replace", AUTHZ_PROVINCE | AUTHZ_CITY, api_draw_replace},
    {HTTP_VERB_POST, "/api/v1/draws/{id}/publish", AUTHZ_PROVINCE | AUTHZ_CITY, api_draw_publish},
    /* issue 12 D: inspections (api/inspections.c). The inspectors record and confirm; the
     * bureau (city in scope, province) publishes. */
    {HTTP_VERB_GET, "/api/v1/inspections", AUTHZ_PROVINCE | AUTHZ_CITY | AUTHZ_INSPECTOR,
     api_inspections_list},
    {HTTP_VERB_GET, "/api/v1/inspections/{id}", AUTHZ_PROVINCE | AUTHZ_CITY | AUTHZ_INSPECTOR,
     api_inspection_get},
    {HTTP_VERB_GET, "/api/v1/inspections/{id}/evidence/{eid}",
     AUTHZ_PROVINCE | AUTHZ_CITY | AUTHZ_INSPECTOR, api_inspection_evidence},
    {HTTP_VERB_POST, "/api/v1/inspections/{id}/result", AUTHZ_INSPECTOR, api_inspection_result},
    {HTTP_VERB_POST, "/api/v1/inspections/{id}/confirm", AUTHZ_INSPECTOR, api_inspection_confirm},
    {HTTP_VERB_POST, "/api/v1/inspections/{id}/publish", AUTHZ_PROVINCE | AUTHZ_CITY,
     api_inspection_publish},
    {HTTP_VERB_POST, "/api/v1/inspections/{id}/capture", AUTHZ_INSPECTOR, api_inspection_capture},
    /* Issue 12 C: the double-random draws (api/draws.c); a city's are its city's only. */
    {HTTP_VERB_POST, "/api/v1/draws", AUTHZ_PROVINCE | AUTHZ_CITY, api_draws_post},
    {HTTP_VERB_GET, "/api/v1/draws", AUTHZ_PROVINCE | AUTHZ_CITY, api_draws_list},
    {HTTP_VERB_GET, "/api/v1/draws/{id}", AUTHZ_PROVINCE | AUTHZ_CITY, api_draw_get},
    {HTTP_VERB_GET, "/api/v1/draws/{id}/document", AUTHZ_PROVINCE | AUTHZ_CITY, api_draw_document},
    {HTTP_VERB_POST, "/api/v1/draws/{id}/commit", AUTHZ_PROVINCE | AUTHZ_CITY, api_draw_commit},
    {HTTP_VERB_POST, "/api/v1/draws/{id}/execute", AUTHZ_PROVINCE | AUTHZ_CITY, api_draw_execute},
    {HTTP_VERB_POST, "/api/v1/draws/{id}/replace", AUTHZ_PROVINCE | AUTHZ_CITY, api_draw_replace},
    {HTTP_VERB_POST, "/api/v1/draws/{id}/publish", AUTHZ_PROVINCE | AUTHZ_CITY, api_draw_publish},
    /* issue 12 B: the registers (registers.c); "changes" before {register}, which also
     * takes "targets.csv" (the export). */
    {HTTP_VERB_GET, "/api/v1/registers/changes", AUTHZ_PROVINCE | AUTHZ_CITY,
     api_registers_changes},
    {HTTP_VERB_GET, "/api/v1/registers/{register}", AUTHZ_PROVINCE | AUTHZ_CITY, api_registers_get},
    {HTTP_VERB_POST, "/api/v1/registers/{register}", AUTHZ_PROVINCE | AUTHZ_CITY,
     api_registers_post},
    {HTTP_VERB_POST, "/api/v1/registers/{register}/import", AUTHZ_PROVINCE | AUTHZ_CITY,
     api_registers_import},
    {HTTP_VERB_DELETE, "/api/v1/registers/{register}/{key}", AUTHZ_PROVINCE | AUTHZ_CITY,
     api_registers_delete},
    /* The dashboard's login: the token is the credential (session.c checks it). */
    {HTTP_VERB_POST, "/api/v1/session", AUTHZ_ANON, session_post},
    {HTTP_VERB_GET, "/api/v1/session", AUTHZ_PEOPLE, session_get},
    {HTTP_VERB_DELETE, "/api/v1/session", AUTHZ_PEOPLE, session_delete},
    /* issue 12 E: 一公开 (public.c) — anyone, no login; only what publication.c whitelists. */
    {HTTP_VERB_GET, "/public", AUTHZ_ANON, api_public_redirect},
    {HTTP_VERB_GET, "/public/", AUTHZ_ANON, api_public_index},
    {HTTP_VERB_GET, "/public/draws/{id}", AUTHZ_ANON, api_public_draw},
    {HTTP_VERB_GET, "/public/results.csv", AUTHZ_ANON, api_public_results_csv},
    {HTTP_VERB_GET, "/public/api/draws", AUTHZ_ANON, api_public_draws_json},
    {HTTP_VERB_GET, "/public/api/draws/{id}", AUTHZ_ANON, api_public_draw_json},
    {HTTP_VERB_GET, "/public/api/draws/{id}/document", AUTHZ_ANON, api_public_document},
    {HTTP_VERB_GET, "/public/api/results", AUTHZ_ANON, api_public_results_json},
};

static void method_not_allowed(struct conn *c, unsigned allow)
{
	char hdr[64];
	static const char body[] = "{\"error\":\"method not allowed\"}";
	if (router_allow_header(allow, hdr, sizeof(hdr)))
		hdr[0] = '\0';
	conn_respond(c, 405, hdr, body, sizeof(body) - 1);
}

void api_handle(void *ud, struct conn *c, const struct http_request *req)
{
	struct api *a = ud;
	struct router_match m;
	switch (
	    router_match(routes, sizeof(routes) / sizeof(routes[0]), req->verb, req->path, &m)) {
	case ROUTER_FOUND:
		break;
	case ROUTER_NO_METHOD:
		method_not_allowed(c, m.allow);
		return;
	case ROUTER_NO_PATH:
		/* The dashboard owns everything outside the API; the API's unknown paths are
		 * plain 404s, never the dashboard's index.html. */
		if (a->web && strncmp(req->path, "/api/", 5) != 0 &&
		    strcmp(req->path, "/api") != 0) {
			struct authz_principal anon;
			/* Anonymous, but a token in the URL is refused here too (authz_identify).
			 */
			int deny = authz_identify(a, c, req, AUTHZ_ANON, &anon);
			if (deny)
				authz_respond(c, deny, AUTHZ_ANON, &anon);
			else if (req->verb == HTTP_VERB_GET || req->verb == HTTP_VERB_HEAD)
				static_serve(a->web, c, req);
			else
				method_not_allowed(c, ROUTER_ALLOW_GET);
			return;
		}
		conn_respond_error(c, 404, "not found", NULL);
		return;
	}
	struct authz_principal who;
	unsigned roles = m.route->roles;
	/* An allowed address's scrape is anonymous; authz_identify still refuses a token in
	 * its URL. */
	if ((roles & AUTHZ_METRICS) && api_metrics_peer_allowed(a, c, req))
		roles = AUTHZ_ANON;
	int deny = authz_identify(a, c, req, roles, &who);
	if (deny) {
		authz_respond(c, deny, m.route->roles, &who);
		return;
	}
	m.route->handler(a, c, req, &m, &who);
}
