/* draw: the verifiable double-random draw (docs/DRAW.md). One engine computes a document from
 * the manifest, the revealed values and secret, the sessions and the replacements' inputs; execute,
 * replace and verify all run it, so what is published and what is verified are the same code. */
#include "draw.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "vtime.h"

#define DRAW_HKDF_SALT "venuewatch-draw-1"
/* China Standard Time: UTC+8 all year, no daylight saving since 1991. */
#define DRAW_TZ_MS (8LL * 3600 * 1000)
#define DRAW_DAY_MS 86400000LL
#define DRAW_MAX_INFO 400

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- hex, hashes, HKDF ---------------------------------------------------------------- */

static void hex_encode(const unsigned char *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes hex of even length into at most max bytes; -1 when it is not that. */
static int hex_decode(const char *s, unsigned char *out, size_t max, size_t *n)
{
	size_t len = strlen(s);
	if (len % 2 || len / 2 > max)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		int h = hexval((unsigned char)s[2 * i]), l = hexval((unsigned char)s[2 * i + 1]);
		if (h < 0 || l < 0)
			return -1;
		out[i] = (unsigned char)(h << 4 | l);
	}
	*n = len / 2;
	return 0;
}

static int sha256(const void *p, size_t n, unsigned char md[32])
{
	unsigned int len = 0;
	return EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -EIO;
}

static int sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[32];
	int rc = sha256(p, n, md);
	if (rc == 0)
		hex_encode(md, 32, out);
	return rc;
}

/* HKDF (RFC 5869) with SHA-256 through OpenSSL's EVP_KDF, one context reused per engine. */
struct hk {
	EVP_KDF *kdf;
	EVP_KDF_CTX *ctx;
	unsigned char key[32]; /* the PRK the context is set up for (keyed) */
	int keyed;
	/* HKDF-Expand of one block, T(1) = HMAC(PRK, info || 0x01), with HMAC's two SHA-256
	 * states after the padded key kept (RFC 2104): 10^5 expansions of one PRK then cost two
	 * state copies and three short updates each, not a KDF derivation's setup. */
	EVP_MD *md;
	EVP_MD_CTX *ipad, *opad, *tmp;
	unsigned char hkey[32];
	int hkeyed;
};

static int hk_init(struct hk *h)
{
	h->kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	h->ctx = h->kdf ? EVP_KDF_CTX_new(h->kdf) : NULL;
	h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	h->ipad = EVP_MD_CTX_new();
	h->opad = EVP_MD_CTX_new();
	h->tmp = EVP_MD_CTX_new();
	return h->ctx && h->md && h->ipad && h->opad && h->tmp ? 0 : -EIO;
}

static void hk_close(struct hk *h)
{
	EVP_KDF_CTX_free(h->ctx);
	EVP_KDF_free(h->kdf);
	EVP_MD_CTX_free(h->ipad);
	EVP_MD_CTX_free(h->opad);
	EVP_MD_CTX_free(h->tmp);
	EVP_MD_free(h->md);
	h->ctx = NULL;
	h->kdf = NULL;
	h->ipad = h->opad = h->tmp = NULL;
	h->md = NULL;
}

/* The HMAC-SHA-256 states after key XOR ipad / opad (the 32-byte key padded to the 64-byte
 * block). */
static int hk_hmac_key(struct hk *h, const unsigned char prk[32])
{
	unsigned char pad[64];
	int ok = 1;
	for (int k = 0; k < 2 && ok; k++) {
		memset(pad, k ? 0x5c : 0x36, sizeof pad);
		for (int i = 0; i < 32; i++)
			pad[i] ^= prk[i];
		EVP_MD_CTX *c = k ? h->opad : h->ipad;
		ok = EVP_DigestInit_ex(c, h->md, NULL) == 1 && EVP_DigestUpdate(c, pad, 64) == 1;
	}
	OPENSSL_cleanse(pad, sizeof pad);
	if (!ok)
		return -EIO;
	memcpy(h->hkey, prk, 32);
	h->hkeyed = 1;
	return 0;
}

static int hk_expand1(struct hk *h, const unsigned char prk[32], const unsigned char *info,
                      size_t n, unsigned char *out, size_t outlen)
{
	static const unsigned char one = 1;
	unsigned char t[32];
	unsigned int tl = 0;
	if ((!h->hkeyed || memcmp(h->hkey, prk, 32)) && hk_hmac_key(h, prk) < 0)
		return -EIO;
	if (EVP_MD_CTX_copy_ex(h->tmp, h->ipad) != 1 || EVP_DigestUpdate(h->tmp, info, n) != 1 ||
	    EVP_DigestUpdate(h->tmp, &one, 1) != 1 || EVP_DigestFinal_ex(h->tmp, t, &tl) != 1 ||
	    EVP_MD_CTX_copy_ex(h->tmp, h->opad) != 1 || EVP_DigestUpdate(h->tmp, t, 32) != 1 ||
	    EVP_DigestFinal_ex(h->tmp, t, &tl) != 1)
		return -EIO;
	memcpy(out, t, outlen);
	return 0;
}

static int hk_extract(struct hk *h, const unsigned char *ikm, size_t n, unsigned char prk[32])
{
	int mode = EVP_KDF_HKDF_MODE_EXTRACT_ONLY;
	OSSL_PARAM p[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, n),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)DRAW_HKDF_SALT,
	                                      sizeof DRAW_HKDF_SALT - 1),
	    OSSL_PARAM_construct_end()};
	h->keyed = 0;
	return EVP_KDF_derive(h->ctx, prk, 32, p) == 1 ? 0 : -EIO;
}

/* The context keeps digest, mode and key between calls: a draw expands one PRK 10^5 times and
 * only the info changes. */
static int hk_expand(struct hk *h, const unsigned char prk[32], const unsigned char *info, size_t n,
                     unsigned char *out, size_t outlen)
{
	if (outlen <= 32)
		return hk_expand1(h, prk, info, n, out, outlen);
	if (!h->keyed || memcmp(h->key, prk, 32)) {
		int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
		OSSL_PARAM p[] = {
		    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		    OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
		    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)prk, 32),
		    OSSL_PARAM_construct_end()};
		if (EVP_KDF_CTX_set_params(h->ctx, p) != 1)
			return -EIO;
		memcpy(h->key, prk, 32);
		h->keyed = 1;
	}
	OSSL_PARAM p[] = {OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, n),
	                  OSSL_PARAM_construct_end()};
	return EVP_KDF_derive(h->ctx, out, outlen, p) == 1 ? 0 : -EIO;
}

/* The DRBG of docs/DRAW.md: 8-byte big-endian words from
 * HKDF-Expand(PRK, label 0x00 counter_be32, 32), counter from 0. */
struct drbg {
	struct hk *hk;
	const unsigned char *prk;
	unsigned char info[DRAW_MAX_INFO];
	size_t ilen;
	uint32_t ctr;
	unsigned char blk[32];
	int pos, failed;
};

static void drbg_init(struct drbg *d, struct hk *hk, const unsigned char *prk, const char *label,
                      const char *org, const char *extra)
{
	d->hk = hk;
	d->prk = prk;
	d->ilen = 0;
	d->ctr = 0;
	d->pos = 32;
	d->failed = 0;
	const char *parts[3] = {label, org, extra};
	for (int i = 0; i < 3 && parts[i]; i++) {
		size_t n = strlen(parts[i]);
		if (i)
			d->info[d->ilen++] = 0;
		memcpy(d->info + d->ilen, parts[i], n); /* ids are <= DRAW_MAX_KEY */
		d->ilen += n;
	}
}

static uint64_t drbg_u64(struct drbg *d)
{
	if (d->pos == 32) {
		unsigned char info[DRAW_MAX_INFO + 5];
		memcpy(info, d->info, d->ilen);
		info[d->ilen] = 0;
		info[d->ilen + 1] = (unsigned char)(d->ctr >> 24);
		info[d->ilen + 2] = (unsigned char)(d->ctr >> 16);
		info[d->ilen + 3] = (unsigned char)(d->ctr >> 8);
		info[d->ilen + 4] = (unsigned char)d->ctr;
		if (hk_expand(d->hk, d->prk, info, d->ilen + 5, d->blk, 32) < 0)
			d->failed = 1;
		d->ctr++;
		d->pos = 0;
	}
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x = x << 8 | d->blk[d->pos + i];
	d->pos += 8;
	return x;
}

/* Uniform in [0, n) by rejection: words >= 2^64 - (2^64 mod n) are drawn again. */
static uint64_t drbg_uniform(struct drbg *d, uint64_t n)
{
	uint64_t rem = (UINT64_MAX % n + 1) % n; /* 2^64 mod n */
	for (;;) {
		uint64_t x = drbg_u64(d);
		if (d->failed)
			return 0;
		if (rem == 0 || x <= UINT64_MAX - rem)
			return x % n;
	}
}

/* ---- canonical JSON ------------------------------------------------------------------- */

static int key_cmp(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	return strcmp(x->string, y->string);
}

/* Sorts every object's keys bytewise, recursively; numbers must be integers in 32 bits (what
 * cJSON prints exactly), keys unique. */
static int canon(cJSON *j, char *err, size_t errlen)
{
	if (cJSON_IsNumber(j)) {
		double d = j->valuedouble;
		if (!(d >= -2147483648.0 && d <= 2147483647.0) || d != floor(d))
			return fail(err, errlen, -EINVAL,
			            "%s: %g is not an integer of 32 bits (canonical JSON)",
			            j->string ? j->string : "number", d);
		return 0;
	}
	if (!cJSON_IsArray(j) && !cJSON_IsObject(j))
		return 0;
	size_t n = 0;
	for (cJSON *c = j->child; c; c = c->next)
		n++;
	if (cJSON_IsObject(j) && n > 1) {
		cJSON **a = malloc(n * sizeof *a);
		if (!a)
			return -ENOMEM;
		size_t i = 0;
		for (cJSON *c = j->child; c; c = c->next)
			a[i++] = c;
		qsort(a, n, sizeof *a, key_cmp);
		for (i = 0; i + 1 < n; i++)
			if (strcmp(a[i]->string, a[i + 1]->string) == 0) {
				int rc =
				    fail(err, errlen, -EINVAL, "%s: duplicate key", a[i]->string);
				free(a);
				return rc;
			}
		j->child = a[0];
		for (i = 0; i < n; i++) {
			a[i]->prev = i ? a[i - 1] : a[n - 1];
			a[i]->next = i + 1 < n ? a[i + 1] : NULL;
		}
		free(a);
	}
	for (cJSON *c = j->child; c; c = c->next) {
		int rc = canon(c, err, errlen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static char *canon_print(cJSON *j, char *err, size_t errlen)
{
	if (canon(j, err, errlen) < 0)
		return NULL;
	char *s = cJSON_PrintUnformatted(j);
	if (!s)
		fail(err, errlen, -ENOMEM, "out of memory printing JSON");
	return s;
}

static int canon_sha(cJSON *j, char out[65], char *err, size_t errlen)
{
	char *s = canon_print(j, err, errlen);
	if (!s)
		return -EINVAL;
	int rc = sha256_hex(s, strlen(s), out);
	free(s);
	return rc;
}

int draw_canonical(const char *json, char **out, char *err, size_t errlen)
{
	cJSON *j = cJSON_Parse(json);
	if (!j)
		return fail(err, errlen, -EINVAL, "not JSON");
	*out = canon_print(j, err, errlen);
	cJSON_Delete(j);
	return *out ? 0 : -EINVAL;
}

/* ---- small parsers -------------------------------------------------------------------- */

static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int era = (y >= 0 ? y : y - 399) / 400;
	int yoe = y - era * 400;
	int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int64_t)era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, char out[24])
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
	int64_t m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	snprintf(out, 24, "%04d-%02d-%02d", (int)(y % 10000), (int)m, (int)d);
}

/* "YYYY-MM-DD" → days since 1970-01-01; -1 when it is not a real date. */
static int64_t parse_date(const char *s)
{
	if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -1;
	int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return -1;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return -1;
	return days_from_civil(y, m, d);
}

static int64_t local_day(int64_t ms)
{
	int64_t t = ms + DRAW_TZ_MS;
	return (t >= 0 ? t : t - DRAW_DAY_MS + 1) / DRAW_DAY_MS;
}

/* An id (org, inspector, site, item): 1..DRAW_MAX_KEY bytes of UTF-8 without control bytes. */
static int id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > DRAW_MAX_KEY || !vw_utf8_valid(s))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20)
			return 0;
	return 1;
}

static const char *str_of(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Every key of object o is one of the NULL-terminated list; else names the first that is not. */
static const char *unknown_key(const cJSON *o, const char *const *keys)
{
	for (const cJSON *c = o->child; c; c = c->next) {
		int ok = 0;
		for (size_t i = 0; keys[i]; i++)
			ok |= strcmp(c->string, keys[i]) == 0;
		if (!ok)
			return c->string;
	}
	return NULL;
}

static int str_field(const cJSON *o, const char *k, int is_id, const char *path, const char **out,
                     char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsString(v))
		return fail(err, errlen, -EINVAL, "%s.%s: must be a string", path, k);
	if (is_id ? !id_ok(v->valuestring) : !vw_utf8_valid(v->valuestring))
		return fail(err, errlen, -EINVAL, "%s.%s: %s", path, k,
		            is_id ? "must be 1..128 bytes of UTF-8 without control characters"
		                  : "must be UTF-8");
	*out = v->valuestring;
	return 0;
}

static int is_id_list(const cJSON *a)
{
	if (!cJSON_IsArray(a))
		return 0;
	for (const cJSON *c = a->child; c; c = c->next)
		if (!cJSON_IsString(c) || !id_ok(c->valuestring))
			return 0;
	return 1;
}

static int strp_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A sorted, duplicate-free copy of a string array (NULL on a duplicate or no memory). */
static cJSON *sorted_strings(const cJSON *a, const char **dup)
{
	size_t n = (size_t)cJSON_GetArraySize(a), i = 0;
	const char **v = malloc((n ? n : 1) * sizeof *v);
	if (!v)
		return NULL;
	for (const cJSON *c = a->child; c; c = c->next)
		v[i++] = c->valuestring;
	qsort(v, n, sizeof *v, strp_cmp);
	cJSON *out = cJSON_CreateArray();
	for (i = 0; out && i < n; i++) {
		if (i && strcmp(v[i], v[i - 1]) == 0) {
			*dup = v[i];
			cJSON_Delete(out);
			out = NULL;
			break;
		}
		cJSON_AddItemToArray(out, cJSON_CreateString(v[i]));
	}
	free(v);
	return out;
}

/* ---- the plan ------------------------------------------------------------------------- */

static const char *const plan_keys[] = {"scope_city", "grades", "inspectors_per", "recusal",
                                        "window",     "mode",   "items",          NULL};

static int risk_id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 31)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

static int is_int(const cJSON *v, double lo, double hi)
{
	return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
	       v->valuedouble >= lo && v->valuedouble <= hi;
}

static int bool_field(const cJSON *o, const char *k, int dflt, const char *path, int *out,
                      char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!v) {
		*out = dflt;
		return 0;
	}
	if (!cJSON_IsBool(v))
		return fail(err, errlen, -EINVAL, "%s.%s: must be true or false", path, k);
	*out = cJSON_IsTrue(v);
	return 0;
}

