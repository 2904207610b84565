/* Ingest decoding: a batch becomes site, agent and rows sorted by seq; any bad result
 * refuses the whole batch with a detail naming the index and field; the site is known even
 * when a later part is bad, so a certificate mismatch outranks other errors. A gzip body
 * inflates only up to the body limit and must be exactly one intact gzip stream. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <cmocka.h>

#include "ingest.h"

static int decode(const char *body, struct store_batch **out, char *error, char *detail)
{
	*out = store_batch_create();
	assert_non_null(*out);
	return ingest_decode(body, strlen(body), *out, error, 32, detail, 256);
}

#define R(seq, target, status)                                                                     \
	"{\"seq\":" #seq                                                                           \
	",\"ts\":\"2026-11-26T10:00:00Z\",\"kind\":\"stream\",\"target\":\"" target                \
	"\",\"status\":\"" status "\",\"faults\":[],\"metrics\":{\"fps\":25}}"

/* Without an agent field the agent is left to the certificate (ingest's decode_done);
 * without an epoch the batch belongs to the legacy epoch "". */
static void good_batch_is_sorted_and_leaves_agent_to_the_certificate(void **state)
{
	(void)state;
	struct store_batch *b;
	char error[32], detail[256];
	int rc = decode("{\"site\":\"s1\",\"results\":[" R(3, "c", "ok") "," R(
	                    1, "a", "down") "," R(2, "b", "degraded") "],\"future_field\":1}",
	                &b, error, detail);
	if (rc)
		fail_msg("%s: %s", error, detail);
	assert_string_equal(b->site, "s1");
	assert_string_equal(b->agent, "");
	assert_string_equal(b->epoch, "");
	assert_int_equal(b->nrows, 3);
	assert_int_equal(b->rows[0].seq, 1);
	assert_string_equal(store_batch_str(b, b->rows[0].target), "a");
	assert_string_equal(store_batch_str(b, b->rows[0].metrics), "{\"fps\":25}");
	assert_string_equal(store_batch_str(b, b->rows[0].faults), "[]");
	assert_int_equal(b->rows[2].seq, 3);
	store_batch_destroy(b);

	assert_int_equal(
	    decode("{\"site\":\"s1\",\"agent\":\"gate\",\"results\":[]}", &b, error, detail), 0);
	assert_string_equal(b->agent, "gate");
	assert_int_equal(b->nrows, 0);
	store_batch_destroy(b);

	assert_int_equal(decode("{\"site\":\"s1\",\"epoch\":\"0123456789abcdef0123456789abcdef\","
	                        "\"results\":[]}",
	                        &b, error, detail),
	                 0);
	assert_string_equal(b->epoch, "0123456789abcdef0123456789abcdef");
	store_batch_destroy(b);
	assert_int_equal(
	    decode("{\"site\":\"s1\",\"epoch\":null,\"results\":[]}", &b, error, detail), 0);
	assert_string_equal(b->epoch, "");
	assert_int_equal(b->cadence_ms, 0); /* not said: [feed] silent_after assumes 60 s */
	store_batch_destroy(b);
	/* issue 16 (A): the agent's cadence, for site silence. */
	assert_int_equal(
	    decode("{\"site\":\"s1\",\"cadence_ms\":15000,\"results\":[]}", &b, error, detail), 0);
	assert_int_equal(b->cadence_ms, 15000);
	store_batch_destroy(b);
}

/* Both clocks of a check reach the store: the UTC check time as sent (never the arrival
 * time) and the agent's monotonic time, for ordering across a clock step. */
static void check_time_and_monotonic_time_are_kept(void **state)
{
	(void)state;
	struct store_batch *b;
	char error[32], detail[256];
	int rc = decode("{\"site\":\"s1\",\"results\":[{\"seq\":7,"
	                "\"ts\":\"2026-11-26T10:00:00.250Z\",\"mono_ms\":123456789,"
	                "\"kind\":\"stream\",\"target\":\"c\",\"status\":\"ok\"}]}",
	                &b, error, detail);
	if (rc)
		fail_msg("%s: %s", error, detail);
	assert_int_equal(b->nrows, 1);
	assert_int_equal(b->rows[0].ts_ms, 1795687200250LL);
	assert_int_equal(b->rows[0].mono_ms, 123456789);
	store_batch_destroy(b);
}

