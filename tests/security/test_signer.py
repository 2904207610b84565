#!/usr/bin/python3
"""The CA key lives in the signer process, never in the network-facing one: the server's own
process never opens pki/ca.key and holds none of it in memory, also across enrollments; the
signer is another pid, sandboxed, redeems tokens itself (forged, used, expired refused), signs
only for the token's site, and a signer that dies, or stops answering within its request
deadline, is restarted while enrollment answers 503; shutdown does not wait for a stuck one.

    /usr/bin/python3 tests/security/test_signer.py [-k PATTERN]
"""

import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (IntegrationTest, enroll_token, main, make_csr, query,  # noqa: E402
                        request, wait_for)


def signer_pid(srv):
    """The pid of the current signer, from its own start-up line (the last one)."""
    pids = re.findall(r"event=signer_started pid=(\d+)", srv.proc.stderr())
    assert pids, srv.proc.tail()
    return int(pids[-1])


def ppid_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def open_files(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass  # closed meanwhile
    return out


def status_field(pid, name):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return None


class KeyOutOfTheNetworkProcess(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.srv = self.h.setup_server()
        self.key = self.srv.state_dir / "pki" / "ca.key"

    def _enroll(self, site, cn="whoever"):
        token = enroll_token(self.h, self.srv, site)
        csr, _ = make_csr(self.h, f"req-{site}", cn=cn)
        return request(self.srv, "POST", "/api/v1/enroll", {"token": token, "csr": csr})

    def test_the_network_process_never_opens_ca_key(self):
        srv = self.srv
        pid = signer_pid(srv)
        self.assertNotEqual(pid, srv.proc.pid)
        self.assertEqual(ppid_of(pid), srv.proc.pid, "the signer is the server's child")
        key = str(self.key.resolve())

        # Watch the server's descriptors and mappings while enrollments run.
        seen, stop = [], threading.Event()

        def watch():
            while not stop.is_set():
                for path in open_files(srv.proc.pid):
                    if path == key:
                        seen.append(("fd", path))
                with open(f"/proc/{srv.proc.pid}/maps") as f:
                    if key in f.read():
                        seen.append(("maps", key))

        t = threading.Thread(target=watch)
        t.start()
        try:
            for i in range(6):
                status, body, _ = self._enroll(f"site-k{i}")
                self.assertEqual(status, 200, body)
        finally:
            stop.set()
            t.join()
        self.assertEqual(seen, [], "the network process opened ca.key")
        self.assertNotIn(key, open_files(srv.proc.pid))

    def test_whoever_reads_ca_key_at_enrollment_is_the_signer(self):
        """ca.key replaced by a FIFO: the process that opens it for an enrollment blocks
        until the test writes the key, so who holds it open can be seen for certain."""
        h, srv = self.h, self.srv
        text = self.key.read_bytes()
        self.key.unlink()
        os.mkfifo(self.key, 0o600)
        token = enroll_token(h, srv, "site-q")
        csr, _ = make_csr(h, "req")
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("r", request(
            srv, "POST", "/api/v1/enroll", {"token": token, "csr": csr}, timeout=30)))
        t.start()
        holders = {}
        try:
            fd = os.open(self.key, os.O_WRONLY)  # returns once a reader has opened it
            try:
                key = str(self.key.resolve())
                # Our open returns once the reader is in its open(2), which may not yet have
                # put the fd in its table (a busy machine schedules it later): look until
                # someone holds it, with a deadline.
                deadline = time.monotonic() + 20
                while True:
                    for who, pid in (("server", srv.proc.pid), ("signer", signer_pid(srv))):
                        holders[who] = key in open_files(pid)
                    if any(holders.values()) or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                os.write(fd, text)
            finally:
                os.close(fd)
        finally:
            t.join(30)
            self.key.unlink()
            self.key.write_bytes(text)
            os.chmod(self.key, 0o600)
        self.assertEqual(holders, {"server": False, "signer": True})
        self.assertEqual(result["r"][0], 200, result["r"][1])

    def test_the_signer_is_sandboxed(self):
        pid = signer_pid(self.srv)
        self.assertEqual(status_field(pid, "NoNewPrivs"), "1")
        self.assertEqual(status_field(pid, "Seccomp"), "2", "a seccomp filter is installed")
        # Not dumpable: /proc/PID files are root's, whoever runs it (a core or ptrace by the
        # server's own user is refused).
        if os.geteuid() != 0:
            with self.assertRaises(PermissionError):
                open(f"/proc/{pid}/mem", "rb").read(1)
        fds = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
        sockets = [p for p in open_files(pid) if p.startswith("socket:")]
        self.assertEqual(len(sockets), 1, f"only its socketpair end: {open_files(pid)}")
        self.assertTrue(os.readlink(f"/proc/{pid}/fd/3").startswith("socket:"))
        others = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds if fd > 3]
        self.assertTrue(all("auth.db" in p for p in others), others)
        # No listening socket, no network: not in its TCP tables as an owner.
        inodes = {p[8:-1] for p in sockets}
        with open("/proc/net/tcp") as f:
            tcp = f.read()
        self.assertFalse(any(f" {i} " in tcp for i in inodes))

    def test_the_signer_refuses_forged_used_and_expired_tokens(self):
        h, srv = self.h, self.srv
        csr, _ = make_csr(h, "req")
        token = enroll_token(h, srv, "site-t")
        status, _, _ = request(srv, "POST", "/api/v1/enroll", {"token": token, "csr": csr})
        self.assertEqual(status, 200)
        forged = "vwe_" + "Q" * 43
        short = enroll_token(h, srv, "site-t", ttl="1s")
        wait_for(lambda: query(srv.state_dir / "auth.db",
                               "SELECT count(*) FROM enroll_tokens WHERE used_ms IS NULL AND "
                               "expires_ms < CAST(strftime('%s','now') AS INTEGER) * 1000 - 500"
                               )[0][0] == 1, 10, "the short token's expiry")
        for tok, why in ((token, "already used"), (forged, "unknown"), (short, "expired")):
            status, body, _ = request(srv, "POST", "/api/v1/enroll", {"token": tok, "csr": csr})
            self.assertEqual(status, 403, body)
            self.assertIn(why, body["detail"])
        # The decisions are the signer's: its own log lines, one per refusal.
        for rc in (-114, -2, -127):  # EALREADY, ENOENT, EKEYEXPIRED
            srv.proc.wait_for_output(rf"event=signer_refused token=\S+ rc={rc}\b", 10)
        rows = query(srv.state_dir / "auth.db", "SELECT count(*) FROM certs WHERE site='site-t'")
        self.assertEqual(rows[0][0], 1, "one certificate for one good token")

    def test_a_csr_cannot_get_another_sites_certificate(self):
        h, srv = self.h, self.srv
        status, body, _ = self._enroll("site-m", cn="site-victim")
        self.assertEqual(status, 200, body)
        crt = h.write("m.crt", body["certificate"])
        p = h.run("x509", ["openssl", "x509", "-in", crt, "-noout", "-subject", "-ext",
                           "subjectAltName"], check=False)
        self.assertIn("CN = site-m, O = org-sec, L = jinan", p.stdout())
        self.assertNotIn("site-victim", p.stdout())
        rows = query(srv.state_dir / "auth.db", "SELECT site FROM certs WHERE source='enroll'")
        self.assertEqual(rows, [("site-m",)])

    def test_a_dead_signer_means_503_then_it_is_restarted(self):
        h = self.h
        self.srv.proc.stop()
        state = h.path("dbg")
        conf = h.server_config(state, name="dbg.ini", extra="log_level = debug\n")
        h.ca_init(conf)
        srv = self.srv = h.start_server(conf, state)
        pid = signer_pid(srv)
        token = enroll_token(h, srv, "site-r")
        csr, _ = make_csr(h, "req")
        # Stopped, so the request is surely pending when it dies.
        os.kill(pid, signal.SIGSTOP)
        result = {}

        def post():
            result["r"] = request(srv, "POST", "/api/v1/enroll", {"token": token, "csr": csr})

        t = threading.Thread(target=post)
        t.start()
        srv.proc.wait_for_output(r"event=signer_request id=\d+ pending=1", 10)
        # The request waits for the stopped signer; /healthz does not.
        status, _, _ = request(srv, "GET", "/healthz")
        self.assertEqual(status, 200)
        os.kill(pid, signal.SIGKILL)
        t.join(30)
        status, body, _ = result["r"]
        self.assertEqual(status, 503, body)
        srv.proc.wait_for_output(rf"event=signer_exited status=0 signal=9 action=restart", 10)
        srv.proc.wait_for_output(r"event=signer_ready pid=\d+ restarts=1", 20)
        new = signer_pid(srv)
        self.assertNotEqual(new, pid)
        # The request that died with the signer spent nothing: the same token now works.
        status, body, _ = request(srv, "POST", "/api/v1/enroll", {"token": token, "csr": csr})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["site"], "site-r")
        self.assertTrue(srv.proc.alive())

    def _debug_server(self):
        h = self.h
        self.srv.proc.stop()
        state = h.path("dbg")
        conf = h.server_config(state, name="dbg.ini", extra="log_level = debug\n")
        h.ca_init(conf)
        self.srv = h.start_server(conf, state)
        return self.srv

    def test_a_stopped_signer_is_given_a_deadline_then_restarted(self):
        """SIGSTOP and left stopped: the request deadline (10 s) answers 503, kills and
        restarts the signer; nobody else sends a signal."""
        h = self.h
        srv = self._debug_server()
        pid = signer_pid(srv)
        token = enroll_token(h, srv, "site-d")
        csr, _ = make_csr(h, "req")
        os.kill(pid, signal.SIGSTOP)
        result = {}

        def post():
            result["r"] = request(srv, "POST", "/api/v1/enroll", {"token": token, "csr": csr},
                                  timeout=60)

        t = threading.Thread(target=post)
        t.start()
        srv.proc.wait_for_output(r"event=signer_request id=\d+ pending=1", 10)
        srv.proc.wait_for_output(rf"event=signer_timeout pid={pid} id=\d+ pending=1 "
                                 r"after_ms=\d+ action=restart", 60)
        t.join(60)
        self.assertFalse(t.is_alive(), "the request got no answer")
        status, body, _ = result["r"]
        self.assertEqual(status, 503, body)
        srv.proc.wait_for_output(r"event=signer_exited status=0 signal=9 action=restart", 10)
        srv.proc.wait_for_output(r"event=signer_ready pid=\d+ restarts=1", 20)
        self.assertNotEqual(signer_pid(srv), pid)
        status, body, _ = request(srv, "POST", "/api/v1/enroll", {"token": token, "csr": csr})
        self.assertEqual(status, 200, body)

    def test_shutdown_does_not_wait_for_a_stopped_signer(self):
        srv = self.srv
        pid = signer_pid(srv)
        os.kill(pid, signal.SIGSTOP)
        # Well inside the harness's SIGTERM grace: the server kills the signer itself.
        self.assertEqual(srv.proc.stop(), 0, srv.proc.tail())
        srv.proc.wait_for_output(rf"event=signer_stop_timeout pid={pid} action=kill", 1)
        wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
                 status_field(pid, "State").startswith("Z"), 10, "the signer to exit")

    def test_shutdown_ends_the_signer(self):
        srv = self.srv
        pid = signer_pid(srv)
        self.assertEqual(srv.proc.stop(), 0)
        wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
                 status_field(pid, "State").startswith("Z"), 10, "the signer to exit")


if __name__ == "__main__":
    main()
