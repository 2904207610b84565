#include "uplink.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "failover.h"
#include "log.h"
#include "sessions.h"
#include "vtime.h"

#define UPLINK_BACKOFF_MIN_MS 500
#define UPLINK_RESPONSE_MAX (64 * 1024)
/* Clock skew is re-reported at most this often while it lasts. */
#define UPLINK_SKEW_REPORT_MS (3600 * 1000)
/* A refusal is logged again this often while it lasts, so it is never a single line that
 * scrolled away; hourly keeps the journal readable. */
#define UPLINK_REFUSED_REMIND_MS (3600 * 1000)
/* While refused, the certificate file is looked at this often (a stat): a new one (enroll
 * renames it into place) retries without anyone signalling the agent. */
#define UPLINK_CERT_POLL_MS 2000

/* REFUSED: the collector said no to this agent (401/403, certificate refused). Retrying
 * cannot fix that, so we stop until an operator acts (SIGHUP, restart, or a new certificate
 * file, e.g. from 'venuewatch-agent enroll'); data is kept. */
enum uplink_state { UP_IDLE, UP_SENDING, UP_BACKOFF, UP_REFUSED, UP_STOPPED };

struct uplink {
	uv_loop_t *loop;
	const struct agent_conf *cfg;
	struct outbox *ob;
	struct curluv *cu;
	CURL *easy; /* reused: keeps the TLS connection alive between batches */
	/* The uplink's own connection cache (not the shared multi's), so a refusal can drop
	 * every connection that presented the refused certificate. */
	CURLSH *share;
	struct curl_slist *headers;
	uv_timer_t retry_timer;
	uv_fs_poll_t cert_poll; /* runs while refused */
	int handles_open;       /* retry_timer, cert_poll: closed_cb after both close */
	enum uplink_state state;
	char url[1024];
	struct failover fo; /* which of [collector] urls; see failover.h */
	uint64_t switches;  /* collector changes since start */
	struct vw_buf body; /* JSON batch */
	struct vw_buf gz;   /* the same, gzip-compressed: what goes on the wire */
	struct vw_buf response;
	z_stream zs;
	int zs_ready;
	const char *status; /* last state written to the outbox status table */
	int64_t skew_ms;
	int skewed;
	int64_t skew_reported_ms;
	int64_t batch_last_seq;
	size_t batch_count;
	int64_t acked_seq; /* everything <= this is gone from the outbox */
	long backoff_ms;
	int failures;
	int connected;     /* -1 unknown, else whether the last request was acknowledged */
	int epoch_renewed; /* this run drew a new epoch (collector ahead of the outbox) */
	uint64_t outcomes[UPLINK_OUTCOME_COUNT]; /* upload attempts by how they ended */
	uint64_t rng;
	void (*closed_cb)(void *);
	void *closed_arg;
	char errbuf[CURL_ERROR_SIZE];
	/* The fatal TLS alert the collector sent during this request (its description,
	 * RFC 8446 6.2), or -1: recorded by OpenSSL's info callback on the connection. */
	int tls_alert;
};

static void send_batch(struct uplink *up);

/* Points the request at the current collector and tells `status` which one it is. */
static void set_url(struct uplink *up)
{
	const char *base = up->cfg->collector.urls[up->fo.cur];
	size_t bl = strlen(base);
	snprintf(up->url, sizeof(up->url), "%.*s/api/v1/ingest",
	         (int)(bl && base[bl - 1] == '/' ? bl - 1 : bl), base);
	if (up->easy)
		curl_easy_setopt(up->easy, CURLOPT_URL, up->url);
	outbox_set_status(up->ob, "collector", base);
}

/* Failures another collector may not share: it could not be reached, the connection
 * broke, or the TLS handshake failed (a refusal of our certificate was sorted out before).
 * By curl's result code, never its text. */
static int connection_failure(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		return 1;
	default:
		return 0;
	}
}

/* The label values of venuewatch_agent_uploads_total (docs/METRICS.md). */
static const char *const outcome_names[UPLINK_OUTCOME_COUNT] = {
    [UPLINK_ACKED] = "acked",
    [UPLINK_PARTIAL] = "partial",
    [UPLINK_REFUSED] = "refused",
    [UPLINK_HTTP_ERROR] = "http_error",
    [UPLINK_TRANSPORT_ERROR] = "transport_error",
    [UPLINK_BAD_ACK] = "bad_ack",
    [UPLINK_EPOCH_RENEWED] = "epoch_renewed",
    [UPLINK_LOCAL_ERROR] = "local_error",
};

