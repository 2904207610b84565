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
	uint64_t last_id;
	events_id_fn id_fn;
	void *id_ud;
};

static uint64_t counter_id(void *ud)
{
	struct events *h = ud;
	return ++h->last_id;
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
	free(s);
}

/* The stream ended from the connection's side (peer left, shutdown). */
static void on_stream_end(void *ud, struct conn *c)
{
	(void)c;
	unlink_sub(ud);
}

/* Writes to one subscriber; a write that fails has ended its stream: drop it here. */
static void send_to(struct sub *s, const char *data, size_t len)
{
	int rc = conn_stream_write(s->conn, data, len);
	if (rc == -ENOBUFS)
		s->hub->dropped++;
	if (rc)
		unlink_sub(s);
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
	static const char beat[] = ": heartbeat\n\n";
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
	h->queue_bytes = queue_bytes;
	h->id_fn = counter_id;
	h->id_ud = h;
	/* Unreferenced: the heartbeat alone must not keep the loop alive at shutdown. */
	uv_unref((uv_handle_t *)&h->heartbeat);
	*out = h;
	return 0;
}

void events_set_id_source(struct events *h, events_id_fn fn, void *ud)
{
	h->id_fn = fn ? fn : counter_id;
	h->id_ud = fn ? ud : h;
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

void events_subscribe(struct events *h, struct conn *c, const struct authz_principal *who)
{
	if (h->closing) {
		conn_respond_error(c, 503, "shutting down", NULL);
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
	send_to(s, hello, (size_t)n);
}

uint64_t events_publish(struct events *h, const char *type, const char *site, const char *org,
                        const char *city, const char *data_json)
{
	uint64_t id = h->id_fn(h->id_ud);
	if (!h->head)
		return id;
	/* One frame for every reader: data_json is one line (cJSON unformatted or our own
	 * writer), so one data: field carries it. */
	struct vw_buf f;
	vw_buf_init(&f, 1u << 20);
	vw_buf_printf(&f, "id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)id, type,
	              data_json);
	if (f.err || strchr(data_json, '\n')) {
		log_error("event=event_dropped type=%s id=%llu reason=%s", type,
		          (unsigned long long)id, f.err ? "too_large" : "newline_in_data");
		vw_buf_free(&f);
		return id;
	}
	struct sub *s = h->head, *next;
	for (; s; s = next) {
		next = s->next;
		if (authz_site_visible(&s->who, site, org, city))
			send_to(s, f.data, f.len);
	}
	vw_buf_free(&f);
	return id;
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
	while (h->head) {
		struct sub *s = h->head;
		conn_stream_end(s->conn);
		unlink_sub(s);
	}
	uv_close((uv_handle_t *)&h->heartbeat, NULL);
}

void events_destroy(struct events *h)
{
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
