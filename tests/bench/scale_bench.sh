#!/usr/bin/env bash
# scale_bench.sh: issue 13's scale benchmark — CONNS agents -> COLLECTORS collectors -> one
# PostgreSQL on this machine, against a raw COPY of the same rows (the ceiling), then the
# same load on one SQLite collector.
#
#   bash tests/bench/scale_bench.sh [BUILD_DIR]     (default build; a Release build)
#
# Env: CONNS=1000 BATCHES=4 BATCH=500 COLLECTORS=2 RUNS=1 MODES="pg sqlite" KEEP=1
#      FLAP=50 (camera results not ok per 1000: status changes, so events and problems)
#
# For each of RUNS rounds, beside a throw-away PostgreSQL 15 (tests/tools/pg.sh: unix socket,
# fsync on, run-time port):
#   1. two fresh databases, vw_scale and vw_ceiling;
#   2. COLLECTORS real venuewatch-server processes on vw_scale ([store] backend = postgresql,
#      one CA shared through [pki] dir), each on a loopback port of its own choosing;
#   3. tests/bench/loadgen: CONNS mutual-TLS agents, agent i sticky to collector i mod
#      COLLECTORS, each its own site/agent certificate and seqs, BATCHES gzip'd batches of
#      BATCH results in seq order (the agent's batch_max is 500), one request in flight, the
#      next after the ack (which the collector sends after COMMIT): results/s acknowledged;
#   4. the check: every acknowledged (agent, seq) is in results exactly once (loadgen writes
#      each agent's last acked seq; psql holds the table to it);
#   5. the ceiling: the same rows regenerated and COPYed raw (the backend's own COPY, one
#      batch per transaction, no dedup, latest or feed) into vw_ceiling's fresh schema with
#      as many connections as collectors; the ratio ingest/ceiling is from the same round;
#   6. bytes per stored result in PostgreSQL (results' partitions and indexes, over the row
#      count), and each collector's commit figures from its /metrics.
# Then (MODES has sqlite) one collector on SQLite with the same load, and loadgen's SQLite
# ceiling (store_bench_commit into a fresh file). The machine's load is printed with each
# round: the cores are shared.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
server_bin=$build/venuewatch-server
loadgen=$build/tests/loadgen
for b in "$server_bin" "$loadgen"; do
	[[ -x $b ]] || { echo "scale_bench: $b missing (cmake --build $build)" >&2; exit 2; }
done
export CONNS=${CONNS:-1000} BATCHES=${BATCHES:-4} BATCH=${BATCH:-500}
export COLLECTORS=${COLLECTORS:-2} RUNS=${RUNS:-1} MODES=${MODES:-pg sqlite} FLAP=${FLAP:-50}

# The PostgreSQL half runs inside pg.sh (its environment names the database); this script
# calls itself there.
if [[ ${SCALE_BENCH_INNER:-} != 1 ]]; then
	export SCALE_BENCH_INNER=1
	exec bash "$repo/tests/tools/pg.sh" bash "$0" "$build"
fi

tmp=$(mktemp -d /tmp/vw-scale.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	if [[ ${KEEP:-0} = 1 ]]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
psql_do() { psql "$VW_PG_DSN dbname=$1" -XAtq -v ON_ERROR_STOP=1 -c "$2"; }

echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
	"$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
	"PostgreSQL $(psql_do postgres 'SHOW server_version'), $(date -u '+%F %H:%M UTC')"
echo "load: $CONNS agents x $BATCHES batches x $BATCH results, $COLLECTORS collectors"

# One CA for every collector: the agents' certificates must verify on each.
conf_for() { # NAME BACKEND: a collector's config, its state dir beside it
	local name=$1 backend=$2 conf=$tmp/$1.ini
	mkdir -p "$tmp/$name"
	cat >"$conf" <<EOF
[server]
state_dir = $tmp/$name
listen = 127.0.0.1:0
log_level = info
[pki]
dir = $tmp/pki
[limits]
idle_timeout = 10m
[metrics]
allow = 127.0.0.1
EOF
	if [[ $backend = postgresql ]]; then
		cat >>"$conf" <<EOF
[store]
backend = postgresql
dsn = $VW_PG_DSN dbname=vw_scale
password_file = $VW_PG_PASSFILE
EOF
	fi
	echo "$conf"
}
conf=$(conf_for c0 sqlite)
"$server_bin" -c "$conf" ca init >/dev/null
t0=$(date +%s)
for i in $(seq 1 "$CONNS"); do
	site=$(printf 'site-%04d' "$i")
	"$server_bin" -c "$conf" ca issue --site "$site" --org "org-$((i % 50))" \
		--city "city-$((i % 16))" --out "$tmp/agents/$site" >/dev/null 2>&1
done
echo "setup: $CONNS agent certificates in $(($(date +%s) - t0)) s"

start_server() { # CONF: sets port and pid
	local conf=$1 log=${1%.ini}.log
	"$server_bin" -c "$conf" 2>"$log" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 1 200); do
		port=$(sed -n 's/.*event=listening.* port=\([0-9]*\).*/\1/p' "$log")
		[[ -n $port ]] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "scale_bench: the collector did not start ($conf)" >&2
	cat "$log" >&2
	exit 1
}

