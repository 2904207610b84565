#include "events.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "result.h"
#include "session.h"
#include "vtime.h"

struct sub {
	struct events *hub;
	struct conn *conn;
	/* A copy: the scope is fixed at subscription. The credential's id (person.id, and
	 * sess.hash when by_session) and expiry times are what later checks go by; a recheck
	 * moves expires_ms and last_seen_ms on. */
	struct authz_principal who;
	uint64_t id;         /* a recheck's answer finds its subscriber by this, not a pointer */
	uint64_t checked_ms; /* loop time of the last check (subscription counts as one) */
	int checking;        /* a recheck is on the worker */
	/* issue 16 (A): the last stored event id sent (or skipped as out of scope); while
	 * resuming, live events in scope wait in pending until the backlog is read. */
	int64_t last_sent, page_end;          /* page_end: the last id of the backlog read so far */
	int resuming, reading, waiting, more; /* more: the last backlog page was full */
	struct store_events outq;             /* backlog copies, in id order, to send */
	size_t outq_next;
	struct store_events pending; /* live events held while resuming */
	/* A resume's bounds (events.h): a slot to read with, or queued for one; the bytes of
	 * the copies held (outq unsent and pending; at most bound, half each); its end. */
	int slot, queued;
	size_t held, pending_bytes, bound;
	uint64_t deadline; /* loop time */
	unsigned pages;    /* backlog reads */
	/* Frames queued this loop turn, written as one conn_stream_write (one TLS record run)
	 * by the hub's flush; at most bound bytes (past it the queue is written at once and
	 * the connection's own bound decides). dirty: on the hub's flush list. */
	struct vw_buf out;
	int dirty;
	struct sub *dprev, *dnext;
	/* Connected without Last-Event-ID before the hub knew the highest stored id: it gets
	 * `id: N` once the hub does. */
	int want_id;
	struct sub *prev, *next;
};

struct events {
	/* Ticks every 15 s, or every stream_recheck when shorter: expiries and rechecks on
	 * each tick, a heartbeat when 15 s have passed since the last. */
	uv_timer_t heartbeat;
	uint64_t last_beat_ms;
	int timer_started, closing;
	struct session *session; /* NULL: no rechecks (expiry times still end streams) */
	uint64_t next_sub_id;
	size_t checking; /* rechecks on the worker, at most EVENTS_CHECKS_MAX */
	size_t queue_bytes;
	struct sub *head;
	size_t count;
	uint64_t dropped;
	/* issue 16 (A) */
	struct store *store; /* the backlog's source; NULL: no resume */
	struct {
		events_sink_fn fn;
		void *ud;
	} sinks[EVENTS_SINKS_MAX];
	size_t nsinks;
	struct events_feed_opts feed;
	uv_timer_t feed_timer;
	int feed_started, tick_inflight;
	int64_t since_ms;     /* the feed's start: silence is counted from here at the earliest */
	int tick_unavailable; /* the last tick failed with -ENOTCONN (logged once) */
	struct store_write *tick;
	/* resumes: with a slot (reading), queued for one; the timer of deadlines and turns */
	size_t resumes_active, resumes_waiting;
	uv_timer_t resume_timer;
	/* Coalescing: subscribers with queued frames, flushed by a 0 ms timer once a turn. */
	uv_timer_t flush_timer;
	struct sub *dirty_head;
	uint64_t flushes, flush_writes;
	/* The highest stored event id: the store's at start (read once), then each published
	 * one. last_id_known once the store's answer came; a quiet subscriber (no
	 * Last-Event-ID) gets `id: last_id` so its client can resume from there. */
	int64_t last_id, published_max, store_last;
	int last_id_known, last_id_reading;
};

static void resume_kick(struct events *h);
static void flush_sub(struct sub *s);

/* The stream no longer resumes (done, told to reload, or gone): its slot goes to the next. */
static void resume_release(struct sub *s)
{
	struct events *h = s->hub;
	if (s->slot) {
		s->slot = 0;
		h->resumes_active--;
		resume_kick(h);
	}
	if (s->queued) {
		s->queued = 0;
		h->resumes_waiting--;
	}
}

static void unlink_sub(struct sub *s)
{
	struct events *h = s->hub;
	if (s->prev)
		s->prev->next = s->next;
	else
		h->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	h->count--;
	if (s->dirty) {
		if (s->dprev)
			s->dprev->dnext = s->dnext;
		else
			h->dirty_head = s->dnext;
		if (s->dnext)
			s->dnext->dprev = s->dprev;
	}
	vw_buf_free(&s->out);
	resume_release(s);
	store_events_clear(&s->pending);
	store_events_clear(&s->outq);
	free(s);
}

/* The stream ended from the connection's side (peer left, shutdown). */
static void on_stream_end(void *ud, struct conn *c)
{
	(void)c;
	unlink_sub(ud);
}

