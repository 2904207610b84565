#include "ca.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "fileio.h"
#include "log.h"
#include "server_conf.h"
#include "utf8.h"
#include "vtime.h"

/* Issued a little in the past so a venue machine whose clock lags by minutes still
 * accepts its brand-new certificate. */
#define BACKDATE_SECONDS 300

static int ssl_fail(char *err, size_t errlen, const char *what)
{
	char detail[256] = "";
	unsigned long e = ERR_peek_last_error();
	if (e)
		ERR_error_string_n(e, detail, sizeof(detail));
	ERR_clear_error();
	snprintf(err, errlen, "%s%s%s", what, detail[0] ? ": " : "", detail);
	return -EIO;
}

int ca_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(c >= 0x80 || isalnum(c) || c == '.' || c == '-' || c == '_'))
			return 0;
	}
	return vw_utf8_valid(s); /* bytes >= 0x80 only as whole UTF-8 characters */
}

static int mkdir_p(const char *path, char *err, size_t errlen)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "path too long: %s", path);
		return -ENAMETOOLONG;
	}
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
			int e = errno;
			snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(e));
			return -e;
		}
		*p = '/';
	}
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
		int e = errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(e));
		return -e;
	}
	return 0;
}

static int exists(const char *dir, const char *name)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

static int put_key(FILE *fp, const void *key)
{
	return PEM_write_PrivateKey(fp, (EVP_PKEY *)key, NULL, NULL, 0, NULL, NULL);
}

static int put_cert(FILE *fp, const void *cert)
{
	return PEM_write_X509(fp, (X509 *)cert);
}

static int put_crl(FILE *fp, const void *crl)
{
	return PEM_write_X509_CRL(fp, (X509_CRL *)crl);
}

/* Writes dir/name through a synced temporary file and rename: the old file stays whole until
 * the new one is (common/fileio.c). */
static int write_pem(const char *dir, const char *name, mode_t mode, EVP_PKEY *key, X509 *cert,
                     char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int rc = key ? vw_file_replace(path, mode, put_key, key, err, errlen)
	             : vw_file_replace(path, mode, put_cert, cert, err, errlen);
	ERR_clear_error();
	return rc;
}

static int load_ca(const char *pki_dir, EVP_PKEY **key, X509 **cert, char *err, size_t errlen)
{
	char path[4096];
	FILE *fp;
	snprintf(path, sizeof(path), "%s/ca.key", pki_dir);
	if (!(fp = fopen(path, "r"))) {
		snprintf(err, errlen, "no CA in %s (%s); run 'ca init' first", pki_dir,
		         strerror(errno));
		return -ENOENT;
	}
	*key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/ca.crt", pki_dir);
	if ((fp = fopen(path, "r"))) {
		*cert = PEM_read_X509(fp, NULL, NULL, NULL);
		fclose(fp);
	} else {
		*cert = NULL;
	}
	if (!*key || !*cert || X509_check_private_key(*cert, *key) != 1) {
		EVP_PKEY_free(*key);
		X509_free(*cert);
		*key = NULL;
		*cert = NULL;
		return ssl_fail(err, errlen,
		                "cannot load the CA (ca.key, ca.crt) or they do not match");
	}
	return 0;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* Random 128-bit serial (RFC 5280 allows up to 20 octets; unpredictable serials are what
 * the CA/Browser Forum asks for, and they need no counter file). */
static int set_serial(X509 *cert, char *hex, size_t hexlen)
{
	unsigned char raw[16];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	raw[0] &= 0x7f; /* positive: no sign octet, 16 octets in DER */
	if (raw[0] == 0)
		raw[0] = 1; /* nor a shorter encoding */
	BIGNUM *bn = BN_bin2bn(raw, sizeof(raw), NULL);
	ASN1_INTEGER *ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	int rc = ai && X509_set_serialNumber(cert, ai) ? 0 : -1;
	if (!rc && hex) {
		char *h = BN_bn2hex(bn);
		snprintf(hex, hexlen, "%s", h ? h : "?");
		OPENSSL_free(h);
	}
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return rc;
}

struct name_parts {
	const char *cn, *o, *l;
	const char *uid; /* the agent id (agent certificates only) */
};

/* An unsigned certificate for key, issued by issuer (self-issued when NULL). */
static X509 *make_cert(EVP_PKEY *key, const struct name_parts *subj, X509 *issuer, long days,
                       char *serial, size_t seriallen)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	if (!x || !name)
		goto fail;
	if (!X509_set_version(x, X509_VERSION_3) || set_serial(x, serial, seriallen) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_SECONDS) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL))
		goto fail;
	const struct {
		const char *field, *value;
	} parts[] = {{"CN", subj->cn}, {"O", subj->o}, {"L", subj->l}, {"UID", subj->uid}};
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		if (!parts[i].value || !parts[i].value[0])
			continue;
		if (!X509_NAME_add_entry_by_txt(name, parts[i].field, MBSTRING_UTF8,
		                                (const unsigned char *)parts[i].value, -1, -1, 0))
			goto fail;
	}
	if (!X509_set_subject_name(x, name) ||
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) ||
	    !X509_set_pubkey(x, key))
		goto fail;
	X509_NAME_free(name);
	return x;
