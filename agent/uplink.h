/* uplink: sends the outbox to the collector over mutual TLS, in seq order, one batch in
 * flight, and releases rows only after the server acknowledged their seq. libcurl's multi
 * interface driven by the libuv loop (uv_poll per socket + one uv_timer); everything here
 * runs on the loop thread. Batches are bounded by count and bytes and sent gzip-compressed
 * on a kept-alive connection. Transient failures back off exponentially with full jitter;
 * a refusal (401/403, certificate refused) stops uploads until SIGHUP or restart. Nothing
 * is dropped here (only the outbox's counted bound drops rows). */
#ifndef VW_UPLINK_H
#define VW_UPLINK_H

#include <uv.h>

#include "agent_conf.h"
#include "outbox.h"

struct uplink;

int uplink_create(uv_loop_t *loop, const struct agent_conf *cfg, struct outbox *ob,
		  struct uplink **out);
/* New rows are waiting: send now unless a request is in flight or a backoff runs. */
void uplink_kick(struct uplink *up);
/* After an operator's SIGHUP: retry now, also when refused or backing off. */
void uplink_resume(struct uplink *up);
/* Aborts any request (its rows stay in the outbox), closes handles; closed_cb follows. */
void uplink_stop(struct uplink *up, void (*closed_cb)(void *), void *arg);
void uplink_destroy(struct uplink **up);

#endif
