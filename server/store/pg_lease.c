/* pg_lease: see pg_lease.h. Every time compared here is the database's (clock_timestamp(),
 * not now(): a statement that waited on a row lock judges expiry when it runs, not when its
 * transaction began); the collectors' clocks are never compared with each other. */
#include "pg_lease.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"

struct hold {
	int64_t epoch;       /* 0 = not held */
	uint64_t renewed_ns; /* uv_hrtime() of the last take or renewal */
};

struct pg_lease {
	char *dsn, *passfile;
	PGconn *c; /* the keeper thread's (the creator's until started) */
	char holder[128];
	int64_t ttl_ms, renew_ms;
	uv_thread_t thread;
	uv_mutex_t mu;
	uv_cond_t cond;
	int started, stopping, connected;
	struct hold h[STORE_LEASES]; /* under mu */
};

int pg_lease_holder_make(char *out, size_t n)
{
	char host[64];
	unsigned char r[8];
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -EIO;
	int len = snprintf(out, n, "%s:%ld:", host, (long)getpid());
	for (size_t i = 0; i < sizeof(r) && len > 0 && (size_t)len + 2 < n; i++)
		len += snprintf(out + len, n - (size_t)len, "%02x", r[i]);
	return len > 0 && (size_t)len < n ? 0 : -ENAMETOOLONG;
}

/* A failed result as a negative errno (postgresql.c's pg_errno, for this file's queries):
 * a lock wait cut off or a serialization failure is a retry. */
static int lease_errno(PGconn *c, PGresult *r, const char *step)
{
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	char msg[256];
	snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
	msg[strcspn(msg, "\r\n")] = '\0';
	int rc = PQstatus(c) != CONNECTION_OK ? -ENOTCONN
	         : state && (!strcmp(state, "40001") || !strcmp(state, "40P01") ||
	                     !strcmp(state, "55P03"))
	             ? -EBUSY
	             : -EIO;
	log_warn("event=lease_query_failed step=%s error=\"%s\"", step, msg);
	PQclear(r);
	return rc;
}

/* sql with text parameters; *out gets the result (the caller clears it). */
static int lease_query(PGconn *c, const char *step, const char *sql, int n, const char *const *vals,
                       PGresult **out)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
		return lease_errno(c, r, step);
	*out = r;
	return 0;
}

int pg_lease_take(PGconn *c, const char *name, const char *holder, int64_t ttl_ms, int64_t *epoch)
{
	char ttl[24];
	snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
	const char *vals[3] = {name, holder, ttl};
	/* One statement: a free name is inserted at epoch 1; an expired lease is taken over at
	 * its epoch + 1 (the row lock of ON CONFLICT DO UPDATE serializes two takers, and the
	 * second finds it unexpired); an unexpired one is left as it is (no row back). */
	PGresult *r = NULL;
	int rc =
	    lease_query(c, "lease_take",
	                "INSERT INTO leases(name, holder, epoch, taken_at, expires_at)"
	                " VALUES($1, $2, 1, clock_timestamp(),"
	                " clock_timestamp() + $3::bigint * interval '1 millisecond')"
	                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
	                " epoch = leases.epoch + 1, taken_at = excluded.taken_at,"
	                " expires_at = clock_timestamp() + $3::bigint * interval '1 millisecond'"
	                " WHERE leases.expires_at <= clock_timestamp() RETURNING epoch",
	                3, vals, &r);
	if (rc)
		return rc;
	rc = PQntuples(r) == 1 ? 0 : -EBUSY;
	if (!rc)
		*epoch = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return rc;
}

int pg_lease_renew(PGconn *c, const char *name, const char *holder, int64_t epoch, int64_t ttl_ms)
{
	char ttl[24], ep[24];
	snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
	snprintf(ep, sizeof(ep), "%" PRId64, epoch);
	const char *vals[4] = {name, holder, ep, ttl};
	PGresult *r = NULL;
	int rc = lease_query(c, "lease_renew",
	                     "UPDATE leases SET expires_at = clock_timestamp() +"
	                     " $4::bigint * interval '1 millisecond' WHERE name = $1"
	                     " AND holder = $2 AND epoch = $3::bigint"
	                     " AND expires_at > clock_timestamp()",
	                     4, vals, &r);
	if (rc)
		return rc;
	rc = strcmp(PQcmdTuples(r), "1") == 0 ? 0 : -ESTALE;
	PQclear(r);
	return rc;
}

