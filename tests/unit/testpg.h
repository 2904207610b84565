/* testpg: a fresh PostgreSQL database per test, in the server tests/tools/pg.sh started (its
 * DSN in VW_PG_DSN, the password file in VW_PG_PASSFILE), and one-value queries on it, for
 * the unit tests that run the store on PostgreSQL. Header-only, like testdir.h. */
#ifndef VW_TESTPG_H
#define VW_TESTPG_H

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* A connection to dsn (a whole connection string) with the harness's password file, or
 * NULL (the reason on stderr). */
static inline PGconn *testpg_connect(const char *dsn)
{
	const char *keys[] = {"dbname", "passfile", NULL};
	const char *vals[] = {dsn, getenv("VW_PG_PASSFILE"), NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "postgresql: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* sql on dsn: 0, or -1 (the reason on stderr); *v (if given) = the first column of the first
 * row, -1 when there is no row. */
static inline int testpg_query(const char *dsn, const char *sql, int64_t *v)
{
	PGconn *c = testpg_connect(dsn);
	if (!c)
		return -1;
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
	if (rc)
		fprintf(stderr, "postgresql: %s: %s", sql, PQresultErrorMessage(r));
	else if (v)
		*v = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
	PQclear(r);
	PQfinish(c);
	return rc;
}

/* An empty database named db (vw_<what>_<pid>_<n>, at least 48 bytes) and its dsn (at least
 * 512 bytes). 0 or -1. */
static inline int testpg_make(const char *what, char *db, size_t dbn, char *dsn, size_t dsnn)
{
	static int n;
	const char *base = getenv("VW_PG_DSN");
	char admin[512], sql[128];
	if (!base)
		return -1;
	snprintf(db, dbn, "vw_%s_%d_%d", what, (int)getpid(), ++n);
	snprintf(admin, sizeof(admin), "%s dbname=postgres", base);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	if ((size_t)snprintf(dsn, dsnn, "%s dbname=%s", base, db) >= dsnn)
		return -1;
	return testpg_query(admin, sql, NULL);
}

static inline int testpg_remove(const char *db)
{
	char admin[512], sql[128];
	snprintf(admin, sizeof(admin), "%s dbname=postgres", getenv("VW_PG_DSN"));
	snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", db);
	return testpg_query(admin, sql, NULL);
}

#endif
