#!/usr/bin/env bash
# store_pg.sh: the PostgreSQL store's ingest against its ceiling, in one run (issue 13).
#
#   bash tests/bench/store_pg.sh BUILD_DIR [ROWS] [BATCH] [INFLIGHT]
#
# Beside a throw-away PostgreSQL 15 (tests/tools/pg.sh: same machine, unix socket, fsync
# on), bench_store writes ROWS results (default 200000) twice into the same schema:
#   raw    the rows alone, by the backend's own COPY, 500 per transaction (the ceiling)
#   group  the store's writer thread and group commit, INFLIGHT agents (default 64) with a
#          BATCH-row batch (default 100) always queued; dedup under the agent row lock,
#          latest, counts, ack after COMMIT (durability full)
# then the same two on SQLite for comparison, and prints each ratio group/raw.
set -euo pipefail
BUILD=${1:?usage: store_pg.sh BUILD_DIR [ROWS] [BATCH] [INFLIGHT]}
ROWS=${2:-200000} BATCH=${3:-100} INFLIGHT=${4:-64}
build=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$HERE/../.." && pwd)
[[ -f $build/libvwserver.a ]] || { echo "store_pg: build $build first" >&2; exit 2; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

dir=$(mktemp -d /tmp/vw-bench-store-XXXXXX)
trap 'rm -rf "$dir"' EXIT
# Built here against the build's libraries, as backlog_drain.sh builds it.
libs=$(pkg-config --libs libuv libcurl openssl sqlite3 libpq libcjson inih libavformat libavcodec \
	libavfilter libavutil zlib)
BENCH=$dir/bench_store
cc -O2 -D_GNU_SOURCE -I"$repo/server/store" -I"$repo/common" $(pkg-config --cflags libpq) -o "$BENCH" \
	"$repo/tests/bench/bench_store.c" "$build/libvwserver.a" "$build/libvwcommon.a" $libs \
	-lhttp_parser -lm -lpthread
export BENCH BATCH ROWS INFLIGHT dir
bash "$HERE/../tools/pg.sh" bash -c '
	set -euo pipefail
	psql "$VW_PG_DSN dbname=postgres" -XAqc "CREATE DATABASE vw_bench"
	export BENCH_PG_DSN="$VW_PG_DSN dbname=vw_bench"
	raw=$("$BENCH" raw "$dir" "$ROWS" | sed -n "s/.*rows_per_s=\([0-9]*\).*/\1/p")
	group=$("$BENCH" group "$dir" "$ROWS" "$BATCH" "$INFLIGHT" full | sed -n "s/.*rows_per_s=\([0-9]*\).*/\1/p")
	echo "postgresql raw_rows_per_s=$raw group_rows_per_s=$group ratio=$(awk -v a=$group -v b=$raw "BEGIN { printf \"%.2f\", a / b }")"
'
raw=$("$BENCH" raw "$dir" "$ROWS" | sed -n 's/.*rows_per_s=\([0-9]*\).*/\1/p')
group=$("$BENCH" group "$dir" "$ROWS" "$BATCH" "$INFLIGHT" full | sed -n 's/.*rows_per_s=\([0-9]*\).*/\1/p')
echo "sqlite raw_rows_per_s=$raw group_rows_per_s=$group ratio=$(ratio "$group" "$raw")"