# issue 13: the rollup job (on the rollup lease's holder) ran beside ingest and the ceiling;
# how far it got when loadgen returned, and how long after that it caught up with every row
# (polled, 300 s at most).
rollup_figures() {
	local t0 left rolled=0 k
	t0=$(date +%s.%N)
	left=$(psql_do vw_scale "SELECT (SELECT coalesce(max(id), 0) FROM results) - result_id FROM rollup_mark")
	local at_return=$left
	while ((left > 0)); do
		(($(date +%s) - ${t0%.*} > 300)) && break
		sleep 0.5
		left=$(psql_do vw_scale "SELECT (SELECT coalesce(max(id), 0) FROM results) - result_id FROM rollup_mark")
	done
	for k in $(seq 1 "$COLLECTORS"); do
		rolled=$((rolled + $(curl -sS --cacert "$tmp/pki/ca.crt" "https://127.0.0.1:${ports[k - 1]}/metrics" |
			awk '/^venuewatch_server_store_rows_rolled_total / { printf "%d", $2 }')))
	done
	echo "phase=rollup unrolled_at_loadgen_return=$at_return unrolled_now=$left" \
		"caught_up_after_s=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') rows_rolled_total=$rolled"
}

stop_servers() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}

# A collector's commit figures, from its own /metrics: group commits, batches per commit,
# mean commit wall time, and the share of commits over 100 ms.
commit_figures() { # PORT NAME
	curl -sS --cacert "$tmp/pki/ca.crt" "https://127.0.0.1:$1/metrics" | awk -v n="$2" '
		/^venuewatch_server_store_commits_total / { c = $2 }
		/^venuewatch_server_store_commit_seconds_sum / { s = $2 }
		/^venuewatch_server_store_commit_seconds_bucket\{le="0.1"\}/ { le100 = $2 }
		/^venuewatch_server_store_commit_seconds_count / { cnt = $2 }
		/^venuewatch_server_ingest_batches_total\{outcome="stored"\}/ { b = $2 }
		END { printf "phase=commits collector=%s commits=%d batches=%d batches_per_commit=%.1f " \
			"commit_mean_ms=%.1f commits_over_100ms_pct=%.1f\n", n, c, b, (c ? b / c : 0),
			(cnt ? 1000 * s / cnt : 0), (cnt ? 100 * (cnt - le100) / cnt : 0) }'
}

