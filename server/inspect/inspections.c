#include "inspections.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "inspect.h"
#include "labels.h"
#include "vtime.h"

/* Who may see an inspection row i: ?1 role (0 province, 1 city, 2 inspector), ?2 the city,
 * ?3 the inspector. Every read and write below goes through it, so the scope is one text. */
#define SCOPE                                                                                      \
	"(?1 = 0 OR (?1 = 1 AND i.city = ?2) OR (?1 = 2 AND EXISTS (SELECT 1 FROM"                 \
	" inspection_inspectors x WHERE x.inspection = i.id AND x.inspector = ?3 AND"              \
	" x.active = 1)))"

static void bind_who(sqlite3_stmt *st, const struct insp_who *w)
{
	sqlite3_bind_int(st, 1, (int)w->role);
	sqlite3_bind_text(st, 2, w->city, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, w->inspector, -1, SQLITE_STATIC);
}

static const char *col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? (const char *)t : "";
}

static void add_time(cJSON *o, const char *key, int64_t ms)
{
	if (!ms) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	char iso[VW_ISO_LEN];
	vw_time_iso(ms, iso);
	cJSON_AddStringToObject(o, key, iso);
}

int inspections_sees_site(struct inspect *in, const char *inspector, const char *site)
{
	if (!inspector || !inspector[0] || !site || !site[0])
		return 0;
	/* inspection_inspectors_by(inspector, inspection) finds his rows; each inspection and
	 * its target by primary key; json_each only for those still open. */
	sqlite3_stmt *st = inspect_reader_stmt(
	    in, INSPECTIONS_RS_SEES_SITE,
	    "SELECT 1 FROM inspection_inspectors x JOIN inspections i ON i.id = x.inspection LEFT"
	    " JOIN targets t ON t.org = i.org WHERE x.inspector = ?1 AND x.active = 1 AND i.state"
	    " IN ('assigned', 'recorded') AND (i.site = ?2 OR EXISTS (SELECT 1 FROM"
	    " json_each(t.sites) WHERE json_each.value = ?2)) LIMIT 1");
	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, inspector, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, site, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : -EIO;
}

/* The columns every row read below selects, in this order. */
#define ROW_COLS                                                                                   \
	"i.id, i.draw, i.seq, i.org, i.city, i.mode, i.site, i.exam_session, i.slot_start_ms,"     \
	" i.slot_end_ms, i.finding, i.state, i.outcome, i.findings, i.note, i.result_version,"     \
	" i.recorded_by, i.recorded_ms, i.confirmed_ms, i.published_ms,"                           \
	" (SELECT d.executed_ms FROM draws d WHERE d.id = i.draw)"

/* due and overdue of the row read with ROW_COLS (null and false when no date is known). */
static void add_due(cJSON *o, sqlite3_stmt *st, const struct insp_deadline *d)
{
	char due[CALENDAR_DATE_LEN];
	int published = strcmp(col(st, 11), "published") == 0;
	if (inspect_due(d->cal, sqlite3_column_int64(st, 8), sqlite3_column_int64(st, 20), d->days,
	                due) != 0) {
		cJSON_AddNullToObject(o, "due");
		cJSON_AddFalseToObject(o, "overdue");
		return;
	}
	cJSON_AddStringToObject(o, "due", due);
	cJSON_AddBoolToObject(o, "overdue", inspect_overdue(due, published, d->now_ms));
}

static cJSON *row_json(sqlite3_stmt *st, const struct insp_deadline *due)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
	cJSON_AddStringToObject(o, "draw", col(st, 1));
	cJSON_AddNumberToObject(o, "seq", sqlite3_column_int(st, 2));
	cJSON_AddStringToObject(o, "org", col(st, 3));
	cJSON_AddStringToObject(o, "city", col(st, 4));
	cJSON_AddStringToObject(o, "mode", col(st, 5));
	if (sqlite3_column_int64(st, 7)) {
		cJSON *s = cJSON_AddObjectToObject(o, "slot");
		cJSON_AddNumberToObject(s, "session", (double)sqlite3_column_int64(st, 7));
		cJSON_AddStringToObject(s, "site", col(st, 6));
		add_time(s, "start", sqlite3_column_int64(st, 8));
		add_time(s, "end", sqlite3_column_int64(st, 9));
	} else {
		cJSON_AddNullToObject(o, "slot");
	}
	cJSON_AddStringToObject(o, "finding", col(st, 10));
	cJSON_AddStringToObject(o, "state", col(st, 11));
	cJSON_AddNumberToObject(o, "result_version", (double)sqlite3_column_int64(st, 15));
	if (due)
		add_due(o, st, due);
	return o;
}

