/* The report schema: what the agent encodes, the server decodes to the same row. */
#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "result.h"
#include "vtime.h"

static void encode_then_decode_round_trips(void **state)
{
	(void)state;
	struct vw_result r, back;
	vw_result_init(&r, VW_KIND_STREAM, "hall-1 \"front\\\"");
	r.seq = 42;
	r.ts_ms = 1764184278123;
	r.status = VW_STATUS_DOWN;
	snprintf(r.codec, sizeof(r.codec), "h264");
	vw_result_add_fault(&r, VW_FAULT_UNREACHABLE);
	vw_result_add_fault(&r, VW_FAULT_UNREACHABLE); /* a fault is listed once */
	vw_result_set_metric(&r, VW_M_FPS, 24.5);
	vw_result_set_metric(&r, VW_M_WIDTH, 1280);

	struct vw_buf b;
	vw_buf_init(&b, 0);
	assert_int_equal(vw_result_encode(&r, &b), 0);
	const char *json = vw_buf_cstr(&b);
	assert_non_null(strstr(json, "\"ts\":\"2025-11-26T19:11:18.123Z\""));
	assert_non_null(strstr(json, "\"faults\":[\"unreachable\"]"));
	assert_non_null(strstr(json, "\"width\":1280"));
	assert_non_null(strstr(json, "\\\"front\\\\\\\""));

	cJSON *doc = cJSON_Parse(json);
	assert_non_null(doc);
	char err[128];
	assert_int_equal(vw_result_decode(doc, &back, err, sizeof(err)), 0);
	assert_int_equal(back.seq, 42);
	assert_int_equal(back.ts_ms, r.ts_ms);
	assert_int_equal(back.kind, VW_KIND_STREAM);
	assert_int_equal(back.status, VW_STATUS_DOWN);
	assert_string_equal(back.target, r.target);
	assert_string_equal(back.codec, "h264");
	assert_int_equal(back.nfaults, 1);
	double v;
	assert_true(vw_result_get_metric(&back, "fps", &v));
	assert_true(v > 24.49 && v < 24.51);
	cJSON_Delete(doc);
	vw_buf_free(&b);
}

static void decode_names_the_bad_field(void **state)
{
	(void)state;
	static const struct {
		const char *json, *expect;
	} cases[] = {
	    {"[]", "field 'result'"},
	    {"{\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"stream\",\"target\":\"a\",\"status\":"
	     "\"ok\"}",
	     "field 'seq'"},
	    {"{\"seq\":0,\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"stream\",\"target\":\"a\","
	     "\"status\":\"ok\"}",
	     "field 'seq'"},
	    {"{\"seq\":1.5,\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"stream\",\"target\":\"a\","
	     "\"status\":\"ok\"}",
	     "field 'seq'"},
	    {"{\"seq\":1,\"ts\":\"yesterday\",\"kind\":\"stream\",\"target\":\"a\",\"status\":"
	     "\"ok\"}",
	     "field 'ts'"},
	    {"{\"seq\":1,\"ts\":\"2026-02-31T00:00:00Z\",\"kind\":\"stream\",\"target\":\"a\","
	     "\"status\":\"ok\"}",
	     "field 'ts'"},
	    {"{\"seq\":1,\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"camera\",\"target\":\"a\","
	     "\"status\":\"ok\"}",
	     "field 'kind'"},
	    {"{\"seq\":1,\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"stream\",\"target\":\"a\","
	     "\"status\":\"fine\"}",
	     "field 'status'"},
	    {"{\"seq\":1,\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"stream\",\"status\":\"ok\"}",
	     "field 'target'"},
	    {"{\"seq\":1,\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"stream\",\"target\":\"a\","
	     "\"status\":\"ok\",\"faults\":[\"Bad Code\"]}",
	     "field 'faults'"},
	    {"{\"seq\":1,\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"stream\",\"target\":\"a\","
	     "\"status\":\"ok\",\"metrics\":{\"fps\":\"25\"}}",
	     "field 'metrics'"},
	    {"{\"seq\":1,\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"stream\",\"target\":"
	     "\"\xc0\xaf\",\"status\":\"ok\"}",
	     "field 'target': invalid UTF-8"},
	    {"{\"seq\":1,\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"stream\",\"target\":\"a\","
	     "\"codec\":\"h\xed\xb0\x80\",\"status\":\"ok\"}",
	     "field 'codec': invalid UTF-8"},
	    {"{\"seq\":1,\"ts\":\"1999-12-31T23:59:59Z\",\"kind\":\"stream\",\"target\":\"a\","
	     "\"status\":\"ok\"}",
	     "field 'ts': outside"},
	    {"{\"seq\":1,\"ts\":\"2100-01-01T00:00:00Z\",\"kind\":\"stream\",\"target\":\"a\","
	     "\"status\":\"ok\"}",
	     "field 'ts': outside"},
	    {"{\"seq\":1,\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"buffer\",\"target\":\"a\","
	     "\"status\":\"ok\",\"metrics\":{\"dropped_first_seq\":1.5}}",
	     "field 'metrics'"},
	    {"{\"seq\":1,\"ts\":\"2026-01-01T00:00:00Z\",\"kind\":\"buffer\",\"target\":\"a\","
	     "\"status\":\"ok\",\"metrics\":{\"dropped_total\":1e300}}",
	     "field 'metrics'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *doc = cJSON_Parse(cases[i].json);
		assert_non_null(doc);
		struct vw_result r;
		char err[128] = "";
		int rc = vw_result_decode(doc, &r, err, sizeof(err));
		if (rc == 0 || !strstr(err, cases[i].expect))
			fail_msg("case %zu: rc=%d err=\"%s\", expected \"%s\"", i, rc, err,
			         cases[i].expect);
		cJSON_Delete(doc);
	}
}

static void iso_time_round_trips_and_rejects_junk(void **state)
{
	(void)state;
	char s[VW_ISO_LEN];
	int64_t ms;
	vw_time_iso(0, s);
	assert_string_equal(s, "1970-01-01T00:00:00.000Z");
	assert_int_equal(vw_time_parse_iso("2026-11-26T19:11:18.5Z", &ms), 0);
	vw_time_iso(ms, s);
	assert_string_equal(s, "2026-11-26T19:11:18.500Z");
	assert_int_equal(vw_time_parse_iso("2026-11-26T19:11:18+00:00", &ms), 0);
	assert_true(vw_time_parse_iso("2026-11-26T19:11:18", &ms) < 0);
	assert_true(vw_time_parse_iso("2026-11-26T19:11:18+08:00", &ms) < 0);
	assert_true(vw_time_parse_iso("2026-13-01T00:00:00Z", &ms) < 0);
	assert_true(vw_time_parse_iso("", &ms) < 0);
}

/* What the agent measured is what the collector stores: fractions and large non-integers
 * come back as the same double (they were cut to 6 significant digits once). */
static void fractional_metrics_round_trip_exactly(void **state)
{
	(void)state;
	const double values[] = {2.0 / 3, 0.1, 1234567.891, 1e-7, 29.97002997002997, -0.5};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		struct vw_result r, back;
		vw_result_init(&r, VW_KIND_STREAM, "cam");
		r.seq = 1;
		vw_result_set_metric(&r, VW_M_FPS, values[i]);
		vw_result_set_metric(&r, VW_M_BITRATE_KBPS, values[i] * 1e9);
		struct vw_buf b;
		vw_buf_init(&b, 0);
		assert_int_equal(vw_result_encode(&r, &b), 0);
		cJSON *doc = cJSON_Parse(vw_buf_cstr(&b));
		assert_non_null(doc);
		char err[128];
		assert_int_equal(vw_result_decode(doc, &back, err, sizeof(err)), 0);
		double v;
		assert_true(vw_result_get_metric(&back, "fps", &v));
		assert_true(v == values[i]);
		assert_true(vw_result_get_metric(&back, "bitrate_kbps", &v));
		assert_true(v == values[i] * 1e9);
		cJSON_Delete(doc);
		vw_buf_free(&b);
	}
}

