#include "result.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "vtime.h"

static const char *const kind_names[VW_KIND_COUNT] = {
    "stream", "network", "recording", "coverage", "assessment", "buffer",
};
static const char *const status_names[VW_STATUS_COUNT] = {"ok", "degraded", "down"};
static const char *const fault_names[VW_FAULT_COUNT] = {
    [VW_FAULT_UNREACHABLE] = "unreachable",
    [VW_FAULT_AUTH_FAILED] = "auth_failed",
    [VW_FAULT_NO_VIDEO] = "no_video",
    [VW_FAULT_TIMEOUT] = "timeout",
    [VW_FAULT_PROTOCOL] = "protocol_error",
    [VW_FAULT_BUFFER_OVERFLOW] = "buffer_overflow",
    [VW_FAULT_CLOCK_SKEW] = "clock_skew",
    [VW_FAULT_BLACK] = "black",
    [VW_FAULT_FROZEN] = "frozen",
    [VW_FAULT_BLURRED] = "blurred",
    [VW_FAULT_TOO_DARK] = "too_dark",
    [VW_FAULT_TOO_BRIGHT] = "too_bright",
    [VW_FAULT_LOW_RESOLUTION] = "low_resolution",
    [VW_FAULT_LOW_FPS] = "low_fps",
    [VW_FAULT_LOW_BITRATE] = "low_bitrate",
    [VW_FAULT_RECORDING_MISSING] = "recording_missing",
    [VW_FAULT_RECORDING_GAP] = "recording_gap",
    [VW_FAULT_RETENTION_SHORT] = "retention_short",
    [VW_FAULT_RECORDING_CORRUPT] = "recording_corrupt",
    [VW_FAULT_DISK_LOW] = "disk_low",
    [VW_FAULT_ROOM_UNCOVERED] = "room_uncovered",
    [VW_FAULT_HIGH_RTT] = "high_rtt",
    [VW_FAULT_PACKET_LOSS] = "packet_loss",
    [VW_FAULT_TLS_ERROR] = "tls_error",
    [VW_FAULT_UPLINK_INSUFFICIENT] = "uplink_insufficient",
    [VW_FAULT_CAMERA_MOVED] = "camera_moved",
    [VW_FAULT_NOISY] = "noisy",
    [VW_FAULT_COLOR_CAST] = "color_cast",
    [VW_FAULT_STRIPED] = "striped",
    [VW_FAULT_OCCLUDED] = "occluded",
};
/* Units are in the name, so a number never needs a separate unit field. */
static const char *const metric_names[VW_M_COUNT] = {
    [VW_M_WIDTH] = "width",
    [VW_M_HEIGHT] = "height",
    [VW_M_FPS] = "fps",
    [VW_M_BITRATE_KBPS] = "bitrate_kbps",
    [VW_M_FIRST_KEYFRAME_MS] = "first_keyframe_ms",
    [VW_M_OPEN_MS] = "open_ms",
    [VW_M_CHECK_MS] = "check_ms",
    [VW_M_DROPPED_COUNT] = "dropped_count",
    [VW_M_DROPPED_FIRST_SEQ] = "dropped_first_seq",
    [VW_M_DROPPED_LAST_SEQ] = "dropped_last_seq",
    /* cumulative: survives the loss of an earlier overflow row to a later overflow */
    [VW_M_DROPPED_TOTAL] = "dropped_total",
    /* results that never got a seq: the disk refused them even after dropping */
    [VW_M_UNSTORED_COUNT] = "unstored_count",
    /* collector's Date minus the agent's clock; positive = agent behind */
    [VW_M_CLOCK_SKEW_MS] = "clock_skew_ms",
    [VW_M_FRAMES_ANALYSED] = "frames_analysed",
    [VW_M_LUMA_MEAN] = "luma_mean",     /* 0-255, of the scaled luma plane */
    [VW_M_LUMA_STDDEV] = "luma_stddev", /* contrast */
    [VW_M_BLUR] = "blur",               /* blurdetect: mean edge width, higher = blurrier */
    [VW_M_FROZEN] = "frozen",           /* 1 when every analysed frame matched the last */
    [VW_M_SEGMENTS] = "segments",       /* recording segments kept for the camera */
    [VW_M_CORRUPT_COUNT] = "corrupt_count",
    [VW_M_GAP_COUNT] = "gap_count",
    [VW_M_GAP_SECONDS] = "gap_seconds",
    [VW_M_RETENTION_DAYS_KEPT] = "retention_days_kept",
    [VW_M_NEWEST_AGE_S] = "newest_age_s",
    [VW_M_FREE_PCT] = "free_pct",
    [VW_M_FREE_GB] = "free_gb",
    [VW_M_WRITE_GB_PER_DAY] = "write_gb_per_day",
    [VW_M_DAYS_UNTIL_FULL] = "days_until_full",
    [VW_M_CAMERAS_OK] = "cameras_ok",
    [VW_M_CAMERAS_REQUIRED] = "cameras_required",
    [VW_M_CAMERAS_TOTAL] = "cameras_total",
    [VW_M_RTT_MS] = "rtt_ms", /* median TCP handshake time */
    [VW_M_RTT_P95_MS] = "rtt_p95_ms",
    [VW_M_JITTER_MS] = "jitter_ms", /* mean change between consecutive samples */
    [VW_M_LOSS_PCT] = "loss_pct",
    [VW_M_DNS_MS] = "dns_ms",
    [VW_M_TLS_MS] = "tls_ms",
    [VW_M_TTFB_MS] = "ttfb_ms",
    [VW_M_SAMPLES] = "samples",
    [VW_M_UPLINK_KBPS] = "uplink_kbps",
    [VW_M_REQUIRED_KBPS] = "required_kbps",
    /* SSIM (0-1) of the picture against the camera's reference snapshot */
    [VW_M_VIEW_SIMILARITY] = "view_similarity",
    /* The cadence the target was checked at (camera interval incl. session cadence,
     * recording scan, network round): the collector holds a result for at most twice it. */
    [VW_M_INTERVAL_MS] = "interval_ms",
    /* estimated noise (standard deviation, 8-bit luma) at 320 wide */
    [VW_M_NOISE] = "noise",
    /* distance of the mean chroma from grey, 8-bit units, and the mean saturation (SATAVG) */
    [VW_M_COLOR_CAST] = "color_cast",
    [VW_M_SATURATION] = "saturation",
    /* mean luma swing of rows (or columns) against their neighbourhood, 8-bit units */
    [VW_M_STRIPES] = "stripes",
    /* percent of the picture's blocks without any detail */
    [VW_M_OCCLUDED_PCT] = "occluded_pct",
    /* network "collector" and "uplink": which [collector] url was measured (0 the primary),
     * sent when there are several */
    [VW_M_COLLECTOR_INDEX] = "collector_index",
};

