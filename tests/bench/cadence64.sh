#!/usr/bin/env bash
# The in-session cadence at N cameras (issue 15 part 3): N x 1080p25 H.264 cameras, every one
# in a room with an exam session running, a real agent (not --once) for DURATION seconds.
#   1. the ffmpeg CLI encodes 4 s of 1080p25 H.264 once (4 Mbit/s CBR, a keyframe a second);
#   2. camd serves it at N mounts from that one file (no encoding per client);
#   3. the agent runs with session_interval = 15 s (the default) and
#      workers as configured (default: sized by the agent), collector a closed port (results
#      stay in the outbox); its CPU and peak RSS (VmHWM) read from /proc just before SIGTERM
#      after DURATION;
#   4. the check timestamps (ts_ms of the stream rows in the outbox, SQLite) give every
#      camera's gaps between checks: max per camera, p50/p99 over all;
#   5. ffprobe runs once per camera on the same streams, PAR at a time, under /usr/bin/time -v:
#      the baseline CPU per check, in the same run.
# Targets: every gap <= 15 s + 10 % jitter (16.5 s); peak RSS <= 150 MiB; CPU <= 25 % of one
# core; CPU per check <= 0.35 x ffprobe's.
# Usage: tests/bench/cadence64.sh [BUILD_DIR]   (default build; a Release build)
# Env: CAMS=64 DURATION=600 WORKERS= WINDOW= (empty: the agent's defaults) PAR=4, KEEP=1 keeps
# tmp.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
# shellcheck source=camd.sh
. "$repo/tests/bench/camd.sh"
agent=$build/venuewatch-agent
CAMS=${CAMS:-64}
DURATION=${DURATION:-600}
WORKERS=${WORKERS:-}
WINDOW=${WINDOW:-}
PAR=${PAR:-4}
for b in "$agent" /usr/bin/time ffmpeg ffprobe python3; do
	command -v "$b" >/dev/null || { echo "cadence64: $b missing" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/vw-bench-cadence.XXXXXX)
