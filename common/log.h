/* log: one line per event to stderr, "ts level=.. event=.. key=value ...".
 * Thread-safe (each line is written with a single fwrite under stdio's lock).
 * The level is checked before formatting; callers never log secrets. */
#ifndef VW_LOG_H
#define VW_LOG_H

enum vw_log_level { VW_LOG_DEBUG, VW_LOG_INFO, VW_LOG_WARN, VW_LOG_ERROR };

void vw_log_set_level(enum vw_log_level level);
int vw_log_parse_level(const char *s, enum vw_log_level *out);
int vw_log_enabled(enum vw_log_level level);
void vw_log_write(enum vw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Start-up only: log at error level and exit(1). */
void vw_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

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
