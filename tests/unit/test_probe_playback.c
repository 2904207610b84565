/* probe_playback: the playback URL a sample asks for, and the config errors a bad template
 * gets. The sampling itself is proven against a real RTSP server (integration_playback). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "agent_conf.h"
#include "probe_playback.h"

/* 2026-12-03T08:05:09Z */
#define T_MS (1796285109LL * 1000)

static void test_url_has_the_sampled_time_in_utc_and_the_camera(void **state)
{
	(void)state;
	char url[256];
	assert_int_equal(playback_url_expand("rtsp://nvr/tracks/{camera}?starttime=%Y%m%dT%H%M%SZ"
	                                     "&x=%%41",
	                                     "101", T_MS, url, sizeof(url)),
	                 0);
	assert_string_equal(url, "rtsp://nvr/tracks/101?starttime=20261203T080509Z&x=%41");
}

static void test_camera_name_is_not_read_as_a_time_field(void **state)
{
	(void)state;
	char url[256];
	assert_int_equal(
	    playback_url_expand("rtsp://nvr/{camera}/%H", "a%Yb", T_MS, url, sizeof(url)), 0);
	assert_string_equal(url, "rtsp://nvr/a%Yb/08");
}

static void test_url_that_does_not_fit_is_refused(void **state)
{
	(void)state;
	char url[24];
	assert_int_equal(playback_url_expand("rtsp://nvr/{camera}?t=%Y%m%dT%H%M%SZ", "camera-1",
	                                     T_MS, url, sizeof(url)),
	                 -ENAMETOOLONG);
}

static int load(const char *camera_extra, const char *rec_extra, struct vw_conf_errors *errs)
{
	char text[2048];
	snprintf(
	    text, sizeof(text),
	    "[agent]\nsite = S1\norg = O1\nstate_dir = /tmp/x\n"
	    "[collector]\nurl = https://127.0.0.1:1\nca = c\ncert = c\nkey = k\n"
	    "[recordings]\n%s\n[room hall]\n[camera front]\nroom = hall\nurl = rtsp://h/1\n%s\n",
	    rec_extra, camera_extra);
	struct agent_conf cfg;
	memset(errs, 0, sizeof(*errs));
	int rc = agent_conf_load_string(&cfg, "t.ini", text, errs);
	agent_conf_free(&cfg);
	return rc;
}

static void test_template_without_a_time_field_is_an_error_with_its_line(void **state)
{
	(void)state;
	struct vw_conf_errors errs;
	assert_int_not_equal(load("playback_url = rtsp://nvr/front?t=%%41", "", &errs), 0);
	assert_non_null(strstr(errs.text, "t.ini:"));
	assert_non_null(strstr(errs.text, "[camera front] playback_url: no strftime field"));
	assert_int_not_equal(load("", "playback_url = nvr/{camera}?t=%Y", &errs), 0);
	assert_non_null(strstr(errs.text, "[recordings] playback_url: expected scheme://"));
	assert_int_equal(load("", "playback_url = rtsp://nvr/{camera}?t=%Y%m%dT%H%M%SZ", &errs), 0);
}

/* Found by fuzz_conf: a template ending in a lone % was read one byte past its end. */
static void test_template_ending_in_a_lone_percent_is_an_error(void **state)
{
	(void)state;
	struct vw_conf_errors errs;
	assert_int_not_equal(load("playback_url = rtsp://nvr/front?t=%Y%", "", &errs), 0);
	assert_non_null(strstr(errs.text, "[camera front] playback_url: ends in a lone %"));
	assert_int_not_equal(load("", "playback_url = %", &errs), 0);
	assert_int_equal(load("", "playback_url = rtsp://nvr/{camera}?t=%Y%%", &errs), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url_has_the_sampled_time_in_utc_and_the_camera),
	    cmocka_unit_test(test_camera_name_is_not_read_as_a_time_field),
	    cmocka_unit_test(test_url_that_does_not_fit_is_refused),
	    cmocka_unit_test(test_template_ending_in_a_lone_percent_is_an_error),
	    cmocka_unit_test(test_template_without_a_time_field_is_an_error_with_its_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
