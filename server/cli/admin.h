/* admin: the collector's subcommands, in one table (common/cli.h) — ca init|server|issue,
 * enroll-token, revoke, token create|revoke|list, audit, session import|list (exams_cli.c) —
 * and the audit and certificate
 * records that follow a 'ca' command. Command line only, main thread, before (instead of) the loop.
 * Each command opens the auth database itself and closes it before returning; every action that
 * changes who may do what is written to the audit log in the same run. Also, at signer's start-up,
 * the CRL's re-creation when missing or behind the revocations. */
#ifndef VW_ADMIN_H
#define VW_ADMIN_H

#include "auth.h"
#include "ca.h"
#include "cli.h"
#include "server_conf.h"

/* The subcommands; each handler takes the loaded struct server_conf * as ctx and returns
 * the process exit code (0, 1 failed, 2 usage). */
extern const struct vw_cli_cmd admin_cmds[];
extern const size_t admin_ncmds;

/* Opens cfg's auth database (creating the state dir). NULL after printing why. An audit
 * chain that no longer reaches its anchor (auth.h) is refused unless for_audit (the
 * 'audit' command, which shows it). */
struct auth *admin_open(struct server_conf *cfg, int for_audit);
/* After a successful 'ca ACTION': records the certificate ('issue'), writes the CRL
 * ('init'), and appends the audit row. 0, or 1 after printing why. */
int admin_ca_done(struct server_conf *cfg, struct auth *au, const char *action,
                  const struct ca_issue_opts *o, const char *serial);

/* The signer's start-up (signer.c: the one process of a running server that holds ca.key):
 * rewrites ca.crl from the revocations on record unless it is there, signed by the CA and
 * lists every one — missing (a pki directory from before revocation existed, or a deleted
 * CRL) or behind (a 'revoke' that committed and then crashed before writing it). 0, or
 * -EIO after logging why (the server then warns and runs with what it has). */
int admin_crl_ensure(struct server_conf *cfg, struct auth *au);

#endif