/* --- labels (issue 16, A) ---------------------------------------------------------------
 * Chinese as the bureaus' and vendors' own screens say it (视频质量诊断: 信号丢失, 画面冻结,
 * 图像模糊, 亮度异常 ...). A code added to fault_names without a label here is caught by
 * tests/unit/test_result.c. */
static const struct vw_label fault_labels[] = {
    {"unreachable", "无法连接", "Unreachable"},
    {"auth_failed", "认证失败", "Authentication failed"},
    {"no_video", "无视频信号", "No video"},
    {"timeout", "响应超时", "Timed out"},
    {"protocol_error", "协议错误", "Protocol error"},
    {"buffer_overflow", "缓存溢出（部分结果丢失）", "Buffer overflow (results dropped)"},
    {"clock_skew", "时钟偏差", "Clock skew"},
    {"black", "黑屏", "Black picture"},
    {"frozen", "画面冻结", "Frozen picture"},
    {"blurred", "图像模糊", "Blurred picture"},
    {"too_dark", "画面过暗", "Too dark"},
    {"too_bright", "画面过亮", "Too bright"},
    {"low_resolution", "分辨率不足", "Resolution too low"},
    {"low_fps", "帧率不足", "Frame rate too low"},
    {"low_bitrate", "码率过低", "Bitrate too low"},
    {"recording_missing", "录像缺失", "Recording missing"},
    {"recording_gap", "录像中断", "Gap in recording"},
    {"retention_short", "录像保存天数不足", "Recordings kept too briefly"},
    {"recording_corrupt", "录像文件损坏", "Corrupt recording"},
    {"disk_low", "存储空间不足", "Disk nearly full"},
    {"room_uncovered", "考场覆盖不足", "Room not covered"},
    {"high_rtt", "网络延迟过高", "High latency"},
    {"packet_loss", "网络丢包", "Packet loss"},
    {"tls_error", "加密连接失败", "TLS error"},
    {"uplink_insufficient", "上行带宽不足", "Uplink insufficient"},
    {"camera_moved", "摄像机位置变动", "Camera moved"},
    {"noisy", "雪花噪声", "Noisy picture (snow)"},
    {"color_cast", "画面偏色", "Colour cast"},
    {"striped", "条纹干扰", "Stripes or interference"},
    {"occluded", "画面遮挡", "Picture occluded"},
    /* Codes outside the enum: the assessment's unmet criteria (agent/assess.c) and the
     * collector's own site_silent. */
    {"not_connected", "未接入监管平台", "Not connected to the platform"},
    {"network_not_smooth", "网络连接不顺畅", "Network not smooth"},
    {"picture_not_clear", "视频画面不清晰", "Picture not clear"},
    {"floor_not_covered", "评价现场未全覆盖", "Exam floor not fully covered"},
    {"records_not_kept", "影像资料未保存", "Recordings not kept"},
    {VW_FAULT_SITE_SILENT, "站点失联", "Site silent"},
};
static const struct vw_label kind_labels[] = {
    {"stream", "视频", "Camera"},
    {"network", "网络", "Network"},
    {"recording", "录像", "Recording"},
    {"coverage", "考场覆盖", "Room coverage"},
    {"assessment", "3.6项评估", "Item 3.6 assessment"},
    {"buffer", "缓存", "Buffer"},
    {"site", "考点", "Site"},
};
static const struct vw_label status_labels[] = {
    {"ok", "正常", "OK"},         {"degraded", "降级", "Degraded"}, {"down", "故障", "Down"},
    {"silent", "失联", "Silent"}, {"unknown", "未知", "Unknown"},
};
static const struct vw_label severity_labels[] = {
    {"minor", "一般", "Minor"},
    {"major", "严重", "Major"},
    {"critical", "紧急", "Critical"},
};
const char *const vw_label_group_names[VW_LABEL_GROUPS] = {"faults", "kinds", "statuses",
                                                           "severities"};

