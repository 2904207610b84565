#!/usr/bin/python3
"""Network evidence (网络连接顺畅): high_rtt and packet_loss over a path with real delay and real
loss, between two network namespaces made for the test (vwe-a-*, vwe-b-*).

    /usr/bin/python3 tests/integration/test_evidence_net.py [-k PATTERN]

The path would be a veth pair with `tc qdisc ... netem delay/loss`, but this kernel has no
sch_netem ("Specified qdisc kind is unknown"), so the namespaces are joined by two TUN devices
and a userspace link (Link below) that delays and drops IP packets the way netem does. Traffic
never leaves the namespaces. Exits 77 (ctest SKIP_RETURN_CODE) when namespaces cannot be made:
not root, no `ip`, no /dev/net/tun.
"""

import ctypes
import os
import random
import select
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import IntegrationTest, main, wait_for  # noqa: E402
from test_evidence import agent_ini, faults, run_once  # noqa: E402

SKIP = 77

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def setns(name):
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)


def open_tun(ns, ifname):
    """A file descriptor on the TUN device ifname inside namespace ns (opened from a thread
    that enters ns: the namespace of the opener decides which device the name means)."""
    out = {}

    def opener():
        try:
            setns(ns)
            fd = os.open("/dev/net/tun", os.O_RDWR)
            fcntl_ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), IFF_TUN | IFF_NO_PI))
            out["fd"] = fd
        except OSError as e:
            out["err"] = e
    t = threading.Thread(target=opener)  # setns changes only this thread
    t.start()
    t.join()
    if "err" in out:
        raise out["err"]
    return out["fd"]


def fcntl_ioctl(fd, req, arg):
    import fcntl
    return fcntl.ioctl(fd, req, arg)


class Link:
    """Moves IP packets between two TUN devices, each way delayed by delay_s and dropped with
    probability loss: what `tc qdisc ... netem delay/loss` does, in userspace, because this
    kernel has no sch_netem."""

    def __init__(self, fd_a, fd_b, delay_s=0.0, loss=0.0, seed=1):
        self.fds = (fd_a, fd_b)
        self.delay, self.loss = delay_s, loss
        self.rng = random.Random(seed)
        self.queue = []  # (due, fd, packet)
        self.stop_r, self.stop_w = os.pipe()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        a, b = self.fds
        poll = select.poll()
        for fd in (a, b, self.stop_r):
            poll.register(fd, select.POLLIN)
        while True:
            now = time.monotonic()
            wait = min((q[0] for q in self.queue), default=now + 0.5) - now
            r = [fd for fd, _ in poll.poll(max(0.0, wait) * 1000)]
            if self.stop_r in r:
                return
            for fd in r:
                pkt = os.read(fd, 65536)
                if self.rng.random() >= self.loss:
                    self.queue.append((time.monotonic() + self.delay, b if fd == a else a, pkt))
            now = time.monotonic()
            due = [q for q in self.queue if q[0] <= now]
            self.queue = [q for q in self.queue if q[0] > now]
            for _, fd, pkt in due:
                try:
                    os.write(fd, pkt)
                except OSError:
                    pass

    def stop(self):
        os.write(self.stop_w, b"x")
        self.thread.join(5)
        for fd in (*self.fds, self.stop_r, self.stop_w):
            os.close(fd)


def netns_possible():
    if os.geteuid() != 0 or not shutil.which("ip") or not os.path.exists("/dev/net/tun"):
        return False
    name = f"vwe-probe-{os.getpid()}"
    ok = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return ok


