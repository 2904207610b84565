#include "probe_recording.h"

#include <dirent.h>
#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "sessions.h"
#include "vtime.h"

#define DAY_MS (86400LL * 1000)
/* A recorder that prunes on a schedule keeps a little more than its policy; one that
 * prunes by the hour a little less. An hour of slack is what "kept N days" can mean. */
#define RETENTION_SLACK_MS (3600LL * 1000)
/* Opening a segment is bounded like any other check. */
#define SEGMENT_PROBE_TIMEOUT_MS 10000
/* One scan visits at most this many files: a runaway tree cannot stall the worker. */
#define SCAN_MAX_FILES 2000000

enum rstmt { R_GET, R_PUT, R_SEEN, R_FIRST_SEEN, R_COUNT };
static const char *const stmt_sql[R_COUNT] = {
    [R_GET] = "SELECT size, mtime FROM segments WHERE path = ?",
    [R_PUT] = "INSERT OR REPLACE INTO segments VALUES(?,?,?,?,?,?,?,?)",
    [R_SEEN] = "UPDATE segments SET scan = ? WHERE path = ?",
    [R_FIRST_SEEN] = "INSERT INTO cameras VALUES(?, ?) ON CONFLICT(camera) DO UPDATE SET "
                     "first_seen_ms = min(first_seen_ms, excluded.first_seen_ms)",
};

struct recording_scan {
	const struct agent_conf *cfg;
	sqlite3 *db;
	sqlite3_stmt *st[R_COUNT];
};

struct seg {
	int64_t start_ms, end_ms;
};

