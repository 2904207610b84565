#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "crashpoint.h"
#include "db.h"
#include "fileio.h"
#include "log.h"
#include "utf8.h"
#include "vtime.h"

/* 32 random bytes: 256 bits, so a plain SHA-256 of the token is a safe thing to store (no
 * salt or slow KDF needed: there is no dictionary to try against a random secret). */
#define SECRET_BYTES 32
#define HASH_BYTES 32
_Static_assert(HASH_BYTES == AUTH_HASH_LEN, "one hash size");
#define TOKEN_PREFIX "vwt_"  /* a person's bearer token */
#define ENROLL_PREFIX "vwe_" /* a one-time enrollment token */
/* The CLI may hold the write lock for a few milliseconds; the server's loop thread waits at
 * most this long for it before failing closed. */
#define BUSY_MS 2000

enum stmt { S_TOKEN_BY_HASH, S_SESSION_BY_HASH, S_AGENT_GET, S_AGENT_PUT, S_COUNT };

struct auth {
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	/* The audit anchor: the chain's last row id and hash, in a file beside auth.db (see
	 * auth_anchor_check). pend_* is the row this transaction appended, written at commit. */
	char anchor_path[PATH_MAX];
	char db_path[PATH_MAX];
	int anchor_state;     /* AUTH_ANCHOR_* as last found */
	int anchor_resetting; /* auth_anchor_reset's own row goes in without the check */
	char anchor_msg[PATH_MAX + 256];
	int64_t pend_id;
	char pend_hash[2 * HASH_BYTES + 1];
};

static const char *const stmt_sql[S_COUNT] = {
    [S_TOKEN_BY_HASH] =
        "SELECT id, role, city, name, revoked_ms, org, expires_ms, last_used_ms, inspector "
        "FROM tokens WHERE hash = ?",
    /* The token's columns in S_TOKEN_BY_HASH's order, then the session's. */
    [S_SESSION_BY_HASH] =
        "SELECT t.id, t.role, t.city, t.name, t.revoked_ms, t.org, t.expires_ms, t.last_used_ms,"
        " t.inspector, s.created_ms, s.last_seen_ms, s.expires_ms FROM sessions s"
        " JOIN tokens t ON t.id = s.token_id WHERE s.hash = ?",
    [S_AGENT_GET] = "SELECT 1 FROM agents WHERE serial = ?",
    [S_AGENT_PUT] = "INSERT OR IGNORE INTO agents(serial, site, org, city, first_seen_ms, peer) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
};

static const char schema_v1[] =
    "CREATE TABLE tokens("
    " id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, role TEXT NOT NULL,"
    " city TEXT NOT NULL, name TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " revoked_ms INTEGER);"
    "CREATE TABLE enroll_tokens("
    " id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, site TEXT NOT NULL, org TEXT NOT NULL,"
    " city TEXT NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,"
    " used_ms INTEGER, used_by TEXT);"
    "CREATE TABLE certs("
    " serial TEXT PRIMARY KEY, site TEXT NOT NULL, org TEXT NOT NULL, city TEXT NOT NULL,"
    " issued_ms INTEGER NOT NULL, not_after_ms INTEGER NOT NULL, source TEXT NOT NULL);"
    "CREATE INDEX certs_site ON certs(site);"
    "CREATE TABLE agents("
    " serial TEXT PRIMARY KEY, site TEXT NOT NULL, org TEXT NOT NULL, city TEXT NOT NULL,"
    " first_seen_ms INTEGER NOT NULL, peer TEXT NOT NULL);"
    "CREATE INDEX agents_site ON agents(site);"
    "CREATE TABLE revocations(serial TEXT PRIMARY KEY, revoked_ms INTEGER NOT NULL);"
    "CREATE TABLE audit("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, actor TEXT NOT NULL,"
    " action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL,"
    " prev TEXT NOT NULL, hash TEXT NOT NULL);"
    /* Append-only: the database itself refuses to change or remove a row. */
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
    /* Revocation is for good: un-revoking would need a new certificate anyway. */
    "CREATE TRIGGER revocations_no_delete BEFORE DELETE ON revocations"
    " BEGIN SELECT RAISE(ABORT, 'revocations are permanent'); END;";

/* v1 -> v2: an org token is bound to its org; the other roles' rows get "". */
static const char schema_v2[] = "ALTER TABLE tokens ADD COLUMN org TEXT NOT NULL DEFAULT '';";
/* v2 -> v3: tokens expire (those made before get their creation + 90 days, the default) and
 * remember their last use; dashboard sessions, stored as the SHA-256 of their id. */
static const char schema_v3[] =
    "ALTER TABLE tokens ADD COLUMN expires_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tokens ADD COLUMN last_used_ms INTEGER;"
    "UPDATE tokens SET expires_ms = created_ms + 7776000000;" /* 90 d in ms */
    "CREATE TABLE sessions("
    " hash BLOB PRIMARY KEY, token_id TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " last_seen_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);"
    "CREATE INDEX sessions_token ON sessions(token_id);";
_Static_assert(AUTH_TOKEN_TTL_DEFAULT_MS == 7776000000LL, "schema_v3 uses the default TTL");
/* v3 -> v4: an enrollment token names the venue machine (agent) its certificate is for;
 * tokens made before name none, and "" means agent = site (ca_sign_csr). */
static const char schema_v4[] =
    "ALTER TABLE enroll_tokens ADD COLUMN agent TEXT NOT NULL DEFAULT '';";
/* v4 -> v5 (issue 12 D): an inspector token is bound to his id in the inspectors' register
 * (inspect.db): what he may see follows the inspections he is assigned to. */
static const char schema_v5[] = "ALTER TABLE tokens ADD COLUMN inspector TEXT NOT NULL DEFAULT '';";

static int db_fail(struct auth *a, char *err, size_t errlen, const char *what)
{
	if (err)
		snprintf(err, errlen, "%s: %s", what, sqlite3_errmsg(a->db));
	else
		log_error("event=auth_db_failed op=\"%s\" error=\"%s\"", what,
		          sqlite3_errmsg(a->db));
	return -EIO;
}

static int exec(struct auth *a, const char *sql)
{
	char msg[256];
	if (vw_db_exec(a->db, sql, msg, sizeof(msg)) == 0)
		return 0;
	log_error("event=auth_db_failed sql=\"%.40s\" error=\"%s\"", sql, msg);
	return -EIO;
}

static sqlite3_stmt *prep(struct auth *a, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("event=auth_db_failed sql=\"%.40s\" error=\"%s\"", sql,
		          sqlite3_errmsg(a->db));
		return NULL;
	}
	return st;
}

static const char *col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? (const char *)t : "";
}

static int anchor_check(struct auth *a);

