#include "draws.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "draw.h"
#include "inspect.h"
#include "log.h"
#include "registers.h"
#include "store.h"
#include "vtime.h"

/* A draw's answer holds its manifest and document: a province's 100,000 targets are tens of
 * MiB (docs/BENCHMARKS.md "Draw"); this bounds one answer, not the draw. */
#define DRAW_JSON_MAX (256u << 20)
#define LIST_MAX 1000

void draws_job_free(struct draws_job *j)
{
	if (!j)
		return;
	free(j->plan_json);
	free(j->commitment);
	free(j->randomness_json);
	free(j->values_json);
	if (j->secret_hex) {
		/* The bureau's secret before execute is the one thing that decides the draw. */
		volatile char *p = j->secret_hex;
		while (*p)
			*p++ = 0;
		free(j->secret_hex);
	}
	free(j->sessions_json);
	free(j->reason);
	free(j->value);
	free(j->json);
	free(j->document);
	free(j->manifest_sha256);
	for (size_t i = 0; i < j->nsites; i++)
		free(j->sites[i]);
	free(j->sites);
	free(j);
}

/* --- errors ---------------------------------------------------------------------------------- */

static int fail(struct draws_job *j, int rc, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct draws_job *j, int rc, const char *field, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(j->err, sizeof(j->err), fmt, ap);
	va_end(ap);
	snprintf(j->field, sizeof(j->field), "%s", field ? field : "");
	return rc;
}

/* The draw core's err names a JSON path first ("plan.grades[1].ratio: must be ..."): that path
 * is the request's field. prefix is what the request calls the core's input ("plan", ...) when
 * the core's path does not start with it. */
static int core_fail(struct draws_job *j, int rc, const char *err, const char *prefix)
{
	snprintf(j->err, sizeof(j->err), "%s", err[0] ? err : strerror(-rc));
	size_t n = strcspn(err, ": ");
	j->field[0] = '\0';
	if (n && err[n] == ':' && n < sizeof(j->field)) {
		if (prefix && strncmp(err, prefix, strlen(prefix)) != 0)
			snprintf(j->field, sizeof(j->field), "%s.%.*s", prefix, (int)n, err);
		else
			snprintf(j->field, sizeof(j->field), "%.*s", (int)n, err);
	} else if (prefix) {
		snprintf(j->field, sizeof(j->field), "%s", prefix);
	}
	if (rc == -ENOSPC) /* every declared replacement value is used: a state, not input */
		return -EALREADY;
	if (rc == -EBADMSG) /* the stored document no longer verifies: not the asker's fault */
		return -EIO;
	return rc == -ENOMEM || rc == -EIO || rc == -EPERM || rc == -ENOENT ? rc : -EINVAL;
}

static int sql_fail(struct draws_job *j, sqlite3 *db, const char *what)
{
	log_error("event=draw_sql_failed draw=%s step=%s error=\"%s\"", j->id, what,
	          sqlite3_errmsg(db));
	return fail(j, -EIO, NULL, "inspect.db: %s failed", what);
}

static int hex64(const char *s)
{
	if (!s || strlen(s) != 64)
		return 0;
	for (const char *p = s; *p; p++)
		if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
			return 0;
	return 1;
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* --- the draw's row ----------------------------------------------------------------------------
 */

struct row {
	char *scope_city, *state, *plan, *manifest, *manifest_sha256, *private_, *document, *actor;
	int64_t created_ms, committed_ms, executed_ms, published_ms;
};

static void row_free(struct row *r)
{
	free(r->scope_city);
	free(r->state);
	free(r->plan);
	free(r->manifest);
	free(r->manifest_sha256);
	free(r->private_);
	free(r->document);
	free(r->actor);
	memset(r, 0, sizeof(*r));
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? strdup((const char *)t) : NULL;
}

/* The draw j->id if the asker may see it: 0, -ENOENT (unknown or outside the asker's city:
 * the same answer, so a city learns nothing of other cities' draws), -EIO. */
static int row_load(sqlite3 *db, struct draws_job *j, struct row *r)
{
	memset(r, 0, sizeof(*r));
	sqlite3_stmt *st;
	if (inspect_prepare(db,
	                    "SELECT scope_city, state, plan, manifest, manifest_sha256, private,"
	                    " document, actor, created_ms, coalesce(committed_ms, 0),"
	                    " coalesce(executed_ms, 0), coalesce(published_ms, 0)"
	                    " FROM draws WHERE id = ?",
	                    &st))
		return fail(j, -EIO, NULL, "inspect.db: cannot read draws");
	sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		r->scope_city = col_dup(st, 0);
		r->state = col_dup(st, 1);
		r->plan = col_dup(st, 2);
		r->manifest = col_dup(st, 3);
		r->manifest_sha256 = col_dup(st, 4);
		r->private_ = col_dup(st, 5);
		r->document = col_dup(st, 6);
		r->actor = col_dup(st, 7);
		r->created_ms = sqlite3_column_int64(st, 8);
		r->committed_ms = sqlite3_column_int64(st, 9);
		r->executed_ms = sqlite3_column_int64(st, 10);
		r->published_ms = sqlite3_column_int64(st, 11);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE || (rc == SQLITE_ROW && j->scope_city[0] && r->scope_city &&
	                          strcmp(r->scope_city, j->scope_city) != 0)) {
		row_free(r);
		return fail(j, -ENOENT, NULL, "no such draw");
	}
	if (rc != SQLITE_ROW) {
		row_free(r);
		return sql_fail(j, db, "read draw");
	}
	if (!r->scope_city || !r->state || !r->plan || !r->actor) {
		row_free(r);
		return fail(j, -ENOMEM, NULL, "out of memory");
	}
	return 0;
}