/* Writes s's queued frames now; a write that fails has ended its stream: s is freed.
 * Returns 0, or -1 when s is gone. */
static int write_out(struct sub *s)
{
	struct events *h = s->hub;
	if (s->dirty) {
		if (s->dprev)
			s->dprev->dnext = s->dnext;
		else
			h->dirty_head = s->dnext;
		if (s->dnext)
			s->dnext->dprev = s->dprev;
		s->dirty = 0;
		s->dprev = s->dnext = NULL;
	}
	if (!s->out.len)
		return 0;
	int rc = conn_stream_write(s->conn, s->out.data, s->out.len);
	h->flush_writes++;
	vw_buf_reset(&s->out);
	if (rc == -ENOBUFS)
		h->dropped++;
	if (rc) {
		unlink_sub(s);
		return -1;
	}
	return 0;
}

static void flush_sub(struct sub *s)
{
	(void)write_out(s);
}

/* Once a loop turn (a 0 ms timer runs before the next poll): one write per subscriber with
 * frames queued, however many events the turn published. */
static void on_flush(uv_timer_t *t)
{
	struct events *h = t->data;
	h->flushes++;
	while (h->dirty_head)
		flush_sub(h->dirty_head);
}

/* Queues a frame for one subscriber, written at the turn's flush. Past the stream's bound
 * the queue goes at once (the connection's bound then cuts a slow reader off, as a direct
 * write would). Returns 0, or -1 when the stream ended (s is freed). */
static int send_to(struct sub *s, const char *data, size_t len)
{
	struct events *h = s->hub;
	if (s->out.len + len > s->bound && write_out(s))
		return -1;
	if (len > s->bound || vw_buf_append(&s->out, data, len)) {
		/* Larger than the queue itself (or no memory): what is queued goes first, in
		 * order, then this, and the connection decides (past its bound it ends). */
		if (write_out(s))
			return -1;
		int rc = conn_stream_write(s->conn, data, len);
		if (rc == -ENOBUFS)
			h->dropped++;
		if (rc) {
			unlink_sub(s);
			return -1;
		}
		return 0;
	}
	if (!s->dirty) {
		s->dirty = 1;
		s->dprev = NULL;
		s->dnext = h->dirty_head;
		if (h->dirty_head)
			h->dirty_head->dprev = s;
		h->dirty_head = s;
		if (!h->closing && !uv_is_active((uv_handle_t *)&h->flush_timer))
			uv_timer_start(&h->flush_timer, on_flush, 0, 0);
	}
	return 0;
}

/* Room for more frames on s before its backlog reaches half the bound (conn_stream_room),
 * counting what is queued here and not yet written. */
static size_t sub_room(const struct sub *s)
{
	size_t r = conn_stream_room(s->conn);
	return r > s->out.len ? r - s->out.len : 0;
}

/* Ends one stream from our side: its credential no longer admits it. The client's
 * EventSource reconnects and is asked to authenticate again. */
static void end_sub(struct sub *s, const char *reason)
{
	log_info("event=stream_ended peer=%s token=%s reason=%s", conn_peer(s->conn),
	         s->who.person.id, reason);
	conn_stream_end(s->conn);
	unlink_sub(s);
}

static const char *recheck_reason(int rc)
{
	const char *r = authz_credential_reason(rc);
	if (r)
		return r;
	/* -ENOENT: logged out (elsewhere), purged, or the token is gone; anything else: auth.db
	 * did not answer, and the stream fails closed. */
	return rc == -ENOENT ? "ended_session" : "check_failed";
}

/* A recheck back from the session worker (loop thread). */
static void on_rechecked(void *ud, uint64_t tag, int rc, const struct auth_principal *p,
                         const struct auth_session *sess)
{
	struct events *h = ud;
	h->checking--;
	struct sub *s = h->head;
	while (s && s->id != tag)
		s = s->next;
	if (!s)
		return; /* the stream ended meanwhile */
	s->checking = 0;
	s->checked_ms = uv_now(h->heartbeat.loop);
	if (rc) {
		end_sub(s, recheck_reason(rc));
		return;
	}
	s->who.person.expires_ms = p->expires_ms;
	if (s->who.by_session) {
		s->who.sess.last_seen_ms = sess->last_seen_ms;
		s->who.sess.expires_ms = sess->expires_ms;
	}
}

/* Whether the credential's own times have run out (wall clock, as auth.db's are). */
static const char *expired(const struct sub *s, int64_t now)
{
	if (now >= s->who.person.expires_ms)
		return "expired_token";
	if (s->who.by_session && now >= s->who.sess.expires_ms)
		return "expired_session";
	return NULL;
}

/* Whether s is due a recheck: the interval has passed, or the session's idle end as last
 * seen (another request may have moved it on since: only auth.db can say). */