int auth_open(const char *path, struct auth **out, char *err, size_t errlen)
{
	*out = NULL;
	/* Created 0600 before SQLite sees it: token hashes and the audit log are nobody
	 * else's business, and SQLite gives its -wal and -shm files the same mode. */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
		return -e;
	}
	close(fd);
	struct auth *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = -EIO;
	/* FULL: an audit row or a revocation that a crash could take back is no record.
	 * No CREATE: the file was made above with its mode. */
	static const struct vw_db_opts opts = {.flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
	                                       .busy_ms = BUSY_MS,
	                                       .synchronous = "FULL",
	                                       .wal = 1};
	static const char *const migrations[] = {schema_v1, schema_v2, schema_v3, schema_v4,
	                                         schema_v5};
	_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == AUTH_SCHEMA_VERSION,
	               "a migration per schema version");
	char why[512];
	if ((rc = vw_db_open(path, &opts, &a->db, err, errlen)) != 0)
		goto fail;
	if ((rc = vw_db_migrate(a->db, "auth", migrations, AUTH_SCHEMA_VERSION, why,
	                        sizeof(why))) != 0 ||
	    (rc = vw_db_prepare_all(a->db, stmt_sql, a->st, S_COUNT, 0, why, sizeof(why))) != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	if (snprintf(a->anchor_path, sizeof(a->anchor_path), "%s.anchor", path) >=
	        (int)sizeof(a->anchor_path) ||
	    snprintf(a->db_path, sizeof(a->db_path), "%s", path) >= (int)sizeof(a->db_path)) {
		snprintf(err, errlen, "%s: path too long", path);
		rc = -ENAMETOOLONG;
		goto fail;
	}
	a->anchor_state = anchor_check(a);
	*out = a;
	return 0;
fail:
	auth_close(a);
	return rc;
}

void auth_close(struct auth *a)
{
	if (!a)
		return;
	vw_db_finalize_all(a->st, S_COUNT);
	sqlite3_close(a->db);
	free(a);
}

/* --- small pieces ------------------------------------------------------------------------ */

static const char *const role_names[] = {"province", "city", "inspector",
                                         "public",   "org",  "metrics"};

int auth_role_parse(const char *s, enum auth_role *out)
{
	for (size_t i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
		if (s && strcmp(s, role_names[i]) == 0) {
			*out = (enum auth_role)i;
			return 0;
		}
	return -EINVAL;
}

const char *auth_role_name(enum auth_role r)
{
	return (unsigned)r < sizeof(role_names) / sizeof(role_names[0]) ? role_names[r] : "?";
}

int auth_parse_ttl(const char *s, int64_t *ms)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || v <= 0 || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	int64_t unit;
	if (strcmp(end, "s") == 0)
		unit = 1000;
	else if (strcmp(end, "m") == 0)
		unit = 60000;
	else if (strcmp(end, "h") == 0)
		unit = 3600000;
	else if (strcmp(end, "d") == 0)
		unit = 86400000;
	else
		return -EINVAL;
	if (v > INT64_MAX / unit / 2)
		return -EINVAL;
	*ms = v * unit;
	return 0;
}

void auth_cli_actor(char *out, size_t outlen)
{
	uid_t uid = getuid();
	struct passwd *pw = getpwuid(uid);
	if (pw && pw->pw_name)
		snprintf(out, outlen, "cli:%s", pw->pw_name);
	else
		snprintf(out, outlen, "cli:uid%u", (unsigned)uid);
}

static void hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* prefix + base64url(32 random bytes from OpenSSL's DRBG), no padding. */
static int secret_new(const char *prefix, char out[AUTH_TOKEN_LEN])
{
	unsigned char raw[SECRET_BYTES];
	unsigned char b64[4 * ((SECRET_BYTES + 2) / 3) + 1];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	int n = EVP_EncodeBlock(b64, raw, sizeof(raw));
	explicit_bzero(raw, sizeof(raw));
	while (n > 0 && b64[n - 1] == '=')
		n--;
	for (int i = 0; i < n; i++)
		b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	snprintf(out, AUTH_TOKEN_LEN, "%s%.*s", prefix, n, (const char *)b64);
	explicit_bzero(b64, sizeof(b64));
	return 0;
}

/* A well-formed token of this kind hashes; anything else is refused before any lookup. */
static int secret_hash(const char *prefix, const char *token, unsigned char hash[HASH_BYTES],
                       char id[AUTH_ID_LEN])
{
	size_t pl = strlen(prefix), n = token ? strlen(token) : 0;
	if (n != pl + 43 || strncmp(token, prefix, pl) != 0)
		return -ENOENT;
	for (size_t i = pl; i < n; i++) {
		unsigned char c = (unsigned char)token[i];
		if (!isalnum(c) && c != '-' && c != '_')
			return -ENOENT;
	}
	unsigned int hl = 0;
	if (EVP_Digest(token, n, hash, &hl, EVP_sha256(), NULL) != 1 || hl != HASH_BYTES)
		return -EIO;
	hex(hash, (AUTH_ID_LEN - 1) / 2, id);
	return 0;
}

static int begin(struct auth *a)
{
	return exec(a, "BEGIN IMMEDIATE");
}

/* For the worker's writes: a lock held past the busy timeout is -EBUSY (worth a retry),
 * anything else -EIO. */
static int begin_or_busy(struct auth *a)
{
	char msg[256];
	if (vw_db_exec(a->db, "BEGIN IMMEDIATE", msg, sizeof(msg)) == 0)
		return 0;
	int code = sqlite3_errcode(a->db);
	if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
		return -EBUSY;
	log_error("event=auth_db_failed sql=BEGIN error=\"%s\"", msg);
	return -EIO;
}

static void anchor_write(struct auth *a);

static int commit(struct auth *a, int rc)
{
	if (rc == 0 && exec(a, "COMMIT") == 0) {
		if (a->pend_id)
			anchor_write(a);
		a->pend_id = 0;
		return 0;
	}
	a->pend_id = 0;
	exec(a, "ROLLBACK");
	return rc ? rc : -EIO;
}

/* --- audit ------------------------------------------------------------------------------- */

static void chain_hash(const char *prev, int64_t ts, const char *actor, const char *action,
                       const char *subject, const char *detail, char out[2 * HASH_BYTES + 1])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char h[HASH_BYTES];
	unsigned int hl = 0;
	char tsbuf[24];
	snprintf(tsbuf, sizeof(tsbuf), "%lld", (long long)ts);
	const char *parts[] = {prev, tsbuf, actor, action, subject, detail};
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
	/* Each field with its length: no two different rows hash alike by moving bytes
	 * across a field boundary. */
	for (size_t i = 0; ok && i < sizeof(parts) / sizeof(parts[0]); i++) {
		char len[24];
		int ln = snprintf(len, sizeof(len), "%zu:", strlen(parts[i]));
		ok = EVP_DigestUpdate(md, len, (size_t)ln) == 1 &&
		     EVP_DigestUpdate(md, parts[i], strlen(parts[i])) == 1;
	}
	ok = ok && EVP_DigestFinal_ex(md, h, &hl) == 1;
	EVP_MD_CTX_free(md);
	if (ok)
		hex(h, HASH_BYTES, out);
	else
		snprintf(out, 2 * HASH_BYTES + 1, "error");
}

static int anchor_check(struct auth *a);