int inspections_list(sqlite3 *db, const struct insp_who *who, const struct insp_list_query *q,
                     const struct insp_deadline *due, char **json)
{
	*json = NULL;
	sqlite3_stmt *st;
	if (inspect_prepare(db,
	                    "SELECT " ROW_COLS " FROM inspections i WHERE " SCOPE
	                    " AND i.id > ?4 AND (?5 = '' OR i.draw = ?5) AND (?6 = '' OR i.state ="
	                    " ?6) AND (?7 = '' OR i.org = ?7) ORDER BY i.id LIMIT ?8",
	                    &st))
		return -EIO;
	bind_who(st, who);
	sqlite3_bind_int64(st, 4, q->after);
	sqlite3_bind_text(st, 5, q->draw ? q->draw : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, q->state ? q->state : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, q->org ? q->org : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 8, q->limit + 1); /* one more: whether a next page exists */
	cJSON *doc = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(doc, "inspections");
	int n = 0, step;
	int64_t last = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == q->limit)
			break;
		cJSON *o = row_json(st, due);
		cJSON_AddStringToObject(o, "outcome", col(st, 12));
		cJSON_AddItemToArray(arr, o);
		last = sqlite3_column_int64(st, 0);
		n++;
	}
	int more = step == SQLITE_ROW;
	sqlite3_finalize(st);
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		cJSON_Delete(doc);
		return -EIO;
	}
	if (more)
		cJSON_AddNumberToObject(doc, "next", (double)last);
	else
		cJSON_AddNullToObject(doc, "next");
	*json = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	return *json ? 0 : -ENOMEM;
}

/* Steps st to its end, making each row with fn into a new array under key. */
static int add_rows(cJSON *o, const char *key, sqlite3_stmt *st, cJSON *(*fn)(sqlite3_stmt *st))
{
	cJSON *arr = cJSON_AddArrayToObject(o, key);
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		cJSON_AddItemToArray(arr, fn(st));
	sqlite3_finalize(st);
	return step == SQLITE_DONE ? 0 : -EIO;
}

static cJSON *member_json(sqlite3_stmt *st)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", col(st, 0));
	cJSON_AddStringToObject(o, "name", col(st, 1));
	cJSON_AddBoolToObject(o, "active", sqlite3_column_int(st, 2));
	if (col(st, 3)[0])
		cJSON_AddStringToObject(o, "replaced_by", col(st, 3));
	return o;
}

static cJSON *confirmation_json(sqlite3_stmt *st)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "inspector", col(st, 0));
	cJSON_AddNumberToObject(o, "result_version", (double)sqlite3_column_int64(st, 1));
	add_time(o, "at", sqlite3_column_int64(st, 2));
	return o;
}

static cJSON *evidence_json(sqlite3_stmt *st)
{
	cJSON *o = cJSON_CreateObject();
	int64_t id = sqlite3_column_int64(st, 0);
	cJSON_AddNumberToObject(o, "id", (double)id);
	cJSON_AddStringToObject(o, "kind", col(st, 1));
	if (col(st, 2)[0])
		cJSON_AddStringToObject(o, "camera", col(st, 2));
	add_time(o, "captured", sqlite3_column_int64(st, 3));
	cJSON_AddNumberToObject(o, "bytes", (double)sqlite3_column_int64(st, 4));
	char link[96];
	snprintf(link, sizeof(link), "/api/v1/inspections/%lld/evidence/%lld",
	         (long long)sqlite3_column_int64(st, 5), (long long)id);
	cJSON_AddStringToObject(o, "href", link);
	return o;
}

