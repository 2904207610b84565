#include "notify_msg.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vtime.h"

/* --- events and filters ------------------------------------------------------------------ */

static const struct {
	const char *type, *word;
	unsigned bit;
} event_types[] = {
    {"problem_opened", "opened", NOTIFY_EV_OPENED},
    {"problem_closed", "closed", NOTIFY_EV_CLOSED},
    {"problem_acked", "acked", NOTIFY_EV_ACKED},
    {"problem_updated", "updated", NOTIFY_EV_UPDATED},
};
#define NEVENT_TYPES (sizeof(event_types) / sizeof(event_types[0]))

unsigned notify_event_bit(const char *type)
{
	for (size_t i = 0; i < NEVENT_TYPES; i++)
		if (strcmp(type, event_types[i].type) == 0)
			return event_types[i].bit;
	return 0;
}

const char *notify_event_word(unsigned bit)
{
	for (size_t i = 0; i < NEVENT_TYPES; i++)
		if (event_types[i].bit == bit)
			return event_types[i].word;
	return "?";
}

int notify_events_parse(const char *s, unsigned *mask, char *err, size_t errlen)
{
	unsigned m = 0;
	const char *p = s;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t n = strcspn(p, ", ");
		if (!n)
			break;
		unsigned bit = 0;
		for (size_t i = 0; i < NEVENT_TYPES; i++)
			if (strlen(event_types[i].word) == n && !strncmp(p, event_types[i].word, n))
				bit = event_types[i].bit;
		if (!bit) {
			snprintf(err, errlen,
			         "unknown event '%.*s' (expected opened, closed, acked, updated)",
			         (int)(n > 32 ? 32 : n), p);
			return -EINVAL;
		}
		m |= bit;
		p += n;
	}
	if (!m) {
		snprintf(err, errlen, "no event named (expected opened, closed, acked, updated)");
		return -EINVAL;
	}
	*mask = m;
	return 0;
}

