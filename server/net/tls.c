#include "tls.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "vtime.h"

/* After close_notify and our half-close, how long to keep reading (and discarding) so the
 * peer sees our last response rather than a reset: Apache's lingering close uses 2 s. */
#define LINGER_MS 2000
/* One socket read. 64 KiB is libuv's own suggested size; the buffer is shared by every
 * connection because the read callback consumes it before the next read starts. */
#define READ_BUF (64u << 10)
#define PLAIN_BUF (16u << 10) /* one TLS record */
/* Handshake work the loop does before it looks at other sockets again. A full mutual-TLS
 * handshake costs ~1 ms of CPU here; a reconnect storm of thousands would otherwise hold
 * every open connection (a supervisor's /healthz, an agent's ack) behind all of them. The
 * rest wait in a queue for the next turn of the loop. 4 ms keeps /healthz well inside the
 * 50 ms target (issue 5) while handshakes still get most of the CPU. */
#define HANDSHAKE_SLICE_NS (4u * 1000 * 1000)
/* KeyUpdates from the peer with no application data in between. OpenSSL 3.0 answers every
 * one (a key derivation, and a KeyUpdate of ours when asked) without a limit of its own; past
 * this many the peer is only making us work. 32 is BoringSSL's limit for the same thing and
 * OpenSSL's for empty records. */
#define MAX_KEY_UPDATES 32
enum conn_state { C_HANDSHAKE, C_OPEN, C_CLOSING };

struct tls_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t shutdown_req;
	struct tls_server *srv;
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	enum conn_state state;
	int opened;     /* on_open was called: the upper layer knows this connection */
	int upper_gone; /* no more callbacks to the upper layer */
	int paused;
	int handles_closing;
	int handles_open; /* how many of tcp/timer still await their close callback */
	int64_t accepted_ms;
	char peer[64];
	struct tls_identity id;
	char refused_cn[64];     /* the certificate a failed verification was about */
	char refused_serial[48]; /* (OpenSSL keeps no peer certificate when it fails) */
	void *data;
	struct tls_conn *prev, *next; /* every connection, for revoking open ones on reload */
	/* Which certificate, for revoking an open connection on reload: read once at the
	 * handshake, so a reload compares numbers instead of walking every session. */
	unsigned long issuer_hash;
	unsigned char serial_der[24];
	int serial_len;
	int hs_queued;        /* waiting in srv's handshake queue for the next slice */
	unsigned key_updates; /* KeyUpdates received since the last application data */
	struct tls_conn *hs_next;
};

struct tls_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	int listening, listener_open, destroy_pending;
	SSL_CTX *ctx;
	STACK_OF(X509_CRL) * crls; /* what ctx checks against, for connections already open */
	struct tls_server_opts opts;
	char *cert_file, *key_file, *ca_file, *crl_file; /* opts' strings, owned */
	uv_fs_poll_t crl_poll;
	int crl_poll_open;
	uv_idle_t hs_idle; /* runs queued handshakes, a slice per loop turn */
	int hs_idle_open;
	struct tls_conn *hs_head, *hs_tail;
	uint64_t hs_turn, hs_spent_ns; /* uv_now of the current turn, handshake time in it */
	/* One queue episode (first queued handshake until the queue is empty), logged when
	 * it ends: how many waited, over how many turns, and how many reads of open
	 * connections were served meanwhile (what the slicing is for). */
	unsigned hs_q_handshakes, hs_q_turns, hs_q_reads;
	struct tls_conn *conns;
	struct tls_callbacks cb;
	void *cb_data;
	size_t max_conns, nconns;
	uint64_t handshake_timeout_ms;
	struct vw_log_limit refused_log, cap_log;
	struct tls_stats stats; /* plain increments: loop thread */
	char readbuf[READ_BUF];
	char plainbuf[PLAIN_BUF];
};

struct write_req {
	uv_write_t req;
	struct tls_conn *conn;
	char data[];
};

/* A log value from outside text: one token, no spaces or quotes that could forge fields. */
static void token(const char *in, char *out, size_t n)
{
	size_t i = 0;
	for (; in && *in && i + 1 < n; in++) {
		unsigned char ch = (unsigned char)*in;
		out[i++] = (isalnum(ch) || ch == '.' || ch == '-' || ch == '_' || ch == ':' ||
		            ch == '[' || ch == ']')
		               ? (char)tolower(ch)
		               : '_';
	}
	out[i] = '\0';
	if (!i)
		snprintf(out, n, "unknown");
}

static const char *verify_reason(long v)
{
	switch (v) {
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		return "self_signed";
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return "unknown_ca";
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return "cert_expired";
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "cert_not_yet_valid";
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return "bad_signature";
	case X509_V_ERR_INVALID_PURPOSE:
		return "wrong_purpose";
	case X509_V_ERR_CERT_REVOKED:
		return "cert_revoked";
	default:
		return "cert_verify_failed";
	}
}

