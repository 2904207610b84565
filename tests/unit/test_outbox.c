/* The outbox: seq order, ack releases rows, rows and seqs survive a reopen, the bound is
 * counted, never silent. Real SQLite files in a temporary directory. */
#include <cjson/cJSON.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "outbox.h"
#include "testdir.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	if (testdir_make(dir, sizeof(dir), "outbox"))
		return -1;
	snprintf(path, sizeof(path), "%s/outbox.db", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return testdir_remove(dir);
}

static struct outbox *open_ob(long long max)
{
	struct outbox *ob = NULL;
	char err[256];
	int rc = outbox_open(path, max, &ob, err, sizeof(err));
	if (rc)
		fail_msg("outbox_open: %s", err);
	return ob;
}

static void append_n(struct outbox *ob, int n, const char *target)
{
	struct vw_result *rs = calloc((size_t)n, sizeof(*rs));
	for (int i = 0; i < n; i++)
		vw_result_init(&rs[i], VW_KIND_STREAM, target);
	assert_int_equal(outbox_append(ob, rs, (size_t)n), 0);
	for (int i = 1; i < n; i++)
		assert_int_equal(rs[i].seq, rs[i - 1].seq + 1);
	free(rs);
}

/* Peeks a batch and returns the seqs it holds, parsed back out of the JSON. */
static size_t peek_seqs(struct outbox *ob, int64_t after, size_t max, int64_t *seqs)
{
	struct vw_buf b;
	vw_buf_init(&b, 0);
	size_t count;
	int64_t last;
	assert_int_equal(outbox_peek(ob, after, max, 1 << 30, &b, &count, &last), 0);
	cJSON *arr = cJSON_Parse(vw_buf_cstr(&b));
	assert_non_null(arr);
	assert_int_equal((size_t)cJSON_GetArraySize(arr), count);
	size_t i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, arr) seqs[i++] =
	    (int64_t)cJSON_GetObjectItem(it, "seq")->valuedouble;
	if (count)
		assert_int_equal(seqs[count - 1], last);
	cJSON_Delete(arr);
	vw_buf_free(&b);
	return count;
}

