#!/usr/bin/python3
"""The hardened units under a real systemd (issue 14): a clean bookworm root
(tests/root/mkroot.sh) booted with systemd-nspawn, host network shared, the binaries at
/usr/bin, the units at /lib/systemd/system, the configs at /etc/venuewatch, user venuewatch.
Everything is driven with systemctl inside the container (nsenter into its PID 1):

- the server starts as Type=notify (systemctl start returns after READY=1), StatusText is its
  STATUS= line, it listens, its CA signer signs an enrollment, it writes its state;
- the agent starts, checks a camera (camd on the host's loopback) and a recordings tree it
  may only read, uploads, and the server stores stream and recording results;
- systemctl reload of the server: RELOADING=1 then READY=1, active again;
- the watchdog: a frozen server (SIGSTOP) with WatchdogSec=3s is killed and restarted;
- the journal of both services holds no hardening denial (EPERM, EACCES, seccomp).

    /usr/bin/python3 tests/systemd/test_units.py BUILD_DIR
Needs root, systemd-nspawn, Debian's python3 (camd's GStreamer). VW_KEEP=1 keeps the root.
"""

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from harness import TIMEOUT_SCALE, wait_for  # noqa: E402

BUILD = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "build").resolve()
SITE, ORG, CITY = "site-sd", "org-sd", "city-sd"
SRV_INI = "/etc/venuewatch/server.ini"
AGENT_INI = "/etc/venuewatch/agent.ini"
# What a hardening directive's denial looks like in our logs (strerror and errno names) or in
# systemd's own messages about the unit.
DENIALS = re.compile(r"EPERM|EACCES|Permission denied|Operation not permitted|seccomp|"
                     r"Bad system call|SIGSYS|status=31", re.I)


def log(msg):
    print(f"test_units: {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Root:
    def __init__(self, path):
        self.path = Path(path)
        self.nspawn = None
        self.leader = None

    def install_binaries(self):
        """The two binaries and every shared library they need that the root lacks, copied
        from this (bookworm) machine at the same paths: the root stays a clean Debian with
        only what the programs load."""
        for name in ("venuewatch-server", "venuewatch-agent"):
            dst = self.path / "usr/bin" / name
            shutil.copy2(BUILD / name, dst)
            out = subprocess.run(["ldd", str(BUILD / name)], capture_output=True, text=True,
                                 check=True).stdout
            for lib in re.findall(r"=> (/\S+)", out):
                target = self.path / lib.lstrip("/")
                if not target.exists() and not (self.path / "usr" / lib.lstrip("/")).exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(os.path.realpath(lib), target)

    def boot(self):
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "-q", "--register=no", "--keep-unit", "-D", str(self.path), "-b",
             # nspawn 252's own filter predates Landlock; the signer confines itself with it
             "--system-call-filter=landlock_create_ruleset landlock_add_rule "
             "landlock_restrict_self"],
            stdin=subprocess.DEVNULL, stdout=open(self.path.parent / "nspawn.log", "w"),
            stderr=subprocess.STDOUT)

        def leader():
            if self.nspawn.poll() is not None:
                raise AssertionError(f"systemd-nspawn exited {self.nspawn.returncode}: "
                                     f"{(self.path.parent / 'nspawn.log').read_text()}")
            for pid in subprocess.run(["pgrep", "-P", str(self.nspawn.pid)],
                                      capture_output=True, text=True).stdout.split():
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
            return None
        self.leader = wait_for(leader, 30, "the container's systemd")
        # is-system-running answers only once PID 1's bus is up.
        wait_for(lambda: self.sh("systemctl is-system-running", check=False).stdout.strip()
                 in ("running", "degraded"), 60, "the container's boot to finish")

    def sh(self, cmd, check=True, timeout=120):
        """cmd in every namespace of the container's PID 1."""
        p = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "/bin/sh", "-c", cmd],
                           capture_output=True, text=True, timeout=timeout * TIMEOUT_SCALE)
        if check and p.returncode != 0:
            raise AssertionError(f"in the container: {cmd}: exit {p.returncode}\n"
                                 f"{p.stdout}{p.stderr}")
        return p

    def show(self, unit, prop):
        return self.sh(f"systemctl show -P {prop} {unit}").stdout.strip()

    def stop(self):
        if self.nspawn and self.nspawn.poll() is None:
            self.nspawn.terminate()  # nspawn asks the container's systemd to power off
            try:
                self.nspawn.wait(60 * TIMEOUT_SCALE)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait()


