#include "enroll.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fileio.h"
#include "log.h"

/* The collector's answer: two PEM certificates and a few names, a few KiB. */
#define RESPONSE_MAX (1u << 20)
#define TOKEN_MAX 128

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct vw_buf *b = ud;
	return vw_buf_append(b, p, size * n) ? 0 : size * n;
}

static int read_token(const char *arg, char *out, size_t outlen, char *err, size_t errlen)
{
	if (strcmp(arg, "-") != 0) {
		if (strlen(arg) >= outlen) {
			snprintf(err, errlen, "--token: too long to be an enrollment token");
			return -EINVAL;
		}
		snprintf(out, outlen, "%s", arg);
		return 0;
	}
	if (!fgets(out, (int)outlen, stdin)) {
		snprintf(err, errlen, "--token -: nothing on standard input");
		return -EINVAL;
	}
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

/* A P-256 key and a CSR for it, PEM. The CSR's subject is only a hint: the collector
 * names the site from the token. */
static int make_csr(const char *site, EVP_PKEY **key, char **csr, char *err, size_t errlen)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	BIO *b = BIO_new(BIO_s_mem());
	int rc = -EIO;
	*csr = NULL;
	*key = EVP_EC_gen("P-256");
	if (!req || !name || !b || !*key ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)site, -1,
	                                -1, 0) ||
	    !X509_REQ_set_subject_name(req, name) || !X509_REQ_set_pubkey(req, *key) ||
	    !X509_REQ_sign(req, *key, EVP_sha256()) || !PEM_write_bio_X509_REQ(b, req)) {
		snprintf(err, errlen, "cannot make the key and CSR");
		goto out;
	}
	char *p;
	long n = BIO_get_mem_data(b, &p);
	if (n <= 0 || !(*csr = malloc((size_t)n + 1)))
		goto out;
	memcpy(*csr, p, (size_t)n);
	(*csr)[n] = '\0';
	rc = 0;
out:
	ERR_clear_error();
	BIO_free(b);
	X509_NAME_free(name);
	X509_REQ_free(req);
	if (rc) {
		EVP_PKEY_free(*key);
		*key = NULL;
	}
	return rc;
}

static int put_key(FILE *fp, const void *key)
{
	return PEM_write_PrivateKey(fp, (EVP_PKEY *)key, NULL, NULL, 0, NULL, NULL);
}

static int put_text(FILE *fp, const void *text)
{
	return fputs(text, fp) >= 0;
}

/* The directory that will hold path, created 0700 (mkdir -p) if missing. */
static int make_parent(const char *path, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1;; p++) {
		int last = *p == '\0';
		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			int e = errno;
			snprintf(err, errlen, "cannot create %s: %s", dir, strerror(e));
			return -e;
		}
		if (last)
			break;
		*p = '/';
	}
	return 0;
}

/* The certificate we got back must be for our key and name the site we are configured as;
 * otherwise installing it would only make every upload fail later. */
static int check_cert(const char *pem, EVP_PKEY *key, char *err, size_t errlen)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	int ok = x && X509_check_private_key(x, key) == 1;
	X509_free(x);
	BIO_free(b);
	ERR_clear_error();
	if (!ok) {
		snprintf(err, errlen, "the collector's certificate does not match the key we sent");
		return -EPROTO;
	}
	return 0;
}

/* One POST /api/v1/enroll to the collector at base. -ECONNREFUSED when it gave no answer. */
static int post(const struct agent_conf *cfg, const char *base, const char *body,
                struct vw_buf *resp, long *status, char *err, size_t errlen)
{
	char url[2048];
	size_t bl = strlen(base);
	bl = bl && base[bl - 1] == '/' ? bl - 1 : bl;
	if ((size_t)snprintf(url, sizeof(url), "%.*s/api/v1/enroll", (int)bl, base) >=
	    sizeof(url)) {
		snprintf(err, errlen, "[collector] url too long");
		return -ENAMETOOLONG;
	}
	CURL *e = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	if (!e || !hdr) {
		curl_slist_free_all(hdr);
		curl_easy_cleanup(e);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	char cerr[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https"); /* never the token in clear text */
	curl_easy_setopt(e, CURLOPT_CAINFO, cfg->collector.ca);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, cfg->collector.timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
	CURLcode cc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(e);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "cannot reach the collector at %s: %s", url,
		         cerr[0] ? cerr : curl_easy_strerror(cc));
		return -ECONNREFUSED;
	}
	return 0;
}

/* issue 13: with several [collector] urls, each in turn until one answers other than 503 (its
 * answer is the enrollment's; a refusal is not retried elsewhere). A token is known only to
 * the collector that made it (auth.db is each collector's own), so *used says which one
 * answered, for the message. */
static int post_any(const struct agent_conf *cfg, const char *body, struct vw_buf *resp,
                    long *status, const char **used, char *err, size_t errlen)
{
	int rc = -ECONNREFUSED;
	size_t off = 0;
	err[0] = '\0';
	for (size_t i = 0; i < cfg->collector.nurls; i++) {
		char one[2600];
		vw_buf_reset(resp);
		*status = 0;
		*used = cfg->collector.urls[i];
		rc = post(cfg, *used, body, resp, status, one, sizeof(one));
		if (rc == 0 && *status != 503)
			return 0;
		if (rc == 0) {
			snprintf(one, sizeof(one), "%s answered 503 (unavailable)", *used);
			rc = -EAGAIN;
		}
		if (cfg->collector.nurls > 1)
			log_warn("event=enroll_collector_failed url=%s error=\"%s\"", *used, one);
		int n = snprintf(err + off, errlen - off, "%s%s", off ? "; " : "", one);
		off = n < 0 || (size_t)n >= errlen - off ? errlen - 1 : off + (size_t)n;
	}
	return rc;
}

