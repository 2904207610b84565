#include "conf.h"
#include "roff.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "utf8.h"

#define MAX_SEEN 256 /* distinct (section, key) pairs tracked for duplicate detection */

struct parse_state {
	const struct vw_conf_schema *schema;
	void *cfg;
	struct vw_conf_errors *errs;
	const char *file;
	/* Line tracking: inih reports neither line numbers nor empty sections in the
	 * Debian build, so the reader counts lines and notices headers itself. */
	const char *text; /* string input */
	FILE *fp;         /* file input */
	int line;
	char cur_section[256];
	const struct vw_conf_section *sec; /* NULL: unknown section (already reported) */
	void *item;                        /* struct being filled */
	unsigned char *seen;               /* per-key "set" flags for the current item */
	size_t seen_cap;
	/* unnamed sections that appeared */
	unsigned char present[64];
};

void vw_conf_error(struct vw_conf_errors *e, const char *file, int line, const char *fmt, ...)
{
	e->count++;
	if (e->len >= sizeof(e->text) - 1)
		return;
	int n = line > 0
	            ? snprintf(e->text + e->len, sizeof(e->text) - e->len, "%s:%d: ", file, line)
	            : snprintf(e->text + e->len, sizeof(e->text) - e->len, "%s: ", file);
	if (n > 0)
		e->len += (size_t)n;
	if (e->len >= sizeof(e->text) - 1) {
		e->len = sizeof(e->text) - 1;
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	n = vsnprintf(e->text + e->len, sizeof(e->text) - e->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		e->len += (size_t)n;
	if (e->len >= sizeof(e->text) - 1)
		e->len = sizeof(e->text) - 2;
	e->text[e->len++] = '\n';
	e->text[e->len] = '\0';
}

static void *field(void *base, size_t off)
{
	return (char *)base + off;
}

static int parse_int(const char *v, long long *out)
{
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end)
		return -1;
	*out = x;
	return 0;
}

static int parse_scaled(const char *v, const char *const *units, const long long *scale,
                        long long *out)
{
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (errno || end == v || x < 0)
		return -1;
	while (*end == ' ')
		end++;
	long long mult = scale[0];
	if (*end) {
		int found = 0;
		for (int i = 0; units[i]; i++) {
			if (strcasecmp(end, units[i]) == 0) {
				mult = scale[i];
				found = 1;
				break;
			}
		}
		if (!found)
			return -1;
	}
	double r = x * (double)mult;
	if (r > (double)LLONG_MAX / 2)
		return -1;
	*out = (long long)(r + 0.5);
	return 0;
}

static int parse_duration(const char *v, long long *ms)
{
	static const char *const units[] = {"s", "ms", "sec", "m", "min", "h", NULL};
	static const long long scale[] = {1000, 1, 1000, 60000, 60000, 3600000};
	return parse_scaled(v, units, scale, ms);
}

int vw_conf_parse_duration(const char *v, long long *ms)
{
	return parse_duration(v, ms);
}

static int parse_size(const char *v, long long *bytes)
{
	static const char *const units[] = {"b",  "k", "kib", "kb", "m", "mib",
	                                    "mb", "g", "gib", "gb", NULL};
	static const long long scale[] = {1,       1024,    1024,      1000,      1 << 20,
	                                  1 << 20, 1000000, 1LL << 30, 1LL << 30, 1000000000};
	return parse_scaled(v, units, scale, bytes);
}

static int parse_bool(const char *v, int *out)
{
	static const char *const t[] = {"1", "true", "yes", "on"}, *const f[] = {"0", "false", "no",
	                                                                         "off"};
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(v, t[i]) == 0)
			return *out = 1, 0;
		if (strcasecmp(v, f[i]) == 0)
			return *out = 0, 0;
	}
	return -1;
}

static int parse_enum(const char *v, const char *choices, int *out)
{
	int idx = 0;
	size_t vl = strlen(v);
	for (const char *p = choices; *p; idx++) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);
		if (n == vl && strncmp(p, v, n) == 0)
			return *out = idx, 0;
		p += n + (bar ? 1 : 0);
	}
	return -1;
}

