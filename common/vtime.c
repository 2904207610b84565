#include "vtime.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t vw_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t vw_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* n decimal digits of v at p, zero-padded (v < 10^n). */
static char *put_digits(char *p, unsigned v, int n)
{
	for (int i = n - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + n;
}

/* By hand rather than snprintf: the sites list formats one per site, and printf's
 * machinery was most of what the list cost beyond its read (perf, docs/BENCHMARKS.md
 * "Feed"). */
void vw_time_iso(int64_t ms, char out[VW_ISO_LEN])
{
	time_t sec = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int frac = (int)(ms - (int64_t)sec * 1000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	char *p = put_digits(out, (unsigned)(tm.tm_year + 1900) % 10000u, 4);
	*p++ = '-';
	p = put_digits(p, (unsigned)(tm.tm_mon + 1) % 100u, 2);
	*p++ = '-';
	p = put_digits(p, (unsigned)tm.tm_mday % 100u, 2);
	*p++ = 'T';
	p = put_digits(p, (unsigned)tm.tm_hour % 100u, 2);
	*p++ = ':';
	p = put_digits(p, (unsigned)tm.tm_min % 100u, 2);
	*p++ = ':';
	p = put_digits(p, (unsigned)tm.tm_sec % 100u, 2);
	*p++ = '.';
	p = put_digits(p, (unsigned)frac % 1000u, 3);
	*p++ = 'Z';
	*p = '\0';
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

int vw_time_parse_iso(const char *s, int64_t *ms)
{
	int y, mo, d, h, mi, sec, frac = 0;
	const char *p = s;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != 'T' && *p != ' '))
		return -EINVAL;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &sec))
		return -EINVAL;
	if (*p == '.') {
		p++;
		int n = 0, scale = 100;
		while (isdigit((unsigned char)*p)) {
			if (n++ < 3) {
				frac += (*p - '0') * scale;
				scale /= 10;
			}
			p++;
		}
		if (n == 0)
			return -EINVAL;
	}
	if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	struct tm tm = {0};
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	/* timegm normalises 31 Feb into March: refuse dates that moved. */
	struct tm back;
	gmtime_r(&t, &back);
	if (back.tm_mday != d && sec != 60)
		return -EINVAL;
	*ms = (int64_t)t * 1000 + frac;
	return 0;
}

int vw_time_parse_any(const char *s, int64_t *ms)
{
	if (vw_time_parse_iso(s, ms) == 0)
		return 0;
	struct tm tm = {0};
	const char *end = strptime(s, "%Y-%m-%d %H:%M", &tm);
	if (end && *end == ':')
		end = strptime(end, ":%S", &tm);
	if (!end || *end)
		return -EINVAL;
	tm.tm_isdst = -1;
	time_t t = mktime(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*ms = (int64_t)t * 1000;
	return 0;
}