int enroll_run(const struct agent_conf *cfg, const char *token_arg, char *err, size_t errlen)
{
	char token[TOKEN_MAX];
	EVP_PKEY *key = NULL;
	char *csr = NULL, *body = NULL;
	cJSON *req = NULL, *root = NULL;
	struct vw_buf resp;
	vw_buf_init(&resp, RESPONSE_MAX);
	long status = 0;
	int rc = read_token(token_arg, token, sizeof(token), err, errlen);
	if (rc)
		goto out;
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		snprintf(err, errlen, "curl_global_init failed");
		rc = -EIO;
		goto out;
	}
	if ((rc = make_csr(cfg->agent.site, &key, &csr, err, errlen)) != 0)
		goto cleanup;
	req = cJSON_CreateObject();
	if (!req || !cJSON_AddStringToObject(req, "token", token) ||
	    !cJSON_AddStringToObject(req, "csr", csr) || !(body = cJSON_PrintUnformatted(req))) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto cleanup;
	}
	const char *used = cfg->collector.urls[0];
	if ((rc = post_any(cfg, body, &resp, &status, &used, err, errlen)) != 0)
		goto cleanup;
	root = cJSON_ParseWithLength(resp.data ? resp.data : "", resp.len);
	const cJSON *jerr = cJSON_GetObjectItemCaseSensitive(root, "error");
	const cJSON *jdet = cJSON_GetObjectItemCaseSensitive(root, "detail");
	if (status != 200) {
		snprintf(
		    err, errlen, "the collector at %s refused the enrollment (HTTP %ld): %s%s%s%s",
		    used, status, cJSON_IsString(jerr) ? jerr->valuestring : "no reason given",
		    cJSON_IsString(jdet) ? ": " : "", cJSON_IsString(jdet) ? jdet->valuestring : "",
		    cfg->collector.nurls > 1 && cJSON_IsString(jdet) &&
		            strstr(jdet->valuestring, "unknown")
		        ? " (a token is known only to the collector that made it)"
		        : "");
		rc = -EACCES;
		goto cleanup;
	}
	const cJSON *jcert = cJSON_GetObjectItemCaseSensitive(root, "certificate");
	const cJSON *jsite = cJSON_GetObjectItemCaseSensitive(root, "site");
	const cJSON *jserial = cJSON_GetObjectItemCaseSensitive(root, "serial");
	const cJSON *jafter = cJSON_GetObjectItemCaseSensitive(root, "not_after");
	/* The venue machine the certificate names (its UID); older collectors say none. */
	const cJSON *jagent = cJSON_GetObjectItemCaseSensitive(root, "agent");
	const char *agent = cJSON_IsString(jagent) && jagent->valuestring[0] ? jagent->valuestring
	                                                                     : cfg->agent.site;
	if (!cJSON_IsString(jcert) || !cJSON_IsString(jsite)) {
		snprintf(err, errlen, "the collector's answer holds no certificate");
		rc = -EPROTO;
		goto cleanup;
	}
	if (strcmp(jsite->valuestring, cfg->agent.site) != 0) {
		/* The token is spent either way; installing a certificate for another site
		 * would only get every upload refused. */
		snprintf(err, errlen,
		         "the token was for site '%.63s' but [agent] site is '%s': nothing "
		         "installed; ask for a token for this site",
		         jsite->valuestring, cfg->agent.site);
		rc = -EINVAL;
		goto cleanup;
	}
	if ((rc = check_cert(jcert->valuestring, key, err, errlen)) != 0)
		goto cleanup;
	/* Both files complete on disk before either replaces what was there; the key first,
	 * so a running agent that sees the new certificate finds its key already in place. */
	const struct vw_file_part parts[] = {
	    {.path = cfg->collector.key, .mode = 0600, .write_cb = put_key, .arg = key},
	    {.path = cfg->collector.cert,
	     .mode = 0644,
	     .write_cb = put_text,
	     .arg = jcert->valuestring},
	};
	if ((rc = make_parent(cfg->collector.key, err, errlen)) != 0 ||
	    (rc = make_parent(cfg->collector.cert, err, errlen)) != 0)
		goto cleanup;
	rc = vw_file_replace_many(parts, 2, err, errlen);
	ERR_clear_error();
	if (rc != 0)
		goto cleanup;
	printf("enrolled site=%s serial=%s agent=%s not_after=%s cert=%s key=%s\n", cfg->agent.site,
	       cJSON_IsString(jserial) ? jserial->valuestring : "?", agent,
	       cJSON_IsString(jafter) ? jafter->valuestring : "?", cfg->collector.cert,
	       cfg->collector.key);
	fprintf(stderr, "a running agent uploads with it within seconds (it watches %s)\n",
	        cfg->collector.cert);
	log_info("event=enrolled site=%s agent=%s serial=%s", cfg->agent.site, agent,
	         cJSON_IsString(jserial) ? jserial->valuestring : "?");
	rc = 0;
cleanup:
	curl_global_cleanup();
out:
	if (body) {
		explicit_bzero(body, strlen(body));
		cJSON_free(body);
	}
	explicit_bzero(token, sizeof(token));
	cJSON *jt = cJSON_GetObjectItemCaseSensitive(req, "token");
	if (cJSON_IsString(jt))
		explicit_bzero(jt->valuestring, strlen(jt->valuestring));
	cJSON_Delete(req);
	cJSON_Delete(root);
	vw_buf_free(&resp);
	free(csr);
	EVP_PKEY_free(key);
	return rc;
}