static int recheck_due(const struct events *h, const struct sub *s, uint64_t mono, int64_t now)
{
	const struct session_opts *o = session_opts(h->session);
	if (mono - s->checked_ms >= (uint64_t)o->recheck_ms)
		return 1;
	return s->who.by_session && now >= s->who.sess.last_seen_ms + o->idle_ms;
}

static void on_tick(uv_timer_t *t)
{
	struct events *h = t->data;
	static const char beat[] = ": hb\n\n";
	uint64_t mono = uv_now(t->loop);
	int64_t now = vw_now_ms();
	int beat_due = mono - h->last_beat_ms >= EVENTS_HEARTBEAT_MS;
	if (beat_due)
		h->last_beat_ms = mono;
	struct sub *s = h->head, *next;
	for (; s; s = next) {
		next = s->next;
		if (s->who.kind == AUTHZ_PERSON) {
			const char *why = expired(s, now);
			if (why) {
				end_sub(s, why);
				continue;
			}
			const unsigned char *hash = s->who.by_session ? s->who.sess.hash : NULL;
			if (h->session && !s->checking && h->checking < EVENTS_CHECKS_MAX &&
			    recheck_due(h, s, mono, now) &&
			    session_recheck(h->session, s->who.person.id, hash, on_rechecked, h,
			                    s->id) == 0) {
				s->checking = 1;
				h->checking++;
			}
			/* A recheck not submitted (the worker's queue full) is tried next tick. */
		}
		if (beat_due)
			send_to(s, beat, sizeof(beat) - 1);
	}
}

int events_create(uv_loop_t *loop, size_t queue_bytes, struct events **out)
{
	struct events *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	int rc = uv_timer_init(loop, &h->heartbeat);
	if (rc) {
		free(h);
		return rc;
	}
	h->heartbeat.data = h;
	uv_timer_init(loop, &h->resume_timer); /* cannot fail once the first did not */
	h->resume_timer.data = h;
	uv_unref((uv_handle_t *)&h->resume_timer);
	uv_timer_init(loop, &h->flush_timer);
	h->flush_timer.data = h;
	uv_unref((uv_handle_t *)&h->flush_timer);
	h->store_last = -1;
	h->queue_bytes = queue_bytes;
	/* Unreferenced: the heartbeat alone must not keep the loop alive at shutdown. */
	uv_unref((uv_handle_t *)&h->heartbeat);
	*out = h;
	return 0;
}

void events_set_session(struct events *h, struct session *session)
{
	h->session = session;
}

void events_end_session(struct events *h, const unsigned char hash[AUTH_HASH_LEN],
                        const char *reason)
{
	struct sub *s = h->head, *next;
	for (; s; s = next) {
		next = s->next;
		if (s->who.by_session && memcmp(s->who.sess.hash, hash, AUTH_HASH_LEN) == 0)
			end_sub(s, reason);
	}
}

void events_set_queue(struct events *h, size_t queue_bytes)
{
	h->queue_bytes = queue_bytes;
}

static void backlog_read(struct events *h, struct sub *s);

static struct sub *find_sub(struct events *h, uint64_t id)
{
	struct sub *s = h->head;
	while (s && s->id != id)
		s = s->next;
	return s;
}

/* The client is told to reload: what it missed is no longer kept (or never was here). The
 * stream goes on live from the newest event. */
static void send_reload(struct sub *s, const char *reason)
{
	char f[96];
	int n = snprintf(f, sizeof(f), "event: reload\ndata: {\"reason\":\"%s\"}\n\n", reason);
	s->resuming = s->more = 0;
	resume_release(s);
	store_events_clear(&s->pending);
	store_events_clear(&s->outq);
	s->outq_next = 0;
	s->held = s->pending_bytes = 0;
	send_to(s, f, (size_t)n);
}

/* What a held copy costs: the struct and its strings. */
static size_t event_bytes(const struct store_event *ev)
{
	return sizeof(*ev) + strlen(ev->type) + strlen(ev->site) + strlen(ev->org) +
	       strlen(ev->city) + strlen(ev->data) + 5;
}

/* A resume past its bounds (held bytes, deadline). A client that does not read (the stream
 * waits on its socket) is cut off as a slow reader; one that reads is told to reload and
 * goes on live: what it missed comes from the API instead. s may be freed. */
static void resume_give_up(struct sub *s, const char *reason)
{
	if (s->waiting) {
		log_warn(
		    "event=stream_resume peer=%s sent_to=%lld pages=%u held=%zu result=cut_off "
		    "reason=%s",
		    conn_peer(s->conn), (long long)s->last_sent, s->pages, s->held, reason);
		s->hub->dropped++;
		conn_stream_end(s->conn);
		unlink_sub(s);
		return;
	}
	log_warn("event=stream_resume peer=%s sent_to=%lld pages=%u held=%zu result=reload "
	         "reason=%s",
	         conn_peer(s->conn), (long long)s->last_sent, s->pages, s->held, reason);
	send_reload(s, "behind_window");
}

