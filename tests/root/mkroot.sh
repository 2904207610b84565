#!/usr/bin/env bash
# mkroot.sh DEST: a clean Debian bookworm root in DEST (debootstrap minbase with systemd, so it
# can be entered with chroot or booted with systemd-nspawn -b), for the tests that install
# the packages or run the units in a system nobody here configured (ctest labels packaging,
# systemd). debootstrap takes 1-2 minutes; the first root of a run is kept as a tarball in
# $VW_ROOT_CACHE (default: build/root-cache beside the tree) and later roots are unpacked
# from it in seconds. Needs root and Debian's mirror (the only network these tests use).
#
#   bash tests/root/mkroot.sh DEST
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEST=${1:?usage: mkroot.sh DEST}
CACHE=${VW_ROOT_CACHE:-$ROOT/build/root-cache}
MIRROR=${VW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the tests need beyond minbase: systemd as PID 1 for nspawn -b, dbus for systemctl,
# ca-certificates for apt over https mirrors, man-db to read the installed pages.
INCLUDE=systemd,systemd-sysv,dbus,ca-certificates,man-db
KEY=$(printf '%s %s' "$INCLUDE" "$MIRROR" | sha256sum | cut -c1-12)
TAR=$CACHE/bookworm-$KEY.tar

if [[ $EUID -ne 0 ]]; then
	echo "mkroot: needs root (debootstrap, chroot)" >&2
	exit 2
fi
command -v debootstrap >/dev/null || {
	echo "mkroot: debootstrap is not installed (apt-get install debootstrap)" >&2
	exit 2
}
mkdir -p "$CACHE" "$DEST"
# One debootstrap per cache even when two tests start at once.
exec 9>"$CACHE/.lock"
flock 9
if [[ ! -s $TAR ]]; then
	work=$(mktemp -d "$CACHE/.boot.XXXXXX")
	if ! debootstrap --variant=minbase --include="$INCLUDE" bookworm "$work" "$MIRROR" \
		>"$CACHE/debootstrap.log" 2>&1; then
		echo "mkroot: debootstrap failed; the end of $CACHE/debootstrap.log:" >&2
		tail -20 "$CACHE/debootstrap.log" >&2
		rm -rf "$work"
		exit 1
	fi
	# apt inside the root uses the same mirror; the package cache is not kept in the tarball.
	rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/*_Packages
	tar -C "$work" -cf "$TAR.tmp" .
	mv "$TAR.tmp" "$TAR"
	rm -rf "$work"
fi
flock -u 9
tar -C "$DEST" -xf "$TAR"
# The tarball's "." has the mode of debootstrap's mktemp -d (0700): no user but root could
# reach a file in the root (venuewatch, man, _apt) — a root is 0755 like any system's /.
chmod 0755 "$DEST"
echo "mkroot: $DEST ready (bookworm minbase + $INCLUDE)"
