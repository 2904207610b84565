/* exams_csv: exam sessions (考试场次) as people enter them — one field's text checked and
 * converted (times in Asia/Shanghai, rooms, ids), shared by the JSON API (exams.c) and the
 * CSV import of an org's 认定计划 (`session import`), whose parser (libcsv) lives here too so
 * the fuzz target links it without the server. Pure: no I/O, no globals; any thread. The
 * caller frees what exams_csv_parse returns (free(*out)) and the errors (exams_errs_free). */
#ifndef VW_EXAMS_CSV_H
#define VW_EXAMS_CSV_H

#include <stddef.h>
#include <stdint.h>

/* Asia/Shanghai: UTC+8 all year (no DST since 1991), so a fixed offset is exact. */
#define EXAMS_TZ_OFFSET_MS (8LL * 3600000)
/* "2026-12-01T09:00:00+08:00" + NUL */
#define EXAMS_LOCAL_LEN 26
/* A session longer than this is a typo (a date instead of an hour), not an exam. */
#define EXAMS_MAX_DURATION_MS (24LL * 3600000)
/* The largest hall a 认定 plan lists is a few hundred seats; this bounds a typo. */
#define EXAMS_MAX_CANDIDATES 100000
/* Every error is reported, up to this many (then "... and N more"). */
#define EXAMS_MAX_ERRORS 50

enum exams_field {
	EXAMS_F_ORG,
	EXAMS_F_SITE,
	EXAMS_F_ID,
	EXAMS_F_OCCUPATION,
	EXAMS_F_LEVEL,
	EXAMS_F_START,
	EXAMS_F_END,
	EXAMS_F_ROOMS,
	EXAMS_F_CANDIDATES,
	EXAMS_F_COUNT
};
/* The English column / JSON field names, by enum exams_field. */
extern const char *const exams_field_names[EXAMS_F_COUNT];

/* One session as entered: every string checked (UTF-8, no control characters, bounded). */
struct exams_in {
	char org[65], site[64], code[65], occupation[129], level[65];
	char rooms[1024]; /* "A101,A102" or "*" */
	int64_t start_ms, end_ms, candidates;
	unsigned seen; /* bit per enum exams_field that was given */
	unsigned line; /* CSV: the line it came from (1 = the header) */
};

/* Sets one field from text; NULL when fine, else what is wrong (static text). */
const char *exams_in_set(struct exams_in *e, enum exams_field f, const char *v);
/* After the fields: the required ones are there and end > start, within the bound.
 * NULL or what is wrong; *field = the field it is about. */
const char *exams_in_check(const struct exams_in *e, enum exams_field *field);

/* RFC 3339 with an offset ("2026-12-01T09:00:00+08:00", "...Z"), or "YYYY-MM-DD HH:MM[:SS]"
 * read as Asia/Shanghai. 0 or -EINVAL. */
int exams_time_parse(const char *s, int64_t *ms);
/* ms as Asia/Shanghai local time, "2026-12-01T09:00:00+08:00". */
void exams_time_local(int64_t ms, char out[EXAMS_LOCAL_LEN]);

/* Errors, each "file:line: column: what", in order; total counts past the bound too. */
struct exams_errs {
	char **msg;
	size_t n, total;
};
void exams_errs_add(struct exams_errs *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void exams_errs_free(struct exams_errs *e);

/* Parses a plan (UTF-8, optional BOM, a header row of English or Chinese column names, see
 * docs/API.md) named name (for the messages). 0 with *out (malloc'ed, *n sessions) when
 * every row is good; -EINVAL with every error (up to the bound) in errs and *out NULL;
 * -ENOMEM. default_org fills an org column left out (NULL: the column is required). */
int exams_csv_parse(const char *name, const char *data, size_t len, const char *default_org,
                    struct exams_in **out, size_t *n, struct exams_errs *errs);

/* The parts of the parser other importers share (issue 12: the registers' CSV). data as
 * UTF-8: 0, or -EINVAL with "name:line: not valid UTF-8 (byte N): save <what> as UTF-8".
 * feed: libcsv (strict) over data a line at a time, calling field_cb/row_cb with ud, with
 * *row_line the line the row being read began on (1-based); 0, -EINVAL with the syntax
 * error in errs (a quote out of place, a quoted field never closed), -ENOMEM. */
int exams_csv_utf8(const char *name, const char *what, const char *data, size_t len,
                   struct exams_errs *errs);
int exams_csv_feed(const char *name, const char *data, size_t len,
                   void (*field_cb)(void *, size_t, void *), void (*row_cb)(int, void *), void *ud,
                   unsigned *row_line, struct exams_errs *errs);

#endif
