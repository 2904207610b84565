/* vw_worker: jobs run on the worker thread and come back on the loop thread in order; the
 * bound refuses with -EAGAIN until done has run; destroy drains the queue and hands back
 * what was not delivered as -ECANCELED; idle work goes behind jobs. Each test closes its
 * loop with uv_loop_close == 0, so a handle left open fails it (and ASan sees any leak). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>
#include <cmocka.h>

#include "worker.h"

#define NJOBS 64

struct job {
	int index;
	int ran_off_loop;  /* run saw a thread other than the loop's */
	int saw_stopping;  /* run saw vw_worker_stopping() == 1 */
	int wait_for_stop; /* run waits until destroy begins */
	int gate;          /* run waits on t->gate first */
};

struct t {
	uv_loop_t loop;
	uv_thread_t loop_thread;
	struct vw_worker *w;
	uv_sem_t gate;              /* posted by the test to let a gated job go on */
	uv_sem_t ran;               /* posted by run after each job */
	uv_sem_t idling;            /* posted by idle when it starts */
	int run_order[NJOBS], nrun; /* worker thread writes; read after a sem or a join */
	int done_order[NJOBS], ndone;
	int done_status[NJOBS];
	int done_off_loop;
	int idle_calls, idle_wait_cut_short;
	int run_after_idle; /* index of the job that ran once idle had returned, or -1 */
	int idle_returned;
};

static struct t T;

static void run(struct vw_worker *w, void *job, void *ud)
{
	struct t *t = ud;
	struct job *j = job;
	uv_thread_t self = uv_thread_self();
	j->ran_off_loop = !uv_thread_equal(&self, &t->loop_thread);
	if (j->gate)
		uv_sem_wait(&t->gate);
	if (j->wait_for_stop)
		while (!vw_worker_wait(w, 60000))
			;
	j->saw_stopping = vw_worker_stopping(w);
	if (t->idle_returned && t->run_after_idle < 0)
		t->run_after_idle = j->index;
	t->run_order[t->nrun++] = j->index;
	uv_sem_post(&t->ran);
}

static void done(void *job, int status, void *ud)
{
	struct t *t = ud;
	struct job *j = job;
	uv_thread_t self = uv_thread_self();
	if (!uv_thread_equal(&self, &t->loop_thread))
		t->done_off_loop++;
	t->done_status[t->ndone] = status;
	t->done_order[t->ndone++] = j->index;
}

/* Waits far longer than ctest's 60 s timeout: only a submitted job can end it in time. */
static int idle(struct vw_worker *w, void *ud)
{
	struct t *t = ud;
	t->idle_calls++;
	uv_sem_post(&t->idling);
	uint64_t t0 = uv_hrtime();
	vw_worker_wait(w, 600000);
	t->idle_wait_cut_short = uv_hrtime() - t0 < 600000ULL * 1000000ULL;
	t->idle_returned = 1;
	return 0;
}

static void setup(size_t max_jobs, vw_worker_idle_fn idle_fn)
{
	memset(&T, 0, sizeof(T));
	T.run_after_idle = -1;
	assert_int_equal(uv_loop_init(&T.loop), 0);
	T.loop_thread = uv_thread_self();
	assert_int_equal(uv_sem_init(&T.gate, 0), 0);
	assert_int_equal(uv_sem_init(&T.ran, 0), 0);
	assert_int_equal(uv_sem_init(&T.idling, 0), 0);
	assert_int_equal(vw_worker_create(&T.loop, run, idle_fn, done, &T, max_jobs, &T.w), 0);
}

static void run_until_done(int n)
{
	while (T.ndone < n)
		uv_run(&T.loop, UV_RUN_ONCE);
}

static void teardown(void)
{
	vw_worker_destroy(T.w);
	uv_run(&T.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&T.loop), 0);
	uv_sem_destroy(&T.gate);
	uv_sem_destroy(&T.ran);
	uv_sem_destroy(&T.idling);
}

