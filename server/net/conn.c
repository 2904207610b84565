#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vtime.h"

/* Plaintext waiting to be parsed. While a request is with its handler the socket is not
 * read, so this holds at most what one socket read decrypted: 1 MiB is a generous cap. */
#define IN_MAX (1u << 20)
/* A client that pipelines requests without reading the answers would make us queue them
 * without bound: past this much unsent output after a response, its next request is not
 * parsed (nor its socket read) until the queue has drained below it, and a streamed body
 * (conn_body_*) waits the same way. 256 KiB keeps a fast reader's pipe full (several
 * round trips of a LAN's window) while 10,000 stalled readers cannot hold more than the
 * server-wide budget below. */
#define PIPELINE_PAUSE (256u << 10)
/* All connections' unsent output together, when conn_limits.out_budget is 0. Past it, a
 * response larger than OUT_SMALL is refused (503) and a streamed body ends its
 * connection, so memory does not grow with the number of clients that stop reading. */
#define OUT_BUDGET_DEFAULT (64u << 20)
/* Error answers and API replies this small always go out: refusing them saves nothing. */
#define OUT_SMALL (16u << 10)
/* An event-stream client sends nothing after its request; a few reconnect-worth of bytes
 * are tolerated and dropped, more means it is not a stream client. */
#define STREAM_IN_MAX (64u << 10)
/* The kernel's share of a stream's backlog (Linux doubles it): small, so that a peer that
 * stops reading shows in our own bounded queue within a few events, not megabytes later. */
#define STREAM_SNDBUF (16u << 10)

enum conn_state {
	S_IDLE,       /* between requests (or before the first) */
	S_HEAD,       /* a request has begun; its head is arriving */
	S_BODY,       /* head done, body arriving */
	S_DISPATCHED, /* complete; the handler owes conn_respond */
	S_STREAM      /* answered with a stream head; the handler writes to it */
};

struct conn {
	struct conn_server *srv;
	struct tls_conn *tls;   /* NULL once the socket is gone or being closed */
	struct http_reader *rd; /* NULL between requests: see reader_release */
	struct vw_buf in;
	size_t in_off;
	enum conn_state state;
	int first;       /* no request answered yet: the head deadline counts from accept */
	int close_after; /* answer, then close (framing errors, draining) */
	int in_process;  /* inside process(): frees and re-entry wait for it to return */
	int64_t accepted_ms, start_ms, idle_ms;
	size_t budget;   /* bytes of srv->budget_used held by this request's body */
	size_t out_held; /* bytes of srv->out_used: this connection's unsent output, last seen */
	int wait_drain;  /* answered with a backlog: reading resumes when it drains */
	/* conn_body_*: the response's body still owed, and who waits for the queue to drain */
	int in_body;
	uint64_t body_left;
	conn_writable_cb body_wait;
	void *body_wait_ud;
	struct tls_identity id;
	char peer[64];
	/* S_STREAM */
	size_t stream_max, stream_in;
	conn_stream_end_cb stream_on_end;
	void *stream_ud;
	struct conn *prev, *next;
};

struct conn_server {
	struct conn_limits lim;
	conn_handler handler;
	void *ud;
	struct conn *head;
	size_t count;
	size_t budget_used;
	size_t out_used; /* unsent output of all connections (their out_held) */
	int draining, drained_called;
	uint64_t streams_dropped;
	void (*on_drained)(void *ud);
	void *drained_ud;
};

static void process(struct conn *c);
static void stream_abort(struct conn *c);

/* An idle keep-alive connection holds no parser and no input buffer: with 10,000 agents
 * connected and most of them idle, ~1 KiB each is 10 MiB, and creating them again for the
 * next request costs less than one TLS record. */
static void reader_release(struct conn *c)
{
	http_reader_destroy(c->rd);
	c->rd = NULL;
	vw_buf_free(&c->in);
	c->in_off = 0;
}

static void maybe_drained(struct conn_server *s)
{
	if (s->draining && s->count == 0 && !s->drained_called && s->on_drained) {
		s->drained_called = 1;
		s->on_drained(s->drained_ud);
	}
}

static void release_budget(struct conn *c)
{
	c->srv->budget_used -= c->budget;
	c->budget = 0;
}

