/* libFuzzer: draw_verify (server/core/draw.c) on any bytes as a published document, with the
 * first line split off as the private part when the input holds a NUL — `draw verify FILE` reads
 * documents from anyone. It must answer 0, -EBADMSG or -EINVAL without a crash or a leak. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), err[512];
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	size_t n = strlen(s); /* up to the first NUL: the document; after it: the private part */
	const char *priv = n < size ? s + n + 1 : NULL;
	int rc = draw_verify(s, priv, NULL, err, sizeof err);
	if (rc != 0 && rc != -EBADMSG && rc != -EINVAL && rc != -ENOMEM)
		abort();
	free(s);
	return 0;
}
