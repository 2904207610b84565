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
/* A reference file larger than this is not one we wrote (a 4096x4096 PGM and its header). */
#define PICTURE_REF_MAX_BYTES (4096 * 4096 + 64)
/* Occlusion is judged on a grid of blocks (8x6 at 320 wide: 40x30 pixels each, about the
 * size of a face at the back of a room). */
#define PICTURE_GRID_X 8
#define PICTURE_GRID_Y 6
/* A block whose luma spread is below this has no detail: a cover, a hand, a cloth on the
 * lens (a cover with sensor noise measured below 1 at 320 wide). */
#define PICTURE_BLOCK_FLAT_STDDEV 3.0
/* Flat blocks within this luma of each other are one cover. Measured share of the largest
 * such group: 75% for a view three-quarters covered; 6-25% on healthy scenes (testsrc's colour
 * fields 25%; counting every flat block regardless of level gave them 81%). */
#define PICTURE_COVER_LEVEL 6.0
/* Stripes are rows (columns) whose mean luma swings against the mean of the rows around
 * them; 4 on each side (a window of 9 rows at 320 wide, 36 rows at 720p) keeps fine
 * interference lines and leaves a scene's few edges (desks, windows) as single steps. */
#define PICTURE_STRIPE_RADIUS 4
/* Pictures taller than this at 320 wide (portrait or odd shapes) are not judged for stripes. */
#define PICTURE_PROFILE_MAX 1024
/* color_cast only when the tint is most of the colour: a colourful scene's mean chroma can
 * be off grey too, but then its pixels' chroma spreads far around that mean, while a tint
 * moves them all together. The spread is half the diagonal of signalstats' 10-90 percentile
 * box of U and V. Measured cast / spread per keyframe (tests/integration/test_vqd.py): 0.44
 * on testsrc's colour fields (healthy), 0.27-0.28 on the occluded scene, 0.64-0.65 on a muted
 * scene tinted orange, 0-0.02 on bars, grey, dim and testsrc2 scenes. Against the mean
 * saturation (SATAVG, the earlier measure) the same clips measured 0.60-0.61 healthy and 0.75
 * tinted: every pixel's distance from grey contains the tint itself, so that share squeezes
 * both towards 1. The share is the geometric middle of 0.44 and 0.64. */
#define PICTURE_CAST_SHARE 0.53