/* Inside a write transaction: one chained row. */
static int append_row(struct auth *a, const char *actor, const char *action, const char *subject,
                      const char *detail)
{
	char prev[2 * HASH_BYTES + 1] = "", hash[2 * HASH_BYTES + 1];
	sqlite3_stmt *st = prep(a, "SELECT hash FROM audit ORDER BY id DESC LIMIT 1");
	if (!st)
		return -EIO;
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		snprintf(prev, sizeof(prev), "%s", col(st, 0));
	sqlite3_finalize(st);
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		return -EIO;
	int64_t ts = vw_now_ms();
	chain_hash(prev, ts, actor, action, subject, detail, hash);
	st = prep(a, "INSERT INTO audit(ts_ms, actor, action, subject, detail, prev, hash) "
	             "VALUES (?, ?, ?, ?, ?, ?, ?)");
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, ts);
	sqlite3_bind_text(st, 2, actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, detail, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, prev, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, hash, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	if (!rc) {
		a->pend_id = sqlite3_last_insert_rowid(a->db);
		memcpy(a->pend_hash, hash, sizeof(a->pend_hash));
	}
	if (!rc)
		/* The chain's head also goes to the journal: an outside anchor, so cutting rows off
		 * the tail of auth.db (which leaves a valid chain) shows against the log. */
		log_info("event=audit actor=%s action=%s subject=%s head=%.16s", actor, action,
		         subject, hash);
	return rc;
}

/* Inside a write transaction, so the chain cannot move between the check and the append.
 * The anchor is checked again each time (a long-running server opened auth.db long ago):
 * a chain that no longer reaches it is evidence, and appending would move the anchor past
 * the cut and erase it. An anchor deleted meanwhile is said in a row of its own first. */
static int audit_locked(struct auth *a, const char *actor, const char *action, const char *subject,
                        const char *detail)
{
	if (!a->anchor_resetting) {
		a->anchor_state = anchor_check(a);
		if (a->anchor_state == AUTH_ANCHOR_MISMATCH) {
			log_error("event=audit_refused reason=anchor_mismatch detail=\"%s\" "
			          "hint=\"venuewatch-server audit; then audit --reset-anchor\"",
			          a->anchor_msg);
			return -EBADMSG;
		}
		if (a->anchor_state == AUTH_ANCHOR_MISSING) {
			log_warn("event=audit_anchor_missing path=%s action=made_at_head",
			         a->anchor_path);
			int rc = append_row(
			    a, "system", "audit_anchor_reset", a->anchor_path,
			    "no anchor file; the chain's head as found is the new anchor");
			if (rc)
				return rc;
			a->anchor_state = AUTH_ANCHOR_OK;
		}
	}
	return append_row(a, actor, action, subject, detail);
}

/* --- the audit anchor ------------------------------------------------------------------- */

struct anchor_row {
	int64_t id;
	const char *hash;
};

static int anchor_put(FILE *fp, const void *arg)
{
	const struct anchor_row *r = arg;
	return fprintf(fp, "venuewatch audit anchor 1\nrow=%" PRId64 " hash=%s\n", r->id, r->hash) >
	       0;
}

/* After the commit, outside the transaction: a crash in between leaves the anchor one row
 * behind, which reads as consistent (the chain still holds that row); never ahead. */
static void anchor_write(struct auth *a)
{
	/* The server and the CLI may both append: each writes its own temporary file (a unique
	 * name) and renames it over the anchor, so the last rename wins whole. The loser's
	 * anchor would only be behind, which still checks. */
	char err[256] = "";
	struct anchor_row r = {a->pend_id, a->pend_hash};
	struct vw_file_part part = {
	    .path = a->anchor_path, .mode = 0600, .write_cb = anchor_put, .arg = &r};
	/* Root running the CLI on a server's state dir: the anchor stays the database owner's,
	 * as SQLite keeps -wal and -shm, or the server could not read it. */
	struct stat dbst;
	if (geteuid() == 0 && stat(a->db_path, &dbst) == 0) {
		part.set_owner = 1;
		part.uid = dbst.st_uid;
		part.gid = dbst.st_gid;
	}
	int rc = vw_file_replace_many(&part, 1, err, sizeof(err));
	if (rc)
		log_warn("event=audit_anchor_write_failed path=%s error=\"%s\"", a->anchor_path,
		         err);
}

static int anchor_check(struct auth *a)
{
	a->anchor_msg[0] = '\0';
	FILE *fp = fopen(a->anchor_path, "r");
	if (!fp) {
		if (errno != ENOENT) {
			snprintf(a->anchor_msg, sizeof(a->anchor_msg), "cannot read %s: %s",
			         a->anchor_path, strerror(errno));
			return AUTH_ANCHOR_MISMATCH;
		}
		sqlite3_stmt *st = prep(a, "SELECT count(*) FROM audit");
		int64_t rows =
		    st && sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
		sqlite3_finalize(st);
		return rows == 0 ? AUTH_ANCHOR_OK : AUTH_ANCHOR_MISSING;
	}
	char line1[64] = "", hash[2 * HASH_BYTES + 2] = "";
	long long id = 0;
	int ok = fgets(line1, sizeof(line1), fp) &&
	         strcmp(line1, "venuewatch audit anchor 1\n") == 0 &&
	         fscanf(fp, "row=%lld hash=%65s", &id, hash) == 2 && id > 0 &&
	         strlen(hash) == 2 * HASH_BYTES;
	fclose(fp);
	if (!ok) {
		snprintf(a->anchor_msg, sizeof(a->anchor_msg), "%s: not an audit anchor file",
		         a->anchor_path);
		return AUTH_ANCHOR_MISMATCH;
	}
	sqlite3_stmt *st =
	    prep(a, "SELECT hash, (SELECT max(id) FROM audit) FROM audit WHERE id = ?");
	if (!st) {
		snprintf(a->anchor_msg, sizeof(a->anchor_msg), "cannot query the audit table");
		return AUTH_ANCHOR_MISMATCH;
	}
	sqlite3_bind_int64(st, 1, id);
	int found = sqlite3_step(st) == SQLITE_ROW;
	int same = found && strcmp(col(st, 0), hash) == 0;
	sqlite3_finalize(st);
	if (same)
		return AUTH_ANCHOR_OK;
	st = prep(a, "SELECT coalesce(max(id), 0) FROM audit");
	long long last = st && sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	if (!found)
		snprintf(a->anchor_msg, sizeof(a->anchor_msg),
		         "rows cut: %s says row %lld (hash %.16s) but the chain ends at row %lld",
		         a->anchor_path, id, hash, last);
	else
		snprintf(a->anchor_msg, sizeof(a->anchor_msg),
		         "rewritten: %s says row %lld has hash %.16s, the chain has another",
		         a->anchor_path, id, hash);
	return AUTH_ANCHOR_MISMATCH;
}

int auth_anchor_state(const struct auth *a, const char **msg)
{
	if (msg)
		*msg = a->anchor_msg;
	return a->anchor_state;
}

int auth_anchor_reset(struct auth *a, const char *actor)
{
	if (a->anchor_state == AUTH_ANCHOR_OK)
		return 0;
	char detail[PATH_MAX + 320];
	snprintf(detail, sizeof(detail), "%s; the chain's head as found is the new anchor",
	         a->anchor_state == AUTH_ANCHOR_MISSING ? "no anchor file" : a->anchor_msg);
	a->anchor_resetting = 1; /* this row goes in as the chain is; the anchor follows it */
	int rc = auth_audit(a, actor, "audit_anchor_reset", a->anchor_path, detail);
	a->anchor_resetting = 0;
	if (rc == 0) {
		a->anchor_state = AUTH_ANCHOR_OK;
		a->anchor_msg[0] = '\0';
	}
	return rc;
}

