#include "notify.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curluv.h"
#include "log.h"
#include "vtime.h"

/* A reply is an errcode and a message; more than this is not a robot's answer. */
#define REPLY_MAX (16u << 10)
/* A store write that could not be queued (the queue was full) is tried again this much
 * later: the writer drains its queue within a group commit. */
#define WRITE_RETRY_MS 1000
/* Rows read back at start: every sink's queue bound together is far below it. */
#define LOAD_MAX 1000000
/* At start the stored events after the last one that made a notification are filtered
 * again, those of the last 10 minutes: a crash between an event's commit and its
 * notification's insert then loses nothing (the unique key drops what was there). Older
 * ones are history, not news. At most REPLAY_PAGES pages of events are read. */
#define REPLAY_MS (10 * 60000LL)
#define REPLAY_PAGE 1000
#define REPLAY_PAGES 50

struct sink;

/* One notification: a row of the notifications table and where it is in its life. */
struct note {
	struct notify *n;
	struct sink *sink;             /* NULL once its sink was removed */
	struct note *qnext, *qprev;    /* the sink's queue (pending only) */
	struct note *anext, *aprev;    /* every note of the notifier */
	struct store_notification row; /* strings: the note's own below; state a literal */
	char *sink_name, *event_word, *site, *org, *city, *data;
	char last_error[256];
	unsigned event_bit;
	int queued;     /* in its sink's queue */
	int writing;    /* a store write of it is in flight */
	int dirty;      /* its state changed since the last write was queued */
	int final;      /* sent, failed or suppressed: freed once that is stored */
	int64_t due_ms; /* wall clock: the next attempt */
};

/* A write in flight: its own copy of the row, so the note may change meanwhile. */
struct nwrite {
	struct store_write w;
	struct store_notification row;
	char last_error[256];
	struct note *note;
	int insert;
};

struct sink {
	struct notify *n;
	struct sink *next;
	char *name, *url, *secret, *ca;
	enum notify_type type;
	int min_rank;
	struct notify_scope scope;
	unsigned events;
	double per_min;
	long burst, timeout_ms, retry_first_ms, retry_max_ms, attempts;
	size_t queue_max;
	int removed;
	struct notify_bucket bucket;
	int64_t bucket_ready_ms; /* wall clock: a token is there again (0 = now) */
	struct note *qhead, *qtail;
	size_t nqueued;
	int64_t suppressed; /* dropped over the queue bound since a message last counted them */
	/* the one transfer */
	CURL *easy;
	struct curl_slist *hdrs;
	struct note *inflight;
	int64_t counted; /* suppressed count the message in flight carries */
	struct vw_buf reply;
	char errbuf[CURL_ERROR_SIZE];
};

struct notify {
	uv_loop_t *loop;
	struct store *store;
	struct curluv *cu;
	uv_timer_t timer;
	int timer_open, closing;
	char *public_url;
	struct sink *sinks;
	struct note *all;
	int64_t write_retry_ms; /* 0 = none waits */
	int64_t started_ms;     /* notify_start: replay covers events from REPLAY_MS before */
	int replay_pages;
	int64_t replay_after; /* the page in flight reads events after this id */
	struct notify_stats stats;
};

static void kick(struct notify *n);
static void persist(struct note *nt);

static char *dupstr(const char *s)
{
	return strdup(s ? s : "");
}

static uint32_t rand32(void)
{
	uint32_t r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)vw_mono_ms();
	return r;
}

/* --- notes ------------------------------------------------------------------------------- */

static void queue_unlink(struct note *nt)
{
	struct sink *k = nt->sink;
	if (!nt->queued || !k)
		return;
	if (nt->qprev)
		nt->qprev->qnext = nt->qnext;
	else
		k->qhead = nt->qnext;
	if (nt->qnext)
		nt->qnext->qprev = nt->qprev;
	else
		k->qtail = nt->qprev;
	nt->qnext = nt->qprev = NULL;
	nt->queued = 0;
	k->nqueued--;
}

static void queue_append(struct sink *k, struct note *nt)
{
	nt->qprev = k->qtail;
	nt->qnext = NULL;
	if (k->qtail)
		k->qtail->qnext = nt;
	else
		k->qhead = nt;
	k->qtail = nt;
	nt->queued = 1;
	k->nqueued++;
}

