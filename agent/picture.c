#include "picture.h"

#include <errno.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "vtime.h"

/* Luma is analysed at 320 pixels wide: enough for edges and exposure, and the filters'
 * cost no longer depends on the camera's resolution. */
#define PICTURE_ANALYSIS_WIDTH 320
/* Luma standard deviation below which a picture has no content to compare (a lens cap,
 * a saturated sensor); measured 0-3 on such pictures, 60-100 on a scene. */
#define PICTURE_FLAT_STDDEV 8.0
/* The view is compared at 80 pixels wide: the room's layout (walls, desks, windows) stays,
 * people moving and sensor noise mostly average out. Measured SSIM on test scenes: 0.83-0.9
 * for one view a second apart, 0.27 for a view turned by half its width. */
#define PICTURE_VIEW_WIDTH 80
/* A reference larger than this is not one we wrote. */
#define PICTURE_REF_MAX_DIM 4096

struct picture {
	AVCodecContext *dec;
	AVFilterGraph *graph;
	AVFilterContext *src, *sink;
	AVFrame *frame, *filtered;
	AVFrame *last; /* the last analysed (scaled, gray) picture: reference and comparison */
	AVFrame *shot; /* the last decoded keyframe as decoded (colour, full size): thumbnail */
	int64_t t0_ms; /* frames are stamped with arrival time: RTP's first ones carry none */
	struct picture_opts o;
	int graph_failed;
	int decoded;  /* keyframes decoded */
	int analysed; /* frames out of the filter graph */
	int width, height;
	/* accumulated from the filters' frame metadata */
	double luma_sum, luma_sq_sum, blur_sum;
	long long luma_n;
	int blur_n;
	int in_black, black_frames;
	int in_freeze, freeze_seen, frozen_frames;
};

void picture_opts_default(struct picture_opts *o)
{
	o->max_frames = 3;
	o->dark_luma = 40;
	o->bright_luma = 220;
	o->blur_max = 6.5;
	o->freeze_noise_db = -50;
	o->reference = NULL;
	o->moved_ssim = 0.5;
}

struct picture *picture_create(const AVStream *st, const struct picture_opts *o, char *err,
                               size_t errlen)
{
	const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
	if (!codec) {
		snprintf(err, errlen, "no decoder for %s",
		         avcodec_get_name(st->codecpar->codec_id));
		return NULL;
	}
	struct picture *p = calloc(1, sizeof(*p));
	if (!p)
		goto nomem;
	p->o = *o;
	p->t0_ms = vw_mono_ms();
	p->dec = avcodec_alloc_context3(codec);
	p->frame = av_frame_alloc();
	p->filtered = av_frame_alloc();
	p->last = av_frame_alloc();
	p->shot = av_frame_alloc();
	if (!p->dec || !p->frame || !p->filtered || !p->last || !p->shot)
		goto nomem;
	if (avcodec_parameters_to_context(p->dec, st->codecpar) < 0)
		goto nomem;
	/* Keyframes only, one thread: a check must stay near the cost of one intra frame. */
	p->dec->skip_frame = AVDISCARD_NONKEY;
	p->dec->thread_count = 1;
	p->dec->pkt_timebase = st->time_base;
	if (avcodec_open2(p->dec, codec, NULL) < 0) {
		snprintf(err, errlen, "cannot open the %s decoder", codec->name);
		picture_destroy(&p);
		return NULL;
	}
	return p;
nomem:
	snprintf(err, errlen, "out of memory");
	picture_destroy(&p);
	return NULL;
}

