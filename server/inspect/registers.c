#include "registers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conf.h"
#include "inspect.h"
#include "log.h"
#include "utf8.h"
#include "vtime.h"

const char *const registers_names[REGISTERS_N] = {"targets", "inspectors", "items"};
const char *const registers_key_names[REGISTERS_N] = {"org", "id", "id"};

/* The fields of each register, in the canonical order (docs/API.md "Registers"). */
static const char *const target_fields[] = {"org",         "name", "city", "level",
                                            "occupations", "risk", "sites"};
static const char *const inspector_fields[] = {"id", "name", "city", "department", "ties", "away"};
static const char *const item_fields[] = {"id", "title", "basis", "method"};

static const struct {
	const char *const *f;
	size_t n;
} fields[REGISTERS_N] = {{target_fields, 7}, {inspector_fields, 6}, {item_fields, 4}};

/* The labels people write for the ids (DOMAIN.md: 市级/省级 registration; ties). */
static const char *const level_ids[] = {"city", "province"};
static const char *const level_labels[] = {"市级", "省级"};
static const char *const tie_ids[] = {"affiliation", "former", "relative"};
static const char *const tie_labels[] = {"任职", "曾任职", "亲属"};

int registers_kind_parse(const char *s)
{
	for (int k = 0; k < REGISTERS_N; k++)
		if (strcmp(s, registers_names[k]) == 0)
			return k;
	return -1;
}

/* --- checks ------------------------------------------------------------------------------ */

struct chk {
	char *field;
	size_t fieldlen;
	char *err;
	size_t errlen;
};

static int fail(struct chk *c, const char *field, const char *fmt, const char *arg)
{
	snprintf(c->field, c->fieldlen, "%s", field);
	snprintf(c->err, c->errlen, fmt, arg ? arg : "");
	return -EINVAL;
}

/* Text people typed, trimmed into out: valid UTF-8, no control characters, 1..max bytes
 * (0..max when may_be_empty). NULL or what is wrong. */
static const char *text_get(const cJSON *v, size_t max, int may_be_empty, char *out, size_t cap)
{
	if (!cJSON_IsString(v))
		return "expected a string";
	const char *s = v->valuestring;
	size_t n = strlen(s);
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 0 && !may_be_empty)
		return "empty";
	if (n > max || n >= cap)
		return "too long";
	memcpy(out, s, n);
	out[n] = '\0';
	if (!vw_utf8_valid(out))
		return "not valid UTF-8";
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			return "holds a control character";
	return NULL;
}

static const char *id_get(const cJSON *v, char *out, size_t cap)
{
	const char *why = text_get(v, 63, 0, out, cap);
	if (why)
		return why;
	return vw_conf_id_valid(out) ? NULL : "expected an id: 1-63 of [A-Za-z0-9._-]";
}

static int pick(const char *v, const char *const *ids, const char *const *labels, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v, ids[i]) == 0 || strcmp(v, labels[i]) == 0)
			return (int)i;
	return -1;
}

int registers_date_valid(const char *s)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return 0;
	int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
	if (y < 2000 || y > 2200 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return !(m == 2 && d == 29 && !leap);
}

/* An array of distinct strings (ids when ids_only), at most max. */
static int list_get(struct chk *c, const char *name, const cJSON *v, size_t max, int ids_only,
                    cJSON *out)
{
	char field[64], buf[REGISTERS_TEXT_MAX + 1];
	if (!cJSON_IsArray(v))
		return fail(c, name, "expected an array of strings", NULL);
	if ((size_t)cJSON_GetArraySize(v) > max) {
		snprintf(buf, sizeof(buf), "%zu", max);
		return fail(c, name, "more than %s entries", buf);
	}
	cJSON *arr = cJSON_AddArrayToObject(out, name);
	size_t i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, v)
	{
		snprintf(field, sizeof(field), "%s[%zu]", name, i++);
		const char *why = ids_only ? id_get(e, buf, sizeof(buf))
		                           : text_get(e, REGISTERS_TEXT_MAX, 0, buf, sizeof(buf));
		if (why)
			return fail(c, field, "%s", why);
		const cJSON *o;
		cJSON_ArrayForEach(o, arr)
		{
			if (strcmp(o->valuestring, buf) == 0)
				return fail(c, field, "\"%s\" is listed twice", buf);
		}
		if (!arr || !cJSON_AddItemToArray(arr, cJSON_CreateString(buf)))
			return -ENOMEM;
	}
	return 0;
}

