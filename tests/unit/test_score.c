/* score: the item-3.6 arithmetic (server/core/score.c) on sessions built by hand — each case
 * states the session's credited time and checks the fractions, the 0-5 step and the reasons
 * against figures worked out in the comment beside it. The worked example is the one
 * docs/SCORE.md prints, so the document cannot drift from the code. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "score.h"

#define MINUTE 60000LL
#define H (60 * MINUTE)
/* 2025-12-01T09:00:00+08:00 (the contract's example pairs this number with 2026: a typo) */
#define T0 1764550800000LL

static struct score_rubric rubric(void)
{
	struct score_rubric r;
	score_rubric_default(&r);
	return r;
}

/* A session of `dur` ms whose every class is fully held by n targets (rooms listed: n). */
static struct store_exam full_exam(int64_t id, int64_t dur, const char *rooms, int n)
{
	struct store_exam e = {.id = id,
	                       .org = "O1",
	                       .city = "C1",
	                       .site = "S1",
	                       .code = "X",
	                       .occupation = "电工",
	                       .level = "四级",
	                       .rooms = rooms,
	                       .start_ms = T0,
	                       .end_ms = T0 + dur};
	for (int c = 0; c < STORE_CLASS_COUNT; c++) {
		int k = c == STORE_CLASS_CONNECTED ? 1 : n;
		e.ok_ms[c] = k * dur;
		e.ntargets[c] = k;
	}
	return e;
}

static void close_to(double got, double want)
{
	if (fabs(got - want) > 1e-9) {
		print_error("got %.12f, want %.12f\n", got, want);
		fail();
	}
}

static void test_no_results_is_zero_and_not_connected(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	struct store_exam e = {.id = 1,
	                       .org = "O1",
	                       .site = "S1",
	                       .rooms = "A101,A102",
	                       .start_ms = T0,
	                       .end_ms = T0 + 2 * H};
	struct score_result res;
	assert_int_equal(score_compute(&r, &e, 1, NULL, 0, 1, &res), 0);
	assert_int_equal(res.nsessions, 1);
	for (int c = 0; c < SCORE_NCRIT; c++)
		close_to(res.sessions[0].frac[c], 0);
	assert_int_equal(res.sessions[0].score, 0);
	assert_int_equal(res.score, 0);
	/* The reasons say so: the collector never heard for the whole two hours, neither
	 * listed room ever covered. */
	assert_int_equal(res.nworst[SCORE_CONNECTED], 1);
	assert_string_equal(res.worst[SCORE_CONNECTED][0].target, "collector");
	assert_int_equal(res.worst[SCORE_CONNECTED][0].unmet_ms, 2 * H);
	assert_int_equal(res.nworst[SCORE_FLOOR], 2);
	assert_string_equal(res.worst[SCORE_FLOOR][0].target, "A101");
	assert_string_equal(res.worst[SCORE_FLOOR][1].target, "A102");
	score_result_free(&res);
}

static void test_all_met_is_five(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	struct store_exam e = full_exam(1, 2 * H, "A101,A102", 2);
	struct score_result res;
	assert_int_equal(score_compute(&r, &e, 1, NULL, 0, 0, &res), 0);
	for (int c = 0; c < SCORE_NCRIT; c++)
		close_to(res.frac[c], 1);
	assert_int_equal(res.score, 5);
	for (int c = 0; c < SCORE_NCRIT; c++)
		assert_int_equal(res.nworst[c], 0);
	score_result_free(&res);
}

