#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "events.h"
#include "ingest.h"
#include "notify.h"
#include "prom.h"
#include "store.h"
#include "tls.h"

static void counter(struct vw_buf *b, const char *name, const char *help, uint64_t v)
{
	vw_prom_family(b, name, "counter", help);
	vw_prom_sample(b, name, NULL, 0, (double)v);
}

static void gauge(struct vw_buf *b, const char *name, const char *help, double v)
{
	vw_prom_family(b, name, "gauge", help);
	vw_prom_sample(b, name, NULL, 0, v);
}

static void render_tls(const struct tls_server *tls, const struct conn_server *conns,
                       struct vw_buf *b)
{
	const struct tls_stats *st = tls_server_stats(tls);
	gauge(b, "venuewatch_server_connections", "TLS connections open now",
	      (double)tls_server_connections(tls));
	counter(b, "venuewatch_server_connections_accepted_total", "TCP connections accepted",
	        st->accepted);
	counter(b, "venuewatch_server_connections_refused_total",
	        "connections closed at accept: [limits] max_connections reached",
	        st->refused_max_connections);
	vw_prom_family(b, "venuewatch_server_tls_handshakes_total", "counter",
	               "TLS handshakes by result");
	vw_prom_sample(b, "venuewatch_server_tls_handshakes_total",
	               &(struct vw_prom_label){"result", "ok"}, 1, (double)st->handshakes_ok);
	vw_prom_sample(b, "venuewatch_server_tls_handshakes_total",
	               &(struct vw_prom_label){"result", "refused"}, 1,
	               (double)st->handshakes_failed);
	vw_prom_family(b, "venuewatch_server_tls_refusals_total", "counter",
	               "TLS handshakes refused, by the reason event=tls_refused logs (unknown_ca, "
	               "cert_revoked, cert_expired, ...)");
	for (size_t i = 0; i < st->nreasons; i++)
		vw_prom_sample(b, "venuewatch_server_tls_refusals_total",
		               &(struct vw_prom_label){"reason", st->reason[i]}, 1,
		               (double)st->refused[i]);
	if (conns)
		counter(b, "venuewatch_server_streams_dropped_total",
		        "streamed responses cut off because the client read too slowly",
		        conn_server_streams_dropped(conns));
}

static void render_ingest(const struct ingest *in, struct vw_buf *b)
{
	const struct ingest_stats *st = ingest_get_stats(in);
	vw_prom_family(b, "venuewatch_server_ingest_batches_total", "counter",
	               "agents' upload batches by outcome (stored 200; invalid 400/413; refused "
	               "401/403; busy 503 before the store; failed 503 from the store)");
	for (int o = 0; o < INGEST_OUTCOMES; o++)
		vw_prom_sample(b, "venuewatch_server_ingest_batches_total",
		               &(struct vw_prom_label){"outcome", ingest_outcome_names[o]}, 1,
		               (double)st->batches[o]);
	vw_prom_family(b, "venuewatch_server_ingest_results_total", "counter",
	               "results in stored batches: stored, or duplicate (at or below the agent's "
	               "acknowledged mark: a resend)");
	vw_prom_sample(b, "venuewatch_server_ingest_results_total",
	               &(struct vw_prom_label){"outcome", "stored"}, 1, (double)st->results_stored);
	vw_prom_sample(b, "venuewatch_server_ingest_results_total",
	               &(struct vw_prom_label){"outcome", "duplicate"}, 1,
	               (double)st->results_duplicate);
	vw_prom_family(b, "venuewatch_server_ingest_ack_seconds", "histogram",
	               "an upload's request received to its acknowledgement written");
	vw_prom_hist_write(b, "venuewatch_server_ingest_ack_seconds", NULL, 0, ingest_ack_bounds,
	                   INGEST_ACK_BOUNDS, &st->ack_seconds);
}

