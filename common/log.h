/* log: one line per event to stderr, "ts level=.. event=.. key=value ...".
 * Thread-safe (each line is written with a single fwrite under stdio's lock).
 * The level is checked before formatting; callers never log secrets. */
#ifndef VW_LOG_H
#define VW_LOG_H

#include <stddef.h>

enum vw_log_level { VW_LOG_DEBUG, VW_LOG_INFO, VW_LOG_WARN, VW_LOG_ERROR };

void vw_log_set_level(enum vw_log_level level);
int vw_log_parse_level(const char *s, enum vw_log_level *out);
int vw_log_enabled(enum vw_log_level level);
void vw_log_write(enum vw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A string someone else supplied (a header, a name), made safe for a log line or an audit
 * detail: written to out as one double-quoted value, \" and \\ escaped and every byte that is
 * not printable ASCII as \xNN, so it can neither end its field nor forge another nor carry a
 * terminal escape. Cut to fit outlen (ending ...", still quoted); NULL logs as "". outlen
 * must be at least 8. Returns out. */
const char *vw_log_escape(const char *s, char *out, size_t outlen);
/* Start-up only: log at error level and exit(1). */
void vw_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A flood of one event (refused peers, say) must not become a flood of lines: at most
 * VW_LOG_BURST lines per second per limiter; the next line let through says how many were
 * suppressed. Not thread-safe: one limiter per thread (the loop's). */
#define VW_LOG_BURST 20
struct vw_log_limit {
	long long window_ms;
	unsigned count, suppressed;
};
/* 1: log this one (*suppressed = lines dropped since the last one let through); 0: drop it. */
int vw_log_limit_ok(struct vw_log_limit *l, long long now_ms, unsigned *suppressed);

#define VW_LOG_(lvl, ...)                                                                          \
	do {                                                                                       \
		if (vw_log_enabled(lvl))                                                           \
			vw_log_write(lvl, __VA_ARGS__);                                            \
	} while (0)
#define log_debug(...) VW_LOG_(VW_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) VW_LOG_(VW_LOG_INFO, __VA_ARGS__)
#define log_warn(...) VW_LOG_(VW_LOG_WARN, __VA_ARGS__)
#define log_error(...) VW_LOG_(VW_LOG_ERROR, __VA_ARGS__)

#endif