/* Sends one stored event to s if it is newer than what s has and in its scope. Returns 0,
 * or -1 when the stream ended (s is freed). */
static int send_stored(struct sub *s, const struct store_event *ev)
{
	if (ev->id <= s->last_sent)
		return 0;
	s->last_sent = ev->id;
	if (!authz_site_visible(&s->who, ev->site, ev->org, ev->city))
		return 0;
	if (strchr(ev->data, '\n')) {
		log_error("event=event_dropped type=%s id=%lld reason=newline_in_data", ev->type,
		          (long long)ev->id);
		return 0;
	}
	struct vw_buf f;
	vw_buf_init(&f, 1u << 20);
	vw_buf_printf(&f, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)ev->id, ev->type,
	              ev->data);
	int rc = 0;
	if (f.err)
		log_error("event=event_dropped type=%s id=%lld reason=too_large", ev->type,
		          (long long)ev->id);
	else
		rc = send_to(s, f.data, f.len);
	vw_buf_free(&f);
	return rc;
}

struct backlog_ctx {
	struct events *hub;
	uint64_t sub_id;
	int64_t after;
};

static void pump(struct sub *s, int force);

static void on_writable(void *ud, struct conn *c)
{
	struct events *h = ud;
	struct sub *s = h->head;
	while (s && s->conn != c)
		s = s->next;
	if (!s)
		return;
	s->waiting = 0;
	pump(s, 1);
}

/* A resuming stream's way to live: the backlog's copies as the connection drains (half its
 * queue at a time, so a long backlog never trips the slow-reader bound), the next page when
 * one was full, then the live events held meanwhile; then live. Nothing at or below
 * last_sent goes twice. s may be freed. */
static void pump(struct sub *s, int force)
{
	struct events *h = s->hub;
	while (s->resuming && !s->reading && !s->waiting) {
		if (s->outq_next < s->outq.n) {
			const struct store_event *ev = &s->outq.v[s->outq_next];
			size_t need = strlen(ev->data) + strlen(ev->type) + 48;
			/* Woken, the queue is down to a quarter: one frame goes whatever its size
			 * (the stream's own bound still applies), so every wake makes progress. */
			if (!force && sub_room(s) < need) {
				if (write_out(s))
					return;
				s->waiting = 1;
				conn_stream_wait(s->conn, on_writable, h);
				return;
			}
			s->outq_next++;
			s->held -= event_bytes(ev);
			force = 0;
			if (send_stored(s, ev))
				return;
			continue;
		}
		store_events_clear(&s->outq);
		s->outq_next = 0;
		if (s->page_end > s->last_sent)
			s->last_sent = s->page_end; /* the page's out-of-scope tail */
		if (s->more) {
			s->more = 0;
			backlog_read(h, s);
			return;
		}
		if (!s->pending.n) {
			log_info("event=stream_resume peer=%s sent_to=%lld pages=%u result=resumed",
			         conn_peer(s->conn), (long long)s->last_sent, s->pages);
			s->resuming = 0;
			resume_release(s);
			return;
		}
		/* What came live meanwhile goes next, the same way (its bytes stay held). */
		s->outq = s->pending;
		s->pending = (struct store_events){0};
		s->pending_bytes = 0;
	}
}

/* A backlog page holds at most half the stream's bound (the other half: live events held). */
static size_t page_bytes(const struct sub *s)
{
	return s->bound / 2 ? s->bound / 2 : 1;
}

/* The backlog read narrowed to what authz_site_visible shows who, so a resume reads its own
 * scope's rows only: the province every row; a city (an org) its own — none when the
 * credential names none ("\x01" is no city's or org's name). */
static void backlog_scope(const struct sub *s, struct store_events_query *q)
{
	static const char none[] = "\x01";
	if (s->who.kind != AUTHZ_PERSON) {
		q->city = none;
		return;
	}
	switch (s->who.person.role) {
	case AUTH_PROVINCE:
		return;
	case AUTH_CITY:
		q->city = s->who.person.city[0] ? s->who.person.city : none;
		return;
	case AUTH_ORG:
		q->org = s->who.person.org[0] ? s->who.person.org : none;
		return;
	default:
		q->city = none;
		return;
	}
}

