/* pg_lease: the leases under which the singleton jobs (store_lease_names: the feed tick's
 * silence detection, the notifier's deliveries, the rollup job) run on exactly one of the
 * collectors sharing a PostgreSQL (issue 13). A lease is a row of table leases: its holder
 * (a collector id: host, pid and a random part), its epoch (the fencing token, + 1 at each
 * take-over) and its expiry by the database's clock, never a collector's.
 * Threads: a keeper thread (its own connection) takes and renews the leases; pg_lease_fence
 * runs on the caller's connection inside the caller's transaction (the writer thread); the
 * view (pg_lease_view) on any thread. The caller owns the keeper: pg_lease_destroy stops
 * and frees it. */
#ifndef VW_PG_LEASE_H
#define VW_PG_LEASE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The table, for postgresql.c's migration list (and the unit test's fresh database). */
#define PG_LEASE_TABLE_SQL                                                                         \
	"CREATE TABLE leases("                                                                     \
	" name text PRIMARY KEY,"                                                                  \
	" holder text NOT NULL,"                                                                   \
	" epoch bigint NOT NULL,"                                                                  \
	" taken_at timestamptz NOT NULL,"                                                          \
	" expires_at timestamptz NOT NULL);"

/* A collector id for this process: "<host>:<pid>:<16 hex digits of getrandom>" (the
 * random part: a restarted collector with the same pid is a new holder). 0 or -errno. */
int pg_lease_holder_make(char *out, size_t n);

/* --- one statement each, on c (outside or inside a transaction) ------------------------ */
/* Takes name for holder when nobody has it or its lease expired: *epoch = the new epoch
 * (the old + 1, or 1). -EBUSY while another holds it unexpired; -errno of the query. */
int pg_lease_take(PGconn *c, const char *name, const char *holder, int64_t ttl_ms, int64_t *epoch);
/* Extends holder's lease at epoch by ttl_ms from now, if it has not expired: 0, or -ESTALE
 * when it is not (or no longer) holder's at epoch. */
int pg_lease_renew(PGconn *c, const char *name, const char *holder, int64_t epoch, int64_t ttl_ms);
/* The fence, for a job's transaction on c: 0 when name is holder's at epoch and unexpired
 * now; the row is then locked FOR SHARE until the transaction ends, so no take-over can
 * commit before it does, and the transaction's session ends if it idles in the transaction
 * past ttl_ms (a collector paused mid-transaction cannot hold a take-over off for ever).
 * -ESTALE when not: the job writes nothing (roll back). */
int pg_lease_check(PGconn *c, const char *name, const char *holder, int64_t epoch, int64_t ttl_ms);

/* --- the keeper ------------------------------------------------------------------------ */
struct pg_lease;
/* Connects (dsn, passfile as postgresql.c does: passfile NULL = libpq's default) and logs
 * this collector's holder id; takes nothing before pg_lease_start. ttl_ms > renew_ms > 0. */
int pg_lease_create(const char *dsn, const char *passfile, int64_t ttl_ms, int64_t renew_ms,
                    struct pg_lease **out, char *err, size_t errlen);
/* Starts the keeper thread: every lease taken when free, renewed every renew_ms. */
int pg_lease_start(struct pg_lease *l);
void pg_lease_destroy(struct pg_lease *l); /* accepts NULL */
const char *pg_lease_holder(const struct pg_lease *l);
/* The job's fence on c (inside its transaction): pg_lease_check with the keeper's epoch of
 * lease which (enum store_lease_id). -ESTALE at once when the keeper holds none; a refusal
 * drops the keeper's hold (logged once: event=lease_lost). */
int pg_lease_fence(struct pg_lease *l, PGconn *c, int which);
/* What this collector holds, as the keeper last saw it: held only until its last renewal
 * plus the TTL (by the monotonic clock), so a collector resumed after a pause past its TTL
 * says "not held" before it asked the database. */
void pg_lease_view(struct pg_lease *l, struct store_lease out[STORE_LEASES]);

#endif
