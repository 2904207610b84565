/* libFuzzer target: what an agent's POST body goes through off the loop — ingest_gunzip
 * (Content-Encoding: gzip) and ingest_decode (JSON batch -> store rows). The first byte
 * chooses the path: even = plain JSON, odd = gzip then JSON. The body is passed without a
 * trailing NUL so an over-read by the JSON parser shows up under ASan. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "store.h"

/* Small inflate limit: a gzip bomb must stop at it. */
#define MAX_PLAIN (1u << 20)

static void decode(const char *body, size_t len)
{
	struct store_batch *b = store_batch_create();
	if (!b)
		return;
	char error[32], detail[256];
	int rc = ingest_decode(body, len, b, error, sizeof(error), detail, sizeof(detail));
	if (rc == 0) {
		/* rows must be sorted by seq and their strings inside the arena */
		for (size_t i = 0; i < b->nrows; i++) {
			if (i && b->rows[i - 1].seq > b->rows[i].seq)
				abort();
			const struct store_row *r = &b->rows[i];
			uint32_t offs[] = {r->target, r->session, r->codec, r->faults, r->metrics};
			for (size_t k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
				if (offs[k] >= b->arena.len)
					abort();
				(void)strlen(store_batch_str(b, offs[k]));
			}
			/* a thumbnail (issue 16 C) lies in the arena, bounded, a JPEG */
			if (r->thumb_len && ((size_t)r->thumb + r->thumb_len > b->arena.len ||
			                     r->thumb_len > INGEST_THUMB_MAX ||
			                     (unsigned char)b->arena.data[r->thumb] != 0xff))
				abort();
		}
	} else if (rc != -EINVAL && rc != -ENOMEM) {
		abort();
	} else if (!memchr(error, '\0', sizeof(error)) || !error[0]) {
		abort();
	}
	store_batch_destroy(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int gz = data[0] & 1;
	size--;
	/* an exact-size copy: no NUL after it, unlike the server's request buffer */
	char *body = malloc(size ? size : 1);
	if (!body)
		return 0;
	memcpy(body, data + 1, size);
	if (!gz) {
		decode(body, size);
	} else {
		struct vw_buf plain;
		vw_buf_init(&plain, MAX_PLAIN + 1);
		int rc = ingest_gunzip(body, size, MAX_PLAIN, &plain);
		if (rc == 0) {
			if (plain.len > MAX_PLAIN)
				abort();
			decode(plain.data ? plain.data : "", plain.len);
		} else if (rc != -EINVAL && rc != -E2BIG && rc != -ENOMEM) {
			abort();
		}
		vw_buf_free(&plain);
	}
	free(body);
	return 0;
}
