/* Coverage and the site assessment: rooms need min_cameras healthy cameras; the four
 * criteria of item 3.6 hold only when measured, never by default. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "agent_conf.h"
#include "assess.h"

static const char cfg_text[] =
    "[agent]\nsite = site-1\norg = org-1\nstate_dir = /tmp/x\n"
    "[collector]\nurl = https://127.0.0.1:1\nca = c\ncert = c\nkey = k\n"
    "[room hall]\nmin_cameras = 2\n[room lab]\nmin_cameras = 1\n"
    "[camera front]\nroom = hall\nurl = rtsp://h/1\n"
    "[camera back]\nroom = hall\nurl = rtsp://h/2\n"
    "[camera bench]\nroom = lab\nurl = rtsp://h/3\n"
    "[session s1]\nstart = 2026-11-28T01:00:00Z\nend = 2026-11-28T03:00:00Z\nrooms = hall\n";

static struct vw_result stream(const char *cam, enum vw_status st)
{
	struct vw_result r;
	vw_result_init(&r, VW_KIND_STREAM, cam);
	r.status = st;
	vw_result_set_metric(&r, VW_M_BITRATE_KBPS, 1000);
	return r;
}

static struct vw_result of_kind(enum vw_kind k, const char *target, enum vw_status st)
{
	struct vw_result r;
	vw_result_init(&r, k, target);
	r.status = st;
	return r;
}

static double metric(const struct vw_result *r, const char *name)
{
	double v = -1;
	if (!vw_result_get_metric(r, name, &v))
		fail_msg("metric %s missing", name);
	return v;
}

static void no_verdict_before_every_camera_of_a_room_reported(void **state)
{
	(void)state;
	struct agent_conf cfg;
	struct vw_conf_errors errs = {0};
	assert_int_equal(agent_conf_load_string(&cfg, "t.ini", cfg_text, &errs), 0);
	struct assess *a;
	assert_int_equal(assess_create(&cfg, &a), 0);
	struct vw_result out[4];
	assert_int_equal(assess_emit(a, 0, out, 4), 0);
	struct vw_result r = stream("front", VW_STATUS_OK);
	assess_observe(a, &r, 1);
	size_t n = assess_emit(a, 0, out, 4);
	assert_int_equal(n, 1); /* no room complete; the assessment only */
	assert_int_equal(out[0].kind, VW_KIND_ASSESSMENT);
	assess_destroy(&a);
	agent_conf_free(&cfg);
}

static void room_needs_min_cameras_ok(void **state)
{
	(void)state;
	struct agent_conf cfg;
	struct vw_conf_errors errs = {0};
	assert_int_equal(agent_conf_load_string(&cfg, "t.ini", cfg_text, &errs), 0);
	struct assess *a;
	assert_int_equal(assess_create(&cfg, &a), 0);
	struct vw_result rs[3] = {stream("front", VW_STATUS_OK), stream("back", VW_STATUS_DEGRADED),
	                          stream("bench", VW_STATUS_OK)};
	assess_observe(a, rs, 3);
	struct vw_result out[4];
	size_t n = assess_emit(a, 0, out, 4);
	assert_int_equal(n, 3);
	assert_string_equal(out[0].target, "hall");
	assert_int_equal(out[0].status, VW_STATUS_DOWN);
	assert_true(vw_result_has_fault(&out[0], "room_uncovered"));
	assert_int_equal((int)metric(&out[0], "cameras_ok"), 1);
	assert_int_equal((int)metric(&out[0], "cameras_required"), 2);
	assert_string_equal(out[1].target, "lab");
	assert_int_equal(out[1].status, VW_STATUS_OK);
	assert_true(metric(&out[2], "floor_covered_fraction") > 0.49);
	assert_true(metric(&out[2], "floor_covered_fraction") < 0.51);
	assert_int_equal((int)metric(&out[2], "floor_covered"), 0);
	assess_destroy(&a);
	agent_conf_free(&cfg);
}

