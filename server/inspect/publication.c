#include "publication.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "inspect.h"
#include "labels.h"
#include "vtime.h"

void publication_job_free(struct publication_job *j)
{
	if (!j)
		return;
	cJSON_Delete(j->out);
	free(j->document);
	j->out = NULL;
	j->document = NULL;
}

/* --- small pieces ------------------------------------------------------------------------- */

static const char *col(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	return s ? (const char *)s : "";
}

/* A time as the API writes it, or null when it has not happened (0). */
static void add_time(cJSON *o, const char *key, int64_t ms)
{
	if (ms <= 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	char t[VW_ISO_LEN];
	vw_time_iso(ms, t);
	cJSON_AddStringToObject(o, key, t);
}

static void add_date(cJSON *o, const char *key, int64_t ms)
{
	char d[CALENDAR_DATE_LEN] = "";
	if (ms > 0)
		calendar_date_format(calendar_day_of_ms(ms), d);
	cJSON_AddStringToObject(o, key, d);
}

/* The outcome's label of [inspection] outcomes; the id itself when it is not listed (an
 * outcome removed from the config after it was recorded). */
static const char *outcome_label(const struct inspect_labels *l, const char *id)
{
	int k = l ? inspect_labels_find(l, id) : -1;
	return k >= 0 ? l->label[k] : id;
}

/* A copy of src's member key (or nothing when absent). */
static void copy_member(cJSON *dst, const cJSON *src, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, key);
	if (v)
		cJSON_AddItemToObject(dst, key, cJSON_Duplicate(v, 1));
}

static const char *str_member(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* The public states of a draw: before commit nothing of it is public. */
#define PUBLIC_STATES "('committed','executed','published')"

/* --- one inspection's result ----------------------------------------------------------------- */

struct insp_row {
	const char *draw, *org, *name, *city, *mode, *site, *finding, *state, *outcome, *findings;
	int64_t seq, slot_start_ms, slot_end_ms, published_ms, executed_ms;
};

/* The result part every public view of an inspection shows: state (published | pending), the
 * due date and its flags; outcome and findings once published. Never note, evidence,
 * recorded_by or confirmations. */
static void add_result(cJSON *o, const struct insp_row *r, const struct publication_job *j)
{
	int published = strcmp(r->state, "published") == 0;
	char due[CALENDAR_DATE_LEN] = "";
	int have_due = inspect_due(j->cal, r->slot_start_ms, r->executed_ms, j->due_days, due) == 0;
	cJSON_AddStringToObject(o, "state", published ? "published" : "pending");
	if (have_due)
		cJSON_AddStringToObject(o, "due", due);
	else
		cJSON_AddNullToObject(o, "due");
	cJSON_AddBoolToObject(o, "overdue", have_due && inspect_overdue(due, published, j->now_ms));
	int32_t dd, pd = published ? calendar_day_of_ms(r->published_ms) : 0;
	cJSON_AddBoolToObject(
	    o, "late", published && have_due && calendar_date_parse(due, &dd) == 0 && pd > dd);
	add_time(o, "published", published ? r->published_ms : 0);
	if (published) {
		cJSON_AddStringToObject(o, "outcome", r->outcome);
		cJSON_AddStringToObject(o, "outcome_label", outcome_label(j->outcomes, r->outcome));
		cJSON_AddStringToObject(o, "findings", r->findings);
	} else {
		cJSON_AddNullToObject(o, "outcome");
		cJSON_AddNullToObject(o, "outcome_label");
		cJSON_AddNullToObject(o, "findings");
	}
}

static void add_slot(cJSON *o, const struct insp_row *r)
{
	add_date(o, "date", r->slot_start_ms);
	cJSON_AddStringToObject(o, "site", r->site);
	add_time(o, "start", r->slot_start_ms);
	add_time(o, "end", r->slot_end_ms);
	cJSON_AddStringToObject(o, "finding", r->finding);
}

/* --- index ------------------------------------------------------------------------------------ */

int publication_index_run(sqlite3 *db, void *job)
{
	struct publication_job *j = job;
	sqlite3_stmt *st;
	int rc = inspect_prepare(
	    db,
	    "SELECT d.id, d.scope_city, d.state, COALESCE(d.manifest_sha256, ''), d.committed_ms,"
	    " d.executed_ms, d.published_ms,"
	    " (SELECT COUNT(*) FROM inspections i WHERE i.draw = d.id),"
	    " (SELECT COUNT(*) FROM inspections i WHERE i.draw = d.id AND i.state = 'published')"
	    " FROM draws d WHERE d.state IN " PUBLIC_STATES " ORDER BY d.committed_ms DESC, d.id",
	    &st);
	if (rc)
		return rc;
	cJSON *out = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(out, "draws");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", col(st, 0));
		cJSON_AddStringToObject(o, "scope_city", col(st, 1));
		cJSON_AddStringToObject(o, "state", col(st, 2));
		cJSON_AddStringToObject(o, "manifest_sha256", col(st, 3));
		add_time(o, "committed", sqlite3_column_int64(st, 4));
		add_time(o, "executed", sqlite3_column_int64(st, 5));
		add_time(o, "published", sqlite3_column_int64(st, 6));
		/* how many were drawn is part of the drawn list: public with it */
		int pub = strcmp(col(st, 2), "published") == 0;
		if (pub)
			cJSON_AddNumberToObject(o, "inspections",
			                        (double)sqlite3_column_int64(st, 7));
		else
			cJSON_AddNullToObject(o, "inspections");
		cJSON_AddNumberToObject(o, "results_published",
		                        (double)sqlite3_column_int64(st, 8));
		cJSON_AddItemToArray(arr, o);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		cJSON_Delete(out);
		return -EIO;
	}
	j->out = out;
	return 0;
}

