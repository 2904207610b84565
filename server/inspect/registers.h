/* registers: the double-random registers (一单两库) in inspect.db — inspection targets (an
 * org, its sites, city, level, occupations, risk grade), inspectors (home city, department,
 * ties to orgs, dates away) and inspection items. Every change is a numbered row of
 * register_changes (the registers' version) and the row's version is the number of its last
 * change. registers_check is pure (any thread); the *_run functions are inspect jobs (the
 * worker thread, or the CLI's through inspect_run_now) and take their own transaction.
 * Strings a job returns (json) are malloc'ed: the caller frees them (registers_*_free). */
#ifndef VW_REGISTERS_H
#define VW_REGISTERS_H

#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "labels.h"

enum registers_kind { REGISTERS_TARGETS, REGISTERS_INSPECTORS, REGISTERS_ITEMS, REGISTERS_N };
/* "targets", "inspectors", "items" */
extern const char *const registers_names[REGISTERS_N];
/* The key field of each: "org", "id", "id". */
extern const char *const registers_key_names[REGISTERS_N];
/* The kind by name, or -1. */
int registers_kind_parse(const char *s);

/* Bounds of one row (a typo or a wrong file, not a real register, goes beyond them). */
#define REGISTERS_TEXT_MAX 256   /* names, titles, departments, occupations */
#define REGISTERS_BASIS_MAX 1024 /* an item's legal basis may quote a clause */
#define REGISTERS_CITY_MAX 128
#define REGISTERS_LIST_MAX 64 /* occupations, ties, dates away */
#define REGISTERS_SITES_MAX 256
/* One request or file: a province's register is a few thousand orgs. */
#define REGISTERS_BATCH_MAX 100000

/* One row as entered (JSON of the register's shape; API and CSV): checked and made canonical
 * — fields in the register's order, labels (市级, 任职, 高风险) turned into ids, blanks
 * trimmed. 0 with *out (the caller cJSON_Delete's it; "version", when given, is kept as the
 * version the writer expects); -EINVAL with field (e.g. "ties[1].kind") and err. risk:
 * the [inspection] risk_grades (targets only; NULL accepts none). */
int registers_check(enum registers_kind k, const cJSON *in, const struct inspect_labels *risk,
                    cJSON **out, char *field, size_t fieldlen, char *err, size_t errlen);

/* Date "YYYY-MM-DD" (a real day): 1 or 0. */
int registers_date_valid(const char *s);

/* Upsert of rows (registers_check's canonical rows), all or nothing. A row equal to the
 * stored one changes nothing; one with a "version" that is not the stored row's (0 = must
 * not exist) is a conflict. scope_city (NULL: the province) limits what may be written:
 * rows of that city only, and only over rows of that city (items: NULL only). */
struct registers_put {
	enum registers_kind kind;
	const cJSON *rows; /* array */
	const char *scope_city;
	const char *actor;
	int64_t now_ms;
	/* out: -EINVAL (a key twice), -EACCES (out of scope), -ESTALE (version conflict) name
	 * the row (index, 0-based) and field */
	long index;
	char field[64];
	char err[256];
	int64_t version; /* the registers' version after the job */
	size_t created, updated, unchanged;
	cJSON *changed; /* array of {"key","action","version"} of the rows changed */
};
int registers_put_run(sqlite3 *db, void *arg);

/* Deletes one row. -ENOENT: no such row (or out of scope_city). */
struct registers_del {
	enum registers_kind kind;
	const char *key;
	const char *scope_city;
	const char *actor;
	int64_t now_ms;
	int64_t version; /* out */
	char *before;    /* out: the row deleted (JSON), free() */
};
int registers_del_run(sqlite3 *db, void *arg);

/* The rows of a register (with "version"), sorted by key; city filters targets and inspectors
 * (NULL: all; items ignore it). json: a JSON array, free(). */
struct registers_list {
	enum registers_kind kind;
	const char *city;
	char *json; /* out */
	size_t n;   /* out */
	int64_t version;
};
int registers_list_run(sqlite3 *db, void *arg);

/* The change history after version `after`, oldest first, at most limit (1-1000): JSON array
 * of {"version","at","actor","register","key","action","before","after"}. kind -1: every
 * register. scope_city: only changes of rows of that city (before or after), and items. */
struct registers_changes {
	int kind;
	int64_t after;
	int limit;
	const char *scope_city;
	char *json;   /* out */
	int64_t next; /* out: the last version listed (after, when none) */
	int more;     /* out: more changes follow */
};
int registers_changes_run(sqlite3 *db, void *arg);

/* The registers' current version (0: never changed). */
int registers_version(sqlite3 *db, int64_t *version);

/* For a draw (worker thread, inside or outside the caller's transaction: one read
 * transaction is taken when none is open): the rows of city (NULL: all; items are always
 * all) as JSON arrays of the shapes above without "version", sorted by key, and the
 * registers' version. Each string is malloc'ed (free()). 0 or a negative errno. */
int registers_snapshot(sqlite3 *db, const char *city, char **targets_json, char **inspectors_json,
                       char **items_json, int64_t *version);

#endif
