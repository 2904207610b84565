#include "agent_conf.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "failover.h"
#include "vtime.h"

#define KEY(sect, field_) offsetof(struct sect, field_)

static const struct vw_conf_key agent_keys[] = {
    {"site", VW_CONF_STR, KEY(agent_section, site), NULL, VW_CONF_REQUIRED, 0, 0, NULL,
     "site (考点) id, as named in this agent's certificate"},
    {"org", VW_CONF_STR, KEY(agent_section, org), NULL, VW_CONF_REQUIRED, 0, 0, NULL,
     "organisation (社评组织) id that runs the site"},
    {"state_dir", VW_CONF_STR, KEY(agent_section, state_dir), NULL, VW_CONF_REQUIRED, 0, 0, NULL,
     "directory for the outbox database and other state"},
    /* 120 s outside exam sessions: DOMAIN.md's default cadence. */
    {"interval", VW_CONF_DURATION, KEY(agent_section, interval_ms), "120s", 0, 1000, 86400000, NULL,
     "how often each camera is checked"},
    {"session_interval", VW_CONF_DURATION, KEY(agent_section, session_interval_ms), "15s", 0, 1000,
     86400000, NULL, "the same while an exam session runs in the camera's room"},
    {"check_timeout", VW_CONF_DURATION, KEY(agent_section, check_timeout_ms), "10s", 0, 500, 300000,
     NULL, "hard deadline of one camera check, connect to verdict"},
    {"workers", VW_CONF_INT, KEY(agent_section, workers), "0", 0, 0, 256, NULL,
     "threads that open and read camera streams (blocking media work); 0: sized from the "
     "cameras' cadence and their measured check time (see workers_max), shown by `status`"},
    /* 32: a running check holds ~11 MiB (a 1080p keyframe decoder and its frames,
     * measured: tests/bench/cadence64.sh), so the cap bounds the pool's memory near 400 MiB;
     * 64 cameras at the 15 s session cadence keep ~9 busy and get 13. */
    {"workers_max", VW_CONF_INT, KEY(agent_section, workers_max), "32", 0, 1, 256, NULL,
     "the most threads workers = 0 grows to; a cadence that needs more is logged "
     "(event=workers_short) and shown by `status`"},
    {"log_level", VW_CONF_ENUM, KEY(agent_section, log_level), "info", 0, 0, 0,
     "debug|info|warn|error", "least severe log level written (order of enum vw_log_level)"},
    /* issue 16 C: 30 min, the figure — a supervisor sees the picture a verdict is
     * about (a change always carries one) and a recent look at a healthy camera, at ~48
     * small JPEGs a camera a day. */
    {"thumbnail_interval", VW_CONF_DURATION, KEY(agent_section, thumbnail_interval_ms), "30m",
     VW_CONF_OFF, 1000, 86400000, NULL,
     "a camera's result carries a small JPEG of the analysed picture (<= 320 px wide, <= 30 KB) "
     "when its status or faults change, and otherwise at most this often; off: never. The "
     "pictures show candidates: the collector serves them only to those who may read the "
     "site"},
    {"metrics_file", VW_CONF_STR, KEY(agent_section, metrics_file), "", 0, 0, 0, NULL,
     "Prometheus text file of the agent's metrics, rewritten atomically (mode 0644: it holds "
     "counts and no secrets, and node_exporter reads it as another user) after checks and "
     "uploads and at least every metrics_interval; put it in node_exporter's textfile "
     "collector directory, usually /var/lib/prometheus/node-exporter/venuewatch-agent.prom; "
     "empty: no metrics file"},
    /* 15 s: Prometheus's default scrape interval, so the outbox age a scrape reads is
     * never more than one scrape old. */
    {"metrics_interval", VW_CONF_DURATION, KEY(agent_section, metrics_interval_ms), "15s", 0, 1000,
     3600000, NULL, "longest time between two rewrites of metrics_file"},
};

