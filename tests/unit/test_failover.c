/* Which collector the uplink sends to: [collector] url lists as parsed, sticky selection,
 * failover on connection errors and 503 (with Retry-After), per-URL backoff, failback. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent_conf.h"
#include "failover.h"

#define BASE                                                                                       \
	"[agent]\nsite = s1\norg = o1\nstate_dir = /tmp\n[collector]\nca = a\ncert = b\nkey = c\n"

static void one_url_and_a_list_both_load(void **state)
{
	(void)state;
	struct agent_conf cfg;
	struct vw_conf_errors errs = {0};
	assert_int_equal(
	    agent_conf_load_string(&cfg, "a.ini", BASE "url = https://c1:8443\n", &errs), 0);
	assert_int_equal(cfg.collector.nurls, 1);
	assert_string_equal(cfg.collector.urls[0], "https://c1:8443");
	assert_int_equal(cfg.collector.failback_after_ms, 300000);
	agent_conf_free(&cfg);
	assert_int_equal(agent_conf_load_string(&cfg, "a.ini",
	                                        BASE "url = https://c1:8443, https://c2:8443/\n"
	                                             "failback_after = 2s\n",
	                                        &errs),
	                 0);
	assert_int_equal(cfg.collector.nurls, 2);
	assert_string_equal(cfg.collector.urls[0], "https://c1:8443");
	assert_string_equal(cfg.collector.urls[1], "https://c2:8443/");
	assert_int_equal(cfg.collector.failback_after_ms, 2000);
	agent_conf_free(&cfg);
}

static void a_bad_url_in_the_list_is_named_with_file_and_line(void **state)
{
	(void)state;
	struct agent_conf cfg;
	struct vw_conf_errors errs = {0};
	assert_true(agent_conf_load_string(&cfg, "a.ini",
	                                   BASE "url = https://c1:8443,http://c2:80\n", &errs) > 0);
	assert_non_null(strstr(errs.text, "a.ini:5:"));
	assert_non_null(strstr(errs.text, "URL 2 'http://c2:80'"));
	agent_conf_free(&cfg);
	struct vw_conf_errors e2 = {0};
	assert_true(agent_conf_load_string(
	                &cfg, "a.ini", BASE "url = https://c1:8443 https://c1:8443\n", &e2) > 0);
	assert_non_null(strstr(e2.text, "listed twice"));
	agent_conf_free(&cfg);
	struct vw_conf_errors e3 = {0};
	assert_true(agent_conf_load_string(&cfg, "a.ini", BASE "url = ,\n", &e3) > 0);
	assert_non_null(strstr(e3.text, "no URL given"));
	agent_conf_free(&cfg);
}

static void the_current_url_is_kept_until_it_fails(void **state)
{
	(void)state;
	struct failover fo;
	failover_init(&fo, 3, 60000, 500, 60000);
	failover_succeeded(&fo);
	assert_int_equal(fo.cur, 0);
	assert_int_equal(failover_failback(&fo, 1000), 0);
	/* A connection failure: the next URL, at once. */
	assert_int_equal(failover_failed(&fo, 1000, -1, 7), 0);
	assert_int_equal(fo.cur, 1);
	failover_succeeded(&fo);
	assert_int_equal(fo.cur, 1); /* sticky: answers keep it */
	assert_true(fo.urls[0].retry_at_ms > 1000);
}

static void a_503_honours_retry_after_for_that_url(void **state)
{
	(void)state;
	struct failover fo;
	failover_init(&fo, 2, 60000, 500, 60000);
	assert_int_equal(failover_failed(&fo, 1000, 30000, 0), 0);
	assert_int_equal(fo.cur, 1);
	assert_int_equal(fo.urls[0].retry_at_ms, 31000);
	/* The second one fails too: wait for the first one's Retry-After, then go back. */
	long wait = failover_failed(&fo, 2000, -1, 0);
	assert_int_equal(fo.cur, 1); /* its own backoff (250..1000 ms) ends before 31 s */
	assert_true(wait >= 250 && wait <= 1250);
	wait = failover_failed(&fo, 2000 + wait, 60000, 0);
	assert_int_equal(fo.cur, 0);
	assert_int_equal(fo.urls[0].retry_at_ms, 31000);
	assert_true(wait > 0 && wait <= 29000);
}

static void with_one_url_failures_back_off_exponentially(void **state)
{
	(void)state;
	struct failover fo;
	failover_init(&fo, 1, 60000, 500, 4000);
	long prev = 0;
	for (int i = 0; i < 6; i++) {
		long w = failover_failed(&fo, 1000, -1, UINT64_MAX - 1);
		assert_int_equal(fo.cur, 0);
		assert_true(w >= prev);
		assert_true(w <= 250 + 4000);
		prev = w;
	}
	assert_true(prev > 2000); /* grew to the cap */
}

static void the_first_url_is_preferred_again_after_failback_after(void **state)
{
	(void)state;
	struct failover fo;
	failover_init(&fo, 2, 10000, 500, 60000);
	failover_failed(&fo, 1000, -1, 0);
	assert_int_equal(fo.cur, 1);
	assert_int_equal(failover_failback(&fo, 10999), 0);
	assert_int_equal(fo.cur, 1);
	assert_int_equal(failover_failback(&fo, 11000), 1);
	assert_int_equal(fo.cur, 0);
	assert_int_equal(failover_failback(&fo, 11001), 0); /* already there */
	/* It fails again: away again, and failback waits from this failure. */
	failover_failed(&fo, 12000, -1, 0);
	assert_int_equal(fo.cur, 1);
	assert_int_equal(failover_failback(&fo, 21999), 0);
	assert_int_equal(failover_failback(&fo, 22000), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(one_url_and_a_list_both_load),
	    cmocka_unit_test(a_bad_url_in_the_list_is_named_with_file_and_line),
	    cmocka_unit_test(the_current_url_is_kept_until_it_fails),
	    cmocka_unit_test(a_503_honours_retry_after_for_that_url),
	    cmocka_unit_test(with_one_url_failures_back_off_exponentially),
	    cmocka_unit_test(the_first_url_is_preferred_again_after_failback_after),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