static void test_one_criterion_at_94_9_percent_is_three(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	/* 1000 min session, one camera clear for 949 min: 94.9 % < 95 -> step 3. */
	struct store_exam e = full_exam(1, 1000 * MINUTE, "*", 1);
	e.ok_ms[STORE_CLASS_STREAM] = 949 * MINUTE;
	e.down_ms[STORE_CLASS_STREAM] = 51 * MINUTE;
	struct score_result res;
	assert_int_equal(score_compute(&r, &e, 1, NULL, 0, 0, &res), 0);
	close_to(100 * res.frac[SCORE_PICTURE], 94.9);
	assert_int_equal(res.weakest, SCORE_PICTURE);
	assert_int_equal(res.score, 3);
	score_result_free(&res);
	/* Exactly 95 % reaches step 4: the comparison is exact in whole milliseconds. */
	e.ok_ms[STORE_CLASS_STREAM] = 950 * MINUTE;
	assert_int_equal(score_compute(&r, &e, 1, NULL, 0, 0, &res), 0);
	assert_int_equal(res.score, 4);
	score_result_free(&res);
}

static void test_steps_of_the_rubric(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	double f[SCORE_NCRIT] = {1, 1, 1, 1, 1};
	int w;
	assert_int_equal(score_from_fractions(&r, f, &w), 5);
	f[SCORE_RECORDS] = 0.99;
	assert_int_equal(score_from_fractions(&r, f, &w), 5);
	f[SCORE_RECORDS] = 0.98;
	assert_int_equal(score_from_fractions(&r, f, &w), 4);
	assert_int_equal(w, SCORE_RECORDS);
	f[SCORE_RECORDS] = 0.80;
	assert_int_equal(score_from_fractions(&r, f, &w), 3);
	f[SCORE_RECORDS] = 0.50;
	assert_int_equal(score_from_fractions(&r, f, &w), 2);
	f[SCORE_RECORDS] = 0.49;
	assert_int_equal(score_from_fractions(&r, f, &w), 1);
	f[SCORE_RECORDS] = 0; /* a criterion never met, but connected: 1, not 0 */
	assert_int_equal(score_from_fractions(&r, f, &w), 1);
	f[SCORE_CONNECTED] = 0;
	assert_int_equal(score_from_fractions(&r, f, &w), 0);
}

static void test_rubric_change_changes_version(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	char text[256];
	score_rubric_canonical(&r, text, sizeof(text));
	assert_string_equal(text, "venuewatch score rubric 1\nfull_pct=99\nstep4_pct=95\n"
	                          "step3_pct=80\nstep2_pct=50\ndefault_stale_ms=120000\n");
	/* sha256 of that text, first 12 hex digits (python3 hashlib gives the same). */
	assert_string_equal(r.version, "3334d40b6acd");
	char err[128];
	struct score_rubric r2 = r;
	r2.step4_pct = 96;
	assert_int_equal(score_rubric_finish(&r2, err, sizeof(err)), 0);
	assert_string_equal(r2.version, "f6b30f7c51ae");
	assert_string_not_equal(r2.version, r.version);
	/* 99 written as 99.0 is the same rubric. */
	struct score_rubric r3 = r;
	r3.full_pct = 99.0;
	assert_int_equal(score_rubric_finish(&r3, err, sizeof(err)), 0);
	assert_string_equal(r3.version, r.version);
	r3.step3_pct = 97; /* above step4 */
	assert_int_equal(score_rubric_finish(&r3, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "step2 <= step3 <= step4"));
}

static void test_degraded_counts_only_for_connected_and_records(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	struct store_exam e = full_exam(1, 100 * MINUTE, "*", 1);
	for (int c = 0; c < STORE_CLASS_COUNT; c++) {
		e.ok_ms[c] = 60 * MINUTE;
		e.degraded_ms[c] = 40 * MINUTE;
	}
	struct score_result res;
	assert_int_equal(score_compute(&r, &e, 1, NULL, 0, 0, &res), 0);
	close_to(res.frac[SCORE_CONNECTED], 1);
	close_to(res.frac[SCORE_RECORDS], 1);
	close_to(res.frac[SCORE_NETWORK], 0.6);
	close_to(res.frac[SCORE_PICTURE], 0.6);
	close_to(res.frac[SCORE_FLOOR], 0.6);
	assert_int_equal(res.score, 2);
	score_result_free(&res);
}

