/* HTTP framing: raw bytes in, the server's decision out (no sockets). Ambiguous framing is
 * refused with 400 before libhttp-parser sees it; limits give 413/431; a request split at
 * any byte parses the same; pipelined requests stop at their boundaries. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http.h"

#define MAX_HEAD 1024
#define MAX_BODY 4096

struct outcome {
	enum http_event ev;
	int status;        /* for errors */
	const char *error; /* for errors */
	size_t used;
};

/* Feeds all of raw in one call after another until the request completes or fails. */
static struct outcome feed_all(struct http_reader *r, const char *raw, size_t len)
{
	struct outcome o = {HTTP_NEED_MORE, 0, NULL, 0};
	while (o.used < len) {
		size_t n = http_reader_feed(r, raw + o.used, len - o.used, &o.ev);
		o.used += n;
		if (o.ev == HTTP_GOT_ERROR) {
			o.error = http_reader_error(r, &o.status);
			return o;
		}
		if (o.ev == HTTP_GOT_REQUEST)
			return o;
		if (o.ev == HTTP_NEED_MORE && n == 0)
			break;
	}
	return o;
}

static struct outcome decide(const char *raw)
{
	struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
	struct outcome o = feed_all(r, raw, strlen(raw));
	http_reader_destroy(r);
	return o;
}

static void assert_refused(const char *raw, int status, const char *why)
{
	struct outcome o = decide(raw);
	if (o.ev != HTTP_GOT_ERROR)
		fail_msg("expected %d for %s, got event %d", status, raw, o.ev);
	assert_int_equal(o.status, status);
	if (why && !strstr(o.error, why))
		fail_msg("error '%s' does not mention '%s'", o.error, why);
}

static void simple_get_parses(void **state)
{
	(void)state;
	struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
	const char *raw = "GET /api/v1/sites?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
	struct outcome o = feed_all(r, raw, strlen(raw));
	assert_int_equal(o.ev, HTTP_GOT_REQUEST);
	assert_int_equal(o.used, strlen(raw));
	const struct http_request *q = http_reader_request(r);
	assert_int_equal(q->verb, HTTP_VERB_GET);
	assert_string_equal(q->method, "GET");
	assert_string_equal(q->path, "/api/v1/sites");
	assert_string_equal(q->query, "x=1");
	assert_int_equal(q->keep_alive, 1);
	assert_int_equal(q->body_len, 0);
	http_reader_destroy(r);
}

static void post_body_split_at_every_byte_parses_the_same(void **state)
{
	(void)state;
	const char *raw = "POST /api/v1/ingest HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n"
	                  "Connection: close\r\n\r\n{\"site\":1}\n";
	size_t len = strlen(raw);
	for (size_t split = 1; split < len; split++) {
		struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
		enum http_event ev = HTTP_NEED_MORE;
		size_t used = 0;
		/* first part, then the rest, each fed until consumed */
		const size_t ends[2] = {split, len};
		for (int part = 0; part < 2 && ev != HTTP_GOT_REQUEST; part++) {
			while (used < ends[part]) {
				size_t n = http_reader_feed(r, raw + used, ends[part] - used, &ev);
				assert_int_not_equal(ev, HTTP_GOT_ERROR);
				used += n;
				if (ev == HTTP_GOT_REQUEST)
					break;
			}
		}
		assert_int_equal(ev, HTTP_GOT_REQUEST);
		assert_int_equal(used, len);
		const struct http_request *q = http_reader_request(r);
		assert_int_equal(q->verb, HTTP_VERB_POST);
		assert_int_equal(q->content_length, 11);
		assert_int_equal(q->body_len, 11);
		assert_memory_equal(q->body, "{\"site\":1}\n", 11);
		assert_int_equal(q->keep_alive, 0);
		http_reader_destroy(r);
	}
}

static void pipelined_requests_stop_at_each_boundary(void **state)
{
	(void)state;
	const char *raw = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
	                  "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"
	                  "\r\nGET /c HTTP/1.0\r\n\r\n";
	size_t len = strlen(raw), off = 0;
	const char *paths[] = {"/a", "/b", "/c"};
	struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
	for (int i = 0; i < 3; i++) {
		struct outcome o = feed_all(r, raw + off, len - off);
		assert_int_equal(o.ev, HTTP_GOT_REQUEST);
		assert_string_equal(http_reader_request(r)->path, paths[i]);
		off += o.used;
		if (i == 0)
			assert_memory_equal(http_reader_request(r)->body, "abc", 3);
		if (i == 2)
			assert_int_equal(http_reader_request(r)->keep_alive, 0); /* HTTP/1.0 */
		http_reader_reset(r);
	}
	assert_int_equal(off, len);
	http_reader_destroy(r);
}

