/* libFuzzer target: the HTTP request path as conn.c drives it — http_reader_feed over a
 * connection's bytes, requests pipelined back to back, reset after each one. The same
 * input is fed twice, whole and in pieces whose sizes come from the input, and both runs
 * must frame the same requests: a difference is a framing bug (the kind smuggling
 * exploits), so it aborts. Sanitizers catch the memory errors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* Small limits so the fuzzer reaches 431 and 413 without megabyte inputs. */
#define MAX_HEAD 512
#define MAX_BODY 2048
#define MAX_REQUESTS 64

struct trace {
	size_t nreq;
	uint64_t hash[MAX_REQUESTS]; /* method, path, query, flags and body of each request */
	int error;                   /* the run ended in HTTP_GOT_ERROR */
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return h;
}

static uint64_t request_hash(const struct http_request *q)
{
	uint64_t h = 0xcbf29ce484222325ull;
	h = fnv(h, q->method, strlen(q->method) + 1);
	h = fnv(h, q->path, strlen(q->path) + 1);
	h = fnv(h, q->query, strlen(q->query) + 1);
	int flags[] = {q->verb, q->keep_alive, q->expect_continue, q->chunked, q->gzip};
	h = fnv(h, flags, sizeof(flags));
	h = fnv(h, &q->content_length, sizeof(q->content_length));
	h = fnv(h, q->body, q->body_len);
	/* the body is NUL-terminated for the handler's convenience */
	if (q->body[q->body_len] != '\0')
		abort();
	return h;
}

/* Feeds data in pieces of step(i) bytes (0 = all at once), the way conn.c does: feed
 * what is unparsed, answer on GOT_REQUEST, stop on GOT_ERROR. */
static void run(const uint8_t *data, size_t len, const uint8_t *steps, size_t nsteps,
                struct trace *t)
{
	struct http_reader *r = http_reader_create(MAX_HEAD, MAX_BODY);
	if (!r)
		abort();
	memset(t, 0, sizeof(*t));
	size_t off = 0, avail = 0, k = 0;
	while (off < len && t->nreq < MAX_REQUESTS) {
		/* bytes "received" so far */
		if (avail == off) {
			size_t step = nsteps ? (size_t)(steps[k++ % nsteps] % 17) + 1 : len;
			avail = avail + step > len ? len : avail + step;
		}
		enum http_event ev;
		size_t n = http_reader_feed(r, (const char *)data + off, avail - off, &ev);
		if (n > avail - off)
			abort(); /* consumed more than it was given */
		off += n;
		if (ev == HTTP_GOT_ERROR) {
			int status;
			const char *why = http_reader_error(r, &status);
			if (!why || status < 400 || status > 599)
				abort();
			char buf[64];
			snprintf(buf, sizeof(buf), "%s", http_status_text(status));
			t->error = 1;
			break;
		}
		if (ev == HTTP_GOT_REQUEST) {
			t->hash[t->nreq++] = request_hash(http_reader_request(r));
			http_reader_reset(r);
			continue;
		}
		if (ev == HTTP_NEED_MORE && n != avail - off + n)
			abort(); /* NEED_MORE promises every byte was consumed */
	}
	http_reader_destroy(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* First 4 bytes: piece sizes for the split run; the rest is the connection's input. */
	if (size < 4)
		return 0;
	const uint8_t *steps = data;
	data += 4;
	size -= 4;
	struct trace whole, split;
	run(data, size, NULL, 0, &whole);
	run(data, size, steps, 4, &split);
	if (whole.nreq != split.nreq ||
	    memcmp(whole.hash, split.hash, whole.nreq * sizeof(whole.hash[0])) != 0) {
		fprintf(stderr, "framing differs: whole=%zu requests, split=%zu\n", whole.nreq,
		        split.nreq);
		abort();
	}
	/* One run may stop at an error the other has not reached yet only if the input ran
	 * out; with the whole input consumed both must agree. */
	if (whole.nreq < MAX_REQUESTS && whole.error != split.error) {
		fprintf(stderr, "error differs: whole=%d split=%d\n", whole.error, split.error);
		abort();
	}
	return 0;
}
