#include "server_conf.h"

#include "labels.h"
#include "metrics.h"
#include "notify_msg.h"
#include "pg_dsn.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY(sect, field_) offsetof(struct sect, field_)

static const struct vw_conf_key server_keys[] = {
    {"listen", VW_CONF_STR, KEY(server_section, listen), "127.0.0.1:8443", 0, 0, 0, NULL,
     "address:port to accept agents and supervisors on ([v6]:port for IPv6; port 0 = any free "
     "port, logged as event=listening)"},
    {"state_dir", VW_CONF_STR, KEY(server_section, state_dir), NULL, VW_CONF_REQUIRED, 0, 0, NULL,
     "directory for the database (venuewatch.db) and, by default, the pki directory"},
    {"hostnames", VW_CONF_STR, KEY(server_section, hostnames), "localhost,127.0.0.1", 0, 0, 0, NULL,
     "comma-separated DNS names and IP addresses agents use to reach this server; "
     "they become the server certificate's subjectAltName in 'ca init'"},
    {"log_level", VW_CONF_ENUM, KEY(server_section, log_level), "info", 0, 0, 0,
     "debug|info|warn|error", "least severe log level written"},
};

static const struct vw_conf_key pki_keys[] = {
    {"dir", VW_CONF_STR, KEY(pki_section, dir), "", 0, 0, 0, NULL,
     "directory holding ca.key, ca.crt, server.key and server.crt; empty = <state_dir>/pki"},
};

/* Defaults: 16 KiB of headers is far above what curl or a browser sends (nginx's default
 * large_client_header_buffers is 4 x 8k); 8 MiB bodies hold ~40k results, well over the
 * agent's default batch_max of 500. */
static const struct vw_conf_key limits_keys[] = {
    /* At most 64 KiB: libhttp-parser refuses heads over its compiled-in 80 KiB itself,
     * and our own limit must be the one that applies. */
    {"max_header_bytes", VW_CONF_SIZE, KEY(limits_section, max_header_bytes), "16KiB", 0, 1024,
     64 << 10, NULL, "request line plus headers; larger requests get 431"},
    {"max_body_bytes", VW_CONF_SIZE, KEY(limits_section, max_body_bytes), "8MiB", 0, 1024,
     1LL << 30, NULL, "request body; larger bodies get 413"},
    {"max_connections", VW_CONF_INT, KEY(limits_section, max_connections), "0", 0, 0, 1000000, NULL,
     "open client connections; more are closed at accept. 0 = as many as the open-file "
     "limit allows (raised to its hard limit at start), less a reserve for the server's own "
     "files"},
    {"header_timeout", VW_CONF_DURATION, KEY(limits_section, header_timeout_ms), "10s", 0, 100,
     3600000, NULL, "TLS handshake plus request headers, and any request's headers once begun"},
    {"request_timeout", VW_CONF_DURATION, KEY(limits_section, request_timeout_ms), "30s", 0, 100,
     3600000, NULL, "whole request from its first byte to its last; 408 after that"},
    {"idle_timeout", VW_CONF_DURATION, KEY(limits_section, idle_timeout_ms), "60s", 0, 100,
     86400000, NULL, "keep-alive connection with no request in progress"},
    {"shutdown_timeout", VW_CONF_DURATION, KEY(limits_section, shutdown_timeout_ms), "10s", 0, 100,
     600000, NULL,
     "on SIGTERM/SIGINT, how long in-flight requests may take to finish before their "
     "connections are closed anyway"},
    /* 256 KiB holds ~1,000 events of ~250 bytes: minutes of a busy province's feed, so only
     * a client that has stopped reading reaches it. */
    {"stream_queue", VW_CONF_SIZE, KEY(limits_section, stream_queue_bytes), "256KiB", 0, 4096,
     64 << 20, NULL,
     "unsent bytes one event-stream subscriber may have waiting; a subscriber past this is "
     "not reading and is disconnected (event=stream_dropped reason=slow)"},
    /* A restore or a reinstall makes one new epoch; 4 a day is a bad week of them. Each new
     * epoch re-opens the agent's seqs from 1 (a new mark), so an unbounded number would let
     * one certificate fill the epochs table and hide a cloned machine's churn. */
    {"new_epochs_per_day", VW_CONF_INT, KEY(limits_section, new_epochs_per_day), "4", 0, 1, 1000000,
     NULL,
     "new outbox epochs one agent may start in any 24 h (a reinstall or a restored outbox "
     "starts one); a batch opening one more gets 403 (event=ingest_refused "
     "reason=epoch_limit) and is not stored"},
};