int inspections_get(sqlite3 *db, const struct insp_who *who, int64_t id,
                    const struct insp_deadline *due, char **json)
{
	*json = NULL;
	sqlite3_stmt *st;
	if (inspect_prepare(db, "SELECT " ROW_COLS " FROM inspections i WHERE i.id = ?4 AND " SCOPE,
	                    &st))
		return -EIO;
	bind_who(st, who);
	sqlite3_bind_int64(st, 4, id);
	int step = sqlite3_step(st);
	if (step != SQLITE_ROW) {
		sqlite3_finalize(st);
		return step == SQLITE_DONE ? -ENOENT : -EIO;
	}
	cJSON *o = row_json(st, due);
	cJSON *res = cJSON_AddObjectToObject(o, "result");
	cJSON_AddStringToObject(res, "outcome", col(st, 12));
	cJSON_AddStringToObject(res, "findings", col(st, 13));
	cJSON_AddStringToObject(res, "note", col(st, 14));
	cJSON_AddStringToObject(res, "recorded_by", col(st, 16));
	add_time(res, "recorded", sqlite3_column_int64(st, 17));
	add_time(o, "confirmed", sqlite3_column_int64(st, 18));
	add_time(o, "published", sqlite3_column_int64(st, 19));
	sqlite3_finalize(st);
	int rc = 0;
	/* The 3.6 snapshot is JSON text made at recording: passed through as an object. */
	if (!inspect_prepare(db, "SELECT evidence FROM inspections WHERE id = ?", &st)) {
		sqlite3_bind_int64(st, 1, id);
		if (sqlite3_step(st) == SQLITE_ROW && col(st, 0)[0]) {
			cJSON *e = cJSON_Parse(col(st, 0));
			cJSON_AddItemToObject(res, "evidence", e ? e : cJSON_CreateNull());
		}
		sqlite3_finalize(st);
	}
	if (!rc && !(rc = inspect_prepare(db,
	                                  "SELECT x.inspector, COALESCE(p.name, ''), x.active,"
	                                  " x.replaced_by FROM inspection_inspectors x LEFT JOIN"
	                                  " inspectors p ON p.id = x.inspector WHERE x.inspection"
	                                  " = ? ORDER BY x.rowid",
	                                  &st))) {
		sqlite3_bind_int64(st, 1, id);
		rc = add_rows(o, "inspectors", st, member_json);
	}
	if (!rc && !(rc = inspect_prepare(db,
	                                  "SELECT inspector, result_version, at_ms FROM"
	                                  " inspection_confirmations WHERE inspection = ? ORDER BY"
	                                  " at_ms, inspector",
	                                  &st))) {
		sqlite3_bind_int64(st, 1, id);
		rc = add_rows(o, "confirmations", st, confirmation_json);
	}
	if (!rc &&
	    !(rc = inspect_prepare(db,
	                           "SELECT id, kind, camera, captured_ms, COALESCE(length(jpeg),"
	                           " length(data)), inspection FROM inspection_evidence WHERE"
	                           " inspection = ? ORDER BY id",
	                           &st))) {
		sqlite3_bind_int64(st, 1, id);
		rc = add_rows(o, "evidence", st, evidence_json);
	}
	if (!rc && !(*json = cJSON_PrintUnformatted(o)))
		rc = -ENOMEM;
	cJSON_Delete(o);
	return rc;
}

int inspections_slot(sqlite3 *reader, int64_t id, int64_t *exam_session, char site[64])
{
	sqlite3_stmt *st;
	if (!reader ||
	    inspect_prepare(reader, "SELECT exam_session, site FROM inspections WHERE id = ?", &st))
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		*exam_session = sqlite3_column_int64(st, 0);
		snprintf(site, 64, "%s", col(st, 1));
	}
	sqlite3_finalize(st);
	return step == SQLITE_ROW ? 0 : step == SQLITE_DONE ? -ENOENT : -EIO;
}

int inspections_outcome_valid(const char *outcomes, const char *id)
{
	struct inspect_labels l;
	char err[160];
	return id && outcomes && inspect_labels_parse(outcomes, &l, err, sizeof(err)) == 0 &&
	       inspect_labels_find(&l, id) >= 0;
}

static int fail(struct insp_write *w, int rc, const char *field, const char *what)
{
	snprintf(w->err, sizeof(w->err), "%s", what);
	snprintf(w->field, sizeof(w->field), "%s", field ? field : "");
	return rc;
}

/* The inspection in w's scope, its state, org and current result version; and whether w's
 * inspector is an active member. */
