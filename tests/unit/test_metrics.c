/* The agent's metrics as counted: checks by kind and status, cumulative duration buckets
 * from each result's check_ms, cameras by their latest status (unknown before a check), and
 * the families present before any outbox or uplink is attached. The file and its readers are
 * tests/integration/test_agent_metrics.py's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include <cmocka.h>

#include "agent_conf.h"
#include "metrics.h"

static const char cfg_text[] = "[agent]\nsite = site-1\norg = org-1\nstate_dir = /tmp/x\n"
                               "[collector]\nurl = https://127.0.0.1:1\nca = c\ncert = c\nkey = k\n"
                               "[room hall]\nmin_cameras = 1\n"
                               "[camera front]\nroom = hall\nurl = rtsp://h/1\n"
                               "[camera back]\nroom = hall\nurl = rtsp://h/2\n"
                               "[camera side]\nroom = hall\nurl = rtsp://h/3\n";

static struct vw_result result(enum vw_kind k, const char *target, enum vw_status st, double ms)
{
	struct vw_result r;
	vw_result_init(&r, k, target);
	r.status = st;
	if (ms >= 0)
		vw_result_set_metric(&r, VW_M_CHECK_MS, ms);
	return r;
}

static void has_line(const struct vw_buf *b, const char *line)
{
	char want[256];
	snprintf(want, sizeof(want), "\n%s\n", line);
	if (!strstr(b->data, want))
		fail_msg("missing line '%s' in:\n%s", line, b->data);
}

static void counts_checks_durations_and_cameras(void **state)
{
	(void)state;
	struct agent_conf cfg;
	struct vw_conf_errors errs = {0};
	assert_int_equal(agent_conf_load_string(&cfg, "t.ini", cfg_text, &errs), 0);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct metrics *m;
	assert_int_equal(metrics_create(&loop, &cfg, &m), 0);
	struct vw_result rs[] = {
	    result(VW_KIND_STREAM, "front", VW_STATUS_OK, 700),    /* le 1 */
	    result(VW_KIND_STREAM, "back", VW_STATUS_DOWN, 10000), /* le 10 exactly */
	    result(VW_KIND_STREAM, "front", VW_STATUS_DEGRADED, 3000),
	    result(VW_KIND_NETWORK, "collector", VW_STATUS_OK, 2000),
	    result(VW_KIND_COVERAGE, "hall", VW_STATUS_OK, -1), /* not timed */
	};
	metrics_observe(m, rs, 3);
	metrics_observe(m, rs + 3, 2);
	struct vw_buf b;
	vw_buf_init(&b, 0);
	assert_int_equal(metrics_render(m, &b), 0);
	vw_buf_cstr(&b);
	has_line(&b, "venuewatch_agent_checks_total{kind=\"stream\",status=\"ok\"} 1");
	has_line(&b, "venuewatch_agent_checks_total{kind=\"stream\",status=\"degraded\"} 1");
	has_line(&b, "venuewatch_agent_checks_total{kind=\"stream\",status=\"down\"} 1");
	has_line(&b, "venuewatch_agent_checks_total{kind=\"coverage\",status=\"ok\"} 1");
	has_line(&b, "venuewatch_agent_checks_total{kind=\"assessment\",status=\"ok\"} 0");
	has_line(&b,
	         "venuewatch_agent_check_duration_seconds_bucket{kind=\"stream\",le=\"0.5\"} 0");
	has_line(&b, "venuewatch_agent_check_duration_seconds_bucket{kind=\"stream\",le=\"1\"} 1");
	has_line(&b, "venuewatch_agent_check_duration_seconds_bucket{kind=\"stream\",le=\"5\"} 2");
	has_line(&b, "venuewatch_agent_check_duration_seconds_bucket{kind=\"stream\",le=\"10\"} 3");
	has_line(&b,
	         "venuewatch_agent_check_duration_seconds_bucket{kind=\"stream\",le=\"+Inf\"} 3");
	has_line(&b, "venuewatch_agent_check_duration_seconds_sum{kind=\"stream\"} 13.7");
	has_line(&b, "venuewatch_agent_check_duration_seconds_count{kind=\"network\"} 1");
	has_line(&b, "venuewatch_agent_check_duration_seconds_count{kind=\"recording\"} 0");
	/* front's latest is degraded, back down, side never checked */
	has_line(&b, "venuewatch_agent_cameras{status=\"ok\"} 0");
	has_line(&b, "venuewatch_agent_cameras{status=\"degraded\"} 1");
	has_line(&b, "venuewatch_agent_cameras{status=\"down\"} 1");
	has_line(&b, "venuewatch_agent_cameras{status=\"unknown\"} 1");
	has_line(&b, "venuewatch_agent_outbox_results 0");
	has_line(&b, "venuewatch_agent_uploads_total{outcome=\"acked\"} 0");
	has_line(&b, "venuewatch_agent_build_info{version=\"" VW_VERSION "\"} 1");
	assert_null(strstr(b.data, "kind=\"buffer\""));
	vw_buf_free(&b);
	metrics_stop(m, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	metrics_destroy(&m);
	assert_null(m);
	assert_int_equal(uv_loop_close(&loop), 0);
	agent_conf_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(counts_checks_durations_and_cameras),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