const char *uplink_outcome_name(enum uplink_outcome o)
{
	return (unsigned)o < UPLINK_OUTCOME_COUNT ? outcome_names[o] : "unknown";
}

uint64_t uplink_outcome_count(const struct uplink *up, enum uplink_outcome o)
{
	return up && (unsigned)o < UPLINK_OUTCOME_COUNT ? up->outcomes[o] : 0;
}

static uint64_t next_rand(struct uplink *up)
{
	up->rng ^= up->rng << 13;
	up->rng ^= up->rng >> 7;
	up->rng ^= up->rng << 17;
	return up->rng;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct uplink *up = userdata;
	if (vw_buf_append(&up->response, ptr, size * nmemb))
		return 0; /* a collector that answers megabytes is not one we trust */
	return size * nmemb;
}

/* ---- batches, acks and backoff ---- */

int uplink_parse_ack(const char *body, size_t len, int64_t next_seq, const char *epoch,
                     int64_t *ack, char *why, size_t wl)
{
	cJSON *doc = cJSON_ParseWithLength(body, len);
	const cJSON *acked = cJSON_GetObjectItemCaseSensitive(doc, "acked_seq");
	/* A collector from before epochs sends none; its mark is the legacy one, as always. */
	const cJSON *ep = cJSON_GetObjectItemCaseSensitive(doc, "epoch");
	int rc = 0;
	if (doc && epoch && ep && (!cJSON_IsString(ep) || strcmp(ep->valuestring, epoch) != 0)) {
		snprintf(why, wl, "acknowledgement for another epoch");
		rc = -ESTALE;
	} else if (doc && epoch && epoch[0] && !ep) {
		/* We sent an epoch and the reply names none: a collector from before epochs (its
		 * mark is the legacy one, not ours) or a proxy rewriting the body. Releasing rows
		 * on it could drop results that were never stored: keep them and retry. */
		snprintf(why, wl, "reply names no epoch (collector older than epochs?)");
		rc = -ESTALE;
	} else if (!doc) {
		snprintf(why, wl, "reply is not JSON");
		rc = -EBADMSG;
	} else if (!acked) {
		snprintf(why, wl, "reply without acked_seq");
		rc = -EBADMSG;
	} else if (!cJSON_IsNumber(acked) || !(acked->valuedouble >= 0) ||
	           acked->valuedouble > 9007199254740991.0 ||
	           acked->valuedouble != floor(acked->valuedouble)) {
		/* Range first: casting a double outside int64_t is undefined behaviour, and a
		 * negative or fractional ack is no seq this outbox ever handed out. */
		snprintf(why, wl, "acked_seq is not an integer in 0..2^53-1");
		rc = -EBADMSG;
	} else {
		*ack = (int64_t)acked->valuedouble;
		if (*ack > next_seq - 1) {
			snprintf(why, wl, "acked_seq %lld beyond the last seq produced (%lld)",
			         (long long)*ack, (long long)next_seq - 1);
			rc = -ERANGE;
		}
	}
	cJSON_Delete(doc);
	return rc;
}

/* Venue staff read this through `venuewatch-agent status`; written only on change. */
static void set_status(struct uplink *up, const char *state, const char *detail)
{
	if (up->status == state)
		return;
	up->status = state;
	outbox_set_status(up->ob, "uplink", state);
	outbox_set_status(up->ob, "uplink_detail", detail);
}

static void on_refused_remind(uv_timer_t *t)
{
	struct uplink *up = t->data;
	if (up->state != UP_REFUSED)
		return;
	log_error(
	    "event=upload_still_refused site=%s pending=%lld pending_from_seq=%lld "
	    "action=\"results kept; fix the certificate (a new file is picked up by itself) or "
	    "the collector's record of this site, then send SIGHUP\"",
	    up->cfg->agent.site, (long long)outbox_pending(up->ob),
	    (long long)outbox_oldest_seq(up->ob));
}