static void on_backlog(void *ud, const struct store_reply *r)
{
	struct backlog_ctx *x = ud;
	struct events *h = x->hub;
	struct sub *s = find_sub(h, x->sub_id);
	int64_t after = x->after;
	free(x);
	if (!s || !s->resuming)
		return; /* ended meanwhile */
	s->reading = 0;
	if (r->status) {
		log_warn("event=stream_resume peer=%s after=%lld result=reload reason=read_failed "
		         "error=%d",
		         conn_peer(s->conn), (long long)after, r->status);
		send_reload(s, "behind_window");
		return;
	}
	if (after < r->events_pruned_id || after > r->events_last_id) {
		/* Older than the retained window, or an id this store never gave (another
		 * collector's, or a store made anew): either way the client's view is stale. */
		log_info("event=stream_resume peer=%s after=%lld pruned_id=%lld last_id=%lld "
		         "result=reload reason=%s",
		         conn_peer(s->conn), (long long)after, (long long)r->events_pruned_id,
		         (long long)r->events_last_id,
		         after < r->events_pruned_id ? "behind_window" : "unknown_id");
		send_reload(s, "behind_window");
		return;
	}
	/* Copies of what is in scope (the read was narrowed to it; this is the check that
	 * decides): the reply goes when this returns. */
	size_t data_bytes = 0;
	for (size_t i = 0; i < r->nevents; i++) {
		const struct store_event *ev = &r->events[i];
		data_bytes += strlen(ev->data);
		if (!authz_site_visible(&s->who, ev->site, ev->org, ev->city))
			continue;
		if (store_events_add(&s->outq, ev)) {
			send_reload(s, "behind_window");
			return;
		}
		s->held += event_bytes(ev);
	}
	/* Full by rows or by bytes (store_events_scoped's rule): there may be more. */
	s->more = r->nevents == EVENTS_BACKLOG_PAGE || data_bytes >= page_bytes(s);
	if (r->nevents)
		s->page_end = r->events[r->nevents - 1].id; /* the next page starts after it */
	pump(s, 0);
}

static void backlog_read(struct events *h, struct sub *s)
{
	struct backlog_ctx *x = malloc(sizeof(*x));
	int64_t from = s->page_end > s->last_sent ? s->page_end : s->last_sent;
	int rc = -ENOMEM;
	if (x) {
		*x = (struct backlog_ctx){h, s->id, from};
		struct store_events_query q = {
		    .after_id = from, .limit = EVENTS_BACKLOG_PAGE, .max_bytes = page_bytes(s)};
		backlog_scope(s, &q);
		rc = store_events_scoped(h->store, &q, on_backlog, x);
	}
	if (rc) {
		free(x);
		log_warn("event=stream_resume peer=%s after=%lld result=reload reason=store_busy "
		         "error=%d",
		         conn_peer(s->conn), (long long)from, rc);
		send_reload(s, "behind_window");
		return;
	}
	s->reading = 1;
	s->pages++;
}

/* Gives s a slot and reads its first page, or queues it for one. s may be freed. */
static void resume_start(struct events *h, struct sub *s)
{
	if (h->resumes_active < EVENTS_RESUMES_MAX) {
		s->slot = 1;
		h->resumes_active++;
		backlog_read(h, s);
	} else {
		s->queued = 1;
		h->resumes_waiting++;
		log_info("event=stream_resume peer=%s after=%lld result=queued active=%zu "
		         "waiting=%zu",
		         conn_peer(s->conn), (long long)s->last_sent, h->resumes_active,
		         h->resumes_waiting);
	}
}

/* Every second while resumes are in flight or queued: the deadlines, then free slots to
 * the longest queued (lowest id). Also run at once (kicked) when a slot frees. */
static void on_resume_timer(uv_timer_t *t)
{
	struct events *h = t->data;
	uint64_t now = uv_now(t->loop);
	struct sub *s, *next;
	for (s = h->head; s; s = next) {
		next = s->next;
		if (s->resuming && now >= s->deadline)
			resume_give_up(s, s->queued ? "deadline_queued" : "deadline");
	}
	while (h->resumes_waiting && h->resumes_active < EVENTS_RESUMES_MAX) {
		struct sub *first = NULL;
		for (s = h->head; s; s = s->next)
			if (s->queued && (!first || s->id < first->id))
				first = s;
		if (!first)
			break;
		first->queued = 0;
		h->resumes_waiting--;
		resume_start(h, first);
	}
	if (!h->resumes_active && !h->resumes_waiting)
		uv_timer_stop(t);
}

static void resume_kick(struct events *h)
{
	/* Never from inside a walk of the subscribers: the turn runs from the loop. */
	if (!h->closing)
		uv_timer_start(&h->resume_timer, on_resume_timer, 0, 1000);
}

/* The principal's resuming streams (a token's, by its id; an agent's, by its site). */
static size_t resumes_of(const struct events *h, const struct authz_principal *who)
{
	size_t n = 0;
	for (const struct sub *s = h->head; s; s = s->next) {
		if (!s->resuming || s->who.kind != who->kind)
			continue;
		if (who->kind == AUTHZ_PERSON  ? strcmp(s->who.person.id, who->person.id) == 0
		    : who->kind == AUTHZ_AGENT ? strcmp(s->who.agent.site, who->agent.site) == 0
		                               : 1)
			n++;
	}
	return n;
}

