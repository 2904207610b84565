/* issue 13: the singleton jobs' leases (server/store/pg_lease.c) against a real PostgreSQL
 * (tests/tools/pg.sh): take, renew, expiry by the database's clock, the fence that refuses a
 * stale epoch's write, and the keeper threads of two collectors. Deadlines, never sleeps
 * that a busy machine could outrun. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include <cmocka.h>

#include "pg_lease.h"
#include "testpg.h"

#define DEADLINE_NS (60ull * 1000000000u)

struct ctx {
	char db[64], dsn[512];
	PGconn *a, *b;
};

static int exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

static int setup(void **state)
{
	struct ctx *x = calloc(1, sizeof(*x));
	if (!x || testpg_make("lease", x->db, sizeof(x->db), x->dsn, sizeof(x->dsn)))
		return -1;
	if (!(x->a = testpg_connect(x->dsn)) || !(x->b = testpg_connect(x->dsn)))
		return -1;
	if (!exec_ok(x->a, PG_LEASE_TABLE_SQL) ||
	    !exec_ok(x->a, "CREATE TABLE job_rows(epoch bigint NOT NULL)"))
		return -1;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;
	PQfinish(x->a);
	PQfinish(x->b);
	testpg_remove(x->db);
	free(x);
	return 0;
}

/* Polls until name's lease has expired by the database's clock (deadline: a minute). */
static void wait_expired(PGconn *c, const char *name)
{
	char sql[160];
	snprintf(sql, sizeof(sql),
	         "SELECT expires_at <= clock_timestamp() FROM leases WHERE name = '%s'", name);
	uint64_t until = uv_hrtime() + DEADLINE_NS;
	for (;;) {
		PGresult *r = PQexec(c, sql);
		int done = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
		PQclear(r);
		if (done)
			return;
		if (uv_hrtime() > until)
			fail_msg("lease %s never expired", name);
		usleep(20000);
	}
}

/* A job's write as the jobs make it: in a transaction that first passes the fence. */
static int fenced_write(PGconn *c, const char *holder, int64_t epoch)
{
	assert_true(exec_ok(c, "BEGIN"));
	int rc = pg_lease_check(c, "feed", holder, epoch, 15000);
	if (!rc) {
		char sql[96];
		snprintf(sql, sizeof(sql), "INSERT INTO job_rows VALUES(%lld)", (long long)epoch);
		assert_true(exec_ok(c, sql));
	}
	assert_true(exec_ok(c, rc ? "ROLLBACK" : "COMMIT"));
	return rc;
}

static void free_lease_is_taken_once_and_renewed_by_its_holder_only(void **state)
{
	struct ctx *x = *state;
	int64_t ea = 0, eb = 0;
	assert_int_equal(pg_lease_take(x->a, "feed", "A", 15000, &ea), 0);
	assert_int_equal(ea, 1);
	assert_int_equal(pg_lease_take(x->b, "feed", "B", 15000, &eb), -EBUSY);
	assert_int_equal(pg_lease_renew(x->a, "feed", "A", 1, 15000), 0);
	assert_int_equal(pg_lease_renew(x->b, "feed", "B", 1, 15000), -ESTALE);
	assert_int_equal(pg_lease_renew(x->a, "feed", "A", 2, 15000), -ESTALE);
	/* another name is another lease */
	assert_int_equal(pg_lease_take(x->b, "notify", "B", 15000, &eb), 0);
	assert_int_equal(eb, 1);
	assert_int_equal(fenced_write(x->a, "A", 1), 0);
}