static int load(sqlite3 *db, struct insp_write *w, char state[16], int64_t *version, int *member)
{
	sqlite3_stmt *st;
	if (inspect_prepare(db,
	                    "SELECT i.state, i.org, i.result_version, EXISTS (SELECT 1 FROM"
	                    " inspection_inspectors x WHERE x.inspection = i.id AND x.inspector ="
	                    " ?3 AND x.active = 1) FROM inspections i WHERE i.id = ?4 AND " SCOPE,
	                    &st))
		return -EIO;
	bind_who(st, w->who);
	sqlite3_bind_int64(st, 4, w->id);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		snprintf(state, 16, "%s", col(st, 0));
		snprintf(w->org, sizeof(w->org), "%s", col(st, 1));
		*version = sqlite3_column_int64(st, 2);
		*member = w->who->role == INSP_INSPECTOR && sqlite3_column_int(st, 3);
	}
	sqlite3_finalize(st);
	if (step == SQLITE_DONE)
		return fail(w, -ENOENT, NULL, "no such inspection");
	return step == SQLITE_ROW ? 0 : -EIO;
}

static int exec_bound(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	return rc;
}

static int record_txn(sqlite3 *db, void *arg)
{
	struct insp_write *w = arg;
	char state[16];
	int64_t version;
	int member, rc = load(db, w, state, &version, &member);
	if (rc)
		return rc;
	if (!member)
		return fail(
		    w, -EPERM, NULL,
		    "only an active inspector assigned to this inspection records its result");
	if (strcmp(state, "assigned") && strcmp(state, "recorded"))
		return fail(w, -EBUSY, NULL,
		            "the result is confirmed: it can no longer be changed");
	sqlite3_stmt *st;
	if (inspect_prepare(db,
	                    "UPDATE inspections SET state = 'recorded', outcome = ?, findings = ?,"
	                    " note = ?, evidence = ?, result_version = result_version + 1,"
	                    " recorded_by = ?, recorded_ms = ? WHERE id = ?",
	                    &st))
		return -EIO;
	sqlite3_bind_text(st, 1, w->outcome, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, w->findings ? w->findings : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, w->note ? w->note : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, w->evidence ? w->evidence : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, w->who->inspector, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, w->now_ms);
	sqlite3_bind_int64(st, 7, w->id);
	if ((rc = exec_bound(st)) != 0)
		return rc;
	/* A new result is a new text to agree on: confirmations of the old one no longer
	 * count (they stay in the table, tied to the version they confirmed). */
	w->out_version = version + 1;
	snprintf(w->out_state, sizeof(w->out_state), "recorded");
	return 0;
}

int inspections_record(sqlite3 *db, void *arg)
{
	struct insp_write *w = arg;
	if (!w->outcome || !inspections_outcome_valid(w->outcomes, w->outcome))
		return fail(w, -EINVAL, "outcome", "must be one of the [inspection] outcomes ids");
	if (w->findings && strlen(w->findings) > 20000)
		return fail(w, -EINVAL, "findings", "at most 20000 bytes");
	if (w->note && strlen(w->note) > 20000)
		return fail(w, -EINVAL, "note", "at most 20000 bytes");
	return inspect_txn(db, record_txn, w);
}

static int count_confirmed(sqlite3 *db, int64_t id, int64_t version, int *n)
{
	sqlite3_stmt *st;
	if (inspect_prepare(
	        db,
	        "SELECT COUNT(DISTINCT c.inspector) FROM inspection_confirmations c JOIN"
	        " inspection_inspectors x ON x.inspection = c.inspection AND x.inspector"
	        " = c.inspector AND x.active = 1 WHERE c.inspection = ? AND"
	        " c.result_version = ?",
	        &st))
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, version);
	int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -EIO;
	*n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc;
}

