#!/usr/bin/env bash
# Item 3.6 scores over a synthetic province (issue 11's figures): VENUES venues, YEARS years of
# sessions (two a week each), CAMERAS cameras each. Generates the rollups once into DIR (kept:
# ~4 GB at the defaults; delete it to regenerate), then times through the product's read and
# scoring path (store_score_inputs on a reader thread + score_compute):
#   org_score_3y          one org's three years with every per-target credit (its score page)
#   province_ranking_1y   every org over one year, totals only, scored org by org
# Usage: tests/bench/score_bench.sh [BUILD_DIR]
# Env: DIR=/var/tmp/vw-score-bench VENUES=3000 YEARS=3 CAMERAS=40 REPS=50
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
bin=$build/tests/bench_score
[ -x "$bin" ] || { echo "score_bench: $bin missing (cmake --build $build)" >&2; exit 2; }
DIR=${DIR:-/var/tmp/vw-score-bench} VENUES=${VENUES:-3000} YEARS=${YEARS:-3}
CAMERAS=${CAMERAS:-40} REPS=${REPS:-50}
echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
	"$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
	"load $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$DIR"
stamp="$DIR/generated-$VENUES-$YEARS-$CAMERAS"
if [ ! -e "$stamp" ]; then
	rm -f "$DIR"/venuewatch.db* "$DIR"/generated-*
	start=$(date +%s)
	"$bin" gen "$DIR" "$VENUES" "$YEARS" "$CAMERAS" 2>/dev/null
	echo "gen_seconds=$(($(date +%s) - start)) db_bytes=$(stat -c %s "$DIR/venuewatch.db")"
	touch "$stamp"
fi
"$bin" run "$DIR" "$REPS" 2>/dev/null
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
