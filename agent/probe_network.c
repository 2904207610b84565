#include "probe_network.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sessions.h"
#include "uplink.h"
#include "vtime.h"

#define NET_MAX_TARGETS 16
#define NET_URL_MAX 640
#define NET_MAX_SAMPLES 100
/* Linux's initial retransmission timeout is 1 s (RFC 6298 2.1): a handshake 900 ms slower
 * than the round's fastest lost its SYN or SYN-ACK once. */
#define NET_RETRANSMIT_MS 900.0

struct net_target {
	struct netprobe *np;
	char name[VW_NAME_MAX];
	char url[NET_URL_MAX];
	int is_collector;
	const char *base; /* is_collector: the [collector] url measured (follow_collector) */
	CURL *easy;
	uv_timer_t gap_timer;
	int running, done;
	int nsamples;
	double rtt[NET_MAX_SAMPLES];
	int failed[NET_MAX_SAMPLES];
	double dns_sum, tls_sum, ttfb_sum;
	int timing_n, tls_failures, connect_failures;
	int64_t started_ms;
};

struct netprobe {
	uv_loop_t *loop;
	struct curluv *cu;
	const struct agent_conf *cfg;
	netprobe_result_cb result_cb;
	netprobe_need_cb need_cb;
	void *arg;
	struct net_target targets[NET_MAX_TARGETS];
	size_t ntargets;
	uv_timer_t round_timer, uplink_timer;
	CURL *up_easy;
	char *up_body;
	int up_running;
	int open_handles;
	int stopping;
	int once_left;
	void (*once_cb)(void *);
	void *once_arg;
	void (*closed_cb)(void *);
	void *closed_arg;
	/* issue 13: the collector measured is the uplink's current one (netprobe_follow);
	 * up_base is the [collector] url the uplink test points at. */
	const char *(*collector)(void *arg);
	void *collector_arg;
	const char *up_base;
};

static size_t discard_cb(char *p, size_t size, size_t n, void *u)
{
	(void)p;
	(void)u;
	return size * n;
}

