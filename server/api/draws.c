/* draws: the double-random draws over HTTP — POST/GET /api/v1/draws, GET /api/v1/draws/{id},
 * its commit, execute, replace and publish, and GET /api/v1/draws/{id}/document (the file
 * 'draw verify' reads). Parses, scopes (a city sees its city's draws only; a draw outside
 * it is 404) and answers; the work is server/inspect/draws.c's, run on inspect's worker.
 * Execute first reads the window's exam sessions from the results store (the collector is
 * their authority). Every step that changes a draw is audited once it has committed.
 * Loop thread; every request's job is freed by its last callback. docs/API.md "Draws". */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "conf.h"
#include "draws.h"
#include "inspect.h"
#include "store.h"
#include "vtime.h"

struct req_ctx {
	struct api *a;
	struct conn *c;
	struct draws_job *j;
	const char *audit;  /* the audit action once the job committed, NULL for reads */
	int created;        /* 201 instead of 200 */
	int document;       /* answer j->document */
	inspect_run_fn run; /* the draws.c step, on j */
};

static void respond_json(struct conn *c, int status, const char *error, const char *field)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", error);
	if (field && field[0])
		cJSON_AddStringToObject(o, "field", field);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (s)
		conn_respond(c, status, NULL, s, strlen(s));
	else
		conn_respond_error(c, 500, "out of memory", NULL);
	free(s);
}

static void respond_job(struct conn *c, const struct draws_job *j, int status)
{
	switch (status) {
	case -EINVAL:
		respond_json(c, 422, j->err, j->field);
		break;
	case -EPERM:
		respond_json(c, 422, j->err, j->field[0] ? j->field : "secret");
		break;
	case -ENOENT:
		conn_respond_error(c, 404, "no such draw", NULL);
		break;
	case -EEXIST:
	case -EALREADY:
		respond_json(c, 409, j->err, j->field);
		break;
	case -EACCES:
		respond_json(c, 403, j->err, j->field);
		break;
	case -EAGAIN:
		conn_respond_error(c, 503, "server busy", NULL);
		break;
	case -ESHUTDOWN:
		conn_respond_error(c, 503, "inspections unavailable", NULL);
		break;
	case -ENOMEM:
		conn_respond_error(c, 507, "response too large", j->err[0] ? j->err : NULL);
		break;
	default:
		conn_respond_error(c, 500, "inspections store failed", j->err[0] ? j->err : NULL);
		break;
	}
}

static void ctx_free(struct req_ctx *x)
{
	draws_job_free(x->j);
	free(x);
}

static void on_done(void *arg, int status)
{
	struct req_ctx *x = arg;
	if (status == -ECANCELED) {
		ctx_free(x);
		return;
	}
	if (status) {
		respond_job(x->c, x->j, status);
		ctx_free(x);
		return;
	}
	if (x->audit && x->a->auth) {
		char detail[400];
		if (x->j->manifest_sha256)
			snprintf(detail, sizeof(detail), "manifest_sha256=%s",
			         x->j->manifest_sha256);
		else if (x->j->in_inspector[0])
			snprintf(detail, sizeof(detail), "seq=%d out=%s in=%s", x->j->seq,
			         x->j->out, x->j->in_inspector);
		else if (x->j->ninspections)
			snprintf(detail, sizeof(detail), "inspections=%zu", x->j->ninspections);
		else
			detail[0] = '\0';
		/* The draw has changed already: a failed audit append is said loudly, the answer
		 * still tells the truth about the draw. */
		if (auth_audit(x->a->auth, x->j->actor, x->audit, x->j->id, detail))
			log_error("event=audit_failed action=%s draw=%s", x->audit, x->j->id);
	}
	if (x->audit)
		log_info("event=draw_change action=%s draw=%s", x->audit, x->j->id);
	const char *body = x->document ? x->j->document : x->j->json;
	if (x->document) {
		/* The id is [A-Za-z0-9._-] (router_match): safe in the header as it is. */
		char extra[128];
		snprintf(extra, sizeof(extra),
		         "Content-Disposition: attachment; filename=%s.json\r\n", x->j->id);
		conn_respond(x->c, 200, extra, body, strlen(body));
	} else
		conn_respond(x->c, x->created ? 201 : 200, NULL, body, strlen(body));
	ctx_free(x);
}

