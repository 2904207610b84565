/* tlsrec against a real, independent TLS 1.3 peer: an OpenSSL client completes a handshake
 * with an OpenSSL server in memory, the server's traffic secrets are taken from its key
 * log (as server/tls.c does), the server SSL is freed, and from then on tlsrec is the
 * server: the client's records decrypt, ours read back in the client, for each suite;
 * KeyUpdate either way; padding; and tampered or replayed records fail with
 * the alert RFC 8446 names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "tlsrec.h"

struct keys {
	uint8_t cs[48], ss[48];
	int have;
	size_t len;
};

static void on_keylog(const SSL *ssl, const char *line)
{
	struct keys *k = SSL_get_app_data(ssl);
	uint8_t *dst = NULL;
	if (strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0)
		dst = k->cs;
	else if (strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0)
		dst = k->ss;
	if (!dst)
		return;
	long len = 0;
	unsigned char *bin = OPENSSL_hexstr2buf(strchr(line + 24, ' ') + 1, &len);
	assert_non_null(bin);
	memcpy(dst, bin, (size_t)len);
	k->len = (size_t)len;
	k->have++;
	OPENSSL_free(bin);
}

static SSL_CTX *server_ctx(const char *suite)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	assert_non_null(key);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	assert_int_equal(SSL_CTX_set_ciphersuites(ctx, suite), 1);
	SSL_CTX_set_num_tickets(ctx, 2);
	SSL_CTX_set_keylog_callback(ctx, on_keylog);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

/* Moves everything one side wrote into the other's read BIO. */
static void pump(SSL *from, SSL *to)
{
	char buf[4096];
	int n;
	while ((n = BIO_read(SSL_get_wbio(from), buf, sizeof(buf))) > 0)
		assert_int_equal(BIO_write(SSL_get_rbio(to), buf, n), n);
}

static void mem_bios(SSL *s)
{
	BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(r, -1);
	BIO_set_mem_eof_return(w, -1);
	SSL_set_bio(s, r, w);
}

static size_t drain(SSL *s, uint8_t *out, size_t cap)
{
	int n = BIO_read(SSL_get_wbio(s), out, (int)cap);
	return n > 0 ? (size_t)n : 0;
}

struct pair {
	SSL_CTX *sctx, *cctx;
	SSL *client;
	struct tlsrec rec;
	struct tlsrec_ctx *x;
	uint16_t suite;
};

/* Handshake; then the server SSL goes and tlsrec takes over with the secrets and the
 * number of records the server sent after the client's Finished (its tickets). */
static void setup_pair(struct pair *p, const char *suite_name, uint16_t suite)
{
	struct keys k = {0};
	p->suite = suite;
	p->sctx = server_ctx(suite_name);
	p->cctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_ciphersuites(p->cctx, suite_name);
	SSL *server = SSL_new(p->sctx);
	p->client = SSL_new(p->cctx);
	mem_bios(server);
	mem_bios(p->client);
	SSL_set_app_data(server, &k);
	SSL_set_accept_state(server);
	SSL_set_connect_state(p->client);
	int done = 0;
	uint64_t after_finished = 0;
	for (int i = 0; i < 10 && !done; i++) {
		SSL_do_handshake(p->client);
		pump(p->client, server);
		done = SSL_do_handshake(server) == 1;
		if (done) { /* what the server wrote in this last step: its tickets */
			char *data;
			long len = BIO_get_mem_data(SSL_get_wbio(server), &data);
			for (long off = 0; off + 5 <= len; after_finished++)
				off += 5 + ((unsigned char)data[off + 3] << 8 |
				            (unsigned char)data[off + 4]);
		}
		pump(server, p->client);
	}
	assert_true(done);
	assert_int_equal(SSL_do_handshake(p->client), 1);
	assert_int_equal(k.have, 2);
	assert_int_equal(after_finished, 2);
	assert_int_equal(SSL_CIPHER_get_id(SSL_get_current_cipher(server)) & 0xffff, suite);
	assert_int_equal(tlsrec_init(&p->rec, suite, k.cs, k.ss, k.len, 0, after_finished), 0);
	SSL_free(server);
	p->x = tlsrec_ctx_create();
	assert_non_null(p->x);
}

static void teardown_pair(struct pair *p)
{
	tlsrec_wipe(&p->rec);
	tlsrec_ctx_destroy(p->x);
	SSL_free(p->client);
	SSL_CTX_free(p->sctx);
	SSL_CTX_free(p->cctx);
}

