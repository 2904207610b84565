/* result: the report schema shared by agent and server — one check's outcome as a row.
 * Fault codes and metric names live in the tables in result.c (one per kind), never as
 * scattered literals. Plain data: no allocation, any thread. */
#ifndef VW_RESULT_H
#define VW_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define VW_NAME_MAX 64 /* target, session, fault and metric names */
#define VW_MAX_FAULTS 16
#define VW_MAX_METRICS 32
/* A check's time must fall in [2000-01-01, 2100-01-01) UTC: a clock that lost its battery
 * reads 1970, and anything outside would sort before or after every real result. The
 * bound is fixed, not relative to now, so a stored row decodes the same forever. */
#define VW_TS_MIN_MS 946684800000LL
#define VW_TS_MAX_MS 4102444800000LL

enum vw_kind {
	VW_KIND_STREAM,
	VW_KIND_NETWORK,
	VW_KIND_RECORDING,
	VW_KIND_COVERAGE,
	VW_KIND_ASSESSMENT,
	VW_KIND_BUFFER,
	VW_KIND_COUNT
};
enum vw_status { VW_STATUS_OK, VW_STATUS_DEGRADED, VW_STATUS_DOWN, VW_STATUS_COUNT };

/* Fault codes the agent emits. The server accepts any well-formed code (so an older
 * server keeps a newer agent's data) but these are the ones with a meaning today. */
enum vw_fault {
	VW_FAULT_UNREACHABLE,     /* refused, no route, DNS failure */
	VW_FAULT_AUTH_FAILED,     /* 401 from the camera */
	VW_FAULT_NO_VIDEO,        /* connected, but no video stream or no video frames */
	VW_FAULT_TIMEOUT,         /* no answer within the check's deadline */
	VW_FAULT_PROTOCOL,        /* answered, but not in a way we can use (garbage, bad SDP) */
	VW_FAULT_BUFFER_OVERFLOW, /* outbox bound reached: oldest unsent rows dropped */
	VW_FAULT_CLOCK_SKEW,      /* agent clock differs from the collector's Date header */
	VW_FAULT_BLACK,           /* every analysed frame (almost) black */
	VW_FAULT_FROZEN,          /* the picture does not change, even while packets flow */
	VW_FAULT_BLURRED,         /* edges too wide: out of focus, dirty or fogged lens */
	VW_FAULT_TOO_DARK,
	VW_FAULT_TOO_BRIGHT,
	VW_FAULT_LOW_RESOLUTION,
	VW_FAULT_LOW_FPS,
	VW_FAULT_LOW_BITRATE,
	VW_FAULT_RECORDING_MISSING, /* no segment ended recently */
	VW_FAULT_RECORDING_GAP,     /* a hole beyond tolerance inside an exam session */
	VW_FAULT_RETENTION_SHORT,   /* oldest segment younger than retention_days */
	VW_FAULT_RECORDING_CORRUPT, /* a segment that does not open or decode */
	VW_FAULT_DISK_LOW,          /* recording disk nearly full, or soon */
	VW_FAULT_ROOM_UNCOVERED,    /* fewer healthy cameras than the room needs */
	VW_FAULT_HIGH_RTT,
	VW_FAULT_PACKET_LOSS,
	VW_FAULT_TLS_ERROR,
	VW_FAULT_UPLINK_INSUFFICIENT, /* measured uplink below what the cameras need */
	VW_FAULT_CAMERA_MOVED,        /* the view differs from the camera's reference snapshot */
	VW_FAULT_NOISY,               /* snow / noise over the picture (雪花、噪声) */
	VW_FAULT_COLOR_CAST,          /* the whole picture tinted one colour (偏色) */
	VW_FAULT_STRIPED,             /* lines or bands across the picture (条纹、干扰) */
	VW_FAULT_OCCLUDED,            /* a large part covered, the rest still a scene (遮挡) */
	VW_FAULT_COUNT
};

enum vw_metric_id {
	VW_M_WIDTH,
	VW_M_HEIGHT,
	VW_M_FPS,
	VW_M_BITRATE_KBPS,
	VW_M_FIRST_KEYFRAME_MS,
	VW_M_OPEN_MS,
	VW_M_CHECK_MS,
	VW_M_DROPPED_COUNT,
	VW_M_DROPPED_FIRST_SEQ,
	VW_M_DROPPED_LAST_SEQ,
	VW_M_DROPPED_TOTAL,
	VW_M_UNSTORED_COUNT,
	VW_M_CLOCK_SKEW_MS,
	VW_M_FRAMES_ANALYSED,
	VW_M_LUMA_MEAN,
	VW_M_LUMA_STDDEV,
	VW_M_BLUR,
	VW_M_FROZEN,
	VW_M_SEGMENTS,
	VW_M_CORRUPT_COUNT,
	VW_M_GAP_COUNT,
	VW_M_GAP_SECONDS,
	VW_M_RETENTION_DAYS_KEPT,
	VW_M_NEWEST_AGE_S,
	VW_M_FREE_PCT,
	VW_M_FREE_GB,
	VW_M_WRITE_GB_PER_DAY,
	VW_M_DAYS_UNTIL_FULL,
	VW_M_CAMERAS_OK,
	VW_M_CAMERAS_REQUIRED,
	VW_M_CAMERAS_TOTAL,
	VW_M_RTT_MS,
	VW_M_RTT_P95_MS,
	VW_M_JITTER_MS,
	VW_M_LOSS_PCT,
	VW_M_DNS_MS,
	VW_M_TLS_MS,
	VW_M_TTFB_MS,
	VW_M_SAMPLES,
	VW_M_UPLINK_KBPS,
	VW_M_REQUIRED_KBPS,
	VW_M_VIEW_SIMILARITY,
	VW_M_INTERVAL_MS,
	VW_M_NOISE,
	VW_M_COLOR_CAST,
	VW_M_SATURATION,
	VW_M_STRIPES,
	VW_M_OCCLUDED_PCT,
	VW_M_COLLECTOR_INDEX,
	VW_M_COUNT
};

