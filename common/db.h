/* db: the SQLite conventions both binaries share — opening with the project's pragmas (WAL,
 * synchronous, busy timeout, foreign keys), exec and prepare with the error in a caller's
 * buffer, user_version, and numbered migrations each in its own IMMEDIATE transaction.
 * No state of its own: every function works on the caller's connection, on whichever one
 * thread uses that connection. The caller closes what vw_db_open opened (sqlite3_close) and
 * finalizes what vw_db_prepare_all prepared (vw_db_finalize_all). */
#ifndef VW_DB_H
#define VW_DB_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct vw_db_opts {
	int flags;               /* SQLITE_OPEN_*; 0 means READWRITE | CREATE | NOMUTEX */
	int busy_ms;             /* sqlite3_busy_timeout; 0 leaves none */
	const char *synchronous; /* "FULL", "NORMAL", or NULL for SQLite's default */
	int wal;          /* 1: journal_mode=WAL, and refuse a database that stays out of it */
	int foreign_keys; /* 1: PRAGMA foreign_keys=ON */
};

/* Opens path with o's settings. On failure *out is NULL (nothing to close) and err says what,
 * naming path. 0 or -EIO. */
int vw_db_open(const char *path, const struct vw_db_opts *o, sqlite3 **out, char *err,
               size_t errlen);
/* Runs sql (one or more statements). err (may be NULL) gets SQLite's message. 0, -ENOSPC
 * (disk full), -ENOMEM, -EBUSY or -EIO. */
int vw_db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
/* The negative errno for the connection's last error (vw_db_exec's mapping). */
int vw_db_errno(sqlite3 *db);
/* The first column of the first row of sql (a PRAGMA or a one-value query). 0, or -EIO when
 * it does not prepare or returns no row. */
int vw_db_pragma_int(sqlite3 *db, const char *sql, int64_t *out);
int vw_db_user_version(sqlite3 *db, int64_t *out);
int vw_db_set_user_version(sqlite3 *db, int64_t v, char *err, size_t errlen);
/* Prepares sql[0..n-1] into st[] (sqlite3_prepare_v3 with prep_flags, e.g.
 * SQLITE_PREPARE_PERSISTENT). On failure err names the statement's index and SQLite's
 * message, and what was prepared is finalized (st[] all NULL). 0 or -EIO. */
int vw_db_prepare_all(sqlite3 *db, const char *const *sql, sqlite3_stmt **st, int n,
                      unsigned prep_flags, char *err, size_t errlen);
/* Finalizes st[0..n-1] and sets them NULL; NULL entries are skipped. */
void vw_db_finalize_all(sqlite3_stmt **st, int n);
/* migrations[i] takes user_version i to i + 1, each in one BEGIN IMMEDIATE transaction that
 * also rereads the version (two processes opening one database at once migrate it once).
 * A version above n is refused with -EPROTO (a newer build wrote it). name goes into the log
 * line ("event=NAME_migrated version=N"). 0 or negative errno with err set. */
int vw_db_migrate(sqlite3 *db, const char *name, const char *const *migrations, int n, char *err,
                  size_t errlen);

#endif