fail:
	X509_NAME_free(name);
	X509_free(x);
	return NULL;
}

static int sign(X509 *x, EVP_PKEY *issuer_key)
{
	return X509_sign(x, issuer_key, EVP_sha256()) > 0 ? 0 : -1;
}

/* An agent's client certificate for key, signed by the CA. */
static X509 *agent_cert(EVP_PKEY *key, const struct name_parts *subj, X509 *ca, EVP_PKEY *ca_key,
                        char *serial, size_t seriallen)
{
	X509 *x = make_cert(key, subj, ca, CA_AGENT_DAYS, serial, seriallen);
	if (!x || add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(x, ca, NID_key_usage, "critical,digitalSignature") ||
	    add_ext(x, ca, NID_ext_key_usage, "clientAuth") ||
	    add_ext(x, ca, NID_subject_key_identifier, "hash") ||
	    add_ext(x, ca, NID_authority_key_identifier, "keyid:always") || sign(x, ca_key)) {
		X509_free(x);
		return NULL;
	}
	return x;
}

struct san_ctx {
	struct vw_buf *b;
	int n;
};

static int add_san(void *ud, const char *name)
{
	struct san_ctx *s = ud;
	unsigned char tmp[16];
	int ip = inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1;
	vw_buf_printf(s->b, "%s%s:%s", s->n++ ? "," : "", ip ? "IP" : "DNS", name);
	return 0;
}

static int first_host(void *ud, const char *name)
{
	snprintf(ud, 64, "%s", name);
	return 1;
}