static void on_cert_changed(uv_fs_poll_t *h, int status, const uv_stat_t *prev,
                            const uv_stat_t *curr)
{
	struct uplink *up = h->data;
	(void)prev;
	(void)curr;
	if (status < 0 || up->state != UP_REFUSED)
		return; /* not there (yet): enroll has not finished */
	log_info("event=certificate_changed path=%s action=retry_upload", up->cfg->collector.cert);
	uplink_resume(up);
}

static void refuse(struct uplink *up, const char *reason)
{
	up->state = UP_REFUSED;
	up->connected = 0;
	set_status(up, "refused", reason);
	log_error(
	    "event=upload_refused site=%s reason=\"%s\" pending_from_seq=%lld "
	    "action=\"uploads stopped, results kept; fix the certificate (a new file is picked "
	    "up by itself) or the collector's record of this site, then send SIGHUP\"",
	    up->cfg->agent.site, reason, (long long)outbox_oldest_seq(up->ob));
	uv_timer_start(&up->retry_timer, on_refused_remind, UPLINK_REFUSED_REMIND_MS,
	               UPLINK_REFUSED_REMIND_MS);
	uv_fs_poll_start(&up->cert_poll, on_cert_changed, up->cfg->collector.cert,
	                 UPLINK_CERT_POLL_MS);
}

/* A TLS alert that names our certificate: the collector refused who we are. curl folds
 * every handshake failure into one result code (CURLE_SSL_CONNECT_ERROR, or with TLS 1.3,
 * where the server's verdict on our certificate arrives after our Finished, RECV/SEND_ERROR),
 * so the alert itself comes from OpenSSL (on_tls_info). A connection that fails without
 * such an alert (reset, timeout, the collector's own certificate refused by us) retries. */
static int tls_refusal(CURLcode cc, int alert)
{
	if (cc == CURLE_SSL_CERTPROBLEM)
		return 1; /* our own certificate or key cannot be loaded */
	if (cc != CURLE_SSL_CONNECT_ERROR && cc != CURLE_RECV_ERROR && cc != CURLE_SEND_ERROR)
		return 0;
	switch (alert) {
	case SSL_AD_BAD_CERTIFICATE:
	case SSL_AD_UNSUPPORTED_CERTIFICATE:
	case SSL_AD_CERTIFICATE_REVOKED:
	case SSL_AD_CERTIFICATE_EXPIRED:
	case SSL_AD_UNKNOWN_CA:
	case SSL_AD_ACCESS_DENIED:
	case SSL_AD_CERTIFICATE_REQUIRED:
		return 1;
	default:
		return 0;
	}
}

/* OpenSSL's info callback: keeps the description of a fatal alert the peer sent. */
static void on_tls_info(const SSL *ssl, int where, int ret)
{
	if (!(where & SSL_CB_READ_ALERT) || (ret >> 8) != SSL3_AL_FATAL)
		return;
	struct uplink *up = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	if (up)
		up->tls_alert = ret & 0xff;
}

/* curl builds an SSL_CTX for every new connection (its OpenSSL backend) and hands it here
 * before the handshake. */
static CURLcode on_ssl_ctx(CURL *e, void *ctx, void *arg)
{
	(void)e;
	SSL_CTX_set_app_data((SSL_CTX *)ctx, arg);
	SSL_CTX_set_info_callback((SSL_CTX *)ctx, on_tls_info);
	return CURLE_OK;
}