static void chunked_body_is_decoded(void **state)
{
	(void)state;
	struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
	const char *raw = "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	                  "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
	struct outcome o = feed_all(r, raw, strlen(raw));
	assert_int_equal(o.ev, HTTP_GOT_REQUEST);
	assert_int_equal(http_reader_request(r)->chunked, 1);
	assert_int_equal(http_reader_request(r)->body_len, 5);
	assert_string_equal(http_reader_request(r)->body, "abcde");
	http_reader_destroy(r);
}

static void headers_event_comes_before_the_body(void **state)
{
	(void)state;
	struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
	const char *raw = "POST /a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
	                  "Content-Length: 2\r\n\r\n{}";
	enum http_event ev;
	size_t n = http_reader_feed(r, raw, strlen(raw), &ev);
	assert_int_equal(ev, HTTP_GOT_HEADERS);
	assert_int_equal(n, strlen(raw) - 2);
	assert_int_equal(http_reader_request(r)->expect_continue, 1);
	n = http_reader_feed(r, raw + n, 2, &ev);
	assert_int_equal(ev, HTTP_GOT_REQUEST);
	assert_int_equal(n, 2);
	http_reader_destroy(r);
}

static void ambiguous_framing_is_400(void **state)
{
	(void)state;
	assert_refused("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
	               400, "Content-Length with Transfer-Encoding");
	assert_refused("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
	               400, "Content-Length with Transfer-Encoding");
	assert_refused("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400,
	               "duplicate Content-Length");
	/* the duplicate is caught at its name, before the library sees its value */
	assert_refused("POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-LENGTH:", 400,
	               "duplicate Content-Length");
	assert_refused(
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	    400, "duplicate Transfer-Encoding");
	assert_refused("GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n", 400, "obs-fold");
	assert_refused("GET / HTTP/1.1\r\nX-A: 1\r\n\tfolded\r\n\r\n", 400, "obs-fold");
	assert_refused("GET / HTTP/1.1\nHost: a\n\n", 400, "bare LF");
	assert_refused("GET / HTTP/1.1\r\nHost: a\n\r\n", 400, "bare LF");
	assert_refused("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", 400, "bare CR");
	assert_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "duplicate Host");
	assert_refused("POST / HTTP/1.1\r\nContent-Length : 3\r\n\r\nabc", 400, "whitespace");
	assert_refused("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc", 400, "Content-Length");
	assert_refused("POST / HTTP/1.1\r\nContent-Length: 3 3\r\n\r\nabc", 400, "Content-Length");
	assert_refused("POST / HTTP/1.1\r\nContent-Length: 0x3\r\n\r\nabc", 400, "Content-Length");
	assert_refused("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, "':'");
	assert_refused("NOT A REQUEST\r\n\r\n", 400, NULL);
	assert_refused("GET / HTTP/1.1\r\nX-A: \x01\r\n\r\n", 400, "control character");
	assert_refused("GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n", 400, "control character");
}

