/* notify: [notify NAME] sinks — problem events sent to a JSON webhook, a DingTalk or a WeCom
 * robot. Owns each sink's queue, token bucket and one transfer at a time (libcurl's multi
 * interface on the loop, common/curluv.c), a timer for retries and rate waits, and the
 * delivery state, which it persists through store write requests (the notifications table)
 * and reads back at start: a restart neither loses a pending message nor sends a sent one
 * again. Nothing here blocks: a receiver that hangs costs one transfer until its timeout.
 * Loop thread only. notify_close stops transfers and the timer; notify_destroy frees the
 * object once the loop has run the close callbacks (or never started it). */
#ifndef VW_NOTIFY_H
#define VW_NOTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "notify_msg.h"
#include "server_conf.h"
#include "store.h" /* struct store_event (issue 16 A) */

struct notify;

/* Sinks from cfg's [notify NAME] sections, public_url from [web]. Nothing is sent before
 * notify_start. 0, -ENOMEM, or -EINVAL with why in err. */
int notify_create(uv_loop_t *loop, struct store *store, const struct server_conf *cfg,
                  struct notify **out, char *err, size_t errlen);
/* Reads the pending notifications back from the store, then sends as they fall due. */
int notify_start(struct notify *n);
/* SIGHUP: the sinks of cfg replace the running ones by name. A sink that stays keeps its
 * queue, bucket and counters with its new settings; a new one starts empty; a removed one
 * stops (its pending rows stay pending in the store, sent again if it comes back). */
int notify_reload(struct notify *n, const struct server_conf *cfg, char *err, size_t errlen);
/* An events_sink_fn: every stored event, in id order, after its commit. Problem events
 * become one notification per sink that wants it; everything else is ignored. */
void notify_on_event(void *ud, const struct store_event *ev);
void notify_close(struct notify *n);
void notify_destroy(struct notify *n); /* accepts NULL */

struct notify_stats {
	uint64_t queued, sent, failed, suppressed, attempts, duplicates;
	uint64_t unannounced; /* closed/acked/updated not made: the opening was never told */
	uint64_t fenced;      /* issue 13: not written: another collector holds the lease */
};
void notify_get_stats(const struct notify *n, struct notify_stats *out);

#endif