static int state_is(const struct row *r, const char *s)
{
	return strcmp(r->state, s) == 0;
}

static int wrong_state(struct draws_job *j, const struct row *r, const char *needs)
{
	return fail(j, -EALREADY, "state", "draw %s is %s: this step needs it %s", j->id, r->state,
	            needs);
}

static int log_row(sqlite3 *db, struct draws_job *j, const char *action, const char *detail)
{
	sqlite3_stmt *st;
	if (inspect_prepare(db,
	                    "INSERT INTO draw_log(draw, at_ms, actor, action, detail)"
	                    " VALUES (?, ?, ?, ?, ?)",
	                    &st))
		return fail(j, -EIO, NULL, "inspect.db: cannot write draw_log");
	sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, j->now_ms);
	sqlite3_bind_text(st, 3, j->actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, detail, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sql_fail(j, db, "write draw_log");
}

/* --- rendering ---------------------------------------------------------------------------------
 */

static void put_time(struct vw_buf *b, const char *key, int64_t ms)
{
	vw_buf_puts(b, key);
	if (!ms) {
		vw_buf_puts(b, "null");
		return;
	}
	char t[VW_ISO_LEN];
	vw_time_iso(ms, t);
	vw_buf_json_str(b, t);
}

/* Stored JSON text is spliced as it is: it was produced (and checked) by the draw core. */
static void put_raw(struct vw_buf *b, const char *key, const char *json)
{
	vw_buf_puts(b, key);
	vw_buf_puts(b, json && json[0] ? json : "null");
}

static void put_summary(struct vw_buf *b, const char *id, const struct row *r)
{
	vw_buf_puts(b, "{\"id\":");
	vw_buf_json_str(b, id);
	vw_buf_puts(b, ",\"scope_city\":");
	vw_buf_json_str(b, r->scope_city);
	vw_buf_puts(b, ",\"state\":");
	vw_buf_json_str(b, r->state);
	vw_buf_puts(b, ",\"manifest_sha256\":");
	if (r->manifest_sha256)
		vw_buf_json_str(b, r->manifest_sha256);
	else
		vw_buf_puts(b, "null");
	put_time(b, ",\"created\":", r->created_ms);
	put_time(b, ",\"committed\":", r->committed_ms);
	put_time(b, ",\"executed\":", r->executed_ms);
	put_time(b, ",\"published\":", r->published_ms);
	vw_buf_puts(b, ",\"actor\":");
	vw_buf_json_str(b, r->actor);
}

static int put_log(sqlite3 *db, struct draws_job *j, struct vw_buf *b)
{
	sqlite3_stmt *st;
	if (inspect_prepare(db,
	                    "SELECT at_ms, actor, action, detail FROM draw_log WHERE draw = ?"
	                    " ORDER BY id",
	                    &st))
		return fail(j, -EIO, NULL, "inspect.db: cannot read draw_log");
	sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
	vw_buf_puts(b, ",\"log\":[");
	int rc, k = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (k++)
			vw_buf_puts(b, ",");
		put_time(b, "{\"at\":", sqlite3_column_int64(st, 0));
		vw_buf_puts(b, ",\"actor\":");
		vw_buf_json_str(b, (const char *)sqlite3_column_text(st, 1));
		vw_buf_puts(b, ",\"action\":");
		vw_buf_json_str(b, (const char *)sqlite3_column_text(st, 2));
		put_raw(b, ",\"detail\":", (const char *)sqlite3_column_text(st, 3));
		vw_buf_puts(b, "}");
	}
	sqlite3_finalize(st);
	vw_buf_puts(b, "]");
	return rc == SQLITE_DONE ? 0 : sql_fail(j, db, "read draw_log");
}

/* The draw as GET /api/v1/draws/{id} shows it, into j->json. */
static int render(sqlite3 *db, struct draws_job *j, const struct row *r)
{
	struct vw_buf b;
	vw_buf_init(&b, DRAW_JSON_MAX);
	put_summary(&b, j->id, r);
	put_raw(&b, ",\"plan\":", r->plan);
	put_raw(&b, ",\"manifest\":", r->manifest);
	put_raw(&b, ",\"document\":", r->document);
	/* The rosters' private part (ties, dates away) is the province's only. */
	if (j->province && r->private_)
		put_raw(&b, ",\"private\":", r->private_);
	int rc = put_log(db, j, &b);
	vw_buf_puts(&b, "}");
	if (!rc && b.err)
		rc = fail(j, -ENOMEM, NULL, "the draw is larger than %u MiB", DRAW_JSON_MAX >> 20);
	if (!rc) {
		free(j->json);
		j->json = strdup(vw_buf_cstr(&b));
		if (!j->json)
			rc = fail(j, -ENOMEM, NULL, "out of memory");
	}
	vw_buf_free(&b);
	return rc;
}