rc=0
for run in $(seq 1 "$RUNS"); do
	if [[ " $MODES " != *" pg "* ]]; then break; fi
	echo "== round $run: PostgreSQL, $COLLECTORS collectors (uptime:$(uptime | sed 's/.*load average/ load average/'))"
	for db in vw_scale vw_ceiling; do
		psql_do postgres "DROP DATABASE IF EXISTS $db"
		psql_do postgres "CREATE DATABASE $db"
	done
	ports=() spids=()
	for k in $(seq 1 "$COLLECTORS"); do
		start_server "$(conf_for "pg$k" postgresql)"
		ports+=("$port") spids+=("$pid")
	done
	plist=$(IFS=,; echo "${ports[*]}") slist=$(IFS=,; echo "${spids[*]}")
	"$loadgen" ingest --port "$plist" --server-pid "$slist" --ca "$tmp/pki/ca.crt" \
		--certs "$tmp/agents" --conns "$CONNS" --batches "$BATCHES" --batch "$BATCH" --flap-per-mille "$FLAP" \
		--acked-out "$tmp/acked.tsv" --ceiling-pg "$VW_PG_DSN dbname=vw_ceiling" || rc=$?
	for k in $(seq 1 "$COLLECTORS"); do commit_figures "${ports[k - 1]}" "pg$k"; done
	rollup_figures
	stop_servers
	# Every acked (agent, seq) once: per agent, the rows at or below its ack are exactly
	# seqs 1..ack (count and distinct count both equal the ack).
	verify=$(psql "$VW_PG_DSN dbname=vw_scale" -XAtq -v ON_ERROR_STOP=1 <<EOF
CREATE TEMP TABLE acked(site text, seq bigint);
\copy acked FROM '$tmp/acked.tsv'
SELECT 'agents=' || count(*) || ' acked_results=' || sum(k.seq)
  || ' stored_results=' || (SELECT count(*) FROM results)
  || ' agents_wrong=' || count(*) FILTER (WHERE coalesce(x.n, 0) <> k.seq OR coalesce(x.d, 0) <> k.seq)
FROM acked k
LEFT JOIN agents a ON a.site = k.site AND a.agent = k.site
LEFT JOIN LATERAL (SELECT count(*) n, count(DISTINCT (r.epoch, r.seq)) d FROM results r
                   WHERE r.agent_id = a.id AND r.seq BETWEEN 1 AND k.seq) x ON true;
EOF
)
	echo "phase=verify $verify"
	[[ $verify == *" agents_wrong=0" ]] || rc=1
	bad=$(psql_do vw_scale "SELECT count(*) FROM (SELECT agent_id, epoch, seq FROM results
		GROUP BY 1, 2, 3 HAVING count(*) > 1) d")
	echo "phase=verify duplicates=$bad"
	[[ $bad = 0 ]] || rc=1
	# The table's own bytes (heap, TOAST, indexes) over its rows; partitions hold them.
	for db in vw_scale vw_ceiling; do
		psql_do "$db" "SELECT 'phase=size db=$db rows=' || count(*) || ' results_bytes=' ||
			(SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('results')) ||
			' bytes_per_row=' || round((SELECT sum(pg_total_relation_size(relid))
			FROM pg_partition_tree('results')) / greatest(count(*), 1)) ||
			' database_bytes=' || pg_database_size('$db') FROM results"
	done
	# The rollup tables the score reads, kept for years (SCALE.md's storage estimate): rows
	# and bytes (heap, TOAST, indexes) per row of each.
	for t in rollup_days exam_credits rollup_state rollup_agents; do
		psql_do vw_scale "SELECT 'phase=size table=$t rows=' || count(*) || ' bytes=' ||
			pg_total_relation_size('$t') || ' bytes_per_row=' ||
			round(pg_total_relation_size('$t') / greatest(count(*), 1)) FROM $t"
	done
done

if [[ " $MODES " == *" sqlite "* ]]; then
	echo "== SQLite, one collector (uptime:$(uptime | sed 's/.*load average/ load average/'))"
	start_server "$(conf_for sqlite sqlite)"
	"$loadgen" ingest --port "$port" --server-pid "$pid" --ca "$tmp/pki/ca.crt" \
		--certs "$tmp/agents" --conns "$CONNS" --batches "$BATCHES" --batch "$BATCH" --flap-per-mille "$FLAP" \
		--ceiling-dir "$tmp/ceiling" || rc=$?
	commit_figures "$port" sqlite
	stop_servers
	sqlite3 "$tmp/sqlite/venuewatch.db" "SELECT 'phase=size db=sqlite rows=' || count(*) ||
		' file_bytes_per_row=' || ((SELECT page_count * page_size FROM pragma_page_count(),
		pragma_page_size()) / max(count(*), 1)) FROM results"
fi
exit $rc
