/* register_cli: 'register import --kind K --file F' (a whole register from CSV, all or
 * nothing), 'register list --kind K' and 'register export --kind K' (CSV to stdout) — the
 * command line's way to the registers the API serves. Main thread: opens
 * <state_dir>/inspect.db without a loop (inspect_run_now) and, for an import, auth.db for the
 * audit row; everything is closed before returning. The province's view: no city scope. */
#ifndef VW_REGISTER_CLI_H
#define VW_REGISTER_CLI_H

#include "cli.h"

/* Sizes as constants: admin.c's command table is a static initialiser. */
#define REGISTER_IMPORT_NOPTS 3
#define REGISTER_LIST_NOPTS 2
extern const struct vw_cli_opt register_import_opts[REGISTER_IMPORT_NOPTS];
extern const struct vw_cli_opt register_list_opts[REGISTER_LIST_NOPTS];
/* ctx is the loaded struct server_conf *; the exit code (0, 1 failed, 2 usage). */
int register_cmd_import(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);
int register_cmd_list(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);
int register_cmd_export(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);

#endif