static const struct vw_conf_key web_keys[] = {
    {"root", VW_CONF_STR, KEY(web_section, root), "", 0, 0, 0, NULL,
     "directory of the dashboard's built files (index.html, assets/), served at / and "
     "below; empty = no dashboard"},
    {"origins", VW_CONF_STR, KEY(web_section, origins), "", 0, 0, 0, NULL,
     "comma-separated origins (https://name[:port]) the dashboard is served from; a "
     "state-changing request with the session cookie must carry one of them in Origin. "
     "Empty = https:// + the request's Host header"},
    /* OWASP's session guidance: idle timeouts of 15-30 min for a low-risk application,
     * an absolute one of a working day. */
    {"session_idle", VW_CONF_DURATION, KEY(web_section, session_idle_ms), "30m", 0, 1000, 86400000,
     NULL, "a dashboard session (the __Host-vw_session cookie) unused this long has ended"},
    {"session_lifetime", VW_CONF_DURATION, KEY(web_section, session_lifetime_ms), "12h", 0, 1000,
     30LL * 86400000, NULL,
     "a dashboard session ends this long after its login, used or not (never after the "
     "token it came from)"},
    /* A revocation is made by the CLI, another process: an open event stream only learns of
     * it by asking auth.db again. A minute bounds how long a revoked reader keeps watching
     * at one cheap read per stream a minute. */
    {"stream_recheck", VW_CONF_DURATION, KEY(web_section, stream_recheck_ms), "60s", 0, 100,
     3600000, NULL,
     "an open event stream's token or session is checked again this often (revoked, "
     "logged out, idle or expired: the stream ends)"},
    {"public_url", VW_CONF_STR, KEY(web_section, public_url), "", 0, 0, 0, NULL,
     "the dashboard's address as people reach it (https://name[:port]); notifications then "
     "link to a site's page (<public_url>/sites/SITE). Empty = no link"},
};

/* The store's backend by name; its files (for sqlite: venuewatch.db) live in state_dir, so a
 * config without [store] opens the same database as before the section existed. The order
 * is enum store_backend_id's. */
static const char *const store_backends[] = {"sqlite", "postgresql"};
static const struct vw_conf_key store_keys[] = {
    {"backend", VW_CONF_ENUM, KEY(store_section, backend), "sqlite", 0, 0, 0, "sqlite|postgresql",
     "where results are kept: sqlite = <state_dir>/venuewatch.db (WAL), one collector; "
     "postgresql = the database dsn names (issue 13): results, sites, exam sessions, the "
     "live feed, thumbnails, history, notifications, rollups and scores, shared by several "
     "collectors (auth.db, inspect.db and scores.db stay files of each collector's state_dir: "
     "docs/SCALE.md)"},
    /* The password is never part of the config text: configs get copied into tickets and
     * logs, and libpq reads a password file itself (passfile=, or PGPASSFILE). */
    {"dsn", VW_CONF_STR, KEY(store_section, dsn), "", 0, 0, 0, NULL,
     "backend = postgresql: the libpq connection string (\"host=db1 port=5432 dbname=vw "
     "user=vw\" or a postgresql:// URI) without a password; required there, refused with "
     "sqlite"},
    {"password_file", VW_CONF_STR, KEY(store_section, password_file), "", 0, 0, 0, NULL,
     "backend = postgresql: a libpq password file (hostname:port:database:username:password "
     "lines, mode 0600) for dsn; empty = libpq's own (PGPASSFILE, else ~/.pgpass)"},
    /* 90 days: the collector's own window for evidence and history; the score reads the
     * rollups, which are kept for years (the form is evaluated every three). */
    {"raw_retention", VW_CONF_DURATION, KEY(store_section, raw_retention_ms), "2160h", 0, 3600000,
     3650LL * 86400000, NULL,
     "(2160h = 90 days) raw results that arrived longer ago than this are deleted, in small "
     "batches, once "
     "the rollup job has credited them (a target's latest result stays); scores, which "
     "read the rollups, do not change. Evidence rows older than this are gone"},
    /* issue 16 C: the pictures show candidates (personal information): kept no longer than
     * the results they illustrate unless a province decides on less. */
    {"thumbnail_retention", VW_CONF_DURATION, KEY(store_section, thumb_retention_ms), "0", 0, 0,
     3650LL * 86400000, NULL,
     "camera thumbnails (picture evidence) that arrived longer ago than this are deleted, "
     "in small batches; 0: the same as raw_retention. They are personal information: "
     "keep them no longer than needed"},
    /* issue 16 C: the access log names people and when they looked at candidates' pictures:
     * personal information too, kept for a bounded time (PIPL-style practice), never for
     * ever. */
    {"thumbnail_access_retention", VW_CONF_DURATION, KEY(store_section, thumb_access_retention_ms),
     "8760h", 0, 86400000, 3650LL * 86400000, NULL,
     "records of who was shown which camera thumbnail (table thumbnail_access) older than "
     "this are deleted, in small batches; 8760h is 365 days. The log is personal "
     "information itself: keep it only as long as complaints and audits need it"},
    /* issue 13: store.h's STORE_LEASE_TTL_MS and STORE_LEASE_RENEW_MS say why 15 s and 5 s. */
    {"lease_ttl", VW_CONF_DURATION, KEY(store_section, lease_ttl_ms), "15s", 0, 1000, 3600000, NULL,
     "backend = postgresql: the collectors sharing the database run each singleton job "
     "(silence detection, notifications, rollups) on one of them at a time, under a lease "
     "that expires this long after its holder's last renewal (by the database's clock); a "
     "collector that died or stalled is replaced after about lease_ttl + lease_renew"},
    {"lease_renew", VW_CONF_DURATION, KEY(store_section, lease_renew_ms), "5s", 0, 100, 600000,
     NULL,
     "backend = postgresql: how often a collector renews (or tries to take) the leases; "
     "shorter than lease_ttl (a third of it lets two renewals fail)"},
};