static void test_listed_room_without_results_counts_zero(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	/* Three rooms listed (one twice), only A101 reported: 1/3 covered. With "*", the one
	 * room that reported is every room: fully covered. */
	struct store_exam e = full_exam(1, H, "A101, A102,A103,A102", 1);
	struct store_credit cr = {1, STORE_CLASS_COVERAGE, "A101", H, 0, 0, 60};
	struct score_result res;
	assert_int_equal(score_rooms_count(e.rooms), 3);
	assert_int_equal(score_compute(&r, &e, 1, &cr, 1, 1, &res), 0);
	assert_int_equal(res.sessions[0].targets[SCORE_FLOOR], 3);
	close_to(res.frac[SCORE_FLOOR], 1.0 / 3);
	assert_int_equal(res.nworst[SCORE_FLOOR], 2);
	assert_string_equal(res.worst[SCORE_FLOOR][0].target, "A102");
	assert_int_equal(res.worst[SCORE_FLOOR][0].unmet_ms, H);
	assert_int_equal(res.worst[SCORE_FLOOR][0].sessions, 1);
	assert_string_equal(res.worst[SCORE_FLOOR][1].target, "A103");
	score_result_free(&res);
	e.rooms = "*";
	assert_int_equal(score_compute(&r, &e, 1, &cr, 1, 1, &res), 0);
	close_to(res.frac[SCORE_FLOOR], 1);
	assert_int_equal(res.nworst[SCORE_FLOOR], 0);
	score_result_free(&res);
}

static void test_aggregate_is_weighted_by_session_time(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	/* 1 h with a clear picture, 3 h at half: (1 + 1.5) / 4 = 62.5 %, not the 75 % a plain
	 * mean of the two sessions would give. */
	struct store_exam e[2] = {full_exam(1, H, "*", 2), full_exam(2, 3 * H, "*", 2)};
	e[1].start_ms += 24 * H;
	e[1].end_ms += 24 * H;
	e[1].ok_ms[STORE_CLASS_STREAM] = 3 * H; /* two cameras: 1.5 h each on average */
	struct score_result res;
	assert_int_equal(score_compute(&r, e, 2, NULL, 0, 0, &res), 0);
	assert_int_equal(res.dur_ms, 4 * H);
	close_to(res.sessions[0].frac[SCORE_PICTURE], 1);
	close_to(res.sessions[1].frac[SCORE_PICTURE], 0.5);
	close_to(res.frac[SCORE_PICTURE], 0.625);
	close_to(res.unmet_ms[SCORE_PICTURE], 1.5 * H);
	assert_int_equal(res.sessions[0].score, 5);
	assert_int_equal(res.sessions[1].score, 2);
	assert_int_equal(res.score, 2);
	score_result_free(&res);
}

static void test_no_sessions_has_no_score(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	struct score_result res;
	assert_int_equal(score_compute(&r, NULL, 0, NULL, 0, 1, &res), 0);
	assert_int_equal(res.score, -1);
	assert_int_equal(res.nsessions, 0);
	score_result_free(&res);
}

/* docs/SCORE.md, "A worked example": one 2 h session, rooms A101 and A102, cameras c1..c4
 * (c3 and c4 in A102), network targets collector and platform. c4 was stopped for 30 min;
 * A102 then had one healthy camera of its two, so it was not covered for those 30 min; the
 * platform answered slowly (degraded) for 6 min. */
