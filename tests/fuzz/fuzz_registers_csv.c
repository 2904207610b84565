/* libFuzzer target: the registers' CSV importers (server/inspect/registers_csv.c over
 * libcsv) — targets, inspectors and items as a bureau uploads them with 'register import'
 * or POST /api/v1/registers/{register}/import. First byte: the register (mod 3). A file
 * either parses whole — every row is then canonical (registers_check gives it back
 * unchanged), its line known, and the export of the rows parses again to the same keys — or
 * fails with at least one error, each naming the file and a line; nothing leaks
 * (LeakSanitizer). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registers.h"
#include "registers_csv.h"

static struct inspect_labels grades;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 256 * 1024)
		return 0;
	if (!grades.n) {
		char err[128];
		if (inspect_labels_parse("high:高风险,medium:中风险,low:低风险", &grades, err,
		                         sizeof(err)))
			abort();
	}
	enum registers_kind k = (enum registers_kind)(data[0] % REGISTERS_N);
	cJSON *rows = NULL;
	unsigned *lines = NULL;
	struct exams_errs errs = {0};
	int rc = registers_csv_parse(k, "fuzz.csv", (const char *)data + 1, size - 1, &grades,
	                             &rows, &lines, &errs);
	if (rc == 0) {
		if (!rows || !lines || errs.total || cJSON_GetArraySize(rows) < 1)
			abort();
		size_t i = 0;
		const cJSON *r;
		cJSON_ArrayForEach(r, rows)
		{
			cJSON *again = NULL;
			char field[64], err[256];
			if (lines[i++] < 2 ||
			    registers_check(k, r, &grades, &again, field, sizeof(field), err,
			                    sizeof(err)) ||
			    !cJSON_Compare(r, again, 1))
				abort(); /* a row the API would not store as it is */
			cJSON_Delete(again);
		}
		struct vw_buf b;
		vw_buf_init(&b, 0);
		registers_csv_write(k, rows, &b);
		cJSON *back = NULL;
		unsigned *l2 = NULL;
		struct exams_errs e2 = {0};
		if (b.err ||
		    registers_csv_parse(k, "export.csv", b.data, b.len, &grades, &back, &l2, &e2) ||
		    cJSON_GetArraySize(back) != cJSON_GetArraySize(rows))
			abort(); /* the export does not read back */
		const cJSON *x = rows->child, *y = back->child;
		for (; x && y; x = x->next, y = y->next)
			if (strcmp(cJSON_GetObjectItem(x, registers_key_names[k])->valuestring,
			           cJSON_GetObjectItem(y, registers_key_names[k])->valuestring))
				abort();
		cJSON_Delete(back);
		free(l2);
		exams_errs_free(&e2);
		vw_buf_free(&b);
	} else if (rc == -EINVAL) {
		if (rows || lines || errs.n == 0 || errs.total < errs.n)
			abort();
		for (size_t i = 0; i < errs.n; i++)
			if (strncmp(errs.msg[i], "fuzz.csv:", 9) != 0)
				abort(); /* an error that does not say where */
	} else if (rc != -ENOMEM) {
		abort();
	}
	cJSON_Delete(rows);
	free(lines);
	exams_errs_free(&errs);
	return 0;
}