static int confirm_txn(sqlite3 *db, void *arg)
{
	struct insp_write *w = arg;
	char state[16];
	int64_t version;
	int member, rc = load(db, w, state, &version, &member);
	if (rc)
		return rc;
	if (!member)
		return fail(w, -EPERM, NULL,
		            "only an active inspector assigned to this inspection confirms it");
	if (strcmp(state, "recorded"))
		return fail(w, -EBUSY, NULL,
		            strcmp(state, "assigned") ? "the result is confirmed already"
		                                      : "no result has been recorded yet");
	if (w->result_version != version)
		return fail(w, -EBUSY, "result_version",
		            "the result has changed since: read it again and confirm the current "
		            "result_version");
	sqlite3_stmt *st;
	if (inspect_prepare(db,
	                    "INSERT OR IGNORE INTO inspection_confirmations(inspection, inspector,"
	                    " result_version, at_ms) VALUES (?, ?, ?, ?)",
	                    &st))
		return -EIO;
	sqlite3_bind_int64(st, 1, w->id);
	sqlite3_bind_text(st, 2, w->who->inspector, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, version);
	sqlite3_bind_int64(st, 4, w->now_ms);
	if ((rc = exec_bound(st)) != 0 ||
	    (rc = count_confirmed(db, w->id, version, &w->out_confirmed)))
		return rc;
	w->out_version = version;
	/* 劳动保障监察条例 Art. 16: at least two inspectors — so at least two of the active
	 * ones agree to the same text; the recorder may be one of them. */
	if (w->out_confirmed >= 2) {
		if (inspect_prepare(
		        db,
		        "UPDATE inspections SET state = 'confirmed', confirmed_ms = ? WHERE"
		        " id = ?",
		        &st))
			return -EIO;
		sqlite3_bind_int64(st, 1, w->now_ms);
		sqlite3_bind_int64(st, 2, w->id);
		if ((rc = exec_bound(st)) != 0)
			return rc;
		snprintf(w->out_state, sizeof(w->out_state), "confirmed");
	} else {
		snprintf(w->out_state, sizeof(w->out_state), "recorded");
	}
	return 0;
}

int inspections_confirm(sqlite3 *db, void *arg)
{
	return inspect_txn(db, confirm_txn, arg);
}

static int publish_txn(sqlite3 *db, void *arg)
{
	struct insp_write *w = arg;
	char state[16];
	int64_t version;
	int member, rc = load(db, w, state, &version, &member);
	if (rc)
		return rc;
	if (w->who->role == INSP_INSPECTOR)
		return fail(w, -EPERM, NULL, "the bureau publishes results, not its inspectors");
	if (strcmp(state, "confirmed"))
		return fail(w, -EBUSY, NULL,
		            strcmp(state, "published") ? "only a confirmed result is published"
		                                       : "published already");
	sqlite3_stmt *st;
	if (inspect_prepare(
	        db, "UPDATE inspections SET state = 'published', published_ms = ? WHERE id = ?",
	        &st))
		return -EIO;
	sqlite3_bind_int64(st, 1, w->now_ms);
	sqlite3_bind_int64(st, 2, w->id);
	if ((rc = exec_bound(st)) != 0)
		return rc;
	w->out_version = version;
	snprintf(w->out_state, sizeof(w->out_state), "published");
	return 0;
}

int inspections_publish(sqlite3 *db, void *arg)
{
	return inspect_txn(db, publish_txn, arg);
}

void inspections_evidence_free(struct insp_evidence *e)
{
	if (!e)
		return;
	free(e->data);
	free(e->jpeg);
	e->data = NULL;
	e->jpeg = NULL;
}

int inspections_evidence_get(sqlite3 *db, const struct insp_who *who, int64_t id, int64_t eid,
                             struct insp_evidence *out)
{
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *st;
	if (inspect_prepare(db,
	                    "SELECT e.id, e.inspection, e.captured_ms, e.kind, e.camera, e.data,"
	                    " e.jpeg FROM inspection_evidence e JOIN inspections i ON i.id ="
	                    " e.inspection WHERE e.id = ?5 AND i.id = ?4 AND " SCOPE,
	                    &st))
		return -EIO;
	bind_who(st, who);
	sqlite3_bind_int64(st, 4, id);
	sqlite3_bind_int64(st, 5, eid);
	int step = sqlite3_step(st), rc = 0;
	if (step == SQLITE_ROW) {
		out->id = sqlite3_column_int64(st, 0);
		out->inspection = sqlite3_column_int64(st, 1);
		out->captured_ms = sqlite3_column_int64(st, 2);
		snprintf(out->kind, sizeof(out->kind), "%s", col(st, 3));
		snprintf(out->camera, sizeof(out->camera), "%s", col(st, 4));
		out->data = strdup(col(st, 5));
		int n = sqlite3_column_bytes(st, 6);
		if (sqlite3_column_type(st, 6) == SQLITE_BLOB && n > 0) {
			out->jpeg = malloc((size_t)n);
			if (out->jpeg) {
				memcpy(out->jpeg, sqlite3_column_blob(st, 6), (size_t)n);
				out->jpeg_len = (size_t)n;
			}
		}
		if (!out->data || (n > 0 && !out->jpeg))
			rc = -ENOMEM;
	} else {
		rc = step == SQLITE_DONE ? -ENOENT : -EIO;
	}
	sqlite3_finalize(st);
	if (rc)
		inspections_evidence_free(out);
	return rc;
}

