#!/usr/bin/env bash
# Backlog drain (issue 4): a venue offline for about a day reconnects with COUNT results in its
# outbox; how long until the collector holds them all, on loopback, real TLS, real SQLite?
#
#   tests/bench/backlog_drain.sh [BUILD_DIR]      default: build (use a Release build)
#   Env: COUNT=200000  KEEP=1 (keep the temp dir)
#
# 1. fill_outbox (a test fixture linking vwagent) writes COUNT stream results into the agent's
#    outbox.db with the agent's own outbox_append: what a day of 15 s checks of ~35 cameras
#    leaves behind. The agent itself then drains it: peek, gzip, POST, ack, delete.
# 2. the collector starts, then the agent; the clock runs from the agent's start until the
#    collector's high-water mark for the site reaches COUNT.
# 3. baseline in the same run: bench_store raw inserts the same rows into the same results
#    table through the store's own insert statement (500 per transaction, durability full),
#    no TLS, HTTP, JSON or outbox. The ratio says how close the whole path comes to the disk's own insert rate.
# Prints key=value lines; exits non-zero if the drain misses its 60 s target.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
COUNT=${COUNT:-200000}
agent=$build/venuewatch-agent server=$build/venuewatch-server
for b in "$agent" "$server" "$build/libvwagent.a" "$build/libvwserver.a"; do
	[ -e "$b" ] || { echo "backlog_drain: $b missing (cmake --build $build)" >&2; exit 2; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vw-backlog.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then echo "kept=$tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# The fixtures are built here, against the build's own libraries, so the shipped tree has no
# bench targets to keep compiling.
libs=$(pkg-config --libs libuv libcurl openssl sqlite3 libpq libcjson inih libavformat libavcodec \
	libavfilter libavutil zlib)
cc -O2 -D_GNU_SOURCE -I"$repo/agent" -I"$repo/common" -o "$tmp/fill_outbox" \
	"$repo/tests/bench/fill_outbox.c" "$build/libvwagent.a" "$build/libvwcommon.a" $libs \
	-lhttp_parser -lm -lpthread
cc -O2 -D_GNU_SOURCE -I"$repo/server/store" -I"$repo/common" $(pkg-config --cflags libpq) -o "$tmp/bench_store" \
	"$repo/tests/bench/bench_store.c" "$build/libvwserver.a" "$build/libvwcommon.a" $libs \
	-lhttp_parser -lm -lpthread

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/server.ini" <<INI
[server]
listen = 127.0.0.1:$port
state_dir = $tmp/srv
log_level = info
INI
"$server" -c "$tmp/server.ini" ca init >/dev/null 2>&1
"$server" -c "$tmp/server.ini" ca issue --site site-bench --org org-bench --out "$tmp/pki" \
	>/dev/null 2>&1
mkdir -p "$tmp/agent"
cat >"$tmp/agent.ini" <<INI
[agent]
site = site-bench
org = org-bench
state_dir = $tmp/agent
log_level = warn
[collector]
url = https://127.0.0.1:$port
ca = $tmp/pki/ca.crt
cert = $tmp/pki/agent.crt
key = $tmp/pki/agent.key
[room hall-1]
min_cameras = 1
[camera front]
room = hall-1
url = rtsp://127.0.0.1:9/offline
INI

fill=$("$tmp/fill_outbox" "$tmp/agent" "$COUNT" 2>/dev/null)
echo "backlog $fill"
"$server" -c "$tmp/server.ini" 2>"$tmp/server.err" &
pids+=($!)
python3 - "$tmp/server.err" <<'PY'
import sys, time
deadline = time.monotonic() + 20
while "event=listening" not in open(sys.argv[1]).read():
    if time.monotonic() > deadline:
        sys.exit("backlog_drain: server did not start")
    time.sleep(0.05)
PY
t0=$(date +%s.%N)
"$agent" -c "$tmp/agent.ini" 2>"$tmp/agent.err" &
pids+=($!)
python3 - "$tmp/srv/venuewatch.db" "$COUNT" "$t0" <<'PY'
import sqlite3, sys, time
db, count, t0 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + 600
while True:
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        row = c.execute("SELECT high_seq FROM agents WHERE site='site-bench'").fetchone()
        c.close()
        if row and row[0] >= count:
            break
    except sqlite3.Error:
        pass
    if time.monotonic() > deadline:
        sys.exit("backlog_drain: not drained within 600 s")
    time.sleep(0.05)
s = time.time() - t0
print(f"drain results={count} seconds={s:.2f} results_per_s={count / s:.0f} target_s=60")
with open(sys.argv[1] + ".drain", "w") as f:
    f.write(f"{s:.3f} {count / s:.0f}\n")
PY
read -r drain_s drain_rate <"$tmp/srv/venuewatch.db.drain"
base=$("$tmp/bench_store" raw "$tmp" "$COUNT" 2>/dev/null)
echo "baseline $base"
base_rate=${base##*rows_per_s=}
base_rate=${base_rate%% *}
python3 -c "print(f'ratio drain_over_raw_sqlite={$drain_rate / $base_rate:.3f}')"
echo "machine nproc=$(nproc) cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\""
python3 -c "import sys; sys.exit(0 if $drain_s <= 60 else 1)"
