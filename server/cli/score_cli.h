/* score_cli: `venuewatch-server score --org O --from F --to T [--explain] [--config FILE]` —
 * the item-3.6 score of an org as the API computes it, printed; with --explain every step
 * (each session's duration, each criterion's held time over its targets, the weakest
 * criterion, the rubric's step). Command line, main thread: it opens the store, runs one
 * read on a loop of its own and closes everything before returning. */
#ifndef VW_SCORE_CLI_H
#define VW_SCORE_CLI_H

#include "cli.h"

/* The 'score' command's handler (ctx: the loaded struct server_conf *) and options. */
int score_cli_run(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);
#define SCORE_CLI_NOPTS 5 /* entries of score_cli_opts (checked where it is defined) */
extern const struct vw_cli_opt score_cli_opts[SCORE_CLI_NOPTS];

#endif