/* issue 11 and DOMAIN.md: 5 when the weakest criterion holds >= 99 % of exam-session time,
 * 0 when never connected, 1-4 in between. The steps are the rubric's, not the code's: a
 * province sets its own, and each set is versioned (score_rubric_finish). */
static const struct vw_conf_key score_keys[] = {
    {"full_pct", VW_CONF_DOUBLE, KEY(score_section, full_pct), "99", 0, 0, 100, NULL,
     "score 5 when the weakest criterion holds at least this percent of exam-session time"},
    {"step4", VW_CONF_DOUBLE, KEY(score_section, step4), "95", 0, 0, 100, NULL,
     "score 4 from this percent of the weakest criterion"},
    {"step3", VW_CONF_DOUBLE, KEY(score_section, step3), "80", 0, 0, 100, NULL,
     "score 3 from this percent of the weakest criterion"},
    {"step2", VW_CONF_DOUBLE, KEY(score_section, step2), "50", 0, 0, 100, NULL,
     "score 2 from this percent; below it 1, and 0 only when the site was never connected"},
    /* The agent's slowest default cadence is 120 s outside sessions (ARCHITECTURE.md):
     * a result without its interval_ms metric holds at most that long. */
    {"default_stale", VW_CONF_DURATION, KEY(score_section, default_stale_ms), "120s", 0, 1000,
     86400000, NULL,
     "how long a result without an interval_ms metric counts as fresh (otherwise 2 x its "
     "interval_ms)"},
    /* A hold open at a session's end settles within 2 x its target's cadence; the slowest
     * default one (the uplink test, 30 min) makes an hour. */
    {"settle", VW_CONF_DURATION, KEY(score_section, settle_ms), "1h", 0, 0, 7 * 86400000L, NULL,
     "how long after a session's end its figures count as provisional (they may still change)"},
};

/* issue 16 (A). GB/T 28181-2022 marks a device offline after 3 missed keepalives: a
 * site is silent after 3 of its upload cadences without a batch. A week of events covers a
 * dashboard left closed over a weekend and holiday. */
static const struct vw_conf_key feed_keys[] = {
    {"silent_after", VW_CONF_STR, KEY(feed_section, silent_after), "3x", 0, 0, 0, NULL,
     "a site from which no batch came for this long has a site_silent problem: Nx = N "
     "times the cadence its agent last reported (cadence_ms; 60 s when it never said), "
     "or a duration such as 90s"},
    {"event_retention", VW_CONF_DURATION, KEY(feed_section, event_retention_ms), "168h", 0, 60000,
     3650LL * 86400000, NULL,
     "(168h = 7 days) stored events (problems, status changes) older than this are pruned; "
     "an event stream resuming from before it is told to reload"},
};

/* issue 16 D: [notify NAME]. The defaults retry for about an hour (10 attempts, 10 s
 * doubling to 10 min), long enough to outlast a robot's or a proxy's restart; 20/min is
 * DingTalk's own limit for one robot (it answers errcode 130101 beyond it). */
