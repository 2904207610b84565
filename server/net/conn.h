/* conn: one HTTP/1.1 connection on top of a tls_conn — request framing (http_reader),
 * header/request/idle deadlines, keep-alive, the server-wide body-memory budget, drain on
 * shutdown, and dispatch to the request handler. Loop thread only. A struct conn outlives
 * its socket while a handler owes a response: it is freed by whichever comes last, the
 * socket's end or conn_respond. */
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

/* Sends the response (Date, Content-Type: application/json, Content-Length added). extra
 * is NULL or "Name: value\r\n" lines. Dropped silently if the peer has gone. */
void conn_respond(struct conn *c, int status, const char *extra, const char *body, size_t len);
/* {"error":error[,"detail":detail]} */
void conn_respond_error(struct conn *c, int status, const char *error, const char *detail);
/* The TLS identity and peer address, copied at handshake: valid while c is. */
const struct tls_identity *conn_identity(const struct conn *c);
const char *conn_peer(const struct conn *c);

#endif
