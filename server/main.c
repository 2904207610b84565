/* venuewatch-server: the central collector. Parses the command line, then either runs a CA
 * command or the server: config -> store (writer thread) -> ingest/api -> HTTP connections
 * -> TLS listener, all on one libuv loop owned here. SIGINT/SIGTERM drain and exit 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <uv.h>

#include "admin.h"
#include "api.h"
#include "auth.h"
#include "ca.h"
#include "calendar.h"
#include "capture.h"
#include "cli.h"
#include "conn.h"
#include "draw_cli.h"
#include "events.h"
#include "ingest.h"
#include "inspect.h"
#include "labels.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "published.h"
#include "result.h"
#include "sdnotify.h"
#include "seen.h"
#include "server_conf.h"
#include "session.h"
#include "signer.h"
#include "static.h"
#include "store.h"
#include "tls.h"
#include "vtime.h"

/* Batches decoded or waiting for a commit, all connections together; their memory is
 * bounded separately (the same budget as request bodies). */
#define MAX_INFLIGHT_BATCHES 1024
/* Request bodies held in memory at once, and likewise decoded batches: 256 MiB, or four of
 * the largest allowed. */
#define BODY_BUDGET_MIN (256u << 20)

struct server {
	struct server_conf cfg;
	uv_loop_t loop;
	uv_signal_t sigint, sigterm;
	uv_timer_t drain_timer;
	struct store *store;
	struct ingest *ingest;
	struct api *api;
	struct auth *auth;       /* the loop thread's connection to auth.db (reads) */
	struct signer *signer;   /* the CA key's process: enrollment, the CRL at start */
	struct seen *seen;       /* agents' first use, recorded on a worker */
	struct session *session; /* dashboard sessions and last-use marks, written on a worker */
	uv_signal_t sighup;      /* reloads certificates and the CRL */
	struct conn_server *conns;
	struct tls_server *tls;
	struct events *events;  /* GET /api/v1/events */
	struct web_static *web; /* [web] root; NULL = no dashboard */
	/* <state_dir>/scores.db: published item-3.6 scores */
	struct published *published;
	/* <state_dir>/inspect.db: registers, draws, inspections (issue 12) */
	struct inspect *inspect;
	struct capture *capture;        /* issue 12 D: remote checks' evidence */
	struct notify *notify;          /* issue 16 D: [notify NAME] sinks */
	struct metrics_sources metrics; /* issue 14: what GET /metrics reads */
	struct sdnotify sdn;            /* systemd: READY, STATUS, WATCHDOG, RELOADING, STOPPING */
	uint64_t status_rows;           /* rows stored at the last status line, for results/s */
	uint64_t status_at_ms;          /* uv_now of it */
	int stopping;
};

static const struct vw_cli_opt global_opts[] = {
    {"config", 'c', "FILE", "configuration file (INI; see --help-config)"},
    {"check-config", 0, NULL, "validate the configuration and exit (errors as file:line)"},
    {"help-config", 0, NULL, "print every configuration key with its default and exit"},
    {"help-labels", 0, NULL, "print the zh/en labels of every code as Markdown tables and exit"},
    {"help-man", 0, NULL, "print the commands (with --help-config: the keys) as man(7) source"},
    {"help", 'h', NULL, "this text"},
};
static const struct vw_cli server_cli = {
    .prog = "venuewatch-server",
    .global_usage = "-c FILE",
    .gopts = global_opts,
    .ngopts = sizeof(global_opts) / sizeof(global_opts[0]),
};

