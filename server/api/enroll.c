/* POST /api/v1/enroll: a one-time enrollment token and a CSR in, a certificate out. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "ca.h"
#include "conf.h"
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

/* POST /api/v1/enroll {"token": T, "csr": PEM}: one certificate per one-time token, for the
 * site the token names (whatever the CSR's subject says). Runs on the loop thread: one
 * indexed read, a signature and two small commits, and it happens once per venue. */
void api_enroll_post(struct api *a, struct conn *c, const struct http_request *req)
{
	char tok[AUTH_TOKEN_LEN + 16] = "";
	cJSON *root = NULL;
	char *cert = NULL, *ca = NULL;
	struct auth_enrollment e = {0};
	if (!a->auth) {
		conn_respond_error(c, 503, "access records unavailable", NULL);
		return;
	}
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
	/* Checked before signing, consumed after: a forged token costs one indexed read and
	 * no write lock, and a bad CSR does not burn a good token. */
	char w[64];
	if ((rc = auth_enroll_check(a->auth, tok, &e)) != 0) {
		snprintf(w, sizeof(w), "token=%s", rc == -ENOENT ? "-" : e.id);
		api_log_refused(a, c, req, w,
		            rc == -ENOENT        ? "unknown_enroll_token"
		            : rc == -EALREADY    ? "enroll_token_used"
		            : rc == -EKEYEXPIRED ? "enroll_token_expired"
		                                 : "auth_db_error");
		if (rc == -EIO)
			conn_respond_error(c, 503, "access records unavailable", NULL);
		else
			conn_respond_error(c, 403, "enrollment refused", enroll_reason(rc));
		goto out;
	}
	char serial[64], err[256];
	int64_t not_after;
	rc = ca_sign_csr(a->pki_dir, jc->valuestring, strlen(jc->valuestring), e.site, e.org,
	                 e.city, &cert, &ca, serial, sizeof(serial), &not_after, err, sizeof(err));
	if (rc) {
		log_warn("event=enroll_failed peer=%s site=%s token=%s error=\"%s\"", conn_peer(c),
		         e.site, e.id, err);
		conn_respond_error(c, rc == -EINVAL ? 400 : 500,
		                   rc == -EINVAL ? "invalid certificate signing request"
		                                 : "cannot sign",
		                   rc == -EINVAL ? err : NULL);
		goto out;
	}
	/* Two requests with one token: the lock decides, the loser's certificate is dropped
	 * unsent. */
	if ((rc = auth_enroll_consume(a->auth, tok, conn_peer(c), &e)) != 0) {
		snprintf(w, sizeof(w), "token=%s", e.id);
		api_log_refused(a, c, req, w, "enroll_token_used");
		conn_respond_error(c, rc == -EIO ? 503 : 403, "enrollment refused",
		                   enroll_reason(rc));
		goto out;
	}
	char actor[96], detail[512];
	snprintf(actor, sizeof(actor), "enroll:%s", e.id);
	snprintf(detail, sizeof(detail), "serial=%s org=%s city=%s peer=%s", serial, e.org,
	         e.city[0] ? e.city : "-", conn_peer(c));
	if (auth_cert_record(a->auth, serial, e.site, e.org, e.city, not_after, "enroll") ||
	    auth_audit(a->auth, actor, "enroll", e.site, detail)) {
		/* Not on record means not revocable by site and not audited: do not hand it
		 * out. The token is spent; the operator issues another. */
		log_error("event=enroll_failed peer=%s site=%s token=%s error=not_recorded",
		          conn_peer(c), e.site, e.id);
		conn_respond_error(c, 503, "access records unavailable", NULL);
		goto out;
	}
	log_info("event=enrolled site=%s org=%s city=%s serial=%s peer=%s", e.site, e.org,
	         e.city[0] ? e.city : "-", serial, conn_peer(c));
	char iso[VW_ISO_LEN];
	vw_time_iso(not_after, iso);
	cJSON *resp = cJSON_CreateObject();
	char *text = NULL;
	if (resp && cJSON_AddStringToObject(resp, "site", e.site) &&
	    cJSON_AddStringToObject(resp, "org", e.org) &&
	    cJSON_AddStringToObject(resp, "city", e.city) &&
	    cJSON_AddStringToObject(resp, "serial", serial) &&
	    cJSON_AddStringToObject(resp, "not_after", iso) &&
	    cJSON_AddStringToObject(resp, "certificate", cert) &&
	    cJSON_AddStringToObject(resp, "ca", ca))
		text = cJSON_PrintUnformatted(resp);
	cJSON_Delete(resp);
	if (text)
		conn_respond(c, 200, NULL, text, strlen(text));
	else
		conn_respond_error(c, 500, "out of memory", NULL);
	free(text);
out:
	explicit_bzero(tok, sizeof(tok));
	free(cert);
	free(ca);
	cJSON_Delete(root);
}

