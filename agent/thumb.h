/* thumb: picture evidence — a small JPEG of the keyframe a stream check analysed (libswscale
 * to scale, libavcodec's mjpeg encoder, quality lowered until it fits the bounds), and the
 * rule for when a camera's result carries one (its status or fault set changed, else at most
 * every [agent] thumbnail_interval). thumb_encode runs on the media worker inside the check;
 * thumb_due is pure. The caller frees the JPEG with free(). */
#ifndef VW_THUMB_H
#define VW_THUMB_H

#include <libavutil/frame.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"

/* The collector's bounds (docs/API.md "Thumbnails"): it refuses anything larger. */
#define VW_THUMB_MAX_WIDTH 320
#define VW_THUMB_MAX_BYTES (30 * 1024)

struct thumb_stats {
	int width, height; /* of the JPEG */
	int qscale;        /* the mjpeg quantiser that fitted (2 best .. 31 worst) */
	int attempts;      /* encodes tried */
};

/* Scales f (any pixel format, any size) to at most max_width wide (never wider than f, the
 * aspect ratio kept, even dimensions) and encodes it as a baseline JPEG of at most max_bytes,
 * starting at a good quality and coarsening until it fits. 0 with *jpeg (malloc'd) and *len;
 * -E2BIG when even the coarsest quality does not fit; -EINVAL for an empty frame; other
 * negative AVERROR codes from libav*. stats may be NULL. */
int thumb_encode(const AVFrame *f, int max_width, size_t max_bytes, uint8_t **jpeg, size_t *len,
                 struct thumb_stats *stats);

/* What the camera's previous results said, for thumb_due: the last result's status and
 * faults (have_last 0 before the first), and when the last thumbnail was attached (0 =
 * never). */
struct thumb_memory {
	int have_last;
	int last_status;
	unsigned nfaults;
	char faults[VW_MAX_FAULTS][VW_NAME_MAX];
	int64_t last_thumb_ms;
};

/* 1 when result r (now_ms its check time) should carry a thumbnail: interval_ms > 0 (0 is
 * off) and either the status or the set of faults differs from the previous result's (or
 * there was none), or no thumbnail for interval_ms. */
int thumb_due(const struct thumb_memory *m, const struct vw_result *r, int64_t now_ms,
              int64_t interval_ms);
/* After r was delivered: remember its status and faults, and now_ms if it carried one. */
void thumb_remember(struct thumb_memory *m, const struct vw_result *r, int64_t now_ms,
                    int attached);

#endif