static void usage(const struct vw_cli *cli, FILE *out)
{
	fprintf(out, "usage: venuewatch-server -c FILE [--check-config]\n");
	vw_cli_usage_lines(cli, out);
	fprintf(out,
	        "       venuewatch-server --help-config | --help-labels | --help-man "
	        "[--help-config] | --help\n"
	        "\n"
	        "  -c, --config FILE   configuration file (INI; see --help-config)\n"
	        "      --check-config  validate the configuration and exit (errors as file:line)\n"
	        "      --help-config   print every configuration key with its default and exit\n"
	        "      --help-man      the commands (with --help-config: the keys) as man(7)\n"
	        "  COMMAND --help      what a command does and its options\n"
	        "\n"
	        "Signals: SIGTERM/SIGINT stop accepting, finish in-flight commits, exit 0.\n");
	fprintf(out,
	        "        SIGHUP rereads the configuration (log_level and [limits] apply at once;\n"
	        "        listen, state_dir and pki dir are logged as needing a restart), the\n"
	        "        server certificate, the CA and the CRL (which also reloads by itself\n"
	        "        within seconds of 'revoke'). Every enrollment, revocation and token\n"
	        "        action is written to the audit log.\n");
}

/* --- server ---------------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void on_drained(void *ud)
{
	struct server *s = ud;
	/* No connection is left, so no request waits on the store: its queue is empty or
	 * about to be committed by the writer, which store_close joins. The notifier first:
	 * its transfers end (what was in flight stays pending) and it queues no more writes. */
	notify_close(s->notify);
	/* Inspections' jobs first: their answers may still read the store. The capture stops
	 * queueing jobs before inspect.db closes. */
	capture_destroy(s->capture);
	s->capture = NULL;
	inspect_close(s->inspect);
	s->inspect = NULL;
	store_close(s->store);
	s->store = NULL;
	signer_stop(s->signer);
	s->signer = NULL;
	seen_destroy(s->seen);
	s->seen = NULL;
	session_destroy(s->session);
	s->session = NULL;
	published_close(s->published);
	s->published = NULL;
	sdnotify_close(&s->sdn, NULL, NULL);
	uv_close((uv_handle_t *)&s->sigint, on_handle_closed);
	uv_close((uv_handle_t *)&s->sigterm, on_handle_closed);
	uv_close((uv_handle_t *)&s->sighup, on_handle_closed);
	uv_close((uv_handle_t *)&s->drain_timer, on_handle_closed);
	log_info("event=stopped");
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct server *s = t->data;
	log_warn("event=shutdown_forced connections=%zu", conn_server_count(s->conns));
	conn_server_abort(s->conns);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct server *s = h->data;
	if (s->stopping) {
		log_warn("event=shutdown_forced signal=%s",
		         signum == SIGINT ? "SIGINT" : "SIGTERM");
		conn_server_abort(s->conns);
		return;
	}
	s->stopping = 1;
	sdnotify_stopping(&s->sdn);
	log_info("event=shutdown signal=%s connections=%zu",
	         signum == SIGINT ? "SIGINT" : "SIGTERM", conn_server_count(s->conns));
	tls_server_stop(s->tls);
	events_close(s->events); /* event streams never finish on their own */
	uv_timer_start(&s->drain_timer, on_drain_timeout,
	               (uint64_t)s->cfg.limits.shutdown_timeout_ms, 0);
	conn_server_drain(s->conns, on_drained, s);
}

/* Descriptors the server needs besides its connections: the database and its WAL/shm
 * (twice: writer and reader), the loop's epoll, signal and async fds, the listener,
 * stdio, and one spare so accept-then-close at the cap still has an fd to accept with. */
#define FD_RESERVE 64

/* How often the server looks at ca.crl for a change: a revocation takes effect within this
 * without anyone signalling the server. A stat(2) every 2 s costs nothing. */
#define CRL_POLL_MS 2000

/* Each connection is a file descriptor. Raises the soft open-file limit to the hard one
 * (the soft default, 1024 on many systems, is a shell's limit, not a server's) and returns
 * the connection cap: max_connections, or when it is 0 (the default) whatever the limit
 * holds. An explicit cap above the limit is lowered, with a warning: accept failing with
 * EMFILE would refuse clients less gracefully than the cap does. */