/* Validates plan `in` and builds its normalised form. */
static int plan_norm(const cJSON *in, cJSON **out, char *err, size_t errlen)
{
	if (!cJSON_IsObject(in))
		return fail(err, errlen, -EINVAL, "plan: must be an object");
	const char *bad = unknown_key(in, plan_keys);
	if (bad)
		return fail(err, errlen, -EINVAL, "plan.%s: unknown field", bad);
	cJSON *p = cJSON_CreateObject();
	if (!p)
		return -ENOMEM;
	int rc = -EINVAL;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, "scope_city");
	const char *scope = "";
	if (v && !cJSON_IsString(v)) {
		fail(err, errlen, rc, "plan.scope_city: must be a string (\"\" = a province draw)");
		goto fail;
	}
	if (v)
		scope = v->valuestring;
	if (*scope && !id_ok(scope)) {
		fail(err, errlen, rc, "plan.scope_city: must be 1..128 bytes of UTF-8");
		goto fail;
	}
	cJSON_AddStringToObject(p, "scope_city", scope);

	const cJSON *g = cJSON_GetObjectItemCaseSensitive(in, "grades");
	int ng = cJSON_GetArraySize(g);
	if (!cJSON_IsArray(g) || ng < 1 || ng > DRAW_MAX_GRADES) {
		fail(err, errlen, rc, "plan.grades: must be an array of 1..%d grades",
		     DRAW_MAX_GRADES);
		goto fail;
	}
	cJSON *grades = cJSON_AddArrayToObject(p, "grades");
	static const char *const grade_keys[] = {"risk", "ratio", "ratio_bp", "min", NULL};
	int i = 0;
	for (const cJSON *e = g->child; e; e = e->next, i++) {
		if (!cJSON_IsObject(e)) {
			fail(err, errlen, rc, "plan.grades[%d]: must be an object", i);
			goto fail;
		}
		if ((bad = unknown_key(e, grade_keys))) {
			fail(err, errlen, rc, "plan.grades[%d].%s: unknown field", i, bad);
			goto fail;
		}
		const char *risk = str_of(e, "risk");
		if (!risk || !risk_id_ok(risk)) {
			fail(err, errlen, rc,
			     "plan.grades[%d].risk: must be a grade id [a-z0-9_]{1,31}", i);
			goto fail;
		}
		for (const cJSON *o = grades->child; o; o = o->next)
			if (strcmp(str_of(o, "risk"), risk) == 0) {
				fail(err, errlen, rc, "plan.grades[%d].risk: %s is listed twice", i,
				     risk);
				goto fail;
			}
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "ratio");
		const cJSON *rb = cJSON_GetObjectItemCaseSensitive(e, "ratio_bp");
		long bp;
		if (r && rb) {
			fail(err, errlen, rc, "plan.grades[%d]: give ratio or ratio_bp, not both",
			     i);
			goto fail;
		} else if (r) {
			double x = cJSON_IsNumber(r) ? r->valuedouble : -1, s = x * 10000;
			if (!(x > 0 && x <= 1)) {
				fail(err, errlen, rc, "plan.grades[%d].ratio: must be in (0, 1]",
				     i);
				goto fail;
			}
			bp = lround(s);
			if (fabs(s - (double)bp) > 1e-6) {
				fail(err, errlen, rc,
				     "plan.grades[%d].ratio: at most 4 decimals (basis points)", i);
				goto fail;
			}
		} else if (rb) {
			if (!is_int(rb, 1, 10000)) {
				fail(err, errlen, rc,
				     "plan.grades[%d].ratio_bp: must be an integer in 1..10000", i);
				goto fail;
			}
			bp = (long)rb->valuedouble;
		} else {
			fail(err, errlen, rc, "plan.grades[%d].ratio: missing", i);
			goto fail;
		}
		const cJSON *mn = cJSON_GetObjectItemCaseSensitive(e, "min");
		if (mn && !is_int(mn, 0, 1000000)) {
			fail(err, errlen, rc,
			     "plan.grades[%d].min: must be an integer in 0..1000000", i);
			goto fail;
		}
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToArray(grades, o);
		cJSON_AddStringToObject(o, "risk", risk);
		cJSON_AddNumberToObject(o, "ratio_bp", (double)bp);
		cJSON_AddNumberToObject(o, "min", mn ? mn->valuedouble : 0);
	}

	v = cJSON_GetObjectItemCaseSensitive(in, "inspectors_per");
	if (v && !is_int(v, 2, DRAW_MAX_PER)) {
		fail(err, errlen, rc,
		     "plan.inspectors_per: must be an integer in 2..%d (at least two inspectors, "
		     "劳动保障监察条例 Art. 16)",
		     DRAW_MAX_PER);
		goto fail;
	}
	cJSON_AddNumberToObject(p, "inspectors_per", v ? v->valuedouble : 2);

	v = cJSON_GetObjectItemCaseSensitive(in, "recusal");
	if (v && !cJSON_IsObject(v)) {
		fail(err, errlen, rc, "plan.recusal: must be an object");
		goto fail;
	}
	static const char *const rec_keys[] = {"ties", "home_city", "same_pair", NULL};
	if (v && (bad = unknown_key(v, rec_keys))) {
		fail(err, errlen, rc, "plan.recusal.%s: unknown field", bad);
		goto fail;
	}
	int ties = 1, home = 0, pair = 1;
	if ((rc = bool_field(v, "ties", 1, "plan.recusal", &ties, err, errlen)) < 0 ||
	    (rc = bool_field(v, "home_city", 0, "plan.recusal", &home, err, errlen)) < 0 ||
	    (rc = bool_field(v, "same_pair", 1, "plan.recusal", &pair, err, errlen)) < 0)
		goto fail;
	rc = -EINVAL;
	if (!ties) {
		fail(err, errlen, rc, "plan.recusal.ties: cannot be turned off (回避)");
		goto fail;
	}
	cJSON *rec = cJSON_AddObjectToObject(p, "recusal");
	cJSON_AddBoolToObject(rec, "ties", 1);
	/* In a city draw every roster member is of the target's city: the rule cannot apply. */
	cJSON_AddBoolToObject(rec, "home_city", home && !*scope);
	cJSON_AddBoolToObject(rec, "same_pair", pair);

	v = cJSON_GetObjectItemCaseSensitive(in, "window");
	static const char *const win_keys[] = {"from", "to", NULL};
	if (!cJSON_IsObject(v)) {
		fail(err, errlen, rc,
		     "plan.window: must be {\"from\":\"YYYY-MM-DD\",\"to\":\"YYYY-MM-DD\"}");
		goto fail;
	}
	if ((bad = unknown_key(v, win_keys))) {
		fail(err, errlen, rc, "plan.window.%s: unknown field", bad);
		goto fail;
	}
	const char *from = str_of(v, "from"), *to = str_of(v, "to");
	int64_t df = parse_date(from), dt = parse_date(to);
	if (df < 0) {
		fail(err, errlen, rc, "plan.window.from: must be a date YYYY-MM-DD");
		goto fail;
	}
	if (dt < 0) {
		fail(err, errlen, rc, "plan.window.to: must be a date YYYY-MM-DD");
		goto fail;
	}
	if (dt < df || dt - df > 366) {
		fail(err, errlen, rc, "plan.window.to: must be on or after from, within 366 days");
		goto fail;
	}
	cJSON *win = cJSON_AddObjectToObject(p, "window");
	cJSON_AddStringToObject(win, "from", from);
	cJSON_AddStringToObject(win, "to", to);

	v = cJSON_GetObjectItemCaseSensitive(in, "mode");
	const char *mode = v ? (cJSON_IsString(v) ? v->valuestring : "") : "onsite";
	if (strcmp(mode, "onsite") && strcmp(mode, "remote")) {
		fail(err, errlen, rc, "plan.mode: must be onsite or remote");
		goto fail;
	}
	cJSON_AddStringToObject(p, "mode", mode);

	v = cJSON_GetObjectItemCaseSensitive(in, "items");
	cJSON *items = cJSON_AddArrayToObject(p, "items");
	if (v && !is_id_list(v)) {
		fail(err, errlen, rc, "plan.items: must be an array of item ids");
		goto fail;
	}
	for (const cJSON *e = v ? v->child : NULL; e; e = e->next) {
		for (const cJSON *o = items->child; o; o = o->next)
			if (strcmp(o->valuestring, e->valuestring) == 0) {
				fail(err, errlen, rc, "plan.items: %s is listed twice",
				     e->valuestring);
				goto fail;
			}
		cJSON_AddItemToArray(items, cJSON_CreateString(e->valuestring));
	}
	*out = p;
	return 0;
fail:
	cJSON_Delete(p);
	return rc;
}

int draw_plan_check(const char *plan_json, char **normalised, char *err, size_t errlen)
{
	cJSON *in = cJSON_Parse(plan_json), *p = NULL;
	if (!in)
		return fail(err, errlen, -EINVAL, "plan: not JSON");
	int rc = plan_norm(in, &p, err, errlen);
	cJSON_Delete(in);
	if (rc < 0)
		return rc;
	*normalised = canon_print(p, err, errlen);
	cJSON_Delete(p);
	return *normalised ? 0 : -ENOMEM;
}

/* ---- randomness ----------------------------------------------------------------------- */

int draw_value_canonical(const char *value, const char *form, char **out, char *err, size_t errlen)
{
	int sorted = strcmp(form, "sorted") == 0;
	size_t n = 0, cap = 16, len = strlen(value);
	const char **tok = malloc(cap * sizeof *tok);
	size_t *tlen = malloc(cap * sizeof *tlen);
	int rc = -EINVAL;
	char *s = NULL;
	if (!tok || !tlen) {
		rc = -ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < len;) {
		char c = value[i];
		if (c == ' ' || c == ',' || c == '.' || c == '+' || c == '-' || c == '\t' ||
		    c == '\n' || c == '\r') {
			i++;
			continue;
		}
		if (c < '0' || c > '9') {
			fail(err, errlen, rc, "'%c' at byte %zu is not a digit or a separator", c,
			     i);
			goto done;
		}
		size_t j = i;
		while (j < len && value[j] >= '0' && value[j] <= '9')
			j++;
		while (i + 1 < j && value[i] == '0') /* no leading zeros; "0" stays */
			i++;
		if (n == cap) {
			cap *= 2;
			const char **t2 = realloc(tok, cap * sizeof *tok);
			if (t2)
				tok = t2;
			size_t *l2 = realloc(tlen, cap * sizeof *tlen);
			if (l2)
				tlen = l2;
			if (!t2 || !l2) {
				rc = -ENOMEM;
				goto done;
			}
		}
		tok[n] = value + i;
		tlen[n++] = j - i;
		i = j;
	}
	if (n == 0) {
		fail(err, errlen, rc, "no number in the value");
		goto done;
	}
	if (sorted) /* numerically ascending: by length, then digits (no leading zeros) */
		for (size_t i = 1; i < n; i++)
			for (size_t j = i; j > 0; j--) {
				int c = tlen[j - 1] != tlen[j]
				            ? (tlen[j - 1] > tlen[j] ? 1 : -1)
				            : memcmp(tok[j - 1], tok[j], tlen[j]);
				if (c <= 0)
					break;
				const char *t = tok[j];
				size_t l = tlen[j];
				tok[j] = tok[j - 1];
				tlen[j] = tlen[j - 1];
				tok[j - 1] = t;
				tlen[j - 1] = l;
			}
	s = malloc(len + n + 2);
	if (!s) {
		rc = -ENOMEM;
		goto done;
	}
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (i)
			s[o++] = '.';
		memcpy(s + o, tok[i], tlen[i]);
		o += tlen[i];
	}
	s[o++] = '/';
	s[o] = '\0';
	*out = s;
	rc = 0;
done:
	free(tok);
	free(tlen);
	return rc;
}

static int source_norm(const cJSON *e, const char *path, cJSON *names, cJSON **out, char *err,
                       size_t errlen)
{
	static const char *const keys[] = {"name", "expected", "form", NULL};
	if (!cJSON_IsObject(e))
		return fail(err, errlen, -EINVAL, "%s: must be an object", path);
	const char *bad = unknown_key(e, keys);
	if (bad)
		return fail(err, errlen, -EINVAL, "%s.%s: unknown field", path, bad);
	const char *name = NULL, *exp = NULL, *form = str_of(e, "form");
	int rc;
	if ((rc = str_field(e, "name", 1, path, &name, err, errlen)) < 0 ||
	    (rc = str_field(e, "expected", 0, path, &exp, err, errlen)) < 0)
		return rc;
	int64_t ms;
	if (vw_time_parse_iso(exp, &ms) < 0)
		return fail(err, errlen, -EINVAL, "%s.expected: must be an RFC 3339 UTC time",
		            path);
	if (!form || (strcmp(form, "sorted") && strcmp(form, "ordered")))
		return fail(err, errlen, -EINVAL, "%s.form: must be sorted or ordered", path);
	for (const cJSON *c = names->child; c; c = c->next)
		if (strcmp(c->valuestring, name) == 0)
			return fail(err, errlen, -EINVAL, "%s.name: %s is declared twice", path,
			            name);
	cJSON_AddItemToArray(names, cJSON_CreateString(name));
	char iso[VW_ISO_LEN];
	vw_time_iso(ms, iso);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "expected", iso);
	cJSON_AddStringToObject(o, "form", form);
	*out = o;
	return 0;
}

static int randomness_norm(const cJSON *in, cJSON **out, char *err, size_t errlen)
{
	static const char *const keys[] = {"sources", "replacements", NULL};
	if (!cJSON_IsObject(in))
		return fail(err, errlen, -EINVAL, "randomness: must be an object");
	const char *bad = unknown_key(in, keys);
	if (bad)
		return fail(err, errlen, -EINVAL, "randomness.%s: unknown field", bad);
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(in, "sources");
	const cJSON *rep = cJSON_GetObjectItemCaseSensitive(in, "replacements");
	if (!cJSON_IsArray(src) || cJSON_GetArraySize(src) < 1 ||
	    cJSON_GetArraySize(src) > DRAW_MAX_SOURCES)
		return fail(err, errlen, -EINVAL, "randomness.sources: must be 1..%d sources",
		            DRAW_MAX_SOURCES);
	if (rep && (!cJSON_IsArray(rep) || cJSON_GetArraySize(rep) > DRAW_MAX_REPLACE))
		return fail(err, errlen, -EINVAL,
		            "randomness.replacements: must be an array of 0..%d sources",
		            DRAW_MAX_REPLACE);
	cJSON *r = cJSON_CreateObject(), *names = cJSON_CreateArray();
	cJSON *os = cJSON_AddArrayToObject(r, "sources");
	cJSON *orp = cJSON_AddArrayToObject(r, "replacements");
	int rc = 0;
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		const cJSON *a = pass ? rep : src;
		int i = 0;
		for (const cJSON *e = a ? a->child : NULL; e && rc == 0; e = e->next, i++) {
			char path[64];
			snprintf(path, sizeof path, "randomness.%s[%d]",
			         pass ? "replacements" : "sources", i);
			cJSON *o = NULL;
			rc = source_norm(e, path, names, &o, err, errlen);
			if (rc == 0)
				cJSON_AddItemToArray(pass ? orp : os, o);
		}
	}
	cJSON_Delete(names);
	if (rc < 0) {
		cJSON_Delete(r);
		return rc;
	}
	*out = r;
	return 0;
}

int draw_commitment(const char *secret_hex, char out[65], char *err, size_t errlen)
{
	unsigned char s[DRAW_MAX_SECRET];
	size_t n;
	if (!secret_hex || hex_decode(secret_hex, s, sizeof s, &n) < 0 || n < DRAW_MIN_SECRET)
		return fail(err, errlen, -EINVAL, "secret: must be %d..%d bytes in hex",
		            DRAW_MIN_SECRET, DRAW_MAX_SECRET);
	return sha256_hex(s, n, out);
}

static int hex64_ok(const char *s)
{
	if (!s || strlen(s) != 64)
		return 0;
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* ---- register rows -------------------------------------------------------------------- */

/* A target row checked and rebuilt with the public fields only (no "version"). */
static int target_row(const cJSON *e, const char *path, cJSON **out, char *err, size_t errlen)
{
	static const char *const keys[] = {"org",  "name",  "city",    "level", "occupations",
	                                   "risk", "sites", "version", NULL};
	if (!cJSON_IsObject(e))
		return fail(err, errlen, -EINVAL, "%s: must be an object", path);
	const char *bad = unknown_key(e, keys);
	if (bad)
		return fail(err, errlen, -EINVAL, "%s.%s: unknown field", path, bad);
	const char *org = NULL, *name = NULL, *city = NULL, *level = NULL, *risk = NULL;
	int rc;
	if ((rc = str_field(e, "org", 1, path, &org, err, errlen)) < 0 ||
	    (rc = str_field(e, "name", 0, path, &name, err, errlen)) < 0 ||
	    (rc = str_field(e, "city", 1, path, &city, err, errlen)) < 0 ||
	    (rc = str_field(e, "level", 0, path, &level, err, errlen)) < 0 ||
	    (rc = str_field(e, "risk", 0, path, &risk, err, errlen)) < 0)
		return rc;
	if (strcmp(level, "city") && strcmp(level, "province"))
		return fail(err, errlen, -EINVAL, "%s.level: must be city or province", path);
	if (!risk_id_ok(risk))
		return fail(err, errlen, -EINVAL, "%s.risk: must be a grade id [a-z0-9_]{1,31}",
		            path);
	const cJSON *occ = cJSON_GetObjectItemCaseSensitive(e, "occupations");
	const cJSON *sites = cJSON_GetObjectItemCaseSensitive(e, "sites");
	if (!cJSON_IsArray(occ))
		return fail(err, errlen, -EINVAL, "%s.occupations: must be an array of strings",
		            path);
	for (const cJSON *c = occ->child; c; c = c->next)
		if (!cJSON_IsString(c) || !vw_utf8_valid(c->valuestring))
			return fail(err, errlen, -EINVAL,
			            "%s.occupations: must be an array of strings", path);
	if (!is_id_list(sites))
		return fail(err, errlen, -EINVAL, "%s.sites: must be an array of site ids", path);
	const char *dup = NULL;
	cJSON *ss = sorted_strings(sites, &dup);
	if (!ss)
		return fail(err, errlen, -EINVAL, "%s.sites: %s is listed twice", path,
		            dup ? dup : "?");
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "org", org);
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "city", city);
	cJSON_AddStringToObject(o, "level", level);
	cJSON_AddItemToObject(o, "occupations", cJSON_Duplicate(occ, 1));
	cJSON_AddStringToObject(o, "risk", risk);
	cJSON_AddItemToObject(o, "sites", ss);
	*out = o;
	return 0;
}

