/* api_int: what the api/ files share — the api object and the helpers every resource uses.
 * Loop thread only. Not for use outside server/api/. */
#ifndef VW_API_INT_H
#define VW_API_INT_H

#include "api.h"
#include "authz.h"
#include "calendar.h"
#include "labels.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "score.h"

struct api {
	struct store *store;
	struct ingest *ingest;
	struct auth *auth; /* NULL: token-guarded paths fail closed */
	char *pki_dir;
	struct signer *signer;   /* NULL or down: enrollment answers 503 */
	struct seen *seen;       /* NULL: agents' first use is not recorded */
	struct events *events;   /* NULL: /api/v1/events answers 503 */
	struct web_static *web;  /* NULL: no dashboard, / and below are 404 */
	struct session *session; /* NULL: no cookie logins (cookies refused) */
	struct vw_log_limit refused_log;
	/* [score] (the defaults until api_set_score), and the published scores (NULL:
	 * publishing answers 503). */
	struct score_rubric rubric;
	struct published *published;
	struct inspect *inspect;           /* issue 12: NULL answers 503 */
	struct inspect_labels risk_grades; /* issue 12 B: [inspection] risk_grades */
	struct capture *capture; /* issue 12 D: remote checks' capture (NULL: manual capture 503) */
	char outcomes[1200];     /* issue 12 D: [inspection] outcomes (16 x (31 + 1 + 63 + 1)) */
	/* issue 12 E: the results' deadline — the holidays ([inspection] holidays, loaded at
	 * start), result_due_days and the outcomes' labels (parsed) — for /public/ (public.c). */
	struct calendar calendar;
	long result_due_days;
	struct inspect_labels outcome_labels;
	/* issue 16 E2: the sites list's body, kept between requests so a province's ~1 MB is
	 * not fresh memory (page faults) every time; loop thread only (sites.c). */
	struct vw_buf sites_body;
	/* issue 14: GET /metrics — the sources (NULL: 503), the addresses let in without a
	 * token, and the body kept between scrapes (api/metrics.c). */
	const struct metrics_sources *metrics;
	struct metrics_allow metrics_allow;
	struct vw_buf metrics_body;
};

/* One warn line per refusal, rate-limited; never the token itself. */
void api_log_refused(struct api *a, const struct conn *c, const struct http_request *req,
                     const char *who, const char *reason);
/* The bearer token from the request: 0 with the token in out, -ENOENT when none was sent,
 * -EINVAL when it is malformed or sent twice. */
int api_bearer(const struct http_request *req, char *out, size_t outlen);

/* issue 14: api/metrics.c. Whether a request without any credential comes from a [metrics]
 * allow address (then GET /metrics needs no token). */
int api_metrics_peer_allowed(const struct api *a, const struct conn *c,
                             const struct http_request *req);
void api_metrics_get(struct api *a, struct conn *c, const struct http_request *req,
                     const struct router_match *m, const struct authz_principal *who);
/* Resources (one file each), as route handlers (router.h). */
void api_sites_list(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who);
void api_sites_csv(struct api *a, struct conn *c, const struct http_request *req,
                   const struct router_match *m, const struct authz_principal *who);
void api_site_get(struct api *a, struct conn *c, const struct http_request *req,
                  const struct router_match *m, const struct authz_principal *who);
/* exams.c: exam sessions (docs/API.md "Exam sessions"). */
void api_exams_post(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who);
void api_exams_list(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who);
void api_exam_get(struct api *a, struct conn *c, const struct http_request *req,
                  const struct router_match *m, const struct authz_principal *who);
void api_exam_patch(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who);
void api_exam_delete(struct api *a, struct conn *c, const struct http_request *req,
                     const struct router_match *m, const struct authz_principal *who);
void api_agent_sessions(struct api *a, struct conn *c, const struct http_request *req,
                        const struct router_match *m, const struct authz_principal *who);
/* HTML text and attribute escaping (& < > " '), for the server-rendered pages (score.c). */
void api_html_esc(struct vw_buf *b, const char *s);
/* api/score.c: the item-3.6 score, its evidence, publishing and the report. */
void api_score_org(struct api *a, struct conn *c, const struct http_request *req,
                   const struct router_match *m, const struct authz_principal *who);
