/* store: the collector's SQLite database (WAL) — schema and migrations, the writer thread
 * with group commit, and the short read queries behind the API.
 * Threads: store_open/store_start/store_submit/store_close and the read functions run on
 * the loop thread; one writer thread owns the write connection. A batch passes from the
 * submitter to the store and comes back through its done callback on the loop thread,
 * after the commit that holds its rows; the submitter frees it (store_batch_destroy). */
#ifndef VW_STORE_H
#define VW_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "result.h"

#define STORE_SCHEMA_VERSION 2

/* One result, compact: strings live in the batch's arena (offsets, NUL-terminated). */
struct store_row {
	int64_t seq, ts_ms, mono_ms;
	uint8_t kind, status; /* enum vw_kind, enum vw_status */
	uint32_t target, session, codec, faults, metrics;
};

struct store_batch {
	/* Set by the submitter. */
	char site[64];
	char agent[64];
	char org[65];
	char city[129];
	int64_t received_ms;
	struct store_row *rows; /* sorted by seq (store_batch_sort) */
	size_t nrows, cap;
	struct vw_buf arena;
	void (*done)(struct store_batch *b); /* loop thread, once */
	void *data;
	/* Set by the store before done runs. */
	int status;        /* 0, or negative errno: -ESHUTDOWN, -EIO ... */
	int64_t acked_seq; /* the agent's high-water mark after the commit */
	size_t stored;     /* rows written; the rest were at or below the mark */
	size_t gap_seqs;   /* seqs skipped over (recorded in seq_gaps), see store.c */
	struct store_batch *next;
};

struct store_batch *store_batch_create(void);
void store_batch_destroy(struct store_batch *b); /* accepts NULL */
/* Copies the result into the batch (faults and metrics encoded as JSON text). */
int store_batch_add(struct store_batch *b, const struct vw_result *r);
void store_batch_sort(struct store_batch *b);
const char *store_batch_str(const struct store_batch *b, uint32_t off);

struct store;

/* Opens (creating or migrating) the database at path. Runs on the caller's thread. */
int store_open(const char *path, struct store **out, char *err, size_t errlen);
/* Before store_start: 1 = synchronous=FULL (the default: an ack survives power loss),
 * 0 = NORMAL (survives only a crash of the process). For measurements; see DELIVERY.md. */
int store_set_synchronous(struct store *s, int full);
/* Starts the writer thread; at most queue_max batches wait for it. */
int store_start(struct store *s, uv_loop_t *loop, size_t queue_max);
/* Queues a batch for the next group commit. -EAGAIN when the queue is full, -ESHUTDOWN
 * once store_close began. */
int store_submit(struct store *s, struct store_batch *b);
/* Commits what is queued, runs the remaining done callbacks, stops the writer and closes
 * the database. If started, the memory goes when the loop runs the async handle's close
 * callback. Accepts NULL. */
void store_close(struct store *s);

struct store_stats {
	uint64_t commits, batches, rows_stored, rows_skipped, gap_seqs;
};
void store_get_stats(struct store *s, struct store_stats *out); /* loop thread */

/* --- reads (loop thread, read-only connection, short queries) ------------------------- */

struct store_site {
	const char *site, *org, *city;
	int64_t last_report_ms;
	int64_t ok, degraded, down; /* cameras: latest stream result per target */
};
struct store_target {
	const char *agent, *kind, *target, *status, *session, *codec;
	const char *faults, *metrics; /* JSON text as stored */
	int64_t ts_ms, seq;
};

/* Calls fn for every site, ordered by site id. fn returns non-zero to stop. */
int store_list_sites(struct store *s, int (*fn)(void *ud, const struct store_site *site), void *ud);
/* Calls site_fn once then target_fn for each (agent, kind, target)'s latest result.
 * -ENOENT when the site never reported. */
int store_get_site(struct store *s, const char *site,
                   int (*site_fn)(void *ud, const struct store_site *site),
                   int (*target_fn)(void *ud, const struct store_target *t), void *ud);
/* The agent's high-water mark (0 when unknown). */
int store_high_seq(struct store *s, const char *site, const char *agent, int64_t *out);
/* Rows in the results table (tests, diagnostics). */
int store_count_results(struct store *s, int64_t *out);

#endif