static int ties_get(struct chk *c, const cJSON *v, cJSON *out)
{
	char field[64], org[64], kind[64];
	if (!cJSON_IsArray(v))
		return fail(c, "ties", "expected an array of {\"org\",\"kind\"}", NULL);
	if (cJSON_GetArraySize(v) > REGISTERS_LIST_MAX)
		return fail(c, "ties", "more than 64 ties", NULL);
	cJSON *arr = cJSON_AddArrayToObject(out, "ties");
	size_t i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, v)
	{
		snprintf(field, sizeof(field), "ties[%zu]", i);
		if (!cJSON_IsObject(e))
			return fail(c, field, "expected {\"org\":..,\"kind\":..}", NULL);
		const cJSON *k;
		cJSON_ArrayForEach(k, e)
		{
			if (strcmp(k->string, "org") != 0 && strcmp(k->string, "kind") != 0) {
				snprintf(field, sizeof(field), "ties[%zu].%.32s", i, k->string);
				return fail(c, field, "unknown field", NULL);
			}
		}
		snprintf(field, sizeof(field), "ties[%zu].org", i);
		const char *why =
		    id_get(cJSON_GetObjectItemCaseSensitive(e, "org"), org, sizeof(org));
		if (why)
			return fail(c, field, "%s", why);
		snprintf(field, sizeof(field), "ties[%zu].kind", i);
		why = text_get(cJSON_GetObjectItemCaseSensitive(e, "kind"), 32, 0, kind,
		               sizeof(kind));
		int ki = why ? -1 : pick(kind, tie_ids, tie_labels, 3);
		if (ki < 0)
			return fail(c, field,
			            "expected affiliation, former or relative (任职, 曾任职, 亲属)",
			            NULL);
		const cJSON *o;
		cJSON_ArrayForEach(o, arr)
		{
			if (strcmp(cJSON_GetObjectItemCaseSensitive(o, "org")->valuestring, org) ==
			    0) {
				snprintf(field, sizeof(field), "ties[%zu].org", i);
				return fail(c, field, "\"%s\" is listed twice", org);
			}
		}
		cJSON *t = cJSON_CreateObject();
		if (!t || !cJSON_AddItemToArray(arr, t) ||
		    !cJSON_AddStringToObject(t, "org", org) ||
		    !cJSON_AddStringToObject(t, "kind", tie_ids[ki]))
			return -ENOMEM;
		i++;
	}
	return 0;
}

/* [["2026-12-01","2026-12-05"], ...]: inclusive ranges; "2026-12-09" alone is one day. */
static int away_get(struct chk *c, const cJSON *v, cJSON *out)
{
	char field[64], d[2][16];
	if (!cJSON_IsArray(v))
		return fail(c, "away", "expected an array of [\"YYYY-MM-DD\",\"YYYY-MM-DD\"]",
		            NULL);
	if (cJSON_GetArraySize(v) > REGISTERS_LIST_MAX)
		return fail(c, "away", "more than 64 ranges", NULL);
	cJSON *arr = cJSON_AddArrayToObject(out, "away");
	size_t i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, v)
	{
		snprintf(field, sizeof(field), "away[%zu]", i++);
		const cJSON *a = e, *b = e;
		if (cJSON_IsArray(e)) {
			if (cJSON_GetArraySize(e) != 2)
				return fail(c, field, "expected [from, to]", NULL);
			a = cJSON_GetArrayItem(e, 0);
			b = cJSON_GetArrayItem(e, 1);
		}
		const cJSON *ends[2] = {a, b};
		for (int k = 0; k < 2; k++)
			if (text_get(ends[k], 10, 0, d[k], sizeof(d[k])) ||
			    !registers_date_valid(d[k]))
				return fail(c, field, "expected dates YYYY-MM-DD", NULL);
		if (strcmp(d[0], d[1]) > 0)
			return fail(c, field, "from (%s) is after to", d[0]);
		cJSON *r = cJSON_CreateArray();
		if (!r || !cJSON_AddItemToArray(arr, r) ||
		    !cJSON_AddItemToArray(r, cJSON_CreateString(d[0])) ||
		    !cJSON_AddItemToArray(r, cJSON_CreateString(d[1])))
			return -ENOMEM;
	}
	return 0;
}

