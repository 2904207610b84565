#!/usr/bin/python3
"""A camera whose name the resolver never answers for fails its check by the check's deadline
(fault timeout) instead of holding a media worker for as long as the resolver hangs, and a name
the resolver says does not exist is still `unreachable` (issue 15, part 5).

    /usr/bin/python3 tests/integration/test_resolver_deadline.py [-k PATTERN]

The agent runs in a mount namespace of its own (`unshare -m`) whose /etc/resolv.conf names a DNS
server on a loopback address chosen at run time: a UDP socket that reads every query, answers
NXDOMAIN for one name and nothing at all for every other. resolv.conf asks the resolver to wait
30 s twice, so a plain getaddrinfo() would block a worker for a minute. Nothing outside the
namespace sees that resolv.conf. Exits 77 (ctest SKIP_RETURN_CODE) where a mount namespace
cannot be made: not root, no unshare(1).
"""

import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import AGENT, IntegrationTest, main  # noqa: E402

SKIP = 77
SITE, ORG = "site-dns", "org-dns"
HUNG_NAME = "cam-front.hung-resolver.test"
MISSING_NAME = "cam-back.no-such-host.test"
# resolv.conf(5): a plain getaddrinfo gives up after timeout x attempts per server.
RESOLVER_TIMEOUT_S, RESOLVER_ATTEMPTS = 30, 2
RESOLVER_HANG_MS = RESOLVER_TIMEOUT_S * RESOLVER_ATTEMPTS * 1000
CHECK_TIMEOUT_MS = 2000
# Upper bound on a loaded 2-core machine for the whole --once run, not an expected duration;
# still shorter than the resolver's hang, so a blocking lookup cannot pass.
RUN_DEADLINE = 50


def qname(packet):
    """The question's name of a DNS query (RFC 1035 4.1.2: labels after the 12-byte header),
    and the offset just past the question (name, QTYPE, QCLASS)."""
    labels, i = [], 12
    while i < len(packet) and packet[i]:
        n = packet[i]
        labels.append(packet[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return ".".join(labels).lower(), i + 1 + 4


class SilentResolver:
    """A DNS server on 127.x.y.z:53 that answers NXDOMAIN for MISSING_NAME and never answers
    anything else; it records every name it was asked for."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(20):  # port 53 is fixed by resolv.conf: vary the loopback address
            self.addr = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}." \
                        f"{random.randint(1, 254)}"
            try:
                self.sock.bind((self.addr, 53))
                break
            except OSError:
                continue
        else:
            raise RuntimeError("no free loopback address for the test resolver")
        self.asked = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                packet, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(packet) < 12:
                continue
            name, end = qname(packet)
            self.asked.append(name)
            if name == MISSING_NAME:
                # Same id, QR=1, RD copied, RA=1, RCODE=3 (NXDOMAIN); the question echoed.
                flags = 0x8000 | (struct.unpack("!H", packet[2:4])[0] & 0x0100) | 0x0080 | 3
                reply = packet[:2] + struct.pack("!HHHHH", flags, 1, 0, 0, 0) + packet[12:end]
                self.sock.sendto(reply, peer)

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()


def can_unshare_mounts():
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


class ResolverDeadline(IntegrationTest):

    def test_hung_resolver_fails_the_check_by_its_deadline(self):
        h = self.h
        dns = SilentResolver()
        self.addCleanup(dns.close)
        resolv = h.write("resolv.conf", f"nameserver {dns.addr}\n"
                         f"options timeout:{RESOLVER_TIMEOUT_S} attempts:{RESOLVER_ATTEMPTS}\n")
        pki = h.path("dummy-pki")  # --once never uploads: the files are named, not read
        pki.mkdir()
        for f in ("ca.crt", "agent.crt", "agent.key"):
            (pki / f).write_text("")
        conf = h.agent_config(
            "agent.ini", SITE, ORG, h.path("state"), "https://127.0.0.1:9",
            {"ca": pki / "ca.crt", "cert": pki / "agent.crt", "key": pki / "agent.key"},
            [("front", f"rtsp://{HUNG_NAME}:554/live"),
             ("back", f"rtsp://{MISSING_NAME}:554/live")],
            check_timeout=f"{CHECK_TIMEOUT_MS}ms")
        # The bind mount exists only inside the new namespace, and goes with its last process.
        p = h.run("agent-once",
                  ["unshare", "-m", "sh", "-c",
                   'mount --bind "$1" /etc/resolv.conf && exec "$2" -c "$3" --once', "sh",
                   resolv, AGENT, conf], timeout=RUN_DEADLINE)

        results = {}
        for line in p.stdout().splitlines():
            r = json.loads(line)
            if r["kind"] == "stream":
                results[r["target"]] = r
        self.assertEqual(sorted(results), ["back", "front"], p.stdout())
        # The lookups reached our resolver: the hang was real, not bypassed by /etc/hosts.
        self.assertIn(HUNG_NAME, dns.asked, dns.asked)
        self.assertIn(MISSING_NAME, dns.asked, dns.asked)

        front = results["front"]
        self.assertEqual(front["status"], "down", front)
        self.assertEqual(front["faults"], ["timeout"], front)
        # Bounded by the check's deadline, not by the resolver: a blocking lookup takes the
        # resolver's whole minute (the margin to CHECK_TIMEOUT_MS is for a loaded machine).
        self.assertLess(front["metrics"]["check_ms"], RESOLVER_HANG_MS, front)

        back = results["back"]
        self.assertEqual(back["status"], "down", back)
        self.assertEqual(back["faults"], ["unreachable"], back)


if __name__ == "__main__":
    if not can_unshare_mounts():
        print("skipped: needs root and unshare(1) for a mount namespace", file=sys.stderr)
        sys.exit(SKIP)
    main()