#define NLAB(a) (sizeof(a) / sizeof((a)[0]))

const struct vw_label *vw_labels(enum vw_label_group g, size_t *n)
{
	switch (g) {
	case VW_LABEL_FAULTS:
		*n = NLAB(fault_labels);
		return fault_labels;
	case VW_LABEL_KINDS:
		*n = NLAB(kind_labels);
		return kind_labels;
	case VW_LABEL_STATUSES:
		*n = NLAB(status_labels);
		return status_labels;
	case VW_LABEL_SEVERITIES:
		*n = NLAB(severity_labels);
		return severity_labels;
	default:
		*n = 0;
		return NULL;
	}
}

const struct vw_label *vw_label_find(enum vw_label_group g, const char *code)
{
	size_t n;
	const struct vw_label *v = vw_labels(g, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].code, code) == 0)
			return &v[i];
	return NULL;
}

int vw_labels_json(struct vw_buf *b)
{
	vw_buf_puts(b, "{");
	for (int g = 0; g < VW_LABEL_GROUPS; g++) {
		size_t n;
		const struct vw_label *v = vw_labels((enum vw_label_group)g, &n);
		vw_buf_printf(b, "%s\"%s\":{", g ? "," : "", vw_label_group_names[g]);
		for (size_t i = 0; i < n; i++) {
			vw_buf_printf(b, "%s\"%s\":{\"zh\":", i ? "," : "", v[i].code);
			vw_buf_json_str(b, v[i].zh);
			vw_buf_puts(b, ",\"en\":");
			vw_buf_json_str(b, v[i].en);
			vw_buf_puts(b, "}");
		}
		vw_buf_puts(b, "}");
	}
	/* The contract's "outcomes" (inspection outcomes) have no codes yet. */
	vw_buf_puts(b, ",\"outcomes\":{}}");
	return b->err;
}