static long size_connection_cap(long max_connections)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return max_connections ? max_connections : 1024 - FD_RESERVE;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max;
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("event=fd_limit_raise_failed want=%llu error=\"%s\"",
			         (unsigned long long)want, strerror(errno));
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		return max_connections ? max_connections : 1000000;
	long avail = rl.rlim_cur > FD_RESERVE + 1 ? (long)(rl.rlim_cur - FD_RESERVE) : 1;
	if (max_connections == 0) {
		log_info("event=connection_cap max_connections=%ld nofile=%llu", avail,
		         (unsigned long long)rl.rlim_cur);
		return avail;
	}
	if (max_connections > avail) {
		log_warn("event=fd_limit nofile=%llu max_connections=%ld using=%ld "
		         "hint=raise_LimitNOFILE_or_lower_max_connections",
		         (unsigned long long)rl.rlim_cur, max_connections, avail);
		return avail;
	}
	return max_connections;
}

/* [limits] as the connection layer and the ingest path take them. The body budget (request
 * bodies held in memory at once) is 4 bodies' worth, at least BODY_BUDGET_MIN. */
static void limits_from_conf(const struct limits_section *l, struct conn_limits *lim,
                             struct ingest_limits *ilim)
{
	size_t body_max = (size_t)l->max_body_bytes;
	size_t budget = 4 * body_max > BODY_BUDGET_MIN ? 4 * body_max : BODY_BUDGET_MIN;
	*lim = (struct conn_limits){
	    .max_header_bytes = (size_t)l->max_header_bytes,
	    .max_body_bytes = body_max,
	    .body_budget = budget,
	    .header_timeout_ms = (uint64_t)l->header_timeout_ms,
	    .request_timeout_ms = (uint64_t)l->request_timeout_ms,
	    .idle_timeout_ms = (uint64_t)l->idle_timeout_ms,
	};
	*ilim =
	    (struct ingest_limits){MAX_INFLIGHT_BATCHES, body_max, budget, l->new_epochs_per_day};
}

/* SIGHUP: the configuration file again (the log level and [limits] apply at once, to the
 * next request of every connection), then the server certificate, the CA and the CRL. A
 * file with errors changes nothing. */
