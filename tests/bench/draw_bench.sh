#!/usr/bin/env bash
# The draw core on a synthetic province (issue 12's figures, docs/BENCHMARKS.md "Draw"):
# TARGETS targets in 16 cities and three risk grades (30 % / 10 % / 2 %), INSPECTORS inspectors
# with TIES recusal ties each, one session per target in the window. Generates the manifest,
# private part and sessions once into DIR (commit), then times execute and verify (with and
# without the private part), each in its own process under /usr/bin/time -v for the peak RSS.
# The core call's own time is printed by bench_draw (reading the files excluded).
# Usage: tests/bench/draw_bench.sh [BUILD_DIR]
# Env: DIR=/var/tmp/vw-draw-bench TARGETS=100000 INSPECTORS=5000 TIES=3
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
bin=$build/tests/bench_draw
[ -x "$bin" ] || { echo "draw_bench: $bin missing (cmake --build $build)" >&2; exit 2; }
DIR=${DIR:-/var/tmp/vw-draw-bench} TARGETS=${TARGETS:-100000} INSPECTORS=${INSPECTORS:-5000}
TIES=${TIES:-3}
echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
	"$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
	"load $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$DIR"
run() { # step args...: the step's own line, then wall and peak RSS of the whole process
	local out
	out=$(/usr/bin/time -v -o "$DIR/time.txt" "$bin" "$@" 2>/dev/null) || { echo "$1 failed" >&2; exit 1; }
	printf '%s: %s ' "$1" "$(echo "$out" | tr '\n' ' ')"
	awk -F': ' '/Maximum resident set size/ {printf "peak_rss_mib=%.0f ", $2/1024}
		/User time/ {u=$2} /System time/ {s=$2}
		/Elapsed \(wall clock\)/ {w=$2} END {printf "process_cpu_s=%.2f process_wall=%s", u+s, w}' \
		"$DIR/time.txt"
	echo
}
run gen "$DIR" "$TARGETS" "$INSPECTORS" "$TIES"
run execute "$DIR"
run verify "$DIR"
run verify "$DIR" --public
run json "$DIR"
echo "document_bytes=$(stat -c %s "$DIR/document.json") load after: $(cut -d' ' -f1-3 /proc/loadavg)"
