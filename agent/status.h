/* status: `venuewatch-agent status` — the venue's current health for venue staff, read
 * from the local outbox database (read-only; safe while the agent runs, thanks to WAL).
 * Runs on the main thread of a short-lived process. */
#ifndef VW_STATUS_H
#define VW_STATUS_H

#include <stdio.h>

#include "agent_conf.h"

/* Prints the table; returns 0, or -errno when the database cannot be read. */
int status_print(const struct agent_conf *cfg, FILE *out);

#endif
