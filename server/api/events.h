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

int events_create(uv_loop_t *loop, size_t queue_bytes, struct events **out);

/* --- issue 16 (A): stored events, resume, sinks ------------------------------------------
 * Stored events (problem_*, status) carry the store's id as their SSE id; a subscriber
 * that sends Last-Event-ID: N gets the stored events after N (read from the store, in
 * scope), then the live ones, none twice; N older than the retained window gets
 * `event: reload`. report events (per batch) are ephemeral: no id, not stored. */
/* The store to read the backlog from (NULL: Last-Event-ID is ignored). */
void events_set_store(struct events *h, struct store *store);
/* A store_event_fn (store.h), hub as ud: publishes a committed event to the subscribers in
 * scope, then calls every sink. Loop thread, in id order. */
void events_on_stored(void *hub, const struct store_event *ev);
typedef void (*events_sink_fn)(void *ud, const struct store_event *ev);
/* At most EVENTS_SINKS_MAX; -ENOSPC beyond. */
#define EVENTS_SINKS_MAX 8
int events_add_sink(struct events *h, events_sink_fn fn, void *ud);
/* Backlog reads per stream: this many events a read, and at most this many live events
 * held for a stream while its backlog is read (past it: reload). */
#define EVENTS_BACKLOG_PAGE 500
#define EVENTS_PENDING_MAX 2000
/* A resume costs store reads and held copies, so it is bounded: at most EVENTS_RESUMES_MAX
 * read their backlog at once (the rest wait their turn, live events held meanwhile); one
 * principal has at most EVENTS_RESUMES_PER_PRINCIPAL resuming streams and at most
 * EVENTS_RESUMES_WAITING_MAX wait in all — past either, 503 with Retry-After before the
 * stream starts. A stream's held copies (backlog page and live events held) count against
 * its queue bound (half each), and a resume not done within EVENTS_RESUME_DEADLINE_MS ends:
 * cut off when its client is not reading, else told to reload. The backlog is read in its
 * principal's scope only (store_events_scoped). */
#define EVENTS_RESUMES_MAX 16
#define EVENTS_RESUMES_PER_PRINCIPAL 4
#define EVENTS_RESUMES_WAITING_MAX 256
#define EVENTS_RESUME_DEADLINE_MS 60000
/* [feed]: silence detection and event retention, run by a loop timer that submits one
 * STORE_FEED_TICK write (store.h) at a time. silent_ms > 0 is a fixed bound, else
 * silent_factor x the site's cadence. */
struct events_feed_opts {
	int64_t silent_ms;
	double silent_factor;
	int64_t event_retention_ms;
	int64_t tick_ms; /* 0 = 1000 */
};
/* Starts (or, on reload, changes) the feed's timer; needs events_set_store first. */
int events_start_feed(struct events *h, const struct events_feed_opts *o);
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
/* Answers the request with an event stream for who (the route admitted it), resuming
 * after last_event_id (the Last-Event-ID header's value; "" = live only). */
void events_subscribe(struct events *h, struct conn *c, const struct authz_principal *who,
                      const char *last_event_id);
/* One ephemeral event (no id) of type with a JSON object as data, for the site's readers. */
void events_publish(struct events *h, const char *type, const char *site, const char *org,
                    const char *city, const char *data_json);
/* An ingest_commit_fn (ingest.h), hub as ud: after each commit, one "report" event with
 * site, org, city, agent, acked_seq and the batch's counts of ok, degraded and down. */
void events_on_commit(void *hub, const struct store_batch *b);
size_t events_subscribers(const struct events *h);
uint64_t events_dropped(const struct events *h); /* subscribers cut off as too slow */
void events_close(struct events *h);             /* ends every stream; closes the timer */
void events_destroy(struct events *h);           /* accepts NULL */

#endif
