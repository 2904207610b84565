/* draw_cli: 'draw create | commit | execute | replace | publish | show | export | verify' —
 * the command line's way through a draw's states, on the same run functions as the API
 * (server/inspect/draws.c) with inspect.db opened without a loop. 'draw commit' makes the
 * bureau's secret (RAND_bytes) and writes it to a 0600 file, storing only its commitment;
 * 'draw execute' reads the window's exam sessions from the results store as the API does.
 * 'draw verify' needs no configuration and no database. Main thread; each command opens what
 * it needs and closes it before returning. */
#ifndef VW_DRAW_CLI_H
#define VW_DRAW_CLI_H

#include "cli.h"

#define DRAW_CREATE_NOPTS 3
#define DRAW_COMMIT_NOPTS 6
#define DRAW_EXECUTE_NOPTS 3
#define DRAW_REPLACE_NOPTS 5
#define DRAW_PUBLISH_NOPTS 1
#define DRAW_EXPORT_NOPTS 1
#define DRAW_VERIFY_NOPTS 2
extern const struct vw_cli_opt draw_create_opts[DRAW_CREATE_NOPTS];
extern const struct vw_cli_opt draw_commit_opts[DRAW_COMMIT_NOPTS];
extern const struct vw_cli_opt draw_execute_opts[DRAW_EXECUTE_NOPTS];
extern const struct vw_cli_opt draw_replace_opts[DRAW_REPLACE_NOPTS];
extern const struct vw_cli_opt draw_publish_opts[DRAW_PUBLISH_NOPTS];
extern const struct vw_cli_opt draw_export_opts[DRAW_EXPORT_NOPTS];
extern const struct vw_cli_opt draw_verify_opts[DRAW_VERIFY_NOPTS];

/* ctx is the loaded struct server_conf * (NULL for verify); the exit code: 0, 1 failed (verify:
 * does not match), 2 usage (verify: usage or I/O). */
int draw_cmd_create(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);
int draw_cmd_commit(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);
int draw_cmd_execute(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);
int draw_cmd_replace(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);
int draw_cmd_publish(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);
int draw_cmd_show(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);
int draw_cmd_export(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);
/* Runs without a configuration: main calls it before loading one. */
int draw_cmd_verify(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);

#endif
