#!/usr/bin/env bash
# 1,000 Server-Sent Events subscribers across scopes while ingest runs flat out (issue 16,
# docs/BENCHMARKS.md "Feed"): a CA, agent certificates and people's tokens (the province and
# each of 16 cities) made with the server's own CLI in a temp dir; a real server on loopback;
# tests/bench/sse_bench with SUBS subscribers (token i % 17) and a probe agent posting a
# one-result batch RATE times a second; once every subscriber is connected, tests/bench/
# loadgen posts CONNS x BATCHES x BATCH results as fast as the server takes them (the ingest
# bench's generator); when it is done the subscribers stop and report delivery latency
# (probe batch sent -> its report event read by each subscriber in scope), the committed
# ingest rate per second, and the server's RSS.
# Usage: tests/bench/sse_bench.sh [BUILD_DIR]   (a Release build)
# Env: SUBS=1000 CONNS=100 BATCHES=60 BATCH=500 RATE=20 KEEP=1 (keep the temp dir)
#      FLAP=50 (camera results not ok per 1000: each a status change, so status and problem
#      events on top of the report events; loadgen's default)
#      BASELINE=0 (skip the first phase: the same ingest on a fresh server, no subscriber)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
server_bin=$build/venuewatch-server
loadgen=$build/tests/loadgen
sse=$build/tests/sse_bench
for b in "$server_bin" "$loadgen" "$sse"; do
	[ -x "$b" ] || { echo "sse_bench: $b missing (cmake --build $build)" >&2; exit 2; }
done
SUBS=${SUBS:-1000} CONNS=${CONNS:-100} BATCHES=${BATCHES:-60} BATCH=${BATCH:-500}
RATE=${RATE:-20} FLAP=${FLAP:-50}
tmp=$(mktemp -d /tmp/vw-sse-bench.XXXXXX)
server_pid= sse_pid=
cleanup() {
	[ -n "$sse_pid" ] && kill "$sse_pid" 2>/dev/null && wait "$sse_pid" 2>/dev/null || true
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
	"$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), nofile $(ulimit -n)," \
	"load $(cut -d' ' -f1-3 /proc/loadavg)"
conf=$tmp/server.ini
cat >"$conf" <<EOF
[server]
state_dir = $tmp/state
listen = 127.0.0.1:0
log_level = info
[limits]
idle_timeout = 10m
EOF
"$server_bin" -c "$conf" ca init >/dev/null 2>&1
for i in $(seq 1 "$CONNS"); do
	site=$(printf 'site-%04d' "$i")
	"$server_bin" -c "$conf" ca issue --site "$site" --org "org-$((i % 50))" \
		--city "city-$((i % 16))" --out "$tmp/agents/$site" >/dev/null 2>&1
done
"$server_bin" -c "$conf" ca issue --site probe --org org-0 --city city-0 \
	--out "$tmp/probe" >/dev/null 2>&1
{
	echo "province $("$server_bin" -c "$conf" token create --role province --name sse 2>/dev/null)"
	for c in $(seq 0 15); do
		echo "city-$c $("$server_bin" -c "$conf" token create --role city --city "city-$c" \
			--name sse 2>/dev/null)"
	done
} >"$tmp/tokens"

start_server() {
	rm -rf "$tmp/state/venuewatch.db"*
	"$server_bin" -c "$conf" 2>"$tmp/server.log" &
	server_pid=$!
	port=
	for _ in $(seq 1 100); do
		port=$(sed -n 's/.*event=listening.* port=\([0-9]*\).*/\1/p' "$tmp/server.log")
		[ -n "$port" ] && return 0
		sleep 0.1
	done
	echo "sse_bench: server did not start" >&2
	cat "$tmp/server.log" >&2
	exit 1
}
stop_server() {
	kill -TERM "$server_pid"
	wait "$server_pid" || true
	server_pid=
}
ingest() {
	"$loadgen" ingest --port "$port" --ca "$tmp/state/pki/ca.crt" --certs "$tmp/agents" \
		--conns "$CONNS" --batches "$BATCHES" --batch "$BATCH" --server-pid "$server_pid" \
		--flap-per-mille "$FLAP"
}

rc=0
if [ "${BASELINE:-1}" = 1 ]; then
	# The same load on a fresh server with no subscriber: the in-run baseline.
	start_server
	echo "== baseline: ingest alone"
	ingest | grep -E '^phase=(ingest|server)' || rc=$?
	stop_server
fi
start_server
echo "== $SUBS subscribers + probe, then the same ingest"
"$sse" --port "$port" --ca "$tmp/state/pki/ca.crt" --tokens "$tmp/tokens" --subs "$SUBS" \
	--probe-cert "$tmp/probe/agent.crt" --probe-key "$tmp/probe/agent.key" \
	--probe-site probe --rate "$RATE" --server-pid "$server_pid" >"$tmp/sse.out" &
sse_pid=$!
for _ in $(seq 1 1200); do
	grep -qs '^ready' "$tmp/sse.out" && break
	kill -0 "$sse_pid" 2>/dev/null || { cat "$tmp/sse.out"; exit 1; }
	sleep 0.1
done
grep '^ready' "$tmp/sse.out"
sleep 2 # probe samples without ingest first
ingest | grep -E '^phase=(ingest|server)' || rc=$?
kill -INT "$sse_pid"
wait "$sse_pid" || rc=$?
sse_pid=
grep -v '^ready' "$tmp/sse.out"
echo "server_dropped_streams=$(grep -c 'event=stream_dropped' "$tmp/server.log" || true)"
grep -E 'level=(warn|error)' "$tmp/server.log" | grep -v stream_dropped | head -5 || true
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $rc
