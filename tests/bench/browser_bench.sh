#!/usr/bin/env bash
# The dashboard's province and city views in headless Chromium (issue 16: interactive
# <= 1.5 s after navigation), against a real server serving the built dashboard:
#   1. the province view over the feed bench's province (DIR, made by feed_bench.sh: 3,000
#      venues in 16 cities), logged in with a province token;
#   2. the city view of a city of CITY_VENUES venues: a province of that many venues in one
#      city, generated once into CITY_DIR by bench_feed (a day at a 1 h step: the view reads
#      the latest state only), logged in with that city's token.
#   3. with the province: a batch saying a camera of a venue in session went black, posted
#      with that venue's certificate, timed until the venue page shows it (server to browser).
# Times are browser_bench.mjs's: performance.now() at the first frame showing all the data.
# Usage: tests/bench/browser_bench.sh [BUILD_DIR]
# Env: WEB_DIR=$repo/web (node_modules with playwright-core) WEB_ROOT=BUILD_DIR/web (the built
#      dashboard) DIR=/var/tmp/vw-feed-bench CITY_DIR=/var/tmp/vw-city-bench CITY_VENUES=300
#      REPS=7 CHROMIUM=/usr/bin/chromium
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
server_bin=$build/venuewatch-server
gen=$build/tests/bench_feed
WEB_DIR=${WEB_DIR:-$repo/web} WEB_ROOT=${WEB_ROOT:-$build/web}
DIR=${DIR:-/var/tmp/vw-feed-bench} CITY_DIR=${CITY_DIR:-/var/tmp/vw-city-bench}
CITY_VENUES=${CITY_VENUES:-300} REPS=${REPS:-7} CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
for f in "$server_bin" "$gen" "$WEB_DIR/node_modules/playwright-core/package.json" \
	"$WEB_ROOT/index.html" "$CHROMIUM" "$DIR/state/venuewatch.db"; do
	[ -e "$f" ] || { echo "browser_bench: $f missing (feed_bench.sh makes DIR)" >&2; exit 2; }
done
echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
	"$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
	"load $(cut -d' ' -f1-3 /proc/loadavg), $(node --version), $("$CHROMIUM" --version 2>/dev/null | head -1)"
if [ ! -e "$CITY_DIR/generated-$CITY_VENUES" ]; then
	rm -rf "$CITY_DIR"
	mkdir -p "$CITY_DIR"
	"$gen" gen "$CITY_DIR/state" "$CITY_VENUES" 40 1 0 3600 120 1 2>/dev/null
	touch "$CITY_DIR/generated-$CITY_VENUES"
fi
profile=$(mktemp -d /tmp/vw-browser-bench.XXXXXX)
server_pid=
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
	rm -rf "$profile"
}
trap cleanup EXIT

# run_view DIR ROLE CITY PROVINCE_CITIES CITY_VENUES
run_view() {
	local dir=$1 conf=$1/browser.ini
	cat >"$conf" <<EOF
[server]
state_dir = $dir/state
listen = 127.0.0.1:0
log_level = info
[web]
root = $WEB_ROOT
[limits]
new_epochs_per_day = 1000
EOF
	[ -e "$dir/state/pki/ca.crt" ] || "$server_bin" -c "$conf" ca init >/dev/null 2>&1
	local token
	if [ "$2" = province ]; then
		token=$("$server_bin" -c "$conf" token create --role province --name bench 2>/dev/null)
	else
		token=$("$server_bin" -c "$conf" token create --role city --city "$3" --name bench \
			2>/dev/null)
	fi
	"$server_bin" -c "$conf" 2>"$dir/browser-server.log" &
	server_pid=$!
	local port=
	for _ in $(seq 1 300); do
		port=$(sed -n 's/.*event=listening.* port=\([0-9]*\).*/\1/p' "$dir/browser-server.log")
		[ -n "$port" ] && break
		sleep 0.1
	done
	[ -n "$port" ] || { echo "browser_bench: server did not start" >&2; exit 1; }
	local probe=null
	if [ "$2" = province ]; then
		# the e2e part: site-0001 has a session running now (bench_feed: one venue in ten)
		[ -e "$dir/probe/agent.crt" ] || "$server_bin" -c "$conf" ca issue --site site-0001 \
			--org org-1 --city city-1 --out "$dir/probe" >/dev/null 2>&1
		probe=$(printf '{"site":"site-0001","camera":"cam05","cert":"%s","key":"%s","ca":"%s"}' \
			"$dir/probe/agent.crt" "$dir/probe/agent.key" "$dir/state/pki/ca.crt")
	fi
	VW_BENCH=$(printf '{"base":"https://localhost:%s","web_dir":"%s","chromium":"%s",
		"token":"%s","province_cities":%s,"city":"%s","city_venues":%s,"reps":%s,
		"profile_dir":"%s","probe":%s}' "$port" "$WEB_DIR" "$CHROMIUM" "$token" "$4" "$3" \
		"$5" "$REPS" "$profile" "$probe") node "$repo/tests/bench/browser_bench.mjs"
	kill "$server_pid"
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}
echo "== province: $(sqlite3 -readonly "$DIR/state/venuewatch.db" \
	'SELECT count(DISTINCT site) FROM agents') venues"
run_view "$DIR" province "" 16 0
echo "== city: $CITY_VENUES venues in city-0"
run_view "$CITY_DIR" city city-0 0 "$CITY_VENUES"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
