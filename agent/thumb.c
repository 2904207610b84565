#include "thumb.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libswscale/swscale.h>
#include <stdlib.h>
#include <string.h>

/* mjpeg quantisers tried in turn, best first. 4 keeps faces and screen text of a 320-wide
 * room picture legible at 10-20 KB (measured on camd's test scenes); each step cuts the size
 * by roughly a third; 31 is the coarsest the encoder has. */
static const int qscales[] = {4, 6, 9, 13, 19, 25, 31};

static int encode_at(const AVFrame *pic, int q, AVPacket *pkt)
{
	const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
	if (!codec)
		return AVERROR_ENCODER_NOT_FOUND;
	AVCodecContext *enc = avcodec_alloc_context3(codec);
	if (!enc)
		return AVERROR(ENOMEM);
	enc->width = pic->width;
	enc->height = pic->height;
	enc->pix_fmt = pic->format;
	enc->color_range = AVCOL_RANGE_JPEG;
	enc->time_base = (AVRational){1, 25};
	enc->thread_count = 1; /* the check's worker thread, nothing more */
	/* A fixed quantiser, no rate control: one frame, size decided by the retry loop. */
	enc->flags |= AV_CODEC_FLAG_QSCALE;
	enc->global_quality = q * FF_QP2LAMBDA;
	int rc = avcodec_open2(enc, codec, NULL);
	if (rc >= 0) {
		AVFrame *f = av_frame_clone(pic);
		if (!f) {
			rc = AVERROR(ENOMEM);
		} else {
			f->quality = enc->global_quality;
			f->pts = 0;
			rc = avcodec_send_frame(enc, f);
			if (rc >= 0)
				rc = avcodec_send_frame(enc, NULL);
			if (rc >= 0)
				rc = avcodec_receive_packet(enc, pkt);
			av_frame_free(&f);
		}
	}
	avcodec_free_context(&enc);
	return rc;
}

int thumb_encode(const AVFrame *f, int max_width, size_t max_bytes, uint8_t **jpeg, size_t *len,
                 struct thumb_stats *stats)
{
	*jpeg = NULL;
	*len = 0;
	if (!f || f->width < 2 || f->height < 2 || !f->data[0] || max_width < 2)
		return -EINVAL;
	int w = f->width < max_width ? f->width : max_width;
	w &= ~1;
	int h = (int)((int64_t)f->height * w / f->width) & ~1;
	if (h < 2)
		h = 2;
	struct SwsContext *sws = NULL;
	AVFrame *pic = av_frame_alloc();
	AVPacket *pkt = av_packet_alloc();
	int rc = AVERROR(ENOMEM);
	if (!pic || !pkt)
		goto out;
	/* Full-range 4:2:0, what baseline JPEG decoders everywhere (browsers) expect. Area
	 * averaging: a 1080p picture shrunk 6x stays smooth, without aliasing. Scaled as
	 * yuv420p with the range set explicitly (swscale warns about the deprecated yuvj
	 * formats), then handed to the encoder as the yuvj420p it takes: the same layout. */
	pic->format = AV_PIX_FMT_YUV420P;
	pic->width = w;
	pic->height = h;
	if ((rc = av_frame_get_buffer(pic, 0)) < 0)
		goto out;
	sws = sws_getContext(f->width, f->height, f->format, w, h, pic->format, SWS_AREA, NULL,
	                     NULL, NULL);
	if (!sws) {
		rc = AVERROR(EINVAL); /* a pixel format swscale cannot read */
		goto out;
	}
	int src_full = f->color_range == AVCOL_RANGE_JPEG || f->format == AV_PIX_FMT_YUVJ420P ||
	               f->format == AV_PIX_FMT_YUVJ422P || f->format == AV_PIX_FMT_YUVJ444P;
	const int *coef = sws_getCoefficients(SWS_CS_DEFAULT);
	sws_setColorspaceDetails(sws, coef, src_full, coef, 1, 0, 1 << 16, 1 << 16);
	if ((rc = sws_scale(sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height,
	                    pic->data, pic->linesize)) < 0)
		goto out;
	pic->format = AV_PIX_FMT_YUVJ420P;
	pic->color_range = AVCOL_RANGE_JPEG;
	rc = -E2BIG;
	int attempts = 0;
	for (size_t i = 0; i < sizeof(qscales) / sizeof(qscales[0]); i++) {
		av_packet_unref(pkt);
		attempts++;
		int e = encode_at(pic, qscales[i], pkt);
		if (e < 0) {
			rc = e;
			break;
		}
		if ((size_t)pkt->size <= max_bytes) {
			uint8_t *out = malloc((size_t)pkt->size);
			if (!out) {
				rc = AVERROR(ENOMEM);
				break;
			}
			memcpy(out, pkt->data, (size_t)pkt->size);
			*jpeg = out;
			*len = (size_t)pkt->size;
			if (stats) {
				stats->width = w;
				stats->height = h;
				stats->qscale = qscales[i];
			}
			rc = 0;
			break;
		}
	}
	if (stats)
		stats->attempts = attempts;
out:
	sws_freeContext(sws);
	av_frame_free(&pic);
	av_packet_free(&pkt);
	return rc;
}

static int same_faults(const struct thumb_memory *m, const struct vw_result *r)
{
	if (m->nfaults != r->nfaults)
		return 0;
	/* Sets, not lists: the order faults were found in is no change of the picture. */
	for (unsigned i = 0; i < r->nfaults; i++) {
		unsigned j = 0;
		while (j < m->nfaults && strcmp(m->faults[j], r->faults[i]) != 0)
			j++;
		if (j == m->nfaults)
			return 0;
	}
	return 1;
}

int thumb_due(const struct thumb_memory *m, const struct vw_result *r, int64_t now_ms,
              int64_t interval_ms)
{
	if (interval_ms <= 0)
		return 0;
	if (!m->have_last || m->last_status != (int)r->status || !same_faults(m, r))
		return 1;
	return !m->last_thumb_ms || now_ms - m->last_thumb_ms >= interval_ms;
}

void thumb_remember(struct thumb_memory *m, const struct vw_result *r, int64_t now_ms, int attached)
{
	m->have_last = 1;
	m->last_status = (int)r->status;
	m->nfaults = r->nfaults;
	memcpy(m->faults, r->faults, sizeof(m->faults));
	if (attached)
		m->last_thumb_ms = now_ms;
}
