#!/usr/bin/env bash
# Runs one libFuzzer target on its seed corpus for a while:
#   tests/fuzz/run.sh http|ingest|conf [SECONDS]    (default 60; 0 = until stopped)
# The binary is $VW_FUZZ_BIN, else build-fuzz/tests/fuzz_NAME (cmake -DVW_FUZZ=ON with clang).
# New inputs go to $VW_FUZZ_WORK/NAME (default build-fuzz/fuzz-work), never into the seed
# corpus; a crash leaves its input there as crash-* and fails the run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
name=${1:?usage: run.sh http|ingest|conf [seconds]}
secs=${2:-60}
bin=${VW_FUZZ_BIN:-$repo/build-fuzz/tests/fuzz_$name}
work=${VW_FUZZ_WORK:-$repo/build-fuzz/fuzz-work}/$name
seeds=$here/corpus/$name
[ -x "$bin" ] || { echo "run.sh: no fuzzer at $bin (build with -DVW_FUZZ=ON, CC=clang)" >&2; exit 2; }
[ -d "$seeds" ] || { echo "run.sh: no seed corpus $seeds" >&2; exit 2; }
mkdir -p "$work/corpus"
# Leaks are bugs here too; -rss_limit_mb keeps a bomb from taking the machine.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
args=(-rss_limit_mb=2048 -timeout=10 -max_len=65536 -print_final_stats=1
      -artifact_prefix="$work/")
[ "$secs" != 0 ] && args+=(-max_total_time="$secs")
[ -f "$here/$name.dict" ] && args+=(-dict="$here/$name.dict")
exec "$bin" "${args[@]}" "$work/corpus" "$seeds"