static int check_fields(enum registers_kind k, const cJSON *in, cJSON *out, struct chk *c,
                        const struct inspect_labels *risk)
{
	char buf[REGISTERS_BASIS_MAX + 1];
	const cJSON *f;
	cJSON_ArrayForEach(f, in)
	{
		int known = strcmp(f->string, "version") == 0;
		for (size_t i = 0; i < fields[k].n && !known; i++)
			known = strcmp(f->string, fields[k].f[i]) == 0;
		char name[64];
		snprintf(name, sizeof(name), "%.60s", f->string);
		if (!known)
			return fail(c, name, "unknown field", NULL);
		/* Given twice: JSON parsers differ on which one wins. */
		for (const cJSON *g = in->child; g != f; g = g->next)
			if (strcmp(g->string, f->string) == 0)
				return fail(c, name, "given twice", NULL);
	}
	for (size_t i = 0; i < fields[k].n; i++) {
		const char *name = fields[k].f[i];
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);
		/* Optional: the lists (empty) and an inspector's department. */
		int list = strcmp(name, "occupations") == 0 || strcmp(name, "sites") == 0 ||
		           strcmp(name, "ties") == 0 || strcmp(name, "away") == 0;
		if (!v && !list && strcmp(name, "department") != 0)
			return fail(c, name, "missing", NULL);
		const char *why = NULL;
		int rc = 0;
		if (i == 0) {
			why = id_get(v, buf, sizeof(buf));
		} else if (strcmp(name, "city") == 0) {
			why = text_get(v, REGISTERS_CITY_MAX, 0, buf, sizeof(buf));
		} else if (strcmp(name, "level") == 0) {
			why = text_get(v, 32, 0, buf, sizeof(buf));
			int l = why ? -1 : pick(buf, level_ids, level_labels, 2);
			if (l < 0)
				return fail(c, name, "expected city or province (市级, 省级)",
				            NULL);
			snprintf(buf, sizeof(buf), "%s", level_ids[l]);
		} else if (strcmp(name, "risk") == 0) {
			why = text_get(v, 63, 0, buf, sizeof(buf));
			int r = why || !risk ? -1 : inspect_labels_lookup(risk, buf);
			if (r < 0) {
				char ids[600] = "";
				for (size_t g = 0; risk && g < risk->n; g++)
					snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids),
					         "%s%s", g ? ", " : "", risk->id[g]);
				return fail(c, name,
				            "expected a risk grade of [inspection] risk_grades: %s",
				            ids);
			}
			snprintf(buf, sizeof(buf), "%s", risk->id[r]);
		} else if (strcmp(name, "occupations") == 0 || strcmp(name, "sites") == 0) {
			cJSON empty = {.type = cJSON_Array};
			rc = list_get(c, name, v ? v : &empty,
			              name[0] == 's' ? REGISTERS_SITES_MAX : REGISTERS_LIST_MAX,
			              name[0] == 's', out);
			if (rc)
				return rc;
			continue;
		} else if (strcmp(name, "ties") == 0 || strcmp(name, "away") == 0) {
			cJSON empty = {.type = cJSON_Array};
			rc = name[0] == 't' ? ties_get(c, v ? v : &empty, out)
			                    : away_get(c, v ? v : &empty, out);
			if (rc)
				return rc;
			continue;
		} else if (strcmp(name, "department") == 0) {
			cJSON none = {.type = cJSON_String, .valuestring = ""};
			why = text_get(v ? v : &none, REGISTERS_TEXT_MAX, 1, buf, sizeof(buf));
		} else {
			why = text_get(v,
			               strcmp(name, "basis") == 0 ? REGISTERS_BASIS_MAX
			                                          : REGISTERS_TEXT_MAX,
			               0, buf, sizeof(buf));
		}
		if (why)
			return fail(c, name, "%s", why);
		if (!cJSON_AddStringToObject(out, name, buf))
			return -ENOMEM;
	}
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(in, "version");
	if (ver) {
		if (!cJSON_IsNumber(ver) || ver->valuedouble < 0 || ver->valuedouble > 9e15 ||
		    ver->valuedouble != (double)(int64_t)ver->valuedouble)
			return fail(c, "version", "expected a whole number (the row's version)",
			            NULL);
		if (!cJSON_AddNumberToObject(out, "version", ver->valuedouble))
			return -ENOMEM;
	}
	return 0;
}

