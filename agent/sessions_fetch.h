/* sessions_fetch: asks the collector for this site's exam sessions (GET
 * /api/v1/agent/sessions over the agent's mutual TLS, through curluv) every [collector]
 * sessions_poll, with If-None-Match on the version in force, and hands a good answer to
 * sessions_update; a bad one is logged with the field it failed on and the previous set
 * stays. Loop thread only. Owns its timer and easy handle; stop before curluv_close. */
#ifndef VW_SESSIONS_FETCH_H
#define VW_SESSIONS_FETCH_H

#include <uv.h>

#include "agent_conf.h"
#include "curluv.h"
#include "sessions.h"

struct sessions_fetch;

/* changed_cb (loop thread) runs after a new set is in force. */
int sessions_fetch_create(uv_loop_t *loop, struct curluv *cu, const struct agent_conf *cfg,
                          struct sessions *ss, void (*changed_cb)(void *), void *arg,
                          struct sessions_fetch **out);
/* First request now, then every sessions_poll. */
/* issue 13: each poll asks collector(arg) which [collector] url to use (the uplink's, so
 * that the sessions come from the collector the results go to, and fail over with them). */
void sessions_fetch_follow(struct sessions_fetch *f, const char *(*collector)(void *arg),
                           void *arg);
void sessions_fetch_start(struct sessions_fetch *f);
/* Aborts a request in flight; closed_cb once the timer is closed. */
void sessions_fetch_stop(struct sessions_fetch *f, void (*closed_cb)(void *), void *arg);
void sessions_fetch_destroy(struct sessions_fetch **f);

#endif
