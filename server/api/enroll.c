/* POST /api/v1/enroll: a one-time enrollment token and a CSR in, a certificate out — by way
 * of the signer process (pki/signer.c), which alone holds the CA key. Loop thread. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "ca.h"
#include "conf.h"
#include "signer.h"
#include "vtime.h"

/* An enrollment is a token and a CSR of ~1 KiB (P-256) to ~4 KiB (RSA 4096). */
#define ENROLL_BODY_MAX (64u << 10)

static const char *enroll_reason(int rc)
{
	switch (rc) {
	case -ENOENT:
		return "unknown enrollment token";
	case -EALREADY:
		return "enrollment token already used";
	case -EKEYEXPIRED:
		return "enrollment token expired";
	default:
		return "enrollment refused";
	}
}

struct enroll_wait {
	struct api *api;
	struct conn *c;
	const struct http_request *req; /* valid until conn_respond */
};

/* The signer's answer (signer.c): the loop only turns it into the HTTP response. */
static void on_signed(void *ud, const struct signer_reply *r)
{
	struct enroll_wait *w = ud;
	struct api *a = w->api;
	struct conn *c = w->c;
	char who[64];
	snprintf(who, sizeof(who), "token=%s", r->token_id[0] ? r->token_id : "-");
	if (r->rc == -ENOENT || r->rc == -EALREADY || r->rc == -EKEYEXPIRED) {
		api_log_refused(a, c, w->req, who,
		                r->rc == -ENOENT     ? "unknown_enroll_token"
		                : r->rc == -EALREADY ? "enroll_token_used"
		                                     : "enroll_token_expired");
		conn_respond_error(c, 403, "enrollment refused", enroll_reason(r->rc));
		goto out;
	}
	if (r->rc == -EINVAL) {
		log_warn("event=enroll_failed peer=%s %s error=\"%s\"", conn_peer(c), who, r->err);
		conn_respond_error(c, 400, "invalid certificate signing request", r->err);
		goto out;
	}
	if (r->rc) {
		/* -EIO: auth.db could not record it (nothing was handed out); -EPIPE: the signer
		 * died or is restarting. Either way, later. */
		log_warn("event=enroll_failed peer=%s %s error=%s", conn_peer(c), who,
		         r->rc == -EPIPE ? "signer_down" : "signer_failed");
		conn_respond_error(c, 503, "enrollment unavailable", "try again shortly");
		goto out;
	}
	log_info("event=enrolled site=%s org=%s city=%s agent=%s serial=%s peer=%s", r->site,
	         r->org, r->city[0] ? r->city : "-", r->agent, r->serial, conn_peer(c));
	char iso[VW_ISO_LEN];
	vw_time_iso(r->not_after_ms, iso);
	cJSON *resp = cJSON_CreateObject();
	char *text = NULL;
	if (resp && cJSON_AddStringToObject(resp, "site", r->site) &&
	    cJSON_AddStringToObject(resp, "agent", r->agent) &&
	    cJSON_AddStringToObject(resp, "org", r->org) &&
	    cJSON_AddStringToObject(resp, "city", r->city) &&
	    cJSON_AddStringToObject(resp, "serial", r->serial) &&
	    cJSON_AddStringToObject(resp, "not_after", iso) &&
	    cJSON_AddStringToObject(resp, "certificate", r->cert) &&
	    cJSON_AddStringToObject(resp, "ca", r->ca))
		text = cJSON_PrintUnformatted(resp);
	cJSON_Delete(resp);
	if (text)
		conn_respond(c, 200, NULL, text, strlen(text));
	else
		conn_respond_error(c, 500, "out of memory", NULL);
	free(text);
out:
	free(w);
}

/* POST /api/v1/enroll {"token": T, "csr": PEM}: one certificate per one-time token, for the
 * site the token names (whatever the CSR's subject says). The loop only parses the request:
 * the signer process checks the token, signs and records it (the CA key and the fsync'd
 * commit are never on this side), and on_signed answers. */
void api_enroll_post(struct api *a, struct conn *c, const struct http_request *req)
{
	char tok[AUTH_TOKEN_LEN + 16] = "";
	cJSON *root = NULL;
	struct enroll_wait *w = NULL;
	if (req->body_len > ENROLL_BODY_MAX) {
		conn_respond_error(c, 413, "request body too large", NULL);
		return;
	}
	root = cJSON_ParseWithLength(req->body, req->body_len);
	const cJSON *jt = cJSON_GetObjectItemCaseSensitive(root, "token");
	const cJSON *jc = cJSON_GetObjectItemCaseSensitive(root, "csr");
	int rc = api_bearer(req, tok, sizeof(tok));
	if (rc == -ENOENT && cJSON_IsString(jt) && strlen(jt->valuestring) < sizeof(tok)) {
		snprintf(tok, sizeof(tok), "%s", jt->valuestring);
		rc = 0;
	}
	if (!root || !cJSON_IsString(jc) || rc) {
		conn_respond_error(c, 400, "invalid enrollment request",
		                   "expected {\"token\": \"vwe_...\", \"csr\": \"-----BEGIN "
		                   "CERTIFICATE REQUEST-----...\"}");
		goto out;
	}
	if (!(w = malloc(sizeof(*w)))) {
		conn_respond_error(c, 500, "out of memory", NULL);
		goto out;
	}
	*w = (struct enroll_wait){a, c, req};
	rc = signer_enroll(a->signer, tok, jc->valuestring, strlen(jc->valuestring), conn_peer(c),
	                   on_signed, w);
	if (rc) {
		free(w);
		log_warn("event=enroll_failed peer=%s error=%s", conn_peer(c),
		         rc == -ENOBUFS ? "signer_queue_full" : "signer_down");
		conn_respond_error(c, 503, "enrollment unavailable", "try again shortly");
	}
out:
	explicit_bzero(tok, sizeof(tok));
	if (jt && cJSON_IsString(jt))
		explicit_bzero(jt->valuestring, strlen(jt->valuestring));
	cJSON_Delete(root);
}