/* The graph is built on the first decoded frame, when size and pixel format are known. */
static int build_graph(struct picture *p, const AVFrame *f)
{
	char args[256], desc[512];
	AVFilterInOut *in = NULL, *out = NULL;
	int rc = AVERROR(ENOMEM);
	p->graph = avfilter_graph_alloc();
	if (!p->graph)
		return rc;
	p->graph->nb_threads = 1;
	snprintf(args, sizeof(args),
	         "video_size=%dx%d:pix_fmt=%d:time_base=1/1000:pixel_aspect=%d/%d", f->width,
	         f->height, f->format, f->sample_aspect_ratio.num ? f->sample_aspect_ratio.num : 1,
	         f->sample_aspect_ratio.den ? f->sample_aspect_ratio.den : 1);
	if ((rc = avfilter_graph_create_filter(&p->src, avfilter_get_by_name("buffer"), "in", args,
	                                       NULL, p->graph)) < 0 ||
	    (rc = avfilter_graph_create_filter(&p->sink, avfilter_get_by_name("buffersink"), "out",
	                                       NULL, NULL, p->graph)) < 0)
		goto out;
	/* blackdetect: a frame is black when 98% of its pixels are below 10% luma (FFmpeg's
	 * defaults), reported per frame (d=0). freezedetect: consecutive analysed frames
	 * that differ less than the noise floor; d small because we see keyframes only.
	 * freezedetect comes before signalstats: behind it (FFmpeg 5.1) it called a dim but
	 * moving picture frozen at any noise floor (tests/integration/test_evidence.py). */
	snprintf(desc, sizeof(desc),
	         "scale=w=%d:h=-2:flags=area,format=gray,freezedetect=n=%gdB:d=0.01,"
	         "signalstats,blackdetect=d=0:pic_th=0.98:pix_th=0.10,blurdetect",
	         PICTURE_ANALYSIS_WIDTH, p->o.freeze_noise_db);
	out = avfilter_inout_alloc();
	in = avfilter_inout_alloc();
	if (!out || !in) {
		rc = AVERROR(ENOMEM);
		goto out;
	}
	out->name = av_strdup("in");
	out->filter_ctx = p->src;
	in->name = av_strdup("out");
	in->filter_ctx = p->sink;
	if ((rc = avfilter_graph_parse_ptr(p->graph, desc, &in, &out, NULL)) < 0 ||
	    (rc = avfilter_graph_config(p->graph, NULL)) < 0)
		goto out;
	rc = 0;
out:
	avfilter_inout_free(&in);
	avfilter_inout_free(&out);
	return rc;
}

static double meta(const AVFrame *f, const char *key, int *found)
{
	const AVDictionaryEntry *e = av_dict_get(f->metadata, key, NULL, 0);
	*found = e != NULL;
	return e ? strtod(e->value, NULL) : 0;
}

static void take_filtered(struct picture *p, const AVFrame *f)
{
	int found;
	p->analysed++;
	double yavg = meta(f, "lavfi.signalstats.YAVG", &found);
	(void)yavg;
	/* Mean and spread of the scaled luma plane. No FFmpeg filter reports the standard
	 * deviation, so this one sum is ours; signalstats' YAVG agrees with the mean. */
	const uint8_t *row = f->data[0];
	double s = 0, sq = 0;
	for (int y = 0; y < f->height; y++, row += f->linesize[0]) {
		for (int x = 0; x < f->width; x++) {
			double v = row[x];
			s += v;
			sq += v * v;
		}
	}
	p->luma_sum += s;
	p->luma_sq_sum += sq;
	p->luma_n += (long long)f->width * f->height;

	double blur = meta(f, "lavfi.blur", &found);
	if (found && isfinite(blur)) { /* NaN on a featureless (flat) frame: no edges to judge */
		p->blur_sum += blur;
		p->blur_n++;
	}
	meta(f, "lavfi.black_start", &found);
	if (found)
		p->in_black = 1;
	meta(f, "lavfi.black_end", &found);
	if (found)
		p->in_black = 0;
	if (p->in_black)
		p->black_frames++;
	if (vw_log_enabled(VW_LOG_DEBUG)) {
		const AVDictionaryEntry *e = NULL;
		while ((e = av_dict_get(f->metadata, "", e, AV_DICT_IGNORE_SUFFIX)))
			log_debug("event=picture_meta pts=%lld key=%s value=%s", (long long)f->pts,
			          e->key, e->value);
	}
	meta(f, "lavfi.freezedetect.freeze_start", &found);
	if (found) {
		p->in_freeze = 1;
		p->freeze_seen = 1;
	}
	meta(f, "lavfi.freezedetect.freeze_end", &found);
	if (found)
		p->in_freeze = 0;
	if (p->in_freeze)
		p->frozen_frames++;
	av_frame_unref(p->last);
	if (av_frame_ref(p->last, f) < 0)
		av_frame_unref(p->last);
}