static int tie_cmp(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	int c = strcmp(str_of(x, "org"), str_of(y, "org"));
	return c ? c : strcmp(str_of(x, "kind"), str_of(y, "kind"));
}

static int range_cmp(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	int c =
	    strcmp(cJSON_GetArrayItem(x, 0)->valuestring, cJSON_GetArrayItem(y, 0)->valuestring);
	return c ? c
	         : strcmp(cJSON_GetArrayItem(x, 1)->valuestring,
	                  cJSON_GetArrayItem(y, 1)->valuestring);
}

/* Sorts an array's elements with cmp (by relinking). */
static void array_sort(cJSON *a, int (*cmp)(const void *, const void *))
{
	size_t n = (size_t)cJSON_GetArraySize(a), i = 0;
	if (n < 2)
		return;
	cJSON **v = malloc(n * sizeof *v);
	if (!v)
		return; /* the caller's canon_print then fails on nothing: order only */
	for (cJSON *c = a->child; c; c = c->next)
		v[i++] = c;
	qsort(v, n, sizeof *v, cmp);
	a->child = v[0];
	for (i = 0; i < n; i++) {
		v[i]->prev = i ? v[i - 1] : v[n - 1];
		v[i]->next = i + 1 < n ? v[i + 1] : NULL;
	}
	free(v);
}

/* An inspector row: the public part {id,name,city,department} and the private one
 * {id,ties,away} (ties sorted by org then kind, away ranges sorted). */
static int inspector_row(const cJSON *e, const char *path, int with_private, cJSON **pub,
                         cJSON **priv, char *err, size_t errlen)
{
	static const char *const keys[] = {"id",   "name", "city",    "department",
	                                   "ties", "away", "version", NULL};
	if (!cJSON_IsObject(e))
		return fail(err, errlen, -EINVAL, "%s: must be an object", path);
	const char *bad = unknown_key(e, keys);
	if (bad)
		return fail(err, errlen, -EINVAL, "%s.%s: unknown field", path, bad);
	const char *id = NULL, *name = NULL, *city = NULL, *dep = NULL;
	int rc;
	if ((rc = str_field(e, "id", 1, path, &id, err, errlen)) < 0 ||
	    (rc = str_field(e, "name", 0, path, &name, err, errlen)) < 0 ||
	    (rc = str_field(e, "city", 1, path, &city, err, errlen)) < 0 ||
	    (rc = str_field(e, "department", 0, path, &dep, err, errlen)) < 0)
		return rc;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "city", city);
	cJSON_AddStringToObject(o, "department", dep);
	*pub = o;
	if (!with_private)
		return 0;
	const cJSON *ties = cJSON_GetObjectItemCaseSensitive(e, "ties");
	const cJSON *away = cJSON_GetObjectItemCaseSensitive(e, "away");
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "id", id);
	cJSON *ot = cJSON_AddArrayToObject(p, "ties"), *oa = cJSON_AddArrayToObject(p, "away");
	*priv = p;
	if (ties && !cJSON_IsArray(ties)) {
		rc = fail(err, errlen, -EINVAL, "%s.ties: must be an array", path);
		goto fail;
	}
	int i = 0;
	for (const cJSON *t = ties ? ties->child : NULL; t; t = t->next, i++) {
		const char *org = str_of(t, "org"), *kind = str_of(t, "kind");
		if (!cJSON_IsObject(t) || !id_ok(org)) {
			rc = fail(err, errlen, -EINVAL, "%s.ties[%d].org: must be an org id", path,
			          i);
			goto fail;
		}
		if (!kind || (strcmp(kind, "affiliation") && strcmp(kind, "former") &&
		              strcmp(kind, "relative"))) {
			rc = fail(err, errlen, -EINVAL,
			          "%s.ties[%d].kind: must be affiliation, former or relative", path,
			          i);
			goto fail;
		}
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "org", org);
		cJSON_AddStringToObject(x, "kind", kind);
		cJSON_AddItemToArray(ot, x);
	}
	array_sort(ot, tie_cmp);
	if (away && !cJSON_IsArray(away)) {
		rc = fail(err, errlen, -EINVAL, "%s.away: must be an array of [from, to] dates",
		          path);
		goto fail;
	}
	i = 0;
	for (const cJSON *a = away ? away->child : NULL; a; a = a->next, i++) {
		const cJSON *f = cJSON_GetArrayItem(a, 0), *t = cJSON_GetArrayItem(a, 1);
		int64_t df = cJSON_IsString(f) ? parse_date(f->valuestring) : -1;
		int64_t dt = cJSON_IsString(t) ? parse_date(t->valuestring) : -1;
		if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2 || df < 0 || dt < df) {
			rc = fail(
			    err, errlen, -EINVAL,
			    "%s.away[%d]: must be [\"YYYY-MM-DD\", \"YYYY-MM-DD\"], from <= to",
			    path, i);
			goto fail;
		}
		cJSON_AddItemToArray(oa, cJSON_Duplicate(a, 1));
	}
	array_sort(oa, range_cmp);
	return 0;
fail:
	cJSON_Delete(o);
	cJSON_Delete(p);
	*pub = *priv = NULL;
	return rc;
}

static int item_row(const cJSON *e, const char *path, cJSON **out, char *err, size_t errlen)
{
	static const char *const keys[] = {"id", "title", "basis", "method", "version", NULL};
	if (!cJSON_IsObject(e))
		return fail(err, errlen, -EINVAL, "%s: must be an object", path);
	const char *bad = unknown_key(e, keys);
	if (bad)
		return fail(err, errlen, -EINVAL, "%s.%s: unknown field", path, bad);
	const char *id = NULL, *title = NULL, *basis = NULL, *method = NULL;
	int rc;
	if ((rc = str_field(e, "id", 1, path, &id, err, errlen)) < 0 ||
	    (rc = str_field(e, "title", 0, path, &title, err, errlen)) < 0 ||
	    (rc = str_field(e, "basis", 0, path, &basis, err, errlen)) < 0 ||
	    (rc = str_field(e, "method", 0, path, &method, err, errlen)) < 0)
		return rc;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "title", title);
	cJSON_AddStringToObject(o, "basis", basis);
	cJSON_AddStringToObject(o, "method", method);
	*out = o;
	return 0;
}

/* Rows sorted by their key: "org" for targets and previous pairs, "id" for the others. */
static int row_cmp(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	const char *kx = str_of(x, "org") ? str_of(x, "org") : str_of(x, "id");
	const char *ky = str_of(y, "org") ? str_of(y, "org") : str_of(y, "id");
	return strcmp(kx, ky);
}

static const char *row_key(const cJSON *x)
{
	return str_of(x, "org") ? str_of(x, "org") : str_of(x, "id");
}

static int rows_sort_unique(cJSON *a, const char *what, char *err, size_t errlen)
{
	array_sort(a, row_cmp);
	for (const cJSON *c = a->child; c && c->next; c = c->next)
		if (strcmp(row_key(c), row_key(c->next)) == 0)
			return fail(err, errlen, -EINVAL, "%s: %s is listed twice", what,
			            row_key(c));
	return 0;
}

/* ---- reading large arrays one element at a time -------------------------------------- */

/* cJSON's whitespace (any byte 1..32), within [p, end). */
static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (unsigned char)*p <= 32 && *p)
		p++;
	return p;
}

/* The elements of a JSON array, from its tree or from its text (then each element's tree lives
 * until the next call only: a 100,000-row array is never one tree). */
struct elit {
	const cJSON *node;   /* tree: the next element */
	const char *p, *end; /* text: where the scan is */
	cJSON *own;          /* text: the current element's tree */
	int text, started;
	size_t n; /* elements returned */
};

static void elit_tree(struct elit *it, const cJSON *a)
{
	memset(it, 0, sizeof *it);
	it->node = a ? a->child : NULL;
}

static void elit_text(struct elit *it, const char *p, const char *end)
{
	memset(it, 0, sizeof *it);
	it->text = 1;
	it->p = p;
	it->end = end;
}

/* 1: *out is the next element; 0: the array ended (it->p just after its ']'); -1: not a JSON
 * array (or cannot be parsed). */
