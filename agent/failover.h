/* failover: which collector URL the uplink sends to. Pure policy, no I/O: the caller passes
 * the time and a random number, so the unit test drives every path (503, connection errors,
 * failback) without a server. Sticky: the current URL stays until a connection-level
 * failure or a 503; a failed URL waits out its own backoff (or its Retry-After); the first
 * URL is preferred again failback_after after it failed. Loop thread; the caller owns it. */
#ifndef VW_FAILOVER_H
#define VW_FAILOVER_H

#include <stddef.h>
#include <stdint.h>

#define VW_FAILOVER_MAX 8

struct failover_url {
	int64_t retry_at_ms;  /* not tried before this (its backoff or Retry-After) */
	int64_t failed_at_ms; /* last failover-worthy failure, 0: never */
	int failures;         /* consecutive */
};

struct failover {
	size_t n, cur;
	long failback_after_ms;
	long backoff_min_ms, backoff_max_ms;
	struct failover_url urls[VW_FAILOVER_MAX];
};

void failover_init(struct failover *fo, size_t n, long failback_after_ms, long backoff_min_ms,
                   long backoff_max_ms);
/* The current URL failed at a connection level or with a 503 (retry_after_ms >= 0: its
 * Retry-After). Moves to the next URL not backing off (in order, wrapping), else to the one
 * free soonest. Returns the ms to wait before the next attempt (0: try now). rnd: any
 * random number, for the full-jitter backoff. */
long failover_failed(struct failover *fo, int64_t now_ms, long retry_after_ms, uint64_t rnd);
/* The current URL answered (any HTTP reply but 503): its failures are forgotten. */
void failover_succeeded(struct failover *fo);
/* Before an attempt: 1 when the first URL is due again (failback_after since it failed, and
 * its backoff over) and becomes current, else 0. */
int failover_failback(struct failover *fo, int64_t now_ms);
/* Splits a comma- or space-separated list into at most max strdup'd items (caller frees).
 * Returns the count, or -E2BIG / -ENOMEM / -EINVAL (empty). */
int failover_split(const char *list, char **items, size_t max);

#endif
