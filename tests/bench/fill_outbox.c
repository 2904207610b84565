/* fill_outbox: a test fixture for the backlog-drain benchmark, not part of the agent.
 * Writes N results into an agent's outbox through the agent's own outbox API (the same
 * outbox_append the running agent uses), so the backlog on disk is exactly what a venue
 * offline for a day would hold: seqs, WAL, byte accounting. The results are stream checks
 * of `cameras` cameras with the metrics a real check reports; producing 200,000 real
 * checks would take the RTSP test server hours.
 *
 *   fill_outbox STATE_DIR COUNT [CAMERAS]      prints "filled=N next_seq=S seconds=T" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox.h"
#include "vtime.h"

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: fill_outbox STATE_DIR COUNT [CAMERAS]\n");
		return 2;
	}
	long count = strtol(argv[2], NULL, 10);
	int cameras = argc > 3 ? atoi(argv[3]) : 200;
	char path[4096], err[512];
	snprintf(path, sizeof(path), "%s/outbox.db", argv[1]);
	struct outbox *ob;
	/* 1 TiB: the bound is not what this measures. */
	if (outbox_open(path, 1LL << 40, &ob, err, sizeof(err))) {
		fprintf(stderr, "fill_outbox: %s\n", err);
		return 1;
	}
	/* One scheduler batch per camera round, as the agent commits them. */
	enum { CHUNK = 200 };
	struct vw_result *rs = calloc(CHUNK, sizeof(*rs));
	int64_t t0 = vw_mono_ms(), day_ago = vw_now_ms() - 86400000LL;
	long done = 0;
	while (done < count) {
		size_t n = count - done < CHUNK ? (size_t)(count - done) : CHUNK;
		for (size_t i = 0; i < n; i++) {
			char target[32];
			long k = done + (long)i;
			snprintf(target, sizeof(target), "cam-%03ld", k % cameras);
			vw_result_init(&rs[i], VW_KIND_STREAM, target);
			/* spread over the day the venue was offline, 15 s session cadence */
			rs[i].ts_ms = day_ago + k * 86400000LL / count;
			snprintf(rs[i].session, sizeof(rs[i].session), "2026-11-26-am");
			snprintf(rs[i].codec, sizeof(rs[i].codec), "h264");
			vw_result_set_metric(&rs[i], VW_M_WIDTH, 1920);
			vw_result_set_metric(&rs[i], VW_M_HEIGHT, 1080);
			vw_result_set_metric(&rs[i], VW_M_FPS, 25);
			vw_result_set_metric(&rs[i], VW_M_BITRATE_KBPS, 4000 + (double)(k % 97));
			vw_result_set_metric(&rs[i], VW_M_OPEN_MS, 180 + (double)(k % 41));
			vw_result_set_metric(&rs[i], VW_M_FIRST_KEYFRAME_MS,
			                     420 + (double)(k % 53));
			vw_result_set_metric(&rs[i], VW_M_CHECK_MS, 2100 + (double)(k % 71));
			vw_result_set_metric(&rs[i], VW_M_FRAMES_ANALYSED, 3);
			vw_result_set_metric(&rs[i], VW_M_LUMA_MEAN, 112.4);
			vw_result_set_metric(&rs[i], VW_M_LUMA_STDDEV, 41.7);
			vw_result_set_metric(&rs[i], VW_M_BLUR, 2.31);
			if (k % 50 == 0) {
				rs[i].status = VW_STATUS_DOWN;
				vw_result_add_fault(&rs[i], VW_FAULT_TIMEOUT);
			}
		}
		if (outbox_append(ob, rs, n)) {
			fprintf(stderr, "fill_outbox: append failed at %ld\n", done);
			return 1;
		}
		done += (long)n;
	}
	printf("filled=%ld next_seq=%lld bytes=%lld seconds=%.2f\n", done,
	       (long long)outbox_next_seq(ob), (long long)outbox_bytes(ob),
	       (double)(vw_mono_ms() - t0) / 1000.0);
	free(rs);
	outbox_close(&ob);
	return 0;
}
