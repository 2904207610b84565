/* auth: who may do what — the collector's access records in <state_dir>/auth.db (SQLite,
 * WAL): people's bearer tokens, one-time enrollment tokens, agent certificates issued,
 * revoked and seen (certificate -> org, site, city), and the append-only audit log.
 * Secrets are never stored: tokens are kept as SHA-256 hashes and shown once, at creation.
 * One struct auth per thread: the server opens one for the loop thread (short indexed
 * queries), each CLI command its own; several processes may share the file (WAL, busy
 * timeout). auth_close frees everything auth_open allocated. */
#ifndef VW_AUTH_H
#define VW_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* 2: tokens.org (the org role); 3: tokens.expires_ms and last_used_ms, sessions;
 * 4: enroll_tokens.agent; 5: tokens.inspector (issue 12 D) */
#define AUTH_SCHEMA_VERSION 5
#define AUTH_ID_LEN 17      /* public id of a token: 16 hex digits + NUL */
#define AUTH_TOKEN_LEN 48   /* "vwt_" / "vwe_" + 43 base64url characters + NUL */
#define AUTH_SERIAL_LEN 48  /* certificate serial in hex (128 bits = 32 digits) + NUL */
#define AUTH_SESSION_LEN 44 /* a session id: 43 base64url characters (256 bits) + NUL */
#define AUTH_HASH_LEN 32    /* SHA-256: how tokens and session ids are stored */
/* A person's token lives this long unless 'token create --ttl' says otherwise; tokens made
 * before expiry existed got their creation + this at the schema 3 migration. */
#define AUTH_TOKEN_TTL_DEFAULT_MS (90LL * 86400000)

/* org: a 社评组织's own staff — reads and manages only its own org's sites. */
/* metrics (issue 14): a scraper's (Prometheus) — GET /metrics and nothing else. Roles are
 * stored by name (TEXT), so a new one needs no migration; an older build refuses a row it
 * does not know (auth_token_check: -EIO, fail closed). */
enum auth_role { AUTH_PROVINCE, AUTH_CITY, AUTH_INSPECTOR, AUTH_PUBLIC, AUTH_ORG, AUTH_METRICS };

/* A person's verified token. */
struct auth_principal {
	enum auth_role role;
	char id[AUTH_ID_LEN];
	char city[129];
	char org[65];       /* the org an org token is bound to; "" for other roles */
	char inspector[65]; /* the inspectors' register id an inspector token is bound to */
	char name[129];
	int64_t expires_ms;   /* the token's expiry */
	int64_t last_used_ms; /* as last recorded (0: never), to decide whether to record again */
};

/* A dashboard session: a random id given to the browser as a cookie, stored as its hash. */
struct auth_session {
	unsigned char hash[AUTH_HASH_LEN];
	int64_t created_ms;
	int64_t last_seen_ms; /* as last recorded: the idle expiry counts from here */
	int64_t expires_ms;   /* absolute: created + the configured lifetime */
};

/* What a consumed enrollment token allows: a certificate for exactly this site and agent. */
struct auth_enrollment {
	char id[AUTH_ID_LEN];
	char site[64];
	char agent[64]; /* the venue machine; the site for tokens that named none */
	char org[65];
	char city[129];
};

struct auth_revoked {
	char serial[AUTH_SERIAL_LEN];
	int64_t revoked_ms;
};

struct auth;

/* Opens (creating or migrating) path. */
int auth_open(const char *path, struct auth **out, char *err, size_t errlen);
void auth_close(struct auth *a); /* accepts NULL */

int auth_role_parse(const char *s, enum auth_role *out); /* 0 or -EINVAL */
const char *auth_role_name(enum auth_role r);
/* "1h", "30m", "24h", "7d", "90s": 0 or -EINVAL. */
int auth_parse_ttl(const char *s, int64_t *ms);
/* The actor of a command-line action: "cli:<user>" (uid when unnamed). */
void auth_cli_actor(char *out, size_t outlen);

/* --- people's tokens ------------------------------------------------------------------- */

/* Creates a token and writes it (once) to token; id receives its public id. city is
 * required for city and inspector tokens, org (a valid id) for org tokens and refused for
 * the others, inspector (a valid id: the register's) for inspector tokens and refused for
 * the others. It expires ttl_ms from now (0: AUTH_TOKEN_TTL_DEFAULT_MS). Audited. */