static void expired_lease_moves_at_epoch_plus_one_and_the_stale_write_is_refused(void **state)
{
	struct ctx *x = *state;
	int64_t ea = 0, eb = 0;
	assert_int_equal(pg_lease_take(x->a, "feed", "A", 200, &ea), 0);
	wait_expired(x->b, "feed");
	/* expired: its holder can renew it no more, nor write under it */
	assert_int_equal(pg_lease_renew(x->a, "feed", "A", ea, 15000), -ESTALE);
	assert_int_equal(fenced_write(x->a, "A", ea), -ESTALE);
	assert_int_equal(pg_lease_take(x->b, "feed", "B", 15000, &eb), 0);
	assert_int_equal(eb, ea + 1);
	assert_int_equal(fenced_write(x->a, "A", ea), -ESTALE); /* the stale epoch */
	assert_int_equal(fenced_write(x->b, "B", eb), 0);
	int64_t n = -1, e = -1;
	assert_int_equal(testpg_query(x->dsn, "SELECT count(*) FROM job_rows", &n), 0);
	assert_int_equal(testpg_query(x->dsn, "SELECT max(epoch) FROM job_rows", &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(e, eb);
	/* the old holder takes it back only once the new one lets it expire */
	assert_int_equal(pg_lease_take(x->a, "feed", "A", 15000, &ea), -EBUSY);
}

/* A holder past its check and paused before its commit: the take-over waits for the row
 * lock (lock_timeout cuts the wait), so no second holder commits between its check and
 * its commit. */
static void take_over_waits_for_the_fenced_transaction(void **state)
{
	struct ctx *x = *state;
	int64_t ea = 0, eb = 0;
	assert_int_equal(pg_lease_take(x->a, "feed", "A", 1000, &ea), 0);
	assert_true(exec_ok(x->a, "BEGIN"));
	int rc = pg_lease_check(x->a, "feed", "A", ea, 15000);
	if (rc == -ESTALE)
		skip(); /* the machine was too busy to check within 1 s: nothing to prove */
	assert_int_equal(rc, 0);
	wait_expired(x->b, "feed");
	assert_true(exec_ok(x->b, "SET lock_timeout = '100ms'"));
	assert_int_equal(pg_lease_take(x->b, "feed", "B", 15000, &eb), -EBUSY);
	assert_true(exec_ok(x->a, "COMMIT"));
	assert_int_equal(pg_lease_take(x->b, "feed", "B", 15000, &eb), 0);
	assert_int_equal(eb, ea + 1);
}

static int wait_view(struct pg_lease *l, int which, int held)
{
	uint64_t until = uv_hrtime() + DEADLINE_NS;
	while (uv_hrtime() < until) {
		struct store_lease v[STORE_LEASES];
		pg_lease_view(l, v);
		if (v[which].held == held)
			return 1;
		usleep(20000);
	}
	return 0;
}

static void keepers_hold_each_lease_once_and_hand_over_on_stop(void **state)
{
	struct ctx *x = *state;
	char err[256];
	struct pg_lease *one = NULL, *two = NULL;
	const char *pf = getenv("VW_PG_PASSFILE");
	assert_int_equal(pg_lease_create(x->dsn, pf, 1000, 200, &one, err, sizeof(err)), 0);
	assert_int_equal(pg_lease_start(one), 0);
	assert_int_equal(pg_lease_create(x->dsn, pf, 1000, 200, &two, err, sizeof(err)), 0);
	assert_int_equal(pg_lease_start(two), 0);
	assert_string_not_equal(pg_lease_holder(one), pg_lease_holder(two));
	struct store_lease v1[STORE_LEASES], v2[STORE_LEASES];
	pg_lease_view(one, v1);
	pg_lease_view(two, v2);
	for (int i = 0; i < STORE_LEASES; i++) {
		assert_int_equal(v1[i].held, 1); /* the first round ran in pg_lease_start */
		assert_int_equal(v2[i].held, 0);
	}
	/* the fence on the holder's side passes, on the other's refuses at once */
	assert_true(exec_ok(x->a, "BEGIN"));
	assert_int_equal(pg_lease_fence(one, x->a, STORE_LEASE_FEED), 0);
	assert_true(exec_ok(x->a, "COMMIT"));
	assert_int_equal(pg_lease_fence(two, x->b, STORE_LEASE_FEED), -ESTALE);
	pg_lease_destroy(one);
	for (int i = 0; i < STORE_LEASES; i++)
		assert_true(wait_view(two, i, 1));
	pg_lease_view(two, v2);
	assert_int_equal(v2[STORE_LEASE_FEED].epoch, 2);
	pg_lease_destroy(two);
}

static void renew_not_shorter_than_ttl_is_refused(void **state)
{
	struct ctx *x = *state;
	char err[256] = "";
	struct pg_lease *l = NULL;
	assert_int_equal(pg_lease_create(x->dsn, NULL, 1000, 1000, &l, err, sizeof(err)), -EINVAL);
	assert_null(l);
	assert_non_null(strstr(err, "lease_renew"));
}

int main(void)
{
	if (!getenv("VW_PG_DSN")) {
		fprintf(stderr, "test_pg_lease: no VW_PG_DSN (run it under tests/tools/pg.sh)\n");
		return 1;
	}
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(free_lease_is_taken_once_and_renewed_by_its_holder_only),
	    T(expired_lease_moves_at_epoch_plus_one_and_the_stale_write_is_refused),
	    T(take_over_waits_for_the_fenced_transaction),
	    T(keepers_hold_each_lease_once_and_hand_over_on_stop),
	    T(renew_not_shorter_than_ttl_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