static void note_free(struct note *nt)
{
	if (!nt)
		return;
	queue_unlink(nt);
	struct notify *n = nt->n;
	if (nt->aprev)
		nt->aprev->anext = nt->anext;
	else
		n->all = nt->anext;
	if (nt->anext)
		nt->anext->aprev = nt->aprev;
	free(nt->sink_name);
	free(nt->event_word);
	free(nt->site);
	free(nt->org);
	free(nt->city);
	free(nt->data);
	free(nt);
}

static struct note *note_new(struct notify *n, struct sink *k, const char *event_word,
                             const char *site, const char *org, const char *city, const char *data)
{
	struct note *nt = calloc(1, sizeof(*nt));
	if (!nt)
		return NULL;
	nt->n = n;
	nt->sink = k;
	nt->sink_name = dupstr(k->name);
	nt->event_word = dupstr(event_word);
	nt->site = dupstr(site);
	nt->org = dupstr(org);
	nt->city = dupstr(city);
	nt->data = dupstr(data);
	nt->anext = n->all;
	if (n->all)
		n->all->aprev = nt;
	n->all = nt;
	nt->row.sink = nt->sink_name;
	nt->row.event = nt->event_word;
	nt->row.site = nt->site;
	nt->row.org = nt->org;
	nt->row.city = nt->city;
	nt->row.data = nt->data;
	nt->row.last_error = nt->last_error;
	if (!nt->sink_name || !nt->event_word || !nt->site || !nt->org || !nt->city || !nt->data) {
		note_free(nt);
		return NULL;
	}
	return nt;
}

/* A note that reached its end state leaves its queue at once (the queue bounds pending
 * notes only) and is freed once the state is stored. */
static void note_finish(struct note *nt, const char *state)
{
	nt->row.state = state;
	nt->final = 1;
	queue_unlink(nt);
	persist(nt);
}

/* --- persistence ------------------------------------------------------------------------- */

static void arm(struct notify *n);

static void on_written(struct store_write *w)
{
	struct nwrite *wr = w->data;
	struct note *nt = wr->note;
	struct notify *n = nt->n;
	nt->writing = 0;
	if (w->status == -ESTALE) {
		/* issue 13: another collector holds the notify lease, and it is the one that
		 * tells (a note is sent only once its row is in): this one lets the note go. */
		n->stats.fenced++;
		log_info("event=notify_fenced sink=%s problem=%lld notify_event=%s", nt->sink_name,
		         (long long)nt->row.problem_id, nt->event_word);
		if (!strcmp(nt->row.state, "suppressed") && nt->sink && nt->sink->suppressed > 0)
			nt->sink->suppressed--;
		free(wr);
		note_free(nt);
		if (!n->closing)
			kick(n);
		return;
	}
	if (w->status) {
		if (!n->closing)
			log_warn(
			    "event=notify_store_failed sink=%s problem=%lld error=%s retry_ms=%d",
			    nt->sink_name, (long long)nt->row.problem_id, strerror(-w->status),
			    WRITE_RETRY_MS);
		nt->dirty = 1;
		if (wr->insert)
			nt->row.id = 0;
		free(wr);
		if (!n->closing) {
			n->write_retry_ms = vw_now_ms() + WRITE_RETRY_MS;
			arm(n);
		}
		return;
	}
	if (wr->insert) {
		if (!wr->row.id) {
			/* Its key is there already (this one was sent or queued before), or it
			 * follows an opening the sink was never told of: no row, no message. */
			if (wr->row.unannounced) {
				n->stats.unannounced++;
				log_info("event=notify_unannounced sink=%s problem=%lld "
				         "notify_event=%s",
				         nt->sink_name, (long long)nt->row.problem_id,
				         nt->event_word);
			} else {
				n->stats.duplicates++;
				log_debug("event=notify_duplicate sink=%s problem=%lld "
				          "notify_event=%s",
				          nt->sink_name, (long long)nt->row.problem_id,
				          nt->event_word);
			}
			if (!strcmp(nt->row.state, "suppressed") && nt->sink &&
			    nt->sink->suppressed > 0)
				nt->sink->suppressed--;
			free(wr);
			note_free(nt);
			if (!n->closing)
				kick(n);
			return;
		}
		nt->row.id = wr->row.id;
	}
	free(wr);
	if (nt->dirty && !n->closing)
		persist(nt);
	else if (nt->final && !nt->dirty)
		note_free(nt);
	if (!n->closing)
		kick(n);
}

