#include "registers_csv.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csvout.h"
#include "utf8.h"

/* The columns of each register: the JSON field, the name a bureau's template writes, and
 * whether a file must have it. Lists are optional: a register without ties is still one. */
struct column {
	const char *field, *zh;
	int required;
};
static const struct column target_cols[] = {{"org", "机构编号", 1},     {"name", "机构名称", 1},
                                            {"city", "所在城市", 1},    {"level", "备案级别", 1},
                                            {"occupations", "职业", 0}, {"risk", "风险等级", 1},
                                            {"sites", "考点", 0}};
static const struct column inspector_cols[] = {{"id", "编号", 1},       {"name", "姓名", 1},
                                               {"city", "所在城市", 1}, {"department", "部门", 0},
                                               {"ties", "关联机构", 0}, {"away", "不可用日期", 0}};
static const struct column item_cols[] = {
    {"id", "编号", 1}, {"title", "事项名称", 1}, {"basis", "依据", 1}, {"method", "方式", 1}};
static const struct {
	const struct column *c;
	size_t n;
} cols[REGISTERS_N] = {{target_cols, 7}, {inspector_cols, 6}, {item_cols, 4}};

#define CSV_MAX_COLS 32
/* A cell: an item's basis (1024 bytes) or 64 ties, with room to spare. */
#define CELL_MAX 8192

#define FW_SEMI "\xef\xbc\x9b"  /* ； */
#define FW_COLON "\xef\xbc\x9a" /* ： */

const char *registers_csv_column_zh(enum registers_kind k, const char *field)
{
	for (size_t i = 0; i < cols[k].n; i++)
		if (strcmp(cols[k].c[i].field, field) == 0)
			return cols[k].c[i].zh;
	return field;
}

struct st {
	enum registers_kind kind;
	const char *name;
	const struct inspect_labels *risk;
	struct exams_errs *errs;
	unsigned row_line; /* the line the current row began on (exams_csv_feed sets it) */
	int header_done;
	int col_of[CSV_MAX_COLS]; /* column -> index into cols[kind], -1 ignored */
	char col_name[CSV_MAX_COLS][64];
	size_t ncols, col;
	cJSON *cur; /* the row's fields as JSON, before registers_check */
	int cur_bad, cur_any;
	cJSON *rows;
	unsigned *lines;
	size_t nrows, cap;
	int nomem;
};

