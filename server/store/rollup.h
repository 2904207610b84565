/* rollup: the rollup job's memory and its rules, one copy for every backend (issue 13).
 * The job reads new results in order and credits each target's spans (credit.h) to the exam
 * sessions and local days they overlap. Rolling a result touches memory only: every
 * target's hold (loaded once from the backend's rollup_state) and what was credited since
 * the last flush, summed per (session, class, target) and per (agent, kind, target, local
 * day). A flush writes the dirty holds, the sums and the agents' check times through the
 * backend's callbacks, in ONE transaction the backend opens and commits together with its
 * mark, so what is persisted is always a state the job was in: after a crash it resumes from
 * the persisted mark with the persisted holds, and nothing is counted twice or lost.
 * What stays with each backend: how it finds new results (sqlite.c by id, postgresql.c by
 * id below a horizon every earlier transaction has passed), its SQL, and its transactions.
 * Threads: one job, on the writer thread of its store. */
#ifndef VW_ROLLUP_H
#define VW_ROLLUP_H

#include <stddef.h>
#include <stdint.h>

#include "credit.h"
#include "store.h"

/* A flush is due after this many results rolled, whatever the flush interval. */
#define ROLLUP_FLUSH_ROWS 250000

/* The backend's side: reads while rolling, writes while flushing. db is the backend's. */
struct rollup_exams;
struct rollup_io {
	void *db;
	/* The site of agent_id into site (n bytes): 0, -ENOENT when it has no agents row, or
	 * a negative errno. */
	int (*agent_site)(void *db, int64_t agent_id, char *site, size_t n);
	/* Every session of site with end_ms > from_ms, cancelled ones too (what is added to a
	 * session is taken back from the same one; reads leave them out), each handed to
	 * rollup_exams_add(out, ...). 0 or a negative errno. */
	int (*site_exams)(void *db, const char *site, int64_t from_ms, struct rollup_exams *out);
	/* The flush's writes, inside the backend's transaction: a target's hold as it now is;
	 * what one session's class of one target gained; what one local day of a target gained;
	 * an agent's latest check time rolled (a session's rolled_to). 0 or a negative errno. */
	int (*put_hold)(void *db, int64_t agent_id, const char *kind, const char *target,
	                const struct credit_state *cs);
	int (*put_credit)(void *db, int64_t exam_id, int cls, const char *target,
	                  const int64_t ms[VW_STATUS_COUNT], int64_t results);
	int (*put_day)(void *db, int64_t agent_id, const char *kind, const char *target,
	               int64_t day, const int64_t ms[VW_STATUS_COUNT], int64_t results);
	int (*put_agent)(void *db, int64_t agent_id, const char *site, int64_t ts_ms);
};
int rollup_exams_add(struct rollup_exams *out, int64_t id, int64_t start_ms, int64_t end_ms,
                     const char *rooms);

/* The classes one result of kind/target is credited to (at most 2). */
size_t rollup_result_classes(const char *kind, const char *target, int cls[2]);

struct rollup_mem;
/* The job's counters the backend keeps with its mark. */
struct rollup_pos {
	int64_t mark;         /* the last result rolled into memory (the backend's order) */
	int64_t flushed_mark; /* ... and persisted: pruning stays below it */
	int64_t last_flush_ms;
	uint64_t pending;  /* results rolled since the last flush */
	size_t exam_loads; /* sites' sessions read from the database (tests) */
};

/* NULL when out of memory. */
struct rollup_mem *rollup_mem_new(void);
void rollup_mem_free(struct rollup_mem *m); /* accepts NULL */
struct rollup_pos *rollup_pos(struct rollup_mem *m);

/* Loading the persisted job (then memory equals the last flush): agents first, then holds.
 * 0 or -ENOMEM. */
int rollup_load_agent(struct rollup_mem *m, int64_t agent_id, const char *site, int64_t ts_ms);
int rollup_load_hold(struct rollup_mem *m, int64_t agent_id, const char *kind, const char *target,
                     const struct credit_state *cs);

/* One new result: settles its target's previous hold and credits the new one up to now. A
 * result whose agent has no agents row is skipped (logged). The caller moves its mark and
 * pending on success; on failure memory may hold half a result: free it and reload. */
int rollup_result(struct rollup_mem *m, const struct rollup_io *io, int64_t agent_id,
                  const char *kind, const char *target, int status, int64_t ts_ms, int64_t stale_ms,
                  int64_t now_ms);

/* A session changed somewhere: the sessions cached per site are read again when next used. */
void rollup_exams_changed(struct rollup_mem *m);

/* Whether a flush is due at now_ms with flush_ms between flushes. */
int rollup_flush_due(const struct rollup_mem *m, int64_t now_ms, int64_t flush_ms);
/* The flush, part 1 (before the backend's transaction): holds whose bound passed with no
 * next result are credited to their end. Part 2 (inside it): every dirty hold, sum and agent
 * through io's put_*; *holds = how many holds were written. Part 3 (after its commit):
 * memory is marked persisted. On a failure of 1 or 2, free memory and reload. */
int rollup_tails(struct rollup_mem *m, const struct rollup_io *io, int64_t now_ms);
int rollup_write(struct rollup_mem *m, const struct rollup_io *io, size_t *holds);
void rollup_written(struct rollup_mem *m, int64_t now_ms);

#endif
