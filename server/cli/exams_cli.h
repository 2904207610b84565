/* exams_cli: 'session import --file plan.csv' (an org's 认定计划, all or nothing) and
 * 'session list' — the command line's way to the exam sessions the API serves. Main
 * thread, instead of the server's loop: each command opens the store (and auth.db) itself,
 * runs a loop of its own until its write or read is answered, and closes everything
 * before returning. Writes go through the store's own write path (store_write_submit). */
#ifndef VW_EXAMS_CLI_H
#define VW_EXAMS_CLI_H

#include "cli.h"

/* Sizes as constants: admin.c's command table is a static initialiser. */
#define EXAMS_IMPORT_NOPTS 3
#define EXAMS_LIST_NOPTS 3
extern const struct vw_cli_opt exams_import_opts[EXAMS_IMPORT_NOPTS];
extern const struct vw_cli_opt exams_list_opts[EXAMS_LIST_NOPTS];
/* ctx is the loaded struct server_conf *; the exit code (0, 1 failed, 2 usage). */
int exams_cmd_import(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);
int exams_cmd_list(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);

#endif
