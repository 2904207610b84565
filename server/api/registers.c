/* registers: the double-random registers over HTTP (docs/API.md "Registers") — GET/POST
 * /api/v1/registers/{register} (targets | inspectors | items, and {register}.csv for the
 * export), DELETE /api/v1/registers/{register}/{key}, POST .../import (CSV), GET
 * /api/v1/registers/changes. Parses, authorizes and formats on the loop thread; the work is
 * a job on inspect.db's worker (registers.h). Scope: the province everything; a city its own
 * city's targets and inspectors, and reads the items (the province's register). Each
 * request's context is freed by its done callback. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "inspect.h"
#include "registers.h"
#include "registers_csv.h"
#include "vtime.h"

/* One JSON POST is an edit, a few rows at a time; a whole register goes by CSV import. */
#define POST_MAX_ROWS 10000
#define RESPONSE_MAX (64u << 20)
/* A POST changing more rows than this is audited as one row (register_changes has each). */
#define AUDIT_ROWS_MAX 20
/* A city as ?city= may carry it (percent-decoded, a bound kept loosely: 3 x the register's);
 * a longer one matches no row. */
#define API_REGISTERS_CITY_LEN (REGISTERS_CITY_MAX * 3 + 1)

void api_set_risk_grades(struct api *a, const struct inspect_labels *risk)
{
	a->risk_grades = *risk;
}

struct reg_ctx {
	struct api *a;
	struct conn *c;
	struct authz_principal who;
	enum registers_kind kind;
	char actor[300];
	char scope_city[API_REGISTERS_CITY_LEN];
	int array;      /* the POST was an array: fields are named [i].field */
	int csv_export; /* GET {register}.csv */
	cJSON *rows;
	unsigned *lines; /* import: each row's line */
	union {
		struct registers_put put;
		struct registers_del del;
		struct registers_list list;
		struct registers_changes changes;
	} u;
};

static void ctx_free(struct reg_ctx *x)
{
	cJSON_Delete(x->rows);
	free(x->lines);
	free(x);
}

static void respond_json(struct conn *c, int status, cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	if (s)
		conn_respond(c, status, NULL, s, strlen(s));
	else
		conn_respond_error(c, 500, "out of memory", NULL);
	free(s);
	cJSON_Delete(o);
}

/* {"error":what[,"field":field]} */
static void respond_field(struct conn *c, int status, const char *what, const char *field)
{
	cJSON *o = cJSON_CreateObject();
	if (o) {
		cJSON_AddStringToObject(o, "error", what);
		if (field)
			cJSON_AddStringToObject(o, "field", field);
	}
	respond_json(c, status, o);
}

static void respond_job(struct conn *c, int rc)
{
	log_warn("event=register_job_failed error=%s", strerror(-rc));
	if (rc == -EAGAIN)
		conn_respond_error(c, 503, "server busy", NULL);
	else if (rc == -ENOMEM)
		conn_respond_error(c, 500, "out of memory", NULL);
	else
		conn_respond_error(c, 503, "inspection records unavailable", NULL);
}

static const char *scope_of(const struct authz_principal *who)
{
	return who->person.role == AUTH_CITY ? who->person.city : NULL;
}

/* The register of the path: 0, or answered (404). */
static int kind_of(struct conn *c, const char *name, enum registers_kind *k)
{
	int i = registers_kind_parse(name);
	if (i < 0) {
		conn_respond_error(c, 404, "no such register", "targets, inspectors or items");
		return -1;
	}
	*k = (enum registers_kind)i;
	return 0;
}

static struct reg_ctx *ctx_new(struct api *a, struct conn *c, const struct authz_principal *who,
                               enum registers_kind k)
{
	struct reg_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		conn_respond_error(c, 500, "out of memory", NULL);
		return NULL;
	}
	x->a = a;
	x->c = c;
	x->who = *who;
	x->kind = k;
	snprintf(x->actor, sizeof(x->actor), "%s:%s (%s)", auth_role_name(who->person.role),
	         who->person.id, who->person.name);
	if (scope_of(who))
		snprintf(x->scope_city, sizeof(x->scope_city), "%s", scope_of(who));
	return x;
}

/* Worker thread: the job of each kind on its part of the context. */
static int run_put(sqlite3 *db, void *arg)
{
	return registers_put_run(db, &((struct reg_ctx *)arg)->u.put);
}

static int run_del(sqlite3 *db, void *arg)
{
	return registers_del_run(db, &((struct reg_ctx *)arg)->u.del);
}

static int run_list(sqlite3 *db, void *arg)
{
	return registers_list_run(db, &((struct reg_ctx *)arg)->u.list);
}