static int render_current(sqlite3 *db, struct draws_job *j)
{
	struct row r;
	int rc = row_load(db, j, &r);
	if (!rc)
		rc = render(db, j, &r);
	row_free(&r);
	return rc;
}

/* --- create ------------------------------------------------------------------------------------
 */

static int create_txn(sqlite3 *db, void *arg)
{
	struct draws_job *j = arg;
	char err[512] = "";
	char *norm = NULL;
	int rc = draw_plan_check(j->plan_json, &norm, err, sizeof(err));
	if (rc)
		return core_fail(j, rc, err, "plan");
	cJSON *plan = cJSON_Parse(norm);
	const cJSON *sc = cJSON_GetObjectItemCaseSensitive(plan, "scope_city");
	const char *scope = cJSON_IsString(sc) ? sc->valuestring : "";
	if (j->scope_city[0] && strcmp(scope, j->scope_city) != 0) {
		rc = fail(j, -EACCES, "plan.scope_city",
		          scope[0] ? "a city draws within its own city only"
		                   : "a city may not create a province draw");
		goto out;
	}
	sqlite3_stmt *st;
	if ((rc =
	         inspect_prepare(db,
	                         "INSERT INTO draws(id, scope_city, state, plan, created_ms, actor)"
	                         " VALUES (?, ?, 'created', ?, ?, ?)",
	                         &st)) != 0) {
		rc = fail(j, rc, NULL, "inspect.db: cannot write draws");
		goto out;
	}
	sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, scope, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, norm, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, j->now_ms);
	sqlite3_bind_text(st, 5, j->actor, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s == SQLITE_CONSTRAINT)
		rc = fail(j, -EEXIST, "id", "draw %s exists already", j->id);
	else if (s != SQLITE_DONE)
		rc = sql_fail(j, db, "create draw");
	if (!rc) {
		struct vw_buf d;
		vw_buf_init(&d, 4096);
		vw_buf_puts(&d, "{\"scope_city\":");
		vw_buf_json_str(&d, scope);
		vw_buf_puts(&d, "}");
		rc = log_row(db, j, "create", vw_buf_cstr(&d));
		vw_buf_free(&d);
	}
	if (!rc)
		rc = render_current(db, j);
out:
	cJSON_Delete(plan);
	free(norm);
	return rc;
}

int draws_create_run(sqlite3 *db, void *job)
{
	struct draws_job *j = job;
	if (!j->plan_json)
		return j->status = fail(j, -EINVAL, "plan", "a plan is required");
	return j->status = inspect_txn(db, create_txn, j);
}

/* --- commit ------------------------------------------------------------------------------------
 */

/* The last inspection of each target of the draw's scope (earlier draws' inspections only),
 * with its active inspectors: [{"org":..,"inspectors":[..]}], for the same-pair rule. */
static int prev_pairs(sqlite3 *db, struct draws_job *j, const char *city, char **out)
{
	sqlite3_stmt *st;
	if (inspect_prepare(db,
	                    "SELECT i.org, ii.inspector FROM"
	                    " (SELECT org, max(id) AS id FROM inspections WHERE draw <> ?1"
	                    "  GROUP BY org) i"
	                    " JOIN targets t ON t.org = i.org AND (?2 = '' OR t.city = ?2)"
	                    " JOIN inspection_inspectors ii ON ii.inspection = i.id"
	                    "  AND ii.active = 1"
	                    " ORDER BY i.org, ii.inspector",
	                    &st))
		return fail(j, -EIO, NULL, "inspect.db: cannot read inspections");
	sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, city, -1, SQLITE_STATIC);
	struct vw_buf b;
	vw_buf_init(&b, DRAW_JSON_MAX);
	vw_buf_puts(&b, "[");
	char last[65] = "";
	int rc, k = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *org = (const char *)sqlite3_column_text(st, 0);
		const char *ins = (const char *)sqlite3_column_text(st, 1);
		if (strcmp(org, last) != 0) {
			vw_buf_puts(&b, k++ ? "]},{\"org\":" : "{\"org\":");
			vw_buf_json_str(&b, org);
			vw_buf_puts(&b, ",\"inspectors\":[");
			snprintf(last, sizeof(last), "%s", org);
		} else {
			vw_buf_puts(&b, ",");
		}
		vw_buf_json_str(&b, ins);
	}
	sqlite3_finalize(st);
	vw_buf_puts(&b, k ? "]}]" : "]");
	int r = 0;
	if (rc != SQLITE_DONE)
		r = sql_fail(j, db, "read previous pairs");
	else if (b.err || !(*out = strdup(vw_buf_cstr(&b))))
		r = fail(j, -ENOMEM, NULL, "out of memory");
	vw_buf_free(&b);
	return r;
}