static const struct vw_conf_key notify_keys[] = {
    {"type", VW_CONF_ENUM, KEY(notify_section, type), NULL, VW_CONF_REQUIRED, 0, 0, NOTIFY_TYPES,
     "webhook = a JSON POST of the problem and the message; dingtalk / wecom = the robot's "
     "markdown message (DingTalk 钉钉 or WeCom 企业微信 group robot)"},
    {"url", VW_CONF_STR, KEY(notify_section, url), NULL, VW_CONF_REQUIRED, 0, 0, NULL,
     "where messages are POSTed (http:// or https://); for the robots the webhook address "
     "with its access_token / key (never logged)"},
    {"secret", VW_CONF_STR, KEY(notify_section, secret), "", 0, 0, 0, NULL,
     "dingtalk: the robot's signing secret (加签, SEC...); empty = unsigned"},
    {"secret_file", VW_CONF_STR, KEY(notify_section, secret_file), "", 0, 0, 0, NULL,
     "dingtalk: a file holding the signing secret instead (read at start and on SIGHUP)"},
    {"min_severity", VW_CONF_ENUM, KEY(notify_section, min_severity), "major", 0, 0, 0,
     NOTIFY_SEVERITIES, "problems of at least this severity are sent"},
    {"scope", VW_CONF_STR, KEY(notify_section, scope), "province", 0, 0, 0, NULL,
     "whose problems: province (all), city:NAME, org:NAME or site:NAME"},
    {"events", VW_CONF_STR, KEY(notify_section, events), "opened,closed", 0, 0, 0, NULL,
     "which of a problem's events are sent: opened, closed, acked, updated (comma-separated)"},
    {"rate", VW_CONF_STR, KEY(notify_section, rate), "20/min", 0, 0, 0, NULL,
     "at most this many messages (N/min, N/h or N/s; off = no limit); more wait in the "
     "queue"},
    {"burst", VW_CONF_INT, KEY(notify_section, burst), "5", 0, 1, 1000, NULL,
     "messages that may go at once before rate applies"},
    {"ca", VW_CONF_STR, KEY(notify_section, ca), "", 0, 0, 0, NULL,
     "CA file to verify an https receiver with; empty = the system's CAs"},
    {"timeout", VW_CONF_DURATION, KEY(notify_section, timeout_ms), "10s", 0, 100, 600000, NULL,
     "one delivery attempt, connect to reply; a receiver that does not answer in time "
     "counts as a failure"},
    {"retry_first", VW_CONF_DURATION, KEY(notify_section, retry_first_ms), "10s", 0, 100, 3600000,
     NULL, "wait after the first failure; doubled after each next one, with jitter"},
    {"retry_max", VW_CONF_DURATION, KEY(notify_section, retry_max_ms), "10m", 0, 100, 86400000,
     NULL, "longest wait between attempts"},
    {"attempts", VW_CONF_INT, KEY(notify_section, attempts), "10", 0, 1, 1000, NULL,
     "attempts before a message is given up as failed"},
    {"queue", VW_CONF_INT, KEY(notify_section, queue), "256", 0, 1, 100000, NULL,
     "messages waiting for this sink at most; more are recorded as suppressed and counted in "
     "the sink's next message"},
};

/* issue 12 B: [inspection]. Three grades and three outcomes as market-supervision and HRSS
 * inspection lists name them; 20 working days is the market-supervision practice for
 * publishing a result (DOMAIN.md). */
static const struct vw_conf_key inspection_keys[] = {
    {"risk_grades", VW_CONF_STR, KEY(inspection_section, risk_grades), INSPECT_RISK_GRADES_DEFAULT,
     0, 0, 0, NULL,
     "the targets' risk grades as id:label, comma-separated, highest risk first (ids "
     "[a-z0-9_], at most 16); a target's risk is one of the ids (CSV: the id or the label)"},
    {"outcomes", VW_CONF_STR, KEY(inspection_section, outcomes), INSPECT_OUTCOMES_DEFAULT, 0, 0, 0,
     NULL, "an inspection's possible outcomes as id:label, comma-separated (at most 16)"},
    {"holidays", VW_CONF_STR, KEY(inspection_section, holidays), "", 0, 0, 0, NULL,
     "a CSV of YYYY-MM-DD,holiday|workday,name (national holidays and make-up working days) "
     "for the results' deadline; empty = only weekends are rest days"},
    {"result_due_days", VW_CONF_INT, KEY(inspection_section, result_due_days), "20", 0, 1, 365,
     NULL, "an inspection's result is due for publication this many working days after it"},
    {"capture_every", VW_CONF_DURATION, KEY(inspection_section, capture_every_ms), "30s", 0, 1000,
     3600000, NULL,
     "how often remote checks look for a started slot to capture the site's live status"},
};