int registers_check(enum registers_kind k, const cJSON *in, const struct inspect_labels *risk,
                    cJSON **out, char *field, size_t fieldlen, char *err, size_t errlen)
{
	*out = NULL;
	struct chk c = {field, fieldlen, err, errlen};
	field[0] = err[0] = '\0';
	if (!cJSON_IsObject(in))
		return fail(&c, "", "expected a JSON object", NULL);
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	int rc = check_fields(k, in, o, &c, risk);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (rc) {
		cJSON_Delete(o);
		return rc;
	}
	*out = o;
	return 0;
}

/* --- rows in the database ---------------------------------------------------------------- */

static const char *const select_sql[REGISTERS_N] = {
    "SELECT org, name, city, level, occupations, risk, sites, version FROM targets",
    "SELECT id, name, city, department, ties, away, version FROM inspectors",
    "SELECT id, title, basis, method, version FROM items"};
static const char *const upsert_sql[REGISTERS_N] = {
    "INSERT OR REPLACE INTO targets(org, name, city, level, occupations, risk, sites, version)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    "INSERT OR REPLACE INTO inspectors(id, name, city, department, ties, away, version)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    "INSERT OR REPLACE INTO items(id, title, basis, method, version) VALUES(?1, ?2, ?3, ?4, ?5)"};
static const char *const delete_sql[REGISTERS_N] = {"DELETE FROM targets WHERE org = ?1",
                                                    "DELETE FROM inspectors WHERE id = ?1",
                                                    "DELETE FROM items WHERE id = ?1"};

static int is_json_column(const char *name)
{
	return strcmp(name, "occupations") == 0 || strcmp(name, "sites") == 0 ||
	       strcmp(name, "ties") == 0 || strcmp(name, "away") == 0;
}

/* The current row of st (select_sql's columns) as canonical JSON; with its version when
 * with_version. */
static cJSON *row_json(enum registers_kind k, sqlite3_stmt *st, int with_version)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; o && i < fields[k].n; i++) {
		const char *v = (const char *)sqlite3_column_text(st, (int)i);
		cJSON *item = is_json_column(fields[k].f[i]) ? cJSON_Parse(v ? v : "[]")
		                                             : cJSON_CreateString(v ? v : "");
		if (!item || !cJSON_AddItemToObject(o, fields[k].f[i], item)) {
			cJSON_Delete(item);
			cJSON_Delete(o);
			return NULL;
		}
	}
	if (o && with_version &&
	    !cJSON_AddNumberToObject(o, "version",
	                             (double)sqlite3_column_int64(st, (int)fields[k].n))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* *st prepared from sql once, then reset for each use: a whole register's import runs each
 * statement 100,000 times in one transaction, and preparing them each time was a third of
 * its time. The caller finalizes *st. */
static int stmt_use(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	if (!*st)
		return inspect_prepare(db, sql, st);
	sqlite3_reset(*st);
	sqlite3_clear_bindings(*st);
	return 0;
}

/* The statements of one write transaction (finalized by stmts_close). */
struct stmts {
	sqlite3_stmt *get, *write, *change;
};

static void stmts_close(struct stmts *s)
{
	sqlite3_finalize(s->get);
	sqlite3_finalize(s->write);
	sqlite3_finalize(s->change);
}

/* The stored row of key: 0 with *out (and its version), -ENOENT, -EIO/-ENOMEM. */
static int row_get(sqlite3 *db, struct stmts *ss, enum registers_kind k, const char *key,
                   cJSON **out, int64_t *version)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "%s WHERE %s = ?1", select_sql[k], registers_key_names[k]);
	int rc = stmt_use(db, sql, &ss->get);
	if (rc)
		return rc;
	sqlite3_stmt *st = ss->get;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	*out = NULL;
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		*version = sqlite3_column_int64(st, (int)fields[k].n);
		rc = (*out = row_json(k, st, 1)) ? 0 : -ENOMEM;
	} else {
		rc = s == SQLITE_DONE ? -ENOENT : -EIO;
	}
	sqlite3_reset(st);
	return rc;
}