static void jobs_run_off_the_loop_and_come_back_on_it_in_order(void **state)
{
	(void)state;
	struct job jobs[NJOBS] = {0};
	setup(NJOBS, NULL);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i].index = i;
		assert_int_equal(vw_worker_submit(T.w, &jobs[i]), 0);
	}
	run_until_done(NJOBS);
	for (int i = 0; i < NJOBS; i++) {
		assert_int_equal(jobs[i].ran_off_loop, 1);
		assert_int_equal(jobs[i].saw_stopping, 0);
		assert_int_equal(T.run_order[i], i);
		assert_int_equal(T.done_order[i], i);
		assert_int_equal(T.done_status[i], 0);
	}
	assert_int_equal(T.done_off_loop, 0);
	teardown();
	assert_int_equal(T.ndone, NJOBS); /* nothing delivered twice at destroy */
}

static void the_bound_holds_until_done_has_run(void **state)
{
	(void)state;
	struct job a = {.index = 0, .gate = 1}, b = {.index = 1}, c = {.index = 2};
	setup(2, NULL);
	assert_int_equal(vw_worker_submit(T.w, &a), 0);
	assert_int_equal(vw_worker_submit(T.w, &b), 0);
	assert_int_equal(vw_worker_submit(T.w, &c), -EAGAIN); /* a runs, b queued */
	uv_sem_post(&T.gate);
	uv_sem_wait(&T.ran);
	uv_sem_wait(&T.ran);
	/* Both have run, but the loop has not taken them back: still in flight. */
	assert_int_equal(vw_worker_submit(T.w, &c), -EAGAIN);
	run_until_done(2);
	assert_int_equal(vw_worker_submit(T.w, &c), 0);
	run_until_done(3);
	assert_int_equal(T.done_order[2], 2);
	teardown();
}

static void destroy_runs_what_is_queued_and_cancels_its_done(void **state)
{
	(void)state;
	struct job jobs[5] = {0};
	setup(8, NULL);
	jobs[0].wait_for_stop = 1; /* holds the worker until destroy begins */
	for (int i = 0; i < 5; i++) {
		jobs[i].index = i;
		assert_int_equal(vw_worker_submit(T.w, &jobs[i]), 0);
	}
	vw_worker_destroy(T.w);
	/* Joined: every queued job ran, in order, told that the worker is stopping, and done
	 * came back for each before destroy returned, on this thread, as -ECANCELED. */
	assert_int_equal(T.nrun, 5);
	assert_int_equal(T.ndone, 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(T.run_order[i], i);
		assert_int_equal(jobs[i].saw_stopping, 1);
		assert_int_equal(T.done_order[i], i);
		assert_int_equal(T.done_status[i], -ECANCELED);
	}
	assert_int_equal(T.done_off_loop, 0);
	uv_run(&T.loop, UV_RUN_DEFAULT); /* the close callback frees the worker */
	assert_int_equal(uv_loop_close(&T.loop), 0);
	assert_int_equal(T.ndone, 5);
	uv_sem_destroy(&T.gate);
	uv_sem_destroy(&T.ran);
	uv_sem_destroy(&T.idling);
}

static void a_submitted_job_cuts_idle_short_and_runs_after_it(void **state)
{
	(void)state;
	struct job j = {.index = 7};
	setup(4, idle);
	vw_worker_kick(T.w);
	uv_sem_wait(&T.idling);
	assert_int_equal(vw_worker_submit(T.w, &j), 0);
	run_until_done(1);
	assert_int_equal(T.idle_calls, 1);
	assert_int_equal(T.idle_wait_cut_short, 1);
	assert_int_equal(T.run_after_idle, 7); /* never alongside idle */
	teardown();
	assert_int_equal(T.idle_calls, 1); /* not kicked again: not called at destroy */
}

static void the_bad_arguments_are_refused(void **state)
{
	(void)state;
	uv_loop_t loop;
	struct vw_worker *w = (struct vw_worker *)&loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(vw_worker_create(&loop, run, NULL, done, NULL, 0, &w), -EINVAL);
	assert_null(w);
	assert_int_equal(vw_worker_create(&loop, NULL, NULL, done, NULL, 4, &w), -EINVAL);
	assert_int_equal(vw_worker_create(&loop, run, NULL, NULL, NULL, 4, &w), -EINVAL);
	vw_worker_destroy(NULL);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(jobs_run_off_the_loop_and_come_back_on_it_in_order),
	    cmocka_unit_test(the_bound_holds_until_done_has_run),
	    cmocka_unit_test(destroy_runs_what_is_queued_and_cancels_its_done),
	    cmocka_unit_test(a_submitted_job_cuts_idle_short_and_runs_after_it),
	    cmocka_unit_test(the_bad_arguments_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
