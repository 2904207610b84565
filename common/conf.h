/* conf: table-driven INI configuration (the options document themselves).
 * Each section is a table of keys (name, type, default, help); the same table drives
 * parsing, --check-config and the generated reference. Parsing runs once at start-up
 * on the main thread; vw_conf_free releases every string and list it allocated.
 * Errors name file:line and the key, and parsing reports all of them, not just the first. */
#ifndef VW_CONF_H
#define VW_CONF_H

#include <stddef.h>
#include <stdio.h>

enum vw_conf_type {
	VW_CONF_STR,      /* char *, strdup'd */
	VW_CONF_INT,      /* long, within [min, max] */
	VW_CONF_BOOL,     /* int: true/false/yes/no/on/off/1/0 */
	VW_CONF_DURATION, /* long milliseconds: "500ms", "15s", "2m", "1h" or bare seconds */
	VW_CONF_SIZE,     /* long long bytes: "64MiB", "512KiB", "1GiB" or bare bytes */
	VW_CONF_ENUM,     /* int: index into choices ("tcp|udp") */
	VW_CONF_DOUBLE,   /* double, within [min, max] */
};

#define VW_CONF_REQUIRED 1u
/* DURATION: "off" is accepted too and stored as 0 (the feature is disabled). */
#define VW_CONF_OFF 2u

struct vw_conf_key {
	const char *name;
	enum vw_conf_type type;
	size_t offset;   /* into the section's struct */
	const char *def; /* default as it would be written in the file; NULL = no default */
	unsigned flags;
	long long min, max;  /* INT, DURATION, SIZE; both 0 = unbounded */
	const char *choices; /* ENUM: "a|b|c" */
	const char *help;
};

/* A list of items of one named section kind, e.g. every [camera NAME]. */
struct vw_conf_list {
	void *items;
	size_t n;
};

struct vw_conf_section {
	const char *name; /* "agent" or, for named sections, "camera" in [camera NAME] */
	int named;        /* 0: at most one [name]; 1: any number of [name ID] */
	const struct vw_conf_key *keys;
	size_t nkeys;
	size_t offset;    /* unnamed: offset of the struct in the whole config;
	                     named: offset of a struct vw_conf_list */
	size_t item_size; /* named: size of one item */
	size_t id_offset; /* named: char * receiving ID */
	size_t
	    line_offset; /* int receiving the header's line (both kinds); for later cross-checks */
	int required;    /* unnamed: the section must appear */
	const char *help;
};

struct vw_conf_schema {
	const struct vw_conf_section *sections;
	size_t nsections;
};

/* Error sink: lines "file:line: message" accumulate here (bounded). */
struct vw_conf_errors {
	char text[8192];
	size_t len;
	int count;
};

void vw_conf_error(struct vw_conf_errors *e, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parses path into cfg (zeroed by the caller) and applies defaults. Returns 0, or the
 * number of errors (> 0) with their text in errs; -errno when the file can't be read. */
int vw_conf_load(const struct vw_conf_schema *schema, const char *path, void *cfg,
                 struct vw_conf_errors *errs);
/* Same from a string (unit tests); name is used in messages. */
int vw_conf_load_string(const struct vw_conf_schema *schema, const char *name, const char *text,
                        void *cfg, struct vw_conf_errors *errs);
void vw_conf_free(const struct vw_conf_schema *schema, void *cfg);
/* Writes the reference (every section and key with type, default and help) as an
 * annotated example INI file. */
void vw_conf_print_reference(const struct vw_conf_schema *schema, FILE *out);
/* The same reference as man(7) source: a .SS per section, a .TP per key (the body of the
 * CONFIGURATION section of venuewatch-agent.ini(5) and venuewatch-server.ini(5)). */
void vw_conf_print_man(const struct vw_conf_schema *schema, FILE *out);

/* An identifier safe in paths, URLs and logs: [A-Za-z0-9._-], 1..63 chars, not starting with '.'.
 */
int vw_conf_id_valid(const char *s);

/* Helpers for cross-section checks. */
#define VW_CONF_ITEM(list, type, i) (&((type *)(list).items)[i])

/* A duration as the config's own keys take it ("15s", "500ms", "2m", "1h"): 0 or -1. */
int vw_conf_parse_duration(const char *v, long long *ms);

#endif
