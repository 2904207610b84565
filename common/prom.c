#include "prom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The format's escapes: HELP text takes \\ and \n, label values also \". */
static void put_escaped(struct vw_buf *b, const char *s, int quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			vw_buf_puts(b, "\\\\");
		else if (*s == '\n')
			vw_buf_puts(b, "\\n");
		else if (quote && *s == '"')
			vw_buf_puts(b, "\\\"");
		else
			vw_buf_append(b, s, 1);
	}
}

/* The shortest decimal that reads back as v (0.05, not 0.050000000000000003). */
static const char *shortest(double v, char *out, size_t n)
{
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, n, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			break;
	}
	return out;
}

static void put_value(struct vw_buf *b, double v)
{
	char num[32];
	if (isnan(v))
		vw_buf_puts(b, "NaN");
	else if (isinf(v))
		vw_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0) /* 2^53: exact as an integer */
		vw_buf_printf(b, "%.0f", v);
	else
		vw_buf_puts(b, shortest(v, num, sizeof(num)));
}

void vw_prom_family(struct vw_buf *b, const char *name, const char *type, const char *help)
{
	vw_buf_printf(b, "# HELP %s ", name);
	put_escaped(b, help, 0);
	vw_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

static void put_labels(struct vw_buf *b, const struct vw_prom_label *labels, size_t n,
                       const char *le)
{
	if (!n && !le)
		return;
	vw_buf_puts(b, "{");
	for (size_t i = 0; i < n; i++) {
		vw_buf_printf(b, "%s%s=\"", i ? "," : "", labels[i].name);
		put_escaped(b, labels[i].value, 1);
		vw_buf_puts(b, "\"");
	}
	if (le)
		vw_buf_printf(b, "%sle=\"%s\"", n ? "," : "", le);
	vw_buf_puts(b, "}");
}

void vw_prom_sample(struct vw_buf *b, const char *name, const struct vw_prom_label *labels,
                    size_t nlabels, double value)
{
	vw_buf_puts(b, name);
	put_labels(b, labels, nlabels, NULL);
	vw_buf_puts(b, " ");
	put_value(b, value);
	vw_buf_puts(b, "\n");
}

void vw_prom_histogram(struct vw_buf *b, const char *name, const struct vw_prom_label *labels,
                       size_t nlabels, const double *bounds, const uint64_t *cumulative,
                       size_t nbounds, double sum, uint64_t count)
{
	char le[32];
	for (size_t i = 0; i <= nbounds; i++) {
		if (i < nbounds)
			shortest(bounds[i], le, sizeof(le));
		else
			snprintf(le, sizeof(le), "+Inf");
		vw_buf_printf(b, "%s_bucket", name);
		put_labels(b, labels, nlabels, le);
		vw_buf_puts(b, " ");
		put_value(b, (double)(i < nbounds ? cumulative[i] : count));
		vw_buf_puts(b, "\n");
	}
	vw_buf_printf(b, "%s_sum", name);
	put_labels(b, labels, nlabels, NULL);
	vw_buf_puts(b, " ");
	put_value(b, sum);
	vw_buf_printf(b, "\n%s_count", name);
	put_labels(b, labels, nlabels, NULL);
	vw_buf_puts(b, " ");
	put_value(b, (double)count);
	vw_buf_puts(b, "\n");
}

void vw_prom_hist_observe(struct vw_prom_hist *h, const double *bounds, size_t nbounds, double v)
{
	if (nbounds > VW_PROM_HIST_MAX)
		nbounds = VW_PROM_HIST_MAX;
	for (size_t i = 0; i < nbounds; i++)
		if (v <= bounds[i]) {
			h->bucket[i]++;
			break;
		}
	h->sum += v;
	h->count++;
}

void vw_prom_hist_write(struct vw_buf *b, const char *name, const struct vw_prom_label *labels,
                        size_t nlabels, const double *bounds, size_t nbounds,
                        const struct vw_prom_hist *h)
{
	uint64_t cum[VW_PROM_HIST_MAX], run = 0;
	if (nbounds > VW_PROM_HIST_MAX)
		nbounds = VW_PROM_HIST_MAX;
	for (size_t i = 0; i < nbounds; i++) {
		run += h->bucket[i];
		cum[i] = run;
	}
	vw_prom_histogram(b, name, labels, nlabels, bounds, cum, nbounds, h->sum, h->count);
}