static void limits_give_413_and_431(void **state)
{
	(void)state;
	char raw[MAX_HEAD + 200];
	snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nX-Big: %0*d\r\n\r\n", MAX_HEAD, 0);
	assert_refused(raw, 431, "headers too large");
	/* the head limit counts the request line too */
	snprintf(raw, sizeof(raw), "GET /%0*d HTTP/1.1\r\n\r\n", MAX_HEAD, 0);
	assert_refused(raw, 431, NULL);
	/* exactly at the limit is fine */
	const char *head = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
	size_t pad = MAX_HEAD - strlen(head) - 4;
	snprintf(raw, sizeof(raw), "%s%0*d\r\n\r\n", head, (int)pad, 0);
	assert_int_equal(strlen(raw), MAX_HEAD);
	assert_int_equal(decide(raw).ev, HTTP_GOT_REQUEST);

	snprintf(raw, sizeof(raw), "POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n", MAX_BODY + 1);
	assert_refused(raw, 413, "body too large");
	snprintf(raw, sizeof(raw), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n",
	         MAX_BODY);
	assert_int_equal(decide(raw).ev, HTTP_GOT_HEADERS); /* allowed; body still to come */
	assert_refused("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400,
	               "Content-Length");

	/* chunked: caught as the body grows past the limit */
	struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
	const char *h = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
	struct outcome o = feed_all(r, h, strlen(h));
	assert_int_equal(o.ev, HTTP_GOT_HEADERS);
	char chunk[1100];
	memset(chunk, 'a', sizeof(chunk));
	int refused = 0;
	for (int i = 0; i < 8 && !refused; i++) {
		enum http_event ev;
		char size[16];
		snprintf(size, sizeof(size), "%zx\r\n", sizeof(chunk));
		http_reader_feed(r, size, strlen(size), &ev);
		http_reader_feed(r, chunk, sizeof(chunk), &ev);
		if (ev == HTTP_GOT_ERROR) {
			int status;
			http_reader_error(r, &status);
			assert_int_equal(status, 413);
			assert_true(i >= 3); /* 4 x 1100 > 4096 */
			refused = 1;
		} else {
			http_reader_feed(r, "\r\n", 2, &ev);
		}
	}
	assert_true(refused);
	http_reader_destroy(r);
}

#define CHUNKED_HEAD "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

static void chunked_framing_is_strict(void **state)
{
	(void)state;
	/* the library (non-strict build) would take any two bytes after chunk data as CRLF */
	assert_refused(CHUNKED_HEAD "3\r\nabcXY0\r\n\r\n", 400, "CRLF");
	assert_refused(CHUNKED_HEAD "3\r\nabc\n0\r\n\r\n", 400, "CRLF");
	assert_refused(CHUNKED_HEAD "3\rXabc\r\n0\r\n\r\n", 400, "bare CR");
	assert_refused(CHUNKED_HEAD "3\nabc\r\n0\r\n\r\n", 400, "chunk size");
	assert_refused(CHUNKED_HEAD "\r\n", 400, "chunk size");
	assert_refused(CHUNKED_HEAD "x\r\n", 400, "chunk size");
	assert_refused(CHUNKED_HEAD "-1\r\n", 400, "chunk size");
	assert_refused(CHUNKED_HEAD "0x3\r\nabc\r\n0\r\n\r\n", 400, "chunk size");
	assert_refused(CHUNKED_HEAD "0000000000000001\r\n", 400, "chunk size");
	assert_refused(CHUNKED_HEAD "1000000000000000\r\n", 413, NULL);
	assert_refused(CHUNKED_HEAD "fffffffffffffff\r\n", 413, NULL); /* 15 digits: too large */
	assert_refused(CHUNKED_HEAD "3;a\nb\r\nabc\r\n0\r\n\r\n", 400, "extension");
	assert_refused(CHUNKED_HEAD "3\r\nabc\r\n0\r\nX-T: 1\n\r\n", 400, "bare LF");
	assert_refused(CHUNKED_HEAD "3\r\nabc\r\n0\r\nX-T: 1\r\n folded\r\n\r\n", 400, "obs-fold");
	assert_refused(CHUNKED_HEAD "3\r\nabc\r\n0\r\nnocolon\r\n\r\n", 400, "':'");
	assert_refused(CHUNKED_HEAD "3\r\nabc\r\n0\r\n\rX", 400, "bare CR");
}

static void chunked_extensions_and_trailers_are_allowed(void **state)
{
	(void)state;
	static const char *const ok[] = {
	    CHUNKED_HEAD "3;name=value\r\nabc\r\n0\r\n\r\n",
	    CHUNKED_HEAD "3 ;x\r\nabc\r\n0\r\n\r\n",
	    CHUNKED_HEAD "00003\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n",
	    CHUNKED_HEAD "A\r\n0123456789\r\n0\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		/* one byte at a time, so every scanner state is entered at a call boundary */
		struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
		size_t len = strlen(ok[i]), used = 0;
		enum http_event ev = HTTP_NEED_MORE;
		while (used < len && ev != HTTP_GOT_REQUEST && ev != HTTP_GOT_ERROR)
			used += http_reader_feed(r, ok[i] + used, 1, &ev);
		if (ev != HTTP_GOT_REQUEST)
			fail_msg("case %zu: event %d", i, ev);
		assert_int_equal(used, len);
		assert_true(http_reader_request(r)->body_len == 3 ||
		            http_reader_request(r)->body_len == 10);
		http_reader_destroy(r);
	}
}