int auth_audit(struct auth *a, const char *actor, const char *action, const char *subject,
               const char *detail)
{
	if (begin(a))
		return -EIO;
	return commit(a, audit_locked(a, actor, action, subject, detail ? detail : ""));
}

int auth_audit_list(struct auth *a, int limit, FILE *out)
{
	sqlite3_stmt *st = prep(a, "SELECT id, ts_ms, actor, action, subject, detail, prev, hash "
	                           "FROM audit ORDER BY id");
	if (!st)
		return -EIO;
	int64_t total = 0;
	sqlite3_stmt *cnt = prep(a, "SELECT count(*) FROM audit");
	if (cnt && sqlite3_step(cnt) == SQLITE_ROW)
		total = sqlite3_column_int64(cnt, 0);
	sqlite3_finalize(cnt);
	int64_t skip = limit > 0 && total > limit ? total - limit : 0, row = 0, bad = 0;
	/* Ids never repeat (AUTOINCREMENT): a hole is rows deleted. Rows cut off the tail and
	 * then appended to leave one that the chain does not show; an audit_anchor_reset row
	 * after it says it was seen and recorded. */
	int64_t last_id = 0, hole_from = 0, hole_to = 0, holes_recorded = 0;
	char prev[2 * HASH_BYTES + 1] = "", want[2 * HASH_BYTES + 1];
	fprintf(out, "%-6s %-24s %-20s %-14s %-24s %s\n", "ID", "TIME", "ACTOR", "ACTION",
	        "SUBJECT", "DETAIL");
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0), ts = sqlite3_column_int64(st, 1);
		chain_hash(prev, ts, col(st, 2), col(st, 3), col(st, 4), col(st, 5), want);
		if (!bad && (strcmp(col(st, 6), prev) != 0 || strcmp(col(st, 7), want) != 0))
			bad = id;
		if (last_id && id != last_id + 1 && !hole_from) {
			hole_from = last_id + 1;
			hole_to = id - 1;
		}
		if (hole_from && strcmp(col(st, 3), "audit_anchor_reset") == 0) {
			holes_recorded++;
			hole_from = 0;
		}
		last_id = id;
		snprintf(prev, sizeof(prev), "%s", col(st, 7));
		if (row++ < skip)
			continue;
		char iso[VW_ISO_LEN];
		vw_time_iso(ts, iso);
		fprintf(out, "%-6lld %-24s %-20s %-14s %-24s %s\n", (long long)id, iso, col(st, 2),
		        col(st, 3), col(st, 4), col(st, 5));
	}
	sqlite3_finalize(st);
	if (step != SQLITE_DONE)
		return -EIO;
	if (bad) {
		fprintf(out,
		        "audit chain: BROKEN at row %lld (edited or removed behind the "
		        "triggers)\n",
		        (long long)bad);
		return -EBADMSG;
	}
	if (hole_from) {
		fprintf(
		    out,
		    "audit chain: CUT (rows %lld-%lld are missing and no audit_anchor_reset row "
		    "records it)\n",
		    (long long)hole_from, (long long)hole_to);
		return -EBADMSG;
	}
	if (holes_recorded)
		fprintf(out,
		        "audit chain: %lld gap(s) in the ids, each recorded by an "
		        "audit_anchor_reset row\n",
		        (long long)holes_recorded);
	/* A chain cut at its tail is still a valid chain: the anchor file (and the journal's
	 * event=audit head= lines) say where it ended. */
	int state = anchor_check(a);
	if (state == AUTH_ANCHOR_MISMATCH) {
		fprintf(out, "audit chain: CUT OR REWRITTEN (%lld rows, head=%.16s): %s\n",
		        (long long)total, prev, a->anchor_msg);
		return -EBADMSG;
	}
	fprintf(out, "audit chain: intact (%lld rows) head=%.16s anchor=%s\n", (long long)total,
	        prev, state == AUTH_ANCHOR_OK ? "matches" : "missing");
	return 0;
}

/* --- people's tokens ---------------------------------------------------------------------- */

/* A free-text value (a token's name) for an audit detail: "..." with \" and \\ escaped and
 * controls (C0, DEL, C1) as \xNN, so it cannot end its field or forge a key=value after it.
 * Valid UTF-8 stays readable (济南 stays 济南); anything else, or a value too long for out,
 * is escaped byte by byte and cut (vw_log_escape). */
static void quote_value(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	if (!s || !vw_utf8_valid(s))
		goto ascii;
	out[o++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int c1 = p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f;
		int esc = *p < 0x20 || *p == 0x7f || c1;
		if (o + (c1 ? 8 : esc ? 4 : 2) + 2 > outlen)
			goto ascii;
		if (c1 || esc) {
			for (int k = 0; k < (c1 ? 2 : 1); k++) {
				out[o++] = '\\';
				out[o++] = 'x';
				out[o++] = hex[p[k] >> 4];
				out[o++] = hex[p[k] & 15];
			}
			p += c1;
			continue;
		}
		if (*p == '"' || *p == '\\')
			out[o++] = '\\';
		out[o++] = (char)*p;
	}
	out[o++] = '"';
	out[o] = '\0';
	return;
ascii:
	vw_log_escape(s, out, outlen);
}

