#include "csvout.h"

#include <csv.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* OWASP "CSV Injection": a cell starting with = + - @ (or TAB/CR, which some spreadsheets
 * skip before looking for those) is evaluated as a formula; a leading ' makes Excel,
 * LibreOffice and Google Sheets show it as text. Quoting alone does not help: the quotes are
 * CSV syntax, gone before the cell is read. */
int csvout_is_formula(const char *v)
{
	return v && v[0] && strchr("=+-@\t\r", v[0]) != NULL;
}

void csvout_field(struct vw_buf *b, const char *v, int last)
{
	char *prefixed = NULL;
	if (!v)
		v = "";
	if (csvout_is_formula(v)) {
		size_t n = strlen(v);
		if (!(prefixed = malloc(n + 2))) {
			if (!b->err)
				b->err = -ENOMEM;
			return;
		}
		prefixed[0] = '\'';
		memcpy(prefixed + 1, v, n + 1);
		v = prefixed;
	}
	size_t n = strlen(v), need = csv_write(NULL, 0, v, n);
	if (vw_buf_reserve(b, need + 2) == 0) {
		b->len += csv_write(b->data + b->len, need, v, n);
		vw_buf_puts(b, last ? "\r\n" : ",");
	}
	free(prefixed);
}

void csvout_row(struct vw_buf *b, const char *const *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		csvout_field(b, f[i], i + 1 == n);
}
