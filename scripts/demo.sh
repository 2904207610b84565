#!/usr/bin/env bash
# demo.sh: venuewatch end to end on this machine, loopback only.
#
#   bash scripts/demo.sh
#
# Installs and builds (scripts/setup.sh), then starts:
#   - camd, a test RTSP camera server with two healthy cameras,
#   - venuewatch-server on 127.0.0.1:8443 (or the next free port), with a demo CA,
#   - venuewatch-agent for site demo-site-001 with three cameras: two healthy, and one pointing
#     at a port nobody listens on (a stopped camera), checked every 5 s.
# It enters an exam session at the collector that starts 30 s later and runs two hours (the
# agent fetches it and checks faster while it runs), waits for the first results, prints curl
# commands for the sites API and for item 3.6's score and report (with a province bearer
# token, made once and kept in demo-state/province.token), then the dashboard's URL (the
# web/ build that setup.sh made, served from [web] root) and the token to paste on its login
# page, and runs until Ctrl-C, which stops everything it started.
#
# State lives in ./demo-state (CA, certificates, databases, logs) and is reused by the next run;
# delete that directory to start over. VW_DEMO_PORT picks another first port to try.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=$ROOT/demo-state
SITE=demo-site-001
ORG=demo-org
CITY=demo-city
PY=/usr/bin/python3 # Debian's: camd needs its PyGObject
SERVER=$ROOT/build/venuewatch-server
AGENT=$ROOT/build/venuewatch-agent
READY_TIMEOUT=90 # seconds for the first results: a check cycle plus an upload

say() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

bash "$ROOT/scripts/setup.sh"
[[ -x $SERVER && -x $AGENT ]] || die "build did not produce $SERVER and $AGENT"

mkdir -p "$STATE"/{server,agent,logs,run}
chmod 700 "$STATE"

