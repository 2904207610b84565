/* ca: the collector's certificate authority (EC P-256, SHA-256). Creates the CA and the
 * server certificate, and issues agent client certificates whose subject names the site
 * (CN), organisation (O), city (L) and the agent, one venue machine (UID). Command-line only: runs
 * on the main thread before (instead of) the loop. Keys are written 0600 and certificates 0644,
 * each through a temporary file and rename, so a crash never leaves half a key. ca_sign_csr and
 * ca_crl_write also run in the signer process (signer.c), which alone holds ca.key while the
 * server runs; the network process only reads ca.crt and the CRL. */
#ifndef VW_CA_H
#define VW_CA_H

#include <stddef.h>
#include <stdint.h>

#define CA_DAYS 3650 /* the CA: ~10 years, longer than the 3-year evaluation cycle */
#define CA_SERVER_DAYS 825
#define CA_AGENT_DAYS 365

struct ca_issue_opts {
	const char *site; /* CN: [A-Za-z0-9._-], 1-63 characters */
	/* UID (userId, 0.9.2342.19200300.100.1.1): the venue machine, same syntax; NULL =
	 * site, as a site with one machine has always been. */
	const char *agent;
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

/* Signs an agent's certificate signing request (PEM, proof of possession checked; EC P-256
 * or P-384, or RSA of at least 2048 bits). The CSR's own subject is ignored: the
 * certificate names site, agent (NULL or "" = site), org and city as given (from the
 * enrollment token). *cert_pem and
 * *ca_pem are malloc'ed PEM text (free them); serial as for ca_issue. -EINVAL for a CSR we
 * refuse (err says why), -ENOENT without a CA, -EIO otherwise. Runs in the signer. */
int ca_sign_csr(const char *pki_dir, const char *csr_pem, size_t csr_len, const char *site,
                const char *agent, const char *org, const char *city, char **cert_pem,
                char **ca_pem, char *serial, size_t seriallen, int64_t *not_after_ms, char *err,
                size_t errlen);

struct ca_revoked {
	const char *serial; /* hex */
	int64_t revoked_ms;
};
/* Writes pki_dir/ca.crl (v2, signed by the CA, next update at the CA's expiry so it never
 * goes stale between revocations) listing every entry. */
int ca_crl_write(const char *pki_dir, const struct ca_revoked *list, size_t n, char *err,
                 size_t errlen);
/* 1 when crl_path holds a CRL that pki_dir/ca.crt's key signed and that lists every serial
 * of list; 0 when it is missing, unreadable, someone else's or misses one (a revocation
 * committed before a crash that came before the CRL was rewritten). Needs no private key. */
int ca_crl_covers(const char *pki_dir, const char *crl_path, const struct ca_revoked *list,
                  size_t n);
/* Parses a serial as typed by a person (hex, any case, optional 0x and colons) into the
 * form ca_issue prints. 0 or -EINVAL. */
int ca_serial_normalize(const char *in, char *out, size_t outlen);

#endif