static int commit_txn(sqlite3 *db, void *arg)
{
	struct draws_job *j = arg;
	struct row r;
	int rc = row_load(db, j, &r);
	if (rc)
		return rc;
	char *targets = NULL, *inspectors = NULL, *items = NULL, *pairs = NULL;
	char *manifest = NULL, *sha = NULL, *priv = NULL;
	int64_t version = 0;
	char err[512] = "";
	if (!state_is(&r, "created")) {
		rc = wrong_state(j, &r, "created");
		goto out;
	}
	rc = registers_snapshot(db, r.scope_city[0] ? r.scope_city : NULL, &targets, &inspectors,
	                        &items, &version);
	if (rc) {
		rc = fail(j, rc == -ENOMEM ? -ENOMEM : -EIO, NULL,
		          "the registers could not be read: %s", strerror(-rc));
		goto out;
	}
	if ((rc = prev_pairs(db, j, r.scope_city, &pairs)) != 0)
		goto out;
	rc = draw_commit_build(j->id, r.plan, targets, inspectors, items, pairs, j->randomness_json,
	                       j->commitment, j->now_ms, &manifest, &sha, &priv, err, sizeof(err));
	if (rc) {
		/* The plan was checked at create; what fails now is the randomness, the
		 * commitment, or the registers as they are (no target in scope, ...). */
		rc = core_fail(j, rc, err, NULL);
		goto out;
	}
	sqlite3_stmt *st;
	if ((rc = inspect_prepare(db,
	                          "UPDATE draws SET state = 'committed', manifest = ?,"
	                          " manifest_sha256 = ?, private = ?, committed_ms = ?"
	                          " WHERE id = ? AND state = 'created'",
	                          &st)) != 0) {
		rc = fail(j, rc, NULL, "inspect.db: cannot write draws");
		goto out;
	}
	sqlite3_bind_text(st, 1, manifest, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, sha, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, priv, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, j->now_ms);
	sqlite3_bind_text(st, 5, j->id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s != SQLITE_DONE || sqlite3_changes(db) != 1) {
		rc = sql_fail(j, db, "commit draw");
		goto out;
	}
	char detail[200];
	snprintf(detail, sizeof(detail), "{\"manifest_sha256\":\"%s\",\"registers_version\":%lld}",
	         sha, (long long)version);
	if ((rc = log_row(db, j, "commit", detail)) != 0)
		goto out;
	j->manifest_sha256 = sha;
	sha = NULL;
	rc = render_current(db, j);
out:
	row_free(&r);
	free(targets);
	free(inspectors);
	free(items);
	free(pairs);
	free(manifest);
	free(sha);
	free(priv);
	return rc;
}

/* The latest expected time of the declared sources (what = "sources" or "replacements") and
 * its index; -1 when none parse (the core names the field then). */
static int64_t latest_expected(const cJSON *randomness, const char *what, int *index)
{
	int64_t latest = -1;
	int i = 0;
	const cJSON *s;
	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(randomness, what))
	{
		int64_t ms;
		if (!vw_time_parse_iso(str_of(s, "expected"), &ms) && ms > latest) {
			latest = ms;
			*index = i;
		}
		i++;
	}
	return latest;
}

/* A value that exists already when the draw is committed could have been chosen knowing it:
 * every declared source must lie in the future. */
static int randomness_future(struct draws_job *j)
{
	cJSON *r = cJSON_Parse(j->randomness_json);
	const char *kinds[] = {"sources", "replacements"};
	int rc = 0;
	for (int k = 0; k < 2 && !rc; k++) {
		int i = 0;
		const cJSON *s;
		cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(r, kinds[k]))
		{
			int64_t ms;
			if (!vw_time_parse_iso(str_of(s, "expected"), &ms) && ms <= j->now_ms) {
				char f[64];
				snprintf(f, sizeof(f), "randomness.%s[%d].expected", kinds[k], i);
				rc = fail(
				    j, -EINVAL, f,
				    "%s: %s exists already (or will before the commit is known): "
				    "declare a value of the future",
				    f, str_of(s, "expected"));
				break;
			}
			i++;
		}
	}
	cJSON_Delete(r);
	return rc;
}

int draws_commit_run(sqlite3 *db, void *job)
{
	struct draws_job *j = job;
	if (!hex64(j->commitment))
		return j->status = fail(j, -EINVAL, "commitment",
		                        "expected 64 lowercase hex digits (SHA-256 of the secret)");
	if (!j->randomness_json)
		return j->status = fail(j, -EINVAL, "randomness",
		                        "the public randomness to be used must be declared");
	if ((j->status = randomness_future(j)) != 0)
		return j->status;
	return j->status = inspect_txn(db, commit_txn, j);
}

/* --- execute -----------------------------------------------------------------------------------
 */

/* The draw core's local day (docs/DRAW.md: UTC+8, China Standard Time, no DST — the same
 * fixed offset as the exam timetables, exams_csv.h) as ms: date's midnight plus days. */