static int elit_next(struct elit *it, const cJSON **out)
{
	cJSON_Delete(it->own);
	it->own = NULL;
	if (!it->text) {
		if (!it->node)
			return 0;
		*out = it->node;
		it->node = it->node->next;
		it->n++;
		return 1;
	}
	const char *p = skip_ws(it->p, it->end);
	if (!it->started) {
		if (p >= it->end || *p != '[')
			return -1;
		it->started = 1;
		p = skip_ws(p + 1, it->end);
		if (p < it->end && *p == ']') {
			it->p = p + 1;
			return 0;
		}
	} else {
		if (p < it->end && *p == ']') {
			it->p = p + 1;
			return 0;
		}
		if (p >= it->end || *p != ',')
			return -1;
		p = skip_ws(p + 1, it->end);
	}
	/* cJSON skips a byte order mark at the start of what it is given: not inside an array */
	if (it->end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		return -1;
	const char *q = NULL;
	it->own = cJSON_ParseWithLengthOpts(p, (size_t)(it->end - p), &q, 0);
	if (!it->own || !q)
		return -1;
	it->p = q;
	it->n++;
	*out = it->own;
	return 1;
}

static void elit_close(struct elit *it)
{
	cJSON_Delete(it->own);
	it->own = NULL;
}

/* A growing text. */
struct sbuf {
	char *p;
	size_t n, cap;
	int failed;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

/* Appends the canonical text of j (already canon()'d), printed into a scratch buffer first. */
static void sb_print(struct sbuf *b, const cJSON *j, char *scratch, int nscratch)
{
	if (scratch && cJSON_PrintPreallocated((cJSON *)j, scratch, nscratch, 0)) {
		sb_put(b, scratch, strlen(scratch));
		return;
	}
	char *s = cJSON_PrintUnformatted(j);
	if (!s) {
		b->failed = 1;
		return;
	}
	sb_put(b, s, strlen(s));
	free(s);
}

/* Small strings that live as long as the arena (chunks never move). */
struct arena {
	char **chunk;
	size_t nchunk, used, size;
};

static const char *arena_dupn(struct arena *a, const char *s, size_t len)
{
	size_t n = len + 1;
	if (!a->nchunk || a->used + n > a->size) {
		size_t size = n > 65536 ? n : 65536;
		char **c = realloc(a->chunk, (a->nchunk + 1) * sizeof *c);
		if (!c)
			return NULL;
		a->chunk = c;
		if (!(c[a->nchunk] = malloc(size)))
			return NULL;
		a->nchunk++;
		a->used = 0;
		a->size = size;
	}
	char *d = a->chunk[a->nchunk - 1] + a->used;
	memcpy(d, s, len);
	d[len] = '\0';
	a->used += n;
	return d;
}

static const char *arena_dup(struct arena *a, const char *s)
{
	return arena_dupn(a, s, strlen(s));
}

static void arena_free(struct arena *a)
{
	for (size_t i = 0; i < a->nchunk; i++)
		free(a->chunk[i]);
	free(a->chunk);
	memset(a, 0, sizeof *a);
}

/* ---- the engine ----------------------------------------------------------------------- */

struct tgt {
	const char *org, *city, *risk;
	int grade; /* rank in plan.grades, -1: not drawn from */
	int crank; /* rank of city among the targets' cities (bytewise), for the strata's order */
	unsigned char v[32];
	const cJSON *prev; /* the previous pair's inspectors, or NULL */
};

struct insp {
	const char *id, *city;
	const cJSON *ties; /* private: [{"org","kind"}], or NULL without the private part */
	int64_t *away;     /* private: [from, to] day pairs */
	int naway;
	int64_t *booked; /* local days this inspector is assigned on */
	int nbooked, capbooked;
	unsigned gen; /* == eng.gen: looked at for the current inspection */
};

struct sess {
	double id;
	const char *org; /* the drawn target's own string */
	int64_t start_ms, end_ms, day;
	char start[VW_ISO_LEN], end[VW_ISO_LEN];
	char site[DRAW_MAX_KEY + 1]; /* a copy: a streamed session's tree is gone once read */
};

struct ins {
	int t, s, ncand; /* target, chosen session (-1: none), candidate sessions */
	int64_t day;     /* the slot's local day, -1 without a slot */
	int m[DRAW_MAX_PER], nm;
	cJSON *skipped;
	int *former, nformer;
};

struct eng {
	struct hk hk;
	unsigned char msha[32], secret[DRAW_MAX_SECRET], prk[32];
	size_t nsecret;
	int province, per, home_city, same_pair, have_private;
	int64_t win_from, win_to;
	const char *mode, *scope;
	int ngrades;
	const char *grade[DRAW_MAX_GRADES];
	long bp[DRAW_MAX_GRADES], min[DRAW_MAX_GRADES];
	struct tgt *t;
	size_t nt;
	int pre_t; /* t was filled by man_read (the targets streamed), not from the tree */
	const char
	    *sess_text; /* the sessions as text, read one element at a time; NULL: the tree */
	struct insp *r;
	size_t nr;
	struct sess *s;
	size_t ns;
	struct ins *in;
	size_t nin;
	unsigned gen;
	const cJSON *rsrc, *sources; /* manifest.randomness.replacements / .sources */
	int nrep;
	cJSON *strata, *sessions, *reps, *canonical;
	char reperr[400]; /* the first replacement that could not be replayed, or "" */
};

static void eng_close(struct eng *e)
{
	hk_close(&e->hk);
	for (size_t i = 0; i < e->nr; i++) {
		free(e->r[i].away);
		free(e->r[i].booked);
	}
	for (size_t i = 0; i < e->nin; i++) {
		cJSON_Delete(e->in[i].skipped);
		free(e->in[i].former);
	}
	free(e->t);
	free(e->r);
	free(e->s);
	free(e->in);
	cJSON_Delete(e->strata);
	cJSON_Delete(e->sessions);
	cJSON_Delete(e->reps);
	cJSON_Delete(e->canonical);
	memset(e, 0, sizeof *e);
}

static int tgt_find(const struct eng *e, const char *org)
{
	size_t lo = 0, hi = e->nt;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(e->t[mid].org, org);
		if (c == 0)
			return (int)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int insp_find(const struct eng *e, const char *id)
{
	size_t lo = 0, hi = e->nr;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(e->r[mid].id, id);
		if (c == 0)
			return (int)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Loads the manifest's plan, targets, roster and previous pairs (and the private part). */
static int eng_load(struct eng *e, const cJSON *man, const cJSON *priv, char *err, size_t errlen)
{
	if (hk_init(&e->hk) < 0)
		return fail(err, errlen, -EIO, "OpenSSL: HKDF is not available");
	const cJSON *plan = cJSON_GetObjectItemCaseSensitive(man, "plan");
	const cJSON *rec = cJSON_GetObjectItemCaseSensitive(plan, "recusal");
	const cJSON *win = cJSON_GetObjectItemCaseSensitive(plan, "window");
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(plan, "grades");
	e->scope = str_of(plan, "scope_city");
	e->mode = str_of(plan, "mode");
	const cJSON *per = cJSON_GetObjectItemCaseSensitive(plan, "inspectors_per");
	if (!e->scope || !e->mode || !is_int(per, 2, DRAW_MAX_PER) || !cJSON_IsArray(g) ||
	    cJSON_GetArraySize(g) > DRAW_MAX_GRADES)
		return fail(err, errlen, -EINVAL, "manifest.plan: not a normalised plan");
	e->province = !*e->scope;
	e->per = (int)per->valuedouble;
	e->home_city = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "home_city"));
	e->same_pair = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "same_pair"));
	e->win_from = parse_date(str_of(win, "from"));
	e->win_to = parse_date(str_of(win, "to"));
	if (e->win_from < 0 || e->win_to < 0)
		return fail(err, errlen, -EINVAL, "manifest.plan.window: not a normalised window");
	for (const cJSON *x = g->child; x; x = x->next) {
		const cJSON *bp = cJSON_GetObjectItemCaseSensitive(x, "ratio_bp");
		const cJSON *mn = cJSON_GetObjectItemCaseSensitive(x, "min");
		if (!str_of(x, "risk") || !is_int(bp, 1, 10000) || !is_int(mn, 0, 1000000))
			return fail(err, errlen, -EINVAL,
			            "manifest.plan.grades[%d]: not normalised", e->ngrades);
		e->grade[e->ngrades] = str_of(x, "risk");
		e->bp[e->ngrades] = (long)bp->valuedouble;
		e->min[e->ngrades++] = (long)mn->valuedouble;
	}
	const cJSON *rnd = cJSON_GetObjectItemCaseSensitive(man, "randomness");
	e->sources = cJSON_GetObjectItemCaseSensitive(rnd, "sources");
	e->rsrc = cJSON_GetObjectItemCaseSensitive(rnd, "replacements");
	if (!cJSON_IsArray(e->sources) || !cJSON_IsArray(e->rsrc))
		return fail(err, errlen, -EINVAL,
		            "manifest.randomness: not a normalised declaration");

	const cJSON *tg = cJSON_GetObjectItemCaseSensitive(man, "targets");
	const cJSON *ro = cJSON_GetObjectItemCaseSensitive(man, "inspectors");
	const cJSON *pv = cJSON_GetObjectItemCaseSensitive(man, "previous");
	if ((!e->pre_t && !cJSON_IsArray(tg)) || !cJSON_IsArray(ro) || !cJSON_IsArray(pv))
		return fail(err, errlen, -EINVAL,
		            "manifest: targets, inspectors and previous must be arrays");
	size_t nt = e->pre_t ? e->nt : (size_t)cJSON_GetArraySize(tg);
	size_t nr = (size_t)cJSON_GetArraySize(ro);
	if (!e->pre_t)
		e->t = calloc(nt ? nt : 1, sizeof *e->t);
	e->r = calloc(nr ? nr : 1, sizeof *e->r);
	if (!e->t || !e->r)
		return -ENOMEM;
	size_t i = 0;
	const cJSON *x = e->pre_t ? NULL : tg->child;
	for (; i < nt; x = x ? x->next : NULL, i++) {
		struct tgt *t = &e->t[i];
		if (!e->pre_t) {
			t->org = str_of(x, "org");
			t->city = str_of(x, "city");
			t->risk = str_of(x, "risk");
		}
		if (!id_ok(t->org) || !t->city || !t->risk)
			return fail(err, errlen, -EINVAL, "manifest.targets[%zu]: not a target row",
			            i);
		if (i && strcmp(e->t[i - 1].org, t->org) >= 0)
			return fail(
			    err, errlen, -EINVAL,
			    "manifest.targets[%zu]: not in canonical order (by org, unique)", i);
		if (!e->province && strcmp(t->city, e->scope))
			return fail(err, errlen, -EINVAL,
			            "manifest.targets[%zu].city: %s is outside the draw's city %s",
			            i, t->city, e->scope);
		t->grade = -1;
		for (int k = 0; k < e->ngrades; k++)
			if (strcmp(e->grade[k], t->risk) == 0)
				t->grade = k;
	}
	e->nt = nt;
	i = 0;
	for (x = ro->child; x; x = x->next, i++) {
		struct insp *r = &e->r[i];
		r->id = str_of(x, "id");
		r->city = str_of(x, "city");
		if (!id_ok(r->id) || !r->city)
			return fail(err, errlen, -EINVAL,
			            "manifest.inspectors[%zu]: not a roster row", i);
		if (i && strcmp(e->r[i - 1].id, r->id) >= 0)
			return fail(
			    err, errlen, -EINVAL,
			    "manifest.inspectors[%zu]: not in canonical order (by id, unique)", i);
	}
	e->nr = nr;
	i = 0;
	for (x = pv->child; x; x = x->next, i++) {
		const char *org = str_of(x, "org");
		const cJSON *ids = cJSON_GetObjectItemCaseSensitive(x, "inspectors");
		int ti = org ? tgt_find(e, org) : -1;
		if (ti < 0 || !is_id_list(ids) || e->t[ti].prev)
			return fail(err, errlen, -EINVAL,
			            "manifest.previous[%zu]: not a pair of a target of the draw",
			            i);
		e->t[ti].prev = ids;
	}
	if (!priv)
		return 0;
	e->have_private = 1;
	const cJSON *pi = cJSON_GetObjectItemCaseSensitive(priv, "inspectors");
	if (!cJSON_IsArray(pi) || (size_t)cJSON_GetArraySize(pi) != nr)
		return fail(err, errlen, -EINVAL,
		            "private.inspectors: must hold one row per roster member");
	i = 0;
	for (x = pi->child; x; x = x->next, i++) {
		struct insp *r = &e->r[i];
		const char *id = str_of(x, "id");
		const cJSON *ties = cJSON_GetObjectItemCaseSensitive(x, "ties");
		const cJSON *away = cJSON_GetObjectItemCaseSensitive(x, "away");
		if (!id || strcmp(id, r->id))
			return fail(err, errlen, -EINVAL,
			            "private.inspectors[%zu].id: not the roster's %s", i, r->id);
		if (!cJSON_IsArray(ties) || !cJSON_IsArray(away))
			return fail(err, errlen, -EINVAL,
			            "private.inspectors[%zu]: ties and away must be arrays", i);
		for (const cJSON *t = ties->child; t; t = t->next)
			if (!str_of(t, "org"))
				return fail(err, errlen, -EINVAL,
				            "private.inspectors[%zu].ties: each needs an org", i);
		r->ties = ties;
		int na = cJSON_GetArraySize(away);
		r->away = malloc((size_t)(na ? na : 1) * 2 * sizeof *r->away);
		if (!r->away)
			return -ENOMEM;
		int k = 0;
		for (const cJSON *a = away->child; a; a = a->next, k++) {
			const cJSON *f = cJSON_GetArrayItem(a, 0), *t = cJSON_GetArrayItem(a, 1);
			r->away[2 * k] = cJSON_IsString(f) ? parse_date(f->valuestring) : -1;
			r->away[2 * k + 1] = cJSON_IsString(t) ? parse_date(t->valuestring) : -1;
			if (r->away[2 * k] < 0 || r->away[2 * k + 1] < r->away[2 * k])
				return fail(err, errlen, -EINVAL,
				            "private.inspectors[%zu].away[%d]: not a date range", i,
				            k);
		}
		r->naway = na;
	}
	return 0;
}

static int tied(const struct insp *c, const char *org)
{
	for (const cJSON *t = c->ties ? c->ties->child : NULL; t; t = t->next)
		if (strcmp(str_of(t, "org"), org) == 0)
			return 1;
	return 0;
}

static int is_away(const struct insp *c, int64_t day)
{
	for (int i = 0; i < c->naway; i++)
		if (day >= c->away[2 * i] && day <= c->away[2 * i + 1])
			return 1;
	return 0;
}

/* Without a day (a remote check with no session): away when the ranges cover every day of the
 * window. Each pass moves `next` past a range that contains it, in whatever order they come. */
static int is_away_window(const struct insp *c, int64_t from, int64_t to)
{
	int64_t next = from;
	for (int moved = 1; moved && next <= to;) {
		moved = 0;
		for (int i = 0; i < c->naway; i++)
			if (c->away[2 * i] <= next && c->away[2 * i + 1] >= next) {
				next = c->away[2 * i + 1] + 1;
				moved = 1;
			}
	}
	return next > to;
}

static int is_booked(const struct insp *c, int64_t day)
{
	for (int i = 0; i < c->nbooked; i++)
		if (c->booked[i] == day)
			return 1;
	return 0;
}

static int book(struct insp *c, int64_t day)
{
	if (day < 0)
		return 0;
	if (c->nbooked == c->capbooked) {
		int cap = c->capbooked ? 2 * c->capbooked : 4;
		int64_t *b = realloc(c->booked, (size_t)cap * sizeof *b);
		if (!b)
			return -ENOMEM;
		c->booked = b;
		c->capbooked = cap;
	}
	c->booked[c->nbooked++] = day;
	return 0;
}

static void unbook(struct insp *c, int64_t day)
{
	for (int i = 0; i < c->nbooked; i++)
		if (c->booked[i] == day) {
			c->booked[i] = c->booked[--c->nbooked];
			return;
		}
}

/* Would m[0..nm) + idx be exactly the previous pair (as a set)? */
static int same_set(const struct eng *e, const cJSON *prev, const int *m, int nm, size_t idx)
{
	if (cJSON_GetArraySize(prev) != nm + 1)
		return 0;
	for (int i = 0; i <= nm; i++) {
		const char *id = e->r[i < nm ? (size_t)m[i] : idx].id;
		int found = 0;
		for (const cJSON *p = prev->child; p && !found; p = p->next)
			found = strcmp(p->valuestring, id) == 0;
		if (!found)
			return 0;
	}
	return 1;
}

/* Draws roster members into m until `need` are chosen or every member was looked at. Members in
 * excl count as looked at. Skip rules in order: recusal, away, booked, home_city, same_pair.
 * Without the private part the recusal/away skips are taken from `claims` (the published list)
 * when the claim names this very candidate; everything else is recomputed. */
static int pick(struct eng *e, struct drbg *d, const struct tgt *t, int64_t day, int *m, int *nm,
                int need, const int *excl, int nexcl, cJSON *skipped, const cJSON *claims)
{
	size_t looked = 0;
	e->gen++;
	for (int i = 0; i < nexcl; i++)
		if (e->r[excl[i]].gen != e->gen) {
			e->r[excl[i]].gen = e->gen;
			looked++;
		}
	const cJSON *cl = cJSON_IsArray(claims) ? claims->child : NULL;
	while (*nm < need && looked < e->nr) {
		size_t idx = (size_t)drbg_uniform(d, e->nr);
		if (d->failed)
			return -EIO;
		struct insp *c = &e->r[idx];
		if (c->gen == e->gen)
			continue;
		c->gen = e->gen;
		looked++;
		const char *why = NULL;
		if (e->have_private) {
			if (tied(c, t->org))
				why = "recusal";
			else if (day >= 0 ? is_away(c, day)
			                  : is_away_window(c, e->win_from, e->win_to))
				why = "away";
		} else if (cl) {
			const char *ci = str_of(cl, "inspector"), *cr = str_of(cl, "reason");
			if (ci && cr && strcmp(ci, c->id) == 0)
				why = strcmp(cr, "recusal") == 0 ? "recusal"
				      : strcmp(cr, "away") == 0  ? "away"
				                                 : NULL;
		}
		if (!why && day >= 0 && is_booked(c, day))
			why = "booked";
		if (!why && e->province && e->home_city && strcmp(c->city, t->city) == 0)
			why = "home_city";
		if (!why && e->same_pair && t->prev && *nm == need - 1 &&
		    same_set(e, t->prev, m, *nm, idx))
			why = "same_pair";
		if (why) {
			cJSON *s = cJSON_CreateObject();
			cJSON_AddStringToObject(s, "inspector", c->id);
			cJSON_AddStringToObject(s, "reason", why);
			cJSON_AddItemToArray(skipped, s);
			if (cl)
				cl = cl->next;
		} else {
			m[(*nm)++] = (int)idx;
		}
	}
	return 0;
}

/* K: the canonical values of `srcs`' first n sources, concatenated; also listed in canon. */
static int key_string(const cJSON *srcs, const cJSON *values, const char *what, cJSON *canonical,
                      char **key, size_t *klen, char *err, size_t errlen)
{
	int ns = cJSON_GetArraySize(srcs), nv = cJSON_GetArraySize(values);
	if (!cJSON_IsArray(values) || nv != ns)
		return fail(err, errlen, -EINVAL, "%s: %d values for %d declared sources", what, nv,
		            ns);
	size_t cap = 64, len = 0;
	char *k = malloc(cap);
	if (!k)
		return -ENOMEM;
	int i = 0;
	const cJSON *s = srcs->child;
	for (const cJSON *v = values->child; v; v = v->next, s = s->next, i++) {
		char *c = NULL, e2[160];
		const char *form = str_of(s, "form"), *name = str_of(s, "name");
		int rc = cJSON_IsString(v) && form
		             ? draw_value_canonical(v->valuestring, form, &c, e2, sizeof e2)
		             : fail(e2, sizeof e2, -EINVAL, "must be a string");
		if (rc < 0) {
			free(k);
			return fail(err, errlen, rc, "%s[%d] (source %s): %s", what, i,
			            name ? name : "?", e2);
		}
		size_t n = strlen(c);
		if (len + n + 1 > cap) {
			cap = 2 * (len + n + 1);
			char *k2 = realloc(k, cap);
			if (!k2) {
				free(k);
				free(c);
				return -ENOMEM;
			}
			k = k2;
		}
		memcpy(k + len, c, n);
		len += n;
		cJSON_AddItemToArray(canonical, cJSON_CreateString(c));
		free(c);
	}
	*key = k;
	*klen = len;
	return 0;
}

/* PRK = HKDF-Extract("venuewatch-draw-1", manifest_sha256 || K || secret). */
static int make_prk(struct eng *e, const char *key, size_t klen, unsigned char prk[32])
{
	size_t n = 32 + klen + e->nsecret;
	unsigned char *ikm = malloc(n);
	if (!ikm)
		return -ENOMEM;
	memcpy(ikm, e->msha, 32);
	memcpy(ikm + 32, key, klen);
	memcpy(ikm + 32 + klen, e->secret, e->nsecret);
	int rc = hk_extract(&e->hk, ikm, n, prk);
	OPENSSL_cleanse(ikm, n);
	free(ikm);
	return rc;
}

static int tgt_order(const void *a, const void *b, void *arg)
{
	const struct eng *e = arg;
	const struct tgt *x = &e->t[*(const int *)a], *y = &e->t[*(const int *)b];
	if (e->province && x->crank != y->crank)
		return x->crank < y->crank ? -1 : 1;
	if (x->grade != y->grade)
		return x->grade < y->grade ? -1 : 1;
	int c = memcmp(x->v, y->v, 32);
	return c ? c : strcmp(x->org, y->org);
}