static const struct vw_conf_key collector_keys[] = {
    {"url", VW_CONF_STR, KEY(collector_section, url), NULL, VW_CONF_REQUIRED, 0, 0, NULL,
     "base URL of the collector, https://host:port; or several, comma-separated (at most 8): "
     "the agent sticks to one and moves to the next on a connection error or a 503; the "
     "exam sessions, the network check and the uplink test follow the one in use"},
    {"ca", VW_CONF_STR, KEY(collector_section, ca), NULL, VW_CONF_REQUIRED, 0, 0, NULL,
     "CA certificate that signed the collector's certificate (PEM)"},
    {"cert", VW_CONF_STR, KEY(collector_section, cert), NULL, VW_CONF_REQUIRED, 0, 0, NULL,
     "this agent's client certificate (PEM)"},
    {"key", VW_CONF_STR, KEY(collector_section, key), NULL, VW_CONF_REQUIRED, 0, 0, NULL,
     "this agent's private key (PEM); never leaves the venue"},
    /* 5 min: long enough that a flapping primary does not pull venues back and forth every
     * batch, short enough that load returns to it well within an exam session. */
    {"failback_after", VW_CONF_DURATION, KEY(collector_section, failback_after_ms), "5m", 0, 1000,
     86400000, NULL,
     "with several urls: how long after the first one failed the agent tries it again "
     "(and stays there if it answers)"},
    {"timeout", VW_CONF_DURATION, KEY(collector_section, timeout_ms), "30s", 0, 1000, 600000, NULL,
     "deadline of one upload request"},
    {"batch_max", VW_CONF_INT, KEY(collector_section, batch_max), "500", 0, 1, 100000, NULL,
     "results per upload request"},
    {"batch_max_bytes", VW_CONF_SIZE, KEY(collector_section, batch_max_bytes), "1MiB", 0, 4096,
     64 << 20, NULL, "uncompressed bytes per upload request (at least one result)"},
    {"retry_max", VW_CONF_DURATION, KEY(collector_section, retry_max_ms), "60s", 0, 1000, 3600000,
     NULL, "longest wait between upload retries (exponential backoff, full jitter)"},
    /* The collector's Date header has 1 s resolution; 5 s is well above that noise and
     * well below what would misplace a check in an exam session. */
    {"max_clock_skew", VW_CONF_DURATION, KEY(collector_section, max_clock_skew_ms), "5s", 0, 2000,
     3600000, NULL, "clock difference to the collector reported as clock_skew"},
    {"outbox_max", VW_CONF_SIZE, KEY(collector_section, outbox_max), "256MiB", 0, 1 << 20,
     1LL << 40, NULL, "disk the unsent results may use before the oldest are dropped (counted)"},
    /* 60 s: the bound ("a session created at the collector changes a running
     * agent's cadence within one poll interval") at one small, usually 304, request a
     * minute per venue. */
    {"sessions_poll", VW_CONF_DURATION, KEY(collector_section, sessions_poll_ms), "60s",
     VW_CONF_OFF, 1000, 86400000, NULL,
     "how often the collector's exam sessions for this site are fetched; off: only the "
     "[session] sections count"},
};