static void report_skew(struct uplink *up)
{
	int64_t abs_skew = up->skew_ms < 0 ? -up->skew_ms : up->skew_ms;
	int skewed = abs_skew >= up->cfg->collector.max_clock_skew_ms;
	int64_t now = vw_mono_ms();
	if (skewed == up->skewed && (!skewed || now - up->skew_reported_ms < UPLINK_SKEW_REPORT_MS))
		return;
	up->skewed = skewed;
	up->skew_reported_ms = now;
	struct vw_result r;
	vw_result_init(&r, VW_KIND_NETWORK, "collector");
	vw_result_set_metric(&r, VW_M_CLOCK_SKEW_MS, (double)up->skew_ms);
	if (skewed) {
		r.status = VW_STATUS_DEGRADED;
		vw_result_add_fault(&r, VW_FAULT_CLOCK_SKEW);
		log_warn("event=clock_skew skew_ms=%lld hint=\"check times are kept as measured; "
		         "fix NTP on this machine\"",
		         (long long)up->skew_ms);
	} else {
		log_info("event=clock_skew_cleared skew_ms=%lld", (long long)up->skew_ms);
	}
	/* Check times are never rewritten: the skew is evidence of its own. */
	outbox_append(up->ob, &r, 1);
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct uplink *up = userdata;
	size_t n = size * nitems;
	if (n > 5 && n < 128 && strncasecmp(buf, "Date:", 5) == 0) {
		char line[128];
		memcpy(line, buf + 5, n - 5);
		line[n - 5] = '\0';
		time_t t = curl_getdate(line, NULL);
		if (t > 0)
			up->skew_ms = (int64_t)t * 1000 + 500 - vw_now_ms(); /* +500: mid-second */
	}
	return n;
}

static void on_retry(uv_timer_t *t)
{
	struct uplink *up = t->data;
	if (up->state != UP_BACKOFF)
		return;
	up->state = UP_IDLE;
	send_batch(up);
}

static void backoff(struct uplink *up, const char *reason)
{
	up->failures++;
	/* Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): many venues
	 * coming back after one collector outage must not retry in step. */
	long cap = UPLINK_BACKOFF_MIN_MS << (up->failures < 12 ? up->failures : 12);
	if (cap > up->cfg->collector.retry_max_ms)
		cap = up->cfg->collector.retry_max_ms;
	long delay = UPLINK_BACKOFF_MIN_MS / 2 + (long)(next_rand(up) % (uint64_t)cap);
	up->state = UP_BACKOFF;
	up->connected = 0;
	set_status(up, "retrying", reason);
	log_warn("event=upload_failed reason=\"%s\" pending_from_seq=%lld retry_in_ms=%ld "
	         "failures=%d",
	         reason, (long long)outbox_oldest_seq(up->ob), delay, up->failures);
	uv_timer_start(&up->retry_timer, on_retry, (uint64_t)delay, 0);
}

/* A connection failure or a 503: this collector backs off on its own, the next one is
 * tried (with one URL: the same one, after its backoff). */
static void fail_over(struct uplink *up, const char *reason, long retry_after_ms)
{
	size_t from = up->fo.cur;
	long delay = failover_failed(&up->fo, vw_mono_ms(), retry_after_ms, next_rand(up));
	up->failures++;
	up->state = UP_BACKOFF;
	up->connected = 0;
	set_status(up, "retrying", reason);
	if (up->fo.cur != from) {
		up->switches++;
		log_warn("event=collector_switch from=%s to=%s reason=\"%s\" pending_from_seq=%lld "
		         "retry_in_ms=%ld",
		         up->cfg->collector.urls[from], up->cfg->collector.urls[up->fo.cur], reason,
		         (long long)outbox_oldest_seq(up->ob), delay);
		set_url(up);
	} else {
		log_warn("event=upload_failed url=%s reason=\"%s\" pending_from_seq=%lld "
		         "retry_in_ms=%ld failures=%d",
		         up->cfg->collector.urls[from], reason,
		         (long long)outbox_oldest_seq(up->ob), delay, up->failures);
	}
	uv_timer_start(&up->retry_timer, on_retry, (uint64_t)delay, 0);
}

