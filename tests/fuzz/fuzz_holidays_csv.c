/* libFuzzer target: the holidays file ([inspection] holidays, server/core/calendar.c over
 * libcsv). A file either parses whole — its days sorted, unique, each a real date, and working
 * days counted over them end — or fails with an error naming the file (and a line for a row's
 * fault); a failure leaves the calendar empty; nothing leaks (LeakSanitizer). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256 * 1024)
		return 0;
	struct calendar cal;
	char err[256] = "";
	int rc = calendar_parse("fuzz.csv", (const char *)data, size, &cal, err, sizeof(err));
	if (rc == 0) {
		for (size_t i = 0; i < cal.n; i++) {
			char d[CALENDAR_DATE_LEN];
			int32_t back;
			calendar_date_format(cal.days[i].day, d);
			if (calendar_date_parse(d, &back) || back != cal.days[i].day ||
			    (i && cal.days[i].day <= cal.days[i - 1].day))
				abort();
		}
		char out[CALENDAR_DATE_LEN];
		/* even a file of nothing but holidays must let a count end (or refuse it) */
		int r =
		    calendar_add_working_days(&cal, cal.n ? "2026-01-01" : "2026-10-01", 20, out);
		if (r != 0 && r != -EINVAL)
			abort();
	} else if (rc == -EINVAL) {
		if (cal.days || cal.n || strncmp(err, "fuzz.csv", 8) != 0)
			abort();
	} else if (rc != -ENOMEM) {
		abort();
	}
	calendar_free(&cal);
	return 0;
}
