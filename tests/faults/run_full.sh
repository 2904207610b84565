#!/bin/sh
# The fault suite's full form (issue 4): 200 agent kills, 50 server kills, and the outage,
# network and disk-full scenarios, against a Release build. Needs root.
#   tests/faults/run_full.sh [BUILD_DIR]        default: build
# Env: VW_FAULTS_SEED=N repeats a run's random kill moments (each run prints its seed).
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
export VW_AGENT="$build/venuewatch-agent" VW_SERVER="$build/venuewatch-server" VW_FAULTS_FULL=1
exec /usr/bin/python3 "$repo/tests/faults/test_faults.py" -v
