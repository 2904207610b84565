#include "metrics.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "log.h"
#include "prom.h"
#include "vtime.h"

/* At most one rewrite a second however many result batches arrive: each is an fsync on the
 * loop thread, and a pass over 64 cameras delivers dozens of small batches. */
#define METRICS_MIN_GAP_MS 1000

/* Check durations in seconds: stream checks take 0.5-3 s on a LAN camera and end at the
 * check deadline (10 s default, 300 s at most); recording scans of a camera take
 * milliseconds once incremental; network rounds last samples x sample_gap (2 s default). */
static const double duration_buckets[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
#define NBUCKETS (sizeof(duration_buckets) / sizeof(duration_buckets[0]))

/* The kinds whose results carry check_ms (the histogram's label values). */
static const enum vw_kind timed_kinds[] = {VW_KIND_STREAM, VW_KIND_NETWORK, VW_KIND_RECORDING};
#define NTIMED (sizeof(timed_kinds) / sizeof(timed_kinds[0]))

struct duration_hist {
	uint64_t buckets[NBUCKETS]; /* observations <= the bound (cumulative at render) */
	uint64_t count;
	double sum;
};

struct metrics {
	uv_loop_t *loop;
	const struct agent_conf *cfg;
	struct outbox *ob;
	struct uplink *up;
	uv_timer_t timer;
	int timer_open;
	int started;
	int64_t last_write_mono;
	int last_err; /* errno of the last failed write, 0 after a good one: one log line a change
	               */
	int64_t start_ms;
	uint64_t checks[VW_KIND_COUNT][VW_STATUS_COUNT];
	struct duration_hist hist[NTIMED];
	int *camera_status; /* per configured camera: enum vw_status, -1 before its first check */
	struct vw_buf text;
	void (*closed_cb)(void *);
	void *closed_arg;
};

int metrics_create(uv_loop_t *loop, const struct agent_conf *cfg, struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->loop = loop;
	m->cfg = cfg;
	m->start_ms = vw_now_ms();
	m->camera_status = malloc((cfg->cameras.n ? cfg->cameras.n : 1) * sizeof(int));
	if (!m->camera_status) {
		free(m);
		return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->cameras.n; i++)
		m->camera_status[i] = -1;
	vw_buf_init(&m->text, 1 << 20);
	uv_timer_init(loop, &m->timer);
	m->timer.data = m;
	m->timer_open = 1;
	*out = m;
	return 0;
}

void metrics_attach(struct metrics *m, struct outbox *ob, struct uplink *up)
{
	m->ob = ob;
	m->up = up;
}

static int timed_index(enum vw_kind k)
{
	for (size_t i = 0; i < NTIMED; i++)
		if (timed_kinds[i] == k)
			return (int)i;
	return -1;
}

static void schedule_soon(struct metrics *m);

void metrics_observe(struct metrics *m, const struct vw_result *r, size_t n)
{
	if (!m)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct vw_result *x = &r[i];
		if ((unsigned)x->kind >= VW_KIND_COUNT || (unsigned)x->status >= VW_STATUS_COUNT)
			continue;
		m->checks[x->kind][x->status]++;
		double ms;
		int t = timed_index(x->kind);
		if (t >= 0 && vw_result_get_metric(x, vw_metric_name(VW_M_CHECK_MS), &ms) &&
		    ms >= 0) {
			struct duration_hist *h = &m->hist[t];
			double s = ms / 1000.0;
			for (size_t b = 0; b < NBUCKETS; b++)
				if (s <= duration_buckets[b])
					h->buckets[b]++;
			h->count++;
			h->sum += s;
		}
		if (x->kind == VW_KIND_STREAM)
			for (size_t c = 0; c < m->cfg->cameras.n; c++)
				if (strcmp(agent_conf_camera(m->cfg, c)->name, x->target) == 0) {
					m->camera_status[c] = (int)x->status;
					break;
				}
	}
	schedule_soon(m);
}

static void gauge(struct vw_buf *b, const char *name, const char *help, double v)
{
	vw_prom_family(b, name, "gauge", help);
	vw_prom_sample(b, name, NULL, 0, v);
}

