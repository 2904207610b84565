/* calendar: weekends rest unless listed workday (调休上班), listed holidays rest, working days
 * counted after the start date, the shipped holidays-cn.csv read as the State Council set
 * 2025 and 2026, and a bad file named by file:line: column. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "calendar.h"
#include "testdir.h"
#include "vtime.h"

static const char mini[] = "\xEF\xBB\xBF"
                           "date,kind,name\n"
                           "# a comment line\n"
                           "2026-10-01,holiday,国庆节\n"
                           "2026-10-02,holiday,国庆节\n"
                           "2026-10-03,holiday,国庆节\n"
                           "2026-10-04,holiday,国庆节\n"
                           "2026-10-05,holiday,国庆节\n"
                           "2026-10-06,holiday,国庆节\n"
                           "2026-10-07,holiday,国庆节\n"
                           "2026-09-20,workday,\"国庆节调休上班\"\r\n"
                           "\n"
                           "2026-10-10,workday,国庆节调休上班";

static void load_mini(struct calendar *cal)
{
	char err[256] = "";
	assert_int_equal(calendar_parse("mini.csv", mini, sizeof(mini) - 1, cal, err, sizeof(err)),
	                 0);
	assert_int_equal(cal->n, 9);
}

static void test_weekends_rest_without_a_file(void **st)
{
	(void)st;
	struct calendar cal;
	char err[64];
	assert_int_equal(calendar_load("", &cal, err, sizeof(err)), 0);
	assert_int_equal(calendar_is_working(&cal, "2026-12-05"), 0); /* Saturday */
	assert_int_equal(calendar_is_working(&cal, "2026-12-06"), 0); /* Sunday */
	assert_int_equal(calendar_is_working(&cal, "2026-12-07"), 1); /* Monday */
	assert_int_equal(calendar_is_working(&cal, "2026-12-11"), 1); /* Friday */
	assert_int_equal(calendar_is_working(&cal, "2026-02-30"), -EINVAL);
	assert_int_equal(calendar_is_working(&cal, "2026-1-05"), -EINVAL);
	char out[CALENDAR_DATE_LEN];
	/* Friday + 1 = Monday; Friday + 0 = Friday; + 5 = next Friday. */
	assert_int_equal(calendar_add_working_days(&cal, "2026-12-04", 1, out), 0);
	assert_string_equal(out, "2026-12-07");
	assert_int_equal(calendar_add_working_days(&cal, "2026-12-04", 0, out), 0);
	assert_string_equal(out, "2026-12-04");
	assert_int_equal(calendar_add_working_days(&cal, "2026-12-04", 5, out), 0);
	assert_string_equal(out, "2026-12-11");
	/* Leap day and across a year. */
	assert_int_equal(calendar_add_working_days(&cal, "2028-02-28", 1, out), 0);
	assert_string_equal(out, "2028-02-29");
	assert_int_equal(calendar_add_working_days(&cal, "2026-12-31", 1, out), 0);
	assert_string_equal(out, "2027-01-01");
	assert_int_equal(calendar_add_working_days(&cal, "2026-12-31", -1, out), -EINVAL);
	calendar_free(&cal);
}

static void test_holidays_rest_and_makeup_days_work(void **st)
{
	(void)st;
	struct calendar cal;
	load_mini(&cal);
	assert_int_equal(calendar_is_working(&cal, "2026-10-01"), 0); /* Thursday, holiday */
	assert_int_equal(calendar_is_working(&cal, "2026-10-07"), 0); /* Wednesday, holiday */
	assert_int_equal(calendar_is_working(&cal, "2026-10-08"), 1);
	assert_int_equal(calendar_is_working(&cal, "2026-09-20"), 1); /* Sunday, 调休上班 */
	assert_int_equal(calendar_is_working(&cal, "2026-10-10"), 1); /* Saturday, 调休上班 */
	assert_int_equal(calendar_is_working(&cal, "2026-10-11"), 0); /* Sunday */
	char out[CALENDAR_DATE_LEN];
	/* Saturday 9-19 + 1: the make-up Sunday 9-20. */
	assert_int_equal(calendar_add_working_days(&cal, "2026-09-19", 1, out), 0);
	assert_string_equal(out, "2026-09-20");
	calendar_free(&cal);
	calendar_free(&cal); /* twice is harmless */
}

static void test_twenty_working_days_across_national_day(void **st)
{
	(void)st;
	struct calendar cal;
	load_mini(&cal);
	char out[CALENDAR_DATE_LEN];
	/* Mon 9-28: 9-29, 9-30 (2); 10-1..7 off; 10-8, 10-9, Sat 10-10 (5); 10-12..16 (10);
	 * 10-19..23 (15); 10-26..30 (20). */
	assert_int_equal(calendar_add_working_days(&cal, "2026-09-28", 20, out), 0);
	assert_string_equal(out, "2026-10-30");
	/* Weekends only, the same count ends a week and a day earlier... */
	struct calendar none = {0};
	assert_int_equal(calendar_add_working_days(&none, "2026-09-28", 20, out), 0);
	assert_string_equal(out, "2026-10-26");
	/* inspect_due: the slot's local date (16:30 UTC on 9-27 is 00:30 on 9-28 in Jinan). */
	int64_t slot;
	assert_int_equal(vw_time_parse_iso("2026-09-27T16:30:00Z", &slot), 0);
	char due[CALENDAR_DATE_LEN];
	assert_int_equal(inspect_due(&cal, slot, 0, 20, due), 0);
	assert_string_equal(due, "2026-10-30");
	/* no slot: the execute date */
	int64_t exec;
	assert_int_equal(vw_time_parse_iso("2026-09-28T02:00:00Z", &exec), 0);
	assert_int_equal(inspect_due(&cal, 0, exec, 20, due), 0);
	assert_string_equal(due, "2026-10-30");
	assert_int_equal(inspect_due(&cal, 0, 0, 20, due), -EINVAL);
	/* overdue: only after the due day, local, and never once published */
	int64_t t;
	assert_int_equal(vw_time_parse_iso("2026-10-30T15:59:59Z", &t), 0); /* 23:59:59 local */
	assert_int_equal(inspect_overdue("2026-10-30", 0, t), 0);
	assert_int_equal(vw_time_parse_iso("2026-10-30T16:00:00Z", &t), 0); /* 10-31 00:00 */
	assert_int_equal(inspect_overdue("2026-10-30", 0, t), 1);
	assert_int_equal(inspect_overdue("2026-10-30", 1, t), 0);
	calendar_free(&cal);
}

