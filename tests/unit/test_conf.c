/* The agent's configuration: every error path names file:line, defaults apply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "agent_conf.h"

#define GOOD_HEAD                                                                                  \
	"[agent]\nsite = site-1\norg = org-1\nstate_dir = /tmp/x\n"                                \
	"[collector]\nurl = https://127.0.0.1:8443\nca = ca.crt\ncert = a.crt\nkey = a.key\n"

static int load(const char *text, struct agent_conf *cfg, struct vw_conf_errors *errs)
{
	memset(errs, 0, sizeof(*errs));
	return agent_conf_load_string(cfg, "t.ini", text, errs);
}

static void defaults_apply_to_absent_keys(void **state)
{
	(void)state;
	struct agent_conf cfg;
	struct vw_conf_errors errs;
	int rc = load(GOOD_HEAD "[room hall]\n[camera front]\nroom = hall\nurl = rtsp://h/1\n",
	              &cfg, &errs);
	assert_int_equal(rc, 0);
	assert_string_equal(cfg.agent.site, "site-1");
	assert_int_equal(cfg.agent.interval_ms, 120000);
	assert_int_equal(cfg.agent.check_timeout_ms, 10000);
	assert_int_equal(cfg.collector.outbox_max, 256LL << 20);
	assert_int_equal(cfg.rooms.n, 1);
	assert_int_equal(agent_conf_room(&cfg, 0)->min_cameras, 2);
	assert_int_equal(cfg.cameras.n, 1);
	assert_string_equal(agent_conf_camera(&cfg, 0)->name, "front");
	assert_int_equal(agent_conf_camera(&cfg, 0)->transport, VW_TRANSPORT_TCP);
	assert_int_equal(agent_conf_camera(&cfg, 0)->line, 11);
	agent_conf_free(&cfg);
}

static void values_with_units_parse(void **state)
{
	(void)state;
	struct agent_conf cfg;
	struct vw_conf_errors errs;
	int rc = load(
	    "[agent]\nsite = s\norg = o\nstate_dir = d\ninterval = 2m\ncheck_timeout = 500ms\n"
	    "log_level = debug\n"
	    "[collector]\nurl = https://h\nca = c\ncert = c\nkey = k\noutbox_max = 2MiB\n"
	    "[room r]\nmin_cameras = 4\n[camera c]\nroom = r\nurl = rtsp://h\ntransport = udp\n",
	    &cfg, &errs);
	assert_int_equal(rc, 0);
	assert_int_equal(cfg.agent.interval_ms, 120000);
	assert_int_equal(cfg.agent.check_timeout_ms, 500);
	assert_int_equal(cfg.agent.log_level, 0);
	assert_int_equal(cfg.collector.outbox_max, 2 << 20);
	assert_int_equal(agent_conf_room(&cfg, 0)->min_cameras, 4);
	assert_int_equal(agent_conf_camera(&cfg, 0)->transport, VW_TRANSPORT_UDP);
	agent_conf_free(&cfg);
}

/* Each case: config text, expected error count, a substring every report must contain. */
struct bad_case {
	const char *text;
	const char *expect;
};