/* --- connection teardown ------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
	struct tls_conn *c = h->data;
	if (--c->handles_open > 0)
		return;
	struct tls_server *s = c->srv;
	if (c->hs_queued) {
		struct tls_conn **pp = &s->hs_head, *last = NULL;
		while (*pp != c) {
			last = *pp;
			pp = &(*pp)->hs_next;
		}
		*pp = c->hs_next;
		if (s->hs_tail == c)
			s->hs_tail = last;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	SSL_free(c->ssl);
	free(c);
	s->nconns--;
}

static void close_handles(struct tls_conn *c)
{
	if (c->handles_closing)
		return;
	c->handles_closing = 1;
	c->upper_gone = 1;
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* The connection failed or the peer left: tell the upper layer once, then close. */
static void conn_fail(struct tls_conn *c)
{
	if (c->opened && !c->upper_gone) {
		c->upper_gone = 1;
		c->srv->cb.on_close(c);
	}
	close_handles(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct tls_conn *c = req->data;
	if (status < 0)
		close_handles(c);
	/* else: keep discarding until EOF or the linger timer */
}

static int flush(struct tls_conn *c);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);
static void handshake_step(struct tls_conn *c);

static void linger_close(struct tls_conn *c)
{
	if (c->state == C_CLOSING || c->handles_closing)
		return;
	c->state = C_CLOSING;
	c->upper_gone = 1;
	c->shutdown_req.data = c;
	if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
		close_handles(c);
		return;
	}
	if (c->paused) {
		c->paused = 0;
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	}
	uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
}

/* --- I/O ------------------------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct tls_conn *c = w->conn;
	free(w);
	if (status < 0 && status != UV_ECANCELED && c->state != C_CLOSING)
		conn_fail(c);
	else if (status == 0 && c->state == C_OPEN && c->opened && !c->upper_gone &&
	         c->srv->cb.on_drain)
		c->srv->cb.on_drain(c);
}

/* A fresh, empty memory BIO for one side of the connection. */
static BIO *mem_bio(int is_read)
{
	BIO *b = BIO_new(BIO_s_mem());
	/* An empty memory BIO reports "retry", which SSL turns into WANT_READ. */
	if (b && is_read)
		BIO_set_mem_eof_return(b, -1);
	return b;
}

/* OpenSSL's memory BIO keeps its buffer at the largest size it ever held (one 60 KB
 * response leaves 60 KB behind for the connection's life), so an empty one that has a
 * buffer is swapped for a new one: a few small allocations per read or write, against
 * kilobytes held by every idle connection. */
static void trim_bio(struct tls_conn *c, int is_read)
{
	BIO *old = is_read ? c->rbio : c->wbio;
	BUF_MEM *m = NULL;
	if (BIO_ctrl_pending(old) != 0 || BIO_get_mem_ptr(old, &m) <= 0 || !m || !m->max)
		return;
	BIO *b = mem_bio(is_read);
	if (!b)
		return; /* keep the old one: only memory is lost */
	if (is_read) {
		SSL_set0_rbio(c->ssl, b); /* frees the old one */
		c->rbio = b;
	} else {
		SSL_set0_wbio(c->ssl, b);
		c->wbio = b;
	}
}

/* Moves whatever OpenSSL produced into one uv_write. */
static int flush(struct tls_conn *c)
{
	size_t pending = BIO_ctrl_pending(c->wbio);
	if (pending == 0 || c->handles_closing)
		return 0;
	struct write_req *w = malloc(sizeof(*w) + pending);
	if (!w)
		return UV_ENOMEM;
	int n = BIO_read(c->wbio, w->data, (int)pending);
	if (n <= 0) {
		free(w);
		return UV_EIO;
	}
	w->conn = c;
	uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
	int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	if (rc) {
		free(w);
		return rc;
	}
	trim_bio(c, 0);
	return 0;
}

static void get_name_entry(X509_NAME *name, int nid, char *out, size_t outlen, int *ambiguous)
{
	out[0] = '\0';
	int idx = X509_NAME_get_index_by_NID(name, nid, -1);
	if (idx < 0)
		return;
	if (X509_NAME_get_index_by_NID(name, nid, idx) >= 0)
		*ambiguous = 1; /* two CNs: which one is the site? refuse to guess */
	ASN1_STRING *as = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	unsigned char *utf8 = NULL;
	int n = ASN1_STRING_to_UTF8(&utf8, as);
	if (n < 0)
		return;
	if ((size_t)n < outlen) {
		int ok = 1;
		for (int i = 0; i < n; i++)
			if (utf8[i] < 0x20 || utf8[i] == 0x7f)
				ok = 0;
		if (ok) {
			memcpy(out, utf8, (size_t)n);
			out[n] = '\0';
		}
	}
	OPENSSL_free(utf8);
}

static void serial_hex(X509 *x, char *out, size_t n)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *h = bn ? BN_bn2hex(bn) : NULL;
	snprintf(out, n, "%s", h && strlen(h) < n ? h : "");
	OPENSSL_free(h);
	BN_free(bn);
}

/* Runs inside OpenSSL's chain verification: remember which certificate failed, so the
 * refusal names it. Never changes the verdict. */
