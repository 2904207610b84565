#!/usr/bin/env bash
# One full agent cycle over N cameras of 1080p H.264 against ffprobe on the same streams.
#   1. the ffmpeg CLI encodes 4 s of 1080p25 H.264 once (4 Mbit/s CBR, a keyframe a second);
#   2. camd serves it at N mounts from that one file (no encoding per client, so camd is not
#      the bottleneck);
#   3. `venuewatch-agent --once` checks every camera (open, 2 s window, 3 keyframes decoded and
#      analysed), under /usr/bin/time -v;
#   4. `ffprobe` runs once per camera on the same streams, PAR at a time (as many as the agent's
#      workers), all under one /usr/bin/time -v.
# Prints CPU seconds per camera, wall time and peak RSS of both, and the ratios against the
# targets: agent CPU/camera <= 0.5x ffprobe's; a cycle <= 5% of one core at 60 s cadence;
# peak RSS <= 150 MiB.
# Usage: tests/bench/agent_cycle.sh [BUILD_DIR]   (default build; a Release build)
# Env: CAMS=64 WORKERS= (the agent's default when empty) PAR=WORKERS or 4, KEEP=1 keeps tmp.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
# shellcheck source=camd.sh
. "$repo/tests/bench/camd.sh"
agent=$build/venuewatch-agent
CAMS=${CAMS:-64}
WORKERS=${WORKERS:-}
PAR=${PAR:-${WORKERS:-4}}
for b in "$agent" /usr/bin/time ffmpeg ffprobe; do
	command -v "$b" >/dev/null || { echo "agent_cycle: $b missing" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/vw-bench-cycle.XXXXXX)
camd_pid=
cleanup() {
	[ -n "$camd_pid" ] && kill "$camd_pid" 2>/dev/null && wait "$camd_pid" 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# 1. The stream, once.
camd_stream_1080p "$tmp/cam1080.h264"

# 2. N mounts of it.
camd_serve agent_cycle "$tmp/cam1080.h264" "$CAMS"
# Warm the encoder-less pipeline (its file reader starts with the first client), as a
# running camera would be: neither side pays for camd's start.
ffprobe -v error -rtsp_transport tcp "rtsp://127.0.0.1:$port/cam1" >/dev/null 2>&1 || true

# 3. One agent cycle. The collector is a closed port: --once does not upload, and the network
# probe's cost is part of a cycle anyway.
{
	printf '[agent]\nsite = bench\norg = bench\nstate_dir = %s/state\nlog_level = warn\n' "$tmp"
	[ -n "$WORKERS" ] && printf 'workers = %s\n' "$WORKERS"
	printf '\n[collector]\nurl = https://127.0.0.1:1\nca = %s/none\ncert = %s/none\n' "$tmp" "$tmp"
	printf 'key = %s/none\n\n[room hall]\nmin_cameras = 2\n\n' "$tmp"
	for i in $(seq 1 "$CAMS"); do
		printf '[camera cam%d]\nroom = hall\nurl = rtsp://127.0.0.1:%s/cam%d\n\n' "$i" "$port" "$i"
	done
} >"$tmp/agent.ini"
/usr/bin/time -v -o "$tmp/agent.time" env ${AGENT_ENV:-} "$agent" -c "$tmp/agent.ini" --once >"$tmp/agent.out" \
	2>"$tmp/agent.err"
ok=$(grep -c '"kind":"stream","target":"cam[0-9]*","status":"ok"' "$tmp/agent.out" || true)

# 4. ffprobe once per camera, PAR at a time.
seq 1 "$CAMS" | /usr/bin/time -v -o "$tmp/ffprobe.time" xargs -P "$PAR" -I{} \
	ffprobe -v error -rtsp_transport tcp -timeout 10000000 -show_streams -select_streams v \
	"rtsp://127.0.0.1:$port/cam{}" >"$tmp/ffprobe.out" 2>"$tmp/ffprobe.err"
probed=$(grep -c '^codec_name=h264' "$tmp/ffprobe.out" || true)

field() { sed -n "s/^[[:space:]]*$2: //p" "$1"; }
wall() { field "$1" 'Elapsed (wall clock) time (h:mm:ss or m:ss)' |
	awk -F: '{s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s}'; }
cpu() { echo "$(field "$1" 'User time (seconds)') $(field "$1" 'System time (seconds)')" |
	awk '{print $1 + $2}'; }
a_cpu=$(cpu "$tmp/agent.time") f_cpu=$(cpu "$tmp/ffprobe.time")
a_wall=$(wall "$tmp/agent.time") f_wall=$(wall "$tmp/ffprobe.time")
a_rss=$(field "$tmp/agent.time" 'Maximum resident set size (kbytes)')
f_rss=$(field "$tmp/ffprobe.time" 'Maximum resident set size (kbytes)')

echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
	"$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); $(date -u +%FT%TZ)"
echo "streams: $CAMS x 1080p25 H.264 4 Mbit/s from one file (camd); agent ok=$ok/$CAMS," \
	"ffprobe h264=$probed/$CAMS; workers=${WORKERS:-default} ffprobe_parallel=$PAR"
awk -v n="$CAMS" -v ac="$a_cpu" -v fc="$f_cpu" -v aw="$a_wall" -v fw="$f_wall" \
	-v ar="$a_rss" -v fr="$f_rss" 'BEGIN {
	printf "agent   cpu_s=%.2f cpu_s_per_camera=%.4f wall_s=%.1f peak_rss_mib=%.1f\n",
		ac, ac / n, aw, ar / 1024
	printf "ffprobe cpu_s=%.2f cpu_s_per_camera=%.4f wall_s=%.1f peak_rss_mib=%.1f (one process)\n",
		fc, fc / n, fw, fr / 1024
	printf "ratio   cpu_per_camera agent/ffprobe=%.2f (target <= 0.50)\n", (ac / n) / (fc / n)
	printf "ratio   wall agent/ffprobe=%.2f\n", aw / fw
	printf "cycle   one_core_pct_at_60s=%.2f (target <= 5)\n", ac / 60 * 100
	printf "rss     agent_peak_mib=%.1f (target <= 150)\n", ar / 1024
}'
[ "$ok" = "$CAMS" ] || { echo "agent_cycle: only $ok of $CAMS cameras ok:" >&2;
	grep -v '"status":"ok"' "$tmp/agent.out" | grep '"stream"' | head -3 >&2; exit 1; }
