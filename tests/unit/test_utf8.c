/* The strict UTF-8 check: every rule of RFC 3629 / Unicode Table 3-7, at its boundary. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "utf8.h"

static void ok(const char *s, size_t n)
{
	size_t at = 12345;
	if (vw_utf8_check(s, n, &at) != 0)
		fail_msg("valid sequence refused at byte %zu", at);
}

static void refused_at(const char *s, size_t n, size_t want)
{
	size_t at = 12345;
	assert_int_equal(vw_utf8_check(s, n, &at), -EILSEQ);
	assert_int_equal(at, want);
}

static void shortest_forms_at_every_length_are_valid(void **state)
{
	(void)state;
	ok("", 0);
	ok("hall-1 front", 12);
	ok("\x7f", 1);             /* U+007F, last one-byte */
	ok("\xc2\x80", 2);         /* U+0080, first two-byte */
	ok("\xdf\xbf", 2);         /* U+07FF */
	ok("\xe0\xa0\x80", 3);     /* U+0800, first three-byte */
	ok("\xed\x9f\xbf", 3);     /* U+D7FF, just below the surrogates */
	ok("\xee\x80\x80", 3);     /* U+E000, just above them */
	ok("\xef\xbf\xbf", 3);     /* U+FFFF */
	ok("\xf0\x90\x80\x80", 4); /* U+10000, first four-byte */
	ok("\xf4\x8f\xbf\xbf", 4); /* U+10FFFF, the last code point */
	ok("济南 考场 ①", strlen("济南 考场 ①"));
	assert_true(vw_utf8_valid("Jinan 济南"));
}

static void overlongs_are_refused(void **state)
{
	(void)state;
	refused_at("\xc0\xaf", 2, 0); /* '/' in two bytes */
	refused_at("\xc1\xbf", 2, 0);
	refused_at("a\xe0\x9f\xbf", 4, 1); /* U+07FF in three bytes */
	refused_at("\xe0\x80\xaf", 3, 0);
	refused_at("\xf0\x8f\xbf\xbf", 4, 0); /* U+FFFF in four bytes */
	refused_at("\xc0\x80", 2, 0);         /* "modified UTF-8" NUL */
}

static void surrogates_and_beyond_u10ffff_are_refused(void **state)
{
	(void)state;
	refused_at("\xed\xa0\x80", 3, 0);             /* U+D800 */
	refused_at("ab\xed\xbf\xbf", 5, 2);           /* U+DFFF */
	refused_at("\xed\xa0\xbd\xed\xb8\x80", 6, 0); /* CESU-8 pair */
	refused_at("\xf4\x90\x80\x80", 4, 0);         /* U+110000 */
	refused_at("\xf5\x80\x80\x80", 4, 0);
	refused_at("\xff", 1, 0);
	refused_at("\xfe", 1, 0);
}

static void broken_sequences_are_refused_where_they_start(void **state)
{
	(void)state;
	refused_at("\x80", 1, 0); /* lone continuation */
	refused_at("abc\xbf", 4, 3);
	refused_at("\xc3", 1, 0); /* truncated at the end */
	refused_at("x\xe6\xb5", 3, 1);
	refused_at("\xf0\x9f\x98", 3, 0);
	refused_at("\xc3(", 2, 0); /* continuation missing */
	refused_at("\xe6\xb5(", 3, 0);
	refused_at("\xf0\x9f\x98(", 4, 0);
	refused_at("ok\xe6\xb5\x8e\xc3", 6, 5); /* valid 济 then a truncated one */
}

static void nul_is_refused(void **state)
{
	(void)state;
	refused_at("a\0b", 3, 1);
	refused_at("\0", 1, 0);
	/* a NUL-terminated string cannot hold one, and must still pass the other rules */
	assert_false(vw_utf8_valid("bad \xc0\xaf"));
	assert_true(vw_utf8_valid(""));
}

static void bad_at_may_be_null(void **state)
{
	(void)state;
	assert_int_equal(vw_utf8_check("\xff", 1, NULL), -EILSEQ);
	assert_int_equal(vw_utf8_check("fine", 4, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(shortest_forms_at_every_length_are_valid),
	    cmocka_unit_test(overlongs_are_refused),
	    cmocka_unit_test(surrogates_and_beyond_u10ffff_are_refused),
	    cmocka_unit_test(broken_sequences_are_refused_where_they_start),
	    cmocka_unit_test(nul_is_refused),
	    cmocka_unit_test(bad_at_may_be_null),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