int auth_token_create(struct auth *a, enum auth_role role, const char *city, const char *org,
                      const char *inspector, const char *name, int64_t ttl_ms, const char *actor,
                      char token[AUTH_TOKEN_LEN], char id[AUTH_ID_LEN], char *err, size_t errlen);
/* 0 and *out for a live token; -ENOENT unknown (or malformed), -EKEYREVOKED revoked,
 * -EKEYEXPIRED expired, -EIO when the database cannot answer (callers fail closed). */
int auth_token_check(struct auth *a, const char *token, struct auth_principal *out);
/* Revokes the token and ends its sessions (one transaction, audited). -ENOENT unknown id,
 * -EALREADY already revoked. */
int auth_token_revoke(struct auth *a, const char *id, const char *actor);
/* id, role, city, created, expires, last use, revoked, name: one line each. */
int auth_token_list(struct auth *a, FILE *out);

/* Last-use marks, batched (a worker's call: it writes, so it may wait on the lock). Each
 * entry moves forward only: an older mark never overwrites a newer one. */
struct auth_touch {
	int is_session; /* 0: token id; 1: session hash */
	char id[AUTH_ID_LEN];
	unsigned char hash[AUTH_HASH_LEN];
	int64_t at_ms;
};
int auth_touch(struct auth *a, const struct auth_touch *t, size_t n);

/* --- dashboard sessions ---------------------------------------------------------------- */

/* A new session for the person p (from a checked token), ending at the latest lifetime_ms
 * from now: the id goes (once) to sid, its hash and times to *out. Sessions past their end
 * are purged in the same transaction. A token revoked or expired meanwhile: -EKEYREVOKED /
 * -EKEYEXPIRED. -EBUSY: the database stayed locked (try again). Worker or CLI. */
int auth_session_create(struct auth *a, const struct auth_principal *p, int64_t lifetime_ms,
                        char sid[AUTH_SESSION_LEN], struct auth_session *out);
/* The person behind a session id, as its token says now: 0 with *out and *s; -ENOENT
 * unknown or malformed, -EKEYREVOKED its token was revoked, -EKEYEXPIRED the token
 * expired, -ETIMEDOUT the session ended (its absolute end, or idle_ms since its last
 * recorded use), -EIO. Read-only: loop thread. */
int auth_session_check(struct auth *a, const char *sid, int64_t idle_ms, struct auth_principal *out,
                       struct auth_session *s);
/* A credential checked once already (an open event stream), checked again by what was kept
 * of it: the token by its id or, when hash is not NULL, the session by its hash (and still
 * of that token). 0 with *out (and *s) as auth.db has them now; otherwise
 * auth_session_check's errors (-ENOENT: the token is gone, or the session ended by a logout
 * or purged). Read-only: any thread with its own connection. */
int auth_recheck(struct auth *a, const char *token_id, const unsigned char *hash, int64_t idle_ms,
                 struct auth_principal *out, struct auth_session *s);
/* Ends a session (logout): 0 (also when it was gone already), -EBUSY, -EIO. Worker. */
int auth_session_delete(struct auth *a, const unsigned char hash[AUTH_HASH_LEN]);

/* --- enrollment ------------------------------------------------------------------------ */

/* A one-time token for site's machine agent (NULL = site), expiring ttl_ms from now.
 * Audited. */
int auth_enroll_create(struct auth *a, const char *site, const char *agent, const char *org,
                       const char *city, int64_t ttl_ms, const char *actor,
                       char token[AUTH_TOKEN_LEN], char id[AUTH_ID_LEN], int64_t *expires_ms,
                       char *err, size_t errlen);
/* Whether the token could be used now (no lock, nothing marked): same errors as consume. */
int auth_enroll_check(struct auth *a, const char *token, struct auth_enrollment *out);
/* Issues the certificate for a token being redeemed (the signer's CA signs the CSR): 0 with
 * serial and *not_after_ms, or a negative errno that takes the redemption back (the token
 * stays unused: a bad CSR does not burn a good token). */
typedef int (*auth_issue_fn)(void *ud, const struct auth_enrollment *e,
                             char serial[AUTH_SERIAL_LEN], int64_t *not_after_ms);