#define LOCAL_TZ_MS (8LL * 3600000)
static int local_day_ms(const char *date, int plus_days, int64_t *ms)
{
	int y, m, d;
	char tail;
	if (!date || sscanf(date, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3)
		return -EINVAL;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d + plus_days};
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*ms = (int64_t)t * 1000 - LOCAL_TZ_MS;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every site of the targets array into j->sites (sorted, unique). */
static int collect_sites(struct draws_job *j, const cJSON *targets)
{
	const cJSON *t, *s;
	size_t n = 0;
	cJSON_ArrayForEach(t, targets)
	{
		n += (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(t, "sites"));
	}
	j->sites = calloc(n ? n : 1, sizeof(*j->sites));
	if (!j->sites)
		return -ENOMEM;
	cJSON_ArrayForEach(t, targets)
	{
		cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(t, "sites"))
		{
			if (!cJSON_IsString(s))
				continue;
			if (!(j->sites[j->nsites] = strdup(s->valuestring)))
				return -ENOMEM;
			j->nsites++;
		}
	}
	qsort(j->sites, j->nsites, sizeof(*j->sites), cmp_str);
	size_t k = 0;
	for (size_t i = 0; i < j->nsites; i++) {
		if (k && strcmp(j->sites[k - 1], j->sites[i]) == 0) {
			free(j->sites[i]);
			continue;
		}
		j->sites[k++] = j->sites[i];
	}
	j->nsites = k;
	return 0;
}

int draws_execute_inputs_run(sqlite3 *db, void *job)
{
	struct draws_job *j = job;
	struct row r;
	int rc = row_load(db, j, &r);
	if (rc)
		return j->status = rc;
	cJSON *plan = NULL, *man = NULL;
	if (!state_is(&r, "committed")) {
		rc = wrong_state(j, &r, "committed");
		goto out;
	}
	snprintf(j->draw_city, sizeof(j->draw_city), "%s", r.scope_city);
	plan = cJSON_Parse(r.plan);
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(plan, "window");
	const cJSON *from = cJSON_GetObjectItemCaseSensitive(w, "from");
	const cJSON *to = cJSON_GetObjectItemCaseSensitive(w, "to");
	if (!cJSON_IsString(from) || !cJSON_IsString(to) ||
	    local_day_ms(from->valuestring, 0, &j->from_ms) ||
	    local_day_ms(to->valuestring, 1, &j->to_ms)) {
		rc = fail(j, -EIO, NULL, "draw %s: its stored plan has no window", j->id);
		goto out;
	}
	man = cJSON_Parse(r.manifest ? r.manifest : "");
	if (!man) {
		rc = fail(j, -EIO, NULL, "draw %s: its stored manifest does not parse", j->id);
		goto out;
	}
	if (collect_sites(j, cJSON_GetObjectItemCaseSensitive(man, "targets")))
		rc = fail(j, -ENOMEM, NULL, "out of memory");
out:
	cJSON_Delete(plan);
	cJSON_Delete(man);
	row_free(&r);
	return j->status = rc;
}

int draws_sessions_json(struct draws_job *j, const struct store_exam_session *s, size_t n)
{
	struct vw_buf b;
	vw_buf_init(&b, DRAW_JSON_MAX);
	vw_buf_puts(&b, "[");
	int k = 0;
	for (size_t i = 0; i < n; i++) {
		const struct store_exam_session *e = &s[i];
		const char *key = e->site;
		if (e->cancelled_ms ||
		    !bsearch(&key, j->sites, j->nsites, sizeof(*j->sites), cmp_str))
			continue;
		char a[VW_ISO_LEN], z[VW_ISO_LEN];
		vw_time_iso(e->start_ms, a);
		vw_time_iso(e->end_ms, z);
		vw_buf_printf(&b, "%s{\"id\":%lld,\"org\":", k++ ? "," : "", (long long)e->id);
		vw_buf_json_str(&b, e->org);
		vw_buf_puts(&b, ",\"site\":");
		vw_buf_json_str(&b, e->site);
		vw_buf_printf(&b, ",\"start\":\"%s\",\"end\":\"%s\"}", a, z);
	}
	vw_buf_puts(&b, "]");
	int rc = 0;
	free(j->sessions_json);
	j->sessions_json = NULL;
	if (b.err || !(j->sessions_json = strdup(vw_buf_cstr(&b))))
		rc = -ENOMEM;
	vw_buf_free(&b);
	return rc;
}

