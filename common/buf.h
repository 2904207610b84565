/* buf: a growable byte buffer with a hard cap, for building JSON and HTTP messages.
 * Owned by one thread at a time; vw_buf_free releases the memory. */
#ifndef VW_BUF_H
#define VW_BUF_H

#include <stddef.h>

struct vw_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* hard limit; 0 = 64 MiB */
	int err;    /* sticky: -ENOMEM or -E2BIG once a write failed */
};

void vw_buf_init(struct vw_buf *b, size_t max);
void vw_buf_free(struct vw_buf *b);
void vw_buf_reset(struct vw_buf *b);
/* Makes room for extra more bytes (plus a NUL) without changing len. */
int vw_buf_reserve(struct vw_buf *b, size_t extra);
int vw_buf_append(struct vw_buf *b, const void *p, size_t n);
int vw_buf_puts(struct vw_buf *b, const char *s);
int vw_buf_printf(struct vw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included, escaping control characters. */
int vw_buf_json_str(struct vw_buf *b, const char *s);
/* NUL-terminates without counting the NUL in len. */
const char *vw_buf_cstr(struct vw_buf *b);

#endif