static void once_progress(struct netprobe *np)
{
	if (np->once_cb && --np->once_left == 0) {
		void (*cb)(void *) = np->once_cb;
		np->once_cb = NULL;
		cb(np->once_arg);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static uint64_t round_interval(struct netprobe *np);

/* base (a [collector] url, a trailing slash or not) + path into out. */
static int collector_url(const char *base, const char *path, char *out, size_t n)
{
	size_t bl = strlen(base);
	bl = bl && base[bl - 1] == '/' ? bl - 1 : bl;
	return (size_t)snprintf(out, n, "%.*s%s", (int)bl, base, path) >= n ? -ENAMETOOLONG : 0;
}

/* issue 13: with several [collector] urls the network to the collector is measured to the
 * one the uplink sends to now (after a failover the primary being away says nothing of
 * the venue's network). Between rounds only: a running round keeps its url and its
 * collector_index, the next one moves. */
static void follow_collector(struct netprobe *np)
{
	const char *base = np->collector ? np->collector(np->collector_arg) : NULL;
	if (!base || !base[0])
		return;
	for (size_t i = 0; i < np->ntargets; i++) {
		struct net_target *t = &np->targets[i];
		if (!t->is_collector || t->running || strcmp(t->base, base) == 0 ||
		    collector_url(base, "/healthz", t->url, sizeof(t->url)))
			continue;
		curl_easy_setopt(t->easy, CURLOPT_URL, t->url); /* libcurl copies it */
		log_info("event=network_probe_collector from=%s to=%s", t->base, base);
		t->base = base;
	}
	char url[NET_URL_MAX];
	if (!np->up_running && strcmp(np->up_base, base) != 0 &&
	    !collector_url(base, "/api/v1/speedtest", url, sizeof(url))) {
		curl_easy_setopt(np->up_easy, CURLOPT_URL, url);
		np->up_base = base;
	}
}

/* base's place in [collector] url (0 the primary); -1 when it is none of them. */
static int collector_index(const struct netprobe *np, const char *base)
{
	for (size_t i = 0; i < np->cfg->collector.nurls; i++)
		if (np->cfg->collector.urls[i] && strcmp(np->cfg->collector.urls[i], base) == 0)
			return (int)i;
	return -1;
}

static void report_target(struct net_target *t)
{
	struct netprobe *np = t->np;
	const struct network_section *nc = &np->cfg->network;
	struct vw_result r;
	vw_result_init(&r, VW_KIND_NETWORK, t->name);
	r.ts_ms = vw_now_ms() - (vw_mono_ms() - t->started_ms); /* when the round began */
	/* The whole round (every sample and the gaps between them) is this target's check. */
	vw_result_set_metric(&r, VW_M_CHECK_MS, (double)(vw_mono_ms() - t->started_ms));
	double ok_rtt[NET_MAX_SAMPLES];
	int nok = 0, lost = 0;
	double min_rtt = INFINITY;
	for (int i = 0; i < t->nsamples; i++)
		if (!t->failed[i] && t->rtt[i] < min_rtt)
			min_rtt = t->rtt[i];
	for (int i = 0; i < t->nsamples; i++) {
		if (t->failed[i] || t->rtt[i] - min_rtt >= NET_RETRANSMIT_MS)
			lost++;
		else
			ok_rtt[nok++] = t->rtt[i];
	}
	double loss = t->nsamples ? 100.0 * lost / t->nsamples : 100;
	vw_result_set_metric(&r, VW_M_SAMPLES, t->nsamples);
	vw_result_set_metric(&r, VW_M_LOSS_PCT, round(loss * 10) / 10);
	if (nok) {
		double jitter = 0;
		int pairs = 0;
		for (int i = 1; i < t->nsamples; i++) {
			if (t->failed[i] || t->failed[i - 1])
				continue;
			jitter += fabs(t->rtt[i] - t->rtt[i - 1]);
			pairs++;
		}
		qsort(ok_rtt, (size_t)nok, sizeof(double), cmp_double);
		double p50 = ok_rtt[nok / 2],
		       p95 = ok_rtt[(nok * 95) / 100 < nok ? (nok * 95) / 100 : nok - 1];
		vw_result_set_metric(&r, VW_M_RTT_MS, round(p50 * 10) / 10);
		vw_result_set_metric(&r, VW_M_RTT_P95_MS, round(p95 * 10) / 10);
		if (pairs)
			vw_result_set_metric(&r, VW_M_JITTER_MS, round(jitter / pairs * 10) / 10);
		if (p50 > (double)nc->max_rtt_ms)
			vw_result_add_fault(&r, VW_FAULT_HIGH_RTT);
	}
	if (t->timing_n) {
		vw_result_set_metric(&r, VW_M_DNS_MS, round(t->dns_sum / t->timing_n * 10) / 10);
		vw_result_set_metric(&r, VW_M_TLS_MS, round(t->tls_sum / t->timing_n * 10) / 10);
		vw_result_set_metric(&r, VW_M_TTFB_MS, round(t->ttfb_sum / t->timing_n * 10) / 10);
	}
	if (t->connect_failures == t->nsamples)
		vw_result_add_fault(&r, VW_FAULT_UNREACHABLE);
	else if (t->tls_failures == t->nsamples - t->connect_failures && t->tls_failures)
		vw_result_add_fault(&r, VW_FAULT_TLS_ERROR);
	else if (loss > (double)nc->max_loss_pct)
		vw_result_add_fault(&r, VW_FAULT_PACKET_LOSS);
	if (vw_result_has_fault(&r, "unreachable") || vw_result_has_fault(&r, "tls_error"))
		r.status = VW_STATUS_DOWN;
	else if (r.nfaults)
		r.status = VW_STATUS_DEGRADED;
	vw_result_set_metric(&r, VW_M_INTERVAL_MS, (double)round_interval(np));
	int ix = t->is_collector ? collector_index(np, t->base) : -1;
	if (np->cfg->collector.nurls > 1 && ix >= 0)
		vw_result_set_metric(&r, VW_M_COLLECTOR_INDEX, ix);
	np->result_cb(np->arg, &r, 1);
}

static void start_sample(struct net_target *t);

static void on_gap(uv_timer_t *h)
{
	start_sample(h->data);
}

static void on_sample_done(CURL *easy, CURLcode cc, void *arg)
{
	struct net_target *t = arg;
	struct netprobe *np = t->np;
	curl_off_t dns = 0, conn = 0, app = 0, first = 0;
	curl_easy_getinfo(easy, CURLINFO_NAMELOOKUP_TIME_T, &dns);
	curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &conn);
	curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &app);
	curl_easy_getinfo(easy, CURLINFO_STARTTRANSFER_TIME_T, &first);
	int i = t->nsamples++;
	/* The answer's status does not matter: any HTTP answer is a working connection. */
	t->failed[i] = conn == 0 || (cc != CURLE_OK && app == 0);
	t->rtt[i] = conn > dns ? (double)(conn - dns) / 1000.0 : 0;
	if (conn == 0) {
		t->connect_failures++;
	} else if (app == 0 && cc != CURLE_OK) {
		t->tls_failures++;
	} else {
		t->dns_sum += (double)dns / 1000.0;
		t->tls_sum += (double)(app - conn) / 1000.0;
		t->ttfb_sum += first > app ? (double)(first - app) / 1000.0 : 0;
		t->timing_n++;
	}
	if (np->stopping)
		return;
	if (t->nsamples >= (int)np->cfg->network.samples) {
		t->running = 0;
		report_target(t);
		once_progress(np);
		return;
	}
	uv_timer_start(&t->gap_timer, on_gap, (uint64_t)np->cfg->network.sample_gap_ms, 0);
}

