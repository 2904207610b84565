/* venuewatch-agent: checks a venue's cameras and uploads the evidence to the collector.
 * main owns the process: config, the loop, and the order things start and stop in. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "agent_conf.h"
#include "log.h"
#include "outbox.h"
#include "probe_stream.h"
#include "scheduler.h"
#include "status.h"
#include "uplink.h"

struct agent {
	uv_loop_t loop;
	struct agent_conf cfg;
	struct outbox *ob;
	struct uplink *up;
	struct scheduler *sched;
	uv_signal_t sigint, sigterm, sighup;
	int pending_closes;
	int stopping;
	int lock_fd;
	int64_t once_seq;
	int exit_code;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: venuewatch-agent -c FILE [--check-config | --once]\n"
		"       venuewatch-agent -c FILE status\n"
		"       venuewatch-agent --help-config\n"
		"\n"
		"  -c, --config FILE   agent configuration (INI)\n"
		"      --check-config  validate the configuration and exit (errors as file:line)\n"
		"      --once          check every camera once, print JSON lines, do not upload\n"
		"      --help-config   print every option with its default and meaning\n"
		"  status              print this venue's current health from the local database\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop (running checks finish and are committed first);\n"
		"SIGHUP retries the upload now, also after the collector refused this agent.\n"
		"  -h, --help          this text\n");
}

static void on_closed(void *arg)
{
	struct agent *a = arg;
	a->pending_closes--;
}

static void on_signal_closed(uv_handle_t *h) { on_closed(h->data); }

static void agent_stop(struct agent *a)
{
	if (a->stopping)
		return;
	a->stopping = 1;
	log_info("event=stopping");
	/* Scheduler first: running checks finish and their results are committed. */
	a->pending_closes++;
	scheduler_stop(a->sched, on_closed, a);
	if (a->up) {
		a->pending_closes++;
		uplink_stop(a->up, on_closed, a);
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

static void on_results(void *arg, struct vw_result *results, size_t n)
{
	struct agent *a = arg;
	int rc = outbox_append(a->ob, results, n);
	if (rc) {
		/* Not committed means not taken: say so loudly, with the count. */
		log_error("event=results_not_stored count=%zu err=%s", n, strerror(-rc));
		return;
	}
	log_debug("event=results_stored count=%zu last_seq=%lld", n,
		  (long long)results[n - 1].seq);
	uplink_kick(a->up);
}

static void on_once_results(void *arg, struct vw_result *results, size_t n)
{
	struct agent *a = arg;
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

static void on_once_done(void *arg) { agent_stop(arg); }

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

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'C'},
		{"once", no_argument, NULL, 'o'},
		{"help-config", no_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	int check_only = 0, once = 0, opt;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'C': check_only = 1; break;
		case 'o': once = 1; break;
		case 'H': vw_conf_print_reference(&agent_conf_schema, stdout); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	int status_cmd = 0;
	if (optind < argc && strcmp(argv[optind], "status") == 0) {
		status_cmd = 1;
		optind++;
	}
	if (!path || optind != argc) {
		usage(stderr);
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

	if (!once) {
		char dbpath[PATH_MAX], err[512];
		if (lock_state_dir(&a))
			goto fail;
		snprintf(dbpath, sizeof(dbpath), "%s/outbox.db", a.cfg.agent.state_dir);
		if (outbox_open(dbpath, a.cfg.collector.outbox_max, &a.ob, err, sizeof(err))) {
			log_error("event=start_failed outbox=\"%s\"", err);
			goto fail;
		}
		if (uplink_create(&a.loop, &a.cfg, a.ob, &a.up)) {
			log_error("event=start_failed err=\"uplink\"");
			goto fail;
		}
	}
	if (scheduler_create(&a.loop, &a.cfg, once ? on_once_results : on_results, &a, &a.sched)) {
		log_error("event=start_failed err=\"scheduler\"");
		if (!a.sched)
			goto fail;
		a.exit_code = 1;
		agent_stop(&a);
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
			scheduler_run_once(a.sched, on_once_done, &a);
		} else {
			log_info("event=started site=%s cameras=%zu pending=%lld next_seq=%lld",
				 a.cfg.agent.site, a.cfg.cameras.n, (long long)outbox_pending(a.ob),
				 (long long)outbox_next_seq(a.ob));
			scheduler_start(a.sched);
			uplink_kick(a.up); /* a backlog from the last run goes first */
		}
	}
	uv_run(&a.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&a.loop))
		log_warn("event=loop_not_closed");
	scheduler_destroy(&a.sched);
	uplink_destroy(&a.up);
	outbox_close(&a.ob);
	agent_conf_free(&a.cfg);
	curl_global_cleanup();
	if (a.lock_fd >= 0)
		close(a.lock_fd);
	log_info("event=stopped");
	return a.exit_code;
fail:
	uplink_destroy(&a.up);
	outbox_close(&a.ob);
	uv_loop_close(&a.loop);
	agent_conf_free(&a.cfg);
	curl_global_cleanup();
	if (a.lock_fd >= 0)
		close(a.lock_fd);
	return 1;
}
