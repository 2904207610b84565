#!/usr/bin/env bash
# The PostgreSQL harness (tests/tools/pg.sh) itself: the command gets a DSN without a secret
# that reaches a real PostgreSQL 15 with the password file, the server refuses the same DSN
# without it (no trust authentication), the server runs as an unprivileged user, and on exit
# the server is stopped and its directory gone.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT

bash "$HERE/../tools/pg.sh" bash -c '
	set -euo pipefail
	[[ $VW_PG_DSN != *password* ]] || { echo "the DSN carries a password"; exit 1; }
	v=$(psql "$VW_PG_DSN dbname=postgres" -XAtc "SHOW server_version_num")
	(( v >= 150000 && v < 160000 )) || { echo "not PostgreSQL 15: $v"; exit 1; }
	if PGPASSFILE=/dev/null psql "$VW_PG_DSN dbname=postgres" -w -XAtc "SELECT 1" 2>/dev/null; then
		echo "connected without the password file"; exit 1
	fi
	dir=${VW_PG_DSN#host=}; dir=${dir%% *}
	pid=$(head -n1 "$(dirname "$dir")/data/postmaster.pid")
	user=$(ps -o user= -p "$pid")
	[[ $user != root ]] || { echo "the server runs as root"; exit 1; }
	echo "$(dirname "$dir") $pid"
' >"$out"
read -r dir pid <"$out"
[[ ! -e $dir ]] || { echo "FAIL: $dir left behind"; exit 1; }
if kill -0 "$pid" 2>/dev/null; then
	echo "FAIL: the server ($pid) still runs"
	exit 1
fi
echo "ok: harness started PostgreSQL in $dir as pid $pid and removed both"
