#!/usr/bin/env bash
# The dashboard's load time (issue 16: "city view with 300 venues and province view
# interactive <= 1.5 s after navigation"), in Debian's headless Chromium against a real server
# on a synthetic province made by bench_feed (16 cities: VENUES=4800 gives 300 per city).
# Prints, per page, the time from navigation until the page shows its data (every city card;
# every venue row of city-1), over REPS loads after one warm-up.
# Usage: tests/bench/web_bench.sh [BUILD_DIR]
# Env: DIR=/var/tmp/vw-web-bench VENUES=4800 CAMERAS=40 DAYS=1 REPS=5 FRESH=1
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
server_bin=$build/venuewatch-server
gen=$build/tests/bench_feed
for b in "$server_bin" "$gen" "$build/web/index.html"; do
	[ -e "$b" ] || { echo "web_bench: $b missing (cmake --build $build)" >&2; exit 2; }
done
DIR=${DIR:-/var/tmp/vw-web-bench} VENUES=${VENUES:-4800} CAMERAS=${CAMERAS:-40}
DAYS=${DAYS:-1} REPS=${REPS:-5}
echo "machine: $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); $(chromium --version 2>/dev/null | head -1)"
[ "${FRESH:-0}" = 1 ] && rm -rf "$DIR"
mkdir -p "$DIR"
stamp="$DIR/generated-$VENUES-$CAMERAS-$DAYS"
if [ ! -e "$stamp" ]; then
	rm -rf "$DIR/state" "$DIR"/generated-*
	"$gen" gen "$DIR/state" "$VENUES" "$CAMERAS" "$DAYS" 1 14400 600 2>/dev/null
	touch "$stamp"
fi
conf=$DIR/server.ini
cat >"$conf" <<CONF
[server]
state_dir = $DIR/state
listen = 127.0.0.1:0
log_level = info
[web]
root = $build/web
CONF
[ -e "$DIR/state/pki/ca.crt" ] || "$server_bin" -c "$conf" ca init >/dev/null
province=$("$server_bin" -c "$conf" token create --role province --name "web bench")
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT
"$server_bin" -c "$conf" 2>"$DIR/server.log" &
server_pid=$!
port=
for _ in $(seq 1 300); do
	port=$(sed -n 's/.*event=listening.* port=\([0-9]*\).*/\1/p' "$DIR/server.log")
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { echo "web_bench: server did not start" >&2; cat "$DIR/server.log" >&2; exit 1; }
VW_BENCH="{\"base\":\"https://127.0.0.1:$port\",\"token\":\"$province\",\"reps\":$REPS,\"city\":\"city-1\",\"web_dir\":\"$repo/web\",\"profile\":\"$DIR\"}" \
	node "$repo/tests/bench/web_bench.mjs"