static size_t out_budget(const struct conn_server *s)
{
	return s->lim.out_budget ? s->lim.out_budget : OUT_BUDGET_DEFAULT;
}

/* out_held follows the socket's write queue: after each write and each drain. */
static void out_account(struct conn *c)
{
	size_t now = c->tls ? tls_conn_write_queue(c->tls) : 0;
	c->srv->out_used = c->srv->out_used - c->out_held + now;
	c->out_held = now;
}

/* A body writer waiting for the queue to drain hears once: it is writable or gone. */
static void body_wake(struct conn *c)
{
	conn_writable_cb cb = c->body_wait;
	c->body_wait = NULL;
	if (cb)
		cb(c->body_wait_ud, c);
}

static void maybe_free(struct conn *c)
{
	if (c->tls || c->state == S_DISPATCHED || c->in_process)
		return;
	struct conn_server *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	release_budget(c);
	s->out_used -= c->out_held;
	reader_release(c);
	free(c);
	s->count--;
	maybe_drained(s);
}

static void close_conn(struct conn *c)
{
	if (c->tls) {
		tls_conn_set_data(c->tls, NULL);
		tls_conn_close(c->tls);
		c->tls = NULL;
	}
	out_account(c); /* tls_conn_close frees the queue: no longer ours to count */
	if (c->body_wait) {
		body_wake(c); /* last: the writer ends the body, which may free c */
		return;
	}
	maybe_free(c);
}

static int64_t deadline(const struct conn *c)
{
	const struct conn_limits *l = &c->srv->lim;
	switch (c->state) {
	case S_IDLE:
		return c->first ? c->accepted_ms + (int64_t)l->header_timeout_ms
		                : c->idle_ms + (int64_t)l->idle_timeout_ms;
	case S_HEAD: {
		/* Slow-loris: the head has header_timeout from its first byte (from accept for
		 * the first request), and the whole request its request_timeout. */
		int64_t h =
		    (c->first ? c->accepted_ms : c->start_ms) + (int64_t)l->header_timeout_ms;
		int64_t r = c->start_ms + (int64_t)l->request_timeout_ms;
		return h < r ? h : r;
	}
	case S_BODY:
		return c->start_ms + (int64_t)l->request_timeout_ms;
	case S_DISPATCHED:
		/* A body in pieces to a peer that stopped reading: idle_timeout without progress
		 * (idle_ms moves with every drain) ends it, so stalled readers cannot keep the
		 * output budget spent. Otherwise the handler has the request: no deadline. */
		return c->in_body ? c->idle_ms + (int64_t)l->idle_timeout_ms : 0;
	case S_STREAM: /* no deadline: the stream's writer keeps it alive with heartbeats */
		break;
	}
	return 0;
}

static void arm(struct conn *c)
{
	if (!c->tls)
		return;
	int64_t d = deadline(c);
	if (!d) {
		tls_conn_set_timer(c->tls, 0);
		return;
	}
	int64_t left = d - vw_mono_ms();
	tls_conn_set_timer(c->tls, left > 0 ? (uint64_t)left : 1);
}

/* --- tls callbacks ---------------------------------------------------------------------- */

static void on_open(struct tls_conn *t)
{
	struct conn_server *s = tls_conn_cb_data(t);
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		tls_conn_close(t);
		return;
	}
	c->srv = s;
	c->tls = t;
	c->first = 1;
	c->state = S_IDLE;
	c->accepted_ms = tls_conn_accepted_ms(t);
	c->id = *tls_conn_identity(t);
	snprintf(c->peer, sizeof(c->peer), "%s", tls_conn_peer(t));
	vw_buf_init(&c->in, IN_MAX);
	c->next = s->head;
	if (s->head)
		s->head->prev = c;
	s->head = c;
	s->count++;
	tls_conn_set_data(t, c);
	if (s->draining) {
		close_conn(c); /* finished its handshake after shutdown began */
		return;
	}
	arm(c);
}