static void on_sighup(uv_signal_t *h, int signum)
{
	struct server *s = h->data;
	struct server_conf nc;
	struct vw_conf_errors errs = {0};
	char err[512], key[64];
	(void)signum;
	log_info("event=reload signal=SIGHUP");
	/* systemctl reload returns at the READY=1 below, once the reload is done (or failed:
	 * the previous configuration stays, and the log says why). */
	sdnotify_reloading(&s->sdn);
	if (server_conf_load(&nc, s->cfg.path, &errs)) {
		log_error("event=reload_failed config=%s errors=%d kept=previous "
		          "hint=run_check_config",
		          s->cfg.path, errs.count);
	} else {
		s->cfg.server.log_level = nc.server.log_level;
		vw_log_set_level((enum vw_log_level)nc.server.log_level);
		/* [feed] applies at once: the next tick counts silence with the new bound. */
		if (nc.feed_silent_ms != s->cfg.feed_silent_ms ||
		    nc.feed_silent_factor != s->cfg.feed_silent_factor ||
		    nc.feed.event_retention_ms != s->cfg.feed.event_retention_ms) {
			struct events_feed_opts fo = {.silent_ms = nc.feed_silent_ms,
			                              .silent_factor = nc.feed_silent_factor,
			                              .event_retention_ms =
			                                  nc.feed.event_retention_ms};
			if (events_start_feed(s->events, &fo) == 0) {
				s->cfg.feed_silent_ms = nc.feed_silent_ms;
				s->cfg.feed_silent_factor = nc.feed_silent_factor;
				s->cfg.feed.event_retention_ms = nc.feed.event_retention_ms;
				log_info("event=feed_applied silent_ms=%lld silent_factor=%g "
				         "event_retention_ms=%ld",
				         nc.feed_silent_ms, nc.feed_silent_factor,
				         nc.feed.event_retention_ms);
			}
		}
		struct limits_section old = s->cfg.limits, neu = nc.limits;
		old.line = neu.line = 0;
		if (memcmp(&old, &neu, sizeof(old)) != 0) {
			struct conn_limits lim;
			struct ingest_limits ilim;
			limits_from_conf(&nc.limits, &lim, &ilim);
			conn_server_set_limits(s->conns, &lim);
			ingest_set_limits(s->ingest, &ilim);
			events_set_queue(s->events, (size_t)nc.limits.stream_queue_bytes);
			tls_server_set_limits(
			    s->tls, (size_t)size_connection_cap(nc.limits.max_connections),
			    (uint64_t)nc.limits.header_timeout_ms);
			s->cfg.limits = nc.limits;
			log_info("event=limits_applied max_header_bytes=%lld max_body_bytes=%lld "
			         "header_timeout_ms=%ld request_timeout_ms=%ld idle_timeout_ms=%ld "
			         "shutdown_timeout_ms=%ld",
			         nc.limits.max_header_bytes, nc.limits.max_body_bytes,
			         nc.limits.header_timeout_ms, nc.limits.request_timeout_ms,
			         nc.limits.idle_timeout_ms, nc.limits.shutdown_timeout_ms);
		}
		/* A new rubric scores what is asked from now on; published scores keep theirs. */
		if (strcmp(s->cfg.rubric.version, nc.rubric.version) != 0) {
			s->cfg.rubric = nc.rubric;
			s->cfg.score = nc.score;
			api_set_score(s->api, &nc.rubric, s->published);
			log_info("event=rubric_applied version=%s", nc.rubric.version);
		}
		/* issue 14: a new [metrics] allow list for the scrapes from now on. */
		{
			struct metrics_allow ma;
			if (metrics_allow_parse(nc.metrics.allow, &ma, err, sizeof(err)) == 0)
				api_set_metrics(s->api, &s->metrics, &ma);
		}
		/* issue 12 B: new risk grades check the writes from now on. */
		{
			struct inspect_labels risk;
			if (inspect_labels_parse(nc.inspection.risk_grades, &risk, err,
			                         sizeof(err)) == 0)
				api_set_risk_grades(s->api, &risk);
		}
		if (notify_reload(s->notify, &nc, err, sizeof(err)))
			log_error("event=reload_failed what=notify error=\"%s\"", err);
		if (server_conf_restart_needed(&s->cfg, &nc, key, sizeof(key)))
			log_warn("event=reload_partial changed=%s hint=restart_to_apply", key);
	}
	server_conf_free(&nc);
	if (tls_server_reload(s->tls, err, sizeof(err)))
		log_error("event=reload_failed error=\"%s\" kept=previous", err);
	sdnotify_ready(&s->sdn);
}

/* The line `systemctl status` shows. results/s: rows stored since the last line. */
static void server_status(void *ud, char *buf, size_t len)
{
	struct server *s = ud;
	struct store_stats st;
	uint64_t now = uv_now(&s->loop);
	store_get_stats(s->store, &st);
	double rate = 0;
	if (s->status_at_ms && now > s->status_at_ms)
		rate = (double)(st.rows_stored - s->status_rows) * 1000.0 /
		       (double)(now - s->status_at_ms);
	s->status_rows = st.rows_stored;
	s->status_at_ms = now;
	/* issue 14: the sites as the dashboard shows them, from the store writer's count */
	const struct store_feed_counts *f = &st.feed;
	int64_t sites = 0, open = 0;
	for (int i = 0; i < STORE_SITE_STATES; i++)
		sites += f->sites[i];
	for (int k = 0; k < STORE_PROBLEM_KINDS; k++)
		for (int v = 0; v < STORE_SEVERITIES; v++)
			open += f->problems[k][v];
	snprintf(buf, len,
	         "%lld sites, %lld down, %lld silent, %lld problems open, %zu connections, "
	         "%zu event streams, %.0f results/s%s",
	         (long long)sites, (long long)f->sites[STORE_SITE_DOWN],
	         (long long)f->sites[STORE_SITE_SILENT], (long long)open,
	         conn_server_count(s->conns), events_subscribers(s->events), rate,
	         s->stopping ? ", stopping" : "");
}

