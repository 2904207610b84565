/* venuewatch-agent: checks a venue's cameras and uploads the evidence to the collector.
 * main owns the process: config, the loop, and the order things start and stop in. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "agent_conf.h"
#include "assess.h"
#include "cli.h"
#include "enroll.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "probe_network.h"
#include "probe_stream.h"
#include "scheduler.h"
#include "sdnotify.h"
#include "sessions.h"
#include "sessions_fetch.h"
#include "status.h"
#include "uplink.h"
#include "vtime.h"

struct agent {
	uv_loop_t loop;
	struct agent_conf cfg;
	struct outbox *ob;
	struct curluv *cu;
	struct uplink *up;
	struct scheduler *sched;
	struct netprobe *np;
	struct assess *as;
	struct sessions *ss;
	struct sessions_fetch *sf;
	struct metrics *m; /* NULL without [agent] metrics_file or in --once */
	uv_timer_t assess_timer;
	int once_left; /* --once: parts still running (scheduler, network probe) */
	uv_signal_t sigint, sigterm, sighup;
	struct sdnotify sdn; /* systemd: READY, STATUS, WATCHDOG, STOPPING */
	int pending_closes;
	int stopping;
	int lock_fd;
	int64_t once_seq;
	int exit_code;
	char workers_said[256]; /* the worker pool as `status` last showed it */
};

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: venuewatch-agent -c FILE [--check-config | --once]\n"
	    "       venuewatch-agent -c FILE status\n"
	    "       venuewatch-agent -c FILE reference CAMERA\n"
	    "       venuewatch-agent -c FILE enroll --token TOKEN|-\n"
	    "       venuewatch-agent --help-config | --help-man [--help-config]\n"
	    "\n"
	    "  -c, --config FILE   agent configuration (INI)\n"
	    "      --check-config  validate the configuration and exit (errors as file:line)\n"
	    "      --once          check every camera once, print JSON lines, do not upload\n"
	    "      --help-config   print every option with its default and meaning\n"
	    "      --help-man      the commands (with --help-config: the options) as man(7)\n"
	    "  status              print this venue's current health from the local database\n"
	    "  reference CAMERA    check CAMERA now and keep its picture as the reference view;\n"
	    "                      later checks report camera_moved when the view differs\n"
	    "  enroll              make this venue's key, have the collector sign it with the\n"
	    "                      one-time TOKEN ('-': read it from stdin), install key and\n"
	    "                      certificate at [collector] key and cert\n"
	    "\n"
	    "Signals: SIGTERM/SIGINT stop (running checks finish and are committed first);\n"
	    "SIGHUP retries the upload now, also after the collector refused this agent;\n"
	    "a refused agent also retries by itself when its certificate file changes.\n"
	    "  -h, --help          this text\n");
}

static void on_closed(void *arg)
{
	struct agent *a = arg;
	a->pending_closes--;
}

static void on_signal_closed(uv_handle_t *h)
{
	on_closed(h->data);
}

/* The scheduler delivered its last results: the metrics file gets their counts, then
 * closes. */
static void on_sched_closed(void *arg)
{
	struct agent *a = arg;
	if (a->m) {
		a->pending_closes++;
		metrics_stop(a->m, on_closed, a);
	}
	on_closed(a);
}

static void agent_stop(struct agent *a)
{
	if (a->stopping)
		return;
	a->stopping = 1;
	log_info("event=stopping");
	sdnotify_stopping(&a->sdn);
	a->pending_closes++;
	sdnotify_close(&a->sdn, on_closed, a);
	/* Scheduler first: running checks finish and their results are committed. */
	a->pending_closes++;
	scheduler_stop(a->sched, on_sched_closed, a);
	if (a->np) {
		a->pending_closes++;
		netprobe_stop(a->np, on_closed, a);
	}
	a->pending_closes++;
	uv_close((uv_handle_t *)&a->assess_timer, on_signal_closed);
	if (a->up) {
		a->pending_closes++;
		uplink_stop(a->up, on_closed, a);
	}
	if (a->sf) {
		a->pending_closes++;
		sessions_fetch_stop(a->sf, on_closed, a);
	}
	if (a->cu) { /* after every user of it removed its transfers */
		a->pending_closes++;
		curluv_close(a->cu, on_closed, a);
	}
	a->pending_closes += 3;
	uv_close((uv_handle_t *)&a->sigint, on_signal_closed);
	uv_close((uv_handle_t *)&a->sigterm, on_signal_closed);
	uv_close((uv_handle_t *)&a->sighup, on_signal_closed);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct agent *a = h->data;
	log_info("event=signal signal=%d", signum);
	agent_stop(a);
}

