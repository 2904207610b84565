"""Integration test harness: real processes on loopback ports chosen at run time.

Every test gets a Harness (through IntegrationTest): a temp dir, and helpers that start camd, the
server and agents with their stdout/stderr captured to files in that dir. Everything is stopped on
teardown (SIGTERM, then SIGKILL after a deadline), and when a test fails the logs are printed and
the temp dir is kept. Synchronisation is wait_for(predicate, timeout, what): polling with a
deadline, never a bare sleep.

Run with Debian's /usr/bin/python3 (camd needs its PyGObject). Binaries come from $VW_AGENT and
$VW_SERVER (set by ctest), defaulting to build/venuewatch-{agent,server}. VW_KEEP=1 keeps the temp
dirs of passing tests too; VW_TIMEOUT_SCALE=N stretches every deadline (sanitizer builds).
"""

import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AGENT = os.environ.get("VW_AGENT", str(REPO / "build" / "venuewatch-agent"))
SERVER = os.environ.get("VW_SERVER", str(REPO / "build" / "venuewatch-server"))
CAMD = str(REPO / "tests" / "tools" / "camd.py")
# camd needs gi (PyGObject), which only Debian's interpreter has.
SYSTEM_PYTHON = "/usr/bin/python3"

# Every deadline is multiplied by this: slower builds (ASan+UBSan) set VW_TIMEOUT_SCALE=3.
TIMEOUT_SCALE = float(os.environ.get("VW_TIMEOUT_SCALE", "1"))
STOP_TIMEOUT = 10.0  # SIGTERM → SIGKILL
LOG_TAIL = 150       # lines of each process's output printed when a test fails

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


