/* worker: one thread that runs an owner's jobs off the loop and hands each back to the loop,
 * in the order they were submitted: a bounded FIFO (mutex + cond) in, a uv_async out.
 * Loop thread: vw_worker_create, _submit, _kick, _destroy, and the done callback.
 * Worker thread: the run and idle callbacks, vw_worker_wait and vw_worker_stopping.
 * The owner allocates each job and frees it in done; the worker's own memory is freed in its
 * async handle's close callback, so the loop must run after vw_worker_destroy. */
#ifndef VW_WORKER_H
#define VW_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct vw_worker;

/* Worker thread: one job. Whatever it produces goes into the job itself. */
typedef void (*vw_worker_run_fn)(struct vw_worker *w, void *job, void *ud);
/* Worker thread, optional: the owner's own background work (marks it merges under its own
 * lock, say), run after vw_worker_kick when no job is queued, so jobs always go first.
 * Returns 1 to be called again (after any job queued meanwhile), 0 when done for now. */
typedef int (*vw_worker_idle_fn)(struct vw_worker *w, void *ud);
/* Loop thread: a job back, once each, in submission order. status is 0, or -ECANCELED when
 * the job ran but vw_worker_destroy came first: free it then, answer nobody. */
typedef void (*vw_worker_done_fn)(void *job, int status, void *ud);

/* Starts the thread. max_jobs bounds the jobs submitted whose done has not run yet.
 * 0, -EINVAL (no run or done, max_jobs 0), -ENOMEM, or libuv's error; on a failed thread
 * start the async handle is already closing (run the loop to free it). */
int vw_worker_create(uv_loop_t *loop, vw_worker_run_fn run, vw_worker_idle_fn idle,
                     vw_worker_done_fn done, void *ud, size_t max_jobs, struct vw_worker **out);
/* Queues a job; never blocks. 0, or -EAGAIN when max_jobs are in flight (the job stays the
 * caller's), or -ESHUTDOWN after destroy began. */
int vw_worker_submit(struct vw_worker *w, void *job);
/* Asks for the idle callback to run (once per kick or more, never concurrently with run). */
void vw_worker_kick(struct vw_worker *w);

/* Worker thread: sleeps ms (a retry's pause), less once destroy begins, and, called from
 * idle, less once a job is queued (so jobs still go first). 1 when stopping. */
int vw_worker_wait(struct vw_worker *w, uint64_t ms);
/* Worker thread: 1 once destroy began (a run or idle callback should stop retrying). */
int vw_worker_stopping(struct vw_worker *w);

/* Drains: the worker runs every job still queued (and idle while kicked), each seeing
 * vw_worker_stopping() == 1, then exits and is joined. Jobs that ran but whose done had not
 * run yet get done(job, -ECANCELED) here, before it returns, so the owner may free its own
 * state (and close what the run callbacks used) right after. Accepts NULL. */
void vw_worker_destroy(struct vw_worker *w);

#endif