/* Queues the note's state as a write: an insert until the store gave it an id, an update
 * after. One write per note at a time; a change meanwhile is written when it is done. */
static void persist(struct note *nt)
{
	struct notify *n = nt->n;
	nt->dirty = 1;
	if (nt->writing || n->closing)
		return;
	if (!nt->row.id && nt->row.created_ms == 0)
		nt->row.created_ms = vw_now_ms();
	struct nwrite *wr = calloc(1, sizeof(*wr));
	if (!wr) {
		n->write_retry_ms = vw_now_ms() + WRITE_RETRY_MS;
		arm(n);
		return;
	}
	wr->note = nt;
	wr->row = nt->row;
	wr->insert = nt->row.id == 0;
	snprintf(wr->last_error, sizeof(wr->last_error), "%s", nt->last_error);
	wr->row.last_error = wr->last_error;
	wr->w.op = STORE_NOTIFY_PUT;
	wr->w.actor = "notify";
	wr->w.notes = &wr->row;
	wr->w.nnotes = 1;
	wr->w.done = on_written;
	wr->w.data = wr;
	int rc = store_write_submit(n->store, &wr->w);
	if (rc) {
		free(wr);
		if (rc != -ESHUTDOWN) {
			n->write_retry_ms = vw_now_ms() + WRITE_RETRY_MS;
			arm(n);
		}
		return;
	}
	nt->dirty = 0;
	nt->writing = 1;
}

/* --- delivery ---------------------------------------------------------------------------- */

static size_t on_reply(char *p, size_t size, size_t nmemb, void *ud)
{
	struct sink *k = ud;
	size_t len = size * nmemb;
	if (k->reply.len + len > REPLY_MAX)
		return 0; /* ends the transfer: CURLE_WRITE_ERROR */
	vw_buf_append(&k->reply, p, len);
	return len;
}

static void on_sent(CURL *easy, CURLcode cc, void *arg)
{
	struct sink *k = arg;
	struct note *nt = k->inflight;
	struct notify *n = k->n;
	k->inflight = NULL;
	long code = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	char why[200] = "";
	int ok = 0;
	if (cc != CURLE_OK)
		snprintf(why, sizeof(why), "%.40s%s%.150s", curl_easy_strerror(cc),
		         k->errbuf[0] ? ": " : "", k->errbuf);
	else
		ok = notify_reply_ok(k->type, code, k->reply.data ? k->reply.data : "",
		                     k->reply.len, why, sizeof(why));
	curl_slist_free_all(k->hdrs);
	k->hdrs = NULL;
	vw_buf_reset(&k->reply);
	if (!nt)
		return;
	nt->row.attempts++;
	n->stats.attempts++;
	int64_t now = vw_now_ms();
	if (ok) {
		nt->last_error[0] = '\0';
		nt->row.sent_ms = now;
		nt->row.next_attempt_ms = 0;
		k->suppressed -= k->counted < k->suppressed ? k->counted : k->suppressed;
		n->stats.sent++;
		log_info("event=notify_sent sink=%s problem=%lld notify_event=%s attempts=%lld",
		         k->name, (long long)nt->row.problem_id, nt->event_word,
		         (long long)nt->row.attempts);
		note_finish(nt, "sent");
	} else {
		snprintf(nt->last_error, sizeof(nt->last_error), "%s", why);
		if (nt->row.attempts >= k->attempts) {
			nt->row.next_attempt_ms = 0;
			n->stats.failed++;
			log_warn("event=notify_failed sink=%s problem=%lld notify_event=%s "
			         "attempts=%lld "
			         "error=\"%s\"",
			         k->name, (long long)nt->row.problem_id, nt->event_word,
			         (long long)nt->row.attempts, why);
			note_finish(nt, "failed");
		} else {
			int64_t wait =
			    notify_backoff_ms((unsigned)nt->row.attempts, k->retry_first_ms,
			                      k->retry_max_ms, rand32());
			nt->due_ms = nt->row.next_attempt_ms = now + wait;
			log_info(
			    "event=notify_retry sink=%s problem=%lld notify_event=%s attempts=%lld "
			    "wait_ms=%lld error=\"%s\"",
			    k->name, (long long)nt->row.problem_id, nt->event_word,
			    (long long)nt->row.attempts, (long long)wait, why);
			persist(nt);
		}
	}
	if (!n->closing)
		kick(n);
}

