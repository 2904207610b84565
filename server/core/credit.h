/* credit: the interval arithmetic of the item-3.6 score, without I/O — how long each result
 * holds (until the next result of its target, never past its staleness bound), how an
 * incrementally credited hold is corrected when the next result arrives, clipping to exam
 * sessions, and Asia/Shanghai local days (UTC+8, no DST since 1991) over UTC storage.
 * Pure functions and caller-owned state: any thread, nothing allocated. The store's rollup
 * job (server/store/sqlite.c) and its unit tests drive the same code. */
#ifndef VW_CREDIT_H
#define VW_CREDIT_H

#include <stddef.h>
#include <stdint.h>

#define CREDIT_DAY_MS 86400000LL
/* China Standard Time: UTC+8 all year (daylight saving ended in 1991). */
#define CREDIT_TZ_OFFSET_MS (8LL * 3600 * 1000)
/* A result's staleness bound is this many times the cadence it was checked at (issue 11:
 * "default 2 x cadence"): one late check is tolerated, two missed ones are not. */
#define CREDIT_STALE_FACTOR 2

/* One target's rollup state: its last result and how far that result's hold is credited. */
struct credit_state {
	int has;          /* 0 until the target's first result */
	int status;       /* the last result's (enum vw_status) */
	int64_t ts_ms;    /* the last result's check time */
	int64_t stale_ms; /* its staleness bound */
	int64_t until_ms; /* credited over [ts_ms, until_ms); until_ms >= ts_ms */
};

/* A change to credit: `sign` (+1 or -1) times [from_ms, to_ms) at `status`. */
struct credit_span {
	int status, sign;
	int64_t from_ms, to_ms;
};

/* The staleness bound of a result checked at cadence interval_ms (<= 0: the agent sent
 * none, so default_ms). */
int64_t credit_stale_ms(double interval_ms, int64_t default_ms);
/* Where the hold of a result at ts ends: ts + stale, cut by the next result at next_ts
 * (has_next); a next result at or before ts ends it at once (the end is never before ts). */
int64_t credit_hold_end(int64_t ts_ms, int64_t stale_ms, int has_next, int64_t next_ts_ms);
/* The length of [a, b) within [s, e); 0 when they do not overlap. */
int64_t credit_overlap(int64_t a, int64_t b, int64_t s, int64_t e);

/* A new result of the target, the next in seq order: settles the previous hold (adding
 * what it still lacks up to its true end, or taking back what was credited past it) and
 * credits the new hold up to now_ms. Writes at most 2 spans to out; returns how many. */
size_t credit_next(struct credit_state *st, int status, int64_t ts_ms, int64_t stale_ms,
                   int64_t now_ms, struct credit_span out[2]);
/* Time passed: credits the open hold further, up to min(its bound, now_ms). At most 1 span. */
size_t credit_advance(struct credit_state *st, int64_t now_ms, struct credit_span out[1]);

/* Local (UTC+8) days: the day number of a UTC instant (days since 1970-01-01 local), and the
 * UTC instant at which a local day begins (16:00 UTC the day before). */
int64_t credit_local_day(int64_t ms);
int64_t credit_day_start_ms(int64_t day);

/* Whether a session's room list (comma-separated, or "*" = every room) names room. */
int credit_room_listed(const char *rooms, const char *room);

#endif
