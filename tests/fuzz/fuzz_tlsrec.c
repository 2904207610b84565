/* libFuzzer target: the TLS 1.3 record layer the server runs after the handshake (tlsrec).
 * First byte even: the rest is a raw byte stream from a peer, cut into records and opened
 * under fixed keys (bounds and header checks; the AEAD refuses almost everything). Odd:
 * the rest is a list of (type, length, bytes) items that are sealed and opened again, and
 * must come back byte for byte, with the handshake parser run on handshake items. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlsrec.h"

static struct tlsrec_ctx *x;
static uint8_t buf[TLSREC_HEADER + TLSREC_MAX_CIPHER + 64];

static void keys(struct tlsrec *r, uint16_t suite)
{
	uint8_t secret[48];
	memset(secret, 0x5a, sizeof(secret));
	if (tlsrec_init(r, suite, secret, secret, suite == 0x1302 ? 48 : 32, 0, 0) != 0)
		abort();
	r->rd = r->wr; /* open what we seal */
}

static void raw_stream(struct tlsrec *r, const uint8_t *p, size_t n)
{
	while (n) {
		long len = tlsrec_record_len(p, n);
		if (len <= 0 || (size_t)len > n || (size_t)len > sizeof(buf))
			return;
		memcpy(buf, p, (size_t)len);
		uint8_t type, *plain;
		size_t pl;
		int respond;
		if (tlsrec_open(r, x, buf, (size_t)len, &type, &plain, &pl) == 0 &&
		    type == TLSREC_HANDSHAKE)
			tlsrec_handshake(r, plain, pl, &respond);
		p += len;
		n -= (size_t)len;
	}
}

static void round_trip(struct tlsrec *r, const uint8_t *p, size_t n)
{
	static const uint8_t types[3] = {TLSREC_ALERT, TLSREC_HANDSHAKE, TLSREC_APPDATA};
	while (n >= 3) {
		uint8_t type = types[p[0] % 3];
		size_t len = ((size_t)p[1] << 8 | p[2]) % (TLSREC_MAX_PLAIN + 1);
		p += 3;
		n -= 3;
		if (len > n)
			len = n;
		if (tlsrec_seal(r, x, type, p, len, buf) != 0)
			abort();
		long rl = tlsrec_record_len(buf, tlsrec_sealed_len(len));
		if (rl != (long)tlsrec_sealed_len(len))
			abort();
		uint8_t got_type, *plain;
		size_t pl;
		int rc = tlsrec_open(r, x, buf, (size_t)rl, &got_type, &plain, &pl);
		/* Empty alert or handshake records are refused; everything else comes back. */
		if (len == 0 && type != TLSREC_APPDATA) {
			if (rc != TLSREC_E_UNEXPECTED)
				abort();
		} else if (rc != 0 || got_type != type || pl != len || memcmp(plain, p, len) != 0) {
			abort();
		}
		if (rc == 0 && type == TLSREC_HANDSHAKE) {
			int respond;
			if (tlsrec_handshake(r, plain, pl, &respond) == 0)
				r->rd = r->wr = r->rd; /* keys moved: keep both directions equal */
		}
		p += len;
		n -= len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!x && !(x = tlsrec_ctx_create()))
		abort();
	if (size < 2)
		return 0;
	static const uint16_t suites[3] = {0x1301, 0x1302, 0x1303};
	struct tlsrec r;
	keys(&r, suites[data[1] % 3]);
	if (data[0] & 1)
		round_trip(&r, data + 2, size - 2);
	else
		raw_stream(&r, data + 2, size - 2);
	tlsrec_wipe(&r);
	return 0;
}