/* Stores one value; returns 0 or writes the reason into why. */
static int set_value(const struct vw_conf_key *k, void *base, const char *v, char *why, size_t wl)
{
	long long x = 0;
	switch (k->type) {
	case VW_CONF_STR: {
		/* Strings go on to logs, JSON and certificate subjects, all of them UTF-8. */
		if (!vw_utf8_valid(v)) {
			snprintf(why, wl, "invalid UTF-8 (save the file as UTF-8)");
			return -1;
		}
		char **dst = field(base, k->offset);
		char *copy = strdup(v);
		if (!copy) {
			snprintf(why, wl, "out of memory");
			return -1;
		}
		free(*dst);
		*dst = copy;
		return 0;
	}
	case VW_CONF_BOOL:
		if (parse_bool(v, field(base, k->offset))) {
			snprintf(why, wl, "expected true or false, got '%s'", v);
			return -1;
		}
		return 0;
	case VW_CONF_ENUM:
		if (parse_enum(v, k->choices, field(base, k->offset))) {
			snprintf(why, wl, "expected one of %s, got '%s'", k->choices, v);
			return -1;
		}
		return 0;
	case VW_CONF_DOUBLE: {
		char *end;
		errno = 0;
		double d = strtod(v, &end);
		if (errno || end == v || *end || d != d) {
			snprintf(why, wl, "expected a number, got '%s'", v);
			return -1;
		}
		if ((k->min || k->max) && (d < (double)k->min || d > (double)k->max)) {
			snprintf(why, wl, "value %s out of range [%lld, %lld]", v, k->min, k->max);
			return -1;
		}
		*(double *)field(base, k->offset) = d;
		return 0;
	}
	case VW_CONF_INT:
		if (parse_int(v, &x)) {
			snprintf(why, wl, "expected an integer, got '%s'", v);
			return -1;
		}
		break;
	case VW_CONF_DURATION:
		if ((k->flags & VW_CONF_OFF) && strcasecmp(v, "off") == 0) {
			*(long *)field(base, k->offset) = 0;
			return 0;
		}
		if (parse_duration(v, &x)) {
			snprintf(why, wl, "expected a duration such as 15s, 500ms or 2m, got '%s'",
			         v);
			return -1;
		}
		break;
	case VW_CONF_SIZE:
		if (parse_size(v, &x)) {
			snprintf(why, wl, "expected a size such as 64MiB, got '%s'", v);
			return -1;
		}
		break;
	}
	if ((k->min || k->max) && (x < k->min || x > k->max)) {
		snprintf(why, wl, "value %s out of range [%lld, %lld]", v, k->min, k->max);
		return -1;
	}
	if (k->type == VW_CONF_SIZE)
		*(long long *)field(base, k->offset) = x;
	else
		*(long *)field(base, k->offset) = (long)x;
	return 0;
}

static const struct vw_conf_key *find_key(const struct vw_conf_section *s, const char *name)
{
	for (size_t i = 0; i < s->nkeys; i++)
		if (strcmp(s->keys[i].name, name) == 0)
			return &s->keys[i];
	return NULL;
}

/* Finishes the current item: defaults for unset keys, required keys reported. */
static void close_item(struct parse_state *st, int header_line)
{
	if (!st->sec || !st->item)
		goto out;
	for (size_t i = 0; i < st->sec->nkeys; i++) {
		const struct vw_conf_key *k = &st->sec->keys[i];
		if (st->seen[i])
			continue;
		if (k->flags & VW_CONF_REQUIRED) {
			vw_conf_error(st->errs, st->file, header_line,
			              "[%s]: missing required key '%s'", st->cur_section, k->name);
			continue;
		}
		if (k->def) {
			char why[160];
			if (set_value(k, st->item, k->def, why, sizeof(why)))
				vw_conf_error(st->errs, st->file, header_line,
				              "[%s] %s: bad built-in default: %s", st->cur_section,
				              k->name, why);
		}
	}
out:
	st->sec = NULL;
	st->item = NULL;
}