static int on_verify(int ok, X509_STORE_CTX *xs)
{
	if (ok)
		return ok;
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	if (c && leaf && !c->refused_cn[0]) {
		int ambiguous = 0;
		char cn[128];
		get_name_entry(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn),
		               &ambiguous);
		token(cn[0] ? cn : "-", c->refused_cn, sizeof(c->refused_cn));
		serial_hex(leaf, c->refused_serial, sizeof(c->refused_serial));
	}
	return ok;
}

static void read_identity(struct tls_conn *c)
{
	memset(&c->id, 0, sizeof(c->id));
	X509 *peer = SSL_get0_peer_certificate(c->ssl);
	if (!peer || SSL_get_verify_result(c->ssl) != X509_V_OK)
		return;
	X509_NAME *name = X509_get_subject_name(peer);
	int ambiguous = 0;
	c->id.verified = 1;
	serial_hex(peer, c->id.serial, sizeof(c->id.serial));
	const ASN1_INTEGER *sn = X509_get0_serialNumber(peer);
	int ok = 0;
	c->issuer_hash = X509_NAME_hash_ex(X509_get_issuer_name(peer), NULL, NULL, &ok);
	if (ok && ASN1_STRING_length(sn) <= (int)sizeof(c->serial_der)) {
		c->serial_len = ASN1_STRING_length(sn);
		memcpy(c->serial_der, ASN1_STRING_get0_data(sn), (size_t)c->serial_len);
	}
	get_name_entry(name, NID_commonName, c->id.site, sizeof(c->id.site), &ambiguous);
	get_name_entry(name, NID_organizationName, c->id.org, sizeof(c->id.org), &ambiguous);
	get_name_entry(name, NID_localityName, c->id.city, sizeof(c->id.city), &ambiguous);
	/* The agent is the subject's UID (ca.c): one certificate per venue machine. */
	int has_uid = X509_NAME_get_index_by_NID(name, NID_userId, -1) >= 0;
	get_name_entry(name, NID_userId, c->id.agent, sizeof(c->id.agent), &ambiguous);
	if (!has_uid)
		snprintf(c->id.agent, sizeof(c->id.agent), "%s", c->id.site);
	if (ambiguous || !vw_conf_id_valid(c->id.site) || !vw_conf_id_valid(c->id.agent)) {
		/* verified but names no site (or a UID that is no agent id): ingest refuses it */
		c->id.site[0] = '\0';
		c->id.agent[0] = '\0';
	}
}

/* The reasons are few (verify_reason's, OpenSSL's reason strings): a linear look-up over at
 * most TLS_STATS_REASONS, on a refusal only. The last slot is "other", so the table (and
 * the metric's label set) stays bounded whatever a client makes OpenSSL say. */
static void count_refusal(struct tls_stats *st, const char *reason)
{
	st->handshakes_failed++;
	size_t i;
	for (i = 0; i < st->nreasons; i++)
		if (strcmp(st->reason[i], reason) == 0)
			break;
	if (i == st->nreasons) {
		if (st->nreasons == TLS_STATS_REASONS - 1) {
			snprintf(st->reason[i], sizeof(st->reason[i]), "other");
			st->nreasons++;
		} else if (st->nreasons < TLS_STATS_REASONS - 1) {
			snprintf(st->reason[i], sizeof(st->reason[i]), "%.47s", reason);
			st->nreasons++;
		} else {
			i = TLS_STATS_REASONS - 1; /* "other" */
		}
	}
	st->refused[i]++;
}

const struct tls_stats *tls_server_stats(const struct tls_server *s)
{
	return &s->stats;
}

static void refuse(struct tls_conn *c, int ssl_err)
{
	struct tls_server *s = c->srv;
	const char *reason;
	char tok[96];
	long vr = SSL_get_verify_result(c->ssl);
	if (vr != X509_V_OK) {
		reason = verify_reason(vr);
	} else if (ssl_err == SSL_ERROR_SSL && ERR_peek_last_error()) {
		token(ERR_reason_error_string(ERR_peek_last_error()), tok, sizeof(tok));
		reason = tok;
	} else {
		reason = "handshake_failed";
	}
	ERR_clear_error();
	count_refusal(&s->stats, reason);
	unsigned suppressed = 0;
	if (vw_log_limit_ok(&s->refused_log, vw_mono_ms(), &suppressed))
		log_warn("event=tls_refused peer=%s reason=%s cert_cn=%s serial=%s suppressed=%u",
		         c->peer, reason, c->refused_cn[0] ? c->refused_cn : "-",
		         c->refused_serial[0] ? c->refused_serial : "-", suppressed);
	flush(c); /* the alert */
	linger_close(c);
}

/* What an open connection need not hold between reads: the read BIO's buffer, and
 * OpenSSL's own record buffers, which SSL_MODE_RELEASE_BUFFERS alone leaves allocated
 * after the handshake's last record (SSL_free_buffers refuses while a record is partly
 * read or written, so nothing pending is lost). */