/* --- one draw ------------------------------------------------------------------------------- */

/* The manifest's rosters by key, for the drawn list: a province draw names thousands of
 * targets, and a scan per inspection made its page quadratic (5,000 inspections: ~0.4 s). */
struct roster {
	const cJSON **v;
	size_t n;
	const char *key;
};

static const char *roster_key; /* qsort has no context argument; worker thread only */

static int cmp_rows(const void *a, const void *b)
{
	return strcmp(str_member(*(const cJSON *const *)a, roster_key),
	              str_member(*(const cJSON *const *)b, roster_key));
}

static int roster_init(struct roster *r, const cJSON *manifest, const char *member, const char *key)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(manifest, member), *v;
	r->n = 0;
	r->key = key;
	r->v = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*r->v));
	if (!r->v)
		return -ENOMEM;
	cJSON_ArrayForEach(v, arr) r->v[r->n++] = v;
	roster_key = key;
	qsort(r->v, r->n, sizeof(*r->v), cmp_rows);
	return 0;
}

static const cJSON *roster_find(const struct roster *r, const char *want)
{
	size_t lo = 0, hi = r->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(str_member(r->v[mid], r->key), want);
		if (c == 0)
			return r->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The drawn list from the document (what verify recomputes), each with its result from the
 * inspections table. */
static int add_drawn(sqlite3 *db, cJSON *out, const cJSON *doc, const char *draw,
                     int64_t executed_ms, const struct publication_job *j)
{
	const cJSON *manifest = cJSON_GetObjectItemCaseSensitive(doc, "manifest");
	struct roster targets = {0}, inspectors = {0};
	if (roster_init(&targets, manifest, "targets", "org") ||
	    roster_init(&inspectors, manifest, "inspectors", "id")) {
		free(targets.v);
		free(inspectors.v);
		return -ENOMEM;
	}
	sqlite3_stmt *st;
	int rc = inspect_prepare(db,
	                         "SELECT seq, org, city, mode, site, slot_start_ms, slot_end_ms,"
	                         " finding, state, outcome, findings, published_ms"
	                         " FROM inspections WHERE draw = ?1 AND seq = ?2",
	                         &st);
	if (rc) {
		free(targets.v);
		free(inspectors.v);
		return rc;
	}
	cJSON *arr = cJSON_AddArrayToObject(out, "inspections");
	const cJSON *in, *list = cJSON_GetObjectItemCaseSensitive(doc, "inspections");
	cJSON_ArrayForEach(in, list)
	{
		const cJSON *seqv = cJSON_GetObjectItemCaseSensitive(in, "seq");
		int64_t seq = cJSON_IsNumber(seqv) ? (int64_t)seqv->valuedouble : 0;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, o);
		cJSON_AddNumberToObject(o, "seq", (double)seq);
		const char *org = str_member(in, "org");
		cJSON_AddStringToObject(o, "org", org);
		const cJSON *t = roster_find(&targets, org);
		cJSON_AddStringToObject(o, "name", t ? str_member(t, "name") : "");
		cJSON_AddStringToObject(o, "city", str_member(in, "city"));
		cJSON_AddStringToObject(o, "risk", str_member(in, "risk"));
		cJSON_AddStringToObject(o, "mode", str_member(in, "mode"));
		cJSON *ins = cJSON_AddArrayToObject(o, "inspectors");
		const cJSON *id;
		cJSON_ArrayForEach(id, cJSON_GetObjectItemCaseSensitive(in, "inspectors"))
		{
			if (!cJSON_IsString(id))
				continue;
			cJSON *p = cJSON_CreateObject();
			cJSON_AddStringToObject(p, "id", id->valuestring);
			const cJSON *who = roster_find(&inspectors, id->valuestring);
			cJSON_AddStringToObject(p, "name", who ? str_member(who, "name") : "");
			cJSON_AddItemToArray(ins, p);
		}
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, draw, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, seq);
		int step = sqlite3_step(st);
		if (step == SQLITE_ROW) {
			struct insp_row r = {
			    .draw = draw,
			    .org = col(st, 1),
			    .city = col(st, 2),
			    .mode = col(st, 3),
			    .site = col(st, 4),
			    .slot_start_ms = sqlite3_column_int64(st, 5),
			    .slot_end_ms = sqlite3_column_int64(st, 6),
			    .finding = col(st, 7),
			    .state = col(st, 8),
			    .outcome = col(st, 9),
			    .findings = col(st, 10),
			    .published_ms = sqlite3_column_int64(st, 11),
			    .executed_ms = executed_ms,
			    .seq = seq,
			};
			add_slot(o, &r);
			add_result(o, &r, j);
		} else if (step != SQLITE_DONE) {
			rc = -EIO;
			break;
		}
	}
	sqlite3_finalize(st);
	free(targets.v);
	free(inspectors.v);
	return rc;
}

