/* conn: one HTTP/1.1 connection on top of a tls_conn — request framing (http_reader),
 * header/request/idle deadlines, keep-alive, the server-wide body-memory budget, drain on
 * shutdown, dispatch to the request handler, back-pressure on output (a pipelining client
 * that does not read has its next request wait; all connections' unsent output has a
 * budget), bodies written in pieces (files), and streamed responses (a head now, bytes
 * later, through a bounded queue). Loop thread only. A struct conn outlives its socket
 * while a handler owes a response: it is freed by whichever comes last, the socket's end or
 * conn_respond; a stream's conn is freed when the stream ends (after its on_end). */
#ifndef VW_CONN_H
#define VW_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "tls.h"

struct conn;
struct conn_server;

/* Called once per complete request. The handler must call conn_respond exactly once,
 * now or later (on the loop thread); req stays valid until then. */
typedef void (*conn_handler)(void *ud, struct conn *c, const struct http_request *req);

struct conn_limits {
	size_t max_header_bytes;
	size_t max_body_bytes;
	size_t body_budget; /* request bodies held in memory, all connections together */
	size_t out_budget;  /* unsent response bytes, all connections together; 0: 64 MiB */
	uint64_t header_timeout_ms;
	uint64_t request_timeout_ms;
	uint64_t idle_timeout_ms;
};

struct conn_server *conn_server_create(const struct conn_limits *lim, conn_handler handler,
                                       void *ud);
/* New limits (a reload): each connection's next request, header or idle wait uses them. */
void conn_server_set_limits(struct conn_server *s, const struct conn_limits *lim);
/* Frees the server; every connection must be gone (see conn_server_drain). Accepts NULL. */
void conn_server_destroy(struct conn_server *s);
/* The callbacks to give tls_server_create, with the conn_server as cb_data. */
extern const struct tls_callbacks conn_tls_callbacks;
/* Shutdown: idle and half-read connections close now; each one with a request in the
 * handler's hands closes after its response. on_drained runs once no connection is left
 * (possibly before this returns). */
void conn_server_drain(struct conn_server *s, void (*on_drained)(void *ud), void *ud);
/* Force-closes every connection that is still open (drain deadline). */
void conn_server_abort(struct conn_server *s);
size_t conn_server_count(const struct conn_server *s);
/* Streams ended because the peer did not read fast enough (event=stream_dropped reason=slow). */
uint64_t conn_server_streams_dropped(const struct conn_server *s);

/* Sends the response (Date, Content-Type: application/json, Content-Length added). extra
 * is NULL or "Name: value\r\n" lines. Dropped silently if the peer has gone. A HEAD
 * request gets the same head (Content-Length included) and no body. */
void conn_respond(struct conn *c, int status, const char *extra, const char *body, size_t len);
/* conn_respond with another Content-Type (HTTP_CT_* in http.h). */
void conn_respond_typed(struct conn *c, int status, const char *content_type, const char *extra,
                        const char *body, size_t len);

/* --- a body in pieces (files) ------------------------------------------------------------ */

/* Called once by conn_body_wait: the connection can take more, or it is gone (the next
 * conn_body_write says which). */
typedef void (*conn_writable_cb)(void *ud, struct conn *c);

/* Instead of conn_respond, for a body of len bytes known in advance but not in memory: sends
 * the head (Content-Length len) now. 0: the body is owed, through conn_body_write (in total
 * exactly len bytes) and then conn_body_end, which is the answer's end. 1: answered already
 * (HEAD, len 0, the peer gone, or 503 because all connections' unsent output is at the
 * server's budget): nothing more is owed, c may be gone. Negative: the head could not be
 * sent; call conn_body_end. */
int conn_body_begin(struct conn *c, int status, const char *content_type, const char *extra,
                    uint64_t len);
/* Queues len bytes of the body. -ENOTCONN: the peer is gone; -ENOBUFS: the server-wide
 * output budget is spent and this connection was closed; then (and at the body's end) call
 * conn_body_end. */
int conn_body_write(struct conn *c, const void *data, size_t len);
/* 1 when the unsent backlog is small enough for the next piece (256 KiB), 0 when the writer
 * should conn_body_wait, -ENOTCONN when the peer is gone. */
int conn_body_writable(const struct conn *c);
/* cb once the backlog has drained below the mark or the connection is gone (at once when
 * that is already so). */
void conn_body_wait(struct conn *c, conn_writable_cb cb, void *ud);
/* The body is done (or abandoned: fewer bytes than announced close the connection). c may
 * be freed by this. */
void conn_body_end(struct conn *c);

/* --- streamed responses ------------------------------------------------------------------ */

/* Called once when a stream ends without conn_stream_end: the peer left, sent what a stream
 * does not take, or the server shuts down. c is freed when it returns. */
typedef void (*conn_stream_end_cb)(void *ud, struct conn *c);

/* Instead of conn_respond: sends status and headers without Content-Length (the body ends
 * with the connection) and keeps the connection open for conn_stream_write. The socket goes
 * on being read, so a peer that leaves is seen at once; what it sends is discarded (past
 * 64 KiB, the stream ends). At most queue_max bytes may wait to be sent; a write beyond
 * that ends the stream (see conn_stream_write). 0: streaming, on_end armed. 1: a HEAD
 * request, answered with the head alone. Negative: the peer is gone or the head could not
 * be sent. After any non-zero return the request is answered: nothing more is owed. */
int conn_stream_start(struct conn *c, int status, const char *content_type, const char *extra,
                      size_t queue_max, conn_stream_end_cb on_end, void *ud);
/* Queues bytes on the stream. -ENOBUFS when they would take the unsent backlog past
 * queue_max: the peer is not reading, the stream is ended and counted (event=stream_dropped
 * reason=slow), and on_end is NOT called (the caller knows). Other negative: the write
 * failed and the stream is ended the same way. */
int conn_stream_write(struct conn *c, const void *data, size_t len);
/* Bytes that may still be queued before the unsent backlog reaches half of queue_max: a
 * writer with much to send (an event stream's backlog) sends that much, then waits. */
size_t conn_stream_room(const struct conn *c);
/* cb once the backlog is at or below a quarter of queue_max (at once when it is already).
 * Not called when the stream ends: on_end (or the writer's own end) says that. */
void conn_stream_wait(struct conn *c, conn_writable_cb cb, void *ud);
/* Ends the stream from the server's side (no on_end). */
void conn_stream_end(struct conn *c);
/* {"error":error[,"detail":detail]} */
void conn_respond_error(struct conn *c, int status, const char *error, const char *detail);
/* The same with Retry-After: retry_after_s (> 0) on a 503, where conn_respond_error
 * says 1. */
void conn_respond_error_after(struct conn *c, int status, const char *error, const char *detail,
                              int retry_after_s);
/* The TLS identity and peer address, copied at handshake: valid while c is. */
const struct tls_identity *conn_identity(const struct conn *c);
const char *conn_peer(const struct conn *c);
/* 1 once the peer has closed or the connection was closed under a dispatched request (the
 * answer owed will be dropped): a handler reading in steps may stop early. */
int conn_peer_gone(const struct conn *c);

#endif