/* issue 14: who may scrape GET /metrics without the metrics role's token. */
static const struct vw_conf_key metrics_keys[] = {
    {"allow", VW_CONF_STR, KEY(metrics_section, allow), "", 0, 0, 0, NULL,
     "comma-separated peer addresses or CIDRs (127.0.0.1, ::1, 10.0.0.0/8) that may read "
     "GET /metrics without a token; empty = only with a metrics token ('token create "
     "--role metrics')"},
};

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))

static const struct vw_conf_section sections[] = {
    {"server", 0, server_keys, NKEYS(server_keys), offsetof(struct server_conf, server), 0, 0,
     KEY(server_section, line), 1, "The collector: where it listens and keeps its state."},
    {"pki", 0, pki_keys, NKEYS(pki_keys), offsetof(struct server_conf, pki), 0, 0,
     KEY(pki_section, line), 0, "The certificate authority that enrols agents (see 'ca init')."},
    {"limits", 0, limits_keys, NKEYS(limits_keys), offsetof(struct server_conf, limits), 0, 0,
     KEY(limits_section, line), 0, "Bounds on what one client may cost the server."},
    {"web", 0, web_keys, NKEYS(web_keys), offsetof(struct server_conf, web), 0, 0,
     KEY(web_section, line), 0, "The web dashboard: its static files and its sessions."},
    {"store", 0, store_keys, NKEYS(store_keys), offsetof(struct server_conf, store), 0, 0,
     KEY(store_section, line), 0, "Where ingested results are stored."},
    {"score", 0, score_keys, NKEYS(score_keys), offsetof(struct server_conf, score), 0, 0,
     KEY(score_section, line), 0,
     "The item-3.6 rubric: percent of exam-session time to score steps (docs/SCORE.md)."},
    {"feed", 0, feed_keys, NKEYS(feed_keys), offsetof(struct server_conf, feed), 0, 0,
     KEY(feed_section, line), 0,
     "The live feed: problems, site silence and the stored events behind /api/v1/events."},
    {"notify", 1, notify_keys, NKEYS(notify_keys), offsetof(struct server_conf, notify),
     sizeof(struct notify_section), KEY(notify_section, name), KEY(notify_section, line), 0,
     "A notification sink: problems sent to a webhook, a DingTalk or a WeCom robot "
     "(docs/API.md \"Notifications\")."},
    {"inspection", 0, inspection_keys, NKEYS(inspection_keys),
     offsetof(struct server_conf, inspection), 0, 0, KEY(inspection_section, line), 0,
     "Double-random inspections (双随机、一公开): risk grades, outcomes, the results' deadline."},
    {"metrics", 0, metrics_keys, NKEYS(metrics_keys), offsetof(struct server_conf, metrics), 0, 0,
     KEY(metrics_section, line), 0, "GET /metrics, the Prometheus exposition (docs/API.md)."},
};

const struct vw_conf_schema server_conf_schema = {sections, NKEYS(sections)};

int server_conf_parse_listen(const char *s, char host[64], int *port)
{
	const char *colon;
	size_t hl;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		hl = (size_t)(close - s - 1);
		s++;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL; /* bare IPv6 without brackets is ambiguous */
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= 64)
		return -EINVAL;
	char h[64];
	memcpy(h, s, hl);
	h[hl] = '\0';
	unsigned char tmp[16];
	if (inet_pton(AF_INET, h, tmp) != 1 && inet_pton(AF_INET6, h, tmp) != 1)
		return -EINVAL; /* an address, not a name: binding must not depend on DNS */
	char *end;
	errno = 0;
	long p = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || p < 0 || p > 65535)
		return -EINVAL;
	memcpy(host, h, hl + 1);
	*port = (int)p;
	return 0;
}

int server_conf_each_hostname(const char *list, int (*fn)(void *ud, const char *name), void *ud)
{
	const char *p = list;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		const char *b = p, *e = p + n;
		while (b < e && isspace((unsigned char)*b))
			b++;
		while (e > b && isspace((unsigned char)e[-1]))
			e--;
		if (e > b) {
			char name[256];
			size_t len = (size_t)(e - b);
			if (len >= sizeof(name))
				len = sizeof(name) - 1; /* reported as invalid by the checker */
			memcpy(name, b, len);
			name[len] = '\0';
			int rc = fn(ud, name);
			if (rc)
				return rc;
		}
		p += n + (comma ? 1 : 0);
	}
	return 0;
}