static const struct vw_conf_key picture_keys[] = {
    /* 720p: the provincial rule DOMAIN.md cites (≥720P). */
    {"min_width", VW_CONF_INT, KEY(picture_section, min_width), "1280", 0, 16, 16384, NULL,
     "narrower pictures are low_resolution"},
    {"min_height", VW_CONF_INT, KEY(picture_section, min_height), "720", 0, 16, 16384, NULL,
     "shorter pictures are low_resolution"},
    /* GB/T 28181-2022 uses 25 fps; 20 leaves room for measurement jitter over a short
     * window and for cameras that drop a frame now and then. */
    {"min_fps", VW_CONF_INT, KEY(picture_section, min_fps), "20", 0, 1, 120, NULL,
     "measured frame rates below this are low_fps"},
    /* A 720p H.264 picture of a room needs a few hundred kbit/s to stay legible; below
     * 256 kbit/s encoders smear faces and screens. */
    {"min_bitrate_kbps", VW_CONF_INT, KEY(picture_section, min_bitrate_kbps), "256", 0, 1, 1000000,
     NULL, "measured bitrates below this are low_bitrate"},
    /* Mean luma of the scaled picture, 0-255. A lit room under auto-exposure sits near
     * 100-140; 40 and 220 mark pictures where faces and papers are no longer readable. */
    {"dark_luma", VW_CONF_DOUBLE, KEY(picture_section, dark_luma), "40", 0, 0, 255, NULL,
     "mean luma below this is too_dark"},
    {"bright_luma", VW_CONF_DOUBLE, KEY(picture_section, bright_luma), "220", 0, 0, 255, NULL,
     "mean luma above this is too_bright"},
    /* blurdetect's score (mean edge width in pixels at 320 wide): sharp scenes measure
     * 3-5 in our test streams, a gaussian blur of sigma 8 measures above 7. */
    {"blur_max", VW_CONF_DOUBLE, KEY(picture_section, blur_max), "6.5", 0, 0, 100, NULL,
     "blurdetect scores above this are blurred"},
    {"freeze_noise_db", VW_CONF_INT, KEY(picture_section, freeze_noise_db), "-50", 0, -90, -10,
     NULL, "freezedetect noise floor: frames closer than this count as the same picture"},
    {"analysis_frames", VW_CONF_INT, KEY(picture_section, analysis_frames), "3", 0, 1, 30, NULL,
     "keyframes decoded and analysed per check (cost grows with it)"},
    /* SSIM at 80 pixels wide against the reference snapshot: one view a second apart
     * measured 0.83-0.9 on test scenes, a view turned by half its width 0.27. */
    {"moved_ssim", VW_CONF_DOUBLE, KEY(picture_section, moved_ssim), "0.5", 0, 0, 1, NULL,
     "similarity to the camera's reference view (`venuewatch-agent reference CAMERA`) "
     "below this: camera_moved"},
    /* Immerkaer's noise estimate at 320 wide (tests/integration/test_vqd.py): healthy test
     * scenes 0.03-0.44 at 1500 kbit/s, the dim room with sensor noise 0.41 there, 0.7-1.1 at
     * 4000 kbit/s, 1.6 at near-lossless rates (crf 18, 90 Mbit/s), 3.0 with twice its sensor
     * noise at such rates; analogue snow at 4000 kbit/s 10.7 (6.2 at 3000). */
    {"noise", VW_CONF_DOUBLE, KEY(picture_section, noise), "4", 0, 0, 255, NULL,
     "estimated noise (standard deviation of 8-bit luma at 320 wide) above this: noisy (snow)"},
    /* Mean chroma's distance from grey: 0-2.6 on bars, grey and testsrc2 scenes, 26.8 on a
     * tinted room, 51.8 on testsrc's colour fields (kept apart by the share, see picture.c). */
    {"color_cast", VW_CONF_DOUBLE, KEY(picture_section, color_cast), "20", 0, 0, 182, NULL,
     "distance of the mean chroma from grey (8-bit units) above this, and most of the "
     "picture's colour: color_cast"},
    /* Healthy test scenes 1.6-3.0, bands 16 rows apart of amplitude 40 at 720p: 22. */
    {"stripes", VW_CONF_DOUBLE, KEY(picture_section, stripes), "8", 0, 0, 255, NULL,
     "mean luma swing of rows or columns against their neighbours above this: striped"},
    /* Largest same-level group of detail-free blocks: healthy 6-25%, three-quarters covered 75%. */
    {"occluded_pct", VW_CONF_DOUBLE, KEY(picture_section, occluded_pct), "50", 0, 1, 100, NULL,
     "percent of the picture's blocks without detail at or above this (the rest a scene): "
     "occluded"},
};