static void on_data(struct tls_conn *t, const char *data, size_t len)
{
	struct conn *c = tls_conn_data(t);
	if (!c)
		return;
	if (c->state == S_STREAM) {
		c->stream_in += len;
		if (c->stream_in > STREAM_IN_MAX) {
			log_debug("event=stream_closed peer=%s reason=client_sent_data", c->peer);
			stream_abort(c);
		}
		return;
	}
	if (c->in_off == c->in.len) {
		vw_buf_reset(&c->in);
		c->in_off = 0;
	}
	if (!c->rd && !(c->rd = http_reader_create(c->srv->lim.max_header_bytes,
	                                           c->srv->lim.max_body_bytes))) {
		log_warn("event=conn_dropped peer=%s reason=out_of_memory", c->peer);
		close_conn(c);
		return;
	}
	if (vw_buf_append(&c->in, data, len)) {
		log_debug("event=conn_dropped peer=%s reason=input_overflow", c->peer);
		close_conn(c);
		return;
	}
	process(c);
}

/* The stream ends from outside the handler: tell it (once), then close. */
static void stream_abort(struct conn *c)
{
	conn_stream_end_cb cb = c->stream_on_end;
	c->stream_on_end = NULL;
	c->body_wait = NULL; /* on_end tells the stream's writer; a waiter is not woken */
	if (cb)
		cb(c->stream_ud, c);
	close_conn(c);
}

static void on_timeout(struct tls_conn *t)
{
	struct conn *c = tls_conn_data(t);
	if (!c)
		return;
	if (vw_mono_ms() < deadline(c)) {
		arm(c); /* the loop's clock ran a little ahead of ours */
		return;
	}
	switch (c->state) {
	case S_IDLE:
		log_debug("event=conn_timeout peer=%s phase=%s", c->peer,
		          c->first ? "first" : "idle");
		close_conn(c);
		break;
	case S_HEAD:
	case S_BODY:
		log_debug("event=conn_timeout peer=%s phase=%s", c->peer,
		          c->state == S_HEAD ? "head" : "body");
		c->state = S_DISPATCHED;
		c->close_after = 1;
		conn_respond_error(c, 408, "request timeout", NULL);
		break;
	case S_DISPATCHED:
		if (c->in_body) {
			log_debug("event=conn_timeout peer=%s phase=body_out queued=%zu", c->peer,
			          c->out_held);
			close_conn(c); /* wakes the body's writer, which ends it */
		}
		break;
	case S_STREAM:
		break;
	}
}

static void on_close(struct tls_conn *t)
{
	struct conn *c = tls_conn_data(t);
	if (!c)
		return;
	c->tls = NULL;
	out_account(c);
	if (c->state == S_STREAM) {
		log_debug("event=stream_closed peer=%s reason=peer_left", c->peer);
		stream_abort(c); /* tls is gone already: this only tells the writer and frees */
		return;
	}
	if (c->body_wait) {
		body_wake(c);
		return;
	}
	maybe_free(c);
}

static void on_drain(struct tls_conn *t)
{
	struct conn *c = tls_conn_data(t);
	if (!c)
		return;
	out_account(c);
	if (c->in_body || c->wait_drain) {
		c->idle_ms = vw_mono_ms(); /* the peer reads: progress */
		arm(c);
	}
	/* A stream's writer (conn_stream_wait) hears at a quarter of its queue bound. */
	if (c->out_held > (c->state == S_STREAM ? c->stream_max / 4 : PIPELINE_PAUSE))
		return;
	if (c->body_wait) {
		body_wake(c);
		return;
	}
	if (c->wait_drain) {
		c->wait_drain = 0;
		tls_conn_resume(c->tls);
		process(c);
	}
}

const struct tls_callbacks conn_tls_callbacks = {on_open, on_data, on_timeout, on_close, on_drain};

/* --- request flow ------------------------------------------------------------------------ */

static void fail_now(struct conn *c, int status, const char *why, const char *extra)
{
	log_debug("event=bad_request peer=%s status=%d reason=\"%s\"", c->peer, status, why);
	c->state = S_DISPATCHED;
	c->close_after = 1;
	struct vw_buf b;
	vw_buf_init(&b, 4096);
	vw_buf_puts(&b, "{\"error\":");
	vw_buf_json_str(&b, why);
	vw_buf_puts(&b, "}");
	conn_respond(c, status, extra, b.data, b.len);
	vw_buf_free(&b);
}