int publication_draw_run(sqlite3 *db, void *job)
{
	struct publication_job *j = job;
	sqlite3_stmt *st;
	int rc = inspect_prepare(db,
	                         "SELECT id, scope_city, state, plan, manifest, manifest_sha256,"
	                         " document, committed_ms, executed_ms, published_ms"
	                         " FROM draws WHERE id = ?1 AND state IN " PUBLIC_STATES,
	                         &st);
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, j->draw, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? -ENOENT : -EIO;
	}
	cJSON *out = cJSON_CreateObject();
	const char *state = col(st, 2);
	int published = strcmp(state, "published") == 0;
	int64_t executed_ms = sqlite3_column_int64(st, 8);
	cJSON_AddStringToObject(out, "id", col(st, 0));
	cJSON_AddStringToObject(out, "scope_city", col(st, 1));
	cJSON_AddStringToObject(out, "state", state);
	add_time(out, "committed", sqlite3_column_int64(st, 7));
	add_time(out, "executed", executed_ms);
	add_time(out, "published", sqlite3_column_int64(st, 9));
	cJSON_AddStringToObject(out, "manifest_sha256", col(st, 5));
	/* The manifest is public by construction (its rosters are the public rows, the private
	 * part only as its hash): the plan, the randomness and the commitment are its. */
	cJSON *manifest = cJSON_Parse(col(st, 4));
	cJSON *doc = published ? cJSON_Parse(col(st, 6)) : NULL;
	if (!manifest || (published && !doc)) {
		rc = -EIO; /* the stored JSON is ours: unreadable is damage, not input */
		goto done;
	}
	cJSON_AddStringToObject(out, "commitment", str_member(manifest, "commitment"));
	copy_member(out, manifest, "plan");
	copy_member(out, manifest, "randomness");
	cJSON_AddItemToObject(out, "manifest", manifest);
	manifest = NULL;
	if (published) {
		/* After publish, the secret and the values are the document's: verify needs them.
		 */
		const cJSON *reveal = cJSON_GetObjectItemCaseSensitive(doc, "reveal");
		cJSON *r = cJSON_AddObjectToObject(out, "reveal");
		copy_member(r, reveal, "values");
		copy_member(r, reveal, "secret");
		copy_member(out, doc, "strata");
		/* replacements without their reason: a reason (病假) is a person's own business */
		cJSON *reps = cJSON_AddArrayToObject(out, "replacements");
		const cJSON *rep;
		cJSON_ArrayForEach(rep, cJSON_GetObjectItemCaseSensitive(doc, "replacements"))
		{
			cJSON *o = cJSON_CreateObject();
			copy_member(o, rep, "seq");
			copy_member(o, rep, "inspection");
			copy_member(o, rep, "out");
			copy_member(o, rep, "in");
			copy_member(o, rep, "value");
			copy_member(o, rep, "at");
			cJSON_AddItemToArray(reps, o);
		}
		rc = add_drawn(db, out, doc, j->draw, executed_ms, j);
	} else
		rc = 0;
