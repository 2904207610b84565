#include "probe_playback.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "probe_stream.h"
#include "sessions.h"
#include "vtime.h"

#define DAY_MS (86400LL * 1000)
/* Finished sessions whose playback verdict is remembered (so each is read once): a venue
 * with 200 cameras and a dozen sessions a day over 30 days stays well below this. */
#define VERDICTS_MAX 100000
/* Pauses between reads are slept in steps this long, so a stopping agent is not held up. */
#define PACE_STEP_MS 100

/* What one finished session of one camera held at its sampled points. */
struct verdict {
	size_t cam;
	char session[VW_NAME_MAX];
	int64_t start_ms, end_ms;
	int missing, corrupt;
};

struct playback {
	const struct agent_conf *cfg;
	struct verdict *v;
	size_t nv, cap;
	size_t first_cam; /* where the next round starts: a short budget rotates over cameras */
};

enum sample_rc { S_OK, S_NOT_FOUND, S_CORRUPT, S_ERROR };

/* One round's budget: reads made, bytes read, when it began (for the pacing). */
struct round {
	int64_t t0_ms;
	int64_t bytes;
	long reads;
	const int *cancel;
};

static size_t ncams_with_playback(const struct agent_conf *cfg)
{
	size_t n = 0;
	for (size_t i = 0; i < cfg->cameras.n; i++)
		n += agent_conf_playback_url(cfg, agent_conf_camera(cfg, i)) != NULL;
	return n;
}

size_t playback_max_results(const struct agent_conf *cfg)
{
	return ncams_with_playback(cfg);
}

int playback_create(const struct agent_conf *cfg, struct playback **out)
{
	*out = NULL;
	if (!ncams_with_playback(cfg))
		return 0;
	struct playback *pb = calloc(1, sizeof(*pb));
	if (!pb)
		return -ENOMEM;
	pb->cfg = cfg;
	*out = pb;
	return 0;
}

void playback_destroy(struct playback **pbp)
{
	struct playback *pb = *pbp;
	if (!pb)
		return;
	free(pb->v);
	free(pb);
	*pbp = NULL;
}