static void start_sample(struct net_target *t)
{
	if (t->np->stopping)
		return;
	if (curluv_add(t->np->cu, t->easy, on_sample_done, t))
		on_sample_done(t->easy, CURLE_OUT_OF_MEMORY, t);
}

static void start_round(struct netprobe *np)
{
	follow_collector(np);
	for (size_t i = 0; i < np->ntargets; i++) {
		struct net_target *t = &np->targets[i];
		if (t->running) {
			once_progress(np); /* a slow round is still measuring: it counts */
			continue;
		}
		t->running = 1;
		t->nsamples = t->timing_n = t->tls_failures = t->connect_failures = 0;
		t->dns_sum = t->tls_sum = t->ttfb_sum = 0;
		t->started_ms = vw_mono_ms();
		start_sample(t);
	}
}

static uint64_t round_interval(struct netprobe *np)
{
	/* The network matters most during an exam: use the session cadence then. */
	struct sessions_view v;
	sessions_view_get(np->cfg, &v);
	int in_session = sessions_view_at(&v, NULL, vw_now_ms()) != NULL;
	sessions_view_put(&v);
	return in_session ? (uint64_t)np->cfg->agent.session_interval_ms
	                  : (uint64_t)np->cfg->agent.interval_ms;
}

static void on_round(uv_timer_t *h)
{
	struct netprobe *np = h->data;
	start_round(np);
	uv_timer_start(&np->round_timer, on_round, round_interval(np), 0);
}

/* ---- uplink throughput ---- */

