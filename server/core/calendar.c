#include "calendar.h"

#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Local dates are China Standard Time, as the rest of the API's (exams_csv.h). */
#define LOCAL_OFFSET_MS (8LL * 3600000)
/* Ten years of working days: far beyond any deadline a bureau sets (20 by practice). */
#define MAX_WORKING_DAYS 3660
/* A holidays file lists a few dozen days a year; this bounds a wrong file, not a real one. */
#define MAX_FILE_BYTES (4u << 20)

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int32_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int era = (y >= 0 ? y : y - 399) / 400;
	int yoe = y - era * 400;
	int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int32_t z, int *y, int *m, int *d)
{
	z += 719468;
	int era = (z >= 0 ? z : z - 146096) / 146097;
	int doe = z - era * 146097;
	int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp + (mp < 10 ? 3 : -9);
	*y = yoe + era * 400 + (*m <= 2);
}

int calendar_date_parse(const char *s, int32_t *day)
{
	if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -EINVAL;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -EINVAL;
	int y = atoi(s), m = (s[5] - '0') * 10 + (s[6] - '0'), d = (s[8] - '0') * 10 + (s[9] - '0');
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return -EINVAL;
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (m == 2 && d == 29 && !leap)
		return -EINVAL;
	*day = days_from_civil(y, m, d);
	return 0;
}

void calendar_date_format(int32_t day, char out[CALENDAR_DATE_LEN])
{
	int y, m, d;
	civil_from_days(day, &y, &m, &d);
	char txt[48]; /* room for what the compiler cannot rule out */
	snprintf(txt, sizeof(txt), "%04d-%02d-%02d", y, m, d);
	snprintf(out, CALENDAR_DATE_LEN, "%.10s", txt);
}

int32_t calendar_day_of_ms(int64_t ms)
{
	int64_t local = ms + LOCAL_OFFSET_MS;
	return (int32_t)(local >= 0 ? local / 86400000 : (local - 86399999) / 86400000);
}