/* One inspection of the document into inspections + inspection_inspectors. */
static int insert_inspection(sqlite3 *db, struct draws_job *j, sqlite3_stmt *ins, sqlite3_stmt *mem,
                             const cJSON *o)
{
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(o, "seq");
	const cJSON *ses = cJSON_GetObjectItemCaseSensitive(o, "session");
	int64_t a = 0, z = 0, sid = 0;
	const char *site = "";
	if (cJSON_IsObject(ses)) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(ses, "id");
		sid = cJSON_IsNumber(id) ? (int64_t)id->valuedouble : 0;
		site = str_of(ses, "site");
		if (vw_time_parse_iso(str_of(ses, "start"), &a) ||
		    vw_time_parse_iso(str_of(ses, "end"), &z))
			return fail(j, -EIO, NULL, "the document's inspection %d has a bad session",
			            seq ? seq->valueint : 0);
	}
	if (!cJSON_IsNumber(seq))
		return fail(j, -EIO, NULL, "the document's inspection has no seq");
	sqlite3_reset(ins);
	sqlite3_bind_text(ins, 1, j->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(ins, 2, seq->valueint);
	sqlite3_bind_text(ins, 3, str_of(o, "org"), -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 4, str_of(o, "city"), -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 5, str_of(o, "mode"), -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 6, site, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 7, sid);
	sqlite3_bind_int64(ins, 8, a);
	sqlite3_bind_int64(ins, 9, z);
	sqlite3_bind_text(ins, 10, str_of(o, "finding"), -1, SQLITE_STATIC);
	if (sqlite3_step(ins) != SQLITE_DONE)
		return sql_fail(j, db, "insert inspection");
	int64_t rowid = sqlite3_last_insert_rowid(db);
	const cJSON *who;
	cJSON_ArrayForEach(who, cJSON_GetObjectItemCaseSensitive(o, "inspectors"))
	{
		if (!cJSON_IsString(who))
			continue;
		sqlite3_reset(mem);
		sqlite3_bind_int64(mem, 1, rowid);
		sqlite3_bind_text(mem, 2, who->valuestring, -1, SQLITE_STATIC);
		if (sqlite3_step(mem) != SQLITE_DONE)
			return sql_fail(j, db, "insert inspection_inspectors");
	}
	j->ninspections++;
	return 0;
}

static int make_inspections(sqlite3 *db, struct draws_job *j, const char *document)
{
	cJSON *doc = cJSON_Parse(document);
	if (!doc)
		return fail(j, -EIO, NULL, "the document does not parse");
	sqlite3_stmt *ins = NULL, *mem = NULL;
	int rc = inspect_prepare(db,
	                         "INSERT INTO inspections(draw, seq, org, city, mode, site,"
	                         " exam_session, slot_start_ms, slot_end_ms, finding)"
	                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	                         &ins);
	if (!rc)
		rc = inspect_prepare(db,
		                     "INSERT INTO inspection_inspectors(inspection, inspector)"
		                     " VALUES (?, ?)",
		                     &mem);
	if (rc)
		rc = fail(j, -EIO, NULL, "inspect.db: cannot write inspections");
	const cJSON *o;
	cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(doc, "inspections"))
	{
		if (rc || (rc = insert_inspection(db, j, ins, mem, o)) != 0)
			break;
	}
	sqlite3_finalize(ins);
	sqlite3_finalize(mem);
	cJSON_Delete(doc);
	return rc;
}

/* Values entered before their declared time cannot be the announced ones. */
static int values_exist(struct draws_job *j, const char *manifest)
{
	cJSON *m = cJSON_Parse(manifest ? manifest : "");
	int i = 0;
	int64_t latest =
	    latest_expected(cJSON_GetObjectItemCaseSensitive(m, "randomness"), "sources", &i);
	int rc = 0;
	if (latest > j->now_ms) {
		char t[VW_ISO_LEN];
		vw_time_iso(latest, t);
		rc = fail(j, -EALREADY, "values",
		          "the declared source %d is expected at %s: its value does not exist yet",
		          i, t);
	}
	cJSON_Delete(m);
	return rc;
}

static int execute_txn(sqlite3 *db, void *arg)
{
	struct draws_job *j = arg;
	struct row r;
	int rc = row_load(db, j, &r);
	if (rc)
		return rc;
	char *doc = NULL;
	char err[512] = "";
	if (!state_is(&r, "committed")) {
		rc = wrong_state(j, &r, "committed");
		goto out;
	}
	if ((rc = values_exist(j, r.manifest)) != 0)
		goto out;
	rc = draw_execute(r.manifest, r.private_, j->values_json, j->secret_hex,
	                  j->sessions_json ? j->sessions_json : "[]", j->now_ms, &doc, err,
	                  sizeof(err));
	if (rc) {
		rc = core_fail(j, rc, err, NULL);
		if (rc == -EPERM)
			snprintf(j->field, sizeof(j->field), "secret");
		goto out;
	}
	sqlite3_stmt *st;
	if ((rc = inspect_prepare(db,
	                          "UPDATE draws SET state = 'executed', document = ?,"
	                          " executed_ms = ? WHERE id = ? AND state = 'committed'",
	                          &st)) != 0) {
		rc = fail(j, rc, NULL, "inspect.db: cannot write draws");
		goto out;
	}
	sqlite3_bind_text(st, 1, doc, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, j->now_ms);
	sqlite3_bind_text(st, 3, j->id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s != SQLITE_DONE || sqlite3_changes(db) != 1) {
		rc = sql_fail(j, db, "execute draw");
		goto out;
	}
	if ((rc = make_inspections(db, j, doc)) != 0)
		goto out;
	char detail[64];
	snprintf(detail, sizeof(detail), "{\"inspections\":%zu}", j->ninspections);
	if ((rc = log_row(db, j, "execute", detail)) != 0)
		goto out;
	rc = render_current(db, j);
out:
	free(doc);
	row_free(&r);
	return rc;
}