static int sess_order(const void *a, const void *b)
{
	const struct sess *x = a, *y = b;
	int c = strcmp(x->org, y->org);
	if (c)
		return c;
	if (x->start_ms != y->start_ms)
		return x->start_ms < y->start_ms ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The sessions of the drawn targets whose local start day lies in the window. From e->sess_text
 * when set (one element's tree at a time), else from the tree. */
static int load_sessions(struct eng *e, const cJSON *sessions, const char *drawn, char *err,
                         size_t errlen)
{
	struct elit it;
	if (e->sess_text)
		elit_text(&it, e->sess_text, e->sess_text + strlen(e->sess_text));
	else if (cJSON_IsArray(sessions))
		elit_tree(&it, sessions);
	else
		return fail(err, errlen, -EINVAL, "sessions: must be an array");
	size_t cap = 0, i = 0;
	const cJSON *x;
	int more;
	for (; (more = elit_next(&it, &x)) > 0; i++) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "id");
		const char *org = str_of(x, "org"), *site = str_of(x, "site");
		const char *st = str_of(x, "start"), *en = str_of(x, "end");
		int64_t start_ms, end_ms;
		int rc = 0;
		if (!is_int(id, 0, 2147483647.0))
			rc = fail(err, errlen, -EINVAL, "sessions[%zu].id: must be an integer", i);
		else if (!id_ok(org))
			rc = fail(err, errlen, -EINVAL, "sessions[%zu].org: must be an org id", i);
		else if (!id_ok(site))
			rc = fail(err, errlen, -EINVAL, "sessions[%zu].site: must be a site id", i);
		else if (!st || vw_time_parse_iso(st, &start_ms) < 0)
			rc = fail(err, errlen, -EINVAL, "sessions[%zu].start: must be RFC 3339", i);
		else if (!en || vw_time_parse_iso(en, &end_ms) < 0)
			rc = fail(err, errlen, -EINVAL, "sessions[%zu].end: must be RFC 3339", i);
		if (rc < 0) {
			elit_close(&it);
			return rc;
		}
		int ti = tgt_find(e, org);
		int64_t day = local_day(start_ms);
		if (ti < 0 || !drawn[ti] || day < e->win_from || day > e->win_to)
			continue;
		if (e->ns == cap) {
			cap = cap ? 2 * cap : 256;
			struct sess *ns = realloc(e->s, cap * sizeof *ns);
			if (!ns) {
				elit_close(&it);
				return -ENOMEM;
			}
			e->s = ns;
		}
		struct sess *s = &e->s[e->ns++];
		s->id = id->valuedouble;
		s->org = e->t[ti].org;
		snprintf(s->site, sizeof s->site, "%s", site);
		s->start_ms = start_ms;
		s->end_ms = end_ms;
		s->day = day;
		vw_time_iso(s->start_ms, s->start);
		vw_time_iso(s->end_ms, s->end);
	}
	elit_close(&it);
	if (more < 0)
		return fail(err, errlen, -EINVAL, "sessions: must be a JSON array");
	if (e->ns)
		qsort(e->s, e->ns, sizeof *e->s, sess_order);
	double *ids = malloc((e->ns ? e->ns : 1) * sizeof *ids);
	if (!ids)
		return -ENOMEM;
	for (i = 0; i < e->ns; i++)
		ids[i] = e->s[i].id;
	qsort(ids, e->ns, sizeof *ids, dbl_cmp);
	for (i = 1; i < e->ns; i++)
		if (ids[i] == ids[i - 1]) {
			double dup = ids[i];
			free(ids);
			return fail(err, errlen, -EINVAL, "sessions: id %.0f is listed twice", dup);
		}
	free(ids);
	e->sessions = cJSON_CreateArray();
	for (i = 0; i < e->ns; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", e->s[i].id);
		cJSON_AddStringToObject(o, "org", e->s[i].org);
		cJSON_AddStringToObject(o, "site", e->s[i].site);
		cJSON_AddStringToObject(o, "start", e->s[i].start);
		cJSON_AddStringToObject(o, "end", e->s[i].end);
		cJSON_AddItemToArray(e->sessions, o);
	}
	return 0;
}

static int same_stratum(const struct eng *e, int a, int b)
{
	return e->t[a].grade == e->t[b].grade && (!e->province || e->t[a].crank == e->t[b].crank);
}

static size_t sess_lower(const struct eng *e, const char *org)
{
	size_t lo = 0, hi = e->ns;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (strcmp(e->s[mid].org, org) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int strp_ptr_cmp(const void *a, const void *b)
{
	return strcmp(**(const char *const *const *)a, **(const char *const *const *)b);
}

/* t->crank for the targets drawn from: their cities hashed into a table of the distinct ones
 * (a province has a few dozen), which are then sorted, so the sort of 100,000 targets compares
 * integers, not strings. */
static int city_ranks(struct eng *e)
{
	size_t cap = 64, n = 0;
	const char **tab = calloc(cap, sizeof *tab);
	if (!tab)
		return -ENOMEM;
	for (size_t i = 0; i < e->nt; i++) {
		struct tgt *t = &e->t[i];
		if (t->grade < 0)
			continue;
		uint64_t h = 1469598103934665603ULL;
		for (const unsigned char *p = (const unsigned char *)t->city; *p; p++)
			h = (h ^ *p) * 1099511628211ULL;
		size_t k = (size_t)h & (cap - 1);
		while (tab[k] && strcmp(tab[k], t->city))
			k = (k + 1) & (cap - 1);
		if (!tab[k]) {
			tab[k] = t->city;
			if (++n * 2 > cap) { /* grow and rehash */
				size_t ncap = cap * 2;
				const char **nt = calloc(ncap, sizeof *nt);
				if (!nt) {
					free(tab);
					return -ENOMEM;
				}
				for (size_t j = 0; j < cap; j++) {
					if (!tab[j])
						continue;
					uint64_t g = 1469598103934665603ULL;
					for (const unsigned char *p = (const unsigned char *)tab[j];
					     *p; p++)
						g = (g ^ *p) * 1099511628211ULL;
					size_t m = (size_t)g & (ncap - 1);
					while (nt[m])
						m = (m + 1) & (ncap - 1);
					nt[m] = tab[j];
				}
				free(tab);
				tab = nt;
				cap = ncap;
			}
		}
	}
	/* the distinct cities in bytewise order; each target's rank by a binary search */
	const char ***ord = malloc((n ? n : 1) * sizeof *ord);
	if (!ord) {
		free(tab);
		return -ENOMEM;
	}
	size_t m = 0;
	for (size_t j = 0; j < cap; j++)
		if (tab[j])
			ord[m++] = &tab[j];
	qsort(ord, m, sizeof *ord, strp_ptr_cmp);
	for (size_t i = 0; i < e->nt; i++) {
		struct tgt *t = &e->t[i];
		if (t->grade < 0)
			continue;
		size_t lo = 0, hi = m;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			int c = strcmp(*ord[mid], t->city);
			if (c == 0) {
				lo = mid;
				break;
			}
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		t->crank = (int)lo;
	}
	free(ord);
	free(tab);
	return 0;
}

/* Strata, drawn targets, slots and inspectors. claims: the published inspections (verify
 * without the private part) or NULL. */
static int eng_run(struct eng *e, const cJSON *values, const char *values_path,
                   const cJSON *sessions, const cJSON *claims, char *err, size_t errlen)
{
	char *key = NULL;
	size_t klen = 0;
	e->canonical = cJSON_CreateArray();
	int rc =
	    key_string(e->sources, values, values_path, e->canonical, &key, &klen, err, errlen);
	if (rc < 0)
		return rc;
	rc = make_prk(e, key, klen, e->prk);
	free(key);
	if (rc < 0)
		return fail(err, errlen, rc, "OpenSSL: HKDF-Extract failed");
	int *ix = malloc((e->nt ? e->nt : 1) * sizeof *ix);
	char *drawn = calloc(e->nt ? e->nt : 1, 1);
	int *order = malloc((e->nt ? e->nt : 1) * sizeof *order);
	size_t n = 0, nd = 0;
	if (!ix || !drawn || !order) {
		rc = -ENOMEM;
		goto done;
	}
	unsigned char info[8 + DRAW_MAX_KEY];
	memcpy(info, "target", 7); /* with its 0x00 */
	for (size_t i = 0; i < e->nt; i++) {
		struct tgt *t = &e->t[i];
		if (t->grade < 0)
			continue;
		size_t l = strlen(t->org);
		memcpy(info + 7, t->org, l);
		if (hk_expand(&e->hk, e->prk, info, 7 + l, t->v, 32) < 0) {
			rc = fail(err, errlen, -EIO, "OpenSSL: HKDF-Expand failed");
			goto done;
		}
		ix[n++] = (int)i;
	}
	if (e->province && (rc = city_ranks(e)) < 0)
		goto done;
	qsort_r(ix, n, sizeof *ix, tgt_order, e);
	e->strata = cJSON_CreateArray();
	for (size_t a = 0; a < n;) {
		size_t b = a;
		while (b < n && same_stratum(e, ix[a], ix[b]))
			b++;
		const struct tgt *t = &e->t[ix[a]];
		int64_t N = (int64_t)(b - a), g = t->grade;
		int64_t k = (e->bp[g] * N + 9999) / 10000;
		if (k < e->min[g])
			k = e->min[g];
		if (k > N)
			k = N;
		cJSON *s = cJSON_CreateObject();
		cJSON_AddStringToObject(s, "city", e->province ? t->city : e->scope);
		cJSON_AddStringToObject(s, "risk", e->grade[g]);
		cJSON_AddNumberToObject(s, "population", (double)N);
		cJSON_AddNumberToObject(s, "drawn", (double)k);
		cJSON_AddItemToArray(e->strata, s);
		for (int64_t j = 0; j < k; j++) {
			drawn[ix[a + j]] = 1;
			order[nd++] = ix[a + j];
		}
		a = b;
	}
	if ((rc = load_sessions(e, sessions, drawn, err, errlen)) < 0)
		goto done;
	e->in = calloc(nd ? nd : 1, sizeof *e->in);
	if (!e->in) {
		rc = -ENOMEM;
		goto done;
	}
	const cJSON *cl = cJSON_IsArray(claims) ? claims->child : NULL;
	for (size_t q = 0; q < nd; q++, e->nin++) {
		struct ins *in = &e->in[q];
		const struct tgt *t = &e->t[order[q]];
		struct drbg d;
		in->t = order[q];
		in->s = -1;
		in->day = -1;
		size_t lo = sess_lower(e, t->org), hi = lo;
		while (hi < e->ns && strcmp(e->s[hi].org, t->org) == 0)
			hi++;
		in->ncand = (int)(hi - lo);
		if (in->ncand) {
			drbg_init(&d, &e->hk, e->prk, "session", t->org, NULL);
			in->s = (int)(lo + drbg_uniform(&d, (uint64_t)in->ncand));
			if (d.failed) {
				rc = fail(err, errlen, -EIO, "OpenSSL: HKDF-Expand failed");
				goto done;
			}
			in->day = e->s[in->s].day;
		}
		in->skipped = cJSON_CreateArray();
		drbg_init(&d, &e->hk, e->prk, "inspector", t->org, NULL);
		rc = pick(e, &d, t, in->day, in->m, &in->nm, e->per, NULL, 0, in->skipped,
		          cl ? cJSON_GetObjectItemCaseSensitive(cl, "skipped") : NULL);
		if (rc < 0) {
			fail(err, errlen, rc, "OpenSSL: HKDF-Expand failed");
			goto done;
		}
		for (int j = 0; j < in->nm; j++)
			if ((rc = book(&e->r[in->m[j]], in->day)) < 0)
				goto done;
		if (cl)
			cl = cl->next;
	}
	rc = 0;
done:
	free(ix);
	free(drawn);
	free(order);
	return rc;
}

/* One replacement, appended to e->reps. claims: the published replacement's skipped list. */
static int eng_replace(struct eng *e, int seq, const char *out, const char *reason,
                       const char *value, int64_t at_ms, const cJSON *claims, char *err,
                       size_t errlen)
{
	if (seq < 1 || (size_t)seq > e->nin)
		return fail(err, errlen, -ENOENT, "seq: there is no inspection %d in this draw",
		            seq);
	struct ins *in = &e->in[seq - 1];
	const struct tgt *t = &e->t[in->t];
	int oi = out ? insp_find(e, out) : -1, pos = -1;
	for (int j = 0; oi >= 0 && j < in->nm; j++)
		if (in->m[j] == oi)
			pos = j;
	if (pos < 0)
		return fail(err, errlen, -ENOENT, "out: %s is not an inspector of inspection %d",
		            out ? out : "(none)", seq);
	if (!reason || !vw_utf8_valid(reason) || strlen(reason) > 500)
		return fail(err, errlen, -EINVAL,
		            "reason: must be UTF-8 text of at most 500 bytes");
	if (e->nrep >= cJSON_GetArraySize(e->rsrc))
		return fail(err, errlen, -ENOSPC,
		            "randomness.replacements: all %d declared replacement sources are used",
		            cJSON_GetArraySize(e->rsrc));
	const cJSON *src = cJSON_GetArrayItem(e->rsrc, e->nrep);
	const char *name = str_of(src, "name"), *form = str_of(src, "form");
	char *c = NULL, e2[160];
	int rc = value && form ? draw_value_canonical(value, form, &c, e2, sizeof e2)
	                       : fail(e2, sizeof e2, -EINVAL, "missing");
	if (rc < 0)
		return fail(err, errlen, rc, "value (replacement source %s): %s", name ? name : "?",
		            e2);
	unsigned char prk[32];
	if ((rc = make_prk(e, c, strlen(c), prk)) < 0) {
		free(c);
		return fail(err, errlen, rc, "OpenSSL: HKDF-Extract failed");
	}
	int *excl = malloc((size_t)(in->nm + in->nformer + 1) * sizeof *excl);
	int mm[DRAW_MAX_PER], nmm = 0, nexcl = 0;
	if (!excl) {
		free(c);
		return -ENOMEM;
	}
	for (int j = 0; j < in->nm; j++) {
		excl[nexcl++] = in->m[j];
		if (j != pos)
			mm[nmm++] = in->m[j];
	}
	for (int j = 0; j < in->nformer; j++)
		excl[nexcl++] = in->former[j];
	unbook(&e->r[oi], in->day);
	char seqs[16];
	snprintf(seqs, sizeof seqs, "%d", seq);
	struct drbg d;
	drbg_init(&d, &e->hk, prk, "replace", t->org, seqs);
	cJSON *skipped = cJSON_CreateArray();
	int need = nmm + 1;
	rc = pick(e, &d, t, in->day, mm, &nmm, need, excl, nexcl, skipped, claims);
	free(excl);
	if (rc == 0 && nmm < need)
		rc = fail(err, errlen, -ENOSPC,
		          "inspections[%d]: no eligible roster member is left to replace %s",
		          seq - 1, out);
	else if (rc < 0)
		fail(err, errlen, rc, "OpenSSL: HKDF-Expand failed");
	int *f = rc == 0 ? realloc(in->former, (size_t)(in->nformer + 1) * sizeof *f) : NULL;
	if (rc == 0 && !f)
		rc = -ENOMEM;
	if (rc < 0) {
		book(&e->r[oi], in->day);
		cJSON_Delete(skipped);
		free(c);
		return rc;
	}
	in->former = f;
	in->former[in->nformer++] = oi;
	int newi = mm[nmm - 1];
	in->m[pos] = newi;
	book(&e->r[newi], in->day);
	char at[VW_ISO_LEN];
	vw_time_iso(at_ms, at);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "seq", e->nrep + 1);
	cJSON_AddStringToObject(r, "source", name);
	cJSON_AddNumberToObject(r, "inspection", seq);
	cJSON_AddStringToObject(r, "out", out);
	cJSON_AddStringToObject(r, "in", e->r[newi].id);
	cJSON_AddStringToObject(r, "reason", reason);
	cJSON_AddStringToObject(r, "value", value);
	cJSON_AddStringToObject(r, "canonical", c);
	cJSON_AddStringToObject(r, "at", at);
	cJSON_AddItemToObject(r, "skipped", skipped);
	free(c);
	if (!e->reps)
		e->reps = cJSON_CreateArray();
	cJSON_AddItemToArray(e->reps, r);
	e->nrep++;
	return 0;
}

/* The document without its manifest (verify compares; execute and replace add it). */
static cJSON *eng_doc(const struct eng *e, const cJSON *values, const char *secret,
                      int64_t executed_ms)
{
	char hex[65], iso[VW_ISO_LEN];
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "format", DRAW_FORMAT);
	hex_encode(e->msha, 32, hex);
	cJSON_AddStringToObject(doc, "manifest_sha256", hex);
	vw_time_iso(executed_ms, iso);
	cJSON_AddStringToObject(doc, "executed", iso);
	cJSON *rv = cJSON_AddObjectToObject(doc, "reveal");
	cJSON_AddItemToObject(rv, "values", cJSON_Duplicate(values, 1));
	cJSON_AddItemToObject(rv, "canonical", cJSON_Duplicate(e->canonical, 1));
	hex_encode(e->secret, e->nsecret, hex);
	(void)secret;
	cJSON_AddStringToObject(rv, "secret", hex);
	cJSON_AddItemToObject(doc, "sessions", cJSON_Duplicate(e->sessions, 1));
	cJSON_AddItemToObject(doc, "strata", cJSON_Duplicate(e->strata, 1));
	cJSON *ins = cJSON_AddArrayToObject(doc, "inspections");
	for (size_t q = 0; q < e->nin; q++) {
		const struct ins *in = &e->in[q];
		const struct tgt *t = &e->t[in->t];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "seq", (double)(q + 1));
		cJSON_AddStringToObject(o, "org", t->org);
		cJSON_AddStringToObject(o, "city", t->city);
		cJSON_AddStringToObject(o, "risk", t->risk);
		cJSON_AddStringToObject(o, "mode", in->s < 0 ? "remote" : e->mode);
		if (in->s >= 0) {
			const struct sess *s = &e->s[in->s];
			char day[24];
			civil_from_days(in->day, day);
			cJSON_AddStringToObject(o, "date", day);
			cJSON *so = cJSON_AddObjectToObject(o, "session");
			cJSON_AddNumberToObject(so, "id", s->id);
			cJSON_AddStringToObject(so, "site", s->site);
			cJSON_AddStringToObject(so, "start", s->start);
			cJSON_AddStringToObject(so, "end", s->end);
		} else {
			cJSON_AddNullToObject(o, "date");
			cJSON_AddNullToObject(o, "session");
		}
		cJSON_AddNumberToObject(o, "candidates", in->ncand);
		cJSON_AddStringToObject(o, "finding",
		                        in->nm < e->per ? "unstaffed"
		                        : in->s < 0     ? "no_session"
		                                        : "");
		cJSON *m = cJSON_AddArrayToObject(o, "inspectors");
		for (int j = 0; j < in->nm; j++)
			cJSON_AddItemToArray(m, cJSON_CreateString(e->r[in->m[j]].id));
		cJSON_AddItemToObject(o, "skipped", cJSON_Duplicate(in->skipped, 1));
		cJSON_AddItemToArray(ins, o);
	}
	cJSON_AddItemToObject(doc, "replacements",
	                      e->reps ? cJSON_Duplicate(e->reps, 1) : cJSON_CreateArray());
	return doc;
}

