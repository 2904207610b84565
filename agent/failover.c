#include "failover.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void failover_init(struct failover *fo, size_t n, long failback_after_ms, long backoff_min_ms,
                   long backoff_max_ms)
{
	memset(fo, 0, sizeof(*fo));
	fo->n = n < 1 ? 1 : n > VW_FAILOVER_MAX ? VW_FAILOVER_MAX : n;
	fo->failback_after_ms = failback_after_ms;
	fo->backoff_min_ms = backoff_min_ms;
	fo->backoff_max_ms = backoff_max_ms;
}

long failover_failed(struct failover *fo, int64_t now_ms, long retry_after_ms, uint64_t rnd)
{
	struct failover_url *u = &fo->urls[fo->cur];
	u->failures++;
	u->failed_at_ms = now_ms;
	/* Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"), per URL: many
	 * venues leaving one dead collector must not come back to it in step. */
	long cap = fo->backoff_min_ms << (u->failures < 12 ? u->failures : 12);
	if (cap > fo->backoff_max_ms)
		cap = fo->backoff_max_ms;
	long wait = fo->backoff_min_ms / 2 + (long)(rnd % (uint64_t)(cap > 0 ? cap : 1));
	if (retry_after_ms >= 0) {
		/* The collector said when it can take more: believe it, within our own cap of an
		 * hour (a broken header must not park a URL for days). */
		wait = retry_after_ms > 3600000 ? 3600000 : retry_after_ms;
	}
	u->retry_at_ms = now_ms + wait;
	size_t best = fo->cur;
	for (size_t k = 1; k <= fo->n; k++) {
		size_t i = (fo->cur + k) % fo->n;
		if (fo->urls[i].retry_at_ms <= now_ms) {
			best = i;
			break;
		}
		if (fo->urls[i].retry_at_ms < fo->urls[best].retry_at_ms)
			best = i;
	}
	fo->cur = best;
	int64_t d = fo->urls[best].retry_at_ms - now_ms;
	return d > 0 ? (long)d : 0;
}

void failover_succeeded(struct failover *fo)
{
	fo->urls[fo->cur].failures = 0;
}

int failover_failback(struct failover *fo, int64_t now_ms)
{
	const struct failover_url *p = &fo->urls[0];
	if (fo->cur == 0 || now_ms < p->failed_at_ms + fo->failback_after_ms ||
	    now_ms < p->retry_at_ms)
		return 0;
	fo->cur = 0;
	return 1;
}

int failover_split(const char *list, char **items, size_t max)
{
	size_t n = 0;
	for (const char *p = list ? list : ""; *p;) {
		p += strspn(p, ", \t");
		size_t len = strcspn(p, ", \t");
		if (!len)
			break;
		if (n == max) {
			while (n)
				free(items[--n]);
			return -E2BIG;
		}
		items[n] = strndup(p, len);
		if (!items[n]) {
			while (n)
				free(items[--n]);
			return -ENOMEM;
		}
		n++;
		p += len;
	}
	return n ? (int)n : -EINVAL;
}
