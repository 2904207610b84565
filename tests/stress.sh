#!/usr/bin/env bash
# stress.sh: run ctest labels several times in a row while `stress-ng --cpu 2` keeps both cores
# busy, as CI's shared 2-core machine can be (issue 9: the suites must pass 5 runs in a row so).
#
#   tests/stress.sh [-n RUNS] [-b BUILD_DIR] [LABEL...]
#       RUNS default 5; BUILD_DIR default build (a configured and built tree);
#       LABELs default: unit integration faults security (faults needs root).
#   e.g. tests/stress.sh -n 1 integration      # one run of one label under load
#
# stress-ng is started before the first run and stopped on any exit (trap). Each label of each
# run is one ctest invocation, its output kept in BUILD_DIR/stress/run-R-LABEL.log. At the end
# a table: run, label, pass/FAIL, seconds, the failed tests. Exit status 1 when any run failed,
# 2 on a usage error.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=5
build=$repo/build
usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while getopts "n:b:h" opt; do
	case $opt in
	n) runs=$OPTARG ;;
	b) build=$OPTARG ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
labels=("$@")
((${#labels[@]})) || labels=(unit integration faults security)

[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "stress: -n wants a positive number, got '$runs'" >&2; exit 2; }
[[ -f $build/CTestTestfile.cmake ]] || {
	echo "stress: $build is not a configured build tree (cmake -S . -B build && cmake --build build)" >&2
	exit 2
}
command -v stress-ng >/dev/null || { echo "stress: stress-ng not installed (bash scripts/setup.sh --no-build)" >&2; exit 2; }
build=$(cd "$build" && pwd)
logdir=$build/stress
mkdir -p "$logdir"

# Two CPU hogs: as many as the machine has cores on CI. Its own output goes to a log so the
# table stays readable; --timeout 0 = until we stop it.
stress-ng --cpu 2 --timeout 0 >"$logdir/stress-ng.log" 2>&1 &
stress_pid=$!
stop_stress() {
	if kill -0 "$stress_pid" 2>/dev/null; then
		# stress-ng's parent stops its workers when it gets SIGTERM (SIGINT likewise).
		kill -TERM "$stress_pid" 2>/dev/null
		wait "$stress_pid" 2>/dev/null
	fi
}
trap stop_stress EXIT
trap 'exit 130' INT TERM
sleep 1 # not a synchronisation: gives stress-ng's workers their start before the first run
kill -0 "$stress_pid" 2>/dev/null || { echo "stress: stress-ng did not start:" >&2; cat "$logdir/stress-ng.log" >&2; exit 2; }
echo "stress: stress-ng --cpu 2 (pid $stress_pid); ${runs} run(s) of: ${labels[*]}; logs in $logdir"

rows=()
failed=0
for ((r = 1; r <= runs; r++)); do
	for label in "${labels[@]}"; do
		log=$logdir/run-$r-$label.log
		t0=$(date +%s)
		ctest --test-dir "$build" -L "^${label}\$" --output-on-failure >"$log" 2>&1
		rc=$?
		secs=$(($(date +%s) - t0))
		if ((rc == 0)) && grep -q "tests passed" "$log"; then
			result=pass
			names=-
		else
			result=FAIL
			failed=1
			# ctest lists failures below "The following tests FAILED:" as "  12 - name (Failed)"
			# (skipped tests have a list of their own); none listed = ctest itself failed.
			names=$(awk '/The following tests FAILED:/ { f = 1; next }
				f && $2 == "-" { print $3; next } f { f = 0 }' "$log" | paste -sd, -)
			[[ -n $names ]] || names="ctest rc=$rc, see $log"
		fi
		printf 'stress: run %d %-12s %-4s %4ds %s\n' "$r" "$label" "$result" "$secs" "$names"
		rows+=("$(printf '%-4d %-12s %-5s %6d  %s' "$r" "$label" "$result" "$secs" "$names")")
	done
done

printf '\n%-4s %-12s %-5s %6s  %s\n' run label result secs failed
printf '%s\n' "${rows[@]}"
exit "$failed"
