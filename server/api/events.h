/* events: the live event hub behind GET /api/v1/events (Server-Sent Events). Owns the
 * subscribers (each a streamed response, conn.h, with its own bounded queue), the timer
 * of the 15 s heartbeat and of credential rechecks (a stream ends when its token or session
 * does), and the event ids. An event is published once and written to every
 * subscriber whose scope (authz_site_visible) covers its site; a subscriber that does not
 * read is cut off by its queue bound, never waited for. Loop thread only. events_close
 * ends every stream and closes the timer; events_destroy frees the hub after the loop has
 * run the timer's close (or never started it). */
#ifndef VW_EVENTS_H
#define VW_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "authz.h"
#include "conn.h"
#include "store.h"

/* Heartbeats keep proxies from closing an idle stream; 15 s is the interval the WHATWG
 * HTML standard's server-sent events section suggests. */
#define EVENTS_HEARTBEAT_MS 15000
/* retry: what a browser waits before reconnecting a dropped stream. */
#define EVENTS_RETRY_MS 5000
/* Rechecks in flight on the session worker at once: its queue (SESSION_JOBS_MAX) is shared
 * with logins, which must not wait behind a thousand streams' checks. */
#define EVENTS_CHECKS_MAX 32

struct events;

/* Where ids come from. The default counts from 1 in this process; the feed persists them
 * in the store (a change of this function, not of the hub). */
typedef uint64_t (*events_id_fn)(void *ud);

int events_create(uv_loop_t *loop, size_t queue_bytes, struct events **out);
void events_set_id_source(struct events *h, events_id_fn fn, void *ud);
/* Where open streams' credentials are checked again (session_recheck), every [web]
 * stream_recheck: a revoked token, a logout, an idle or expired session ends the stream.
 * NULL: no rechecks; the token's and session's expiry times still end streams. */
struct session;
void events_set_session(struct events *h, struct session *session);
/* Ends the streams opened with this session's cookie (its logout), logged with reason. */
void events_end_session(struct events *h, const unsigned char hash[AUTH_HASH_LEN],
                        const char *reason);
/* For subscribers that join from now on (a reload). */
void events_set_queue(struct events *h, size_t queue_bytes);
/* Answers the request with an event stream for who (the route admitted it). */
void events_subscribe(struct events *h, struct conn *c, const struct authz_principal *who);
/* One event of type with a JSON object as data, for the site's readers. Returns its id. */
uint64_t events_publish(struct events *h, const char *type, const char *site, const char *org,
                        const char *city, const char *data_json);
/* An ingest_commit_fn (ingest.h), hub as ud: after each commit, one "report" event with
 * site, org, city, agent, acked_seq and the batch's counts of ok, degraded and down. */
void events_on_commit(void *hub, const struct store_batch *b);
size_t events_subscribers(const struct events *h);
uint64_t events_dropped(const struct events *h); /* subscribers cut off as too slow */
void events_close(struct events *h);             /* ends every stream; closes the timer */
void events_destroy(struct events *h);           /* accepts NULL */

#endif