/* Everything before the document: the manifest's hash, the private part's, the secret against
 * the commitment; then the engine over the inputs, and the replacements' inputs replayed. */
static int recompute(struct eng *e, cJSON *man, cJSON *priv, const cJSON *values,
                     const char *values_path, const char *secret_hex, const cJSON *sessions,
                     const cJSON *claims, const cJSON *reps, const char *msha_hex, char *err,
                     size_t errlen)
{
	char hex[65];
	size_t n;
	int rc = 0;
	if (!cJSON_IsObject(man))
		return fail(err, errlen, -EINVAL, "manifest: must be an object");
	if (msha_hex)
		snprintf(hex, sizeof hex, "%s", msha_hex);
	else if ((rc = canon_sha(man, hex, err, errlen)) < 0)
		return rc;
	hex_decode(hex, e->msha, 32, &n);
	if (priv) {
		if ((rc = canon_sha(priv, hex, err, errlen)) < 0)
			return rc;
		const char *ps = str_of(man, "private_sha256");
		if (!ps || strcmp(ps, hex))
			return fail(err, errlen, -EBADMSG,
			            "private: sha256 %s differs from manifest.private_sha256 %s",
			            hex, ps ? ps : "(none)");
	}
	if (!secret_hex || hex_decode(secret_hex, e->secret, sizeof e->secret, &e->nsecret) < 0 ||
	    e->nsecret < DRAW_MIN_SECRET)
		return fail(err, errlen, -EINVAL, "secret: must be %d..%d bytes in hex",
		            DRAW_MIN_SECRET, DRAW_MAX_SECRET);
	sha256_hex(e->secret, e->nsecret, hex);
	const char *com = str_of(man, "commitment");
	if (!com || strcmp(com, hex))
		return fail(err, errlen, -EPERM, "secret: does not match the commitment");
	if ((rc = eng_load(e, man, priv, err, errlen)) < 0 ||
	    (rc = eng_run(e, values, values_path, sessions, claims, err, errlen)) < 0)
		return rc;
	int i = 0;
	for (const cJSON *r = cJSON_IsArray(reps) ? reps->child : NULL; r; r = r->next, i++) {
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "inspection");
		const char *at = str_of(r, "at");
		int64_t at_ms;
		char e2[300];
		if (!is_int(s, 1, 1e9) || !at || vw_time_parse_iso(at, &at_ms) < 0) {
			fail(e->reperr, sizeof e->reperr, -EBADMSG,
			     "replacements[%d]: needs inspection (a seq) and at (RFC 3339)", i);
			break;
		}
		rc = eng_replace(e, (int)s->valuedouble, str_of(r, "out"), str_of(r, "reason"),
		                 str_of(r, "value"), at_ms,
		                 e->have_private ? NULL
		                                 : cJSON_GetObjectItemCaseSensitive(r, "skipped"),
		                 e2, sizeof e2);
		if (rc < 0) { /* reported after the execute outputs it may follow from */
			fail(e->reperr, sizeof e->reperr, -EBADMSG, "replacements[%d]: %s", i, e2);
			break;
		}
	}
	return 0;
}

/* ---- comparing a published document with the recomputed one --------------------------- */

static void show(const cJSON *j, char *out, size_t n)
{
	if (!j) {
		snprintf(out, n, "(missing)");
		return;
	}
	if (cJSON_IsString(j)) {
		snprintf(out, n, "%s", j->valuestring);
		return;
	}
	char *s = cJSON_PrintUnformatted(j);
	snprintf(out, n, "%s", s ? s : "?");
	if (s && strlen(s) >= n && n > 4)
		memcpy(out + n - 4, "...", 4);
	free(s);
}

static int differ(const char *path, const cJSON *pub, const cJSON *rec, char *err, size_t errlen)
{
	char a[160], b[160];
	show(pub, a, sizeof a);
	show(rec, b, sizeof b);
	fail(err, errlen, -EBADMSG, "%s: published %s, recomputed %s", path, a, b);
	return 1;
}

static int scalar_eq(const cJSON *a, const cJSON *b)
{
	if ((a->type & 0xff) != (b->type & 0xff))
		return 0;
	if (cJSON_IsString(a))
		return strcmp(a->valuestring, b->valuestring) == 0;
	if (cJSON_IsNumber(a))
		return a->valuedouble == b->valuedouble;
	return 1;
}

/* 1 and err filled at the first difference, in the recomputed document's key order. */
static int jdiff(const cJSON *pub, const cJSON *rec, char *path, size_t plen, size_t cap, char *err,
                 size_t errlen)
{
	if (!pub || (pub->type & 0xff) != (rec->type & 0xff))
		return differ(path, pub, rec, err, errlen);
	if (cJSON_IsObject(rec)) {
		for (const cJSON *c = rec->child; c; c = c->next) {
			snprintf(path + plen, cap - plen, ".%s", c->string);
			size_t l = strlen(path);
			if (jdiff(cJSON_GetObjectItemCaseSensitive(pub, c->string), c, path, l, cap,
			          err, errlen))
				return 1;
		}
		for (const cJSON *c = pub->child; c; c = c->next)
			if (!cJSON_GetObjectItemCaseSensitive(rec, c->string)) {
				snprintf(path + plen, cap - plen, ".%s", c->string);
				fail(err, errlen, -EBADMSG, "%s: unexpected field", path);
				return 1;
			}
		path[plen] = '\0';
		return 0;
	}
	if (cJSON_IsArray(rec)) {
		const cJSON *p = pub->child, *r = rec->child;
		int i = 0;
		for (; p && r; p = p->next, r = r->next, i++) {
			snprintf(path + plen, cap - plen, "[%d]", i);
			if (jdiff(p, r, path, strlen(path), cap, err, errlen))
				return 1;
		}
		path[plen] = '\0';
		if (p || r) {
			fail(err, errlen, -EBADMSG, "%s: published %d entries, recomputed %d", path,
			     cJSON_GetArraySize(pub), cJSON_GetArraySize(rec));
			return 1;
		}
		return 0;
	}
	return scalar_eq(pub, rec) ? 0 : differ(path, pub, rec, err, errlen);
}

/* The document's outputs in the fixed order of docs/DRAW.md "Verify". */
static int doc_compare(const cJSON *pub, const cJSON *rec, const char *reperr, char *err,
                       size_t errlen)
{
	static const char *const order[] = {"format",      "manifest_sha256", "executed",
	                                    "reveal",      "sessions",        "strata",
	                                    "inspections", "replacements",    NULL};
	char path[512];
	for (size_t i = 0; order[i]; i++) {
		if (strcmp(order[i], "inspections") == 0 && *reperr)
			return fail(err, errlen, -EBADMSG, "%s", reperr);
		snprintf(path, sizeof path, "%s", order[i]);
		if (jdiff(cJSON_GetObjectItemCaseSensitive(pub, order[i]),
		          cJSON_GetObjectItemCaseSensitive(rec, order[i]), path, strlen(path),
		          sizeof path, err, errlen))
			return -EBADMSG;
	}
	for (const cJSON *c = pub->child; c; c = c->next) {
		int known = strcmp(c->string, "manifest") == 0;
		for (size_t i = 0; order[i]; i++)
			known |= strcmp(c->string, order[i]) == 0;
		if (!known)
			return fail(err, errlen, -EBADMSG, "%s: unexpected field", c->string);
	}
	return 0;
}

/* ---- the manifest read with its targets one row at a time ---------------------------- */

/* A manifest read from its text: the tree of everything but the targets (a few hundred KB even
 * for a province), the targets' canonical text hashed and their keys kept in compact rows, and
 * the manifest's canonical text put together from its members' (docs/BENCHMARKS.md "Draw"). */
struct manread {
	cJSON *man;    /* the manifest without "targets" (when they streamed) */
	struct tgt *t; /* the targets' org, city, risk (NULL when not strings) */
	size_t nt;
	int streamed;         /* "targets" was an array and read row by row */
	struct arena ar;      /* the rows' strings */
	char targets_sha[65]; /* sha256 of the targets' canonical text, "" if not canonical */
	char *text;           /* the manifest's canonical text, NULL if it has none */
	char cerr[300];       /* why not (the first canonical-JSON error) */
};

static void manread_free(struct manread *m)
{
	cJSON_Delete(m->man);
	free(m->t);
	arena_free(&m->ar);
	free(m->text);
	memset(m, 0, sizeof *m);
}

/* A string at p that cJSON would parse and print back byte for byte: no raw control bytes, only
 * the escapes cJSON prints (\" \\ \b \f \n \r \t, and \u00xx lowercase for the other bytes below
 * 0x20 except NUL). Returns the byte after the closing quote, or NULL. *esc: has an escape. */
static const char *canon_str_end(const char *p, const char *end, int *esc)
{
	static const char hexd[] = "0123456789abcdef";
	if (p >= end || *p != '"')
		return NULL;
	for (p++; p < end; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c != '\\')
			continue;
		*esc = 1;
		if (++p >= end)
			return NULL;
		if (strchr("\"\\bfnrt", *p) && *p)
			continue;
		if (*p != 'u' || end - p < 5 || memcmp(p + 1, "00", 2) || !strchr("01", p[3]) ||
		    !p[3] || !strchr(hexd, p[4]) || !p[4])
			return NULL;
		int v = (p[3] - '0') * 16 + (int)(strchr(hexd, p[4]) - hexd);
		if (v == 0 || v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t')
			return NULL;
		p += 4;
	}
	return NULL;
}

/* The top-level string members of a row that the engine reads. */
struct rowkeys {
	const char *want[3];
	const char *at[3]; /* the value's text (after its quote), NULL: absent or not a string */
	size_t len[3];
	int esc[3];
};

/* The end of the canonical JSON value at p (as canon() + cJSON would print it: keys strictly
 * ascending bytewise, no whitespace, 32-bit integers), or NULL when it is not canonical text or
 * too deep — then the caller takes the cJSON way. At depth 0 fills rk for the object's keys. */
static const char *canon_val_end(const char *p, const char *end, int depth, struct rowkeys *rk)
{
	int esc = 0;
	if (p >= end || depth > 16)
		return NULL;
	switch (*p) {
	case '"':
		return canon_str_end(p, end, &esc);
	case 't':
		return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
	case 'f':
		return end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
	case 'n':
		return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
	case '[':
		if (++p < end && *p == ']')
			return p + 1;
		for (;;) {
			if (!(p = canon_val_end(p, end, depth + 1, NULL)) || p >= end)
				return NULL;
			if (*p == ']')
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	case '{': {
		const char *pk = NULL;
		size_t pkl = 0;
		if (++p < end && *p == '}')
			return p + 1;
		for (;;) {
			const char *k = p, *v;
			esc = 0;
			if (!(p = canon_str_end(p, end, &esc)) || esc || p >= end || *p != ':')
				return NULL;
			size_t kl = (size_t)(p - k) - 2;
			if (pk) { /* strictly after the previous key, bytewise (strcmp) */
				int c = memcmp(pk + 1, k + 1, pkl < kl ? pkl : kl);
				if (c > 0 || (c == 0 && pkl >= kl))
					return NULL;
			}
			pk = k;
			pkl = kl;
			v = ++p;
			int vesc = 0;
			if (p < end && *p == '"')
				p = canon_str_end(p, end, &vesc);
			else
				p = canon_val_end(p, end, depth + 1, NULL);
			if (!p || p >= end)
				return NULL;
			for (int i = 0; rk && i < 3; i++)
				if (strlen(rk->want[i]) == kl &&
				    memcmp(rk->want[i], k + 1, kl) == 0 && *v == '"') {
					rk->at[i] = v + 1;
					rk->len[i] = (size_t)(p - v) - 2;
					rk->esc[i] = vesc;
				}
			if (*p == '}')
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	}
	default: { /* -?(0|[1-9][0-9]*) in 32 bits */
		const char *q = p;
		int neg = *q == '-';
		q += neg;
		if (q >= end || *q < '0' || *q > '9' || (*q == '0' && neg))
			return NULL;
		if (*q == '0')
			return q + 1 < end && ((q[1] >= '0' && q[1] <= '9') || q[1] == '.' ||
			                       q[1] == 'e' || q[1] == 'E')
			           ? NULL
			           : q + 1;
		long long v = 0;
		int nd = 0;
		for (; q < end && *q >= '0' && *q <= '9'; q++, nd++)
			if (nd <
			    11) /* more than 10 digits is out of range: no overflow on the way */
				v = v * 10 + (*q - '0');
		if (nd > 10 || (q < end && (*q == '.' || *q == 'e' || *q == 'E')) ||
		    v > 2147483647LL + neg)
			return NULL;
		return q;
	}
	}
}

static int man_targets(struct manread *m, struct elit *it, char *scratch, int nscratch)
{
	struct sbuf b = {0};
	size_t cap = 0;
	const cJSON *x;
	int more, bad = 0;
	char e2[200];
	sb_put(&b, "[", 1);
	for (;;) {
		/* a row already in canonical form (what commit wrote) is its own canonical text:
		 * appended as it is, with its keys read off the text, no tree */
		const char *p = skip_ws(it->p, it->end), *q = NULL;
		struct rowkeys rk = {{"org", "city", "risk"}, {NULL}, {0}, {0}};
		elit_close(it); /* the previous row's tree, if it took the cJSON way */
		if (!bad && (it->started ? p < it->end && *p == ',' : p < it->end && *p == '[')) {
			const char *v = skip_ws(p + 1, it->end);
			q = *v == '{' ? canon_val_end(v, it->end, 0, &rk) : NULL;
			if (q && (rk.esc[0] || rk.esc[1] || rk.esc[2]))
				q = NULL;
			if (q) {
				if (m->nt == cap) {
					cap = cap ? 2 * cap : 1024;
					struct tgt *t = realloc(m->t, cap * sizeof *t);
					if (!t) {
						more = -ENOMEM;
						break;
					}
					m->t = t;
				}
				struct tgt *t = &m->t[m->nt++];
				memset(t, 0, sizeof *t);
				const char **dst[3] = {&t->org, &t->city, &t->risk};
				for (int i = 0; i < 3; i++)
					if (rk.at[i] &&
					    !(*dst[i] = arena_dupn(&m->ar, rk.at[i], rk.len[i]))) {
						more = -ENOMEM;
						break;
					}
				if (more == -ENOMEM)
					break;
				if (m->nt > 1)
					sb_put(&b, ",", 1);
				sb_put(&b, v, (size_t)(q - v));
				it->started = 1;
				it->n++;
				it->p = q;
				continue;
			}
		}
		if ((more = elit_next(it, &x)) <= 0)
			break;
		if (m->nt == cap) {
			cap = cap ? 2 * cap : 1024;
			struct tgt *t = realloc(m->t, cap * sizeof *t);
			if (!t) {
				more = -ENOMEM;
				break;
			}
			m->t = t;
		}
		struct tgt *t = &m->t[m->nt++];
		memset(t, 0, sizeof *t);
		const char *org = str_of(x, "org"), *city = str_of(x, "city");
		const char *risk = str_of(x, "risk");
		if ((org && !(t->org = arena_dup(&m->ar, org))) ||
		    (city && !(t->city = arena_dup(&m->ar, city))) ||
		    (risk && !(t->risk = arena_dup(&m->ar, risk)))) {
			more = -ENOMEM;
			break;
		}
		if (bad)
			continue;
		if (canon(it->own, e2, sizeof e2) < 0) {
			bad = 1;
			snprintf(m->cerr, sizeof m->cerr, "%s", e2);
			continue;
		}
		if (m->nt > 1)
			sb_put(&b, ",", 1);
		sb_print(&b, x, scratch, nscratch);
	}
	elit_close(it);
	sb_put(&b, "]", 1);
	if (more < 0 || b.failed) {
		free(b.p);
		return more == -ENOMEM || b.failed ? -ENOMEM : -EINVAL;
	}
	m->streamed = 1;
	if (!bad && sha256_hex(b.p, b.n, m->targets_sha) < 0)
		bad = 1;
	if (bad) {
		free(b.p);
		return 0;
	}
	/* the manifest's text takes the targets' text at their key's place */
	cJSON *hold = cJSON_CreateRaw("");
	if (!hold) {
		free(b.p);
		return -ENOMEM;
	}
	free(hold->valuestring); /* cJSON's hooks are the default malloc/free */
	hold->valuestring = b.p;
	cJSON_AddItemToObject(m->man, "targets", hold);
	return 0;
}

/* Reads a manifest object at *pp (up to end); *pp is left after its '}'. -EINVAL: not a JSON
 * object; -ENOMEM. A manifest that is JSON but not canonical JSON gives 0 with m->text NULL. */
static int man_read(const char **pp, const char *end, struct manread *m)
{
	const char *p = skip_ws(*pp, end);
	int rc = 0, dup = 0;
	memset(m, 0, sizeof *m);
	if (p >= end || *p != '{')
		return -EINVAL;
	if (!(m->man = cJSON_CreateObject()))
		return -ENOMEM;
	p = skip_ws(p + 1, end);
	if (p < end && *p == '}')
		p++;
	else
		for (;;) {
			const char *q = NULL;
			if (p >= end || *p != '"')
				return -EINVAL;
			cJSON *k = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &q, 0);
			if (!cJSON_IsString(k)) {
				cJSON_Delete(k);
				return -EINVAL;
			}
			p = skip_ws(q, end);
			if (p >= end || *p != ':') {
				cJSON_Delete(k);
				return -EINVAL;
			}
			p = skip_ws(p + 1, end);
			if (strcmp(k->valuestring, "targets") == 0 && p < end && *p == '[' &&
			    !m->streamed) {
				struct elit it;
				char *scratch = malloc(65536); /* a row's canonical text */
				elit_text(&it, p, end);
				rc = man_targets(m, &it, scratch, scratch ? 65536 : 0);
				free(scratch);
				if (rc < 0) {
					cJSON_Delete(k);
					return rc;
				}
				p = it.p;
			} else {
				cJSON *v = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &q, 0);
				if (!v) {
					cJSON_Delete(k);
					return -EINVAL;
				}
				if (strcmp(k->valuestring, "targets") == 0 && m->streamed)
					dup = 1;
				cJSON_AddItemToObject(m->man, k->valuestring, v);
				p = q;
			}
			cJSON_Delete(k);
			p = skip_ws(p, end);
			if (p < end && *p == ',') {
				p = skip_ws(p + 1, end);
				continue;
			}
			if (p < end && *p == '}') {
				p++;
				break;
			}
			return -EINVAL;
		}
	*pp = p;
	if (m->streamed && !*m->targets_sha)
		return 0; /* m->cerr says why */
	char e2[300];
	if (dup) {
		snprintf(m->cerr, sizeof m->cerr, "targets: duplicate key");
		return 0;
	}
	if (canon(m->man, e2, sizeof e2) < 0) {
		snprintf(m->cerr, sizeof m->cerr, "%s", e2);
		return 0;
	}
	/* targets is a raw item: canon() leaves it be, cJSON prints it as it is */
	if (!(m->text = cJSON_PrintUnformatted(m->man)))
		return -ENOMEM;
	if (m->streamed) { /* back to rows: the engine reads m->t, not a tree */
		cJSON_DeleteItemFromObjectCaseSensitive(m->man, "targets");
	}
	return 0;
}

