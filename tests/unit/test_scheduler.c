/* The worker pool's size from the load the cadence puts on it (workers = 0): enough that the
 * cameras' checks keep 70 % of the workers busy, within the configured floor and cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scheduler.h"

static void sixty_four_cameras_in_session_get_the_workers_their_checks_need(void **state)
{
	(void)state;
	/* 64 cameras, 3 s checks, 15 s session cadence: 12.8 workers busy -> 12.8 / 0.7. */
	assert_int_equal(scheduler_workers_for(64 * 3000.0 / 15000.0, 4, 32), 19);
	/* The same cameras outside sessions (120 s): 1.6 busy, the floor of 4 holds. */
	assert_int_equal(scheduler_workers_for(64 * 3000.0 / 120000.0, 4, 32), 4);
}

static void a_load_that_fills_the_workers_exactly_needs_no_extra_one(void **state)
{
	(void)state;
	assert_int_equal(scheduler_workers_for(7.0, 1, 32), 10);
	assert_int_equal(scheduler_workers_for(7.07, 1, 32), 11);
}

static void the_cap_wins_over_the_load_and_the_floor(void **state)
{
	(void)state;
	assert_int_equal(scheduler_workers_for(200.0, 4, 32), 32);
	assert_int_equal(scheduler_workers_for(0, 4, 2), 2);
	assert_int_equal(scheduler_workers_for(0, 4, 32), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sixty_four_cameras_in_session_get_the_workers_their_checks_need),
	    cmocka_unit_test(a_load_that_fills_the_workers_exactly_needs_no_extra_one),
	    cmocka_unit_test(the_cap_wins_over_the_load_and_the_floor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