int draws_execute_run(sqlite3 *db, void *job)
{
	struct draws_job *j = job;
	if (!j->values_json)
		return j->status = fail(j, -EINVAL, "values", "the public values are required");
	if (!j->secret_hex || !j->secret_hex[0])
		return j->status = fail(j, -EINVAL, "secret", "the revealed secret is required");
	return j->status = inspect_txn(db, execute_txn, j);
}

/* --- replace -----------------------------------------------------------------------------------
 */

/* Who came in for out at inspection seq: the last such replacement of the new document. */
static int incoming(struct draws_job *j, const char *document)
{
	cJSON *doc = cJSON_Parse(document);
	const cJSON *rep, *found = NULL;
	cJSON_ArrayForEach(rep, cJSON_GetObjectItemCaseSensitive(doc, "replacements"))
	{
		const cJSON *in = cJSON_GetObjectItemCaseSensitive(rep, "inspection");
		if (cJSON_IsNumber(in) && in->valueint == j->seq &&
		    strcmp(str_of(rep, "out"), j->out) == 0)
			found = rep;
	}
	if (found)
		snprintf(j->in_inspector, sizeof(j->in_inspector), "%s", str_of(found, "in"));
	cJSON_Delete(doc);
	return found && j->in_inspector[0]
	           ? 0
	           : fail(j, -EIO, NULL, "the new document names no replacement");
}

