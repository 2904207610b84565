#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The one piece of process-wide state: set once in main before threads start. */
static enum vw_log_level min_level = VW_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void vw_log_set_level(enum vw_log_level level)
{
	min_level = level;
}

int vw_log_enabled(enum vw_log_level level)
{
	return level >= min_level;
}

int vw_log_parse_level(const char *s, enum vw_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum vw_log_level)i;
			return 0;
		}
	}
	return -1;
}

static void log_v(enum vw_log_level level, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2; /* truncated: still one line */
	/* One event, one line: an embedded newline would forge a second event. */
	for (size_t i = (size_t)n; i < len; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[len++] = '\n';
	fwrite(line, 1, len, stderr);
}

void vw_log_write(enum vw_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_v(level, fmt, ap);
	va_end(ap);
}

void vw_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_v(VW_LOG_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

/* The escaped form of one byte into p (at most 4 bytes); its length. */
static size_t escape_byte(unsigned char c, char *p)
{
	static const char hex[] = "0123456789abcdef";
	if (c == '"' || c == '\\') {
		p[0] = '\\';
		p[1] = (char)c;
		return 2;
	}
	if (c < 0x20 || c >= 0x7f) {
		p[0] = '\\';
		p[1] = 'x';
		p[2] = hex[c >> 4];
		p[3] = hex[c & 15];
		return 4;
	}
	p[0] = (char)c;
	return 1;
}

const char *vw_log_escape(const char *s, char *out, size_t outlen)
{
	char piece[4];
	size_t need = 0, o = 0;
	if (!s)
		s = "";
	/* Room for the closing quote and the NUL. */
	size_t limit = outlen - 2;
	for (const char *q = s; *q; q++)
		need += escape_byte((unsigned char)*q, piece);
	int cut = 1 + need > limit;
	if (cut)
		limit -= 3; /* and for "..." */
	out[o++] = '"';
	for (; *s; s++) {
		size_t n = escape_byte((unsigned char)*s, piece);
		if (o + n > limit)
			break; /* never half an escape */
		memcpy(out + o, piece, n);
		o += n;
	}
	if (cut) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

int vw_log_limit_ok(struct vw_log_limit *l, long long now_ms, unsigned *suppressed)
{
	if (now_ms - l->window_ms >= 1000) {
		l->window_ms = now_ms;
		l->count = 0;
	}
	if (++l->count > VW_LOG_BURST) {
		l->suppressed++;
		return 0;
	}
	*suppressed = l->suppressed;
	l->suppressed = 0;
	return 1;
}