static void on_head(struct conn *c)
{
	const struct http_request *req = http_reader_request(c->rd);
	struct conn_server *s = c->srv;
	c->state = S_BODY;
	arm(c);
	size_t want = req->chunked ? s->lim.max_body_bytes : (size_t)req->content_length;
	if (s->budget_used + want > s->lim.body_budget) {
		/* Every body in memory at once must fit; past that, ask the client to come
		 * back rather than let memory grow with the number of uploaders. */
		fail_now(c, 503, "server busy", "Retry-After: 1\r\n");
		return;
	}
	s->budget_used += want;
	c->budget = want;
	if (req->expect_continue) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (tls_conn_write(c->tls, cont, sizeof(cont) - 1))
			close_conn(c);
	}
}

static void dispatch(struct conn *c)
{
	c->state = S_DISPATCHED;
	tls_conn_pause(c->tls);
	tls_conn_set_timer(c->tls, 0);
	c->start_ms = c->start_ms ? c->start_ms : vw_mono_ms();
	const struct http_request *req = http_reader_request(c->rd);
	/* With its pair event=request (at the answer): what was in flight when, e.g. at drain. */
	log_debug("event=request_start peer=%s method=%s path=%.128s bytes=%zu", c->peer,
	          req->method, req->path, req->body_len);
	c->srv->handler(c->srv->ud, c, req);
}

static void process(struct conn *c)
{
	if (c->in_process)
		return;
	c->in_process = 1;
	while (c->tls && c->state != S_DISPATCHED && !c->wait_drain && c->in_off < c->in.len) {
		enum http_event ev;
		size_t n =
		    http_reader_feed(c->rd, c->in.data + c->in_off, c->in.len - c->in_off, &ev);
		c->in_off += n;
		if (c->state == S_IDLE && http_reader_started(c->rd)) {
			c->state = S_HEAD;
			c->start_ms = vw_mono_ms();
			arm(c);
		}
		switch (ev) {
		case HTTP_NEED_MORE:
			break;
		case HTTP_GOT_HEADERS:
			on_head(c);
			continue;
		case HTTP_GOT_REQUEST:
			dispatch(c);
			continue;
		case HTTP_GOT_ERROR: {
			int status;
			const char *why = http_reader_error(c->rd, &status);
			fail_now(c, status, why, NULL);
			continue;
		}
		}
		break;
	}
	if (c->in_off == c->in.len) {
		if (c->state == S_IDLE && c->tls)
			reader_release(c); /* nothing pending: idle connections stay small */
		else if (c->in.cap > (4u << 10))
			vw_buf_free(&c->in);
		else
			vw_buf_reset(&c->in);
		c->in_off = 0;
	} else if (c->in_off > 0) {
		/* Keep only what is unparsed, so the cap bounds pending bytes, not history. */
		memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
		c->in.len -= c->in_off;
		c->in_off = 0;
	}
	c->in_process = 0;
	maybe_free(c);
}

static void finish(struct conn *c, int keep);

void conn_respond(struct conn *c, int status, const char *extra, const char *body, size_t len)
{
	conn_respond_typed(c, status, NULL, extra, body, len);
}