static void handle_response(struct uplink *up, CURLcode cc)
{
	long code = 0;
	char reason[CURL_ERROR_SIZE + 64];
	if (cc != CURLE_OK) {
		snprintf(reason, sizeof(reason), "%s: %s", curl_easy_strerror(cc),
		         up->errbuf[0] ? up->errbuf : "-");
		if (tls_refusal(cc, up->tls_alert)) {
			up->outcomes[UPLINK_REFUSED]++;
			refuse(up, reason);
		} else if (connection_failure(cc)) {
			up->outcomes[UPLINK_TRANSPORT_ERROR]++;
			fail_over(up, reason, -1);
		} else {
			up->outcomes[UPLINK_TRANSPORT_ERROR]++;
			backoff(up, reason);
		}
		return;
	}
	curl_easy_getinfo(up->easy, CURLINFO_RESPONSE_CODE, &code);
	if (up->skew_ms || code)
		report_skew(up);
	if (code == 503) {
		/* The collector is up but cannot store (its database is away): another one
		 * sharing the database may, and this one said when to come back. */
		curl_off_t ra = -1;
		if (curl_easy_getinfo(up->easy, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra <= 0)
			ra = -1;
		snprintf(reason, sizeof(reason), "HTTP 503: %.200s",
		         up->response.len ? vw_buf_cstr(&up->response) : "");
		up->outcomes[UPLINK_HTTP_ERROR]++;
		fail_over(up, reason, ra > 0 ? (long)(ra > 3600 ? 3600000 : ra * 1000) : -1);
		return;
	}
	/* It answered: whatever the reply, it is reachable (other 4xx/5xx would be the same
	 * at any collector, so they are no reason to move). */
	failover_succeeded(&up->fo);
	if (code != 200) {
		snprintf(reason, sizeof(reason), "HTTP %ld: %.200s", code,
		         up->response.len ? vw_buf_cstr(&up->response) : "");
		/* 401/403: not this agent, or not for this site. 400/413/415: the collector
		 * cannot take this batch as it is; resending it unchanged would fail forever, and
		 * dropping it would lose evidence, so both stop and alarm. 408/429/5xx retry. */
		if (code == 401 || code == 403 || code == 400 || code == 413 || code == 415) {
			up->outcomes[UPLINK_REFUSED]++;
			refuse(up, reason);
		} else {
			up->outcomes[UPLINK_HTTP_ERROR]++;
			backoff(up, reason);
		}
		return;
	}
	int64_t ack = 0;
	char why[160];
	int prc =
	    uplink_parse_ack(up->response.data ? up->response.data : "", up->response.len,
	                     outbox_next_seq(up->ob), outbox_epoch(up->ob), &ack, why, sizeof(why));
	char peer[80] = "-";
	if (prc) {
		char *ip = NULL;
		long port = 0;
		curl_easy_getinfo(up->easy, CURLINFO_PRIMARY_IP, &ip);
		curl_easy_getinfo(up->easy, CURLINFO_PRIMARY_PORT, &port);
		snprintf(peer, sizeof(peer), "%s:%ld", ip && ip[0] ? ip : "-", port);
		log_warn("event=upload_bad_ack peer=%s url=%s reason=\"%s\" pending_from_seq=%lld "
		         "action=\"reply refused, rows kept\"",
		         peer, up->url, why, (long long)outbox_oldest_seq(up->ob));
	}
	if (prc == -EBADMSG) {
		/* Nothing in the reply can be trusted: release nothing, try the batch again. */
		up->outcomes[UPLINK_BAD_ACK]++;
		backoff(up, why);
		return;
	}
	if (prc == -ESTALE) {
		/* The mark is per epoch: one for another epoch says nothing about our rows. */
		up->outcomes[UPLINK_BAD_ACK]++;
		backoff(up, why);
		return;
	}
	if (prc == -ERANGE && !up->epoch_renewed) {
		/* The collector's mark for OUR epoch is past anything this outbox handed out:
		 * outbox.db was restored from a backup or a snapshot (same epoch, older next_seq),
		 * or another machine runs a copy of it. Sent under this epoch, every row would be
		 * skipped as a resend until next_seq passes the mark, and then released here: a
		 * silent loss. Under a new epoch the collector stores them, and records the seqs
		 * below the first one as that epoch's gap, in the open. Once per run: a fresh
		 * epoch that is "ahead" too is no restore, and is refused below. */
		char old[33];
		snprintf(old, sizeof(old), "%s", outbox_epoch(up->ob));
		if (outbox_renew_epoch(up->ob) == 0) {
			up->epoch_renewed = 1;
			up->outcomes[UPLINK_EPOCH_RENEWED]++;
			log_warn(
			    "event=outbox_epoch_renewed old=%s new=%s reason=collector_ahead "
			    "collector_mark=%lld next_seq=%lld pending=%lld pending_from_seq=%lld",
			    old[0] ? old : "-", outbox_epoch(up->ob), (long long)ack,
			    (long long)outbox_next_seq(up->ob), (long long)outbox_pending(up->ob),
			    (long long)outbox_oldest_seq(up->ob));
			up->state = UP_IDLE;
			send_batch(up);
			return;
		}
		/* Could not renew: fall through to the refusal, rows kept. */
	}
	if (prc == -ERANGE) {
		/* The collector holds seqs this outbox never handed out, even under an epoch
		 * drawn just now (or a new one could not be stored): refuse and keep the rows
		 * until someone sorts out the identity. */
		snprintf(reason, sizeof(reason),
		         "collector already holds seqs up to %lld (peer %s), this agent produced "
		         "only up to %lld: outbox reset, or another agent uses this site's "
		         "certificate",
		         (long long)ack, peer, (long long)outbox_next_seq(up->ob) - 1);
		up->outcomes[UPLINK_REFUSED]++;
		refuse(up, reason);
		return;
	}
	if (ack > up->batch_last_seq) {
		/* Seqs we produced but did not send in this batch: a previous run sent a larger
		 * batch and died before the ack. Release only what this batch holds. */
		log_info("event=upload_ack_beyond_batch acked_seq=%lld sent_up_to=%lld",
		         (long long)ack, (long long)up->batch_last_seq);
		ack = up->batch_last_seq;
	}
	if (ack > up->acked_seq) {
		int rc = outbox_ack(up->ob, ack);
		if (rc) {
			up->outcomes[UPLINK_LOCAL_ERROR]++;
			backoff(up, "outbox ack failed");
			return;
		}
		up->acked_seq = ack;
	}
	if (up->failures)
		log_info("event=upload_recovered acked_seq=%lld after_failures=%d", (long long)ack,
		         up->failures);
	up->failures = 0;
	up->connected = 1;
	set_status(up, "ok", "");
	log_debug("event=uploaded count=%zu acked_seq=%lld", up->batch_count, (long long)ack);
	up->state = UP_IDLE;
	up->outcomes[ack < up->batch_last_seq ? UPLINK_PARTIAL : UPLINK_ACKED]++;
	if (ack < up->batch_last_seq) {
		/* The server stored less than we sent (e.g. a seq gap it will not skip): go on
		 * from its ack after a pause rather than spin. */
		backoff(up, "partial acknowledgement");
		return;
	}
	send_batch(up);
}

static void on_done(CURL *easy, CURLcode cc, void *arg)
{
	struct uplink *up = arg;
	(void)easy;
	if (up->state == UP_SENDING)
		handle_response(up, cc);
}

/* JSON results compress about 8:1, which matters on a venue's thin uplink. */
static int gzip_body(struct uplink *up)
{
	if (!up->zs_ready) {
		/* windowBits 15 + 16: a gzip wrapper, as Content-Encoding: gzip means. */
		if (deflateInit2(&up->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
		                 Z_DEFAULT_STRATEGY) != Z_OK)
			return -ENOMEM;
		up->zs_ready = 1;
	} else if (deflateReset(&up->zs) != Z_OK) {
		return -EIO;
	}
	vw_buf_reset(&up->gz);
	if (vw_buf_reserve(&up->gz, deflateBound(&up->zs, (uLong)up->body.len)))
		return -E2BIG;
	up->zs.next_in = (Bytef *)up->body.data;
	up->zs.avail_in = (uInt)up->body.len;
	up->zs.next_out = (Bytef *)up->gz.data;
	up->zs.avail_out = (uInt)(up->gz.cap - 1);
	if (deflate(&up->zs, Z_FINISH) != Z_STREAM_END)
		return -EIO;
	up->gz.len = up->zs.total_out;
	return 0;
}

int64_t uplink_cadence_ms(const struct agent_conf *cfg)
{
	int64_t now = vw_now_ms(), cadence = cfg->agent.interval_ms;
	struct sessions_view v;
	sessions_view_get(cfg, &v);
	for (size_t i = 0; i < v.n; i++)
		if (v.items[i].start_ms <= now && now < v.items[i].end_ms) {
			cadence = cfg->agent.session_interval_ms;
			break;
		}
	sessions_view_put(&v);
	/* The collector takes 1 s to 1 day (ingest.c). */
	return cadence < 1000 ? 1000 : cadence > 86400000 ? 86400000 : cadence;
}

static void send_batch(struct uplink *up)
{
	if (up->state != UP_IDLE)
		return;
	if (failover_failback(&up->fo, vw_mono_ms())) {
		up->switches++;
		log_info("event=collector_switch to=%s reason=failback",
		         up->cfg->collector.urls[0]);
		set_url(up);
	}
	vw_buf_reset(&up->body);
	vw_buf_reset(&up->response);
	up->errbuf[0] = '\0';
	up->tls_alert = -1;
	/* No "agent": the collector takes it from our certificate (its UID), which is what a
	 * venue machine is. The epoch is the outbox's: a resend after a crash carries the same
	 * one, since it lives in outbox.db with the rows. */
	vw_buf_puts(&up->body, "{\"site\":");
	vw_buf_json_str(&up->body, up->cfg->agent.site);
	if (outbox_epoch(up->ob)[0]) {
		vw_buf_puts(&up->body, ",\"epoch\":");
		vw_buf_json_str(&up->body, outbox_epoch(up->ob));
	}
	/* issue 16 (A): how often results come from here now, so the collector calls the site
	 * silent after [feed] silent_after (3 x this) without a batch. */
	vw_buf_printf(&up->body, ",\"cadence_ms\":%lld", (long long)uplink_cadence_ms(up->cfg));
	vw_buf_puts(&up->body, ",\"results\":");
	size_t count;
	int64_t last;
	int rc = outbox_peek(up->ob, up->acked_seq, (size_t)up->cfg->collector.batch_max,
	                     (size_t)up->cfg->collector.batch_max_bytes, &up->body, &count, &last);
	vw_buf_puts(&up->body, "}");
	if (rc || up->body.err) {
		up->outcomes[UPLINK_LOCAL_ERROR]++;
		backoff(up, "cannot read the outbox");
		return;
	}
	if (!count)
		return; /* nothing to send: stay idle until kicked */
	if (gzip_body(up)) {
		up->outcomes[UPLINK_LOCAL_ERROR]++;
		backoff(up, "cannot compress the batch");
		return;
	}
	up->batch_count = count;
	up->batch_last_seq = last;
	outbox_set_in_flight(up->ob, last);
	curl_easy_setopt(up->easy, CURLOPT_POSTFIELDS, up->gz.data);
	curl_easy_setopt(up->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)up->gz.len);
	if (curluv_add(up->cu, up->easy, on_done, up)) {
		up->outcomes[UPLINK_LOCAL_ERROR]++;
		backoff(up, "cannot start the request");
		return;
	}
	up->state = UP_SENDING;
}

