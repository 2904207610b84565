#!/usr/bin/env bash
# What picture evidence (issue 16 C) costs the agent: one `--once` cycle over N cameras of 1080p
# H.264 with thumbnails off and on (every camera's first result carries one: the worst case),
# RUNS times each, interleaved, under /usr/bin/time; then one cycle at log_level=debug for each
# thumbnail's own encode CPU (event=thumbnail cpu_us=, the worker thread's CPU clock), size and
# quantiser. Prints the agent's CPU per camera check both ways and the encode figures.
# Usage: tests/bench/thumb_cost.sh [BUILD_DIR]   (default build; a Release build)
# Env: CAMS=16 RUNS=5 KEEP=1 keeps tmp.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
# shellcheck source=camd.sh
. "$repo/tests/bench/camd.sh"
agent=$build/venuewatch-agent
CAMS=${CAMS:-16}
RUNS=${RUNS:-5}
for b in "$agent" /usr/bin/time ffmpeg; do
	command -v "$b" >/dev/null || { echo "thumb_cost: $b missing" >&2; exit 2; }
done
tmp=$(mktemp -d /tmp/vw-bench-thumb.XXXXXX)
camd_pid=
cleanup() {
	[ -n "$camd_pid" ] && kill "$camd_pid" 2>/dev/null && wait "$camd_pid" 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

ffmpeg -v error -nostdin -y -f lavfi -t 4 -i testsrc2=s=1920x1080:r=25 -pix_fmt yuv420p \
	-c:v libx264 -preset veryfast -bf 0 -g 25 -b:v 4000k -f h264 "$tmp/cam1080.h264"
camd_serve thumb_cost "$tmp/cam1080.h264" "$CAMS"

config() { # config THUMBNAIL_INTERVAL LOG_LEVEL
	printf '[agent]\nsite = bench\norg = bench\nstate_dir = %s/state-%s\nlog_level = %s\n' \
		"$tmp" "$1" "$2"
	printf 'thumbnail_interval = %s\n' "$1"
	printf '\n[collector]\nurl = https://127.0.0.1:1\nca = %s/none\ncert = %s/none\n' "$tmp" "$tmp"
	printf 'key = %s/none\n\n[room hall]\nmin_cameras = 2\n\n' "$tmp"
	for i in $(seq 1 "$CAMS"); do
		printf '[camera cam%d]\nroom = hall\nurl = rtsp://127.0.0.1:%s/cam%d\n\n' "$i" "$port" "$i"
	done
}
config off warn >"$tmp/off.ini"
config 30m warn >"$tmp/on.ini"
config 30m debug >"$tmp/debug.ini"

field() { sed -n "s/^[[:space:]]*$2: //p" "$1"; }
cpu() { echo "$(field "$1" 'User time (seconds)') $(field "$1" 'System time (seconds)')" |
	awk '{print $1 + $2}'; }
# A fresh state dir each run, so every camera's first result is due a thumbnail.
for r in $(seq 1 "$RUNS"); do
	for mode in off on; do
		rm -rf "$tmp/state-off" "$tmp/state-30m"
		/usr/bin/time -v -o "$tmp/$mode.$r.time" "$agent" -c "$tmp/$mode.ini" --once \
			>"$tmp/$mode.$r.out" 2>"$tmp/$mode.$r.err"
		ok=$(grep -c '"kind":"stream","target":"cam[0-9]*","status":"ok"' "$tmp/$mode.$r.out" || true)
		[ "$ok" = "$CAMS" ] || { echo "thumb_cost: run $r $mode: only $ok of $CAMS ok" >&2; exit 1; }
		echo "$mode $(cpu "$tmp/$mode.$r.time")" >>"$tmp/cpu"
	done
done
rm -rf "$tmp/state-30m"
"$agent" -c "$tmp/debug.ini" --once >"$tmp/debug.out" 2>"$tmp/debug.err"
grep 'event=thumbnail ' "$tmp/debug.err" | sed 's/.* bytes=\([0-9]*\) width=\([0-9]*\) height=\([0-9]*\) qscale=\([0-9]*\) attempts=\([0-9]*\) cpu_us=\([0-9]*\).*/\1 \2 \3 \4 \5 \6/' \
	>"$tmp/thumbs"

echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1);" \
	"$(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cameras: $CAMS x 1080p25 H.264 (camd, one file); runs: $RUNS each, interleaved"
awk -v n="$CAMS" '{s[$1] += $2; c[$1]++; v[$1] = v[$1] sprintf(" %.2f", $2)}
	END {
		for (m in s) printf "thumbnails=%-3s agent cpu_s per cycle:%s  mean per camera check %.4f s\n",
			m, v[m], s[m] / c[m] / n
		printf "difference per camera check (on - off): %+.4f s (%+.1f%%)\n",
			(s["on"] / c["on"] - s["off"] / c["off"]) / n,
			(s["on"] / c["on"] - s["off"] / c["off"]) / (s["off"] / c["off"]) * 100
	}' "$tmp/cpu"
sort -n -k6 "$tmp/thumbs" | awk '{b += $1; us[NR] = $6; q[$4]++; w = $2; h = $3}
	END {
		if (!NR) { print "no event=thumbnail lines"; exit 1 }
		printf "encode (one cycle at debug, %d thumbnails, %dx%d): cpu_us median %d min %d max %d;" \
			" bytes mean %.0f\n", NR, w, h, us[int((NR + 1) / 2)], us[1], us[NR], b / NR
	}'