static void conn_trim(struct tls_conn *c)
{
	if (c->state != C_OPEN || c->handles_closing)
		return;
	trim_bio(c, 1);
	SSL_free_buffers(c->ssl);
}

/* OpenSSL refused a record (bad MAC, a plaintext record, a KeyUpdate flood, ...): it has
 * written the alert RFC 8446 names into the write BIO; send it, then close. */
static void read_fail(struct tls_conn *c, int ssl_err)
{
	unsigned long e = ERR_peek_last_error();
	char reason[96];
	token(e ? ERR_reason_error_string(e) : "-", reason, sizeof(reason));
	log_debug("event=tls_read_failed peer=%s ssl_error=%d reason=%s", c->peer, ssl_err, reason);
	ERR_clear_error();
	flush(c);
	if (c->opened && !c->upper_gone) {
		c->upper_gone = 1;
		c->srv->cb.on_close(c);
	}
	linger_close(c);
}

/* Counts the peer's KeyUpdates for the limit in deliver (OpenSSL's message callback sees
 * every handshake message once the record layer has opened it). */
static void on_message(int write_p, int version, int content_type, const void *buf, size_t len,
                       SSL *ssl, void *arg)
{
	(void)version;
	(void)arg;
	struct tls_conn *c = SSL_get_app_data(ssl);
	if (c && !write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
	    ((const unsigned char *)buf)[0] == SSL3_MT_KEY_UPDATE)
		c->key_updates++;
}

/* Decrypts whatever whole records are in the read BIO and hands the plaintext up. KeyUpdate
 * and other post-handshake messages are OpenSSL's: it answers them (its answer goes out
 * with the next flush) and limits how many may come without data. */
static void deliver(struct tls_conn *c)
{
	struct tls_server *s = c->srv;
	while (c->state == C_OPEN && !c->upper_gone) {
		ERR_clear_error();
		int n = SSL_read(c->ssl, s->plainbuf, (int)sizeof(s->plainbuf));
		if (c->key_updates > MAX_KEY_UPDATES) {
			log_debug(
			    "event=tls_read_failed peer=%s reason=too_many_key_updates max=%d",
			    c->peer, MAX_KEY_UPDATES);
			ERR_clear_error();
			if (!c->upper_gone) {
				c->upper_gone = 1;
				c->srv->cb.on_close(c);
			}
			tls_conn_close(c); /* close_notify: OpenSSL has no alert to send for this */
			return;
		}
		if (n > 0) {
			c->key_updates = 0;
			s->cb.on_data(c, s->plainbuf, (size_t)n);
			continue;
		}
		int e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			break;
		if (e == SSL_ERROR_ZERO_RETURN) {
			log_debug("event=tls_close_notify peer=%s", c->peer);
			ERR_clear_error();
			conn_fail(c);
			return;
		}
		read_fail(c, e);
		return;
	}
}

static void handshake(struct tls_conn *c)
{
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	if (r != 1) {
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			flush(c);
			return;
		}
		refuse(c, e);
		return;
	}
	c->state = C_OPEN;
	uv_timer_stop(&c->timer);
	c->srv->stats.handshakes_ok++;
	read_identity(c);
	log_debug("event=tls_open peer=%s version=%s resumed=%d verified=%d site=%s", c->peer,
	          SSL_get_version(c->ssl), SSL_session_reused(c->ssl), c->id.verified,
	          c->id.site[0] ? c->id.site : "-");
	c->opened = 1;
	c->srv->cb.on_open(c);
	/* A TLS 1.3 client may send its request right behind its Finished. */
	deliver(c);
}

/* --- handshake slices ------------------------------------------------------------------ */

static int slice_left(struct tls_server *s)
{
	uint64_t now = uv_now(s->loop);
	if (now != s->hs_turn) {
		s->hs_turn = now;
		s->hs_spent_ns = 0;
	}
	return s->hs_spent_ns < HANDSHAKE_SLICE_NS;
}

static void run_handshake(struct tls_conn *c)
{
	uint64_t t0 = uv_hrtime();
	handshake(c);
	if (c->state != C_CLOSING && !c->handles_closing && flush(c) != 0)
		conn_fail(c);
	conn_trim(c);
	c->srv->hs_spent_ns += uv_hrtime() - t0;
}

static void on_hs_idle(uv_idle_t *h)
{
	struct tls_server *s = h->data;
	if (s->hs_head)
		s->hs_q_turns++;
	while (s->hs_head && slice_left(s)) {
		struct tls_conn *c = s->hs_head;
		s->hs_head = c->hs_next;
		if (!s->hs_head)
			s->hs_tail = NULL;
		c->hs_queued = 0;
		c->hs_next = NULL;
		if (c->state == C_HANDSHAKE && !c->handles_closing)
			run_handshake(c);
	}
	if (s->hs_head)
		return;
	uv_idle_stop(h);
	log_debug("event=tls_handshake_queue_drained handshakes=%u turns=%u reads_served=%u",
	          s->hs_q_handshakes, s->hs_q_turns, s->hs_q_reads);
	s->hs_q_handshakes = s->hs_q_turns = s->hs_q_reads = 0;
}

