#!/usr/bin/env bash
# test_packages.sh SRC BUILD: the Debian packages, built, linted and then installed, upgraded,
# removed and purged in a clean bookworm root (tests/root/mkroot.sh) that nobody here
# configured. Real peers: dpkg-buildpackage, lintian, apt/dpkg in the root, adduser, curl.
#
#   1. build the current packages (scripts/package.sh) and an older version of them from
#      OLD_COMMIT (before auth migration 5), with this tree's debian/ and install rules;
#      lintian --fail-on error,warning on the current .changes and .debs
#   2. in the root: apt install the older packages (dependencies from Debian's mirror); the
#      operator's steps: edit server.ini, `ca init` and a first start as venuewatch, which
#      creates the state at the old schema
#   3. upgrade to the current packages: the edited conffile is kept without a prompt (dpkg's
#      --force-confold, as README's package route says), the schema migrates (log lines and
#      sqlite's user_version), the server answers /healthz over TLS with its CA; the user,
#      files, modes and conffiles are what the packages promise; both binaries run
#   4. remove: binaries gone, config and state kept; purge: config and state gone, the user kept
#
# Needs root (chroot, mounts) and Debian's mirror. ctest label packaging, RESOURCE_LOCK root.
set -euo pipefail

SRC=$(cd "${1:?usage: test_packages.sh SRC BUILD}" && pwd)
BUILD=$(mkdir -p "${2:?usage: test_packages.sh SRC BUILD}" && cd "$2" && pwd)
# The older version: the last commit on main before issues 16, 12 and 14 landed (issue 11's
# last fix): auth.db at schema 4 (before migration 5), the store before the feed's
# migrations, no inspect.db, no dashboard. Everything else it needs is overlaid from this tree.
OLD_COMMIT=e3187b3dbf80b4b5b0ff4c085189c831d9561e90
SCALE=${VW_TIMEOUT_SCALE:-1}
WORK=$BUILD/packaging
ROOTFS=$WORK/root
STEP=setup

fail() {
	echo "FAIL [$STEP]: $*" >&2
	exit 1
}
step() {
	STEP=$1
	echo "== $STEP ($(date +%T))"
}

[[ $EUID -eq 0 ]] || fail "needs root (chroot, mount)"

