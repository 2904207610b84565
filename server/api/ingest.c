#include "ingest.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "conf.h"
#include "log.h"
#include "result.h"
#include "vtime.h"

#define INGEST_TS_AHEAD_MS (24LL * 3600 * 1000)

struct ingest {
	uv_loop_t *loop;
	struct store *store;
	struct ingest_limits lim;
	size_t inflight;
	size_t batch_bytes; /* decoded batches between decode and commit */
	ingest_commit_fn on_commit;
	void *on_commit_ud;
	struct ingest_stats stats;
};

const char *const ingest_outcome_names[INGEST_OUTCOMES] = {"stored", "invalid", "refused", "busy",
                                                           "failed"};
/* Seconds, from a LAN's few milliseconds to a loaded writer's group commit behind a slow
 * disk; the agent's own upload timeout is far above the last bound. */
const double ingest_ack_bounds[INGEST_ACK_BOUNDS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,   0.25,   0.5,   1,    2.5,   5};

const struct ingest_stats *ingest_get_stats(const struct ingest *in)
{
	return &in->stats;
}

static void count_answer(struct ingest *in, int status, int store_failed)
{
	enum ingest_outcome o;
	if (status == 0 || status == 200)
		o = INGEST_STORED;
	else if (status == 400 || status == 413)
		o = INGEST_INVALID;
	else if (status == 401 || status == 403)
		o = INGEST_REFUSED;
	else
		o = store_failed ? INGEST_FAILED : INGEST_BUSY;
	in->stats.batches[o]++;
}

struct job {
	uv_work_t work;
	struct ingest *in;
	struct conn *conn;
	const char *body; /* the request's, valid until conn_respond */
	size_t len;
	int gzip;
	size_t max_plain;
	size_t held; /* bytes counted in ingest.batch_bytes */
	struct store_batch *batch;
	int rc;
	char error[32];
	char detail[256];
	int64_t t0;
	uint64_t t0_ns;   /* uv_hrtime at hand-over, for the ack latency */
	int store_failed; /* a 503 the store gave (counted as failed, not busy) */
};

int ingest_gunzip(const char *in, size_t len, size_t max, struct vw_buf *out)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	if (len > UINT_MAX)
		return -E2BIG;
	/* 15 + 16: a gzip wrapper only, as Content-Encoding: gzip means. */
	if (inflateInit2(&zs, 15 + 16) != Z_OK)
		return -ENOMEM;
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	int rc = 0, z = Z_OK;
	char chunk[64 << 10];
	while (z != Z_STREAM_END) {
		zs.next_out = (Bytef *)chunk;
		zs.avail_out = sizeof(chunk);
		z = inflate(&zs, Z_NO_FLUSH);
		if (z != Z_OK && z != Z_STREAM_END) {
			rc = z == Z_MEM_ERROR ? -ENOMEM : -EINVAL; /* also a truncated stream */
			break;
		}
		size_t n = sizeof(chunk) - zs.avail_out;
		/* The inflated size is what costs memory: a small bomb must not become gigabytes.
		 */
		if (out->len + n > max) {
			rc = -E2BIG;
			break;
		}
		if (vw_buf_append(out, chunk, n)) {
			rc = -ENOMEM;
			break;
		}
		if (z == Z_OK && n == 0 && zs.avail_in == 0) {
			rc = -EINVAL; /* input ended before the stream did */
			break;
		}
	}
	if (!rc && zs.avail_in != 0)
		rc = -EINVAL; /* bytes after the gzip member */
	inflateEnd(&zs);
	return rc;
}

/* An outbox's epoch id (agent/outbox.c): 128 random bits as 32 lower-case hex digits. */
static int epoch_valid(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n == 32;
}

static int bad(char *error, size_t errlen, const char *e, char *detail, size_t detlen,
               const char *fmt, const char *arg)
{
	snprintf(error, errlen, "%s", e);
	snprintf(detail, detlen, fmt, arg);
	return -EINVAL;
}