struct vw_metric {
	char name[VW_NAME_MAX];
	double value;
};

struct vw_result {
	int64_t seq;     /* monotonic per agent, never reused; 0 until the outbox assigns it */
	int64_t ts_ms;   /* wall-clock time of the check (UTC ms), not of the upload */
	int64_t mono_ms; /* monotonic time of the check, for ordering across clock steps */
	enum vw_kind kind;
	enum vw_status status;
	char target[VW_NAME_MAX];
	char session[VW_NAME_MAX]; /* exam session id, "" outside sessions */
	char codec[16];            /* stream kind only, "" otherwise */
	unsigned nfaults;
	char faults[VW_MAX_FAULTS][VW_NAME_MAX];
	unsigned nmetrics;
	struct vw_metric metrics[VW_MAX_METRICS];
	/* Stream kind only: a JPEG of the analysed picture (issue 16), or NULL. Borrowed, never
	 * owned by the result: on the agent the scheduler's job holds it until the outbox has
	 * committed it (a BLOB beside the row), on the server the batch's arena. Not part of
	 * vw_result_encode: the outbox adds it to the upload as "thumbnail" (base64). */
	const unsigned char *thumb;
	size_t thumb_len;
};

/* issue 16 (A): the fault code the collector itself raises (never an agent's). */
#define VW_FAULT_SITE_SILENT "site_silent"

/* Labels for people (zh-CN and English) of every code the API shows: fault codes (the
 * agent's table, the assessment's criteria, site_silent), kinds (and "site"), statuses
 * (and "silent", "unknown"), severities. One table, shared by GET /api/v1/labels, the
 * docs (docs/API.md, generated) and the dashboard. */
struct vw_label {
	const char *code, *zh, *en;
};
enum vw_label_group {
	VW_LABEL_FAULTS,
	VW_LABEL_KINDS,
	VW_LABEL_STATUSES,
	VW_LABEL_SEVERITIES,
	VW_LABEL_GROUPS
};
extern const char *const vw_label_group_names[VW_LABEL_GROUPS]; /* "faults", ... */
/* The group's labels and their count. */
const struct vw_label *vw_labels(enum vw_label_group g, size_t *n);
/* The label of code in group, or NULL. */
const struct vw_label *vw_label_find(enum vw_label_group g, const char *code);
/* The whole table as the labels JSON document (GET /api/v1/labels). */
int vw_labels_json(struct vw_buf *b);
/* The same as Markdown tables, one per group (docs/API.md, scripts/labels-docs.sh). */
int vw_labels_markdown(struct vw_buf *b);

const char *vw_kind_name(enum vw_kind k);
const char *vw_status_name(enum vw_status s);
const char *vw_fault_name(enum vw_fault f);
const char *vw_metric_name(enum vw_metric_id m);
int vw_kind_parse(const char *s, enum vw_kind *out);
int vw_status_parse(const char *s, enum vw_status *out);
/* A fault code or metric name: [a-z0-9_], 1..63 characters, starting with a letter. */
int vw_code_valid(const char *s);

void vw_result_init(struct vw_result *r, enum vw_kind kind, const char *target);
void vw_result_add_fault(struct vw_result *r, enum vw_fault f);
int vw_result_has_fault(const struct vw_result *r, const char *code);
void vw_result_set_metric(struct vw_result *r, enum vw_metric_id m, double value);
/* For names built at run time (the assessment's criteria); name must pass vw_code_valid. */
void vw_result_set_metric_name(struct vw_result *r, const char *name, double value);
void vw_result_add_fault_name(struct vw_result *r, const char *code);
/* Returns 1 and stores the value when the metric is present. */
int vw_result_get_metric(const struct vw_result *r, const char *name, double *value);

/* Appends the result as one JSON object (no newline). */
int vw_result_encode(const struct vw_result *r, struct vw_buf *b);
/* Encodes just the "faults" array / "metrics" object (the server stores them as text). */
int vw_result_encode_faults(const struct vw_result *r, struct vw_buf *b);
int vw_result_encode_metrics(const struct vw_result *r, struct vw_buf *b);
/* Decodes one JSON object (a cJSON item). On error returns -EINVAL and writes which field
 * is wrong into err. */
struct cJSON;
int vw_result_decode(const struct cJSON *obj, struct vw_result *r, char *err, size_t errlen);

#endif
