#!/usr/bin/env bash
# run_guides.sh SRC BUILD: ctest's entry to the guides' test (label packaging). Builds the
# packages from this tree (scripts/package.sh into BUILD/guides-debs; VW_GUIDES_DEBS=DIR uses
# .debs built already, e.g. by the packaging test of the same run) and runs every command of
# docs/zh-CN/bureau.md and venue.md in a clean root booted with systemd, as one story:
# the bureau installs the collector and issues the venue's token, the venue installs the agent
# and enrolls, the bureau backs up, restores and rotates the CA, the venue enrolls again.
set -euo pipefail
SRC=${1:?usage: run_guides.sh SRC BUILD}
BUILD=${2:?usage: run_guides.sh SRC BUILD}
debs=${VW_GUIDES_DEBS:-}
if [[ -z $debs ]]; then
	debs=$BUILD/guides-debs
	[[ -f $SRC/scripts/package.sh ]] || {
		echo "run_guides: $SRC/scripts/package.sh is missing: the guides install the packages" \
			"it builds (the packaging part of issue 14)" >&2
		exit 1
	}
	rm -rf "$debs"
	bash "$SRC/scripts/package.sh" "$debs"
fi
g=$SRC/docs/zh-CN
exec /usr/bin/python3 "$SRC/tests/docs/guides_test.py" --debs "$debs" \
	--workdir "$BUILD/guides-run" \
	"$g/bureau.md:1" "$g/venue.md:1" "$g/bureau.md:2" "$g/venue.md:2"