/* Made idempotently at every open (a cache of what the scans saw: nothing to migrate). */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS segments(camera TEXT NOT NULL, path TEXT PRIMARY KEY,"
    " size INTEGER NOT NULL, mtime INTEGER NOT NULL, start_ms INTEGER NOT NULL,"
    " duration_ms INTEGER NOT NULL, ok INTEGER NOT NULL, scan INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS segments_camera ON segments(camera, start_ms);"
    "CREATE TABLE IF NOT EXISTS cameras(camera TEXT PRIMARY KEY, first_seen_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES('scan', 0);"
    "PRAGMA user_version=1;";

size_t recording_scan_max_results(const struct agent_conf *cfg)
{
	return cfg->cameras.n + 1;
}

int recording_scan_open(const struct agent_conf *cfg, struct recording_scan **out, char *err,
                        size_t errlen)
{
	char path[PATH_MAX];
	struct recording_scan *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	rs->cfg = cfg;
	/* --once and `reference` run without the state-dir lock that creates it: a fresh
	 * install must still have its recordings checked, not skipped with a log line. */
	if (mkdir(cfg->agent.state_dir, 0750) && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", cfg->agent.state_dir, strerror(errno));
		free(rs);
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/recordings.db", cfg->agent.state_dir);
	/* NORMAL: a row a power cut takes back only makes the next scan probe that segment
	 * again (a segment is known by its size and mtime). */
	static const struct vw_db_opts opts = {
	    .flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
	    .synchronous = "NORMAL",
	    .wal = 1,
	};
	char why[256] = "";
	if (vw_db_open(path, &opts, &rs->db, err, errlen) ||
	    vw_db_exec(rs->db, schema_sql, why, sizeof(why)) ||
	    vw_db_prepare_all(rs->db, stmt_sql, rs->st, R_COUNT, 0, why, sizeof(why))) {
		if (why[0])
			snprintf(err, errlen, "%s: %s", path, why);
		recording_scan_close(&rs);
		return -EIO;
	}
	*out = rs;
	return 0;
}

void recording_scan_close(struct recording_scan **rsp)
{
	struct recording_scan *rs = *rsp;
	if (!rs)
		return;
	vw_db_finalize_all(rs->st, R_COUNT);
	sqlite3_close(rs->db);
	free(rs);
	*rsp = NULL;
}

/* ---- one segment ---- */

struct deadline {
	int64_t limit_ms;
};

static int interrupt_cb(void *opaque)
{
	return vw_mono_ms() >= ((struct deadline *)opaque)->limit_ms;
}

/* Opens a finished segment: its duration, and whether its first keyframe decodes. */
static int probe_segment(const char *path, int64_t *duration_ms)
{
	struct deadline d = {vw_mono_ms() + SEGMENT_PROBE_TIMEOUT_MS};
	AVFormatContext *fmt = avformat_alloc_context();
	AVCodecContext *dec = NULL;
	AVPacket *pkt = av_packet_alloc();
	AVFrame *frame = av_frame_alloc();
	int ok = 0;
	*duration_ms = 0;
	if (!fmt || !pkt || !frame)
		goto out;
	fmt->interrupt_callback.callback = interrupt_cb;
	fmt->interrupt_callback.opaque = &d;
	if (avformat_open_input(&fmt, path, NULL, NULL) < 0) {
		fmt = NULL;
		goto out;
	}
	if (avformat_find_stream_info(fmt, NULL) < 0)
		goto out;
	int vs = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	if (vs < 0)
		goto out;
	AVStream *st = fmt->streams[vs];
	if (fmt->duration > 0)
		*duration_ms = fmt->duration / 1000;
	else if (st->duration > 0)
		*duration_ms = (int64_t)(st->duration * av_q2d(st->time_base) * 1000);
	const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
	if (!codec || !(dec = avcodec_alloc_context3(codec)) ||
	    avcodec_parameters_to_context(dec, st->codecpar) < 0)
		goto out;
	dec->skip_frame = AVDISCARD_NONKEY;
	dec->thread_count = 1;
	if (avcodec_open2(dec, codec, NULL) < 0)
		goto out;
	/* The first keyframe must decode; a truncated file usually fails before that. */
	for (int tries = 0; tries < 500 && !ok; tries++) {
		if (av_read_frame(fmt, pkt) < 0)
			break;
		if (pkt->stream_index == vs && avcodec_send_packet(dec, pkt) >= 0 &&
		    avcodec_receive_frame(dec, frame) >= 0)
			ok = 1;
		av_packet_unref(pkt);
	}
	if (!ok && avcodec_send_packet(dec, NULL) >= 0 && avcodec_receive_frame(dec, frame) >= 0)
		ok = 1;
	ok = ok && *duration_ms > 0;
out:
	av_frame_free(&frame);
	av_packet_free(&pkt);
	avcodec_free_context(&dec);
	avformat_close_input(&fmt);
	return ok;
}

/* ---- the tree ---- */

struct walk {
	struct recording_scan *rs;
	const char *camera;
	const char *tail; /* pattern after {camera}, e.g. "/%Y%m%d/%H%M%S.mp4" */
	size_t base_len;  /* length of the camera directory prefix in path */
	int depth;        /* '/' in tail: directory levels to descend */
	int64_t now_ms, scan;
	long files;
	int new_segments, corrupt_new;
};

/* strptime over the path below the camera directory; the start is local time. */
static int parse_start(const char *tail_pattern, const char *rel, int64_t *start_ms)
{
	struct tm tm = {0};
	tm.tm_mday = 1;
	const char *end = strptime(rel, tail_pattern, &tm);
	if (!end || *end)
		return -1;
	tm.tm_isdst = -1;
	time_t t = mktime(&tm);
	if (t == (time_t)-1)
		return -1;
	*start_ms = (int64_t)t * 1000;
	return 0;
}

static void visit_file(struct walk *w, const char *path)
{
	struct recording_scan *rs = w->rs;
	int64_t start_ms;
	if (parse_start(w->tail, path + w->base_len, &start_ms))
		return; /* not a segment: the recorder's other files */
	struct stat sb;
	if (stat(path, &sb) || !S_ISREG(sb.st_mode))
		return;
	int64_t mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;

	sqlite3_bind_text(rs->st[R_GET], 1, path, -1, SQLITE_STATIC);
	int known = sqlite3_step(rs->st[R_GET]) == SQLITE_ROW &&
	            sqlite3_column_int64(rs->st[R_GET], 0) == (int64_t)sb.st_size &&
	            sqlite3_column_int64(rs->st[R_GET], 1) == mtime_ms;
	sqlite3_reset(rs->st[R_GET]);
	if (known) {
		sqlite3_bind_int64(rs->st[R_SEEN], 1, w->scan);
		sqlite3_bind_text(rs->st[R_SEEN], 2, path, -1, SQLITE_STATIC);
		sqlite3_step(rs->st[R_SEEN]);
		sqlite3_reset(rs->st[R_SEEN]);
		return;
	}
	if (mtime_ms > w->now_ms - w->rs->cfg->recordings.settle_ms)
		return; /* still being written: judged once it settles */
	int64_t duration_ms;
	int ok = probe_segment(path, &duration_ms);
	w->new_segments++;
	if (!ok) {
		w->corrupt_new++;
		log_warn("event=recording_corrupt camera=%s segment=%s", w->camera, path);
	}
	sqlite3_bind_text(rs->st[R_PUT], 1, w->camera, -1, SQLITE_STATIC);
	sqlite3_bind_text(rs->st[R_PUT], 2, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(rs->st[R_PUT], 3, (int64_t)sb.st_size);
	sqlite3_bind_int64(rs->st[R_PUT], 4, mtime_ms);
	sqlite3_bind_int64(rs->st[R_PUT], 5, start_ms);
	sqlite3_bind_int64(rs->st[R_PUT], 6, duration_ms);
	sqlite3_bind_int(rs->st[R_PUT], 7, ok);
	sqlite3_bind_int64(rs->st[R_PUT], 8, w->scan);
	sqlite3_step(rs->st[R_PUT]);
	sqlite3_reset(rs->st[R_PUT]);
	sqlite3_bind_text(rs->st[R_FIRST_SEEN], 1, w->camera, -1, SQLITE_STATIC);
	sqlite3_bind_int64(rs->st[R_FIRST_SEEN], 2, start_ms);
	sqlite3_step(rs->st[R_FIRST_SEEN]);
	sqlite3_reset(rs->st[R_FIRST_SEEN]);
}

static void walk_dir(struct walk *w, char *path, size_t len, int level)
{
	DIR *dir = opendir(path);
	if (!dir)
		return;
	struct dirent *de;
	while ((de = readdir(dir)) && w->files < SCAN_MAX_FILES) {
		if (de->d_name[0] == '.')
			continue;
		size_t nl = strlen(de->d_name);
		if (len + 1 + nl >= PATH_MAX)
			continue;
		path[len] = '/';
		memcpy(path + len + 1, de->d_name, nl + 1);
		if (level + 1 < w->depth) {
			if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN)
				walk_dir(w, path, len + 1 + nl, level + 1);
		} else if (de->d_type == DT_REG || de->d_type == DT_UNKNOWN) {
			w->files++;
			visit_file(w, path);
		}
	}
	path[len] = '\0';
	closedir(dir);
}

/* One number from sql: ?1 is camera (when not NULL), the next ? is arg (when the statement
 * has one). -1 when there is no row or it is NULL. */
static int64_t query_int(sqlite3 *db, const char *sql, const char *camera, int64_t arg)
{
	sqlite3_stmt *st;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	int idx = 1;
	if (camera)
		sqlite3_bind_text(st, idx++, camera, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(st) >= idx)
		sqlite3_bind_int64(st, idx, arg);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Gaps in [from, to) given segments ordered by start: holes longer than tol. */
static void session_gaps(const struct seg *segs, size_t n, int64_t from, int64_t to, int64_t tol,
                         int *count, int64_t *gap_ms)
{
	int64_t covered_to = from;
	for (size_t i = 0; i < n && covered_to < to; i++) {
		if (segs[i].end_ms <= covered_to)
			continue;
		if (segs[i].start_ms > covered_to) {
			int64_t hole = (segs[i].start_ms < to ? segs[i].start_ms : to) - covered_to;
			if (hole > tol) {
				(*count)++;
				*gap_ms += hole;
			}
		}
		if (segs[i].end_ms > covered_to)
			covered_to = segs[i].end_ms;
	}
	if (to - covered_to > tol) {
		(*count)++;
		*gap_ms += to - covered_to;
	}
}

static void judge_camera(struct recording_scan *rs, const struct camera_conf *cam, const char *name,
                         int64_t now, struct vw_result *r)
{
	const struct recordings_section *rc = &rs->cfg->recordings;
	int64_t window_from = now - rc->retention_days * DAY_MS;
	vw_result_init(r, VW_KIND_RECORDING, cam->name);
	r->ts_ms = now;

	int64_t segments = query_int(rs->db,
	                             "SELECT count(*) FROM segments WHERE camera = ? AND "
	                             "start_ms + duration_ms >= ?",
	                             name, window_from);
	int64_t corrupt = query_int(rs->db,
	                            "SELECT count(*) FROM segments WHERE camera = ? AND "
	                            "ok = 0 AND start_ms >= ?",
	                            name, window_from);
	int64_t newest_end = query_int(rs->db,
	                               "SELECT max(start_ms + duration_ms) FROM segments "
	                               "WHERE camera = ? AND ok = 1",
	                               name, 0);
	int64_t oldest = query_int(rs->db,
	                           "SELECT min(start_ms) FROM segments WHERE camera = ? "
	                           "AND ok = 1",
	                           name, 0);
	int64_t first_seen = query_int(rs->db,
	                               "SELECT first_seen_ms FROM cameras WHERE camera = ? "
	                               "",
	                               name, 0);
	vw_result_set_metric(r, VW_M_SEGMENTS, (double)(segments > 0 ? segments : 0));
	vw_result_set_metric(r, VW_M_CORRUPT_COUNT, (double)(corrupt > 0 ? corrupt : 0));

	if (newest_end < 0 || newest_end < now - rc->missing_after_ms)
		vw_result_add_fault(r, VW_FAULT_RECORDING_MISSING);
	if (newest_end >= 0)
		vw_result_set_metric(
		    r, VW_M_NEWEST_AGE_S,
		    (double)((now - newest_end) > 0 ? (now - newest_end) / 1000 : 0));
	if (oldest >= 0) {
		vw_result_set_metric(r, VW_M_RETENTION_DAYS_KEPT,
		                     round((double)(now - oldest) / DAY_MS * 10) / 10);
		/* Short only once the venue has recorded longer than the policy: a new venue
		 * cannot have 30 days yet. */
		if (first_seen >= 0 && first_seen < window_from &&
		    oldest > window_from + RETENTION_SLACK_MS)
			vw_result_add_fault(r, VW_FAULT_RETENTION_SHORT);
	}
	if (corrupt > 0)
		vw_result_add_fault(r, VW_FAULT_RECORDING_CORRUPT);

	/* Gaps: every exam session of this camera's room inside the retention window, up to
	 * what can already have settled. */
	int gaps = 0;
	int64_t gap_ms = 0;
	struct sessions_view v;
	sessions_view_get(rs->cfg, &v);
	for (size_t i = 0; i < v.n; i++) {
		const struct session_conf *se = &v.items[i];
		int64_t to = se->end_ms < now - rc->settle_ms ? se->end_ms : now - rc->settle_ms;
		if (se->end_ms < window_from || se->start_ms >= to ||
		    !agent_conf_session_has_room(se, cam->room))
			continue;
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(
		        rs->db,
		        "SELECT start_ms, start_ms + duration_ms FROM segments WHERE "
		        "camera = ? AND ok = 1 AND start_ms < ? AND "
		        "start_ms + duration_ms > ? ORDER BY start_ms",
		        -1, &st, NULL) != SQLITE_OK)
			continue;
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, to);
		sqlite3_bind_int64(st, 3, se->start_ms);
		struct seg *segs = NULL;
		size_t n = 0, cap = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				struct seg *p = realloc(segs, cap * sizeof(*segs));
				if (!p)
					break;
				segs = p;
			}
			segs[n].start_ms = sqlite3_column_int64(st, 0);
			segs[n++].end_ms = sqlite3_column_int64(st, 1);
		}
		sqlite3_finalize(st);
		int before = gaps;
		session_gaps(segs, n, se->start_ms, to, rc->gap_tolerance_ms, &gaps, &gap_ms);
		if (gaps > before)
			snprintf(r->session, sizeof(r->session), "%s", se->id);
		free(segs);
	}
	sessions_view_put(&v);
	vw_result_set_metric(r, VW_M_GAP_COUNT, gaps);
	vw_result_set_metric(r, VW_M_GAP_SECONDS, (double)(gap_ms / 1000));
	if (gaps)
		vw_result_add_fault(r, VW_FAULT_RECORDING_GAP);

	if (vw_result_has_fault(r, vw_fault_name(VW_FAULT_RECORDING_MISSING)))
		r->status = VW_STATUS_DOWN;
	else if (r->nfaults)
		r->status = VW_STATUS_DEGRADED;
}

