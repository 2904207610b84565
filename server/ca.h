/* ca: the collector's certificate authority (EC P-256, SHA-256). Creates the CA and the
 * server certificate, and issues agent client certificates whose subject names the site
 * (CN), organisation (O) and city (L). Command-line only: runs on the main thread before
 * (instead of) the loop. Keys are written 0600 and certificates 0644, each through a
 * temporary file and rename, so a crash never leaves half a key. */
#ifndef VW_CA_H
#define VW_CA_H

#include <stddef.h>

#define CA_DAYS 3650 /* the CA: ~10 years, longer than the 3-year evaluation cycle */
#define CA_SERVER_DAYS 825
#define CA_AGENT_DAYS 365

struct ca_issue_opts {
	const char *site; /* CN: [A-Za-z0-9._-], 1-63 characters */
	const char *org;  /* O */
	const char *city; /* L, or NULL */
	const char *out_dir;
	int force; /* replace an existing agent.key in out_dir */
};

/* Writes ca.key, ca.crt, server.key and server.crt into pki_dir (created 0700 if missing).
 * -EEXIST if a CA is already there and !force. */
int ca_init(const char *pki_dir, const char *hostnames, int force, char *err, size_t errlen);
/* Re-issues server.key/server.crt from the existing CA (e.g. after hostnames changed). */
int ca_server(const char *pki_dir, const char *hostnames, char *err, size_t errlen);
/* Writes out_dir/agent.key, agent.crt and ca.crt. serial receives the certificate's serial
 * number in hex (at least 48 bytes). */
int ca_issue(const char *pki_dir, const struct ca_issue_opts *o, char *serial, size_t seriallen,
             char *err, size_t errlen);

/* An O or L value: 1-64 bytes of [A-Za-z0-9._-] or UTF-8 (non-ASCII) characters. */
int ca_name_valid(const char *s);

#endif
