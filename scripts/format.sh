#!/usr/bin/env bash
# format.sh: the tree's C formatting is .clang-format's (Debian bookworm's clang-format 14).
#
#   bash scripts/format.sh           # rewrite every tracked .c/.h in place
#   bash scripts/format.sh --check   # list the files that differ; exit 1 if any (ctest: format_check)
#
# Tables that are easier to read aligned by hand are fenced with "clang-format off/on" comments.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v clang-format >/dev/null || { echo "format: clang-format not installed (scripts/setup.sh)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.c' '*.h')
((${#files[@]})) || { echo "format: no C files found (not a git checkout?)" >&2; exit 2; }
if [[ ${1:-} == --check ]]; then
	bad=()
	for f in "${files[@]}"; do
		clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
	done
	if ((${#bad[@]})); then
		printf 'format: %d file(s) differ from .clang-format (run bash scripts/format.sh):\n' "${#bad[@]}" >&2
		printf '  %s\n' "${bad[@]}" >&2
		exit 1
	fi
	echo "format: ${#files[@]} files match .clang-format"
else
	clang-format -i "${files[@]}"
fi
