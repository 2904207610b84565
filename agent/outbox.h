/* outbox: the agent's durable queue of results (SQLite, WAL) in <state_dir>/outbox.db.
 * A result counts as taken only once outbox_append has committed it; seq is assigned
 * here, monotonic and never reused (the next seq is persisted in the same transaction).
 * Rows leave only through outbox_ack (server acknowledged) or the counted overflow drop.
 * Used from the loop thread only: statements are short indexed inserts and deletes (WAL,
 * synchronous=FULL: one fsync per append, so a commit also survives a power cut and a seq
 * is never handed out twice); see docs/ARCHITECTURE.md and docs/DELIVERY.md. */
#ifndef VW_OUTBOX_H
#define VW_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "result.h"

struct outbox;

/* Opens (creating or migrating) the database. max_bytes bounds the stored result bodies. */
int outbox_open(const char *path, long long max_bytes, struct outbox **out, char *err,
                size_t errlen);
void outbox_close(struct outbox **ob);

/* Assigns seqs to results[0..n) (written back into them) and commits them in one
 * transaction. When the bound is exceeded the oldest rows not in flight are dropped and a
 * buffer_overflow result with their count and seq range is appended in the same commit.
 * A full disk is handled the same way: a ballast file is released, the oldest rows
 * dropped, and the write retried; results that still cannot be stored are counted and
 * reported (unstored_count) by the next overflow row that can be. Also keeps the latest
 * result per (kind, target) for the status command. */
int outbox_append(struct outbox *ob, struct vw_result *results, size_t n);

/* Appends up to max_rows bodies (and about max_bytes; always at least one row) with
 * seq > after_seq, oldest first, to b as a JSON array "[{..},{..}]"; stores the count
 * and the last seq included. */
int outbox_peek(struct outbox *ob, int64_t after_seq, size_t max_rows, size_t max_bytes,
                struct vw_buf *b, size_t *count, int64_t *last_seq);
/* Deletes every row with seq <= acked_seq. */
int outbox_ack(struct outbox *ob, int64_t acked_seq);
/* Rows with seq <= in_flight_seq are never dropped by the overflow bound. */
void outbox_set_in_flight(struct outbox *ob, int64_t in_flight_seq);

/* Venue-facing state for `venuewatch-agent status` (e.g. uplink=refused); committed now. */
int outbox_set_status(struct outbox *ob, const char *key, const char *value);

/* This outbox's epoch: 32 lower-case hex digits drawn when outbox.db was created (a
 * reinstalled machine's new outbox is a new epoch at the collector, with its own seqs), or
 * "" for an outbox created before epochs existed (the legacy epoch). Changes only through
 * outbox_renew_epoch. */
const char *outbox_epoch(const struct outbox *ob);
/* Draws a new epoch and commits it in one transaction; rows and seqs stay as they are.
 * For an outbox restored from a backup: the collector holds seqs of the old epoch that
 * this copy never handed out, so the held rows must go under a new one (see uplink.c). */
int outbox_renew_epoch(struct outbox *ob);
/* The oldest seq still held (waiting for an ack), 0 when none. */
int64_t outbox_oldest_seq(struct outbox *ob);
int64_t outbox_next_seq(const struct outbox *ob);
int64_t outbox_pending(struct outbox *ob); /* rows waiting for an ack */
int64_t outbox_bytes(const struct outbox *ob);
int64_t outbox_dropped_total(const struct outbox *ob); /* persisted: survives restarts */
/* The check time (UTC ms) of the oldest row still held, 0 when none. */
int64_t outbox_oldest_ts_ms(struct outbox *ob);
/* Since outbox_open (for the agent's metrics): results that could not be committed at all
 * (a full disk even after the ballast went), and rows released by acks. */
int64_t outbox_unstored_total(const struct outbox *ob);
int64_t outbox_acked_total(const struct outbox *ob);

#endif
