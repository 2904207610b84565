#!/usr/bin/env bash
# feed_count_bench.sh [OPEN] [CLOSED] [SITES]: the cost of the store writer's recount behind
# /metrics' sites and problems_open (server/store/sqlite.c feed_count), on a province-sized
# problems table: SITES sites, OPEN open problems among CLOSED closed ones (defaults 12,000,
# 1,000,000, 3,000). The table, its partial index and the two statements are the store's
# (migration 7, W_FEED_COUNT_OPEN / W_FEED_COUNT_SITES), run by the sqlite3 shell, which uses
# the same SQLite; the writer runs them at most once a second, only after a change. Prints the
# user CPU of each statement, best of five runs.
set -euo pipefail
OPEN=${1:-12000} CLOSED=${2:-1000000} SITES=${3:-3000}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
db=$(mktemp -d)/feed.db
trap 'rm -rf "$(dirname "$db")"' EXIT
# The statements as the store has them, so the bench cannot drift from the code.
stmt() { # the C string literal(s) of sqlite.c's [$1] = "..." "...",
	python3 - "$ROOT/server/store/sqlite.c" "$1" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
m = re.search(r"\[" + sys.argv[2] + r"\] = ((?:\s*\"(?:[^\"\\]|\\.)*\")+)\s*,", src)
print("".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))) if m else "")
PY
}
open_sql=$(stmt W_FEED_COUNT_OPEN)
sites_sql=$(stmt W_FEED_COUNT_SITES)
[[ $open_sql == SELECT*ORDER\ BY\ site && $sites_sql == SELECT* ]] ||
	{ echo "feed_count_bench: cannot find the statements in server/store/sqlite.c" >&2; exit 1; }
sqlite3 "$db" <<SQL
CREATE TABLE problems(id INTEGER PRIMARY KEY, site TEXT NOT NULL, org TEXT NOT NULL,
 city TEXT NOT NULL, agent TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL,
 status TEXT NOT NULL, worst TEXT NOT NULL, severity TEXT NOT NULL, faults TEXT NOT NULL,
 start_ms INTEGER NOT NULL, end_ms INTEGER, in_session INTEGER NOT NULL DEFAULT 0,
 ack_by TEXT, ack_ms INTEGER, ack_message TEXT);
CREATE UNIQUE INDEX problems_open ON problems(site, agent, kind, target) WHERE end_ms IS NULL;
CREATE INDEX problems_site_end ON problems(site, end_ms);
CREATE INDEX problems_start ON problems(start_ms, id);
CREATE TABLE feed_sites(site TEXT PRIMARY KEY, org TEXT NOT NULL, city TEXT NOT NULL,
 last_batch_ms INTEGER NOT NULL, cadence_ms INTEGER NOT NULL DEFAULT 0, silent_id INTEGER)
 WITHOUT ROWID;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < $SITES - 1)
 INSERT INTO feed_sites SELECT printf('site-%05d', i), 'org', 'city', 0, 15000, NULL FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < $CLOSED - 1)
 INSERT INTO problems(site, org, city, agent, kind, target, status, worst, severity, faults,
 start_ms, end_ms) SELECT printf('site-%05d', i % $SITES), 'org', 'city', 'a', 'stream',
 printf('cam-%d', i / $SITES), 'down', 'down', 'major', '["no_video"]', i, i + 1 FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < $OPEN - 1)
 INSERT INTO problems(site, org, city, agent, kind, target, status, worst, severity, faults,
 start_ms, end_ms) SELECT printf('site-%05d', i % $SITES), 'org', 'city', 'a',
 CASE WHEN i % 7 = 0 THEN 'coverage' ELSE 'stream' END, printf('open-%d', i / $SITES),
 CASE WHEN i % 3 = 0 THEN 'degraded' ELSE 'down' END, 'down',
 CASE WHEN i % 5 = 0 THEN 'critical' ELSE 'major' END, '[]', i, NULL FROM n;
ANALYZE;
SQL
best() { # best user CPU (s) of five runs of the statement $1 (every row fetched)
	for _ in 1 2 3 4 5; do
		printf '.timer on\n.output /dev/null\n%s;\n' "$1" | sqlite3 "$db" 2>&1 |
			sed -n 's/.*user \([0-9.]*\).*/\1/p'
	done | sort -n | head -1
}
echo "rows: $SITES sites, $OPEN open problems, $CLOSED closed; sqlite $(sqlite3 --version | cut -d' ' -f1)"
echo "plan: $(sqlite3 "$db" "EXPLAIN QUERY PLAN $open_sql" | tr '\n' ' ')"
echo "walk of the open problems: $(best "$open_sql") s user"
echo "count of feed_sites:       $(best "$sites_sql") s user"
