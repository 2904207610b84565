/* credit: the score's interval arithmetic (server/core/credit.c) applied to result lists the
 * way the rollup job applies it — one result at a time, a clock that moves between them —
 * and checked against the rule written out by hand for each case: a hold lasts until the
 * next result of its target, never past 2 x its cadence, and time without a holding result
 * is not met. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "credit.h"

#define S 1000LL
#define MIN (60 * S)
#define H (60 * MIN)
/* 2026-12-01T09:00:00+08:00 */
#define T0 1764550800000LL

enum { OK, DEGRADED, DOWN, NSTATUS };

/* One session's credited time per status, kept as the job keeps it: every span clipped to
 * [start, end) and added or taken back. */
struct tally {
	int64_t start, end, ms[NSTATUS];
};

static void apply(struct tally *t, size_t nt, const struct credit_span *sp, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < nt; j++)
			t[j].ms[sp[i].status] +=
			    sp[i].sign *
			    credit_overlap(sp[i].from_ms, sp[i].to_ms, t[j].start, t[j].end);
}

struct res {
	int64_t ts, stale, arrive; /* arrive: the job's clock when it reads the result */
	int status;
};

/* Feeds results in order, advancing the open hold at each arrival and then at `after`. */
static void run(const struct res *r, size_t n, int64_t after, struct tally *t, size_t nt)
{
	struct credit_state st = {0};
	struct credit_span sp[2];
	for (size_t i = 0; i < n; i++) {
		apply(t, nt, sp, credit_advance(&st, r[i].arrive, sp));
		apply(t, nt, sp,
		      credit_next(&st, r[i].status, r[i].ts, r[i].stale, r[i].arrive, sp));
	}
	apply(t, nt, sp, credit_advance(&st, after, sp));
}

static void test_session_without_results_is_not_met(void **state)
{
	(void)state;
	struct tally t = {T0, T0 + 2 * H, {0}};
	run(NULL, 0, T0 + 3 * H, &t, 1);
	assert_int_equal(t.ms[OK] + t.ms[DEGRADED] + t.ms[DOWN], 0);
}

/* A camera checked every minute, ok for the first hour and down for the second. */
static void test_camera_down_half_the_session(void **state)
{
	(void)state;
	struct res r[121];
	for (int i = 0; i <= 120; i++)
		r[i] =
		    (struct res){T0 + i * MIN, 2 * MIN, T0 + i * MIN + 5 * S, i < 60 ? OK : DOWN};
	struct tally t = {T0, T0 + 2 * H, {0}};
	run(r, 121, T0 + 3 * H, &t, 1);
	assert_int_equal(t.ms[OK], 1 * H);
	assert_int_equal(t.ms[DOWN], 1 * H);
	assert_int_equal(t.ms[DEGRADED], 0);
}

/* The agent is cut off at 09:30 and sends its backlog at 10:30: while it was silent its last
 * result was credited up to the staleness bound only; the backlog then counts at the check
 * times, not at the arrival, and the final credit is the same as if it had never been late. */
static void test_backlog_counts_at_check_time(void **state)
{
	(void)state;
	struct res r[121];
	for (int i = 0; i <= 120; i++) {
		int64_t ts = T0 + i * MIN;
		int64_t arrive = i <= 30 ? ts + S : (i <= 90 ? T0 + 90 * MIN + i * 10 : ts + S);
		r[i] = (struct res){ts, 2 * MIN, arrive, OK};
	}
	struct tally t = {T0, T0 + 2 * H, {0}};
	struct credit_state st = {0};
	struct credit_span sp[2];
	for (int i = 0; i <= 30; i++)
		apply(&t, 1, sp,
		      credit_next(&st, r[i].status, r[i].ts, r[i].stale, r[i].arrive, sp));
	/* 10:00, nothing since 09:30: the 09:30 result held its 2 minutes and no more. */
	apply(&t, 1, sp, credit_advance(&st, T0 + 60 * MIN, sp));
	assert_int_equal(t.ms[OK], 32 * MIN);
	for (int i = 31; i <= 120; i++) {
		apply(&t, 1, sp, credit_advance(&st, r[i].arrive, sp));
		apply(&t, 1, sp,
		      credit_next(&st, r[i].status, r[i].ts, r[i].stale, r[i].arrive, sp));
	}
	apply(&t, 1, sp, credit_advance(&st, T0 + 3 * H, sp));
	assert_int_equal(t.ms[OK], 2 * H);
}

/* One result list credits two sessions that overlap (09:00-11:00 and 10:00-12:00) each by its
 * own clip; the shared hour counts in both. */
static void test_overlapping_sessions(void **state)
{
	(void)state;
	struct res r[181];
	for (int i = 0; i <= 180; i++)
		r[i] = (struct res){T0 + i * MIN, 2 * MIN, T0 + i * MIN,
		                    (i >= 60 && i < 90) ? DOWN : OK};
	struct tally t[2] = {{T0, T0 + 2 * H, {0}}, {T0 + H, T0 + 3 * H, {0}}};
	run(r, 181, T0 + 4 * H, t, 2);
	assert_int_equal(t[0].ms[OK], 90 * MIN);
	assert_int_equal(t[0].ms[DOWN], 30 * MIN);
	assert_int_equal(t[1].ms[OK], 90 * MIN);
	assert_int_equal(t[1].ms[DOWN], 30 * MIN);
}

/* A next result at or before the previous one's check time (a clock stepped back) ends the
 * previous hold at once: what was credited for it is taken back. */