/* The hub now knows the highest stored id: quiet subscribers waiting for it get it. */
static void last_id_learned(struct events *h)
{
	h->last_id_known = 1;
	h->last_id = h->store_last > h->published_max ? h->store_last : h->published_max;
	struct sub *s = h->head, *next;
	for (; s; s = next) {
		next = s->next;
		if (!s->want_id)
			continue;
		s->want_id = 0;
		if (s->resuming || s->last_sent >= h->last_id)
			continue; /* it has an id from a live event or its own resume */
		char f[48];
		int n = snprintf(f, sizeof(f), "id: %lld\n\n", (long long)h->last_id);
		s->last_sent = h->last_id;
		send_to(s, f, (size_t)n);
	}
}

static void last_id_read(struct events *h);

static void on_last_id(void *ud, const struct store_reply *r)
{
	struct events *h = ud;
	h->last_id_reading = 0;
	if (h->closing)
		return;
	if (r->status) {
		log_warn("event=events_last_id_failed error=%d", r->status);
		return; /* the next quiet subscriber asks again */
	}
	h->store_last = r->events_last_id;
	/* Ids the read saw but the loop has not yet published (a commit's events on their way)
	 * would be skipped by a subscriber told that id: wait until they are published. */
	if (h->published_max >= h->store_last || !h->published_max)
		last_id_learned(h);
}

/* One read of the store's highest event id (after_id past any id: no rows, only the ids). */
static void last_id_read(struct events *h)
{
	if (!h->store || h->last_id_known || h->last_id_reading || h->closing)
		return;
	int rc = store_events_after(h->store, INT64_MAX, 1, on_last_id, h);
	if (rc)
		log_warn("event=events_last_id_failed error=%d", rc);
	else
		h->last_id_reading = 1;
}

void events_set_store(struct events *h, struct store *store)
{
	h->store = store;
	last_id_read(h);
}

int events_add_sink(struct events *h, events_sink_fn fn, void *ud)
{
	if (h->nsinks >= EVENTS_SINKS_MAX)
		return -ENOSPC;
	h->sinks[h->nsinks].fn = fn;
	h->sinks[h->nsinks].ud = ud;
	h->nsinks++;
	return 0;
}

static void last_id_learned(struct events *h);

void events_on_stored(void *hub, const struct store_event *ev)
{
	struct events *h = hub;
	if (ev->id > h->published_max)
		h->published_max = ev->id;
	if (h->last_id_known && ev->id > h->last_id)
		h->last_id = ev->id;
	/* The frame is formatted once and queued for every live reader in scope. */
	struct vw_buf f;
	vw_buf_init(&f, 1u << 20);
	int ok = 0;
	if (h->head) {
		if (strchr(ev->data, '\n'))
			log_error("event=event_dropped type=%s id=%lld reason=newline_in_data",
			          ev->type, (long long)ev->id);
		else if (vw_buf_printf(&f, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)ev->id,
		                       ev->type, ev->data) ||
		         f.err)
			log_error("event=event_dropped type=%s id=%lld reason=too_large", ev->type,
			          (long long)ev->id);
		else
			ok = 1;
	}
	struct sub *s = h->head, *next;
	for (; s; s = next) {
		next = s->next;
		if (!s->resuming) {
			if (ev->id <= s->last_sent)
				continue;
			s->last_sent = ev->id;
			if (ok && authz_site_visible(&s->who, ev->site, ev->org, ev->city))
				send_to(s, f.data, f.len);
		} else if (ev->id > s->last_sent &&
		           authz_site_visible(&s->who, ev->site, ev->org, ev->city)) {
			size_t b = event_bytes(ev);
			if (s->pending.n >= EVENTS_PENDING_MAX ||
			    s->pending_bytes + b > s->bound - page_bytes(s) ||
			    store_events_add(&s->pending, ev)) {
				resume_give_up(s, "pending_full");
				continue;
			}
			s->pending_bytes += b;
			s->held += b;
		}
	}
	vw_buf_free(&f);
	if (!h->last_id_known && h->store_last >= 0 && h->published_max >= h->store_last)
		last_id_learned(h);
	for (size_t i = 0; i < h->nsinks; i++)
		h->sinks[i].fn(h->sinks[i].ud, ev);
}

/* --- the feed's tick: silence, escalation, pruning (a store write, one at a time) --- */

static void on_tick_done(struct store_write *w)
{
	struct events *h = w->data;
	h->tick_inflight = 0;
	/* While the database is away every tick fails at once: said when it starts, not once
	 * a second (the store logs its reconnect attempts). */
	if (w->status == -ENOTCONN && !h->tick_unavailable)
		log_warn("event=feed_tick_failed error=%d reason=store_unavailable", w->status);
	else if (w->status && w->status != -ENOTCONN)
		log_warn("event=feed_tick_failed error=%d", w->status);
	h->tick_unavailable = w->status == -ENOTCONN;
	store_events_clear(&w->events); /* published by the store before this */
}