/* Where the body holds a NUL inside the JSON text: a raw 0 byte, or a \u0000 escape.
 * cJSON decodes either into a C string that ends early, so "cam\u0000<anything>" would be
 * stored as "cam": refuse instead. Returns the byte offset, or len when there is none. */
static size_t find_nul(const char *body, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (body[i] == '\0')
			return i;
		if (body[i] == '\\' && i + 1 < len) {
			if (body[i + 1] == 'u' && len - i >= 6 &&
			    memcmp(body + i + 2, "0000", 4) == 0)
				return i;
			i++; /* the escaped character: "\\u0000" is text, not a NUL */
		}
	}
	return len;
}

int ingest_thumb_decode(const char *b64, size_t n, unsigned char *out, size_t *outlen, char *why,
                        size_t wl)
{
	/* Bounded before any work: 30 KB encode to 40,960 characters. */
	if (n > 4 * ((INGEST_THUMB_MAX + 2) / 3)) {
		snprintf(why, wl, "more than %d bytes once decoded", INGEST_THUMB_MAX);
		return -E2BIG;
	}
	if (n == 0 || n % 4) {
		snprintf(why, wl, "not base64 (length %zu is not a positive multiple of 4)", n);
		return -EINVAL;
	}
	/* EVP_DecodeBlock skips white space at either end and takes '=' anywhere as data:
	 * the alphabet is checked here, padding only as the last one or two characters. */
	size_t pad = b64[n - 1] == '=' ? (b64[n - 2] == '=' ? 2 : 1) : 0;
	for (size_t i = 0; i < n - pad; i++) {
		unsigned char c = (unsigned char)b64[i];
		if (!isalnum(c) && c != '+' && c != '/') {
			snprintf(why, wl, "not base64 (character %zu)", i);
			return -EINVAL;
		}
	}
	int got = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
	if (got < 0 || (size_t)got < pad) {
		snprintf(why, wl, "not base64");
		return -EINVAL;
	}
	size_t len = (size_t)got - pad; /* EVP_DecodeBlock counts padding as zero bytes */
	if (len > INGEST_THUMB_MAX) {
		snprintf(why, wl, "more than %d bytes once decoded", INGEST_THUMB_MAX);
		return -E2BIG;
	}
	/* A JPEG starts with SOI and a marker (FF D8 FF) and ends with EOI (FF D9): anything
	 * else is not served as image/jpeg to a supervisor's browser. */
	if (len < 5 || out[0] != 0xff || out[1] != 0xd8 || out[2] != 0xff || out[len - 2] != 0xff ||
	    out[len - 1] != 0xd9) {
		snprintf(why, wl, "not a JPEG (no SOI/EOI markers)");
		return -EINVAL;
	}
	*outlen = len;
	return 0;
}

/* A result's "thumbnail", if any, decoded into *buf (allocated on first use) and attached
 * to r. i names the result for the error. */
static int take_thumbnail(const cJSON *item, struct vw_result *r, unsigned char **buf, size_t i,
                          char *error, size_t errlen, char *detail, size_t detlen)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(item, "thumbnail");
	if (!t || cJSON_IsNull(t))
		return 0;
	char why[96];
	int rc = -EINVAL;
	if (!cJSON_IsString(t)) {
		snprintf(why, sizeof(why), "must be a base64 string");
	} else if (r->kind != VW_KIND_STREAM) {
		snprintf(why, sizeof(why), "only stream results carry one");
	} else if (!*buf && !(*buf = malloc(INGEST_THUMB_MAX + 3))) {
		snprintf(error, errlen, "out of memory");
		detail[0] = '\0';
		return -ENOMEM;
	} else {
		size_t len = 0;
		rc = ingest_thumb_decode(t->valuestring, strlen(t->valuestring), *buf, &len, why,
		                         sizeof(why));
		if (!rc) {
			r->thumb = *buf;
			r->thumb_len = len;
			return 0;
		}
	}
	snprintf(error, errlen, "invalid result");
	snprintf(detail, detlen, "results[%zu]: field 'thumbnail': %s", i, why);
	return -EINVAL; /* also for -E2BIG: a bad field, not a body too large (400, not 413) */
}