static void bad_input_names_what_is_wrong(void **state)
{
	(void)state;
	static const struct {
		const char *body, *error, *detail;
		int site_known;
	} cases[] = {
	    {"{\"site\":", "invalid JSON", "syntax error", 0},
	    {"{\"site\":\"s\",\"results\":[]} x", "invalid JSON", "trailing", 0},
	    {"[]", "invalid batch", "JSON object", 0},
	    {"{\"results\":[]}", "invalid batch", "field 'site': missing", 0},
	    {"{\"site\":7,\"results\":[]}", "invalid batch", "field 'site': must be a string", 0},
	    {"{\"site\":\"a b\",\"results\":[]}", "invalid batch", "not a valid site id", 0},
	    {"{\"site\":\"s\"}", "invalid batch", "field 'results': missing", 1},
	    {"{\"site\":\"s\",\"results\":{}}", "invalid batch",
	     "field 'results': must be an array", 1},
	    {"{\"site\":\"s\",\"agent\":\"../x y\",\"results\":[]}", "invalid batch",
	     "field 'agent'", 1},
	    /* an epoch is exactly what an outbox draws: 32 lower-case hex digits */
	    {"{\"site\":\"s\",\"epoch\":\"\",\"results\":[]}", "invalid batch", "field 'epoch'", 1},
	    {"{\"site\":\"s\",\"epoch\":7,\"results\":[]}", "invalid batch", "field 'epoch'", 1},
	    /* a cadence is 1 s to 1 day, in whole ms */
	    {"{\"site\":\"s\",\"cadence_ms\":999,\"results\":[]}", "invalid batch",
	     "field 'cadence_ms'", 1},
	    {"{\"site\":\"s\",\"cadence_ms\":\"15000\",\"results\":[]}", "invalid batch",
	     "field 'cadence_ms'", 1},
	    {"{\"site\":\"s\",\"cadence_ms\":1500.5,\"results\":[]}", "invalid batch",
	     "field 'cadence_ms'", 1},
	    {"{\"site\":\"s\",\"cadence_ms\":1e300,\"results\":[]}", "invalid batch",
	     "field 'cadence_ms'", 1},
	    {"{\"site\":\"s\",\"epoch\":\"0123456789ABCDEF0123456789ABCDEF\",\"results\":[]}",
	     "invalid batch", "field 'epoch'", 1},
	    {"{\"site\":\"s\",\"epoch\":\"0123456789abcdef0123456789abcdef0\",\"results\":[]}",
	     "invalid batch", "field 'epoch'", 1},
	    {"{\"site\":\"s\",\"results\":[" R(1, "a", "ok") ",{\"seq\":2}]}", "invalid result",
	     "results[1]: field 'ts'", 1},
	    {"{\"site\":\"s\",\"results\":[" R(0, "a", "ok") "]}", "invalid result",
	     "results[0]: field 'seq'", 1},
	    {"{\"site\":\"s\",\"results\":[" R(1, "a", "fine") "]}", "invalid result",
	     "results[0]: field 'status'", 1},
	    /* strings that would reach JSON and logs must be UTF-8, named by field */
	    {"{\"site\":\"s\",\"results\":[" R(1, "a", "ok") "," R(2, "b", "ok") "," R(
	         3, "c", "ok") "," R(4, "bad\xc0\xaf", "ok") "]}",
	     "invalid result", "results[3]: field 'target': invalid UTF-8", 1},
	    {"{\"site\":\"s\",\"results\":[" R(1, "\xed\xa0\x80", "ok") "]}", "invalid result",
	     "results[0]: field 'target': invalid UTF-8", 1},
	    {"{\"site\":\"s\",\"results\":[{\"seq\":1,\"ts\":\"2026-11-26T10:00:00Z\",\"kind\":"
	     "\"stream\",\"target\":\"a\",\"session\":\"\xf4\x90\x80\x80\",\"status\":\"ok\"}]}",
	     "invalid result", "results[0]: field 'session': invalid UTF-8", 1},
	    /* a NUL would cut the string short: "a\u0000b" must not be stored as "a" */
	    {"{\"site\":\"s\",\"results\":[" R(1, "a\\u0000b", "ok") "]}", "invalid JSON",
	     "NUL character", 1},
	    /* numbers in range: seq 1..2^53-1, ts 2000..2099 and not ahead of us, counts */
	    {"{\"site\":\"s\",\"results\":[" R(9007199254740992, "a", "ok") "]}", "invalid result",
	     "results[0]: field 'seq'", 1},
	    {"{\"site\":\"s\",\"results\":[" R(-3, "a", "ok") "]}", "invalid result",
	     "results[0]: field 'seq'", 1},
	    {"{\"site\":\"s\",\"results\":[{\"seq\":1,\"ts\":\"1970-01-01T00:00:05Z\",\"kind\":"
	     "\"stream\",\"target\":\"a\",\"status\":\"ok\"}]}",
	     "invalid result", "results[0]: field 'ts': outside", 1},
	    {"{\"site\":\"s\",\"results\":[{\"seq\":1,\"ts\":\"2099-01-01T00:00:00Z\",\"kind\":"
	     "\"stream\",\"target\":\"a\",\"status\":\"ok\"}]}",
	     "invalid result", "results[0]: field 'ts': more than 24 h ahead", 1},
	    {"{\"site\":\"s\",\"results\":[{\"seq\":1,\"ts\":\"2026-11-26T10:00:00Z\",\"kind\":"
	     "\"buffer\",\"target\":\"a\",\"status\":\"ok\",\"metrics\":{\"dropped_count\":-1}}]}",
	     "invalid result", "results[0]: field 'metrics'", 1},
	    {"{\"site\":\"s\",\"results\":[{\"seq\":1,\"ts\":\"2026-11-26T10:00:00Z\",\"kind\":"
	     "\"stream\",\"target\":\"a\",\"status\":\"ok\",\"metrics\":{\"fps\":1e999}}]}",
	     "invalid result", "results[0]: field 'metrics'", 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct store_batch *b;
		char error[32] = "", detail[256] = "";
		assert_int_equal(decode(cases[i].body, &b, error, detail), -EINVAL);
		if (strcmp(error, cases[i].error) != 0 || !strstr(detail, cases[i].detail))
			fail_msg("case %zu: got %s / %s", i, error, detail);
		assert_int_equal(b->site[0] != '\0', cases[i].site_known);
		store_batch_destroy(b);
	}
}

/* Real names in Chinese (and an escaped backslash before "u0000", which is text) pass. */
static void utf8_names_and_escaped_text_are_kept(void **state)
{
	(void)state;
	struct store_batch *b;
	char error[32], detail[256];
	int rc = decode("{\"site\":\"s\",\"results\":[" R(1, "济南-考场①", "ok") "," R(
	                    2, "a\\\\u0000", "ok") "," R(3, "\\u6d4e", "ok") "]}",
	                &b, error, detail);
	if (rc)
		fail_msg("%s: %s", error, detail);
	assert_int_equal(b->nrows, 3);
	assert_string_equal(store_batch_str(b, b->rows[0].target), "济南-考场①");
	assert_string_equal(store_batch_str(b, b->rows[1].target), "a\\u0000");
	assert_string_equal(store_batch_str(b, b->rows[2].target), "济");
	store_batch_destroy(b);
}

/* gzip-wraps in[0..len) (windowBits 15 + 16), returns the compressed length. */
static size_t gz(const void *in, size_t len, unsigned char *out, size_t cap)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	size_t n = zs.total_out;
	deflateEnd(&zs);
	return n;
}

