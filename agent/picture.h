/* picture: is the picture usable? Decodes keyframes only (a bounded number) of one video
 * stream and analyses scaled-down luma with FFmpeg's own filters — signalstats (brightness),
 * blackdetect, freezedetect, blurdetect — then turns their per-frame metadata into metrics
 * and fault codes. Runs on a media worker thread inside one stream check; no shared state. */
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
/* Flushes and writes metrics (luma_mean, luma_stddev, blur, frozen, ...) and faults. */
void picture_report(struct picture *p, struct vw_result *r);
void picture_destroy(struct picture **p);

#endif