int ingest_decode(const char *body, size_t len, struct store_batch *b, char *error, size_t errlen,
                  char *detail, size_t detlen)
{
	unsigned char *thumb = NULL;
	const char *end = NULL;
	int rc = -EINVAL;
	/* cJSON limits nesting depth (CJSON_NESTING_LIMIT), so a hostile body cannot exhaust
	 * the pool thread's stack. */
	cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (!root) {
		char at[32];
		snprintf(at, sizeof(at), "%zu",
		         end && end >= body ? (size_t)(end - body) : (size_t)0);
		return bad(error, errlen, "invalid JSON", detail, detlen, "syntax error at byte %s",
		           at);
	}
	for (const char *p = end; p && p < body + len; p++) {
		if (!isspace((unsigned char)*p)) {
			rc = bad(error, errlen, "invalid JSON", detail, detlen, "%s",
			         "trailing data after the JSON value");
			goto out;
		}
	}
	if (!cJSON_IsObject(root)) {
		rc = bad(error, errlen, "invalid batch", detail, detlen, "%s",
		         "body must be a JSON object");
		goto out;
	}
	const cJSON *site = cJSON_GetObjectItemCaseSensitive(root, "site");
	if (!cJSON_IsString(site)) {
		rc = bad(error, errlen, "invalid batch", detail, detlen, "field 'site': %s",
		         site ? "must be a string" : "missing");
		goto out;
	}
	if (!vw_conf_id_valid(site->valuestring)) {
		rc = bad(error, errlen, "invalid batch", detail, detlen, "field 'site': %s",
		         "not a valid site id ([A-Za-z0-9._-], 1-63 characters)");
		goto out;
	}
	/* Known from here on, so a certificate/site mismatch outranks any later error. */
	snprintf(b->site, sizeof(b->site), "%s", site->valuestring);
	size_t nul = find_nul(body, len);
	if (nul < len) {
		char at[32];
		snprintf(at, sizeof(at), "%zu", nul);
		rc =
		    bad(error, errlen, "invalid JSON", detail, detlen,
		        "NUL character (raw or \\u0000) at byte %s: strings must not hold one", at);
		goto out;
	}
	const cJSON *agent = cJSON_GetObjectItemCaseSensitive(root, "agent");
	if (agent && !cJSON_IsNull(agent)) {
		if (!cJSON_IsString(agent) || !vw_conf_id_valid(agent->valuestring)) {
			rc =
			    bad(error, errlen, "invalid batch", detail, detlen, "field 'agent': %s",
			        "must be an id ([A-Za-z0-9._-], 1-63 characters)");
			goto out;
		}
		snprintf(b->agent, sizeof(b->agent), "%s", agent->valuestring);
	}
	/* No agent field: b->agent stays "" and the certificate names it (decode_done). */
	const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(root, "epoch");
	if (epoch && !cJSON_IsNull(epoch)) {
		if (!cJSON_IsString(epoch) || !epoch_valid(epoch->valuestring)) {
			rc = bad(error, errlen, "invalid batch", detail, detlen,
			         "field 'epoch': %s", "must be 32 lower-case hex digits");
			goto out;
		}
		snprintf(b->epoch, sizeof(b->epoch), "%s", epoch->valuestring);
	}
	/* issue 16 (A): the agent's upload cadence, optional; [feed] silent_after = "3x" is
	 * counted in it. 1 s to 1 day: anything else is a broken agent, refused by name. */
	const cJSON *cadence = cJSON_GetObjectItemCaseSensitive(root, "cadence_ms");
	if (cadence && !cJSON_IsNull(cadence)) {
		double v = cJSON_IsNumber(cadence) ? cadence->valuedouble : -1;
		if (!(v >= 1000 && v <= 86400000) || v != (double)(int64_t)v) {
			rc = bad(error, errlen, "invalid batch", detail, detlen,
			         "field 'cadence_ms': %s",
			         "must be an integer from 1000 to 86400000");
			goto out;
		}
		b->cadence_ms = (int64_t)v;
	}
	const cJSON *results = cJSON_GetObjectItemCaseSensitive(root, "results");
	if (!cJSON_IsArray(results)) {
		rc = bad(error, errlen, "invalid batch", detail, detlen, "field 'results': %s",
		         results ? "must be an array" : "missing");
		goto out;
	}
	struct vw_result *r = malloc(sizeof(*r));
	if (!r) {
		rc = -ENOMEM;
		snprintf(error, errlen, "out of memory");
		detail[0] = '\0';
		goto out;
	}
	size_t i = 0;
	const cJSON *item;
	const int64_t now_ms = vw_now_ms();
	cJSON_ArrayForEach(item, results)
	{
		char why[160];
		if (vw_result_decode(item, r, why, sizeof(why)) != 0) {
			snprintf(error, errlen, "invalid result");
			snprintf(detail, detlen, "results[%zu]: %s", i, why);
			free(r);
			rc = -EINVAL;
			goto out;
		}
		/* A check cannot have happened after it reached us; a day's grace covers any
		 * honest clock (the agent reports skew itself), and beyond it a row would sort
		 * as the venue's latest state for as long as the clock was wrong. */
		if (r->ts_ms > now_ms + INGEST_TS_AHEAD_MS) {
			snprintf(error, errlen, "invalid result");
			snprintf(
			    detail, detlen,
			    "results[%zu]: field 'ts': more than 24 h ahead of the collector's "
			    "clock (agent clock wrong?)",
			    i);
			free(r);
			rc = -EINVAL;
			goto out;
		}
		if ((rc = take_thumbnail(item, r, &thumb, i, error, errlen, detail, detlen)) != 0) {
			free(r);
			goto out;
		}
		if ((rc = store_batch_add(b, r)) != 0) {
			snprintf(error, errlen, "out of memory");
			detail[0] = '\0';
			free(r);
			goto out;
		}
		i++;
	}
	free(r);
	store_batch_sort(b);
	rc = 0;
out:
	free(thumb);
	cJSON_Delete(root);
	return rc;
}

