#include "scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "probe_playback.h"
#include "probe_recording.h"
#include "probe_stream.h"
#include "sessions.h"
#include "vtime.h"

struct sched_camera {
	struct scheduler *s;
	const struct camera_conf *conf;
	uv_timer_t timer;
	int in_flight;
	int last_status; /* -1 before the first result: logs only changes */
	/* Worker sizing (loop thread): the camera's recent check length and its cadence now. */
	double check_ms;    /* moving average of its checks' check_ms */
	double interval_ms; /* the cadence its last timer was armed with */
	/* What its results said, for when the next one carries a thumbnail (loop thread; the
	 * job works on a copy taken when it was queued). */
	struct thumb_memory thumb;
};

/* A camera check (cam set, one result) or a recording scan (cam NULL, many results). */
struct sched_job {
	struct sched_job *next;
	struct sched_camera *cam;
	struct vw_result *results;
	size_t n;
	int playback;         /* with cam NULL: a playback round rather than a recording scan */
	int64_t interval_ms;  /* the target's cadence at this check: metric interval_ms */
	struct vw_result one; /* a camera check's result lives here; one.thumb is the job's */
	/* The camera's thumbnail memory, as it was when the job was queued. */
	struct thumb_memory thumb;
};

struct job_queue {
	struct sched_job *head, *tail;
};

struct scheduler {
	uv_loop_t *loop;
	const struct agent_conf *cfg;
	struct sched_camera *cams;
	size_t ncams;
	pthread_t *threads;
	size_t nthreads;    /* running workers (grown by the loop thread only) */
	size_t max_threads; /* threads[] capacity: workers, or workers_max when sizing */
	int sizing;         /* workers = 0: nthreads follows the load */
	double busy;        /* workers the cadence keeps busy: sum of check_ms / interval_ms */
	int short_logged;   /* event=workers_short said once per shortage */

	pthread_mutex_t mu; /* guards todo, done, stopping */
	pthread_cond_t cv;
	struct job_queue todo, done;
	int stopping;

	uv_async_t async;
	uv_timer_t rec_timer;
	struct recording_scan *rec; /* NULL when recordings are not checked */
	int rec_in_flight;
	uv_timer_t pb_timer;
	struct playback *pb; /* NULL when no camera is played back from a recorder */
	int pb_in_flight;
	int pb_cancel; /* set (atomically) at stop: ends a round's pauses */
	scheduler_result_cb result_cb;
	void *result_arg;

	size_t once_left; /* run_once: results still to come */
	scheduler_done_cb once_cb;
	void *once_arg;

	int open_handles;
	scheduler_done_cb closed_cb;
	void *closed_arg;
	uint64_t rng; /* xorshift state for jitter: no shared global */
};