static void on_uplink_done(CURL *easy, CURLcode cc, void *arg)
{
	struct netprobe *np = arg;
	np->up_running = 0;
	long code = 0;
	curl_off_t speed = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(easy, CURLINFO_SPEED_UPLOAD_T, &speed);
	if (np->stopping)
		return;
	struct vw_result r;
	vw_result_init(&r, VW_KIND_NETWORK, "uplink");
	double need = np->need_cb ? np->need_cb(np->arg) : 0;
	if (need < (double)np->cfg->network.required_uplink_kbps)
		need = (double)np->cfg->network.required_uplink_kbps;
	vw_result_set_metric(&r, VW_M_REQUIRED_KBPS, round(need));
	if (cc != CURLE_OK || code != 200) {
		/* No measurement is not a measurement of zero: say the test failed. */
		log_warn("event=uplink_test_failed http=%ld err=\"%s\"", code,
		         curl_easy_strerror(cc));
		vw_result_add_fault(&r, cc != CURLE_OK ? VW_FAULT_UNREACHABLE : VW_FAULT_PROTOCOL);
		r.status = VW_STATUS_DEGRADED;
	} else {
		double kbps = (double)speed * 8 / 1000;
		vw_result_set_metric(&r, VW_M_UPLINK_KBPS, round(kbps));
		if (kbps < need) {
			vw_result_add_fault(&r, VW_FAULT_UPLINK_INSUFFICIENT);
			r.status = VW_STATUS_DEGRADED;
		}
	}
	vw_result_set_metric(&r, VW_M_INTERVAL_MS, (double)np->cfg->network.uplink_interval_ms);
	int ix = collector_index(np, np->up_base);
	if (np->cfg->collector.nurls > 1 && ix >= 0)
		vw_result_set_metric(&r, VW_M_COLLECTOR_INDEX, ix);
	np->result_cb(np->arg, &r, 1);
	once_progress(np);
}

static void on_uplink_timer(uv_timer_t *h)
{
	struct netprobe *np = h->data;
	if (np->up_running || np->stopping) {
		once_progress(np);
		return;
	}
	follow_collector(np);
	np->up_running = 1;
	if (curluv_add(np->cu, np->up_easy, on_uplink_done, np))
		on_uplink_done(np->up_easy, CURLE_OUT_OF_MEMORY, np);
}

/* ---- life cycle ---- */

static CURL *make_easy(const struct agent_conf *cfg, const char *url, int collector)
{
	CURL *e = curl_easy_init();
	if (!e)
		return NULL;
	if (collector) {
		uplink_tls_setopt(e, cfg);
	} else {
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, cfg->network.timeout_ms);
	/* A fresh connection every sample: the handshake is the measurement. */
	curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(1 << 20));
	return e;
}

static int add_target(struct netprobe *np, const char *name, const char *url, int collector)
{
	if (np->ntargets >= NET_MAX_TARGETS)
		return -E2BIG;
	struct net_target *t = &np->targets[np->ntargets];
	t->np = np;
	t->is_collector = collector;
	snprintf(t->name, sizeof(t->name), "%s", name);
	if ((size_t)snprintf(t->url, sizeof(t->url), "%s", url) >= sizeof(t->url))
		return -ENAMETOOLONG;
	t->easy = make_easy(np->cfg, t->url, collector);
	if (!t->easy)
		return -ENOMEM;
	uv_timer_init(np->loop, &t->gap_timer);
	t->gap_timer.data = t;
	np->open_handles++;
	np->ntargets++;
	return 0;
}