/* Reads a document object: its manifest with man_read, every other member as a tree; the
 * manifest's tree goes into the document as "manifest". -EINVAL: not a JSON object, or a member
 * listed twice; -ENOMEM. */
static int doc_read(const char *p, const char *end, cJSON **out, struct manread *m)
{
	cJSON *doc = cJSON_CreateObject();
	int rc = -EINVAL, have_man = 0;
	*out = NULL;
	if (!doc)
		return -ENOMEM;
	p = skip_ws(p, end);
	if (p >= end || *p != '{')
		goto bad;
	p = skip_ws(p + 1, end);
	if (p < end && *p == '}')
		goto good;
	for (;;) {
		const char *q = NULL;
		if (p >= end || *p != '"')
			goto bad;
		cJSON *k = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &q, 0);
		if (!cJSON_IsString(k) || cJSON_GetObjectItemCaseSensitive(doc, k->valuestring) ||
		    (have_man && strcmp(k->valuestring, "manifest") == 0)) {
			cJSON_Delete(k);
			goto bad;
		}
		p = skip_ws(q, end);
		if (p >= end || *p != ':') {
			cJSON_Delete(k);
			goto bad;
		}
		p = skip_ws(p + 1, end);
		if (strcmp(k->valuestring, "manifest") == 0 && p < end && *p == '{') {
			have_man = 1;
			rc = man_read(&p, end, m);
			if (rc < 0) {
				cJSON_Delete(k);
				goto bad;
			}
			rc = -EINVAL;
		} else {
			cJSON *v = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &q, 0);
			if (!v) {
				cJSON_Delete(k);
				goto bad;
			}
			cJSON_AddItemToObject(doc, k->valuestring, v);
			p = q;
		}
		cJSON_Delete(k);
		p = skip_ws(p, end);
		if (p < end && *p == ',') {
			p = skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == '}')
			break;
		goto bad;
	}
good:
	if (have_man) {
		cJSON_AddItemToObject(doc, "manifest", m->man);
		m->man = NULL; /* the document's now */
	}
	*out = doc;
	return 0;
bad:
	cJSON_Delete(doc);
	return rc == -ENOMEM ? rc : -EINVAL;
}

/* ---- the public functions ------------------------------------------------------------- */

static int draw_id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return 0;
	return 1;
}

static cJSON *parse_array(const char *json, const char *what, char *err, size_t errlen)
{
	cJSON *j = json ? cJSON_Parse(json) : NULL;
	if (!cJSON_IsArray(j)) {
		cJSON_Delete(j);
		fail(err, errlen, -EINVAL, "%s: must be a JSON array", what);
		return NULL;
	}
	return j;
}

int draw_commit_build_salted(const char *draw_id, const char *plan_json, const char *targets_json,
                             const char *inspectors_json, const char *items_json,
                             const char *prev_pairs_json, const char *randomness_json,
                             const char *commitment_hex, int64_t created_ms,
                             const unsigned char salt[DRAW_SALT_LEN], char **manifest_json,
                             char **manifest_sha256_hex, char **private_json, char *err,
                             size_t errlen)
{
	cJSON *plan_in = NULL, *plan = NULL, *tin = NULL, *iin = NULL, *itin = NULL, *pin = NULL;
	cJSON *rin = NULL, *rnd = NULL, *man = NULL, *priv = NULL;
	char *ms = NULL, *ps = NULL, hex[65], path[64];
	int *tiecount = NULL;
	int rc = -EINVAL;
	*manifest_json = *manifest_sha256_hex = *private_json = NULL;
	if (!draw_id_ok(draw_id)) {
		fail(err, errlen, rc, "id: must be 1..64 of [A-Za-z0-9._-]");
		goto fail;
	}
	if (!(plan_in = cJSON_Parse(plan_json ? plan_json : ""))) {
		fail(err, errlen, rc, "plan: not JSON");
		goto fail;
	}
	if ((rc = plan_norm(plan_in, &plan, err, errlen)) < 0)
		goto fail;
	rc = -EINVAL;
	const char *scope = str_of(plan, "scope_city");
	int per = (int)cJSON_GetObjectItemCaseSensitive(plan, "inspectors_per")->valuedouble;
	if (!(tin = parse_array(targets_json, "targets", err, errlen)) ||
	    !(iin = parse_array(inspectors_json, "inspectors", err, errlen)) ||
	    !(itin = parse_array(items_json, "items", err, errlen)) ||
	    !(pin = parse_array(prev_pairs_json, "previous", err, errlen)))
		goto fail;
	if (!(rin = cJSON_Parse(randomness_json ? randomness_json : ""))) {
		fail(err, errlen, rc, "randomness: not JSON");
		goto fail;
	}
	if ((rc = randomness_norm(rin, &rnd, err, errlen)) < 0)
		goto fail;
	rc = -EINVAL;
	if (!hex64_ok(commitment_hex)) {
		fail(err, errlen, rc,
		     "commitment: must be 64 lowercase hex (SHA-256 of the secret)");
		goto fail;
	}
	man = cJSON_CreateObject();
	priv = cJSON_CreateObject();
	cJSON_AddStringToObject(man, "algorithm", DRAW_FORMAT);
	cJSON_AddStringToObject(man, "draw", draw_id);
	char iso[VW_ISO_LEN];
	vw_time_iso(created_ms, iso);
	cJSON_AddStringToObject(man, "created", iso);
	cJSON_AddItemToObject(man, "plan", plan);
	plan = NULL;
	cJSON *plan_m = cJSON_GetObjectItemCaseSensitive(man, "plan");

	cJSON *tg = cJSON_AddArrayToObject(man, "targets");
	int i = 0;
	for (const cJSON *x = tin->child; x; x = x->next, i++) {
		cJSON *row = NULL;
		snprintf(path, sizeof path, "targets[%d]", i);
		if ((rc = target_row(x, path, &row, err, errlen)) < 0)
			goto fail;
		if (*scope && strcmp(str_of(row, "city"), scope)) {
			cJSON_Delete(row); /* a city draw draws only its own city's targets */
			continue;
		}
		cJSON_AddItemToArray(tg, row);
	}
	if ((rc = rows_sort_unique(tg, "targets", err, errlen)) < 0)
		goto fail;
	cJSON *ro = cJSON_AddArrayToObject(man, "inspectors");
	cJSON_AddStringToObject(priv, "format", DRAW_PRIVATE_FORMAT);
	cJSON_AddStringToObject(priv, "draw", draw_id);
	hex_encode(salt, DRAW_SALT_LEN, hex);
	cJSON_AddStringToObject(priv, "salt", hex);
	cJSON *pi = cJSON_AddArrayToObject(priv, "inspectors");
	i = 0;
	for (const cJSON *x = iin->child; x; x = x->next, i++) {
		cJSON *pub = NULL, *pr = NULL;
		snprintf(path, sizeof path, "inspectors[%d]", i);
		if ((rc = inspector_row(x, path, 1, &pub, &pr, err, errlen)) < 0)
			goto fail;
		if (*scope && strcmp(str_of(pub, "city"), scope)) {
			cJSON_Delete(pub); /* a city draw's roster is its own city's inspectors */
			cJSON_Delete(pr);
			continue;
		}
		cJSON_AddItemToArray(ro, pub);
		cJSON_AddItemToArray(pi, pr);
	}
	if ((rc = rows_sort_unique(ro, "inspectors", err, errlen)) < 0)
		goto fail;
	array_sort(pi, row_cmp);
	cJSON *it = cJSON_AddArrayToObject(man, "items");
	i = 0;
	for (const cJSON *x = itin->child; x; x = x->next, i++) {
		cJSON *row = NULL;
		snprintf(path, sizeof path, "items[%d]", i);
		if ((rc = item_row(x, path, &row, err, errlen)) < 0)
			goto fail;
		cJSON_AddItemToArray(it, row);
	}
	if ((rc = rows_sort_unique(it, "items", err, errlen)) < 0)
		goto fail;
	rc = -EINVAL;
	i = 0;
	for (const cJSON *x = cJSON_GetObjectItemCaseSensitive(plan_m, "items")->child; x;
	     x = x->next, i++) {
		int found = 0;
		for (const cJSON *y = it->child; y && !found; y = y->next)
			found = strcmp(str_of(y, "id"), x->valuestring) == 0;
		if (!found) {
			fail(err, errlen, rc, "plan.items[%d]: %s is not in the items register", i,
			     x->valuestring);
			goto fail;
		}
	}
	/* Previous pairs of the draw's targets only, sorted by org, their inspectors sorted. */
	cJSON *pv = cJSON_AddArrayToObject(man, "previous");
	i = 0;
	for (const cJSON *x = pin->child; x; x = x->next, i++) {
		const char *org = str_of(x, "org"), *dup = NULL;
		const cJSON *ids = cJSON_GetObjectItemCaseSensitive(x, "inspectors");
		if (!cJSON_IsObject(x) || !id_ok(org) || !is_id_list(ids)) {
			fail(err, errlen, rc,
			     "previous[%d]: must be {\"org\":..,\"inspectors\":[ids]}", i);
			goto fail;
		}
		int known = 0;
		for (const cJSON *y = tg->child; y && !known; y = y->next)
			known = strcmp(str_of(y, "org"), org) == 0;
		if (!known)
			continue;
		cJSON *ss = sorted_strings(ids, &dup);
		if (!ss) {
			fail(err, errlen, rc, "previous[%d].inspectors: %s is listed twice", i,
			     dup ? dup : "?");
			goto fail;
		}
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "org", org);
		cJSON_AddItemToObject(o, "inspectors", ss);
		cJSON_AddItemToArray(pv, o);
	}
	if ((rc = rows_sort_unique(pv, "previous", err, errlen)) < 0)
		goto fail;
	rc = -EINVAL;

	/* Staffing: every drawable target needs inspectors_per roster members not tied to it. */
	size_t nt = (size_t)cJSON_GetArraySize(tg), nr = (size_t)cJSON_GetArraySize(ro);
	const char **orgs = NULL;
	tiecount = calloc(nt ? nt : 1, sizeof *tiecount);
	orgs = malloc((nt ? nt : 1) * sizeof *orgs);
	if (!tiecount || !orgs) {
		free(orgs);
		rc = -ENOMEM;
		goto fail;
	}
	size_t k = 0;
	for (const cJSON *x = tg->child; x; x = x->next)
		orgs[k++] = str_of(x, "org");
	for (const cJSON *x = pi->child; x; x = x->next) {
		const char *last = NULL; /* ties are sorted by org: count each org once */
		for (const cJSON *t = cJSON_GetObjectItemCaseSensitive(x, "ties")->child; t;
		     t = t->next) {
			const char *org = str_of(t, "org");
			if (last && strcmp(last, org) == 0)
				continue;
			last = org;
			const char **hit = bsearch(&org, orgs, nt, sizeof *orgs, strp_cmp);
			if (hit)
				tiecount[hit - orgs]++;
		}
	}
	free(orgs);
	k = 0;
	for (const cJSON *x = tg->child; x; x = x->next, k++) {
		const char *risk = str_of(x, "risk");
		int drawable = 0;
		for (const cJSON *g = cJSON_GetObjectItemCaseSensitive(plan_m, "grades")->child; g;
		     g = g->next)
			drawable |= strcmp(str_of(g, "risk"), risk) == 0;
		if (drawable && (int)(nr - (size_t)tiecount[k]) < per) {
			fail(err, errlen, rc,
			     "targets: %s has %d roster inspectors not tied to it, the plan needs "
			     "%d",
			     str_of(x, "org"), (int)(nr - (size_t)tiecount[k]), per);
			goto fail;
		}
	}

	if ((rc = canon_sha(tg, hex, err, errlen)) < 0)
		goto fail;
	cJSON_AddStringToObject(man, "targets_sha256", hex);
	if ((rc = canon_sha(ro, hex, err, errlen)) < 0)
		goto fail;
	cJSON_AddStringToObject(man, "inspectors_sha256", hex);
	if ((rc = canon_sha(it, hex, err, errlen)) < 0)
		goto fail;
	cJSON_AddStringToObject(man, "items_sha256", hex);
	if (!(ps = canon_print(priv, err, errlen))) {
		rc = -EINVAL;
		goto fail;
	}
	sha256_hex(ps, strlen(ps), hex);
	cJSON_AddStringToObject(man, "private_sha256", hex);
	cJSON_AddItemToObject(man, "randomness", rnd);
	rnd = NULL;
	cJSON_AddStringToObject(man, "commitment", commitment_hex);
	if (!(ms = canon_print(man, err, errlen))) {
		rc = -EINVAL;
		goto fail;
	}
	sha256_hex(ms, strlen(ms), hex);
	if (!(*manifest_sha256_hex = strdup(hex))) {
		rc = -ENOMEM;
		goto fail;
	}
	*manifest_json = ms;
	*private_json = ps;
	ms = ps = NULL;
	rc = 0;