/* The fix for a refusal is usually a new certificate on disk, but kept-alive connections
 * (and their TLS sessions) would go on presenting the old one: start over with an empty
 * connection cache. Only between transfers (the easy handle is in no multi). */
static int new_connections(struct uplink *up)
{
	CURLSH *sh = curl_share_init();
	if (!sh || curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
	    curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
		curl_share_cleanup(sh);
		return -ENOMEM;
	}
	if (up->easy)
		curl_easy_setopt(up->easy, CURLOPT_SHARE, sh);
	if (up->share)
		curl_share_cleanup(up->share); /* closes its connections */
	up->share = sh;
	return 0;
}

void uplink_kick(struct uplink *up)
{
	if (up->state == UP_IDLE)
		send_batch(up);
}

const char *uplink_collector(const struct uplink *up)
{
	return up ? up->cfg->collector.urls[up->fo.cur] : "";
}

const char *uplink_collector_of(void *up)
{
	return uplink_collector(up);
}

uint64_t uplink_switches(const struct uplink *up)
{
	return up ? up->switches : 0;
}

int uplink_connected(const struct uplink *up)
{
	return up->connected;
}

void uplink_resume(struct uplink *up)
{
	if (up->state != UP_REFUSED && up->state != UP_BACKOFF)
		return;
	log_info("event=upload_resumed previous=%s",
	         up->state == UP_REFUSED ? "refused" : "backoff");
	if (up->state == UP_REFUSED && new_connections(up) != 0)
		log_warn("event=upload_connections_kept hint=\"a kept-alive connection may still "
		         "present the old certificate\"");
	uv_timer_stop(&up->retry_timer);
	uv_fs_poll_stop(&up->cert_poll);
	up->state = UP_IDLE;
	up->failures = 0;
	send_batch(up);
}