static int header_line_of(struct parse_state *st)
{
	return st->sec ? *(int *)field(st->item, st->sec->line_offset) : 0;
}

static void open_section(struct parse_state *st, const char *header, int line)
{
	close_item(st, header_line_of(st));
	snprintf(st->cur_section, sizeof(st->cur_section), "%s", header);

	char kind[128] = "", id[128] = "";
	if (sscanf(header, "%127s %127[^\n]", kind, id) < 1) {
		vw_conf_error(st->errs, st->file, line, "empty section name");
		return;
	}
	const struct vw_conf_schema *sc = st->schema;
	const struct vw_conf_section *s = NULL;
	size_t si;
	for (si = 0; si < sc->nsections; si++) {
		if (strcmp(sc->sections[si].name, kind) == 0) {
			s = &sc->sections[si];
			break;
		}
	}
	if (!s) {
		vw_conf_error(st->errs, st->file, line, "unknown section [%s]", header);
		return;
	}
	if (s->named && !id[0]) {
		vw_conf_error(st->errs, st->file, line, "section [%s] needs a name: [%s NAME]",
		              kind, kind);
		return;
	}
	if (!s->named && id[0]) {
		vw_conf_error(st->errs, st->file, line, "section [%s] takes no name", kind);
		return;
	}
	if (s->named && !vw_utf8_valid(id)) {
		/* the name becomes a camera's or room's target in results and logs */
		vw_conf_error(st->errs, st->file, line,
		              "section [%s NAME]: name is not valid UTF-8", kind);
		return;
	}
	if (s->nkeys > st->seen_cap) {
		unsigned char *p = realloc(st->seen, s->nkeys);
		if (!p) {
			vw_conf_error(st->errs, st->file, line, "out of memory");
			return;
		}
		st->seen = p;
		st->seen_cap = s->nkeys;
	}
	memset(st->seen, 0, s->nkeys);

	if (!s->named) {
		if (si < sizeof(st->present) && st->present[si]) {
			vw_conf_error(st->errs, st->file, line, "section [%s] appears twice", kind);
			return;
		}
		if (si < sizeof(st->present))
			st->present[si] = 1;
		st->item = field(st->cfg, s->offset);
	} else {
		struct vw_conf_list *list = field(st->cfg, s->offset);
		for (size_t i = 0; i < list->n; i++) {
			char *other =
			    *(char **)field((char *)list->items + i * s->item_size, s->id_offset);
			if (strcmp(other, id) == 0) {
				vw_conf_error(st->errs, st->file, line, "duplicate section [%s %s]",
				              kind, id);
				return;
			}
		}
		void *items = realloc(list->items, (list->n + 1) * s->item_size);
		char *idcopy = strdup(id);
		if (!items || !idcopy) {
			free(idcopy);
			if (items)
				list->items = items;
			vw_conf_error(st->errs, st->file, line, "out of memory");
			return;
		}
		list->items = items;
		st->item = (char *)items + list->n * s->item_size;
		memset(st->item, 0, s->item_size);
		*(char **)field(st->item, s->id_offset) = idcopy;
		list->n++;
	}
	*(int *)field(st->item, s->line_offset) = line;
	st->sec = s;
}

static void note_line(struct parse_state *st, const char *line)
{
	st->line++;
	const char *p = line;
	if (st->line == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
	    (unsigned char)p[2] == 0xBF)
		p += 3;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '[')
		return;
	const char *end = strchr(p, ']');
	if (!end)
		return; /* inih reports it as a parse error */
	char header[256];
	size_t n = (size_t)(end - p - 1);
	if (n >= sizeof(header))
		n = sizeof(header) - 1;
	memcpy(header, p + 1, n);
	header[n] = '\0';
	/* trim */
	char *h = header;
	while (*h == ' ')
		h++;
	size_t hl = strlen(h);
	while (hl && h[hl - 1] == ' ')
		h[--hl] = '\0';
	open_section(st, h, st->line);
}

