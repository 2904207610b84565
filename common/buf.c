#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VW_BUF_DEFAULT_MAX (64u << 20)

void vw_buf_init(struct vw_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max ? max : VW_BUF_DEFAULT_MAX;
}

void vw_buf_free(struct vw_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

void vw_buf_reset(struct vw_buf *b)
{
	b->len = 0;
	b->err = 0;
}

static int reserve(struct vw_buf *b, size_t extra)
{
	if (b->err)
		return b->err;
	if (extra > b->max || b->len + extra + 1 > b->max)
		return b->err = -E2BIG;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if (cap > b->max)
		cap = b->max;
	char *p = realloc(b->data, cap);
	if (!p)
		return b->err = -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int vw_buf_reserve(struct vw_buf *b, size_t extra)
{
	return reserve(b, extra);
}

int vw_buf_append(struct vw_buf *b, const void *p, size_t n)
{
	int rc = reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int vw_buf_puts(struct vw_buf *b, const char *s)
{
	return vw_buf_append(b, s, strlen(s));
}

int vw_buf_printf(struct vw_buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return b->err = -EINVAL;
	if ((size_t)n < sizeof(small))
		return vw_buf_append(b, small, (size_t)n);
	int rc = reserve(b, (size_t)n);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int vw_buf_json_str(struct vw_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	vw_buf_append(b, "\"", 1);
	const char *run = s;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		vw_buf_append(b, run, (size_t)(p - run));
		run = p + 1;
		switch (c) {
		case '"':
			vw_buf_append(b, "\\\"", 2);
			break;
		case '\\':
			vw_buf_append(b, "\\\\", 2);
			break;
		case '\n':
			vw_buf_append(b, "\\n", 2);
			break;
		case '\r':
			vw_buf_append(b, "\\r", 2);
			break;
		case '\t':
			vw_buf_append(b, "\\t", 2);
			break;
		default: {
			char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			vw_buf_append(b, u, 6);
		}
		}
	}
	vw_buf_append(b, run, strlen(run));
	return vw_buf_append(b, "\"", 1);
}

const char *vw_buf_cstr(struct vw_buf *b)
{
	if (reserve(b, 0))
		return "";
	b->data[b->len] = '\0';
	return b->data;
}