# ---- processes: every one we start is recorded, and only those are stopped ----
PIDS=()
# shellcheck disable=SC2317 # called from the EXIT trap
stop_all() {
	trap - INT TERM EXIT
	if ((${#PIDS[@]})); then
		say "stopping"
		# Reverse order: the agent first, the cameras last.
		for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[i]}" 2>/dev/null || true; done
		for pid in "${PIDS[@]}"; do
			for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null || true
		done
		wait 2>/dev/null || true
		rm -f "$STATE"/run/*.pid
	fi
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A previous demo killed without its trap (kill -9, a closed terminal) may have left its own
# processes behind; stop those, found by the pid files it wrote, and nothing else.
for f in "$STATE"/run/*.pid; do
	[[ -e $f ]] || continue
	pid=$(<"$f")
	if [[ $pid =~ ^[0-9]+$ ]] && grep -qaF -e "$ROOT" "/proc/$pid/cmdline" 2>/dev/null; then
		say "stopping $(basename "$f" .pid) (pid $pid) left by a previous run"
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
done

alive() { # alive PID: running (an exited child stays a zombie until waited for; that is not alive)
	local state
	state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) && [[ -n $state && $state != Z ]]
}

start() { # start NAME CMD...: background, output to logs/NAME.log
	local name=$1
	shift
	"$@" >"$STATE/logs/$name.log" 2>&1 &
	PIDS+=($!)
	echo $! >"$STATE/run/$name.pid"
}

wait_log() { # wait_log NAME REGEX SECONDS: print the first match, or fail with the log
	local name=$1 rx=$2 secs=$3 pid
	pid=$(<"$STATE/run/$name.pid")
	for _ in $(seq $((secs * 10))); do
		if grep -Eom1 "$rx" "$STATE/logs/$name.log" 2>/dev/null; then return 0; fi
		alive "$pid" || break
		sleep 0.1
	done
	tail -n 30 "$STATE/logs/$name.log" >&2
	die "$name did not print /$rx/ within ${secs}s (log: $STATE/logs/$name.log)"
}

free_port() { # free_port FIRST: the first port >= FIRST that 127.0.0.1 can bind
	"$PY" - "$1" <<'EOF'
import socket, sys
first = int(sys.argv[1])
for port in range(first, first + 200):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    sys.exit(f"no free port in {first}..{first + 199}")
EOF
}

# ---- cameras ----
start camd "$PY" "$ROOT/tests/tools/camd.py" --port 0 --mount ok:hall-1-front --mount ok2:hall-1-back
CAM_PORT=$(wait_log camd 'READY port=[0-9]+' 30 | cut -d= -f2)
# The stopped camera: a port that was free a moment ago and that nothing here listens on.
STOPPED_PORT=$(free_port $((CAM_PORT + 1)))
say "cameras on rtsp://127.0.0.1:$CAM_PORT/{hall-1-front,hall-1-back}; stopped camera on port $STOPPED_PORT"

# ---- server ----
PORT=$(free_port "${VW_DEMO_PORT:-8443}")
WEB_ROOT=$ROOT/build/web # the dashboard, built by cmake's web target (setup.sh ran npm ci)
WEB_CONF=""
if [[ -s $WEB_ROOT/index.html ]]; then
	WEB_CONF=$'[web]\nroot = '"$WEB_ROOT"
else
	say "the dashboard was not built (no $WEB_ROOT/index.html): node/npm missing? the API still runs"
fi
cat >"$STATE/server.ini" <<EOF
; written by scripts/demo.sh
[server]
listen = 127.0.0.1:$PORT
state_dir = $STATE/server
hostnames = localhost,127.0.0.1
$WEB_CONF
EOF
if [[ ! -s $STATE/server/pki/ca.crt ]]; then
	say "creating the demo CA"
	rm -rf "$STATE/agent/pki" # issued by a CA that is gone
	"$SERVER" -c "$STATE/server.ini" ca init >"$STATE/logs/ca.log" 2>&1 ||
		{ cat "$STATE/logs/ca.log" >&2; die "ca init failed"; }
fi
if [[ ! -s $STATE/agent/pki/agent.crt ]]; then
	say "issuing the agent certificate for $SITE"
	"$SERVER" -c "$STATE/server.ini" ca issue --site "$SITE" --org "$ORG" --city "$CITY" \
		--out "$STATE/agent/pki" >>"$STATE/logs/ca.log" 2>&1 ||
		{ cat "$STATE/logs/ca.log" >&2; die "ca issue failed"; }
fi
# The sites API wants a bearer token: a province one reads every city's sites. Made once and
# kept (0600) beside the demo's state; `token list` / `token revoke ID` manage it.
if [[ ! -s $STATE/province.token ]]; then
	say "creating a province token for the sites API"
	(umask 077 && "$SERVER" -c "$STATE/server.ini" token create --role province --name demo \
		>"$STATE/province.token" 2>>"$STATE/logs/ca.log") ||
		{ cat "$STATE/logs/ca.log" >&2; die "token create failed"; }
fi
TOKEN=$(<"$STATE/province.token")
start server "$SERVER" -c "$STATE/server.ini"
wait_log server 'event=listening.*port=[0-9]+' 20 >/dev/null
API="https://127.0.0.1:$PORT/api/v1"
AUTH=(--cacert "$STATE/server/pki/ca.crt" -H "Authorization: Bearer $TOKEN")

# ---- an exam session, entered at the collector (the authority for sessions) ----
# It starts in 30 s (a session is entered before it starts) and runs two hours over both
# rooms; the agent fetches it within its sessions_poll and checks every session_interval
# while it runs. Each run enters a new one (ids are unique per organisation).
SESSION_ID=DEMO-$(TZ=Asia/Shanghai date +%Y%m%d-%H%M%S)
SESSION_START=$(TZ=Asia/Shanghai date -d '+30 seconds' '+%Y-%m-%dT%H:%M:%S+08:00')
SESSION_END=$(TZ=Asia/Shanghai date -d '+2 hours 30 seconds' '+%Y-%m-%dT%H:%M:%S+08:00')
say "entering exam session $SESSION_ID ($SESSION_START .. $SESSION_END) at the collector"
curl -sS --fail-with-body "${AUTH[@]}" -H 'Content-Type: application/json' "$API/sessions" \
	-d "{\"site\": \"$SITE\", \"id\": \"$SESSION_ID\", \"occupation\": \"电工\",
	     \"level\": \"四级\", \"start\": \"$SESSION_START\", \"end\": \"$SESSION_END\",
	     \"rooms\": [\"hall-1\", \"hall-2\"], \"candidates\": 40}" >"$STATE/logs/session.json" ||
	{ cat "$STATE/logs/session.json" >&2; die "entering the exam session failed"; }

# ---- agent ----
cat >"$STATE/agent.ini" <<EOF
; written by scripts/demo.sh
[agent]
site = $SITE
org = $ORG
state_dir = $STATE/agent
interval = 5s
session_interval = 2s
check_timeout = 5s
log_level = info

[collector]
url = https://127.0.0.1:$PORT
ca = $STATE/agent/pki/ca.crt
cert = $STATE/agent/pki/agent.crt
key = $STATE/agent/pki/agent.key
sessions_poll = 5s

[room hall-1]
min_cameras = 2

[room hall-2]
min_cameras = 1

[camera hall-1-front]
room = hall-1
url = rtsp://127.0.0.1:$CAM_PORT/hall-1-front

[camera hall-1-back]
room = hall-1
url = rtsp://127.0.0.1:$CAM_PORT/hall-1-back

[camera hall-2-front]
room = hall-2
url = rtsp://127.0.0.1:$STOPPED_PORT/hall-2-front
EOF
"$AGENT" -c "$STATE/agent.ini" --check-config >/dev/null
STARTED=$(date -u +%Y-%m-%dT%H:%M:%S) # results older than this are from an earlier run
start agent "$AGENT" -c "$STATE/agent.ini"

# ---- wait for results ----
CURL=(curl -sS --cacert "$STATE/server/pki/ca.crt" -H "Authorization: Bearer $TOKEN"
	"https://127.0.0.1:$PORT/api/v1/sites/$SITE")
say "waiting for the first results (up to ${READY_TIMEOUT}s)"
settled() { # every camera reported in this run, at least one ok and one down
	"${CURL[@]}" 2>/dev/null | "$PY" -c '
import json, sys
t = [x for x in json.load(sys.stdin).get("targets", [])
     if x.get("kind") == "stream" and x.get("ts", "") >= sys.argv[1]]
s = {x["status"] for x in t}
sys.exit(0 if len(t) >= 3 and {"ok", "down"} <= s else 1)' "$STARTED"
}
for _ in $(seq $((READY_TIMEOUT * 2))); do
	settled && break
	for pid in "${PIDS[@]}"; do alive "$pid" || die "a process exited; see $STATE/logs/"; done
	sleep 0.5
done
settled || die "no results after ${READY_TIMEOUT}s; see $STATE/logs/"

echo
say "the sites API, ready to paste:"
echo
printf '  curl --cacert %q -H "Authorization: Bearer %s" "https://127.0.0.1:%s/api/v1/sites/%s"\n' \
	"$STATE/server/pki/ca.crt" "$TOKEN" "$PORT" "$SITE"
printf '  curl --cacert %q -H "Authorization: Bearer %s" "https://127.0.0.1:%s/api/v1/sites"\n' \
	"$STATE/server/pki/ca.crt" "$TOKEN" "$PORT"
echo
say "the exam session $SESSION_ID, item 3.6 for $ORG (score, criteria, evidence links; docs/SCORE.md),"
say "its printable zh-CN report and the same computation explained step by step:"
echo
FROM=$(TZ=Asia/Shanghai date +%Y-%m-%d)
TO=$(TZ=Asia/Shanghai date -d tomorrow +%Y-%m-%d)
printf '  curl --cacert %q -H "Authorization: Bearer %s" "%s/orgs/%s/score?from=%s&to=%s"\n' \
	"$STATE/server/pki/ca.crt" "$TOKEN" "$API" "$ORG" "$FROM" "$TO"
printf '  curl --cacert %q -H "Authorization: Bearer %s" -o report.html "%s/orgs/%s/report.html?from=%s&to=%s"\n' \
	"$STATE/server/pki/ca.crt" "$TOKEN" "$API" "$ORG" "$FROM" "$TO"
printf '  %q -c %q score --org %q --from %s --to %s --explain\n' \
	"$SERVER" "$STATE/server.ini" "$ORG" "$FROM" "$TO"
echo
say "the token is a province supervisor's (reads every city); a city's reads only its own:"
printf '  %q -c %q token create --role city --city %q --name NAME\n' "$SERVER" "$STATE/server.ini" "$CITY"
echo
say "its answer now:"
"${CURL[@]}" | "$PY" -m json.tool
echo
if [[ -n $WEB_CONF ]]; then
	say "the dashboard (zh-CN; English at the top right): open this in a browser on this machine,"
	say "accept the demo CA's certificate (or import $STATE/server/pki/ca.crt), and paste the token:"
	echo
	echo "  https://127.0.0.1:$PORT/"
	echo "  $TOKEN"
	echo
	say "(the token goes in the login form, never in a URL: the server refuses tokens in URLs)"
	echo
fi
say "logs in $STATE/logs/; Ctrl-C stops camd, the server and the agent"
# Until Ctrl-C, or until one of them exits: then stop the rest.
set +e
wait -n "${PIDS[@]}"
rc=$?
set -e
sleep 0.5 # Ctrl-C reaches the children and this script together: let its trap go first
die "a process exited unexpectedly (status $rc); see $STATE/logs/"