static const struct vw_conf_key recordings_keys[] = {
    {"root", VW_CONF_STR, KEY(recordings_section, root), "", 0, 0, 0, NULL,
     "directory the recorder writes segments under; empty: recordings are not checked"},
    {"pattern", VW_CONF_STR, KEY(recordings_section, pattern), "{camera}/%Y%m%d/%H%M%S.mp4", 0, 0,
     0, NULL,
     "segment path below root: {camera}, then strftime fields for the segment's start "
     "(local time)"},
    /* The 2025 public-video regulation's floor (DOMAIN.md); provinces may ask for more. */
    {"retention_days", VW_CONF_INT, KEY(recordings_section, retention_days), "30", 0, 1, 3650, NULL,
     "recordings must be kept at least this long"},
    {"gap_tolerance", VW_CONF_DURATION, KEY(recordings_section, gap_tolerance_ms), "10s", 0, 0,
     3600000, NULL, "a hole between segments inside an exam session longer than this is a gap"},
    {"missing_after", VW_CONF_DURATION, KEY(recordings_section, missing_after_ms), "15m", 0, 60000,
     86400000, NULL, "no segment ending within this long: recording_missing"},
    {"scan_interval", VW_CONF_DURATION, KEY(recordings_section, scan_interval_ms), "5m", 0, 1000,
     86400000, NULL, "how often the recording tree is scanned (incrementally)"},
    {"settle", VW_CONF_DURATION, KEY(recordings_section, settle_ms), "60s", 0, 0, 3600000, NULL,
     "a segment modified more recently is still being written and is not judged yet"},
    {"disk_min_free_pct", VW_CONF_INT, KEY(recordings_section, disk_min_free_pct), "10", 0, 0, 99,
     NULL, "free space (percent) below which the recording disk is disk_low"},
    {"disk_min_days", VW_CONF_INT, KEY(recordings_section, disk_min_days), "3", 0, 0, 3650, NULL,
     "forecast days until full (at the observed write rate) below which: disk_low"},
    /* Issue 15.2: recordings kept on an NVR, proven by playing them back. */
    {"playback_url", VW_CONF_STR, KEY(recordings_section, playback_url), "", 0, 0, 0, NULL,
     "the recorder's playback URL for every camera: {camera} (the camera's recording_name), "
     "then strftime fields for the sampled time in UTC (%% for a literal %), e.g. "
     "rtsp://nvr/Streaming/tracks/{camera}?starttime=%Y%m%dT%H%M%SZ; a camera's own "
     "playback_url wins; empty: cameras without one are checked on disk (root)"},
    {"playback_credentials", VW_CONF_STR, KEY(recordings_section, playback_credentials), "", 0, 0,
     0, NULL, "file whose first line is user:password for the recorder (keep it mode 0600)"},
    /* Hourly: a recorder that stops or prunes early is seen within the hour, at two short
     * reads per camera per hour besides the sessions'. */
    {"playback_interval", VW_CONF_DURATION, KEY(recordings_section, playback_interval_ms), "1h", 0,
     1000, 86400000, NULL,
     "how often playback is sampled: the newest recording and the oldest that must be kept "
     "each time, each finished exam session once"},
    /* Three points (early, middle, late) find a recorder that stopped for a part of the
     * session without reading the whole of it. */
    {"playback_samples", VW_CONF_INT, KEY(recordings_section, playback_samples), "3", 0, 1, 60,
     NULL, "points sampled, evenly spread, inside each finished exam session"},
    {"playback_read", VW_CONF_DURATION, KEY(recordings_section, playback_read_ms), "2s", 0, 200,
     60000, NULL, "stream time read (and a keyframe decoded) at each sampled point"},
    {"playback_max_reads", VW_CONF_INT, KEY(recordings_section, playback_max_reads), "30", 0, 2,
     10000, NULL,
     "reads per round at most, all cameras together; sessions left over wait for the next round"},
    /* 1 Mbit/s: a tenth of a modest 10 Mbit/s venue uplink, and a small share of what an NVR
     * streams to its own monitors. */
    {"playback_max_kbps", VW_CONF_INT, KEY(recordings_section, playback_max_kbps), "1000", 0, 8,
     10000000, NULL,
     "average rate of the playback reads over a round: the agent pauses between reads so as "
     "not to take more of the uplink or the recorder"},
    /* A recorder writes its index a little behind live; the newest sample is taken this far
     * back. */
    {"playback_lag", VW_CONF_DURATION, KEY(recordings_section, playback_lag_ms), "5m", 0, 0,
     86400000, NULL,
     "the newest sample is taken this long before now; sessions are sampled once they ended "
     "this long ago"},
    {"retention_margin", VW_CONF_DURATION, KEY(recordings_section, retention_margin_ms), "1h", 0, 0,
     86400000, NULL,
     "the retention sample is at now - retention_days + this: recorders prune in steps"},
};