int notify_severity_rank(const char *s)
{
	static const char *const names[] = {"minor", "major", "critical"};
	for (int i = 0; i < 3; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

int notify_scope_parse(const char *s, struct notify_scope *out, char *err, size_t errlen)
{
	static const struct {
		const char *prefix;
		enum notify_scope_kind kind;
	} kinds[] = {
	    {"city:", NOTIFY_SCOPE_CITY}, {"org:", NOTIFY_SCOPE_ORG}, {"site:", NOTIFY_SCOPE_SITE}};
	memset(out, 0, sizeof(*out));
	if (strcmp(s, "province") == 0)
		return 0;
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(kinds[i].prefix);
		if (strncmp(s, kinds[i].prefix, n) != 0)
			continue;
		const char *v = s + n;
		if (!*v || strlen(v) >= sizeof(out->value)) {
			snprintf(err, errlen,
			         "scope '%s': the name after '%s' is empty or too long", s,
			         kinds[i].prefix);
			return -EINVAL;
		}
		out->kind = kinds[i].kind;
		snprintf(out->value, sizeof(out->value), "%s", v);
		return 0;
	}
	snprintf(err, errlen, "scope '%s': expected province, city:NAME, org:NAME or site:NAME", s);
	return -EINVAL;
}

int notify_scope_match(const struct notify_scope *sc, const struct notify_problem *p)
{
	switch (sc->kind) {
	case NOTIFY_SCOPE_PROVINCE:
		return 1;
	case NOTIFY_SCOPE_CITY:
		return strcmp(sc->value, p->city) == 0;
	case NOTIFY_SCOPE_ORG:
		return strcmp(sc->value, p->org) == 0;
	case NOTIFY_SCOPE_SITE:
		return strcmp(sc->value, p->site) == 0;
	}
	return 0;
}

int notify_reached_rank(const struct notify_problem *p)
{
	int rank = notify_severity_rank(p->severity);
	int by_worst = strcmp(p->worst, "down") == 0 ? NOTIFY_MAJOR : NOTIFY_MINOR;
	return rank > by_worst ? rank : by_worst;
}

unsigned notify_wants(unsigned events, int min_rank, const struct notify_scope *sc,
                      const struct notify_problem *p, unsigned bit)
{
	if (!notify_scope_match(sc, p))
		return 0;
	int reached = notify_reached_rank(p) >= min_rank;
	unsigned want = 0;
	if (bit == NOTIFY_EV_OPENED)
		return reached && (events & NOTIFY_EV_OPENED) ? NOTIFY_WANT_EVENT : 0;
	if (bit == NOTIFY_EV_UPDATED && reached && !p->end_ms && (events & NOTIFY_EV_OPENED))
		want |= NOTIFY_WANT_OPENED;
	if (events & bit) {
		if (events & NOTIFY_EV_OPENED)
			want |= NOTIFY_WANT_IF_TOLD;
		else if (reached)
			want |= NOTIFY_WANT_EVENT;
	}
	return want;
}

int notify_rate_parse(const char *s, double *per_min, char *err, size_t errlen)
{
	if (strcmp(s, "off") == 0 || strcmp(s, "0") == 0) {
		*per_min = 0;
		return 0;
	}
	char *end;
	errno = 0;
	double n = strtod(s, &end);
	double unit = 0;
	if (!errno && end != s && n > 0 && isfinite(n)) {
		if (strcmp(end, "/min") == 0)
			unit = 1;
		else if (strcmp(end, "/h") == 0)
			unit = 1.0 / 60;
		else if (strcmp(end, "/s") == 0)
			unit = 60;
	}
	if (!unit || n * unit > 6000) {
		snprintf(err, errlen,
		         "rate '%s': expected N/min, N/h or N/s (at most 100/s), or off", s);
		return -EINVAL;
	}
	*per_min = n * unit;
	return 0;
}

/* --- the problem ------------------------------------------------------------------------- */

static int copy_str(const cJSON *o, const char *key, char *out, size_t n, int required, char *err,
                    size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v || cJSON_IsNull(v)) {
		out[0] = '\0';
		if (!required)
			return 0;
		snprintf(err, errlen, "problem: field '%s' missing", key);
		return -EINVAL;
	}
	if (!cJSON_IsString(v) || strlen(v->valuestring) >= n) {
		snprintf(err, errlen, "problem: field '%s' is not a string of at most %zu bytes",
		         key, n - 1);
		return -EINVAL;
	}
	memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
	return 0;
}

static int get_time(const cJSON *o, const char *key, int64_t *ms, int required, char *err,
                    size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	*ms = 0;
	if (!v || cJSON_IsNull(v)) {
		if (!required)
			return 0;
		snprintf(err, errlen, "problem: field '%s' missing", key);
		return -EINVAL;
	}
	if (!cJSON_IsString(v) || vw_time_parse_iso(v->valuestring, ms)) {
		snprintf(err, errlen, "problem: field '%s' is not an RFC 3339 time", key);
		return -EINVAL;
	}
	return 0;
}

