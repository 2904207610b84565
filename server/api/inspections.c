/* api/inspections.c: the inspections of the draws (docs/API.md "Inspections") — list, one
 * inspection, its evidence, and the inspectors' result, confirmation and the bureau's
 * publication. Parsing, the asker's scope and the answer here (loop thread); the reads and
 * writes are server/inspect/inspections.c's run functions on inspect.db's worker. People's
 * changes are audited (auth_audit) once the job committed. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "capture.h"
#include "conf.h"
#include "inspect.h"
#include "inspections.h"
#include "labels.h"
#include "store.h"
#include "vtime.h"

enum op { OP_LIST, OP_GET, OP_EVIDENCE, OP_RESULT, OP_CONFIRM, OP_PUBLISH };

struct ijob {
	struct api *a;
	struct conn *c;
	enum op op;
	struct insp_who who;
	int64_t id, eid;
	char draw[65], state[16], org[65];
	struct insp_list_query q;
	struct insp_deadline due;
	char *json;
	struct insp_write w;
	char *outcome, *findings, *note, *evidence;
	struct insp_evidence ev;
	char peer[64];
};

static void job_free(struct ijob *j)
{
	free(j->json);
	free(j->outcome);
	free(j->findings);
	free(j->note);
	free(j->evidence);
	inspections_evidence_free(&j->ev);
	free(j);
}

static void respond_field(struct conn *c, int status, const char *what, const char *field)
{
	struct vw_buf b;
	vw_buf_init(&b, 4096);
	vw_buf_puts(&b, "{\"error\":");
	vw_buf_json_str(&b, what);
	if (field && field[0]) {
		vw_buf_puts(&b, ",\"field\":");
		vw_buf_json_str(&b, field);
	}
	vw_buf_puts(&b, "}");
	if (b.err)
		conn_respond_error(c, 500, "internal", NULL);
	else
		conn_respond(c, status, NULL, b.data, b.len);
	vw_buf_free(&b);
}

static void who_from(const struct authz_principal *p, struct insp_who *w)
{
	memset(w, 0, sizeof(*w));
	switch (p->person.role) {
	case AUTH_PROVINCE:
		w->role = INSP_PROVINCE;
		break;
	case AUTH_CITY:
		w->role = INSP_CITY;
		break;
	default: /* the route table admits no other role; an inspector sees his own */
		w->role = INSP_INSPECTOR;
		break;
	}
	snprintf(w->city, sizeof(w->city), "%s", p->person.city);
	snprintf(w->inspector, sizeof(w->inspector), "%s", p->person.inspector);
	snprintf(w->actor, sizeof(w->actor), "token:%s", p->person.id);
}

static int parse_id(const char *s, int64_t *out)
{
	if (!s || !s[0] || strlen(s) > 18)
		return -EINVAL;
	int64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (*p - '0');
	}
	*out = v;
	return v > 0 ? 0 : -EINVAL;
}

static int run_job(sqlite3 *db, void *arg)
{
	struct ijob *j = arg;
	switch (j->op) {
	case OP_LIST:
		return inspections_list(db, &j->who, &j->q, &j->due, &j->json);
	case OP_GET:
		return inspections_get(db, &j->who, j->id, &j->due, &j->json);
	case OP_EVIDENCE:
		return inspections_evidence_get(db, &j->who, j->id, j->eid, &j->ev);
	case OP_RESULT:
		return inspections_record(db, &j->w);
	case OP_CONFIRM:
		return inspections_confirm(db, &j->w);
	case OP_PUBLISH:
		return inspections_publish(db, &j->w);
	}
	return -EINVAL;
}

static const char *const audit_action[] = {
    [OP_RESULT] = "inspection_result",
    [OP_CONFIRM] = "inspection_confirm",
    [OP_PUBLISH] = "inspection_publish",
};

static void answer_write(struct ijob *j)
{
	char detail[512], subject[32];
	snprintf(subject, sizeof(subject), "inspection:%lld", (long long)j->id);
	if (j->op == OP_RESULT)
		snprintf(detail, sizeof(detail), "org=%s outcome=%s result_version=%lld", j->w.org,
		         j->outcome, (long long)j->w.out_version);
	else
		snprintf(detail, sizeof(detail), "org=%s result_version=%lld state=%s", j->w.org,
		         (long long)j->w.out_version, j->w.out_state);
	/* The change is committed; a failed audit append is logged, never a lost answer. */
	if (!j->a->auth ||
	    auth_audit(j->a->auth, j->who.actor, audit_action[j->op], subject, detail))
		log_error("event=audit_failed action=%s subject=%s", audit_action[j->op], subject);
	char body[256];
	int n =
	    snprintf(body, sizeof(body), "{\"id\":%lld,\"state\":\"%s\",\"result_version\":%lld",
	             (long long)j->id, j->w.out_state, (long long)j->w.out_version);
	if (j->op == OP_CONFIRM)
		n += snprintf(body + n, sizeof(body) - (size_t)n, ",\"confirmations\":%d",
		              j->w.out_confirmed);
	n += snprintf(body + n, sizeof(body) - (size_t)n, "}");
	conn_respond(j->c, 200, NULL, body, (size_t)n);
}

