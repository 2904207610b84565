/* seen: which agent certificate was used, recorded off the loop thread. The loop hands
 * (serial, site, org, city, peer) to a worker thread through a bounded queue; the worker has
 * its own auth.db connection and may wait on the database's lock (a CLI's write, a busy
 * checkpoint) without any connection waiting with it. Each serial is queued once per run
 * (a set on the loop side), so a busy agent costs one lookup per new serial, not per request.
 * seen_create/seen_note/seen_destroy: loop thread; the writes: a vw_worker thread (worker.h).
 * seen_destroy joins the worker and frees the seen state; the worker's own memory goes in its
 * async handle's close callback. */
#ifndef VW_SEEN_H
#define VW_SEEN_H

#include <uv.h>

/* Records waiting for the worker; beyond it a record is dropped (counted, retried the next
 * time that serial is used). One per newly seen certificate: a reconnect storm of 5,000
 * venues fills it only while auth.db is locked. */
#define SEEN_QUEUE_MAX 1024
/* Serials remembered as done; beyond it the set starts afresh (a repeat costs the worker one
 * indexed read, no write). */
#define SEEN_SET_MAX 16384

struct seen;

int seen_create(uv_loop_t *loop, const char *auth_db_path, struct seen **out, char *err,
                size_t errlen);
/* Queues a record unless this serial was queued already. Never blocks. */
void seen_note(struct seen *s, const char *serial, const char *site, const char *org,
               const char *city, const char *peer);
/* Stops the worker (after what it holds: queued records are written, retries cut short) and
 * closes its async handle, whose memory goes in the close callback, so the loop must run
 * afterwards. Accepts NULL. */
void seen_destroy(struct seen *s);

#endif