/* New handshake bytes are in the read BIO: run the handshake now if this turn of the loop
 * has handshake time left and nobody is queued before it, else queue it. */
static void handshake_step(struct tls_conn *c)
{
	struct tls_server *s = c->srv;
	if (c->hs_queued)
		return; /* runs with everything that has arrived when its turn comes */
	if (!s->hs_head && slice_left(s)) {
		run_handshake(c);
		return;
	}
	if (!s->hs_idle_open || uv_is_closing((uv_handle_t *)&s->hs_idle)) {
		run_handshake(c); /* not listening any more: no queue */
		return;
	}
	c->hs_queued = 1;
	s->hs_q_handshakes++;
	if (s->hs_tail) {
		s->hs_tail->hs_next = c;
	} else {
		s->hs_head = c;
		log_debug("event=tls_handshake_queue_started spent_us=%llu",
		          (unsigned long long)(s->hs_spent_ns / 1000));
	}
	s->hs_tail = c;
	uv_idle_start(&s->hs_idle, on_hs_idle);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct tls_conn *c = h->data;
	(void)hint;
	*buf = uv_buf_init(c->srv->readbuf, sizeof(c->srv->readbuf));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct tls_conn *c = st->data;
	struct tls_server *s = c->srv;
	if (nread == 0)
		return;
	if (nread < 0) {
		if (c->state == C_HANDSHAKE)
			log_debug("event=tls_eof peer=%s during=handshake", c->peer);
		if (c->state == C_CLOSING)
			close_handles(c);
		else
			conn_fail(c);
		return;
	}
	if (c->state == C_CLOSING)
		return; /* lingering: discard */
	if (BIO_write(c->rbio, buf->base, (int)nread) != (int)nread) {
		conn_fail(c);
		return;
	}
	if (c->state == C_HANDSHAKE) {
		handshake_step(c);
		return;
	}
	if (s->hs_head)
		s->hs_q_reads++; /* an open connection served while handshakes wait */
	deliver(c);
	if (c->state != C_CLOSING && !c->handles_closing && flush(c) != 0)
		conn_fail(c);
	conn_trim(c);
}

static void on_timer(uv_timer_t *t)
{
	struct tls_conn *c = t->data;
	switch (c->state) {
	case C_HANDSHAKE:
		log_debug("event=tls_timeout peer=%s during=handshake", c->peer);
		close_handles(c);
		break;
	case C_CLOSING:
		close_handles(c);
		break;
	case C_OPEN:
		if (!c->upper_gone)
			c->srv->cb.on_timeout(c);
		break;
	}
}

/* --- accept -------------------------------------------------------------------------- */

static void on_refused_closed(uv_handle_t *h)
{
	free(h);
}

static void peer_name(uv_tcp_t *tcp, char *out, size_t n)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			uv_ip6_name(a, ip, sizeof(ip));
			port = ntohs(a->sin6_port);
			snprintf(out, n, "[%s]:%d", ip, port);
			return;
		}
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		uv_ip4_name(a, ip, sizeof(ip));
		port = ntohs(a->sin_port);
	}
	snprintf(out, n, "%s:%d", ip, port);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct tls_server *s = listener->data;
	if (status < 0) {
		log_warn("event=accept_failed error=%s", uv_err_name(status));
		return;
	}
	if (s->nconns >= s->max_conns) {
		/* Accept and close at once: leaving it in the backlog would only delay the same
		 * answer and keep the listener readable. */
		uv_tcp_t *t = malloc(sizeof(*t));
		if (!t || uv_tcp_init(s->loop, t) != 0) {
			free(t);
			return;
		}
		uv_accept(listener, (uv_stream_t *)t);
		uv_close((uv_handle_t *)t, on_refused_closed);
		s->stats.refused_max_connections++;
		unsigned suppressed = 0;
		if (vw_log_limit_ok(&s->cap_log, vw_mono_ms(), &suppressed))
			log_warn("event=conn_refused reason=max_connections max=%zu suppressed=%u",
			         s->max_conns, suppressed);
		return;
	}
	struct tls_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->srv = s;
	c->tcp.data = c->timer.data = c;
	if (uv_tcp_init(s->loop, &c->tcp) != 0) {
		free(c);
		return;
	}
	uv_timer_init(s->loop, &c->timer);
	c->handles_open = 2;
	s->nconns++;
	s->stats.accepted++;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0)
		goto fail;
	uv_tcp_nodelay(&c->tcp, 1); /* each response is one write; don't wait for ACKs */
	peer_name(&c->tcp, c->peer, sizeof(c->peer));
	c->accepted_ms = vw_mono_ms();
	c->ssl = SSL_new(s->ctx);
	if (!c->ssl)
		goto fail;
	c->rbio = mem_bio(1);
	c->wbio = mem_bio(0);
	if (!c->rbio || !c->wbio) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		goto fail;
	}
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_app_data(c->ssl, c);
	SSL_set_accept_state(c->ssl);
	c->state = C_HANDSHAKE;
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
		goto fail;
	uv_timer_start(&c->timer, on_timer, s->handshake_timeout_ms, 0);
	return;
