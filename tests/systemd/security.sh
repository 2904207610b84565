#!/usr/bin/env bash
# security.sh UNITDIR: systemd-analyze's exposure score of each unit, offline (the unit files
# as they are, no running manager), against issue 14's targets: the server <= 2.0, the agent
# <= 2.5. On a miss it prints the whole table, so the directive that costs most is in sight.
set -euo pipefail
DIR=${1:?usage: security.sh UNITDIR}
command -v systemd-analyze >/dev/null || {
	echo "security: systemd-analyze is not installed (apt-get install systemd)" >&2
	exit 2
}
fail=0
# unit and its highest allowed exposure (systemd-analyze prints one decimal)
for pair in venuewatch-server.service:2.0 venuewatch-agent.service:2.5; do
	unit=${pair%%:*} max=${pair##*:}
	# --offline does not exit non-zero for a high score; the line is the contract.
	out=$(systemd-analyze security --no-pager --offline=true "$DIR/$unit" 2>&1) || {
		echo "security: systemd-analyze failed on $DIR/$unit:" >&2
		echo "$out" >&2
		exit 1
	}
	score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
	if [[ -z $score ]]; then
		echo "security: no 'Overall exposure level' line for $unit:" >&2
		echo "$out" >&2
		exit 1
	fi
	if awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
		echo "security: $unit exposure $score > $max; the table:" >&2
		echo "$out" >&2
		fail=1
	else
		echo "security: $unit exposure $score <= $max"
	fi
done
exit $fail