int auth_token_create(struct auth *a, enum auth_role role, const char *city, const char *org,
                      const char *inspector, const char *name, int64_t ttl_ms, const char *actor,
                      char token[AUTH_TOKEN_LEN], char id[AUTH_ID_LEN], char *err, size_t errlen)
{
	if (ttl_ms < 0) {
		snprintf(err, errlen, "--ttl must be positive");
		return -EINVAL;
	}
	if (ttl_ms == 0)
		ttl_ms = AUTH_TOKEN_TTL_DEFAULT_MS;
	unsigned char hash[HASH_BYTES];
	if ((role == AUTH_CITY || role == AUTH_INSPECTOR) && (!city || !city[0])) {
		snprintf(err, errlen, "--city is required for %s tokens (属地管理)",
		         auth_role_name(role));
		return -EINVAL;
	}
	if (role == AUTH_ORG && (!org || !vw_conf_id_valid(org))) {
		snprintf(err, errlen, "--org is required for org tokens: the org id they read (%s)",
		         org && org[0] ? "not a valid id" : "missing");
		return -EINVAL;
	}
	if (role != AUTH_ORG && org && org[0]) {
		snprintf(err, errlen, "--org applies to org tokens only, not %s",
		         auth_role_name(role));
		return -EINVAL;
	}
	if (role == AUTH_INSPECTOR && (!inspector || !vw_conf_id_valid(inspector))) {
		snprintf(err, errlen,
		         "--inspector is required for inspector tokens: his id in the inspectors' "
		         "register (%s)",
		         inspector && inspector[0] ? "not a valid id" : "missing");
		return -EINVAL;
	}
	if (role != AUTH_INSPECTOR && inspector && inspector[0]) {
		snprintf(err, errlen, "--inspector applies to inspector tokens only, not %s",
		         auth_role_name(role));
		return -EINVAL;
	}
	if (!name || !name[0]) {
		snprintf(err, errlen, "--name is required (who holds the token)");
		return -EINVAL;
	}
	if (secret_new(TOKEN_PREFIX, token) || secret_hash(TOKEN_PREFIX, token, hash, id)) {
		snprintf(err, errlen, "cannot draw random bytes");
		return -EIO;
	}
	if (begin(a))
		return db_fail(a, err, errlen, "cannot lock the database");
	sqlite3_stmt *st =
	    prep(a, "INSERT INTO tokens(id, hash, role, city, name, created_ms, org, "
	            "expires_ms, inspector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
	int rc = st ? 0 : -EIO;
	int64_t now = vw_now_ms();
	char exp[VW_ISO_LEN];
	vw_time_iso(now + ttl_ms, exp);
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, hash, sizeof(hash), SQLITE_STATIC);
		sqlite3_bind_text(st, 3, auth_role_name(role), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, city ? city : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, now);
		sqlite3_bind_text(st, 7, org ? org : "", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, now + ttl_ms);
		sqlite3_bind_text(st, 9, inspector ? inspector : "", -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_finalize(st);
	}
	char detail[1024], qname[4 * 128 + 8];
	quote_value(name, qname, sizeof(qname));
	if (role == AUTH_ORG)
		snprintf(detail, sizeof(detail), "role=%s city=%s org=%s expires=%s name=%s",
		         auth_role_name(role), city && city[0] ? city : "-", org, exp, qname);
	else if (role == AUTH_INSPECTOR)
		snprintf(detail, sizeof(detail), "role=%s city=%s inspector=%s expires=%s name=%s",
		         auth_role_name(role), city, inspector, exp, qname);
	else
		snprintf(detail, sizeof(detail), "role=%s city=%s expires=%s name=%s",
		         auth_role_name(role), city && city[0] ? city : "-", exp, qname);
	if (!rc)
		rc = audit_locked(a, actor, "token_create", id, detail);
	if ((rc = commit(a, rc)) != 0) {
		explicit_bzero(token, AUTH_TOKEN_LEN);
		return db_fail(a, err, errlen, "cannot store the token");
	}
	return 0;
}

/* A token's row (S_TOKEN_BY_HASH's columns 0-8) into out: 0 while it is live. */
static int token_row(sqlite3_stmt *st, int64_t now, struct auth_principal *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", col(st, 0));
	snprintf(out->city, sizeof(out->city), "%s", col(st, 2));
	snprintf(out->name, sizeof(out->name), "%s", col(st, 3));
	snprintf(out->org, sizeof(out->org), "%s", col(st, 5));
	out->expires_ms = sqlite3_column_int64(st, 6);
	out->last_used_ms = sqlite3_column_int64(st, 7); /* NULL reads as 0: never */
	snprintf(out->inspector, sizeof(out->inspector), "%s", col(st, 8));
	if (auth_role_parse(col(st, 1), &out->role))
		return -EIO; /* a role this build does not know: fail closed */
	if (sqlite3_column_type(st, 4) != SQLITE_NULL)
		return -EKEYREVOKED;
	if (now >= out->expires_ms)
		return -EKEYEXPIRED;
	return 0;
}

int auth_token_check(struct auth *a, const char *token, struct auth_principal *out)
{
	unsigned char hash[HASH_BYTES];
	char id[AUTH_ID_LEN];
	int rc = secret_hash(TOKEN_PREFIX, token, hash, id);
	if (rc)
		return rc;
	sqlite3_stmt *st = a->st[S_TOKEN_BY_HASH];
	sqlite3_bind_blob(st, 1, hash, sizeof(hash), SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		rc = token_row(st, vw_now_ms(), out);
	} else {
		rc = step == SQLITE_DONE ? -ENOENT : db_fail(a, NULL, 0, "token lookup");
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

int auth_token_revoke(struct auth *a, const char *id, const char *actor)
{
	if (begin(a))
		return -EIO;
	sqlite3_stmt *st = prep(a, "SELECT revoked_ms FROM tokens WHERE id = ?");
	int rc = st ? 0 : -EIO;
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		int step = sqlite3_step(st);
		rc = step == SQLITE_DONE                         ? -ENOENT
		     : step != SQLITE_ROW                        ? -EIO
		     : sqlite3_column_type(st, 0) != SQLITE_NULL ? -EALREADY
		                                                 : 0;
		sqlite3_finalize(st);
	}
	if (!rc && !(st = prep(a, "UPDATE tokens SET revoked_ms = ? WHERE id = ?")))
		rc = -EIO;
	if (!rc) {
		sqlite3_bind_int64(st, 1, vw_now_ms());
		sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_finalize(st);
	}
	/* Its sessions end with it, in the same transaction (the session check also looks at
	 * the token, so one missed here would still be refused). */
	int ended = 0;
	if (!rc && !(st = prep(a, "DELETE FROM sessions WHERE token_id = ?")))
		rc = -EIO;
	if (!rc) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		ended = sqlite3_changes(a->db);
		sqlite3_finalize(st);
	}
	char detail[48];
	snprintf(detail, sizeof(detail), "sessions_ended=%d", ended);
	if (!rc)
		rc = audit_locked(a, actor, "token_revoke", id, detail);
	return commit(a, rc);
}

int auth_token_list(struct auth *a, FILE *out)
{
	sqlite3_stmt *st =
	    prep(a, "SELECT id, role, city, name, created_ms, revoked_ms, expires_ms, last_used_ms "
	            "FROM tokens ORDER BY created_ms");
	if (!st)
		return -EIO;
	fprintf(out, "%-16s %-9s %-12s %-24s %-24s %-24s %-24s %s\n", "ID", "ROLE", "CITY",
	        "CREATED", "EXPIRES", "LAST_USED", "REVOKED", "NAME");
	int step;
	int64_t now = vw_now_ms();
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		char created[VW_ISO_LEN], revoked[VW_ISO_LEN] = "-", used[VW_ISO_LEN] = "-";
		char expires[VW_ISO_LEN + 10];
		vw_time_iso(sqlite3_column_int64(st, 4), created);
		if (sqlite3_column_type(st, 5) != SQLITE_NULL)
			vw_time_iso(sqlite3_column_int64(st, 5), revoked);
		int64_t exp_ms = sqlite3_column_int64(st, 6);
		vw_time_iso(exp_ms, expires);
		if (exp_ms <=
		    now) /* said in the column, so a reader of the list need not compare */
			strcat(expires, "(expired)");
		if (sqlite3_column_type(st, 7) != SQLITE_NULL)
			vw_time_iso(sqlite3_column_int64(st, 7), used);
		fprintf(out, "%-16s %-9s %-12s %-24s %-24s %-24s %-24s %s\n", col(st, 0),
		        col(st, 1), col(st, 2)[0] ? col(st, 2) : "-", created, expires, used,
		        revoked, col(st, 3));
	}
	sqlite3_finalize(st);
	return step == SQLITE_DONE ? 0 : -EIO;
}