static int run_changes(sqlite3 *db, void *arg)
{
	return registers_changes_run(db, &((struct reg_ctx *)arg)->u.changes);
}

static int submit(struct reg_ctx *x, inspect_run_fn run, inspect_done_fn done)
{
	int rc = x->a->inspect ? inspect_submit(x->a->inspect, run, done, x) : -ESHUTDOWN;
	if (rc) {
		respond_job(x->c, rc);
		ctx_free(x);
	}
	return rc;
}

/* --- POST /api/v1/registers/{register} and .../import ------------------------------------- */

static void audit(struct reg_ctx *x, const char *action, const char *key, const char *detail)
{
	char subject[160];
	snprintf(subject, sizeof(subject), "%s/%s", registers_names[x->kind], key);
	if (x->a->auth && auth_audit(x->a->auth, x->actor, action, subject, detail))
		log_error("event=audit_failed action=%s subject=%s", action, subject);
}

static void put_summary(struct reg_ctx *x, int import)
{
	struct registers_put *p = &x->u.put;
	cJSON *o = cJSON_CreateObject();
	if (o) {
		cJSON_AddStringToObject(o, "register", registers_names[x->kind]);
		cJSON_AddNumberToObject(o, "version", (double)p->version);
		cJSON_AddNumberToObject(o, "created", (double)p->created);
		cJSON_AddNumberToObject(o, "updated", (double)p->updated);
		cJSON_AddNumberToObject(o, "unchanged", (double)p->unchanged);
		if (!import) {
			cJSON_AddItemToObject(o, "changed", p->changed);
			p->changed = NULL;
		}
	}
	respond_json(x->c, 200, o);
}

/* A refusal of the job, for the JSON POST: the row's field as [i].field. */
static void put_refused(struct reg_ctx *x, int rc)
{
	struct registers_put *p = &x->u.put;
	char field[96];
	if (p->index >= 0 && x->array)
		snprintf(field, sizeof(field), "[%ld].%s", p->index, p->field);
	else
		snprintf(field, sizeof(field), "%s", p->field);
	int status = rc == -ESTALE ? 409 : rc == -EACCES ? 403 : 422;
	respond_field(x->c, status, p->err, field[0] ? field : NULL);
}

static void on_put(void *arg, int status)
{
	struct reg_ctx *x = arg;
	struct registers_put *p = &x->u.put;
	if (status == 0 && cJSON_GetArraySize(p->changed) > AUDIT_ROWS_MAX) {
		/* The loop thread writes each audit row synchronously: a bulk edit is one row, its
		 * rows are in register_changes. */
		char detail[160];
		snprintf(detail, sizeof(detail),
		         "rows=%d created=%zu updated=%zu unchanged=%zu versions=%lld..%lld",
		         cJSON_GetArraySize(x->rows), p->created, p->updated, p->unchanged,
		         (long long)(p->version - (int64_t)(p->created + p->updated) + 1),
		         (long long)p->version);
		audit(x, "register_put", "*", detail);
	} else if (status == 0) {
		const cJSON *ch;
		cJSON_ArrayForEach(ch, p->changed)
		{
			char detail[96];
			snprintf(detail, sizeof(detail), "%s version=%lld",
			         cJSON_GetObjectItem(ch, "action")->valuestring,
			         (long long)cJSON_GetObjectItem(ch, "version")->valuedouble);
			audit(x, "register_put", cJSON_GetObjectItem(ch, "key")->valuestring,
			      detail);
		}
	}
	if (status == 0) {
		log_info("event=register_put register=%s created=%zu updated=%zu unchanged=%zu "
		         "version=%lld token=%s",
		         registers_names[x->kind], p->created, p->updated, p->unchanged,
		         (long long)p->version, x->who.person.id);
		put_summary(x, 0);
	} else if (status != -ECANCELED && p->err[0]) {
		put_refused(x, status);
	} else if (status != -ECANCELED) {
		respond_job(x->c, status);
	}
	cJSON_Delete(p->changed);
	ctx_free(x);
}

