#include "seen.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "vtime.h"
#include "worker.h"

/* A record that meets a locked database is tried again after 1 s, for about 2 minutes
 * (each try itself waits auth's 2 s busy timeout). */
#define SEEN_TRIES 40
#define SEEN_RETRY_MS 1000

/* One job of the worker: the loop fills it, the worker sets rc, the loop frees it. */
struct seen_rec {
	char serial[AUTH_SERIAL_LEN];
	char site[64], org[65], city[129], peer[64];
	int rc; /* the worker's result */
};

struct seen {
	struct vw_worker *worker;
	struct auth *auth; /* the worker's connection */
	/* Loop thread only: serials queued or recorded (open addressing on a hash). */
	uint64_t *set;
	size_t nset;
	unsigned long dropped;
	struct vw_log_limit drop_log;
	/* Worker thread only: a record failed while stopping (auth.db locked), so the jobs
	 * still queued are not tried at all; each try may wait auth's busy timeout. */
	int stop_failed;
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

/* Worker thread. */
static void run_rec(struct vw_worker *w, void *job, void *ud)
{
	struct seen *s = ud;
	struct seen_rec *r = job;
	/* May wait up to auth's busy timeout on a locked auth.db: here, not on the loop. A lock
	 * held longer (a CLI, a backup) is waited out, so the first use of a certificate that
	 * is never used again is still on record. */
	if (s->stop_failed && vw_worker_stopping(w)) {
		/* Shutting down and auth.db would not take the last one: waiting out the lock
		 * again for every queued job could hold shutdown for minutes. The record is only
		 * first-use bookkeeping; the serial is noted again at its next use. */
		r->rc = -ECANCELED;
		return;
	}
	r->rc = auth_agent_seen(s->auth, r->serial, r->site, r->org, r->city, r->peer);
	/* While stopping: one try per job, no retries. */
	for (int tries = 1; r->rc && tries < SEEN_TRIES && !vw_worker_stopping(w); tries++) {
		if (vw_worker_wait(w, SEEN_RETRY_MS))
			break;
		r->rc = auth_agent_seen(s->auth, r->serial, r->site, r->org, r->city, r->peer);
	}
	if (r->rc && vw_worker_stopping(w) && !s->stop_failed) {
		s->stop_failed = 1;
		log_warn("event=agent_seen_skipped reason=stopping serial=%s error=%d "
		         "hint=\"auth.db busy at shutdown; records still queued are not written\"",
		         r->serial, r->rc);
	}
}

/* Loop thread. A failed record leaves the set, so the serial's next request queues it
 * again. */
static void rec_done(void *job, int status, void *ud)
{
	struct seen *s = ud;
	struct seen_rec *r = job;
	if (!status && r->rc)
		set_remove(s, hash_serial(r->serial));
	free(r);
}

int seen_create(uv_loop_t *loop, const char *auth_db_path, struct seen **out, char *err,
                size_t errlen)
{
	*out = NULL;
	int rc = -ENOMEM;
	struct seen *s = calloc(1, sizeof(*s));
	if (!s || !(s->set = calloc(SET_SLOTS, sizeof(*s->set)))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((rc = auth_open(auth_db_path, &s->auth, err, errlen)) != 0)
		goto fail;
	rc = vw_worker_create(loop, run_rec, NULL, rec_done, s, SEEN_QUEUE_MAX, &s->worker);
	if (rc) {
		snprintf(err, errlen, "cannot start the agent-record thread: %s", uv_strerror(rc));
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (s) {
		auth_close(s->auth);
		free(s->set);
	}
	free(s);
	return rc;
}

void seen_note(struct seen *s, const char *serial, const char *site, const char *org,
               const char *city, const char *peer)
{
	uint64_t h = hash_serial(serial);
	if (!s || !serial[0] || !set_add(s, h))
		return;
	struct seen_rec *r = calloc(1, sizeof(*r));
	if (r) {
		snprintf(r->serial, sizeof(r->serial), "%s", serial);
		snprintf(r->site, sizeof(r->site), "%s", site);
		snprintf(r->org, sizeof(r->org), "%s", org);
		snprintf(r->city, sizeof(r->city), "%s", city);
		snprintf(r->peer, sizeof(r->peer), "%s", peer);
	}
	if (!r || vw_worker_submit(s->worker, r)) {
		free(r);
		set_remove(s, h);
		s->dropped++;
		unsigned suppressed = 0;
		if (vw_log_limit_ok(&s->drop_log, vw_mono_ms(), &suppressed))
			log_warn("event=agent_seen_dropped serial=%s queue=%d dropped=%lu "
			         "suppressed=%u",
			         serial, SEEN_QUEUE_MAX, s->dropped, suppressed);
	}
}

void seen_destroy(struct seen *s)
{
	if (!s)
		return;
	/* The worker writes what is queued (cutting retries short), and is joined: its
	 * connection is free to close. */
	vw_worker_destroy(s->worker);
	auth_close(s->auth);
	free(s->set);
	free(s);
}
