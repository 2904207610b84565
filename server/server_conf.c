#include "server_conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
};

/* The store's backend by name; its files (for sqlite: venuewatch.db) live in state_dir, so a
 * config without [store] opens the same database as before the section existed. */
static const char *const store_backends[] = {"sqlite"};
static const struct vw_conf_key store_keys[] = {
    {"backend", VW_CONF_ENUM, KEY(store_section, backend), "sqlite", 0, 0, 0, "sqlite",
     "where results are kept: sqlite = <state_dir>/venuewatch.db (WAL)"},
    /* 90 days: the collector's own window for evidence and history; the score reads the
     * rollups, which are kept for years (the form is evaluated every three). */
    {"raw_retention", VW_CONF_DURATION, KEY(store_section, raw_retention_ms), "2160h", 0, 3600000,
     3650LL * 86400000, NULL,
     "(2160h = 90 days) raw results that arrived longer ago than this are deleted, in small "
     "batches, once "
     "the rollup job has credited them (a target's latest result stays); scores, which "
     "read the rollups, do not change. Evidence rows older than this are gone"},
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
	char why[256];
	if (score_rubric_finish(&cfg->rubric, why, sizeof(why))) {
		vw_conf_error(errs, path, cfg->score.line, "%s", why);
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
	if (!key)
		return 0;
	snprintf(out, outlen, "%s", key);
	return 1;
}

void server_conf_free(struct server_conf *cfg)
{
	if (!cfg)
		return;
	vw_conf_free(&server_conf_schema, cfg);
	free(cfg->pki_dir);
	free(cfg->db_path);
	free(cfg->auth_db_path);
	free(cfg->crl_path);
	cfg->pki_dir = cfg->db_path = cfg->auth_db_path = cfg->crl_path = NULL;
}
