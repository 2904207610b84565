/* api_int: what the api/ files share — the api object and the helpers every resource uses.
 * Loop thread only. Not for use outside server/api/. */
#ifndef VW_API_INT_H
#define VW_API_INT_H

#include "api.h"
#include "authz.h"
#include "log.h"
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
};

/* One warn line per refusal, rate-limited; never the token itself. */
void api_log_refused(struct api *a, const struct conn *c, const struct http_request *req,
                     const char *who, const char *reason);
/* The bearer token from the request: 0 with the token in out, -ENOENT when none was sent,
 * -EINVAL when it is malformed or sent twice. */
int api_bearer(const struct http_request *req, char *out, size_t outlen);

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
void api_enroll_post(struct api *a, struct conn *c, const struct http_request *req);

#endif