void api_score_site(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who);
void api_score_ranking(struct api *a, struct conn *c, const struct http_request *req,
                       const struct router_match *m, const struct authz_principal *who);
void api_score_publish(struct api *a, struct conn *c, const struct http_request *req,
                       const struct router_match *m, const struct authz_principal *who);
void api_score_published(struct api *a, struct conn *c, const struct http_request *req,
                         const struct router_match *m, const struct authz_principal *who);
void api_score_report_html(struct api *a, struct conn *c, const struct http_request *req,
                           const struct router_match *m, const struct authz_principal *who);
void api_score_report_csv(struct api *a, struct conn *c, const struct http_request *req,
                          const struct router_match *m, const struct authz_principal *who);
void api_evidence_get(struct api *a, struct conn *c, const struct http_request *req,
                      const struct router_match *m, const struct authz_principal *who);
/* issue 16 D: notifications.c, GET /api/v1/notifications. */
void api_notifications_list(struct api *a, struct conn *c, const struct http_request *req,
                            const struct router_match *m, const struct authz_principal *who);
/* --- issue 16 E: history.c --- */
void api_site_history(struct api *a, struct conn *c, const struct http_request *req,
                      const struct router_match *m, const struct authz_principal *who);
/* The history cursor names the last row of the page before (its check time and results
 * id) as "h1.<ts hex>.<id hex>"; clients treat it as opaque. parse: 0 or -EINVAL. */
#define API_HISTORY_CURSOR_LEN 48
void api_history_cursor_format(char out[API_HISTORY_CURSOR_LEN], int64_t ts_ms, int64_t id);
int api_history_cursor_parse(const char *s, int64_t *ts_ms, int64_t *id);
void api_enroll_post(struct api *a, struct conn *c, const struct http_request *req);
/* The query string's key, percent-decoded: 1 found, 0 absent, -1 too long or malformed;
 * a time as the API takes it (RFC 3339, local "YYYY-MM-DD HH:MM", a local date). exams.c. */
int api_query_get(const char *q, const char *key, char *out, size_t outlen);
int api_query_time(const char *v, int64_t *ms);
/* problems.c (issue 16, A): problems, their ack, the labels table. */
void api_problems_list(struct api *a, struct conn *c, const struct http_request *req,
                       const struct router_match *m, const struct authz_principal *who);
void api_problem_ack(struct api *a, struct conn *c, const struct http_request *req,
                     const struct router_match *m, const struct authz_principal *who);
void api_labels_get(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who);
/* api/thumbs.c (issue 16 C): a camera's picture evidence. */
void api_thumbnail_get(struct api *a, struct conn *c, const struct http_request *req,
                       const struct router_match *m, const struct authz_principal *who);
/* --- issue 12 D: inspections.c --- */
void api_inspections_list(struct api *a, struct conn *c, const struct http_request *req,
                          const struct router_match *m, const struct authz_principal *who);
void api_inspection_get(struct api *a, struct conn *c, const struct http_request *req,
                        const struct router_match *m, const struct authz_principal *who);
void api_inspection_evidence(struct api *a, struct conn *c, const struct http_request *req,
                             const struct router_match *m, const struct authz_principal *who);
void api_inspection_result(struct api *a, struct conn *c, const struct http_request *req,
                           const struct router_match *m, const struct authz_principal *who);
void api_inspection_confirm(struct api *a, struct conn *c, const struct http_request *req,
                            const struct router_match *m, const struct authz_principal *who);
void api_inspection_publish(struct api *a, struct conn *c, const struct http_request *req,
                            const struct router_match *m, const struct authz_principal *who);
void api_inspection_capture(struct api *a, struct conn *c, const struct http_request *req,
                            const struct router_match *m, const struct authz_principal *who);
/* score.c: an inspection's 3.6 snapshot from store_score_exam's reply (malloc'd, or NULL). */
char *api_score_session_snapshot(struct api *a, const struct store_reply *r, int64_t now_ms);
/* issue 12 C: draws.c, the double-random draws (docs/API.md "Draws"). */
void api_draws_post(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who);
void api_draws_list(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who);
void api_draw_get(struct api *a, struct conn *c, const struct http_request *req,
                  const struct router_match *m, const struct authz_principal *who);