static void test_worked_example_of_score_md(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	const int64_t D = 2 * H; /* 7,200,000 ms */
	struct store_exam e = {.id = 7,
	                       .org = "O1",
	                       .city = "C1",
	                       .site = "S1",
	                       .code = "2026-0412",
	                       .rooms = "A101,A102",
	                       .start_ms = T0,
	                       .end_ms = T0 + D};
	struct store_credit cr[] = {
	    {7, STORE_CLASS_CONNECTED, "collector", D, 0, 0, 480},
	    {7, STORE_CLASS_NETWORK, "collector", D, 0, 0, 480},
	    {7, STORE_CLASS_NETWORK, "platform", D - 6 * MINUTE, 6 * MINUTE, 0, 480},
	    {7, STORE_CLASS_STREAM, "c1", D, 0, 0, 480},
	    {7, STORE_CLASS_STREAM, "c2", D, 0, 0, 480},
	    {7, STORE_CLASS_STREAM, "c3", D, 0, 0, 480},
	    {7, STORE_CLASS_STREAM, "c4", D - 30 * MINUTE, 0, 30 * MINUTE, 480},
	    {7, STORE_CLASS_RECORDING, "c1", D, 0, 0, 24},
	    {7, STORE_CLASS_RECORDING, "c2", D, 0, 0, 24},
	    {7, STORE_CLASS_RECORDING, "c3", D, 0, 0, 24},
	    {7, STORE_CLASS_RECORDING, "c4", D, 0, 0, 24},
	    {7, STORE_CLASS_COVERAGE, "A101", D, 0, 0, 480},
	    {7, STORE_CLASS_COVERAGE, "A102", D - 30 * MINUTE, 0, 30 * MINUTE, 480},
	};
	/* The exam's totals are the sums of its credits, as the rollup keeps them. */
	for (size_t i = 0; i < sizeof(cr) / sizeof(cr[0]); i++) {
		e.ok_ms[cr[i].cls] += cr[i].ok_ms;
		e.degraded_ms[cr[i].cls] += cr[i].degraded_ms;
		e.down_ms[cr[i].cls] += cr[i].down_ms;
		e.ntargets[cr[i].cls]++;
	}
	struct score_result res;
	assert_int_equal(score_compute(&r, &e, 1, cr, sizeof(cr) / sizeof(cr[0]), 1, &res), 0);
	close_to(100 * res.frac[SCORE_CONNECTED], 100);
	close_to(100 * res.frac[SCORE_NETWORK], 97.5);  /* (120 + 114) / 2 / 120 */
	close_to(100 * res.frac[SCORE_PICTURE], 93.75); /* (3 x 120 + 90) / 4 / 120 */
	close_to(100 * res.frac[SCORE_FLOOR], 87.5);    /* (120 + 90) / 2 / 120 */
	close_to(100 * res.frac[SCORE_RECORDS], 100);
	assert_int_equal(res.weakest, SCORE_FLOOR);
	assert_int_equal(res.score, 3); /* 87.5 %: at least 80, below 95 */
	assert_int_equal(res.nworst[SCORE_PICTURE], 1);
	assert_string_equal(res.worst[SCORE_PICTURE][0].target, "c4");
	assert_int_equal(res.worst[SCORE_PICTURE][0].unmet_ms, 30 * MINUTE);
	assert_string_equal(res.worst[SCORE_FLOOR][0].target, "A102");
	assert_int_equal(res.worst[SCORE_NETWORK][0].unmet_ms, 6 * MINUTE);
	assert_int_equal(res.nworst[SCORE_CONNECTED], 0);
	score_result_free(&res);
}

static void test_worst_cameras_sum_over_sessions(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	struct store_exam e[2] = {full_exam(1, H, "*", 3), full_exam(2, H, "*", 3)};
	struct store_credit cr[] = {
	    {1, STORE_CLASS_STREAM, "c1", H - 10 * MINUTE, 0, 10 * MINUTE, 1},
	    {1, STORE_CLASS_STREAM, "c2", H - 25 * MINUTE, 0, 25 * MINUTE, 1},
	    {1, STORE_CLASS_STREAM, "c3", H, 0, 0, 1},
	    {2, STORE_CLASS_STREAM, "c1", H - 20 * MINUTE, 0, 20 * MINUTE, 1},
	};
	struct score_result res;
	assert_int_equal(score_compute(&r, e, 2, cr, 4, 1, &res), 0);
	assert_int_equal(res.nworst[SCORE_PICTURE], 2); /* c3 lost nothing: not a reason */
	assert_string_equal(res.worst[SCORE_PICTURE][0].target, "c1");
	assert_int_equal(res.worst[SCORE_PICTURE][0].unmet_ms, 30 * MINUTE);
	assert_int_equal(res.worst[SCORE_PICTURE][0].sessions, 2);
	assert_string_equal(res.worst[SCORE_PICTURE][1].target, "c2");
	/* Neither session has a connected credit: both hours are a reason. */
	assert_int_equal(res.nworst[SCORE_CONNECTED], 1);
	assert_int_equal(res.worst[SCORE_CONNECTED][0].unmet_ms, 2 * H);
	assert_int_equal(res.worst[SCORE_CONNECTED][0].sessions, 2);
	score_result_free(&res);
}