int notify_problem_parse(const char *json, struct notify_problem *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	cJSON *o = cJSON_Parse(json);
	int rc = -EINVAL;
	if (!cJSON_IsObject(o)) {
		snprintf(err, errlen, "problem: not a JSON object");
		goto out;
	}
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
	if (!cJSON_IsNumber(id) || id->valuedouble < 1 || id->valuedouble > 9007199254740991.0) {
		snprintf(err, errlen, "problem: field 'id' is not a positive integer");
		goto out;
	}
	p->id = (int64_t)id->valuedouble;
	if (copy_str(o, "site", p->site, sizeof(p->site), 1, err, errlen) ||
	    copy_str(o, "org", p->org, sizeof(p->org), 0, err, errlen) ||
	    copy_str(o, "city", p->city, sizeof(p->city), 0, err, errlen) ||
	    copy_str(o, "agent", p->agent, sizeof(p->agent), 0, err, errlen) ||
	    copy_str(o, "kind", p->kind, sizeof(p->kind), 1, err, errlen) ||
	    copy_str(o, "target", p->target, sizeof(p->target), 0, err, errlen) ||
	    copy_str(o, "state", p->state, sizeof(p->state), 0, err, errlen) ||
	    copy_str(o, "status", p->status, sizeof(p->status), 0, err, errlen) ||
	    copy_str(o, "worst", p->worst, sizeof(p->worst), 0, err, errlen) ||
	    copy_str(o, "severity", p->severity, sizeof(p->severity), 1, err, errlen) ||
	    get_time(o, "start", &p->start_ms, 1, err, errlen) ||
	    get_time(o, "end", &p->end_ms, 0, err, errlen))
		goto out;
	if (notify_severity_rank(p->severity) < 0) {
		snprintf(err, errlen, "problem: field 'severity' is not minor, major or critical");
		goto out;
	}
	const cJSON *faults = cJSON_GetObjectItemCaseSensitive(o, "faults"), *f;
	if (faults && !cJSON_IsArray(faults)) {
		snprintf(err, errlen, "problem: field 'faults' is not an array");
		goto out;
	}
	cJSON_ArrayForEach(f, faults)
	{
		if (!cJSON_IsString(f) || !vw_code_valid(f->valuestring)) {
			snprintf(err, errlen, "problem: field 'faults' holds a malformed code");
			goto out;
		}
		if (p->nfaults < NOTIFY_FAULTS_MAX)
			snprintf(p->faults[p->nfaults++], VW_NAME_MAX, "%s", f->valuestring);
	}
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "duration_s");
	if (cJSON_IsNumber(d) && d->valuedouble >= 0)
		p->duration_s = (int64_t)d->valuedouble;
	p->in_session = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "in_session"));
	const cJSON *ack = cJSON_GetObjectItemCaseSensitive(o, "ack");
	if (cJSON_IsObject(ack)) {
		p->acked = 1;
		if (copy_str(ack, "by", p->ack_by, sizeof(p->ack_by), 0, err, errlen) ||
		    copy_str(ack, "message", p->ack_message, sizeof(p->ack_message), 0, err,
		             errlen) ||
		    get_time(ack, "at", &p->ack_ms, 0, err, errlen))
			goto out;
	}
	rc = 0;
out:
	cJSON_Delete(o);
	return rc;
}

/* --- labels ------------------------------------------------------------------------------ */

/* The labels table of common/result.c (the same words the API and the dashboard show); a
 * code it does not know is shown as it is. */
const char *notify_label_zh(enum vw_label_group g, const char *code)
{
	const struct vw_label *l = vw_label_find(g, code);
	return l ? l->zh : code;
}

/* --- the message ------------------------------------------------------------------------- */

/* A name as it goes into markdown: control characters become spaces and markdown's markup
 * characters are dropped, so a site or a message cannot add a link, a heading or a line.
 * The slashes of "://" in what remains become U+2215 (∕), so a bare URL ("https://x", or
 * one put together by dropped markup, "https:/(/x") is not made a link by the robots and
 * still reads as what it was. */
static void put_plain(struct vw_buf *b, const char *s)
{
	int colon = 0, slashes = 0; /* after ':' (and how many '/' since) in the output */
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p < 0x20 || *p == 0x7f ? ' ' : *p;
		if (c != ' ' && strchr("*_`#[]()<>|!~\\", c))
			continue;
		if (c == '/' && (colon || slashes)) {
			vw_buf_puts(b, "\xe2\x88\x95"); /* U+2215 DIVISION SLASH */
			colon = 0;
			slashes = 1;
			continue;
		}
		colon = c == ':';
		slashes = 0;
		vw_buf_append(b, &c, 1);
	}
}

