/* assess: from the latest results, the venue's coverage per room (评价现场全覆盖) and the
 * site's item-3.6 assessment: connected and network smooth, picture clear, floor covered,
 * records kept, each as a boolean with the fraction behind it. Pure bookkeeping on the
 * loop thread: observes every result, emits coverage and assessment results on demand. */
#ifndef VW_ASSESS_H
#define VW_ASSESS_H

#include <stddef.h>
#include <stdint.h>

#include "agent_conf.h"
#include "result.h"

struct assess;

int assess_create(const struct agent_conf *cfg, struct assess **out);
void assess_destroy(struct assess **a);
/* Remembers the status of each stream, recording and network result. */
void assess_observe(struct assess *a, const struct vw_result *results, size_t n);
/* Whether the last upload reached the collector (set by whoever uploads). */
void assess_set_connected(struct assess *a, int connected);
/* Sum of the cameras' latest measured bitrates, kbit/s. */
double assess_camera_kbps(const struct assess *a);
/* Cameras whose latest stream check said down (the service status line). */
size_t assess_cameras_down(const struct assess *a);
/* Coverage results for every room whose cameras have all reported, then one assessment;
 * returns how many were written to out (at most rooms + 1). */
size_t assess_emit(struct assess *a, int64_t now_ms, struct vw_result *out, size_t max);
size_t assess_max_results(const struct agent_conf *cfg);

#endif
