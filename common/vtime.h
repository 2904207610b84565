/* vtime: wall-clock and monotonic milliseconds, ISO 8601 UTC formatting and parsing.
 * Pure functions, any thread. */
#ifndef VW_VTIME_H
#define VW_VTIME_H

#include <stddef.h>
#include <stdint.h>

#define VW_ISO_LEN 32 /* "2026-11-26T19:11:18.123Z" + NUL fits */

int64_t vw_now_ms(void);  /* CLOCK_REALTIME, ms since the epoch (UTC) */
int64_t vw_mono_ms(void); /* CLOCK_MONOTONIC, ms; for durations and ordering only */
/* Formats ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ". */
void vw_time_iso(int64_t ms, char out[VW_ISO_LEN]);
/* Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" (also "+00:00"). 0 on success, -EINVAL otherwise. */
int vw_time_parse_iso(const char *s, int64_t *ms);

/* Also accepts "YYYY-MM-DD HH:MM[:SS]" without a zone, read as the machine's local time
 * (how venues write exam timetables and how recorders name files). */
int vw_time_parse_any(const char *s, int64_t *ms);

#endif
