"""The collector's TLS against three independent TLS stacks, each a real client over a socket:
OpenSSL (`openssl s_client`, `curl`), GnuTLS (`gnutls-cli`) and Chromium (BoringSSL, headless).

- A client that negotiates max_fragment_length 512 (s_client -maxfraglen, TLS 1.3 and 1.2) and
  one that sends record_size_limit (gnutls-cli --recordsize) fetch /api/v1/sites/{site}, whose
  response is several times larger than their record limit: every record the server sends must
  respect what was agreed, or the client fails with "data length too long".
- KeyUpdate (s_client k and K; gnutls-cli ^rekey1^ and ^rekey^), then another request on the
  same connection.
- Session resumption (s_client -sess_out/-sess_in, gnutls-cli --resume): the resumed connection
  still carries the agent's certificate identity, so an ingest on it is accepted.
- Chromium headless fetches /healthz and an API page over TLS 1.3, trusting the test CA through
  an NSS database made with certutil.

Needs openssl, curl, gnutls-cli (gnutls-bin), certutil (libnss3-tools) and chromium; a missing
one is an error, not a skip (scripts/setup.sh installs them). Label security.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from secharness import IntegrationTest, batch, people_token, request, wait_for  # noqa: E402
from tlsclients import Interactive  # noqa: E402

SITE, ORG = "site-iop", "org-iop"
TOOLS = ("openssl", "curl", "gnutls-cli", "certutil", "chromium")


def body_of(out):
    """The JSON body after the last HTTP response head in a client's output."""
    head = out.rfind("HTTP/1.1 200")
    start = out.find("{", head)
    return json.JSONDecoder().raw_decode(out[start:])[0]


