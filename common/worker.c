#include "worker.h"

#include <errno.h>
#include <stdlib.h>

/* A FIFO of job pointers. At most max_jobs are in flight, so neither ring can overflow. */
struct ring {
	void **slot;
	size_t cap, head, n;
};

static void ring_push(struct ring *r, void *job)
{
	r->slot[(r->head + r->n++) % r->cap] = job;
}

static void *ring_pop(struct ring *r)
{
	void *job = r->slot[r->head];
	r->head = (r->head + 1) % r->cap;
	r->n--;
	return job;
}

struct vw_worker {
	uv_loop_t *loop;
	uv_async_t done_async;
	uv_thread_t thread;
	vw_worker_run_fn run;
	vw_worker_idle_fn idle;
	vw_worker_done_fn done;
	void *ud;
	size_t max_jobs;
	size_t inflight; /* loop thread: submitted, done not yet called */
	int closing;     /* loop thread: destroy began */
	/* Shared with the worker, under mu: todo (loop -> worker), finished (worker -> loop). */
	uv_mutex_t mu;
	uv_cond_t cond;
	struct ring todo, finished;
	int kicked;
	int quit;
	int in_idle; /* worker thread only: inside the idle callback */
};

static void worker_main(void *arg)
{
	struct vw_worker *w = arg;
	uv_mutex_lock(&w->mu);
	for (;;) {
		if (w->todo.n) {
			void *job = ring_pop(&w->todo);
			uv_mutex_unlock(&w->mu);
			w->run(w, job, w->ud);
			uv_mutex_lock(&w->mu);
			ring_push(&w->finished, job);
			uv_async_send(&w->done_async);
			continue;
		}
		if (w->kicked && w->idle) {
			w->kicked = 0;
			uv_mutex_unlock(&w->mu);
			w->in_idle = 1;
			int again = w->idle(w, w->ud);
			w->in_idle = 0;
			uv_mutex_lock(&w->mu);
			if (again)
				w->kicked = 1;
			continue;
		}
		if (w->quit)
			break; /* nothing queued and nothing kicked: drained */
		uv_cond_wait(&w->cond, &w->mu);
	}
	uv_mutex_unlock(&w->mu);
}

/* One job at a time out of the lock, so a done callback may submit again. */
static void on_done(uv_async_t *h)
{
	struct vw_worker *w = h->data;
	for (;;) {
		uv_mutex_lock(&w->mu);
		void *job = w->finished.n ? ring_pop(&w->finished) : NULL;
		uv_mutex_unlock(&w->mu);
		if (!job)
			return;
		w->inflight--;
		w->done(job, 0, w->ud);
	}
}

static void on_closed(uv_handle_t *h)
{
	struct vw_worker *w = h->data;
	uv_mutex_destroy(&w->mu);
	uv_cond_destroy(&w->cond);
	free(w->todo.slot);
	free(w->finished.slot);
	free(w);
}

int vw_worker_create(uv_loop_t *loop, vw_worker_run_fn run, vw_worker_idle_fn idle,
                     vw_worker_done_fn done, void *ud, size_t max_jobs, struct vw_worker **out)
{
	*out = NULL;
	if (!run || !done || !max_jobs)
		return -EINVAL;
	int rc = -ENOMEM;
	struct vw_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->todo.slot = calloc(max_jobs, sizeof(void *));
	w->finished.slot = calloc(max_jobs, sizeof(void *));
	if (!w->todo.slot || !w->finished.slot)
		goto fail;
	w->todo.cap = w->finished.cap = max_jobs;
	w->loop = loop;
	w->run = run;
	w->idle = idle;
	w->done = done;
	w->ud = ud;
	w->max_jobs = max_jobs;
	if ((rc = uv_mutex_init(&w->mu)) != 0)
		goto fail;
	if ((rc = uv_cond_init(&w->cond)) != 0) {
		uv_mutex_destroy(&w->mu);
		goto fail;
	}
	if ((rc = uv_async_init(loop, &w->done_async, on_done)) != 0) {
		uv_cond_destroy(&w->cond);
		uv_mutex_destroy(&w->mu);
		goto fail;
	}
	w->done_async.data = w;
	if ((rc = uv_thread_create(&w->thread, worker_main, w)) != 0) {
		/* The handle exists now: its close callback frees the rest. */
		uv_close((uv_handle_t *)&w->done_async, on_closed);
		return rc;
	}
	*out = w;
	return 0;
fail:
	free(w->todo.slot);
	free(w->finished.slot);
	free(w);
	return rc;
}

int vw_worker_submit(struct vw_worker *w, void *job)
{
	if (w->closing)
		return -ESHUTDOWN;
	if (w->inflight >= w->max_jobs)
		return -EAGAIN;
	w->inflight++;
	uv_mutex_lock(&w->mu);
	ring_push(&w->todo, job);
	uv_cond_signal(&w->cond);
	uv_mutex_unlock(&w->mu);
	return 0;
}

void vw_worker_kick(struct vw_worker *w)
{
	uv_mutex_lock(&w->mu);
	w->kicked = 1;
	uv_cond_signal(&w->cond);
	uv_mutex_unlock(&w->mu);
}

int vw_worker_wait(struct vw_worker *w, uint64_t ms)
{
	uint64_t end = uv_hrtime() + ms * 1000000ULL;
	uv_mutex_lock(&w->mu);
	/* The deadline, not the first wake-up, ends it: a submit or kick signals the same cond
	 * and would otherwise turn a retry loop into a busy one. */
	while (!w->quit && !(w->in_idle && w->todo.n)) {
		uint64_t now = uv_hrtime();
		if (now >= end)
			break;
		(void)uv_cond_timedwait(&w->cond, &w->mu, end - now);
	}
	int quit = w->quit;
	uv_mutex_unlock(&w->mu);
	return quit;
}

int vw_worker_stopping(struct vw_worker *w)
{
	uv_mutex_lock(&w->mu);
	int quit = w->quit;
	uv_mutex_unlock(&w->mu);
	return quit;
}

void vw_worker_destroy(struct vw_worker *w)
{
	if (!w)
		return;
	w->closing = 1;
	uv_mutex_lock(&w->mu);
	w->quit = 1;
	uv_cond_signal(&w->cond);
	uv_mutex_unlock(&w->mu);
	uv_thread_join(&w->thread);
	/* The async callback will not run after uv_close: what it would have delivered goes
	 * back to the owner now, marked, so that nothing waits on a loop that is stopping. */
	while (w->finished.n) {
		w->inflight--;
		w->done(ring_pop(&w->finished), -ECANCELED, w->ud);
	}
	uv_close((uv_handle_t *)&w->done_async, on_closed);
}