/* A value from the client, made safe for one key=value token in a log line. */
static void log_token(const char *in, char *out, size_t n)
{
	size_t i = 0;
	for (; *in && i + 1 < n; in++) {
		unsigned char ch = (unsigned char)*in;
		out[i++] = isalnum(ch) || ch == '.' || ch == '-' || ch == '_' ? (char)ch : '?';
	}
	out[i] = '\0';
	if (!i)
		snprintf(out, n, "-");
}

static void finish(struct job *j, int status, const char *error, const char *detail)
{
	count_answer(j->in, status, j->store_failed);
	if (error)
		conn_respond_error(j->conn, status, error, detail);
	j->in->inflight--;
	j->in->batch_bytes -= j->held;
	store_batch_destroy(j->batch);
	free(j);
}

static void on_committed(struct store_batch *b)
{
	struct job *j = b->data;
	if (b->status == -EDQUOT) {
		/* Not stored, no epoch made (see sqlite.c): the agent stops and alarms (403). */
		log_warn("event=ingest_refused peer=%s site=%s agent=%s epoch=%s "
		         "reason=epoch_limit new_epochs_per_day=%ld",
		         conn_peer(j->conn), b->site, b->agent, b->epoch, b->new_epochs_max);
		char detail[256];
		snprintf(detail, sizeof(detail),
		         "agent %s already started %ld new epochs in the last 24 h "
		         "([limits] new_epochs_per_day); a cloned or repeatedly restored machine?",
		         b->agent, b->new_epochs_max);
		finish(j, 403, "too many new epochs for this agent", detail);
		return;
	}
	if (b->status == -EPERM) {
		log_warn("event=ingest_refused peer=%s site=%s agent=%s "
		         "reason=site_jurisdiction_mismatch",
		         conn_peer(j->conn), b->site, b->agent);
		finish(j, 403, "certificate's org or city differs from the site's",
		       "the site belongs to another org or city (see the collector's log); issue "
		       "this machine a certificate with the site's org and city");
		return;
	}
	if (b->status) {
		log_warn("event=ingest_failed site=%s agent=%s rows=%zu error=%d", b->site,
		         b->agent, b->nrows, b->status);
		j->store_failed = 1;
		struct store_avail av;
		store_get_avail(j->in->store, &av);
		if (b->status == -ENOTCONN || !av.up) {
			/* issue 13: the agent keeps the batch and comes back when the store will
			 * have tried its database again, not before (or tries another collector).
			 */
			conn_respond_error_after(j->conn, 503, "store unavailable",
			                         "the collector's database does not answer; the "
			                         "agent keeps its results and sends them again",
			                         store_avail_retry_s(&av));
			finish(j, 503, NULL, NULL);
			return;
		}
		finish(j, 503, "store unavailable", NULL);
		return;
	}
	/* The mark is the batch's epoch's: saying which lets the agent check it is its own. */
	char body[96];
	int n = b->epoch[0]
	            ? snprintf(body, sizeof(body), "{\"acked_seq\":%lld,\"epoch\":\"%s\"}",
	                       (long long)b->acked_seq, b->epoch)
	            : snprintf(body, sizeof(body), "{\"acked_seq\":%lld}", (long long)b->acked_seq);
	log_debug("event=ingest site=%s agent=%s epoch=%s rows=%zu stored=%zu acked_seq=%lld "
	          "ms=%lld",
	          b->site, b->agent, b->epoch[0] ? b->epoch : "-", b->nrows, b->stored,
	          (long long)b->acked_seq, (long long)(vw_mono_ms() - j->t0));
	if (j->in->on_commit)
		j->in->on_commit(j->in->on_commit_ud, b);
	conn_respond(j->conn, 200, NULL, body, (size_t)n);
	struct ingest_stats *st = &j->in->stats;
	st->results_stored += b->stored;
	st->results_duplicate += b->nrows - b->stored;
	vw_prom_hist_observe(&st->ack_seconds, ingest_ack_bounds, INGEST_ACK_BOUNDS,
	                     (double)(uv_hrtime() - j->t0_ns) / 1e9);
	finish(j, 0, NULL, NULL);
}

