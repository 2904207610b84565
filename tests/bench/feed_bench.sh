#!/usr/bin/env bash
# The feed's read figures over a synthetic province (issue 16, docs/BENCHMARKS.md "Feed"):
# generates it once into DIR with bench_feed (kept; delete DIR to regenerate), starts a real
# server on it (TLS on loopback, a port of its choosing), makes a province and a city token
# with the server's own CLI and runs feed_http.py: /healthz as the in-run floor, the sites
# list (province, city), one site, and history pages of a detailed venue. The server's RSS
# is printed before and after.
# Usage: tests/bench/feed_bench.sh [BUILD_DIR]
# Env: DIR=/var/tmp/vw-feed-bench VENUES=3000 CAMERAS=40 DAYS=7 DETAILED=10 STEP_S=14400
#      DETAIL_STEP_S=120 REPS=200 FRESH=1 (generate again even if DIR holds a province)
#      NICE=-10 (run the server and the client at that nice level: on a machine shared with
#      other work, an approximation of a collector that has its cores to itself)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
server_bin=$build/venuewatch-server
gen=$build/tests/bench_feed
for b in "$server_bin" "$gen"; do
	[ -x "$b" ] || { echo "feed_bench: $b missing (cmake --build $build)" >&2; exit 2; }
done
DIR=${DIR:-/var/tmp/vw-feed-bench} VENUES=${VENUES:-3000} CAMERAS=${CAMERAS:-40}
DAYS=${DAYS:-7} DETAILED=${DETAILED:-10} STEP_S=${STEP_S:-14400}
DETAIL_STEP_S=${DETAIL_STEP_S:-120} REPS=${REPS:-200}
echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
	"$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
	"load $(cut -d' ' -f1-3 /proc/loadavg)"
[ "${FRESH:-0}" = 1 ] && rm -rf "$DIR"
mkdir -p "$DIR"
stamp="$DIR/generated-$VENUES-$CAMERAS-$DAYS-$DETAILED-$STEP_S-$DETAIL_STEP_S"
if [ ! -e "$stamp" ]; then
	rm -rf "$DIR/state" "$DIR"/generated-*
	"$gen" gen "$DIR/state" "$VENUES" "$CAMERAS" "$DAYS" "$DETAILED" "$STEP_S" \
		"$DETAIL_STEP_S" 2>/dev/null
	touch "$stamp"
fi
echo "db_bytes=$(stat -c %s "$DIR/state/venuewatch.db")"

conf=$DIR/server.ini
cat >"$conf" <<EOF
[server]
state_dir = $DIR/state
listen = 127.0.0.1:0
log_level = info
EOF
[ -e "$DIR/state/pki/ca.crt" ] || "$server_bin" -c "$conf" ca init >/dev/null
province=$("$server_bin" -c "$conf" token create --role province --name "feed bench")
city=$("$server_bin" -c "$conf" token create --role city --city city-1 --name "feed bench")

server_pid=
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT
nice -n "${NICE:-0}" "$server_bin" -c "$conf" 2>"$DIR/server.log" &
server_pid=$!
port=
for _ in $(seq 1 300); do
	port=$(sed -n 's/.*event=listening.* port=\([0-9]*\).*/\1/p' "$DIR/server.log")
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { echo "feed_bench: server did not start" >&2; cat "$DIR/server.log" >&2; exit 1; }
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status"; }
echo "server_rss_start_mib=$(rss)"
nice -n "${NICE:-0}" /usr/bin/python3 "$repo/tests/bench/feed_http.py" --port "$port" --ca "$DIR/state/pki/ca.crt" \
	--province "$province" --city "$city" --site site-0001 --reps "$REPS" \
	--server-pid "$server_pid"
echo "server_rss_end_mib=$(rss) load after: $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E 'level=(warn|error)' "$DIR/server.log" | head -5 || true