static char *reader(char *str, int num, void *stream)
{
	struct parse_state *st = stream;
	if (st->fp) {
		if (!fgets(str, num, st->fp))
			return NULL;
	} else {
		if (!*st->text)
			return NULL;
		const char *nl = strchr(st->text, '\n');
		size_t n = nl ? (size_t)(nl - st->text + 1) : strlen(st->text);
		if (n > (size_t)num - 1)
			n = (size_t)num - 1;
		memcpy(str, st->text, n);
		str[n] = '\0';
		st->text += n;
	}
	note_line(st, str);
	return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *st = user;
	(void)section;
	if (!st->sec) {
		if (!st->cur_section[0])
			vw_conf_error(st->errs, st->file, st->line, "key '%s' outside any section",
			              name);
		return 1; /* unknown section: reported once at its header */
	}
	const struct vw_conf_key *k = find_key(st->sec, name);
	if (!k) {
		vw_conf_error(st->errs, st->file, st->line, "[%s]: unknown key '%s'",
		              st->cur_section, name);
		return 1;
	}
	size_t idx = (size_t)(k - st->sec->keys);
	if (st->seen[idx]) {
		vw_conf_error(st->errs, st->file, st->line, "[%s]: key '%s' set twice",
		              st->cur_section, name);
		return 1;
	}
	st->seen[idx] = 1;
	char why[200];
	if (set_value(k, st->item, value, why, sizeof(why)))
		vw_conf_error(st->errs, st->file, st->line, "[%s] %s: %s", st->cur_section, name,
		              why);
	return 1;
}

static int load(const struct vw_conf_schema *schema, const char *name, FILE *fp, const char *text,
                void *cfg, struct vw_conf_errors *errs)
{
	struct parse_state st = {
	    .schema = schema, .cfg = cfg, .errs = errs, .file = name, .fp = fp, .text = text};
	int rc = ini_parse_stream(reader, &st, handler, &st);
	close_item(&st, header_line_of(&st));
	if (rc > 0)
		vw_conf_error(errs, name, rc, "syntax error (expected [section] or key = value)");
	else if (rc < 0)
		vw_conf_error(errs, name, 0, "cannot parse (out of memory)");
	/* Unnamed sections that never appeared still get their defaults. */
	for (size_t si = 0; si < schema->nsections; si++) {
		const struct vw_conf_section *s = &schema->sections[si];
		if (s->named || (si < sizeof(st.present) && st.present[si]))
			continue;
		if (s->required) {
			vw_conf_error(errs, name, 0, "missing required section [%s]", s->name);
			continue;
		}
		snprintf(st.cur_section, sizeof(st.cur_section), "%s", s->name);
		st.sec = s;
		st.item = field(cfg, s->offset);
		if (s->nkeys > st.seen_cap) {
			unsigned char *p = realloc(st.seen, s->nkeys);
			if (!p)
				break;
			st.seen = p;
			st.seen_cap = s->nkeys;
		}
		memset(st.seen, 0, s->nkeys);
		close_item(&st, 0);
	}
	free(st.seen);
	return errs->count;
}

int vw_conf_load(const struct vw_conf_schema *schema, const char *path, void *cfg,
                 struct vw_conf_errors *errs)
{
	FILE *fp = fopen(path, "r");
	if (!fp) {
		int e = errno;
		vw_conf_error(errs, path, 0, "cannot open: %s", strerror(e));
		return -e;
	}
	int rc = load(schema, path, fp, NULL, cfg, errs);
	fclose(fp);
	return rc;
}

int vw_conf_load_string(const struct vw_conf_schema *schema, const char *name, const char *text,
                        void *cfg, struct vw_conf_errors *errs)
{
	return load(schema, name, NULL, text, cfg, errs);
}

