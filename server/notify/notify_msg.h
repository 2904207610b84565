/* notify_msg: the pure half of notifications — a problem event parsed from its JSON, the
 * sink filters (severity, scope, event types), the Chinese message and each robot's body,
 * DingTalk's request signature, the per-sink token bucket, the retry schedule and the
 * verdict on a robot's reply. No I/O and no clock of its own (times are passed in), so
 * tests/unit/test_notify.c checks all of it directly. Any thread; the caller owns every
 * buffer. */
#ifndef VW_NOTIFY_MSG_H
#define VW_NOTIFY_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "result.h"

enum notify_type { NOTIFY_WEBHOOK, NOTIFY_DINGTALK, NOTIFY_WECOM };
#define NOTIFY_TYPES "webhook|dingtalk|wecom"
/* The contract's severities, in rank order (shared16.md "Problems"). */
enum notify_severity { NOTIFY_MINOR, NOTIFY_MAJOR, NOTIFY_CRITICAL };
#define NOTIFY_SEVERITIES "minor|major|critical"

/* Event types a sink may ask for ([notify NAME] events). */
#define NOTIFY_EV_OPENED 1u
#define NOTIFY_EV_CLOSED 2u
#define NOTIFY_EV_ACKED 4u
#define NOTIFY_EV_UPDATED 8u
/* The event's bit for a hub type ("problem_opened" ...), 0 for any other type. */
unsigned notify_event_bit(const char *type);
/* "opened", "closed", "acked", "updated" for a single bit. */
const char *notify_event_word(unsigned bit);
/* "opened,closed" -> the mask; -EINVAL naming the bad word in err. */
int notify_events_parse(const char *s, unsigned *mask, char *err, size_t errlen);

#define NOTIFY_FAULTS_MAX 16
/* A problem as the event's data carries it (the contract's problem JSON). */
struct notify_problem {
	int64_t id;
	char site[64], org[65], city[129], agent[64];
	char kind[16], target[VW_NAME_MAX + 1];
	char state[8], status[16], worst[16], severity[16];
	char faults[NOTIFY_FAULTS_MAX][VW_NAME_MAX];
	unsigned nfaults;
	int64_t start_ms, end_ms; /* end_ms 0: still open */
	int64_t duration_s;
	int in_session;
	int acked;
	char ack_by[128], ack_message[512];
	int64_t ack_ms;
};
/* 0, or -EINVAL with the field that is missing or malformed named in err. Strings longer
 * than their field are refused, not cut. */
int notify_problem_parse(const char *json, struct notify_problem *p, char *err, size_t errlen);
/* The rank of "minor"/"major"/"critical" (enum notify_severity), -1 for anything else. */
int notify_severity_rank(const char *s);

/* [notify NAME] scope: province, city:NAME, org:NAME or site:NAME. */
enum notify_scope_kind {
	NOTIFY_SCOPE_PROVINCE,
	NOTIFY_SCOPE_CITY,
	NOTIFY_SCOPE_ORG,
	NOTIFY_SCOPE_SITE
};
struct notify_scope {
	enum notify_scope_kind kind;
	char value[130];
};
int notify_scope_parse(const char *s, struct notify_scope *out, char *err, size_t errlen);
int notify_scope_match(const struct notify_scope *sc, const struct notify_problem *p);

/* The highest severity the problem reached, as a rank: its severity (which the feed never
 * lowers), and at least what its worst status gives (down: major), should a later event
 * carry a lower one. */
int notify_reached_rank(const struct notify_problem *p);

/* What one sink, by its settings alone, makes of one problem event (bit):
 * NOTIFY_WANT_EVENT    a notification of this event;
 * NOTIFY_WANT_IF_TOLD  that notification only if the sink was told the problem opened (its
 *                      'opened' notification is pending or sent) — closed, acked and
 *                      updated for a sink that asks for openings, whatever the severity now;
 * NOTIFY_WANT_OPENED   (updated, still open, at the sink's severity) an opening too, for a
 *                      problem that reaches the sink's min_severity only now; the store's
 *                      key drops it when the opening was there already.
 * A sink that does not ask for openings gets closed/acked/updated when the problem reached
 * its min_severity. Out of scope or an event it does not ask for: 0. */
#define NOTIFY_WANT_EVENT 1u
#define NOTIFY_WANT_IF_TOLD 2u
#define NOTIFY_WANT_OPENED 4u
unsigned notify_wants(unsigned events, int min_rank, const struct notify_scope *sc,
                      const struct notify_problem *p, unsigned bit);

/* "N/min" (or "N/h", "N/s") -> events per minute; "off" or "0" -> 0 (no limit). */
int notify_rate_parse(const char *s, double *per_min, char *err, size_t errlen);

/* The message for people, in Chinese markdown (both robots render it; the webhook carries
 * it as "text"): what happened, site, org, city, target, faults, start, severity, duration
 * once closed, the ack, and the dashboard link when public_url is set. suppressed > 0 adds
 * a line counting the sink's notifications dropped over its queue bound since its last
 * message. Control characters and markdown markup in names are neutralised, and so is a
 * bare URL ("https://x" becomes "https:∕∕x", U+2215), which the robots would make a link. Never a
 * thumbnail or a token: the problem JSON holds neither, and only its named fields are used. */
int notify_format_text(const struct notify_problem *p, unsigned event, const char *public_url,
                       int64_t suppressed, struct vw_buf *title, struct vw_buf *text);
/* The request body for the sink's type: DingTalk/WeCom markdown messages, or the webhook's
 * {"event","event_id","sink","title","text","url","suppressed","problem":{...}}. */
int notify_format_body(enum notify_type type, const char *sink, const struct notify_problem *p,
                       unsigned event, int64_t event_id, const char *public_url, int64_t suppressed,
                       struct vw_buf *out);

/* DingTalk's signed robot (加签): base64(HMAC-SHA256(key = secret, msg = "<ts_ms>\n<secret>")),
 * then URL-encoded, as its documentation builds it; goes into &timestamp=<ts_ms>&sign=<out>.
 * 0, or -ENOSPC / -EIO. */
int notify_dingtalk_sign(const char *secret, int64_t ts_ms, char *out, size_t outlen);

/* Token bucket: burst tokens, refilled at per_min a minute. take answers 0 (a token was
 * taken) or how many ms until one is there (nothing taken). per_min 0 = no limit. */
struct notify_bucket {
	double tokens, burst, per_ms;
	int64_t at_ms;
};
void notify_bucket_init(struct notify_bucket *b, double per_min, double burst, int64_t now_ms);
int64_t notify_bucket_take(struct notify_bucket *b, int64_t now_ms);

/* Delay before retry number attempt (1 = after the first failure): base x 2^(attempt-1),
 * at most max, then "equal jitter" — half of it fixed, half drawn from rnd — so retries of
 * many sinks after one outage spread out instead of arriving together. */
int64_t notify_backoff_ms(unsigned attempt, int64_t base_ms, int64_t max_ms, uint32_t rnd);

/* Whether a reply means delivered: HTTP 2xx, and for DingTalk/WeCom a JSON body whose
 * errcode is 0 (both answer HTTP 200 with errcode != 0 for a bad token, a bad sign or their
 * own rate limit). 1 = delivered; 0 with why in err. */
int notify_reply_ok(enum notify_type type, long http_status, const char *body, size_t len,
                    char *err, size_t errlen);

/* Chinese label of a code of group g (common/result.c's table; the code when unknown). */
const char *notify_label_zh(enum vw_label_group g, const char *code);

#endif