static void on_sighup(uv_signal_t *h, int signum)
{
	struct agent *a = h->data;
	(void)signum;
	log_info("event=signal signal=SIGHUP action=retry_upload");
	if (a->up)
		uplink_resume(a->up);
}

/* The line `systemctl status` shows: what venue staff ask first. */
static void agent_status(void *ud, char *buf, size_t len)
{
	struct agent *a = ud;
	int up = a->up ? uplink_connected(a->up) : -1;
	snprintf(buf, len, "%zu cameras, %zu down, outbox %lld, %s", a->cfg.cameras.n,
	         assess_cameras_down(a->as), a->ob ? (long long)outbox_pending(a->ob) : 0LL,
	         a->stopping ? "stopping"
	         : up == 1   ? "uploading"
	         : up == 0   ? "collector unreachable"
	                     : "connecting");
}

static void on_results(void *arg, struct vw_result *results, size_t n)
{
	struct agent *a = arg;
	assess_observe(a->as, results, n);
	metrics_observe(a->m, results, n);
	int rc = outbox_append(a->ob, results, n);
	if (rc) {
		/* Not committed means not taken: say so loudly, with the count. */
		log_error("event=results_not_stored count=%zu err=%s", n, strerror(-rc));
		return;
	}
	log_debug("event=results_stored count=%zu last_seq=%lld", n, (long long)results[n - 1].seq);
	uplink_kick(a->up);
	/* The pool's size and what it was sized from, for `status` (only when it changed: a
	 * write per batch would double the outbox's commits). */
	char w[sizeof(a->workers_said)];
	if (a->sched && !scheduler_workers(a->sched, w, sizeof(w)) && strcmp(w, a->workers_said) &&
	    !outbox_set_status(a->ob, "workers", w))
		memcpy(a->workers_said, w, sizeof(w));
}

static void on_once_results(void *arg, struct vw_result *results, size_t n)
{
	struct agent *a = arg;
	assess_observe(a->as, results, n);
	struct vw_buf b;
	vw_buf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		results[i].seq = ++a->once_seq;
		vw_buf_reset(&b);
		vw_result_encode(&results[i], &b);
		vw_buf_append(&b, "\n", 1);
		fwrite(b.data, 1, b.len, stdout);
	}
	fflush(stdout);
	vw_buf_free(&b);
}

/* Coverage and the site assessment, from what the checks found. */
static void emit_assessment(struct agent *a, void (*sink)(void *, struct vw_result *, size_t))
{
	size_t max = assess_max_results(&a->cfg);
	struct vw_result *rs = calloc(max, sizeof(*rs));
	if (!rs)
		return;
	if (a->up)
		assess_set_connected(a->as, uplink_connected(a->up));
	size_t n = assess_emit(a->as, vw_now_ms(), rs, max);
	if (n)
		sink(a, rs, n);
	free(rs);
}

static void on_assess_timer(uv_timer_t *t)
{
	struct agent *a = t->data;
	emit_assessment(a, on_results);
	struct sessions_view v;
	sessions_view_get(&a->cfg, &v);
	int in_session = sessions_view_at(&v, NULL, vw_now_ms()) != NULL;
	sessions_view_put(&v);
	uv_timer_start(
	    t, on_assess_timer,
	    (uint64_t)(in_session ? a->cfg.agent.session_interval_ms : a->cfg.agent.interval_ms),
	    0);
}

static void on_once_done(void *arg)
{
	struct agent *a = arg;
	if (--a->once_left > 0)
		return;
	emit_assessment(a, on_once_results);
	agent_stop(a);
}

/* A session the collector added or moved may start sooner than a camera's next check. */
static void on_sessions_changed(void *arg)
{
	struct agent *a = arg;
	if (a->sched)
		scheduler_sessions_changed(a->sched);
}

static double need_kbps(void *arg)
{
	return assess_camera_kbps(((struct agent *)arg)->as);
}