static int run(struct server *s)
{
	struct server_conf *cfg = &s->cfg;
	char err[512] = "";
	int rc;

	signal(SIGPIPE, SIG_IGN); /* libuv writes to sockets with write(2) */
	long max_conns = size_connection_cap(cfg->limits.max_connections);
	if (mkdir(cfg->server.state_dir, 0750) != 0 && errno != EEXIST) {
		log_error("event=start_failed state_dir=%s error=\"%s\"", cfg->server.state_dir,
		          strerror(errno));
		return 1;
	}
	if ((rc = uv_loop_init(&s->loop)) != 0) {
		log_error("event=start_failed error=%s", uv_err_name(rc));
		return 1;
	}
	struct store_options so = {.backend = cfg->store_backend,
	                           .dir = cfg->server.state_dir,
	                           .dsn = cfg->store.dsn,
	                           .password_file = cfg->store.password_file,
	                           .durability = STORE_DURABLE_FULL,
	                           .raw_retention_ms = cfg->store.raw_retention_ms,
	                           .thumb_retention_ms = cfg->store.thumb_retention_ms
	                                                     ? cfg->store.thumb_retention_ms
	                                                     : cfg->store.raw_retention_ms,
	                           .default_stale_ms = cfg->rubric.default_stale_ms};
	so.thumb_access_retention_ms = cfg->store.thumb_access_retention_ms; /* issue 16 C */
	so.lease_ttl_ms = cfg->store.lease_ttl_ms;                           /* issue 13 */
	so.lease_renew_ms = cfg->store.lease_renew_ms;
	if ((rc = store_open(&so, &s->store, err, sizeof(err))) != 0) {
		log_error("event=start_failed store=%s error=\"%s\"", cfg->store_backend, err);
		goto fail;
	}
	struct conn_limits lim;
	struct ingest_limits ilim;
	limits_from_conf(&cfg->limits, &lim, &ilim);
	if ((rc = store_start(s->store, &s->loop, MAX_INFLIGHT_BATCHES)) != 0 ||
	    (rc = ingest_create(&s->loop, s->store, &ilim, &s->ingest)) != 0 ||
	    !(s->api = api_create(s->store, s->ingest))) {
		log_error("event=start_failed error=%s", rc ? uv_err_name(rc) : "ENOMEM");
		goto fail;
	}
	if (auth_open(cfg->auth_db_path, &s->auth, err, sizeof(err)) ||
	    api_set_auth(s->api, s->auth, cfg->pki_dir)) {
		log_error("event=start_failed auth_db=%s error=\"%s\"", cfg->auth_db_path, err);
		goto fail;
	}
	const char *why;
	switch (auth_anchor_state(s->auth, &why)) {
	case AUTH_ANCHOR_MISMATCH:
		/* Fail closed: running on would append past the cut and bury it. */
		log_error(
		    "event=start_failed reason=audit_anchor_mismatch auth_db=%s detail=\"%s\" "
		    "hint=\"venuewatch-server audit; then audit --reset-anchor\"",
		    cfg->auth_db_path, why);
		goto fail;
	case AUTH_ANCHOR_MISSING:
		log_warn("event=audit_anchor_missing auth_db=%s action=made_at_head",
		         cfg->auth_db_path);
		auth_anchor_reset(s->auth, "system:server");
		break;
	}
	/* The signer before the listener: it alone opens ca.key, and it makes the CRL current
	 * (missing, or behind a revocation) before the TLS context loads it. */
	if ((rc = signer_start(&s->loop, cfg->path, &s->signer, err, sizeof(err))) != 0) {
		log_error("event=start_failed reason=signer error=\"%s\"", err);
		goto fail;
	}
	if ((rc = seen_create(&s->loop, cfg->auth_db_path, &s->seen, err, sizeof(err))) != 0) {
		log_error("event=start_failed auth_db=%s error=\"%s\"", cfg->auth_db_path, err);
		goto fail;
	}
	api_set_pki(s->api, s->signer, s->seen);
	struct session_opts sopts = {cfg->web.session_idle_ms, cfg->web.session_lifetime_ms,
	                             cfg->web.origins, cfg->web.stream_recheck_ms};
	if ((rc = session_create(&s->loop, cfg->auth_db_path, &sopts, &s->session, err,
	                         sizeof(err))) != 0) {
		log_error("event=start_failed auth_db=%s error=\"%s\"", cfg->auth_db_path, err);
		goto fail;
	}
	api_set_session(s->api, s->session);
	{
		char path[4200];
		snprintf(path, sizeof(path), "%s/scores.db", cfg->server.state_dir);
		if ((rc = published_open(&s->loop, path, &s->published, err, sizeof(err))) != 0) {
			log_error("event=start_failed scores_db=%s error=\"%s\"", path, err);
			goto fail;
		}
	}
	api_set_score(s->api, &cfg->rubric, s->published);
	{
		char path[4200];
		snprintf(path, sizeof(path), "%s/inspect.db", cfg->server.state_dir);
		if ((rc = inspect_open(&s->loop, path, &s->inspect, err, sizeof(err))) != 0) {
			log_error("event=start_failed inspect_db=%s error=\"%s\"", path, err);
			goto fail;
		}
	}
	api_set_inspect(s->api, s->inspect);
	{
		struct inspect_labels risk; /* issue 12 B: checked by server_conf_load */
		if (inspect_labels_parse(cfg->inspection.risk_grades, &risk, err, sizeof(err)) == 0)
			api_set_risk_grades(s->api, &risk);
	}
	{
		/* issue 12 E: the results' deadline ([inspection] holidays, result_due_days). */
		struct calendar cal;
		if ((rc = calendar_load(cfg->inspection.holidays, &cal, err, sizeof(err))) != 0) {
			log_error("event=start_failed what=holidays error=\"%s\"", err);
			goto fail;
		}
		size_t ndays = cal.n;
		if ((rc = api_set_publication(s->api, &cal, cfg->inspection.result_due_days,
		                              cfg->inspection.outcomes)) != 0) {
			calendar_free(&cal);
			log_error("event=start_failed what=publication error=%s", strerror(-rc));
			goto fail;
		}
		log_info("event=holidays_loaded days=%zu result_due_days=%ld", ndays,
		         cfg->inspection.result_due_days);
	}
	/* issue 12 D: remote checks' capture every [inspection] capture_every. */
	if ((rc = capture_create(&s->loop, s->store, s->inspect, cfg->inspection.capture_every_ms,
	                         api_site_render, &s->capture)) != 0) {
		log_error("event=start_failed error=capture:%s", strerror(-rc));
		goto fail;
	}
	api_set_capture(s->api, s->capture, cfg->inspection.outcomes);
	log_info("event=rubric version=%s", cfg->rubric.version);
	if ((rc = events_create(&s->loop, (size_t)cfg->limits.stream_queue_bytes, &s->events))) {
		log_error("event=start_failed error=%s", uv_err_name(rc));
		goto fail;
	}
	api_set_events(s->api, s->events);
	/* issue 16 D: every stored problem event reaches the notifier too (events_add_sink). */
	if ((rc = notify_create(&s->loop, s->store, cfg, &s->notify, err, sizeof(err))) != 0 ||
	    (rc = events_add_sink(s->events, notify_on_event, s->notify)) != 0 ||
	    (rc = notify_start(s->notify)) != 0) {
		log_error("event=start_failed what=notify error=\"%s\"",
		          rc == -EINVAL ? err : uv_err_name(rc));
		goto fail;
	}
	events_set_session(s->events, s->session);
	ingest_set_on_commit(s->ingest, events_on_commit, s->events);
	/* issue 16 (A): stored events (problems, status changes) reach the hub in id order,
	 * and from it the streams and every sink; the feed's timer finds silent sites. */
	store_set_event_cb(s->store, events_on_stored, s->events);
	events_set_store(s->events, s->store);
	struct events_feed_opts fo = {.silent_ms = cfg->feed_silent_ms,
	                              .silent_factor = cfg->feed_silent_factor,
	                              .event_retention_ms = cfg->feed.event_retention_ms};
	if ((rc = events_start_feed(s->events, &fo)) != 0) {
		log_error("event=start_failed feed=%d", rc);
		goto fail;
	}
	if (cfg->web.root[0]) {
		if (static_open(&s->loop, cfg->web.root, &s->web, err, sizeof(err))) {
			log_error("event=start_failed error=\"%s\"", err);
			goto fail;
		}
		api_set_web(s->api, s->web);
	}
	if (!(s->conns = conn_server_create(&lim, api_handle, s->api))) {
		log_error("event=start_failed error=ENOMEM");
		goto fail;
	}
	char cert[4200], key[4200], ca[4200];
	snprintf(cert, sizeof(cert), "%s/server.crt", cfg->pki_dir);
	snprintf(key, sizeof(key), "%s/server.key", cfg->pki_dir);
	snprintf(ca, sizeof(ca), "%s/ca.crt", cfg->pki_dir);
	struct tls_server_opts topts = {
	    .cert_file = cert,
	    .key_file = key,
	    .ca_file = ca,
	    .crl_file = cfg->crl_path,
	    .crl_poll_ms = CRL_POLL_MS,
	    .max_connections = (size_t)max_conns,
	    .handshake_timeout_ms = (uint64_t)cfg->limits.header_timeout_ms,
	};
	if (tls_server_create(&s->loop, &topts, &conn_tls_callbacks, s->conns, &s->tls, err,
	                      sizeof(err))) {
		log_error("event=start_failed error=\"%s\" hint=run_ca_init", err);
		goto fail;
	}
	/* issue 14: every source is known now; the allow list was checked with the config. */
	s->metrics = (struct metrics_sources){.tls = s->tls,
	                                      .conns = s->conns,
	                                      .ingest = s->ingest,
	                                      .store = s->store,
	                                      .events = s->events,
	                                      .notify = s->notify,
	                                      .start_time_ms = vw_now_ms()};
	{
		struct metrics_allow ma;
		metrics_allow_parse(cfg->metrics.allow, &ma, err, sizeof(err));
		api_set_metrics(s->api, &s->metrics, &ma);
	}
	int port;
	if ((rc = tls_server_listen(s->tls, cfg->listen_host, cfg->listen_port, &port)) != 0) {
		log_error("event=start_failed listen=%s error=%s", cfg->server.listen,
		          uv_err_name(rc));
		goto fail;
	}
	if ((rc = sdnotify_init(&s->sdn, &s->loop, server_status, s)) != 0) {
		log_error("event=start_failed what=sd_notify error=%s", uv_err_name(rc));
		goto fail;
	}
	uv_signal_init(&s->loop, &s->sigint);
	uv_signal_init(&s->loop, &s->sigterm);
	uv_timer_init(&s->loop, &s->drain_timer);
	s->sigint.data = s->sigterm.data = s->drain_timer.data = s;
	uv_signal_start(&s->sigint, on_signal, SIGINT);
	uv_signal_start(&s->sigterm, on_signal, SIGTERM);
	uv_signal_init(&s->loop, &s->sighup);
	s->sighup.data = s;
	uv_signal_start(&s->sighup, on_sighup, SIGHUP);
	log_info("event=listening addr=%s port=%d watchdog_ms=%llu", cfg->listen_host, port,
	         (unsigned long long)sdnotify_watchdog_ms(&s->sdn));
	/* Listening, the signer running, the store open: Type=notify's start is done. */
	if ((rc = sdnotify_ready(&s->sdn)) != 0)
		log_warn("event=sd_notify_failed what=ready error=\"%s\"", strerror(-rc));

	uv_run(&s->loop, UV_RUN_DEFAULT);

	tls_server_destroy(s->tls);
	conn_server_destroy(s->conns);
	events_destroy(s->events);
	notify_destroy(s->notify);
	static_destroy(s->web);
	api_destroy(s->api);
	auth_close(s->auth);
	ingest_destroy(s->ingest);
	if ((rc = uv_loop_close(&s->loop)) != 0)
		log_warn("event=loop_close_failed error=%s", uv_err_name(rc));
	return 0;

fail:
	/* Start-up failed before the loop ran: close what was opened, let the loop free it. */
	tls_server_destroy(s->tls);
	notify_close(s->notify);
	store_close(s->store);
	signer_stop(s->signer);
	seen_destroy(s->seen);
	session_destroy(s->session);
	published_close(s->published);
	capture_destroy(s->capture);
	inspect_close(s->inspect);
	events_close(s->events);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	conn_server_destroy(s->conns);
	events_destroy(s->events);
	notify_destroy(s->notify);
	static_destroy(s->web);
	api_destroy(s->api);
	auth_close(s->auth);
	ingest_destroy(s->ingest);
	uv_loop_close(&s->loop);
	return 1;
}

