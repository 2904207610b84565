#!/usr/bin/env bash
# Sets up a fresh Debian bookworm machine and runs every test: the release build, then the
# ASan+UBSan build, each under ctest (labels: unit, integration), then a short run of each
# libFuzzer target (clang build, label fuzz). Exit status = pass/fail.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --no-build

jobs=$(nproc 2>/dev/null || echo 2)
# The sanitizers must fail the run, not just print: abort on the first report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_suite() {
	local dir=$1
	shift
	echo "== ctest in $dir"
	ctest --test-dir "$dir" --output-on-failure --timeout 600 "$@"
}

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
run_suite build

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVW_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
run_suite build-asan -L 'unit|integration|security|postgres'

# libFuzzer targets (clang only): a short run of each on its seed corpus (ctest label fuzz,
# VW_FUZZ_SECONDS each). Only the fuzz targets are built here; the gcc builds above cover the rest.
if command -v clang >/dev/null; then
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DVW_FUZZ=ON >/dev/null
	cmake --build build-fuzz -j"$jobs" --target fuzzers
	run_suite build-fuzz -L fuzz
else
	echo "== fuzz: skipped (no clang)"
fi