void api_draw_document(struct api *a, struct conn *c, const struct http_request *req,
                       const struct router_match *m, const struct authz_principal *who);
void api_draw_commit(struct api *a, struct conn *c, const struct http_request *req,
                     const struct router_match *m, const struct authz_principal *who);
void api_draw_execute(struct api *a, struct conn *c, const struct http_request *req,
                      const struct router_match *m, const struct authz_principal *who);
void api_draw_replace(struct api *a, struct conn *c, const struct http_request *req,
                      const struct router_match *m, const struct authz_principal *who);
void api_draw_publish(struct api *a, struct conn *c, const struct http_request *req,
                      const struct router_match *m, const struct authz_principal *who);
/* --- issue 12 E: public.c, 一公开 (anonymous). --- */
void api_public_redirect(struct api *a, struct conn *c, const struct http_request *req,
                         const struct router_match *m, const struct authz_principal *who);
void api_public_index(struct api *a, struct conn *c, const struct http_request *req,
                      const struct router_match *m, const struct authz_principal *who);
void api_public_draw(struct api *a, struct conn *c, const struct http_request *req,
                     const struct router_match *m, const struct authz_principal *who);
void api_public_results_csv(struct api *a, struct conn *c, const struct http_request *req,
                            const struct router_match *m, const struct authz_principal *who);
void api_public_draws_json(struct api *a, struct conn *c, const struct http_request *req,
                           const struct router_match *m, const struct authz_principal *who);
void api_public_draw_json(struct api *a, struct conn *c, const struct http_request *req,
                          const struct router_match *m, const struct authz_principal *who);
void api_public_document(struct api *a, struct conn *c, const struct http_request *req,
                         const struct router_match *m, const struct authz_principal *who);
void api_public_results_json(struct api *a, struct conn *c, const struct http_request *req,
                             const struct router_match *m, const struct authz_principal *who);
/* --- issue 12 D: inspections.c --- */
void api_inspections_list(struct api *a, struct conn *c, const struct http_request *req,
                          const struct router_match *m, const struct authz_principal *who);
void api_inspection_get(struct api *a, struct conn *c, const struct http_request *req,
                        const struct router_match *m, const struct authz_principal *who);
void api_inspection_evidence(struct api *a, struct conn *c, const struct http_request *req,
                             const struct router_match *m, const struct authz_principal *who);
void api_inspection_result(struct api *a, struct conn *c, const struct http_request *req,
                           const struct router_match *m, const struct authz_principal *who);
void api_inspection_confirm(struct api *a, struct conn *c, const struct http_request *req,
                            const struct router_match *m, const struct authz_principal *who);
void api_inspection_publish(struct api *a, struct conn *c, const struct http_request *req,
                            const struct router_match *m, const struct authz_principal *who);
void api_inspection_capture(struct api *a, struct conn *c, const struct http_request *req,
                            const struct router_match *m, const struct authz_principal *who);
/* score.c: an inspection's 3.6 snapshot from store_score_exam's reply (malloc'd, or NULL). */
char *api_score_session_snapshot(struct api *a, const struct store_reply *r, int64_t now_ms);
/* --- issue 12 B: registers.c (docs/API.md "Registers") --- */
void api_registers_get(struct api *a, struct conn *c, const struct http_request *req,
                       const struct router_match *m, const struct authz_principal *who);
void api_registers_post(struct api *a, struct conn *c, const struct http_request *req,
                        const struct router_match *m, const struct authz_principal *who);
void api_registers_import(struct api *a, struct conn *c, const struct http_request *req,
                          const struct router_match *m, const struct authz_principal *who);
void api_registers_delete(struct api *a, struct conn *c, const struct http_request *req,
                          const struct router_match *m, const struct authz_principal *who);
void api_registers_changes(struct api *a, struct conn *c, const struct http_request *req,
                           const struct router_match *m, const struct authz_principal *who);

#endif
