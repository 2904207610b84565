/* labels: the [inspection] id:label lists (risk grades, outcomes) — "high:高风险,medium:中风险"
 * read into ids and the bureau's own labels, in the order written (for risk grades the order
 * is the rank: first = highest). Pure: no I/O, no allocation; any thread. */
#ifndef VW_LABELS_H
#define VW_LABELS_H

#include <stddef.h>

#define INSPECT_LABELS_MAX 16
/* [inspection]'s defaults (server_conf.c uses these too). */
#define INSPECT_RISK_GRADES_DEFAULT "high:高风险,medium:中风险,low:低风险"
#define INSPECT_OUTCOMES_DEFAULT "clear:未发现问题,rectify:责令整改,refer:移交处理"

struct inspect_labels {
	size_t n;
	char id[INSPECT_LABELS_MAX][32];    /* [a-z0-9_]{1,31} */
	char label[INSPECT_LABELS_MAX][64]; /* UTF-8, 1-63 bytes, no control characters */
};

/* Parses s ("id:label,id:label", a full-width comma or colon as Chinese keyboards type them
 * also separates; blanks around items are dropped). 0, or -EINVAL with err naming the item
 * (its position and text) and what is wrong. */
int inspect_labels_parse(const char *s, struct inspect_labels *out, char *err, size_t errlen);
/* The index of id, or -1. */
int inspect_labels_find(const struct inspect_labels *l, const char *id);
/* The index of an id or a label (CSV cells may hold either), or -1. */
int inspect_labels_lookup(const struct inspect_labels *l, const char *id_or_label);

#endif