/* People write Asia/Shanghai times; storage is UTC. No DST: 2026-07-01 has the same +8. */
static void test_local_time_is_utc_plus_8(void **st)
{
	(void)st;
	int64_t ms;
	assert_int_equal(score_parse_time("2025-12-01T09:00:00+08:00", &ms), 0);
	assert_int_equal(ms, T0);
	assert_int_equal(score_parse_time("2025-12-01T09:00", &ms), 0); /* no zone: +08:00 */
	assert_int_equal(ms, T0);
	assert_int_equal(score_parse_time("2025-12-01T01:00:00Z", &ms), 0);
	assert_int_equal(ms, T0);
	assert_int_equal(score_parse_time("2025-12-01", &ms), 0); /* local midnight */
	assert_int_equal(ms, T0 - 9 * H);
	assert_int_equal(score_parse_time("1764550800000", &ms), 0);
	assert_int_equal(ms, T0);
	assert_int_equal(score_parse_time("2026-07-01T09:00:00+08:00", &ms), 0);
	char out[SCORE_LOCAL_LEN];
	score_format_local(ms, out);
	assert_string_equal(out, "2026-07-01T09:00:00+08:00");
	score_format_local(T0 - 9 * H - 1000, out); /* one second before local midnight */
	assert_string_equal(out, "2025-11-30T23:59:59+08:00");
	assert_int_equal(score_parse_time("2027-02-29", &ms), -EINVAL);
	assert_int_equal(score_parse_time("2026-13-01", &ms), -EINVAL);
	assert_int_equal(score_parse_time("2026-12-01T09:00:00+8", &ms), -EINVAL);
	assert_int_equal(score_parse_time("yesterday", &ms), -EINVAL);
	assert_int_equal(score_parse_time("", &ms), -EINVAL);
}

/* A camera down for half of a 2 h session, its partner clear all along: picture 75 %, and
 * the down camera is the reason with its 60 minutes. */
static void test_camera_down_half_the_session(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	struct store_exam e = full_exam(1, 2 * H, "*", 2);
	struct store_credit cr[] = {
	    {1, STORE_CLASS_STREAM, "back", H, 0, H, 240},
	    {1, STORE_CLASS_STREAM, "front", 2 * H, 0, 0, 480},
	};
	e.ok_ms[STORE_CLASS_STREAM] = 3 * H;
	e.down_ms[STORE_CLASS_STREAM] = H;
	struct score_result res;
	assert_int_equal(score_compute(&r, &e, 1, cr, 2, 1, &res), 0);
	close_to(res.frac[SCORE_PICTURE], 0.75);
	assert_int_equal(res.score, 2); /* 75 %: below step3's 80, at least step2's 50 */
	assert_int_equal(res.nworst[SCORE_PICTURE], 1);
	assert_string_equal(res.worst[SCORE_PICTURE][0].target, "back");
	assert_int_equal(res.worst[SCORE_PICTURE][0].unmet_ms, H);
	score_result_free(&res);
}

/* Two sessions of one site overlapping by an hour (two rooms, two occupations): each is
 * scored on its own time, and the period's total counts each session's full duration —
 * the form scores sessions, not wall-clock hours. */