done:
	sqlite3_finalize(st);
	cJSON_Delete(manifest);
	cJSON_Delete(doc);
	if (rc) {
		cJSON_Delete(out);
		return rc;
	}
	j->out = out;
	return 0;
}

/* --- results ---------------------------------------------------------------------------------- */

int publication_results_run(sqlite3 *db, void *job)
{
	struct publication_job *j = job;
	sqlite3_stmt *st;
	int rc = inspect_prepare(
	    db,
	    "SELECT i.draw, i.seq, i.org, COALESCE(t.name, ''), i.city, i.mode, i.site,"
	    " i.slot_start_ms, i.slot_end_ms, i.finding, i.state, i.outcome, i.findings,"
	    " i.published_ms, COALESCE(d.executed_ms, 0)"
	    " FROM inspections i JOIN draws d ON d.id = i.draw"
	    " LEFT JOIN targets t ON t.org = i.org"
	    " WHERE i.state = 'published' OR d.state = 'published'"
	    " ORDER BY d.executed_ms DESC, i.draw, i.seq",
	    &st);
	if (rc)
		return rc;
	cJSON *out = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(out, "results");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct insp_row r = {
		    .draw = col(st, 0),
		    .seq = sqlite3_column_int64(st, 1),
		    .org = col(st, 2),
		    .name = col(st, 3),
		    .city = col(st, 4),
		    .mode = col(st, 5),
		    .site = col(st, 6),
		    .slot_start_ms = sqlite3_column_int64(st, 7),
		    .slot_end_ms = sqlite3_column_int64(st, 8),
		    .finding = col(st, 9),
		    .state = col(st, 10),
		    .outcome = col(st, 11),
		    .findings = col(st, 12),
		    .published_ms = sqlite3_column_int64(st, 13),
		    .executed_ms = sqlite3_column_int64(st, 14),
		};
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "draw", r.draw);
		cJSON_AddNumberToObject(o, "seq", (double)r.seq);
		cJSON_AddStringToObject(o, "org", r.org);
		cJSON_AddStringToObject(o, "name", r.name);
		cJSON_AddStringToObject(o, "city", r.city);
		cJSON_AddStringToObject(o, "mode", r.mode);
		add_slot(o, &r);
		add_result(o, &r, j);
		cJSON_AddItemToArray(arr, o);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		cJSON_Delete(out);
		return -EIO;
	}
	j->out = out;
	return 0;
}

int publication_document_run(sqlite3 *db, void *job)
{
	struct publication_job *j = job;
	sqlite3_stmt *st;
	int rc = inspect_prepare(
	    db, "SELECT state, document FROM draws WHERE id = ?1 AND state IN " PUBLIC_STATES, &st);
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, j->draw, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (strcmp(col(st, 0), "published") != 0 || !sqlite3_column_text(st, 1))
			rc = -EALREADY;
		else
			rc = (j->document = strdup(col(st, 1))) ? 0 : -ENOMEM;
	} else
		rc = rc == SQLITE_DONE ? -ENOENT : -EIO;
	sqlite3_finalize(st);
	return rc;
}