static int dns_name_valid(const char *s)
{
	size_t n = strlen(s), label = 0;
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)c) && c != '-')
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0;
}

struct host_check {
	struct vw_conf_errors *errs;
	const char *path;
	int line;
	int bad, count;
};

static int check_host(void *ud, const char *name)
{
	struct host_check *hc = ud;
	unsigned char tmp[16];
	hc->count++;
	if (inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1 ||
	    dns_name_valid(name))
		return 0;
	vw_conf_error(hc->errs, hc->path, hc->line,
	              "[server] hostnames: '%s' is neither an IP address nor a DNS name", name);
	hc->bad++;
	return 0;
}

static char *join_path(const char *dir, const char *name)
{
	size_t dl = strlen(dir);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	size_t n = dl + 1 + strlen(name) + 1;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%.*s/%s", (int)dl, dir, name);
	return p;
}

/* [feed] silent_after: "Nx" (1 <= N <= 100) or a duration of 1 s to 1 day. */
static int parse_silent_after(struct server_conf *cfg, struct vw_conf_errors *errs)
{
	const char *v = cfg->feed.silent_after ? cfg->feed.silent_after : "3x";
	size_t n = strlen(v);
	cfg->feed_silent_ms = 0;
	cfg->feed_silent_factor = 0;
	if (n >= 2 && (v[n - 1] == 'x' || v[n - 1] == 'X')) {
		char num[32], *end;
		if (n - 1 < sizeof(num)) {
			memcpy(num, v, n - 1);
			num[n - 1] = '\0';
			double f = strtod(num, &end);
			if (*end == '\0' && end != num && f >= 1 && f <= 100) {
				cfg->feed_silent_factor = f;
				return 0;
			}
		}
	} else {
		long long ms;
		if (vw_conf_parse_duration(v, &ms) == 0 && ms >= 1000 && ms <= 86400000) {
			cfg->feed_silent_ms = ms;
			return 0;
		}
	}
	vw_conf_error(errs, cfg->path, cfg->feed.line,
	              "[feed] silent_after: expected Nx (1 to 100 times the cadence) or a duration "
	              "of 1s to 24h, got '%s'",
	              v);
	return 1;
}

/* issue 16 D: each [notify NAME]'s values that the table cannot check, and its secret. */
static int check_notify(struct server_conf *cfg, const char *path, struct vw_conf_errors *errs)
{
	int bad = 0;
	char why[256];
	for (size_t i = 0; i < cfg->notify.n; i++) {
		struct notify_section *n = VW_CONF_ITEM(cfg->notify, struct notify_section, i);
		struct notify_scope sc;
		unsigned mask;
		double rate;
		/* A required key that is missing was reported already; its value is NULL. */
		if (!n->url || !n->scope || !n->events || !n->rate || !n->secret || !n->secret_file)
			continue;
		if (strncmp(n->url, "http://", 7) != 0 && strncmp(n->url, "https://", 8) != 0) {
			vw_conf_error(errs, path, n->line,
			              "[notify %s] url: expected http:// or https://", n->name);
			bad++;
		}
		if (notify_scope_parse(n->scope, &sc, why, sizeof(why))) {
			vw_conf_error(errs, path, n->line, "[notify %s] %s", n->name, why);
			bad++;
		}
		if (notify_events_parse(n->events, &mask, why, sizeof(why))) {
			vw_conf_error(errs, path, n->line, "[notify %s] events: %s", n->name, why);
			bad++;
		}
		if (notify_rate_parse(n->rate, &rate, why, sizeof(why))) {
			vw_conf_error(errs, path, n->line, "[notify %s] %s", n->name, why);
			bad++;
		}
		if (n->retry_max_ms < n->retry_first_ms) {
			vw_conf_error(errs, path, n->line,
			              "[notify %s] retry_max: shorter than retry_first", n->name);
			bad++;
		}
		if (n->secret[0] && n->secret_file[0]) {
			vw_conf_error(errs, path, n->line,
			              "[notify %s] secret and secret_file: set one, not both",
			              n->name);
			bad++;
		} else if (n->secret_file[0]) {
			/* The first line, as the agent reads a camera's credentials file. */
			char line[512] = "";
			FILE *f = fopen(n->secret_file, "r");
			int ok = f && fgets(line, sizeof(line), f) != NULL;
			int err = errno;
			if (f)
				fclose(f);
			line[strcspn(line, "\r\n")] = '\0';
			if (!ok || !line[0]) {
				vw_conf_error(errs, path, n->line, "[notify %s] secret_file %s: %s",
				              n->name, n->secret_file,
				              !f ? strerror(err) : "empty first line");
				bad++;
			} else if (!(n->secret_value = strdup(line))) {
				bad++;
			}
			OPENSSL_cleanse(line, sizeof(line));
		} else if (!(n->secret_value = strdup(n->secret))) {
			bad++;
		}
		if (n->type != NOTIFY_DINGTALK && (n->secret[0] || n->secret_file[0])) {
			vw_conf_error(
			    errs, path, n->line,
			    "[notify %s] secret: only a dingtalk robot signs its messages",
			    n->name);
			bad++;
		}
	}
	return bad;
}