static int replace_txn(sqlite3 *db, void *arg)
{
	struct draws_job *j = arg;
	struct row r;
	int rc = row_load(db, j, &r);
	if (rc)
		return rc;
	char *doc = NULL;
	char err[512] = "";
	sqlite3_stmt *st = NULL;
	if (!state_is(&r, "executed") && !state_is(&r, "published")) {
		rc = wrong_state(j, &r, "executed or published");
		goto out;
	}
	int64_t insp = 0;
	char istate[32] = "";
	if ((rc = inspect_prepare(
	         db, "SELECT id, state FROM inspections WHERE draw = ? AND seq = ?", &st)) != 0) {
		rc = fail(j, rc, NULL, "inspect.db: cannot read inspections");
		goto out;
	}
	sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, j->seq);
	if (sqlite3_step(st) == SQLITE_ROW) {
		insp = sqlite3_column_int64(st, 0);
		snprintf(istate, sizeof(istate), "%s", (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	st = NULL;
	if (!insp) {
		rc = fail(j, -EINVAL, "seq", "draw %s has no inspection %d", j->id, j->seq);
		goto out;
	}
	/* A published result is the record: who made it stays as it was. */
	if (strcmp(istate, "published") == 0) {
		rc = fail(j, -EALREADY, "seq", "inspection %d's result is published already",
		          j->seq);
		goto out;
	}
	rc = draw_replace(r.document, r.private_, j->seq, j->out, j->reason, j->value, j->now_ms,
	                  &doc, err, sizeof(err));
	if (rc) {
		int enoent = rc == -ENOENT;
		rc = core_fail(j, rc, err, NULL);
		if (enoent) {
			rc = -EINVAL;
			snprintf(j->field, sizeof(j->field), "out");
		}
		goto out;
	}
	if ((rc = incoming(j, doc)) != 0)
		goto out;
	if ((rc = inspect_prepare(db, "UPDATE draws SET document = ? WHERE id = ?", &st)) != 0)
		goto sqlfail;
	sqlite3_bind_text(st, 1, doc, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, j->id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto sqlfail;
	sqlite3_finalize(st);
	if ((rc = inspect_prepare(db,
	                          "UPDATE inspection_inspectors SET active = 0, replaced_by = ?"
	                          " WHERE inspection = ? AND inspector = ?",
	                          &st)) != 0)
		goto sqlfail;
	sqlite3_bind_text(st, 1, j->in_inspector, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, insp);
	sqlite3_bind_text(st, 3, j->out, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE || sqlite3_changes(db) != 1)
		goto sqlfail;
	sqlite3_finalize(st);
	/* One who left this inspection earlier may be picked again: his row comes back. */
	if ((rc = inspect_prepare(db,
	                          "INSERT INTO inspection_inspectors(inspection, inspector)"
	                          " VALUES (?, ?) ON CONFLICT(inspection, inspector) DO UPDATE"
	                          " SET active = 1, replaced_by = ''",
	                          &st)) != 0)
		goto sqlfail;
	sqlite3_bind_int64(st, 1, insp);
	sqlite3_bind_text(st, 2, j->in_inspector, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto sqlfail;
	sqlite3_finalize(st);
	st = NULL;
	{
		struct vw_buf d;
		vw_buf_init(&d, 8192);
		vw_buf_printf(&d, "{\"seq\":%d,\"out\":", j->seq);
		vw_buf_json_str(&d, j->out);
		vw_buf_puts(&d, ",\"in\":");
		vw_buf_json_str(&d, j->in_inspector);
		vw_buf_puts(&d, ",\"reason\":");
		vw_buf_json_str(&d, j->reason);
		vw_buf_puts(&d, "}");
		rc = d.err ? fail(j, -ENOMEM, NULL, "out of memory")
		           : log_row(db, j, "replace", vw_buf_cstr(&d));
		vw_buf_free(&d);
	}
	if (!rc)
		rc = render_current(db, j);
	goto out;
sqlfail:
	rc = sql_fail(j, db, "replace inspector");
out:
	sqlite3_finalize(st);
	free(doc);
	row_free(&r);
	return rc;
}

int draws_replace_run(sqlite3 *db, void *job)
{
	struct draws_job *j = job;
	if (j->seq <= 0)
		return j->status =
		           fail(j, -EINVAL, "seq", "expected the inspection's seq (1, 2, ...)");
	if (!j->out[0])
		return j->status = fail(j, -EINVAL, "out", "expected the leaving inspector's id");
	if (!j->reason || !j->reason[0])
		return j->status = fail(j, -EINVAL, "reason", "a replacement needs its reason");
	if (!j->value || !j->value[0])
		return j->status = fail(j, -EINVAL, "value",
		                        "the next declared replacement source's value is required");
	return j->status = inspect_txn(db, replace_txn, j);
}

/* --- publish -----------------------------------------------------------------------------------
 */

static int publish_txn(sqlite3 *db, void *arg)
{
	struct draws_job *j = arg;
	struct row r;
	int rc = row_load(db, j, &r);
	if (rc)
		return rc;
	if (!state_is(&r, "executed")) {
		rc = wrong_state(j, &r, "executed");
		goto out;
	}
	sqlite3_stmt *st;
	if ((rc = inspect_prepare(db,
	                          "UPDATE draws SET state = 'published', published_ms = ?"
	                          " WHERE id = ? AND state = 'executed'",
	                          &st)) != 0) {
		rc = fail(j, rc, NULL, "inspect.db: cannot write draws");
		goto out;
	}
	sqlite3_bind_int64(st, 1, j->now_ms);
	sqlite3_bind_text(st, 2, j->id, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s != SQLITE_DONE || sqlite3_changes(db) != 1)
		rc = sql_fail(j, db, "publish draw");
	if (!rc)
		rc = log_row(db, j, "publish", "{}");
	if (!rc)
		rc = render_current(db, j);
out:
	row_free(&r);
	return rc;
}

int draws_publish_run(sqlite3 *db, void *job)
{
	struct draws_job *j = job;
	return j->status = inspect_txn(db, publish_txn, j);
}

/* --- reads -------------------------------------------------------------------------------------
 */

int draws_list_run(sqlite3 *db, void *job)
{
	struct draws_job *j = job;
	sqlite3_stmt *st;
	if (inspect_prepare(db,
	                    "SELECT id, scope_city, state, manifest_sha256, created_ms,"
	                    " coalesce(committed_ms, 0), coalesce(executed_ms, 0),"
	                    " coalesce(published_ms, 0), actor FROM draws"
	                    " WHERE ?1 = '' OR scope_city = ?1 ORDER BY created_ms DESC, id"
	                    " LIMIT ?2",
	                    &st))
		return j->status = fail(j, -EIO, NULL, "inspect.db: cannot read draws");
	sqlite3_bind_text(st, 1, j->scope_city, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, LIST_MAX);
	struct vw_buf b;
	vw_buf_init(&b, DRAW_JSON_MAX);
	vw_buf_puts(&b, "{\"draws\":[");
	int rc, k = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct row r = {
		    .scope_city = (char *)sqlite3_column_text(st, 1),
		    .state = (char *)sqlite3_column_text(st, 2),
		    .manifest_sha256 = (char *)sqlite3_column_text(st, 3),
		    .created_ms = sqlite3_column_int64(st, 4),
		    .committed_ms = sqlite3_column_int64(st, 5),
		    .executed_ms = sqlite3_column_int64(st, 6),
		    .published_ms = sqlite3_column_int64(st, 7),
		    .actor = (char *)sqlite3_column_text(st, 8),
		};
		if (k++)
			vw_buf_puts(&b, ",");
		put_summary(&b, (const char *)sqlite3_column_text(st, 0), &r);
		vw_buf_puts(&b, "}");
	}
	sqlite3_finalize(st);
	vw_buf_puts(&b, "]}");
	int out = 0;
	if (rc != SQLITE_DONE)
		out = sql_fail(j, db, "list draws");
	else if (b.err || !(j->json = strdup(vw_buf_cstr(&b))))
		out = fail(j, -ENOMEM, NULL, "out of memory");
	vw_buf_free(&b);
	return j->status = out;
}

int draws_get_run(sqlite3 *db, void *job)
{
	struct draws_job *j = job;
	return j->status = render_current(db, j);
}

int draws_document_run(sqlite3 *db, void *job)
{
	struct draws_job *j = job;
	struct row r;
	int rc = row_load(db, j, &r);
	if (!rc && !r.document)
		rc = wrong_state(j, &r, "executed");
	if (!rc) {
		j->document = r.document;
		r.document = NULL;
	}
	row_free(&r);
	return j->status = rc;
}