/* "https://user@host:port/path" -> "host:port" for a target's name. */
static void host_of(const char *url, char *out, size_t outlen)
{
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	size_t n = strcspn(p, "/?#");
	const char *at = memchr(p, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	snprintf(out, outlen, "%.*s", (int)n, p);
}

int netprobe_create(uv_loop_t *loop, struct curluv *cu, const struct agent_conf *cfg,
                    netprobe_result_cb cb, netprobe_need_cb need, void *arg, struct netprobe **out)
{
	struct netprobe *np = calloc(1, sizeof(*np));
	if (!np)
		return -ENOMEM;
	np->loop = loop;
	np->cu = cu;
	np->cfg = cfg;
	np->result_cb = cb;
	np->need_cb = need;
	np->arg = arg;
	uv_timer_init(loop, &np->round_timer);
	uv_timer_init(loop, &np->uplink_timer);
	np->round_timer.data = np->uplink_timer.data = np;
	np->open_handles = 2;

	char url[NET_URL_MAX];
	/* The primary collector until netprobe_follow says which one the uplink uses. */
	const char *base = np->up_base = cfg->collector.urls[0];
	int rc = collector_url(base, "/api/v1/speedtest", url, sizeof(url));
	for (size_t i = 1; !rc && i < cfg->collector.nurls; i++)
		rc = collector_url(cfg->collector.urls[i], "/api/v1/speedtest", url, sizeof(url));
	/* (the longer of the two paths, for every url: checked once, here) */
	if (!rc)
		collector_url(base, "/healthz", url, sizeof(url));
	if (!rc && (rc = add_target(np, "collector", url, 1)) == 0)
		np->targets[np->ntargets - 1].base = base;
	if (!rc && cfg->network.targets && cfg->network.targets[0]) {
		char *copy = strdup(cfg->network.targets), *save = NULL;
		for (char *tok = copy ? strtok_r(copy, ", ", &save) : NULL; tok && !rc;
		     tok = strtok_r(NULL, ", ", &save)) {
			char name[VW_NAME_MAX];
			host_of(tok, name, sizeof(name));
			rc = add_target(np, name, tok, 0);
		}
		free(copy);
	}
	/* The uplink test body: random bytes, so no compression on the path flatters it. */
	size_t nbytes = (size_t)cfg->network.uplink_test_bytes;
	np->up_body = malloc(nbytes);
	collector_url(base, "/api/v1/speedtest", url, sizeof(url));
	np->up_easy = make_easy(cfg, url, 1);
	if (!np->up_body || !np->up_easy)
		rc = rc ? rc : -ENOMEM;
	if (!rc) {
		uint64_t x = (uint64_t)vw_now_ms() | 1;
		for (size_t i = 0; i < nbytes; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			np->up_body[i] = (char)x;
		}
		curl_easy_setopt(np->up_easy, CURLOPT_POSTFIELDS, np->up_body);
		curl_easy_setopt(np->up_easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)nbytes);
		curl_easy_setopt(np->up_easy, CURLOPT_TIMEOUT_MS, 60000L);
	}
	*out = np; /* even on failure: handles are open, the caller stops then destroys */
	return rc;
}

void netprobe_follow(struct netprobe *np, const char *(*collector)(void *arg), void *arg)
{
	np->collector = collector;
	np->collector_arg = arg;
}

int netprobe_start(struct netprobe *np)
{
	uv_timer_start(&np->round_timer, on_round, 500, 0);
	/* First measurement after a minute: start-up traffic would skew it. */
	uv_timer_start(&np->uplink_timer, on_uplink_timer, 60000,
	               (uint64_t)np->cfg->network.uplink_interval_ms);
	return 0;
}

int netprobe_run_once(struct netprobe *np, void (*done_cb)(void *), void *arg)
{
	np->once_cb = done_cb;
	np->once_arg = arg;
	np->once_left = (int)np->ntargets + 1;
	start_round(np);
	on_uplink_timer(&np->uplink_timer);
	return 0;
}

static void on_target_closed(uv_handle_t *h)
{
	struct netprobe *np = ((struct net_target *)h->data)->np;
	if (--np->open_handles == 0 && np->closed_cb)
		np->closed_cb(np->closed_arg);
}

static void on_own_closed(uv_handle_t *h)
{
	struct netprobe *np = h->data;
	if (--np->open_handles == 0 && np->closed_cb)
		np->closed_cb(np->closed_arg);
}

void netprobe_stop(struct netprobe *np, void (*closed_cb)(void *), void *arg)
{
	np->stopping = 1;
	np->closed_cb = closed_cb;
	np->closed_arg = arg;
	for (size_t i = 0; i < np->ntargets; i++) {
		struct net_target *t = &np->targets[i];
		if (t->running)
			curluv_remove(np->cu, t->easy);
		uv_close((uv_handle_t *)&t->gap_timer, on_target_closed);
	}
	if (np->up_running)
		curluv_remove(np->cu, np->up_easy);
	uv_close((uv_handle_t *)&np->round_timer, on_own_closed);
	uv_close((uv_handle_t *)&np->uplink_timer, on_own_closed);
}

void netprobe_destroy(struct netprobe **npp)
{
	struct netprobe *np = *npp;
	if (!np)
		return;
	for (size_t i = 0; i < np->ntargets; i++)
		curl_easy_cleanup(np->targets[i].easy);
	curl_easy_cleanup(np->up_easy);
	free(np->up_body);
	free(np);
	*npp = NULL;
}