/* Asia/Shanghai wall time (no DST since 1991), as people in the bureau read it. */
static void put_local(struct vw_buf *b, int64_t ms)
{
	time_t t = (time_t)((ms + 8 * 3600000LL) / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	vw_buf_printf(b, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
	              tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void put_duration(struct vw_buf *b, int64_t s)
{
	if (s >= 86400)
		vw_buf_printf(b, "%lld天", (long long)(s / 86400));
	if (s >= 3600)
		vw_buf_printf(b, "%lld小时", (long long)(s % 86400 / 3600));
	if (s >= 60)
		vw_buf_printf(b, "%lld分", (long long)(s % 3600 / 60));
	vw_buf_printf(b, "%lld秒", (long long)(s % 60));
}

static const char *event_zh(unsigned event)
{
	switch (event) {
	case NOTIFY_EV_OPENED:
		return "出现问题";
	case NOTIFY_EV_CLOSED:
		return "已恢复";
	case NOTIFY_EV_ACKED:
		return "已确认";
	case NOTIFY_EV_UPDATED:
		return "问题变化";
	}
	return "通知";
}

/* public_url without its trailing slashes, then /sites/<site> percent-encoded. */
static void put_link(struct vw_buf *b, const char *public_url, const char *site)
{
	size_t n = strlen(public_url);
	while (n && public_url[n - 1] == '/')
		n--;
	vw_buf_append(b, public_url, n);
	vw_buf_puts(b, "/sites/");
	for (const unsigned char *p = (const unsigned char *)site; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p))
			vw_buf_append(b, p, 1);
		else
			vw_buf_printf(b, "%%%02X", *p);
	}
}

int notify_format_text(const struct notify_problem *p, unsigned event, const char *public_url,
                       int64_t suppressed, struct vw_buf *title, struct vw_buf *text)
{
	const char *sev = notify_label_zh(VW_LABEL_SEVERITIES, p->severity);
	vw_buf_printf(title, "【%s】考点%s：", sev, event_zh(event));
	put_plain(title, p->site);

	vw_buf_printf(text, "### 【%s】考点%s：", sev, event_zh(event));
	put_plain(text, p->site);
	vw_buf_puts(text, "\n\n- 考点：");
	put_plain(text, p->site);
	vw_buf_puts(text, "\n- 机构：");
	put_plain(text, p->org[0] ? p->org : "-");
	vw_buf_puts(text, "\n- 城市：");
	put_plain(text, p->city[0] ? p->city : "-");
	vw_buf_printf(text, "\n- 对象：%s", notify_label_zh(VW_LABEL_KINDS, p->kind));
	if (p->target[0]) {
		vw_buf_puts(text, " ");
		put_plain(text, p->target);
	}
	if (p->agent[0] && strcmp(p->agent, p->site) != 0) {
		vw_buf_puts(text, "（");
		put_plain(text, p->agent);
		vw_buf_puts(text, "）");
	}
	if (p->status[0])
		vw_buf_printf(text, "\n- 状态：%s",
		              event == NOTIFY_EV_CLOSED
		                  ? "已恢复正常"
		                  : notify_label_zh(VW_LABEL_STATUSES, p->status));
	vw_buf_puts(text, "\n- 故障：");
	for (unsigned i = 0; i < p->nfaults; i++) {
		if (i)
			vw_buf_puts(text, "、");
		put_plain(text, notify_label_zh(VW_LABEL_FAULTS, p->faults[i]));
	}
	if (!p->nfaults)
		vw_buf_puts(text, "-");
	vw_buf_printf(text, "\n- 级别：%s", sev);
	vw_buf_puts(text, "\n- 开始：");
	put_local(text, p->start_ms);
	vw_buf_puts(text, "（北京时间）");
	if (p->end_ms) {
		vw_buf_puts(text, "\n- 结束：");
		put_local(text, p->end_ms);
		vw_buf_puts(text, "\n- 持续：");
		put_duration(text,
		             p->duration_s ? p->duration_s : (p->end_ms - p->start_ms) / 1000);
	}
	if (p->in_session)
		vw_buf_puts(text, "\n- 发生在考试期间");
	if (p->acked) {
		vw_buf_puts(text, "\n- 确认：");
		put_plain(text, p->ack_by[0] ? p->ack_by : "-");
		if (p->ack_ms) {
			vw_buf_puts(text, " ");
			put_local(text, p->ack_ms);
		}
		if (p->ack_message[0]) {
			vw_buf_puts(text, "，");
			put_plain(text, p->ack_message);
		}
	}
	if (suppressed > 0)
		vw_buf_printf(text, "\n- 另有 %lld 条通知因超出发送上限未单独发送",
		              (long long)suppressed);
	if (public_url && public_url[0]) {
		vw_buf_puts(text, "\n\n[查看考点详情](");
		put_link(text, public_url, p->site);
		vw_buf_puts(text, ")");
	}
	return title->err ? title->err : text->err;
}

int notify_format_body(enum notify_type type, const char *sink, const struct notify_problem *p,
                       unsigned event, int64_t event_id, const char *public_url, int64_t suppressed,
                       struct vw_buf *out)
{
	struct vw_buf title, text;
	vw_buf_init(&title, 4096);
	vw_buf_init(&text, 16384);
	int rc = notify_format_text(p, event, public_url, suppressed, &title, &text);
	if (rc)
		goto out;
	const char *ttl = vw_buf_cstr(&title), *txt = vw_buf_cstr(&text);
	switch (type) {
	case NOTIFY_DINGTALK:
		vw_buf_puts(out, "{\"msgtype\":\"markdown\",\"markdown\":{\"title\":");
		vw_buf_json_str(out, ttl);
		vw_buf_puts(out, ",\"text\":");
		vw_buf_json_str(out, txt);
		vw_buf_puts(out, "}}");
		break;
	case NOTIFY_WECOM:
		vw_buf_puts(out, "{\"msgtype\":\"markdown\",\"markdown\":{\"content\":");
		vw_buf_json_str(out, txt);
		vw_buf_puts(out, "}}");
		break;
	case NOTIFY_WEBHOOK: {
		char iso[VW_ISO_LEN];
		vw_buf_printf(out, "{\"event\":\"problem_%s\",\"event_id\":%lld,\"sink\":",
		              notify_event_word(event), (long long)event_id);
		vw_buf_json_str(out, sink);
		vw_buf_puts(out, ",\"title\":");
		vw_buf_json_str(out, ttl);
		vw_buf_puts(out, ",\"text\":");
		vw_buf_json_str(out, txt);
		vw_buf_puts(out, ",\"url\":");
		if (public_url && public_url[0]) {
			struct vw_buf link;
			vw_buf_init(&link, 1024);
			put_link(&link, public_url, p->site);
			vw_buf_json_str(out, vw_buf_cstr(&link));
			vw_buf_free(&link);
		} else {
			vw_buf_puts(out, "null");
		}
		vw_buf_printf(out, ",\"suppressed\":%lld,\"problem\":{\"id\":%lld,\"site\":",
		              (long long)suppressed, (long long)p->id);
		/* The problem's own fields, re-encoded from what was parsed: nothing the event
		 * might carry besides them (a thumbnail, say) can reach a receiver. */
		vw_buf_json_str(out, p->site);
		vw_buf_puts(out, ",\"org\":");
		vw_buf_json_str(out, p->org);
		vw_buf_puts(out, ",\"city\":");
		vw_buf_json_str(out, p->city);
		vw_buf_puts(out, ",\"agent\":");
		vw_buf_json_str(out, p->agent);
		vw_buf_puts(out, ",\"kind\":");
		vw_buf_json_str(out, p->kind);
		vw_buf_puts(out, ",\"target\":");
		vw_buf_json_str(out, p->target);
		vw_buf_puts(out, ",\"state\":");
		vw_buf_json_str(out, p->state[0] ? p->state : (p->end_ms ? "closed" : "open"));
		vw_buf_puts(out, ",\"status\":");
		vw_buf_json_str(out, p->status);
		vw_buf_puts(out, ",\"severity\":");
		vw_buf_json_str(out, p->severity);
		vw_buf_puts(out, ",\"faults\":[");
		for (unsigned i = 0; i < p->nfaults; i++) {
			if (i)
				vw_buf_puts(out, ",");
			vw_buf_json_str(out, p->faults[i]);
		}
		vw_buf_puts(out, "],\"start\":");
		vw_time_iso(p->start_ms, iso);
		vw_buf_json_str(out, iso);
		vw_buf_puts(out, ",\"end\":");
		if (p->end_ms) {
			vw_time_iso(p->end_ms, iso);
			vw_buf_json_str(out, iso);
		} else {
			vw_buf_puts(out, "null");
		}
		vw_buf_printf(out, ",\"duration_s\":%lld,\"in_session\":%s}}",
		              (long long)p->duration_s, p->in_session ? "true" : "false");
		break;
	}
	}
	rc = out->err;
out:
	vw_buf_free(&title);
	vw_buf_free(&text);
	return rc;
}

/* --- DingTalk's signature ---------------------------------------------------------------- */

int notify_dingtalk_sign(const char *secret, int64_t ts_ms, char *out, size_t outlen)
{
	char msg[1024];
	int n = snprintf(msg, sizeof(msg), "%lld\n%s", (long long)ts_ms, secret);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -ENOSPC;
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret),
	               (const unsigned char *)msg, (size_t)n, mac, sizeof(mac), &maclen))
		return -EIO;
	unsigned char b64[(EVP_MAX_MD_SIZE + 2) / 3 * 4 + 1];
	int blen = EVP_EncodeBlock(b64, mac, (int)maclen);
	/* URL-encoding of base64: only '+', '/' and '=' need it (as Python's quote_plus in
	 * DingTalk's own example). */
	size_t o = 0;
	for (int i = 0; i < blen; i++) {
		char c = (char)b64[i];
		const char *esc = c == '+' ? "%2B" : c == '/' ? "%2F" : c == '=' ? "%3D" : NULL;
		size_t need = esc ? 3 : 1;
		if (o + need >= outlen)
			return -ENOSPC;
		if (esc) {
			memcpy(out + o, esc, 3);
		} else {
			out[o] = c;
		}
		o += need;
	}
	out[o] = '\0';
	return 0;
}

