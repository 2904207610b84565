/* csvout: every CSV the server writes quotes each field with libcsv and turns a value a
 * spreadsheet would evaluate (first byte = + - @ TAB CR) into text with a leading ';
 * other values, numbers included, pass unchanged. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "csvout.h"

static void row_is(const char *const *f, size_t n, const char *want)
{
	struct vw_buf b;
	vw_buf_init(&b, 0);
	csvout_row(&b, f, n);
	assert_int_equal(b.err, 0);
	assert_string_equal(vw_buf_cstr(&b), want);
	vw_buf_free(&b);
}

static void test_csvout_formulas_become_text(void **st)
{
	(void)st;
	const char *const f[] = {
	    "=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"};
	row_is(f, 6,
	       "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",\"'+1+1\",\"'-2+3\",\"'@SUM(A1)\","
	       "\"'\tcmd\",\"'\rcmd\"\r\n");
}

static void test_csvout_plain_values_pass_unchanged(void **st)
{
	(void)st;
	const char *const f[] = {"site-a", "12.50", "", "a=b", "济南"};
	row_is(f, 5, "\"site-a\",\"12.50\",\"\",\"a=b\",\"济南\"\r\n");
	assert_int_equal(csvout_is_formula(""), 0);
	assert_int_equal(csvout_is_formula(NULL), 0);
	assert_int_equal(csvout_is_formula(" =1"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_csvout_formulas_become_text),
	    cmocka_unit_test(test_csvout_plain_values_pass_unchanged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
