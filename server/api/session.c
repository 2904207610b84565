#include "session.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "buf.h"
#include "events.h"
#include "log.h"
#include "vtime.h"
#include "worker.h"

/* A login or logout that meets a locked auth.db is tried this often (each try waits auth's
 * own busy timeout first), then answered 503: well inside the request timeout. */
#define JOB_TRIES 4
#define JOB_RETRY_MS 250
/* Marks that failed wait this long before the next try (a CLI holding the lock). */
#define TOUCH_RETRY_MS 1000
/* {"token": "vwt_..."} with room for whitespace; anything larger is not a login. */
#define LOGIN_BODY_MAX 1024

enum job_kind { JOB_CREATE, JOB_DELETE, JOB_CHECK };

/* A login, a logout or a stream's recheck: one job of the worker (worker.h), freed by
 * job_done on the loop. */
struct job {
	enum job_kind kind;
	struct conn *conn; /* owed a response (conn.h): answered in job_done */
	struct auth_principal person;
	struct auth_session sess; /* DELETE: the hash; CREATE: filled by the worker */
	char sid[AUTH_SESSION_LEN];
	int rc;
	struct events *events; /* DELETE: whose streams of this session end with it */
	/* CHECK: by person.id, and sess.hash when has_hash; the answer goes to cb. */
	int has_hash;
	session_recheck_cb cb;
	void *cb_ud;
	uint64_t tag;
};

struct session {
	struct vw_worker *worker;
	struct auth *auth; /* the worker's connection */
	struct session_opts opts;
	char *origins;
	/* Last-use marks, shared with the worker under touch_mu (batch is the worker's own).
	 * They are the worker's idle work: logins and logouts, its jobs, go first. */
	uv_mutex_t touch_mu;
	struct auth_touch *touch, *batch;
	size_t ntouch;
	/* Loop thread. */
	unsigned long dropped;
	struct vw_log_limit drop_log;
};

/* --- worker ------------------------------------------------------------------------------ */

static void run_job(struct vw_worker *w, void *job, void *ud)
{
	(void)w;
	struct session *s = ud;
	struct job *j = job;
	if (j->kind == JOB_CHECK) {
		/* A read, so no retries (WAL readers do not wait on the writer); a failure ends
		 * the stream, whose client reconnects. Copies: the answer is written over the
		 * job's own principal and session. */
		char id[AUTH_ID_LEN];
		unsigned char hash[AUTH_HASH_LEN];
		memcpy(id, j->person.id, sizeof(id));
		memcpy(hash, j->sess.hash, sizeof(hash));
		j->rc = auth_recheck(s->auth, id, j->has_hash ? hash : NULL, s->opts.idle_ms,
		                     &j->person, &j->sess);
		return;
	}
	for (int i = 0; i < JOB_TRIES; i++) {
		if (j->kind == JOB_CREATE)
			j->rc = auth_session_create(s->auth, &j->person, s->opts.lifetime_ms,
			                            j->sid, &j->sess);
		else
			j->rc = auth_session_delete(s->auth, j->sess.hash);
		if (j->rc != -EBUSY)
			return;
		uv_sleep(JOB_RETRY_MS);
	}
}

/* Adds a mark, or moves the queued one for the same key forward. Under touch_mu. 0 when
 * there was no room. */
static int touch_merge(struct session *s, const struct auth_touch *t)
{
	for (size_t i = 0; i < s->ntouch; i++) {
		struct auth_touch *q = &s->touch[i];
		if (q->is_session == t->is_session &&
		    (t->is_session ? memcmp(q->hash, t->hash, AUTH_HASH_LEN) == 0
		                   : strcmp(q->id, t->id) == 0)) {
			if (q->at_ms < t->at_ms)
				q->at_ms = t->at_ms;
			return 1;
		}
	}
	if (s->ntouch >= SESSION_TOUCH_MAX)
		return 0;
	s->touch[s->ntouch++] = *t;
	return 1;
}

/* The worker's idle work: every queued mark in one transaction. Marks queued meanwhile come
 * with a kick of their own. At destroy the marks are written first; a write that fails then
 * is given up (logged). */
static int write_marks(struct vw_worker *w, void *ud)
{
	struct session *s = ud;
	uv_mutex_lock(&s->touch_mu);
	size_t n = s->ntouch;
	memcpy(s->batch, s->touch, n * sizeof(*s->batch));
	s->ntouch = 0;
	uv_mutex_unlock(&s->touch_mu);
	if (!n)
		return 0;
	/* May wait on a locked auth.db, here and not on the loop. */
	int rc = auth_touch(s->auth, s->batch, n);
	if (!rc)
		return 0;
	log_warn("event=last_use_deferred marks=%zu error=%s", n,
	         rc == -EBUSY ? "database_locked" : "io");
	if (vw_worker_stopping(w))
		return 0;
	uv_mutex_lock(&s->touch_mu);
	for (size_t i = 0; i < n; i++)
		touch_merge(s, &s->batch[i]);
	uv_mutex_unlock(&s->touch_mu);
	/* A login submitted meanwhile ends the wait and goes before the next try. */
	vw_worker_wait(w, TOUCH_RETRY_MS);
	return 1;
}

