/* The collector's acknowledgement: only an integer seq this outbox handed out releases
 * rows; anything else is refused before it can touch the outbox. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "uplink.h"

static int parse(const char *body, int64_t next_seq, int64_t *ack, char *why)
{
	*ack = -12345;
	return uplink_parse_ack(body, strlen(body), next_seq, NULL, ack, why, 160);
}

static void integer_acks_up_to_the_last_seq_are_taken(void **state)
{
	(void)state;
	int64_t ack;
	char why[160];
	assert_int_equal(parse("{\"acked_seq\":0}", 1, &ack, why), 0);
	assert_int_equal(ack, 0);
	assert_int_equal(parse("{\"acked_seq\":41}", 42, &ack, why), 0);
	assert_int_equal(ack, 41);
	assert_int_equal(parse("{\"acked_seq\":4.1e1,\"x\":[]}", 42, &ack, why), 0);
	assert_int_equal(ack, 41);
	assert_int_equal(parse("{\"acked_seq\":9007199254740991}", INT64_MAX, &ack, why), 0);
	assert_int_equal(ack, 9007199254740991LL);
}

static void acks_beyond_what_was_produced_are_out_of_range(void **state)
{
	(void)state;
	int64_t ack;
	char why[160];
	assert_int_equal(parse("{\"acked_seq\":42}", 42, &ack, why), -ERANGE);
	assert_non_null(strstr(why, "beyond"));
	assert_int_equal(parse("{\"acked_seq\":1}", 1, &ack, why), -ERANGE);
}

static void malformed_acks_are_refused(void **state)
{
	(void)state;
	static const char *const bodies[] = {
	    "",
	    "not json",
	    "{}",
	    "{\"acked\":3}",
	    "{\"acked_seq\":\"3\"}",
	    "{\"acked_seq\":null}",
	    "{\"acked_seq\":true}",
	    "{\"acked_seq\":-1}",
	    "{\"acked_seq\":2.5}",
	    "{\"acked_seq\":1e30}", /* a cast would be undefined */
	    "{\"acked_seq\":-1e30}",
	    "{\"acked_seq\":9007199254740993}",
	    "{\"acked_seq\":1e999}", /* inf after strtod */
	    "[{\"acked_seq\":3}]",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		int64_t ack;
		char why[160] = "";
		int rc = parse(bodies[i], 100, &ack, why);
		if (rc != -EBADMSG || !why[0])
			fail_msg("body %s: rc=%d why=%s", bodies[i], rc, why);
		assert_int_equal(ack, -12345); /* untouched */
	}
}

/* Once we sent an epoch, only a reply naming it releases rows: a collector from before
 * epochs (or a proxy rewriting the body) answers with the legacy mark, which says nothing
 * about this epoch's rows. The legacy outbox (epoch "") sends none and expects none. */
static void acks_without_our_epoch_release_nothing(void **state)
{
	(void)state;
	static const char ep[] = "0123456789abcdef0123456789abcdef";
	int64_t ack = -12345;
	char why[160] = "";
	const char *b = "{\"acked_seq\":5}";
	assert_int_equal(uplink_parse_ack(b, strlen(b), 10, ep, &ack, why, sizeof(why)), -ESTALE);
	assert_non_null(strstr(why, "no epoch"));
	assert_int_equal(ack, -12345);
	b = "{\"acked_seq\":5,\"epoch\":\"ffffffffffffffffffffffffffffffff\"}";
	assert_int_equal(uplink_parse_ack(b, strlen(b), 10, ep, &ack, why, sizeof(why)), -ESTALE);
	b = "{\"acked_seq\":5,\"epoch\":\"0123456789abcdef0123456789abcdef\"}";
	assert_int_equal(uplink_parse_ack(b, strlen(b), 10, ep, &ack, why, sizeof(why)), 0);
	assert_int_equal(ack, 5);
	b = "{\"acked_seq\":5}";
	assert_int_equal(uplink_parse_ack(b, strlen(b), 10, "", &ack, why, sizeof(why)), 0);
	assert_int_equal(ack, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(integer_acks_up_to_the_last_seq_are_taken),
	    cmocka_unit_test(acks_beyond_what_was_produced_are_out_of_range),
	    cmocka_unit_test(malformed_acks_are_refused),
	    cmocka_unit_test(acks_without_our_epoch_release_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
