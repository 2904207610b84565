/* GET /api/v1/notifications (issue 16 D): the delivery state of [notify NAME] messages,
 * newest first, for province and city; a city sees those of its own city's problems. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "vtime.h"

#define NOTIFY_LIST_DEFAULT 100
#define NOTIFY_LIST_MAX 1000
#define NOTIFY_RESPONSE_MAX (16u << 20)

struct notify_ctx {
	struct conn *c;
	struct authz_principal who;
};

/* A plain value ([a-z0-9] only) of key; 1 found, 0 absent, -1 malformed or too long. Neither
 * parameter needs percent-decoding, so anything else is refused rather than decoded. */
static int param(const char *q, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	while (q && *q) {
		size_t n = strcspn(q, "&");
		if (n > kl && q[kl] == '=' && !strncmp(q, key, kl)) {
			size_t vl = n - kl - 1;
			if (!vl || vl >= outlen ||
			    strspn(q + kl + 1, "abcdefghijklmnopqrstuvwxyz0123456789") < vl)
				return -1;
			memcpy(out, q + kl + 1, vl);
			out[vl] = '\0';
			return 1;
		}
		q = q[n] ? q + n + 1 : NULL;
	}
	return 0;
}

static void put_time_or_null(struct vw_buf *b, const char *key, int64_t ms)
{
	vw_buf_puts(b, key);
	if (!ms) {
		vw_buf_puts(b, "null");
		return;
	}
	char iso[VW_ISO_LEN];
	vw_time_iso(ms, iso);
	vw_buf_json_str(b, iso);
}

static void on_list(void *ud, const struct store_reply *r)
{
	struct notify_ctx *x = ud;
	if (r->status) {
		conn_respond_error(x->c, 503, "store unavailable", NULL);
		free(x);
		return;
	}
	struct vw_buf b;
	vw_buf_init(&b, NOTIFY_RESPONSE_MAX);
	vw_buf_puts(&b, "{\"notifications\":[");
	size_t shown = 0;
	for (size_t i = 0; i < r->nnotifications; i++) {
		const struct store_notification *n = &r->notifications[i];
		/* The store filtered by city already; authz decides, as for every site shown. */
		if (!authz_site_visible(&x->who, n->site, n->org, n->city))
			continue;
		vw_buf_printf(&b, "%s{\"id\":%lld,\"sink\":", shown++ ? "," : "", (long long)n->id);
		vw_buf_json_str(&b, n->sink);
		vw_buf_printf(&b, ",\"problem_id\":%lld,\"event_id\":%lld,\"event\":",
		              (long long)n->problem_id, (long long)n->event_id);
		vw_buf_json_str(&b, n->event);
		vw_buf_puts(&b, ",\"site\":");
		vw_buf_json_str(&b, n->site);
		vw_buf_puts(&b, ",\"city\":");
		vw_buf_json_str(&b, n->city);
		vw_buf_puts(&b, ",\"state\":");
		vw_buf_json_str(&b, n->state);
		vw_buf_printf(&b, ",\"attempts\":%lld,\"last_error\":", (long long)n->attempts);
		if (n->last_error[0])
			vw_buf_json_str(&b, n->last_error);
		else
			vw_buf_puts(&b, "null");
		put_time_or_null(&b, ",\"next_attempt\":",
		                 !strcmp(n->state, "pending") ? n->next_attempt_ms : 0);
		put_time_or_null(&b, ",\"sent_at\":", n->sent_ms);
		put_time_or_null(&b, ",\"created\":", n->created_ms);
		vw_buf_puts(&b, "}");
	}
	vw_buf_puts(&b, "]}");
	if (b.err)
		conn_respond_error(x->c, 507, "response too large", NULL);
	else
		conn_respond(x->c, 200, NULL, b.data, b.len);
	vw_buf_free(&b);
	free(x);
}

void api_notifications_list(struct api *a, struct conn *c, const struct http_request *req,
                            const struct router_match *m, const struct authz_principal *who)
{
	(void)m;
	static const char *const states[] = {"pending", "sent", "failed", "suppressed"};
	char state[16] = "", limit[8] = "";
	int got = param(req->query, "state", state, sizeof(state));
	int known = 0;
	for (size_t i = 0; got > 0 && i < sizeof(states) / sizeof(states[0]); i++)
		known |= !strcmp(state, states[i]);
	if (got < 0 || (got > 0 && !known)) {
		conn_respond_error(
		    c, 400, "bad request",
		    "query parameter state: expected pending, sent, failed or suppressed");
		return;
	}
	long n = NOTIFY_LIST_DEFAULT;
	int lgot = param(req->query, "limit", limit, sizeof(limit));
	if (lgot > 0)
		n = strtol(limit, NULL, 10);
	if (lgot < 0 || n < 1 || n > NOTIFY_LIST_MAX) {
		conn_respond_error(c, 400, "bad request",
		                   "query parameter limit: expected 1 to 1000");
		return;
	}
	struct notify_ctx *x = malloc(sizeof(*x));
	if (!x) {
		conn_respond_error(c, 500, "internal", "out of memory");
		return;
	}
	x->c = c;
	x->who = *who;
	/* A city reads its own city's rows; the province all of them. */
	struct store_notify_query q = {
	    .state = got > 0 ? state : NULL,
	    .city = who->person.role == AUTH_PROVINCE ? NULL : who->person.city,
	    .limit = (size_t)n,
	};
	int rc = store_notify_list(a->store, &q, on_list, x);
	if (rc) {
		free(x);
		conn_respond_error(c, 503, rc == -EAGAIN ? "server busy" : "store unavailable",
		                   NULL);
	}
}