void conn_respond_typed(struct conn *c, int status, const char *content_type, const char *extra,
                        const char *body, size_t len)
{
	if (c->state != S_DISPATCHED || c->in_body)
		return; /* a handler bug: answered twice */
	struct conn_server *s = c->srv;
	const struct http_request *req = http_reader_request(c->rd);
	if (c->tls && len > OUT_SMALL && req->verb != HTTP_VERB_HEAD &&
	    s->out_used + len > out_budget(s)) {
		log_warn("event=response_refused peer=%s reason=output_budget bytes=%zu "
		         "queued_total=%zu",
		         c->peer, len, s->out_used);
		c->close_after = 1;
		conn_respond_error(c, 503, "server busy", NULL);
		return;
	}
	int keep = c->tls && !c->close_after && req->keep_alive && !s->draining;
	log_debug("event=request peer=%s method=%s path=%.128s status=%d ms=%lld", c->peer,
	          req->method[0] ? req->method : "-", req->path[0] ? req->path : "-", status,
	          (long long)(c->start_ms ? vw_mono_ms() - c->start_ms : 0));
	if (c->tls) {
		struct vw_buf out;
		vw_buf_init(&out, 0);
		/* 204 and 304 carry no Content-Length (RFC 9110 8.6: a 304's would describe the
		 * representation, not this empty message) and no body. */
		int bodiless = status == 204 || status == 304;
		if (bodiless)
			len = 0;
		struct http_head h = {status, content_type, extra, bodiless ? -1 : (int64_t)len,
		                      keep};
		if (http_format_response_head(&out, &h, vw_now_ms()) == -EINVAL) {
			/* A handler bug (a CR or LF in its content type): never sent as given. */
			log_error("event=bad_response peer=%s path=%.128s reason=content_type",
			          c->peer, req->path);
			h = (struct http_head){500, NULL, NULL, 20, keep};
			body = "{\"error\":\"internal\"}";
			len = 20;
			http_format_response_head(&out, &h, vw_now_ms());
		}
		/* HEAD: the head a GET would get, Content-Length included, and no body
		 * (RFC 9110 9.3.2). */
		if (req->verb != HTTP_VERB_HEAD)
			vw_buf_append(&out, body, len);
		if (out.err || tls_conn_write(c->tls, out.data, out.len))
			keep = 0;
		vw_buf_free(&out);
		out_account(c);
	}
	finish(c, keep);
}

/* The response is out (or abandoned): ready for the next request, or closed. A backlog
 * above PIPELINE_PAUSE keeps the socket unread and the next pipelined request unparsed
 * until on_drain. */
static void finish(struct conn *c, int keep)
{
	c->in_body = 0;
	release_budget(c);
	http_reader_reset(c->rd);
	c->state = S_IDLE;
	c->first = 0;
	c->start_ms = 0;
	c->idle_ms = vw_mono_ms();
	if (!keep) {
		close_conn(c);
		return;
	}
	arm(c);
	if (c->out_held > PIPELINE_PAUSE) {
		c->wait_drain = 1; /* stays paused since dispatch */
		return;
	}
	tls_conn_resume(c->tls);
	process(c); /* pipelined bytes already here; a no-op when called from inside process */
}

int conn_body_begin(struct conn *c, int status, const char *content_type, const char *extra,
                    uint64_t len)
{
	if (c->state != S_DISPATCHED || c->in_body)
		return -EINVAL;
	struct conn_server *s = c->srv;
	const struct http_request *req = http_reader_request(c->rd);
	if (!c->tls || req->verb == HTTP_VERB_HEAD || len == 0) {
		/* Nothing to stream: the head (Content-Length len) alone, or nobody to send to. */
		conn_respond_typed(c, status, content_type, extra, NULL, (size_t)len);
		return 1;
	}
	size_t first = len < PIPELINE_PAUSE ? (size_t)len : PIPELINE_PAUSE;
	if (s->out_used + first > out_budget(s)) {
		log_warn("event=response_refused peer=%s reason=output_budget bytes=%llu "
		         "queued_total=%zu",
		         c->peer, (unsigned long long)len, s->out_used);
		c->close_after = 1;
		conn_respond_error(c, 503, "server busy", NULL);
		return 1;
	}
	int keep = !c->close_after && req->keep_alive && !s->draining;
	log_debug("event=request peer=%s method=%s path=%.128s status=%d bytes=%llu ms=%lld",
	          c->peer, req->method, req->path, status, (unsigned long long)len,
	          (long long)(c->start_ms ? vw_mono_ms() - c->start_ms : 0));
	struct vw_buf out;
	vw_buf_init(&out, 0);
	struct http_head h = {status, content_type, extra, (int64_t)len, keep};
	int rc = http_format_response_head(&out, &h, vw_now_ms());
	if (!rc)
		rc = out.err ? -ENOMEM : tls_conn_write(c->tls, out.data, out.len);
	vw_buf_free(&out);
	if (rc) {
		finish(c, 0);
		return rc;
	}
	out_account(c);
	if (!keep)
		c->close_after = 1;
	c->in_body = 1;
	c->body_left = len;
	c->idle_ms = vw_mono_ms();
	arm(c);
	return 0;
}