int vw_labels_markdown(struct vw_buf *b)
{
	static const char *const titles[VW_LABEL_GROUPS] = {"Fault codes", "Kinds", "Statuses",
	                                                    "Severities"};
	for (int g = 0; g < VW_LABEL_GROUPS; g++) {
		size_t n;
		const struct vw_label *v = vw_labels((enum vw_label_group)g, &n);
		vw_buf_printf(b, "%s**%s** (`%s`)\n\n| code | zh-CN | en |\n|---|---|---|\n",
		              g ? "\n" : "", titles[g], vw_label_group_names[g]);
		for (size_t i = 0; i < n; i++)
			vw_buf_printf(b, "| `%s` | %s | %s |\n", v[i].code, v[i].zh, v[i].en);
	}
	return b->err;
}

const char *vw_kind_name(enum vw_kind k)
{
	return k < VW_KIND_COUNT ? kind_names[k] : "?";
}
const char *vw_status_name(enum vw_status s)
{
	return s < VW_STATUS_COUNT ? status_names[s] : "?";
}
const char *vw_fault_name(enum vw_fault f)
{
	return f < VW_FAULT_COUNT ? fault_names[f] : "?";
}
const char *vw_metric_name(enum vw_metric_id m)
{
	return m < VW_M_COUNT ? metric_names[m] : "?";
}

static int lookup(const char *const *names, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

int vw_kind_parse(const char *s, enum vw_kind *out)
{
	int i = lookup(kind_names, VW_KIND_COUNT, s);
	if (i < 0)
		return -EINVAL;
	*out = (enum vw_kind)i;
	return 0;
}

int vw_status_parse(const char *s, enum vw_status *out)
{
	int i = lookup(status_names, VW_STATUS_COUNT, s);
	if (i < 0)
		return -EINVAL;
	*out = (enum vw_status)i;
	return 0;
}

int vw_code_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= VW_NAME_MAX || s[0] < 'a' || s[0] > 'z')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

void vw_result_init(struct vw_result *r, enum vw_kind kind, const char *target)
{
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->status = VW_STATUS_OK;
	r->ts_ms = vw_now_ms();
	r->mono_ms = vw_mono_ms();
	snprintf(r->target, sizeof(r->target), "%s", target);
}

static void add_fault_str(struct vw_result *r, const char *code)
{
	if (vw_result_has_fault(r, code) || r->nfaults >= VW_MAX_FAULTS)
		return;
	snprintf(r->faults[r->nfaults++], VW_NAME_MAX, "%s", code);
}

void vw_result_add_fault(struct vw_result *r, enum vw_fault f)
{
	add_fault_str(r, vw_fault_name(f));
}

int vw_result_has_fault(const struct vw_result *r, const char *code)
{
	for (unsigned i = 0; i < r->nfaults; i++)
		if (strcmp(r->faults[i], code) == 0)
			return 1;
	return 0;
}

static void set_metric_str(struct vw_result *r, const char *name, double value)
{
	for (unsigned i = 0; i < r->nmetrics; i++) {
		if (strcmp(r->metrics[i].name, name) == 0) {
			r->metrics[i].value = value;
			return;
		}
	}
	if (r->nmetrics >= VW_MAX_METRICS)
		return;
	snprintf(r->metrics[r->nmetrics].name, VW_NAME_MAX, "%s", name);
	r->metrics[r->nmetrics++].value = value;
}

void vw_result_set_metric(struct vw_result *r, enum vw_metric_id m, double value)
{
	set_metric_str(r, vw_metric_name(m), value);
}

void vw_result_set_metric_name(struct vw_result *r, const char *name, double value)
{
	if (vw_code_valid(name))
		set_metric_str(r, name, value);
}

void vw_result_add_fault_name(struct vw_result *r, const char *code)
{
	if (vw_code_valid(code))
		add_fault_str(r, code);
}

int vw_result_get_metric(const struct vw_result *r, const char *name, double *value)
{
	for (unsigned i = 0; i < r->nmetrics; i++) {
		if (strcmp(r->metrics[i].name, name) == 0) {
			*value = r->metrics[i].value;
			return 1;
		}
	}
	return 0;
}

