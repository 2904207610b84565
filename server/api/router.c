#include "router.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"

/* One segment of a pattern against one of the path. Both end at '/' or NUL. */
static int segment(const char *pat, size_t pl, const char *seg, size_t sl, struct router_match *m)
{
	if (pl >= 2 && pat[0] == '{' && pat[pl - 1] == '}') {
		if (m->nparams >= ROUTER_MAX_PARAMS || sl == 0 || sl >= ROUTER_PARAM_LEN)
			return 0;
		char *dst = m->params[m->nparams];
		memcpy(dst, seg, sl);
		dst[sl] = '\0';
		/* Validated here, once, for every handler: a parameter is an id or no match. */
		if (!vw_conf_id_valid(dst))
			return 0;
		m->names[m->nparams] = pat + 1;
		m->name_len[m->nparams] = pl - 2;
		m->nparams++;
		return 1;
	}
	return pl == sl && memcmp(pat, seg, pl) == 0;
}

static int path_matches(const char *pat, const char *path, struct router_match *m)
{
	m->nparams = 0;
	for (;;) {
		const char *pe = strchr(pat, '/'), *se = strchr(path, '/');
		size_t pl = pe ? (size_t)(pe - pat) : strlen(pat);
		size_t sl = se ? (size_t)(se - path) : strlen(path);
		if (!segment(pat, pl, path, sl, m))
			return 0;
		if (!pe || !se)
			return !pe && !se; /* both ended: a trailing '/' is a different path */
		pat = pe + 1;
		path = se + 1;
	}
}

static unsigned verb_bit(enum http_verb v)
{
	switch (v) {
	case HTTP_VERB_GET:
	case HTTP_VERB_HEAD:
		return ROUTER_ALLOW_GET;
	case HTTP_VERB_POST:
		return ROUTER_ALLOW_POST;
	case HTTP_VERB_DELETE:
		return ROUTER_ALLOW_DELETE;
	case HTTP_VERB_PATCH:
		return ROUTER_ALLOW_PATCH;
	case HTTP_VERB_OTHER:
		break;
	}
	return 0;
}

enum router_result router_match(const struct router_route *table, size_t n, enum http_verb verb,
                                const char *path, struct router_match *m)
{
	memset(m, 0, sizeof(*m));
	unsigned want = verb_bit(verb);
	struct router_match tmp;
	for (size_t i = 0; i < n; i++) {
		memset(&tmp, 0, sizeof(tmp));
		if (!path_matches(table[i].pattern, path, &tmp))
			continue;
		unsigned bit = verb_bit(table[i].verb);
		m->allow |= bit;
		if (!m->route && want && bit == want) {
			unsigned allow = m->allow;
			*m = tmp;
			m->allow = allow;
			m->route = &table[i];
		}
	}
	if (m->route)
		return ROUTER_FOUND;
	return m->allow ? ROUTER_NO_METHOD : ROUTER_NO_PATH;
}

const char *router_param(const struct router_match *m, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < m->nparams; i++)
		if (m->name_len[i] == nl && memcmp(m->names[i], name, nl) == 0)
			return m->params[i];
	return NULL;
}

int router_allow_header(unsigned allow, char *out, size_t outlen)
{
	static const struct {
		unsigned bit;
		const char *name;
	} verbs[] = {{ROUTER_ALLOW_GET, "GET, HEAD"},
	             {ROUTER_ALLOW_POST, "POST"},
	             {ROUTER_ALLOW_PATCH, "PATCH"},
	             {ROUTER_ALLOW_DELETE, "DELETE"}};
	int n = snprintf(out, outlen, "Allow: ");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]) && n >= 0 && (size_t)n < outlen;
	     i++) {
		if (!(allow & verbs[i].bit))
			continue;
		int first = n == (int)sizeof("Allow: ") - 1;
		n +=
		    snprintf(out + n, outlen - (size_t)n, "%s%s", first ? "" : ", ", verbs[i].name);
	}
	if (n >= 0 && (size_t)n < outlen)
		n += snprintf(out + n, outlen - (size_t)n, "\r\n");
	return n < 0 || (size_t)n >= outlen ? -ENOSPC : 0;
}