static void free_strings(const struct vw_conf_section *s, void *item)
{
	for (size_t i = 0; i < s->nkeys; i++) {
		if (s->keys[i].type == VW_CONF_STR) {
			char **p = field(item, s->keys[i].offset);
			free(*p);
			*p = NULL;
		}
	}
}

void vw_conf_free(const struct vw_conf_schema *schema, void *cfg)
{
	if (!cfg)
		return;
	for (size_t si = 0; si < schema->nsections; si++) {
		const struct vw_conf_section *s = &schema->sections[si];
		if (!s->named) {
			free_strings(s, field(cfg, s->offset));
			continue;
		}
		struct vw_conf_list *list = field(cfg, s->offset);
		for (size_t i = 0; i < list->n; i++) {
			void *item = (char *)list->items + i * s->item_size;
			free_strings(s, item);
			free(*(char **)field(item, s->id_offset));
		}
		free(list->items);
		list->items = NULL;
		list->n = 0;
	}
}

static const char *type_name(const struct vw_conf_key *k)
{
	switch (k->type) {
	case VW_CONF_STR:
		return "string";
	case VW_CONF_INT:
		return "integer";
	case VW_CONF_BOOL:
		return "boolean";
	case VW_CONF_DURATION:
		return "duration";
	case VW_CONF_SIZE:
		return "size";
	case VW_CONF_ENUM:
		return k->choices;
	case VW_CONF_DOUBLE:
		return "number";
	}
	return "?";
}

void vw_conf_print_reference(const struct vw_conf_schema *schema, FILE *out)
{
	for (size_t si = 0; si < schema->nsections; si++) {
		const struct vw_conf_section *s = &schema->sections[si];
		fprintf(out, "%s# %s\n", si ? "\n" : "", s->help);
		fprintf(out, "[%s%s]\n", s->name, s->named ? " NAME" : "");
		for (size_t i = 0; i < s->nkeys; i++) {
			const struct vw_conf_key *k = &s->keys[i];
			fprintf(out, "# %s (%s%s%s)\n", k->help, type_name(k),
			        (k->flags & VW_CONF_OFF) ? " or off" : "",
			        (k->flags & VW_CONF_REQUIRED) ? ", required" : "");
			if (k->min || k->max)
				fprintf(out, "#   range: %lld..%lld\n", k->min, k->max);
			fprintf(out, "%s%s = %s\n", k->def ? ";" : "", k->name,
			        k->def ? k->def : "");
		}
	}
}

void vw_conf_print_man(const struct vw_conf_schema *schema, FILE *out)
{
	for (size_t si = 0; si < schema->nsections; si++) {
		const struct vw_conf_section *s = &schema->sections[si];
		char head[96];
		snprintf(head, sizeof(head), "[%s%s]", s->name, s->named ? " NAME" : "");
		vw_roff_req(out, "SS", head);
		vw_roff_text(out, s->help);
		fputc('\n', out);
		for (size_t i = 0; i < s->nkeys; i++) {
			const struct vw_conf_key *k = &s->keys[i];
			fputs(".TP\n", out);
			vw_roff_req(out, "B", k->name);
			fputc('(', out);
			vw_roff_text(out, type_name(k));
			if (k->flags & VW_CONF_OFF)
				fputs(" or off", out);
			if (k->flags & VW_CONF_REQUIRED)
				fputs(", required", out);
			if (k->def && k->def[0]) {
				fputs("; default \\fB", out);
				vw_roff_text(out, k->def);
				fputs("\\fR", out);
			} else if (k->def) {
				fputs("; default empty", out);
			}
			if (k->min || k->max)
				fprintf(out, "; range %lld..%lld%s", k->min, k->max,
				        k->type == VW_CONF_DURATION ? " ms"
				        : k->type == VW_CONF_SIZE   ? " bytes"
				                                    : "");
			fputs(")\n.br\n", out);
			vw_roff_text(out, k->help);
			fputc('\n', out);
		}
	}
}

int vw_conf_id_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return 0;
	return 1;
}
