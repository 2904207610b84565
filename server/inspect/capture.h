/* capture: the remote checks' evidence (互联网+监管) — during a remote inspection's slot the
 * site's live status and every camera's newest picture, as the store has them, kept in
 * inspection_evidence (kind status: the site JSON as GET /api/v1/sites/{site} gives it; kind
 * thumbnail: one JPEG per camera). A loop timer every capture_every looks for remote
 * inspections whose slot is running and that have no status evidence yet; an assigned
 * inspector may also capture by hand (POST /api/v1/inspections/{id}/capture).
 *
 * Threads. Loop thread: the timer, the store's reads (store_get_site, store_thumbnail) and
 * their replies; the rows are written by a job on inspect.db's worker. capture_destroy
 * stops the timer; the object is freed once its handle closed and no capture is in flight. */
#ifndef VW_CAPTURE_H
#define VW_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"

struct capture;
struct inspect;
struct store;
struct store_reply;

/* Writes the site JSON of store_get_site's reply (the api's renderer, api_site_render). */
typedef void (*capture_render_fn)(struct vw_buf *b, const struct store_reply *r);

/* every_ms 0: no timer (manual captures only). */
int capture_create(uv_loop_t *loop, struct store *store, struct inspect *in, int64_t every_ms,
                   capture_render_fn render, struct capture **out);
void capture_destroy(struct capture *c); /* accepts NULL */

/* Captures site for inspection id now; done(ud, status, rows) on the loop thread once the
 * rows are committed: 0, -ENOENT (the site never reported), -ECANCELED (closing: answer
 * nobody), other negative errno. 0 queued, -EAGAIN too many in flight, -ENOMEM. */
typedef void (*capture_done_fn)(void *ud, int status, size_t rows);
int capture_now(struct capture *c, int64_t id, const char *site, capture_done_fn done, void *ud);

/* Captures taken so far (for the log and tests' sake). */
uint64_t capture_count(const struct capture *c);

#endif
