#!/usr/bin/env bash
# pg.sh: runs a command beside a real, throw-away PostgreSQL 15 (Debian's postgresql-15).
#
#   bash tests/tools/pg.sh COMMAND [ARGS...]
#
# initdb into a fresh temporary directory, as an unprivileged user (PostgreSQL refuses to run
# as root: when root, the user vwpg is created if missing and the server runs as it), then
# pg_ctl start on a port chosen at run time, listening only on a unix socket inside that
# directory (no TCP port to collide with the other engineers' tests). Authentication is
# scram-sha-256 with a random password, kept only in a libpq password file (0600), so the
# DSN the command gets carries no secret:
#   VW_PG_DSN          "host=<dir> port=<port> user=vwpg" (no dbname: callers add theirs)
#   VW_PG_PASSFILE     the libpq password file (PGPASSFILE is set to it too)
#   VW_PG_BIN          the PostgreSQL binaries' directory
#   VW_PG_CTL          a script running this server's pg_ctl (as its user, same options):
#                      "$VW_PG_CTL stop -m fast", "$VW_PG_CTL start" (tests of an outage)
# The server is stopped and the directory removed on exit, whatever the command did; the
# command's exit status is pg.sh's. Exit 77 (ctest's skip) only when the binaries are absent.
set -euo pipefail

PG_BIN=${VW_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=vwpg
if [[ ! -x $PG_BIN/initdb || ! -x $PG_BIN/pg_ctl ]]; then
	echo "pg.sh: no PostgreSQL 15 in $PG_BIN (apt-get install postgresql-15): skipped" >&2
	exit 77
fi
(($# > 0)) || { echo "usage: pg.sh COMMAND [ARGS...]" >&2; exit 2; }

as_pg=()
if ((EUID == 0)); then
	if ! id -u "$PG_USER" >/dev/null 2>&1; then
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
			"$PG_USER"
	fi
	as_pg=(runuser -u "$PG_USER" --)
else
	PG_USER=$(id -un)
fi

dir=$(mktemp -d /tmp/vw-pg-XXXXXX)
chmod 0711 "$dir" # the socket's directory: others may connect, not list
cleanup() {
	local rc=$?
	if [[ -f $dir/data/postmaster.pid ]]; then
		local pid
		pid=$(head -n1 "$dir/data/postmaster.pid")
		"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
		# pg_ctl returns once the pid file is gone, a moment before the postmaster exits:
		# wait for the process itself (30 s deadline), so "stopped on exit" holds.
		for ((i = 0; i < 300; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	rm -rf "$dir"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nobody bound a moment ago: with listen_addresses='' it only names the socket file,
# but libpq and the server agree on it, and two harnesses never share a socket.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')

mkdir "$dir/data" "$dir/run"
# The password files are 0600 from their first byte (umask in a subshell), not after.
(umask 077 && printf '%s\n' "$password" >"$dir/pwfile")
if ((EUID == 0)); then
	chown "$PG_USER" "$dir/data" "$dir/run" "$dir/pwfile"
fi
"${as_pg[@]}" "$PG_BIN/initdb" -D "$dir/data" -U "$PG_USER" --auth=scram-sha-256 \
	--pwfile="$dir/pwfile" --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log" >&2; exit 1; }
rm -f "$dir/pwfile"
# fsync stays on: the store's ack-after-commit is what the tests check, on a real commit.
# The one way this server is controlled, here and by tests (VW_PG_CTL): start takes the
# options; stop, restart and status pass theirs through.
{
	printf '#!/usr/bin/env bash\nset -euo pipefail\n'
	printf 'cmd=$1; shift\n'
	printf 'opts=()\n[[ $cmd == start || $cmd == restart ]] && opts=(-l %q -o %q)\n' \
		"$dir/run/server.log" \
		"-c listen_addresses='' -c unix_socket_directories='$dir/run' -p $port -c max_connections=200"
	printf 'exec %s %q -D %q -w -t 60 "${opts[@]}" "$cmd" "$@"\n' \
		"$( ((EUID == 0)) && printf 'runuser -u %q --' "$PG_USER")" "$PG_BIN/pg_ctl" "$dir/data"
} >"$dir/pgctl"
chmod 0755 "$dir/pgctl"
"$dir/pgctl" start >/dev/null || { cat "$dir/run/server.log" >&2; exit 1; }

# hostname:port:database:username:password (libpq's format); for a socket outside libpq's
# default directory the host field is the directory, as the DSN names it.
(umask 077 && printf '%s:%s:*:%s:%s\n' "$dir/run" "$port" "$PG_USER" "$password" >"$dir/pgpass")
chmod 0600 "$dir/pgpass"
export VW_PG_DSN="host=$dir/run port=$port user=$PG_USER"
export VW_PG_PASSFILE="$dir/pgpass" PGPASSFILE="$dir/pgpass" VW_PG_BIN="$PG_BIN" VW_PG_CTL="$dir/pgctl"
set +e
"$@"
rc=$?
set -e
if ((rc != 0)); then
	echo "pg.sh: command failed ($rc); the server's log:" >&2
	tail -n 40 "$dir/run/server.log" >&2 || true
fi
exit "$rc"