/* --- answers (loop thread) ---------------------------------------------------------------- */

/* Who the person is, as GET /api/v1/session and the login answer it. */
static void whoami(struct vw_buf *b, const struct auth_principal *p,
                   const struct auth_session *sess, int64_t idle_ms)
{
	char iso[VW_ISO_LEN];
	static const char *const key[] = {
	    "{\"role\":", ",\"city\":", ",\"org\":", ",\"name\":", ",\"token\":"};
	const char *val[] = {auth_role_name(p->role), p->city, p->org, p->name, p->id};
	for (size_t i = 0; i < sizeof(key) / sizeof(key[0]); i++) {
		vw_buf_puts(b, key[i]);
		vw_buf_json_str(b, val[i]);
	}
	if (p->role == AUTH_INSPECTOR) { /* issue 12 D: whose inspections are his */
		vw_buf_puts(b, ",\"inspector\":");
		vw_buf_json_str(b, p->inspector);
	}
	vw_time_iso(p->expires_ms, iso);
	vw_buf_printf(b, ",\"token_expires\":\"%s\"", iso);
	if (sess) {
		int64_t idle_end = sess->last_seen_ms + idle_ms;
		vw_time_iso(sess->expires_ms, iso);
		vw_buf_printf(b, ",\"via\":\"session\",\"expires\":\"%s\"", iso);
		vw_time_iso(idle_end < sess->expires_ms ? idle_end : sess->expires_ms, iso);
		vw_buf_printf(b, ",\"idle_expires\":\"%s\",\"idle_timeout_s\":%lld}", iso,
		              (long long)(idle_ms / 1000));
	} else {
		vw_time_iso(p->expires_ms, iso);
		vw_buf_printf(b, ",\"via\":\"bearer\",\"expires\":\"%s\"}", iso);
	}
}

static void answer(struct session *s, struct job *j)
{
	if (j->rc == -EBUSY || j->rc == -EIO) {
		static const char body[] = "{\"error\":\"access records busy\","
		                           "\"detail\":\"try again in a moment\"}";
		conn_respond(j->conn, 503, "Retry-After: 1\r\n", body, sizeof(body) - 1);
		return;
	}
	if (j->kind == JOB_DELETE) {
		static const char body[] = "{\"status\":\"logged_out\"}";
		/* Its event streams end now, not at their next check. */
		if (j->events)
			events_end_session(j->events, j->sess.hash, "logout");
		char hdr[256];
		snprintf(hdr, sizeof(hdr), "%sCache-Control: no-store\r\n", authz_clear_cookie);
		log_info("event=session_ended peer=%s token=%s reason=logout", conn_peer(j->conn),
		         j->person.id);
		conn_respond(j->conn, 200, hdr, body, sizeof(body) - 1);
		return;
	}
	if (j->rc) {
		/* Revoked or expired between the loop's check and the worker's. */
		log_warn("event=auth_refused peer=%s path=/api/v1/session token=%s reason=%s",
		         conn_peer(j->conn), j->person.id,
		         j->rc == -EKEYEXPIRED ? "expired_token" : "revoked_token");
		conn_respond_error(j->conn, 401, "authentication required",
		                   "the token is no longer valid");
		return;
	}
	/* No Max-Age: the browser forgets it when it closes; the server ends it sooner by its
	 * idle and absolute expiry. HttpOnly: no script reads it; Secure: TLS only; Strict:
	 * never sent on a request another site starts. */
	char hdr[256];
	snprintf(hdr, sizeof(hdr),
	         "Set-Cookie: " SESSION_COOKIE "=%s; HttpOnly; Secure; SameSite=Strict; Path=/\r\n"
	         "Cache-Control: no-store\r\n",
	         j->sid);
	explicit_bzero(j->sid, sizeof(j->sid));
	struct vw_buf b;
	vw_buf_init(&b, 4096);
	whoami(&b, &j->person, &j->sess, s->opts.idle_ms);
	char exp[VW_ISO_LEN];
	vw_time_iso(j->sess.expires_ms, exp);
	log_info("event=session_created peer=%s token=%s role=%s expires=%s", conn_peer(j->conn),
	         j->person.id, auth_role_name(j->person.role), exp);
	if (b.err)
		conn_respond_error(j->conn, 500, "internal error", NULL);
	else
		conn_respond(j->conn, 200, hdr, b.data, b.len);
	explicit_bzero(hdr, sizeof(hdr));
	vw_buf_free(&b);
}

