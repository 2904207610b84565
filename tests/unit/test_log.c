/* vw_log_escape: a peer's string becomes one quoted log value that cannot end its field, forge
 * another key=value, start a new line or carry a terminal escape, and is cut to fit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"

static void plain_text_is_quoted_as_it_is(void **state)
{
	(void)state;
	char out[64];
	assert_string_equal(vw_log_escape("https://a.example:8443", out, sizeof(out)),
	                    "\"https://a.example:8443\"");
	assert_string_equal(vw_log_escape("", out, sizeof(out)), "\"\"");
	assert_string_equal(vw_log_escape(NULL, out, sizeof(out)), "\"\"");
}

static void quotes_controls_and_high_bytes_are_escaped(void **state)
{
	(void)state;
	char out[128];
	/* a forged field: the quote cannot end the value */
	assert_string_equal(vw_log_escape("x\" reason=ok", out, sizeof(out)),
	                    "\"x\\\" reason=ok\"");
	assert_string_equal(vw_log_escape("a\\b", out, sizeof(out)), "\"a\\\\b\"");
	assert_string_equal(vw_log_escape("\x1b[31mred\ttab\r\n", out, sizeof(out)),
	                    "\"\\x1b[31mred\\x09tab\\x0d\\x0a\"");
	assert_string_equal(vw_log_escape("\xc3\xa9\x7f", out, sizeof(out)), "\"\\xc3\\xa9\\x7f\"");
}

static void long_values_are_cut_between_escapes(void **state)
{
	(void)state;
	char out[12];
	/* exactly fits: 9 characters, 2 quotes, the NUL */
	assert_string_equal(vw_log_escape("123456789", out, sizeof(out)), "\"123456789\"");
	assert_string_equal(vw_log_escape("1234567890", out, sizeof(out)), "\"123456...\"");
	/* an escape that does not fit whole is left out, never halved */
	assert_string_equal(vw_log_escape("12345\x01zz", out, sizeof(out)), "\"12345...\"");
	char big[4096];
	memset(big, '\x01', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	char line[64];
	vw_log_escape(big, line, sizeof(line));
	assert_true(strlen(line) < sizeof(line));
	assert_string_equal(line + strlen(line) - 4, "...\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(plain_text_is_quoted_as_it_is),
	    cmocka_unit_test(quotes_controls_and_high_bytes_are_escaped),
	    cmocka_unit_test(long_values_are_cut_between_escapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
