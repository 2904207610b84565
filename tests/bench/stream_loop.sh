#!/usr/bin/env bash
# Flat RSS over many stream checks in one agent process: the agent runs in its normal run mode
# (no test-only loop in the shipped binary) with a 1 s cadence against camd, and this script
# samples /proc/PID/status VmRSS while counting the stream results the agent committed to its
# outbox, until CHECKS checks are done. Prints RSS at start (after the first round), middle and
# end, and the growth from the first to the last sample.
#   camd serves CAMS cameras of 720p25 H.264 from one file made once with the ffmpeg CLI, a
#   keyframe every 5 frames so a check (open, 200 ms window, 2 keyframes analysed) is short.
#   The collector is a closed port: results stay in the outbox, where they are counted.
# Usage: tests/bench/stream_loop.sh [BUILD_DIR]   (default build)
# Env: CHECKS=1000 CAMS=16 WORKERS=4 KEEP=1 (keep the temp dir). Exit 1 if RSS grew > 10 %
# between the middle and the end (a leak grows linearly; allocator warm-up does not).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
# shellcheck source=camd.sh
. "$repo/tests/bench/camd.sh"
agent=$build/venuewatch-agent
CHECKS=${CHECKS:-1000} CAMS=${CAMS:-16} WORKERS=${WORKERS:-4}
for b in "$agent" ffmpeg sqlite3; do
	command -v "$b" >/dev/null || { echo "stream_loop: $b missing" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/vw-bench-loop.XXXXXX)
camd_pid= agent_pid=
cleanup() {
	for p in $agent_pid $camd_pid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

ffmpeg -v error -nostdin -y -f lavfi -t 2 -i testsrc2=s=1280x720:r=25 -pix_fmt yuv420p \
	-c:v libx264 -preset veryfast -bf 0 -g 5 -b:v 2000k -f h264 "$tmp/cam.h264"
camd_serve stream_loop "$tmp/cam.h264" "$CAMS"

{
	printf '[agent]\nsite = loop\norg = loop\nstate_dir = %s/state\nlog_level = warn\n' "$tmp"
	printf 'interval = 1s\nworkers = %s\n\n' "$WORKERS"
	printf '[collector]\nurl = https://127.0.0.1:1\nca = %s/none\ncert = %s/none\n' "$tmp" "$tmp"
	printf 'key = %s/none\n\n[room hall]\nmin_cameras = 1\n\n' "$tmp"
	for i in $(seq 1 "$CAMS"); do
		printf '[camera cam%d]\nroom = hall\nurl = rtsp://127.0.0.1:%s/cam%d\nwindow = 200ms\n\n' \
			"$i" "$port" "$i"
	done
} >"$tmp/agent.ini"
"$agent" -c "$tmp/agent.ini" >"$tmp/agent.out" 2>"$tmp/agent.err" &
agent_pid=$!

checks() {
	sqlite3 -readonly "file:$tmp/state/outbox.db?mode=ro" \
		"SELECT count(*) FROM outbox WHERE body LIKE '%\"kind\":\"stream\"%'" 2>/dev/null || echo 0
}
rss() { awk '/^VmRSS/ {print $2}' "/proc/$agent_pid/status"; }
: >"$tmp/samples"
start=$(date +%s)
deadline=$((start + CHECKS / 2 + 300)) # >= 2 checks/s on any machine this runs on
n=0
while :; do
	kill -0 "$agent_pid" 2>/dev/null || { echo "stream_loop: agent exited" >&2; cat "$tmp/agent.err" >&2; exit 1; }
	n=$(checks)
	echo "$(($(date +%s) - start)) $n $(rss)" >>"$tmp/samples"
	[ "$n" -ge "$CHECKS" ] && break
	[ "$(date +%s)" -lt "$deadline" ] || { echo "stream_loop: only $n checks by the deadline" >&2; exit 1; }
	sleep 2 # sampling period, not synchronisation
done
ok=$(sqlite3 -readonly "file:$tmp/state/outbox.db?mode=ro" \
	"SELECT count(*) FROM outbox WHERE body LIKE '%\"kind\":\"stream\"%' AND body LIKE '%\"status\":\"ok\"%'")
# start: the first sample with a full round of checks behind it; middle: the sample nearest
# CHECKS/2; end: the last.
awk -v want="$CHECKS" -v cams="$CAMS" -v ok="$ok" '
	{ t[NR] = $1; c[NR] = $2; r[NR] = $3 }
	END {
		s = 1; while (s < NR && c[s] < cams) s++
		m = s; for (i = s; i <= NR; i++) if (c[i] <= want / 2) m = i
		printf "checks=%d ok=%d seconds=%d cameras=%d\n", c[NR], ok, t[NR], cams
		printf "rss_kib start=%d (after %d checks) middle=%d (after %d) end=%d (after %d)\n",
			r[s], c[s], r[m], c[m], r[NR], c[NR]
		printf "growth start->end=%.1f%% middle->end=%.1f%%\n",
			(r[NR] - r[s]) * 100 / r[s], (r[NR] - r[m]) * 100 / r[m]
		exit (r[NR] - r[m]) * 100 / r[m] > 10
	}' "$tmp/samples"