static void render_store(struct store *s, struct vw_buf *b)
{
	struct store_stats st;
	store_get_stats(s, &st);
	counter(b, "venuewatch_server_store_commits_total", "group commits of the store's writer",
	        st.commits);
	vw_prom_family(b, "venuewatch_server_store_commit_seconds", "histogram",
	               "a group commit's wall time in the writer thread");
	vw_prom_hist_write(b, "venuewatch_server_store_commit_seconds", NULL, 0,
	                   store_commit_bounds, STORE_COMMIT_BOUNDS, &st.commit_seconds);
	/* issue 13: how far the rollup job got (on PostgreSQL, the rollup lease's holder only) */
	counter(b, "venuewatch_server_store_rows_rolled_total",
	        "results the rollup job credited to sessions and days, in committed flushes",
	        st.rows_rolled);
	counter(b, "venuewatch_server_store_rows_pruned_total",
	        "raw results deleted past [store] raw_retention (SQLite; PostgreSQL drops days)",
	        st.rows_pruned);
	counter(b, "venuewatch_server_store_reads_refused_total",
	        "store reads refused because too many were in flight (answered 503)",
	        st.reads_refused);
	struct store_avail av;
	store_get_avail(s, &av);
	gauge(
	    b, "venuewatch_server_store_up",
	    "1 while the store's writer has a working database connection (0: ingest answers 503)",
	    av.up);
	gauge(b, "venuewatch_server_store_reconnect_attempts",
	      "failed reconnect attempts of the store's writer since its connection was lost",
	      (double)av.attempts);
	/* issue 13: which singleton jobs run here (on sqlite, all of them, always) */
	struct store_lease held[STORE_LEASES];
	store_leases(s, held);
	static const char lease[] = "venuewatch_server_lease_held";
	vw_prom_family(b, lease, "gauge",
	               "1 for each singleton job's lease this collector holds now (silence "
	               "detection: feed; notifications: notify; rollups: rollup), else 0");
	for (int i = 0; i < STORE_LEASES; i++)
		vw_prom_sample(b, lease, &(struct vw_prom_label){"name", store_lease_names[i]}, 1,
		               held[i].held ? 1 : 0);
	if (st.feed.at_ms <= 0)
		return; /* not counted yet: the store's first feed tick (a second) counts them */
	/* issue 14: kept by the store's writer in its feed tick (store.h), not scanned here. */
	static const char sites[] = "venuewatch_server_sites";
	vw_prom_family(b, sites, "gauge",
	               "sites heard from, by status as the dashboard shows it: silent (no batch "
	               "within silent_after), else the worst of its open problems, else ok");
	for (int i = 0; i < STORE_SITE_STATES; i++)
		vw_prom_sample(b, sites,
		               &(struct vw_prom_label){"status", store_site_state_names[i]}, 1,
		               (double)st.feed.sites[i]);
	static const char probs[] = "venuewatch_server_problems_open";
	vw_prom_family(b, probs, "gauge",
	               "problems open now, by kind (a result kind, or site for site_silent) and "
	               "severity");
	for (int k = 0; k < STORE_PROBLEM_KINDS; k++)
		for (int v = 0; v < STORE_SEVERITIES; v++) {
			struct vw_prom_label l[2] = {
			    {"kind", k < VW_KIND_COUNT ? vw_kind_name((enum vw_kind)k) : "site"},
			    {"severity", store_severity_names[v]}};
			vw_prom_sample(b, probs, l, 2, (double)st.feed.problems[k][v]);
		}
}

static void render_events(const struct events *ev, struct vw_buf *b)
{
	gauge(b, "venuewatch_server_sse_subscribers", "open /api/v1/events streams",
	      (double)events_subscribers(ev));
	counter(b, "venuewatch_server_sse_dropped_total",
	        "/api/v1/events subscribers cut off as too slow", events_dropped(ev));
}

static void render_notify(const struct notify *n, struct vw_buf *b)
{
	struct notify_stats st;
	notify_get_stats(n, &st);
	static const char name[] = "venuewatch_server_notifications_total";
	vw_prom_family(b, name, "counter",
	               "notifications by state: queued, sent, failed (given up), suppressed, "
	               "duplicate, unannounced");
	const struct {
		const char *state;
		uint64_t v;
	} rows[] = {{"queued", st.queued},        {"sent", st.sent},
	            {"failed", st.failed},        {"suppressed", st.suppressed},
	            {"duplicate", st.duplicates}, {"unannounced", st.unannounced}};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		vw_prom_sample(b, name, &(struct vw_prom_label){"state", rows[i].state}, 1,
		               (double)rows[i].v);
	counter(b, "venuewatch_server_notification_attempts_total",
	        "delivery attempts to the sinks (retries included)", st.attempts);
}

