/* probe_stream: one camera stream check with libavformat — open, read a short window,
 * measure codec, resolution, fps, bitrate and time to the first keyframe, hand keyframes
 * to picture.c, and judge the whole: faults and ok / degraded / down.
 * Runs on a media worker thread (it blocks); every call ends by its deadline, enforced by
 * libavformat's own timeouts and an interrupt callback. No state between calls. */
#ifndef VW_PROBE_STREAM_H
#define VW_PROBE_STREAM_H

#include <stddef.h>

#include "picture.h"
#include "result.h"

struct probe_stream_req {
	const char *name; /* camera name: the result's target */
	const char *url;  /* may hold credentials: never logged as is */
	int transport;    /* enum vw_transport */
	long timeout_ms;  /* hard deadline of the whole check */
	long window_ms;   /* how long to read packets */
	struct picture_opts picture;
	long min_width, min_height;
	double min_fps, min_bitrate_kbps;
};

/* Fills out (a stream result) and returns 0; a failing camera is a result, not an error. */
int probe_stream_run(const struct probe_stream_req *req, struct vw_result *out);

/* Copies url into out with any user:password@ replaced by "***@", for logs. */
void probe_stream_mask_url(const char *url, char *out, size_t outlen);

/* Routes libav* logging into ours (debug level only); call once before threads start. */
void probe_stream_global_init(void);

#endif