/* Redeems a token in one transaction: checks it, calls issue, marks it used, records the
 * certificate and appends the audit row; a crash anywhere leaves all of it or none. Two
 * racing redemptions cannot both win (the write lock is held throughout). Fills *out.
 * -ENOENT unknown (forged), -EALREADY used, -EKEYEXPIRED expired, issue's error, -EIO. */
int auth_enroll_redeem(struct auth *a, const char *token, const char *peer, auth_issue_fn issue,
                       void *ud, struct auth_enrollment *out);

/* --- agent certificates ---------------------------------------------------------------- */

/* Remembers an issued certificate, so 'revoke --site' can find it. */
int auth_cert_record(struct auth *a, const char *serial, const char *site, const char *org,
                     const char *city, int64_t not_after_ms, const char *source);
/* Revokes every known certificate of site (issued, or seen in use); *count = newly revoked.
 * The audit row (by actor) goes in the same transaction. -ENOENT when the site has no
 * certificate on record. */
int auth_revoke_site(struct auth *a, const char *site, const char *actor, int *count);
/* Revokes one serial (hex, as 'ca issue' printed it), audited in the same transaction;
 * *count = 0 when it was already revoked. */
int auth_revoke_serial(struct auth *a, const char *serial, const char *actor, int *count);
/* Records a certificate issued by the CLI ('ca issue') and its audit row in one
 * transaction. */
int auth_cert_issued(struct auth *a, const char *serial, const char *site, const char *org,
                     const char *city, int64_t not_after_ms, const char *actor, const char *detail);
/* Whether the site already has current certificates or pending enrollment tokens for
 * another org or city: 1 (and what names up to 4 of them, "certificate SERIAL (org O, city
 * C), ..."), 0 when none, -EIO. A site belongs to one org and one city. */
int auth_site_conflict(struct auth *a, const char *site, const char *org, const char *city,
                       char *what, size_t wl);
/* Where a site belongs as enrollment recorded it (exam sessions take org and city from
 * here, never from a request): its newest live certificate, else its newest agent seen in
 * use (certificate not revoked, not known expired), else its newest pending enrollment token
 * (unused, unexpired). 0 with org/city filled, -ENOENT when none says, -EIO. */
int auth_site_place(struct auth *a, const char *site, char org[65], char city[129]);
/* Every revocation, for the CRL. *out is malloc'ed (free it), *n entries. */
int auth_revoked_list(struct auth *a, struct auth_revoked **out, size_t *n);
/* Records (once) that a certificate was used: serial -> org, site, city, peer. */
int auth_agent_seen(struct auth *a, const char *serial, const char *site, const char *org,
                    const char *city, const char *peer);

/* --- audit ----------------------------------------------------------------------------- */

/* Appends one row (who, what, on what, detail). Rows are hash-chained: each holds the
 * SHA-256 of the previous row's hash and its own fields, so an edit made behind the
 * triggers' back (another SQLite client dropping them) still shows. */
int auth_audit(struct auth *a, const char *actor, const char *action, const char *subject,
               const char *detail);
/* Prints the last limit rows (0 = all), oldest first, then verifies the whole chain and
 * its anchor: 0 intact, -EBADMSG broken, cut or rewritten (said on out). */
int auth_audit_list(struct auth *a, int limit, FILE *out);

/* The anchor: auth.db.anchor beside auth.db holds the last audit row's id and hash,
 * rewritten (crash-safe) after every commit that appended one. Rows cut off the chain's
 * tail leave a valid chain, but not one that reaches the anchor. auth_open checks it:
 * MISMATCH (rows cut or rewritten, or an unreadable anchor) refuses every audit append
 * until auth_anchor_reset, so the evidence is not overwritten; the server refuses to
 * start. MISSING: rows but no anchor (made before anchors, or deleted). */
enum { AUTH_ANCHOR_OK = 0, AUTH_ANCHOR_MISSING = 1, AUTH_ANCHOR_MISMATCH = 2 };
int auth_anchor_state(const struct auth *a, const char **msg);
/* Takes the chain's current head as the anchor, recording in the audit log (by actor)
 * what the anchor said before. 0 or a negative errno. */
int auth_anchor_reset(struct auth *a, const char *actor);

#endif