class TlsInteropTest(IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        missing = [t for t in TOOLS if not shutil.which(t)]
        if missing:
            raise RuntimeError(f"missing TLS peers: {', '.join(missing)} (scripts/setup.sh)")

    def setUp(self):
        super().setUp()
        state = self.h.path("srv")
        conf = self.h.server_config(state, extra="log_level = debug\n")
        self.h.ca_init(conf)
        self.pki = self.h.ca_issue(conf, SITE, ORG, city="jinan")
        self.srv = self.h.start_server(conf, state)
        self.token = people_token(self.h, self.srv, "province")
        # Results for several cameras, so the site's page is well over 512 bytes.
        for seq in range(1, 9):
            status, body, _ = request(self.srv, "POST", "/api/v1/ingest",
                                      batch(SITE, seq=seq, target=f"cam-{seq}"),
                                      cert=self.pki.cert, key=self.pki.key)
            self.assertEqual(status, 200, body)
        status, self.site, _ = request(self.srv, "GET", f"/api/v1/sites/{SITE}",
                                       token=self.token)
        self.assertEqual(status, 200, self.site)
        self.site_len = len(json.dumps(self.site))
        self.assertGreater(self.site_len, 3 * 512)  # 4 records or more

    def get_site(self):
        return (f"GET /api/v1/sites/{SITE} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {self.token}\r\n\r\n").encode()

    def ingest(self, seq):
        data = json.dumps(batch(SITE, seq=seq, target="cam-resumed"))
        return (f"POST /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                f"{data}").encode()

    def client(self, argv):
        p = Interactive(argv)
        self.addCleanup(p.close)
        return p

    def s_client(self, *extra, cert=False):
        argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{self.srv.port}", "-CAfile",
                self.srv.ca, "-verify_return_error", "-no_ign_eof", *extra]
        if cert:
            argv += ["-cert", self.pki.cert, "-key", self.pki.key]
        return self.client(argv)

    def gnutls(self, *extra, cert=False):
        argv = ["gnutls-cli", "127.0.0.1", "-p", str(self.srv.port), "--x509cafile",
                self.srv.ca, *extra]
        if cert:
            argv += ["--x509certfile", self.pki.cert, "--x509keyfile", self.pki.key]
        return self.client(argv)

    def opened(self, n, pattern):
        """Waits for the server to have logged n completed handshakes matching pattern."""
        rx = re.compile(r"event=tls_open .*" + pattern)
        wait_for(lambda: len(rx.findall(self.srv.proc.stderr())) >= n, 10,
                 f"{n} x tls_open {pattern}")

    def assert_site_page(self, out):
        self.assertEqual(body_of(out), self.site)

    # ---- OpenSSL ----

    def test_openssl_max_fragment_length_512_gets_the_whole_site_page(self):
        for version in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=version):
                p = self.s_client(version, "-maxfraglen", "512")
                p.wait_text("Verify return code: 0 (ok)", 10)
                p.send(self.get_site())
                p.wait_text("HTTP/1.1 200", 10)
                p.wait_for(lambda out: '"' + SITE + '"' in out[out.find("HTTP/1.1 200"):]
                           and out.rstrip().endswith("}"), 10, "the whole body")
                self.assertNotIn("data length too long", p.output())
                self.assert_site_page(p.output())

    def test_curl_fetches_the_site_page_over_tls13_and_tls12(self):
        for opts in (["--tlsv1.3"], ["--tlsv1.2", "--tls-max", "1.2"]):
            with self.subTest(opts=opts):
                out = subprocess.run(
                    ["curl", "-sS", "--fail", "--cacert", str(self.srv.ca), *opts, "-H",
                     f"Authorization: Bearer {self.token}", "-w", "\n%{http_version}",
                     f"https://127.0.0.1:{self.srv.port}/api/v1/sites/{SITE}"],
                    capture_output=True, text=True, timeout=30)
                self.assertEqual(out.returncode, 0, out.stderr)
                body, _, version = out.stdout.rpartition("\n")
                self.assertEqual(json.loads(body), self.site)
        self.opened(1, "version=TLSv1.3")
        self.opened(1, "version=TLSv1.2")

    def test_openssl_key_update_both_ways_then_more_requests(self):
        p = self.s_client("-tls1_3", "-crlf", cert=True)
        p.wait_text("Verify return code: 0 (ok)", 10)
        # s_client acts on a line's first letter: K = our KeyUpdate and ask for the server's,
        # k = ours alone. It prints KEYUPDATE once sent; the next command waits for that.
        for n, cmd in enumerate((b"K\n", b"k\n", b"K\n"), 1):
            self.assertTrue(p.send(cmd))
            p.wait_text("KEYUPDATE", 5, count=n)
            p.send(b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n")
            p.wait_text("HTTP/1.1 200", 5, count=n)
        p.send(self.get_site().replace(b"\r\n", b"\n"))
        p.wait_text("HTTP/1.1 200", 5, count=4)
        self.assertNotIn("tls_read_failed", self.srv.proc.stderr())

    def test_openssl_resumed_session_keeps_the_agent_identity(self):
        sess = self.h.path("s_client.sess")
        first = self.s_client("-tls1_3", "-sess_out", sess, cert=True)
        first.wait_text("Verify return code: 0 (ok)", 10)
        first.send(self.ingest(100))
        first.wait_text('"acked_seq":100', 10)
        first.wait_for(lambda _out: sess.exists() and sess.stat().st_size > 0, 10,
                       "the session ticket saved")
        first.close()
        # The resumed connection presents no certificate: the identity comes from the ticket.
        second = self.s_client("-tls1_3", "-sess_in", sess)
        second.wait_text("Reused, TLSv1.3", 10)
        second.send(self.ingest(101))
        second.wait_text('"acked_seq":101', 10)
        self.opened(1, f"resumed=1 verified=1 site={SITE}")

    # ---- GnuTLS ----

    def test_gnutls_record_size_limit_gets_the_whole_site_page(self):
        for prio in ("NORMAL:-VERS-ALL:+VERS-TLS1.3", "NORMAL:-VERS-ALL:+VERS-TLS1.2"):
            with self.subTest(priority=prio):
                p = self.gnutls("--priority", prio, "--recordsize", "512")
                p.wait_text("- Handshake was completed", 10)
                p.send(self.get_site())
                p.wait_for(lambda out: "HTTP/1.1 200" in out and out.rstrip().endswith("}"),
                           10, "the whole site page")
                self.assert_site_page(p.output())
                self.assertNotIn("Error", p.output().split("Handshake was completed")[1])

    def test_gnutls_key_update_then_more_requests(self):
        # (no --crlf: it would turn the command lines into "^rekey^\r\n", which is no command)
        p = self.gnutls("--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3", "--inline-commands",
                        cert=True)
        p.wait_text("- Handshake was completed", 10)
        # ^rekey1^: gnutls updates its own keys; ^rekey^: and asks the server to update its.
        for n, cmd in enumerate((b"^rekey1^\n", b"^rekey^\n"), 1):
            self.assertTrue(p.send(cmd))
            p.wait_text("Rekey was completed", 5, count=n)
            p.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            p.wait_text("HTTP/1.1 200", 5, count=n)
        self.assertNotIn("tls_read_failed", self.srv.proc.stderr())

    def test_gnutls_resumed_session_keeps_the_agent_identity(self):
        for prio in ("NORMAL:-VERS-ALL:+VERS-TLS1.3", "NORMAL:-VERS-ALL:+VERS-TLS1.2"):
            with self.subTest(priority=prio):
                seq = 200 if "1.3" in prio else 300
                p = self.gnutls("--priority", prio, "--resume", cert=True)
                p.wait_text("This is a resumed session", 10)
                p.send(self.ingest(seq))
                p.wait_text(f'"acked_seq":{seq}', 10)
                p.close()
        self.opened(1, f"version=TLSv1.3 resumed=1 verified=1 site={SITE}")
        self.opened(1, f"version=TLSv1.2 resumed=1 verified=1 site={SITE}")

    # ---- Chromium (BoringSSL) ----

    def chromium(self, home, *args):
        env = dict(os.environ, HOME=str(home))
        return subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--disable-extensions", "--disable-background-networking",
             f"--user-data-dir={home / 'profile'}", *args],
            capture_output=True, text=True, timeout=90, env=env)

    def test_chromium_headless_over_tls13(self):
        home = self.h.path("chromium-home")
        nss = home / ".pki" / "nssdb"
        nss.mkdir(parents=True)
        for argv in (["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"],
                     ["certutil", "-A", "-d", f"sql:{nss}", "-n", "venuewatch-test-ca",
                      "-t", "C,,", "-i", str(self.srv.ca)]):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
        url = f"https://127.0.0.1:{self.srv.port}"
        out = self.chromium(home, "--dump-dom", f"{url}/healthz")
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        self.assertRegex(out.stdout, r'"status"\s*:\s*"ok"', out.stdout + out.stderr[-2000:])
        # An API page without credentials: the server's JSON refusal, rendered.
        out = self.chromium(home, "--dump-dom", f"{url}/api/v1/sites")
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        self.assertIn("authentication required", out.stdout, out.stderr[-2000:])
        shot = home / "healthz.png"
        out = self.chromium(home, f"--screenshot={shot}", "--window-size=640,480",
                            f"{url}/healthz")
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        self.assertEqual(shot.read_bytes()[:8], b"\x89PNG\r\n\x1a\n")
        log = self.srv.proc.stderr()
        # Every connection Chromium made was TLS 1.3, and none was refused.
        versions = set(re.findall(r"event=tls_open .*version=(\S+) resumed=\d verified=0", log))
        self.assertEqual(versions, {"TLSv1.3"}, log)
        self.assertNotIn("event=tls_refused", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
