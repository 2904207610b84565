/* The Prometheus writer (common/prom.c) and the collector's [metrics] allow list
 * (server/metrics.c) on their own: a histogram's buckets made cumulative with +Inf, _sum and
 * _count; label values and HELP text escaped as the format wants; non-finite values spelled;
 * the allow list's addresses, CIDRs, IPv4-mapped peers and refusals. The whole exposition is
 * checked by promtool and a real Prometheus in integration_metrics / integration_prometheus. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"
#include "prom.h"

static const char *text(struct vw_buf *b)
{
	assert_int_equal(b->err, 0);
	return vw_buf_cstr(b);
}

static void histogram_buckets_are_cumulative(void **state)
{
	(void)state;
	static const double bounds[] = {0.01, 0.1, 1};
	struct vw_prom_hist h = {0};
	const double obs[] = {0.005, 0.01, 0.05, 0.5, 0.7, 3};
	for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
		vw_prom_hist_observe(&h, bounds, 3, obs[i]);
	struct vw_buf b;
	vw_buf_init(&b, 1u << 16);
	vw_prom_family(&b, "x_seconds", "histogram", "a test");
	vw_prom_hist_write(&b, "x_seconds", &(struct vw_prom_label){"k", "v"}, 1, bounds, 3, &h);
	/* le=0.01 holds 0.005 and 0.01 (bounds are inclusive), 0.1 adds 0.05, 1 adds two;
	 * 3 is above every bound: only in +Inf and the count. */
	assert_string_equal(text(&b), "# HELP x_seconds a test\n"
	                              "# TYPE x_seconds histogram\n"
	                              "x_seconds_bucket{k=\"v\",le=\"0.01\"} 2\n"
	                              "x_seconds_bucket{k=\"v\",le=\"0.1\"} 3\n"
	                              "x_seconds_bucket{k=\"v\",le=\"1\"} 5\n"
	                              "x_seconds_bucket{k=\"v\",le=\"+Inf\"} 6\n"
	                              "x_seconds_sum{k=\"v\"} 4.265\n"
	                              "x_seconds_count{k=\"v\"} 6\n");
	vw_buf_free(&b);
}

static void labels_help_and_values_escaped(void **state)
{
	(void)state;
	struct vw_buf b;
	vw_buf_init(&b, 1u << 16);
	vw_prom_family(&b, "y", "gauge", "back\\slash and\nnewline");
	struct vw_prom_label l[2] = {{"a", "q\"uote"}, {"b", "c:\\dir\nnext"}};
	vw_prom_sample(&b, "y", l, 2, 1.5);
	vw_prom_sample(&b, "y", NULL, 0, NAN);
	vw_prom_sample(&b, "y", NULL, 0, INFINITY);
	vw_prom_sample(&b, "y", NULL, 0, -INFINITY);
	vw_prom_sample(&b, "y", NULL, 0, 12345678901.0);
	assert_string_equal(text(&b), "# HELP y back\\\\slash and\\nnewline\n"
	                              "# TYPE y gauge\n"
	                              "y{a=\"q\\\"uote\",b=\"c:\\\\dir\\nnext\"} 1.5\n"
	                              "y NaN\n"
	                              "y +Inf\n"
	                              "y -Inf\n"
	                              "y 12345678901\n");
	vw_buf_free(&b);
}

static void allow_list_matches_addresses_and_prefixes(void **state)
{
	(void)state;
	struct metrics_allow a;
	char err[128] = "";
	assert_int_equal(
	    metrics_allow_parse(" 127.0.0.1, 10.1.0.0/16 ,::1,fd00::/8", &a, err, sizeof(err)), 0);
	assert_int_equal(a.n, 4);
	assert_true(metrics_allow_peer(&a, "127.0.0.1:5555"));
	assert_false(metrics_allow_peer(&a, "127.0.0.2:5555"));
	assert_true(metrics_allow_peer(&a, "10.1.255.7:1"));
	assert_false(metrics_allow_peer(&a, "10.2.0.1:1"));
	assert_true(metrics_allow_peer(&a, "[::1]:9"));
	assert_true(metrics_allow_peer(&a, "[fd12:3456::1]:9"));
	assert_false(metrics_allow_peer(&a, "[fe80::1]:9"));
	/* An IPv4-mapped IPv6 peer is its IPv4 address. */
	assert_true(metrics_allow_peer(&a, "[::ffff:127.0.0.1]:80"));
	assert_false(metrics_allow_peer(&a, "[::ffff:127.0.0.3]:80"));
	/* Not an address at all: never allowed. */
	assert_false(metrics_allow_peer(&a, "localhost:80"));
	assert_false(metrics_allow_peer(&a, NULL));
	/* An odd prefix length compares only its bits. */
	assert_int_equal(metrics_allow_parse("192.168.4.0/22", &a, err, sizeof(err)), 0);
	assert_true(metrics_allow_peer(&a, "192.168.7.255:1"));
	assert_false(metrics_allow_peer(&a, "192.168.8.0:1"));
	/* 0.0.0.0/0 is everyone (IPv4), as written. */
	assert_int_equal(metrics_allow_parse("0.0.0.0/0", &a, err, sizeof(err)), 0);
	assert_true(metrics_allow_peer(&a, "203.0.113.9:1"));
	/* Empty: nobody. */
	assert_int_equal(metrics_allow_parse("", &a, err, sizeof(err)), 0);
	assert_false(metrics_allow_peer(&a, "127.0.0.1:1"));
}

static void allow_list_refuses_names_and_bad_prefixes(void **state)
{
	(void)state;
	struct metrics_allow a;
	char err[128] = "";
	assert_int_equal(metrics_allow_parse("127.0.0.1, localhost", &a, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "localhost"));
	assert_int_equal(metrics_allow_parse("10.0.0.0/33", &a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "0..32"));
	assert_int_equal(metrics_allow_parse("::1/129", &a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "0..128"));
	assert_int_equal(metrics_allow_parse("10.0.0.0/", &a, err, sizeof(err)), -EINVAL);
	char many[512] = "";
	for (int i = 0; i <= METRICS_ALLOW_MAX; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "10.0.0.%d,", i);
	assert_int_equal(metrics_allow_parse(many, &a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(histogram_buckets_are_cumulative),
	    cmocka_unit_test(labels_help_and_values_escaped),
	    cmocka_unit_test(allow_list_matches_addresses_and_prefixes),
	    cmocka_unit_test(allow_list_refuses_names_and_bad_prefixes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