/* A job back from the worker. At destroy (-ECANCELED) no connection is left to answer. */
static void job_done(void *job, int status, void *ud)
{
	struct job *j = job;
	if (!status && j->kind == JOB_CHECK)
		j->cb(j->cb_ud, j->tag, j->rc, &j->person, &j->sess);
	else if (!status)
		answer(ud, j);
	explicit_bzero(j, sizeof(*j));
	free(j);
}

/* --- public ------------------------------------------------------------------------------- */

int session_create(uv_loop_t *loop, const char *auth_db_path, const struct session_opts *o,
                   struct session **out, char *err, size_t errlen)
{
	*out = NULL;
	struct session *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = uv_mutex_init(&s->touch_mu);
	if (rc) {
		snprintf(err, errlen, "cannot create the session lock: %s", uv_strerror(rc));
		free(s);
		return rc;
	}
	/* From here session_destroy undoes whatever was made. */
	s->touch = calloc(SESSION_TOUCH_MAX, sizeof(*s->touch));
	s->batch = calloc(SESSION_TOUCH_MAX, sizeof(*s->batch));
	s->origins = strdup(o->origins ? o->origins : "");
	if (!s->touch || !s->batch || !s->origins) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	s->opts = *o;
	s->opts.origins = s->origins;
	if ((rc = auth_open(auth_db_path, &s->auth, err, errlen)) != 0)
		goto fail;
	rc =
	    vw_worker_create(loop, run_job, write_marks, job_done, s, SESSION_JOBS_MAX, &s->worker);
	if (rc) {
		snprintf(err, errlen, "cannot start the session thread: %s", uv_strerror(rc));
		goto fail;
	}
	*out = s;
	return 0;
fail:
	session_destroy(s);
	return rc;
}

const struct session_opts *session_opts(const struct session *s)
{
	return &s->opts;
}

static void push_touch(struct session *s, const struct auth_touch *t)
{
	uv_mutex_lock(&s->touch_mu);
	int kept = touch_merge(s, t);
	uv_mutex_unlock(&s->touch_mu);
	vw_worker_kick(s->worker);
	if (!kept) {
		unsigned suppressed = 0;
		s->dropped++;
		if (vw_log_limit_ok(&s->drop_log, vw_mono_ms(), &suppressed))
			log_warn("event=last_use_dropped queue=%d dropped=%lu suppressed=%u",
			         SESSION_TOUCH_MAX, s->dropped, suppressed);
	}
}

void session_note_use(struct session *s, const struct auth_principal *p,
                      const struct auth_session *sess)
{
	int64_t now = vw_now_ms();
	if (now - p->last_used_ms >= SESSION_TOUCH_TOKEN_MS) {
		struct auth_touch t = {.is_session = 0, .at_ms = now};
		snprintf(t.id, sizeof(t.id), "%s", p->id);
		push_touch(s, &t);
	}
	int64_t every = s->opts.idle_ms / 4 < SESSION_TOUCH_TOKEN_MS ? s->opts.idle_ms / 4
	                                                             : SESSION_TOUCH_TOKEN_MS;
	if (sess && now - sess->last_seen_ms >= every) {
		struct auth_touch t = {.is_session = 1, .at_ms = now};
		memcpy(t.hash, sess->hash, AUTH_HASH_LEN);
		push_touch(s, &t);
	}
}

int session_recheck(struct session *s, const char *token_id, const unsigned char *hash,
                    session_recheck_cb cb, void *ud, uint64_t tag)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->kind = JOB_CHECK;
	snprintf(j->person.id, sizeof(j->person.id), "%s", token_id);
	if (hash) {
		memcpy(j->sess.hash, hash, AUTH_HASH_LEN);
		j->has_hash = 1;
	}
	j->cb = cb;
	j->cb_ud = ud;
	j->tag = tag;
	int rc = vw_worker_submit(s->worker, j);
	if (rc)
		free(j);
	return rc;
}

void session_destroy(struct session *s)
{
	if (!s)
		return;
	/* The marks still queued are written first (vw_worker_destroy drains; a write that
	 * fails at quit is given up), and the worker is joined before its connection closes. */
	vw_worker_destroy(s->worker);
	auth_close(s->auth);
	uv_mutex_destroy(&s->touch_mu);
	free(s->touch);
	free(s->batch);
	free(s->origins);
	free(s);
}