static void judge_disk(struct recording_scan *rs, int64_t now, struct vw_result *r)
{
	const struct recordings_section *rc = &rs->cfg->recordings;
	vw_result_init(r, VW_KIND_RECORDING, "disk");
	r->ts_ms = now;
	struct statvfs vfs;
	if (statvfs(rc->root, &vfs)) {
		vw_result_add_fault(r, VW_FAULT_RECORDING_MISSING);
		r->status = VW_STATUS_DOWN;
		return;
	}
	double total = (double)vfs.f_blocks * vfs.f_frsize;
	double avail = (double)vfs.f_bavail * vfs.f_frsize;
	double free_pct = total > 0 ? avail / total * 100 : 0;
	vw_result_set_metric(r, VW_M_FREE_PCT, round(free_pct * 10) / 10);
	vw_result_set_metric(r, VW_M_FREE_GB, round(avail / 1e9 * 100) / 100);
	/* The write rate is what the recorder added over the last day, by segment size. */
	int64_t day_bytes = query_int(rs->db,
	                              "SELECT coalesce(sum(size), 0) FROM segments WHERE "
	                              "start_ms >= ?",
	                              NULL, now - DAY_MS);
	int low = free_pct < (double)rc->disk_min_free_pct;
	if (day_bytes > 0) {
		double per_day = (double)day_bytes;
		double days = avail / per_day;
		vw_result_set_metric(r, VW_M_WRITE_GB_PER_DAY, round(per_day / 1e9 * 1000) / 1000);
		vw_result_set_metric(r, VW_M_DAYS_UNTIL_FULL, round(days * 10) / 10);
		if (days < (double)rc->disk_min_days)
			low = 1;
	}
	if (low) {
		vw_result_add_fault(r, VW_FAULT_DISK_LOW);
		r->status = VW_STATUS_DEGRADED;
	}
}