int vw_result_encode_faults(const struct vw_result *r, struct vw_buf *b)
{
	vw_buf_append(b, "[", 1);
	for (unsigned i = 0; i < r->nfaults; i++) {
		if (i)
			vw_buf_append(b, ",", 1);
		vw_buf_json_str(b, r->faults[i]);
	}
	return vw_buf_append(b, "]", 1);
}

int vw_result_encode_metrics(const struct vw_result *r, struct vw_buf *b)
{
	vw_buf_append(b, "{", 1);
	for (unsigned i = 0; i < r->nmetrics; i++) {
		if (i)
			vw_buf_append(b, ",", 1);
		vw_buf_json_str(b, r->metrics[i].name);
		double v = r->metrics[i].value;
		/* Integers print without a fraction (range first: the cast of a larger double is
		 * undefined, fuzz_ingest); others in the shortest of %.15g / %.17g that reads back
		 * as the same double, so a stored metric is exactly what the agent measured. */
		if (fabs(v) < 9e15 && v == (double)(int64_t)v) {
			vw_buf_printf(b, ":%lld", (long long)v);
		} else {
			char num[32];
			snprintf(num, sizeof(num), "%.15g", v);
			if (strtod(num, NULL) != v)
				snprintf(num, sizeof(num), "%.17g", v);
			vw_buf_printf(b, ":%s", num);
		}
	}
	return vw_buf_append(b, "}", 1);
}

int vw_result_encode(const struct vw_result *r, struct vw_buf *b)
{
	char ts[VW_ISO_LEN];
	vw_time_iso(r->ts_ms, ts);
	vw_buf_printf(b, "{\"seq\":%lld,\"ts\":\"%s\",\"mono_ms\":%lld,\"kind\":\"%s\",\"target\":",
	              (long long)r->seq, ts, (long long)r->mono_ms, vw_kind_name(r->kind));
	vw_buf_json_str(b, r->target);
	vw_buf_printf(b, ",\"status\":\"%s\"", vw_status_name(r->status));
	if (r->session[0]) {
		vw_buf_puts(b, ",\"session\":");
		vw_buf_json_str(b, r->session);
	}
	if (r->codec[0]) {
		vw_buf_puts(b, ",\"codec\":");
		vw_buf_json_str(b, r->codec);
	}
	vw_buf_puts(b, ",\"faults\":");
	vw_result_encode_faults(r, b);
	vw_buf_puts(b, ",\"metrics\":");
	vw_result_encode_metrics(r, b);
	return vw_buf_append(b, "}", 1);
}

static int fail(char *err, size_t errlen, const char *field, const char *why)
{
	snprintf(err, errlen, "field '%s': %s", field, why);
	return -EINVAL;
}

static int get_name(const cJSON *obj, const char *field, char *out, size_t outlen, int required,
                    char *err, size_t errlen)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);
	if (!it) {
		if (required)
			return fail(err, errlen, field, "missing");
		out[0] = '\0';
		return 0;
	}
	if (!cJSON_IsString(it))
		return fail(err, errlen, field, "not a string");
	size_t n = strlen(it->valuestring);
	if (n >= outlen)
		return fail(err, errlen, field, "too long");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)it->valuestring[i] < 0x20)
			return fail(err, errlen, field, "control character");
	/* cJSON copies raw bytes through unchecked; what we store is served as JSON and
	 * logged, both of which promise UTF-8. */
	if (!vw_utf8_valid(it->valuestring))
		return fail(err, errlen, field, "invalid UTF-8");
	memcpy(out, it->valuestring, n + 1);
	return 0;
}

/* Counters and seqs by their name's suffix (dropped_count, dropped_first_seq,
 * dropped_total, ...): a negative or fractional one is a forged or broken report. */
static int metric_is_count(const char *name)
{
	static const char *const suffixes[] = {"_count", "_seq", "_total"};
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t k = strlen(suffixes[i]);
		if (n > k && strcmp(name + n - k, suffixes[i]) == 0)
			return 1;
	}
	return 0;
}