/* The rows of a JSON body, checked: 0 with x->rows, or answered (400/422). */
static int rows_from_json(struct reg_ctx *x, const struct http_request *req)
{
	cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
	if (!root || (!cJSON_IsObject(root) && !cJSON_IsArray(root))) {
		cJSON_Delete(root);
		respond_field(x->c, 400, "expected a JSON object or an array of objects", NULL);
		return -1;
	}
	x->array = cJSON_IsArray(root);
	int n = x->array ? cJSON_GetArraySize(root) : 1;
	if (n < 1 || n > POST_MAX_ROWS) {
		cJSON_Delete(root);
		respond_field(x->c, 422,
		              "expected 1-10000 rows (a whole register: use the CSV import)", NULL);
		return -1;
	}
	x->rows = cJSON_CreateArray();
	const cJSON *o = x->array ? root->child : root;
	for (int i = 0; o && x->rows; i++, o = x->array ? o->next : NULL) {
		cJSON *row;
		char field[64], err[256], name[96];
		int rc = registers_check(x->kind, o, &x->a->risk_grades, &row, field, sizeof(field),
		                         err, sizeof(err));
		if (rc) {
			if (x->array)
				snprintf(name, sizeof(name), "[%d]%s%s", i, field[0] ? "." : "",
				         field);
			else
				snprintf(name, sizeof(name), "%s", field);
			cJSON_Delete(root);
			if (rc == -ENOMEM)
				conn_respond_error(x->c, 500, "out of memory", NULL);
			else
				respond_field(x->c, 422, err, name[0] ? name : NULL);
			return -1;
		}
		cJSON_AddItemToArray(x->rows, row);
	}
	cJSON_Delete(root);
	if (!x->rows) {
		conn_respond_error(x->c, 500, "out of memory", NULL);
		return -1;
	}
	return 0;
}

/* Items are the province's: a city reads them only. 0, or answered (403). */
static int writable(struct reg_ctx *x)
{
	if (x->kind == REGISTERS_ITEMS && x->who.person.role != AUTH_PROVINCE) {
		respond_field(x->c, 403, "items are the province's register: a city reads them",
		              NULL);
		return -1;
	}
	return 0;
}

static void start_put(struct reg_ctx *x, inspect_done_fn done)
{
	x->u.put = (struct registers_put){.kind = x->kind,
	                                  .rows = x->rows,
	                                  .scope_city = x->scope_city[0] ? x->scope_city : NULL,
	                                  .actor = x->actor,
	                                  .now_ms = vw_now_ms()};
	submit(x, run_put, done);
}

void api_registers_post(struct api *a, struct conn *c, const struct http_request *req,
                        const struct router_match *m, const struct authz_principal *who)
{
	enum registers_kind k;
	if (kind_of(c, router_param(m, "register"), &k))
		return;
	struct reg_ctx *x = ctx_new(a, c, who, k);
	if (!x)
		return;
	if (writable(x) || rows_from_json(x, req)) {
		ctx_free(x);
		return;
	}
	start_put(x, on_put);
}

/* "upload.csv:3: risk: ..." -> "line 3: risk: ..." (the file has no name here). */
static cJSON *errors_json(const struct exams_errs *errs, const char *name)
{
	cJSON *arr = cJSON_CreateArray();
	size_t nl = strlen(name);
	for (size_t i = 0; arr && i < errs->n; i++) {
		const char *m = errs->msg[i];
		char line[600];
		if (strncmp(m, name, nl) == 0 && m[nl] == ':')
			snprintf(line, sizeof(line), "line %s", m + nl + 1);
		else
			snprintf(line, sizeof(line), "%s", m);
		cJSON_AddItemToArray(arr, cJSON_CreateString(line));
	}
	return arr;
}

static void respond_import_errors(struct conn *c, const struct exams_errs *errs, const char *name)
{
	cJSON *o = cJSON_CreateObject();
	if (o) {
		cJSON_AddStringToObject(o, "error", "the file has errors: nothing imported");
		cJSON_AddItemToObject(o, "errors", errors_json(errs, name));
		cJSON_AddNumberToObject(o, "total", (double)errs->total);
	}
	respond_json(c, 422, o);
}

static void on_import(void *arg, int status)
{
	struct reg_ctx *x = arg;
	struct registers_put *p = &x->u.put;
	if (status == -ECANCELED) {
		cJSON_Delete(p->changed);
		ctx_free(x);
		return;
	}
	if (status == 0) {
		char detail[160];
		snprintf(detail, sizeof(detail),
		         "rows=%d created=%zu updated=%zu unchanged=%zu version=%lld",
		         cJSON_GetArraySize(x->rows), p->created, p->updated, p->unchanged,
		         (long long)p->version);
		audit(x, "register_import", "*", detail);
		log_info("event=register_import register=%s %s token=%s", registers_names[x->kind],
		         detail, x->who.person.id);
		put_summary(x, 1);
	} else if (p->err[0] && p->index >= 0) {
		/* Found by the job (scope, a version): the row's line in the file. */
		struct exams_errs errs = {0};
		exams_errs_add(&errs, "upload.csv:%u: %s: %s", x->lines[p->index],
		               p->field[0] ? p->field : "row", p->err);
		cJSON *o = cJSON_CreateObject();
		if (o) {
			cJSON_AddStringToObject(o, "error",
			                        "the file has errors: nothing imported");
			cJSON_AddItemToObject(o, "errors", errors_json(&errs, "upload.csv"));
			cJSON_AddNumberToObject(o, "total", 1);
		}
		respond_json(x->c, status == -EACCES ? 403 : 422, o);
		exams_errs_free(&errs);
	} else {
		respond_job(x->c, status);
	}
	cJSON_Delete(p->changed);
	ctx_free(x);
}

