/* picture: is the picture usable? Decodes keyframes only (a bounded number) of one video
 * stream and analyses a scaled-down picture with FFmpeg's own filters — signalstats
 * (brightness, chroma, outliers), blackdetect, freezedetect, blurdetect, and ssim against the
 * camera's reference snapshot — then turns their per-frame metadata into metrics and fault
 * codes. Runs on a media worker thread inside one stream check; no shared state. The
 * reference is a PGM file (320 wide, viewable), written and read by FFmpeg's pgm codec. */
#ifndef VW_PICTURE_H
#define VW_PICTURE_H

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include "result.h"

struct picture_opts {
	int max_frames;         /* keyframes decoded at most */
	double dark_luma;       /* mean luma (0-255) below: too_dark */
	double bright_luma;     /* mean luma above: too_bright */
	double blur_max;        /* blurdetect score above: blurred */
	double freeze_noise_db; /* freezedetect noise tolerance */
	const char *reference;  /* reference snapshot (PGM); NULL or "": no camera_moved check */
	double moved_ssim;      /* similarity to the reference below this: camera_moved */
	double noise;           /* estimated noise sigma (8-bit luma) above: noisy */
	double color_cast;      /* mean chroma's distance from grey above: color_cast */
	double stripes;         /* row/column luma swing above: striped */
	double occluded_pct;    /* share of detail-free blocks (%) at or above: occluded */
};

void picture_opts_default(struct picture_opts *o);

struct picture;

/* NULL with *err set when the stream's codec cannot be decoded here. */
struct picture *picture_create(const AVStream *st, const struct picture_opts *o, char *err,
                               size_t errlen);
/* Feeds one packet of the stream; non-key packets are skipped without decoding. Returns 1
 * once enough frames were analysed (the caller may stop reading), 0 to go on. */
int picture_feed(struct picture *p, const AVPacket *pkt);
int picture_frames(const struct picture *p);
/* The last decoded keyframe as the decoder gives it (colour, the camera's size), or NULL when
 * none was decoded; decoded again from its packet on the first call, so call it only when
 * the picture is needed, after the last picture_feed. Valid until picture_destroy. */
const AVFrame *picture_last_frame(struct picture *p);
/* Flushes and writes metrics (luma_mean, luma_stddev, blur, frozen, ...) and faults. */
void picture_report(struct picture *p, struct vw_result *r);
void picture_destroy(struct picture **p);
/* After picture_report: writes the last analysed picture as the reference at path
 * (atomically: temp file + rename). -ENODATA when no frame was analysed. */
int picture_save_reference(const struct picture *p, const char *path);

#endif
