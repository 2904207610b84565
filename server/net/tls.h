/* tls: TLS server over libuv with OpenSSL memory BIOs. Owns the SSL_CTX, the listening
 * socket, and for every accepted connection its socket, SSL object and one timer; caps the
 * number of connections at accept. OpenSSL does the handshake and protects every record
 * (TLS 1.2 and 1.3); handshakes run in slices of loop time, the rest queued. Loop thread
 * only. tls.c frees a connection itself once its handles have closed: after tls_conn_close,
 * or after on_close told the upper layer the peer is gone, the upper layer must not touch
 * the tls_conn again. Refused handshakes are logged here (event=tls_refused peer=...
 * reason=... cert_cn=...). */
#ifndef VW_TLS_H
#define VW_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Who the peer is, from a client certificate that verified against our CA. */
struct tls_identity {
	int verified;  /* 1: a certificate was presented and verified */
	char site[64]; /* subject CN (the site id); "" when absent or not a valid id */
	/* subject UID (the venue machine); the site when the certificate names none (issued
	 * before agents were named); site and agent both "" when it names an invalid one */
	char agent[64];
	char org[65];    /* subject O */
	char city[129];  /* subject L, "" when absent */
	char serial[48]; /* certificate serial, upper-case hex as 'ca issue' prints it */
};

struct tls_conn;
struct tls_server;

struct tls_callbacks {
	void (*on_open)(struct tls_conn *c); /* handshake done; the identity is known */
	void (*on_data)(struct tls_conn *c, const char *data, size_t len); /* plaintext */
	void (*on_timeout)(struct tls_conn *c); /* the timer set by tls_conn_set_timer fired */
	void (*on_close)(struct tls_conn *c);   /* peer gone or error; only after on_open */
	/* Optional: one of the queued socket writes has completed (tls_conn_write_queue shrank),
	 * for back-pressure on a peer that reads slowly. NULL: not told. */
	void (*on_drain)(struct tls_conn *c);
};

struct tls_server_opts {
	const char *cert_file; /* server certificate chain, PEM */
	const char *key_file;
	const char *ca_file;    /* verifies client certificates */
	const char *crl_file;   /* revoked client certificates (PEM); NULL = none. Checked on
	                         * every handshake; a missing file is warned about, an
	                         * unreadable one is an error */
	uint64_t crl_poll_ms;   /* re-read crl_file when it changes; 0 = only on reload */
	size_t max_connections; /* more are closed right after accept */
	uint64_t handshake_timeout_ms;
};

int tls_server_create(uv_loop_t *loop, const struct tls_server_opts *opts,
                      const struct tls_callbacks *cb, void *cb_data, struct tls_server **out,
                      char *err, size_t errlen);
/* Binds and listens; *bound_port receives the actual port (port 0 picks one). */
int tls_server_listen(struct tls_server *s, const char *host, int port, int *bound_port);
/* Builds a new TLS context from the same files (certificate, key, CA, CRL) and uses it for
 * new handshakes; open connections whose certificate the new CRL revokes are closed. On
 * failure the old context stays (err says why). Also run by the CRL watcher. */
int tls_server_reload(struct tls_server *s, char *err, size_t errlen);
/* Stops accepting (closes the listener). Open connections are the upper layer's to end. */
void tls_server_stop(struct tls_server *s);
/* Frees the server once the loop has no more of its handles (after uv_run returned).
 * Accepts NULL. */
void tls_server_destroy(struct tls_server *s);
size_t tls_server_connections(const struct tls_server *s);
/* What the handshakes came to since start, for GET /metrics (issue 14): accepts, handshakes
 * done and refused, and the refusals by the reason event=tls_refused logs (the first
 * TLS_STATS_REASONS distinct ones; later new ones count under "other"). Loop thread. */
#define TLS_STATS_REASONS 16
struct tls_stats {
	uint64_t accepted, handshakes_ok, handshakes_failed, refused_max_connections;
	size_t nreasons;
	char reason[TLS_STATS_REASONS][48];
	uint64_t refused[TLS_STATS_REASONS];
};
const struct tls_stats *tls_server_stats(const struct tls_server *s);
/* A new connection cap and handshake deadline (a reload): for accepts from now on; no
 * connection is closed. */
void tls_server_set_limits(struct tls_server *s, size_t max_connections,
                           uint64_t handshake_timeout_ms);

void *tls_conn_cb_data(const struct tls_conn *c); /* cb_data given to tls_server_create */
void tls_conn_set_data(struct tls_conn *c, void *data);
void *tls_conn_data(const struct tls_conn *c);
const struct tls_identity *tls_conn_identity(const struct tls_conn *c);
const char *tls_conn_peer(const struct tls_conn *c);    /* "ip:port", "[v6]:port" */
int64_t tls_conn_accepted_ms(const struct tls_conn *c); /* vw_mono_ms at accept */
/* Encrypts and queues data. 0 or a negative uv error. */
int tls_conn_write(struct tls_conn *c, const void *data, size_t len);
size_t tls_conn_write_queue(const struct tls_conn *c); /* bytes queued to the socket */
/* Stop / resume reading the socket (plaintext already decrypted has been delivered). */
void tls_conn_pause(struct tls_conn *c);
void tls_conn_resume(struct tls_conn *c);
/* Sets the socket's kernel send buffer (SO_SNDBUF; Linux doubles it and stops autotuning),
 * so a long-lived stream to a peer that does not read holds a known amount of kernel memory
 * and its backlog shows in tls_conn_write_queue. 0 or a negative uv error. */
int tls_conn_set_send_buffer(struct tls_conn *c, int bytes);
/* (Re)arms the connection's timer; 0 stops it. */
void tls_conn_set_timer(struct tls_conn *c, uint64_t ms);
/* Ends the connection: close_notify, then half-close after the queued writes, then
 * discard what the peer still sends for a short while (so an early error response is not
 * lost to a reset), then close. No on_close follows. */
void tls_conn_close(struct tls_conn *c);

#endif
