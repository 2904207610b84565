#include "seen.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "vtime.h"

/* A record that meets a locked database is tried again after 1 s, for about 2 minutes
 * (each try itself waits auth's 2 s busy timeout). */
#define SEEN_TRIES 40
#define SEEN_RETRY_NS 1000000000ULL

struct seen_rec {
	char serial[AUTH_SERIAL_LEN];
	char site[64], org[65], city[129], peer[64];
	int rc; /* the worker's result */
};

struct seen {
	uv_loop_t *loop;
	uv_async_t done_async;
	uv_thread_t thread;
	int thread_started;
	struct auth *auth; /* the worker's connection */
	/* Shared with the worker, under mu: todo (loop -> worker), done (worker -> loop). */
	uv_mutex_t mu;
	uv_cond_t cond;
	struct seen_rec *todo, *done;
	size_t ntodo, ndone, done_cap;
	int quit;
	/* Loop thread only: serials queued or recorded (open addressing on a hash). */
	uint64_t *set;
	size_t nset;
	unsigned long dropped;
	struct vw_log_limit drop_log;
};

static uint64_t hash_serial(const char *p)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h ? h : 1;
}

#define SET_SLOTS (2 * SEEN_SET_MAX)

/* 1 when added, 0 when already there. A 64-bit hash standing for the serial: a collision
 * (about 2^-40 for the set's size) costs one agent's first-use row, not a security check. */
static int set_add(struct seen *s, uint64_t h)
{
	if (s->nset >= SEEN_SET_MAX) {
		memset(s->set, 0, SET_SLOTS * sizeof(*s->set));
		s->nset = 0;
	}
	for (size_t i = h % SET_SLOTS;; i = (i + 1) % SET_SLOTS) {
		if (s->set[i] == h)
			return 0;
		if (!s->set[i]) {
			s->set[i] = h;
			s->nset++;
			return 1;
		}
	}
}

static void set_remove(struct seen *s, uint64_t h)
{
	/* Rebuild the run after the slot (linear probing keeps no tombstones). */
	size_t i = h % SET_SLOTS;
	while (s->set[i] && s->set[i] != h)
		i = (i + 1) % SET_SLOTS;
	if (!s->set[i])
		return;
	s->set[i] = 0;
	s->nset--;
	for (size_t j = (i + 1) % SET_SLOTS; s->set[j]; j = (j + 1) % SET_SLOTS) {
		uint64_t v = s->set[j];
		s->set[j] = 0;
		s->nset--;
		set_add(s, v);
	}
}

static void worker(void *arg)
{
	struct seen *s = arg;
	uv_mutex_lock(&s->mu);
	for (;;) {
		while (!s->ntodo && !s->quit)
			uv_cond_wait(&s->cond, &s->mu);
		if (!s->ntodo)
			break;
		struct seen_rec r = s->todo[--s->ntodo];
		uv_mutex_unlock(&s->mu);
		/* May wait up to auth's busy timeout on a locked auth.db: here, not on the loop.
		 * A lock held longer (a CLI, a backup) is waited out, so the first use of a
		 * certificate that is never used again is still on record. */
		r.rc = auth_agent_seen(s->auth, r.serial, r.site, r.org, r.city, r.peer);
		uv_mutex_lock(&s->mu);
		for (int tries = 1; r.rc && !s->quit && tries < SEEN_TRIES; tries++) {
			uv_cond_timedwait(&s->cond, &s->mu, SEEN_RETRY_NS);
			if (s->quit)
				break;
			uv_mutex_unlock(&s->mu);
			r.rc = auth_agent_seen(s->auth, r.serial, r.site, r.org, r.city, r.peer);
			uv_mutex_lock(&s->mu);
		}
		if (r.rc && s->ndone < s->done_cap) {
			s->done[s->ndone++] = r;
			uv_async_send(&s->done_async);
		}
	}
	uv_mutex_unlock(&s->mu);
}