static void test_next_at_or_before_previous_ends_hold(void **state)
{
	(void)state;
	struct tally t = {T0, T0 + H, {0}};
	struct credit_state st = {0};
	struct credit_span sp[2];
	apply(&t, 1, sp, credit_next(&st, DOWN, T0 + 10 * MIN, 2 * MIN, T0 + 11 * MIN, sp));
	assert_int_equal(t.ms[DOWN], 1 * MIN);
	/* The same check time again: the first hold is empty, the second holds. */
	size_t n = credit_next(&st, OK, T0 + 10 * MIN, 2 * MIN, T0 + 20 * MIN, sp);
	assert_int_equal(n, 2);
	assert_int_equal(sp[0].sign, -1);
	apply(&t, 1, sp, n);
	assert_int_equal(t.ms[DOWN], 0);
	assert_int_equal(t.ms[OK], 2 * MIN);
	/* Earlier still: the OK hold goes, a DEGRADED one from 09:05 holds 2 minutes. */
	apply(&t, 1, sp, credit_next(&st, DEGRADED, T0 + 5 * MIN, 2 * MIN, T0 + 30 * MIN, sp));
	assert_int_equal(t.ms[OK], 0);
	assert_int_equal(t.ms[DEGRADED], 2 * MIN);
	assert_int_equal(credit_hold_end(T0, 2 * MIN, 1, T0 - 1), T0);
}

/* Checked every 5 minutes with a 2-minute bound (the agent fell behind its cadence): 2 of
 * every 5 minutes are met; and an open hold is credited up to now, never past its bound. */
static void test_staleness_cuts_the_hold(void **state)
{
	(void)state;
	struct res r[24];
	for (int i = 0; i < 24; i++)
		r[i] = (struct res){T0 + i * 5 * MIN, 2 * MIN, T0 + i * 5 * MIN, OK};
	struct tally t = {T0, T0 + 2 * H, {0}};
	run(r, 24, T0 + 3 * H, &t, 1);
	assert_int_equal(t.ms[OK], 24 * 2 * MIN);

	struct credit_state st = {0};
	struct credit_span sp[2];
	struct tally u = {T0, T0 + H, {0}};
	apply(&u, 1, sp, credit_next(&st, OK, T0, 4 * MIN, T0 + 1 * MIN, sp));
	assert_int_equal(u.ms[OK], 1 * MIN);
	apply(&u, 1, sp, credit_advance(&st, T0 + 3 * MIN, sp));
	assert_int_equal(u.ms[OK], 3 * MIN);
	apply(&u, 1, sp, credit_advance(&st, T0 + 30 * MIN, sp));
	assert_int_equal(u.ms[OK], 4 * MIN);
	/* The next result arrives after the bound: nothing more to add or take back. */
	assert_int_equal(credit_next(&st, OK, T0 + 30 * MIN, 4 * MIN, T0 + 30 * MIN, sp), 0);

	assert_int_equal(credit_stale_ms(60000, 120000), 120000);
	assert_int_equal(credit_stale_ms(15000, 120000), 30000);
	assert_int_equal(credit_stale_ms(0, 120000), 120000);
	assert_int_equal(credit_stale_ms(-1, 120000), 120000);
	assert_int_equal(credit_stale_ms(1e12, 120000), 120000);
}

/* Asia/Shanghai midnight is 16:00 UTC: a hold from 15:50 to 16:10 UTC is 10 minutes of one
 * local day and 10 of the next. */
static void test_local_day_splits_at_1600_utc(void **state)
{
	(void)state;
	const int64_t midnight = 1764604800000LL; /* 2026-12-01T16:00:00Z = 12-02 00:00 +08 */
	int64_t d = credit_local_day(midnight);
	assert_int_equal(credit_local_day(midnight - 1), d - 1);
	assert_int_equal(credit_day_start_ms(d), midnight);
	assert_int_equal(d, 20424); /* 2026-12-02 is day 20424 since 1970-01-01 */
	int64_t a = midnight - 10 * MIN, b = midnight + 10 * MIN;
	int64_t first = credit_overlap(a, b, credit_day_start_ms(d - 1), credit_day_start_ms(d));
	int64_t second = credit_overlap(a, b, credit_day_start_ms(d), credit_day_start_ms(d + 1));
	assert_int_equal(first, 10 * MIN);
	assert_int_equal(second, 10 * MIN);
	/* Before 1970 local, floor division still gives the day that contains the instant. */
	assert_int_equal(credit_local_day(-CREDIT_TZ_OFFSET_MS - 1), -1);
	assert_int_equal(credit_local_day(-CREDIT_TZ_OFFSET_MS), 0);
}

static void test_room_lists(void **state)
{
	(void)state;
	assert_true(credit_room_listed("A101,A102", "A102"));
	assert_true(credit_room_listed("A101, A102", "A102"));
	assert_true(credit_room_listed("*", "B7"));
	assert_false(credit_room_listed("A101,A102", "A10"));
	assert_false(credit_room_listed("A101,A102", "A1022"));
	assert_false(credit_room_listed("", "A101"));
	assert_false(credit_room_listed("A101", ""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_session_without_results_is_not_met),
	    cmocka_unit_test(test_camera_down_half_the_session),
	    cmocka_unit_test(test_backlog_counts_at_check_time),
	    cmocka_unit_test(test_overlapping_sessions),
	    cmocka_unit_test(test_next_at_or_before_previous_ends_hold),
	    cmocka_unit_test(test_staleness_cuts_the_hold),
	    cmocka_unit_test(test_local_day_splits_at_1600_utc),
	    cmocka_unit_test(test_room_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