int registers_version(sqlite3 *db, int64_t *version)
{
	sqlite3_stmt *st;
	int rc = inspect_prepare(db, "SELECT COALESCE(MAX(version), 0) FROM register_changes", &st);
	if (rc)
		return rc;
	rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -EIO;
	*version = rc ? 0 : sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

/* The row's JSON without its version: what is compared and hashed. */
static char *print_bare(const cJSON *row)
{
	cJSON *copy = cJSON_Duplicate(row, 1);
	if (!copy)
		return NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(copy, "version");
	char *s = cJSON_PrintUnformatted(copy);
	cJSON_Delete(copy);
	return s;
}

static int change_add(sqlite3 *db, struct stmts *ss, int64_t version, int64_t at_ms,
                      const char *actor, enum registers_kind k, const char *key, const char *action,
                      const char *before, const char *after)
{
	int rc = stmt_use(db,
	                  "INSERT INTO register_changes(version, at_ms, actor, register, key,"
	                  " action, before, after) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	                  &ss->change);
	if (rc)
		return rc;
	sqlite3_stmt *st = ss->change;
	sqlite3_bind_int64(st, 1, version);
	sqlite3_bind_int64(st, 2, at_ms);
	sqlite3_bind_text(st, 3, actor ? actor : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, registers_names[k], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, action, -1, SQLITE_STATIC);
	if (before)
		sqlite3_bind_text(st, 7, before, -1, SQLITE_STATIC);
	if (after)
		sqlite3_bind_text(st, 8, after, -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	if (rc)
		log_error("event=register_change_failed error=\"%s\"", sqlite3_errmsg(db));
	sqlite3_reset(st);
	return rc;
}

static int row_write(sqlite3 *db, struct stmts *ss, enum registers_kind k, const cJSON *row,
                     int64_t version)
{
	int rc = stmt_use(db, upsert_sql[k], &ss->write);
	if (rc)
		return rc;
	sqlite3_stmt *st = ss->write;
	char *texts[8] = {0};
	for (size_t i = 0; i < fields[k].n; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, fields[k].f[i]);
		if (cJSON_IsString(v)) {
			sqlite3_bind_text(st, (int)i + 1, v->valuestring, -1, SQLITE_STATIC);
		} else {
			texts[i] = cJSON_PrintUnformatted(v);
			if (!texts[i]) {
				rc = -ENOMEM;
				break;
			}
			sqlite3_bind_text(st, (int)i + 1, texts[i], -1, SQLITE_STATIC);
		}
	}
	sqlite3_bind_int64(st, (int)fields[k].n + 1, version);
	if (!rc && sqlite3_step(st) != SQLITE_DONE) {
		log_error("event=register_write_failed error=\"%s\"", sqlite3_errmsg(db));
		rc = -EIO;
	}
	sqlite3_reset(st); /* the texts bound are freed next */
	for (size_t i = 0; i < 8; i++)
		free(texts[i]);
	return rc;
}

static const char *row_city(const cJSON *row)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(row, "city");
	return cJSON_IsString(c) ? c->valuestring : "";
}

static const char *row_key(enum registers_kind k, const cJSON *row)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(row, registers_key_names[k]);
	return cJSON_IsString(c) ? c->valuestring : "";
}

/* --- jobs -------------------------------------------------------------------------------- */

static int put_fail(struct registers_put *p, int rc, long index, const char *field,
                    const char *what)
{
	p->index = index;
	snprintf(p->field, sizeof(p->field), "%s", field);
	snprintf(p->err, sizeof(p->err), "%s", what);
	return rc;
}

struct keyed {
	const char *key;
	long index;
};

