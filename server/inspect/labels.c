#include "labels.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "utf8.h"

#define FW_COMMA "\xef\xbc\x8c" /* ， */
#define FW_COLON "\xef\xbc\x9a" /* ： */

static int id_ok(const char *s, size_t n)
{
	if (n == 0 || n > 31)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* [p, p+n) without the blanks at either end. */
static void trim(const char **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t'))
		(*p)++, (*n)--;
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

int inspect_labels_parse(const char *s, struct inspect_labels *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	const char *p = s ? s : "";
	for (size_t pos = 1;; pos++) {
		const char *end = p;
		while (*end && *end != ',' && strncmp(end, FW_COMMA, 3) != 0)
			end++;
		const char *item = p;
		size_t n = (size_t)(end - p);
		trim(&item, &n);
		if (n == 0) {
			snprintf(err, errlen, "item %zu: empty (expected id:label)", pos);
			return -EINVAL;
		}
		if (out->n == INSPECT_LABELS_MAX) {
			snprintf(err, errlen, "more than %d items", INSPECT_LABELS_MAX);
			return -EINVAL;
		}
		size_t idn = 0, sep = 0;
		while (idn < n && item[idn] != ':' && strncmp(item + idn, FW_COLON, 3) != 0)
			idn++;
		if (idn < n)
			sep = item[idn] == ':' ? 1 : 3;
		const char *id = item, *label = item + idn + sep;
		size_t ln = idn + sep <= n ? n - idn - sep : 0;
		trim(&id, &idn);
		trim(&label, &ln);
		if (!id_ok(id, idn)) {
			snprintf(err, errlen, "item %zu (%.*s): the id must be 1-31 of [a-z0-9_]",
			         pos, (int)(n > 40 ? 40 : n), item);
			return -EINVAL;
		}
		if (!sep || ln == 0 || ln > 63) {
			snprintf(err, errlen,
			         "item %zu (%.*s): expected id:label with a label of 1-63 bytes",
			         pos, (int)(n > 40 ? 40 : n), item);
			return -EINVAL;
		}
		memcpy(out->id[out->n], id, idn);
		memcpy(out->label[out->n], label, ln);
		int bad = !vw_utf8_valid(out->label[out->n]);
		for (size_t i = 0; i < ln; i++)
			bad |= (unsigned char)label[i] < 0x20 || label[i] == 0x7f;
		if (bad) {
			snprintf(err, errlen, "item %zu (%s): the label is not valid UTF-8 text",
			         pos, out->id[out->n]);
			return -EINVAL;
		}
		for (size_t k = 0; k < out->n; k++)
			if (strcmp(out->id[k], out->id[out->n]) == 0 ||
			    strcmp(out->label[k], out->label[out->n]) == 0) {
				snprintf(err, errlen,
				         "item %zu (%s): the id or label appears twice", pos,
				         out->id[out->n]);
				return -EINVAL;
			}
		out->n++;
		if (!*end)
			return 0;
		p = end + (*end == ',' ? 1 : 3);
	}
}

int inspect_labels_find(const struct inspect_labels *l, const char *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->id[i], id) == 0)
			return (int)i;
	return -1;
}

int inspect_labels_lookup(const struct inspect_labels *l, const char *v)
{
	int i = inspect_labels_find(l, v);
	if (i >= 0)
		return i;
	for (size_t k = 0; k < l->n; k++)
		if (strcmp(l->label[k], v) == 0)
			return (int)k;
	return -1;
}