int conn_body_write(struct conn *c, const void *data, size_t len)
{
	if (!c->in_body)
		return -EINVAL;
	if (!c->tls)
		return -ENOTCONN;
	if (len > c->body_left)
		return -EINVAL; /* more than the Content-Length announced */
	struct conn_server *s = c->srv;
	if (s->out_used + len > out_budget(s)) {
		/* The budget is all clients' backlog; this one adds to it while others stall.
		 * Its head promised a length, so the only honest end is the connection's. */
		log_warn("event=conn_dropped peer=%s reason=output_budget queued_total=%zu",
		         c->peer, s->out_used);
		c->close_after = 1;
		tls_conn_set_data(c->tls, NULL);
		tls_conn_close(c->tls);
		c->tls = NULL;
		out_account(c);
		return -ENOBUFS;
	}
	int rc = tls_conn_write(c->tls, data, len);
	out_account(c);
	if (rc)
		return rc;
	c->body_left -= len;
	return 0;
}

int conn_body_writable(const struct conn *c)
{
	if (!c->in_body || !c->tls)
		return -ENOTCONN;
	return c->out_held <= PIPELINE_PAUSE;
}

void conn_body_wait(struct conn *c, conn_writable_cb cb, void *ud)
{
	c->body_wait = cb;
	c->body_wait_ud = ud;
	if (!c->tls || c->out_held <= PIPELINE_PAUSE)
		body_wake(c);
}

void conn_body_end(struct conn *c)
{
	if (!c->in_body)
		return;
	c->body_wait = NULL;
	/* A body cut short breaks the framing its Content-Length promised: close. */
	int keep = c->tls && !c->close_after && c->body_left == 0 && !c->srv->draining;
	const struct http_request *req = http_reader_request(c->rd);
	if (c->body_left)
		log_debug("event=body_incomplete peer=%s path=%.128s missing=%llu", c->peer,
		          req->path, (unsigned long long)c->body_left);
	finish(c, keep);
}

int conn_stream_start(struct conn *c, int status, const char *content_type, const char *extra,
                      size_t queue_max, conn_stream_end_cb on_end, void *ud)
{
	if (c->state != S_DISPATCHED)
		return -EINVAL;
	const struct http_request *req = http_reader_request(c->rd);
	if (req->verb == HTTP_VERB_HEAD || !c->tls || c->srv->draining) {
		/* No body to stream: the head alone, and the connection ends with it (a stream's
		 * head has no Content-Length to frame a next response by). */
		int head = req->verb == HTTP_VERB_HEAD;
		c->close_after = 1;
		if (head || !c->tls)
			conn_respond_typed(c, status, content_type, extra, "", 0);
		else
			conn_respond_error(c, 503, "shutting down", NULL);
		return head ? 1 : -ENOTCONN;
	}
	struct vw_buf out;
	vw_buf_init(&out, 0);
	struct http_head h = {status, content_type, extra, -1, 0};
	int rc = http_format_response_head(&out, &h, vw_now_ms());
	if (!rc)
		rc = tls_conn_write(c->tls, out.data, out.len);
	vw_buf_free(&out);
	log_debug("event=request peer=%s method=%s path=%.128s status=%d stream=1", c->peer,
	          req->method, req->path, rc ? 500 : status);
	release_budget(c);
	reader_release(c); /* nothing more is parsed on this connection */
	c->state = S_STREAM;
	if (rc) {
		close_conn(c);
		return rc;
	}
	c->stream_max = queue_max;
	c->stream_in = 0;
	c->stream_on_end = on_end;
	c->stream_ud = ud;
	tls_conn_set_send_buffer(c->tls, STREAM_SNDBUF); /* best effort: a bound, not a need */
	tls_conn_set_timer(c->tls, 0);
	tls_conn_resume(c->tls); /* keep reading: a peer that leaves is seen at once */
	return 0;
}