/* A job for the asker on draw id (NULL: none yet); NULL after answering. */
static struct req_ctx *ctx_new(struct api *a, struct conn *c, const struct authz_principal *who,
                               const char *id)
{
	if (!a->inspect) {
		conn_respond_error(c, 503, "inspections unavailable", NULL);
		return NULL;
	}
	struct req_ctx *x = calloc(1, sizeof(*x));
	struct draws_job *j = x ? calloc(1, sizeof(*j)) : NULL;
	if (!j) {
		free(x);
		conn_respond_error(c, 500, "out of memory", NULL);
		return NULL;
	}
	x->a = a;
	x->c = c;
	x->j = j;
	if (id)
		snprintf(j->id, sizeof(j->id), "%s", id);
	snprintf(j->actor, sizeof(j->actor), "%s:%s (%s)", auth_role_name(who->person.role),
	         who->person.id, who->person.name);
	/* The route admits province and city only; anything else would see nothing. */
	j->province = who->person.role == AUTH_PROVINCE;
	if (!j->province)
		snprintf(j->scope_city, sizeof(j->scope_city), "%s", who->person.city);
	j->now_ms = vw_now_ms();
	return x;
}

/* The worker's side: the step on the job (inspect_submit's arg is the whole request). */
static int run_step(sqlite3 *db, void *arg)
{
	struct req_ctx *x = arg;
	return x->run(db, x->j);
}

static void submit(struct req_ctx *x, inspect_run_fn run)
{
	x->run = run;
	int rc = inspect_submit(x->a->inspect, run_step, on_done, x);
	if (rc) {
		respond_job(x->c, x->j, rc);
		ctx_free(x);
	}
}

/* The body as a JSON object, or NULL after answering 400. */
static cJSON *body_object(struct conn *c, const struct http_request *req)
{
	cJSON *o = cJSON_ParseWithLength(req->body, req->body_len);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		respond_json(c, 400, "expected a JSON object", NULL);
		return NULL;
	}
	return o;
}

/* A member as JSON text (malloc'd); NULL when absent. */
static char *member_text(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return v ? cJSON_PrintUnformatted(v) : NULL;
}

static char *member_str(const cJSON *o, const char *key, int *bad)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v)
		return NULL;
	if (!cJSON_IsString(v)) {
		*bad = 1;
		return NULL;
	}
	return strdup(v->valuestring);
}

/* Members other than the allowed ones are refused: a misspelt "secrets" must not pass as an
 * empty one. */
static int unknown_member(struct conn *c, const cJSON *o, const char *const *allowed)
{
	const cJSON *m;
	cJSON_ArrayForEach(m, o)
	{
		int ok = 0;
		for (const char *const *k = allowed; *k; k++)
			ok |= strcmp(m->string, *k) == 0;
		if (!ok) {
			respond_json(c, 422, "unknown field", m->string);
			return 1;
		}
	}
	return 0;
}

/* --- POST /api/v1/draws ------------------------------------------------------------------------
 */

void api_draws_post(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who)
{
	(void)m;
	cJSON *o = body_object(c, req);
	if (!o)
		return;
	static const char *const allowed[] = {"id", "plan", NULL};
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
	const cJSON *plan = cJSON_GetObjectItemCaseSensitive(o, "plan");
	if (unknown_member(c, o, allowed)) {
		cJSON_Delete(o);
		return;
	}
	if (!cJSON_IsString(id) || !vw_conf_id_valid(id->valuestring)) {
		cJSON_Delete(o);
		respond_json(c, 422, "expected an id (1-63 of [A-Za-z0-9._-])", "id");
		return;
	}
	if (!cJSON_IsObject(plan)) {
		cJSON_Delete(o);
		respond_json(c, 422, "expected the plan as an object", "plan");
		return;
	}
	struct req_ctx *x = ctx_new(a, c, who, id->valuestring);
	if (x) {
		x->j->plan_json = cJSON_PrintUnformatted(plan);
		x->audit = "draw_create";
		x->created = 1;
		submit(x, draws_create_run);
	}
	cJSON_Delete(o);
}

