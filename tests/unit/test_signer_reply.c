/* The parent's reading of the signer's reply numbers (signer_json_int): id, rc and
 * not_after_ms are converted only when finite, integral and in range, so a broken or hostile
 * signer's 1e300, -1, 2^32, 0.5 or inf is a protocol error, never an undefined cast. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "signer.h"

static int parse(const char *json, const char *k, int64_t min, int64_t max, int64_t *out)
{
	cJSON *o = cJSON_Parse(json);
	assert_non_null(o);
	int rc = signer_json_int(o, k, min, max, -7, out);
	cJSON_Delete(o);
	return rc;
}

static void in_range_integers_convert(void **state)
{
	(void)state;
	int64_t v = 0;
	assert_int_equal(parse("{\"id\":4294967295}", "id", 0, UINT32_MAX, &v), 0);
	assert_int_equal(v, 4294967295LL);
	assert_int_equal(parse("{\"rc\":-114}", "rc", -4095, 0, &v), 0);
	assert_int_equal(v, -114);
	assert_int_equal(parse("{\"t\":1893456000000}", "t", 0, INT64_C(1) << 53, &v), 0);
	assert_int_equal(v, 1893456000000LL);
	assert_int_equal(parse("{}", "rc", -4095, 0, &v), 0);
	assert_int_equal(v, -7); /* absent: the default */
}

static void out_of_range_fractional_and_infinite_are_refused(void **state)
{
	(void)state;
	int64_t v = 99;
	static const char *const bad_id[] = {
	    "{\"id\":4294967296}", "{\"id\":-1}",    "{\"id\":1e300}", "{\"id\":-1e300}",
	    "{\"id\":0.5}",        "{\"id\":1e400}", "{\"id\":\"1\"}", "{\"id\":null}",
	};
	for (size_t i = 0; i < sizeof(bad_id) / sizeof(bad_id[0]); i++)
		if (parse(bad_id[i], "id", 0, UINT32_MAX, &v) != -EPROTO)
			fail_msg("accepted %s", bad_id[i]);
	assert_int_equal(parse("{\"rc\":5}", "rc", -4095, 0, &v), -EPROTO);
	assert_int_equal(parse("{\"rc\":-1e10}", "rc", -4095, 0, &v), -EPROTO);
	assert_int_equal(parse("{\"t\":1e19}", "t", 0, INT64_C(1) << 53, &v), -EPROTO);
	assert_int_equal(v, 99); /* untouched on refusal */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(in_range_integers_convert),
	    cmocka_unit_test(out_of_range_fractional_and_infinite_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