static void on_feed_timer(uv_timer_t *t)
{
	struct events *h = t->data;
	if (h->tick_inflight || h->closing || !h->store)
		return;
	struct store_write *w = h->tick;
	memset(w, 0, sizeof(*w));
	w->op = STORE_FEED_TICK;
	w->actor = "feed";
	w->silent_ms = h->feed.silent_ms;
	w->silent_factor = h->feed.silent_factor;
	w->since_ms = h->since_ms; /* the store raises it past an outage of its own */
	w->event_retention_ms = h->feed.event_retention_ms;
	w->done = on_tick_done;
	w->data = h;
	if (store_write_submit(h->store, w) == 0)
		h->tick_inflight = 1; /* -EAGAIN: the next tick tries again */
}

int events_start_feed(struct events *h, const struct events_feed_opts *o)
{
	if (!h->store)
		return -EINVAL;
	h->feed = *o;
	uint64_t tick = o->tick_ms > 0 ? (uint64_t)o->tick_ms : 1000;
	if (!h->feed_started) {
		if (!(h->tick = calloc(1, sizeof(*h->tick))))
			return -ENOMEM;
		int rc = uv_timer_init(h->heartbeat.loop, &h->feed_timer);
		if (rc) {
			free(h->tick);
			h->tick = NULL;
			return rc;
		}
		h->feed_timer.data = h;
		uv_unref((uv_handle_t *)&h->feed_timer);
		h->since_ms = vw_now_ms();
		h->feed_started = 1;
	}
	uv_timer_start(&h->feed_timer, on_feed_timer, tick, tick);
	return 0;
}

void events_subscribe(struct events *h, struct conn *c, const struct authz_principal *who,
                      const char *last_event_id_hdr)
{
	/* A copy: the request (and the header in it) goes once the stream starts. */
	char last_event_id[64] = "";
	if (last_event_id_hdr)
		snprintf(last_event_id, sizeof(last_event_id), "%s", last_event_id_hdr);
	if (h->closing) {
		conn_respond_error(c, 503, "shutting down", NULL);
		return;
	}
	/* A resume past its bounds is refused before the stream starts: the client tries
	 * again later (or starts live, without Last-Event-ID, and reloads). */
	if (last_event_id[0] && h->store &&
	    (resumes_of(h, who) >= EVENTS_RESUMES_PER_PRINCIPAL ||
	     (h->resumes_active >= EVENTS_RESUMES_MAX &&
	      h->resumes_waiting >= EVENTS_RESUMES_WAITING_MAX))) {
		log_warn("event=stream_resume peer=%s result=refused reason=%s active=%zu "
		         "waiting=%zu",
		         conn_peer(c),
		         resumes_of(h, who) >= EVENTS_RESUMES_PER_PRINCIPAL ? "principal_busy"
		                                                            : "server_busy",
		         h->resumes_active, h->resumes_waiting);
		static const char busy[] = "{\"error\":\"too many streams resuming\"}";
		conn_respond(c, 503, "Retry-After: 5\r\n", busy, sizeof(busy) - 1);
		return;
	}
	struct sub *s = calloc(1, sizeof(*s));
	if (!s) {
		conn_respond_error(c, 503, "server busy", NULL);
		return;
	}
	s->hub = h;
	s->conn = c;
	s->who = *who;
	s->id = ++h->next_sub_id;
	s->checked_ms = uv_now(h->heartbeat.loop); /* authz_identify just checked it */
	s->bound = h->queue_bytes;
	vw_buf_init(&s->out, s->bound + 1); /* + the terminator vw_buf keeps room for */
	/* no-cache: an event stream is never a cached document; X-Accel-Buffering: a proxy
	 * (nginx) in front must pass events on as they come. */
	int rc = conn_stream_start(c, 200, HTTP_CT_SSE,
	                           "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n",
	                           h->queue_bytes, on_stream_end, s);
	if (rc) {
		free(s); /* HEAD (answered with the head) or the peer is gone */
		return;
	}
	s->next = h->head;
	if (h->head)
		h->head->prev = s;
	h->head = s;
	h->count++;
	if (!h->timer_started) {
		/* Rechecks more often than heartbeats (a test's short interval) tick faster; the
		 * heartbeat still goes every 15 s. */
		uint64_t tick = EVENTS_HEARTBEAT_MS;
		if (h->session && (uint64_t)session_opts(h->session)->recheck_ms < tick)
			tick = (uint64_t)session_opts(h->session)->recheck_ms;
		h->last_beat_ms = uv_now(h->heartbeat.loop);
		uv_timer_start(&h->heartbeat, on_tick, tick, tick);
		h->timer_started = 1;
	}
	char hello[64];
	int n = snprintf(hello, sizeof(hello), "retry: %d\n\n", EVENTS_RETRY_MS);
	if (send_to(s, hello, (size_t)n))
		return;
	if (!last_event_id[0]) {
		/* Quiet connect: `id: N` alone sets the client's last event ID without dispatching
		 * an event (WHATWG HTML, server-sent events), so a restart while nothing happens
		 * still resumes from here. Live events above N follow; none at or below N. */
		if (!h->store)
			return;
		if (h->last_id_known) {
			char f[48];
			n = snprintf(f, sizeof(f), "id: %lld\n\n", (long long)h->last_id);
			s->last_sent = h->last_id;
			send_to(s, f, (size_t)n);
		} else {
			s->want_id = 1;
			last_id_read(h);
		}
		return;
	}
	/* Last-Event-ID: digits only (what we sent); anything else is a reload. */
	char *end;
	errno = 0;
	long long after = strtoll(last_event_id, &end, 10);
	if (!h->store || errno || *end || end == last_event_id || after < 0 ||
	    last_event_id[0] == '-' || last_event_id[0] == '+') {
		log_info("event=stream_resume peer=%s last_event_id=\"%.32s\" result=reload "
		         "reason=bad_id",
		         conn_peer(c), last_event_id);
		send_reload(s, "behind_window");
		return;
	}
	s->last_sent = after;
	s->page_end = after;
	s->resuming = 1;
	s->deadline = uv_now(h->heartbeat.loop) + EVENTS_RESUME_DEADLINE_MS;
	resume_start(h, s);
	if ((h->resumes_active || h->resumes_waiting) &&
	    !uv_is_active((uv_handle_t *)&h->resume_timer))
		uv_timer_start(&h->resume_timer, on_resume_timer, 1000, 1000);
}