struct picture {
	AVCodecContext *dec;
	AVFilterGraph *graph;
	AVFilterContext *src, *sink;
	AVFrame *frame, *filtered;
	AVFrame *last; /* the last analysed (scaled, gray) picture: reference and comparison */
	/* The thumbnail's source: the last keyframe that decoded, kept compressed (~0.1 MiB at
	 * 1080p, not a 3 MiB picture) and decoded again only when a thumbnail is due. */
	AVPacket *shot_pkt;
	AVFrame *shot; /* shot_pkt decoded (colour, full size), once asked for */
	int64_t t0_ms; /* frames are stamped with arrival time: RTP's first ones carry none */
	struct picture_opts o;
	int graph_failed;
	int decoded;  /* keyframes decoded */
	int analysed; /* frames out of the filter graph */
	int width, height;
	/* accumulated from the filters' frame metadata */
	double yavg_sum, luma_sq_sum, blur_sum;
	double uavg_sum, vavg_sum, sat_sum, chroma_spread_sum;
	long long luma_n;
	int stats_n; /* frames with signalstats' metadata */
	int blur_n;
	/* accumulated from our own pass over the luma plane (see luma_pass) */
	double stripes_sum, flat_blocks_sum, noise_sum;
	int stripes_n, noise_n;
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
	o->noise = 4;
	o->color_cast = 20;
	o->stripes = 8;
	o->occluded_pct = 50;
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
	p->shot_pkt = av_packet_alloc();
	if (!p->dec || !p->frame || !p->filtered || !p->last || !p->shot || !p->shot_pkt)
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
	 * moving picture frozen at any noise floor (tests/integration/test_evidence.py).
	 * signalstats sees colour (yuv420p) for its chroma statistics. Its outlier count
	 * (stat=tout) is not our noise measure: snow over a scene measured 0.06%, the scene
	 * alone 0.02%, once scaled to 320 wide. */
	snprintf(desc, sizeof(desc),
	         "scale=w=%d:h=-2:flags=area,format=yuv420p,freezedetect=n=%gdB:d=0.01,"
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

/* Mean absolute swing of a profile (row or column means) against the mean of its
 * neighbourhood: fine periodic lines score their amplitude, a scene's edges little. */
static double profile_swing(const double *v, int n)
{
	if (n < 2 * PICTURE_STRIPE_RADIUS + 1)
		return 0;
	double swing = 0;
	for (int i = 0; i < n; i++) {
		int a = i - PICTURE_STRIPE_RADIUS < 0 ? 0 : i - PICTURE_STRIPE_RADIUS;
		int b = i + PICTURE_STRIPE_RADIUS >= n ? n - 1 : i + PICTURE_STRIPE_RADIUS;
		double m = 0;
		for (int j = a; j <= b; j++)
			m += v[j];
		swing += fabs(v[i] - m / (b - a + 1));
	}
	return swing / n;
}

/* Our one pass over the scaled luma plane. FFmpeg's filters report whole-frame statistics
 * only: none gives the spread (signalstats has the mean, not the deviation), regional
 * statistics (occlusion: blocks without detail), or the row and column profiles stripes show
 * in (signalstats' VREP counts repeated lines, an analogue capture's dropouts, not bands). A
 * filter chain per block or a transposed profile graph would cost more than this sum. */
static void luma_pass(struct picture *p, const AVFrame *f)
{
	double rows[PICTURE_PROFILE_MAX], cols[PICTURE_ANALYSIS_WIDTH];
	double bs[PICTURE_GRID_Y][PICTURE_GRID_X] = {{0}},
	       bsq[PICTURE_GRID_Y][PICTURE_GRID_X] = {{0}};
	int profile = f->height <= PICTURE_PROFILE_MAX && f->width <= PICTURE_ANALYSIS_WIDTH;
	const uint8_t *row = f->data[0];
	const ptrdiff_t ls = f->linesize[0];
	double sq = 0, lap = 0;
	if (profile)
		memset(cols, 0, sizeof(cols));
	for (int y = 0; y < f->height; y++, row += ls) {
		double rs = 0;
		int by = y * PICTURE_GRID_Y / f->height;
		/* Noise: Immerkaer's estimate (Fast Noise Variance Estimation, CVIU 1996), the
		 * 3x3 mask that cancels edges and gradients, summed over interior pixels. At 320
		 * wide snow whose grain is a few pixels (an analogue camera's) stays; noise of
		 * single pixels is averaged down (sigma / 4 from 1280), but the encoder has taken
		 * it before: at full 1280 width x264 at 1500 kbit/s left 0.49 of ffmpeg's noise
		 * alls=60, the clean scene 0.65 (tests/integration/test_vqd.py's SNOW_CBR). */
		if (y >= 2)
			for (int x = 2; x < f->width; x++) {
				const uint8_t *a = row - 2 * ls + x - 2, *b = row - ls + x - 2,
				              *c = row + x - 2;
				lap += abs(a[0] - 2 * a[1] + a[2] - 2 * (b[0] - 2 * b[1] + b[2]) +
				           c[0] - 2 * c[1] + c[2]);
			}
		for (int x = 0; x < f->width; x++) {
			double v = row[x];
			int bx = x * PICTURE_GRID_X / f->width;
			rs += v;
			sq += v * v;
			bs[by][bx] += v;
			bsq[by][bx] += v * v;
			if (profile)
				cols[x] += v;
		}
		if (profile)
			rows[y] = rs / f->width;
	}
	p->luma_sq_sum += sq;
	p->luma_n += (long long)f->width * f->height;
	if (f->width > 2 && f->height > 2) {
		p->noise_sum += sqrt(M_PI / 2) * lap / (6.0 * (f->width - 2) * (f->height - 2));
		p->noise_n++;
	}
	if (profile) {
		for (int x = 0; x < f->width; x++)
			cols[x] /= f->height;
		double sr = profile_swing(rows, f->height), sc = profile_swing(cols, f->width);
		p->stripes_sum += sr > sc ? sr : sc;
		p->stripes_n++;
	}
	double level[PICTURE_GRID_X * PICTURE_GRID_Y];
	int flat = 0;
	for (int by = 0; by < PICTURE_GRID_Y; by++) {
		for (int bx = 0; bx < PICTURE_GRID_X; bx++) {
			/* the block's pixel count, as the integer grid split them */
			double n =
			    (double)(((by + 1) * f->height + PICTURE_GRID_Y - 1) / PICTURE_GRID_Y -
			             (by * f->height + PICTURE_GRID_Y - 1) / PICTURE_GRID_Y) *
			    (double)(((bx + 1) * f->width + PICTURE_GRID_X - 1) / PICTURE_GRID_X -
			             (bx * f->width + PICTURE_GRID_X - 1) / PICTURE_GRID_X);
			if (n < 1)
				continue;
			double m = bs[by][bx] / n, var = bsq[by][bx] / n - m * m;
			if (sqrt(var > 0 ? var : 0) < PICTURE_BLOCK_FLAT_STDDEV)
				level[flat++] = m;
		}
	}
	/* A cover is one surface: its blocks share a level. A scene's plain areas (walls, a
	 * board, a test pattern's colour fields) are many surfaces at many levels. */
	int cover = 0;
	for (int i = 0; i < flat; i++) {
		int same = 0;
		for (int j = 0; j < flat; j++)
			same += fabs(level[i] - level[j]) <= PICTURE_COVER_LEVEL;
		if (same > cover)
			cover = same;
	}
	p->flat_blocks_sum += (double)cover / (PICTURE_GRID_X * PICTURE_GRID_Y);
}

static void take_filtered(struct picture *p, const AVFrame *f)
{
	int found, fu, fv, fs, fp[4];
	p->analysed++;
	double yavg = meta(f, "lavfi.signalstats.YAVG", &found);
	double uavg = meta(f, "lavfi.signalstats.UAVG", &fu);
	double vavg = meta(f, "lavfi.signalstats.VAVG", &fv);
	double sat = meta(f, "lavfi.signalstats.SATAVG", &fs);
	double ulow = meta(f, "lavfi.signalstats.ULOW", &fp[0]);
	double uhigh = meta(f, "lavfi.signalstats.UHIGH", &fp[1]);
	double vlow = meta(f, "lavfi.signalstats.VLOW", &fp[2]);
	double vhigh = meta(f, "lavfi.signalstats.VHIGH", &fp[3]);
	if (found && fu && fv && fs && fp[0] && fp[1] && fp[2] && fp[3]) {
		p->yavg_sum += yavg;
		p->uavg_sum += uavg;
		p->vavg_sum += vavg;
		p->sat_sum += sat;
		p->chroma_spread_sum += hypot(uhigh - ulow, vhigh - vlow) / 2;
		p->stats_n++;
	}
	luma_pass(p, f);

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
	/* Each keyframe decoded on its own: drained at once, then the decoder flushed. Nothing
	 * waits in a reorder queue for a later keyframe, and the decoder holds no reference
	 * picture (a full-size frame and its tables, ~4 MiB at 1080p) between keyframes, so
	 * a check peaks at one picture, not two (docs/BENCHMARKS.md, cadence at 64 cameras).
	 * A keyframe is intra-coded: the flush loses nothing it needs. */
	int before = p->decoded;
	if (avcodec_send_packet(p->dec, pkt) >= 0 && avcodec_send_packet(p->dec, NULL) >= 0)
		drain_decoder(p);
	avcodec_flush_buffers(p->dec);
	if (p->decoded > before) {
		av_packet_unref(p->shot_pkt);
		if (av_packet_ref(p->shot_pkt, pkt) < 0)
			av_packet_unref(p->shot_pkt);
	}
	return p->decoded >= p->o.max_frames;
}

int picture_frames(const struct picture *p)
{
	return p->decoded;
}

const AVFrame *picture_last_frame(struct picture *p)
{
	if (p->shot->data[0] || !p->shot_pkt->size)
		return p->shot->data[0] ? p->shot : NULL;
	/* The same decoder, the same keyframe: the picture the verdict was made on. */
	avcodec_flush_buffers(p->dec);
	if (avcodec_send_packet(p->dec, p->shot_pkt) >= 0 && avcodec_send_packet(p->dec, NULL) >= 0)
		while (!p->shot->data[0] && avcodec_receive_frame(p->dec, p->shot) >= 0)
			;
	avcodec_flush_buffers(p->dec);
	return p->shot->data[0] ? p->shot : NULL;
}

/* ---- the reference view (camera_moved) ---- */

/* Reads the reference (a binary PGM, as picture_save_reference writes it) with FFmpeg's pgm
 * decoder. The file is read whole: it is small, and bounded before it is read. */
static int load_pgm(const char *path, AVFrame **out)
{
	AVCodecContext *dec = NULL;
	AVPacket *pkt = NULL;
	AVFrame *fr = NULL;
	FILE *f = fopen(path, "rb");
	int rc;
	if (!f)
		return -errno;
	rc = -EINVAL;
	if (fseek(f, 0, SEEK_END) < 0)
		goto out;
	long size = ftell(f);
	if (size <= 0 || size > PICTURE_REF_MAX_BYTES || fseek(f, 0, SEEK_SET) < 0)
		goto out;
	rc = AVERROR(ENOMEM);
	const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_PGM);
	if (!codec) {
		rc = -ENOSYS;
		goto out;
	}
	if (!(pkt = av_packet_alloc()) || av_new_packet(pkt, (int)size) < 0 ||
	    !(fr = av_frame_alloc()) || !(dec = avcodec_alloc_context3(codec)))
		goto out;
	rc = -EINVAL;
	if (fread(pkt->data, 1, (size_t)size, f) != (size_t)size)
		goto out;
	if ((rc = avcodec_open2(dec, codec, NULL)) < 0 ||
	    (rc = avcodec_send_packet(dec, pkt)) < 0 || (rc = avcodec_receive_frame(dec, fr)) < 0)
		goto out;
	rc = -EINVAL;
	if (fr->format != AV_PIX_FMT_GRAY8 || fr->width < 16 || fr->height < 16 ||
	    fr->width > PICTURE_REF_MAX_DIM || fr->height > PICTURE_REF_MAX_DIM)
		goto out;
	rc = 0;
	*out = fr;
	fr = NULL;
out:
	av_frame_free(&fr);
	av_packet_free(&pkt);
	avcodec_free_context(&dec);
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

static int put_packet(FILE *out, const void *arg)
{
	const AVPacket *pkt = arg;
	return fwrite(pkt->data, 1, (size_t)pkt->size, out) == (size_t)pkt->size;
}

/* The luma plane encoded by FFmpeg's pgm encoder: a binary PGM (P5) any viewer opens. */
static int encode_pgm(const AVFrame *f, AVPacket *pkt)
{
	const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_PGM);
	AVCodecContext *enc = NULL;
	AVFrame *gray = NULL;
	int rc = -ENOSYS;
	if (!codec)
		goto out;
	rc = AVERROR(ENOMEM);
	if (!(enc = avcodec_alloc_context3(codec)) || !(gray = av_frame_alloc()))
		goto out;
	enc->width = f->width;
	enc->height = f->height;
	enc->pix_fmt = AV_PIX_FMT_GRAY8;
	enc->time_base = (AVRational){1, 1};
	/* plane 0 of the analysed picture, borrowed (the encoder copies what it keeps) */
	gray->format = AV_PIX_FMT_GRAY8;
	gray->width = f->width;
	gray->height = f->height;
	gray->data[0] = f->data[0];
	gray->linesize[0] = f->linesize[0];
	if ((rc = avcodec_open2(enc, codec, NULL)) < 0 || (rc = avcodec_send_frame(enc, gray)) < 0)
		goto out;
	rc = avcodec_receive_packet(enc, pkt);
out:
	av_frame_free(&gray);
	avcodec_free_context(&enc);
	return rc;
}

int picture_save_reference(const struct picture *p, const char *path)
{
	const AVFrame *f = p->last;
	/* The graph hands out 8-bit YUV (or gray): plane 0 is the luma, and the reference. */
	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
	if (!f->data[0] || !d || d->comp[0].depth != 8 || (d->flags & AV_PIX_FMT_FLAG_RGB))
		return -ENODATA;
	AVPacket *pkt = av_packet_alloc();
	if (!pkt)
		return -ENOMEM;
	int rc = encode_pgm(f, pkt);
	if (rc < 0) {
		log_warn("event=reference_encode_failed path=%s err=%d", path, rc);
		av_packet_free(&pkt);
		return rc;
	}
	/* Replaced whole, fsync'd before and after the rename (vw_file_replace): a crash
	 * mid-write must not leave a torn reference that every later check would compare
	 * against. 0600: a picture of an exam room is the venue's own. */
	char err[256];
	rc = vw_file_replace(path, 0600, put_packet, pkt, err, sizeof(err));
	if (rc)
		log_warn("event=reference_write_failed path=%s error=\"%s\"", path, err);
	av_packet_free(&pkt);
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

/* The vendors' video-quality faults (VQD: snow, colour cast, stripes, occlusion), judged
 * only on a picture whose exposure is fine: a black, dark or blown-out picture has that as
 * its fault, and its flat or noisy look says nothing more. */
static void judge_vqd(struct picture *p, struct vw_result *r, double stddev)
{
	double noise = p->noise_n ? p->noise_sum / p->noise_n : 0;
	double du = p->uavg_sum / p->stats_n - 128, dv = p->vavg_sum / p->stats_n - 128;
	double cast = sqrt(du * du + dv * dv), sat = p->sat_sum / p->stats_n;
	double spread = p->chroma_spread_sum / p->stats_n;
	double stripes = p->stripes_n ? p->stripes_sum / p->stripes_n : 0;
	double occluded = p->flat_blocks_sum / p->analysed * 100;
	vw_result_set_metric(r, VW_M_NOISE, round(noise * 100) / 100);
	vw_result_set_metric(r, VW_M_COLOR_CAST, round(cast * 10) / 10);
	vw_result_set_metric(r, VW_M_SATURATION, round(sat * 10) / 10);
	vw_result_set_metric(r, VW_M_STRIPES, round(stripes * 100) / 100);
	vw_result_set_metric(r, VW_M_OCCLUDED_PCT, round(occluded));
	if (vw_result_has_fault(r, vw_fault_name(VW_FAULT_BLACK)) ||
	    vw_result_has_fault(r, vw_fault_name(VW_FAULT_TOO_DARK)) ||
	    vw_result_has_fault(r, vw_fault_name(VW_FAULT_TOO_BRIGHT)))
		return;
	if (noise > p->o.noise)
		vw_result_add_fault(r, VW_FAULT_NOISY);
	if (cast > p->o.color_cast && cast >= PICTURE_CAST_SHARE * spread)
		vw_result_add_fault(r, VW_FAULT_COLOR_CAST);
	if (stripes > p->o.stripes)
		vw_result_add_fault(r, VW_FAULT_STRIPED);
	/* Occluded: much of the picture without detail while the rest has it; a picture
	 * without detail anywhere (a lens cap in light) is not a scene partly covered. */
	if (occluded >= p->o.occluded_pct && occluded < 100 && stddev >= PICTURE_FLAT_STDDEV)
		vw_result_add_fault(r, VW_FAULT_OCCLUDED);
}

void picture_report(struct picture *p, struct vw_result *r)
{
	/* Flush: the last keyframe may still sit in the graph (the decoder holds none:
	 * picture_feed drains it at every keyframe). */
	if (p->graph && av_buffersrc_add_frame_flags(p->src, NULL, 0) >= 0)
		drain_graph(p);

	vw_result_set_metric(r, VW_M_FRAMES_ANALYSED, p->analysed);
	if (p->width > 0 && p->height > 0) {
		vw_result_set_metric(r, VW_M_WIDTH, p->width);
		vw_result_set_metric(r, VW_M_HEIGHT, p->height);
	}
	if (!p->analysed || !p->stats_n || !p->luma_n)
		return;
	/* The mean is signalstats' YAVG (every analysed frame has the same size, so the mean
	 * of the frames' means is the mean of their pixels). */
	double mean = p->yavg_sum / p->stats_n;
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
	judge_vqd(p, r, stddev);
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
	av_packet_free(&p->shot_pkt);
	free(p);
	*pp = NULL;
}