static void drain_graph(struct picture *p)
{
	while (av_buffersink_get_frame(p->sink, p->filtered) >= 0) {
		take_filtered(p, p->filtered);
		av_frame_unref(p->filtered);
	}
}

static void drain_decoder(struct picture *p)
{
	while (avcodec_receive_frame(p->dec, p->frame) >= 0) {
		p->decoded++;
		p->width = p->frame->width;
		p->height = p->frame->height;
		if (!p->graph && !p->graph_failed && build_graph(p, p->frame) < 0) {
			p->graph_failed = 1;
			log_debug("event=picture_graph_failed");
		}
		p->frame->pts = vw_mono_ms() - p->t0_ms;
		/* A reference, not a copy: the decoder's buffer is kept until the next keyframe
		 * or the end of the check, for a thumbnail of what the verdict is about. */
		av_frame_unref(p->shot);
		if (av_frame_ref(p->shot, p->frame) < 0)
			av_frame_unref(p->shot);
		if (p->graph && av_buffersrc_add_frame_flags(p->src, p->frame, 0) >= 0)
			drain_graph(p);
		av_frame_unref(p->frame);
	}
}

int picture_feed(struct picture *p, const AVPacket *pkt)
{
	if (p->decoded >= p->o.max_frames)
		return 1;
	if (!(pkt->flags & AV_PKT_FLAG_KEY))
		return 0; /* never even parsed: the decoder would discard it anyway */
	if (avcodec_send_packet(p->dec, pkt) >= 0)
		drain_decoder(p);
	return p->decoded >= p->o.max_frames;
}

int picture_frames(const struct picture *p)
{
	return p->decoded;
}

const AVFrame *picture_last_frame(const struct picture *p)
{
	return p->shot->data[0] ? p->shot : NULL;
}

/* ---- the reference view (camera_moved) ---- */

/* Reads a binary PGM (P5, 8 bit) as written by picture_save_reference. */
static int load_pgm(const char *path, AVFrame **out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	int w = 0, h = 0, maxval = 0, rc = -EINVAL;
	AVFrame *fr = NULL;
	if (fscanf(f, "P5 %d %d %d", &w, &h, &maxval) != 3 || fgetc(f) == EOF || maxval != 255 ||
	    w < 16 || h < 16 || w > PICTURE_REF_MAX_DIM || h > PICTURE_REF_MAX_DIM)
		goto out;
	rc = AVERROR(ENOMEM);
	if (!(fr = av_frame_alloc()))
		goto out;
	fr->format = AV_PIX_FMT_GRAY8;
	fr->width = w;
	fr->height = h;
	if (av_frame_get_buffer(fr, 0) < 0)
		goto out;
	rc = -EINVAL;
	for (int y = 0; y < h; y++)
		if (fread(fr->data[0] + (size_t)y * (size_t)fr->linesize[0], 1, (size_t)w, f) !=
		    (size_t)w)
			goto out;
	rc = 0;
	*out = fr;
	fr = NULL;
out:
	av_frame_free(&fr);
	fclose(f);
	return rc;
}

static int add_source(AVFilterGraph *g, const char *name, const AVFrame *f, AVFilterContext **ctx)
{
	char args[128];
	snprintf(args, sizeof(args),
	         "video_size=%dx%d:pix_fmt=%d:time_base=1/1000:pixel_aspect=1/1", f->width,
	         f->height, f->format);
	return avfilter_graph_create_filter(ctx, avfilter_get_by_name("buffer"), name, args, NULL,
	                                    g);
}