int main(int argc, char **argv)
{
	struct vw_cli cli = server_cli;
	cli.cmds = admin_cmds;
	cli.ncmds = admin_ncmds;
	struct vw_cli_vals g, cv;
	const struct vw_cli_cmd *cmd;
	int prc = vw_cli_parse(&cli, argc, argv, &g, &cmd, &cv);
	if (prc == VW_CLI_HELP)
		return 0;
	if (prc != VW_CLI_OK)
		return 2;
	/* The man pages' generated parts (scripts/man-pages.sh). */
	if (vw_cli_flag(&g, "help-man")) {
		if (vw_cli_flag(&g, "help-config"))
			vw_conf_print_man(&server_conf_schema, stdout);
		else
			vw_cli_print_man(&cli, stdout);
		return 0;
	}
	if (vw_cli_flag(&g, "help-config")) {
		vw_conf_print_reference(&server_conf_schema, stdout);
		return 0;
	}
	if (vw_cli_flag(&g, "help-labels")) {
		/* docs/API.md's label tables are this output (scripts/labels-docs.sh). */
		struct vw_buf b;
		vw_buf_init(&b, 1u << 20);
		int lrc = vw_labels_markdown(&b);
		if (!lrc)
			fwrite(b.data, 1, b.len, stdout);
		vw_buf_free(&b);
		return lrc ? 1 : 0;
	}
	if (vw_cli_flag(&g, "help")) {
		usage(&cli, stdout);
		return 0;
	}
	/* A published draw is checked by anyone, without this server's configuration. */
	if (cmd && cmd->run == draw_cmd_verify)
		return cmd->run(NULL, cmd, &cv);
	const char *path = vw_cli_str(&g, "config");
	int check_only = vw_cli_flag(&g, "check-config");
	if (!path || (cmd && check_only)) {
		fprintf(stderr, "venuewatch-server: %s (see --help)\n",
		        !path ? "-c FILE is required" : "--check-config takes no command");
		return 2;
	}

	struct server s;
	memset(&s, 0, sizeof(s));
	struct vw_conf_errors errs = {0};
	if (server_conf_load(&s.cfg, path, &errs)) {
		fputs(errs.text, stderr);
		fprintf(stderr, "%s: %d error%s\n", path, errs.count, errs.count == 1 ? "" : "s");
		server_conf_free(&s.cfg);
		return 1;
	}
	vw_log_set_level((enum vw_log_level)s.cfg.server.log_level);
	int rc;
	struct calendar hol;
	char herr[512];
	if (check_only && calendar_load(s.cfg.inspection.holidays, &hol, herr, sizeof(herr)) != 0) {
		/* issue 12 E: the holidays file is read at start; a bad one is named here */
		fprintf(stderr, "%s: [inspection] holidays: %s\n", path, herr);
		rc = 1;
	} else if (check_only) {
		calendar_free(&hol);
		printf("%s: ok (listen %s, state_dir %s, pki %s)\n", path, s.cfg.server.listen,
		       s.cfg.server.state_dir, s.cfg.pki_dir);
		rc = 0;
	} else if (cmd) {
		rc = cmd->run(&s.cfg, cmd, &cv);
		if (rc == 2)
			vw_cli_cmd_help(&cli, cmd, stderr);
	} else {
		rc = run(&s);
	}
	server_conf_free(&s.cfg);
	return rc;
}