fail:
	ERR_clear_error();
	close_handles(c);
}

/* --- server ---------------------------------------------------------------------------- */

static int ctx_fail(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long e = ERR_peek_last_error();
	char detail[256] = "";
	if (e)
		ERR_error_string_n(e, detail, sizeof(detail));
	snprintf(err, errlen, "%s %s: %s", what, file, detail[0] ? detail : "failed");
	ERR_clear_error();
	return -EINVAL;
}

/* Reads every CRL in path into the context's store and turns on the check for every
 * client certificate. -ENOENT when there is no file (the caller decides), -EINVAL when it
 * is there but unreadable: then no client could be checked, so none gets a context. */
static int load_crls(SSL_CTX *ctx, const char *path, STACK_OF(X509_CRL) * *out, char *err,
                     size_t errlen)
{
	FILE *fp = fopen(path, "r");
	if (!fp) {
		int e = errno;
		snprintf(err, errlen, "cannot read CRL %s: %s", path, strerror(e));
		return e == ENOENT ? -ENOENT : -EINVAL;
	}
	STACK_OF(X509_CRL) *sk = sk_X509_CRL_new_null();
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509_CRL *crl;
	int rc = sk ? 0 : -ENOMEM;
	while (!rc && (crl = PEM_read_X509_CRL(fp, NULL, NULL, NULL)) != NULL) {
		if (!X509_STORE_add_crl(store, crl) || !sk_X509_CRL_push(sk, crl)) {
			X509_CRL_free(crl);
			rc = -EINVAL;
		}
	}
	unsigned long e = ERR_peek_last_error();
	/* The loop ends at "no start line" past the last CRL; anything else is damage. */
	if (!rc && (sk_X509_CRL_num(sk) == 0 || (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM &&
	                                                ERR_GET_REASON(e) == PEM_R_NO_START_LINE))))
		rc = -EINVAL;
	fclose(fp);
	if (rc) {
		ctx_fail(err, errlen, "cannot load CRL", path);
		sk_X509_CRL_pop_free(sk, X509_CRL_free);
		return rc;
	}
	ERR_clear_error();
	X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	*out = sk;
	return 0;
}

static int make_ctx(const struct tls_server_opts *o, SSL_CTX **out, STACK_OF(X509_CRL) * *crls,
                    char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int rc = -ENOMEM;
	if (!ctx) {
		snprintf(err, errlen, "SSL_CTX_new failed");
		return rc;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* TLS 1.2: forward-secret AEAD suites only (Mozilla "intermediate"); TLS 1.3's
	 * defaults are all modern. Renegotiation is a DoS lever we have no use for. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	                             SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Idle connections hold no record buffers (see also conn_trim). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (!SSL_CTX_set_cipher_list(ctx,
	                             "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	                             "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	                             "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305") ||
	    !SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384")) {
		rc = ctx_fail(err, errlen, "cipher setup", "");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
		rc = ctx_fail(err, errlen, "cannot load certificate", o->cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		rc = ctx_fail(err, errlen, "cannot load key (or it does not match the certificate)",
		              o->key_file);
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
		rc = ctx_fail(err, errlen, "cannot load CA", o->ca_file);
		goto fail;
	}
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
	if (!names) {
		rc = ctx_fail(err, errlen, "cannot read CA names from", o->ca_file);
		goto fail;
	}
	SSL_CTX_set_client_CA_list(ctx, names);
	/* Ask for a certificate but let clients without one in: people come with bearer
	 * tokens and an enrolling agent has no certificate yet; the API refuses the agent
	 * paths without one. A certificate that is presented must verify (CA, validity,
	 * CRL), or the handshake fails. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, on_verify);
	SSL_CTX_set_verify_depth(ctx, 2);
	/* Resumed sessions keep the verified client identity; OpenSSL refuses to resume a
	 * verified session without a context id. */
	static const unsigned char sid_ctx[] = "venuewatch";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	/* Resumption by stateless tickets only (SSL_OP_NO_TICKET stays off): the session,
	 * peer certificate included, travels encrypted under the context's ticket key, so the
	 * server keeps no cache. OpenSSL's default cache would hold up to 20,480 sessions
	 * (≈ 5 KB each with the peer certificate) long after their connections closed. One
	 * ticket per handshake: an agent holds one connection. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_msg_callback(ctx, on_message);
	*crls = NULL;
	if (o->crl_file) {
		rc = load_crls(ctx, o->crl_file, crls, err, errlen);
		if (rc == -ENOENT) {
			/* A pki directory from before revocation existed: nothing was revoked
			 * yet, and 'revoke' writes the file. */
			log_warn("event=crl_missing path=%s hint=revoke_or_ca_init_writes_it",
			         o->crl_file);
		} else if (rc) {
			goto fail;
		}
	}
	*out = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return rc;
}