static int issue_server(const char *pki_dir, const char *hostnames, EVP_PKEY *ca_key, X509 *ca,
                        char *err, size_t errlen)
{
	int rc = -EIO;
	struct vw_buf san;
	char cn[64] = "venuewatch-server";
	vw_buf_init(&san, 16384);
	struct san_ctx sc = {&san, 0};
	server_conf_each_hostname(hostnames, add_san, &sc);
	server_conf_each_hostname(hostnames, first_host, cn);
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = NULL;
	if (!key || sc.n == 0 || san.err) {
		rc =
		    ssl_fail(err, errlen, sc.n ? "cannot generate the server key" : "no hostnames");
		goto out;
	}
	struct name_parts subj = {cn, "venuewatch", NULL, NULL};
	x = make_cert(key, &subj, ca, CA_SERVER_DAYS, NULL, 0);
	if (!x || add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(x, ca, NID_key_usage, "critical,digitalSignature") ||
	    add_ext(x, ca, NID_ext_key_usage, "serverAuth") ||
	    add_ext(x, ca, NID_subject_alt_name, vw_buf_cstr(&san)) ||
	    add_ext(x, ca, NID_subject_key_identifier, "hash") ||
	    add_ext(x, ca, NID_authority_key_identifier, "keyid:always") || sign(x, ca_key)) {
		rc = ssl_fail(err, errlen, "cannot make the server certificate");
		goto out;
	}
	if ((rc = write_pem(pki_dir, "server.key", 0600, key, NULL, err, errlen)) ||
	    (rc = write_pem(pki_dir, "server.crt", 0644, NULL, x, err, errlen)))
		goto out;
	log_info("event=ca_server_issued dir=%s san=%s not_after_days=%d", pki_dir,
	         vw_buf_cstr(&san), CA_SERVER_DAYS);
	rc = 0;
out:
	vw_buf_free(&san);
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

int ca_init(const char *pki_dir, const char *hostnames, int force, char *err, size_t errlen)
{
	int rc = mkdir_p(pki_dir, err, errlen);
	if (rc)
		return rc;
	if (!force && (exists(pki_dir, "ca.key") || exists(pki_dir, "ca.crt"))) {
		snprintf(err, errlen,
		         "%s already holds a CA; --force replaces it, and every agent certificate "
		         "it issued stops verifying",
		         pki_dir);
		return -EEXIST;
	}
	char serial[64];
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = NULL;
	if (!key) {
		rc = ssl_fail(err, errlen, "cannot generate the CA key");
		goto out;
	}
	struct name_parts subj = {"venuewatch CA", "venuewatch", NULL, NULL};
	x = make_cert(key, &subj, NULL, CA_DAYS, serial, sizeof(serial));
	/* pathlen:0 — this CA signs leaves only; an agent certificate can never sign. */
	if (!x || add_ext(x, NULL, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    add_ext(x, NULL, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    add_ext(x, NULL, NID_subject_key_identifier, "hash") || sign(x, key)) {
		rc = ssl_fail(err, errlen, "cannot make the CA certificate");
		goto out;
	}
	/* Key first: a crash between the two leaves a key without a certificate, which
	 * 'ca init' refuses to overwrite only with --force, never a certificate without its
	 * key. */
	if ((rc = write_pem(pki_dir, "ca.key", 0600, key, NULL, err, errlen)) ||
	    (rc = write_pem(pki_dir, "ca.crt", 0644, NULL, x, err, errlen)))
		goto out;
	log_info("event=ca_created dir=%s serial=%s days=%d", pki_dir, serial, CA_DAYS);
	rc = issue_server(pki_dir, hostnames, key, x, err, errlen);
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

int ca_server(const char *pki_dir, const char *hostnames, char *err, size_t errlen)
{
	EVP_PKEY *key;
	X509 *ca;
	int rc = load_ca(pki_dir, &key, &ca, err, errlen);
	if (rc)
		return rc;
	rc = issue_server(pki_dir, hostnames, key, ca, err, errlen);
	X509_free(ca);
	EVP_PKEY_free(key);
	return rc;
}

int ca_issue(const char *pki_dir, const struct ca_issue_opts *o, char *serial, size_t seriallen,
             char *err, size_t errlen)
{
	if (!o->site || !vw_conf_id_valid(o->site)) {
		snprintf(err, errlen, "--site: expected 1-63 characters of [A-Za-z0-9._-]");
		return -EINVAL;
	}
	if (!o->org || !ca_name_valid(o->org)) {
		snprintf(err, errlen,
		         "--org: expected 1-64 bytes of [A-Za-z0-9._-] or UTF-8 letters");
		return -EINVAL;
	}
	if (o->city && !ca_name_valid(o->city)) {
		snprintf(err, errlen,
		         "--city: expected 1-64 bytes of [A-Za-z0-9._-] or UTF-8 letters");
		return -EINVAL;
	}
	const char *agent = o->agent ? o->agent : o->site;
	if (!vw_conf_id_valid(agent)) {
		snprintf(err, errlen, "--agent: expected 1-63 characters of [A-Za-z0-9._-]");
		return -EINVAL;
	}
	EVP_PKEY *ca_key = NULL, *key = NULL;
	X509 *ca = NULL, *x = NULL;
	int rc = load_ca(pki_dir, &ca_key, &ca, err, errlen);
	if (rc)
		return rc;
	if ((rc = mkdir_p(o->out_dir, err, errlen)) != 0)
		goto out;
	if (!o->force && exists(o->out_dir, "agent.key")) {
		snprintf(err, errlen, "%s/agent.key exists; --force replaces it", o->out_dir);
		rc = -EEXIST;
		goto out;
	}
	key = EVP_EC_gen("P-256");
	if (!key) {
		rc = ssl_fail(err, errlen, "cannot generate the agent key");
		goto out;
	}
	struct name_parts subj = {o->site, o->org, o->city, agent};
	if (!(x = agent_cert(key, &subj, ca, ca_key, serial, seriallen))) {
		rc = ssl_fail(err, errlen, "cannot make the agent certificate");
		goto out;
	}
	if ((rc = write_pem(o->out_dir, "agent.key", 0600, key, NULL, err, errlen)) ||
	    (rc = write_pem(o->out_dir, "agent.crt", 0644, NULL, x, err, errlen)) ||
	    (rc = write_pem(o->out_dir, "ca.crt", 0644, NULL, ca, err, errlen)))
		goto out;
	char not_after[VW_ISO_LEN];
	vw_time_iso(vw_now_ms() + (int64_t)CA_AGENT_DAYS * 86400000, not_after);
	log_info("event=ca_issued site=%s agent=%s org=%s city=%s serial=%s not_after=%s", o->site,
	         agent, o->org, o->city ? o->city : "-", serial, not_after);
out:
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ca_key);
	return rc;
}

static char *pem_of(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *out = NULL, *p;
	if (b && PEM_write_bio_X509(b, x)) {
		long n = BIO_get_mem_data(b, &p);
		if (n > 0 && (out = malloc((size_t)n + 1))) {
			memcpy(out, p, (size_t)n);
			out[n] = '\0';
		}
	}
	BIO_free(b);
	return out;
}

#define CA_RSA_BITS_MAX 8192

/* Keys an agent may enrol with: what the server's TLS setup can verify at full strength. */
static int csr_key_ok(EVP_PKEY *k, char *err, size_t errlen)
{
	if (EVP_PKEY_is_a(k, "EC")) {
		char group[64] = "";
		size_t gl = 0;
		EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof(group), &gl);
		if (strcmp(group, "prime256v1") == 0 || strcmp(group, "secp384r1") == 0)
			return 0;
		snprintf(err, errlen, "EC key on curve '%s': P-256 or P-384 expected",
		         group[0] ? group : "?");
		return -EINVAL;
	}
	if (EVP_PKEY_is_a(k, "RSA")) {
		/* Upper bound: verifying the CSR's signature costs the signer time growing with the
		 * modulus (a 64 KiB body holds a ~250,000-bit one); 8192 is the most any TLS
		 * stack uses. Checked before X509_REQ_verify. */
		int bits = EVP_PKEY_get_bits(k);
		if (bits >= 2048 && bits <= CA_RSA_BITS_MAX)
			return 0;
		snprintf(err, errlen, "RSA key of %d bits: 2048 to %d expected", bits,
		         CA_RSA_BITS_MAX);
		return -EINVAL;
	}
	snprintf(err, errlen, "unsupported key type: EC P-256/P-384 or RSA 2048-8192 expected");
	return -EINVAL;
}

int ca_sign_csr(const char *pki_dir, const char *csr_pem, size_t csr_len, const char *site,
                const char *agent, const char *org, const char *city, char **cert_pem,
                char **ca_pem, char *serial, size_t seriallen, int64_t *not_after_ms, char *err,
                size_t errlen)
{
	*cert_pem = *ca_pem = NULL;
	if (!agent || !agent[0])
		agent = site; /* a token from before tokens named the agent */
	if (!vw_conf_id_valid(site) || !vw_conf_id_valid(agent) || !ca_name_valid(org) ||
	    (city[0] && !ca_name_valid(city))) {
		snprintf(err, errlen, "the enrollment names an invalid site, agent, org or city");
		return -EINVAL;
	}
	EVP_PKEY *ca_key = NULL;
	X509 *ca = NULL, *x = NULL;
	X509_REQ *req = NULL;
	int rc = -EINVAL;
	BIO *in = csr_len <= INT32_MAX ? BIO_new_mem_buf(csr_pem, (int)csr_len) : NULL;
	if (in)
		req = PEM_read_bio_X509_REQ(in, NULL, NULL, NULL);
	BIO_free(in);
	EVP_PKEY *pub = req ? X509_REQ_get0_pubkey(req) : NULL;
	if (!req || !pub) {
		ERR_clear_error();
		snprintf(err, errlen, "not a PEM certificate signing request");
		goto out;
	}
	/* The key's type and size first: verifying with a huge RSA key is the costly part. */
	if ((rc = csr_key_ok(pub, err, errlen)) != 0)
		goto out;
	/* Proof of possession: whoever sent the CSR holds the private key it names. */
	if (X509_REQ_verify(req, pub) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "the CSR's signature does not verify");
		rc = -EINVAL;
		goto out;
	}
	if ((rc = load_ca(pki_dir, &ca_key, &ca, err, errlen)) != 0)
		goto out;
	struct name_parts subj = {site, org, city[0] ? city : NULL, agent};
	if (!(x = agent_cert(pub, &subj, ca, ca_key, serial, seriallen))) {
		rc = ssl_fail(err, errlen, "cannot make the agent certificate");
		goto out;
	}
	*cert_pem = pem_of(x);
	*ca_pem = pem_of(ca);
	if (!*cert_pem || !*ca_pem) {
		free(*cert_pem);
		free(*ca_pem);
		*cert_pem = *ca_pem = NULL;
		rc = ssl_fail(err, errlen, "cannot encode the certificate");
		goto out;
	}
	*not_after_ms = vw_now_ms() + (int64_t)CA_AGENT_DAYS * 86400000;
	rc = 0;
out:
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	X509_REQ_free(req);
	return rc;
}

int ca_serial_normalize(const char *in, char *out, size_t outlen)
{
	char clean[130];
	size_t n = 0;
	if (in[0] == '0' && (in[1] == 'x' || in[1] == 'X'))
		in += 2;
	for (; *in; in++) {
		if (*in == ':')
			continue;
		if (!isxdigit((unsigned char)*in) || n + 1 >= sizeof(clean))
			return -EINVAL;
		clean[n++] = *in;
	}
	clean[n] = '\0';
	BIGNUM *bn = NULL;
	if (n == 0 || !BN_hex2bn(&bn, clean))
		return -EINVAL;
	char *h = BN_bn2hex(bn);
	int rc = h && strlen(h) < outlen ? 0 : -EINVAL;
	if (!rc)
		snprintf(out, outlen, "%s", h);
	OPENSSL_free(h);
	BN_free(bn);
	return rc;
}

int ca_crl_write(const char *pki_dir, const struct ca_revoked *list, size_t n, char *err,
                 size_t errlen)
{
	EVP_PKEY *ca_key = NULL;
	X509 *ca = NULL;
	X509_CRL *crl = NULL;
	ASN1_TIME *t = NULL;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *num = NULL;
	int rc = load_ca(pki_dir, &ca_key, &ca, err, errlen);
	if (rc)
		return rc;
	rc = -EIO;
	crl = X509_CRL_new();
	t = ASN1_TIME_new();
	if (!crl || !t || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) || !X509_gmtime_adj(t, 0) ||
	    !X509_CRL_set1_lastUpdate(crl, t) ||
	    !X509_CRL_set1_nextUpdate(crl, X509_get0_notAfter(ca)))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_INTEGER *ai = NULL;
		ASN1_TIME *when = ASN1_TIME_new();
		int ok = r && when && BN_hex2bn(&bn, list[i].serial) &&
		         (ai = BN_to_ASN1_INTEGER(bn, NULL)) &&
		         X509_REVOKED_set_serialNumber(r, ai) &&
		         ASN1_TIME_set(when, (time_t)(list[i].revoked_ms / 1000)) &&
		         X509_REVOKED_set_revocationDate(r, when) && X509_CRL_add0_revoked(crl, r);
		ASN1_INTEGER_free(ai);
		ASN1_TIME_free(when);
		if (!ok) {
			X509_REVOKED_free(r);
			goto fail;
		}
	}
	/* cRLNumber grows with time (RFC 5280 5.2.3 asks for a monotonic number). */
	if (!BN_set_word(bn ? bn : (bn = BN_new()), (BN_ULONG)(vw_now_ms() / 1000)) ||
	    !(num = BN_to_ASN1_INTEGER(bn, NULL)) ||
	    !X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) || !X509_CRL_sort(crl) ||
	    !X509_CRL_sign(crl, ca_key, EVP_sha256()))
		goto fail;
	char path[4096];
	snprintf(path, sizeof(path), "%s/ca.crl", pki_dir);
	/* 0644: the CRL is public, and a server running as another user reads it. */
	if (vw_file_replace(path, 0644, put_crl, crl, err, errlen) != 0) {
		ERR_clear_error();
		goto out;
	}
	log_info("event=crl_written path=%s revoked=%zu", path, n);
	rc = 0;
	goto out;