static void all_four_criteria_hold_only_when_measured(void **state)
{
	(void)state;
	struct agent_conf cfg;
	struct vw_conf_errors errs = {0};
	assert_int_equal(agent_conf_load_string(&cfg, "t.ini", cfg_text, &errs), 0);
	struct assess *a;
	assert_int_equal(assess_create(&cfg, &a), 0);
	struct vw_result rs[] = {
	    stream("front", VW_STATUS_OK),
	    stream("back", VW_STATUS_OK),
	    stream("bench", VW_STATUS_OK),
	    of_kind(VW_KIND_NETWORK, "collector", VW_STATUS_OK),
	};
	assess_observe(a, rs, 4);
	assess_set_connected(a, 1);
	struct vw_result out[4];
	size_t n = assess_emit(a, 0, out, 4);
	struct vw_result *as = &out[n - 1];
	assert_int_equal(as->kind, VW_KIND_ASSESSMENT);
	/* No recording was checked: records_kept is unproven, so not held. */
	assert_int_equal((int)metric(as, "records_kept"), 0);
	assert_true(vw_result_has_fault(as, "records_not_kept"));
	assert_int_equal(as->status, VW_STATUS_DEGRADED);

	struct vw_result recs[] = {of_kind(VW_KIND_RECORDING, "front", VW_STATUS_OK),
	                           of_kind(VW_KIND_RECORDING, "back", VW_STATUS_OK),
	                           of_kind(VW_KIND_RECORDING, "bench", VW_STATUS_OK)};
	assess_observe(a, recs, 3);
	n = assess_emit(a, 0, out, 4);
	as = &out[n - 1];
	assert_int_equal(as->status, VW_STATUS_OK);
	assert_int_equal(as->nfaults, 0);
	assert_int_equal((int)metric(as, "connected"), 1);
	assert_int_equal((int)metric(as, "network_smooth"), 1);
	assert_int_equal((int)metric(as, "picture_clear"), 1);
	assert_int_equal((int)metric(as, "floor_covered"), 1);
	assert_true(assess_camera_kbps(a) > 2999 && assess_camera_kbps(a) < 3001);

	assess_set_connected(a, 0);
	n = assess_emit(a, 0, out, 4);
	assert_int_equal(out[n - 1].status, VW_STATUS_DOWN);
	assert_true(vw_result_has_fault(&out[n - 1], "not_connected"));
	assess_destroy(&a);
	agent_conf_free(&cfg);
}

static void during_a_session_only_its_rooms_count(void **state)
{
	(void)state;
	struct agent_conf cfg;
	struct vw_conf_errors errs = {0};
	assert_int_equal(agent_conf_load_string(&cfg, "t.ini", cfg_text, &errs), 0);
	const struct session_conf *se = agent_conf_session(&cfg, 0);
	int64_t during = se->start_ms + 60000;
	assert_non_null(agent_conf_session_at(&cfg, "hall", during));
	assert_null(agent_conf_session_at(&cfg, "lab", during));
	assert_null(agent_conf_session_at(&cfg, "hall", se->end_ms));
	struct assess *a;
	assert_int_equal(assess_create(&cfg, &a), 0);
	/* lab uncovered, hall covered: in the session only hall counts. */
	struct vw_result rs[3] = {stream("front", VW_STATUS_OK), stream("back", VW_STATUS_OK),
	                          stream("bench", VW_STATUS_DOWN)};
	assess_observe(a, rs, 3);
	struct vw_result out[4];
	size_t n = assess_emit(a, during, out, 4);
	assert_string_equal(out[0].session, "s1");
	assert_int_equal((int)metric(&out[n - 1], "floor_covered"), 1);
	n = assess_emit(a, se->end_ms + 1, out, 4);
	assert_int_equal((int)metric(&out[n - 1], "floor_covered"), 0);
	assess_destroy(&a);
	agent_conf_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(no_verdict_before_every_camera_of_a_room_reported),
	    cmocka_unit_test(room_needs_min_cameras_ok),
	    cmocka_unit_test(all_four_criteria_hold_only_when_measured),
	    cmocka_unit_test(during_a_session_only_its_rooms_count),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