int conn_stream_write(struct conn *c, const void *data, size_t len)
{
	if (c->state != S_STREAM || !c->tls)
		return -ENOTCONN;
	size_t queued = tls_conn_write_queue(c->tls);
	if (queued + len > c->stream_max) {
		c->srv->streams_dropped++;
		log_warn("event=stream_dropped peer=%s reason=slow queued=%zu dropped_total=%llu",
		         c->peer, queued, (unsigned long long)c->srv->streams_dropped);
		c->stream_on_end = NULL;
		c->body_wait = NULL;
		close_conn(c);
		return -ENOBUFS;
	}
	int rc = tls_conn_write(c->tls, data, len);
	if (rc) {
		log_debug("event=stream_closed peer=%s reason=write_failed error=%d", c->peer, rc);
		c->stream_on_end = NULL;
		c->body_wait = NULL;
		close_conn(c);
	}
	return rc;
}

size_t conn_stream_room(const struct conn *c)
{
	if (c->state != S_STREAM || !c->tls)
		return 0;
	size_t queued = tls_conn_write_queue(c->tls), half = c->stream_max / 2;
	return queued < half ? half - queued : 0;
}

void conn_stream_wait(struct conn *c, conn_writable_cb cb, void *ud)
{
	c->body_wait = cb;
	c->body_wait_ud = ud;
	if (c->tls && tls_conn_write_queue(c->tls) <= c->stream_max / 4)
		body_wake(c);
}

void conn_stream_end(struct conn *c)
{
	if (c->state != S_STREAM)
		return;
	c->stream_on_end = NULL;
	c->body_wait = NULL; /* the writer ends it: nobody waits */
	close_conn(c);
}

uint64_t conn_server_streams_dropped(const struct conn_server *s)
{
	return s->streams_dropped;
}

void conn_respond_error(struct conn *c, int status, const char *error, const char *detail)
{
	conn_respond_error_after(c, status, error, detail, 1);
}

void conn_respond_error_after(struct conn *c, int status, const char *error, const char *detail,
                              int retry_after_s)
{
	struct vw_buf b;
	vw_buf_init(&b, 0);
	vw_buf_puts(&b, "{\"error\":");
	vw_buf_json_str(&b, error);
	if (detail) {
		vw_buf_puts(&b, ",\"detail\":");
		vw_buf_json_str(&b, detail);
	}
	vw_buf_puts(&b, "}");
	if (b.err) {
		conn_respond(c, 500, NULL, "{\"error\":\"internal\"}", 20);
	} else {
		char ra[40];
		snprintf(ra, sizeof(ra), "Retry-After: %d\r\n",
		         retry_after_s > 0 ? retry_after_s : 1);
		conn_respond(c, status, status == 503 ? ra : NULL, b.data, b.len);
	}
	vw_buf_free(&b);
}

const struct tls_identity *conn_identity(const struct conn *c)
{
	return &c->id;
}
const char *conn_peer(const struct conn *c)
{
	return c->peer;
}

int conn_peer_gone(const struct conn *c)
{
	return c->tls == NULL;
}

/* --- server ------------------------------------------------------------------------------ */

void conn_server_set_limits(struct conn_server *s, const struct conn_limits *lim)
{
	s->lim = *lim;
}

struct conn_server *conn_server_create(const struct conn_limits *lim, conn_handler handler,
                                       void *ud)
{
	struct conn_server *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->lim = *lim;
	s->handler = handler;
	s->ud = ud;
	return s;
}

void conn_server_destroy(struct conn_server *s)
{
	if (!s)
		return;
	/* Connections point at s: destroying it under them would be a use-after-free. */
	if (s->count)
		log_error("event=conn_server_destroy_busy connections=%zu", s->count);
	free(s);
}

void conn_server_drain(struct conn_server *s, void (*on_drained)(void *ud), void *ud)
{
	s->draining = 1;
	s->on_drained = on_drained;
	s->drained_ud = ud;
	struct conn *c = s->head, *next;
	for (; c; c = next) {
		next = c->next;
		if (c->state == S_STREAM)
			stream_abort(c);
		else if (c->state != S_DISPATCHED)
			close_conn(c);
		/* else: conn_respond sees draining and closes after the answer */
	}
	maybe_drained(s);
}

void conn_server_abort(struct conn_server *s)
{
	struct conn *c = s->head, *next;
	for (; c; c = next) {
		next = c->next;
		if (c->state == S_STREAM)
			stream_abort(c);
		else
			close_conn(c);
	}
	maybe_drained(s);
}

size_t conn_server_count(const struct conn_server *s)
{
	return s->count;
}