static void gzip_bodies_inflate_within_the_limit(void **state)
{
	(void)state;
	const char *json = "{\"site\":\"s1\",\"results\":[" R(1, "a", "ok") "]}";
	unsigned char z[4096];
	size_t zn = gz(json, strlen(json), z, sizeof(z));
	struct vw_buf out;
	vw_buf_init(&out, 0);
	assert_int_equal(ingest_gunzip((const char *)z, zn, 1 << 20, &out), 0);
	assert_int_equal(out.len, strlen(json));
	assert_memory_equal(out.data, json, out.len);

	/* truncated, trailing bytes, not gzip at all */
	vw_buf_reset(&out);
	assert_int_equal(ingest_gunzip((const char *)z, zn - 5, 1 << 20, &out), -EINVAL);
	unsigned char extra[4200];
	memcpy(extra, z, zn);
	memcpy(extra + zn, "junk", 4);
	vw_buf_reset(&out);
	assert_int_equal(ingest_gunzip((const char *)extra, zn + 4, 1 << 20, &out), -EINVAL);
	vw_buf_reset(&out);
	assert_int_equal(ingest_gunzip(json, strlen(json), 1 << 20, &out), -EINVAL);

	/* a bomb: 16 MiB of zeros compresses to ~16 KiB and stops at the 1 MiB limit */
	size_t big = 16u << 20;
	unsigned char *zeros = calloc(1, big), *bomb = malloc(64 << 10);
	size_t bn = gz(zeros, big, bomb, 64 << 10);
	assert_true(bn < (64u << 10));
	vw_buf_reset(&out);
	assert_int_equal(ingest_gunzip((const char *)bomb, bn, 1 << 20, &out), -E2BIG);
	assert_true(out.len <= (1u << 20));
	free(zeros);
	free(bomb);
	vw_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(good_batch_is_sorted_and_leaves_agent_to_the_certificate),
	    cmocka_unit_test(check_time_and_monotonic_time_are_kept),
	    cmocka_unit_test(bad_input_names_what_is_wrong),
	    cmocka_unit_test(utf8_names_and_escaped_text_are_kept),
	    cmocka_unit_test(gzip_bodies_inflate_within_the_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