mounted=()
server_pid=
cleanup() {
	local rc=$?
	if [[ -n $server_pid ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	# Anything left running inside the root (a server of a failed step) holds its mounts.
	if [[ -d $ROOTFS/proc ]]; then
		for p in /proc/[0-9]*; do
			if [[ $(readlink "$p/root" 2>/dev/null) == "$ROOTFS" ]]; then
				kill -9 "${p#/proc/}" 2>/dev/null || true
			fi
		done
	fi
	local i
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		umount -l "${mounted[i]}" 2>/dev/null || true
	done
	((rc == 0)) || echo "test_packages: failed; logs and the root are in $WORK" >&2
	exit "$rc"
}
trap cleanup EXIT

# in_root CMD...: run in the root as root, non-interactive (a prompt would read EOF and fail).
in_root() {
	chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		LANG=C.UTF-8 "$@" </dev/null
}
as_venuewatch() {
	in_root runuser -u venuewatch -- "$@"
}
apt_in_root() {
	in_root apt-get -q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"$@" >>"$WORK/apt.log" 2>&1 || {
		tail -30 "$WORK/apt.log" >&2
		fail "apt-get $* failed (log: $WORK/apt.log)"
	}
}
# wait_log FILE REGEX SECONDS: poll FILE until a line matches, within a deadline.
wait_log() {
	local deadline=$((SECONDS + $3 * SCALE))
	until grep -Eq "$2" "$1" 2>/dev/null; do
		((SECONDS < deadline)) || {
			tail -20 "$1" >&2 || true
			fail "no line matching '$2' in $1 within $(($3 * SCALE)) s"
		}
		sleep 0.2
	done
}
user_version() {
	in_root sqlite3 "$1" 'PRAGMA user_version'
}
# start_server LOG: the installed server as venuewatch on the port server.ini names (0: any
# free one, read back from the listening line); sets server_pid and port.
start_server() {
	: >"$1"
	# setpriv execs (runuser would stay as a parent): server_pid is the server's own pid.
	chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/bin:/bin \
		setpriv --reuid=venuewatch --regid=venuewatch --init-groups /usr/bin/venuewatch-server -c /etc/venuewatch/server.ini </dev/null 2>"$1" &
	server_pid=$!
	wait_log "$1" 'event=listening .*port=[0-9]+' 60
	port=$(sed -n 's/.*event=listening .*port=\([0-9]*\).*/\1/p' "$1" | head -1)
}
stop_server() {
	kill -TERM "$server_pid"
	local deadline=$((SECONDS + 60 * SCALE))
	while kill -0 "$server_pid" 2>/dev/null; do
		((SECONDS < deadline)) || fail "the server did not exit within $((60 * SCALE)) s of SIGTERM"
		sleep 0.2
	done
	wait "$server_pid" || fail "the server exited with status $? after SIGTERM"
	server_pid=
}

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
# VW_PKG_REUSE=1 (by hand, while working on the root steps): keep the packages of the last run.
if [[ ${VW_PKG_REUSE:-0} == 1 && -d $WORK/old && -d $WORK/new ]]; then
	rm -rf "$ROOTFS" "$WORK/apt.log"
else
	VW_PKG_REUSE=0
	rm -rf "$WORK"
fi
mkdir -p "$WORK"

step "build current packages"
((VW_PKG_REUSE)) || bash "$SRC/scripts/package.sh" "$WORK/new"
version=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version)
project=$(sed -n 's/^project(venuewatch VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
[[ $version == "$project" ]] || fail "debian/changelog says $version, CMakeLists.txt project(VERSION $project)"
for p in agent server; do
	v=$(dpkg-deb -f "$WORK"/new/venuewatch-${p}_"${version}"_*.deb Version)
	[[ $v == "$version" ]] || fail "venuewatch-$p.deb has version $v, not $version"
done

step "lintian"
# --fail-on error,warning: an error or warning not overridden in debian/*.lintian-overrides
# fails; info and pedantic tags are printed, not counted.
lintian --fail-on error,warning --tag-display-limit 0 "$WORK"/new/venuewatch_"${version}"_*.changes \
	>"$WORK/lintian.log" 2>&1 || {
	cat "$WORK/lintian.log" >&2
	fail "lintian found errors or warnings"
}
grep -E '^[EW]:' "$WORK/lintian.log" && fail "lintian printed errors or warnings"
echo "lintian: no errors, no warnings"

step "build older packages from $OLD_COMMIT"
git -C "$SRC" cat-file -e "$OLD_COMMIT^{commit}" 2>/dev/null ||
	fail "commit $OLD_COMMIT (the older version for the upgrade test) is not in $SRC's clone" \
		"(a shallow clone? git fetch --unshallow)"
old_version="$project~git${OLD_COMMIT:0:7}"
old=$WORK/old-tree
if ((VW_PKG_REUSE == 0)); then
	mkdir -p "$old"
	git -C "$SRC" archive "$OLD_COMMIT" | tar -C "$old" -xf -
	# That commit has no install rules and no package: this tree's debian/, web/web.cmake (the
	# dashboard's install) and the install block of CMakeLists.txt; its test suite is left out of
	# the build (it has no VW_TESTS switch).
	cp -a "$SRC/debian" "$old/"
	install_block=$(sed -n '/^# Installed layout/,/^if(VW_TESTS)/p' "$SRC/CMakeLists.txt" | sed '$d')
	[[ -n $install_block ]] || fail "no '# Installed layout' block in $SRC/CMakeLists.txt"
	sed -i '/^add_subdirectory(tests)/d' "$old/CMakeLists.txt"
	# Its configs are this tree's (the packaged paths) with one line more, so that the upgrade
	# meets a conffile changed both by the package and by the operator.
	cp "$SRC"/config/*.example.ini "$old/config/"
	if [[ -d $old/web ]]; then
		cp "$SRC/web/web.cmake" "$old/web/web.cmake"
		cmp -s "$SRC/web/package-lock.json" "$old/web/package-lock.json" ||
			fail "web/package-lock.json changed since $OLD_COMMIT: web/node_modules cannot build its dashboard"
		ln -s "$SRC/web/node_modules" "$old/web/node_modules"
		sed -i 's|^include(web/web.cmake)|include(GNUInstallDirs)\n&|' "$old/CMakeLists.txt"
	else
		# Older than the dashboard: a server package without one, and a server.ini without
		# the [web] section that version would refuse as unknown.
		printf 'include(GNUInstallDirs)\n' >>"$old/CMakeLists.txt"
		sed -i '/usr\/share\/venuewatch\/web/d' "$old"/debian/*.install
		sed -i '/^\[web\]/,/^\[/{/^\[web\]/d;/^\[/!d}' "$old/config/server.example.ini"
		! grep -q '^\[web\]\|^root = ' "$old/config/server.example.ini" ||
			fail "cannot take [web] out of the older server.ini"
	fi
	grep -qx 'include(GNUInstallDirs)' "$old/CMakeLists.txt" || fail "$OLD_COMMIT's CMakeLists.txt: cannot add include(GNUInstallDirs)"
	printf '%s\n' "$install_block" >>"$old/CMakeLists.txt"
	for f in "$old"/config/*.example.ini; do
		sed -i "1a ; (packaged by venuewatch $old_version)" "$f"
	done
	# Man pages arrived later (man/man.cmake): the older packages have none.
	sed -i '/usr\/share\/man/d' "$old"/debian/*.install
	rm -f "$old"/debian/*.manpages
	(cd "$old" && DEBFULLNAME="venuewatch dev" DEBEMAIL=dev@venuewatch.example.org \
		dch -b -v "$old_version" -D bookworm --force-distribution "Older version for tests/packaging's upgrade test." \
		>/dev/null 2>&1 && dpkg-parsechangelog -S Version) | grep -qx "$old_version" ||
		fail "cannot write the older changelog entry $old_version"
	# dch puts the new entry on top; it must sort below the current version.
	dpkg --compare-versions "$old_version" lt "$version" || fail "$old_version does not sort before $version"
	bash "$SRC/scripts/package.sh" "$WORK/old" --tree "$old"
fi

step "clean root"
VW_ROOT_CACHE=${VW_ROOT_CACHE:-$BUILD/root-cache} bash "$SRC/tests/root/mkroot.sh" "$ROOTFS" >/dev/null
# The root's / comes out of mkroot's tarball with the mode of debootstrap's mktemp -d (0700):
# no user but root could reach a file in it (venuewatch, man, _apt).
chmod 0755 "$ROOTFS"
mount -t proc proc "$ROOTFS/proc" && mounted+=("$ROOTFS/proc")
mount --bind /dev "$ROOTFS/dev" && mounted+=("$ROOTFS/dev")
mount -t devpts -o newinstance devpts "$ROOTFS/dev/pts" && mounted+=("$ROOTFS/dev/pts")
# The root's own resolv.conf (a copy; the host's /etc is only read).
# rm first: a symlink there would be followed out of the root.
rm -f "$ROOTFS/etc/resolv.conf"
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
mkdir -p "$ROOTFS/tmp/debs/old" "$ROOTFS/tmp/debs/new"
cp "$WORK"/old/venuewatch-{agent,server}_*.deb "$ROOTFS/tmp/debs/old/"
cp "$WORK"/new/venuewatch-{agent,server}_*.deb "$ROOTFS/tmp/debs/new/"
apt_in_root update
# curl and sqlite3 are the test's, not the packages' dependencies.
apt_in_root install --no-install-recommends curl sqlite3

step "install $old_version"
apt_in_root install --no-install-recommends "/tmp/debs/old/venuewatch-agent_${old_version}_$arch.deb" \
	"/tmp/debs/old/venuewatch-server_${old_version}_$arch.deb"
[[ $(in_root dpkg-query -W -f='${Version}' venuewatch-server) == "$old_version" ]] ||
	fail "venuewatch-server $old_version is not installed"
# The operator's edit: loopback only, any free port (the test's run-time port).
sed -i 's/^listen = .*/listen = 127.0.0.1:0/' "$ROOTFS/etc/venuewatch/server.ini"
grep -qx 'listen = 127.0.0.1:0' "$ROOTFS/etc/venuewatch/server.ini" || fail "cannot edit server.ini"
as_venuewatch venuewatch-server -c /etc/venuewatch/server.ini ca init >"$WORK/ca-init.log" 2>&1 ||
	fail "ca init as venuewatch failed: $(cat "$WORK/ca-init.log")"
start_server "$WORK/server-old.log"
stop_server
state=/var/lib/venuewatch-server
declare -A before
for db in venuewatch auth inspect; do
	if [[ -f $ROOTFS$state/$db.db ]]; then
		before[$db]=$(user_version "$state/$db.db")
	elif [[ $db == inspect ]]; then
		before[$db]=0 # older than issue 12: the upgrade creates it
	else
		fail "the old server made no $state/$db.db"
	fi
done
echo "old schema: venuewatch.db ${before[venuewatch]}, auth.db ${before[auth]}, inspect.db ${before[inspect]}"

step "upgrade to $version"
apt_in_root install --no-install-recommends "/tmp/debs/new/venuewatch-agent_${version}_$arch.deb" \
	"/tmp/debs/new/venuewatch-server_${version}_$arch.deb"
for p in agent server; do
	[[ $(in_root dpkg-query -W -f='${Version}' venuewatch-$p) == "$version" ]] ||
		fail "venuewatch-$p is not at $version after the upgrade"
done
grep -qx 'listen = 127.0.0.1:0' "$ROOTFS/etc/venuewatch/server.ini" ||
	fail "the upgrade lost the operator's edit of /etc/venuewatch/server.ini"
[[ -f $ROOTFS/etc/venuewatch/server.ini.dpkg-dist ]] ||
	fail "no server.ini.dpkg-dist: dpkg did not meet the changed conffile (is the old one different?)"
start_server "$WORK/server-new.log"
rose=0
for db in venuewatch auth inspect; do
	now=$(user_version "$state/$db.db")
	((now >= before[$db])) || fail "$db.db's user_version went down: ${before[$db]} -> $now"
	if ((now > before[$db])); then
		rose=1
		name=$db
		[[ $db == venuewatch ]] && name=store
		grep -q "event=${name}_migrated version=$now" "$WORK/server-new.log" ||
			fail "$db.db rose to $now but the server logged no event=${name}_migrated version=$now"
	fi
	echo "$db.db: user_version ${before[$db]} -> $now"
done
((rose)) || fail "no schema rose from $old_version to $version (is $OLD_COMMIT old enough?)"
((before[auth] < $(user_version "$state/auth.db"))) || fail "auth.db was not migrated (migration 5)"
health=$(in_root curl -sS --max-time $((10 * SCALE)) --cacert "$state/pki/ca.crt" \
	"https://127.0.0.1:$port/healthz") || fail "GET /healthz on 127.0.0.1:$port failed"
echo "healthz: $health"
stop_server

step "installed files"
entry=$(in_root getent passwd venuewatch) || fail "no user venuewatch"
IFS=: read -r _ _ uid _ _ home shell <<<"$entry"
((uid < 1000)) || fail "venuewatch is not a system user (uid $uid)"
[[ $shell == /usr/sbin/nologin ]] || fail "venuewatch's shell is $shell, not /usr/sbin/nologin"
[[ $home == /nonexistent && ! -e $ROOTFS/nonexistent ]] || fail "venuewatch's home is $home"
in_root getent group venuewatch >/dev/null || fail "no group venuewatch"
check_mode() { # PATH MODE OWNER:GROUP
	local got
	got=$(in_root stat -c '%a %U:%G' "$1") || fail "$1 is missing"
	[[ $got == "$2 $3" ]] || fail "$1 is $got, not $2 $3"
}
check_mode /usr/bin/venuewatch-agent 755 root:root
check_mode /usr/bin/venuewatch-server 755 root:root
check_mode /etc/venuewatch/agent.ini 640 root:venuewatch
check_mode /etc/venuewatch/server.ini 640 root:venuewatch
check_mode /etc/venuewatch/pki 700 venuewatch:venuewatch
check_mode /var/lib/venuewatch 700 venuewatch:venuewatch
check_mode /var/lib/venuewatch-server 700 venuewatch:venuewatch
check_mode "$state/pki/ca.key" 600 venuewatch:venuewatch
check_mode /lib/systemd/system/venuewatch-agent.service 644 root:root
check_mode /lib/systemd/system/venuewatch-server.service 644 root:root
check_mode /usr/share/venuewatch/web/index.html 644 root:root
for p in agent server; do
	in_root dpkg-query -W -f='${Conffiles}\n' venuewatch-$p | grep -q "^ /etc/venuewatch/$p.ini " ||
		fail "/etc/venuewatch/$p.ini is not a conffile of venuewatch-$p"
	# Not enabled at install (debian/rules: the CA and the enrolment come first).
	[[ ! -e $ROOTFS/etc/systemd/system/multi-user.target.wants/venuewatch-$p.service ]] ||
		fail "venuewatch-$p.service was enabled by the package"
	as_venuewatch venuewatch-$p --help >/dev/null || fail "venuewatch-$p --help failed"
	# The installed pages, found by man(1) of the root itself (MANPATH, compressed by dh).
	for page in "8 venuewatch-$p" "5 venuewatch-$p.ini"; do
		in_root env MANWIDTH=80 man $page 2>&1 | grep -q "^NAME" ||
			fail "man $page does not render in the root"
	done
done
# The shipped agent.ini as packaged (the server's is the operator's edit, checked by the start).
cp "$ROOTFS/etc/venuewatch/server.ini.dpkg-dist" "$ROOTFS/tmp/server.ini"
chmod 644 "$ROOTFS/tmp/server.ini"
as_venuewatch venuewatch-agent -c /etc/venuewatch/agent.ini --check-config ||
	fail "the shipped agent.ini fails --check-config"
as_venuewatch venuewatch-server -c /tmp/server.ini --check-config ||
	fail "the shipped server.ini fails --check-config"
grep -q "^root = /usr/share/venuewatch/web" "$ROOTFS/tmp/server.ini" ||
	fail "the shipped server.ini does not serve /usr/share/venuewatch/web"

step "remove"
apt_in_root remove venuewatch-agent venuewatch-server
for p in agent server; do
	[[ ! -e $ROOTFS/usr/bin/venuewatch-$p ]] || fail "/usr/bin/venuewatch-$p is still there after remove"
	[[ -f $ROOTFS/etc/venuewatch/$p.ini ]] || fail "remove took /etc/venuewatch/$p.ini"
	[[ $(in_root dpkg-query -W -f='${db:Status-Abbrev}' venuewatch-$p) == rc* ]] ||
		fail "venuewatch-$p is not in state rc (removed, config kept)"
done
[[ -f $ROOTFS$state/pki/ca.key && -f $ROOTFS$state/venuewatch.db ]] || fail "remove took the server's state"
[[ -d $ROOTFS/var/lib/venuewatch ]] || fail "remove took the agent's state directory"

step "purge"
apt_in_root purge venuewatch-agent venuewatch-server
[[ ! -e $ROOTFS/etc/venuewatch ]] || fail "/etc/venuewatch is still there after purge: $(ls -A "$ROOTFS/etc/venuewatch")"
[[ ! -e $ROOTFS$state && ! -e $ROOTFS/var/lib/venuewatch ]] || fail "purge left the state under /var/lib"
in_root dpkg-statoverride --list | grep -q venuewatch && fail "purge left a dpkg-statoverride"
# Debian practice: the system user stays (files elsewhere may still carry its uid).
in_root getent passwd venuewatch >/dev/null || fail "purge removed the user venuewatch"
# (apt may leave a "pn", purged, entry: anything installed or with config files counts.)
if in_root dpkg-query -W -f='${db:Status-Abbrev}\n' venuewatch-agent venuewatch-server 2>/dev/null |
	grep -Eq '^[ihr][icUFHW]'; then
	fail "dpkg still knows venuewatch-agent or venuewatch-server after purge"
fi

STEP=done
echo "test_packages: ok ($old_version -> $version, ${SECONDS} s)"