static void chunked_message_stops_at_its_end(void **state)
{
	(void)state;
	struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
	const char *raw = CHUNKED_HEAD "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
	struct outcome o = feed_all(r, raw, strlen(raw));
	assert_int_equal(o.ev, HTTP_GOT_REQUEST);
	assert_int_equal(o.used, strlen(raw) - strlen("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
	http_reader_reset(r);
	o = feed_all(r, raw + o.used, strlen(raw) - o.used);
	assert_int_equal(o.ev, HTTP_GOT_REQUEST);
	assert_string_equal(http_reader_request(r)->method, "GET");
	http_reader_destroy(r);
}

static void codings_we_cannot_read_are_refused(void **state)
{
	(void)state;
	assert_refused("POST / HTTP/1.1\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx", 415,
	               "Content-Encoding");
	assert_refused(
	    "POST / HTTP/1.1\r\nContent-Encoding: gzip, gzip\r\nContent-Length: 1\r\n\r\nx", 415,
	    "Content-Encoding");
	assert_refused("POST / HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Encoding: gzip\r\n"
	               "Content-Length: 1\r\n\r\nx",
	               415, "Content-Encoding");
	assert_refused("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, NULL);
	assert_refused("POST / HTTP/1.1\r\nExpect: something\r\nContent-Length: 1\r\n\r\nx", 417,
	               NULL);
}

static void gzip_is_flagged_for_the_handler(void **state)
{
	(void)state;
	static const char *const forms[] = {"gzip", "GZIP", "x-gzip"};
	for (size_t i = 0; i < 3; i++) {
		char raw[128];
		snprintf(raw, sizeof(raw),
		         "POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: %s\r\nContent-Length: "
		         "1\r\n\r\nx",
		         forms[i]);
		struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
		assert_int_equal(feed_all(r, raw, strlen(raw)).ev, HTTP_GOT_REQUEST);
		assert_int_equal(http_reader_request(r)->gzip, 1);
		http_reader_destroy(r);
	}
	struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
	const char *id = "POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: identity\r\n"
	                 "Content-Length: 1\r\n\r\nx";
	assert_int_equal(feed_all(r, id, strlen(id)).ev, HTTP_GOT_REQUEST);
	assert_int_equal(http_reader_request(r)->gzip, 0);
	http_reader_destroy(r);
}

static void leading_blank_lines_are_ignored_and_not_a_start(void **state)
{
	(void)state;
	struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
	enum http_event ev;
	assert_int_equal(http_reader_feed(r, "\r\n\r\n", 4, &ev), 4);
	assert_int_equal(ev, HTTP_NEED_MORE);
	assert_int_equal(http_reader_started(r), 0);
	http_reader_feed(r, "G", 1, &ev);
	assert_int_equal(http_reader_started(r), 1);
	http_reader_destroy(r);
}

/* RFC 9112 3.2: HTTP/1.1 needs exactly one Host; HTTP/1.0 predates it. */
static void host_is_required_once_in_http11(void **state)
{
	(void)state;
	assert_refused("GET /healthz HTTP/1.1\r\n\r\n", 400, "missing Host");
	assert_refused("POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 400, "missing Host");
	assert_refused("GET / HTTP/1.1\r\nhost: a\r\nHOST: a\r\n\r\n", 400, "duplicate Host");
	/* an empty Host is allowed by the RFC (a target without an authority) */
	assert_int_equal(decide("GET / HTTP/1.1\r\nHost:\r\n\r\n").ev, HTTP_GOT_REQUEST);
	assert_int_equal(decide("GET / HTTP/1.1\r\nhOsT: a\r\n\r\n").ev, HTTP_GOT_REQUEST);
	assert_int_equal(decide("GET /healthz HTTP/1.0\r\n\r\n").ev, HTTP_GOT_REQUEST);
	/* split at every byte: the check waits for the whole head */
	const char *raw = "GET / HTTP/1.1\r\nX-A: 1\r\nHost: a\r\n\r\n";
	size_t n = strlen(raw);
	for (size_t cut = 1; cut < n; cut++) {
		struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
		struct outcome a = feed_all(r, raw, cut);
		assert_int_equal(a.ev, HTTP_NEED_MORE);
		struct outcome b = feed_all(r, raw + cut, n - cut);
		assert_int_equal(b.ev, HTTP_GOT_REQUEST);
		http_reader_destroy(r);
	}
}

/* RFC 9112 3.2: the target is visible ASCII. A TAB or a byte >= 0x80 would otherwise pass
 * the library and reach handlers and logs raw (security review D3). */
static void request_target_must_be_visible_ascii(void **state)
{
	(void)state;
	assert_refused("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target");
	assert_refused("GET /a\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target");
	assert_refused("GET /\xc3\xa9t\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target");
	assert_refused("GET /a?q=\xff HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target");
	assert_refused("GET /a?q=1\t HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request target");
	/* percent-encoded, the same bytes are visible ASCII and pass */
	assert_int_equal(decide("GET /%C3%A9?q=%09 HTTP/1.1\r\nHost: a\r\n\r\n").ev,
	                 HTTP_GOT_REQUEST);
	/* header values may still carry obs-text (RFC 9110 5.5) */
	assert_int_equal(decide("GET / HTTP/1.1\r\nHost: a\r\nX-A: \xc3\xa9\r\n\r\n").ev,
	                 HTTP_GOT_REQUEST);
}

/* Only the __Host- prefixed cookie is ours: the prefix makes a browser refuse it unless it is
 * Secure, Path=/ and host-only, so a sibling subdomain cannot plant it. */
static void only_the_host_prefixed_session_cookie_is_kept(void **state)
{
	(void)state;
	static const struct {
		const char *cookie, *want;
		unsigned n;
	} cases[] = {
	    {"__Host-vw_session=abc", "abc", 1},
	    {"a=1; __Host-vw_session=abc; b=2", "abc", 1},
	    {"vw_session=abc", "", 0},
	    {"__host-vw_session=abc", "", 0},
	    {"__Secure-vw_session=abc", "", 0},
	    {"__Host-vw_session=abc; __Host-vw_session=def", "", 2},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char raw[256];
		snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\nCookie: %s\r\n\r\n",
		         cases[i].cookie);
		struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
		struct outcome o = feed_all(r, raw, strlen(raw));
		assert_int_equal(o.ev, HTTP_GOT_REQUEST);
		const struct http_request *q = http_reader_request(r);
		if (strcmp(q->session_cookie, cases[i].want) != 0 ||
		    q->session_cookies != cases[i].n)
			fail_msg("Cookie: %s gave '%s' x%u", cases[i].cookie, q->session_cookie,
			         q->session_cookies);
		http_reader_destroy(r);
	}
}

static void response_head_has_the_contract_headers(void **state)
{
	(void)state;
	struct vw_buf b;
	vw_buf_init(&b, 0);
	/* 2026-11-26T19:11:18Z is a Thursday */
	assert_int_equal(http_format_head(&b, 413, "Retry-After: 1\r\n", 17, 0, 1795720278000LL),
	                 0);
	const char *s = vw_buf_cstr(&b);
	assert_non_null(strstr(s, "HTTP/1.1 413 Content Too Large\r\n"));
	assert_non_null(strstr(s, "\r\nDate: Thu, 26 Nov 2026 19:11:18 GMT\r\n"));
	assert_non_null(strstr(s, "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strstr(s, "\r\nContent-Length: 17\r\n"));
	assert_non_null(strstr(s, "\r\nConnection: close\r\n"));
	assert_non_null(strstr(s, "\r\nRetry-After: 1\r\n\r\n"));
	vw_buf_reset(&b);
	http_format_head(&b, 200, NULL, 2, 1, 0);
	assert_null(strstr(vw_buf_cstr(&b), "Connection"));
	vw_buf_free(&b);
}

static void responses_carry_any_content_type_and_streams_have_no_length(void **state)
{
	(void)state;
	struct vw_buf b;
	vw_buf_init(&b, 0);
	struct http_head h = {200, HTTP_CT_CSV, "X-A: 1\r\n", 5, 1};
	assert_int_equal(http_format_response_head(&b, &h, 0), 0);
	const char *s = vw_buf_cstr(&b);
	assert_non_null(strstr(s, "\r\nContent-Type: text/csv; charset=utf-8\r\n"));
	assert_non_null(strstr(s, "\r\nContent-Length: 5\r\n"));
	assert_non_null(strstr(s, "\r\nX-A: 1\r\n\r\n"));
	vw_buf_reset(&b);
	h = (struct http_head){200, HTTP_CT_SSE, NULL, -1, 0};
	assert_int_equal(http_format_response_head(&b, &h, 0), 0);
	s = vw_buf_cstr(&b);
	assert_non_null(strstr(s, "\r\nContent-Type: text/event-stream\r\n"));
	assert_null(strstr(s, "Content-Length"));
	assert_non_null(strstr(s, "\r\nConnection: close\r\n\r\n"));
	/* A stream cannot be followed by another response; a CR/LF would inject a header. */
	vw_buf_reset(&b);
	h = (struct http_head){200, HTTP_CT_SSE, NULL, -1, 1};
	assert_int_equal(http_format_response_head(&b, &h, 0), -EINVAL);
	h = (struct http_head){200, "text/html\r\nSet-Cookie: x=1", NULL, 0, 1};
	assert_int_equal(http_format_response_head(&b, &h, 0), -EINVAL);
	assert_int_equal(b.len, 0);
	vw_buf_free(&b);

	char d[128];
	assert_int_equal(http_attachment_header(d, sizeof(d), "sites.csv"), 0);
	assert_string_equal(d, "Content-Disposition: attachment; filename=sites.csv\r\n");
	assert_int_equal(http_attachment_header(d, sizeof(d), "a\"b.csv"), -EINVAL);
	assert_int_equal(http_attachment_header(d, sizeof(d), "a\r\nX: y"), -EINVAL);
	assert_int_equal(http_attachment_header(d, sizeof(d), ".hidden"), -EINVAL);
	assert_int_equal(http_attachment_header(d, sizeof(d), "../x"), -EINVAL);
	assert_int_equal(http_attachment_header(d, sizeof(d), ""), -EINVAL);
}

static const struct http_request *parse_one(struct http_reader *r, const char *raw)
{
	http_reader_reset(r);
	struct outcome o = feed_all(r, raw, strlen(raw));
	assert_int_equal(o.ev, HTTP_GOT_REQUEST);
	return http_reader_request(r);
}

static void accept_encoding_and_if_none_match_are_passed_on(void **state)
{
	(void)state;
	struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
	const struct {
		const char *ae;
		int gzip;
	} cases[] = {
	    {"gzip", 1},        {"deflate, gzip;q=0.5", 1},
	    {"br, GZIP", 1},    {"*", 1},
	    {"gzip;q=0", 0},    {"gzip; q=0.000", 0},
	    {"deflate, br", 0}, {"gzipx", 0},
	    {"x-gzip", 1},      {"identity", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char raw[256];
		snprintf(raw, sizeof(raw),
		         "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: %s\r\n\r\n", cases[i].ae);
		assert_int_equal(parse_one(r, raw)->accept_gzip, cases[i].gzip);
	}
	const struct http_request *q = parse_one(r, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(q->accept_gzip, 0);
	assert_string_equal(q->if_none_match, "");
	q = parse_one(r, "GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match:  \"abc-1\" \r\n\r\n");
	assert_string_equal(q->if_none_match, "\"abc-1\"");
	http_reader_destroy(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(simple_get_parses),
	    cmocka_unit_test(responses_carry_any_content_type_and_streams_have_no_length),
	    cmocka_unit_test(accept_encoding_and_if_none_match_are_passed_on),
	    cmocka_unit_test(post_body_split_at_every_byte_parses_the_same),
	    cmocka_unit_test(pipelined_requests_stop_at_each_boundary),
	    cmocka_unit_test(chunked_body_is_decoded),
	    cmocka_unit_test(headers_event_comes_before_the_body),
	    cmocka_unit_test(ambiguous_framing_is_400),
	    cmocka_unit_test(limits_give_413_and_431),
	    cmocka_unit_test(chunked_framing_is_strict),
	    cmocka_unit_test(chunked_extensions_and_trailers_are_allowed),
	    cmocka_unit_test(chunked_message_stops_at_its_end),
	    cmocka_unit_test(codings_we_cannot_read_are_refused),
	    cmocka_unit_test(gzip_is_flagged_for_the_handler),
	    cmocka_unit_test(leading_blank_lines_are_ignored_and_not_a_start),
	    cmocka_unit_test(host_is_required_once_in_http11),
	    cmocka_unit_test(request_target_must_be_visible_ascii),
	    cmocka_unit_test(only_the_host_prefixed_session_cookie_is_kept),
	    cmocka_unit_test(response_head_has_the_contract_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
