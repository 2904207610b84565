/* probe_recording: are the recordings kept? Scans the recorder's segment tree
 * incrementally (what it has seen — path, size, mtime, start, duration, decodable — lives in
 * <state_dir>/recordings.db), opens only new segments with libavformat, and judges each
 * camera (recording_missing, recording_gap inside exam sessions, retention_short,
 * recording_corrupt) and the disk (disk_low, days_until_full). Blocking file and SQLite
 * work: runs on a media worker thread, one scan at a time; the struct is owned by the
 * scheduler, which creates and destroys it on the main thread. */
#ifndef VW_PROBE_RECORDING_H
#define VW_PROBE_RECORDING_H

#include <stddef.h>
#include <stdint.h>

#include "agent_conf.h"
#include "result.h"

struct recording_scan;

int recording_scan_open(const struct agent_conf *cfg, struct recording_scan **out, char *err,
                        size_t errlen);
void recording_scan_close(struct recording_scan **rs);
/* Results this scan can produce at most: one per camera plus the disk. */
size_t recording_scan_max_results(const struct agent_conf *cfg);
/* One scan at now_ms: fills out[0..*n). */
int recording_scan_run(struct recording_scan *rs, int64_t now_ms, struct vw_result *out, size_t max,
                       size_t *n);

#endif