int uplink_create(uv_loop_t *loop, struct curluv *cu, const struct agent_conf *cfg,
                  struct outbox *ob, struct uplink **out)
{
	struct uplink *up = calloc(1, sizeof(*up));
	if (!up)
		return -ENOMEM;
	up->loop = loop;
	up->cu = cu;
	up->connected = -1;
	up->cfg = cfg;
	up->ob = ob;
	up->rng = (uint64_t)vw_now_ms() ^ 0x2545f4914f6cdd1dull;
	vw_buf_init(&up->body, 64u << 20);
	vw_buf_init(&up->response, UPLINK_RESPONSE_MAX);
	vw_buf_init(&up->gz, 64u << 20);
	/* Whatever is still in the outbox was never acknowledged. */
	up->acked_seq = 0;
	failover_init(&up->fo, cfg->collector.nurls, cfg->collector.failback_after_ms,
	              UPLINK_BACKOFF_MIN_MS, cfg->collector.retry_max_ms);
	set_url(up);

	up->easy = curl_easy_init();
	up->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (up->headers)
		up->headers = curl_slist_append(up->headers, "Content-Encoding: gzip");
	if (!up->easy || !up->headers) {
		curl_slist_free_all(up->headers);
		curl_easy_cleanup(up->easy);
		free(up);
		return -ENOMEM;
	}