/* `reference CAMERA`: one check that stores the camera's view; prints the check's result. */
static int reference_cmd(const struct agent_conf *cfg, const char *camera)
{
	const struct camera_conf *cam = NULL;
	for (size_t i = 0; i < cfg->cameras.n && !cam; i++)
		if (strcmp(agent_conf_camera(cfg, i)->name, camera) == 0)
			cam = agent_conf_camera(cfg, i);
	if (!cam) {
		fprintf(stderr, "reference: no [camera %s] in the configuration\n", camera);
		return 1;
	}
	if (mkdir(cfg->agent.state_dir, 0750) && errno != EEXIST) {
		fprintf(stderr, "reference: %s: %s\n", cfg->agent.state_dir, strerror(errno));
		return 1;
	}
	vw_log_set_level((enum vw_log_level)cfg->agent.log_level);
	probe_stream_global_init();
	struct probe_stream_req req;
	struct vw_result r;
	struct vw_buf b;
	scheduler_fill_req(cfg, cam, &req);
	int rc = probe_stream_reference(&req, &r);
	vw_buf_init(&b, 0);
	vw_result_encode(&r, &b);
	printf("%.*s\n", (int)b.len, b.data);
	vw_buf_free(&b);
	if (rc)
		fprintf(stderr, "reference: camera %s: no reference taken (%s)\n", camera,
		        rc == -ENODATA ? "no usable picture" : strerror(-rc));
	return rc ? 1 : 0;
}

/* One agent per state directory: two would hand out the same seqs. */
static int lock_state_dir(struct agent *a)
{
	const char *dir = a->cfg.agent.state_dir;
	if (mkdir(dir, 0750) && errno != EEXIST) {
		log_error("event=start_failed state_dir=%s err=\"%s\"", dir, strerror(errno));
		return -1;
	}
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/agent.lock", dir);
	a->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (a->lock_fd < 0 || flock(a->lock_fd, LOCK_EX | LOCK_NB)) {
		log_error("event=start_failed state_dir=%s err=\"%s\"", dir,
		          errno == EWOULDBLOCK ? "another agent is running on this state dir"
		                               : strerror(errno));
		return -1;
	}
	return 0;
}

static const struct vw_cli_opt global_opts[] = {
    {"config", 'c', "FILE", "agent configuration (INI)"},
    {"check-config", 0, NULL, "validate the configuration and exit (errors as file:line)"},
    {"once", 0, NULL, "check every camera once, print JSON lines, do not upload"},
    {"help-config", 0, NULL, "print every option with its default and meaning"},
    {"help-man", 0, NULL, "print the commands (with --help-config: the options) as man(7) source"},
    {"help", 'h', NULL, "this text"},
};
static const struct vw_cli_opt enroll_opts[] = {
    {"token", 0, "TOKEN", "the one-time enrollment token ('-': read it from stdin)"},
};
/* The handlers run from main once the configuration is loaded (ctx is unused: main
 * dispatches on the command itself, since each needs a different part of the agent). */
static const struct vw_cli_cmd agent_cmds[] = {
    {"status", "", "Print this venue's current health from the local database.", NULL, 0, 0, 0,
     NULL},
    {"reference", "CAMERA",
     "Check CAMERA now and keep its picture as the reference view; later checks report\n"
     "camera_moved when the view differs.",
     NULL, 0, 1, 1, NULL},
    {"enroll", "--token TOKEN|-",
     "Make this venue's key, have the collector sign it with the one-time TOKEN, install\n"
     "key and certificate at [collector] key and cert.",
     enroll_opts, 1, 0, 0, NULL},
};
static const struct vw_cli agent_cli = {
    .prog = "venuewatch-agent",
    .global_usage = "-c FILE",
    .gopts = global_opts,
    .ngopts = sizeof(global_opts) / sizeof(global_opts[0]),
    .cmds = agent_cmds,
    .ncmds = sizeof(agent_cmds) / sizeof(agent_cmds[0]),
};

