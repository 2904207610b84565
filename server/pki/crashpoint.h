/* crashpoint: named places where a test makes the process die, to prove that a crash there
 * leaves the records consistent. Inert unless VW_TEST_CRASH_AT names the place: then the
 * process leaves with _exit(99) at once (no atexit, no flush, no SQLite rollback: as a
 * power cut or kill -9 would). Any thread; compiled in always, documented in README.md. */
#ifndef VW_CRASHPOINT_H
#define VW_CRASHPOINT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CRASHPOINT_STATUS 99

static inline void crashpoint(const char *name)
{
	const char *at = getenv("VW_TEST_CRASH_AT");
	if (at && strcmp(at, name) == 0) {
		fprintf(stderr, "level=warn event=test_crash point=%s\n", name);
		_exit(CRASHPOINT_STATUS);
	}
}

#endif