void events_publish(struct events *h, const char *type, const char *site, const char *org,
                    const char *city, const char *data_json)
{
	if (!h->head)
		return;
	/* One frame for every reader: data_json is one line (cJSON unformatted or our own
	 * writer), so one data: field carries it. No id: an ephemeral event is not resumed. */
	struct vw_buf f;
	vw_buf_init(&f, 1u << 20);
	vw_buf_printf(&f, "event: %s\ndata: %s\n\n", type, data_json);
	if (f.err || strchr(data_json, '\n')) {
		log_error("event=event_dropped type=%s reason=%s", type,
		          f.err ? "too_large" : "newline_in_data");
		vw_buf_free(&f);
		return;
	}
	struct sub *s = h->head, *next;
	for (; s; s = next) {
		next = s->next;
		/* A resuming stream gets ephemeral events as they come: they have no order to
		 * keep with the stored ones. */
		if (authz_site_visible(&s->who, site, org, city))
			send_to(s, f.data, f.len);
	}
	vw_buf_free(&f);
}

size_t events_subscribers(const struct events *h)
{
	return h->count;
}

uint64_t events_dropped(const struct events *h)
{
	return h->dropped;
}

void events_close(struct events *h)
{
	if (!h || h->closing)
		return;
	h->closing = 1;
	log_info("event=events_closed flushes=%llu stream_writes=%llu dropped=%llu",
	         (unsigned long long)h->flushes, (unsigned long long)h->flush_writes,
	         (unsigned long long)h->dropped);
	while (h->head) {
		struct sub *s = h->head;
		conn_stream_end(s->conn);
		unlink_sub(s);
	}
	uv_close((uv_handle_t *)&h->heartbeat, NULL);
	uv_close((uv_handle_t *)&h->resume_timer, NULL);
	uv_close((uv_handle_t *)&h->flush_timer, NULL);
	if (h->feed_started)
		uv_close((uv_handle_t *)&h->feed_timer, NULL);
}

void events_destroy(struct events *h)
{
	if (!h)
		return;
	/* A tick still in flight keeps its write: the store answers it before it closes, and
	 * store_close runs before this (main.c). */
	free(h->tick);
	free(h);
}

/* After each ingest commit: one "report" event for the site's readers. */
void events_on_commit(void *hub, const struct store_batch *b)
{
	size_t n[VW_STATUS_COUNT] = {0};
	for (size_t i = 0; i < b->nrows; i++)
		if (b->rows[i].status < VW_STATUS_COUNT)
			n[b->rows[i].status]++;
	struct vw_buf d;
	vw_buf_init(&d, 4096);
	vw_buf_puts(&d, "{\"site\":");
	vw_buf_json_str(&d, b->site);
	vw_buf_puts(&d, ",\"org\":");
	vw_buf_json_str(&d, b->org);
	vw_buf_puts(&d, ",\"city\":");
	vw_buf_json_str(&d, b->city);
	vw_buf_puts(&d, ",\"agent\":");
	vw_buf_json_str(&d, b->agent);
	vw_buf_printf(&d, ",\"acked_seq\":%lld,\"ok\":%zu,\"degraded\":%zu,\"down\":%zu}",
	              (long long)b->acked_seq, n[VW_STATUS_OK], n[VW_STATUS_DEGRADED],
	              n[VW_STATUS_DOWN]);
	if (!d.err)
		events_publish(hub, "report", b->site, b->org, b->city, vw_buf_cstr(&d));
	vw_buf_free(&d);
}
