#include "db.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "log.h"

/* err may be NULL: the caller wants only the code. */
__attribute__((format(printf, 3, 4))) static void say(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int vw_db_errno(sqlite3 *db)
{
	switch (sqlite3_errcode(db)) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	default:
		return -EIO;
	}
}

int vw_db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	say(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return vw_db_errno(db);
}

int vw_db_pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -EIO;
	if (!rc)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

int vw_db_user_version(sqlite3 *db, int64_t *out)
{
	return vw_db_pragma_int(db, "PRAGMA user_version", out);
}

int vw_db_set_user_version(sqlite3 *db, int64_t v, char *err, size_t errlen)
{
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %" PRId64, v);
	return vw_db_exec(db, sql, err, errlen);
}

int vw_db_open(const char *path, const struct vw_db_opts *o, sqlite3 **out, char *err,
               size_t errlen)
{
	sqlite3 *db = NULL;
	char why[256] = "";
	int flags =
	    o->flags ? o->flags : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	*out = NULL;
	/* SQLite creates a database 0644 (and fchmods it back to that under a stricter umask);
	 * ours hold evidence, token hashes and audit rows: 0600, and -wal/-shm follow. */
	if ((flags & SQLITE_OPEN_CREATE) && vw_file_precreate(path, 0600, err, errlen))
		return -EIO;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		say(err, errlen, "cannot open %s: %s", path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		goto fail;
	}
	if (o->busy_ms > 0)
		sqlite3_busy_timeout(db, o->busy_ms);
	if (o->wal) {
		/* journal_mode answers with the mode in force: a file system without shared
		 * memory, or a read-only file, leaves it in another one without an error. */
		sqlite3_stmt *st = NULL;
		int ok = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL) ==
		             SQLITE_OK &&
		         sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) &&
		         strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
		sqlite3_finalize(st);
		if (!ok) {
			say(err, errlen, "cannot switch %s to WAL: %s", path, sqlite3_errmsg(db));
			goto fail;
		}
	}
	if (o->synchronous) {
		char sql[48];
		snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s", o->synchronous);
		if (vw_db_exec(db, sql, why, sizeof(why))) {
			say(err, errlen, "%s: synchronous: %s", path, why);
			goto fail;
		}
	}
	if (o->foreign_keys && vw_db_exec(db, "PRAGMA foreign_keys = ON", why, sizeof(why))) {
		say(err, errlen, "%s: foreign_keys: %s", path, why);
		goto fail;
	}
	*out = db;
	return 0;
fail:
	sqlite3_close(db);
	return -EIO;
}

int vw_db_prepare_all(sqlite3 *db, const char *const *sql, sqlite3_stmt **st, int n,
                      unsigned prep_flags, char *err, size_t errlen)
{
	for (int i = 0; i < n; i++)
		st[i] = NULL;
	for (int i = 0; i < n; i++) {
		if (sqlite3_prepare_v3(db, sql[i], -1, prep_flags, &st[i], NULL) != SQLITE_OK) {
			say(err, errlen, "cannot prepare statement %d (%.60s): %s", i, sql[i],
			    sqlite3_errmsg(db));
			vw_db_finalize_all(st, n);
			return -EIO;
		}
	}
	return 0;
}

void vw_db_finalize_all(sqlite3_stmt **st, int n)
{
	for (int i = 0; i < n; i++) {
		sqlite3_finalize(st[i]);
		st[i] = NULL;
	}
}

int vw_db_migrate(sqlite3 *db, const char *name, const char *const *migrations, int n, char *err,
                  size_t errlen)
{
	for (;;) {
		char why[256] = "";
		int64_t v;
		int rc = vw_db_exec(db, "BEGIN IMMEDIATE", why, sizeof(why));
		if (rc) {
			say(err, errlen, "cannot lock the database: %s", why);
			return rc;
		}
		if (vw_db_user_version(db, &v)) {
			say(err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(db));
			vw_db_exec(db, "ROLLBACK", NULL, 0);
			return -EIO;
		}
		if (v > n || v < 0) {
			vw_db_exec(db, "ROLLBACK", NULL, 0);
			say(err, errlen,
			    "database schema version %" PRId64
			    " is newer than this build's (%d); run a newer venuewatch",
			    v, n);
			return -EPROTO;
		}
		if (v == n)
			return vw_db_exec(db, "COMMIT", err, errlen);
		if ((rc = vw_db_exec(db, migrations[v], why, sizeof(why))) ||
		    (rc = vw_db_set_user_version(db, v + 1, why, sizeof(why))) ||
		    (rc = vw_db_exec(db, "COMMIT", why, sizeof(why)))) {
			vw_db_exec(db, "ROLLBACK", NULL, 0);
			say(err, errlen, "migration to schema version %" PRId64 " failed: %s",
			    v + 1, why);
			return rc;
		}
		log_info("event=%s_migrated version=%" PRId64, name, v + 1);
	}
}