static void decode_work(uv_work_t *w)
{
	struct job *j = w->data;
	if (!j->gzip) {
		j->rc = ingest_decode(j->body, j->len, j->batch, j->error, sizeof(j->error),
		                      j->detail, sizeof(j->detail));
		return;
	}
	struct vw_buf plain;
	vw_buf_init(&plain, j->max_plain + 1);
	j->rc = ingest_gunzip(j->body, j->len, j->max_plain, &plain);
	if (j->rc == -E2BIG) {
		snprintf(j->error, sizeof(j->error), "request body too large");
		snprintf(j->detail, sizeof(j->detail), "more than %zu bytes once decompressed",
		         j->max_plain);
	} else if (j->rc == -EINVAL) {
		snprintf(j->error, sizeof(j->error), "invalid gzip body");
		j->detail[0] = '\0';
	} else if (j->rc == 0) {
		j->rc = ingest_decode(plain.data ? plain.data : "", plain.len, j->batch, j->error,
		                      sizeof(j->error), j->detail, sizeof(j->detail));
	}
	vw_buf_free(&plain);
}

static void decode_done(uv_work_t *w, int status)
{
	struct job *j = w->data;
	struct store_batch *b = j->batch;
	const struct tls_identity *id = conn_identity(j->conn);
	if (status == UV_ECANCELED) {
		j->store_failed = 1;
		finish(j, 503, "shutting down", NULL);
		return;
	}
	if (b->site[0] && strcmp(b->site, id->site) != 0) {
		char claimed[72];
		log_token(b->site, claimed, sizeof(claimed));
		log_warn("event=ingest_refused peer=%s cert_site=%s claimed_site=%s",
		         conn_peer(j->conn), id->site[0] ? id->site : "-", claimed);
		finish(j, 403, "site does not match the client certificate", NULL);
		return;
	}
	/* The agent is the certificate's (its UID): a batch naming another agent would move
	 * that agent's mark, and its real results would then be skipped as resends. */
	if (b->agent[0] && strcmp(b->agent, id->agent) != 0) {
		char claimed[72];
		log_token(b->agent, claimed, sizeof(claimed));
		log_warn("event=ingest_refused peer=%s site=%s cert_agent=%s batch_agent=%s "
		         "reason=agent_mismatch",
		         conn_peer(j->conn), id->site, id->agent, claimed);
		finish(j, 403, "agent does not match the client certificate", NULL);
		return;
	}
	if (j->rc == -ENOMEM) {
		finish(j, 503, "server busy", NULL);
		return;
	}
	if (j->rc == -E2BIG) {
		finish(j, 413, j->error, j->detail);
		return;
	}
	if (j->rc) {
		finish(j, 400, j->error, j->detail[0] ? j->detail : NULL);
		return;
	}
	/* Decoded batches wait for the writer in memory: bound them all together. */
	size_t held = b->arena.len + b->nrows * sizeof(*b->rows);
	if (j->in->batch_bytes + held > j->in->lim.max_batch_bytes) {
		finish(j, 503, "server busy", NULL);
		return;
	}
	j->in->batch_bytes += held;
	j->held = held;
	snprintf(b->agent, sizeof(b->agent), "%s", id->agent);
	snprintf(b->org, sizeof(b->org), "%s", id->org);
	snprintf(b->city, sizeof(b->city), "%s", id->city);
	b->received_ms = vw_now_ms();
	b->new_epochs_max = j->in->lim.new_epochs_per_day;
	b->done = on_committed;
	b->data = j;
	int rc = store_submit(j->in->store, b);
	if (rc == -EAGAIN) {
		finish(j, 503, "server busy", NULL);
	} else if (rc) {
		j->store_failed = 1;
		finish(j, 503, "shutting down", NULL);
	}
}