static void free_server(struct tls_server *s)
{
	SSL_CTX_free(s->ctx);
	sk_X509_CRL_pop_free(s->crls, X509_CRL_free);
	free(s->cert_file);
	free(s->key_file);
	free(s->ca_file);
	free(s->crl_file);
	free(s);
}

/* By issuer and serial, as recorded at the handshake. */
static int revoked_by(STACK_OF(X509_CRL) * crls, const struct tls_conn *c)
{
	ASN1_INTEGER *sn = ASN1_INTEGER_new();
	int found = 0;
	if (!sn || !ASN1_STRING_set(sn, c->serial_der, c->serial_len)) {
		ASN1_INTEGER_free(sn);
		return 1; /* cannot tell: fail closed */
	}
	for (int i = 0; i < sk_X509_CRL_num(crls) && !found; i++) {
		X509_CRL *crl = sk_X509_CRL_value(crls, i);
		X509_REVOKED *rev;
		int ok = 0;
		unsigned long h = X509_NAME_hash_ex(X509_CRL_get_issuer(crl), NULL, NULL, &ok);
		found = ok && h == c->issuer_hash && X509_CRL_get0_by_serial(crl, &rev, sn) == 1;
	}
	ASN1_INTEGER_free(sn);
	return found;
}

int tls_server_reload(struct tls_server *s, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	STACK_OF(X509_CRL) * crls;
	int rc = make_ctx(&s->opts, &ctx, &crls, err, errlen);
	if (rc)
		return rc;
	if (s->crls && !crls) {
		/* Had a CRL, now none: never quietly stop checking. */
		SSL_CTX_free(ctx);
		snprintf(err, errlen, "CRL %s has disappeared", s->crl_file);
		return -ENOENT;
	}
	/* Connections hold their own reference to the context they started with. A new
	 * context also has new session-ticket keys, so nobody resumes past a revocation. */
	SSL_CTX_free(s->ctx);
	sk_X509_CRL_pop_free(s->crls, X509_CRL_free);
	s->ctx = ctx;
	s->crls = crls;
	int closed = 0;
	for (struct tls_conn *c = s->conns; c; c = c->next) {
		if (c->state != C_OPEN || !c->id.verified || !crls || !revoked_by(crls, c))
			continue;
		log_warn("event=tls_revoked_closed peer=%s site=%s serial=%s", c->peer,
		         c->id.site[0] ? c->id.site : "-", c->id.serial[0] ? c->id.serial : "-");
		closed++;
		conn_fail(c);
	}
	log_info("event=tls_reloaded crls=%d revoked_closed=%d", crls ? sk_X509_CRL_num(crls) : 0,
	         closed);
	return 0;
}

static void on_crl_changed(uv_fs_poll_t *h, int status, const uv_stat_t *prev,
                           const uv_stat_t *curr)
{
	struct tls_server *s = h->data;
	(void)prev;
	(void)curr;
	char err[512];
	if (status < 0 && status != UV_ENOENT)
		return;
	log_info("event=crl_changed path=%s", s->crl_file);
	if (tls_server_reload(s, err, sizeof(err)))
		log_error("event=tls_reload_failed error=\"%s\" kept=previous", err);
}

int tls_server_create(uv_loop_t *loop, const struct tls_server_opts *opts,
                      const struct tls_callbacks *cb, void *cb_data, struct tls_server **out,
                      char *err, size_t errlen)
{
	struct tls_server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = make_ctx(opts, &s->ctx, &s->crls, err, errlen);
	if (rc) {
		free(s);
		return rc;
	}
	s->opts = *opts;
	s->cert_file = strdup(opts->cert_file);
	s->key_file = strdup(opts->key_file);
	s->ca_file = strdup(opts->ca_file);
	s->crl_file = opts->crl_file ? strdup(opts->crl_file) : NULL;
	s->opts.cert_file = s->cert_file;
	s->opts.key_file = s->key_file;
	s->opts.ca_file = s->ca_file;
	s->opts.crl_file = s->crl_file;
	if (!s->cert_file || !s->key_file || !s->ca_file || (opts->crl_file && !s->crl_file)) {
		free_server(s);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->loop = loop;
	s->cb = *cb;
	s->cb_data = cb_data;
	s->max_conns = opts->max_connections;
	s->handshake_timeout_ms = opts->handshake_timeout_ms;
	*out = s;
	return 0;
}

int tls_server_listen(struct tls_server *s, const char *host, int port, int *bound_port)
{
	struct sockaddr_storage ss;
	int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
	if (rc)
		rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
	if (rc)
		return rc;
	rc = uv_tcp_init(s->loop, &s->listener);
	if (rc)
		return rc;
	s->listener.data = s;
	s->listener_open = 1;
	/* 511: Linux caps the backlog at somaxconn anyway; a burst of agents reconnecting
	 * after a collector restart should queue, not be refused. */
	if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0)) != 0 ||
	    (rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection)) != 0)
		return rc;
	struct sockaddr_storage bound;
	int len = sizeof(bound);
	rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
	if (rc)
		return rc;
	*bound_port = bound.ss_family == AF_INET6
	                  ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
	                  : ntohs(((struct sockaddr_in *)&bound)->sin_port);
	s->listening = 1;
	if (!s->hs_idle_open && uv_idle_init(s->loop, &s->hs_idle) == 0) {
		s->hs_idle.data = s;
		s->hs_idle_open = 1;
	}
	if (s->crl_file && s->opts.crl_poll_ms && !s->crl_poll_open &&
	    uv_fs_poll_init(s->loop, &s->crl_poll) == 0) {
		s->crl_poll.data = s;
		s->crl_poll_open = 1;
		uv_fs_poll_start(&s->crl_poll, on_crl_changed, s->crl_file,
		                 (unsigned)s->opts.crl_poll_ms);
	}
	return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct tls_server *s = h->data;
	if (h == (uv_handle_t *)&s->listener)
		s->listener_open = 0;
	else if (h == (uv_handle_t *)&s->hs_idle)
		s->hs_idle_open = 0;
	else
		s->crl_poll_open = 0;
	if (s->destroy_pending && !s->listener_open && !s->crl_poll_open && !s->hs_idle_open)
		free_server(s);
}

