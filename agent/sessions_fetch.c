#include "sessions_fetch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "uplink.h"

/* Far above 90 days of any venue's sessions (a few hundred bytes each). */
#define FETCH_BODY_MAX (4u << 20)

struct sessions_fetch {
	uv_loop_t *loop;
	struct curluv *cu;
	const struct agent_conf *cfg;
	struct sessions *ss;
	void (*changed_cb)(void *);
	void *changed_arg;
	CURL *easy;
	struct curl_slist *headers;
	uv_timer_t timer;
	int in_flight;
	int stopping;
	int last_failed; /* logs a failing collector once, and its recovery */
	struct vw_buf body;
	char url[1024];
	/* issue 13: the collector the uplink uses now (NULL: the first url), asked each poll */
	const char *(*collector)(void *arg);
	void *collector_arg;
	char errbuf[CURL_ERROR_SIZE];
	void (*closed_cb)(void *);
	void *closed_arg;
};

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct sessions_fetch *f = userdata;
	if (vw_buf_append(&f->body, ptr, size * nmemb))
		return 0;
	return size * nmemb;
}

static void failed(struct sessions_fetch *f, const char *what, long code, const char *detail)
{
	if (f->last_failed)
		return;
	f->last_failed = 1;
	char esc[320];
	log_warn("event=sessions_fetch_failed reason=%s http=%ld detail=%s hint=\"the sessions "
	         "in force stay until the collector answers\"",
	         what, code, vw_log_escape(detail, esc, sizeof(esc)));
}

static void handle(struct sessions_fetch *f, CURLcode cc)
{
	long code = 0;
	curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
	if (cc != CURLE_OK) {
		failed(f, "transport", 0, f->errbuf[0] ? f->errbuf : curl_easy_strerror(cc));
		return;
	}
	if (code == 304) {
		f->last_failed = 0;
		return;
	}
	if (code != 200) {
		/* 404: a collector from before exam sessions; 403: not this site's certificate. */
		failed(f, "status", code, "expected 200 or 304");
		return;
	}
	struct session_list list;
	int64_t version;
	char why[256];
	if (sessions_parse(f->body.data, f->body.len, f->cfg->agent.site, &list, &version, why,
	                   sizeof(why))) {
		/* Logged every time: a collector that answers nonsense is worth seeing. */
		char esc[320];
		log_error("event=sessions_rejected err=%s hint=\"the sessions in force stay\"",
		          vw_log_escape(why, esc, sizeof(esc)));
		return;
	}
	if (f->last_failed)
		log_info("event=sessions_fetch_recovered version=%lld", (long long)version);
	f->last_failed = 0;
	if (version == sessions_version(f->ss)) {
		session_list_free(&list); /* a collector ignoring If-None-Match: nothing new */
		return;
	}
	sessions_update(f->ss, &list, version, f->body.data, f->body.len);
	if (f->changed_cb)
		f->changed_cb(f->changed_arg);
}

static void on_done(CURL *easy, CURLcode cc, void *arg)
{
	struct sessions_fetch *f = arg;
	(void)easy;
	f->in_flight = 0;
	if (!f->stopping)
		handle(f, cc);
}

/* The sessions path of the collector at base (a [collector] url). */
static void set_url(struct sessions_fetch *f, const char *base)
{
	size_t bl = strlen(base);
	snprintf(f->url, sizeof(f->url), "%.*s/api/v1/agent/sessions",
	         (int)(bl && base[bl - 1] == '/' ? bl - 1 : bl), base);
	curl_easy_setopt(f->easy, CURLOPT_URL, f->url);
}

void sessions_fetch_follow(struct sessions_fetch *f, const char *(*collector)(void *arg), void *arg)
{
	f->collector = collector;
	f->collector_arg = arg;
}

static void on_timer(uv_timer_t *t)
{
	struct sessions_fetch *f = t->data;
	if (f->in_flight || f->stopping)
		return; /* the previous one is bounded by [collector] timeout */
	curl_slist_free_all(f->headers);
	f->headers = NULL;
	int64_t v = sessions_version(f->ss);
	if (v >= 0) {
		char h[64];
		snprintf(h, sizeof(h), "If-None-Match: \"%lld\"", (long long)v);
		f->headers = curl_slist_append(NULL, h);
	}
	curl_easy_setopt(f->easy, CURLOPT_HTTPHEADER, f->headers);
	if (f->collector)
		set_url(f, f->collector(f->collector_arg));
	vw_buf_reset(&f->body);
	f->errbuf[0] = '\0';
	if (curluv_add(f->cu, f->easy, on_done, f)) {
		failed(f, "no_memory", 0, "curl_multi_add_handle");
		return;
	}
	f->in_flight = 1;
}

int sessions_fetch_create(uv_loop_t *loop, struct curluv *cu, const struct agent_conf *cfg,
                          struct sessions *ss, void (*changed_cb)(void *), void *arg,
                          struct sessions_fetch **out)
{
	struct sessions_fetch *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->loop = loop;
	f->cu = cu;
	f->cfg = cfg;
	f->ss = ss;
	f->changed_cb = changed_cb;
	f->changed_arg = arg;
	vw_buf_init(&f->body, FETCH_BODY_MAX);
	f->easy = curl_easy_init();
	if (!f->easy) {
		free(f);
		return -ENOMEM;
	}
	CURL *e = f->easy;
	set_url(f, cfg->collector.urls[0]); /* until sessions_fetch_follow */
	curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* whatever curl can decode */
	uplink_tls_setopt(e, cfg);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, cfg->collector.timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, cfg->collector.timeout_ms / 2);
	uv_timer_init(loop, &f->timer);
	f->timer.data = f;
	*out = f;
	return 0;
}

void sessions_fetch_start(struct sessions_fetch *f)
{
	uint64_t every = (uint64_t)f->cfg->collector.sessions_poll_ms;
	if (every)
		uv_timer_start(&f->timer, on_timer, 0, every);
}

static void on_closed(uv_handle_t *h)
{
	struct sessions_fetch *f = h->data;
	if (f->closed_cb)
		f->closed_cb(f->closed_arg);
}

void sessions_fetch_stop(struct sessions_fetch *f, void (*closed_cb)(void *), void *arg)
{
	f->stopping = 1;
	f->closed_cb = closed_cb;
	f->closed_arg = arg;
	if (f->in_flight)
		curluv_remove(f->cu, f->easy);
	f->in_flight = 0;
	uv_timer_stop(&f->timer);
	uv_close((uv_handle_t *)&f->timer, on_closed);
}

void sessions_fetch_destroy(struct sessions_fetch **fp)
{
	struct sessions_fetch *f = *fp;
	if (!f)
		return;
	curl_easy_cleanup(f->easy);
	curl_slist_free_all(f->headers);
	vw_buf_free(&f->body);
	free(f);
	*fp = NULL;
}