/* The robot's address with DingTalk's signature appended when the sink has a secret. */
static int sink_url(const struct sink *k, int64_t now, char **out)
{
	if (k->type != NOTIFY_DINGTALK || !k->secret[0]) {
		*out = strdup(k->url);
		return *out ? 0 : -ENOMEM;
	}
	char sign[256];
	int rc = notify_dingtalk_sign(k->secret, now, sign, sizeof(sign));
	if (rc)
		return rc;
	size_t len = strlen(k->url) + strlen(sign) + 64;
	if (!(*out = malloc(len)))
		return -ENOMEM;
	snprintf(*out, len, "%s%ctimestamp=%lld&sign=%s", k->url, strchr(k->url, '?') ? '&' : '?',
	         (long long)now, sign);
	return 0;
}

static int send_note(struct sink *k, struct note *nt)
{
	struct notify *n = k->n;
	struct notify_problem p;
	char why[200];
	int64_t now = vw_now_ms();
	if (notify_problem_parse(nt->data, &p, why, sizeof(why))) {
		/* Stored by us from an event we parsed once: only a damaged row gets here. */
		snprintf(nt->last_error, sizeof(nt->last_error), "%s", why);
		note_finish(nt, "failed");
		return 0;
	}
	struct vw_buf body;
	vw_buf_init(&body, 64u << 10);
	char *url = NULL;
	int rc = notify_format_body(k->type, k->name, &p, nt->event_bit, nt->row.event_id,
	                            n->public_url, k->suppressed, &body);
	if (!rc)
		rc = sink_url(k, now, &url);
	if (!rc && !k->easy && !(k->easy = curl_easy_init()))
		rc = -ENOMEM;
	if (rc) {
		vw_buf_free(&body);
		free(url);
		return rc;
	}
	CURL *e = k->easy;
	curl_easy_reset(e);
	k->errbuf[0] = '\0';
	k->hdrs = curl_slist_append(NULL, "Content-Type: application/json; charset=utf-8");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, k->timeout_ms);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, k->hdrs);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "venuewatch/" VW_VERSION);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)body.len);
	curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, vw_buf_cstr(&body));
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_reply);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, k);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, k->errbuf);
	if (k->ca[0])
		curl_easy_setopt(e, CURLOPT_CAINFO, k->ca);
	/* The URL holds the robot's token and the signature: wiped, never logged. */
	OPENSSL_cleanse(url, strlen(url));
	free(url);
	vw_buf_free(&body);
	k->inflight = nt;
	k->counted = k->suppressed;
	if ((rc = curluv_add(n->cu, e, on_sent, k)) != 0) {
		k->inflight = NULL;
		curl_slist_free_all(k->hdrs);
		k->hdrs = NULL;
	}
	return rc;
}

/* Each idle sink sends its earliest due, stored note if the bucket has a token. */
static void kick(struct notify *n)
{
	if (n->closing)
		return;
	int64_t now = vw_now_ms();
	for (struct sink *k = n->sinks; k; k = k->next) {
		if (k->removed || k->inflight)
			continue;
		struct note *best = NULL;
		for (struct note *nt = k->qhead; nt; nt = nt->qnext)
			if (nt->row.id && !nt->final && (!best || nt->due_ms < best->due_ms))
				best = nt;
		if (!best || best->due_ms > now)
			continue;
		int64_t wait = notify_bucket_take(&k->bucket, now);
		if (wait) {
			k->bucket_ready_ms = now + wait;
			continue;
		}
		k->bucket_ready_ms = 0;
		int rc = send_note(k, best);
		if (rc) {
			log_warn("event=notify_send_failed sink=%s problem=%lld error=%s", k->name,
			         (long long)best->row.problem_id, strerror(-rc));
			best->due_ms = now + WRITE_RETRY_MS;
		}
	}
	arm(n);
}