static int keyed_cmp(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* The same key twice in one request: which one would win is not the writer's intent. Sorted,
 * not compared pairwise, so a province's whole register stays n log n. */
static int check_keys(struct registers_put *p)
{
	size_t n = (size_t)cJSON_GetArraySize(p->rows);
	if (n < 2)
		return 0;
	struct keyed *k = malloc(n * sizeof(*k));
	if (!k)
		return -ENOMEM;
	long i = 0;
	const cJSON *row;
	cJSON_ArrayForEach(row, p->rows)
	{
		k[i] = (struct keyed){row_key(p->kind, row), i};
		i++;
	}
	qsort(k, n, sizeof(*k), keyed_cmp);
	long first = -1, dup = -1;
	const char *key = NULL;
	for (size_t j = 1; j < n; j++)
		if (strcmp(k[j].key, k[j - 1].key) == 0 && (dup < 0 || k[j].index < dup)) {
			dup = k[j].index; /* the group's second row: k[j - 1] is its first */
			first = k[j - 1].index;
			key = k[j].key;
		}
	int rc = 0;
	if (dup >= 0) {
		char what[96];
		snprintf(what, sizeof(what), "\"%.60s\" already at [%ld]", key, first);
		rc = put_fail(p, -EINVAL, dup, registers_key_names[p->kind], what);
	}
	free(k);
	return rc;
}

static int put_rows(sqlite3 *db, struct registers_put *p, struct stmts *ss)
{
	enum registers_kind k = p->kind;
	const char *key_name = registers_key_names[k];
	int64_t version;
	int rc = registers_version(db, &version);
	if (rc)
		return rc;
	if ((rc = check_keys(p)) != 0)
		return rc;
	p->created = p->updated = p->unchanged = 0;
	cJSON_Delete(p->changed);
	if (!(p->changed = cJSON_CreateArray()))
		return -ENOMEM;
	long i = -1;
	const cJSON *row;
	cJSON_ArrayForEach(row, p->rows)
	{
		i++;
		const char *key = row_key(k, row);
		if (p->scope_city && (k == REGISTERS_ITEMS || strcmp(row_city(row), p->scope_city)))
			return put_fail(p, -EACCES, i, k == REGISTERS_ITEMS ? key_name : "city",
			                k == REGISTERS_ITEMS ? "items are the province's register"
			                                     : "must be your own city");
		cJSON *old = NULL;
		int64_t old_version = 0;
		rc = row_get(db, ss, k, key, &old, &old_version);
		if (rc && rc != -ENOENT)
			return rc;
		if (old && p->scope_city && strcmp(row_city(old), p->scope_city)) {
			cJSON_Delete(old);
			return put_fail(p, -EACCES, i, key_name, "not in your city's register");
		}
		const cJSON *want = cJSON_GetObjectItemCaseSensitive(row, "version");
		if (want && (int64_t)want->valuedouble != old_version) {
			char what[128];
			snprintf(what, sizeof(what), "the row is at version %lld, not %lld",
			         (long long)old_version, (long long)want->valuedouble);
			cJSON_Delete(old);
			return put_fail(p, -ESTALE, i, "version", what);
		}
		char *after = print_bare(row), *before = old ? cJSON_PrintUnformatted(old) : NULL;
		char *old_bare = old ? print_bare(old) : NULL;
		cJSON_Delete(old);
		if (!after || (old && (!before || !old_bare))) {
			rc = -ENOMEM;
		} else if (old && strcmp(after, old_bare) == 0) {
			p->unchanged++; /* a re-import of the same register changes nothing */
		} else {
			version++;
			cJSON *ver = cJSON_Parse(after);
			char *after_v = NULL;
			if (ver && cJSON_AddNumberToObject(ver, "version", (double)version))
				after_v = cJSON_PrintUnformatted(ver);
			cJSON_Delete(ver);
			const char *action = old ? "update" : "create";
			rc = !after_v ? -ENOMEM : row_write(db, ss, k, row, version);
			if (!rc)
				rc = change_add(db, ss, version, p->now_ms, p->actor, k, key,
				                action, before, after_v);
			free(after_v);
			cJSON *ch = cJSON_CreateObject();
			if (!rc && (!ch || !cJSON_AddItemToArray(p->changed, ch) ||
			            !cJSON_AddStringToObject(ch, "key", key) ||
			            !cJSON_AddStringToObject(ch, "action", action) ||
			            !cJSON_AddNumberToObject(ch, "version", (double)version)))
				rc = -ENOMEM;
			if (old)
				p->updated++;
			else
				p->created++;
		}
		free(after);
		free(before);
		free(old_bare);
		if (rc)
			return rc;
	}
	p->version = version;
	return 0;
}

static int put_txn(sqlite3 *db, void *arg)
{
	struct stmts ss = {0};
	int rc = put_rows(db, arg, &ss);
	stmts_close(&ss);
	return rc;
}

int registers_put_run(sqlite3 *db, void *arg)
{
	struct registers_put *p = arg;
	p->index = -1;
	p->field[0] = p->err[0] = '\0';
	if (!cJSON_IsArray(p->rows) || cJSON_GetArraySize(p->rows) > REGISTERS_BATCH_MAX)
		return put_fail(p, -EINVAL, -1, "", "expected an array of 1-100000 rows");
	return inspect_txn(db, put_txn, p);
}

static int del_row(sqlite3 *db, struct registers_del *d, struct stmts *ss)
{
	cJSON *old = NULL;
	int64_t old_version;
	int rc = row_get(db, ss, d->kind, d->key, &old, &old_version);
	if (rc)
		return rc;
	if (d->scope_city &&
	    (d->kind == REGISTERS_ITEMS || strcmp(row_city(old), d->scope_city) != 0)) {
		cJSON_Delete(old);
		return -ENOENT; /* never say it exists elsewhere */
	}
	free(d->before);
	d->before = cJSON_PrintUnformatted(old);
	cJSON_Delete(old);
	if (!d->before)
		return -ENOMEM;
	if ((rc = registers_version(db, &d->version)) != 0)
		return rc;
	d->version++;
	sqlite3_stmt *st;
	if ((rc = inspect_prepare(db, delete_sql[d->kind], &st)) != 0)
		return rc;
	sqlite3_bind_text(st, 1, d->key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	if (!rc)
		rc = change_add(db, ss, d->version, d->now_ms, d->actor, d->kind, d->key, "delete",
		                d->before, NULL);
	return rc;
}

static int del_txn(sqlite3 *db, void *arg)
{
	struct stmts ss = {0};
	int rc = del_row(db, arg, &ss);
	stmts_close(&ss);
	return rc;
}

int registers_del_run(sqlite3 *db, void *arg)
{
	return inspect_txn(db, del_txn, arg);
}

/* The rows as a JSON array text, sorted by key; city NULL = all. */
/* The rows as a JSON array text, sorted by key; city NULL = all. Written straight from the
 * columns (the list ones are stored as canonical JSON text already): a cJSON tree of a
 * province's 100,000 targets cost 170 MiB and half a second, the text is 18 MB. The text is
 * what cJSON_PrintUnformatted of row_json gives (stored text has no control characters, so
 * both escape only '"' and '\\'). */
#define ROWS_MAX_BYTES (1u << 30)
static int rows_print(sqlite3 *db, enum registers_kind k, const char *city, int with_version,
                      char **out, size_t *n)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "%s%s ORDER BY %s", select_sql[k],
	         city && k != REGISTERS_ITEMS ? " WHERE city = ?1" : "", registers_key_names[k]);
	sqlite3_stmt *st;
	int rc = inspect_prepare(db, sql, &st);
	if (rc)
		return rc;
	if (city && k != REGISTERS_ITEMS)
		sqlite3_bind_text(st, 1, city, -1, SQLITE_STATIC);
	struct vw_buf b;
	vw_buf_init(&b, ROWS_MAX_BYTES);
	vw_buf_puts(&b, "[");
	size_t count = 0;
	int s = SQLITE_ROW;
	while (!b.err && (s = sqlite3_step(st)) == SQLITE_ROW) {
		vw_buf_puts(&b, count++ ? ",{" : "{");
		for (size_t i = 0; i < fields[k].n; i++) {
			const char *v = (const char *)sqlite3_column_text(st, (int)i);
			vw_buf_printf(&b, "%s\"%s\":", i ? "," : "", fields[k].f[i]);
			if (is_json_column(fields[k].f[i]))
				vw_buf_puts(&b, v ? v : "[]");
			else
				vw_buf_json_str(&b, v ? v : "");
		}
		if (with_version)
			vw_buf_printf(&b, ",\"version\":%lld",
			              (long long)sqlite3_column_int64(st, (int)fields[k].n));
		vw_buf_puts(&b, "}");
	}
	vw_buf_puts(&b, "]");
	if (b.err)
		rc = b.err;
	else if (s != SQLITE_DONE)
		rc = -EIO;
	sqlite3_finalize(st);
	vw_buf_cstr(&b); /* NUL-terminates */
	if (!rc && (b.err || !b.data))
		rc = b.err ? b.err : -ENOMEM;
	if (!rc) {
		*out = b.data; /* the caller's now */
		b.data = NULL;
	}
	vw_buf_free(&b);
	if (n)
		*n = count;
	return rc;
}