camd_pid=
agent_pid=
cleanup() {
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
	[ -n "$camd_pid" ] && kill "$camd_pid" 2>/dev/null && wait "$camd_pid" 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

camd_stream_1080p "$tmp/cam1080.h264"
camd_serve cadence64 "$tmp/cam1080.h264" "$CAMS"
ffprobe -v error -rtsp_transport tcp "rtsp://127.0.0.1:$port/cam1" >/dev/null 2>&1 || true

# A session over the whole run, in the cameras' room.
start=$(date -u -d '-1 hour' +%FT%TZ) end=$(date -u -d '+1 day' +%FT%TZ)
{
	printf '[agent]\nsite = bench\norg = bench\nstate_dir = %s/state\nlog_level = info\n' "$tmp"
	printf 'session_interval = 15s\n'
	[ -n "$WORKERS" ] && printf 'workers = %s\n' "$WORKERS"
	printf '\n[collector]\nurl = https://127.0.0.1:1\nca = %s/none\ncert = %s/none\n' "$tmp" "$tmp"
	printf 'key = %s/none\n\n[room hall]\nmin_cameras = 2\n\n' "$tmp"
	printf '[session bench]\nstart = %s\nend = %s\nrooms = hall\n\n' "$start" "$end"
	for i in $(seq 1 "$CAMS"); do
		printf '[camera cam%d]\nroom = hall\nurl = rtsp://127.0.0.1:%s/cam%d\n' "$i" "$port" "$i"
		[ -n "$WINDOW" ] && printf 'window = %s\n' "$WINDOW"
		echo
	done
} >"$tmp/agent.ini"
camd_cpu0=$(awk '{print $14 + $15}' "/proc/$camd_pid/stat")
"$agent" -c "$tmp/agent.ini" 2>"$tmp/agent.err" &
agent_pid=$!
sleep "$DURATION"
# The agent's own figures just before it stops: CPU (user + system, all threads) and the
# peak RSS the kernel recorded (VmHWM).
hz=$(getconf CLK_TCK)
a_cpu=$(awk -v hz="$hz" '{print ($14 + $15) / hz}' "/proc/$agent_pid/stat")
a_rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$agent_pid/status")
a_threads=$(awk '/^Threads:/ {print $2}' "/proc/$agent_pid/status")
kill -TERM "$agent_pid"
wait "$agent_pid" || true
agent_pid=
camd_cpu=$(awk -v c0="$camd_cpu0" -v hz="$hz" '{print ($14 + $15 - c0) / hz}' \
	"/proc/$camd_pid/stat")
"$agent" -c "$tmp/agent.ini" status >"$tmp/status.out" 2>&1 || true

seq 1 "$CAMS" | /usr/bin/time -v -o "$tmp/ffprobe.time" xargs -P "$PAR" -I{} \
	ffprobe -v error -rtsp_transport tcp -timeout 10000000 -show_streams -select_streams v \
	"rtsp://127.0.0.1:$port/cam{}" >"$tmp/ffprobe.out" 2>"$tmp/ffprobe.err"
probed=$(grep -c '^codec_name=h264' "$tmp/ffprobe.out" || true)

field() { sed -n "s/^[[:space:]]*$2: //p" "$1"; }
cpu() { echo "$(field "$1" 'User time (seconds)') $(field "$1" 'System time (seconds)')" |
	awk '{print $1 + $2}'; }
f_cpu=$(cpu "$tmp/ffprobe.time")

echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
	"$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); $(date -u +%FT%TZ)"
echo "streams: $CAMS x 1080p25 H.264 4 Mbit/s from one file (camd, ${camd_cpu} CPU s);" \
	"session_interval=15s duration=${DURATION}s workers=${WORKERS:-default}" \
	"ffprobe h264=$probed/$CAMS parallel=$PAR; agent threads at the end: $a_threads"
grep -m1 '^camera check workers:' "$tmp/status.out" || echo "camera check workers: (not shown)"
python3 - "$tmp/state/outbox.db" "$CAMS" "$DURATION" "$a_cpu" "$a_rss" "$f_cpu" <<'EOF'
import json, sqlite3, sys
db, cams, duration, a_cpu, a_rss, f_cpu = sys.argv[1:]
cams, duration, a_cpu, a_rss, f_cpu = int(cams), float(duration), float(a_cpu), int(a_rss), float(f_cpu)
ts, status = {}, {}
for t, body in sqlite3.connect(db).execute("SELECT ts_ms, body FROM outbox ORDER BY ts_ms"):
    r = json.loads(body)
    if r.get("kind") == "stream":
        ts.setdefault(r["target"], []).append(t)
        status[r["status"]] = status.get(r["status"], 0) + 1
checks = sum(len(v) for v in ts.values())
gaps = sorted((b - a) / 1000 for v in ts.values() for a, b in zip(v, v[1:]))
maxes = sorted(max((b - a) / 1000 for a, b in zip(v, v[1:])) for v in ts.values() if len(v) > 1)
def pct(xs, p):
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")
print(f"checks  stream={checks} cameras_seen={len(ts)}/{cams} status={status}")
print(f"gaps_s  p50={pct(gaps, 50):.2f} p99={pct(gaps, 99):.2f} max={gaps[-1] if gaps else 0:.2f}"
      f" per_camera_max: min={maxes[0] if maxes else 0:.2f} median={pct(maxes, 50):.2f}"
      f" over_16.5s={sum(1 for g in gaps if g > 16.5)} of {len(gaps)} (target 0)")
per = a_cpu / checks if checks else float("nan")
fper = f_cpu / cams
print(f"agent   cpu_s={a_cpu:.2f} one_core_pct={a_cpu / duration * 100:.2f} (target <= 25)"
      f" peak_rss_mib={a_rss / 1024:.1f} (target <= 150)")
print(f"ratio   cpu_per_check agent={per:.4f}s ffprobe={fper:.4f}s agent/ffprobe={per / fper:.2f}"
      " (target <= 0.35)")
EOF