static const struct vw_conf_key network_keys[] = {
    {"targets", VW_CONF_STR, KEY(network_section, targets), "", 0, 0, 0, NULL,
     "supervision platform endpoints to probe besides the collector (comma-separated URLs)"},
    {"samples", VW_CONF_INT, KEY(network_section, samples), "10", 0, 2, 100, NULL,
     "connections per target per round (fresh each: a TCP handshake is one RTT)"},
    {"sample_gap", VW_CONF_DURATION, KEY(network_section, sample_gap_ms), "200ms", 0, 0, 60000,
     NULL, "pause between samples"},
    /* ITU-T Y.1541 bounds one-way delay at 100 ms for its real-time classes; a round
     * trip of 200 ms is where live video to a platform starts to stall. */
    {"max_rtt", VW_CONF_DURATION, KEY(network_section, max_rtt_ms), "200ms", 0, 1, 60000, NULL,
     "median round trip above this: high_rtt"},
    {"max_loss_pct", VW_CONF_INT, KEY(network_section, max_loss_pct), "5", 0, 0, 100, NULL,
     "lost samples (failed, or a handshake that needed a retransmission) above this: "
     "packet_loss"},
    {"required_uplink_kbps", VW_CONF_INT, KEY(network_section, required_uplink_kbps), "0", 0, 0,
     100000000, NULL,
     "uplink the venue must have; the sum of the cameras' measured bitrates if higher"},
    {"uplink_test_bytes", VW_CONF_SIZE, KEY(network_section, uplink_test_bytes), "2MiB", 0, 65536,
     1LL << 30, NULL, "bytes uploaded to the collector to measure the uplink"},
    {"uplink_interval", VW_CONF_DURATION, KEY(network_section, uplink_interval_ms), "30m", 0, 10000,
     86400000, NULL, "how often the uplink is measured (it costs real bandwidth)"},
    {"timeout", VW_CONF_DURATION, KEY(network_section, timeout_ms), "5s", 0, 100, 60000, NULL,
     "deadline of one sample"},
};

static const struct vw_conf_key session_keys[] = {
    {"start", VW_CONF_STR, KEY(session_conf, start), NULL, VW_CONF_REQUIRED, 0, 0, NULL,
     "start, local time \"YYYY-MM-DD HH:MM[:SS]\" or ISO 8601 UTC"},
    {"end", VW_CONF_STR, KEY(session_conf, end), NULL, VW_CONF_REQUIRED, 0, 0, NULL,
     "end, same forms"},
    {"rooms", VW_CONF_STR, KEY(session_conf, rooms), "*", 0, 0, 0, NULL,
     "rooms in use, comma-separated [room] names; * for all"},
};

static const struct vw_conf_key room_keys[] = {
    /* Front and back of the room: DOMAIN.md, 评价现场全覆盖. */
    {"min_cameras", VW_CONF_INT, KEY(room_conf, min_cameras), "2", 0, 1, 1000, NULL,
     "healthy cameras the room needs to count as covered"},
};

static const struct vw_conf_key camera_keys[] = {
    {"room", VW_CONF_STR, KEY(camera_conf, room), NULL, VW_CONF_REQUIRED, 0, 0, NULL,
     "the [room NAME] this camera watches"},
    {"url", VW_CONF_STR, KEY(camera_conf, url), NULL, VW_CONF_REQUIRED, 0, 0, NULL,
     "stream URL (rtsp://, rtmp://, http(s)://...); credentials are masked in logs"},
    {"transport", VW_CONF_ENUM, KEY(camera_conf, transport), "tcp", 0, 0, 0, "tcp|udp",
     "RTSP transport"},
    /* 1 s: a check reads on past the window until two keyframes were analysed anyway, so
     * fps and bitrate still span a whole GOP; 2 s made each check ~0.7 s longer, and a
     * check's length is what holds a worker and its decoder's ~11 MiB
     * (tests/bench/cadence64.sh). */
    {"window", VW_CONF_DURATION, KEY(camera_conf, window_ms), "1s", 0, 200, 60000, NULL,
     "how long to read the stream for fps and bitrate (at least; the check reads on until "
     "two keyframes were analysed)"},
    {"min_width", VW_CONF_INT, KEY(camera_conf, min_width), "0", 0, 0, 16384, NULL,
     "overrides [picture] min_width for this camera (0: keep)"},
    {"min_height", VW_CONF_INT, KEY(camera_conf, min_height), "0", 0, 0, 16384, NULL,
     "overrides [picture] min_height for this camera (0: keep)"},
    {"min_fps", VW_CONF_INT, KEY(camera_conf, min_fps), "0", 0, 0, 120, NULL,
     "overrides [picture] min_fps for this camera (0: keep)"},
    /* A file, so the secret stays out of the config (which is shown, copied and pasted)
     * and out of every log and result: only the worker that opens the stream reads it. */
    {"credentials", VW_CONF_STR, KEY(camera_conf, credentials), "", 0, 0, 0, NULL,
     "file whose first line is user:password for the stream (keep it mode 0600)"},
    {"recording_name", VW_CONF_STR, KEY(camera_conf, recording_name), "", 0, 0, 0, NULL,
     "this camera's {camera} in [recordings] pattern and playback_url (default: the camera's "
     "name)"},
    {"playback_url", VW_CONF_STR, KEY(camera_conf, playback_url), "", 0, 0, 0, NULL,
     "this camera's recordings played back from the recorder: strftime fields for the sampled "
     "time in UTC, as [recordings] playback_url (which it overrides)"},
};