def make_segment(path):
    """One short recording segment, as a recorder would write it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=10", "-t", "4", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)


def main():
    if os.geteuid() != 0:
        print("test_units: needs root (nspawn)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="vw-sysd-", dir="/var/tmp"))
    root = Root(work / "root")
    camd = None
    ok = False
    try:
        subprocess.run(["bash", str(REPO / "tests/root/mkroot.sh"), str(root.path)], check=True,
                       stdout=subprocess.DEVNULL)
        r = root.path
        # The cached tarball's top entry is debootstrap's mktemp dir (0700): with / closed to
        # every user but root, dbus (messagebus) cannot start and the boot never finishes.
        os.chmod(r, 0o755)
        root.install_binaries()
        for unit in ("venuewatch-server.service", "venuewatch-agent.service"):
            shutil.copy2(REPO / "systemd" / unit, r / "lib/systemd/system" / unit)
        port = free_port()
        camd = subprocess.Popen(["/usr/bin/python3", str(REPO / "tests/tools/camd.py"),
                                 "--port", "0", "--mount", "ok"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        m = re.match(r"READY port=(\d+)", camd.stdout.readline())
        if not m:
            raise AssertionError("camd did not start")
        cam_port = int(m.group(1))

        etc = r / "etc/venuewatch"
        (etc / "pki").mkdir(parents=True)
        (etc / "server.ini").write_text(f"""[server]
listen = 127.0.0.1:{port}
state_dir = /var/lib/venuewatch-server
hostnames = localhost,127.0.0.1
""")
        # A recordings tree owned by the recorder (root), readable by all: the agent reads it.
        now = time.time()
        for i in range(3):
            t = time.gmtime(now - 120 + i * 30)
            make_segment(r / "srv/recordings/front" / time.strftime("%Y%m%d/%H%M%S.mp4", t))
        (etc / "agent.ini").write_text(f"""[agent]
site = {SITE}
org = {ORG}
state_dir = /var/lib/venuewatch
interval = 2s
check_timeout = 5s

[collector]
url = https://127.0.0.1:{port}
ca = /etc/venuewatch/pki/ca.crt
cert = /etc/venuewatch/pki/agent.crt
key = /etc/venuewatch/pki/agent.key

[recordings]
root = /srv/recordings
settle = 0s
scan_interval = 2s
missing_after = 10m

[room hall-1]
min_cameras = 1