static const struct calendar_day *find(const struct calendar *cal, int32_t day)
{
	size_t lo = 0, hi = cal ? cal->n : 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cal->days[mid].day == day)
			return &cal->days[mid];
		if (cal->days[mid].day < day)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int calendar_day_working(const struct calendar *cal, int32_t day)
{
	const struct calendar_day *e = find(cal, day);
	if (e)
		return e->working;
	int wd = (int)(((day % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday; 0 = Sunday */
	return wd != 0 && wd != 6;
}

int calendar_is_working(const struct calendar *cal, const char *date)
{
	int32_t day;
	if (calendar_date_parse(date, &day))
		return -EINVAL;
	return calendar_day_working(cal, day);
}

static int add_days(const struct calendar *cal, int32_t day, long n, char out[CALENDAR_DATE_LEN])
{
	if (n < 0 || n > MAX_WORKING_DAYS)
		return -EINVAL;
	/* A calendar that lists every day as a holiday would never end: bounded by the 7×
	 * worst case of weekends plus every listed day. */
	int64_t limit = 7 * (int64_t)n + (int64_t)(cal ? cal->n : 0) + 7;
	for (long left = n; left > 0; limit--) {
		if (limit <= 0)
			return -EINVAL;
		day++;
		if (calendar_day_working(cal, day))
			left--;
	}
	calendar_date_format(day, out);
	return 0;
}

int calendar_add_working_days(const struct calendar *cal, const char *date, long n,
                              char out[CALENDAR_DATE_LEN])
{
	int32_t day;
	if (calendar_date_parse(date, &day))
		return -EINVAL;
	return add_days(cal, day, n, out);
}

int inspect_due(const struct calendar *cal, int64_t slot_start_ms, int64_t executed_ms, long days,
                char due[CALENDAR_DATE_LEN])
{
	int64_t from = slot_start_ms > 0 ? slot_start_ms : executed_ms;
	if (from <= 0) {
		due[0] = '\0';
		return -EINVAL;
	}
	return add_days(cal, calendar_day_of_ms(from), days, due);
}

int inspect_overdue(const char *due, int published, int64_t now_ms)
{
	int32_t d;
	if (published || calendar_date_parse(due, &d))
		return 0;
	return calendar_day_of_ms(now_ms) > d;
}

/* --- the file ------------------------------------------------------------------------------ */

struct load {
	const char *name;
	char *err;
	size_t errlen;
	size_t line; /* of the row being read */
	int field, failed, header_seen, rows;
	char date[16], kind[16];
	int date_bad, kind_bad;
	struct calendar_day *v;
	size_t n, cap;
};

static void fail(struct load *l, const char *column, const char *what)
{
	if (!l->failed)
		snprintf(l->err, l->errlen, "%s:%zu: %s: %s", l->name, l->line, column, what);
	l->failed = 1;
}

static void on_field(void *s, size_t len, void *p)
{
	struct load *l = p;
	const char *f = s;
	if (l->field == 0) {
		l->date_bad = len >= sizeof(l->date);
		snprintf(l->date, sizeof(l->date), "%.*s", (int)(len < 15 ? len : 15), f);
	} else if (l->field == 1) {
		l->kind_bad = len >= sizeof(l->kind);
		snprintf(l->kind, sizeof(l->kind), "%.*s", (int)(len < 15 ? len : 15), f);
	}
	l->field++;
}

static int cmp_day(const void *a, const void *b)
{
	const struct calendar_day *x = a, *y = b;
	return (x->day > y->day) - (x->day < y->day);
}

static void on_row(int c, void *p)
{
	(void)c;
	struct load *l = p;
	int fields = l->field;
	l->field = 0;
	if (l->failed)
		return;
	if (fields == 1 && l->date[0] == '\0')
		return; /* a blank line */
	if (!l->header_seen && l->rows == 0 &&
	    (strcmp(l->date, "date") == 0 || strcmp(l->date, "日期") == 0)) {
		l->header_seen = 1;
		return;
	}
	l->rows++;
	if (fields < 2 || fields > 3) {
		fail(l, "row", "expected 2 or 3 fields: date,holiday|workday,name");
		return;
	}
	int32_t day;
	if (l->date_bad || calendar_date_parse(l->date, &day)) {
		fail(l, "date", "not a date (YYYY-MM-DD)");
		return;
	}
	int working;
	if (!l->kind_bad && strcmp(l->kind, "holiday") == 0)
		working = 0;
	else if (!l->kind_bad && strcmp(l->kind, "workday") == 0)
		working = 1;
	else {
		fail(l, "kind", "must be holiday or workday");
		return;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct calendar_day *v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			fail(l, "row", "out of memory");
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (struct calendar_day){.day = day, .working = working};
}

int calendar_parse(const char *name, const char *data, size_t len, struct calendar *cal, char *err,
                   size_t errlen)
{
	*cal = (struct calendar){0};
	struct load l = {.name = name, .err = err, .errlen = errlen};
	struct csv_parser p;
	if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL)) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -ENOMEM;
	}
	if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
		data += 3, len -= 3;
	/* Fed one line at a time, so a row's errors name its line; '#' lines are comments
	 * (the file's source notes), skipped before libcsv sees them. */
	size_t off = 0;
	for (l.line = 1; off < len && !l.failed; l.line++) {
		const char *nl = memchr(data + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (data + off)) + 1 : len - off;
		if (memchr(data + off, '\0', n))
			fail(&l, "row", "NUL byte in the file");
		else if (data[off] != '#' &&
		         csv_parse(&p, data + off, n, on_field, on_row, &l) != n)
			fail(&l, "row", csv_strerror(csv_error(&p)));
		off += n;
	}
	if (!l.failed) {
		l.line--;
		if (csv_fini(&p, on_field, on_row, &l))
			fail(&l, "row", csv_strerror(csv_error(&p)));
	}
	csv_free(&p);
	if (!l.failed && l.n > 1) {
		qsort(l.v, l.n, sizeof(*l.v), cmp_day);
		for (size_t i = 1; i < l.n; i++)
			if (l.v[i].day == l.v[i - 1].day) {
				char d[CALENDAR_DATE_LEN];
				calendar_date_format(l.v[i].day, d);
				snprintf(err, errlen, "%s: date: %s is listed twice", name, d);
				l.failed = 1;
				break;
			}
	}
	if (l.failed) {
		free(l.v);
		return -EINVAL;
	}
	cal->days = l.v;
	cal->n = l.n;
	return 0;
}

int calendar_load(const char *path, struct calendar *cal, char *err, size_t errlen)
{
	*cal = (struct calendar){0};
	if (!path || !*path)
		return 0;
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	char *data = malloc(MAX_FILE_BYTES + 1);
	size_t len = data ? fread(data, 1, MAX_FILE_BYTES + 1, f) : 0;
	int rerr = ferror(f);
	fclose(f);
	int rc;
	if (!data) {
		snprintf(err, errlen, "%s: out of memory", path);
		rc = -ENOMEM;
	} else if (rerr) {
		snprintf(err, errlen, "%s: read error", path);
		rc = -EIO;
	} else if (len > MAX_FILE_BYTES) {
		snprintf(err, errlen, "%s: larger than %u bytes", path, MAX_FILE_BYTES);
		rc = -EFBIG;
	} else
		rc = calendar_parse(path, data, len, cal, err, errlen);
	free(data);
	return rc;
}

void calendar_free(struct calendar *cal)
{
	if (!cal)
		return;
	free(cal->days);
	cal->days = NULL;
	cal->n = 0;
}
