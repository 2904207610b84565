/* session: the dashboard's login — POST /api/v1/session trades a person's token for a
 * __Host-vw_session cookie, GET says who the cookie (or token) is, DELETE logs out — and the one
 * worker thread that writes people's state to auth.db: new and ended sessions, and last-use
 * marks of tokens and sessions (batched, at most one per token a minute). Nothing on the
 * loop waits on auth.db's lock: writes go to a vw_worker (worker.h, bounded), answers come
 * back on the loop; it also checks open event streams' credentials again (session_recheck).
 * Loop thread, except the worker. session_destroy joins the worker and
 * frees the session; the worker's memory goes in its async handle's close callback, so the
 * loop must run afterwards. */
#ifndef VW_SESSION_H
#define VW_SESSION_H

#include <stdint.h>
#include <uv.h>

#include "auth.h"
#include "router.h"

#define SESSION_COOKIE "__Host-vw_session"
/* Sessions being created or ended at once; beyond it a login answers 503. */
#define SESSION_JOBS_MAX 256
/* Last-use marks waiting for the worker (one per token or session: repeats coalesce). */
#define SESSION_TOUCH_MAX 1024
/* A token's last use is recorded at most this often (the list shows it to the minute). */
#define SESSION_TOUCH_TOKEN_MS 60000

struct session_opts {
	int64_t idle_ms;     /* a session unused this long has ended */
	int64_t lifetime_ms; /* and any session this long after its login */
	const char *origins; /* comma-separated allowed origins; "" = https:// + Host (copied) */
	int64_t recheck_ms;  /* an open event stream's credential is checked again this often */
};

struct session;

int session_create(uv_loop_t *loop, const char *auth_db_path, const struct session_opts *o,
                   struct session **out, char *err, size_t errlen);
void session_destroy(struct session *s); /* accepts NULL */
const struct session_opts *session_opts(const struct session *s);

/* Records a use (never blocks; dropped and counted when the queue is full). A token's mark
 * is queued only when the recorded one is older than SESSION_TOUCH_TOKEN_MS; a session's
 * when older than a quarter of the idle time (at most a minute), so the idle expiry never
 * ends a session in use. */
void session_note_use(struct session *s, const struct auth_principal *p,
                      const struct auth_session *sess);

/* An open stream's credential, checked again on the worker (auth_recheck: the token by id,
 * the session by hash when hash is not NULL — a revoke comes from another process, so only
 * auth.db knows). cb runs on the loop with 0 and the principal and session as they are now,
 * or the refusal; never after session_destroy began (a job cut short is dropped). 0, or
 * -EAGAIN / -ENOMEM / -ESHUTDOWN: not submitted, try again later. */
typedef void (*session_recheck_cb)(void *ud, uint64_t tag, int rc, const struct auth_principal *p,
                                   const struct auth_session *sess);
int session_recheck(struct session *s, const char *token_id, const unsigned char *hash,
                    session_recheck_cb cb, void *ud, uint64_t tag);

/* Route handlers (api.c's table). */
void session_post(struct api *a, struct conn *c, const struct http_request *req,
                  const struct router_match *m, const struct authz_principal *who);
void session_get(struct api *a, struct conn *c, const struct http_request *req,
                 const struct router_match *m, const struct authz_principal *who);
void session_delete(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who);

#endif
