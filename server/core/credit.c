/* credit: see credit.h. */
#include "credit.h"

#include <string.h>

int64_t credit_stale_ms(double interval_ms, int64_t default_ms)
{
	/* A cadence above a day is no cadence an agent runs at (its config caps interval at
	 * 24 h); such a metric is ignored rather than letting one result hold for weeks. */
	if (!(interval_ms > 0) || interval_ms > (double)CREDIT_DAY_MS)
		return default_ms;
	return (int64_t)interval_ms * CREDIT_STALE_FACTOR;
}

int64_t credit_hold_end(int64_t ts_ms, int64_t stale_ms, int has_next, int64_t next_ts_ms)
{
	int64_t end = ts_ms + (stale_ms > 0 ? stale_ms : 0);
	if (has_next && next_ts_ms < end)
		end = next_ts_ms;
	return end < ts_ms ? ts_ms : end;
}

int64_t credit_overlap(int64_t a, int64_t b, int64_t s, int64_t e)
{
	int64_t lo = a > s ? a : s, hi = b < e ? b : e;
	return hi > lo ? hi - lo : 0;
}

/* Moves the credited end of the hold from st->until_ms to `end`, as one span. */
static size_t settle(struct credit_state *st, int64_t end, struct credit_span *out)
{
	if (end < st->ts_ms)
		end = st->ts_ms;
	if (end == st->until_ms)
		return 0;
	if (end > st->until_ms)
		*out = (struct credit_span){st->status, +1, st->until_ms, end};
	else
		*out = (struct credit_span){st->status, -1, end, st->until_ms};
	st->until_ms = end;
	return 1;
}

size_t credit_next(struct credit_state *st, int status, int64_t ts_ms, int64_t stale_ms,
                   int64_t now_ms, struct credit_span out[2])
{
	size_t n = 0;
	if (st->has)
		n += settle(st, credit_hold_end(st->ts_ms, st->stale_ms, 1, ts_ms), &out[n]);
	*st = (struct credit_state){1, status, ts_ms, stale_ms < 0 ? 0 : stale_ms, ts_ms};
	n += credit_advance(st, now_ms, &out[n]);
	return n;
}

size_t credit_advance(struct credit_state *st, int64_t now_ms, struct credit_span out[1])
{
	if (!st->has)
		return 0;
	int64_t end = credit_hold_end(st->ts_ms, st->stale_ms, 0, 0);
	if (now_ms < end)
		end = now_ms;
	/* Only forward: an open hold is never taken back by time alone (a clock read
	 * earlier than the last result's check time credits nothing yet). */
	if (end <= st->until_ms)
		return 0;
	return settle(st, end, out);
}

int64_t credit_local_day(int64_t ms)
{
	int64_t t = ms + CREDIT_TZ_OFFSET_MS;
	/* Floor division: instants before 1970 local still land on the right day. */
	return t >= 0 ? t / CREDIT_DAY_MS : -((-t + CREDIT_DAY_MS - 1) / CREDIT_DAY_MS);
}

int64_t credit_day_start_ms(int64_t day)
{
	return day * CREDIT_DAY_MS - CREDIT_TZ_OFFSET_MS;
}

int credit_room_listed(const char *rooms, const char *room)
{
	if (!rooms || !room || !room[0])
		return 0;
	size_t n = strlen(room);
	for (const char *p = rooms;;) {
		while (*p == ' ')
			p++;
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		while (len && p[len - 1] == ' ')
			len--;
		if ((len == 1 && p[0] == '*') || (len == n && memcmp(p, room, n) == 0))
			return 1;
		if (!end)
			return 0;
		p = end + 1;
	}
}