def _die_with_parent():
    """In the child: be killed when the test process dies, so a test killed by ctest's timeout
    leaves no camd, server or agent behind holding ports."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class TimeoutError_(AssertionError):
    pass


def wait_for(predicate, timeout, what, interval=0.1):
    """Poll predicate() until it returns a truthy value, and return that value. Exceptions count
    as 'not yet' (the last one is reported). Fails the test after timeout seconds (scaled by
    VW_TIMEOUT_SCALE)."""
    timeout *= TIMEOUT_SCALE
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_exc = None
        except (OSError, ValueError, KeyError, sqlite3.Error, http.client.HTTPException,
                AssertionError) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError_(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


class Proc:
    """A child process with stdout and stderr captured to files."""

    def __init__(self, name, argv, cwd, logdir, env=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.out_path = Path(logdir) / f"{name}.out"
        self.err_path = Path(logdir) / f"{name}.err"
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.popen = subprocess.Popen(self.argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                      stdout=self._out, stderr=self._err, env=full_env,
                                      preexec_fn=_die_with_parent)
        self.pid = self.popen.pid

    def stdout(self):
        return self.out_path.read_text(errors="replace")

    def stderr(self):
        return self.err_path.read_text(errors="replace")

    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def wait_for_output(self, pattern, timeout, stream="stderr", what=None):
        """Wait until pattern (a regex) matches the process's stdout or stderr; returns the match.
        Fails early, with the output, if the process exits first."""
        rx = re.compile(pattern, re.M)
        read = self.stdout if stream == "stdout" else self.stderr

        def check():
            m = rx.search(read())
            if m:
                return m
            if not self.alive():
                raise AssertionError(f"{self.name} exited with {self.returncode} before "
                                     f"{what or pattern!r}:\n{self.tail()}")
            return None

        try:
            return wait_for(check, timeout, what or f"{self.name} to print {pattern!r}")
        except TimeoutError_ as e:
            raise TimeoutError_(f"{e}\n{self.tail()}") from None

    def wait(self, timeout):
        return self.popen.wait(timeout)

    def send(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, timeout=STOP_TIMEOUT, sig=signal.SIGTERM):
        """SIGTERM (or sig), then SIGKILL after timeout. Returns the exit code."""
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"harness: {self.name} (pid {self.pid}) ignored {sig!r} for {timeout}s; "
                      "SIGKILL", file=sys.stderr)
                self.popen.kill()
                self.popen.wait()
        self._out.close()
        self._err.close()
        return self.popen.returncode

    def tail(self, n=LOG_TAIL):
        parts = []
        for label, path in (("stdout", self.out_path), ("stderr", self.err_path)):
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            if lines:
                shown = lines[-n:]
                skipped = f" (last {n} of {len(lines)} lines)" if len(lines) > n else ""
                parts.append(f"----- {self.name} {label}{skipped} -----\n" + "\n".join(shown))
        return "\n".join(parts) or f"----- {self.name}: no output -----"


class Pki:
    """Paths of one agent identity as written by `ca issue` (or made by hand)."""

    def __init__(self, dir_):
        self.dir = Path(dir_)
        self.key = self.dir / "agent.key"
        self.cert = self.dir / "agent.crt"
        self.ca = self.dir / "ca.crt"


class Server:
    def __init__(self, proc, port, conf, state_dir):
        self.proc, self.port, self.conf, self.state_dir = proc, port, conf, Path(state_dir)
        self.url = f"https://127.0.0.1:{port}"

    @property
    def db(self):
        return self.state_dir / "venuewatch.db"

    @property
    def ca(self):
        return self.state_dir / "pki" / "ca.crt"


class Harness:
    """Owns one test's temp dir and every process the test starts."""

    def __init__(self, name):
        self.dir = Path(tempfile.mkdtemp(prefix=f"vw-{name}-"))
        self.procs = []
        self._held = []  # sockets held open so their ports stay closed and ours
        self._names = {}

    # ---- files and processes ----

    def path(self, *parts):
        return self.dir.joinpath(*parts)

    def write(self, name, text):
        p = self.path(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def _unique(self, name):
        n = self._names.get(name, 0)
        self._names[name] = n + 1
        return name if n == 0 else f"{name}.{n}"

    def start(self, name, argv, env=None):
        p = Proc(self._unique(name), argv, cwd=self.dir, logdir=self.dir, env=env)
        self.procs.append(p)
        return p

    def run(self, name, argv, timeout=60, check=True):
        """Run a command to completion with output captured to files; returns the Proc (exited).
        check=True fails the test on a non-zero exit."""
        p = self.start(name, argv)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.stop(1)
            raise AssertionError(f"{p.name} did not finish in {timeout}s:\n{p.tail()}") from None
        p.stop()
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(p.argv)} exited with {p.returncode}:\n{p.tail()}")
        return p

    def closed_port(self):
        """A loopback port nobody listens on, for a 'stopped camera': the socket stays bound (but
        not listening) for the test's lifetime, so connects are refused and no one else gets it."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        self._held.append(s)
        return s.getsockname()[1]

    def open_port(self, port):
        """Gives a closed_port() back, for a server to listen on it now."""
        for s in self._held:
            if s.getsockname()[1] == port:
                self._held.remove(s)
                s.close()
                return port
        raise ValueError(f"port {port} is not one of closed_port()'s")

    def close(self, failed):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # keep stopping the rest
                print(f"harness: stopping {p.name}: {e!r}", file=sys.stderr)
        for s in self._held:
            s.close()
        if failed:
            print(f"\n===== logs of the failed test (kept in {self.dir}) =====", file=sys.stderr)
            for p in self.procs:
                print(p.tail(), file=sys.stderr)
        elif not os.environ.get("VW_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- camd ----

    def start_camd(self, *mounts, timeout=20, config=None):
        """Start the test camera server with the given mounts (and config, a dict written as
        camd's --config JSON: extra behaviours and mounts); returns (proc, port)."""
        argv = [SYSTEM_PYTHON, CAMD, "--port", "0"]
        for m in mounts:
            argv += ["--mount", m]
        if config is not None:
            argv += ["--config", self.write(f"camd-{len(self.procs)}.json", json.dumps(config))]
        p = self.start("camd", argv)
        m = p.wait_for_output(r"^READY port=(\d+)$", timeout, stream="stdout", what="camd READY")
        return p, int(m.group(1))

    # ---- server ----

    def server_config(self, state_dir, port=0, name="server.ini", extra=""):
        return self.write(name, f"""\
[server]
listen = 127.0.0.1:{port}
state_dir = {state_dir}
hostnames = localhost,127.0.0.1
{extra}""")

    def ca_init(self, conf):
        return self.run("ca-init", [SERVER, "-c", conf, "ca", "init"])

    def ca_issue(self, conf, site, org, out=None, city=None, agent=None):
        out = Path(out or self.path("pki-" + site))
        argv = [SERVER, "-c", conf, "ca", "issue", "--site", site, "--org", org, "--out", out]
        if city:
            argv += ["--city", city]
        if agent:  # the venue machine (UID); without it the site's one machine
            argv += ["--agent", agent]
        self.run("ca-issue", argv)
        return Pki(out)

    def start_server(self, conf, state_dir, timeout=20):
        """Start venuewatch-server on conf and wait for `event=listening ... port=N`."""
        p = self.start("server", [SERVER, "-c", conf])
        m = p.wait_for_output(r"event=listening\b.*\bport=(\d+)", timeout,
                              what="server event=listening")
        return Server(p, int(m.group(1)), conf, state_dir)

    def setup_server(self, name="srv"):
        """A fresh server: config with port 0, `ca init`, started. Returns Server."""
        state = self.path(name)
        conf = self.server_config(state, name=f"{name}.ini")
        self.ca_init(conf)
        return self.start_server(conf, state)

    # ---- agent ----

    def agent_config(self, name, site, org, state_dir, collector_url, pki, cameras,
                     interval="2s", check_timeout="5s", extra_agent="", rooms=None):
        """cameras: list of (name, url) or (name, url, room). pki: a Pki (ca/cert/key) or a
        dict with those keys (paths, possibly of files that do not exist)."""
        ca = pki["ca"] if isinstance(pki, dict) else pki.ca
        cert = pki["cert"] if isinstance(pki, dict) else pki.cert
        key = pki["key"] if isinstance(pki, dict) else pki.key
        rooms = set(rooms or []) | {c[2] if len(c) > 2 else "hall-1" for c in cameras}
        lines = [
            "[agent]",
            f"site = {site}",
            f"org = {org}",
            f"state_dir = {state_dir}",
            f"interval = {interval}",
            f"check_timeout = {check_timeout}",
            "log_level = info",
            extra_agent,
            "",
            "[collector]",
            f"url = {collector_url}",
            f"ca = {ca}",
            f"cert = {cert}",
            f"key = {key}",
            "",
        ]
        for room in sorted(rooms):
            lines += [f"[room {room}]", "min_cameras = 1", ""]
        for cam in cameras:
            cname, url = cam[0], cam[1]
            room = cam[2] if len(cam) > 2 else "hall-1"
            lines += [f"[camera {cname}]", f"room = {room}", f"url = {url}", "transport = tcp", ""]
        return self.write(name, "\n".join(lines))

    def start_agent(self, conf, name="agent"):
        return self.start(name, [AGENT, "-c", conf])

    # ---- HTTPS and SQLite ----

    def https(self, server, method, path, body=None, cert=None, key=None, timeout=10):
        """One request to the server over TLS, verifying it against the server's CA (and, given
        cert/key, presenting a client certificate). Returns (status, parsed JSON or text)."""
        return https_request(server.port, server.ca, method, path, body, cert, key, timeout)


def exchange(conn, method, path, body=None, headers=None):
    """One request on an open HTTPSConnection: a dict or list body goes as JSON. Returns
    (status, parsed JSON or text, response headers)."""
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    raw = resp.read().decode("utf-8", "replace")
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return resp.status, parsed, dict(resp.getheaders())


def https_request(port, ca, method, path, body=None, cert=None, key=None, timeout=10, token=None):
    """token: a people's bearer token for the read APIs (see reader_token), sent as
    Authorization: Bearer."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        status, parsed, _ = exchange(conn, method, path, body, headers)
        return status, parsed
    finally:
        conn.close()


_reader_tokens = {}


def reader_token(server):
    """A province token (reads every site), made once per state dir with `token create`."""
    key = str(server.state_dir)
    if key not in _reader_tokens:
        out = subprocess.run([SERVER, "-c", str(server.conf), "token", "create", "--role",
                              "province", "--name", "harness"], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE)
        if out.returncode != 0 or not out.stdout.startswith("vwt_"):
            raise AssertionError(f"token create failed ({out.returncode}): {out.stderr}")
        _reader_tokens[key] = out.stdout.strip()
    return _reader_tokens[key]


def get_json(server, path):
    """GET path and return the JSON body; any status but 200 raises (so wait_for retries)."""
    status, body = https_request(server.port, server.ca, "GET", path, token=reader_token(server))
    if status != 200:
        raise AssertionError(f"GET {path} -> {status} {body!r}")
    return body


def psql(dsn, sql):
    """One statement through psql on dsn (the PostgreSQL of tests/tools/pg.sh): its rows as
    unaligned text, stripped; a failure raises with psql's message."""
    out = subprocess.run(["psql", dsn, "-XAtqc", sql], capture_output=True, text=True,
                         timeout=30 * TIMEOUT_SCALE, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise AssertionError(f"psql {sql!r}: {out.stderr}")
    return out.stdout.strip()


def query(db, sql, args=()):
    """Rows from a SQLite database another process is writing (read-only, WAL-safe)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def site_targets(server, site):
    """{target: entry} from GET /api/v1/sites/{site}, or {} when the site is not known yet."""
    status, body = https_request(server.port, server.ca, "GET", f"/api/v1/sites/{site}",
                                 token=reader_token(server))
    if status == 404:
        return {}
    if status != 200:
        raise AssertionError(f"GET /api/v1/sites/{site} -> {status} {body!r}")
    return {t["target"]: t for t in body.get("targets", [])}


def make_self_signed(h, name, cn):
    """A self-signed certificate made with the openssl CLI (not from the server's CA)."""
    d = h.path(name)
    d.mkdir(parents=True, exist_ok=True)
    h.run("openssl", ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                      "-subj", f"/O=evil/CN={cn}", "-keyout", d / "agent.key",
                      "-out", d / "agent.crt"])
    return Pki(d)


class IntegrationTest(unittest.TestCase):
    """Base class: self.h is a fresh Harness; teardown stops everything and, on failure, prints
    every process's output."""

    @classmethod
    def setUpClass(cls):
        # A missing binary is an error, not a skip: a skipped integration test reads as a pass.
        missing = [p for p in (AGENT, SERVER) if not os.access(p, os.X_OK)]
        if missing:
            raise RuntimeError(f"binaries not built: {', '.join(missing)} "
                               "(build first, or set VW_AGENT / VW_SERVER)")

    def setUp(self):
        self.h = Harness(self.id().rsplit(".", 1)[-1])
        self._problems_before = self._problems()
        self.addCleanup(self._close_harness)

    def _problems(self):
        """Failures and errors recorded so far. (unittest offers no public 'did this test fail'
        to cleanups; 3.11 records problems in the result at once, older versions in _outcome.)"""
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        n = len(getattr(result, "failures", ())) + len(getattr(result, "errors", ()))
        return n + sum(1 for _, exc in getattr(outcome, "errors", ()) if exc)

    def _close_harness(self):
        self.h.close(failed=self._problems() > self._problems_before)


def main():
    unittest.main(verbosity=2)