/* --- reads -------------------------------------------------------------------------------------
 */

void api_draws_list(struct api *a, struct conn *c, const struct http_request *req,
                    const struct router_match *m, const struct authz_principal *who)
{
	(void)req, (void)m;
	struct req_ctx *x = ctx_new(a, c, who, NULL);
	if (x)
		submit(x, draws_list_run);
}

void api_draw_get(struct api *a, struct conn *c, const struct http_request *req,
                  const struct router_match *m, const struct authz_principal *who)
{
	(void)req;
	struct req_ctx *x = ctx_new(a, c, who, router_param(m, "id"));
	if (x)
		submit(x, draws_get_run);
}

void api_draw_document(struct api *a, struct conn *c, const struct http_request *req,
                       const struct router_match *m, const struct authz_principal *who)
{
	(void)req;
	struct req_ctx *x = ctx_new(a, c, who, router_param(m, "id"));
	if (x) {
		x->document = 1;
		submit(x, draws_document_run);
	}
}

/* --- POST /api/v1/draws/{id}/commit --------------------------------------------------------------
 */

void api_draw_commit(struct api *a, struct conn *c, const struct http_request *req,
                     const struct router_match *m, const struct authz_principal *who)
{
	cJSON *o = body_object(c, req);
	if (!o)
		return;
	static const char *const allowed[] = {"commitment", "randomness", NULL};
	int bad = 0;
	if (unknown_member(c, o, allowed)) {
		cJSON_Delete(o);
		return;
	}
	struct req_ctx *x = ctx_new(a, c, who, router_param(m, "id"));
	if (!x) {
		cJSON_Delete(o);
		return;
	}
	x->j->commitment = member_str(o, "commitment", &bad);
	x->j->randomness_json = member_text(o, "randomness");
	cJSON_Delete(o);
	if (bad) {
		respond_json(c, 422, "expected 64 lowercase hex digits", "commitment");
		ctx_free(x);
		return;
	}
	x->audit = "draw_commit";
	submit(x, draws_commit_run);
}

/* --- POST /api/v1/draws/{id}/execute -------------------------------------------------------------
 */

static void on_sessions(void *ud, const struct store_reply *r)
{
	struct req_ctx *x = ud;
	if (r->status) {
		conn_respond_error(x->c, 503, "store unavailable",
		                   "the exam sessions could not be read");
		ctx_free(x);
		return;
	}
	if (draws_sessions_json(x->j, r->exam_sessions, r->nexam_sessions)) {
		conn_respond_error(x->c, 507, "too many sessions", NULL);
		ctx_free(x);
		return;
	}
	x->audit = "draw_execute";
	submit(x, draws_execute_run);
}

/* The draw's window and sites are known: the sessions as the collector has them now. */
static void on_inputs(void *arg, int status)
{
	struct req_ctx *x = arg;
	if (status == -ECANCELED) {
		ctx_free(x);
		return;
	}
	if (status) {
		respond_job(x->c, x->j, status);
		ctx_free(x);
		return;
	}
	/* Every city's sessions of the window: a provincial org of a city draw examines in
	 * other cities too; the snapshot's sites pick them (draws_sessions_json). */
	struct store_exam_query q = {.from_ms = x->j->from_ms, .to_ms = x->j->to_ms};
	int rc = store_exam_list(x->a->store, &q, on_sessions, x);
	if (rc) {
		conn_respond_error(x->c, 503, rc == -EAGAIN ? "server busy" : "store unavailable",
		                   NULL);
		ctx_free(x);
	}
}