/* --- rate and retries -------------------------------------------------------------------- */

void notify_bucket_init(struct notify_bucket *b, double per_min, double burst, int64_t now_ms)
{
	b->per_ms = per_min / 60000.0;
	b->burst = burst < 1 ? 1 : burst;
	b->tokens = b->burst;
	b->at_ms = now_ms;
}

int64_t notify_bucket_take(struct notify_bucket *b, int64_t now_ms)
{
	if (b->per_ms <= 0)
		return 0;
	if (now_ms > b->at_ms) {
		b->tokens += (double)(now_ms - b->at_ms) * b->per_ms;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->at_ms = now_ms;
	}
	if (b->tokens >= 1) {
		b->tokens -= 1;
		return 0;
	}
	int64_t wait = (int64_t)ceil((1 - b->tokens) / b->per_ms);
	return wait > 0 ? wait : 1;
}

int64_t notify_backoff_ms(unsigned attempt, int64_t base_ms, int64_t max_ms, uint32_t rnd)
{
	int64_t d = base_ms;
	for (unsigned i = 1; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	int64_t half = d / 2;
	return d - half + (half ? (int64_t)(rnd % (uint64_t)(half + 1)) : 0);
}

int notify_reply_ok(enum notify_type type, long http_status, const char *body, size_t len,
                    char *err, size_t errlen)
{
	if (http_status < 200 || http_status > 299) {
		snprintf(err, errlen, "HTTP %ld", http_status);
		return 0;
	}
	if (type == NOTIFY_WEBHOOK)
		return 1;
	cJSON *o = cJSON_ParseWithLength(body, len);
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "errcode");
	int ok = cJSON_IsNumber(code) && code->valuedouble == 0;
	if (!cJSON_IsNumber(code)) {
		snprintf(err, errlen, "HTTP %ld without an errcode in the reply", http_status);
	} else if (!ok) {
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "errmsg");
		snprintf(err, errlen, "errcode %.0f: %.120s", code->valuedouble,
		         cJSON_IsString(msg) ? msg->valuestring : "");
	}
	cJSON_Delete(o);
	return ok;
}
