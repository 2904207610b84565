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
#include "prom.h"
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
/* What the uploads came to since start, for GET /metrics (issue 14). Batches by the answer
 * they got; results (rows) of stored batches: stored, or duplicate (at or below the agent's
 * mark, a resend); the ack latency from the request's hand-over to the 200 being queued.
 * Loop thread: plain increments, no lock on the upload path. */
enum ingest_outcome {
	INGEST_STORED,  /* 200 */
	INGEST_INVALID, /* 400, 413: the body */
	INGEST_REFUSED, /* 401, 403: certificate, site, agent, epochs, jurisdiction */
	INGEST_BUSY,    /* 503 before the store: limits, memory */
	INGEST_FAILED,  /* 503 from the store, or shutting down */
	INGEST_OUTCOMES
};
extern const char *const ingest_outcome_names[INGEST_OUTCOMES];
#define INGEST_ACK_BOUNDS 12
extern const double ingest_ack_bounds[INGEST_ACK_BOUNDS];
struct ingest_stats {
	uint64_t batches[INGEST_OUTCOMES];
	uint64_t results_stored, results_duplicate;
	struct vw_prom_hist ack_seconds;
};
const struct ingest_stats *ingest_get_stats(const struct ingest *in);
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
/* issue 16 C: a result's "thumbnail" (base64 of a JPEG, RFC 4648 with padding, no line
 * breaks) decoded into out (room for INGEST_THUMB_MAX bytes + 2). 0 with *outlen; -E2BIG
 * when it decodes to more than INGEST_THUMB_MAX; -EINVAL when it is not base64 or not a
 * JPEG (SOI ... EOI); why says which. Pure, any thread. */
#define INGEST_THUMB_MAX (30 * 1024)
int ingest_thumb_decode(const char *b64, size_t n, unsigned char *out, size_t *outlen, char *why,
                        size_t wl);
/* Inflates one gzip member into out (vw_buf_init'ed by the caller). -E2BIG past max bytes,
 * -EINVAL for anything that is not exactly one valid gzip stream. */
int ingest_gunzip(const char *in, size_t len, size_t max, struct vw_buf *out);

#endif
