/* probe_stream: one camera stream check with libavformat — open, read a short window,
 * measure codec, resolution, fps, bitrate and time to the first keyframe, hand keyframes
 * to picture.c, and judge the whole: faults and ok / degraded / down.
 * Runs on a media worker thread (it blocks); every call ends by its deadline, enforced by
 * libavformat's own timeouts and an interrupt callback. No state between calls. */
#ifndef VW_PROBE_STREAM_H
#define VW_PROBE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "picture.h"
#include "result.h"
#include "thumb.h"

struct probe_stream_req {
	const char *name; /* camera name: the result's target */
	const char *url;  /* may hold credentials: never logged as is */
	int transport;    /* enum vw_transport */
	long timeout_ms;  /* hard deadline of the whole check */
	long window_ms;   /* how long to read packets */
	struct picture_opts picture;
	long min_width, min_height;
	double min_fps, min_bitrate_kbps;
	const char *state_dir;   /* holds reference/<camera>.pgm; NULL: no camera_moved check */
	const char *credentials; /* file with user:password, read per check; NULL or "": none */
	/* Picture evidence (issue 16): when thumb_interval_ms > 0 and thumb_due(thumb_memory,
	 * ...) says so, the analysed keyframe becomes out->thumb, a JPEG (thumb.h bounds) that
	 * the caller frees. 0 or no memory: never. */
	int64_t thumb_interval_ms;
	const struct thumb_memory *thumb_memory;
};

/* The deadline a check runs under: probe_stream_open's interrupt callback aborts any
 * blocking libav* call once vw_mono_ms() passes limit_ms, and sets hit. */
struct probe_deadline {
	int64_t limit_ms;
	int hit;
};

/* What probe_stream_open needs: a camera's stream, or a recorder's playback of it. */
struct probe_stream_open_req {
	const char *name;        /* for logs */
	const char *url;         /* may hold credentials: never logged as is */
	const char *credentials; /* file with user:password; NULL or "": none */
	int transport;           /* enum vw_transport */
	long timeout_ms;         /* socket I/O timeout */
	long window_ms;          /* longest stream-info analysis */
};

struct AVFormatContext;
/* Opens req->url as every check does (the host resolved within d's deadline first, credentials from
 * their file, timeouts, redirect cap, the deadline's interrupt callback on d). 0 with *out open
 * (the caller closes it with avformat_close_input), or a negative AVERROR with *out NULL and *fault
 * saying why: unreachable, auth_failed, timeout, no_video (404 / no such stream), protocol. d must
 * outlive *out. */
int probe_stream_open(const struct probe_stream_open_req *req, struct probe_deadline *d,
                      struct AVFormatContext **out, enum vw_fault *fault);

/* Fills out (a stream result) and returns 0; a failing camera is a result, not an error.
 * out->thumb, when set, is malloc'd and the caller's to free. */
int probe_stream_run(const struct probe_stream_req *req, struct vw_result *out);
/* One check like probe_stream_run that stores the picture as the camera's reference view
 * (`venuewatch-agent reference CAMERA`). Returns 0 once stored; -ENODATA when the camera
 * gave no usable picture (down, or too dark or bright to recognise); out says why. */
int probe_stream_reference(const struct probe_stream_req *req, struct vw_result *out);
/* <state_dir>/reference/<camera>.pgm; -EINVAL for a camera name that cannot be a file name. */
int probe_stream_reference_path(const char *state_dir, const char *camera, char *out,
                                size_t outlen);

/* Copies url into out for logs, masked as probe_stream_mask_log masks a line. */
void probe_stream_mask_url(const char *url, char *out, size_t outlen);

/* Copies one libav* log message into out as one line with secrets replaced: the userinfo
 * of a URL (after scheme://, everything up to the last '@' before the next '/'; without a
 * scheme, a "user:pass" word before '@') becomes three stars, and so do the values of the
 * query parameters password, passwd, pwd, pass, token, auth, key and signature, and whatever
 * follows "Authorization", "Basic " or "Digest " on a line; line breaks become " | ". */
void probe_stream_mask_log(const char *in, char *out, size_t outlen);
/* Routes libav* logging into ours (debug level only, masked by probe_stream_mask_log);
 * FFmpeg's levels up to warning by default, up to VW_LIBAV_LOG_LEVEL (verbose, debug,
 * trace, ...) when that is set. Call once before threads start. */
void probe_stream_global_init(void);

#endif