/* [store]: dsn and password_file belong to postgresql; a dsn is checked by libpq's own parser
 * (PQconninfoParse: the keywords and URI form libpq will accept at connect), and one carrying
 * a password is refused — the secret would sit in the config and in every log line that
 * quotes it. */
static int check_store(struct server_conf *cfg, const char *path, struct vw_conf_errors *errs)
{
	struct store_section *st = &cfg->store;
	int line = st->line, bad = 0;
	if (!st->dsn || !st->password_file)
		return 0; /* out of memory: reported by the loader */
	if (st->backend != STORE_BACKEND_POSTGRESQL) {
		if (st->dsn[0] || st->password_file[0]) {
			vw_conf_error(errs, path, line,
			              "[store] %s: only for backend = postgresql (backend is %s)",
			              st->dsn[0] ? "dsn" : "password_file",
			              store_backends[st->backend]);
			bad++;
		}
		return bad;
	}
	if (!st->dsn[0]) {
		vw_conf_error(errs, path, line, "[store] dsn: required with backend = postgresql");
		return 1;
	}
	if (st->lease_renew_ms >= st->lease_ttl_ms) {
		vw_conf_error(
		    errs, path, line,
		    "[store] lease_renew (%ld ms) must be shorter than lease_ttl (%ld ms)",
		    st->lease_renew_ms, st->lease_ttl_ms);
		bad++;
	}
	char *why = NULL;
	PQconninfoOption *opts = PQconninfoParse(st->dsn, &why);
	if (!opts) {
		/* libpq's message names the keyword or the URI part it could not take */
		vw_conf_error(errs, path, line, "[store] dsn: %s",
		              !why                        ? "out of memory"
		              : pg_dsn_may_quote(st->dsn) ? strtok(why, "\n")
		                                          : PG_DSN_UNQUOTED);
		PQfreemem(why);
		return 1;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val && o->val[0] && strcmp(o->keyword, "password") == 0) {
			vw_conf_error(errs, path, line,
			              "[store] dsn: carries a password; put it in password_file "
			              "(or PGPASSFILE) instead");
			bad++;
		} else if (o->val && strcmp(o->keyword, "passfile") == 0 && st->password_file[0]) {
			vw_conf_error(
			    errs, path, line,
			    "[store] dsn: passfile= and password_file: set one, not both");
			bad++;
		}
	PQconninfoFree(opts);
	if (st->password_file[0] && access(st->password_file, R_OK) != 0) {
		vw_conf_error(errs, path, line, "[store] password_file %s: %s", st->password_file,
		              strerror(errno));
		bad++;
	}
	return bad;
}