void ingest_set_on_commit(struct ingest *in, ingest_commit_fn fn, void *ud)
{
	in->on_commit = fn;
	in->on_commit_ud = ud;
}

void ingest_handle(struct ingest *in, struct conn *c, const struct http_request *req)
{
	const struct tls_identity *id = conn_identity(c);
	if (!id->verified) {
		count_answer(in, 401, 0);
		conn_respond_error(c, 401, "client certificate required", NULL);
		return;
	}
	if (!id->site[0]) {
		log_warn("event=ingest_refused peer=%s cert_site=- reason=no_site_in_certificate",
		         conn_peer(c));
		count_answer(in, 403, 0);
		conn_respond_error(c, 403, "client certificate names no site", NULL);
		return;
	}
	if (in->inflight >= in->lim.max_inflight) {
		count_answer(in, 503, 0);
		conn_respond_error(c, 503, "server busy", NULL);
		return;
	}
	struct job *j = calloc(1, sizeof(*j));
	if (j)
		j->batch = store_batch_create();
	if (!j || !j->batch) {
		free(j);
		count_answer(in, 503, 0);
		conn_respond_error(c, 503, "server busy", NULL);
		return;
	}
	j->in = in;
	j->conn = c;
	j->body = req->body;
	j->len = req->body_len;
	j->gzip = req->gzip;
	j->max_plain = in->lim.max_body_bytes;
	j->t0 = vw_mono_ms();
	j->t0_ns = uv_hrtime();
	j->work.data = j;
	in->inflight++;
	/* JSON decoding of a large batch takes milliseconds: off the loop it goes. */
	int rc = uv_queue_work(in->loop, &j->work, decode_work, decode_done);
	if (rc)
		finish(j, 503, "server busy", NULL);
}

void ingest_set_limits(struct ingest *in, const struct ingest_limits *lim)
{
	in->lim.max_body_bytes = lim->max_body_bytes;
	in->lim.max_batch_bytes = lim->max_batch_bytes;
	in->lim.new_epochs_per_day = lim->new_epochs_per_day;
}

int ingest_create(uv_loop_t *loop, struct store *store, const struct ingest_limits *lim,
                  struct ingest **out)
{
	struct ingest *in = calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	in->loop = loop;
	in->store = store;
	in->lim = *lim;
	*out = in;
	return 0;
}

void ingest_destroy(struct ingest *in)
{
	free(in);
}
