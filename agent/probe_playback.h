/* probe_playback: are the recordings kept on the recorder (NVR)? Plays back short stretches
 * through each camera's playback_url template (strftime fields for the sampled time, UTC) —
 * the newest recording, the oldest the retention policy must still hold, and a few points
 * inside each finished exam session — and judges each camera with the filesystem scan's
 * faults (recording_missing, recording_gap, retention_short, recording_corrupt). Reads are
 * bounded per round and paced to playback_max_kbps. Blocking: runs on a media worker thread,
 * one round at a time; the struct (what finished sessions were found to hold, so each is
 * read once) is created and destroyed by the scheduler on the main thread. */
#ifndef VW_PROBE_PLAYBACK_H
#define VW_PROBE_PLAYBACK_H

#include <stddef.h>
#include <stdint.h>

#include "agent_conf.h"
#include "result.h"

struct playback;

/* NULL *out (and 0) when no camera has a playback URL. */
int playback_create(const struct agent_conf *cfg, struct playback **out);
void playback_destroy(struct playback **pb);
/* One result per camera with a playback URL. */
size_t playback_max_results(const struct agent_conf *cfg);
/* One round at now_ms (UTC): fills out[0..*n). A non-zero *cancel (read atomically; another
 * thread sets it to stop) ends the pauses between reads and the round. */
int playback_run(struct playback *pb, int64_t now_ms, const int *cancel, struct vw_result *out,
                 size_t max, size_t *n);
/* The playback URL for camera name at t_ms: strftime over tmpl in UTC, then {camera}
 * replaced by name. -ENAMETOOLONG when it does not fit. */
int playback_url_expand(const char *tmpl, const char *name, int64_t t_ms, char *out, size_t outlen);

#endif