/* SSIM of cur against ref, both shrunk to PICTURE_VIEW_WIDTH, by FFmpeg's ssim filter. */
static int view_similarity(const AVFrame *cur, const AVFrame *ref, double *ssim)
{
	AVFilterGraph *g = avfilter_graph_alloc();
	AVFilterContext *src_cur = NULL, *src_ref = NULL, *sink = NULL;
	AVFilterInOut *outs = NULL, *ins = NULL;
	AVFrame *a = av_frame_clone(cur), *b = av_frame_clone(ref), *res = av_frame_alloc();
	char desc[256];
	int rc = AVERROR(ENOMEM);
	if (!g || !a || !b || !res)
		goto out;
	g->nb_threads = 1;
	int vh = (int)((int64_t)PICTURE_VIEW_WIDTH * cur->height / cur->width) & ~1;
	if (vh < 2)
		vh = 2;
	if ((rc = add_source(g, "cur", cur, &src_cur)) < 0 ||
	    (rc = add_source(g, "ref", ref, &src_ref)) < 0 ||
	    (rc = avfilter_graph_create_filter(&sink, avfilter_get_by_name("buffersink"), "out",
	                                       NULL, NULL, g)) < 0)
		goto out;
	/* The reference is scaled to the current picture's shape, so a camera whose resolution
	 * changed is still compared (its view, not its pixels). */
	snprintf(desc, sizeof(desc),
	         "[cur]scale=w=%d:h=%d:flags=area,format=gray[c];"
	         "[ref]scale=w=%d:h=%d:flags=area,format=gray[r];[c][r]ssim",
	         PICTURE_VIEW_WIDTH, vh, PICTURE_VIEW_WIDTH, vh);
	outs = avfilter_inout_alloc();
	AVFilterInOut *outs2 = avfilter_inout_alloc();
	ins = avfilter_inout_alloc();
	if (!outs || !outs2 || !ins) {
		avfilter_inout_free(&outs2);
		rc = AVERROR(ENOMEM);
		goto out;
	}
	outs->name = av_strdup("cur");
	outs->filter_ctx = src_cur;
	outs->next = outs2;
	outs2->name = av_strdup("ref");
	outs2->filter_ctx = src_ref;
	ins->name = av_strdup("out");
	ins->filter_ctx = sink;
	if ((rc = avfilter_graph_parse_ptr(g, desc, &ins, &outs, NULL)) < 0 ||
	    (rc = avfilter_graph_config(g, NULL)) < 0)
		goto out;
	a->pts = b->pts = 0;
	if ((rc = av_buffersrc_add_frame_flags(src_cur, a, 0)) < 0 ||
	    (rc = av_buffersrc_add_frame_flags(src_ref, b, 0)) < 0 ||
	    (rc = av_buffersrc_add_frame_flags(src_cur, NULL, 0)) < 0 ||
	    (rc = av_buffersrc_add_frame_flags(src_ref, NULL, 0)) < 0)
		goto out;
	rc = -ENODATA;
	while (av_buffersink_get_frame(sink, res) >= 0) {
		const AVDictionaryEntry *e = av_dict_get(res->metadata, "lavfi.ssim.All", NULL, 0);
		if (e) {
			*ssim = strtod(e->value, NULL);
			rc = isfinite(*ssim) ? 0 : -EINVAL;
		}
		av_frame_unref(res);
	}
out:
	avfilter_inout_free(&ins);
	avfilter_inout_free(&outs);
	av_frame_free(&a);
	av_frame_free(&b);
	av_frame_free(&res);
	avfilter_graph_free(&g);
	return rc;
}

/* The luma plane as a binary PGM (P5): what load_pgm reads back. */
static int put_pgm(FILE *out, const void *arg)
{
	const AVFrame *f = arg;
	int ok = fprintf(out, "P5\n%d %d\n255\n", f->width, f->height) > 0;
	for (int y = 0; ok && y < f->height; y++)
		ok = fwrite(f->data[0] + (size_t)y * (size_t)f->linesize[0], 1, (size_t)f->width,
		            out) == (size_t)f->width;
	return ok;
}

int picture_save_reference(const struct picture *p, const char *path)
{
	const AVFrame *f = p->last;
	/* The graph hands out 8-bit luma in plane 0 (gray, or a full-range YUV that a filter
	 * asked for); that plane is the reference. */
	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
	if (!f->data[0] || !d || d->comp[0].depth != 8 || (d->flags & AV_PIX_FMT_FLAG_RGB))
		return -ENODATA;
	/* Replaced whole: a crash mid-write must not leave a torn reference that every later
	 * check would compare against. 0600: a picture of an exam room is the venue's own. */
	char err[256];
	int rc = vw_file_replace(path, 0600, put_pgm, f, err, sizeof(err));
	if (rc)
		log_warn("event=reference_write_failed path=%s error=\"%s\"", path, err);
	return rc;
}