/* The client writes; tlsrec opens every record it produced; returns the plaintext. */
static size_t client_to_server(struct pair *p, const void *msg, size_t len, uint8_t *plain_out)
{
	static uint8_t wire[1 << 17];
	if (len)
		assert_int_equal(SSL_write(p->client, msg, (int)len), (int)len);
	size_t n = drain(p->client, wire, sizeof(wire)), off = 0, got = 0;
	while (off < n) {
		long rl = tlsrec_record_len(wire + off, n - off);
		assert_true(rl > 0);
		uint8_t type, *plain;
		size_t pl;
		assert_int_equal(
		    tlsrec_open(&p->rec, p->x, wire + off, (size_t)rl, &type, &plain, &pl), 0);
		if (type == TLSREC_APPDATA) {
			memcpy(plain_out + got, plain, pl);
			got += pl;
		} else if (type == TLSREC_HANDSHAKE) {
			int respond = 0;
			assert_int_equal(tlsrec_handshake(&p->rec, plain, pl, &respond), 0);
			if (respond) {
				uint8_t out[64];
				assert_int_equal(tlsrec_seal(&p->rec, p->x, TLSREC_HANDSHAKE,
				                             tlsrec_key_update_msg, 5, out),
				                 0);
				assert_int_equal(BIO_write(SSL_get_rbio(p->client), out,
				                           (int)tlsrec_sealed_len(5)),
				                 (int)tlsrec_sealed_len(5));
				assert_int_equal(tlsrec_update_write(&p->rec), 0);
			}
		}
		off += (size_t)rl;
	}
	return got;
}

static void server_to_client(struct pair *p, const void *msg, size_t len)
{
	static uint8_t out[1 << 17], back[1 << 17];
	size_t n = tlsrec_sealed_len(len);
	assert_true(n <= sizeof(out));
	assert_int_equal(tlsrec_seal(&p->rec, p->x, TLSREC_APPDATA, msg, len, out), 0);
	assert_int_equal(BIO_write(SSL_get_rbio(p->client), out, (int)n), (int)n);
	size_t got = 0;
	while (got < len) {
		int r = SSL_read(p->client, back + got, (int)(sizeof(back) - got));
		assert_true(r > 0);
		got += (size_t)r;
	}
	assert_int_equal(got, len);
	assert_memory_equal(back, msg, len);
}