struct add_args {
	int64_t id;
	const struct insp_evidence *rows;
	size_t n;
};

static int add_txn(sqlite3 *db, void *arg)
{
	struct add_args *x = arg;
	sqlite3_stmt *st;
	if (inspect_prepare(db,
	                    "INSERT INTO inspection_evidence(inspection, captured_ms, kind, camera,"
	                    " data, jpeg) VALUES (?, ?, ?, ?, ?, ?)",
	                    &st))
		return -EIO;
	int rc = 0;
	for (size_t i = 0; i < x->n && !rc; i++) {
		const struct insp_evidence *e = &x->rows[i];
		sqlite3_bind_int64(st, 1, x->id);
		sqlite3_bind_int64(st, 2, e->captured_ms);
		sqlite3_bind_text(st, 3, e->kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, e->camera, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, e->data ? e->data : "", -1, SQLITE_STATIC);
		if (e->jpeg)
			sqlite3_bind_blob(st, 6, e->jpeg, (int)e->jpeg_len, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 6);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	sqlite3_finalize(st);
	return rc;
}

int inspections_evidence_add(sqlite3 *db, int64_t id, const struct insp_evidence *rows, size_t n)
{
	struct add_args x = {.id = id, .rows = rows, .n = n};
	return inspect_txn(db, add_txn, &x);
}

int inspections_capture_due(sqlite3 *db, int64_t now_ms, int64_t retry_ms, struct insp_due *out,
                            size_t max, size_t *n)
{
	*n = 0;
	sqlite3_stmt *st;
	/* inspections_slot(slot_start_ms): the slots started so far; few are running. */
	if (inspect_prepare(
	        db,
	        "SELECT i.id, i.site FROM inspections i WHERE i.slot_start_ms > 0 AND"
	        " i.slot_start_ms <= ?1 AND i.slot_end_ms > ?1 AND i.state = 'assigned'"
	        " AND i.site <> '' AND (i.mode = 'remote' OR i.finding = 'no_session')"
	        " AND NOT EXISTS (SELECT 1 FROM inspection_evidence e WHERE"
	        " e.inspection = i.id AND e.kind = 'thumbnail')"
	        " AND (SELECT count(*) FROM inspection_evidence e WHERE e.inspection ="
	        " i.id AND e.kind = 'status') < ?4"
	        " AND COALESCE((SELECT max(captured_ms) FROM inspection_evidence e WHERE"
	        " e.inspection = i.id AND e.kind = 'status'), 0) <= ?1 - ?3"
	        " ORDER BY i.id LIMIT ?2",
	        &st))
		return -EIO;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	sqlite3_bind_int64(st, 3, retry_ms);
	sqlite3_bind_int(st, 4, INSPECTIONS_CAPTURE_TRIES);
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
		out[*n].id = sqlite3_column_int64(st, 0);
		snprintf(out[*n].site, sizeof(out[*n].site), "%s", col(st, 1));
		(*n)++;
	}
	sqlite3_finalize(st);
	return step == SQLITE_DONE || step == SQLITE_ROW ? 0 : -EIO;
}

int inspections_capture_allowed(sqlite3 *reader, const char *inspector, int64_t id, int64_t now_ms,
                                char site[64])
{
	sqlite3_stmt *st;
	if (!reader || inspect_prepare(
	                   reader,
	                   "SELECT i.state, i.site, i.slot_start_ms, i.slot_end_ms FROM inspections"
	                   " i JOIN inspection_inspectors x ON x.inspection = i.id AND x.inspector"
	                   " = ?2 AND x.active = 1 WHERE i.id = ?1",
	                   &st))
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, inspector, -1, SQLITE_STATIC);
	int step = sqlite3_step(st), rc;
	if (step == SQLITE_ROW) {
		snprintf(site, 64, "%s", col(st, 1));
		int64_t s = sqlite3_column_int64(st, 2), e = sqlite3_column_int64(st, 3);
		rc =
		    strcmp(col(st, 0), "assigned") == 0 && site[0] && s && s <= now_ms && now_ms < e
		        ? 0
		        : -EBUSY;
	} else {
		rc = step == SQLITE_DONE ? -ENOENT : -EIO;
	}
	sqlite3_finalize(st);
	return rc;
}
