#!/usr/bin/env bash
# pg_lease_fence: what the lease fence adds to a singleton job's transaction (issue 13), on a
# real PostgreSQL 15 (tests/tools/pg.sh), one client, for SECONDS each (default 10):
#   baseline  BEGIN; UPDATE of one row; COMMIT        (a job's smallest write)
#   fenced    BEGIN; pg_lease_check's SELECT … FOR SHARE; the same UPDATE; COMMIT
# The fence's SQL is pg_lease.c's, with its parameters inlined. Prints pgbench's tps of each
# (three alternated rounds, the medians) and the ratio fenced / baseline.
#
#   bash tests/tools/pg.sh bash tests/bench/pg_lease_fence.sh [SECONDS]
set -euo pipefail
secs=${1:-10}
bin=${VW_PG_BIN:-/usr/lib/postgresql/15/bin}
db="vw_bench_lease_$$"
"$bin/psql" "$VW_PG_DSN dbname=postgres" -XAtqc "CREATE DATABASE $db"
dsn="$VW_PG_DSN dbname=$db"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; "$bin/psql" "$VW_PG_DSN dbname=postgres" -XAtqc "DROP DATABASE $db WITH (FORCE)" >/dev/null' EXIT
"$bin/psql" "$dsn" -XAtq <<'SQL'
CREATE TABLE leases(name text PRIMARY KEY, holder text NOT NULL, epoch bigint NOT NULL,
                    taken_at timestamptz NOT NULL, expires_at timestamptz NOT NULL);
INSERT INTO leases VALUES('feed', 'bench', 1, now(), now() + interval '1 day');
CREATE TABLE job(id int PRIMARY KEY, n bigint NOT NULL);
INSERT INTO job VALUES(1, 0);
SQL
cat >"$tmp/base.sql" <<'SQL'
BEGIN;
UPDATE job SET n = n + 1 WHERE id = 1;
COMMIT;
SQL
cat >"$tmp/fenced.sql" <<'SQL'
BEGIN;
SELECT set_config('idle_in_transaction_session_timeout', '15000ms', true) FROM leases WHERE name = 'feed' AND holder = 'bench' AND epoch = 1 AND expires_at > clock_timestamp() FOR SHARE;
UPDATE job SET n = n + 1 WHERE id = 1;
COMMIT;
SQL
tps() { "$bin/pgbench" -n -c 1 -T "$secs" -f "$1" "$dsn" 2>/dev/null | awk '/^tps/ {print $3; exit}'; }
# Alternated, three rounds each (the first runs warm the cache and the WAL): the medians.
b=() f=()
for _ in 1 2 3; do
	b+=("$(tps "$tmp/base.sql")")
	f+=("$(tps "$tmp/fenced.sql")")
done
med() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
base=$(med "${b[@]}") fenced=$(med "${f[@]}")
echo "baseline_tps=${b[*]} fenced_tps=${f[*]}"
echo "median baseline_tps=$base fenced_tps=$fenced ratio=$(awk -v a="$fenced" -v b="$base" 'BEGIN {printf "%.3f", a / b}')"