int pg_lease_check(PGconn *c, const char *name, const char *holder, int64_t epoch, int64_t ttl_ms)
{
	char ttl[32], ep[24];
	snprintf(ttl, sizeof(ttl), "%" PRId64 "ms", ttl_ms);
	snprintf(ep, sizeof(ep), "%" PRId64, epoch);
	const char *vals[4] = {name, holder, ep, ttl};
	PGresult *r = NULL;
	/* set_config(..., true): for this transaction only, and only when the lease holds. */
	int rc = lease_query(c, "lease_check",
	                     "SELECT set_config('idle_in_transaction_session_timeout', $4, true)"
	                     " FROM leases WHERE name = $1 AND holder = $2 AND epoch = $3::bigint"
	                     " AND expires_at > clock_timestamp() FOR SHARE",
	                     4, vals, &r);
	if (rc)
		return rc;
	rc = PQntuples(r) == 1 ? 0 : -ESTALE;
	PQclear(r);
	return rc;
}

/* --- the keeper ------------------------------------------------------------------------- */

/* A take-over waits on the row lock of the holder's fenced transaction; never longer than
 * a round, so a holder paused mid-transaction costs rounds, not the keeper. */
static void keeper_session(struct pg_lease *l)
{
	char sql[64];
	snprintf(sql, sizeof(sql), "SET lock_timeout = '%" PRId64 "ms'", l->renew_ms);
	PQclear(PQexec(l->c, sql));
}

static int keeper_connect(struct pg_lease *l, PGconn **out, char *err, size_t errlen)
{
	const char *keys[4] = {"dbname", "application_name", NULL, NULL};
	const char *vals[4] = {l->dsn, "venuewatch-server lease", NULL, NULL};
	if (l->passfile)
		keys[2] = "passfile", vals[2] = l->passfile;
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (!c) {
		snprintf(err, errlen, "lease: out of memory");
		return -ENOMEM;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
		msg[strcspn(msg, "\r\n")] = '\0';
		snprintf(err, errlen, "lease: connect: %s", msg);
		PQfinish(c);
		return -ECONNREFUSED;
	}
	*out = c;
	return 0;
}

int pg_lease_create(const char *dsn, const char *passfile, int64_t ttl_ms, int64_t renew_ms,
                    struct pg_lease **out, char *err, size_t errlen)
{
	*out = NULL;
	if (ttl_ms <= 0 || renew_ms <= 0 || renew_ms >= ttl_ms) {
		snprintf(err, errlen,
		         "[store] lease_renew (%" PRId64
		         " ms) must be shorter than lease_ttl (%" PRId64 " ms)",
		         renew_ms, ttl_ms);
		return -EINVAL;
	}
	struct pg_lease *l = calloc(1, sizeof(*l));
	int rc = -ENOMEM;
	if (!l || !(l->dsn = strdup(dsn)) || (passfile && !(l->passfile = strdup(passfile)))) {
		snprintf(err, errlen, "lease: out of memory");
		goto fail;
	}
	l->ttl_ms = ttl_ms;
	l->renew_ms = renew_ms;
	if ((rc = pg_lease_holder_make(l->holder, sizeof(l->holder))) != 0) {
		snprintf(err, errlen, "lease: no collector id: %s", strerror(-rc));
		goto fail;
	}
	if ((rc = uv_mutex_init(&l->mu)) != 0)
		goto fail;
	if ((rc = uv_cond_init(&l->cond)) != 0) {
		uv_mutex_destroy(&l->mu);
		goto fail;
	}
	l->started = -1; /* mu and cond exist */
	if ((rc = keeper_connect(l, &l->c, err, errlen)) != 0)
		goto fail;
	l->connected = 1;
	keeper_session(l);
	log_info("event=lease_holder holder=%s ttl_ms=%" PRId64 " renew_ms=%" PRId64, l->holder,
	         ttl_ms, renew_ms);
	*out = l;
	return 0;
fail:
	pg_lease_destroy(l);
	return rc;
}