int metrics_render(struct metrics *m, struct vw_buf *b)
{
	struct vw_prom_label l[2];
	vw_prom_family(b, "venuewatch_agent_checks_total", "counter",
	               "Results the agent produced, by kind and status.");
	for (int k = 0; k < VW_KIND_COUNT; k++) {
		if (k == VW_KIND_BUFFER) /* not a check: counted in results_dropped_total */
			continue;
		for (int st = 0; st < VW_STATUS_COUNT; st++) {
			l[0] = (struct vw_prom_label){"kind", vw_kind_name((enum vw_kind)k)};
			l[1] = (struct vw_prom_label){"status", vw_status_name((enum vw_status)st)};
			vw_prom_sample(b, "venuewatch_agent_checks_total", l, 2,
			               (double)m->checks[k][st]);
		}
	}
	vw_prom_family(b, "venuewatch_agent_check_duration_seconds", "histogram",
	               "How long one check took, by kind.");
	for (size_t t = 0; t < NTIMED; t++) {
		l[0] = (struct vw_prom_label){"kind", vw_kind_name(timed_kinds[t])};
		vw_prom_histogram(b, "venuewatch_agent_check_duration_seconds", l, 1,
		                  duration_buckets, m->hist[t].buckets, NBUCKETS, m->hist[t].sum,
		                  m->hist[t].count);
	}

	int64_t now = vw_now_ms(), oldest = m->ob ? outbox_oldest_ts_ms(m->ob) : 0;
	gauge(b, "venuewatch_agent_outbox_results",
	      "Results committed to the outbox and not yet acknowledged by the collector.",
	      m->ob ? (double)outbox_pending(m->ob) : 0);
	gauge(b, "venuewatch_agent_outbox_bytes", "Bytes those results take in the outbox.",
	      m->ob ? (double)outbox_bytes(m->ob) : 0);
	/* A check time ahead of now (the clock stepped back) is no age: 0, not negative. */
	gauge(b, "venuewatch_agent_outbox_oldest_age_seconds",
	      "Age of the oldest unacknowledged result (from its check time); 0 when none.",
	      oldest && now > oldest ? (double)(now - oldest) / 1000.0 : 0);

	vw_prom_family(b, "venuewatch_agent_uploads_total", "counter",
	               "Upload requests to the collector, by how they ended.");
	for (int o = 0; o < UPLINK_OUTCOME_COUNT; o++) {
		l[0] =
		    (struct vw_prom_label){"outcome", uplink_outcome_name((enum uplink_outcome)o)};
		vw_prom_sample(b, "venuewatch_agent_uploads_total", l, 1,
		               (double)uplink_outcome_count(m->up, (enum uplink_outcome)o));
	}
	vw_prom_family(b, "venuewatch_agent_results_acked_total", "counter",
	               "Results the collector acknowledged (released from the outbox).");
	vw_prom_sample(b, "venuewatch_agent_results_acked_total", NULL, 0,
	               m->ob ? (double)outbox_acked_total(m->ob) : 0);
	vw_prom_family(b, "venuewatch_agent_results_dropped_total", "counter",
	               "Results lost: overflow = oldest unsent rows dropped at the outbox bound or "
	               "on a full disk (kept in outbox.db across restarts); unstored = results "
	               "that could not be committed at all.");
	l[0] = (struct vw_prom_label){"reason", "overflow"};
	vw_prom_sample(b, "venuewatch_agent_results_dropped_total", l, 1,
	               m->ob ? (double)outbox_dropped_total(m->ob) : 0);
	l[0] = (struct vw_prom_label){"reason", "unstored"};
	vw_prom_sample(b, "venuewatch_agent_results_dropped_total", l, 1,
	               m->ob ? (double)outbox_unstored_total(m->ob) : 0);

	size_t by_status[VW_STATUS_COUNT + 1] = {0}; /* last: not checked yet */
	for (size_t c = 0; c < m->cfg->cameras.n; c++)
		by_status[m->camera_status[c] < 0 ? VW_STATUS_COUNT
		                                  : (size_t)m->camera_status[c]]++;
	vw_prom_family(b, "venuewatch_agent_cameras", "gauge",
	               "Configured cameras by the status of their latest check.");
	for (int st = 0; st <= VW_STATUS_COUNT; st++) {
		l[0] = (struct vw_prom_label){"status", st < VW_STATUS_COUNT
		                                            ? vw_status_name((enum vw_status)st)
		                                            : "unknown"};
		vw_prom_sample(b, "venuewatch_agent_cameras", l, 1, (double)by_status[st]);
	}
	gauge(b, "venuewatch_agent_uplink_connected",
	      "1 when the last upload was acknowledged by the collector, else 0.",
	      m->up && uplink_connected(m->up) == 1 ? 1 : 0);
	vw_prom_family(b, "venuewatch_agent_collector", "gauge",
	               "The [collector] url uploads go to now; always 1.");
	l[0] = (struct vw_prom_label){"url", m->up ? uplink_collector(m->up) : ""};
	vw_prom_sample(b, "venuewatch_agent_collector", l, 1, 1);
	vw_prom_family(b, "venuewatch_agent_collector_switches_total", "counter",
	               "Times the uplink moved to another collector (failover or failback).");
	vw_prom_sample(b, "venuewatch_agent_collector_switches_total", NULL, 0,
	               (double)uplink_switches(m->up));
	gauge(b, "venuewatch_agent_start_time_seconds",
	      "When this agent process started (Unix time).", (double)(m->start_ms / 1000));
	vw_prom_family(b, "venuewatch_agent_build_info", "gauge", "The agent's version; always 1.");
	l[0] = (struct vw_prom_label){"version", VW_VERSION};
	vw_prom_sample(b, "venuewatch_agent_build_info", l, 1, 1);
	return b->err;
}