int main(int argc, char **argv)
{
	struct vw_cli_vals g, cv;
	const struct vw_cli_cmd *cmd;
	int prc = vw_cli_parse(&agent_cli, argc, argv, &g, &cmd, &cv);
	if (prc == VW_CLI_HELP)
		return 0;
	if (prc != VW_CLI_OK)
		return 2;
	/* The man pages' generated parts (scripts/man-pages.sh). */
	if (vw_cli_flag(&g, "help-man")) {
		if (vw_cli_flag(&g, "help-config"))
			vw_conf_print_man(&agent_conf_schema, stdout);
		else
			vw_cli_print_man(&agent_cli, stdout);
		return 0;
	}
	if (vw_cli_flag(&g, "help-config")) {
		vw_conf_print_reference(&agent_conf_schema, stdout);
		return 0;
	}
	if (vw_cli_flag(&g, "help")) {
		usage(stdout);
		return 0;
	}
	const char *path = vw_cli_str(&g, "config");
	int check_only = vw_cli_flag(&g, "check-config"), once = vw_cli_flag(&g, "once");
	int status_cmd = cmd == &agent_cmds[0], enroll_cmd = cmd == &agent_cmds[2];
	const char *ref_camera = cmd == &agent_cmds[1] ? cv.pos[0] : NULL;
	const char *token = enroll_cmd ? vw_cli_str(&cv, "token") : NULL;
	if (!path || (enroll_cmd && !token)) {
		fprintf(stderr, "venuewatch-agent: %s (see --help)\n",
		        !path ? "-c FILE is required" : "enroll: --token is required");
		return 2;
	}

	struct agent a = {.lock_fd = -1};
	struct vw_conf_errors errs = {0};
	if (agent_conf_load(&a.cfg, path, &errs)) {
		fputs(errs.text, stderr);
		fprintf(stderr, "%s: %d error%s\n", path, errs.count, errs.count == 1 ? "" : "s");
		agent_conf_free(&a.cfg);
		return 1;
	}
	if (enroll_cmd) {
		char err[512];
		vw_log_set_level((enum vw_log_level)a.cfg.agent.log_level);
		int rc = enroll_run(&a.cfg, token, err, sizeof(err));
		if (rc)
			fprintf(stderr, "enroll: %s\n", err);
		agent_conf_free(&a.cfg);
		return rc ? 1 : 0;
	}
	if (ref_camera) {
		int rc = reference_cmd(&a.cfg, ref_camera);
		agent_conf_free(&a.cfg);
		return rc;
	}
	if (status_cmd) {
		int rc = status_print(&a.cfg, stdout);
		agent_conf_free(&a.cfg);
		return rc ? 1 : 0;
	}
	if (check_only) {
		printf("%s: ok (%zu rooms, %zu cameras)\n", path, a.cfg.rooms.n, a.cfg.cameras.n);
		agent_conf_free(&a.cfg);
		return 0;
	}
	vw_log_set_level((enum vw_log_level)a.cfg.agent.log_level);
	probe_stream_global_init();
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		vw_fatal("event=start_failed err=\"curl_global_init\"");
	uv_loop_init(&a.loop);

	if (sessions_create(&a.cfg, &a.ss) || assess_create(&a.cfg, &a.as) ||
	    curluv_create(&a.loop, &a.cu)) {
		log_error("event=start_failed err=\"out of memory\"");
		goto fail;
	}
	a.cfg.live = a.ss;
	sessions_load(a.ss); /* the collector's last answer: followed without the collector */
	uv_timer_init(&a.loop, &a.assess_timer);
	a.assess_timer.data = &a;
	if (!once) {
		char dbpath[PATH_MAX], err[512];
		if (lock_state_dir(&a))
			goto fail;
		snprintf(dbpath, sizeof(dbpath), "%s/outbox.db", a.cfg.agent.state_dir);
		if (outbox_open(dbpath, a.cfg.collector.outbox_max, &a.ob, err, sizeof(err))) {
			log_error("event=start_failed outbox=\"%s\"", err);
			goto fail;
		}
		if (sdnotify_init(&a.sdn, &a.loop, agent_status, &a)) {
			log_error("event=start_failed err=\"sd_notify timers\"");
			goto fail;
		}
		if (uplink_create(&a.loop, a.cu, &a.cfg, a.ob, &a.up)) {
			log_error("event=start_failed err=\"uplink\"");
			goto fail;
		}
		if (a.cfg.collector.sessions_poll_ms &&
		    sessions_fetch_create(&a.loop, a.cu, &a.cfg, a.ss, on_sessions_changed, &a,
		                          &a.sf)) {
			log_error("event=start_failed err=\"sessions fetch\"");
			goto fail;
		}
		if (a.sf)
			sessions_fetch_follow(a.sf, uplink_collector_of, a.up);
	}
	if (netprobe_create(&a.loop, a.cu, &a.cfg, once ? on_once_results : on_results, need_kbps,
	                    &a, &a.np))
		log_warn("event=network_probe_unavailable");
	if (a.np && a.up)
		netprobe_follow(a.np, uplink_collector_of, a.up);
	if (scheduler_create(&a.loop, &a.cfg, once ? on_once_results : on_results, &a, &a.sched)) {
		log_error("event=start_failed err=\"scheduler\"");
		if (!a.sched)
			goto fail;
		a.exit_code = 1;
		agent_stop(&a);
	}
	if (!once && !a.stopping && a.cfg.agent.metrics_file[0]) {
		if (metrics_create(&a.loop, &a.cfg, &a.m))
			log_error("event=metrics_unavailable err=\"out of memory\"");
		else
			metrics_attach(a.m, a.ob, a.up);
	}
	uv_signal_init(&a.loop, &a.sigint);
	uv_signal_init(&a.loop, &a.sigterm);
	uv_signal_init(&a.loop, &a.sighup);
	a.sigint.data = a.sigterm.data = a.sighup.data = &a;
	uv_signal_start(&a.sighup, on_sighup, SIGHUP);
	uv_signal_start(&a.sigint, on_signal, SIGINT);
	uv_signal_start(&a.sigterm, on_signal, SIGTERM);

	if (!a.stopping) {
		if (once) {
			a.once_left = 2;
			scheduler_run_once(a.sched, on_once_done, &a);
			netprobe_run_once(a.np, on_once_done, &a);
		} else {
			log_info("event=started site=%s cameras=%zu pending=%lld next_seq=%lld "
			         "watchdog_ms=%llu",
			         a.cfg.agent.site, a.cfg.cameras.n, (long long)outbox_pending(a.ob),
			         (long long)outbox_next_seq(a.ob),
			         (unsigned long long)sdnotify_watchdog_ms(&a.sdn));
			scheduler_start(a.sched);
			netprobe_start(a.np);
			uv_timer_start(&a.assess_timer, on_assess_timer,
			               (uint64_t)a.cfg.agent.interval_ms, 0);
			uplink_kick(a.up); /* a backlog from the last run goes first */
			metrics_start(a.m);
			if (a.sf)
				sessions_fetch_start(a.sf);
			/* The outbox is open and the loop runs next: Type=notify's start is done.
			 */
			int nrc = sdnotify_ready(&a.sdn);
			if (nrc)
				log_warn("event=sd_notify_failed what=ready err=\"%s\"",
				         strerror(-nrc));
		}
	}
	uv_run(&a.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&a.loop))
		log_warn("event=loop_not_closed");
	scheduler_destroy(&a.sched); /* its workers are joined: no view is held any more */
	netprobe_destroy(&a.np);
	metrics_destroy(&a.m);
	sessions_fetch_destroy(&a.sf);
	uplink_destroy(&a.up);
	curluv_destroy(&a.cu);
	assess_destroy(&a.as);
	outbox_close(&a.ob);
	a.cfg.live = NULL;
	sessions_destroy(&a.ss);
	agent_conf_free(&a.cfg);
	curl_global_cleanup();
	if (a.lock_fd >= 0)
		close(a.lock_fd);
	log_info("event=stopped");
	return a.exit_code;
fail:
	if (a.up) /* its timer and certificate watch are open, like curluv's timer */
		uplink_stop(a.up, NULL, NULL);
	if (a.sf)
		sessions_fetch_stop(a.sf, NULL, NULL);
	sdnotify_close(&a.sdn, NULL, NULL);
	if (a.cu) { /* its timer is open: close it and let the loop run the close */
		curluv_close(a.cu, NULL, NULL);
		uv_close((uv_handle_t *)&a.assess_timer, NULL);
		uv_run(&a.loop, UV_RUN_DEFAULT);
	}
	uplink_destroy(&a.up);
	sessions_fetch_destroy(&a.sf);
	curluv_destroy(&a.cu);
	assess_destroy(&a.as);
	outbox_close(&a.ob);
	a.cfg.live = NULL;
	sessions_destroy(&a.ss);
	uv_loop_close(&a.loop);
	agent_conf_free(&a.cfg);
	curl_global_cleanup();
	if (a.lock_fd >= 0)
		close(a.lock_fd);
	return 1;
}
