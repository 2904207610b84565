"""TLS over libuv with OpenSSL doing the handshake and every record, against a real server over
real sockets. Some tests hold the ciphertext in their own hands (Python's ssl with memory BIOs)
to prove how the memory-BIO plumbing in server/net/tls.c feeds OpenSSL: a request whose records
arrive one byte per TCP segment is answered, as is a request sent in the same segment as the
client's Finished, and requests spanning many records and socket reads arrive whole; a tampered
record ends that connection (and only it) with a bad_record_mac alert; a plaintext record after
the handshake ends it too; TLS 1.2 clients are served; a resumed session keeps the client
certificate's identity; with `openssl s_client` a KeyUpdate either way is answered and data
flows under the new keys, while a flood of KeyUpdates without data ends the connection. And the
handshake slicing: a burst of handshakes larger than one slice of loop time is queued, and an
established connection is answered while the burst waits.

Run by ctest (label security) under Debian's /usr/bin/python3; binaries from $VW_SERVER.
"""

import re
import socket
import ssl
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import TIMEOUT_SCALE, IntegrationTest, https_request, wait_for  # noqa: E402
from tlsclients import Interactive  # noqa: E402

S = TIMEOUT_SCALE
REQ = b"GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n"


class MemTLS:
    """A TLS client whose ciphertext the test sends and receives itself."""

    def __init__(self, server, version=ssl.TLSVersion.TLSv1_3, pki=None):
        ctx = ssl.create_default_context(cafile=str(server.ca))
        if pki:
            ctx.load_cert_chain(str(pki.cert), str(pki.key))
        ctx.minimum_version = ctx.maximum_version = version
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname="127.0.0.1")
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10 * S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.plain = b""

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.inc.write(data)

    def hello(self):
        """The ClientHello, not yet sent."""
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.out.read()

    def handshake(self, then=None):
        """Completes the handshake; `then` (plaintext) is encrypted before the client's last
        flight goes out, so it leaves in the same segment as the Finished."""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.out.read())
                self._recv()
        if then:
            self.tls.write(then)
        self.sock.sendall(self.out.read())

    def records(self, plaintext):
        """The ciphertext of plaintext, not yet sent."""
        self.tls.write(plaintext)
        return self.out.read()

    def response(self):
        while b"\r\n\r\n" not in self.plain:
            try:
                self.plain += self.tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            self._recv()
        head, rest = self.plain.split(b"\r\n\r\n", 1)
        length = int([h.split(b":")[1] for h in head.split(b"\r\n")
                      if h.lower().startswith(b"content-length:")][0])
        while len(rest) < length:
            try:
                rest += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._recv()
        self.plain = rest[length:]
        return int(head.split()[1]), rest[:length]

    def alert_from_server(self):
        """Reads until the server closes (EOF or reset, within the timeout) and returns the
        reason of the alert it sent first ("" when none came); None when it kept the
        connection open."""
        self.sock.settimeout(5 * S)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.inc.write(data)
        except (ConnectionResetError, BrokenPipeError):
            pass
        except (socket.timeout, TimeoutError):
            return None
        try:
            self.tls.read(65536)
        except ssl.SSLError as e:
            return e.reason or str(e)
        return ""

    def close(self):
        self.sock.close()


class TlsTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        state = self.h.path("srv")
        conf = self.h.server_config(state, extra="log_level = debug\n")
        self.h.ca_init(conf)
        self.pki = self.h.ca_issue(conf, "site-rec", "org-rec", city="jinan")
        self.srv = self.h.start_server(conf, state)

    def client(self, **kw):
        c = MemTLS(self.srv, **kw)
        self.addCleanup(c.close)
        return c

    def assert_serving(self):
        status, body = https_request(self.srv.port, self.srv.ca, "GET", "/healthz")
        self.assertEqual(status, 200, body)

    def log(self):
        return self.srv.proc.stderr()

    def test_records_split_into_single_bytes_are_reassembled(self):
        c = self.client()
        c.handshake()
        for _ in range(2):  # twice: the partial record held in between is picked up again
            for b in c.records(REQ):
                c.sock.sendall(bytes([b]))  # TCP_NODELAY: a segment each
            status, body = c.response()
            self.assertEqual(status, 200, body)
        self.srv.proc.wait_for_output(r"event=tls_open .*version=TLSv1.3", 5)

    def test_request_in_the_same_segment_as_the_finished_is_answered(self):
        c = self.client()
        c.handshake(then=REQ)
        status, body = c.response()
        self.assertEqual(status, 200, body)

    def test_large_requests_spanning_records_and_reads_arrive_whole(self):
        c = self.client(pki=self.pki)
        c.handshake()
        for size, step in ((70000, 1000), (200000, 65536)):  # > 4 records; > one socket read
            wire = c.records(b"POST /api/v1/speedtest HTTP/1.1\r\nHost: c\r\nContent-Length: "
                             + str(size).encode() + b"\r\n\r\n" + b"x" * size)
            for i in range(0, len(wire), step):
                c.sock.sendall(wire[i:i + step])
            status, body = c.response()
            self.assertEqual((status, body), (200, b'{"bytes":%d}' % size))

    def test_a_tampered_record_ends_only_that_connection(self):
        c = self.client()
        c.handshake()
        wire = bytearray(c.records(REQ))
        wire[-1] ^= 0x01  # the AEAD tag
        c.sock.sendall(bytes(wire))
        alert = c.alert_from_server()
        self.assertIsNotNone(alert, "a forged record left the connection open")
        self.assertIn("BAD_RECORD_MAC", alert.upper())
        self.srv.proc.wait_for_output(r"event=tls_read_failed .* reason=decryption_failed", 5)
        self.assert_serving()

    def test_a_plaintext_record_after_the_handshake_ends_the_connection(self):
        c = self.client()
        c.handshake()
        c.sock.sendall(b"\x15\x03\x03\x00\x02\x01\x00")  # an unprotected close_notify
        self.assertIsNotNone(c.alert_from_server(), "an unprotected record was accepted")
        self.srv.proc.wait_for_output(r"event=tls_read_failed ", 5)
        self.assert_serving()

    def test_resumed_sessions_keep_the_client_identity(self):
        ctx = ssl.create_default_context(cafile=str(self.srv.ca))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(str(self.pki.cert), str(self.pki.key))
        session = None
        for attempt in range(2):
            raw = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10 * S)
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as t:
                t.sendall(b"POST /api/v1/speedtest HTTP/1.1\r\nHost: c\r\n"
                          b"Content-Length: 5\r\n\r\nhello")
                data = b""
                while not data.endswith(b'{"bytes":5}'):
                    chunk = t.recv(4096)
                    self.assertTrue(chunk, data)
                    data += chunk
                # the speedtest path needs an agent certificate: 200 = identity known
                self.assertTrue(data.startswith(b"HTTP/1.1 200"), data)
                self.assertEqual(t.session_reused, attempt == 1)
                session = t.session  # the ticket arrived before the response
        log = self.log()
        self.assertEqual(len(re.findall(r"event=tls_open .* resumed=0 verified=1 site=site-rec",
                                        log)), 1, log)
        self.assertEqual(len(re.findall(r"event=tls_open .* resumed=1 verified=1 site=site-rec",
                                        log)), 1, log)

    def s_client(self):
        """openssl s_client with the agent certificate, connected (its handshake done)."""
        p = Interactive(["openssl", "s_client", "-connect", f"127.0.0.1:{self.srv.port}",
                         "-tls1_3", "-CAfile", self.srv.ca, "-cert", self.pki.cert,
                         "-key", self.pki.key, "-crlf", "-no_ign_eof"])
        self.addCleanup(p.close)
        self.srv.proc.wait_for_output(r"event=tls_open .*site=site-rec", 10)
        return p

    def test_key_update_from_a_real_client_is_answered(self):
        p = self.s_client()
        # K: our KeyUpdate, and the server must answer with its own; k: ours alone. s_client
        # acts on a line's first letter and prints KEYUPDATE once it has sent it.
        for n, cmd in enumerate((b"K\n", b"k\n"), 1):
            self.assertTrue(p.send(cmd))
            p.wait_text("KEYUPDATE", 5, count=n)
        for n in (1, 2):  # data both ways under the new keys, twice on the same connection
            self.assertTrue(p.send(b"GET /healthz HTTP/1.1\nHost: c\n\n"))
            p.wait_text("HTTP/1.1 200", 5, count=n)
        self.assertNotIn("tls_read_failed", self.log())

    def test_a_flood_of_key_updates_ends_the_connection(self):
        p = self.s_client()
        # One KeyUpdate per line, each typed once s_client has sent the one before (it reads
        # its input in whole buffers: lines typed at once would be one command).
        for n in range(1, 41):
            if not p.send(b"k\n"):
                break
            p.wait_for(lambda out: out.count("KEYUPDATE") >= n or p.p.poll() is not None, 5,
                       f"KeyUpdate {n} sent or s_client gone")
            if p.p.poll() is not None:
                break
        # Past the limit the server closes; s_client exits when it sees that.
        p.wait_exit(10)
        self.assertLess(p.output().count("KEYUPDATE"), 40)
        self.srv.proc.wait_for_output(r"event=tls_read_failed .* reason=too_many_key_updates", 5)
        self.assert_serving()

    def test_tls12_clients_are_still_served(self):
        c = self.client(version=ssl.TLSVersion.TLSv1_2)
        c.handshake()
        for _ in range(2):
            c.sock.sendall(c.records(REQ))
            status, body = c.response()
            self.assertEqual(status, 200, body)
        self.srv.proc.wait_for_output(r"event=tls_open .*version=TLSv1.2", 5)

    def test_a_burst_of_handshakes_is_sliced_and_open_connections_answered_meanwhile(self):
        probe = self.client()
        probe.handshake()
        n = 300  # ClientHellos at once: ~50 ms of server work, a slice is 4 ms
        burst = [self.client() for _ in range(n)]
        hellos = [c.hello() for c in burst]  # made before any is sent: they arrive together
        for c, hello in zip(burst, hellos):
            c.sock.sendall(hello)
        # Right behind the last hello: the probe's request is read in the same turn of the loop
        # as the last hellos, or the next, while most of the burst is still queued.
        probe.sock.sendall(probe.records(REQ))
        status, body = probe.response()
        self.assertEqual(status, 200, body)
        for c in burst:
            c.handshake()
        wait_for(lambda: len(re.findall(r"event=tls_open ", self.log())) >= n + 1, 30,
                 f"{n + 1} handshakes to complete")
        self.srv.proc.wait_for_output(r"event=tls_handshake_queue_drained ", 10)
        episodes = [tuple(map(int, m)) for m in re.findall(
            r"event=tls_handshake_queue_drained handshakes=(\d+) turns=(\d+) "
            r"reads_served=(\d+)", self.log())]
        self.assertTrue(episodes, self.log())
        # Handshakes waited for later turns of the loop ...
        self.assertGreater(sum(e[0] for e in episodes), 0, episodes)
        self.assertGreater(max(e[1] for e in episodes), 1, episodes)
        # ... while the loop read (and answered) the established connection: the burst's own
        # connections sent nothing after their handshakes, so these reads are the probe's.
        self.assertGreaterEqual(sum(e[2] for e in episodes), 1, episodes)
        for c in burst[:20]:  # and the queued ones work
            c.sock.sendall(c.records(REQ))
            self.assertEqual(c.response()[0], 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