/* Failed records leave the set, so the serial's next request queues it again. */
static void on_done(uv_async_t *h)
{
	struct seen *s = h->data;
	uv_mutex_lock(&s->mu);
	size_t n = s->ndone;
	struct seen_rec *d = n ? malloc(n * sizeof(*d)) : NULL;
	if (d)
		memcpy(d, s->done, n * sizeof(*d));
	s->ndone = 0;
	uv_mutex_unlock(&s->mu);
	for (size_t i = 0; d && i < n; i++)
		set_remove(s, hash_serial(d[i].serial));
	free(d);
}

int seen_create(uv_loop_t *loop, const char *auth_db_path, struct seen **out, char *err,
                size_t errlen)
{
	*out = NULL;
	struct seen *s = calloc(1, sizeof(*s));
	if (!s)
		goto nomem;
	s->set = calloc(SET_SLOTS, sizeof(*s->set));
	s->todo = calloc(SEEN_QUEUE_MAX, sizeof(*s->todo));
	s->done = calloc(SEEN_QUEUE_MAX, sizeof(*s->done));
	s->done_cap = SEEN_QUEUE_MAX;
	if (!s->set || !s->todo || !s->done) {
		free(s->set);
		free(s->todo);
		free(s->done);
		free(s);
		goto nomem;
	}
	s->loop = loop;
	int rc = auth_open(auth_db_path, &s->auth, err, errlen);
	if (rc) {
		free(s->set);
		free(s->todo);
		free(s->done);
		free(s);
		return rc;
	}
	uv_mutex_init(&s->mu);
	uv_cond_init(&s->cond);
	uv_async_init(loop, &s->done_async, on_done);
	s->done_async.data = s;
	if ((rc = uv_thread_create(&s->thread, worker, s)) != 0) {
		snprintf(err, errlen, "cannot start the agent-record thread: %s", uv_strerror(rc));
		seen_destroy(s);
		return rc;
	}
	s->thread_started = 1;
	*out = s;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

void seen_note(struct seen *s, const char *serial, const char *site, const char *org,
               const char *city, const char *peer)
{
	uint64_t h = hash_serial(serial);
	if (!s || !serial[0] || !set_add(s, h))
		return;
	struct seen_rec r = {0};
	snprintf(r.serial, sizeof(r.serial), "%s", serial);
	snprintf(r.site, sizeof(r.site), "%s", site);
	snprintf(r.org, sizeof(r.org), "%s", org);
	snprintf(r.city, sizeof(r.city), "%s", city);
	snprintf(r.peer, sizeof(r.peer), "%s", peer);
	uv_mutex_lock(&s->mu);
	int queued = s->ntodo < SEEN_QUEUE_MAX;
	if (queued) {
		s->todo[s->ntodo++] = r;
		uv_cond_signal(&s->cond);
	}
	uv_mutex_unlock(&s->mu);
	if (!queued) {
		set_remove(s, h);
		s->dropped++;
		unsigned suppressed = 0;
		if (vw_log_limit_ok(&s->drop_log, vw_mono_ms(), &suppressed))
			log_warn("event=agent_seen_dropped serial=%s queue=%d dropped=%lu "
			         "suppressed=%u",
			         serial, SEEN_QUEUE_MAX, s->dropped, suppressed);
	}
}

static void on_closed(uv_handle_t *h)
{
	struct seen *s = h->data;
	auth_close(s->auth);
	uv_mutex_destroy(&s->mu);
	uv_cond_destroy(&s->cond);
	free(s->set);
	free(s->todo);
	free(s->done);
	free(s);
}

void seen_destroy(struct seen *s)
{
	if (!s)
		return;
	if (s->thread_started) {
		uv_mutex_lock(&s->mu);
		s->quit = 1;
		uv_cond_signal(&s->cond);
		uv_mutex_unlock(&s->mu);
		uv_thread_join(&s->thread);
		s->thread_started = 0;
	}
	uv_close((uv_handle_t *)&s->done_async, on_closed);
}