void tls_server_stop(struct tls_server *s)
{
	if (!s)
		return;
	if (s->crl_poll_open && !uv_is_closing((uv_handle_t *)&s->crl_poll))
		uv_close((uv_handle_t *)&s->crl_poll, on_listener_closed);
	if (s->hs_idle_open && !uv_is_closing((uv_handle_t *)&s->hs_idle)) {
		/* Handshakes still queued are new connections, not requests in flight. */
		for (struct tls_conn *c = s->hs_head; c; c = c->hs_next)
			close_handles(c);
		uv_close((uv_handle_t *)&s->hs_idle, on_listener_closed);
	}
	if (!s->listener_open || uv_is_closing((uv_handle_t *)&s->listener))
		return;
	s->listening = 0;
	uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}

void tls_server_destroy(struct tls_server *s)
{
	if (!s)
		return;
	if (s->listener_open || s->crl_poll_open || s->hs_idle_open) {
		tls_server_stop(s);
		s->destroy_pending = 1; /* freed by the last close callback */
		return;
	}
	free_server(s);
}

size_t tls_server_connections(const struct tls_server *s)
{
	return s->nconns;
}

void tls_server_set_limits(struct tls_server *s, size_t max_connections,
                           uint64_t handshake_timeout_ms)
{
	s->max_conns = max_connections;
	s->handshake_timeout_ms = handshake_timeout_ms;
}

/* --- connection API -------------------------------------------------------------------- */

void *tls_conn_cb_data(const struct tls_conn *c)
{
	return c->srv->cb_data;
}
void tls_conn_set_data(struct tls_conn *c, void *data)
{
	c->data = data;
}
void *tls_conn_data(const struct tls_conn *c)
{
	return c->data;
}
const struct tls_identity *tls_conn_identity(const struct tls_conn *c)
{
	return &c->id;
}
const char *tls_conn_peer(const struct tls_conn *c)
{
	return c->peer;
}
int64_t tls_conn_accepted_ms(const struct tls_conn *c)
{
	return c->accepted_ms;
}

int tls_conn_write(struct tls_conn *c, const void *data, size_t len)
{
	if (c->state != C_OPEN || c->handles_closing)
		return UV_EPIPE;
	const char *p = data;
	while (len) {
		int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
		ERR_clear_error();
		int n = SSL_write(c->ssl, p, chunk);
		if (n <= 0) {
			ERR_clear_error();
			return UV_EIO;
		}
		p += n;
		len -= (size_t)n;
	}
	return flush(c);
}

size_t tls_conn_write_queue(const struct tls_conn *c)
{
	return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

int tls_conn_set_send_buffer(struct tls_conn *c, int bytes)
{
	int v = bytes;
	return uv_send_buffer_size((uv_handle_t *)&c->tcp, &v);
}

void tls_conn_pause(struct tls_conn *c)
{
	if (c->paused || c->state != C_OPEN)
		return;
	c->paused = 1;
	uv_read_stop((uv_stream_t *)&c->tcp);
}

void tls_conn_resume(struct tls_conn *c)
{
	if (!c->paused || c->state != C_OPEN)
		return;
	c->paused = 0;
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
		conn_fail(c);
}

void tls_conn_set_timer(struct tls_conn *c, uint64_t ms)
{
	if (c->state != C_OPEN || c->handles_closing)
		return;
	if (ms)
		uv_timer_start(&c->timer, on_timer, ms, 0);
	else
		uv_timer_stop(&c->timer);
}

void tls_conn_close(struct tls_conn *c)
{
	if (c->state == C_CLOSING || c->handles_closing)
		return;
	c->upper_gone = 1;
	if (c->state == C_OPEN) {
		ERR_clear_error();
		SSL_shutdown(c->ssl); /* queues close_notify */
		ERR_clear_error();
		flush(c);
	}
	linger_close(c);
}