/* Keeper thread, mu not held: one round over every lease. */
static void keeper_round(struct pg_lease *l)
{
	if (!l->connected || PQstatus(l->c) != CONNECTION_OK) {
		/* The database went away: try again each round; what was held stays held
		 * (in the view) until its TTL runs out, and the fence asks the database. */
		PQreset(l->c);
		l->connected = PQstatus(l->c) == CONNECTION_OK;
		if (!l->connected)
			return;
		keeper_session(l);
	}
	for (int i = 0; i < STORE_LEASES; i++) {
		const char *name = store_lease_names[i];
		uv_mutex_lock(&l->mu);
		int64_t epoch = l->h[i].epoch;
		uv_mutex_unlock(&l->mu);
		int rc;
		if (epoch) {
			rc = pg_lease_renew(l->c, name, l->holder, epoch, l->ttl_ms);
			uv_mutex_lock(&l->mu);
			if (!rc && l->h[i].epoch == epoch)
				l->h[i].renewed_ns = uv_hrtime();
			else if (rc == -ESTALE && l->h[i].epoch == epoch) {
				l->h[i].epoch = 0;
				log_warn("event=lease_lost lease=%s holder=%s epoch=%" PRId64
				         " why=renew_refused",
				         name, l->holder, epoch);
			}
			uv_mutex_unlock(&l->mu);
			if (rc != -ESTALE)
				continue;
		}
		int64_t got = 0;
		uint64_t t0 = uv_hrtime();
		if ((rc = pg_lease_take(l->c, name, l->holder, l->ttl_ms, &got)) != 0)
			continue; /* held by another (or the query failed: logged) */
		uv_mutex_lock(&l->mu);
		l->h[i].epoch = got;
		l->h[i].renewed_ns = t0; /* before the query: the view errs on the short side */
		uv_mutex_unlock(&l->mu);
		log_info("event=lease_taken lease=%s holder=%s epoch=%" PRId64, name, l->holder,
		         got);
	}
}

static void keeper_main(void *arg)
{
	struct pg_lease *l = arg;
	uv_mutex_lock(&l->mu);
	while (!l->stopping) {
		uv_mutex_unlock(&l->mu);
		keeper_round(l);
		uv_mutex_lock(&l->mu);
		if (!l->stopping)
			uv_cond_timedwait(&l->cond, &l->mu, (uint64_t)l->renew_ms * 1000000u);
	}
	uv_mutex_unlock(&l->mu);
}

int pg_lease_start(struct pg_lease *l)
{
	/* The first round on the caller's thread: a collector alone on its database holds
	 * every lease once store_open returns, and its first feed tick already acts. */
	keeper_round(l);
	int rc = uv_thread_create(&l->thread, keeper_main, l);
	if (!rc)
		l->started = 1;
	return rc;
}

void pg_lease_destroy(struct pg_lease *l)
{
	if (!l)
		return;
	if (l->started == 1) {
		uv_mutex_lock(&l->mu);
		l->stopping = 1;
		uv_cond_signal(&l->cond);
		uv_mutex_unlock(&l->mu);
		uv_thread_join(&l->thread);
	}
	/* Handed back at once, so a collector stopped on purpose is replaced without waiting
	 * out its TTL. Best effort: an expired row is taken over all the same. */
	for (int i = 0; l->c && l->connected && i < STORE_LEASES; i++) {
		if (!l->h[i].epoch)
			continue;
		char ep[24];
		snprintf(ep, sizeof(ep), "%" PRId64, l->h[i].epoch);
		const char *vals[3] = {store_lease_names[i], l->holder, ep};
		PGresult *r =
		    PQexecParams(l->c,
		                 "UPDATE leases SET expires_at = clock_timestamp()"
		                 " WHERE name = $1 AND holder = $2 AND epoch = $3::bigint",
		                 3, NULL, vals, NULL, NULL, 0);
		PQclear(r);
		log_info("event=lease_released lease=%s holder=%s epoch=%s", store_lease_names[i],
		         l->holder, ep);
	}
	if (l->started) {
		uv_cond_destroy(&l->cond);
		uv_mutex_destroy(&l->mu);
	}
	PQfinish(l->c);
	free(l->dsn);
	free(l->passfile);
	free(l);
}

const char *pg_lease_holder(const struct pg_lease *l)
{
	return l->holder;
}

int pg_lease_fence(struct pg_lease *l, PGconn *c, int which)
{
	uv_mutex_lock(&l->mu);
	int64_t epoch = l->h[which].epoch;
	uv_mutex_unlock(&l->mu);
	if (!epoch)
		return -ESTALE;
	int rc = pg_lease_check(c, store_lease_names[which], l->holder, epoch, l->ttl_ms);
	if (rc == -ESTALE) {
		uv_mutex_lock(&l->mu);
		if (l->h[which].epoch == epoch) {
			l->h[which].epoch = 0;
			log_warn("event=lease_lost lease=%s holder=%s epoch=%" PRId64 " why=fenced",
			         store_lease_names[which], l->holder, epoch);
		}
		uv_mutex_unlock(&l->mu);
	}
	return rc;
}

void pg_lease_view(struct pg_lease *l, struct store_lease out[STORE_LEASES])
{
	uint64_t now = uv_hrtime(), ttl_ns = (uint64_t)l->ttl_ms * 1000000u;
	uv_mutex_lock(&l->mu);
	for (int i = 0; i < STORE_LEASES; i++) {
		out[i].epoch = l->h[i].epoch;
		out[i].held = l->h[i].epoch && now - l->h[i].renewed_ns < ttl_ns;
	}
	uv_mutex_unlock(&l->mu);
}