void metrics_render(const struct metrics_sources *src, struct vw_buf *b)
{
	vw_prom_family(b, "venuewatch_server_build_info", "gauge",
	               "the collector's version (always 1)");
	vw_prom_sample(b, "venuewatch_server_build_info",
	               &(struct vw_prom_label){"version", VW_VERSION}, 1, 1);
	gauge(b, "venuewatch_server_start_time_seconds", "when the collector started (Unix time)",
	      (double)src->start_time_ms / 1000.0);
	if (src->tls)
		render_tls(src->tls, src->conns, b);
	if (src->ingest)
		render_ingest(src->ingest, b);
	if (src->store)
		render_store(src->store, b);
	if (src->events)
		render_events(src->events, b);
	if (src->notify)
		render_notify(src->notify, b);
}

/* One entry: an address, or address/prefix. */
static int parse_net(const char *s, size_t n, struct metrics_allow *out, char *err, size_t errlen)
{
	char tok[64];
	if (n >= sizeof(tok)) {
		snprintf(err, errlen, "entry too long: %.*s", (int)n, s);
		return -EINVAL;
	}
	memcpy(tok, s, n);
	tok[n] = '\0';
	if (out->n >= METRICS_ALLOW_MAX) {
		snprintf(err, errlen, "more than %d entries", METRICS_ALLOW_MAX);
		return -EINVAL;
	}
	char *slash = strchr(tok, '/');
	if (slash)
		*slash = '\0';
	int v6 = strchr(tok, ':') != NULL;
	int max = v6 ? 128 : 32;
	int prefix = max;
	if (slash) {
		char *end;
		long p = strtol(slash + 1, &end, 10);
		if (end == slash + 1 || *end || p < 0 || p > max) {
			snprintf(err, errlen, "%s/%s: the prefix must be 0..%d", tok, slash + 1,
			         max);
			return -EINVAL;
		}
		prefix = (int)p;
	}
	unsigned char addr[16] = {0};
	if (inet_pton(v6 ? AF_INET6 : AF_INET, tok, addr) != 1) {
		snprintf(err, errlen, "%s: not an IPv4 or IPv6 address (names are not resolved)",
		         tok);
		return -EINVAL;
	}
	out->net[out->n].v6 = v6;
	memcpy(out->net[out->n].addr, addr, sizeof(addr));
	out->net[out->n].prefix = prefix;
	out->n++;
	return 0;
}

int metrics_allow_parse(const char *list, struct metrics_allow *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	for (const char *p = list ? list : ""; *p;) {
		size_t n = strcspn(p, ",");
		const char *b = p, *e = p + n;
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > b) {
			int rc = parse_net(b, (size_t)(e - b), out, err, errlen);
			if (rc)
				return rc;
		}
		p += n + (p[n] ? 1 : 0);
	}
	return 0;
}

static int prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;
	if (memcmp(a, b, (size_t)whole) != 0)
		return 0;
	if (!rest)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

int metrics_allow_peer(const struct metrics_allow *a, const char *peer)
{
	char host[64];
	const char *b = peer, *e;
	if (!a->n || !peer)
		return 0;
	if (*b == '[') {
		b++;
		e = strchr(b, ']');
	} else {
		e = strrchr(b, ':');
	}
	if (!e || (size_t)(e - b) >= sizeof(host))
		return 0;
	memcpy(host, b, (size_t)(e - b));
	host[e - b] = '\0';
	unsigned char addr[16] = {0};
	int v6 = strchr(host, ':') != NULL;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1)
		return 0;
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (v6 && memcmp(addr, mapped, sizeof(mapped)) == 0) {
		memmove(addr, addr + 12, 4);
		memset(addr + 4, 0, 12);
		v6 = 0;
	}
	for (size_t i = 0; i < a->n; i++)
		if (a->net[i].v6 == v6 && prefix_equal(a->net[i].addr, addr, a->net[i].prefix))
			return 1;
	return 0;
}