static const struct vw_conf_section sections[] = {
    {"agent", 0, agent_keys, sizeof(agent_keys) / sizeof(agent_keys[0]),
     offsetof(struct agent_conf, agent), 0, 0, KEY(agent_section, line), 1,
     "This venue machine's identity and cadence."},
    {"collector", 0, collector_keys, sizeof(collector_keys) / sizeof(collector_keys[0]),
     offsetof(struct agent_conf, collector), 0, 0, KEY(collector_section, line), 1,
     "Where results are uploaded, over mutual TLS."},
    {"picture", 0, picture_keys, sizeof(picture_keys) / sizeof(picture_keys[0]),
     offsetof(struct agent_conf, picture), 0, 0, KEY(picture_section, line), 0,
     "When a picture counts as clear (视频画面清晰): thresholds for every camera."},
    {"recordings", 0, recordings_keys, sizeof(recordings_keys) / sizeof(recordings_keys[0]),
     offsetof(struct agent_conf, recordings), 0, 0, KEY(recordings_section, line), 0,
     "Recordings kept (影像资料有保存): where they are and how long they must stay."},
    {"network", 0, network_keys, sizeof(network_keys) / sizeof(network_keys[0]),
     offsetof(struct agent_conf, network), 0, 0, KEY(network_section, line), 0,
     "Network to the collector and the platform (网络连接顺畅)."},
    {"session", 1, session_keys, sizeof(session_keys) / sizeof(session_keys[0]),
     offsetof(struct agent_conf, sessions), sizeof(struct session_conf), KEY(session_conf, id),
     KEY(session_conf, line), 0, "An exam session (考试场次): its rooms are the evaluation floor."},
    {"room", 1, room_keys, sizeof(room_keys) / sizeof(room_keys[0]),
     offsetof(struct agent_conf, rooms), sizeof(struct room_conf), KEY(room_conf, name),
     KEY(room_conf, line), 0, "An exam room (考场); every room in an exam must be covered."},
    {"camera", 1, camera_keys, sizeof(camera_keys) / sizeof(camera_keys[0]),
     offsetof(struct agent_conf, cameras), sizeof(struct camera_conf), KEY(camera_conf, name),
     KEY(camera_conf, line), 0, "A camera stream to check."},
};

const struct vw_conf_schema agent_conf_schema = {sections, sizeof(sections) / sizeof(sections[0])};

/* A playback URL must name a time: without a strftime field every sample would ask the
 * recorder for the same thing and prove nothing about the session it stands for. */
static int check_playback_url(struct vw_conf_errors *errs, const char *path, int line,
                              const char *where, const char *url)
{
	if (!url || !url[0])
		return 0;
	int has_field = 0;
	for (const char *p = url; *p; p++) {
		if (*p != '%')
			continue;
		if (!p[1]) {
			/* strftime leaves a lone trailing % undefined: refuse it here. */
			vw_conf_error(
			    errs, path, line,
			    "%s playback_url: ends in a lone %% (write %%%% for a literal "
			    "one) in '%s'",
			    where, url);
			return 1;
		}
		if (p[1] != '%')
			has_field = 1;
		p++;
	}
	if (!strstr(url, "://")) {
		vw_conf_error(errs, path, line, "%s playback_url: expected scheme://..., got '%s'",
		              where, url);
		return 1;
	}
	if (!has_field) {
		vw_conf_error(
		    errs, path, line,
		    "%s playback_url: no strftime field (e.g. %%Y%%m%%dT%%H%%M%%SZ) for the "
		    "sampled time in '%s'",
		    where, url);
		return 1;
	}
	return 0;
}

