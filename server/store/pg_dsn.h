/* pg_dsn: whether libpq's message about a dsn it could not parse may be shown. libpq
 * quotes the part it failed on, and in a URI (postgresql://user:secret@host/db) or next to
 * a password keyword that part can be the password. Such a dsn gets PG_DSN_UNQUOTED
 * instead; a keyword=value dsn without a password keeps libpq's precise reason. */
#ifndef VW_PG_DSN_H
#define VW_PG_DSN_H

#include <string.h>
#include <strings.h>

#define PG_DSN_UNQUOTED                                                                            \
	"not a valid libpq connection string (libpq's reason is not shown: it can quote a "        \
	"password)"

static inline int pg_dsn_may_quote(const char *dsn)
{
	if (strchr(dsn, '@') || strstr(dsn, "://"))
		return 0;
	for (const char *p = dsn; *p; p++)
		if (strncasecmp(p, "password", 8) == 0)
			return 0;
	return 1;
}

#endif