static void answer_evidence(struct ijob *j)
{
	struct insp_evidence *e = &j->ev;
	char iso[VW_ISO_LEN], extra[256];
	vw_time_iso(e->captured_ms, iso);
	/* Pictures of candidates are personal information: who saw which, as for thumbnails
	 * (event=thumbnail_access). */
	log_info("event=inspection_evidence_access inspection=%lld evidence=%lld kind=%s "
	         "actor=\"%s\" peer=%s",
	         (long long)j->id, (long long)e->id, e->kind, j->who.actor, j->peer);
	if (e->jpeg) {
		snprintf(extra, sizeof(extra),
		         "Cache-Control: private, no-store\r\nX-Captured-Time: %s\r\n"
		         "X-Content-Type-Options: nosniff\r\n",
		         iso);
		conn_respond_typed(j->c, 200, "image/jpeg", extra, (const char *)e->jpeg,
		                   e->jpeg_len);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)e->id);
	cJSON_AddNumberToObject(o, "inspection", (double)e->inspection);
	cJSON_AddStringToObject(o, "kind", e->kind);
	if (e->camera[0])
		cJSON_AddStringToObject(o, "camera", e->camera);
	cJSON_AddStringToObject(o, "captured", iso);
	cJSON *d = cJSON_Parse(e->data && e->data[0] ? e->data : "null");
	cJSON_AddItemToObject(o, "data", d ? d : cJSON_CreateNull());
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (s)
		conn_respond(j->c, 200, "Cache-Control: private, no-store\r\n", s, strlen(s));
	else
		conn_respond_error(j->c, 500, "internal", "out of memory");
	free(s);
}

static void on_done(void *arg, int status)
{
	struct ijob *j = arg;
	if (status == -ECANCELED) {
		job_free(j);
		return;
	}
	switch (status) {
	case 0:
		if (j->op == OP_EVIDENCE)
			answer_evidence(j);
		else if (j->op >= OP_RESULT)
			answer_write(j);
		else
			conn_respond(j->c, 200, NULL, j->json, strlen(j->json));
		break;
	case -ENOENT: /* outside the asker's scope answers like nothing at all */
		conn_respond_error(j->c, 404,
		                   j->op == OP_EVIDENCE ? "no such evidence" : "no such inspection",
		                   NULL);
		break;
	case -EPERM:
		respond_field(j->c, 403, j->w.err, NULL);
		break;
	case -EBUSY:
		respond_field(j->c, 409, j->w.err, j->w.field);
		break;
	case -EINVAL:
		respond_field(j->c, 422, j->w.err, j->w.field);
		break;
	case -ESHUTDOWN:
		conn_respond_error(j->c, 503, "shutting down", NULL);
		break;
	default:
		log_error("event=inspection_job_failed op=%d id=%lld error=%s", (int)j->op,
		          (long long)j->id, strerror(status < 0 ? -status : status));
		conn_respond_error(j->c, 503, "inspections unavailable", NULL);
		break;
	}
	job_free(j);
}

static void submit(struct ijob *j)
{
	int rc = j->a->inspect ? inspect_submit(j->a->inspect, run_job, on_done, j) : -ESHUTDOWN;
	if (rc) {
		conn_respond_error(j->c, 503,
		                   rc == -EAGAIN ? "server busy" : "inspections unavailable", NULL);
		job_free(j);
	}
}

static struct ijob *job_new(struct api *a, struct conn *c, const struct authz_principal *who,
                            enum op op, const struct router_match *m)
{
	struct ijob *j = calloc(1, sizeof(*j));
	if (!j) {
		conn_respond_error(c, 503, "server busy", NULL);
		return NULL;
	}
	j->a = a;
	j->c = c;
	j->op = op;
	who_from(who, &j->who);
	snprintf(j->peer, sizeof(j->peer), "%s", conn_peer(c));
	j->w.who = &j->who;
	j->w.id = 0;
	j->w.now_ms = vw_now_ms();
	/* The calendar is loaded once at start and never changed after: the worker may read it. */
	j->due = (struct insp_deadline){&a->calendar, a->result_due_days, j->w.now_ms};
	if (m && op != OP_LIST && parse_id(router_param(m, "id"), &j->id)) {
		conn_respond_error(c, 404, "no such inspection", NULL);
		free(j);
		return NULL;
	}
	j->w.id = j->id;
	return j;
}

