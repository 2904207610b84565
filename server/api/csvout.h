/* csvout: one CSV field or row appended to a vw_buf, for every CSV the server serves
 * (sites.csv, report.csv). libcsv quotes; this module adds the spreadsheet defence. Runs on
 * whichever thread owns the buffer; it allocates nothing beyond the buffer's own growth, which
 * the buffer's owner frees (vw_buf_free). */
#ifndef VW_CSVOUT_H
#define VW_CSVOUT_H

#include <stddef.h>

#include "buf.h"

/* 1 when a spreadsheet would read v as a formula (its first byte is = + - @ TAB or CR). */
int csvout_is_formula(const char *v);
/* Appends v quoted by libcsv, with a leading ' when csvout_is_formula(v), then "," or (last)
 * CRLF. A failed append is left in b->err, as every vw_buf write. */
void csvout_field(struct vw_buf *b, const char *v, int last);
/* The n fields of one row. */
void csvout_row(struct vw_buf *b, const char *const *f, size_t n);

#endif
