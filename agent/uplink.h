/* uplink: sends the outbox to the collector over mutual TLS, in seq order, one batch in
 * flight, and releases rows only after the server acknowledged their seq. libcurl's multi
 * interface, driven by the libuv loop through curluv; everything here
 * runs on the loop thread. Batches are bounded by count and bytes and sent gzip-compressed
 * on a kept-alive connection. Transient failures back off exponentially with full jitter;
 * a refusal (401/403, certificate refused, or an ack for seqs this outbox never handed out)
 * stops uploads until SIGHUP, restart or a change of the certificate file, which also drops
 * the connections that presented the refused certificate. Nothing is dropped here (only the
 * outbox's counted bound drops rows). See docs/DELIVERY.md. */
#ifndef VW_UPLINK_H
#define VW_UPLINK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agent_conf.h"
#include "curluv.h"
#include "outbox.h"

struct uplink;

/* How an upload attempt ended (venuewatch_agent_uploads_total{outcome}): acked (every row
 * sent acknowledged), partial (fewer), refused (stops uploads, see above), http_error
 * (408/429/5xx and other retried codes), transport_error (connect, TLS, timeout),
 * bad_ack (a 200 whose reply cannot be used, or names another epoch), epoch_renewed
 * (collector ahead of this outbox), local_error (outbox or compression failed here). */
enum uplink_outcome {
	UPLINK_ACKED,
	UPLINK_PARTIAL,
	UPLINK_REFUSED,
	UPLINK_HTTP_ERROR,
	UPLINK_TRANSPORT_ERROR,
	UPLINK_BAD_ACK,
	UPLINK_EPOCH_RENEWED,
	UPLINK_LOCAL_ERROR,
	UPLINK_OUTCOME_COUNT
};
const char *uplink_outcome_name(enum uplink_outcome o);
/* Attempts that ended with o since uplink_create (0 for a NULL uplink). Loop thread. */
uint64_t uplink_outcome_count(const struct uplink *up, enum uplink_outcome o);

int uplink_create(uv_loop_t *loop, struct curluv *cu, const struct agent_conf *cfg,
                  struct outbox *ob, struct uplink **out);
/* The collector's TLS settings (mutual TLS, TLS 1.2+, https only) on an easy handle. */
void uplink_tls_setopt(CURL *e, const struct agent_conf *cfg);
/* New rows are waiting: send now unless a request is in flight or a backoff runs. */
void uplink_kick(struct uplink *up);
/* 1 when the last upload reached the collector and was acknowledged, 0 when it did not,
 * -1 before the first attempt ended. */
int uplink_connected(const struct uplink *up);
/* The [collector] url in use now, and how often it changed since start. Loop thread. */
const char *uplink_collector(const struct uplink *up);
/* The same, for a callback (sessions_fetch_follow): up is a struct uplink. */
const char *uplink_collector_of(void *up);
uint64_t uplink_switches(const struct uplink *up);
/* After an operator's SIGHUP: retry now, also when refused or backing off. */
void uplink_resume(struct uplink *up);
/* Aborts any request (its rows stay in the outbox), closes handles; closed_cb follows. */
void uplink_stop(struct uplink *up, void (*closed_cb)(void *), void *arg);
void uplink_destroy(struct uplink **up);
/* Reads the collector's {"acked_seq": N, "epoch": E} reply. 0 with *ack set when N is an
 * integer in [0, next_seq-1]; -ESTALE when the reply names an epoch other than ours (NULL:
 * not checked; a reply without one is a collector from before epochs); -ERANGE (with *ack)
 * when N is beyond what this outbox produced; -EBADMSG when the reply is not JSON or N is
 * missing, not a number, negative, fractional or above 2^53-1. why gets the reason for the
 * log. Pure: any thread. */
/* issue 16 (A): the batch's "cadence_ms": the camera check interval in force now (the
 * in-session one while any exam session runs), clamped to 1 s .. 1 day. Any thread. */
int64_t uplink_cadence_ms(const struct agent_conf *cfg);
int uplink_parse_ack(const char *body, size_t len, int64_t next_seq, const char *epoch,
                     int64_t *ack, char *why, size_t wl);

#endif