const char *agent_conf_playback_url(const struct agent_conf *c, const struct camera_conf *cam)
{
	if (cam->playback_url && cam->playback_url[0])
		return cam->playback_url;
	if (c->recordings.playback_url && c->recordings.playback_url[0])
		return c->recordings.playback_url;
	return NULL;
}

static int check_references(struct vw_conf_errors *errs, const char *path, struct agent_conf *cfg)
{
	int n = 0;
	for (size_t i = 0; i < cfg->cameras.n; i++) {
		const struct camera_conf *cam = agent_conf_camera(cfg, i);
		if (!cam->room)
			continue; /* already reported as missing */
		size_t r;
		for (r = 0; r < cfg->rooms.n; r++)
			if (strcmp(agent_conf_room(cfg, r)->name, cam->room) == 0)
				break;
		if (r == cfg->rooms.n) {
			vw_conf_error(errs, path, cam->line,
			              "[camera %s] room: no section [room %s]", cam->name,
			              cam->room);
			n++;
		}
		if (cam->url && !strstr(cam->url, "://")) {
			vw_conf_error(errs, path, cam->line,
			              "[camera %s] url: expected scheme://..., got '%s'", cam->name,
			              cam->url);
			n++;
		}
	}
	for (size_t i = 0; i < cfg->sessions.n; i++) {
		struct session_conf *se = agent_conf_session(cfg, i);
		if (!se->start || !se->end)
			continue;
		if (vw_time_parse_any(se->start, &se->start_ms)) {
			vw_conf_error(errs, path, se->line,
			              "[session %s] start: expected "
			              "\"YYYY-MM-DD HH:MM\" or ISO 8601, got '%s'",
			              se->id, se->start);
			n++;
		} else if (vw_time_parse_any(se->end, &se->end_ms)) {
			vw_conf_error(errs, path, se->line,
			              "[session %s] end: expected "
			              "\"YYYY-MM-DD HH:MM\" or ISO 8601, got '%s'",
			              se->id, se->end);
			n++;
		} else if (se->end_ms <= se->start_ms) {
			vw_conf_error(errs, path, se->line, "[session %s]: end is not after start",
			              se->id);
			n++;
		}
		if (se->rooms && strcmp(se->rooms, "*") != 0) {
			char *copy = strdup(se->rooms), *save = NULL;
			for (char *t = copy ? strtok_r(copy, ", ", &save) : NULL; t;
			     t = strtok_r(NULL, ", ", &save)) {
				size_t r;
				for (r = 0; r < cfg->rooms.n; r++)
					if (strcmp(agent_conf_room(cfg, r)->name, t) == 0)
						break;
				if (r == cfg->rooms.n) {
					vw_conf_error(errs, path, se->line,
					              "[session %s] rooms: no section [room %s]",
					              se->id, t);
					n++;
				}
			}
			free(copy);
		}
	}
	n += check_playback_url(errs, path, cfg->recordings.line, "[recordings]",
	                        cfg->recordings.playback_url);
	for (size_t i = 0; i < cfg->cameras.n; i++) {
		const struct camera_conf *cam = agent_conf_camera(cfg, i);
		char where[300];
		snprintf(where, sizeof(where), "[camera %s]", cam->name);
		n += check_playback_url(errs, path, cam->line, where, cam->playback_url);
	}
	const char *mark =
	    cfg->recordings.pattern ? strstr(cfg->recordings.pattern, "{camera}") : NULL;
	if (cfg->recordings.pattern && !mark) {
		vw_conf_error(errs, path, cfg->recordings.line,
		              "[recordings] pattern: must contain {camera}");
		n++;
	} else if (mark && !strchr(mark, '/')) {
		/* The scan walks one directory per camera; a flat pattern would leave every
		 * camera without segments, reported missing for a reason no one could see. */
		vw_conf_error(errs, path, cfg->recordings.line,
		              "[recordings] pattern: {camera} must be a directory ({camera}/...)");
		n++;
	}
	if (cfg->collector.url) {
		int k =
		    failover_split(cfg->collector.url, cfg->collector.urls,
		                   sizeof(cfg->collector.urls) / sizeof(cfg->collector.urls[0]));
		if (k < 0) {
			vw_conf_error(errs, path, cfg->collector.line, "[collector] url: %s",
			              k == -E2BIG    ? "more than 8 URLs"
			              : k == -EINVAL ? "no URL given"
			                             : "out of memory");
			n++;
		} else {
			cfg->collector.nurls = (size_t)k;
		}
		for (size_t i = 0; i < cfg->collector.nurls; i++) {
			const char *u = cfg->collector.urls[i];
			if (strncmp(u, "https://", 8) != 0 || !u[8]) {
				vw_conf_error(
				    errs, path, cfg->collector.line,
				    "[collector] url: URL %zu '%s' must be https://host:port "
				    "(results travel over mutual TLS)",
				    i + 1, u);
				n++;
			}
			for (size_t j = 0; j < i; j++)
				if (strcmp(cfg->collector.urls[j], u) == 0) {
					vw_conf_error(
					    errs, path, cfg->collector.line,
					    "[collector] url: URL %zu '%s' is listed twice", i + 1,
					    u);
					n++;
					break;
				}
		}
	}
	if (cfg->agent.metrics_file && cfg->agent.metrics_file[0] &&
	    (cfg->agent.metrics_file[0] != '/' ||
	     cfg->agent.metrics_file[strlen(cfg->agent.metrics_file) - 1] == '/')) {
		/* A relative path would follow the service's working directory; a directory
		 * cannot be replaced by a file. */
		vw_conf_error(errs, path, cfg->agent.line,
		              "[agent] metrics_file: '%s' must be an absolute path of a file",
		              cfg->agent.metrics_file);
		n++;
	}
	if (cfg->agent.site && !vw_conf_id_valid(cfg->agent.site)) {
		vw_conf_error(errs, path, cfg->agent.line,
		              "[agent] site: '%s' may use only letters, digits, '-', '_' and '.'",
		              cfg->agent.site);
		n++;
	}
	return n;
}