/* camera_moved: compared only when the picture shows a view at all (not black, not too
 * dark or bright: then the exposure is the fault to report). */
static void judge_view(struct picture *p, struct vw_result *r)
{
	if (!p->o.reference || !p->o.reference[0] || !p->last->data[0] ||
	    vw_result_has_fault(r, vw_fault_name(VW_FAULT_BLACK)) ||
	    vw_result_has_fault(r, vw_fault_name(VW_FAULT_TOO_DARK)) ||
	    vw_result_has_fault(r, vw_fault_name(VW_FAULT_TOO_BRIGHT)))
		return;
	AVFrame *ref = NULL;
	int rc = load_pgm(p->o.reference, &ref);
	if (rc == -ENOENT)
		return; /* no reference taken for this camera: nothing to compare */
	double ssim = 0;
	if (rc == 0)
		rc = view_similarity(p->last, ref, &ssim);
	av_frame_free(&ref);
	if (rc < 0) {
		log_warn("event=reference_unusable path=%s err=%d", p->o.reference, rc);
		return;
	}
	vw_result_set_metric(r, VW_M_VIEW_SIMILARITY, round(ssim * 1000) / 1000);
	if (ssim < p->o.moved_ssim)
		vw_result_add_fault(r, VW_FAULT_CAMERA_MOVED);
}

void picture_report(struct picture *p, struct vw_result *r)
{
	/* Flush: the last keyframe may still sit in the decoder or the graph. */
	if (avcodec_send_packet(p->dec, NULL) >= 0)
		drain_decoder(p);
	if (p->graph && av_buffersrc_add_frame_flags(p->src, NULL, 0) >= 0)
		drain_graph(p);

	vw_result_set_metric(r, VW_M_FRAMES_ANALYSED, p->analysed);
	if (p->width > 0 && p->height > 0) {
		vw_result_set_metric(r, VW_M_WIDTH, p->width);
		vw_result_set_metric(r, VW_M_HEIGHT, p->height);
	}
	if (!p->analysed)
		return;
	double mean = p->luma_sum / (double)p->luma_n;
	double var = p->luma_sq_sum / (double)p->luma_n - mean * mean;
	double stddev = sqrt(var > 0 ? var : 0);
	vw_result_set_metric(r, VW_M_LUMA_MEAN, round(mean * 10) / 10);
	vw_result_set_metric(r, VW_M_LUMA_STDDEV, round(stddev * 10) / 10);
	if (p->blur_n)
		vw_result_set_metric(r, VW_M_BLUR, round(p->blur_sum / p->blur_n * 100) / 100);
	/* Frozen: every analysed frame after the first matched its predecessor. One frame
	 * proves nothing either way, and neither does a flat picture (all black, all white):
	 * it looks the same whether frozen or not, and its exposure is the fault to report. */
	int frozen = p->analysed >= 2 && p->frozen_frames >= p->analysed - 1 &&
	             stddev >= PICTURE_FLAT_STDDEV;
	vw_result_set_metric(r, VW_M_FROZEN, frozen);

	if (p->black_frames == p->analysed)
		vw_result_add_fault(r, VW_FAULT_BLACK);
	else if (frozen)
		vw_result_add_fault(r, VW_FAULT_FROZEN);
	if (!vw_result_has_fault(r, vw_fault_name(VW_FAULT_BLACK))) {
		if (mean < p->o.dark_luma)
			vw_result_add_fault(r, VW_FAULT_TOO_DARK);
		else if (mean > p->o.bright_luma)
			vw_result_add_fault(r, VW_FAULT_TOO_BRIGHT);
		else if (p->blur_n && p->blur_sum / p->blur_n > p->o.blur_max)
			vw_result_add_fault(r, VW_FAULT_BLURRED);
	}
	judge_view(p, r);
}

void picture_destroy(struct picture **pp)
{
	struct picture *p = *pp;
	if (!p)
		return;
	avfilter_graph_free(&p->graph);
	avcodec_free_context(&p->dec);
	av_frame_free(&p->frame);
	av_frame_free(&p->filtered);
	av_frame_free(&p->last);
	av_frame_free(&p->shot);
	free(p);
	*pp = NULL;
}