static void push(struct job_queue *q, struct sched_job *j)
{
	j->next = NULL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

static struct sched_job *pop(struct job_queue *q)
{
	struct sched_job *j = q->head;
	if (j) {
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
	}
	return j;
}

static uint64_t next_rand(struct scheduler *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return s->rng;
}

void scheduler_fill_req(const struct agent_conf *cfg, const struct camera_conf *c,
                        struct probe_stream_req *req)
{
	const struct picture_section *pc = &cfg->picture;
	memset(req, 0, sizeof(*req));
	req->name = c->name;
	req->url = c->url;
	req->transport = c->transport;
	req->timeout_ms = cfg->agent.check_timeout_ms;
	req->window_ms = c->window_ms;
	req->min_width = c->min_width ? c->min_width : pc->min_width;
	req->min_height = c->min_height ? c->min_height : pc->min_height;
	req->min_fps = (double)(c->min_fps ? c->min_fps : pc->min_fps);
	req->min_bitrate_kbps = (double)pc->min_bitrate_kbps;
	picture_opts_default(&req->picture);
	req->picture.max_frames = (int)pc->analysis_frames;
	req->picture.dark_luma = pc->dark_luma;
	req->picture.bright_luma = pc->bright_luma;
	req->picture.blur_max = pc->blur_max;
	req->picture.freeze_noise_db = (double)pc->freeze_noise_db;
	req->picture.moved_ssim = pc->moved_ssim;
	req->picture.noise = pc->noise;
	req->picture.color_cast = pc->color_cast;
	req->picture.stripes = pc->stripes;
	req->picture.occluded_pct = pc->occluded_pct;
	req->state_dir = cfg->agent.state_dir; /* the camera's reference view, if taken */
	req->credentials = c->credentials;
}

static void *worker_main(void *arg)
{
	struct scheduler *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct sched_job *j;
		while (!(j = pop(&s->todo)) && !s->stopping)
			pthread_cond_wait(&s->cv, &s->mu);
		if (!j)
			break;
		pthread_mutex_unlock(&s->mu);
		if (j->cam) {
			struct probe_stream_req req;
			scheduler_fill_req(s->cfg, j->cam->conf, &req);
			req.thumb_interval_ms = s->cfg->agent.thumbnail_interval_ms;
			req.thumb_memory = &j->thumb;
			probe_stream_run(&req, &j->one);
			/* The session is the one running when the check began. */
			struct sessions_view v;
			sessions_view_get(s->cfg, &v);
			const struct session_conf *se =
			    sessions_view_at(&v, j->cam->conf->room, j->one.ts_ms);
			if (se)
				snprintf(j->one.session, sizeof(j->one.session), "%s", se->id);
			sessions_view_put(&v);
			/* The camera's next check starts its interval after this one ends (timers
			 * re-arm on completion), so the time between two results is the interval
			 * plus this check's own length: that is the cadence the collector's
			 * staleness bound (2 x interval_ms) must cover, or a 2.5 s check at a 2 s
			 * session cadence would leave a gap after every result. */
			int64_t took = vw_now_ms() - j->one.ts_ms;
			vw_result_set_metric(&j->one, VW_M_INTERVAL_MS,
			                     (double)(j->interval_ms + (took > 0 ? took : 0)));
			j->results = &j->one;
			j->n = 1;
		} else if (j->playback) {
			size_t max = playback_max_results(s->cfg);
			j->results = calloc(max, sizeof(*j->results));
			if (j->results)
				playback_run(s->pb, vw_now_ms(), &s->pb_cancel, j->results, max,
				             &j->n);
			for (size_t k = 0; j->results && k < j->n; k++)
				vw_result_set_metric(
				    &j->results[k], VW_M_INTERVAL_MS,
				    (double)s->cfg->recordings.playback_interval_ms);
		} else {
			size_t max = recording_scan_max_results(s->cfg);
			j->results = calloc(max, sizeof(*j->results));
			if (j->results)
				recording_scan_run(s->rec, vw_now_ms(), j->results, max, &j->n);
			for (size_t k = 0; j->results && k < j->n; k++)
				vw_result_set_metric(&j->results[k], VW_M_INTERVAL_MS,
				                     (double)s->cfg->recordings.scan_interval_ms);
		}
		pthread_mutex_lock(&s->mu);
		push(&s->done, j);
		uv_async_send(&s->async);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Auto-sizing (workers = 0). A camera keeps check_ms / interval_ms of one worker busy; the
 * pool is sized so that this load fills VW_SCHED_UTIL of it. At full use every check would
 * wait for a free worker and the cadence would stretch by the wait; at 70 % a check rarely
 * waits (checks are spread by the timers' jitter), and 64 cameras of ~3 s checks at the 15 s
 * session cadence need 13 busy, so 19 workers. Threads only grow: an idle one costs its stack's
 * touched pages, and the next session needs them back. */
#define VW_SCHED_UTIL 0.7
/* Before a camera's first result its check is assumed to be its read window plus a second
 * for the first keyframe (cameras send one every 1-2 s). */
#define VW_SCHED_FIRST_KEY_MS 1000
/* The old fixed default, kept as the floor: a --once cycle runs every camera at once, and a
 * small venue loses nothing to 4 idle threads. */
#define VW_SCHED_MIN_WORKERS 4

static void *worker_main(void *arg);

size_t scheduler_workers_for(double busy, size_t min, size_t max)
{
	double want = busy / VW_SCHED_UTIL;
	size_t n = want >= (double)max ? max : (size_t)want + (want > (double)(size_t)want);
	return n < min ? (min < max ? min : max) : n;
}

/* Loop thread: start workers until the load fits (never past max_threads). */
static void resize(struct scheduler *s)
{
	if (!s->sizing || s->stopping)
		return;
	double busy = 0;
	for (size_t i = 0; i < s->ncams; i++)
		if (s->cams[i].interval_ms > 0)
			busy += s->cams[i].check_ms / s->cams[i].interval_ms;
	s->busy = busy;
	size_t want = scheduler_workers_for(busy, VW_SCHED_MIN_WORKERS, s->max_threads);
	while (s->nthreads < want) {
		if (pthread_create(&s->threads[s->nthreads], NULL, worker_main, s)) {
			log_warn("event=worker_not_started workers=%zu", s->nthreads);
			break;
		}
		s->nthreads++;
		log_debug("event=worker_started workers=%zu busy=%.1f", s->nthreads, busy);
	}
	/* More than all the workers busy: checks queue and the cadence cannot hold. */
	if (busy > (double)s->max_threads) {
		if (!s->short_logged)
			log_warn("event=workers_short busy=%.1f workers_max=%zu", busy,
			         s->max_threads);
		s->short_logged = 1;
	} else {
		s->short_logged = 0;
	}
}

int scheduler_workers(const struct scheduler *s, char *out, size_t outlen)
{
	double check = 0;
	size_t measured = 0;
	for (size_t i = 0; i < s->ncams; i++)
		if (s->cams[i].last_status >= 0) {
			check += s->cams[i].check_ms;
			measured++;
		}
	int n;
	if (!s->sizing)
		n = snprintf(out, outlen, "%zu (fixed by workers =)", s->nthreads);
	else
		n = snprintf(out, outlen,
		             "%zu of at most %zu, sized for %zu cameras: checks take %.1f s on "
		             "average, %.1f workers busy at the current cadence%s",
		             s->nthreads, s->max_threads, s->ncams,
		             measured ? check / (double)measured / 1000 : 0, s->busy,
		             s->busy > (double)s->max_threads
		                 ? " (too few: raise workers_max or the cadence's interval)"
		                 : "");
	return n >= 0 && (size_t)n < outlen ? 0 : -ENAMETOOLONG;
}

static void log_change(struct sched_camera *cam, const struct vw_result *r)
{
	if (cam->last_status == (int)r->status)
		return;
	cam->last_status = (int)r->status;
	char faults[256] = "";
	size_t off = 0;
	for (unsigned i = 0; i < r->nfaults && off < sizeof(faults); i++)
		off += (size_t)snprintf(faults + off, sizeof(faults) - off, "%s%s", i ? "," : "",
		                        r->faults[i]);
	if (r->status == VW_STATUS_OK)
		log_info("event=camera_status camera=%s status=ok", r->target);
	else
		log_warn("event=camera_status camera=%s status=%s faults=%s", r->target,
		         vw_status_name(r->status), faults[0] ? faults : "-");
}

/* Loop thread: hand finished checks to result_cb in one batch (one outbox commit). */
static void deliver(struct scheduler *s)
{
	pthread_mutex_lock(&s->mu);
	struct sched_job *list = s->done.head;
	s->done.head = s->done.tail = NULL;
	pthread_mutex_unlock(&s->mu);

	size_t n = 0, njobs = 0, ncam = 0;
	for (struct sched_job *j = list; j; j = j->next) {
		n += j->n;
		njobs++;
		ncam += j->cam ? 1 : 0;
	}
	struct vw_result *batch = n ? malloc(n * sizeof(*batch)) : NULL;
	size_t i = 0;
	for (struct sched_job *j = list; j; j = j->next) {
		if (j->cam) {
			double ms;
			j->cam->in_flight = 0;
			/* A quarter of the newest check: one slow check (a reconnecting camera)
			 * moves the sizing, a run of them moves it fully within a few rounds. */
			if (vw_result_get_metric(&j->one, vw_metric_name(VW_M_CHECK_MS), &ms))
				j->cam->check_ms = j->cam->last_status < 0
				                       ? ms
				                       : j->cam->check_ms * 0.75 + ms * 0.25;
			log_change(j->cam, &j->one);
			thumb_remember(&j->cam->thumb, &j->one, j->one.mono_ms,
			               j->one.thumb != NULL);
		} else if (j->playback) {
			s->pb_in_flight = 0;
		} else {
			s->rec_in_flight = 0;
		}
		for (size_t k = 0; k < j->n; k++) {
			if (batch)
				batch[i++] = j->results[k];
			else /* out of memory: deliver one by one rather than lose results */
				s->result_cb(s->result_arg, &j->results[k], 1);
		}
	}
	if (batch && n)
		s->result_cb(s->result_arg, batch, n);
	free(batch);
	if (ncam)
		resize(s);
	while (list) {
		struct sched_job *next = list->next;
		if (list->results != &list->one)
			free(list->results);
		free((void *)list->one.thumb); /* committed with its row by now, or lost with it */
		free(list);
		list = next;
	}
	n = njobs; /* run_once counts jobs */
	if (s->once_cb) {
		s->once_left = s->once_left > n ? s->once_left - n : 0;
		if (!s->once_left) {
			scheduler_done_cb cb = s->once_cb;
			s->once_cb = NULL;
			cb(s->once_arg);
		}
	}
}

static void on_async(uv_async_t *h)
{
	deliver(h->data);
}

static int enqueue(struct sched_camera *cam, uint64_t interval_ms)
{
	struct scheduler *s = cam->s;
	if (cam->in_flight) {
		log_debug("event=check_skipped camera=%s reason=previous_check_running",
		          cam->conf->name);
		return 0;
	}
	struct sched_job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->cam = cam;
	j->interval_ms = (int64_t)interval_ms;
	j->thumb = cam->thumb;
	cam->in_flight = 1;
	pthread_mutex_lock(&s->mu);
	push(&s->todo, j);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* ±10% jitter keeps many agents (and many cameras) from checking in lock-step. */
static uint64_t jittered(struct scheduler *s, uint64_t interval)
{
	uint64_t spread = interval / 5 + 1;
	return interval - interval / 10 + next_rand(s) % spread;
}

/* Faster while an exam session runs in the camera's room, or starts before the next
 * check would: the session's first minutes matter as much as the rest. */
static uint64_t camera_interval(struct scheduler *s, const struct sched_camera *cam)
{
	const struct agent_conf *cfg = s->cfg;
	int64_t now = vw_now_ms(), interval = cfg->agent.interval_ms;
	struct sessions_view v;
	sessions_view_get(cfg, &v);
	for (size_t i = 0; i < v.n; i++) {
		const struct session_conf *se = &v.items[i];
		if (!agent_conf_session_has_room(se, cam->conf->room) || se->end_ms <= now)
			continue;
		if (se->start_ms <= now) {
			interval = cfg->agent.session_interval_ms;
			break;
		}
		if (se->start_ms - now < interval)
			interval = se->start_ms - now > cfg->agent.session_interval_ms
			               ? se->start_ms - now
			               : cfg->agent.session_interval_ms;
	}
	sessions_view_put(&v);
	return (uint64_t)interval;
}

/* A first delay uniform over the interval: cameras armed at one moment stay spread over it
 * at every later check (each re-arms when it fires). */
static uint64_t spread(struct scheduler *s, uint64_t interval)
{
	return next_rand(s) % (interval ? interval : 1);
}

static void on_rec_timer(uv_timer_t *t)
{
	struct scheduler *s = t->data;
	if (s->rec_in_flight)
		return; /* a scan of a huge tree is still running: skip, do not pile up */
	struct sched_job *j = calloc(1, sizeof(*j));
	if (!j)
		return;
	s->rec_in_flight = 1;
	pthread_mutex_lock(&s->mu);
	push(&s->todo, j);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void on_pb_timer(uv_timer_t *t)
{
	struct scheduler *s = t->data;
	if (s->pb_in_flight)
		return; /* a round paced to its bandwidth share is still running */
	struct sched_job *j = calloc(1, sizeof(*j));
	if (!j)
		return;
	j->playback = 1;
	s->pb_in_flight = 1;
	pthread_mutex_lock(&s->mu);
	push(&s->todo, j);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void on_timer(uv_timer_t *t)
{
	struct sched_camera *cam = t->data;
	struct scheduler *s = cam->s;
	/* The cadence until the next check is the one this check's result stands for. */
	uint64_t interval = camera_interval(s, cam);
	if ((double)interval != cam->interval_ms) {
		cam->interval_ms = (double)interval;
		resize(s); /* a session began (or ended): the load changed */
	}
	if (enqueue(cam, interval))
		log_warn("event=check_not_queued camera=%s err=no_memory", cam->conf->name);
	uv_timer_start(t, on_timer, jittered(s, interval), 0);
}

void scheduler_sessions_changed(struct scheduler *s)
{
	if (s->stopping)
		return;
	for (size_t i = 0; i < s->ncams; i++) {
		struct sched_camera *cam = &s->cams[i];
		if (!uv_is_active((uv_handle_t *)&cam->timer))
			continue; /* not started (--once) */
		/* Anywhere in the new interval, not all of them one interval from now: armed
		 * together, 64 cameras would fire within the jitter's 3 s every 15 s and queue
		 * for the workers (cadence64.sh: gaps of 17.8 s at a 15 s cadence). */
		uint64_t next = spread(s, camera_interval(s, cam));
		/* Only sooner: a session that went away slows the camera at its next check. */
		if (next < uv_timer_get_due_in(&cam->timer)) {
			log_debug("event=check_rescheduled camera=%s in_ms=%llu", cam->conf->name,
			          (unsigned long long)next);
			uv_timer_start(&cam->timer, on_timer, next, 0);
		}
	}
}

int scheduler_create(uv_loop_t *loop, const struct agent_conf *cfg, scheduler_result_cb cb,
                     void *arg, struct scheduler **out)
{
	struct scheduler *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->cfg = cfg;
	s->result_cb = cb;
	s->result_arg = arg;
	s->rng = (uint64_t)vw_now_ms() * 2654435761u ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ull;
	s->ncams = cfg->cameras.n;
	s->cams = calloc(s->ncams ? s->ncams : 1, sizeof(*s->cams));
	s->sizing = cfg->agent.workers == 0;
	s->max_threads = (size_t)(s->sizing ? cfg->agent.workers_max : cfg->agent.workers);
	s->nthreads = s->sizing ? scheduler_workers_for(0, VW_SCHED_MIN_WORKERS, s->max_threads)
	                        : s->max_threads;
	s->threads = calloc(s->max_threads, sizeof(*s->threads));
	if (!s->cams || !s->threads)
		goto fail;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (uv_async_init(loop, &s->async, on_async))
		goto fail_sync;
	s->async.data = s;
	uv_timer_init(loop, &s->rec_timer);
	s->rec_timer.data = s;
	uv_timer_init(loop, &s->pb_timer);
	s->pb_timer.data = s;
	s->open_handles = 3;
	if (playback_create(cfg, &s->pb))
		log_error("event=playback_unavailable err=no_memory");
	if (cfg->recordings.root && cfg->recordings.root[0]) {
		char err[512];
		if (recording_scan_open(cfg, &s->rec, err, sizeof(err)))
			log_error("event=recordings_unavailable err=\"%s\"", err);
	}
	for (size_t i = 0; i < s->ncams; i++) {
		struct sched_camera *cam = &s->cams[i];
		cam->s = s;
		cam->conf = agent_conf_camera(cfg, i);
		cam->last_status = -1;
		cam->check_ms = (double)(cam->conf->window_ms + VW_SCHED_FIRST_KEY_MS);
		uv_timer_init(loop, &cam->timer);
		cam->timer.data = cam;
		s->open_handles++;
	}
	size_t started = 0;
	for (; started < s->nthreads; started++) {
		if (pthread_create(&s->threads[started], NULL, worker_main, s))
			break;
	}
	s->nthreads = started;
	if (!started) {
		log_error("event=scheduler_error err=\"cannot start worker threads\"");
		/* handles are open: the caller must stop (close) before destroying */
	}
	*out = s;
	return started ? 0 : -EAGAIN;
fail_sync:
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
fail:
	free(s->cams);
	free(s->threads);
	free(s);
	return -ENOMEM;
}

int scheduler_start(struct scheduler *s)
{
	uint64_t interval = (uint64_t)s->cfg->agent.interval_ms;
	if (s->rec) /* first scan soon, then at its own cadence */
		uv_timer_start(&s->rec_timer, on_rec_timer, 1000,
		               (uint64_t)s->cfg->recordings.scan_interval_ms);
	if (s->pb) /* first round soon, then at its own cadence */
		uv_timer_start(&s->pb_timer, on_pb_timer, 1000,
		               (uint64_t)s->cfg->recordings.playback_interval_ms);
	for (size_t i = 0; i < s->ncams; i++) {
		/* Spread the first checks over the interval, but start soon: within 5 s or,
		 * when a session's cadence is in force, over that interval (the checks stay
		 * spread, see spread). */
		uint64_t cam_interval = camera_interval(s, &s->cams[i]);
		uint64_t first = spread(s, cam_interval < interval ? cam_interval
		                           : interval < 5000       ? interval
		                                                   : 5000);
		s->cams[i].interval_ms = (double)cam_interval;
		uv_timer_start(&s->cams[i].timer, on_timer, first, 0);
	}
	resize(s); /* a session already running: its cadence's workers from the start */
	return 0;
}

int scheduler_run_once(struct scheduler *s, scheduler_done_cb done_cb, void *arg)
{
	s->once_cb = done_cb;
	s->once_arg = arg;
	s->once_left = s->ncams + (s->rec ? 1 : 0) + (s->pb ? 1 : 0);
	if (s->rec)
		on_rec_timer(&s->rec_timer);
	if (s->pb)
		on_pb_timer(&s->pb_timer);
	if (!s->once_left) {
		s->once_cb = NULL;
		done_cb(arg);
		return 0;
	}
	for (size_t i = 0; i < s->ncams; i++) {
		int rc = enqueue(&s->cams[i], camera_interval(s, &s->cams[i]));
		if (rc)
			return rc;
	}
	return 0;
}

static void handle_closed(struct scheduler *s)
{
	if (--s->open_handles == 0 && s->closed_cb)
		s->closed_cb(s->closed_arg);
}

static void on_own_closed(uv_handle_t *h)
{
	handle_closed(h->data);
}
static void on_cam_closed(uv_handle_t *h)
{
	handle_closed(((struct sched_camera *)h->data)->s);
}

void scheduler_stop(struct scheduler *s, scheduler_done_cb closed_cb, void *arg)
{
	s->closed_cb = closed_cb;
	s->closed_arg = arg;
	for (size_t i = 0; i < s->ncams; i++)
		uv_timer_stop(&s->cams[i].timer);
	uv_timer_stop(&s->rec_timer);
	uv_timer_stop(&s->pb_timer);
	__atomic_store_n(&s->pb_cancel, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	struct sched_job *j;
	while ((j = pop(&s->todo))) { /* not started: nothing was checked, nothing is lost */
		if (j->cam)
			j->cam->in_flight = 0;
		free(j);
	}
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	/* Each running check ends by its deadline, so this join is bounded. */
	for (size_t i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	deliver(s); /* stopping: no resize; nthreads still says what ran, for `status` */
	s->nthreads = 0;
	uv_close((uv_handle_t *)&s->async, on_own_closed);
	uv_close((uv_handle_t *)&s->rec_timer, on_own_closed);
	uv_close((uv_handle_t *)&s->pb_timer, on_own_closed);
	for (size_t i = 0; i < s->ncams; i++)
		uv_close((uv_handle_t *)&s->cams[i].timer, on_cam_closed);
}

void scheduler_destroy(struct scheduler **sp)
{
	struct scheduler *s = *sp;
	if (!s)
		return;
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	recording_scan_close(&s->rec);
	playback_destroy(&s->pb);
	free(s->cams);
	free(s->threads);
	free(s);
	*sp = NULL;
}
