/* tlsrec: TLS 1.3 record protection (RFC 8446 §5) for a connection whose handshake OpenSSL
 * has finished. OpenSSL 3.0 keeps ~25 KB per SSL object for life (the SSL struct, the parsed
 * peer certificate, cipher contexts); after the handshake a TLS 1.3 connection needs only
 * its two traffic secrets, keys, IVs and sequence numbers (~250 bytes here), as kernel TLS
 * does. The AEAD itself is OpenSSL's (EVP, one cipher context shared per thread); this file
 * does only the framing, nonces and KeyUpdate. Pure functions on caller memory: no I/O, no
 * allocation, any thread (a struct tlsrec_ctx is used by one thread at a time). */
#ifndef VW_TLSREC_H
#define VW_TLSREC_H

#include <stddef.h>
#include <stdint.h>

#define TLSREC_HEADER 5
#define TLSREC_MAX_PLAIN 16384u                    /* 2^14, RFC 8446 §5.1 */
#define TLSREC_MAX_CIPHER (TLSREC_MAX_PLAIN + 256) /* §5.2 */
#define TLSREC_OVERHEAD (TLSREC_HEADER + 1 + 16)   /* header, inner type, AEAD tag */

/* Inner content types (§5.1). */
enum { TLSREC_ALERT = 21, TLSREC_HANDSHAKE = 22, TLSREC_APPDATA = 23 };

/* Failures name the alert the peer is owed (§6.2); all are fatal for the connection. */
enum {
	TLSREC_E_UNEXPECTED = -10, /* unexpected_message (10) */
	TLSREC_E_BAD_MAC = -20,    /* bad_record_mac (20) */
	TLSREC_E_OVERFLOW = -22,   /* record_overflow (22) */
	TLSREC_E_ILLEGAL = -47,    /* illegal_parameter (47) */
	TLSREC_E_DECODE = -50,     /* decode_error (50) */
	TLSREC_E_INTERNAL = -80,   /* internal_error (80) */
};

struct tlsrec_dir {
	uint8_t secret[48]; /* the current application traffic secret (for KeyUpdate) */
	uint8_t key[32];
	uint8_t iv[12];
	uint64_t seq;
};

struct tlsrec {
	uint16_t suite; /* 0x1301 AES-128-GCM-SHA256, 0x1302 AES-256-GCM-SHA384, 0x1303 ChaCha20 */
	uint8_t hash_len, key_len;
	struct tlsrec_dir rd, wr; /* client → server, server → client */
};

/* Per-thread crypto: the fetched ciphers and one reusable cipher context. */
struct tlsrec_ctx;
struct tlsrec_ctx *tlsrec_ctx_create(void);
void tlsrec_ctx_destroy(struct tlsrec_ctx *x); /* accepts NULL */

/* Is this TLS 1.3 cipher suite one tlsrec can carry on? */
int tlsrec_suite_supported(uint16_t suite);
/* Sets up both directions from the application traffic secrets (…_TRAFFIC_SECRET_0) and
 * the sequence numbers already used under them. 0 or TLSREC_E_INTERNAL. */
int tlsrec_init(struct tlsrec *r, uint16_t suite, const uint8_t *client_secret,
                const uint8_t *server_secret, size_t secret_len, uint64_t rd_seq, uint64_t wr_seq);
/* Wipes the keys. */
void tlsrec_wipe(struct tlsrec *r);

/* The length of the record starting at buf (header included) once its header is in:
 * 0 when fewer than TLSREC_HEADER bytes are available, <0 (TLSREC_E_*) when the header is
 * not a TLS 1.3 protected record. */
long tlsrec_record_len(const uint8_t *buf, size_t avail);
/* Decrypts the whole record at rec (length from tlsrec_record_len) in place: *plain points
 * into rec, *type is the inner content type. Advances the read sequence. */
int tlsrec_open(struct tlsrec *r, struct tlsrec_ctx *x, uint8_t *rec, size_t len, uint8_t *type,
                uint8_t **plain, size_t *plain_len);
/* Bytes tlsrec_seal writes for len bytes of plaintext (split into records of 2^14). */
size_t tlsrec_sealed_len(size_t len);
/* Encrypts len bytes (0 allowed: one empty record) of inner type into out, which holds
 * tlsrec_sealed_len(len) bytes. Advances the write sequence. */
int tlsrec_seal(struct tlsrec *r, struct tlsrec_ctx *x, uint8_t type, const void *in, size_t len,
                uint8_t *out);

/* Handles a post-handshake handshake record's plaintext. KeyUpdate (§4.6.3) moves the read
 * keys on; *respond is set when the peer asked for ours to move too: the caller then sends
 * tlsrec_key_update_msg under the current keys and calls tlsrec_update_write. Any other
 * handshake message (we request no post-handshake auth and take no tickets) is
 * TLSREC_E_UNEXPECTED; a partial message is TLSREC_E_DECODE. */
int tlsrec_handshake(struct tlsrec *r, const uint8_t *msg, size_t len, int *respond);
extern const uint8_t tlsrec_key_update_msg[5]; /* KeyUpdate(update_not_requested) */
int tlsrec_update_write(struct tlsrec *r);
/* Have our keys protected enough records that we should move them on ourselves? RFC 8446
 * §5.5: at most 2^24.5 full-size records per AES-GCM key; we rekey at 2^24 for every suite. */
int tlsrec_should_rekey(const struct tlsrec *r);

#endif