void api_registers_import(struct api *a, struct conn *c, const struct http_request *req,
                          const struct router_match *m, const struct authz_principal *who)
{
	enum registers_kind k;
	if (kind_of(c, router_param(m, "register"), &k))
		return;
	struct reg_ctx *x = ctx_new(a, c, who, k);
	if (!x || writable(x)) {
		free(x);
		return;
	}
	struct exams_errs errs = {0};
	int rc = registers_csv_parse(k, "upload.csv", req->body ? req->body : "", req->body_len,
	                             &a->risk_grades, &x->rows, &x->lines, &errs);
	if (rc == -EINVAL)
		respond_import_errors(c, &errs, "upload.csv");
	else if (rc)
		conn_respond_error(c, 500, "out of memory", NULL);
	exams_errs_free(&errs);
	if (rc) {
		ctx_free(x);
		return;
	}
	start_put(x, on_import);
}

/* --- DELETE /api/v1/registers/{register}/{key} --------------------------------------------- */

static void on_del(void *arg, int status)
{
	struct reg_ctx *x = arg;
	struct registers_del *d = &x->u.del;
	if (status == 0) {
		char detail[64];
		snprintf(detail, sizeof(detail), "version=%lld", (long long)d->version);
		audit(x, "register_delete", d->key, detail);
		log_info("event=register_delete register=%s key=%s version=%lld token=%s",
		         registers_names[x->kind], d->key, (long long)d->version, x->who.person.id);
		cJSON *o = cJSON_CreateObject();
		if (o) {
			cJSON_AddStringToObject(o, "register", registers_names[x->kind]);
			cJSON_AddStringToObject(o, "key", d->key);
			cJSON_AddNumberToObject(o, "version", (double)d->version);
		}
		respond_json(x->c, 200, o);
	} else if (status == -ENOENT) {
		conn_respond_error(x->c, 404, "no such row", NULL);
	} else if (status != -ECANCELED) {
		respond_job(x->c, status);
	}
	free(d->before);
	free((char *)d->key);
	ctx_free(x);
}

void api_registers_delete(struct api *a, struct conn *c, const struct http_request *req,
                          const struct router_match *m, const struct authz_principal *who)
{
	(void)req;
	enum registers_kind k;
	if (kind_of(c, router_param(m, "register"), &k))
		return;
	struct reg_ctx *x = ctx_new(a, c, who, k);
	if (!x || writable(x)) {
		free(x);
		return;
	}
	char *key = strdup(router_param(m, "key"));
	if (!key) {
		conn_respond_error(c, 500, "out of memory", NULL);
		ctx_free(x);
		return;
	}
	x->u.del = (struct registers_del){.kind = k,
	                                  .key = key,
	                                  .scope_city = x->scope_city[0] ? x->scope_city : NULL,
	                                  .actor = x->actor,
	                                  .now_ms = vw_now_ms()};
	if (x->a->inspect && inspect_submit(x->a->inspect, run_del, on_del, x) == 0)
		return;
	respond_job(c, x->a->inspect ? -EAGAIN : -ESHUTDOWN);
	free(key);
	ctx_free(x);
}

/* --- GET /api/v1/registers/{register}[.csv] ------------------------------------------------ */

static void on_list(void *arg, int status)
{
	struct reg_ctx *x = arg;
	struct registers_list *l = &x->u.list;
	if (status == 0 && x->csv_export) {
		cJSON *rows = cJSON_Parse(l->json);
		struct vw_buf b;
		vw_buf_init(&b, RESPONSE_MAX);
		registers_csv_write(x->kind, rows, &b);
		cJSON_Delete(rows);
		char name[32], disp[128];
		snprintf(name, sizeof(name), "%s.csv", registers_names[x->kind]);
		if (!rows || b.err || http_attachment_header(disp, sizeof(disp), name))
			conn_respond_error(x->c, 507, "response too large", NULL);
		else
			conn_respond_typed(x->c, 200, HTTP_CT_CSV, disp, b.data, b.len);
		vw_buf_free(&b);
	} else if (status == 0) {
		struct vw_buf b;
		vw_buf_init(&b, RESPONSE_MAX);
		vw_buf_printf(&b, "{\"register\":\"%s\",\"version\":%lld,\"rows\":",
		              registers_names[x->kind], (long long)l->version);
		vw_buf_puts(&b, l->json);
		vw_buf_puts(&b, "}");
		if (b.err)
			conn_respond_error(x->c, 507, "response too large", NULL);
		else
			conn_respond(x->c, 200, NULL, b.data, b.len);
		vw_buf_free(&b);
	} else if (status != -ECANCELED) {
		respond_job(x->c, status);
	}
	free(l->json);
	ctx_free(x);
}