static int write_text(FILE *fp, const void *arg)
{
	const struct vw_buf *b = arg;
	return fwrite(b->data, 1, b->len, fp) == b->len;
}

static void write_file(struct metrics *m)
{
	const char *path = m->cfg->agent.metrics_file;
	char err[512] = "";
	m->last_write_mono = vw_mono_ms();
	vw_buf_reset(&m->text);
	int rc = metrics_render(m, &m->text);
	if (rc == 0 && m->text.err)
		rc = m->text.err;
	if (rc)
		snprintf(err, sizeof(err), "rendering: %s", strerror(-rc));
	/* 0644, not the agent's usual 0600: node_exporter reads it as its own user, and the
	 * file holds counts and states only, no names of people, keys or tokens. */
	else
		rc = vw_file_replace(path, 0644, write_text, &m->text, err, sizeof(err));
	if (rc) {
		if (-rc != m->last_err)
			log_warn("event=metrics_write_failed file=%s err=\"%s\"", path, err);
		m->last_err = -rc;
		return;
	}
	if (m->last_err)
		log_info("event=metrics_write_recovered file=%s", path);
	m->last_err = 0;
}

static void on_timer(uv_timer_t *t)
{
	struct metrics *m = t->data;
	write_file(m);
	uv_timer_start(&m->timer, on_timer, (uint64_t)m->cfg->agent.metrics_interval_ms, 0);
}

/* New counts: rewrite within METRICS_MIN_GAP_MS of the last write, not later than the
 * periodic write would. */
static void schedule_soon(struct metrics *m)
{
	if (!m->started || !m->timer_open)
		return;
	int64_t since = vw_mono_ms() - m->last_write_mono;
	uint64_t delay = since >= METRICS_MIN_GAP_MS ? 0 : (uint64_t)(METRICS_MIN_GAP_MS - since);
	if (uv_timer_get_due_in(&m->timer) > delay)
		uv_timer_start(&m->timer, on_timer, delay, 0);
}

void metrics_start(struct metrics *m)
{
	if (!m || !m->cfg->agent.metrics_file || !m->cfg->agent.metrics_file[0])
		return;
	m->started = 1;
	log_info("event=metrics_file file=%s interval_ms=%ld", m->cfg->agent.metrics_file,
	         m->cfg->agent.metrics_interval_ms);
	uv_timer_start(&m->timer, on_timer, 0, 0);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct metrics *m = h->data;
	if (m->closed_cb)
		m->closed_cb(m->closed_arg);
}

void metrics_stop(struct metrics *m, void (*closed_cb)(void *), void *arg)
{
	if (m->started) /* the counts of the last checks, committed before the stop */
		write_file(m);
	m->started = 0;
	m->closed_cb = closed_cb;
	m->closed_arg = arg;
	m->timer_open = 0;
	uv_close((uv_handle_t *)&m->timer, on_timer_closed);
}

void metrics_destroy(struct metrics **mp)
{
	struct metrics *m = *mp;
	if (!m)
		return;
	vw_buf_free(&m->text);
	free(m->camera_status);
	free(m);
	*mp = NULL;
}
