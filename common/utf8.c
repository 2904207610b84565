#include "utf8.h"

#include <errno.h>
#include <stdint.h>

/* Table 3-7 of the Unicode Standard (Well-Formed UTF-8 Byte Sequences): the second byte's
 * range depends on the first, which is what excludes overlongs (E0 80..9F, F0 80..8F),
 * surrogates (ED A0..BF) and code points above U+10FFFF (F4 90..BF, F5..FF). */
int vw_utf8_check(const char *s, size_t len, size_t *bad_at)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned c = p[i];
		size_t n;
		unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
		if (c == 0)
			goto bad;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 2;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 3;
			if (c == 0xE0)
				lo = 0xA0;
			else if (c == 0xED)
				hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 4;
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;
		} else {
			goto bad; /* 80..C1 (continuation or overlong lead), F5..FF */
		}
		if (len - i < n || p[i + 1] < lo || p[i + 1] > hi)
			goto bad;
		for (size_t k = 2; k < n; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xBF)
				goto bad;
		i += n;
	}
	return 0;
bad:
	if (bad_at)
		*bad_at = i;
	return -EILSEQ;
}

int vw_utf8_valid(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return vw_utf8_check(s, n, NULL) == 0;
}