static void test_overlapping_sessions_are_scored_each_on_their_own(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	struct store_exam e[2] = {full_exam(1, 2 * H, "A101", 1), full_exam(2, 2 * H, "A102", 1)};
	e[1].start_ms += H;
	e[1].end_ms += H;
	/* The shared camera was down in the overlap hour: it costs both sessions that hour. */
	e[0].ok_ms[STORE_CLASS_STREAM] = H;
	e[1].ok_ms[STORE_CLASS_STREAM] = H;
	struct score_result res;
	assert_int_equal(score_compute(&r, e, 2, NULL, 0, 0, &res), 0);
	assert_int_equal(res.dur_ms, 4 * H);
	close_to(res.sessions[0].frac[SCORE_PICTURE], 0.5);
	close_to(res.sessions[1].frac[SCORE_PICTURE], 0.5);
	close_to(res.frac[SCORE_PICTURE], 0.5);
	score_result_free(&res);
}

/* A session whose end is not after its start holds no time and does not move the total. */
static void test_empty_session_counts_for_nothing(void **st)
{
	(void)st;
	struct score_rubric r = rubric();
	struct store_exam e[2] = {full_exam(1, H, "*", 1), full_exam(2, H, "*", 1)};
	e[1].end_ms = e[1].start_ms;
	struct score_result res;
	assert_int_equal(score_compute(&r, e, 2, NULL, 0, 1, &res), 0);
	assert_int_equal(res.dur_ms, H);
	assert_int_equal(res.score, 5);
	assert_int_equal(res.sessions[1].score, 0);
	score_result_free(&res);
}

static void test_criterion_names(void **st)
{
	(void)st;
	for (int c = 0; c < SCORE_NCRIT; c++)
		assert_int_equal(score_criterion_parse(score_criterion_name(c)), c);
	assert_int_equal(score_criterion_parse("stream"), -1);
	assert_int_equal(score_criterion_class(SCORE_PICTURE), STORE_CLASS_STREAM);
	assert_int_equal(score_criterion_class(SCORE_FLOOR), STORE_CLASS_COVERAGE);
	assert_null(score_criterion_name(SCORE_NCRIT));
}

/* Final only once the rollup has seen [score] settle past the end; settle changes no figure,
 * so it is not part of the rubric's version. */
static void test_provisional_until_settle_past_the_end(void **st)
{
	(void)st;
	struct score_rubric r;
	score_rubric_default(&r);
	assert_int_equal(r.settle_ms, 3600000);
	struct store_exam e = {.start_ms = 1000000, .end_ms = 2000000};
	e.rolled_to_ms = e.end_ms + r.settle_ms - 1;
	assert_true(score_provisional(&r, &e));
	e.rolled_to_ms = e.end_ms + r.settle_ms;
	assert_false(score_provisional(&r, &e));
	char v[sizeof(r.version)];
	memcpy(v, r.version, sizeof(v));
	r.settle_ms = 10000;
	char err[128];
	assert_int_equal(score_rubric_finish(&r, err, sizeof(err)), 0);
	assert_string_equal(r.version, v);
	assert_false(score_provisional(&r, &e));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_results_is_zero_and_not_connected),
	    cmocka_unit_test(test_all_met_is_five),
	    cmocka_unit_test(test_one_criterion_at_94_9_percent_is_three),
	    cmocka_unit_test(test_steps_of_the_rubric),
	    cmocka_unit_test(test_rubric_change_changes_version),
	    cmocka_unit_test(test_degraded_counts_only_for_connected_and_records),
	    cmocka_unit_test(test_listed_room_without_results_counts_zero),
	    cmocka_unit_test(test_aggregate_is_weighted_by_session_time),
	    cmocka_unit_test(test_no_sessions_has_no_score),
	    cmocka_unit_test(test_worked_example_of_score_md),
	    cmocka_unit_test(test_worst_cameras_sum_over_sessions),
	    cmocka_unit_test(test_local_time_is_utc_plus_8),
	    cmocka_unit_test(test_camera_down_half_the_session),
	    cmocka_unit_test(test_overlapping_sessions_are_scored_each_on_their_own),
	    cmocka_unit_test(test_empty_session_counts_for_nothing),
	    cmocka_unit_test(test_criterion_names),
	    cmocka_unit_test(test_provisional_until_settle_past_the_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
