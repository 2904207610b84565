/* prom: a writer of the Prometheus text exposition format 0.0.4 into a vw_buf (HELP and
 * TYPE lines, escaped label values, counters, gauges, histograms with cumulative buckets,
 * _sum and _count). Pure: any thread; the caller owns the buffer, errors stick in b->err.
 * vw_prom_hist keeps a histogram's counts between scrapes (plain increments: the owner's
 * thread only, or under the owner's lock). */
#ifndef VW_PROM_H
#define VW_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct vw_prom_label {
	const char *name;
	const char *value;
};

/* "# HELP name help" (help escaped) and "# TYPE name type" ("counter", "gauge",
 * "histogram"). */
void vw_prom_family(struct vw_buf *b, const char *name, const char *type, const char *help);
/* "name{l1="v1",...} value": label values escaped (\\, \", \n), NaN and infinities spelled
 * as the format wants. */
void vw_prom_sample(struct vw_buf *b, const char *name, const struct vw_prom_label *labels,
                    size_t nlabels, double value);
/* A histogram's series: name_bucket with le= each bound and +Inf, then name_sum and
 * name_count. cumulative[i] counts observations <= bounds[i] (bounds ascending). */
void vw_prom_histogram(struct vw_buf *b, const char *name, const struct vw_prom_label *labels,
                       size_t nlabels, const double *bounds, const uint64_t *cumulative,
                       size_t nbounds, double sum, uint64_t count);

/* A histogram's running counts over fixed bounds (at most VW_PROM_HIST_MAX, ascending):
 * bucket[i] counts observations in (bounds[i-1], bounds[i]], not cumulative — the writer
 * sums them; observations above the last bound count only in count. Zeroed = empty. */
#define VW_PROM_HIST_MAX 16
struct vw_prom_hist {
	uint64_t bucket[VW_PROM_HIST_MAX];
	double sum;
	uint64_t count;
};
void vw_prom_hist_observe(struct vw_prom_hist *h, const double *bounds, size_t nbounds, double v);
/* vw_prom_histogram of h (its buckets made cumulative). */
void vw_prom_hist_write(struct vw_buf *b, const char *name, const struct vw_prom_label *labels,
                        size_t nlabels, const double *bounds, size_t nbounds,
                        const struct vw_prom_hist *h);

#endif