static void exchange_both_ways(const char *name, uint16_t suite)
{
	struct pair p;
	setup_pair(&p, name, suite);
	uint8_t plain[1 << 17];
	const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_int_equal(client_to_server(&p, req, sizeof(req) - 1, plain), sizeof(req) - 1);
	assert_memory_equal(plain, req, sizeof(req) - 1);
	/* bigger than one record on both sides: split at 2^14 */
	static uint8_t big[40000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	server_to_client(&p, big, sizeof(big));
	assert_int_equal(client_to_server(&p, big, sizeof(big), plain), sizeof(big));
	assert_memory_equal(plain, big, sizeof(big));
	server_to_client(&p, "ok", 2);
	teardown_pair(&p);
}

static void each_suite_interoperates(void **state)
{
	(void)state;
	exchange_both_ways("TLS_AES_128_GCM_SHA256", 0x1301);
	exchange_both_ways("TLS_AES_256_GCM_SHA384", 0x1302);
	exchange_both_ways("TLS_CHACHA20_POLY1305_SHA256", 0x1303);
}

static void key_update_both_ways(void **state)
{
	(void)state;
	struct pair p;
	uint8_t plain[256];
	setup_pair(&p, "TLS_AES_256_GCM_SHA384", 0x1302);
	/* the client moves its keys and asks us to move ours */
	assert_int_equal(SSL_key_update(p.client, SSL_KEY_UPDATE_REQUESTED), 1);
	assert_int_equal(SSL_do_handshake(p.client), 1);
	assert_int_equal(client_to_server(&p, "after", 5, plain), 5);
	assert_memory_equal(plain, "after", 5);
	server_to_client(&p, "moved", 5); /* readable only under our new keys */
	/* and once more without a request */
	assert_int_equal(SSL_key_update(p.client, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
	assert_int_equal(SSL_do_handshake(p.client), 1);
	assert_int_equal(client_to_server(&p, "again", 5, plain), 5);
	server_to_client(&p, "same", 4);
	teardown_pair(&p);
}

static void padded_records_open(void **state)
{
	(void)state;
	struct pair p;
	uint8_t plain[256];
	setup_pair(&p, "TLS_AES_128_GCM_SHA256", 0x1301);
	SSL_set_block_padding(p.client, 256); /* zeros after the inner type */
	assert_int_equal(client_to_server(&p, "pad", 3, plain), 3);
	assert_memory_equal(plain, "pad", 3);
	teardown_pair(&p);
}

static void tampered_and_replayed_records_fail(void **state)
{
	(void)state;
	struct pair p;
	uint8_t wire[512], copy[512], type, *plain;
	size_t pl;
	setup_pair(&p, "TLS_AES_128_GCM_SHA256", 0x1301);
	assert_int_equal(SSL_write(p.client, "one", 3), 3);
	size_t n = drain(p.client, wire, sizeof(wire));
	memcpy(copy, wire, n);
	wire[n - 1] ^= 1; /* the tag */
	assert_int_equal(tlsrec_open(&p.rec, p.x, wire, n, &type, &plain, &pl), TLSREC_E_BAD_MAC);
	teardown_pair(&p);

	setup_pair(&p, "TLS_AES_128_GCM_SHA256", 0x1301);
	assert_int_equal(SSL_write(p.client, "one", 3), 3);
	n = drain(p.client, wire, sizeof(wire));
	memcpy(copy, wire, n);
	assert_int_equal(tlsrec_open(&p.rec, p.x, wire, n, &type, &plain, &pl), 0);
	/* the same record again: its sequence number is used up */
	assert_int_equal(tlsrec_open(&p.rec, p.x, copy, n, &type, &plain, &pl), TLSREC_E_BAD_MAC);
	teardown_pair(&p);
}

static void bad_headers_name_their_alert(void **state)
{
	(void)state;
	uint8_t h[5] = {23, 3, 3, 0, 17};
	assert_int_equal(tlsrec_record_len(h, 4), 0);
	assert_int_equal(tlsrec_record_len(h, 5), 22);
	h[0] = 21; /* a plaintext alert after the handshake */
	assert_int_equal(tlsrec_record_len(h, 5), TLSREC_E_UNEXPECTED);
	h[0] = 20; /* change_cipher_spec after Finished */
	assert_int_equal(tlsrec_record_len(h, 5), TLSREC_E_UNEXPECTED);
	h[0] = 23;
	h[3] = 0x41;
	h[4] = 0x01; /* 2^14 + 257 */
	assert_int_equal(tlsrec_record_len(h, 5), TLSREC_E_OVERFLOW);
	h[3] = 0;
	h[4] = 16; /* shorter than a tag and a type */
	assert_int_equal(tlsrec_record_len(h, 5), TLSREC_E_DECODE);
}

static void only_key_update_is_accepted_after_the_handshake(void **state)
{
	(void)state;
	struct tlsrec r;
	uint8_t s[32] = {1};
	int respond;
	assert_int_equal(tlsrec_init(&r, 0x1301, s, s, 32, 0, 0), 0);
	const uint8_t ticket[] = {4, 0, 0, 1, 0};
	assert_int_equal(tlsrec_handshake(&r, ticket, 5, &respond), TLSREC_E_UNEXPECTED);
	const uint8_t bad_value[] = {24, 0, 0, 1, 2};
	assert_int_equal(tlsrec_handshake(&r, bad_value, 5, &respond), TLSREC_E_ILLEGAL);
	const uint8_t partial[] = {24, 0, 0, 1};
	assert_int_equal(tlsrec_handshake(&r, partial, 4, &respond), TLSREC_E_DECODE);
	const uint8_t two[] = {24, 0, 0, 1, 0, 24, 0, 0, 1, 0}; /* spans a key change */
	assert_int_equal(tlsrec_handshake(&r, two, 10, &respond), TLSREC_E_UNEXPECTED);
	assert_int_equal(tlsrec_init(&r, 0x1304, s, s, 32, 0, 0), TLSREC_E_INTERNAL); /* CCM */
	/* §5.5: keys are moved on after 2^24 records of ours; a KeyUpdate starts over at 0 */
	assert_int_equal(tlsrec_init(&r, 0x1301, s, s, 32, 0, (1u << 24) - 1), 0);
	assert_false(tlsrec_should_rekey(&r));
	r.wr.seq++;
	assert_true(tlsrec_should_rekey(&r));
	assert_int_equal(tlsrec_update_write(&r), 0);
	assert_false(tlsrec_should_rekey(&r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(each_suite_interoperates),
	    cmocka_unit_test(key_update_both_ways),
	    cmocka_unit_test(padded_records_open),
	    cmocka_unit_test(tampered_and_replayed_records_fail),
	    cmocka_unit_test(bad_headers_name_their_alert),
	    cmocka_unit_test(only_key_update_is_accepted_after_the_handshake),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
