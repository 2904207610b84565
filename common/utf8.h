/* utf8: the one strict UTF-8 check for every string that reaches JSON, a log line or a
 * certificate (RFC 3629: shortest form only, no surrogates, nothing above U+10FFFF) — and,
 * because a C string ends at the first NUL, no NUL either. Pure functions on the caller's
 * bytes: no allocation, any thread. */
#ifndef VW_UTF8_H
#define VW_UTF8_H

#include <stddef.h>

/* 0 when s[0..len) is valid; -EILSEQ otherwise, with the offset of the first byte of the
 * offending sequence in *bad_at (bad_at may be NULL). */
int vw_utf8_check(const char *s, size_t len, size_t *bad_at);
/* 1 when the NUL-terminated s is valid UTF-8, 0 otherwise. */
int vw_utf8_valid(const char *s);

#endif
