/* metrics: the collector's GET /metrics (issue 14) — the Prometheus text exposition of what
 * the modules already count (tls, ingest, store, events, notify, connections), rendered on
 * each scrape from their stats: no registry of its own to keep in step, nothing counted
 * twice. Also the [metrics] allow list (addresses let in without a token). Loop thread
 * (the sources are the loop thread's; the store's stats are read under its lock). The
 * sources are borrowed; a NULL source leaves its families out. */
#ifndef VW_METRICS_H
#define VW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct tls_server;
struct conn_server;
struct ingest;
struct store;
struct events;
struct notify;

struct metrics_sources {
	const struct tls_server *tls;
	const struct conn_server *conns;
	const struct ingest *ingest;
	struct store *store;
	const struct events *events;
	const struct notify *notify;
	int64_t start_time_ms; /* wall clock, for process_start_time_seconds */
};

/* Writes every family (names venuewatch_server_*, docs/API.md "Metrics"). */
void metrics_render(const struct metrics_sources *src, struct vw_buf *b);

#define METRICS_ALLOW_MAX 16
struct metrics_allow {
	size_t n;
	struct {
		int v6;
		unsigned char addr[16];
		int prefix;
	} net[METRICS_ALLOW_MAX];
};
/* "127.0.0.1, ::1, 10.0.0.0/8": addresses or CIDRs, comma-separated; "" = none. 0, or
 * -EINVAL with the entry at fault in err. */
int metrics_allow_parse(const char *list, struct metrics_allow *out, char *err, size_t errlen);
/* Whether peer ("ip:port", "[v6]:port", as conn_peer gives it) is in the list; an
 * IPv4-mapped IPv6 peer counts as its IPv4 address. */
int metrics_allow_peer(const struct metrics_allow *a, const char *peer);

#endif