void api_draw_execute(struct api *a, struct conn *c, const struct http_request *req,
                      const struct router_match *m, const struct authz_principal *who)
{
	cJSON *o = body_object(c, req);
	if (!o)
		return;
	static const char *const allowed[] = {"values", "secret", NULL};
	if (unknown_member(c, o, allowed)) {
		cJSON_Delete(o);
		return;
	}
	const cJSON *values = cJSON_GetObjectItemCaseSensitive(o, "values");
	int bad = !cJSON_IsArray(values);
	const cJSON *v;
	cJSON_ArrayForEach(v, values)
	{
		bad |= !cJSON_IsString(v);
	}
	if (bad) {
		cJSON_Delete(o);
		respond_json(c, 422, "expected an array of strings, one per declared source",
		             "values");
		return;
	}
	struct req_ctx *x = ctx_new(a, c, who, router_param(m, "id"));
	if (!x) {
		cJSON_Delete(o);
		return;
	}
	x->j->values_json = cJSON_PrintUnformatted(values);
	x->j->secret_hex = member_str(o, "secret", &bad);
	cJSON_Delete(o);
	if (bad || !x->j->secret_hex) {
		respond_json(c, 422, "expected the revealed secret as hex", "secret");
		ctx_free(x);
		return;
	}
	x->run = draws_execute_inputs_run;
	int rc = inspect_submit(a->inspect, run_step, on_inputs, x);
	if (rc) {
		respond_job(c, x->j, rc);
		ctx_free(x);
	}
}

/* --- POST /api/v1/draws/{id}/replace -------------------------------------------------------------
 */

void api_draw_replace(struct api *a, struct conn *c, const struct http_request *req,
                      const struct router_match *m, const struct authz_principal *who)
{
	cJSON *o = body_object(c, req);
	if (!o)
		return;
	static const char *const allowed[] = {"seq", "out", "reason", "value", NULL};
	if (unknown_member(c, o, allowed)) {
		cJSON_Delete(o);
		return;
	}
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(o, "seq");
	const cJSON *out = cJSON_GetObjectItemCaseSensitive(o, "out");
	const char *field = NULL;
	if (!cJSON_IsNumber(seq) || seq->valuedouble < 1 || seq->valuedouble > 1e9 ||
	    seq->valuedouble != (double)(int)seq->valuedouble)
		field = "seq";
	else if (!cJSON_IsString(out) || !vw_conf_id_valid(out->valuestring))
		field = "out";
	if (field) {
		cJSON_Delete(o);
		respond_json(c, 422,
		             field[0] == 's' ? "expected the inspection's seq (1, 2, ...)"
		                             : "expected the leaving inspector's id",
		             field);
		return;
	}
	struct req_ctx *x = ctx_new(a, c, who, router_param(m, "id"));
	if (!x) {
		cJSON_Delete(o);
		return;
	}
	int bad = 0;
	x->j->seq = seq->valueint;
	snprintf(x->j->out, sizeof(x->j->out), "%s", out->valuestring);
	x->j->reason = member_str(o, "reason", &bad);
	field = bad ? "reason" : NULL;
	x->j->value = member_str(o, "value", &bad);
	if (bad && !field)
		field = "value";
	cJSON_Delete(o);
	if (field) {
		respond_json(c, 422, "expected a string", field);
		ctx_free(x);
		return;
	}
	x->audit = "draw_replace";
	submit(x, draws_replace_run);
}

/* --- POST /api/v1/draws/{id}/publish -------------------------------------------------------------
 */

void api_draw_publish(struct api *a, struct conn *c, const struct http_request *req,
                      const struct router_match *m, const struct authz_principal *who)
{
	(void)req;
	struct req_ctx *x = ctx_new(a, c, who, router_param(m, "id"));
	if (x) {
		x->audit = "draw_publish";
		submit(x, draws_publish_run);
	}
}
