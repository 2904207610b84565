/* ingest: POST /api/v1/ingest — an agent's batch of results (JSON, optionally gzip),
 * inflated and decoded off the loop (libuv work queue), checked against the client
 * certificate, committed by the store, then acknowledged with the agent's high-water mark. Handlers
 * run on the loop thread; the decode runs on a libuv pool thread and touches only its own job. The
 * ingest object is freed by ingest_destroy, after the loop has no more jobs of its (shutdown drains
 * them). */
#ifndef VW_INGEST_H
#define VW_INGEST_H

#include <stddef.h>
#include <uv.h>

#include "conn.h"
#include "store.h"

struct ingest;

struct ingest_limits {
	size_t max_inflight;     /* batches being decoded or waiting for a commit; more get 503 */
	size_t max_body_bytes;   /* a gzip body may not inflate past this (413) */
	size_t max_batch_bytes;  /* decoded batches held at once, all together; more get 503 */
	long new_epochs_per_day; /* new epochs per agent in 24 h; more get 403. 0 = no bound */
};

int ingest_create(uv_loop_t *loop, struct store *store, const struct ingest_limits *lim,
                  struct ingest **out);
void ingest_destroy(struct ingest *in); /* accepts NULL */
/* New body and batch limits (a reload); max_inflight stays as created (it sizes queues). */
void ingest_set_limits(struct ingest *in, const struct ingest_limits *lim);
void ingest_handle(struct ingest *in, struct conn *c, const struct http_request *req);
/* Called on the loop thread after each batch's commit, before its acknowledgement is sent
 * (the event hub publishes from it). b is valid for the call only. NULL: none. */
typedef void (*ingest_commit_fn)(void *ud, const struct store_batch *b);
void ingest_set_on_commit(struct ingest *in, ingest_commit_fn fn, void *ud);

/* The pure part, for tests and fuzzing: parses body into b (site, agent, rows sorted by
 * seq). On failure returns -EINVAL with a short error ("invalid JSON", "invalid batch",
 * "invalid result") and a detail naming the field, e.g. "results[3]: field 'ts': ...". */
int ingest_decode(const char *body, size_t len, struct store_batch *b, char *error, size_t errlen,
                  char *detail, size_t detlen);
/* Inflates one gzip member into out (vw_buf_init'ed by the caller). -E2BIG past max bytes,
 * -EINVAL for anything that is not exactly one valid gzip stream. */
int ingest_gunzip(const char *in, size_t len, size_t max, struct vw_buf *out);

#endif