	CURL *e = up->easy;
	if (new_connections(up)) {
		curl_slist_free_all(up->headers);
		curl_easy_cleanup(up->easy);
		free(up);
		return -ENOMEM;
	}
	curl_easy_setopt(e, CURLOPT_URL, up->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, up->headers);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, up);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, up->errbuf);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, up);
	uplink_tls_setopt(e, cfg);
	/* Only curl's OpenSSL backend takes an SSL_CTX callback; built on another, refusals
	 * would read as transport errors and be retried forever, so the agent will not start. */
	if (curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, up) != CURLE_OK) {
		log_error("event=uplink_unavailable reason=\"libcurl is not built with OpenSSL\"");
		curl_slist_free_all(up->headers);
		curl_easy_cleanup(up->easy); /* before the share it uses */
		curl_share_cleanup(up->share);
		free(up);
		return -ENOTSUP;
	}
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, cfg->collector.timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, cfg->collector.timeout_ms / 2);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);

	uv_timer_init(loop, &up->retry_timer);
	up->retry_timer.data = up;
	uv_fs_poll_init(loop, &up->cert_poll);
	up->cert_poll.data = up;
	up->handles_open = 2;
	*out = up;
	return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct uplink *up = h->data;
	if (--up->handles_open > 0)
		return;
	if (up->closed_cb)
		up->closed_cb(up->closed_arg);
}

void uplink_tls_setopt(CURL *e, const struct agent_conf *cfg)
{
	curl_easy_setopt(e, CURLOPT_CAINFO, cfg->collector.ca);
	curl_easy_setopt(e, CURLOPT_SSLCERT, cfg->collector.cert);
	curl_easy_setopt(e, CURLOPT_SSLKEY, cfg->collector.key);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "venuewatch-agent/" VW_VERSION);
}

void uplink_stop(struct uplink *up, void (*closed_cb)(void *), void *arg)
{
	up->closed_cb = closed_cb;
	up->closed_arg = arg;
	if (up->state == UP_SENDING)
		curluv_remove(up->cu, up->easy); /* rows stay; resent next start */
	up->state = UP_STOPPED;
	uv_timer_stop(&up->retry_timer);
	curl_easy_cleanup(up->easy);
	up->easy = NULL;
	curl_share_cleanup(up->share);
	up->share = NULL;
	uv_close((uv_handle_t *)&up->retry_timer, on_timer_closed);
	uv_close((uv_handle_t *)&up->cert_poll, on_timer_closed);
}

void uplink_destroy(struct uplink **upp)
{
	struct uplink *up = *upp;
	if (!up)
		return;
	curl_slist_free_all(up->headers);
	vw_buf_free(&up->body);
	vw_buf_free(&up->gz);
	vw_buf_free(&up->response);
	if (up->zs_ready)
		deflateEnd(&up->zs);
	free(up);
	*upp = NULL;
}