void api_inspections_list(struct api *a, struct conn *c, const struct http_request *req,
                          const struct router_match *m, const struct authz_principal *who)
{
	(void)m;
	struct ijob *j = job_new(a, c, who, OP_LIST, NULL);
	if (!j)
		return;
	char after[24] = "", limit[16] = "";
	struct {
		const char *key;
		char *out;
		size_t n;
	} p[] = {{"draw", j->draw, sizeof(j->draw)},
	         {"state", j->state, sizeof(j->state)},
	         {"org", j->org, sizeof(j->org)},
	         {"after", after, sizeof(after)},
	         {"limit", limit, sizeof(limit)}};
	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
		if (api_query_get(req->query, p[i].key, p[i].out, p[i].n) < 0) {
			respond_field(c, 400, "malformed or too long", p[i].key);
			job_free(j);
			return;
		}
	static const char *const states[] = {"", "assigned", "recorded", "confirmed", "published"};
	int ok = 0;
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		ok |= strcmp(j->state, states[i]) == 0;
	if (!ok) {
		respond_field(c, 400, "expected assigned, recorded, confirmed or published",
		              "state");
		job_free(j);
		return;
	}
	j->q = (struct insp_list_query){
	    .draw = j->draw, .state = j->state, .org = j->org, .limit = 100};
	if (after[0] && parse_id(after, &j->q.after)) {
		respond_field(c, 400, "expected the id of the page's last inspection", "after");
		job_free(j);
		return;
	}
	if (limit[0]) {
		int64_t l;
		if (parse_id(limit, &l) || l > INSPECTIONS_PAGE_MAX) {
			respond_field(c, 400, "expected 1 to 500", "limit");
			job_free(j);
			return;
		}
		j->q.limit = (int)l;
	}
	submit(j);
}

void api_inspection_get(struct api *a, struct conn *c, const struct http_request *req,
                        const struct router_match *m, const struct authz_principal *who)
{
	(void)req;
	struct ijob *j = job_new(a, c, who, OP_GET, m);
	if (j)
		submit(j);
}

void api_inspection_evidence(struct api *a, struct conn *c, const struct http_request *req,
                             const struct router_match *m, const struct authz_principal *who)
{
	(void)req;
	struct ijob *j = job_new(a, c, who, OP_EVIDENCE, m);
	if (!j)
		return;
	if (parse_id(router_param(m, "eid"), &j->eid)) {
		conn_respond_error(c, 404, "no such evidence", NULL);
		job_free(j);
		return;
	}
	submit(j);
}

/* The body's object and a string member of it: 0 (NULL when absent), or -EINVAL answered. */
static int body_str(struct conn *c, cJSON *o, const char *key, int required, char **out)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	*out = NULL;
	if (!v || cJSON_IsNull(v)) {
		if (!required)
			return 0;
		respond_field(c, 422, "required", key);
		return -EINVAL;
	}
	if (!cJSON_IsString(v)) {
		respond_field(c, 422, "must be a string", key);
		return -EINVAL;
	}
	*out = strdup(v->valuestring);
	if (!*out) {
		conn_respond_error(c, 503, "server busy", NULL);
		return -ENOMEM;
	}
	return 0;
}

/* "must be one of the [inspection] outcomes: clear, rectify, refer" */
static void outcome_ids(const char *outcomes, char *out, size_t outlen)
{
	struct inspect_labels l;
	char err[160];
	int n = snprintf(out, outlen, "must be one of the [inspection] outcomes");
	if (inspect_labels_parse(outcomes, &l, err, sizeof(err)))
		return;
	for (size_t i = 0; i < l.n && n > 0 && (size_t)n < outlen; i++)
		n += snprintf(out + n, outlen - (size_t)n, "%s%s", i ? ", " : ": ", l.id[i]);
}

static cJSON *body_object(struct conn *c, const struct http_request *req)
{
	cJSON *o = req->body_len ? cJSON_ParseWithLength(req->body, req->body_len) : NULL;
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		respond_field(c, 422, "the body must be a JSON object", NULL);
		return NULL;
	}
	return o;
}

static void on_snapshot(void *ud, const struct store_reply *r)
{
	struct ijob *j = ud;
	/* A session pruned or cancelled since leaves no snapshot: the result is still the
	 * inspectors' to record, and says so. */
	j->evidence = api_score_session_snapshot(j->a, r, j->w.now_ms);
	if (!j->evidence)
		log_warn("event=inspection_snapshot_missing inspection=%lld status=%d",
		         (long long)j->id, r->status);
	j->w.evidence = j->evidence;
	submit(j);
}