int playback_url_expand(const char *tmpl, const char *name, int64_t t_ms, char *out, size_t outlen)
{
	char when[2048];
	time_t t = (time_t)(t_ms / 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		return -EINVAL;
	/* strftime first: a camera name is then never read as a field. */
	size_t len = strftime(when, sizeof(when), tmpl, &tm);
	if (!len)
		return -ENAMETOOLONG;
	size_t j = 0, nl = strlen(name);
	for (const char *p = when; *p;) {
		if (strncmp(p, "{camera}", 8) == 0) {
			if (j + nl >= outlen)
				return -ENAMETOOLONG;
			memcpy(out + j, name, nl);
			j += nl;
			p += 8;
			continue;
		}
		if (j + 1 >= outlen)
			return -ENAMETOOLONG;
		out[j++] = *p++;
	}
	if (!outlen)
		return -ENAMETOOLONG;
	out[j] = '\0';
	return 0;
}

/* Waits until the bytes read so far are within playback_max_kbps of the round's time. */
static void pace(const struct playback *pb, const struct round *rd)
{
	long kbps = pb->cfg->recordings.playback_max_kbps; /* kbit/s: bits per ms */
	for (;;) {
		if (__atomic_load_n(rd->cancel, __ATOMIC_RELAXED))
			return;
		int64_t due = rd->t0_ms + rd->bytes * 8 / kbps, now = vw_mono_ms();
		if (now >= due)
			return;
		int64_t wait = due - now < PACE_STEP_MS ? due - now : PACE_STEP_MS;
		struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* Plays back playback_read of the camera's recording at t_ms: S_OK when a keyframe there
 * decodes, S_NOT_FOUND when the recorder has nothing for that time (404 / no such stream),
 * S_CORRUPT when it answers with something that does not decode, S_ERROR (with *fault)
 * when the recorder cannot be asked at all. */
static enum sample_rc sample(struct playback *pb, const struct camera_conf *cam, const char *name,
                             int64_t t_ms, struct round *rd, enum vw_fault *fault)
{
	const struct agent_conf *cfg = pb->cfg;
	const struct recordings_section *rc = &cfg->recordings;
	char url[4096], safe[4096];
	pace(pb, rd);
	rd->reads++;
	if (playback_url_expand(agent_conf_playback_url(cfg, cam), name, t_ms, url, sizeof(url))) {
		*fault = VW_FAULT_PROTOCOL;
		return S_ERROR;
	}
	struct probe_deadline d = {.limit_ms = vw_mono_ms() + cfg->agent.check_timeout_ms +
	                                       rc->playback_read_ms};
	const struct probe_stream_open_req oreq = {
	    .name = cam->name,
	    .url = url,
	    .credentials = rc->playback_credentials,
	    .transport = VW_TRANSPORT_TCP, /* a recording must arrive whole: no UDP losses */
	    .timeout_ms = cfg->agent.check_timeout_ms,
	    .window_ms = rc->playback_read_ms,
	};
	AVFormatContext *fmt = NULL;
	AVCodecContext *dec = NULL;
	AVPacket *pkt = av_packet_alloc();
	AVFrame *frame = av_frame_alloc();
	enum sample_rc out = S_CORRUPT;
	int decoded = 0;
	if (!pkt || !frame) {
		*fault = VW_FAULT_PROTOCOL;
		out = S_ERROR;
		goto done;
	}
	if (probe_stream_open(&oreq, &d, &fmt, fault) < 0) {
		out = *fault == VW_FAULT_NO_VIDEO ? S_NOT_FOUND : S_ERROR;
		goto done;
	}
	int vs = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	if (vs < 0 || fmt->streams[vs]->codecpar->codec_id == AV_CODEC_ID_NONE) {
		avformat_find_stream_info(fmt, NULL);
		vs = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
	}
	if (vs < 0)
		goto done; /* answered, but no video: not a recording we can prove */
	AVStream *st = fmt->streams[vs];
	const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
	if (!codec || !(dec = avcodec_alloc_context3(codec)) ||
	    avcodec_parameters_to_context(dec, st->codecpar) < 0)
		goto done;
	dec->skip_frame = AVDISCARD_NONKEY; /* a keyframe proves it decodes; the rest is cost */
	dec->thread_count = 1;
	if (avcodec_open2(dec, codec, NULL) < 0)
		goto done;
	int64_t first_ts = AV_NOPTS_VALUE;
	int64_t span_ms = 0;
	while (span_ms < rc->playback_read_ms) {
		if (av_read_frame(fmt, pkt) < 0)
			break;
		if (pkt->stream_index == vs) {
			rd->bytes += pkt->size;
			int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
			if (ts != AV_NOPTS_VALUE) {
				if (first_ts == AV_NOPTS_VALUE)
					first_ts = ts;
				span_ms = av_rescale_q(ts - first_ts, st->time_base,
				                       (AVRational){1, 1000});
			}
			if (avcodec_send_packet(dec, pkt) >= 0 &&
			    avcodec_receive_frame(dec, frame) >= 0)
				decoded = 1;
		}
		av_packet_unref(pkt);
	}
	if (!decoded && avcodec_send_packet(dec, NULL) >= 0 &&
	    avcodec_receive_frame(dec, frame) >= 0)
		decoded = 1;
	if (decoded) {
		out = S_OK;
	} else if (d.hit) {
		*fault = VW_FAULT_TIMEOUT;
		out = S_ERROR;
	}
done:
	probe_stream_mask_url(url, safe, sizeof(safe));
	explicit_bzero(url, sizeof(url));
	static const char *const names[] = {"ok", "not_found", "corrupt", "error"};
	if (out == S_OK)
		log_debug("event=playback_sample camera=%s at_ms=%lld verdict=ok url=\"%s\"",
		          cam->name, (long long)t_ms, safe);
	else
		log_warn("event=playback_sample camera=%s at_ms=%lld verdict=%s url=\"%s\"",
		         cam->name, (long long)t_ms, names[out], safe);
	av_frame_free(&frame);
	av_packet_free(&pkt);
	avcodec_free_context(&dec);
	avformat_close_input(&fmt);
	return out;
}

static struct verdict *verdict_find(struct playback *pb, size_t cam, const struct session_conf *se)
{
	for (size_t i = 0; i < pb->nv; i++) {
		struct verdict *v = &pb->v[i];
		if (v->cam == cam && v->start_ms == se->start_ms && v->end_ms == se->end_ms &&
		    strcmp(v->session, se->id) == 0)
			return v;
	}
	return NULL;
}

static void verdict_add(struct playback *pb, size_t cam, const struct session_conf *se, int missing,
                        int corrupt)
{
	if (pb->nv == pb->cap) {
		size_t cap = pb->cap ? pb->cap * 2 : 64;
		struct verdict *p = cap <= VERDICTS_MAX ? realloc(pb->v, cap * sizeof(*p)) : NULL;
		if (!p) {
			/* Not remembered: sampled again next round, which costs reads, not truth.
			 */
			log_warn("event=playback_verdicts_full session=%s", se->id);
			return;
		}
		pb->v = p;
		pb->cap = cap;
	}
	struct verdict *v = &pb->v[pb->nv++];
	v->cam = cam;
	snprintf(v->session, sizeof(v->session), "%s", se->id);
	v->start_ms = se->start_ms;
	v->end_ms = se->end_ms;
	v->missing = missing;
	v->corrupt = corrupt;
}

/* Sessions that left the retention window are no longer owed: forget them. */
static void verdicts_prune(struct playback *pb, int64_t window_from)
{
	size_t j = 0;
	for (size_t i = 0; i < pb->nv; i++)
		if (pb->v[i].end_ms >= window_from)
			pb->v[j++] = pb->v[i];
	pb->nv = j;
}

static int budget_left(const struct playback *pb, const struct round *rd)
{
	return rd->reads < pb->cfg->recordings.playback_max_reads &&
	       !__atomic_load_n(rd->cancel, __ATOMIC_RELAXED);
}

/* One camera's round: fills r and returns the number of reads it made (0: none, no result).
 */
static long judge_camera(struct playback *pb, size_t ci, int64_t now, struct round *rd,
                         struct vw_result *r)
{
	const struct agent_conf *cfg = pb->cfg;
	const struct recordings_section *rc = &cfg->recordings;
	const struct camera_conf *cam = agent_conf_camera(cfg, ci);
	const char *name = cam->recording_name[0] ? cam->recording_name : cam->name;
	int64_t window_from = now - rc->retention_days * DAY_MS;
	int64_t t0 = vw_mono_ms();
	long reads0 = rd->reads;
	enum vw_fault fault = VW_FAULT_PROTOCOL;
	int failed = 0, gaps = 0, corrupt = 0;
	int64_t gap_ms = 0;
	vw_result_init(r, VW_KIND_RECORDING, cam->name);
	r->ts_ms = now;

	/* The newest recording: the recorder records now. */
	if (budget_left(pb, rd)) {
		enum sample_rc s = sample(pb, cam, name, now - rc->playback_lag_ms, rd, &fault);
		if (s == S_NOT_FOUND)
			vw_result_add_fault(r, VW_FAULT_RECORDING_MISSING);
		corrupt += s == S_CORRUPT;
		failed |= s == S_ERROR;
	}
	/* The oldest the policy must still hold. A venue recording for fewer days than the
	 * policy reads as retention_short too: playback cannot tell when recording began. */
	if (!failed && budget_left(pb, rd)) {
		enum sample_rc s =
		    sample(pb, cam, name, window_from + rc->retention_margin_ms, rd, &fault);
		if (s == S_NOT_FOUND)
			vw_result_add_fault(r, VW_FAULT_RETENTION_SHORT);
		corrupt += s == S_CORRUPT;
		failed |= s == S_ERROR;
	}
	/* Finished exam sessions of its room still inside the window: each sampled once, at
	 * playback_samples points spread over it; what was found is remembered. */
	struct sessions_view v;
	sessions_view_get(cfg, &v);
	for (size_t i = 0; i < v.n; i++) {
		const struct session_conf *se = &v.items[i];
		if (se->end_ms > now - rc->playback_lag_ms || se->end_ms < window_from ||
		    !agent_conf_session_has_room(se, cam->room))
			continue;
		const struct verdict *known = verdict_find(pb, ci, se);
		int missing = 0, bad = 0, done = 0;
		if (known) {
			missing = known->missing;
			bad = known->corrupt;
		} else {
			int64_t len = se->end_ms - se->start_ms;
			for (long k = 0; k < rc->playback_samples && !failed && budget_left(pb, rd);
			     k++, done++) {
				int64_t at =
				    se->start_ms + (2 * k + 1) * len / (2 * rc->playback_samples);
				enum sample_rc s = sample(pb, cam, name, at, rd, &fault);
				missing += s == S_NOT_FOUND;
				bad += s == S_CORRUPT;
				failed |= s == S_ERROR;
			}
			if (failed || done < rc->playback_samples)
				continue; /* not proven either way: next round */
			verdict_add(pb, ci, se, missing, bad);
		}
		if (missing) {
			gaps += missing;
			/* Each point stands for its share of the session. */
			gap_ms += missing * (se->end_ms - se->start_ms) / rc->playback_samples;
			snprintf(r->session, sizeof(r->session), "%s", se->id);
		}
		corrupt += bad;
	}
	sessions_view_put(&v);

	long reads = rd->reads - reads0;
	vw_result_set_metric(r, VW_M_SAMPLES, (double)reads);
	vw_result_set_metric(r, VW_M_GAP_COUNT, gaps);
	vw_result_set_metric(r, VW_M_GAP_SECONDS, (double)(gap_ms / 1000));
	vw_result_set_metric(r, VW_M_CORRUPT_COUNT, corrupt);
	vw_result_set_metric(r, VW_M_CHECK_MS, (double)(vw_mono_ms() - t0));
	if (gaps)
		vw_result_add_fault(r, VW_FAULT_RECORDING_GAP);
	if (corrupt)
		vw_result_add_fault(r, VW_FAULT_RECORDING_CORRUPT);
	if (failed) /* the recorder could not be asked: nothing about the recording is proven */
		vw_result_add_fault(r, fault);
	if (failed || vw_result_has_fault(r, vw_fault_name(VW_FAULT_RECORDING_MISSING)))
		r->status = VW_STATUS_DOWN;
	else if (r->nfaults)
		r->status = VW_STATUS_DEGRADED;
	return reads;
}

int playback_run(struct playback *pb, int64_t now_ms, const int *cancel, struct vw_result *out,
                 size_t max, size_t *n)
{
	const struct agent_conf *cfg = pb->cfg;
	*n = 0;
	if (max < playback_max_results(cfg))
		return -EINVAL;
	struct round rd = {.t0_ms = vw_mono_ms(), .cancel = cancel};
	verdicts_prune(pb, now_ms - cfg->recordings.retention_days * DAY_MS);
	size_t ncams = cfg->cameras.n, start = pb->first_cam % (ncams ? ncams : 1);
	for (size_t k = 0; k < ncams; k++) {
		size_t ci = (start + k) % ncams;
		if (!agent_conf_playback_url(cfg, agent_conf_camera(cfg, ci)))
			continue;
		if (!budget_left(pb, &rd)) {
			/* Budget spent: this camera goes first next round. */
			pb->first_cam = ci;
			break;
		}
		if (judge_camera(pb, ci, now_ms, &rd, &out[*n]))
			(*n)++;
	}
	log_debug("event=playback_round reads=%ld bytes=%lld ms=%lld", rd.reads,
	          (long long)rd.bytes, (long long)(vw_mono_ms() - rd.t0_ms));
	return 0;
}
