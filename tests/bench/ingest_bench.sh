#!/usr/bin/env bash
# Ingest at scale: sets up a CA, one agent certificate per site and a collector in a temp dir,
# then runs tests/bench/loadgen against it:
#   1. ingest: CONNS mutual-TLS keep-alive agents posting gzip'd batches (ack after commit),
#      then the ceiling: the same rows through the store's own write path (no network, TLS,
#      HTTP or JSON), and the ratio;
#   2. idle:   IDLE_CONNS TLS connections held open, /healthz latency measured meanwhile
#      (a fresh server, so its RSS is the idle connections' cost); the RSS before the first
#      connection is taken too, and (held - start) / IDLE_CONNS printed as bytes_per_idle_conn.
# Usage: tests/bench/ingest_bench.sh [BUILD_DIR]   (default build; a Release build)
# Env: CONNS=1000 BATCHES=4 BATCH=500 IDLE_CONNS=10000 HOLD=10 KEEP=1 (keep the temp dir)
#      MODES="ingest idle" (run only some phases).
# Prints loadgen's key=value lines; the exit status is loadgen's (0 = no errors).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
server_bin=$build/venuewatch-server
loadgen=$build/tests/loadgen
for b in "$server_bin" "$loadgen"; do
	[ -x "$b" ] || { echo "ingest_bench: $b missing (cmake --build $build)" >&2; exit 2; }
done
CONNS=${CONNS:-1000} BATCHES=${BATCHES:-4} BATCH=${BATCH:-500}
IDLE_CONNS=${IDLE_CONNS:-10000} HOLD=${HOLD:-10} MODES=${MODES:-ingest idle}

tmp=$(mktemp -d /tmp/vw-bench.XXXXXX)
server_pid=
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" # 10,000 idle connections need as many descriptors

echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
	"$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), nofile $(ulimit -n)," \
	"load $(cut -d' ' -f1-3 /proc/loadavg)"

# The server config: idle keep-alive longer than the hold; info logs (requests are logged
# at debug, so there is no line per request to slow it down).
conf=$tmp/server.ini
cat >"$conf" <<EOF
[server]
state_dir = $tmp/state
listen = 127.0.0.1:0
log_level = info
[limits]
idle_timeout = 10m
EOF
"$server_bin" -c "$conf" ca init >/dev/null
need=$((CONNS > 1000 ? CONNS : 1000))
t0=$(date +%s)
for i in $(seq 1 "$need"); do
	site=$(printf 'site-%04d' "$i")
	"$server_bin" -c "$conf" ca issue --site "$site" --org "org-$((i % 50))" \
		--city "city-$((i % 16))" --out "$tmp/agents/$site" >/dev/null 2>&1
done
echo "setup: $need agent certificates in $(($(date +%s) - t0)) s"

start_server() {
	rm -rf "$tmp/state/venuewatch.db"*
	"$server_bin" -c "$conf" 2>"$tmp/server.log" &
	server_pid=$!
	# The port is logged once listening (port 0 = any free port).
	for _ in $(seq 1 100); do
		port=$(sed -n 's/.*event=listening.* port=\([0-9]*\).*/\1/p' "$tmp/server.log")
		[ -n "$port" ] && return 0
		sleep 0.1
	done
	echo "ingest_bench: server did not start" >&2
	cat "$tmp/server.log" >&2
	exit 1
}

stop_server() {
	local t0 t1
	t0=$(date +%s%N)
	kill -TERM "$server_pid"
	local rc=0
	wait "$server_pid" || rc=$?
	t1=$(date +%s%N)
	echo "phase=shutdown signal=SIGTERM exit=$rc ms=$(((t1 - t0) / 1000000))"
	server_pid=
	grep -E 'level=(warn|error)' "$tmp/server.log" | grep -v 'event=listening' | head -5 || true
}

rc=0
if [[ " $MODES " == *" ingest "* ]]; then
start_server
echo "== ingest: $CONNS connections x $BATCHES batches x $BATCH results"
# The server's CPU (utime + stime of every thread, /proc/PID/stat fields 14-15, in clock
# ticks) over the ingest phase; the rollup job's share of it is the writer's thread CPU in
# the job, which the server logs at shutdown (event=store_stats rollup_cpu_ns=...).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
cpu0=$(cpu_ticks)
"$loadgen" ingest --port "$port" --ca "$tmp/state/pki/ca.crt" --certs "$tmp/agents" \
	--conns "$CONNS" --batches "$BATCHES" --batch "$BATCH" --server-pid "$server_pid" \
	--ceiling-dir "$tmp/ceiling" || rc=$?
cpu1=$(cpu_ticks)
stop_server
hz=$(getconf CLK_TCK)
awk -v t="$((cpu1 - cpu0))" -v hz="$hz" '/event=store_stats/ {
	for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	cpu = t / hz
	printf "rollup: server_cpu_s=%.2f commit_cpu_s=%.2f rollup_cpu_s=%.2f rollup_share=%.3f rows_rolled=%s\n",
		cpu, v["commit_cpu_ns"] / 1e9, v["rollup_cpu_ns"] / 1e9,
		(cpu > 0 ? v["rollup_cpu_ns"] / 1e9 / cpu : 0), v["rows_rolled"]
}' "$tmp/server.log"
fi

if [[ " $MODES " == *" idle "* ]]; then
start_server
echo "== idle: $IDLE_CONNS TLS connections held ${HOLD}s, /healthz probed"
# The server's RSS with no connection yet: the difference over the held connections is
# what each idle connection costs.
rss0_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status")
"$loadgen" idle --port "$port" --ca "$tmp/state/pki/ca.crt" --certs "$tmp/agents" \
	--conns "$IDLE_CONNS" --hold "$HOLD" --server-pid "$server_pid" | tee "$tmp/idle.out" ||
	rc=$?
awk -v rss0="$rss0_kb" -v n="$IDLE_CONNS" '
	/^phase=hold/ { for (i = 1; i <= NF; i++) if ($i ~ /^server_rss_mib=/) {
		split($i, kv, "="); held = kv[2] * 1024 }
		if (held) printf "phase=per_conn server_rss_start_mib=%.1f bytes_per_idle_conn=%.0f\n",
			rss0 / 1024, (held - rss0) * 1024 / n }' "$tmp/idle.out"
stop_server
fi
exit $rc
