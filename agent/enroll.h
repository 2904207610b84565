/* enroll: 'venuewatch-agent enroll --token T' — makes this venue's key and a certificate
 * signing request locally, posts the CSR with the one-time token to the collector
 * (POST /api/v1/enroll, the collector verified against [collector] ca), and installs the
 * signed certificate at [collector] cert and the key at [collector] key (0600). The key
 * never leaves the machine; nothing is written unless the collector signed. Command line
 * only: main thread, blocking, before (instead of) the loop. */
#ifndef VW_ENROLL_H
#define VW_ENROLL_H

#include <stddef.h>

#include "agent_conf.h"

/* token: the enrollment token, or "-" to read it from standard input (keeps it out of
 * the process list and shell history). 0, or -errno with err saying why. */
int enroll_run(const struct agent_conf *cfg, const char *token, char *err, size_t errlen);

#endif
