/* calendar: the working-day calendar for the results' deadline (一公开: results published
 * within N working days of the inspection). Weekends are rest days unless the holidays file
 * lists them as `workday` (调休上班); days it lists as `holiday` are rest days. Dates are local
 * (UTC+8, as the rest of the API's local dates) "YYYY-MM-DD" text.
 * Pure apart from calendar_load's one file read; any thread. The caller owns the struct:
 * calendar_free releases what calendar_load allocated (and accepts a zeroed struct). */
#ifndef VW_CALENDAR_H
#define VW_CALENDAR_H

#include <stddef.h>
#include <stdint.h>

#define CALENDAR_DATE_LEN 11 /* "YYYY-MM-DD" + NUL */

struct calendar_day {
	int32_t day; /* days since 1970-01-01 */
	int working; /* 1: workday (调休上班), 0: holiday */
};

struct calendar {
	struct calendar_day *days; /* sorted by day, no duplicates */
	size_t n;
};

/* Reads path (CSV: `YYYY-MM-DD,holiday|workday,name`; UTF-8 with or without BOM; an optional
 * header row `date,kind,name` or `日期,类型,名称`; lines starting with '#' are comments).
 * path NULL or "": an empty calendar (weekends only). 0, or -EINVAL (err: "file:line: column:
 * what"), -errno of the read. All or nothing: on failure cal is empty. */
int calendar_load(const char *path, struct calendar *cal, char *err, size_t errlen);
/* The same from memory; name is what errors call the file. */
int calendar_parse(const char *name, const char *data, size_t len, struct calendar *cal, char *err,
                   size_t errlen);
void calendar_free(struct calendar *cal);

/* "YYYY-MM-DD" (a real date) to days since the epoch and back. 0 or -EINVAL. */
int calendar_date_parse(const char *s, int32_t *day);
void calendar_date_format(int32_t day, char out[CALENDAR_DATE_LEN]);
/* The local (UTC+8) date of a UTC ms instant. */
int32_t calendar_day_of_ms(int64_t ms);

/* 1 working, 0 rest day, -EINVAL not a date. */
int calendar_is_working(const struct calendar *cal, const char *date);
int calendar_day_working(const struct calendar *cal, int32_t day);
/* The n-th working day after date (date itself is not counted; n = 0 gives date). 0 or
 * -EINVAL (bad date, n < 0 or > 3660). */
int calendar_add_working_days(const struct calendar *cal, const char *date, long n,
                              char out[CALENDAR_DATE_LEN]);

/* An inspection's publication deadline: the slot's local date (slot_start_ms > 0) or else the
 * draw's execute date, plus days working days. 0, or -EINVAL (neither time known, bad days). */
int inspect_due(const struct calendar *cal, int64_t slot_start_ms, int64_t executed_ms, long days,
                char due[CALENDAR_DATE_LEN]);
/* 1 when an unpublished result is past due: today's local date (now_ms) is after due. */
int inspect_overdue(const char *due, int published, int64_t now_ms);

#endif
