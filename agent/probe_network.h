/* probe_network: is the connection to the collector and the platform smooth? Rounds of
 * fresh HTTPS connections per target (libcurl through curluv, on the loop thread): the TCP
 * handshake time is one round trip, so a round gives rtt p50/p95, jitter and loss (a
 * failed sample, or a handshake that needed a retransmission); DNS, TLS and first-byte
 * times come along. Now and then a bounded upload to the collector measures the uplink,
 * compared with what the cameras' streams need. Results go to result_cb. */
#ifndef VW_PROBE_NETWORK_H
#define VW_PROBE_NETWORK_H

#include <uv.h>

#include "agent_conf.h"
#include "curluv.h"
#include "result.h"

struct netprobe;

typedef void (*netprobe_result_cb)(void *arg, struct vw_result *results, size_t n);
/* The uplink the cameras need right now (sum of measured bitrates), kbit/s. */
typedef double (*netprobe_need_cb)(void *arg);

int netprobe_create(uv_loop_t *loop, struct curluv *cu, const struct agent_conf *cfg,
                    netprobe_result_cb cb, netprobe_need_cb need, void *arg, struct netprobe **out);
/* issue 13: the collector target and the uplink test follow collector(arg), the [collector]
 * url the uplink sends to now (uplink_collector_of), from the next round on. Without it the
 * primary is measured. */
void netprobe_follow(struct netprobe *np, const char *(*collector)(void *arg), void *arg);
int netprobe_start(struct netprobe *np);
/* One round of every target (and one uplink test) now; done_cb after the last result. */
int netprobe_run_once(struct netprobe *np, void (*done_cb)(void *), void *arg);
void netprobe_stop(struct netprobe *np, void (*closed_cb)(void *), void *arg);
void netprobe_destroy(struct netprobe **np);

#endif
