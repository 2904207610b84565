#include "tlsrec.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#define TAG_LEN 16
#define IV_LEN 12

struct tlsrec_ctx {
	EVP_CIPHER_CTX *cx;
	EVP_CIPHER *aes128, *aes256, *chacha;
};

const uint8_t tlsrec_key_update_msg[5] = {24, 0, 0, 1, 0};

struct tlsrec_ctx *tlsrec_ctx_create(void)
{
	struct tlsrec_ctx *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->cx = EVP_CIPHER_CTX_new();
	x->aes128 = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
	x->aes256 = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	x->chacha = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
	if (!x->cx || !x->aes128 || !x->aes256 || !x->chacha) {
		tlsrec_ctx_destroy(x);
		return NULL;
	}
	return x;
}

void tlsrec_ctx_destroy(struct tlsrec_ctx *x)
{
	if (!x)
		return;
	EVP_CIPHER_CTX_free(x->cx);
	EVP_CIPHER_free(x->aes128);
	EVP_CIPHER_free(x->aes256);
	EVP_CIPHER_free(x->chacha);
	free(x);
}

int tlsrec_suite_supported(uint16_t suite)
{
	return suite == 0x1301 || suite == 0x1302 || suite == 0x1303;
}

static const EVP_MD *suite_md(uint16_t suite)
{
	return suite == 0x1302 ? EVP_sha384() : EVP_sha256();
}

static const EVP_CIPHER *suite_cipher(const struct tlsrec_ctx *x, uint16_t suite)
{
	return suite == 0x1301 ? x->aes128 : suite == 0x1302 ? x->aes256 : x->chacha;
}

/* HKDF-Expand-Label(secret, label, "", out_len) (§7.1) for out_len <= the hash length,
 * where HKDF-Expand is the single block HMAC(secret, HkdfLabel || 0x01). */
static int expand_label(uint16_t suite, const uint8_t *secret, size_t secret_len, const char *label,
                        uint8_t *out, size_t out_len)
{
	uint8_t info[2 + 1 + 6 + 32 + 1 + 1];
	size_t ll = strlen(label), n = 0;
	if (ll > 32 || out_len > secret_len)
		return TLSREC_E_INTERNAL;
	info[n++] = (uint8_t)(out_len >> 8);
	info[n++] = (uint8_t)out_len;
	info[n++] = (uint8_t)(6 + ll);
	memcpy(info + n, "tls13 ", 6);
	n += 6;
	memcpy(info + n, label, ll);
	n += ll;
	info[n++] = 0; /* empty context */
	info[n++] = 1; /* the block counter */
	uint8_t block[EVP_MAX_MD_SIZE];
	unsigned int blen = 0;
	if (!HMAC(suite_md(suite), secret, (int)secret_len, info, n, block, &blen) ||
	    blen < out_len)
		return TLSREC_E_INTERNAL;
	memcpy(out, block, out_len);
	OPENSSL_cleanse(block, sizeof(block));
	return 0;
}

static int dir_keys(const struct tlsrec *r, struct tlsrec_dir *d)
{
	int rc = expand_label(r->suite, d->secret, r->hash_len, "key", d->key, r->key_len);
	if (!rc)
		rc = expand_label(r->suite, d->secret, r->hash_len, "iv", d->iv, IV_LEN);
	d->seq = 0;
	return rc;
}

int tlsrec_init(struct tlsrec *r, uint16_t suite, const uint8_t *client_secret,
                const uint8_t *server_secret, size_t secret_len, uint64_t rd_seq, uint64_t wr_seq)
{
	memset(r, 0, sizeof(*r));
	if (!tlsrec_suite_supported(suite))
		return TLSREC_E_INTERNAL;
	r->suite = suite;
	r->hash_len = suite == 0x1302 ? 48 : 32;
	r->key_len = suite == 0x1301 ? 16 : 32;
	if (secret_len != r->hash_len)
		return TLSREC_E_INTERNAL;
	memcpy(r->rd.secret, client_secret, secret_len);
	memcpy(r->wr.secret, server_secret, secret_len);
	if (dir_keys(r, &r->rd) || dir_keys(r, &r->wr)) {
		tlsrec_wipe(r);
		return TLSREC_E_INTERNAL;
	}
	r->rd.seq = rd_seq;
	r->wr.seq = wr_seq;
	return 0;
}

