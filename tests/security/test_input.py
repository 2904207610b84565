"""Input and files (issue 10, item 7): what reaches JSON, logs and certificates is UTF-8,
HTTP/1.1 needs its Host, and every secret file is created private whatever the umask.

Real server and agent processes; requests over TLS with a real client certificate.
"""

import os
import socket
import ssl
import stat
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (AGENT, ORG, IntegrationTest, batch, cli, main, query,  # noqa: E402
                        request, wait_for)

# Certificates and the CRL are public by design (0644); nothing else may be readable by
# others. The agent's lock file holds no data and is 0640.
PUBLIC = (".crt", ".crl")
GROUP_READABLE = ("agent.lock",)


def raw_request(server, data, timeout=10):
    """Sends data on a fresh TLS connection; returns the status of the first response."""
    ctx = ssl.create_default_context(cafile=str(server.ca))
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(data)
            buf = b""
            while b"\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
    return int(buf.split(b" ", 2)[1])


class InputAndFiles(IntegrationTest):
    def test_http11_without_host_or_with_two_gets_400(self):
        srv = self.h.setup_server()
        self.assertEqual(raw_request(srv, b"GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n"), 200)
        self.assertEqual(raw_request(srv, b"GET /healthz HTTP/1.1\r\n\r\n"), 400)
        self.assertEqual(raw_request(srv, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
                         400)
        # HTTP/1.0 predates Host (RFC 9112 3.2 asks it of 1.1 only)
        self.assertEqual(raw_request(srv, b"GET /healthz HTTP/1.0\r\n\r\n"), 200)

    def test_invalid_utf8_in_a_batch_is_refused_naming_the_field(self):
        srv = self.h.setup_server()
        pki = self.h.ca_issue(srv.conf, "site-u", ORG, city="jinan")
        good = b'{"seq":%d,"ts":"2026-11-26T19:11:18Z","kind":"stream","target":"%s","status":"ok"}'
        cases = [
            (good % (1, b"cam-1") + b"," + good % (2, b"bad\xc0\xaf"),
             "results[1]: field 'target': invalid UTF-8"),
            (good % (1, b"\xed\xa0\x80"), "results[0]: field 'target': invalid UTF-8"),
            (good % (1, b"cam\\u0000hidden"), "NUL character"),
            (good % (9007199254740992, b"cam-1"), "results[0]: field 'seq'"),
        ]
        for rows, want in cases:
            body = b'{"site":"site-u","agent":"site-u","results":[' + rows + b"]}"
            status, resp, _ = request(srv, "POST", "/api/v1/ingest", body, pki.cert, pki.key)
            self.assertEqual(status, 400, resp)
            self.assertIn(want, resp.get("detail", ""), resp)
        # Nothing of a refused batch was stored, and a valid CJK name still is.
        status, resp, _ = request(srv, "POST", "/api/v1/ingest",
                                  batch("site-u", 1, "济南-考场①"), pki.cert, pki.key)
        self.assertEqual(status, 200, resp)
        self.assertEqual(resp["acked_seq"], 1)

    def test_certificate_names_must_be_utf8(self):
        srv = self.h.setup_server()
        # a lone continuation byte, passed as raw bytes (surrogateescape)
        bad = os.fsdecode(b"ji\x80nan")
        p = cli(self.h, srv, "enroll-token", "--site", "site-x", "--org", ORG, "--city", bad,
                check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout())
        self.assertIn("--city", p.stderr())
        p = cli(self.h, srv, "ca", "issue", "--site", "site-x", "--org", os.fsdecode(b"\xe6\xb5"),
                "--out", self.h.path("x"), check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout())
        self.assertIn("--org", p.stderr())
        p = cli(self.h, srv, "enroll-token", "--site", "site-x", "--org", ORG, "--city", "济南")
        self.assertEqual(p.returncode, 0)

    def test_state_files_are_private_under_umask_000(self):
        old = os.umask(0)  # inherited by every process started from here
        self.addCleanup(os.umask, old)
        srv = self.h.setup_server()
        pki = self.h.ca_issue(srv.conf, "site-m", ORG, out=self.h.path("agent-state", "pki"),
                              city="jinan")
        cli(self.h, srv, "enroll-token", "--site", "site-m2", "--org", ORG, "--city", "jinan")
        status, resp, _ = request(srv, "POST", "/api/v1/ingest", batch("site-m", 1),
                                  pki.cert, pki.key)
        self.assertEqual(status, 200, resp)

        agent_state = self.h.path("agent-state")
        recordings = self.h.path("recordings")
        recordings.mkdir()
        conf = self.h.agent_config(
            "agent.ini", "site-m", ORG, agent_state,
            f"https://127.0.0.1:{self.h.closed_port()}", pki,
            [("cam-1", f"rtsp://127.0.0.1:{self.h.closed_port()}/x")])
        Path(conf).write_text(Path(conf).read_text()
                              + f"\n[recordings]\nroot = {recordings}\nscan_interval = 1s\n")
        agent = self.h.start("agent", [AGENT, "-c", conf])
        outbox = agent_state / "outbox.db"
        wait_for(lambda: outbox.exists() and query(outbox, "SELECT count(*) FROM outbox")[0][0],
                 30, "a result in the outbox")
        wait_for(lambda: (agent_state / "recordings.db").exists(), 30, "recordings.db")

        # While both run, so their -wal and -shm files are there too.
        seen, bad = [], []
        for root in (Path(srv.state_dir), agent_state):
            for f in root.rglob("*"):
                if not f.is_file():
                    continue
                mode = stat.S_IMODE(f.stat().st_mode)
                seen.append(f.name)
                if f.name.endswith(PUBLIC):
                    ok = mode & 0o022 == 0
                elif f.name in GROUP_READABLE:
                    ok = mode & 0o037 == 0
                else:
                    ok = mode & 0o077 == 0
                if not ok:
                    bad.append(f"{f} {mode:04o}")
        self.assertEqual(bad, [], "files readable or writable by others")
        # The files that matter were there to be checked.
        for name in ("ca.key", "server.key", "agent.key", "auth.db", "outbox.db",
                     "recordings.db"):
            self.assertIn(name, seen)
        self.assertTrue(any(n.endswith("-wal") for n in seen), seen)
        self.assertTrue(any(n.endswith("-shm") for n in seen), seen)
        agent.stop()


if __name__ == "__main__":
    main()