static void test_shipped_file_matches_the_state_council_notices(void **st)
{
	(void)st;
	struct calendar cal;
	char err[256] = "";
	int rc = calendar_load(VW_SOURCE_DIR "/config/holidays-cn.csv", &cal, err, sizeof(err));
	if (rc)
		fail_msg("%s", err);
	static const struct {
		const char *date;
		int working;
	} want[] = {
	    {"2025-01-01", 0}, {"2025-01-26", 1}, {"2025-01-28", 0}, {"2025-02-04", 0},
	    {"2025-02-05", 1}, {"2025-02-08", 1}, {"2025-04-27", 1}, {"2025-05-05", 0},
	    {"2025-06-02", 0}, {"2025-09-28", 1}, {"2025-10-08", 0}, {"2025-10-11", 1},
	    {"2026-01-02", 0}, {"2026-01-04", 1}, {"2026-02-14", 1}, {"2026-02-15", 0},
	    {"2026-02-23", 0}, {"2026-02-24", 1}, {"2026-02-28", 1}, {"2026-04-06", 0},
	    {"2026-05-05", 0}, {"2026-05-09", 1}, {"2026-06-19", 0}, {"2026-09-20", 1},
	    {"2026-09-25", 0}, {"2026-10-07", 0}, {"2026-10-10", 1}, {"2026-12-07", 1},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (calendar_is_working(&cal, want[i].date) != want[i].working)
			fail_msg("%s: expected %s", want[i].date,
			         want[i].working ? "working" : "rest");
	/* 春节 2026: Fri 2-13 + 1 working day = the make-up Saturday 2-14; then + 2 = 2-24. */
	char out[CALENDAR_DATE_LEN];
	assert_int_equal(calendar_add_working_days(&cal, "2026-02-13", 2, out), 0);
	assert_string_equal(out, "2026-02-24");
	calendar_free(&cal);
}

static void bad(const char *text, const char *want_err)
{
	struct calendar cal = {0};
	char err[256] = "";
	assert_int_equal(calendar_parse("h.csv", text, strlen(text), &cal, err, sizeof(err)),
	                 -EINVAL);
	assert_string_equal(err, want_err);
	assert_null(cal.days);
	assert_int_equal(cal.n, 0);
}

static void test_bad_files_name_file_line_and_column(void **st)
{
	(void)st;
	bad("2026-10-01,holiday,a\n2026-13-01,holiday,b\n",
	    "h.csv:2: date: not a date (YYYY-MM-DD)");
	bad("date,kind,name\n2026-10-01,holiday,a\n\n2026-10-02,off,b\n",
	    "h.csv:4: kind: must be holiday or workday");
	bad("2026-10-01\n", "h.csv:1: row: expected 2 or 3 fields: date,holiday|workday,name");
	bad("2026-10-01,holiday,a,extra\n",
	    "h.csv:1: row: expected 2 or 3 fields: date,holiday|workday,name");
	bad("2026-10-01,holiday,a\n2026-10-01,workday,b\n",
	    "h.csv: date: 2026-10-01 is listed twice");
	bad("2026-10-01,holiday,\"unterminated\n",
	    "h.csv:1: row: error parsing data while strict checking enabled");
	bad("2025-02-29,holiday,x", "h.csv:1: date: not a date (YYYY-MM-DD)");
	/* a missing file: errno, named */
	char dir[64], path[128], err[256] = "";
	assert_int_equal(testdir_make(dir, sizeof(dir), "calendar"), 0);
	snprintf(path, sizeof(path), "%s/none.csv", dir);
	struct calendar cal;
	assert_int_equal(calendar_load(path, &cal, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "none.csv: "));
	/* and a real file read through calendar_load */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("2026-10-01,holiday,a\n2026-10-0x,holiday,b\n", f);
	fclose(f);
	assert_int_equal(calendar_load(path, &cal, err, sizeof(err)), -EINVAL);
	char want[200];
	snprintf(want, sizeof(want), "%s:2: date: not a date (YYYY-MM-DD)", path);
	assert_string_equal(err, want);
	testdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_weekends_rest_without_a_file),
	    cmocka_unit_test(test_holidays_rest_and_makeup_days_work),
	    cmocka_unit_test(test_twenty_working_days_across_national_day),
	    cmocka_unit_test(test_shipped_file_matches_the_state_council_notices),
	    cmocka_unit_test(test_bad_files_name_file_line_and_column),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
