#!/usr/bin/env bash
# package.sh OUTDIR [--tree DIR]: build the Debian packages venuewatch-agent and
# venuewatch-server (dpkg-buildpackage -us -uc -b, 2 jobs) and put the .debs, .buildinfo and
# .changes in OUTDIR. The build runs in a copy of the tree under OUTDIR/src, so neither the
# tree nor its parent directory collects debian/tmp, obj-*/ or the .debs; web/node_modules is
# linked, not copied (the dashboard is built from it: run scripts/setup.sh or `npm ci` in web/).
#
#   bash scripts/package.sh build/packages
#   bash scripts/package.sh OUT --tree DIR   # another tree with a debian/ (tests/packaging's
#                                            # older version)
#
# The package version is debian/changelog's; it must be CMakeLists.txt's project(VERSION)
# (optionally followed by ~..., which sorts before it: an older build of the same version).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:?usage: package.sh OUTDIR [--tree DIR]}
shift
TREE=$ROOT
while (($#)); do
	case $1 in
	--tree) TREE=$(cd "${2:?--tree needs a directory}" && pwd); shift 2 ;;
	*) echo "package: unknown argument: $1" >&2; exit 2 ;;
	esac
done

for tool in dpkg-buildpackage dh dpkg-parsechangelog; do
	command -v "$tool" >/dev/null || {
		echo "package: $tool is missing (bash scripts/setup.sh --no-build installs it)" >&2
		exit 2
	}
done
# A tree without web/ (only the older version tests/packaging builds, from before the
# dashboard) packages a server without one.
[[ ! -d $TREE/web || -e $TREE/web/node_modules/.package-lock.json ]] || {
	echo "package: $TREE/web/node_modules is missing: the dashboard cannot be built (npm ci in web/)" >&2
	exit 2
}

project=$(sed -n 's/^project(venuewatch VERSION \([0-9.]*\).*/\1/p' "$TREE/CMakeLists.txt")
version=$(dpkg-parsechangelog -l "$TREE/debian/changelog" -S Version)
if [[ -z $project || ${version%%[~+-]*} != "$project" ]]; then
	echo "package: debian/changelog:1: version $version does not agree with" \
		"CMakeLists.txt project(VERSION ${project:-?}); add a changelog entry (dch -v $project)" >&2
	exit 1
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
stage=$OUT/src/venuewatch-$version
rm -rf "$stage"
mkdir -p "$stage"
# The working tree as it is (uncommitted edits included), without builds and node_modules.
tar -C "$TREE" --exclude=./.git --exclude='./build*' --exclude='./obj-*' \
	--exclude=./web/node_modules --exclude=./demo-state -cf - . | tar -C "$stage" -xf -
[[ ! -d $TREE/web ]] || ln -s "$TREE/web/node_modules" "$stage/web/node_modules"

echo "package: dpkg-buildpackage $version in $stage (log: $OUT/build-$version.log)"
if ! (cd "$stage" && DEB_BUILD_OPTIONS="parallel=2 ${DEB_BUILD_OPTIONS:-}" \
	dpkg-buildpackage -us -uc -b) >"$OUT/build-$version.log" 2>&1; then
	echo "package: dpkg-buildpackage failed; the end of $OUT/build-$version.log:" >&2
	tail -30 "$OUT/build-$version.log" >&2
	exit 1
fi
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
for f in "venuewatch_${version}_${arch}.changes" "venuewatch_${version}_${arch}.buildinfo" \
	"venuewatch-agent_${version}_${arch}.deb" "venuewatch-server_${version}_${arch}.deb"; do
	mv "$OUT/src/$f" "$OUT/$f"
done
# The debug symbols packages (-dbgsym) go along with the .changes that lists them.
mv "$OUT"/src/venuewatch-*-dbgsym_"${version}"_*.deb "$OUT/" 2>/dev/null || true
rm -rf "$stage"
echo "package: $OUT/venuewatch-agent_${version}_${arch}.deb $OUT/venuewatch-server_${version}_${arch}.deb"