static void on_timer(uv_timer_t *t)
{
	struct notify *n = t->data;
	if (n->write_retry_ms && n->write_retry_ms <= vw_now_ms()) {
		n->write_retry_ms = 0;
		for (struct note *nt = n->all, *next; nt; nt = next) {
			next = nt->anext;
			if (nt->dirty && !nt->writing)
				persist(nt);
		}
	}
	kick(n);
}

/* The timer at the earliest moment anything can happen: a note due, a token back, a write
 * to retry. */
static void arm(struct notify *n)
{
	if (n->closing || !n->timer_open)
		return;
	int64_t next = n->write_retry_ms ? n->write_retry_ms : INT64_MAX;
	for (struct sink *k = n->sinks; k; k = k->next) {
		if (k->removed || k->inflight)
			continue;
		for (struct note *nt = k->qhead; nt; nt = nt->qnext) {
			if (!nt->row.id || nt->final)
				continue;
			int64_t at =
			    nt->due_ms > k->bucket_ready_ms ? nt->due_ms : k->bucket_ready_ms;
			if (at < next)
				next = at;
		}
	}
	if (next == INT64_MAX) {
		uv_timer_stop(&n->timer);
		return;
	}
	int64_t delay = next - vw_now_ms();
	uv_timer_start(&n->timer, on_timer, delay > 0 ? (uint64_t)delay : 0, 0);
}

/* --- sinks ------------------------------------------------------------------------------- */

static void sink_free(struct sink *k)
{
	if (!k)
		return;
	if (k->easy)
		curl_easy_cleanup(k->easy);
	curl_slist_free_all(k->hdrs);
	vw_buf_free(&k->reply);
	free(k->name);
	free(k->url);
	if (k->secret)
		OPENSSL_cleanse(k->secret, strlen(k->secret));
	free(k->secret);
	free(k->ca);
	free(k);
}

/* Settings from the section (new or reloaded); the bucket restarts only when its rate or
 * burst changed. */