static void trim(const char **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t'))
		(*p)++, (*n)--;
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

/* The next ';'- (or '；'-) separated piece of *p, trimmed, into out; 0 at the end. */
static int next_piece(const char **p, char *out, size_t cap, int *too_long)
{
	if (!*p)
		return 0;
	const char *s = *p, *e = s;
	while (*e && *e != ';' && strncmp(e, FW_SEMI, 3) != 0)
		e++;
	*p = *e ? e + (*e == ';' ? 1 : 3) : NULL;
	size_t n = (size_t)(e - s);
	trim(&s, &n);
	*too_long = n >= cap;
	if (n >= cap)
		n = cap - 1;
	memcpy(out, s, n);
	out[n] = '\0';
	return 1;
}

/* One cell into the row's JSON: lists split, ties and dates away parsed. NULL or what is
 * wrong with the cell's form (its contents are registers_check's). */
static const char *cell_json(const char *field, const char *v, cJSON *row)
{
	int list = strcmp(field, "occupations") == 0 || strcmp(field, "sites") == 0;
	int ties = strcmp(field, "ties") == 0, away = strcmp(field, "away") == 0;
	if (!list && !ties && !away)
		return cJSON_AddStringToObject(row, field, v) ? NULL : "out of memory";
	cJSON *arr = cJSON_AddArrayToObject(row, field);
	if (!arr)
		return "out of memory";
	const char *p = v[0] ? v : NULL;
	char piece[512];
	int too_long, count = 0;
	while (next_piece(&p, piece, sizeof(piece), &too_long)) {
		if (too_long)
			return "an entry is too long";
		if (!piece[0]) {
			if (!p)
				break; /* a ';' at the end */
			return "an empty entry (two ';' in a row)";
		}
		if (++count > REGISTERS_SITES_MAX)
			return "too many entries";
		cJSON *e = NULL;
		if (list) {
			e = cJSON_CreateString(piece);
		} else if (ties) {
			/* org-b:affiliation (or the full-width colon, or a Chinese kind) */
			char *c = strchr(piece, ':'), *fw = strstr(piece, FW_COLON);
			size_t skip = 1;
			if (!c || (fw && fw < c))
				c = fw, skip = 3;
			if (!c)
				return "expected org:kind entries (org-b:affiliation;org-c:亲属)";
			*c = '\0';
			const char *org = piece, *kind = c + skip;
			size_t on = strlen(org), kn = strlen(kind);
			trim(&org, &on);
			trim(&kind, &kn);
			char o[256], k[256];
			snprintf(o, sizeof(o), "%.*s", (int)on, org);
			snprintf(k, sizeof(k), "%.*s", (int)kn, kind);
			e = cJSON_CreateObject();
			if (e && (!cJSON_AddStringToObject(e, "org", o) ||
			          !cJSON_AddStringToObject(e, "kind", k))) {
				cJSON_Delete(e);
				e = NULL;
			}
		} else {
			/* 2026-12-01..2026-12-05, or one day */
			char *dots = strstr(piece, "..");
			e = cJSON_CreateArray();
			if (e && dots) {
				*dots = '\0';
				const char *a = piece, *b = dots + 2;
				size_t an = strlen(a), bn = strlen(b);
				trim(&a, &an);
				trim(&b, &bn);
				char x[64], y[64];
				snprintf(x, sizeof(x), "%.*s", (int)an, a);
				snprintf(y, sizeof(y), "%.*s", (int)bn, b);
				cJSON_AddItemToArray(e, cJSON_CreateString(x));
				cJSON_AddItemToArray(e, cJSON_CreateString(y));
			} else if (e) {
				cJSON_AddItemToArray(e, cJSON_CreateString(piece));
				cJSON_AddItemToArray(e, cJSON_CreateString(piece));
			}
		}
		if (!e || !cJSON_AddItemToArray(arr, e)) {
			cJSON_Delete(e);
			return "out of memory";
		}
	}
	return NULL;
}

static int header_col(enum registers_kind k, const char *v)
{
	for (size_t i = 0; i < cols[k].n; i++)
		if (strcmp(v, cols[k].c[i].field) == 0 || strcmp(v, cols[k].c[i].zh) == 0)
			return (int)i;
	return -1;
}

static void on_field(void *data, size_t len, void *ud)
{
	struct st *st = ud;
	size_t col = st->col++;
	char *v = malloc(CELL_MAX);
	if (!v) {
		st->nomem = 1;
		return;
	}
	size_t n = len < CELL_MAX - 1 ? len : CELL_MAX - 1;
	memcpy(v, data ? data : "", data ? n : 0);
	v[data ? n : 0] = '\0';
	const char *s = v;
	size_t sn = strlen(s);
	if (!st->header_done) {
		if (col == 0 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
			s += 3, sn -= 3; /* the BOM a spreadsheet writes */
		trim(&s, &sn);
		if (col >= CSV_MAX_COLS) {
			if (col == CSV_MAX_COLS)
				exams_errs_add(st->errs, "%s:%u: column %zu: more than %d columns",
				               st->name, st->row_line, col + 1, CSV_MAX_COLS);
		} else {
			snprintf(st->col_name[col], sizeof(st->col_name[col]), "%.*s",
			         (int)(sn < 63 ? sn : 63), s);
			st->col_of[col] = header_col(st->kind, st->col_name[col]);
			for (size_t k = 0; k < col; k++)
				if (st->col_of[k] >= 0 && st->col_of[k] == st->col_of[col])
					exams_errs_add(st->errs,
					               "%s:%u: %s: the column appears twice",
					               st->name, st->row_line, st->col_name[col]);
			st->ncols = col + 1;
		}
		free(v);
		return;
	}
	st->cur_any |= len > 0;
	if (col >= st->ncols) {
		if (col == st->ncols && len)
			exams_errs_add(st->errs,
			               "%s:%u: column %zu: more fields than the header has",
			               st->name, st->row_line, col + 1);
		st->cur_bad |= len > 0;
	} else if (st->col_of[col] >= 0) {
		const struct column *c = &cols[st->kind].c[st->col_of[col]];
		const char *why = NULL;
		trim(&s, &sn);
		/* The export's spreadsheet defence ('=...) read back as it was. */
		if (sn >= 2 && s[0] == '\'' && csvout_is_formula(s + 1))
			s++, sn--;
		if (len >= CELL_MAX)
			why = "too long";
		else if (!vw_utf8_valid(s))
			why = "not valid UTF-8";
		else if (sn || c->required || strcmp(c->field, "department") == 0) {
			char *t = strndup(s, sn);
			why = t ? cell_json(c->field, t, st->cur) : "out of memory";
			free(t);
		}
		if (why) {
			exams_errs_add(st->errs, "%s:%u: %s: %s", st->name, st->row_line,
			               st->col_name[col], why);
			st->cur_bad = 1;
		}
	}
	free(v);
}

/* The header's name of field (as the file wrote it), else the English one. */
static const char *col_label(const struct st *st, const char *field)
{
	char top[64];
	size_t n = strcspn(field, "[.");
	snprintf(top, sizeof(top), "%.*s", (int)(n < 63 ? n : 63), field);
	for (size_t k = 0; k < st->ncols; k++)
		if (st->col_of[k] >= 0 && strcmp(cols[st->kind].c[st->col_of[k]].field, top) == 0)
			return st->col_name[k];
	return top[0] ? field : "row";
}

static void row_reset(struct st *st)
{
	cJSON_Delete(st->cur);
	st->cur = cJSON_CreateObject();
	if (!st->cur)
		st->nomem = 1;
	st->cur_bad = st->cur_any = 0;
}

static void on_row(int c, void *ud)
{
	(void)c;
	struct st *st = ud;
	size_t ncells = st->col;
	st->col = 0;
	if (!st->header_done) {
		st->header_done = 1;
		for (size_t i = 0; i < cols[st->kind].n; i++) {
			int found = 0;
			for (size_t k = 0; k < st->ncols; k++)
				found |= st->col_of[k] == (int)i;
			if (!found && cols[st->kind].c[i].required)
				exams_errs_add(st->errs,
				               "%s:%u: %s: no such column in the header (%s)",
				               st->name, st->row_line, cols[st->kind].c[i].field,
				               cols[st->kind].c[i].zh);
		}
		row_reset(st);
		return;
	}
	if (!st->cur_any && ncells <= 1) { /* a blank line */
		row_reset(st);
		return;
	}
	if (!st->cur_bad && !st->nomem && st->cur) {
		cJSON *out = NULL;
		char field[64], err[256];
		int rc = registers_check(st->kind, st->cur, st->risk, &out, field, sizeof(field),
		                         err, sizeof(err));
		if (rc == -ENOMEM) {
			st->nomem = 1;
		} else if (rc) {
			const char *label = col_label(st, field);
			/* A sub-field (ties[1].kind) after the column's name. */
			if (strcspn(field, "[.") < strlen(field) && label != field)
				exams_errs_add(st->errs, "%s:%u: %s: %s: %s", st->name,
				               st->row_line, label, field, err);
			else
				exams_errs_add(st->errs, "%s:%u: %s: %s", st->name, st->row_line,
				               label, err);
		} else if (st->nrows >= REGISTERS_BATCH_MAX) {
			if (st->nrows++ == REGISTERS_BATCH_MAX)
				exams_errs_add(st->errs, "%s:%u: more than %d rows in one file",
				               st->name, st->row_line, REGISTERS_BATCH_MAX);
			cJSON_Delete(out);
		} else {
			if (st->nrows == st->cap) {
				size_t cap = st->cap ? st->cap * 2 : 64;
				unsigned *l = realloc(st->lines, cap * sizeof(*l));
				if (l) {
					st->lines = l;
					st->cap = cap;
				}
			}
			if (st->nrows < st->cap && cJSON_AddItemToArray(st->rows, out)) {
				st->lines[st->nrows++] = st->row_line;
			} else {
				cJSON_Delete(out);
				st->nomem = 1;
			}
		}
	}
	row_reset(st);
}

/* A row's key and where it was, for the duplicate check (sorted, not compared pairwise: a
 * province's register stays n log n). */
struct keyed {
	const char *key;
	unsigned line;
	size_t index;
};

static int keyed_cmp(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : (x->line > y->line) - (x->line < y->line);
}

static void check_duplicates(struct st *st)
{
	if (st->nrows < 2)
		return;
	struct keyed *k = calloc(st->nrows, sizeof(*k));
	if (!k) {
		st->nomem = 1;
		return;
	}
	size_t i = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, st->rows)
	{
		k[i] = (struct keyed){
		    cJSON_GetObjectItemCaseSensitive(r, registers_key_names[st->kind])->valuestring,
		    st->lines[i], i};
		i++;
	}
	qsort(k, st->nrows, sizeof(*k), keyed_cmp);
	for (i = 1; i < st->nrows; i++)
		if (strcmp(k[i].key, k[i - 1].key) == 0)
			exams_errs_add(st->errs, "%s:%u: %s: \"%s\" already on line %u", st->name,
			               k[i].line, col_label(st, registers_key_names[st->kind]),
			               k[i].key, k[i - 1].line);
	free(k);
}

int registers_csv_parse(enum registers_kind k, const char *name, const char *data, size_t len,
                        const struct inspect_labels *risk, cJSON **rows, unsigned **lines,
                        struct exams_errs *errs)
{
	*rows = NULL;
	*lines = NULL;
	if (exams_csv_utf8(name, "the file", data, len, errs))
		return -EINVAL;
	struct st st = {.kind = k, .name = name, .risk = risk, .errs = errs};
	if (!(st.rows = cJSON_CreateArray()))
		return -ENOMEM;
	int rc = exams_csv_feed(name, data, len, on_field, on_row, &st, &st.row_line, errs);
	cJSON_Delete(st.cur);
	if (rc == -ENOMEM)
		st.nomem = 1;
	if (!st.header_done && rc != -ENOMEM)
		exams_errs_add(errs, "%s:1: the file is empty (expected a header row)", name);
	else if (!errs->total && !rc && st.nrows == 0)
		exams_errs_add(errs, "%s:2: no rows after the header", name);
	if (!st.nomem && !errs->total)
		check_duplicates(&st);
	if (st.nomem || errs->total || rc) {
		cJSON_Delete(st.rows);
		free(st.lines);
		return st.nomem ? -ENOMEM : -EINVAL;
	}
	*rows = st.rows;
	*lines = st.lines;
	return 0;
}

/* --- export ------------------------------------------------------------------------------ */

static void join_field(struct vw_buf *b, const char *field, const cJSON *v, int last)
{
	struct vw_buf cell;
	vw_buf_init(&cell, 1u << 20);
	const cJSON *e;
	int first = 1;
	if (cJSON_IsString(v)) {
		vw_buf_puts(&cell, v->valuestring);
	} else {
		cJSON_ArrayForEach(e, v)
		{
			if (!first)
				vw_buf_puts(&cell, ";");
			first = 0;
			if (strcmp(field, "ties") == 0) {
				vw_buf_printf(
				    &cell, "%s:%s",
				    cJSON_GetObjectItemCaseSensitive(e, "org")->valuestring,
				    cJSON_GetObjectItemCaseSensitive(e, "kind")->valuestring);
			} else if (strcmp(field, "away") == 0) {
				const char *a = cJSON_GetArrayItem(e, 0)->valuestring;
				const char *z = cJSON_GetArrayItem(e, 1)->valuestring;
				if (strcmp(a, z) == 0)
					vw_buf_puts(&cell, a);
				else
					vw_buf_printf(&cell, "%s..%s", a, z);
			} else if (cJSON_IsString(e)) {
				vw_buf_puts(&cell, e->valuestring);
			}
		}
	}
	if (cell.err && !b->err)
		b->err = cell.err;
	csvout_field(b, vw_buf_cstr(&cell), last);
	vw_buf_free(&cell);
}

void registers_csv_write(enum registers_kind k, const cJSON *rows, struct vw_buf *b)
{
	for (size_t i = 0; i < cols[k].n; i++)
		csvout_field(b, cols[k].c[i].field, i + 1 == cols[k].n);
	const cJSON *r;
	cJSON_ArrayForEach(r, rows)
	{
		for (size_t i = 0; i < cols[k].n; i++)
			join_field(b, cols[k].c[i].field,
			           cJSON_GetObjectItemCaseSensitive(r, cols[k].c[i].field),
			           i + 1 == cols[k].n);
	}
}