int recording_scan_run(struct recording_scan *rs, int64_t now_ms, struct vw_result *out, size_t max,
                       size_t *n)
{
	const struct agent_conf *cfg = rs->cfg;
	const char *pattern = cfg->recordings.pattern;
	const char *mark = strstr(pattern, "{camera}");
	*n = 0;
	if (!cfg->recordings.root[0] || !mark || max < recording_scan_max_results(cfg))
		return -EINVAL;
	int64_t scan = 0;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(rs->db,
	                       "UPDATE meta SET value = value + 1 WHERE key = 'scan' "
	                       "RETURNING value",
	                       -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			scan = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_exec(rs->db, "BEGIN", NULL, NULL, NULL);
	for (size_t i = 0; i < cfg->cameras.n; i++) {
		const struct camera_conf *cam = agent_conf_camera(cfg, i);
		if (agent_conf_playback_url(cfg, cam))
			continue; /* recorded on the NVR: probe_playback proves it */
		const char *name = cam->recording_name[0] ? cam->recording_name : cam->name;
		char path[PATH_MAX];
		int len = snprintf(path, sizeof(path), "%s/%.*s%s", cfg->recordings.root,
		                   (int)(mark - pattern), pattern, name);
		const char *tail = mark + strlen("{camera}");
		if (len <= 0 || (size_t)len >= sizeof(path))
			continue;
		int64_t t0 = vw_mono_ms();
		struct walk w = {.rs = rs,
		                 .camera = name,
		                 .tail = tail,
		                 .base_len = (size_t)len,
		                 .now_ms = now_ms,
		                 .scan = scan};
		for (const char *p = tail; *p; p++)
			if (*p == '/')
				w.depth++;
		if (w.depth == 0) /* "{camera}_%Y%m%d%H%M%S.mp4": files beside each other */
			continue;
		walk_dir(&w, path, (size_t)len, 0);
		/* What the recorder deleted is gone from our view too. */
		if (sqlite3_prepare_v2(rs->db, "DELETE FROM segments WHERE camera = ? AND scan < ?",
		                       -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, scan);
			sqlite3_step(st);
			sqlite3_finalize(st);
		}
		if (w.new_segments)
			log_debug("event=recording_scan camera=%s new=%d corrupt=%d", name,
			          w.new_segments, w.corrupt_new);
		judge_camera(rs, cam, name, now_ms, &out[*n]);
		/* This camera's share of the scan: the agent's check-duration histogram. */
		vw_result_set_metric(&out[(*n)++], VW_M_CHECK_MS, (double)(vw_mono_ms() - t0));
	}
	judge_disk(rs, now_ms, &out[(*n)++]);
	if (sqlite3_exec(rs->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		log_warn("event=recording_scan_error err=\"%s\"", sqlite3_errmsg(rs->db));
		sqlite3_exec(rs->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return 0;
}
