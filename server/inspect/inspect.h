/* inspect: the double-random inspections' records (双随机、一公开) in <state_dir>/inspect.db —
 * the registers (targets, inspection items, inspectors, every change versioned), draws (plan,
 * committed manifest, revealed inputs, the published document), the inspections they made
 * and their evidence, results and confirmations. People write these now and then, never at
 * ingest's rate, and they are records a bureau keeps for years: a file of their own keeps
 * them out of the results store's writer, its migrations and its retention.
 *
 * Threads. The server opens it with a loop: one worker thread (common/worker.c) runs every
 * job — writes and the heavier reads — on the worker's connection, in submission order; the
 * loop thread has a second, read-only connection for short indexed queries (an inspector's
 * scope, per request). A command-line tool opens it without a loop and runs jobs on its own
 * thread (inspect_run_now). A job's run function owns its transaction (inspect_txn). */
#ifndef VW_INSPECT_H
#define VW_INSPECT_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define INSPECT_SCHEMA_VERSION 1

struct inspect;

/* Worker thread (or the CLI's): the job's work on db. Returns 0 or a negative errno; what it
 * produces goes into arg. */
typedef int (*inspect_run_fn)(sqlite3 *db, void *arg);
/* Loop thread: the job back, once, with run's status (-ESHUTDOWN when it never ran, or
 * -ECANCELED when inspect_close came first: free arg, answer nobody). */
typedef void (*inspect_done_fn)(void *arg, int status);

/* Opens (creating or migrating) path. loop NULL: no worker (command-line tools). */
int inspect_open(uv_loop_t *loop, const char *path, struct inspect **out, char *err, size_t errlen);
/* Runs the jobs still queued, answers them, closes both connections. Accepts NULL. */
void inspect_close(struct inspect *in);
/* Queues run on the worker; done follows on the loop thread. 0, -EAGAIN (INSPECT_JOBS_MAX
 * in flight: answer 503), -ESHUTDOWN (no worker, or closing), -ENOMEM. */
#define INSPECT_JOBS_MAX 64
int inspect_submit(struct inspect *in, inspect_run_fn run, inspect_done_fn done, void *arg);
/* Without a loop: runs run on the caller's thread on the worker's connection; returns its
 * status. */
int inspect_run_now(struct inspect *in, inspect_run_fn run, void *arg);
/* The loop thread's read-only connection (NULL without a loop). Short indexed reads only. */
sqlite3 *inspect_reader(struct inspect *in);

/* Runs fn(db, arg) inside BEGIN IMMEDIATE ... COMMIT; any non-zero return (or a failed
 * COMMIT) rolls back. The one place writes of inspect.db take their transaction. */
int inspect_txn(sqlite3 *db, int (*fn)(sqlite3 *db, void *arg), void *arg);

/* issue 12 D: a statement of the loop thread's kept prepared on its reader (the CLI's
 * connection without a loop), by slot < INSPECT_READER_STMTS: prepared on first use (fixed
 * text per slot), finalized by inspect_close. The caller resets it after use. NULL when it
 * cannot be prepared (logged). Preparing the inspector's site check cost ~160 us a request
 * against ~4 us for the kept one (docs/API.md "Inspections"). */
#define INSPECT_READER_STMTS 8
sqlite3_stmt *inspect_reader_stmt(struct inspect *in, unsigned slot, const char *sql);

/* sqlite3_prepare_v2 of sql: 0, or -EIO with SQLite's message logged (a bug: every
 * statement of this module is fixed text). */
int inspect_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st);

#endif
