/* testdir: a fresh temporary directory per test and its removal, for unit tests that need
 * real files (SQLite databases, keys). Header-only: each test binary is one .c file. */
#ifndef VW_TESTDIR_H
#define VW_TESTDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* dir (at least 32 bytes) becomes /tmp/vw-NAME-XXXXXX, created 0700. 0 or -1. */
static inline int testdir_make(char *dir, size_t n, const char *name)
{
	if ((size_t)snprintf(dir, n, "/tmp/vw-%s-XXXXXX", name) >= n)
		return -1;
	return mkdtemp(dir) ? 0 : -1;
}

static inline int testdir_unlink(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb, (void)flag, (void)f;
	return remove(p);
}

/* Removes dir and everything below it, without a shell. 0 or -1. */
static inline int testdir_remove(const char *dir)
{
	return nftw(dir, testdir_unlink, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