static int sink_configure(struct sink *k, const struct notify_section *s, char *err, size_t errlen)
{
	struct notify_scope scope;
	unsigned events;
	double per_min;
	char why[200];
	if (notify_scope_parse(s->scope, &scope, why, sizeof(why)) ||
	    notify_events_parse(s->events, &events, why, sizeof(why)) ||
	    notify_rate_parse(s->rate, &per_min, why, sizeof(why))) {
		snprintf(err, errlen, "[notify %s] %s", s->name, why);
		return -EINVAL;
	}
	char *url = strdup(s->url), *secret = dupstr(s->secret_value), *ca = dupstr(s->ca);
	if (!url || !secret || !ca) {
		free(url), free(secret), free(ca);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	free(k->url);
	if (k->secret)
		OPENSSL_cleanse(k->secret, strlen(k->secret));
	free(k->secret);
	free(k->ca);
	k->url = url;
	k->secret = secret;
	k->ca = ca;
	k->type = (enum notify_type)s->type;
	k->min_rank = s->min_severity;
	k->scope = scope;
	k->events = events;
	if (per_min != k->per_min || s->burst != k->burst || !k->bucket.at_ms)
		notify_bucket_init(&k->bucket, per_min, (double)s->burst, vw_now_ms());
	k->per_min = per_min;
	k->burst = s->burst;
	k->timeout_ms = s->timeout_ms;
	k->retry_first_ms = s->retry_first_ms;
	k->retry_max_ms = s->retry_max_ms;
	k->attempts = s->attempts;
	k->queue_max = (size_t)s->queue;
	k->removed = 0;
	return 0;
}

static struct sink *sink_find(struct notify *n, const char *name)
{
	for (struct sink *k = n->sinks; k; k = k->next)
		if (!strcmp(k->name, name))
			return k;
	return NULL;
}

/* A sink removed on reload: its transfer is aborted and its notes leave memory (the rows
 * stay pending in the store). */
static void sink_remove(struct sink *k)
{
	struct notify *n = k->n;
	if (k->inflight) {
		curluv_remove(n->cu, k->easy);
		k->inflight = NULL;
		curl_slist_free_all(k->hdrs);
		k->hdrs = NULL;
	}
	for (struct note *nt = n->all, *next; nt; nt = next) {
		next = nt->anext;
		if (nt->sink != k)
			continue;
		queue_unlink(nt);
		nt->sink = NULL;
		if (nt->writing)
			nt->final = 1; /* freed when the write is done */
		else
			note_free(nt);
	}
	k->removed = 1;
	k->suppressed = 0;
}

static int apply_sections(struct notify *n, const struct server_conf *cfg, char *err, size_t errlen)
{
	char *url = dupstr(cfg->web.public_url);
	if (!url)
		return -ENOMEM;
	free(n->public_url);
	n->public_url = url;
	for (size_t i = 0; i < cfg->notify.n; i++) {
		const struct notify_section *s =
		    VW_CONF_ITEM(cfg->notify, struct notify_section, i);
		struct sink *k = sink_find(n, s->name);
		int fresh = !k;
		if (fresh) {
			if (!(k = calloc(1, sizeof(*k))) || !(k->name = strdup(s->name))) {
				free(k);
				return -ENOMEM;
			}
			k->n = n;
			vw_buf_init(&k->reply, REPLY_MAX);
		}
		int rc = sink_configure(k, s, err, errlen);
		if (rc) {
			if (fresh)
				sink_free(k);
			return rc;
		}
		if (fresh) {
			k->next = n->sinks;
			n->sinks = k;
		}
	}
	for (struct sink *k = n->sinks; k; k = k->next) {
		int kept = 0;
		for (size_t i = 0; i < cfg->notify.n && !kept; i++)
			kept = !strcmp(VW_CONF_ITEM(cfg->notify, struct notify_section, i)->name,
			               k->name);
		if (!kept && !k->removed)
			sink_remove(k);
	}
	return 0;
}

int notify_create(uv_loop_t *loop, struct store *store, const struct server_conf *cfg,
                  struct notify **out, char *err, size_t errlen)
{
	struct notify *n = calloc(1, sizeof(*n));
	if (!n) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	n->loop = loop;
	n->store = store;
	int rc = apply_sections(n, cfg, err, errlen);
	if (!rc && (rc = curluv_create(loop, &n->cu)) != 0)
		snprintf(err, errlen, "curl multi: %s", strerror(-rc));
	if (rc) {
		notify_destroy(n);
		return rc;
	}
	uv_timer_init(loop, &n->timer);
	n->timer.data = n;
	n->timer_open = 1;
	*out = n;
	return 0;
}

int notify_reload(struct notify *n, const struct server_conf *cfg, char *err, size_t errlen)
{
	int rc = apply_sections(n, cfg, err, errlen);
	size_t active = 0;
	for (struct sink *k = n->sinks; k; k = k->next)
		active += !k->removed;
	log_info("event=notify_reloaded sinks=%zu", active);
	kick(n);
	return rc;
}

/* --- events ------------------------------------------------------------------------------ */

/* Whether the notifier holds the sink's opening of the problem, pending or sent: a row not
 * yet in the store (its write queued or to be retried) counts, so a close that follows it
 * at once is not refused for want of it. */
static int told_in_memory(const struct notify *n, const struct sink *k, int64_t problem_id)
{
	for (const struct note *nt = n->all; nt; nt = nt->anext)
		if (nt->sink == k && nt->row.problem_id == problem_id &&
		    nt->event_bit == NOTIFY_EV_OPENED && nt->row.state &&
		    (!strcmp(nt->row.state, "pending") || !strcmp(nt->row.state, "sent")))
			return 1;
	return 0;
}

/* A notification of ev for sink k; if_told: only if the sink was told the problem opened —
 * known here, or else asked of the store with the insert. */
static void enqueue(struct notify *n, struct sink *k, const struct store_event *ev,
                    const struct notify_problem *p, unsigned bit, int if_told)
{
	struct note *nt =
	    note_new(n, k, notify_event_word(bit), p->site, p->org, p->city, ev->data);
	if (!nt) {
		log_error("event=notify_dropped sink=%s problem=%lld reason=ENOMEM", k->name,
		          (long long)p->id);
		return;
	}
	nt->event_bit = bit;
	nt->row.problem_id = p->id;
	nt->row.event_id = ev->id;
	nt->row.if_opened = if_told && !told_in_memory(n, k, p->id);
	nt->row.created_ms = vw_now_ms();
	nt->due_ms = nt->row.created_ms;
	if (k->nqueued >= k->queue_max) {
		/* Over the bound: recorded, counted in the sink's next message, never sent. */
		k->suppressed++;
		n->stats.suppressed++;
		snprintf(nt->last_error, sizeof(nt->last_error), "queue full (%zu waiting)",
		         k->nqueued);
		log_warn("event=notify_suppressed sink=%s problem=%lld notify_event=%s queued=%zu",
		         k->name, (long long)p->id, nt->event_word, k->nqueued);
		note_finish(nt, "suppressed");
		return;
	}
	nt->row.state = "pending";
	queue_append(k, nt);
	n->stats.queued++;
	persist(nt);
}

void notify_on_event(void *ud, const struct store_event *ev)
{
	struct notify *n = ud;
	unsigned bit = notify_event_bit(ev->type);
	if (!bit || n->closing)
		return;
	struct notify_problem p;
	char why[200];
	if (notify_problem_parse(ev->data, &p, why, sizeof(why))) {
		log_warn("event=notify_bad_event id=%lld type=%s error=\"%s\"", (long long)ev->id,
		         ev->type, why);
		return;
	}
	for (struct sink *k = n->sinks; k; k = k->next) {
		if (k->removed)
			continue;
		unsigned want = notify_wants(k->events, k->min_rank, &k->scope, &p, bit);
		/* A problem that reaches the sink's severity only later (minor to major, or one
		 * step up in an exam session) is news to it then: announced as opened, once — the
		 * store's unique key drops it when the opening was there already. First, so that
		 * the update after it counts it as told. */
		if (want & NOTIFY_WANT_OPENED)
			enqueue(n, k, ev, &p, NOTIFY_EV_OPENED, 0);
		if (want & (NOTIFY_WANT_EVENT | NOTIFY_WANT_IF_TOLD))
			enqueue(n, k, ev, &p, bit, !(want & NOTIFY_WANT_EVENT));
	}
}

/* --- start: the pending rows back -------------------------------------------------------- */

static void replay(struct notify *n, int64_t after_id);

static void on_replayed(void *ud, const struct store_reply *r)
{
	struct notify *n = ud;
	if (r->status) {
		log_warn("event=notify_replay_failed error=%s", strerror(-r->status));
		return;
	}
	/* Far behind (a notifier that last sent long ago): only the newest pages can hold the
	 * last 10 minutes, so the replay starts there. */
	int64_t span = (int64_t)REPLAY_PAGES * REPLAY_PAGE;
	if (n->replay_pages == 1 && r->events_last_id - n->replay_after > span) {
		n->replay_pages = 0;
		replay(n, r->events_last_id - span);
		return;
	}
	size_t sent = 0;
	int64_t last = 0;
	for (size_t i = 0; i < r->nevents && !n->closing; i++) {
		const struct store_event *ev = &r->events[i];
		last = ev->id;
		if (ev->ts_ms >= n->started_ms - REPLAY_MS && notify_event_bit(ev->type)) {
			notify_on_event(n, ev);
			sent++;
		}
	}
	if (sent)
		log_info("event=notify_replayed events=%zu through=%lld", sent, (long long)last);
	if (r->nevents == REPLAY_PAGE && !n->closing)
		replay(n, last);
}

static void replay(struct notify *n, int64_t after_id)
{
	if (n->closing)
		return;
	if (++n->replay_pages > REPLAY_PAGES) {
		log_warn("event=notify_replay_truncated after=%lld pages=%d", (long long)after_id,
		         REPLAY_PAGES);
		return;
	}
	n->replay_after = after_id;
	int rc = store_events_after(n->store, after_id, REPLAY_PAGE, on_replayed, n);
	if (rc)
		log_warn("event=notify_replay_failed error=%s", strerror(-rc));
}

static void on_loaded(void *ud, const struct store_reply *r)
{
	struct notify *n = ud;
	if (r->status) {
		log_error("event=notify_load_failed error=%s", strerror(-r->status));
		return;
	}
	size_t loaded = 0, orphans = 0, suppressed = 0;
	int64_t now = vw_now_ms();
	for (size_t i = 0; i < r->nnotifications && !n->closing; i++) {
		const struct store_notification *row = &r->notifications[i];
		struct sink *k = sink_find(n, row->sink);
		if (!k || k->removed) {
			orphans++;
			continue;
		}
		int dup = 0;
		for (struct note *nt = k->qhead; nt && !dup; nt = nt->qnext)
			dup = nt->row.id == row->id;
		if (dup)
			continue;
		struct note *nt =
		    note_new(n, k, row->event, row->site, row->org, row->city, row->data);
		if (!nt)
			break;
		nt->row.id = row->id;
		nt->row.problem_id = row->problem_id;
		nt->row.event_id = row->event_id;
		nt->row.state = "pending";
		nt->row.attempts = row->attempts;
		nt->row.next_attempt_ms = row->next_attempt_ms;
		nt->row.created_ms = row->created_ms;
		snprintf(nt->last_error, sizeof(nt->last_error), "%s", row->last_error);
		nt->event_bit = 0;
		for (unsigned b = 1; b <= NOTIFY_EV_UPDATED; b <<= 1)
			if (!strcmp(notify_event_word(b), row->event))
				nt->event_bit = b;
		nt->due_ms = row->next_attempt_ms > now ? row->next_attempt_ms : now;
		if (k->nqueued >= k->queue_max) {
			/* The sink's queue bound holds at start too (oldest rows first, so the
			 * newest go over it): counted in its next message, never sent. */
			k->suppressed++;
			n->stats.suppressed++;
			suppressed++;
			snprintf(nt->last_error, sizeof(nt->last_error),
			         "queue full (%zu waiting) at start", k->nqueued);
			note_finish(nt, "suppressed");
			continue;
		}
		queue_append(k, nt);
		loaded++;
	}
	log_info("event=notify_started sinks_pending=%zu orphans=%zu replay_after=%lld", loaded,
	         orphans, (long long)r->value);
	if (suppressed)
		log_warn("event=notify_suppressed at=start rows=%zu hint=\"over the sinks' queue "
		         "bound\"",
		         suppressed);
	if (orphans)
		log_warn("event=notify_orphans rows=%zu hint=\"pending rows of a sink no longer "
		         "configured stay pending\"",
		         orphans);
	replay(n, r->value);
	kick(n);
}

int notify_start(struct notify *n)
{
	size_t active = 0;
	for (struct sink *k = n->sinks; k; k = k->next)
		active += !k->removed;
	log_info("event=notify_sinks count=%zu", active);
	n->started_ms = vw_now_ms();
	struct store_notify_query q = {.state = "pending", .limit = LOAD_MAX, .oldest_first = 1};
	return store_notify_list(n->store, &q, on_loaded, n);
}

/* --- close ------------------------------------------------------------------------------- */

void notify_get_stats(const struct notify *n, struct notify_stats *out)
{
	*out = n->stats;
}

void notify_close(struct notify *n)
{
	if (!n || n->closing)
		return;
	n->closing = 1;
	/* A message in flight stays pending in the store and goes at the next start. */
	for (struct sink *k = n->sinks; k; k = k->next)
		if (k->inflight) {
			curluv_remove(n->cu, k->easy);
			k->inflight = NULL;
		}
	if (n->cu)
		curluv_close(n->cu, NULL, NULL);
	if (n->timer_open) {
		n->timer_open = 0;
		uv_close((uv_handle_t *)&n->timer, NULL);
	}
}

void notify_destroy(struct notify *n)
{
	if (!n)
		return;
	while (n->all)
		note_free(n->all);
	while (n->sinks) {
		struct sink *k = n->sinks;
		n->sinks = k->next;
		sink_free(k);
	}
	curluv_destroy(&n->cu);
	free(n->public_url);
	free(n);
}