/* --- handlers ----------------------------------------------------------------------------- */

static void refuse_unavailable(struct conn *c)
{
	conn_respond_error(c, 503, "sessions unavailable", NULL);
}

/* The token from {"token": "..."}: 0, or -EINVAL (with *why) when the body is no login. */
static int body_token(const struct http_request *req, char *out, size_t outlen, const char **why)
{
	*why = "send Authorization: Bearer TOKEN, or a JSON body {\"token\": \"TOKEN\"}";
	if (!req->body_len)
		return -EINVAL;
	cJSON *doc = cJSON_ParseWithLength(req->body, req->body_len);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "token");
	int rc = -EINVAL;
	if (!doc)
		*why = "the body is not JSON";
	else if (!cJSON_IsString(t) || !t->valuestring)
		*why = "the body has no \"token\" string";
	else if (strlen(t->valuestring) >= outlen)
		*why = "\"token\" is too long to be a token";
	else {
		snprintf(out, outlen, "%s", t->valuestring);
		rc = 0;
	}
	if (cJSON_IsString(t) && t->valuestring)
		explicit_bzero(t->valuestring, strlen(t->valuestring));
	cJSON_Delete(doc);
	return rc;
}

void session_post(struct api *a, struct conn *c, const struct http_request *req,
                  const struct router_match *m, const struct authz_principal *anon)
{
	(void)m, (void)anon;
	struct session *s = a->session;
	if (!s || !a->auth) {
		refuse_unavailable(c);
		return;
	}
	if (req->body_len > LOGIN_BODY_MAX) {
		conn_respond_error(c, 413, "request body too large",
		                   "a login body is {\"token\": ...}");
		return;
	}
	char tok[AUTH_TOKEN_LEN + 16];
	struct authz_principal who;
	memset(&who, 0, sizeof(who));
	int rc = authz_bearer(req, tok, sizeof(tok));
	if (rc == -EINVAL) {
		api_log_refused(a, c, req, "token=-", "unknown_token");
		authz_respond(c, 401, AUTHZ_PEOPLE, &who);
		return;
	}
	if (rc == -ENOENT) {
		const char *why;
		if (body_token(req, tok, sizeof(tok), &why)) {
			conn_respond_error(c, 400, "no token", why);
			return;
		}
		/* A token in the body is what a login form sends: from another site it would log
		 * this browser in as the attacker (login CSRF). A bearer header cannot be made
		 * to cross sites without CORS, which we never grant. */
		if (!authz_origin_ok(a, req)) {
			explicit_bzero(tok, sizeof(tok));
			api_log_refused(a, c, req, "token=-", "bad_origin");
			conn_respond_error(c, 403, "forbidden",
			                   "a login with the token in the body must come from this "
			                   "server's own origin");
			return;
		}
	}
	int status = authz_person_token(a, c, req, tok, &who);
	explicit_bzero(tok, sizeof(tok));
	if (status) {
		authz_respond(c, status, AUTHZ_PEOPLE, &who);
		return;
	}
	struct job *j = calloc(1, sizeof(*j));
	if (j) {
		j->kind = JOB_CREATE;
		j->conn = c;
		j->person = who.person;
	}
	if (!j || vw_worker_submit(s->worker, j)) {
		free(j);
		conn_respond(c, 503, "Retry-After: 1\r\n", "{\"error\":\"server busy\"}", 23);
	}
}

void session_get(struct api *a, struct conn *c, const struct http_request *req,
                 const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)m;
	struct session *s = a->session;
	struct vw_buf b;
	vw_buf_init(&b, 4096);
	whoami(&b, &who->person, who->by_session ? &who->sess : NULL, s ? s->opts.idle_ms : 0);
	if (b.err)
		conn_respond_error(c, 500, "internal error", NULL);
	else
		conn_respond(c, 200, "Cache-Control: no-store\r\n", b.data, b.len);
	vw_buf_free(&b);
}

void session_delete(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)m;
	struct session *s = a->session;
	if (!who->by_session) {
		conn_respond_error(
		    c, 400, "no session",
		    "DELETE ends the session of the __Host-vw_session cookie; a token is "
		    "ended with 'token revoke'");
		return;
	}
	if (!s) {
		refuse_unavailable(c);
		return;
	}
	struct job *j = calloc(1, sizeof(*j));
	if (j) {
		j->kind = JOB_DELETE;
		j->conn = c;
		j->person = who->person;
		j->sess = who->sess;
		j->events = a->events;
	}
	if (!j || vw_worker_submit(s->worker, j)) {
		free(j);
		conn_respond(c, 503, "Retry-After: 1\r\n", "{\"error\":\"server busy\"}", 23);
	}
}