static void batches_come_in_seq_order_and_ack_releases(void **state)
{
	(void)state;
	struct outbox *ob = open_ob(64 << 20);
	append_n(ob, 5, "a");
	append_n(ob, 5, "b");
	int64_t seqs[16];
	assert_int_equal(peek_seqs(ob, 0, 4, seqs), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(seqs[i], i + 1);
	assert_int_equal(peek_seqs(ob, 4, 100, seqs), 6);
	assert_int_equal(seqs[0], 5);
	assert_int_equal(outbox_ack(ob, 7), 0);
	assert_int_equal(outbox_pending(ob), 3);
	assert_int_equal(peek_seqs(ob, 0, 100, seqs), 3);
	assert_int_equal(seqs[0], 8);
	outbox_close(&ob);
	assert_null(ob);
}

static void rows_and_seq_survive_reopen(void **state)
{
	(void)state;
	struct outbox *ob = open_ob(64 << 20);
	append_n(ob, 3, "a");
	assert_int_equal(outbox_ack(ob, 3), 0); /* all acked: the table is empty */
	append_n(ob, 2, "a");                   /* seqs 4, 5 */
	outbox_close(&ob);

	ob = open_ob(64 << 20);
	assert_int_equal(outbox_pending(ob), 2);
	assert_int_equal(outbox_next_seq(ob), 6);
	assert_int_equal(outbox_ack(ob, 5), 0);
	outbox_close(&ob);

	/* An empty outbox must still never hand out a used seq. */
	ob = open_ob(64 << 20);
	assert_int_equal(outbox_pending(ob), 0);
	assert_int_equal(outbox_next_seq(ob), 6);
	struct vw_result r;
	vw_result_init(&r, VW_KIND_STREAM, "a");
	assert_int_equal(outbox_append(ob, &r, 1), 0);
	assert_int_equal(r.seq, 6);
	outbox_close(&ob);
}

static void overflow_drops_oldest_and_says_so(void **state)
{
	(void)state;
	struct outbox *ob = open_ob(1 << 20); /* 1 MiB: about 4,000 rows */
	for (int i = 0; i < 300; i++)
		append_n(ob, 50, "camera-with-a-long-enough-name");
	assert_true(outbox_bytes(ob) <= (1 << 20));
	assert_true(outbox_dropped_total(ob) > 0);
	int64_t *seqs = calloc(20000, sizeof(*seqs));
	size_t n = peek_seqs(ob, 0, 20000, seqs);
	/* Every row that is gone is counted; the newest overflow row carries the total even
	 * when older overflow rows were themselves dropped. */
	struct vw_buf b;
	vw_buf_init(&b, 0);
	size_t count;
	int64_t last;
	assert_int_equal(outbox_peek(ob, 0, 20000, 1 << 30, &b, &count, &last), 0);
	cJSON *arr = cJSON_Parse(vw_buf_cstr(&b));
	int64_t reported = 0, newest_total = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
	{
		if (strcmp(cJSON_GetObjectItem(it, "kind")->valuestring, "buffer") != 0)
			continue;
		assert_string_equal(
		    cJSON_GetArrayItem(cJSON_GetObjectItem(it, "faults"), 0)->valuestring,
		    "buffer_overflow");
		const cJSON *m = cJSON_GetObjectItem(it, "metrics");
		reported += (int64_t)cJSON_GetObjectItem(m, "dropped_count")->valuedouble;
		newest_total = (int64_t)cJSON_GetObjectItem(m, "dropped_total")->valuedouble;
	}
	int64_t produced = outbox_next_seq(ob) - 1;
	assert_true(reported > 0);
	assert_true(reported <= outbox_dropped_total(ob));
	assert_int_equal(newest_total, outbox_dropped_total(ob));
	assert_int_equal((int64_t)n + outbox_dropped_total(ob), produced);
	/* The pending count (kept in memory for the metrics) follows the drops exactly. */
	assert_int_equal(outbox_pending(ob), (int64_t)n);
	assert_int_equal(outbox_ack(ob, seqs[n / 2]), 0);
	assert_int_equal(outbox_pending(ob), (int64_t)(n - n / 2 - 1));
	assert_int_equal(outbox_acked_total(ob), (int64_t)(n / 2 + 1));
	cJSON_Delete(arr);
	vw_buf_free(&b);
	free(seqs);
	outbox_close(&ob);
}

static void rows_in_flight_are_not_dropped(void **state)
{
	(void)state;
	struct outbox *ob = open_ob(1 << 20);
	append_n(ob, 100, "a");
	outbox_set_in_flight(ob, 100);
	for (int i = 0; i < 300; i++)
		append_n(ob, 50, "camera-with-a-long-enough-name");
	assert_true(outbox_dropped_total(ob) > 0);
	int64_t seqs[4];
	assert_int_equal(peek_seqs(ob, 0, 1, seqs), 1);
	assert_int_equal(seqs[0], 1);
	outbox_close(&ob);
}

/* Rows carry both clocks: the wall-clock check time for people, the monotonic one for
 * ordering across a clock step. */
static void rows_carry_wall_and_monotonic_time(void **state)
{
	(void)state;
	struct outbox *ob = open_ob(64 << 20);
	append_n(ob, 1, "a");
	struct vw_buf b;
	vw_buf_init(&b, 0);
	size_t count;
	int64_t last;
	assert_int_equal(outbox_peek(ob, 0, 10, 1 << 20, &b, &count, &last), 0);
	cJSON *arr = cJSON_Parse(vw_buf_cstr(&b));
	const cJSON *row = cJSON_GetArrayItem(arr, 0);
	assert_true(cJSON_IsString(cJSON_GetObjectItem(row, "ts")));
	assert_true(cJSON_IsNumber(cJSON_GetObjectItem(row, "mono_ms")));
	assert_true(cJSON_GetObjectItem(row, "mono_ms")->valuedouble > 0);
	cJSON_Delete(arr);
	vw_buf_free(&b);
	outbox_close(&ob);
}

/* After overflow drops (and with everything left acked) a reopen continues after the last
 * seq ever handed out, not after the last row still stored. */
static void seq_continues_after_drops_acks_and_reopen(void **state)
{
	(void)state;
	struct outbox *ob = open_ob(1 << 20);
	for (int i = 0; i < 200; i++)
		append_n(ob, 50, "camera-with-a-long-enough-name");
	assert_true(outbox_dropped_total(ob) > 0);
	int64_t next = outbox_next_seq(ob);
	assert_int_equal(outbox_ack(ob, next - 1), 0);
	assert_int_equal(outbox_pending(ob), 0);
	assert_int_equal(outbox_bytes(ob), 0);
	outbox_close(&ob);
	ob = open_ob(1 << 20);
	assert_int_equal(outbox_next_seq(ob), next);
	struct vw_result r;
	vw_result_init(&r, VW_KIND_STREAM, "a");
	assert_int_equal(outbox_append(ob, &r, 1), 0);
	assert_int_equal(r.seq, next);
	outbox_close(&ob);
}

/* Every seq that left the outbox without an ack lies inside the range of a buffer_overflow
 * row still held, even when older overflow rows were dropped in turn: their ranges and
 * counts are carried into the newer report. */
/* A new outbox draws its epoch once and keeps it (a resend after a crash carries the same
 * one); an outbox made before epochs keeps the legacy epoch "", so its seqs go on
 * continuing the collector's legacy mark; a reinstall (a new file) is a new epoch. */
static void epoch_is_drawn_once_per_outbox(void **state)
{
	(void)state;
	struct outbox *ob = open_ob(1 << 20);
	char first[33];
	snprintf(first, sizeof(first), "%s", outbox_epoch(ob));
	assert_int_equal(strlen(first), 32);
	assert_int_equal(strspn(first, "0123456789abcdef"), 32);
	append_n(ob, 3, "cam");
	outbox_close(&ob);
	ob = open_ob(1 << 20);
	assert_string_equal(outbox_epoch(ob), first);
	outbox_close(&ob);

	unlink(path); /* reinstalled: the state dir is gone */
	ob = open_ob(1 << 20);
	assert_int_equal(strlen(outbox_epoch(ob)), 32);
	assert_string_not_equal(outbox_epoch(ob), first);
	assert_int_equal(outbox_next_seq(ob), 1);
	outbox_close(&ob);

	/* An outbox from before epochs: same tables, no epoch row, no epoch table. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE epoch", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ob = open_ob(1 << 20);
	assert_string_equal(outbox_epoch(ob), "");
	outbox_close(&ob);
	ob = open_ob(1 << 20);
	assert_string_equal(outbox_epoch(ob), ""); /* decided once */
	outbox_close(&ob);
}

/* A restored outbox draws a new epoch: committed at once (it survives a reopen), with
 * the rows, their seqs and next_seq untouched, so the held rows go out under it as they
 * are; the oldest held seq is what the refusal lines report. */
static void a_renewed_epoch_keeps_rows_and_seqs(void **state)
{
	(void)state;
	struct outbox *ob = open_ob(1 << 20);
	append_n(ob, 5, "cam");
	assert_int_equal(outbox_ack(ob, 2), 0);
	assert_int_equal(outbox_oldest_seq(ob), 3);
	char first[33];
	snprintf(first, sizeof(first), "%s", outbox_epoch(ob));
	assert_int_equal(outbox_renew_epoch(ob), 0);
	char second[33];
	snprintf(second, sizeof(second), "%s", outbox_epoch(ob));
	assert_int_equal(strlen(second), 32);
	assert_int_equal(strspn(second, "0123456789abcdef"), 32);
	assert_string_not_equal(second, first);
	assert_int_equal(outbox_next_seq(ob), 6);
	assert_int_equal(outbox_pending(ob), 3);
	outbox_close(&ob);
	ob = open_ob(1 << 20);
	assert_string_equal(outbox_epoch(ob), second);
	assert_int_equal(outbox_next_seq(ob), 6);
	assert_int_equal(outbox_oldest_seq(ob), 3);
	assert_int_equal(outbox_ack(ob, 5), 0);
	assert_int_equal(outbox_oldest_seq(ob), 0);
	outbox_close(&ob);
}

static void every_dropped_seq_stays_reported(void **state)
{
	(void)state;
	struct outbox *ob = open_ob(1 << 20);
	for (int i = 0; i < 300; i++)
		append_n(ob, 50, "camera-with-a-long-enough-name");
	int64_t produced = outbox_next_seq(ob) - 1;
	struct vw_buf b;
	vw_buf_init(&b, 0);
	size_t count;
	int64_t last;
	assert_int_equal(outbox_peek(ob, 0, 100000, 1 << 30, &b, &count, &last), 0);
	cJSON *arr = cJSON_Parse(vw_buf_cstr(&b));
	char *held = calloc((size_t)produced + 1, 1), *reported = calloc((size_t)produced + 1, 1);
	int64_t counted = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
	{
		held[(int64_t)cJSON_GetObjectItem(it, "seq")->valuedouble] = 1;
		if (strcmp(cJSON_GetObjectItem(it, "kind")->valuestring, "buffer") != 0)
			continue;
		const cJSON *m = cJSON_GetObjectItem(it, "metrics");
		int64_t f = (int64_t)cJSON_GetObjectItem(m, "dropped_first_seq")->valuedouble;
		int64_t l = (int64_t)cJSON_GetObjectItem(m, "dropped_last_seq")->valuedouble;
		counted += (int64_t)cJSON_GetObjectItem(m, "dropped_count")->valuedouble;
		for (int64_t s = f; s <= l; s++)
			reported[s] = 1;
	}
	for (int64_t s = 1; s <= produced; s++)
		if (!held[s] && !reported[s])
			fail_msg("seq %lld dropped without a report", (long long)s);
	assert_int_equal(counted, outbox_dropped_total(ob));
	free(held);
	free(reported);
	cJSON_Delete(arr);
	vw_buf_free(&b);
	outbox_close(&ob);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(batches_come_in_seq_order_and_ack_releases, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(rows_and_seq_survive_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(overflow_drops_oldest_and_says_so, setup, teardown),
	    cmocka_unit_test_setup_teardown(rows_in_flight_are_not_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(rows_carry_wall_and_monotonic_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(seq_continues_after_drops_acks_and_reopen, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(every_dropped_seq_stays_reported, setup, teardown),
	    cmocka_unit_test_setup_teardown(epoch_is_drawn_once_per_outbox, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_renewed_epoch_keeps_rows_and_seqs, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