[camera front]
room = hall-1
url = rtsp://127.0.0.1:{cam_port}/ok
transport = tcp
""")
        subprocess.run(["chroot", str(r), "useradd", "--system", "--user-group", "--home-dir",
                        "/nonexistent", "--shell", "/usr/sbin/nologin", "venuewatch"], check=True)
        subprocess.run(["chroot", str(r), "sh", "-c",
                        "chown root:venuewatch /etc/venuewatch/*.ini && "
                        "chmod 0640 /etc/venuewatch/*.ini"], check=True)
        root.boot()
        log("container up")

        # --- the server -------------------------------------------------------------------
        root.sh("install -d -o venuewatch -g venuewatch -m 0700 /var/lib/venuewatch-server && "
                f"runuser -u venuewatch -- venuewatch-server -c {SRV_INI} ca init")
        t0 = time.monotonic()
        root.sh("systemctl start venuewatch-server")  # Type=notify: returns after READY=1
        log(f"server started in {time.monotonic() - t0:.1f} s")
        assert root.show("venuewatch-server", "ActiveState") == "active"
        assert root.show("venuewatch-server", "Type") == "notify"
        status = root.show("venuewatch-server", "StatusText")
        assert re.match(r"\d+ sites, \d+ down, \d+ silent, \d+ problems open, \d+ connections, "
                        r"\d+ event streams, \d+ results/s", status), status
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # it listens
        log(f"server StatusText: {status}")

        # --- the CA signer signs: an enrollment token, the agent enrolls ------------------
        token = root.sh(f"runuser -u venuewatch -- venuewatch-server -c {SRV_INI} enroll-token "
                        f"--site {SITE} --org {ORG} --city {CITY}").stdout.strip()
        root.sh("cp /var/lib/venuewatch-server/pki/ca.crt /etc/venuewatch/pki/ca.crt && "
                f"venuewatch-agent -c {AGENT_INI} enroll --token {token} && "
                "chown -R root:venuewatch /etc/venuewatch/pki && "
                "chmod 0750 /etc/venuewatch/pki && chmod 0640 /etc/venuewatch/pki/*")
        log("agent enrolled (signed by the CA signer under the hardened server)")

        # --- the agent: camera, recordings, upload ----------------------------------------
        root.sh("systemctl start venuewatch-agent")
        assert root.show("venuewatch-agent", "ActiveState") == "active"
        db = r / "var/lib/venuewatch-server/venuewatch.db"

        def stored():
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
                rows = c.execute("SELECT kind, status, faults, metrics FROM results r JOIN "
                                 "agents a ON a.id = r.agent_id WHERE a.site = ?",
                                 (SITE,)).fetchall()
            by = {}
            for kind, st, faults, metrics in rows:
                by.setdefault(kind, []).append((st, json.loads(faults), json.loads(metrics)))
            stream_ok = any(s == "ok" for s, _, _ in by.get("stream", []))
            rec_read = any(m.get("segments", 0) >= 3 for _, _, m in by.get("recording", []))
            return by if stream_ok and rec_read else None
        by = wait_for(stored, 120, "the agent's stream (ok) and recording results stored")
        log(f"stored: {[(k, len(v)) for k, v in sorted(by.items())]}")
        rec = [x for x in by["recording"] if x[2].get("segments", 0) >= 3][-1]
        log(f"recording result: status={rec[0]} faults={rec[1]} metrics={rec[2]}")
        astatus = wait_for(lambda: (s := root.show("venuewatch-agent", "StatusText"))
                           .endswith("uploading") and s, 60, "the agent's StatusText")
        assert re.match(r"1 cameras, 0 down, outbox \d+, uploading$", astatus), astatus
        log(f"agent StatusText: {astatus}")
        # It could not have written the tree: read-only for it (ProtectSystem=strict).
        apid = root.show("venuewatch-agent", "MainPID")
        w = root.sh(f"nsenter -t {apid} -m touch /srv/recordings/front/x", check=False)
        assert w.returncode != 0 and "Read-only" in w.stderr, \
            f"the recordings tree is writable in the agent's mount namespace: {w.stderr}"
        assert os.listdir(r / "var/lib/venuewatch"), "the agent wrote no state"
        assert os.listdir(r / "var/lib/venuewatch-server"), "the server wrote no state"

        # --- reload -----------------------------------------------------------------------
        pid = root.show("venuewatch-server", "MainPID")
        root.sh("systemctl reload venuewatch-server")
        assert root.show("venuewatch-server", "ActiveState") == "active"
        assert root.show("venuewatch-server", "MainPID") == pid, "reload restarted the server"
        j = root.sh("journalctl -u venuewatch-server --no-pager -o cat").stdout
        assert "Reloading" in j and "Reloaded" in j and "event=reload signal=SIGHUP" in j, j[-2000:]
        log("reload: RELOADING=1 ... READY=1, same process, active")

        # --- the watchdog -----------------------------------------------------------------
        root.sh("mkdir -p /run/systemd/system/venuewatch-server.service.d && printf "
                "'[Service]\\nWatchdogSec=3s\\nTimeoutAbortSec=10s\\nRestartSec=1\\n' > "
                "/run/systemd/system/venuewatch-server.service.d/watchdog.conf && "
                "systemctl daemon-reload && systemctl restart venuewatch-server")
        n0 = int(root.show("venuewatch-server", "NRestarts"))
        pid = root.show("venuewatch-server", "MainPID")
        root.sh(f"kill -STOP {pid}")

        def restarted():
            return (int(root.show("venuewatch-server", "NRestarts")) > n0 and
                    root.show("venuewatch-server", "ActiveState") == "active" and
                    root.show("venuewatch-server", "MainPID") not in (pid, "0"))
        wait_for(restarted, 60, "the frozen server killed by the watchdog and restarted")
        j = root.sh("journalctl -u venuewatch-server --no-pager -o cat").stdout
        assert "Watchdog timeout" in j, j[-2000:]
        log("watchdog: frozen server killed and restarted "
            f"(NRestarts {n0} -> {root.show('venuewatch-server', 'NRestarts')})")

        # --- no hardening denials ---------------------------------------------------------
        root.sh("systemctl stop venuewatch-agent venuewatch-server")
        j = root.sh("journalctl -u venuewatch-server -u venuewatch-agent --no-pager -o cat"
                    ).stdout
        bad = [ln for ln in j.splitlines() if DENIALS.search(ln)]
        assert not bad, "hardening denials in the journal:\n" + "\n".join(bad)
        assert "event=fd_limit_raise_failed" not in j
        log(f"journal: {len(j.splitlines())} lines, no denial")
        ok = True
        return 0
    except Exception:
        if root.leader:
            p = root.sh("journalctl -u venuewatch-server -u venuewatch-agent --no-pager "
                        "-n 80 -o short-monotonic", check=False)
            print(p.stdout, p.stderr, file=sys.stderr)
        raise
    finally:
        root.stop()
        if camd:
            camd.terminate()
            camd.wait()
        if ok and not os.environ.get("VW_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"test_units: root kept in {work}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