fail:
	free(tiecount);
	free(ms);
	if (ps)
		OPENSSL_cleanse(ps, strlen(ps));
	free(ps);
	cJSON_Delete(plan_in);
	cJSON_Delete(plan);
	cJSON_Delete(tin);
	cJSON_Delete(iin);
	cJSON_Delete(itin);
	cJSON_Delete(pin);
	cJSON_Delete(rin);
	cJSON_Delete(rnd);
	cJSON_Delete(man);
	cJSON_Delete(priv);
	return rc;
}

int draw_commit_build(const char *draw_id, const char *plan_json, const char *targets_json,
                      const char *inspectors_json, const char *items_json,
                      const char *prev_pairs_json, const char *randomness_json,
                      const char *commitment_hex, int64_t created_ms, char **manifest_json,
                      char **manifest_sha256_hex, char **private_json, char *err, size_t errlen)
{
	unsigned char salt[DRAW_SALT_LEN];
	if (RAND_bytes(salt, sizeof salt) != 1)
		return fail(err, errlen, -EIO, "OpenSSL: RAND_bytes failed");
	return draw_commit_build_salted(draw_id, plan_json, targets_json, inspectors_json,
	                                items_json, prev_pairs_json, randomness_json,
	                                commitment_hex, created_ms, salt, manifest_json,
	                                manifest_sha256_hex, private_json, err, errlen);
}

static char *finish(cJSON *doc, cJSON *man, char *err, size_t errlen)
{
	cJSON_AddItemToObject(doc, "manifest", man);
	return canon_print(doc, err, errlen);
}

/* Once the manifest's canonical text exists, the engine needs of its tree only the plan, the
 * randomness, the previous pairs and each row's keys: the rest of the rows goes before the
 * sessions are parsed, so the two large trees are not held at once (docs/BENCHMARKS.md "Draw"). */
static void manifest_prune(cJSON *man)
{
	static const char *const tdrop[] = {"name", "level", "occupations", "sites", NULL};
	static const char *const idrop[] = {"name", "department", NULL};
	cJSON *tg = cJSON_GetObjectItemCaseSensitive(man, "targets");
	cJSON *ro = cJSON_GetObjectItemCaseSensitive(man, "inspectors");
	for (cJSON *t = cJSON_IsArray(tg) ? tg->child : NULL; t; t = t->next)
		for (size_t i = 0; tdrop[i]; i++)
			cJSON_DeleteItemFromObjectCaseSensitive(t, tdrop[i]);
	for (cJSON *r = cJSON_IsArray(ro) ? ro->child : NULL; r; r = r->next)
		for (size_t i = 0; idrop[i]; i++)
			cJSON_DeleteItemFromObjectCaseSensitive(r, idrop[i]);
	cJSON_DeleteItemFromObjectCaseSensitive(man, "items");
}

/* The canonical document with its manifest: the keys sort "inspections" < "manifest" <
 * "manifest_sha256", so the manifest's canonical text goes in before the "manifest_sha256" key
 * (a quote inside any string is escaped, so that key's text occurs once). Saves printing the
 * largest part of the document twice. */
static char *splice_manifest(const char *doc, const char *man)
{
	const char *at = strstr(doc, ",\"manifest_sha256\":");
	if (!at)
		return NULL;
	size_t a = (size_t)(at - doc), m = strlen(man), rest = strlen(at);
	char *out = malloc(a + 12 + m + rest + 1);
	if (!out)
		return NULL;
	memcpy(out, doc, a);
	memcpy(out + a, ",\"manifest\":", 12);
	memcpy(out + a + 12, man, m);
	memcpy(out + a + 12 + m, at, rest + 1);
	return out;
}

int draw_execute(const char *manifest_json, const char *private_json, const char *values_json,
                 const char *secret_hex, const char *sessions_json, int64_t executed_ms,
                 char **document_json, char *err, size_t errlen)
{
	struct eng e = {0};
	struct manread mr;
	char hex[65];
	const char *mp = manifest_json ? manifest_json : "";
	int mrc = man_read(&mp, mp + strlen(mp), &mr);
	cJSON *priv = cJSON_Parse(private_json ? private_json : "");
	cJSON *vals = cJSON_Parse(values_json ? values_json : "");
	int rc = -EINVAL;
	*document_json = NULL;
	if (mrc == -ENOMEM)
		rc = fail(err, errlen, -ENOMEM, "manifest: out of memory");
	else if (mrc < 0)
		fail(err, errlen, rc, "manifest: not a JSON object");
	else if (!cJSON_IsObject(priv))
		fail(err, errlen, rc, "private: not a JSON object");
	else if (!cJSON_IsArray(vals))
		fail(err, errlen, rc, "values: must be a JSON array of strings");
	else if (!mr.text)
		fail(err, errlen, rc, "%s", mr.cerr);
	else if (sha256_hex(mr.text, strlen(mr.text), hex) < 0)
		rc = fail(err, errlen, -EIO, "OpenSSL: SHA-256 failed");
	else {
		manifest_prune(mr.man);
		if (mr.streamed) { /* the rows' keys, read as the targets went by */
			e.t = mr.t;
			e.nt = mr.nt;
			e.pre_t = 1;
			mr.t = NULL;
		}
		e.sess_text = sessions_json ? sessions_json : "";
		rc = recompute(&e, mr.man, priv, vals, "values", secret_hex, NULL, NULL, NULL, hex,
		               err, errlen);
		if (rc == 0) {
			cJSON *doc = eng_doc(&e, vals, secret_hex, executed_ms);
			char *dtext = canon_print(doc, err, errlen);
			*document_json = dtext ? splice_manifest(dtext, mr.text) : NULL;
			free(dtext);
			cJSON_Delete(doc);
			rc = *document_json ? 0 : -ENOMEM;
		}
	}
	eng_close(&e);
	manread_free(&mr);
	cJSON_Delete(priv);
	cJSON_Delete(vals);
	return rc;
}

/* A published document's parts the engine reads. */
struct docparts {
	cJSON *man;
	const cJSON *values, *sessions, *ins, *reps;
	const char *secret;
	int64_t executed_ms;
};

static int doc_parts(cJSON *doc, struct docparts *p, char *err, size_t errlen)
{
	const cJSON *rv = cJSON_GetObjectItemCaseSensitive(doc, "reveal");
	const char *fmt = str_of(doc, "format"), *ex = str_of(doc, "executed");
	p->man = cJSON_GetObjectItemCaseSensitive(doc, "manifest");
	p->values = cJSON_GetObjectItemCaseSensitive(rv, "values");
	p->secret = str_of(rv, "secret");
	p->sessions = cJSON_GetObjectItemCaseSensitive(doc, "sessions");
	p->ins = cJSON_GetObjectItemCaseSensitive(doc, "inspections");
	p->reps = cJSON_GetObjectItemCaseSensitive(doc, "replacements");
	if (!fmt || strcmp(fmt, DRAW_FORMAT))
		return fail(err, errlen, -EBADMSG, "format: published %s, expected %s",
		            fmt ? fmt : "(missing)", DRAW_FORMAT);
	if (!cJSON_IsObject(p->man))
		return fail(err, errlen, -EBADMSG, "manifest: missing");
	if (!cJSON_IsArray(p->values))
		return fail(err, errlen, -EBADMSG, "reveal.values: missing");
	if (!p->secret)
		return fail(err, errlen, -EBADMSG, "reveal.secret: missing");
	if (!cJSON_IsArray(p->sessions))
		return fail(err, errlen, -EBADMSG, "sessions: missing");
	if (!cJSON_IsArray(p->reps))
		return fail(err, errlen, -EBADMSG, "replacements: missing");
	if (!ex || vw_time_parse_iso(ex, &p->executed_ms) < 0)
		return fail(err, errlen, -EBADMSG, "executed: must be RFC 3339");
	return 0;
}

int draw_replace(const char *document_json, const char *private_json, int seq, const char *out,
                 const char *reason, const char *value, int64_t at_ms, char **document_json_out,
                 char *err, size_t errlen)
{
	struct eng e = {0};
	struct docparts p;
	char e2[400];
	cJSON *doc = cJSON_Parse(document_json ? document_json : "");
	cJSON *priv = cJSON_Parse(private_json ? private_json : ""), *rdoc = NULL;
	int rc = -EINVAL;
	*document_json_out = NULL;
	if (!cJSON_IsObject(doc)) {
		fail(err, errlen, rc, "document: not a JSON object");
		goto done;
	}
	if (!cJSON_IsObject(priv)) {
		fail(err, errlen, rc, "private: not a JSON object");
		goto done;
	}
	if ((rc = doc_parts(doc, &p, e2, sizeof e2)) < 0 ||
	    (rc = recompute(&e, p.man, priv, p.values, "reveal.values", p.secret, p.sessions, NULL,
	                    p.reps, NULL, e2, sizeof e2)) < 0) {
		fail(err, errlen, -EBADMSG, "document: %s", e2);
		rc = -EBADMSG;
		goto done;
	}
	rdoc = eng_doc(&e, p.values, p.secret, p.executed_ms);
	if (doc_compare(doc, rdoc, e.reperr, e2, sizeof e2) < 0) {
		rc = fail(err, errlen, -EBADMSG, "document: %s", e2);
		goto done;
	}
	cJSON_Delete(rdoc);
	rdoc = NULL;
	if ((rc = eng_replace(&e, seq, out, reason, value, at_ms, NULL, err, errlen)) < 0)
		goto done;
	rdoc = eng_doc(&e, p.values, p.secret, p.executed_ms);
	*document_json_out =
	    finish(rdoc, cJSON_DetachItemFromObjectCaseSensitive(doc, "manifest"), err, errlen);
	rc = *document_json_out ? 0 : -ENOMEM;
done:
	eng_close(&e);
	cJSON_Delete(rdoc);
	cJSON_Delete(doc);
	cJSON_Delete(priv);
	return rc;
}

/* The manifest's own consistency: the register hashes, the plan and the randomness declaration
 * in their normalised forms. */
static int manifest_check(cJSON *man, const char *targets_sha, char *err, size_t errlen)
{
	static const char *const arrays[] = {"targets", "inspectors", "items"};
	char hex[65], key[32], e2[200];
	for (int i = 0; i < 3; i++) {
		cJSON *a = cJSON_GetObjectItemCaseSensitive(man, arrays[i]);
		snprintf(key, sizeof key, "%s_sha256", arrays[i]);
		const char *pub = str_of(man, key);
		int rc;
		if (i == 0 && targets_sha) /* streamed by man_read: "" = not canonical */
			rc = *targets_sha ? snprintf(hex, sizeof hex, "%s", targets_sha),
			0                 : -EINVAL;
		else
			rc = cJSON_IsArray(a) ? canon_sha(a, hex, e2, sizeof e2) : -EINVAL;
		if (rc < 0)
			return fail(err, errlen, -EBADMSG, "manifest.%s: not a canonical array",
			            arrays[i]);
		if (!pub || strcmp(pub, hex))
			return fail(err, errlen, -EBADMSG,
			            "manifest.%s: sha256 differs from manifest.%s (published %s, "
			            "recomputed %s)",
			            arrays[i], key, pub ? pub : "(missing)", hex);
	}
	const cJSON *plan = cJSON_GetObjectItemCaseSensitive(man, "plan");
	cJSON *np = NULL, *nr = NULL;
	char path[512];
	if (plan_norm(plan, &np, e2, sizeof e2) < 0)
		return fail(err, errlen, -EBADMSG, "manifest.%s", e2);
	snprintf(path, sizeof path, "manifest.plan");
	int d = jdiff(plan, np, path, strlen(path), sizeof path, err, errlen);
	cJSON_Delete(np);
	if (d)
		return -EBADMSG;
	const cJSON *rnd = cJSON_GetObjectItemCaseSensitive(man, "randomness");
	if (randomness_norm(rnd, &nr, e2, sizeof e2) < 0)
		return fail(err, errlen, -EBADMSG, "manifest.%s", e2);
	snprintf(path, sizeof path, "manifest.randomness");
	d = jdiff(rnd, nr, path, strlen(path), sizeof path, err, errlen);
	cJSON_Delete(nr);
	if (d)
		return -EBADMSG;
	const char *alg = str_of(man, "algorithm");
	if (!alg || strcmp(alg, DRAW_FORMAT))
		return fail(err, errlen, -EBADMSG, "manifest.algorithm: published %s, expected %s",
		            alg ? alg : "(missing)", DRAW_FORMAT);
	if (!hex64_ok(str_of(man, "commitment")))
		return fail(err, errlen, -EBADMSG, "manifest.commitment: not 64 lowercase hex");
	return 0;
}

int draw_verify(const char *document_json, const char *private_json,
                const char *expected_manifest_sha256, char *err, size_t errlen)
{
	struct eng e = {0};
	struct docparts p;
	struct manread mr = {0};
	char hex[65], e2[400];
	const char *dp = document_json ? document_json : "";
	cJSON *doc = NULL, *priv = NULL, *rdoc = NULL;
	int rc = doc_read(dp, dp + strlen(dp), &doc, &mr);
	if (rc == -ENOMEM) {
		fail(err, errlen, rc, "document: out of memory");
		goto done;
	}
	rc = -EINVAL;
	if (!cJSON_IsObject(doc)) {
		fail(err, errlen, rc, "document: not a JSON object");
		goto done;
	}
	if (private_json && !cJSON_IsObject(priv = cJSON_Parse(private_json))) {
		fail(err, errlen, rc, "private: not a JSON object");
		goto done;
	}
	if ((rc = doc_parts(doc, &p, err, errlen)) < 0 ||
	    (rc = manifest_check(p.man, mr.streamed ? mr.targets_sha : NULL, err, errlen)) < 0)
		goto done;
	rc = -EBADMSG;
	const char *pub = str_of(doc, "manifest_sha256");
	if (!mr.text) {
		fail(err, errlen, rc, "manifest: %s", mr.cerr);
		goto done;
	}
	if (sha256_hex(mr.text, strlen(mr.text), hex) < 0) {
		fail(err, errlen, -EIO, "OpenSSL: SHA-256 failed");
		goto done;
	}
	if (!pub || strcmp(pub, hex)) {
		fail(err, errlen, rc, "manifest_sha256: published %s, recomputed %s",
		     pub ? pub : "(missing)", hex);
		goto done;
	}
	if (expected_manifest_sha256 && strcasecmp(expected_manifest_sha256, hex)) {
		fail(err, errlen, rc,
		     "manifest_sha256: %s differs from the hash published at commit %s", hex,
		     expected_manifest_sha256);
		goto done;
	}
	if (mr.streamed) {
		e.t = mr.t;
		e.nt = mr.nt;
		e.pre_t = 1;
		mr.t = NULL;
	}
	rc = recompute(&e, p.man, priv, p.values, "reveal.values", p.secret, p.sessions,
	               priv ? NULL : p.ins, p.reps, hex, e2, sizeof e2);
	if (rc == -EPERM) {
		rc = fail(err, errlen, -EBADMSG,
		          "reveal.secret: does not match manifest.commitment");
		goto done;
	}
	if (rc < 0) {
		rc = fail(err, errlen, -EBADMSG, "%s", e2);
		goto done;
	}
	rdoc = eng_doc(&e, p.values, p.secret, p.executed_ms);
	rc = doc_compare(doc, rdoc, e.reperr, err, errlen);
done:
	eng_close(&e);
	manread_free(&mr);
	cJSON_Delete(rdoc);
	cJSON_Delete(doc);
	cJSON_Delete(priv);
	return rc;
}