/* issue 16 (A): every code the API can show has a zh and en label, once; the JSON the
 * labels route serves parses and holds them all. */
static void every_code_has_a_label(void **state)
{
	(void)state;
	for (int f = 0; f < VW_FAULT_COUNT; f++)
		if (!vw_label_find(VW_LABEL_FAULTS, vw_fault_name((enum vw_fault)f)))
			fail_msg("fault %s has no label", vw_fault_name((enum vw_fault)f));
	static const char *const extra[] = {"not_connected",     "network_not_smooth",
	                                    "picture_not_clear", "floor_not_covered",
	                                    "records_not_kept",  VW_FAULT_SITE_SILENT};
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		assert_non_null(vw_label_find(VW_LABEL_FAULTS, extra[i]));
	for (int k = 0; k < VW_KIND_COUNT; k++)
		assert_non_null(vw_label_find(VW_LABEL_KINDS, vw_kind_name((enum vw_kind)k)));
	assert_non_null(vw_label_find(VW_LABEL_KINDS, "site"));
	for (int st = 0; st < VW_STATUS_COUNT; st++)
		assert_non_null(
		    vw_label_find(VW_LABEL_STATUSES, vw_status_name((enum vw_status)st)));
	assert_non_null(vw_label_find(VW_LABEL_STATUSES, "silent"));
	assert_non_null(vw_label_find(VW_LABEL_SEVERITIES, "critical"));
	assert_string_equal(vw_label_find(VW_LABEL_FAULTS, "frozen")->zh, "画面冻结");
	assert_string_equal(vw_label_find(VW_LABEL_FAULTS, "black")->zh, "黑屏");
	assert_null(vw_label_find(VW_LABEL_FAULTS, "no_such_code"));

	struct vw_buf b;
	vw_buf_init(&b, 1u << 20);
	assert_int_equal(vw_labels_json(&b), 0);
	cJSON *doc = cJSON_Parse(vw_buf_cstr(&b));
	assert_non_null(doc);
	for (int g = 0; g < VW_LABEL_GROUPS; g++) {
		size_t n;
		const struct vw_label *v = vw_labels((enum vw_label_group)g, &n);
		const cJSON *grp = cJSON_GetObjectItemCaseSensitive(doc, vw_label_group_names[g]);
		/* Each code once: the object has as many members as the table has rows. */
		assert_int_equal((size_t)cJSON_GetArraySize(grp), n);
		for (size_t i = 0; i < n; i++) {
			const cJSON *e = cJSON_GetObjectItemCaseSensitive(grp, v[i].code);
			assert_string_equal(cJSON_GetObjectItem(e, "zh")->valuestring, v[i].zh);
			assert_string_equal(cJSON_GetObjectItem(e, "en")->valuestring, v[i].en);
			assert_true(vw_code_valid(v[i].code));
		}
	}
	assert_non_null(cJSON_GetObjectItemCaseSensitive(doc, "outcomes"));
	cJSON_Delete(doc);
	vw_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(encode_then_decode_round_trips),
	    cmocka_unit_test(every_code_has_a_label),
	    cmocka_unit_test(fractional_metrics_round_trip_exactly),
	    cmocka_unit_test(decode_names_the_bad_field),
	    cmocka_unit_test(iso_time_round_trips_and_rejects_junk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
