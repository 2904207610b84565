/* metrics: the agent's Prometheus metrics, written as a node_exporter textfile
 * ([agent] metrics_file). Counts what the checks found (by kind and status, durations),
 * reads the outbox and uplink for depth, age, uploads and drops, and rewrites the file
 * atomically (common/fileio: tmp file, fsync, rename) on a timer of its own. Everything runs
 * on the loop thread, which alone writes the file; metrics_destroy frees what create made.
 * The family names and their meaning: docs/METRICS.md "Agent". */
#ifndef VW_METRICS_H
#define VW_METRICS_H

#include <stddef.h>
#include <uv.h>

#include "agent_conf.h"
#include "buf.h"
#include "outbox.h"
#include "result.h"
#include "uplink.h"

struct metrics;

/* Counting starts now; nothing is written until metrics_start. */
int metrics_create(uv_loop_t *loop, const struct agent_conf *cfg, struct metrics **out);
/* The outbox and uplink read at each write (either may be NULL). */
void metrics_attach(struct metrics *m, struct outbox *ob, struct uplink *up);
/* Results the agent produced (committed or not: a check happened). Schedules a rewrite
 * within a second. */
void metrics_observe(struct metrics *m, const struct vw_result *r, size_t n);
/* Writes the file now and then at least every [agent] metrics_interval. A no-op without
 * metrics_file. */
void metrics_start(struct metrics *m);
/* Writes the file a last time and closes the timer; closed_cb(arg) follows. */
void metrics_stop(struct metrics *m, void (*closed_cb)(void *), void *arg);
void metrics_destroy(struct metrics **m);
/* The exposition text (format 0.0.4) of the current values, appended to b. */
int metrics_render(struct metrics *m, struct vw_buf *b);

#endif
