/* scheduler: when each camera is checked, and by whom. Owns one uv timer per camera (loop
 * thread, jittered cadence), a pool of media worker threads of its own (so blocking
 * libavformat work never occupies libuv's threadpool), and the queue + uv_async_t that
 * brings results back to the loop thread, where result_cb receives them in batches.
 * A camera is never queued twice: a slow or hung one delays only itself. With workers = 0
 * the pool grows with the load the cadence puts on it (see scheduler_workers_for). */
#ifndef VW_SCHEDULER_H
#define VW_SCHEDULER_H

#include <stddef.h>
#include <uv.h>

#include "agent_conf.h"
#include "probe_stream.h"
#include "result.h"

struct scheduler;

/* Called on the loop thread; results are owned by the scheduler and valid for the call
 * (the callee may write their seq). */
typedef void (*scheduler_result_cb)(void *arg, struct vw_result *results, size_t n);
typedef void (*scheduler_done_cb)(void *arg);

int scheduler_create(uv_loop_t *loop, const struct agent_conf *cfg, scheduler_result_cb cb,
                     void *arg, struct scheduler **out);
/* Periodic mode: every camera on its own jittered timer. */
int scheduler_start(struct scheduler *s);
/* One check of every camera now; done_cb once the last result was delivered. */
int scheduler_run_once(struct scheduler *s, scheduler_done_cb done_cb, void *arg);
/* Stops timers, lets running checks finish (each is bounded by its deadline), delivers
 * their results, joins the workers and closes the handles; closed_cb runs when the
 * scheduler may be destroyed. */
void scheduler_stop(struct scheduler *s, scheduler_done_cb closed_cb, void *arg);
void scheduler_destroy(struct scheduler **s);
/* The exam sessions in force changed (loop thread): a camera whose next check is later
 * than its new cadence allows is checked sooner. */
void scheduler_sessions_changed(struct scheduler *s);
/* The worker pool for people (`status`): its size and, when sized (workers = 0), what it is
 * sized from. Loop thread. 0 or -ENAMETOOLONG. */
int scheduler_workers(const struct scheduler *s, char *out, size_t outlen);
/* Workers for a load of busy workers (sum over cameras of check time / cadence), so that it
 * fills 70 % of them; at least min, at most max. */
size_t scheduler_workers_for(double busy, size_t min, size_t max);
/* The check request for one camera: its settings over the [picture] defaults. */
void scheduler_fill_req(const struct agent_conf *cfg, const struct camera_conf *c,
                        struct probe_stream_req *req);

#endif
