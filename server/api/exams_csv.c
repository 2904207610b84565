#include "exams_csv.h"

#include <csv.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "utf8.h"

const char *const exams_field_names[EXAMS_F_COUNT] = {
    "org", "site", "id", "occupation", "level", "start", "end", "rooms", "candidates"};

/* The column names of a 认定计划 as the bureau's template writes them. */
static const char *const zh_names[EXAMS_F_COUNT] = {"机构编号",   "考点", "场次编号",
                                                    "职业(工种)", "等级", "开始时间",
                                                    "结束时间",   "考场", "计划人数"};

/* --- times ------------------------------------------------------------------------------ */

static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return 0;
}

int exams_time_parse(const char *s, int64_t *ms)
{
	int y, mo, d, h, mi, sec = 0;
	const char *p = s;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != 'T' && *p != ' '))
		return -EINVAL;
	int rfc = *p == 'T';
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
		return -EINVAL;
	if (*p == ':') {
		p++;
		if (digits(&p, 2, &sec))
			return -EINVAL;
	}
	int64_t offset_ms;
	if (*p == '\0' && !rfc) {
		offset_ms = EXAMS_TZ_OFFSET_MS; /* a timetable's local time */
	} else if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
		offset_ms = 0;
	} else if ((p[0] == '+' || p[0] == '-') && strlen(p) == 6 && p[3] == ':') {
		int oh, om;
		const char *q = p + 1;
		if (digits(&q, 2, &oh) || *q++ != ':' || digits(&q, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
		offset_ms = ((int64_t)oh * 60 + om) * 60000 * (p[0] == '-' ? -1 : 1);
	} else {
		return -EINVAL;
	}
	if (y < 2000 || y > 2200 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 59)
		return -EINVAL;
	struct tm tm = {.tm_year = y - 1900,
	                .tm_mon = mo - 1,
	                .tm_mday = d,
	                .tm_hour = h,
	                .tm_min = mi,
	                .tm_sec = sec};
	time_t t = timegm(&tm);
	struct tm back;
	gmtime_r(&t, &back);
	if (back.tm_mday != d) /* 31 Feb, normalised into March by timegm */
		return -EINVAL;
	*ms = (int64_t)t * 1000 - offset_ms;
	return 0;
}

void exams_time_local(int64_t ms, char out[EXAMS_LOCAL_LEN])
{
	int64_t local = ms + EXAMS_TZ_OFFSET_MS;
	time_t t = (time_t)(local >= 0 ? local / 1000 : (local - 999) / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char txt[96]; /* room for what the compiler cannot rule out (a five-digit year) */
	snprintf(txt, sizeof(txt), "%04d-%02d-%02dT%02d:%02d:%02d+08:00", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	snprintf(out, EXAMS_LOCAL_LEN, "%.25s", txt);
}

/* --- fields ----------------------------------------------------------------------------- */

/* Text people typed: valid UTF-8, no control characters (they break logs and CSV), and
 * within the column's bound. */
static const char *text_problem(const char *v, size_t max)
{
	size_t n = strlen(v);
	if (n == 0)
		return "empty";
	if (n > max)
		return "too long";
	if (!vw_utf8_valid(v))
		return "not valid UTF-8";
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return "holds a control character";
	return NULL;
}

static void trim_copy(char *dst, size_t cap, const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* "A101, A102" or "A101，A102" (a full-width comma, as Chinese spreadsheets type it) →
 * "A101,A102"; "*" alone = every room. Each room is 1-64 bytes, listed once. */
static const char *rooms_set(struct exams_in *e, const char *v)
{
	char out[sizeof(e->rooms)];
	size_t len = 0, count = 0;
	const char *p = v;
	out[0] = '\0';
	for (;;) {
		const char *comma = p, *next = NULL;
		while (*comma && *comma != ',' && strncmp(comma, "\xef\xbc\x8c", 3) != 0)
			comma++;
		if (*comma == ',')
			next = comma + 1;
		else if (*comma)
			next = comma + 3;
		char room[128];
		if ((size_t)(comma - p) >= sizeof(room))
			return "a room name is longer than 64 bytes";
		trim_copy(room, sizeof(room), p, (size_t)(comma - p));
		if (!room[0])
			return "an empty room name (two commas, or a comma at an end)";
		const char *why = text_problem(room, 64);
		if (why)
			return "a room name is too long or holds a control character or invalid "
			       "UTF-8";
		if (strcmp(room, "*") == 0 && (count || next))
			return "\"*\" (every room) stands alone";
		/* Listed once: a room counted twice would weigh double in the coverage mean. */
		for (const char *q = out; *q;) {
			size_t k = strcspn(q, ",");
			if (k == strlen(room) && strncmp(q, room, k) == 0)
				return "a room is listed twice";
			q += k + (q[k] == ',');
		}
		size_t rl = strlen(room);
		if (len + rl + 2 > sizeof(out))
			return "the room list is longer than 1023 bytes";
		if (count++)
			out[len++] = ',';
		memcpy(out + len, room, rl + 1);
		len += rl;
		if (!next)
			break;
		p = next;
	}
	memcpy(e->rooms, out, len + 1);
	return NULL;
}

/* v into dst, checked to fit already (vw_conf_id_valid or text_problem bounds it): a plain
 * copy, where snprintf would make GCC warn of a truncation that cannot happen. */
static void copy_field(char *dst, size_t cap, const char *v)
{
	size_t n = strlen(v);
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

const char *exams_in_set(struct exams_in *e, enum exams_field f, const char *raw)
{
	char v[1024];
	trim_copy(v, sizeof(v), raw, strlen(raw));
	if (strlen(raw) >= sizeof(v))
		return "too long";
	const char *why = NULL;
	switch (f) {
	case EXAMS_F_ORG:
	case EXAMS_F_SITE:
		/* The same ids as certificates and tokens carry (vw_conf_id_valid). */
		if (!vw_conf_id_valid(v))
			return "expected an id: 1-63 of [A-Za-z0-9._-]";
		if (f == EXAMS_F_ORG)
			copy_field(e->org, sizeof(e->org), v);
		else
			copy_field(e->site, sizeof(e->site), v);
		break;
	case EXAMS_F_ID:
		if ((why = text_problem(v, sizeof(e->code) - 1)) != NULL)
			return why;
		copy_field(e->code, sizeof(e->code), v);
		break;
	case EXAMS_F_OCCUPATION:
		if ((why = text_problem(v, sizeof(e->occupation) - 1)) != NULL)
			return why;
		copy_field(e->occupation, sizeof(e->occupation), v);
		break;
	case EXAMS_F_LEVEL:
		if ((why = text_problem(v, sizeof(e->level) - 1)) != NULL)
			return why;
		copy_field(e->level, sizeof(e->level), v);
		break;
	case EXAMS_F_START:
	case EXAMS_F_END:
		if (exams_time_parse(v, f == EXAMS_F_START ? &e->start_ms : &e->end_ms))
			return "expected a time: 2026-12-01T09:00:00+08:00 or 2026-12-01 09:00 "
			       "(Asia/Shanghai)";
		break;
	case EXAMS_F_ROOMS:
		if ((why = rooms_set(e, v)) != NULL)
			return why;
		break;
	case EXAMS_F_CANDIDATES: {
		char *end;
		errno = 0;
		long long n = strtoll(v, &end, 10);
		if (!v[0] || *end || errno || n < 0 || n > EXAMS_MAX_CANDIDATES)
			return "expected a whole number 0-100000";
		e->candidates = n;
		break;
	}
	default:
		return "unknown field";
	}
	e->seen |= 1u << f;
	return NULL;
}

const char *exams_in_check(const struct exams_in *e, enum exams_field *field)
{
	static const enum exams_field required[] = {
	    EXAMS_F_SITE,  EXAMS_F_ID,  EXAMS_F_OCCUPATION, EXAMS_F_LEVEL,
	    EXAMS_F_START, EXAMS_F_END, EXAMS_F_ROOMS};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!(e->seen & (1u << required[i]))) {
			*field = required[i];
			return "missing";
		}
	*field = EXAMS_F_END;
	if (e->end_ms <= e->start_ms)
		return "must be after start";
	if (e->end_ms - e->start_ms > EXAMS_MAX_DURATION_MS)
		return "more than 24 hours after start";
	return NULL;
}

/* --- errors ----------------------------------------------------------------------------- */

void exams_errs_add(struct exams_errs *e, const char *fmt, ...)
{
	e->total++;
	if (e->n >= EXAMS_MAX_ERRORS)
		return;
	char **m = realloc(e->msg, (e->n + 1) * sizeof(*m));
	if (!m)
		return;
	e->msg = m;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if ((e->msg[e->n] = strdup(line)) != NULL)
		e->n++;
}

void exams_errs_free(struct exams_errs *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msg[i]);
	free(e->msg);
	e->msg = NULL;
	e->n = e->total = 0;
}

/* --- CSV -------------------------------------------------------------------------------- */

/* A plan of a province's year is a few thousand rows; this bounds a wrong file. */
#define CSV_MAX_ROWS 100000
#define CSV_MAX_COLS 32

struct csv_state {
	const char *name;
	const char *default_org;
	struct exams_errs *errs;
	unsigned row_line; /* the line the current row began on (exams_csv_feed sets it) */
	int header_done;
	int col_field[CSV_MAX_COLS]; /* column -> enum exams_field, -1 = ignored */
	char col_name[CSV_MAX_COLS][64];
	size_t ncols, col;
	struct exams_in cur;
	int cur_bad;
	struct exams_in *rows;
	size_t nrows, cap;
	/* (org, code) of the rows so far, for the duplicate check: open addressing, each slot
	 * a row index + 1 (0 = free), kept under half full. */
	uint32_t *seen;
	size_t seen_cap;
	int nomem;
};

static uint64_t org_code_hash(const char *org, const char *code)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (const char *p = org; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL; /* a separator no UTF-8 text holds */
	for (const char *p = code; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

/* The slot of (org, code): the row holding it, or the free slot where it would go. */
static uint32_t *seen_slot(struct csv_state *st, const char *org, const char *code)
{
	size_t mask = st->seen_cap - 1, i = (size_t)org_code_hash(org, code) & mask;
	for (;; i = (i + 1) & mask) {
		uint32_t *s = &st->seen[i];
		if (!*s || (strcmp(st->rows[*s - 1].code, code) == 0 &&
		            strcmp(st->rows[*s - 1].org, org) == 0))
			return s;
	}
}

/* Room for one more row in the table: 0, or -ENOMEM. */
static int seen_grow(struct csv_state *st)
{
	if ((st->nrows + 1) * 2 <= st->seen_cap)
		return 0;
	size_t cap = st->seen_cap ? st->seen_cap * 2 : 256;
	uint32_t *old = st->seen, *t = calloc(cap, sizeof(*t));
	if (!t)
		return -ENOMEM;
	size_t oldcap = st->seen_cap;
	st->seen = t;
	st->seen_cap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i])
			*seen_slot(st, st->rows[old[i] - 1].org, st->rows[old[i] - 1].code) =
			    old[i];
	free(old);
	return 0;
}

static int header_field(const char *v)
{
	for (int f = 0; f < EXAMS_F_COUNT; f++)
		if (strcmp(v, exams_field_names[f]) == 0 || strcmp(v, zh_names[f]) == 0)
			return f;
	/* The template's variants: ASCII parentheses or full-width ones. */
	if (strcmp(v, "职业（工种）") == 0 || strcmp(v, "职业") == 0 || strcmp(v, "工种") == 0)
		return EXAMS_F_OCCUPATION;
	return -1;
}

static void on_field(void *data, size_t len, void *ud)
{
	struct csv_state *st = ud;
	char v[1024];
	size_t n = len < sizeof(v) - 1 ? len : sizeof(v) - 1;
	memcpy(v, data ? data : "", data ? n : 0);
	v[data ? n : 0] = '\0';
	size_t col = st->col++;
	if (!st->header_done) {
		/* The BOM a spreadsheet writes before the first column's name. */
		const char *h = v;
		if (col == 0 && strncmp(h, "\xef\xbb\xbf", 3) == 0)
			h += 3;
		char name[64];
		trim_copy(name, sizeof(name), h, strlen(h));
		if (col >= CSV_MAX_COLS) {
			if (col == CSV_MAX_COLS)
				exams_errs_add(st->errs, "%s:%u: column %zu: more than %d columns",
				               st->name, st->row_line, col + 1, CSV_MAX_COLS);
			return;
		}
		snprintf(st->col_name[col], sizeof(st->col_name[col]), "%s", name);
		st->col_field[col] = header_field(name);
		for (size_t k = 0; k < col; k++)
			if (st->col_field[k] >= 0 && st->col_field[k] == st->col_field[col])
				exams_errs_add(st->errs, "%s:%u: %s: the column appears twice",
				               st->name, st->row_line, name);
		st->ncols = col + 1;
		return;
	}
	if (col >= st->ncols) {
		if (col == st->ncols && (n || len))
			exams_errs_add(st->errs,
			               "%s:%u: column %zu: more fields than the header has",
			               st->name, st->row_line, col + 1);
		st->cur_bad |= n || len;
		return;
	}
	int f = st->col_field[col];
	if (f < 0)
		return;
	if (len >= sizeof(v)) {
		exams_errs_add(st->errs, "%s:%u: %s: too long", st->name, st->row_line,
		               st->col_name[col]);
		st->cur_bad = 1;
		return;
	}
	/* An empty candidates cell is 0 (a plan not yet filled in); other empty cells are
	 * reported as missing by exams_in_check. */
	if (!v[0] && (f == EXAMS_F_CANDIDATES || f == EXAMS_F_ORG))
		return;
	const char *why = exams_in_set(&st->cur, (enum exams_field)f, v);
	if (why && v[0]) {
		exams_errs_add(st->errs, "%s:%u: %s: %s", st->name, st->row_line, st->col_name[col],
		               why);
		st->cur_bad = 1;
	}
}

static const char *col_label(const struct csv_state *st, enum exams_field f)
{
	for (size_t k = 0; k < st->ncols; k++)
		if (st->col_field[k] == (int)f)
			return st->col_name[k];
	return exams_field_names[f];
}

static int has_column(const struct csv_state *st, enum exams_field f)
{
	for (size_t k = 0; k < st->ncols; k++)
		if (st->col_field[k] == (int)f)
			return 1;
	return 0;
}

static void on_row(int c, void *ud)
{
	(void)c;
	struct csv_state *st = ud;
	size_t cols = st->col;
	st->col = 0;
	if (!st->header_done) {
		st->header_done = 1;
		static const enum exams_field need[] = {
		    EXAMS_F_SITE,  EXAMS_F_ID,  EXAMS_F_OCCUPATION, EXAMS_F_LEVEL,
		    EXAMS_F_START, EXAMS_F_END, EXAMS_F_ROOMS};
		for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
			if (!has_column(st, need[i]))
				exams_errs_add(st->errs,
				               "%s:%u: %s: no such column in the header (%s)",
				               st->name, st->row_line, exams_field_names[need[i]],
				               zh_names[need[i]]);
		return;
	}
	if (cols == 1 && !(st->cur.seen)) {
		/* A row of one empty cell: a blank line inside the file. */
		memset(&st->cur, 0, sizeof(st->cur));
		st->cur_bad = 0;
		return;
	}
	struct exams_in *e = &st->cur;
	e->line = st->row_line;
	if (!(e->seen & (1u << EXAMS_F_ORG)) && st->default_org && st->default_org[0])
		exams_in_set(e, EXAMS_F_ORG, st->default_org);
	enum exams_field bad;
	const char *why = exams_in_check(e, &bad);
	if (why && !st->cur_bad) {
		exams_errs_add(st->errs, "%s:%u: %s: %s", st->name, st->row_line,
		               col_label(st, bad), why);
		st->cur_bad = 1;
	}
	if (!(e->seen & (1u << EXAMS_F_ORG)) && !st->cur_bad) {
		exams_errs_add(st->errs, "%s:%u: %s: missing (or give --org)", st->name,
		               st->row_line, col_label(st, EXAMS_F_ORG));
		st->cur_bad = 1;
	}
	/* The same session twice in one plan: the second would fail the whole import later
	 * on the store's UNIQUE(org, code) with a less helpful message.
	 * A hash of the rows so far, not a scan of them: 100,000 rows stay linear. */
	uint32_t *slot = NULL;
	if (!st->cur_bad && st->nrows < CSV_MAX_ROWS) {
		if (seen_grow(st)) {
			st->nomem = 1;
			st->cur_bad = 1;
		} else if (*(slot = seen_slot(st, e->org, e->code))) {
			exams_errs_add(st->errs, "%s:%u: %s: \"%s\" already on line %u", st->name,
			               st->row_line, col_label(st, EXAMS_F_ID), e->code,
			               st->rows[*slot - 1].line);
			st->cur_bad = 1;
		}
	}
	if (!st->cur_bad) {
		if (st->nrows >= CSV_MAX_ROWS) {
			if (st->nrows == CSV_MAX_ROWS)
				exams_errs_add(st->errs, "%s:%u: more than %d sessions in one file",
				               st->name, st->row_line, CSV_MAX_ROWS);
			st->nrows++;
		} else if (st->nrows == st->cap) {
			size_t cap = st->cap ? st->cap * 2 : 64;
			struct exams_in *r = realloc(st->rows, cap * sizeof(*r));
			if (!r) {
				st->nomem = 1;
			} else {
				st->rows = r;
				st->cap = cap;
			}
		}
		if (st->nrows < st->cap) {
			st->rows[st->nrows++] = *e;
			*slot = (uint32_t)st->nrows;
		}
	}
	memset(&st->cur, 0, sizeof(st->cur));
	st->cur_bad = 0;
}

/* Bytes up to and including the first line end (LF, CRLF or CR), or all of them. */
static size_t strcspn_n(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n')
			return i + 1;
		if (p[i] == '\r')
			return i + 1 < n && p[i + 1] == '\n' ? i + 2 : i + 1;
	}
	return n;
}

int exams_csv_utf8(const char *name, const char *what, const char *data, size_t len,
                   struct exams_errs *errs)
{
	size_t bad_at;
	if (!vw_utf8_check(data, len, &bad_at))
		return 0;
	unsigned line = 1;
	for (size_t i = 0; i < bad_at; i++)
		line +=
		    data[i] == '\n' || (data[i] == '\r' && (i + 1 >= len || data[i + 1] != '\n'));
	exams_errs_add(errs, "%s:%u: not valid UTF-8 (byte %zu): save %s as UTF-8", name, line,
	               bad_at + 1, what);
	return -EINVAL;
}

int exams_csv_feed(const char *name, const char *data, size_t len,
                   void (*field_cb)(void *, size_t, void *), void (*row_cb)(int, void *), void *ud,
                   unsigned *row_line, struct exams_errs *errs)
{
	struct csv_parser p;
	if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL))
		return -ENOMEM;
	/* Fed a line at a time, so the line a row begins on is known: libcsv keeps its state
	 * across calls (a quoted field may span lines), and pstate 0 is its ROW_NOT_BEGUN. */
	size_t off = 0;
	unsigned line = 1;
	int failed = 0;
	*row_line = 1;
	while (off < len && !failed) {
		/* A line ends at LF, CRLF, or a bare CR (libcsv ends rows at each). */
		size_t chunk = strcspn_n(data + off, len - off);
		if (p.pstate == 0)
			*row_line = line;
		if (csv_parse(&p, data + off, chunk, field_cb, row_cb, ud) != chunk) {
			exams_errs_add(errs,
			               "%s:%u: %s (a quote inside an unquoted field, or a "
			               "quoted field not closed)",
			               name, line, csv_strerror(csv_error(&p)));
			failed = 1;
		}
		off += chunk;
		line++;
	}
	if (!failed && csv_fini(&p, field_cb, row_cb, ud)) {
		exams_errs_add(errs, "%s:%u: a quoted field is not closed", name, *row_line);
		failed = 1;
	}
	csv_free(&p);
	return failed ? -EINVAL : 0;
}

int exams_csv_parse(const char *name, const char *data, size_t len, const char *default_org,
                    struct exams_in **out, size_t *n, struct exams_errs *errs)
{
	*out = NULL;
	*n = 0;
	if (exams_csv_utf8(name, "the plan", data, len, errs))
		return -EINVAL;
	struct csv_state st = {.name = name, .default_org = default_org, .errs = errs};
	int rc = exams_csv_feed(name, data, len, on_field, on_row, &st, &st.row_line, errs);
	free(st.seen);
	if (rc == -ENOMEM) {
		free(st.rows);
		return rc;
	}
	if (!st.header_done)
		exams_errs_add(errs, "%s:1: the file is empty (expected a header row)", name);
	if (st.nomem) {
		free(st.rows);
		return -ENOMEM;
	}
	if (errs->total || rc) {
		free(st.rows);
		return -EINVAL;
	}
	if (st.nrows == 0) {
		exams_errs_add(errs, "%s:2: no sessions after the header", name);
		free(st.rows);
		return -EINVAL;
	}
	*out = st.rows;
	*n = st.nrows;
	return 0;
}