void api_registers_get(struct api *a, struct conn *c, const struct http_request *req,
                       const struct router_match *m, const struct authz_principal *who)
{
	char name[ROUTER_PARAM_LEN], city[API_REGISTERS_CITY_LEN] = "";
	snprintf(name, sizeof(name), "%s", router_param(m, "register"));
	size_t n = strlen(name);
	int csv = n > 4 && strcmp(name + n - 4, ".csv") == 0;
	if (csv)
		name[n - 4] = '\0';
	enum registers_kind k;
	if (kind_of(c, name, &k))
		return;
	if (api_query_get(req->query, "city", city, sizeof(city)) < 0) {
		respond_field(c, 422, "expected a city name", "city");
		return;
	}
	struct reg_ctx *x = ctx_new(a, c, who, k);
	if (!x)
		return;
	x->csv_export = csv;
	/* A city asking for another city gets an empty list, as the sites list does. */
	const char *want = city[0] ? city : NULL;
	if (x->scope_city[0] && k != REGISTERS_ITEMS) {
		if (want && strcmp(want, x->scope_city) != 0)
			want = "\x01"; /* matches no row: a city name holds no control character */
		else
			want = x->scope_city;
	}
	char keep[sizeof(x->scope_city)];
	snprintf(keep, sizeof(keep), "%s", want ? want : "");
	memcpy(x->scope_city, keep, sizeof(keep));
	x->u.list = (struct registers_list){.kind = k, .city = want ? x->scope_city : NULL};
	submit(x, run_list, on_list);
}

/* --- GET /api/v1/registers/changes --------------------------------------------------------- */

static void on_changes(void *arg, int status)
{
	struct reg_ctx *x = arg;
	struct registers_changes *ch = &x->u.changes;
	if (status == 0) {
		struct vw_buf b;
		vw_buf_init(&b, RESPONSE_MAX);
		vw_buf_puts(&b, "{\"changes\":");
		vw_buf_puts(&b, ch->json);
		vw_buf_printf(&b, ",\"next\":%lld,\"more\":%s}", (long long)ch->next,
		              ch->more ? "true" : "false");
		if (b.err)
			conn_respond_error(x->c, 507, "response too large", NULL);
		else
			conn_respond(x->c, 200, NULL, b.data, b.len);
		vw_buf_free(&b);
	} else if (status != -ECANCELED) {
		respond_job(x->c, status);
	}
	free(ch->json);
	ctx_free(x);
}

static int query_long(const char *q, const char *key, long long lo, long long hi, long long *out)
{
	char v[32];
	int r = api_query_get(q, key, v, sizeof(v));
	if (r == 0)
		return 0;
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (r < 0 || !v[0] || *end || errno || n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

void api_registers_changes(struct api *a, struct conn *c, const struct http_request *req,
                           const struct router_match *m, const struct authz_principal *who)
{
	(void)m;
	char reg[32] = "";
	long long after = 0, limit = 100;
	int kind = -1;
	int r = api_query_get(req->query, "register", reg, sizeof(reg));
	if (r < 0 || (r > 0 && (kind = registers_kind_parse(reg)) < 0)) {
		respond_field(c, 422, "expected targets, inspectors or items", "register");
		return;
	}
	if (query_long(req->query, "after", 0, 9000000000000000LL, &after)) {
		respond_field(c, 422, "expected a version (a whole number >= 0)", "after");
		return;
	}
	if (query_long(req->query, "limit", 1, 1000, &limit)) {
		respond_field(c, 422, "expected 1-1000", "limit");
		return;
	}
	struct reg_ctx *x = ctx_new(a, c, who, REGISTERS_TARGETS);
	if (!x)
		return;
	x->u.changes =
	    (struct registers_changes){.kind = kind,
	                               .after = after,
	                               .limit = (int)limit,
	                               .scope_city = x->scope_city[0] ? x->scope_city : NULL};
	submit(x, run_changes, on_changes);
}
