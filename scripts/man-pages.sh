#!/usr/bin/env bash
# man-pages.sh: the man pages under man/ are generated from man/*.in (the prose) and the
# binaries' own tables — `--help-man` (every command with its usage, help and options) and
# `--help-man --help-config` (every configuration key) — so they cannot drift from the code.
#
#   bash scripts/man-pages.sh BUILD_DIR          # rewrite man/*.[58]
#   bash scripts/man-pages.sh BUILD_DIR --check  # exit 1 if a page is stale (a ctest)
#   bash scripts/man-pages.sh BUILD_DIR --lint   # exit 1 on any warning of groff (through
#                                                # man -l), mandoc or lexgrog (a ctest)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:?usage: man-pages.sh BUILD_DIR [--check]}
VERSION=$(sed -n 's/^project(venuewatch VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
[[ -n $VERSION ]] || { echo "man-pages: no project(VERSION) in CMakeLists.txt" >&2; exit 1; }

# render TEMPLATE BINARY ARGS...: the template with @VERSION@ and @GENERATED@ filled in.
render() {
	local tpl=$1 bin=$2
	shift 2
	local gen
	gen=$("$BUILD/$bin" "$@")
	while IFS= read -r line || [[ -n $line ]]; do
		case $line in
		@GENERATED@) printf '%s\n' "$gen" ;;
		*) printf '%s\n' "${line//@VERSION@/$VERSION}" ;;
		esac
	done <"$tpl"
}

PAGES=(venuewatch-agent.8 venuewatch-server.8 venuewatch-agent.ini.5 venuewatch-server.ini.5)

if [[ ${2:-} == --lint ]]; then
	bad=0
	for page in "${PAGES[@]}"; do
		f=$ROOT/man/$page
		# groff's warnings as man(1) formats the page (two independent formatters: groff here,
		# mandoc below); lexgrog is what mandb reads the NAME line with (whatis, apropos).
		w=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l "$f" 2>&1 >/dev/null)
		l=$(mandoc -T lint -W warning "$f" 2>&1 || true)
		if [[ -n $w || -n $l ]] || ! lexgrog "$f" >/dev/null; then
			echo "man-pages: $page: ${w}${w:+ }${l}" >&2
			bad=1
		fi
	done
	exit $bad
fi

stale=0
for page in "${PAGES[@]}"; do
	bin=${page%%.*}
	args=(--help-man)
	[[ $page == *.ini.5 ]] && args+=(--help-config)
	out=$ROOT/man/$page
	if [[ ${2:-} == --check ]]; then
		if ! diff -u "$out" <(render "$ROOT/man/$page.in" "$bin" "${args[@]}") >&2; then
			echo "man-pages: man/$page is stale; run: bash scripts/man-pages.sh $BUILD" >&2
			stale=1
		fi
	else
		render "$ROOT/man/$page.in" "$bin" "${args[@]}" >"$out"
		echo "man-pages: wrote man/$page"
	fi
done
exit $stale