int auth_touch(struct auth *a, const struct auth_touch *t, size_t n)
{
	if (!n)
		return 0;
	int rc = begin_or_busy(a);
	if (rc)
		return rc;
	sqlite3_stmt *tok = prep(a, "UPDATE tokens SET last_used_ms = ?2 WHERE id = ?1 AND "
	                            "(last_used_ms IS NULL OR last_used_ms < ?2)");
	sqlite3_stmt *ses = prep(a, "UPDATE sessions SET last_seen_ms = ?2 WHERE hash = ?1 AND "
	                            "last_seen_ms < ?2");
	rc = tok && ses ? 0 : -EIO;
	for (size_t i = 0; !rc && i < n; i++) {
		sqlite3_stmt *st = t[i].is_session ? ses : tok;
		if (t[i].is_session)
			sqlite3_bind_blob(st, 1, t[i].hash, AUTH_HASH_LEN, SQLITE_STATIC);
		else
			sqlite3_bind_text(st, 1, t[i].id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, t[i].at_ms);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	sqlite3_finalize(tok);
	sqlite3_finalize(ses);
	return commit(a, rc);
}

/* --- dashboard sessions ------------------------------------------------------------------- */

int auth_session_create(struct auth *a, const struct auth_principal *p, int64_t lifetime_ms,
                        char sid[AUTH_SESSION_LEN], struct auth_session *out)
{
	char raw[AUTH_TOKEN_LEN], id[AUTH_ID_LEN];
	memset(out, 0, sizeof(*out));
	/* No prefix: the cookie's name says what it is. */
	if (secret_new("", raw) || secret_hash("", raw, out->hash, id)) {
		explicit_bzero(raw, sizeof(raw));
		return -EIO;
	}
	int rc = begin_or_busy(a);
	if (rc) {
		explicit_bzero(raw, sizeof(raw));
		return rc;
	}
	int64_t now = vw_now_ms();
	/* Ended sessions go here, where a write happens anyway (idle ones end by their absolute
	 * time at the latest). */
	sqlite3_stmt *st = prep(a, "DELETE FROM sessions WHERE expires_ms <= ?");
	rc = st ? 0 : -EIO;
	if (st) {
		sqlite3_bind_int64(st, 1, now);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_finalize(st);
	}
	/* The token again, under the lock: a revocation since the loop's check wins. */
	int64_t token_expires = 0;
	if (!rc && !(st = prep(a, "SELECT revoked_ms, expires_ms FROM tokens WHERE id = ?")))
		rc = -EIO;
	if (!rc) {
		sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
		int step = sqlite3_step(st);
		if (step != SQLITE_ROW)
			rc = step == SQLITE_DONE ? -EKEYREVOKED : -EIO;
		else if (sqlite3_column_type(st, 0) != SQLITE_NULL)
			rc = -EKEYREVOKED;
		else if ((token_expires = sqlite3_column_int64(st, 1)) <= now)
			rc = -EKEYEXPIRED;
		sqlite3_finalize(st);
	}
	out->created_ms = out->last_seen_ms = now;
	/* A session never outlives the token it came from. */
	out->expires_ms = now + lifetime_ms < token_expires ? now + lifetime_ms : token_expires;
	if (!rc && !(st = prep(a, "INSERT INTO sessions(hash, token_id, created_ms, last_seen_ms, "
	                          "expires_ms) VALUES (?, ?, ?, ?, ?)")))
		rc = -EIO;
	if (!rc) {
		sqlite3_bind_blob(st, 1, out->hash, AUTH_HASH_LEN, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, p->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, now);
		sqlite3_bind_int64(st, 4, now);
		sqlite3_bind_int64(st, 5, out->expires_ms);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_finalize(st);
	}
	if ((rc = commit(a, rc)) == 0) {
		memcpy(sid, raw, AUTH_SESSION_LEN - 1); /* secret_hash checked: 43 characters */
		sid[AUTH_SESSION_LEN - 1] = '\0';
	}
	explicit_bzero(raw, sizeof(raw));
	return rc;
}

int auth_session_check(struct auth *a, const char *sid, int64_t idle_ms, struct auth_principal *out,
                       struct auth_session *s)
{
	char id[AUTH_ID_LEN];
	memset(s, 0, sizeof(*s));
	int rc = secret_hash("", sid, s->hash, id);
	if (rc)
		return rc;
	sqlite3_stmt *st = a->st[S_SESSION_BY_HASH];
	sqlite3_bind_blob(st, 1, s->hash, AUTH_HASH_LEN, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		int64_t now = vw_now_ms();
		rc = token_row(st, now, out);
		s->created_ms = sqlite3_column_int64(st, 9);
		s->last_seen_ms = sqlite3_column_int64(st, 10);
		s->expires_ms = sqlite3_column_int64(st, 11);
		if (!rc && (now >= s->expires_ms || now >= s->last_seen_ms + idle_ms))
			rc = -ETIMEDOUT;
	} else {
		rc = step == SQLITE_DONE ? -ENOENT : db_fail(a, NULL, 0, "session lookup");
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

int auth_recheck(struct auth *a, const char *token_id, const unsigned char *hash, int64_t idle_ms,
                 struct auth_principal *out, struct auth_session *s)
{
	/* Prepared per call: a stream is rechecked once a minute, not once a request. */
	sqlite3_stmt *st =
	    hash
	        ? prep(a, "SELECT t.id, t.role, t.city, t.name, t.revoked_ms, t.org, t.expires_ms,"
	                  " t.last_used_ms, t.inspector, s.created_ms, s.last_seen_ms, s.expires_ms"
	                  " FROM sessions"
	                  " s JOIN tokens t ON t.id = s.token_id WHERE s.hash = ? AND t.id = ?")
	        : prep(a, "SELECT id, role, city, name, revoked_ms, org, expires_ms, last_used_ms, "
	                  "inspector FROM tokens WHERE id = ?");
	memset(s, 0, sizeof(*s));
	memset(out, 0, sizeof(*out));
	if (!st)
		return -EIO;
	int col_id = 1;
	if (hash) {
		memcpy(s->hash, hash, AUTH_HASH_LEN);
		sqlite3_bind_blob(st, 1, hash, AUTH_HASH_LEN, SQLITE_STATIC);
		col_id = 2;
	}
	sqlite3_bind_text(st, col_id, token_id, -1, SQLITE_STATIC);
	int rc, step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		int64_t now = vw_now_ms();
		rc = token_row(st, now, out);
		if (hash) {
			s->created_ms = sqlite3_column_int64(st, 9);
			s->last_seen_ms = sqlite3_column_int64(st, 10);
			s->expires_ms = sqlite3_column_int64(st, 11);
			if (!rc && (now >= s->expires_ms || now >= s->last_seen_ms + idle_ms))
				rc = -ETIMEDOUT;
		}
	} else {
		rc = step == SQLITE_DONE ? -ENOENT : db_fail(a, NULL, 0, "credential recheck");
	}
	sqlite3_finalize(st);
	return rc;
}

int auth_session_delete(struct auth *a, const unsigned char hash[AUTH_HASH_LEN])
{
	int rc = begin_or_busy(a);
	if (rc)
		return rc;
	sqlite3_stmt *st = prep(a, "DELETE FROM sessions WHERE hash = ?");
	rc = st ? 0 : -EIO;
	if (st) {
		sqlite3_bind_blob(st, 1, hash, AUTH_HASH_LEN, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_finalize(st);
	}
	return commit(a, rc);
}

/* --- enrollment ----------------------------------------------------------------------------- */

int auth_enroll_create(struct auth *a, const char *site, const char *agent, const char *org,
                       const char *city, int64_t ttl_ms, const char *actor,
                       char token[AUTH_TOKEN_LEN], char id[AUTH_ID_LEN], int64_t *expires_ms,
                       char *err, size_t errlen)
{
	unsigned char hash[HASH_BYTES];
	if (secret_new(ENROLL_PREFIX, token) || secret_hash(ENROLL_PREFIX, token, hash, id)) {
		snprintf(err, errlen, "cannot draw random bytes");
		return -EIO;
	}
	int64_t now = vw_now_ms();
	*expires_ms = now + ttl_ms;
	if (begin(a))
		return db_fail(a, err, errlen, "cannot lock the database");
	sqlite3_stmt *st =
	    prep(a, "INSERT INTO enroll_tokens(id, hash, site, org, city, "
	            "created_ms, expires_ms, agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
	int rc = st ? 0 : -EIO;
	if (st) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, hash, sizeof(hash), SQLITE_STATIC);
		sqlite3_bind_text(st, 3, site, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, org, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, city, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, now);
		sqlite3_bind_int64(st, 7, *expires_ms);
		sqlite3_bind_text(st, 8, agent ? agent : site, -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_finalize(st);
	}
	char detail[400], exp[VW_ISO_LEN];
	vw_time_iso(*expires_ms, exp);
	snprintf(detail, sizeof(detail), "token=%s agent=%s org=%s city=%s expires=%s", id,
	         agent ? agent : site, org, city, exp);
	if (!rc)
		rc = audit_locked(a, actor, "enroll_token", site, detail);
	if ((rc = commit(a, rc)) != 0) {
		explicit_bzero(token, AUTH_TOKEN_LEN);
		return db_fail(a, err, errlen, "cannot store the token");
	}
	return 0;
}

/* Reads the token's row into out: 0 while it may still be used. */
static int enroll_lookup(struct auth *a, const unsigned char hash[HASH_BYTES],
                         struct auth_enrollment *out)
{
	sqlite3_stmt *st = prep(a, "SELECT site, org, city, expires_ms, used_ms, agent "
	                           "FROM enroll_tokens WHERE hash = ?");
	if (!st)
		return -EIO;
	int rc = 0;
	sqlite3_bind_blob(st, 1, hash, HASH_BYTES, SQLITE_STATIC);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		snprintf(out->site, sizeof(out->site), "%s", col(st, 0));
		snprintf(out->org, sizeof(out->org), "%s", col(st, 1));
		snprintf(out->city, sizeof(out->city), "%s", col(st, 2));
		/* "" (a token from before v3): the site's one machine, agent = site. */
		snprintf(out->agent, sizeof(out->agent), "%s",
		         col(st, 5)[0] ? col(st, 5) : out->site);
		if (sqlite3_column_type(st, 4) != SQLITE_NULL)
			rc = -EALREADY;
		else if (vw_now_ms() >= sqlite3_column_int64(st, 3))
			rc = -EKEYEXPIRED;
	} else {
		rc = step == SQLITE_DONE ? -ENOENT : -EIO;
	}
	sqlite3_finalize(st);
	return rc;
}

int auth_enroll_check(struct auth *a, const char *token, struct auth_enrollment *out)
{
	unsigned char hash[HASH_BYTES];
	int rc = secret_hash(ENROLL_PREFIX, token, hash, out->id);
	return rc ? rc : enroll_lookup(a, hash, out);
}

int auth_enroll_redeem(struct auth *a, const char *token, const char *peer, auth_issue_fn issue,
                       void *ud, struct auth_enrollment *out)
{
	unsigned char hash[HASH_BYTES];
	char serial[AUTH_SERIAL_LEN] = "";
	int64_t not_after = 0;
	int rc = secret_hash(ENROLL_PREFIX, token, hash, out->id);
	if (rc)
		return rc;
	/* A read first: a forged or spent token costs no write lock. */
	if ((rc = enroll_lookup(a, hash, out)) != 0)
		return rc;
	/* IMMEDIATE: check, sign and mark under one write lock, across processes. */
	if (begin(a))
		return -EIO;
	rc = enroll_lookup(a, hash, out);
	if (!rc)
		rc = issue(ud, out, serial, &not_after);
	sqlite3_stmt *st = NULL;
	if (!rc && !(st = prep(a, "UPDATE enroll_tokens SET used_ms = ?, used_by = ? "
	                          "WHERE hash = ? AND used_ms IS NULL")))
		rc = -EIO;
	if (st) {
		sqlite3_bind_int64(st, 1, vw_now_ms());
		sqlite3_bind_text(st, 2, peer, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, hash, sizeof(hash), SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(a->db) == 1 ? 0 : -EIO;
		sqlite3_finalize(st);
	}
	/* Not on record means not revocable by site: the certificate goes out only with its
	 * row and its audit row. */
	if (!rc)
		rc = auth_cert_record(a, serial, out->site, out->org, out->city, not_after,
		                      "enroll");
	if (!rc) {
		char actor[96], detail[512];
		snprintf(actor, sizeof(actor), "enroll:%s", out->id);
		snprintf(detail, sizeof(detail), "serial=%s agent=%s org=%s city=%s peer=%s",
		         serial, out->agent, out->org, out->city[0] ? out->city : "-", peer);
		rc = audit_locked(a, actor, "enroll", out->site, detail);
	}
	if (!rc)
		crashpoint("enroll_before_commit");
	return commit(a, rc);
}

/* --- certificates ---------------------------------------------------------------------------- */

int auth_cert_record(struct auth *a, const char *serial, const char *site, const char *org,
                     const char *city, int64_t not_after_ms, const char *source)
{
	sqlite3_stmt *st = prep(a, "INSERT OR REPLACE INTO certs(serial, site, org, city, "
	                           "issued_ms, not_after_ms, source) VALUES (?, ?, ?, ?, ?, ?, ?)");
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, site, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, org, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, city ? city : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, vw_now_ms());
	sqlite3_bind_int64(st, 6, not_after_ms);
	sqlite3_bind_text(st, 7, source, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(a, NULL, 0, "cert record");
	sqlite3_finalize(st);
	return rc;
}

/* Inside the revocation's transaction: its audit row, so a crash leaves both or neither. */
static int revoke_audit(struct auth *a, int rc, const char *actor, const char *subject, int count)
{
	if (rc)
		return rc;
	crashpoint("revoke_before_audit");
	char detail[64];
	snprintf(detail, sizeof(detail), "newly_revoked=%d", count);
	return audit_locked(a, actor, "revoke", subject, detail);
}

int auth_revoke_site(struct auth *a, const char *site, const char *actor, int *count)
{
	*count = 0;
	if (begin(a))
		return -EIO;
	/* Issued here, or seen in use (a certificate from before this table existed). */
	sqlite3_stmt *st = prep(a, "SELECT count(*) FROM (SELECT serial FROM certs WHERE site = ?1 "
	                           "UNION SELECT serial FROM agents WHERE site = ?1)");
	int rc = st ? 0 : -EIO, known = 0;
	if (st) {
		sqlite3_bind_text(st, 1, site, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			known = sqlite3_column_int(st, 0);
		else
			rc = -EIO;
		sqlite3_finalize(st);
	}
	if (!rc && !known)
		rc = -ENOENT;
	if (!rc && !(st = prep(a, "INSERT OR IGNORE INTO revocations(serial, revoked_ms) "
	                          "SELECT serial, ?2 FROM certs WHERE site = ?1 UNION "
	                          "SELECT serial, ?2 FROM agents WHERE site = ?1")))
		rc = -EIO;
	if (!rc) {
		sqlite3_bind_text(st, 1, site, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, vw_now_ms());
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		*count = sqlite3_changes(a->db);
		sqlite3_finalize(st);
	}
	return commit(a, revoke_audit(a, rc, actor, site, *count));
}

int auth_revoke_serial(struct auth *a, const char *serial, const char *actor, int *count)
{
	*count = 0;
	if (begin(a))
		return -EIO;
	sqlite3_stmt *st =
	    prep(a, "INSERT OR IGNORE INTO revocations(serial, revoked_ms) VALUES (?, ?)");
	int rc = st ? 0 : -EIO;
	if (st) {
		sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, vw_now_ms());
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		*count = sqlite3_changes(a->db);
		sqlite3_finalize(st);
	}
	return commit(a, revoke_audit(a, rc, actor, serial, *count));
}

int auth_cert_issued(struct auth *a, const char *serial, const char *site, const char *org,
                     const char *city, int64_t not_after_ms, const char *actor, const char *detail)
{
	if (begin(a))
		return -EIO;
	int rc = auth_cert_record(a, serial, site, org, city, not_after_ms, "ca_issue");
	if (!rc)
		rc = audit_locked(a, actor, "ca_issue", site, detail);
	return commit(a, rc);
}

int auth_site_conflict(struct auth *a, const char *site, const char *org, const char *city,
                       char *what, size_t wl)
{
	/* Current certificates (not revoked, not expired) and pending enrollment tokens: what
	 * can still report for the site. A revoked or expired one no longer can, so revoking
	 * every certificate of a site is how it moves to another org or city. */
	sqlite3_stmt *st =
	    prep(a, "SELECT 'certificate ' || serial, org, city FROM certs"
	            " WHERE site = ?1 AND (org <> ?2 OR city <> ?3) AND not_after_ms > ?4"
	            " AND serial NOT IN (SELECT serial FROM revocations)"
	            " UNION ALL SELECT 'enrollment token ' || id, org, city FROM enroll_tokens"
	            " WHERE site = ?1 AND (org <> ?2 OR city <> ?3) AND used_ms IS NULL"
	            " AND expires_ms > ?4 LIMIT 4");
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, site, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, org, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, city, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, vw_now_ms());
	int step, found = 0;
	size_t len = 0;
	what[0] = '\0';
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		int n = snprintf(what + len, wl - len, "%s%s (org %s, city %s)", found ? ", " : "",
		                 col(st, 0), col(st, 1), col(st, 2)[0] ? col(st, 2) : "-");
		found = 1;
		if (n < 0 || (size_t)n >= wl - len)
			break;
		len += (size_t)n;
	}
	int rc = step == SQLITE_ROW || step == SQLITE_DONE ? found : -EIO;
	sqlite3_finalize(st);
	return rc;
}

int auth_site_place(struct auth *a, const char *site, char org[65], char city[129])
{
	/* What can still report for the site decides, as auth_site_conflict counts it: a live
	 * certificate (newest first); else an agent seen in use whose certificate is neither
	 * revoked nor known to have expired; else an enrollment token still pending (unused,
	 * unexpired). An expired token, or a used one whose certificate is gone, says nothing:
	 * revoking a site's certificates is how it moves to another org. */
	sqlite3_stmt *st =
	    prep(a, "SELECT org, city FROM (SELECT org, city, 0 AS pass, issued_ms AS at FROM certs"
	            " WHERE site = ?1 AND not_after_ms > ?2"
	            " AND serial NOT IN (SELECT serial FROM revocations)"
	            " UNION ALL SELECT org, city, 1, first_seen_ms FROM agents WHERE site = ?1"
	            " AND serial NOT IN (SELECT serial FROM revocations)"
	            " AND serial NOT IN (SELECT serial FROM certs WHERE not_after_ms <= ?2)"
	            " UNION ALL SELECT org, city, 2, created_ms FROM enroll_tokens WHERE site = ?1"
	            " AND used_ms IS NULL AND expires_ms > ?2)"
	            " ORDER BY pass, at DESC LIMIT 1");
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, site, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, vw_now_ms());
	int step = sqlite3_step(st), rc = -EIO;
	if (step == SQLITE_ROW) {
		snprintf(org, 65, "%s", col(st, 0));
		snprintf(city, 129, "%s", col(st, 1));
		rc = 0;
	} else if (step == SQLITE_DONE) {
		rc = -ENOENT;
	}
	sqlite3_finalize(st);
	return rc;
}