void api_inspection_result(struct api *a, struct conn *c, const struct http_request *req,
                           const struct router_match *m, const struct authz_principal *who)
{
	struct ijob *j = job_new(a, c, who, OP_RESULT, m);
	if (!j)
		return;
	cJSON *o = body_object(c, req);
	if (!o) {
		job_free(j);
		return;
	}
	for (cJSON *k = o->child; k; k = k->next)
		if (strcmp(k->string, "outcome") && strcmp(k->string, "findings") &&
		    strcmp(k->string, "note")) {
			respond_field(c, 422, "unknown field", k->string);
			cJSON_Delete(o);
			job_free(j);
			return;
		}
	int rc = body_str(c, o, "outcome", 1, &j->outcome);
	if (!rc)
		rc = body_str(c, o, "findings", 0, &j->findings);
	if (!rc)
		rc = body_str(c, o, "note", 0, &j->note);
	cJSON_Delete(o);
	if (rc) {
		job_free(j);
		return;
	}
	j->w.outcome = j->outcome;
	j->w.findings = j->findings;
	j->w.note = j->note;
	j->w.outcomes = a->outcomes;
	if (!inspections_outcome_valid(j->w.outcomes, j->outcome)) {
		char why[256];
		outcome_ids(a->outcomes, why, sizeof(why));
		respond_field(c, 422, why, "outcome");
		job_free(j);
		return;
	}
	/* The 3.6 evidence of the slot's session, as the store has it now, goes with the
	 * result (the job re-checks who may record: this read only decides the snapshot). */
	int64_t exam = 0;
	char site[64] = "";
	if (a->inspect && inspections_slot(inspect_reader(a->inspect), j->id, &exam, site) == 0 &&
	    exam > 0 && store_score_exam(a->store, exam, on_snapshot, j) == 0)
		return;
	submit(j);
}

void api_inspection_confirm(struct api *a, struct conn *c, const struct http_request *req,
                            const struct router_match *m, const struct authz_principal *who)
{
	struct ijob *j = job_new(a, c, who, OP_CONFIRM, m);
	if (!j)
		return;
	cJSON *o = body_object(c, req);
	if (!o) {
		job_free(j);
		return;
	}
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "result_version");
	if (!cJSON_IsNumber(v) || v->valuedouble < 1 ||
	    v->valuedouble != (double)(int64_t)v->valuedouble) {
		respond_field(c, 422,
		              "required: the result_version being confirmed (a positive integer)",
		              "result_version");
		cJSON_Delete(o);
		job_free(j);
		return;
	}
	j->w.result_version = (int64_t)v->valuedouble;
	cJSON_Delete(o);
	submit(j);
}

void api_inspection_publish(struct api *a, struct conn *c, const struct http_request *req,
                            const struct router_match *m, const struct authz_principal *who)
{
	(void)req;
	struct ijob *j = job_new(a, c, who, OP_PUBLISH, m);
	if (j)
		submit(j);
}

/* --- manual capture ------------------------------------------------------------------------ */

struct cap_req {
	struct conn *c;
	int64_t id;
};

static void on_captured(void *ud, int status, size_t rows)
{
	struct cap_req *x = ud;
	if (status == -ECANCELED) {
		free(x);
		return;
	}
	if (status == 0) {
		char body[96];
		int n = snprintf(body, sizeof(body), "{\"id\":%lld,\"rows\":%zu}", (long long)x->id,
		                 rows);
		conn_respond(x->c, 201, NULL, body, (size_t)n);
	} else if (status == -ENOENT) {
		conn_respond_error(x->c, 409, "the site has not reported yet", NULL);
	} else {
		conn_respond_error(x->c, 503, "capture failed", NULL);
	}
	free(x);
}

void api_inspection_capture(struct api *a, struct conn *c, const struct http_request *req,
                            const struct router_match *m, const struct authz_principal *who)
{
	(void)req;
	int64_t id;
	if (parse_id(router_param(m, "id"), &id)) {
		conn_respond_error(c, 404, "no such inspection", NULL);
		return;
	}
	if (!a->inspect || !a->capture) {
		conn_respond_error(c, 503, "inspections unavailable", NULL);
		return;
	}
	char site[64];
	int rc = inspections_capture_allowed(inspect_reader(a->inspect), who->person.inspector, id,
	                                     vw_now_ms(), site);
	if (rc == -ENOENT) {
		conn_respond_error(c, 404, "no such inspection", NULL);
		return;
	}
	if (rc == -EBUSY) {
		respond_field(c, 409,
		              "a capture is taken during the inspection's slot, while assigned",
		              NULL);
		return;
	}
	struct cap_req *x = rc ? NULL : calloc(1, sizeof(*x));
	if (!x) {
		conn_respond_error(c, 503, "inspections unavailable", NULL);
		return;
	}
	x->c = c;
	x->id = id;
	if ((rc = capture_now(a->capture, id, site, on_captured, x)) != 0) {
		conn_respond_error(c, 503, rc == -EAGAIN ? "server busy" : "capture unavailable",
		                   NULL);
		free(x);
	}
}