void tlsrec_wipe(struct tlsrec *r)
{
	OPENSSL_cleanse(r, sizeof(*r));
}

long tlsrec_record_len(const uint8_t *buf, size_t avail)
{
	if (avail < TLSREC_HEADER)
		return 0;
	/* After the handshake every TLS 1.3 record is protected and says application_data;
	 * a plaintext alert or change_cipher_spec here is a protocol violation (§5). */
	if (buf[0] != TLSREC_APPDATA)
		return TLSREC_E_UNEXPECTED;
	if (buf[1] != 3 || buf[2] != 3)
		return TLSREC_E_DECODE;
	size_t len = (size_t)buf[3] << 8 | buf[4];
	if (len > TLSREC_MAX_CIPHER)
		return TLSREC_E_OVERFLOW;
	if (len < TAG_LEN + 1)
		return TLSREC_E_DECODE;
	return (long)(TLSREC_HEADER + len);
}

/* The per-record nonce: the IV XOR the 64-bit sequence number, left-padded (§5.3). */
static int next_nonce(struct tlsrec_dir *d, uint8_t nonce[IV_LEN])
{
	if (d->seq == UINT64_MAX)
		return TLSREC_E_INTERNAL; /* must rekey or end before it wraps; 2^64 records */
	memcpy(nonce, d->iv, IV_LEN);
	for (int i = 0; i < 8; i++)
		nonce[IV_LEN - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
	d->seq++;
	return 0;
}

int tlsrec_open(struct tlsrec *r, struct tlsrec_ctx *x, uint8_t *rec, size_t len, uint8_t *type,
                uint8_t **plain, size_t *plain_len)
{
	long want = tlsrec_record_len(rec, len);
	if (want < 0)
		return (int)want;
	if (want == 0 || (size_t)want != len)
		return TLSREC_E_DECODE;
	uint8_t nonce[IV_LEN];
	if (next_nonce(&r->rd, nonce))
		return TLSREC_E_INTERNAL;
	uint8_t *ct = rec + TLSREC_HEADER;
	int clen = (int)(len - TLSREC_HEADER - TAG_LEN), n = 0, fin = 0;
	EVP_CIPHER_CTX *cx = x->cx;
	if (EVP_DecryptInit_ex2(cx, suite_cipher(x, r->suite), r->rd.key, nonce, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, ct + clen) != 1 ||
	    EVP_DecryptUpdate(cx, NULL, &n, rec, TLSREC_HEADER) != 1 ||
	    EVP_DecryptUpdate(cx, ct, &n, ct, clen) != 1)
		return TLSREC_E_INTERNAL;
	if (EVP_DecryptFinal_ex(cx, ct + n, &fin) != 1)
		return TLSREC_E_BAD_MAC;
	/* TLSInnerPlaintext: content, the real type, then zero padding (§5.2). */
	int i = clen - 1;
	while (i >= 0 && ct[i] == 0)
		i--;
	if (i < 0)
		return TLSREC_E_UNEXPECTED;
	*type = ct[i];
	if (*type != TLSREC_APPDATA && *type != TLSREC_ALERT && *type != TLSREC_HANDSHAKE)
		return TLSREC_E_UNEXPECTED;
	if (i > (int)TLSREC_MAX_PLAIN)
		return TLSREC_E_OVERFLOW;
	if (i == 0 && *type != TLSREC_APPDATA)
		return TLSREC_E_UNEXPECTED; /* empty alert or handshake fragments are not allowed */
	*plain = ct;
	*plain_len = (size_t)i;
	return 0;
}

size_t tlsrec_sealed_len(size_t len)
{
	size_t records = len ? (len + TLSREC_MAX_PLAIN - 1) / TLSREC_MAX_PLAIN : 1;
	return len + records * TLSREC_OVERHEAD;
}

static int seal_one(struct tlsrec *r, struct tlsrec_ctx *x, uint8_t type, const uint8_t *in,
                    size_t len, uint8_t *out)
{
	size_t clen = len + 1 + TAG_LEN;
	out[0] = TLSREC_APPDATA;
	out[1] = 3;
	out[2] = 3;
	out[3] = (uint8_t)(clen >> 8);
	out[4] = (uint8_t)clen;
	uint8_t nonce[IV_LEN];
	if (next_nonce(&r->wr, nonce))
		return TLSREC_E_INTERNAL;
	uint8_t *ct = out + TLSREC_HEADER;
	int n = 0;
	EVP_CIPHER_CTX *cx = x->cx;
	if (EVP_EncryptInit_ex2(cx, suite_cipher(x, r->suite), r->wr.key, nonce, NULL) != 1 ||
	    EVP_EncryptUpdate(cx, NULL, &n, out, TLSREC_HEADER) != 1 ||
	    (len && EVP_EncryptUpdate(cx, ct, &n, in, (int)len) != 1) ||
	    EVP_EncryptUpdate(cx, ct + len, &n, &type, 1) != 1 ||
	    EVP_EncryptFinal_ex(cx, ct + len + 1, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, ct + len + 1) != 1)
		return TLSREC_E_INTERNAL;
	return 0;
}

int tlsrec_seal(struct tlsrec *r, struct tlsrec_ctx *x, uint8_t type, const void *in, size_t len,
                uint8_t *out)
{
	const uint8_t *p = in;
	do {
		size_t chunk = len > TLSREC_MAX_PLAIN ? TLSREC_MAX_PLAIN : len;
		int rc = seal_one(r, x, type, p, chunk, out);
		if (rc)
			return rc;
		out += chunk + TLSREC_OVERHEAD;
		p += chunk;
		len -= chunk;
	} while (len);
	return 0;
}

static int update_dir(struct tlsrec *r, struct tlsrec_dir *d)
{
	uint8_t next[48];
	int rc = expand_label(r->suite, d->secret, r->hash_len, "traffic upd", next, r->hash_len);
	if (!rc) {
		memcpy(d->secret, next, r->hash_len);
		rc = dir_keys(r, d);
	}
	OPENSSL_cleanse(next, sizeof(next));
	return rc;
}

int tlsrec_should_rekey(const struct tlsrec *r)
{
	return r->wr.seq >= (UINT64_C(1) << 24);
}

int tlsrec_update_write(struct tlsrec *r)
{
	return update_dir(r, &r->wr);
}

int tlsrec_handshake(struct tlsrec *r, const uint8_t *msg, size_t len, int *respond)
{
	*respond = 0;
	while (len) {
		if (len < 4)
			return TLSREC_E_DECODE;
		size_t body = (size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3];
		if (body > len - 4)
			return TLSREC_E_DECODE; /* fragmented across records: no peer does that */
		if (msg[0] != 24)
			return TLSREC_E_UNEXPECTED;
		/* KeyUpdate: one byte, update_not_requested (0) or update_requested (1), and
		 * the last message under the old keys (§4.6.3, §5.1). */
		if (body != 1)
			return TLSREC_E_DECODE;
		if (msg[4] > 1)
			return TLSREC_E_ILLEGAL;
		if (len != 5)
			return TLSREC_E_UNEXPECTED;
		if (msg[4] == 1)
			*respond = 1;
		return update_dir(r, &r->rd);
	}
	return TLSREC_E_DECODE;
}