int vw_result_decode(const cJSON *obj, struct vw_result *r, char *err, size_t errlen)
{
	char tmp[VW_NAME_MAX];
	memset(r, 0, sizeof(*r));
	if (!cJSON_IsObject(obj))
		return fail(err, errlen, "result", "not an object");

	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(obj, "seq");
	if (!cJSON_IsNumber(seq) || seq->valuedouble < 1 || seq->valuedouble > 9007199254740991.0 ||
	    seq->valuedouble != (double)(int64_t)seq->valuedouble)
		return fail(err, errlen, "seq", "must be an integer >= 1");
	r->seq = (int64_t)seq->valuedouble;

	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(obj, "ts");
	if (!cJSON_IsString(ts) || vw_time_parse_iso(ts->valuestring, &r->ts_ms) != 0)
		return fail(err, errlen, "ts", "must be an ISO 8601 UTC time");
	if (r->ts_ms < VW_TS_MIN_MS || r->ts_ms >= VW_TS_MAX_MS)
		return fail(err, errlen, "ts",
		            "outside 2000-01-01..2099-12-31 (agent clock unset?)");
	const cJSON *mono = cJSON_GetObjectItemCaseSensitive(obj, "mono_ms");
	if (mono) {
		/* In range before the cast: converting a double outside int64_t is undefined
		 * (found by tests/fuzz/fuzz_ingest). 2^53: where doubles stop being exact. */
		if (!cJSON_IsNumber(mono) || !(fabs(mono->valuedouble) <= 9007199254740991.0))
			return fail(err, errlen, "mono_ms", "not a number within +-2^53");
		r->mono_ms = (int64_t)mono->valuedouble;
	}

	if (get_name(obj, "kind", tmp, sizeof(tmp), 1, err, errlen))
		return -EINVAL;
	if (vw_kind_parse(tmp, &r->kind))
		return fail(err, errlen, "kind", "unknown kind");
	if (get_name(obj, "status", tmp, sizeof(tmp), 1, err, errlen))
		return -EINVAL;
	if (vw_status_parse(tmp, &r->status))
		return fail(err, errlen, "status", "must be ok, degraded or down");
	if (get_name(obj, "target", r->target, sizeof(r->target), 1, err, errlen) ||
	    get_name(obj, "session", r->session, sizeof(r->session), 0, err, errlen) ||
	    get_name(obj, "codec", r->codec, sizeof(r->codec), 0, err, errlen))
		return -EINVAL;
	if (!r->target[0])
		return fail(err, errlen, "target", "empty");

	const cJSON *faults = cJSON_GetObjectItemCaseSensitive(obj, "faults");
	if (faults) {
		if (!cJSON_IsArray(faults))
			return fail(err, errlen, "faults", "not an array");
		const cJSON *f;
		cJSON_ArrayForEach(f, faults)
		{
			if (!cJSON_IsString(f) || !vw_code_valid(f->valuestring))
				return fail(err, errlen, "faults",
				            "each code must match [a-z][a-z0-9_]*");
			if (r->nfaults >= VW_MAX_FAULTS)
				return fail(err, errlen, "faults", "too many");
			add_fault_str(r, f->valuestring);
		}
	}
	const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(obj, "metrics");
	if (metrics) {
		if (!cJSON_IsObject(metrics))
			return fail(err, errlen, "metrics", "not an object");
		const cJSON *m;
		cJSON_ArrayForEach(m, metrics)
		{
			if (!m->string || !vw_code_valid(m->string))
				return fail(err, errlen, "metrics",
				            "names must match [a-z][a-z0-9_]*");
			if (!cJSON_IsNumber(m) || !isfinite(m->valuedouble))
				return fail(err, errlen, "metrics",
				            "values must be finite numbers");
			if (metric_is_count(m->string) &&
			    !(m->valuedouble >= 0 && m->valuedouble <= 9007199254740991.0 &&
			      m->valuedouble == floor(m->valuedouble)))
				return fail(err, errlen, "metrics",
				            "*_count, *_seq and *_total values must be integers in "
				            "0..2^53-1");
			if (r->nmetrics >= VW_MAX_METRICS)
				return fail(err, errlen, "metrics", "too many");
			set_metric_str(r, m->string, m->valuedouble);
		}
	}
	return 0;
}
