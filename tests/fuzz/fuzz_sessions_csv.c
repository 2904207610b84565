/* libFuzzer target: the exam-session plan parser (server/api/exams_csv.c over libcsv), the
 * 认定计划 an organisation uploads with 'session import'. First byte: 0 without a default
 * org, 1 with one. A plan either parses whole — every session then passes the same checks
 * the API applies, its strings valid UTF-8 — or fails with at least one error, each naming
 * the file and a line; and nothing leaks (LeakSanitizer). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exams_csv.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 256 * 1024)
		return 0;
	const char *org = data[0] & 1 ? "org-fuzz" : NULL;
	struct exams_in *in = NULL;
	size_t n = 0;
	struct exams_errs errs = {0};
	int rc = exams_csv_parse("fuzz.csv", (const char *)data + 1, size - 1, org, &in, &n, &errs);
	if (rc == 0) {
		if (!in || n == 0 || errs.total)
			abort();
		for (size_t i = 0; i < n; i++) {
			enum exams_field f;
			if (exams_in_check(&in[i], &f) || !in[i].org[0] ||
			    !vw_utf8_valid(in[i].code) || !vw_utf8_valid(in[i].occupation) ||
			    !vw_utf8_valid(in[i].rooms) || in[i].line < 2)
				abort();
		}
	} else if (rc == -EINVAL) {
		if (in || n || errs.n == 0 || errs.total < errs.n)
			abort();
		for (size_t i = 0; i < errs.n; i++)
			if (strncmp(errs.msg[i], "fuzz.csv:", 9) != 0)
				abort(); /* an error that does not say where */
	} else if (rc != -ENOMEM) {
		abort();
	}
	free(in);
	exams_errs_free(&errs);
	return 0;
}
