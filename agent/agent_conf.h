/* agent_conf: the agent's configuration schema (one table per section) and its
 * cross-section checks. Loaded once on the main thread before the loop starts;
 * agent_conf_free releases everything agent_conf_load allocated. */
#ifndef VW_AGENT_CONF_H
#define VW_AGENT_CONF_H

#include <stdint.h>

#include <stddef.h>

#include "conf.h"

enum vw_transport { VW_TRANSPORT_TCP, VW_TRANSPORT_UDP };

struct agent_section {
	char *site;
	char *org;
	char *state_dir;
	long interval_ms;         /* cadence of each camera's check */
	long session_interval_ms; /* the same during an exam session */
	long check_timeout_ms;    /* hard deadline of one check */
	long workers;             /* media worker threads; 0: sized by the scheduler */
	long workers_max;         /* the most the scheduler sizes them to */
	int log_level;            /* enum vw_log_level */
	/* issue 16 C: a camera's result carries a JPEG of its picture when its status or faults
	 * change, and otherwise at most this often; 0 = off */
	long thumbnail_interval_ms;
	char *metrics_file;       /* Prometheus textfile; "" = none */
	long metrics_interval_ms; /* longest time between two rewrites of it */
	int line;
};

struct collector_section {
	char *url; /* as written: one URL or a comma-separated list */
	/* The list split by agent_conf_load (urls[0] the primary), freed by agent_conf_free. */
	char *urls[8];
	size_t nurls;
	long failback_after_ms; /* back to urls[0] this long after it failed */
	char *ca;
	char *cert;
	char *key;
	long timeout_ms;
	long batch_max; /* results per upload */
	long long batch_max_bytes;
	long retry_max_ms; /* backoff cap */
	long max_clock_skew_ms;
	long long outbox_max;  /* bytes the outbox may hold before dropping the oldest */
	long sessions_poll_ms; /* how often the collector's exam sessions are fetched; 0 = off */
	int line;
};

/* Picture thresholds for every camera; a camera may override resolution and fps. */
struct picture_section {
	long min_width, min_height;
	long min_fps;
	long min_bitrate_kbps;
	double dark_luma, bright_luma;
	double blur_max;
	long freeze_noise_db;
	long analysis_frames;
	double moved_ssim;
	double noise, color_cast, stripes, occluded_pct;
	int line;
};

/* Where the venue's recorder (NVR/DVR) keeps its segments, and how long it must. */
struct recordings_section {
	char *root;    /* "" : recordings are not checked */
	char *pattern; /* per camera, relative to root: {camera}/%Y%m%d/%H%M%S.mp4 */
	long retention_days;
	long gap_tolerance_ms;
	long missing_after_ms;
	long scan_interval_ms;
	long settle_ms; /* a segment modified more recently is still being written */
	long disk_min_free_pct;
	long disk_min_days;
	/* Issue 15.2: playback from the recorder (NVR) */
	char *playback_url;         /* template for every camera; "" = none */
	char *playback_credentials; /* file with user:password; "" = none */
	long playback_interval_ms;  /* one round of samples */
	long playback_samples;      /* points per finished exam session */
	long playback_read_ms;      /* stream time read per point */
	long playback_max_reads;    /* per round, all cameras */
	long playback_max_kbps;     /* average read rate over a round */
	long playback_lag_ms;       /* the newest sample is this long before now */
	long retention_margin_ms;   /* the retention sample: now - retention_days + this */
	int line;
};

/* Connectivity to the collector and the supervision platform (网络连接顺畅). */
struct network_section {
	char *targets; /* extra endpoints, comma-separated https:// URLs */
	long samples;
	long sample_gap_ms;
	long max_rtt_ms;
	long max_loss_pct;
	long required_uplink_kbps;
	long long uplink_test_bytes;
	long uplink_interval_ms;
	long timeout_ms;
	int line;
};

/* An exam session: its rooms must be covered and recorded from start to end. From a
 * [session] section (line > 0) or from the collector (line 0, see sessions.h). */
struct session_conf {
	char *id;
	char *start, *end; /* as written; parsed into *_ms by agent_conf_load */
	char *rooms;       /* comma-separated room names, or "*" */
	int64_t start_ms, end_ms;
	int line;
};

struct room_conf {
	char *name;
	long min_cameras;
	int line;
};

struct camera_conf {
	char *name;
	char *room;
	char *url;
	int transport; /* enum vw_transport */
	long window_ms;
	long min_width, min_height, min_fps; /* 0: as in [picture] */
	char *recording_name; /* {camera} in the recordings pattern; "" = the camera's name */
	char *credentials;    /* file holding user:password; "" = none */
	char *playback_url;   /* this camera's playback template; "" = [recordings]' */
	int line;
};

struct agent_conf {
	const char *path;
	struct agent_section agent;
	struct collector_section collector;
	struct picture_section picture;
	struct recordings_section recordings;
	struct network_section network;
	struct vw_conf_list sessions; /* struct session_conf */
	struct vw_conf_list rooms;    /* struct room_conf */
	struct vw_conf_list cameras;  /* struct camera_conf */
	/* At run time: the merged set of [session] sections and the collector's sessions
	 * (sessions.c; read it through sessions_view_get). NULL: the sections alone. */
	struct sessions *live;
};

extern const struct vw_conf_schema agent_conf_schema;

/* Loads and validates path; on failure writes every error into errs and returns non-zero. */
int agent_conf_load(struct agent_conf *cfg, const char *path, struct vw_conf_errors *errs);
int agent_conf_load_string(struct agent_conf *cfg, const char *name, const char *text,
                           struct vw_conf_errors *errs);
void agent_conf_free(struct agent_conf *cfg);

static inline struct camera_conf *agent_conf_camera(const struct agent_conf *c, size_t i)
{
	return &((struct camera_conf *)c->cameras.items)[i];
}
static inline struct session_conf *agent_conf_session(const struct agent_conf *c, size_t i)
{
	return &((struct session_conf *)c->sessions.items)[i];
}
/* 1 when the session covers this room. */
int agent_conf_session_has_room(const struct session_conf *s, const char *room);
/* The session running at now_ms in this room (NULL room: in any room), or NULL: among the
 * [session] sections alone (agent_conf_session_at) or among items[0..n). */
const struct session_conf *agent_conf_session_at(const struct agent_conf *c, const char *room,
                                                 int64_t now_ms);
const struct session_conf *agent_conf_session_find(const struct session_conf *items, size_t n,
                                                   const char *room, int64_t now_ms);

/* The camera's playback URL template (its own, else [recordings]'), or NULL: checked on disk. */
const char *agent_conf_playback_url(const struct agent_conf *c, const struct camera_conf *cam);

static inline struct room_conf *agent_conf_room(const struct agent_conf *c, size_t i)
{
	return &((struct room_conf *)c->rooms.items)[i];
}

#endif
