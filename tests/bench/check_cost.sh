#!/usr/bin/env bash
# CPU per stream check (issue 15 part 1: what the VQD luma pass and the chroma statistics cost),
# against ffprobe on the same streams in the same run.
#   1. camd serves one pre-encoded 1080p25 H.264 file (camd.sh: 4 Mbit/s CBR, a keyframe a
#      second) at CAMS mounts;
#   2. each agent given runs `--once` over the CAMS cameras, ROUNDS times, the agents taking
#      turns round by round (so a busy moment of the shared machine falls on all of them); its
#      user+sys CPU from /usr/bin/time, divided by the stream verdicts it printed;
#   3. ffprobe (-show_streams) runs once per camera per round, one at a time: CPU per probe.
# Usage: tests/bench/check_cost.sh AGENT [AGENT...]   (Release builds; the first is "ours", the
# others baselines, e.g. a build of main before the merge and one with the pass compiled out)
# Env: CAMS=8 ROUNDS=10, KEEP=1 keeps tmp.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=camd.sh
. "$repo/tests/bench/camd.sh"
CAMS=${CAMS:-8}
ROUNDS=${ROUNDS:-10}
(($# >= 1)) || { echo "usage: $0 AGENT [AGENT...]" >&2; exit 2; }
for b in "$@" /usr/bin/time ffmpeg ffprobe; do
	command -v "$b" >/dev/null || { echo "check_cost: $b missing" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/vw-bench-checkcost.XXXXXX)
camd_pid=
cleanup() {
	[ -n "$camd_pid" ] && kill "$camd_pid" 2>/dev/null && wait "$camd_pid" 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

camd_stream_1080p "$tmp/cam1080.h264"
camd_serve check_cost "$tmp/cam1080.h264" "$CAMS"
ffprobe -v error -rtsp_transport tcp "rtsp://127.0.0.1:$port/cam1" >/dev/null 2>&1 || true

conf() { # conf N: agent N's config (its own state dir)
	printf '[agent]\nsite = bench\norg = bench\nstate_dir = %s/state%d\nlog_level = warn\n\n' \
		"$tmp" "$1"
	printf '[collector]\nurl = https://127.0.0.1:1\nca = %s/none\ncert = %s/none\n' "$tmp" "$tmp"
	printf 'key = %s/none\n\n[room hall]\nmin_cameras = 1\n\n' "$tmp"
	for i in $(seq 1 "$CAMS"); do
		printf '[camera cam%d]\nroom = hall\nurl = rtsp://127.0.0.1:%s/cam%d\n\n' "$i" "$port" "$i"
	done
}
n=0
for a in "$@"; do
	n=$((n + 1))
	conf "$n" >"$tmp/agent$n.ini"
	: >"$tmp/agent$n.cpu"
	: >"$tmp/agent$n.checks"
done
: >"$tmp/ffprobe.cpu"
for r in $(seq 1 "$ROUNDS"); do
	n=0
	for a in "$@"; do
		n=$((n + 1))
		/usr/bin/time -f '%U %S' -o "$tmp/t" "$a" -c "$tmp/agent$n.ini" --once \
			>"$tmp/out" 2>"$tmp/agent$n.err" || true
		cat "$tmp/t" >>"$tmp/agent$n.cpu"
		grep -c '"kind":"stream"' "$tmp/out" >>"$tmp/agent$n.checks" || true
	done
	for i in $(seq 1 "$CAMS"); do
		/usr/bin/time -f '%U %S' -o "$tmp/t" ffprobe -v error -rtsp_transport tcp \
			-timeout 10000000 -show_streams -select_streams v "rtsp://127.0.0.1:$port/cam$i" \
			>/dev/null 2>&1 || true
		cat "$tmp/t" >>"$tmp/ffprobe.cpu"
	done
	echo "round $r/$ROUNDS done" >&2
done

sum() { awk '{s += $1 + $2} END {printf "%.3f", s}' "$1"; }
f_cpu=$(sum "$tmp/ffprobe.cpu")
f_n=$(wc -l <"$tmp/ffprobe.cpu")
f_per=$(awk -v c="$f_cpu" -v n="$f_n" 'BEGIN {printf "%.4f", c / n}')
echo "machine: $(nproc) cores, $(uname -r); $(date -u +%FT%TZ); CAMS=$CAMS ROUNDS=$ROUNDS"
echo "ffprobe  probes=$f_n cpu=${f_cpu}s per_probe=${f_per}s"
n=0
first=
for a in "$@"; do
	n=$((n + 1))
	cpu=$(sum "$tmp/agent$n.cpu")
	checks=$(awk '{s += $1} END {print s + 0}' "$tmp/agent$n.checks")
	per=$(awk -v c="$cpu" -v n="$checks" 'BEGIN {printf "%.4f", n ? c / n : 0}')
	[ -n "$first" ] || first=$per
	awk -v a="$a" -v c="$cpu" -v k="$checks" -v p="$per" -v f="$f_per" -v o="$first" 'BEGIN {
		printf "agent %s checks=%d cpu=%ss per_check=%ss /ffprobe=%.2f first/this=%.2f\n",
		       a, k, c, p, p / f, p ? o / p : 0 }'
done
