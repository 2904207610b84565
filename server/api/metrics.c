/* GET /metrics (issue 14): the Prometheus exposition of server/metrics.c, for the metrics
 * role's token or a [metrics] allow address. Loop thread. */
#include <errno.h>
#include <string.h>

#include "api_int.h"
#include "metrics.h"

void api_set_metrics(struct api *a, const struct metrics_sources *src,
                     const struct metrics_allow *allow)
{
	a->metrics = src;
	if (allow)
		a->metrics_allow = *allow;
	else
		memset(&a->metrics_allow, 0, sizeof(a->metrics_allow));
}

int api_metrics_peer_allowed(const struct api *a, const struct conn *c,
                             const struct http_request *req)
{
	/* A request that brings a credential is judged by it, never by its address: a
	 * revoked token from an allowed address is still refused. */
	if ((req->authorization && req->authorization[0]) || req->session_cookies)
		return 0;
	return metrics_allow_peer(&a->metrics_allow, conn_peer(c));
}

void api_metrics_get(struct api *a, struct conn *c, const struct http_request *req,
                     const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)m, (void)who;
	if (!a->metrics) {
		conn_respond_error(c, 503, "metrics unavailable", NULL);
		return;
	}
	/* The body is a few KB; kept between scrapes like the sites list's. */
	vw_buf_reset(&a->metrics_body);
	a->metrics_body.max = 1u << 20; /* a few KB in practice; bounded all the same */
	metrics_render(a->metrics, &a->metrics_body);
	if (a->metrics_body.err) {
		conn_respond_error(c, 500, "metrics could not be rendered",
		                   a->metrics_body.err == -E2BIG ? "larger than 1 MiB"
		                                                 : "out of memory");
		return;
	}
	conn_respond_typed(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
	                   a->metrics_body.data, a->metrics_body.len);
}
