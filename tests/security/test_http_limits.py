"""HTTP robustness against a real server over real TLS: oversized, slow and malformed requests get
the right status with a JSON error (or the connection is closed where no answer is due), and the
server keeps serving others; the connection cap holds; SIGTERM finishes an in-flight ingest (ack
after commit) and exits 0 within its bound.

Run by ctest (label security) under Debian's /usr/bin/python3; binaries from $VW_SERVER/$VW_AGENT.
"""

import gzip
import json
import os
import signal
import socket
import ssl
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from harness import TIMEOUT_SCALE, IntegrationTest, https_request, query, wait_for  # noqa: E402

S = TIMEOUT_SCALE


def ms(x):
    return f"{int(x * 1000 * S)}ms"


class Conn:
    """One raw TLS connection: bytes in, parsed responses out."""

    def __init__(self, server, pki=None, timeout=10):
        ctx = ssl.create_default_context(cafile=str(server.ca))
        if pki:
            ctx.load_cert_chain(str(pki.cert), str(pki.key))
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=timeout * S)
        self.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.buf = b""

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def _fill(self):
        try:
            chunk = self.s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            chunk = b""
        if not chunk:
            raise EOFError
        self.buf += chunk

    def response(self):
        """(status, headers dict lowercased, body bytes) of the next response."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed_by_server(self, timeout):
        """True once the server closed the connection (EOF) within timeout seconds."""
        self.s.settimeout(timeout * S)
        try:
            while True:
                self._fill()
        except EOFError:
            return True
        except (socket.timeout, TimeoutError):
            return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def batch(site, first, n):
    results = [{"seq": first + i, "ts": "2026-06-15T08:00:00.000Z", "mono_ms": first + i,
                "kind": "stream", "target": f"cam-{i % 64:03d}", "status": "ok", "codec": "h264",
                "faults": [], "metrics": {"fps": 25, "width": 1920, "height": 1080,
                                          "bitrate_kbps": 2048}} for i in range(n)]
    return json.dumps({"site": site, "agent": site, "results": results}).encode()


def post(body, gz=True, extra=""):
    if gz:
        body = gzip.compress(body)
    enc = "Content-Encoding: gzip\r\n" if gz else ""
    return (f"POST /api/v1/ingest HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\n{enc}"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


class HttpLimitsTest(IntegrationTest):
    LIMITS = ("[limits]\nmax_header_bytes = 4KiB\nmax_body_bytes = 64KiB\n"
              f"header_timeout = {ms(1)}\nrequest_timeout = {ms(2)}\nidle_timeout = {ms(1)}\n")

    def start(self, limits=None, log_level="info"):
        state = self.h.path("srv")
        conf = self.h.server_config(state, extra=f"log_level = {log_level}\n"
                                    + (limits if limits is not None else self.LIMITS))
        self.h.ca_init(conf)
        self.srv = self.h.start_server(conf, state)
        return self.srv

    def assert_serving(self):
        status, body = https_request(self.srv.port, self.srv.ca, "GET", "/healthz")
        self.assertEqual(status, 200, body)

    def assert_json_error(self, status, want, body):
        self.assertEqual(status, want, body)
        err = json.loads(body)
        self.assertIsInstance(err.get("error"), str, body)
        return err

    def refused(self, raw, want):
        c = Conn(self.srv)
        try:
            c.send(raw)
            status, headers, body = c.response()
            self.assert_json_error(status, want, body)
            self.assertEqual(headers.get("content-type"), "application/json")
            # A framing error leaves the stream unreadable: the server must hang up.
            self.assertEqual(headers.get("connection"), "close")
            self.assertTrue(c.closed_by_server(5), "connection left open after a framing error")
        finally:
            c.close()

    def test_oversized_head_gets_431_and_the_server_keeps_serving(self):
        self.start()
        self.refused("GET /healthz HTTP/1.1\r\nHost: c\r\nX-Big: " + "a" * 5000 + "\r\n\r\n", 431)
        self.refused("GET /" + "a" * 5000 + " HTTP/1.1\r\n\r\n", 431)
        self.assert_serving()

    def test_sighup_applies_new_limits_to_open_connections(self):
        srv = self.start()
        big = "GET /healthz HTTP/1.1\r\nHost: c\r\nX-Big: " + "a" * 5000 + "\r\n\r\n"
        self.refused(big, 431)
        c = Conn(srv)  # opened under the old limits, kept across the reload
        self.addCleanup(c.close)
        c.send("GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n")
        self.assertEqual(c.response()[0], 200)
        conf = Path(srv.conf)
        conf.write_text(conf.read_text().replace("max_header_bytes = 4KiB",
                                                 "max_header_bytes = 16KiB"))
        srv.proc.popen.send_signal(signal.SIGHUP)
        srv.proc.wait_for_output(r"event=limits_applied max_header_bytes=16384 ", 20)
        self.assertNotIn("reload_partial", srv.proc.stderr())
        c.send(big)
        status, _headers, body = c.response()
        self.assertEqual(status, 200, body)
        fresh = Conn(srv)
        self.addCleanup(fresh.close)
        fresh.send(big)
        self.assertEqual(fresh.response()[0], 200)

    def test_oversized_body_gets_413_before_it_is_sent(self):
        self.start()
        # Only the head: the answer must come without the server waiting for 1 MiB.
        self.refused("POST /api/v1/ingest HTTP/1.1\r\nHost: c\r\nContent-Length: 1048576\r\n\r\n",
                     413)
        self.refused("POST /api/v1/ingest HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "100000\r\n", 413)
        self.assert_serving()

    def test_gzip_bomb_gets_413(self):
        self.start()
        pki = self.h.ca_issue(self.srv.conf, "site-a", "org-a")
        bomb = gzip.compress(b"{" + b" " * (4 << 20) + b"}")  # 4 MiB inflated, ~4 KiB sent
        c = Conn(self.srv, pki)
        try:
            c.send(post(bomb, gz=False).replace(b"Content-Type",
                                                b"Content-Encoding: gzip\r\nContent-Type"))
            status, _, body = c.response()
            self.assert_json_error(status, 413, body)
        finally:
            c.close()
        self.assert_serving()

    def test_ambiguous_framing_gets_400(self):
        self.start()
        cases = [
            "POST / HTTP/1.1\r\nHost: c\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: c\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "POST / HTTP/1.1\r\nHost: c\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nHost: c\r\nContent-Length: +3\r\n\r\nabc",
            "GET / HTTP/1.1\r\nHost: c\r\nX-A: 1\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\nHost: c\n\n",
            "GET / HTTP/1.1\r\nHost: c\nX-A: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "POST / HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
            "X: 1\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "NOT HTTP\r\n\r\n",
        ]
        for raw in cases:
            with self.subTest(raw=raw):
                self.refused(raw, 400)
        self.assert_serving()

    def test_unsupported_codings_get_415_and_501(self):
        self.start()
        self.refused("POST / HTTP/1.1\r\nHost: c\r\nContent-Encoding: br\r\n"
                     "Content-Length: 1\r\n\r\nx", 415)
        self.refused("POST / HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501)

    def trickle(self, c, data, gap=0.2):
        """Slow-loris: send data a byte every gap seconds until the server answers or hangs up.
        Returns how many bytes went out before that. All of data sent without an answer is a
        failure: the answer must not wait for the client to stop."""
        for i, ch in enumerate(data):
            time.sleep(gap)  # the stimulus itself (a slow client), not a wait for a condition
            try:
                c.send(ch)
            except OSError:
                return i
            c.s.settimeout(0.01)
            try:
                c._fill()
            except (socket.timeout, TimeoutError):
                continue
            except EOFError:
                return i + 1
            return i + 1
        self.fail(f"no answer while {len(data)} bytes trickled in over {len(data) * gap:g} s")

    # The two deadlines below are judged against the client's own trickle, not a stopwatch: the
    # trickle lasts 20 times the server's deadline (100 bytes, 200 ms apart, against 1 s or 2 s)
    # and every byte comes well within the idle and header timeouts of the one before it. A
    # deadline that restarts on each byte never fires while bytes keep coming, so its 408 (if
    # any) comes only after the whole trickle, which trickle() fails; a loaded machine only
    # stretches the trickle, which widens the margin.
    SLOW = 100

    def test_slow_head_gets_408_within_the_header_timeout(self):
        self.start()
        c = Conn(self.srv)
        try:
            c.send("GET /healthz HTTP/1.1\r\n")
            sent = self.trickle(c, "X-Slow: " + "a" * self.SLOW)
            c.s.settimeout(5 * S)
            status, _, body = c.response()
            self.assert_json_error(status, 408, body)
            self.assertLess(sent, self.SLOW, "the head deadline is 1 s, not per byte")
            self.assertTrue(c.closed_by_server(5))
        finally:
            c.close()
        self.assert_serving()

    def test_slow_body_gets_408_within_the_request_timeout(self):
        self.start()
        c = Conn(self.srv)
        try:
            t0 = time.monotonic()
            c.send("POST /api/v1/ingest HTTP/1.1\r\nHost: c\r\nContent-Length: 1000\r\n\r\n{")
            sent = self.trickle(c, "1" * self.SLOW)
            c.s.settimeout(5 * S)
            status, _, body = c.response()
            elapsed = time.monotonic() - t0
            self.assert_json_error(status, 408, body)
            # Not the 1 s header or idle deadline: the 2 s request deadline (a timer cannot fire
            # early, so this lower bound holds however busy the machine is) ...
            self.assertGreater(elapsed, 1.5)
            # ... counted from the request's start, not from the last byte of the body.
            self.assertLess(sent, self.SLOW, "the request deadline is 2 s, not per byte")
        finally:
            c.close()
        self.assert_serving()

    def test_silent_and_idle_connections_are_closed(self):
        self.start()
        silent = Conn(self.srv)  # handshake, then nothing: the first request's head deadline
        idle = Conn(self.srv)  # one request, then nothing: the keep-alive idle deadline
        try:
            idle.send("GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n")
            status, headers, _ = idle.response()
            self.assertEqual(status, 200)
            self.assertNotEqual(headers.get("connection"), "close")
            # 1 s deadlines; 10 s is room for a busy machine and still far below the 60 s
            # default idle_timeout a connection would get if the configured one were ignored.
            self.assertTrue(idle.closed_by_server(10), "idle keep-alive connection kept open")
            self.assertTrue(silent.closed_by_server(10), "silent connection kept open")
        finally:
            silent.close()
            idle.close()
        self.assert_serving()

    def test_pipelined_requests_are_answered_in_order(self):
        self.start()
        c = Conn(self.srv)
        try:
            c.send("GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n" * 3
                   + "GET /nope HTTP/1.1\r\nHost: c\r\n\r\n")
            self.assertEqual([c.response()[0] for _ in range(4)], [200, 200, 200, 404])
        finally:
            c.close()

    def test_connection_cap_refuses_extra_clients_and_recovers(self):
        self.start(self.LIMITS.replace("idle_timeout = " + ms(1), "idle_timeout = " + ms(30))
                   + "max_connections = 3\n")
        held = []
        try:
            for _ in range(3):
                c = Conn(self.srv)
                c.send("GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n")
                self.assertEqual(c.response()[0], 200)
                held.append(c)
            # The fourth is accepted and closed at once: its handshake cannot complete.
            with self.assertRaises((ssl.SSLError, OSError, EOFError)):
                extra = Conn(self.srv, timeout=5)
                extra.send("GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n")
                extra.response()
            self.srv.proc.wait_for_output(r"event=conn_refused reason=max_connections", 20)
            held.pop().close()

            def serving_again():
                status, _ = https_request(self.srv.port, self.srv.ca, "GET", "/healthz")
                return status == 200

            wait_for(serving_again, 20, "a free slot after one client left")
        finally:
            for c in held:
                c.close()

    def test_sigterm_finishes_the_in_flight_ingest_and_exits_0(self):
        # Default limits, debug logs: event=request_start says the batch is with the handler.
        self.start(limits="", log_level="debug")
        pki = self.h.ca_issue(self.srv.conf, "site-d", "org-d")
        n = 20000
        busy, idle, half = Conn(self.srv, pki), Conn(self.srv), Conn(self.srv)
        try:
            idle.send("GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n")
            self.assertEqual(idle.response()[0], 200)
            half.send("GET /healthz HTTP/1.1\r\nHost: c\r\n")
            busy.send(post(batch("site-d", 1, n)))
            self.srv.proc.wait_for_output(r"event=request_start .*path=/api/v1/ingest", 20)
            self.srv.proc.send(signal.SIGTERM)
            # Ack after commit still holds during the drain.
            status, headers, body = busy.response()
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body), {"acked_seq": n})
            self.assertEqual(headers.get("connection"), "close")
            self.assertTrue(idle.closed_by_server(5), "idle connection not closed at shutdown")
            self.assertTrue(half.closed_by_server(5), "half-read request not closed at shutdown")
            # Within its bound: the server's own shutdown_timeout (10 s by default) ends a drain
            # that takes longer with event=shutdown_forced, so a clean drain is one without it.
            # The wait is only how long this test gives a server that hangs past its bound.
            rc = self.srv.proc.wait(60 * S)
            self.assertEqual(rc, 0, self.srv.proc.tail())
            self.assertNotRegex(self.srv.proc.stderr(), r"event=shutdown_forced",
                                "the drain ran into shutdown_timeout")
        finally:
            for c in (busy, idle, half):
                c.close()
        self.assertEqual(query(self.srv.db, "SELECT count(*) FROM results")[0][0], n)
        self.assertRegex(self.srv.proc.stderr(), r"event=stopped")

    def test_default_start_does_not_warn_about_descriptors(self):
        self.start(limits="")
        self.srv.proc.wait_for_output(r"event=connection_cap max_connections=\d+", 20)
        self.assertNotRegex(self.srv.proc.stderr(), r"event=fd_limit\b")


if __name__ == "__main__":
    unittest.main(verbosity=2)
