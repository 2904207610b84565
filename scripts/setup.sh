#!/usr/bin/env bash
# setup.sh: install the Debian (bookworm) packages venuewatch's build, tests and demo need, then
# configure and build a release build in build/.
#
#   bash scripts/setup.sh            # install what is missing (sudo if not root), then build
#   bash scripts/setup.sh --no-build # packages only
#
# Safe to re-run: when every package is already installed it skips apt entirely (checked with
# dpkg-query), so a re-run costs only an incremental build.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NO_BUILD=0
for arg in "$@"; do
	case $arg in
	--no-build) NO_BUILD=1 ;;
	-h | --help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "setup: unknown argument: $arg" >&2; exit 2 ;;
	esac
done

PACKAGES=(
	# build
	build-essential cmake pkg-config clang clang-format
	# libraries (DESIGN.md §2)
	libuv1-dev libcurl4-openssl-dev libssl-dev
	libavformat-dev libavcodec-dev libavfilter-dev libswscale-dev libavutil-dev
	libsqlite3-dev libhttp-parser-dev libcjson-dev libinih-dev libcsv-dev
	# unit tests
	libcmocka-dev
	# the PostgreSQL store backend (libpq) and the real PostgreSQL 15 its tests start
	# (tests/tools/pg.sh; ctest label postgres)
	libpq-dev postgresql-15
	# test cameras (tests/tools/camd.py runs under Debian's python3 with gi)
	gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
	gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
	python3-gi ffmpeg
	# demo and tests
	openssl curl sqlite3 ca-certificates iproute2 nftables
	# TLS peers for tests/security/test_tls_interop.py: GnuTLS, Chromium (BoringSSL) and
	# certutil to trust the test CA in Chromium's NSS database; Chromium also runs the
	# dashboard's browser tests (tests/browser, driven by playwright-core from web/node_modules)
	gnutls-bin chromium libnss3-tools
	# a CJK font, so the browser tests' screenshots of the zh-CN dashboard show Chinese
	fonts-wqy-microhei
	# tests under load (tests/stress.sh)
	stress-ng
	# benchmarks (tests/bench: /usr/bin/time -v for CPU and peak RSS)
	time
	# operations (issue 14): the Debian packages (debhelper, lintian), sd_notify (libsystemd),
	# clean roots to install into and boot (debootstrap, systemd-nspawn), promtool (prometheus)
	# for the metrics, groff and mandoc to check the man pages
	debhelper devscripts dpkg-dev fakeroot lintian libsystemd-dev debootstrap
	systemd-container prometheus groff mandoc man-db
	# the agent's metrics file read by real peers: node_exporter's textfile collector and
	# the Prometheus client library's own text parser (tests/integration/test_agent_metrics.py)
	prometheus-node-exporter python3-prometheus-client
)

missing=()
for pkg in "${PACKAGES[@]}"; do
	# "ii" = wanted install, installed; anything else (absent, half-installed) needs apt.
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
	[[ $status == ii* ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
	echo "setup: all ${#PACKAGES[@]} packages installed"
else
	SUDO=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
		SUDO=(sudo)
	fi
	echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${missing[@]}"
fi

# The dashboard's npm packages (web/package-lock.json, exact versions; `npm ci` installs exactly
# those and never rewrites the lock). Node 20 comes with the machine image; without it (or npm)
# the C build still works and says the dashboard was not built. Skipped when node_modules
# already holds what the lock file names.
if command -v node >/dev/null && command -v npm >/dev/null; then
	# npm ls fails when a package of the lock file is missing or of another version.
	if ! (cd "$ROOT/web" && [[ -e node_modules/.package-lock.json ]] && npm ls --all >/dev/null 2>&1); then
		echo "setup: npm ci in web/ (node $(node --version))"
		(cd "$ROOT/web" && npm ci --no-audit --no-fund)
	else
		echo "setup: web/node_modules is current"
	fi
else
	echo "setup: node/npm not found: the dashboard (web/) will not be built" >&2
fi

if ((NO_BUILD == 0)); then
	echo "setup: building (release) in $ROOT/build"
	cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release
	cmake --build "$ROOT/build" -j"$(nproc)"
fi