class Network(IntegrationTest):
    """high_rtt and packet_loss over a path with real delay and real loss."""

    def _path(self, delay_s, loss):
        """Namespaces vwe-a-PID (agent) and vwe-b-PID (platform endpoint) joined by a Link;
        returns (agent netns, endpoint URL)."""
        h = self.h
        tag = f"{os.getpid()}-{len(h.procs)}"
        na, nb = f"vwe-a-{tag}", f"vwe-b-{tag}"

        def ip(*args):
            subprocess.run(["ip", *args], check=True, capture_output=True)
        for ns, addr in ((na, "10.231.0.1"), (nb, "10.231.0.2")):
            ip("netns", "add", ns)
            self.addCleanup(subprocess.run, ["ip", "netns", "del", ns], capture_output=True)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "tuntap", "add", "dev", "vwe0", "mode", "tun")
            ip("-n", ns, "addr", "add", f"{addr}/30", "dev", "vwe0")
            ip("-n", ns, "link", "set", "vwe0", "up")
        link = Link(open_tun(na, "vwe0"), open_tun(nb, "vwe0"), delay_s, loss)
        self.addCleanup(link.stop)
        # The platform endpoint: any HTTP answer is a working connection to the probe.
        web = h.start("endpoint", ["ip", "netns", "exec", nb, sys.executable, "-m",
                                   "http.server", "8080", "--bind", "10.231.0.2",
                                   "--directory", str(h.dir)])
        wait_for(lambda: subprocess.run(
            ["ip", "netns", "exec", nb, sys.executable, "-c",
             "import socket; socket.create_connection(('10.231.0.2', 8080), 1).close()"],
            capture_output=True).returncode == 0, 10, "the endpoint to listen")
        self.assertTrue(web.alive())
        return na, "http://10.231.0.2:8080/"

    def _probe(self, delay_s, loss, samples, max_rtt_ms=200):
        h = self.h
        ns, url = self._path(delay_s, loss)
        extra = (f"[network]\ntargets = {url}\nsamples = {samples}\nsample_gap = 20ms\n"
                 f"timeout = 4s\nmax_rtt = {max_rtt_ms}ms\nmax_loss_pct = 5\n")
        conf = agent_ini(h, f"net-{len(h.procs)}", [], {"hall": 1}, "https://127.0.0.1:1")
        text = conf.read_text().replace("[network]\nsamples = 3\nsample_gap = 50ms\ntimeout = 2s\n",
                                        "")
        conf.write_text(text + extra)
        res, _ = run_once(h, conf, timeout=90, netns=ns)
        (target,) = [r for t, r in res["network"].items() if t.startswith("10.231.0.2")]
        return target

    def test_delay_is_high_rtt(self):
        r = self._probe(delay_s=0.15, loss=0.0, samples=4)  # 300 ms round trip
        self.assertEqual(faults(r), ["high_rtt"], r)
        self.assertGreaterEqual(r["metrics"]["rtt_ms"], 290, r)
        self.assertEqual(r["metrics"]["loss_pct"], 0, r)
        self.assertEqual(r["status"], "degraded")

    # The link is a Python thread: a busy machine adds its scheduling delay to every packet.
    # Delay only adds, so high_rtt above stays safe with the default 200 ms; the paths meant to
    # be fast (10 ms round trip) are judged against max_rtt = 1 s, 100 times their RTT, which
    # still tells a fast path from a lost sample counted as a 4 s timeout.
    FAST_PATH_MAX_RTT_MS = 1000

    def test_loss_is_packet_loss(self):
        r = self._probe(delay_s=0.005, loss=0.3, samples=10, max_rtt_ms=self.FAST_PATH_MAX_RTT_MS)
        self.assertEqual(faults(r), ["packet_loss"], r)
        self.assertGreater(r["metrics"]["loss_pct"], 5, r)
        self.assertLess(r["metrics"]["rtt_ms"], self.FAST_PATH_MAX_RTT_MS, r)

    def test_clean_path_is_ok(self):
        r = self._probe(delay_s=0.005, loss=0.0, samples=4, max_rtt_ms=self.FAST_PATH_MAX_RTT_MS)
        self.assertEqual(faults(r), [], r)
        self.assertEqual(r["status"], "ok")

if __name__ == "__main__":
    if not netns_possible():
        print("SKIP: network namespaces need root, ip and /dev/net/tun", file=sys.stderr)
        sys.exit(SKIP)
    main()