static void every_error_names_file_and_line(void **state)
{
	(void)state;
	static const struct bad_case cases[] = {
	    {GOOD_HEAD "bogus = 1\n", "t.ini:10: [collector]: unknown key 'bogus'"},
	    {GOOD_HEAD "[cam x]\n", "t.ini:10: unknown section [cam x]"},
	    {GOOD_HEAD "[room]\n", "t.ini:10: section [room] needs a name"},
	    {GOOD_HEAD "[room a]\n[room a]\n", "t.ini:11: duplicate section [room a]"},
	    {GOOD_HEAD "[room a]\nmin_cameras = two\n",
	     "t.ini:11: [room a] min_cameras: expected an integer"},
	    {GOOD_HEAD "[room a]\nmin_cameras = 0\n",
	     "t.ini:11: [room a] min_cameras: value 0 out of range"},
	    {GOOD_HEAD "[room a]\nmin_cameras = 1\nmin_cameras = 2\n",
	     "t.ini:12: [room a]: key 'min_cameras' set twice"},
	    {GOOD_HEAD "[camera c]\nurl = rtsp://h\n",
	     "t.ini:10: [camera c]: missing required key 'room'"},
	    {GOOD_HEAD "[camera c]\nroom = nowhere\nurl = rtsp://h\n",
	     "t.ini:10: [camera c] room: no section [room nowhere]"},
	    {GOOD_HEAD "[room r]\n[camera c]\nroom = r\nurl = rtsp://h\ntransport = sctp\n",
	     "t.ini:14: [camera c] transport: expected one of tcp|udp"},
	    {GOOD_HEAD "[room r]\n[camera c]\nroom = r\nurl = nothing\n",
	     "t.ini:11: [camera c] url: expected scheme://"},
	    {"[agent]\nsite = s\norg = o\nstate_dir = d\ninterval = fast\n",
	     "t.ini:5: [agent] interval: expected a duration"},
	    {"[agent]\nsite = s\norg = o\n", "t.ini:1: [agent]: missing required key 'state_dir'"},
	    {"[agent]\nsite = s\norg = o\nstate_dir = d\n",
	     "t.ini: missing required section [collector]"},
	    {"[agent]\nsite = s\norg = o\nstate_dir = d\n[collector]\nurl = http://h\nca = c\ncert "
	     "= c\nkey = k\n",
	     "t.ini:5: [collector] url: URL 1 'http://h' must be https://"},
	    {"[agent]\nsite = a/b\norg = o\nstate_dir = d\n",
	     "t.ini:1: [agent] site: 'a/b' may use only"},
	    {"[agent]\nsite = s\nthis line has no equals sign\n", "t.ini:3: syntax error"},
	    {"key = 1\n", "t.ini:1: key 'key' outside any section"},
	    {"[agent]\nsite = s\norg = \xe6\xb5\n", "t.ini:3: [agent] org: invalid UTF-8"},
	    {GOOD_HEAD "[room r]\n[camera c\xc0\xaf]\nroom = r\nurl = rtsp://h\n",
	     "t.ini:11: section [camera NAME]: name is not valid UTF-8"},
	    {GOOD_HEAD "[room \xed\xa0\x80]\nmin_cameras = 1\n",
	     "t.ini:10: section [room NAME]: name is not valid UTF-8"},
	    {GOOD_HEAD "[room r]\n[camera c]\nroom = r\xff\nurl = rtsp://h\n",
	     "t.ini:12: [camera c] room: invalid UTF-8"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct agent_conf cfg;
		struct vw_conf_errors errs;
		int rc = load(cases[i].text, &cfg, &errs);
		if (rc <= 0 || !strstr(errs.text, cases[i].expect))
			fail_msg("case %zu: rc=%d, expected \"%s\" in:\n%s", i, rc, cases[i].expect,
			         errs.text);
		agent_conf_free(&cfg);
	}
}

static void all_errors_are_reported_not_just_the_first(void **state)
{
	(void)state;
	struct agent_conf cfg;
	struct vw_conf_errors errs;
	int rc = load(GOOD_HEAD "x = 1\ny = 2\n[room r]\nmin_cameras = -1\n", &cfg, &errs);
	assert_int_equal(rc, 3);
	assert_non_null(strstr(errs.text, "t.ini:10:"));
	assert_non_null(strstr(errs.text, "t.ini:11:"));
	assert_non_null(strstr(errs.text, "t.ini:13:"));
	agent_conf_free(&cfg);
}

static void missing_file_is_an_error_not_a_crash(void **state)
{
	(void)state;
	struct agent_conf cfg;
	struct vw_conf_errors errs = {0};
	int rc = agent_conf_load(&cfg, "/nonexistent/agent.ini", &errs);
	assert_true(rc < 0);
	assert_non_null(strstr(errs.text, "/nonexistent/agent.ini: cannot open"));
	agent_conf_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults_apply_to_absent_keys),
	    cmocka_unit_test(values_with_units_parse),
	    cmocka_unit_test(every_error_names_file_and_line),
	    cmocka_unit_test(all_errors_are_reported_not_just_the_first),
	    cmocka_unit_test(missing_file_is_an_error_not_a_crash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