fail:
	rc = ssl_fail(err, errlen, "cannot make the CRL");
out:
	ASN1_INTEGER_free(num);
	BN_free(bn);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return rc;
}

int ca_crl_covers(const char *pki_dir, const char *crl_path, const struct ca_revoked *list,
                  size_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/ca.crt", pki_dir);
	X509 *ca = NULL;
	X509_CRL *crl = NULL;
	FILE *fp = fopen(path, "r");
	if (fp) {
		ca = PEM_read_X509(fp, NULL, NULL, NULL);
		fclose(fp);
	}
	if ((fp = fopen(crl_path, "r")) != NULL) {
		crl = PEM_read_X509_CRL(fp, NULL, NULL, NULL);
		fclose(fp);
	}
	EVP_PKEY *pub = ca ? X509_get0_pubkey(ca) : NULL;
	int ok = crl && pub && X509_CRL_verify(crl, pub) == 1;
	for (size_t i = 0; ok && i < n; i++) {
		BIGNUM *bn = NULL;
		ASN1_INTEGER *ai = NULL;
		X509_REVOKED *rev = NULL;
		ok = BN_hex2bn(&bn, list[i].serial) && (ai = BN_to_ASN1_INTEGER(bn, NULL)) &&
		     X509_CRL_get0_by_serial(crl, &rev, ai) == 1;
		ASN1_INTEGER_free(ai);
		BN_free(bn);
	}
	ERR_clear_error();
	X509_CRL_free(crl);
	X509_free(ca);
	return ok;
}