int auth_revoked_list(struct auth *a, struct auth_revoked **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	sqlite3_stmt *st = prep(a, "SELECT serial, revoked_ms FROM revocations ORDER BY serial");
	if (!st)
		return -EIO;
	size_t cap = 0;
	int step, rc = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			size_t nc = cap ? 2 * cap : 64;
			struct auth_revoked *p = realloc(*out, nc * sizeof(*p));
			if (!p) {
				rc = -ENOMEM;
				break;
			}
			*out = p;
			cap = nc;
		}
		snprintf((*out)[*n].serial, AUTH_SERIAL_LEN, "%s", col(st, 0));
		(*out)[*n].revoked_ms = sqlite3_column_int64(st, 1);
		(*n)++;
	}
	if (!rc && step != SQLITE_DONE)
		rc = -EIO;
	sqlite3_finalize(st);
	if (rc) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

int auth_agent_seen(struct auth *a, const char *serial, const char *site, const char *org,
                    const char *city, const char *peer)
{
	/* Read first: the common case (a known agent) then costs no write lock. */
	sqlite3_stmt *st = a->st[S_AGENT_GET];
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (step == SQLITE_ROW)
		return 0;
	if (step != SQLITE_DONE)
		return db_fail(a, NULL, 0, "agent lookup");
	st = a->st[S_AGENT_PUT];
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, site, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, org, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, city, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, vw_now_ms());
	sqlite3_bind_text(st, 6, peer, -1, SQLITE_STATIC);
	step = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (step != SQLITE_DONE)
		return db_fail(a, NULL, 0, "agent record");
	log_info("event=agent_first_seen site=%s org=%s city=%s serial=%s peer=%s", site, org,
	         city[0] ? city : "-", serial, peer);
	return 0;
}