int registers_list_run(sqlite3 *db, void *arg)
{
	struct registers_list *l = arg;
	free(l->json);
	l->json = NULL;
	int rc = registers_version(db, &l->version);
	return rc ? rc : rows_print(db, l->kind, l->city, 1, &l->json, &l->n);
}

int registers_changes_run(sqlite3 *db, void *arg)
{
	struct registers_changes *c = arg;
	free(c->json);
	c->json = NULL;
	c->next = c->after;
	c->more = 0;
	if (c->limit < 1 || c->limit > 1000)
		c->limit = 1000;
	sqlite3_stmt *st;
	int rc = inspect_prepare(
	    db,
	    "SELECT version, at_ms, actor, register, key, action, before, after FROM "
	    "register_changes WHERE version > ?1 AND (?2 IS NULL OR register = ?2) AND (?3 IS "
	    "NULL OR register = 'items' OR json_extract(before, '$.city') = ?3 OR "
	    "json_extract(after, '$.city') = ?3) ORDER BY version LIMIT ?4",
	    &st);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, c->after);
	if (c->kind >= 0 && c->kind < REGISTERS_N)
		sqlite3_bind_text(st, 2, registers_names[c->kind], -1, SQLITE_STATIC);
	if (c->scope_city)
		sqlite3_bind_text(st, 3, c->scope_city, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, c->limit + 1);
	cJSON *arr = cJSON_CreateArray();
	int s, count = 0;
	while (arr && (s = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == c->limit) {
			c->more = 1;
			break;
		}
		cJSON *o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			rc = -ENOMEM;
			break;
		}
		int64_t v = sqlite3_column_int64(st, 0);
		char at[VW_ISO_LEN];
		vw_time_iso(sqlite3_column_int64(st, 1), at);
		cJSON_AddNumberToObject(o, "version", (double)v);
		cJSON_AddStringToObject(o, "at", at);
		for (int col = 2; col <= 5; col++) {
			const char *t = (const char *)sqlite3_column_text(st, col);
			cJSON_AddStringToObject(o, sqlite3_column_name(st, col), t ? t : "");
		}
		for (int col = 6; col <= 7; col++) {
			const char *t = (const char *)sqlite3_column_text(st, col);
			cJSON_AddItemToObject(o, sqlite3_column_name(st, col),
			                      t ? cJSON_Parse(t) : cJSON_CreateNull());
		}
		c->next = v;
		count++;
	}
	if (!arr)
		rc = -ENOMEM;
	else if (!rc && s != SQLITE_DONE && s != SQLITE_ROW)
		rc = -EIO;
	sqlite3_finalize(st);
	if (!rc && !(c->json = cJSON_PrintUnformatted(arr)))
		rc = -ENOMEM;
	cJSON_Delete(arr);
	return rc;
}

int registers_snapshot(sqlite3 *db, const char *city, char **targets_json, char **inspectors_json,
                       char **items_json, int64_t *version)
{
	*targets_json = *inspectors_json = *items_json = NULL;
	/* One read transaction: the three lists and the version are one state of the registers. */
	int own = sqlite3_get_autocommit(db);
	if (own && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	int rc = registers_version(db, version);
	if (!rc)
		rc = rows_print(db, REGISTERS_TARGETS, city, 0, targets_json, NULL);
	if (!rc)
		rc = rows_print(db, REGISTERS_INSPECTORS, city, 0, inspectors_json, NULL);
	if (!rc)
		rc = rows_print(db, REGISTERS_ITEMS, NULL, 0, items_json, NULL);
	if (own)
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc) {
		free(*targets_json);
		free(*inspectors_json);
		free(*items_json);
		*targets_json = *inspectors_json = *items_json = NULL;
	}
	return rc;
}