static int finish(struct server_conf *cfg, const char *path, int rc, struct vw_conf_errors *errs)
{
	cfg->path = path;
	if (rc < 0)
		return rc;
	struct server_section *s = &cfg->server;
	if (s->listen && server_conf_parse_listen(s->listen, cfg->listen_host, &cfg->listen_port)) {
		vw_conf_error(errs, path, s->line,
		              "[server] listen: expected IP:port or [IPv6]:port with port 0-65535, "
		              "got '%s'",
		              s->listen);
		rc++;
	}
	if (s->hostnames) {
		struct host_check hc = {errs, path, s->line, 0, 0};
		server_conf_each_hostname(s->hostnames, check_host, &hc);
		if (hc.count == 0) {
			vw_conf_error(errs, path, s->line, "[server] hostnames: empty list");
			hc.bad++;
		}
		rc += hc.bad;
	}
	if (s->state_dir && !s->state_dir[0]) {
		vw_conf_error(errs, path, s->line, "[server] state_dir: empty");
		rc++;
	}
	cfg->rubric = (struct score_rubric){.full_pct = cfg->score.full_pct,
	                                    .step4_pct = cfg->score.step4,
	                                    .step3_pct = cfg->score.step3,
	                                    .step2_pct = cfg->score.step2,
	                                    .default_stale_ms = cfg->score.default_stale_ms,
	                                    .settle_ms = cfg->score.settle_ms};
	rc += check_notify(cfg, path, errs);
	char why[256];
	if (score_rubric_finish(&cfg->rubric, why, sizeof(why))) {
		vw_conf_error(errs, path, cfg->score.line, "%s", why);
		rc++;
	}
	if (parse_silent_after(cfg, errs))
		rc++;
	struct inspect_labels lab;
	if (cfg->inspection.risk_grades &&
	    inspect_labels_parse(cfg->inspection.risk_grades, &lab, why, sizeof(why))) {
		vw_conf_error(errs, path, cfg->inspection.line, "[inspection] risk_grades: %s",
		              why);
		rc++;
	}
	if (cfg->inspection.outcomes &&
	    inspect_labels_parse(cfg->inspection.outcomes, &lab, why, sizeof(why))) {
		vw_conf_error(errs, path, cfg->inspection.line, "[inspection] outcomes: %s", why);
		rc++;
	}
	rc += check_store(cfg, path, errs);
	struct metrics_allow ma;
	if (metrics_allow_parse(cfg->metrics.allow, &ma, why, sizeof(why))) {
		vw_conf_error(errs, path, cfg->metrics.line, "[metrics] allow: %s", why);
		rc++;
	}
	if (rc)
		return rc;
	cfg->pki_dir =
	    cfg->pki.dir && cfg->pki.dir[0] ? strdup(cfg->pki.dir) : join_path(s->state_dir, "pki");
	cfg->db_path = join_path(s->state_dir, "venuewatch.db");
	cfg->store_backend = store_backends[cfg->store.backend];
	cfg->auth_db_path = join_path(s->state_dir, "auth.db");
	cfg->crl_path = cfg->pki_dir ? join_path(cfg->pki_dir, "ca.crl") : NULL;
	if (!cfg->pki_dir || !cfg->db_path || !cfg->auth_db_path || !cfg->crl_path) {
		vw_conf_error(errs, path, 0, "out of memory");
		return 1;
	}
	return 0;
}

int server_conf_load(struct server_conf *cfg, const char *path, struct vw_conf_errors *errs)
{
	memset(cfg, 0, sizeof(*cfg));
	return finish(cfg, path, vw_conf_load(&server_conf_schema, path, cfg, errs), errs);
}

int server_conf_load_string(struct server_conf *cfg, const char *name, const char *text,
                            struct vw_conf_errors *errs)
{
	memset(cfg, 0, sizeof(*cfg));
	return finish(cfg, name, vw_conf_load_string(&server_conf_schema, name, text, cfg, errs),
	              errs);
}

int server_conf_restart_needed(const struct server_conf *old, const struct server_conf *new_,
                               char *out, size_t outlen)
{
	const char *key = NULL;
	if (strcmp(old->server.listen, new_->server.listen) != 0)
		key = "server.listen";
	else if (strcmp(old->server.state_dir, new_->server.state_dir) != 0)
		key = "server.state_dir";
	else if (strcmp(old->pki_dir, new_->pki_dir) != 0)
		key = "pki.dir";
	else if (strcmp(old->web.root, new_->web.root) != 0)
		key = "web.root"; /* the root's directory fd is opened once, at start */
	else if (old->store.backend != new_->store.backend)
		key = "store.backend";
	else if (strcmp(old->store.dsn, new_->store.dsn) != 0)
		key = "store.dsn"; /* the connections are opened once, at start */
	if (!key)
		return 0;
	snprintf(out, outlen, "%s", key);
	return 1;
}

void server_conf_free(struct server_conf *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->notify.n; i++) {
		struct notify_section *n = VW_CONF_ITEM(cfg->notify, struct notify_section, i);
		if (n->secret_value)
			OPENSSL_cleanse(n->secret_value, strlen(n->secret_value));
		free(n->secret_value);
		n->secret_value = NULL;
	}
	vw_conf_free(&server_conf_schema, cfg);
	free(cfg->pki_dir);
	free(cfg->db_path);
	free(cfg->auth_db_path);
	free(cfg->crl_path);
	cfg->pki_dir = cfg->db_path = cfg->auth_db_path = cfg->crl_path = NULL;
}
