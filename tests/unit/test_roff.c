/* roff escaping of the man pages' generated text: a help string cannot start a request,
 * lose a backslash or turn an option's hyphens into typographic ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "roff.h"

static char *render(void (*fn)(FILE *, const char *), const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	fn(f, s);
	fclose(f);
	return buf;
}

static void text_wrapper(FILE *f, const char *s)
{
	vw_roff_text(f, s);
}

static void bold_wrapper(FILE *f, const char *s)
{
	vw_roff_req(f, "B", s);
}

static void text_is_escaped(void **state)
{
	(void)state;
	char *o = render(text_wrapper, ".SH not a request\n'also not\na\\b --x\nmid.dot");
	assert_string_equal(o, "\\&.SH not a request\n\\&'also not\na\\eb \\-\\-x\nmid.dot");
	free(o);
}

static void request_argument_is_quoted(void **state)
{
	(void)state;
	char *o = render(bold_wrapper, "say \"hi\" --to a\\b");
	assert_string_equal(o, ".B \"say \\(dqhi\\(dq \\-\\-to a\\eb\"\n");
	free(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(text_is_escaped),
	    cmocka_unit_test(request_argument_is_quoted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
