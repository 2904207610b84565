/* published: scores made public (item 3.6), in <state_dir>/scores.db, table published_scores —
 * write-once rows, each the computed document with the rubric version and parameters it was
 * computed with, so a later rubric change never changes a published score.
 * Loop thread: published_open/_close/_add/_list and the callbacks; the SQLite work runs on
 * the module's own worker (common/worker.c). Rows handed to a callback live until it returns. */
#ifndef VW_PUBLISHED_H
#define VW_PUBLISHED_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct published_row {
	int64_t id; /* set by the store */
	const char *org;
	const char *scope_city; /* "" when published by the province */
	int64_t from_ms, to_ms, published_ms;
	int score;                  /* 0-5; -1 when there was no session */
	const char *rubric_version; /* score_rubric.version */
	const char *rubric_text;    /* score_rubric_canonical */
	const char *actor;          /* who published (token id) */
	const char *doc;            /* the score document as served (JSON) */
};

struct published;

/* status: 0, or a negative errno (-ESHUTDOWN, -EIO, -ENOSPC). */
typedef void (*published_cb)(void *ud, int status, const struct published_row *rows, size_t n);

int published_open(uv_loop_t *loop, const char *path, struct published **out, char *err,
                   size_t errlen);
void published_close(struct published *p); /* accepts NULL; answers queued jobs first */
/* Stores a copy of row; cb gets the stored row (its id set). 0 or -EAGAIN/-ENOMEM. */
int published_add(struct published *p, const struct published_row *row, published_cb cb, void *ud);
/* One page of an org's published scores, newest first (by id: ids grow with publication). */
struct published_query {
	const char *org;
	const char *scope_city; /* NULL: any; else only those published in that scope */
	int64_t before_id;      /* 0: from the newest; else only ids below it (the cursor) */
	size_t limit;           /* 1..PUBLISHED_PAGE_MAX */
};
#define PUBLISHED_PAGE_MAX 100
/* cb gets at most limit + 1 rows: one more than the page says another page follows.
 * -EINVAL for a limit outside 1..PUBLISHED_PAGE_MAX. */
int published_list(struct published *p, const struct published_query *q, published_cb cb, void *ud);

#endif