static int finish(struct agent_conf *cfg, const char *path, int rc, struct vw_conf_errors *errs)
{
	cfg->path = path;
	if (rc < 0)
		return rc;
	rc += check_references(errs, path, cfg);
	return rc;
}

int agent_conf_load(struct agent_conf *cfg, const char *path, struct vw_conf_errors *errs)
{
	memset(cfg, 0, sizeof(*cfg));
	return finish(cfg, path, vw_conf_load(&agent_conf_schema, path, cfg, errs), errs);
}

int agent_conf_load_string(struct agent_conf *cfg, const char *name, const char *text,
                           struct vw_conf_errors *errs)
{
	memset(cfg, 0, sizeof(*cfg));
	return finish(cfg, name, vw_conf_load_string(&agent_conf_schema, name, text, cfg, errs),
	              errs);
}

int agent_conf_session_has_room(const struct session_conf *s, const char *room)
{
	if (!s->rooms || strcmp(s->rooms, "*") == 0)
		return 1;
	size_t rl = strlen(room);
	for (const char *p = s->rooms; *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		size_t n = strcspn(p, ", ");
		if (n == rl && strncmp(p, room, n) == 0)
			return 1;
		p += n;
	}
	return 0;
}

const struct session_conf *agent_conf_session_find(const struct session_conf *items, size_t n,
                                                   const char *room, int64_t now_ms)
{
	for (size_t i = 0; i < n; i++) {
		const struct session_conf *s = &items[i];
		if (now_ms >= s->start_ms && now_ms < s->end_ms &&
		    (!room || agent_conf_session_has_room(s, room)))
			return s;
	}
	return NULL;
}

const struct session_conf *agent_conf_session_at(const struct agent_conf *c, const char *room,
                                                 int64_t now_ms)
{
	return agent_conf_session_find(c->sessions.items, c->sessions.n, room, now_ms);
}

void agent_conf_free(struct agent_conf *cfg)
{
	for (size_t i = 0; i < cfg->collector.nurls; i++)
		free(cfg->collector.urls[i]);
	cfg->collector.nurls = 0;
	vw_conf_free(&agent_conf_schema, cfg);
}
