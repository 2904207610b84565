/* registers_csv: the registers as CSV files — the importers of targets, inspectors and
 * items (libcsv; the sessions importer's rules: UTF-8 with or without a BOM, English or
 * Chinese column names, every error as "file:line: column: what" up to EXAMS_MAX_ERRORS,
 * all or nothing) and the export in the same columns. Rows become registers_check's
 * canonical JSON, so the API and the files are checked by the same code. Pure: no I/O, no
 * globals; any thread. The caller frees what parse returns (cJSON_Delete, free) and the
 * errors (exams_errs_free). */
#ifndef VW_REGISTERS_CSV_H
#define VW_REGISTERS_CSV_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "buf.h"
#include "exams_csv.h"
#include "labels.h"
#include "registers.h"

/* Parses data (named name in the messages). 0 with *rows (a JSON array of canonical rows)
 * and *lines (malloc'ed: the line each row began on, for errors found later, e.g. by
 * registers_put_run); -EINVAL with every error in errs; -ENOMEM. */
int registers_csv_parse(enum registers_kind k, const char *name, const char *data, size_t len,
                        const struct inspect_labels *risk, cJSON **rows, unsigned **lines,
                        struct exams_errs *errs);

/* rows (a JSON array as registers_list_run gives it) as CSV with the English header, in the
 * import's own forms (lists ';'-separated, ties org:kind, away from..to); CRLF line ends. A
 * failed append is left in b->err. */
void registers_csv_write(enum registers_kind k, const cJSON *rows, struct vw_buf *b);

/* The column's name in the header of a file: the English one, or its Chinese one. */
const char *registers_csv_column_zh(enum registers_kind k, const char *field);

#endif
