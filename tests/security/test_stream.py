#!/usr/bin/python3
"""The event stream under load: 200 Server-Sent Events subscribers on one server, real
ingest batches posted with an agent certificate; every subscriber that reads receives every
event in order, one subscriber that never reads is cut off and counted, and the others keep
receiving after it is gone. A city's subscriber sees none of another city's events. A stream ends when its credential
does: a revoked token, a logout, a session's idle or absolute end.

    /usr/bin/python3 tests/security/test_stream.py [-k PATTERN]
"""

import http.client
import json
import re
import selectors
import socket
import ssl
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (ORG, IntegrationTest, batch, cli, client_context,  # noqa: E402
                        main, people_token, request, wait_for)

READERS = 200
SCALE = float(__import__("os").environ.get("VW_TIMEOUT_SCALE", "1"))


class Subscriber:
    """One GET /api/v1/events over TLS; parses frames as they arrive."""

    def __init__(self, server, token=None, rcvbuf=None, cookie=None):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Set before connect so the window it advertises is small from the start.
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(30 * SCALE)
        raw.connect(("127.0.0.1", server.port))
        self.sock = client_context(server).wrap_socket(raw, server_hostname="127.0.0.1")
        cred = (f"Cookie: __Host-vw_session={cookie}" if cookie
                else f"Authorization: Bearer {token}")
        self.sock.sendall((f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           f"{cred}\r\nAccept: text/event-stream\r\n"
                           f"\r\n").encode())
        self.port = self.sock.getsockname()[1]
        self.buf = b""
        self.head = None
        self.events = []  # (id, type, data)
        self.retry = None
        self.eof = False

    def feed(self, data):
        self.buf += data
        if self.head is None:
            if b"\r\n\r\n" not in self.buf:
                return
            self.head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        while b"\n\n" in self.buf:
            frame, self.buf = self.buf.split(b"\n\n", 1)
            fields = {}
            for line in frame.decode().split("\n"):
                if line.startswith(":"):
                    continue  # heartbeat
                k, _, v = line.partition(":")
                fields[k] = v[1:] if v.startswith(" ") else v
            if "retry" in fields:
                self.retry = int(fields["retry"])
            if "id" in fields:
                self.events.append((int(fields["id"]), fields["event"],
                                    json.loads(fields["data"])))

    def pump(self):
        """Reads whatever is there without blocking."""
        while True:
            try:
                data = self.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                return
            except (ConnectionError, ssl.SSLError):
                self.eof = True
                return
            if not data:
                self.eof = True
                return
            self.feed(data)

    def wait_started(self):
        """Blocking: the head and the retry: line (the hub has it as a subscriber)."""
        while self.retry is None:
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("stream closed before it started")
            self.feed(data)
        self.sock.setblocking(False)


class Stream(IntegrationTest):
    def test_200_subscribers_get_every_event_and_a_non_reader_is_cut_off(self):
        h = self.h
        state = h.path("srv")
        # The smallest queue the config allows: the non-reader fills it within a few hundred
        # events instead of thousands.
        conf = h.server_config(state, name="srv.ini", extra="[limits]\nstream_queue = 4KiB\n")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        pki = h.ca_issue(srv.conf, "site-jn", ORG, city="jinan")
        province = people_token(h, srv, "province")
        qingdao = people_token(h, srv, "city", city="qingdao")

        readers = []
        for _ in range(READERS):
            s = Subscriber(srv, province)
            s.wait_started()
            readers.append(s)
        other_city = Subscriber(srv, qingdao)
        other_city.wait_started()
        slow = Subscriber(srv, province, rcvbuf=1024)
        slow.wait_started()  # reads its head, then never again
        self.assertIn(b"Content-Type: text/event-stream", readers[0].head)
        self.assertNotIn(b"Content-Length", readers[0].head)
        self.assertEqual(readers[0].retry, 5000)

        sel = selectors.DefaultSelector()
        for s in readers + [other_city]:
            sel.register(s.sock, selectors.EVENT_READ, s)

        def pump(timeout=0):
            for key, _ in sel.select(timeout):
                key.data.pump()

        agent = http.client.HTTPSConnection(
            "127.0.0.1", srv.port, context=client_context(srv, pki.cert, pki.key),
            timeout=30 * SCALE)
        seq = 0

        def post():
            nonlocal seq
            seq += 1
            agent.request("POST", "/api/v1/ingest", body=json.dumps(batch("site-jn", seq)),
                          headers={"Content-Type": "application/json"})
            resp = agent.getresponse()
            body = json.loads(resp.read())
            self.assertEqual((resp.status, body["acked_seq"]), (200, seq))
            pump()

        dropped = re.compile(rf"event=stream_dropped peer=127\.0\.0\.1:{slow.port} "
                             r"reason=slow queued=\d+ dropped_total=1\b")
        # The non-reader is cut off once its queue is full: post until the server says so
        # (bounded: thousands of events would mean the bound does not hold).
        while not dropped.search(srv.proc.stderr()):
            self.assertLess(seq, 5000, "the non-reading subscriber was never cut off")
            post()
        cut_at = seq
        # The others keep receiving after it is gone.
        for _ in range(20):
            post()
        total = seq

        def all_received():
            pump(0.05)
            return all(len(s.events) >= total for s in readers)

        wait_for(all_received, 60 * SCALE, f"{READERS} readers receiving {total} events")
        for s in readers:
            self.assertEqual([e[2]["acked_seq"] for e in s.events], list(range(1, total + 1)))
            ids = [e[0] for e in s.events]
            self.assertEqual(ids, sorted(ids))
            self.assertEqual(len(set(ids)), len(ids))
            self.assertEqual({e[1] for e in s.events}, {"report"})
            self.assertFalse(s.eof)
        first = readers[0].events[0][2]
        self.assertEqual(
            {k: first[k] for k in ("site", "org", "city", "agent", "ok", "degraded", "down")},
            {"site": "site-jn", "org": ORG, "city": "jinan", "agent": "site-jn", "ok": 1,
             "degraded": 0, "down": 0})
        # Scope: qingdao's supervisor saw none of jinan's reports, and is still connected.
        self.assertEqual(other_city.events, [])
        self.assertFalse(other_city.eof)

        # The cut-off subscriber: what was already in flight, then the end of the stream.
        slow.sock.setblocking(False)

        def slow_ended():
            slow.pump()
            return slow.eof

        wait_for(slow_ended, 30 * SCALE, "the non-reader's connection closed")
        self.assertLess(len(slow.events), cut_at)
        self.assertEqual(len(re.findall(r"event=stream_dropped", srv.proc.stderr())), 1)
        print(f"stream: {READERS} readers x {total} events; non-reader cut off after "
              f"{cut_at} events having received {len(slow.events)}", file=sys.stderr)
        agent.close()
        for s in readers + [other_city, slow]:
            s.sock.close()


class Revalidation(IntegrationTest):
    """Review D1: a stream's principal was copied once at subscription and never checked
    again. Each class sets [web] for what it proves; ends are polled with deadlines."""
    WEB = ""

    def setUp(self):
        super().setUp()
        h = self.h
        state = h.path("srv")
        conf = h.server_config(state, name="srv.ini", extra=f"[web]\n{self.WEB}\n")
        h.ca_init(conf)
        self.srv = h.start_server(conf, state)

    def token(self, name):
        return people_token(self.h, self.srv, "province", name=name)

    def login(self, tok):
        status, body, headers = request(self.srv, "POST", "/api/v1/session", token=tok)
        self.assertEqual(status, 200, body)
        return re.match(r"__Host-vw_session=([A-Za-z0-9_-]{43});",
                        headers["Set-Cookie"]).group(1)

    def stream(self, **cred):
        s = Subscriber(self.srv, **cred)
        s.wait_started()
        self.addCleanup(s.sock.close)
        return s

    def wait_ended(self, subs, what, timeout=20):
        def ended():
            for s in subs:
                s.pump()
            return all(s.eof for s in subs)
        wait_for(ended, timeout * SCALE, what, interval=0.05)

    def token_id(self, name):
        listing = cli(self.h, self.srv, "token", "list", name="token-list").stdout()
        return next(line.split()[0] for line in listing.splitlines()
                    if line.endswith(" " + name))


class RevokeEndsStreams(Revalidation):
    WEB = "stream_recheck = 300ms"

    def test_token_revoke_ends_its_bearer_and_cookie_streams_and_no_others(self):
        tok, other = self.token("to-revoke"), self.token("stays")
        bearer, cookie = self.stream(token=tok), self.stream(cookie=self.login(tok))
        keep = [self.stream(token=other), self.stream(cookie=self.login(other))]
        cli(self.h, self.srv, "token", "revoke", self.token_id("to-revoke"),
            name="token-revoke")
        self.wait_ended([bearer, cookie], "the revoked token's streams to end")
        tid = self.token_id("to-revoke")
        # The bearer stream's token is revoked; the cookie's session went with the token (the
        # same transaction), so its recheck finds it ended or the token revoked.
        ended = re.compile(rf"event=stream_ended peer=\S+ token={tid} "
                           r"reason=(revoked_token|ended_session)\b")
        wait_for(lambda: len(ended.findall(self.srv.proc.stderr())) == 2, 10 * SCALE,
                 "both streams' end logged")
        self.assertIn("revoked_token", ended.findall(self.srv.proc.stderr()))
        # Another revoke and its stream's end: rechecks of the other token's streams ran
        # meanwhile, and left them open.
        third = self.token("third")
        s3 = self.stream(token=third)
        cli(self.h, self.srv, "token", "revoke", self.token_id("third"), name="token-revoke")
        self.wait_ended([s3], "the third token's stream to end")
        for s in keep:
            s.pump()
            self.assertFalse(s.eof)
        # And the client reconnecting is refused.
        self.assertEqual(request(self.srv, "GET", "/api/v1/events", token=tok)[0], 401)


class LogoutEndsStream(Revalidation):
    # No recheck within the test: the logout itself ends the stream.
    WEB = "stream_recheck = 1h"

    def test_logout_ends_the_stream_of_its_cookie_only(self):
        tok = self.token("two-tabs")
        sid_a, sid_b = self.login(tok), self.login(tok)
        a, b, bearer = self.stream(cookie=sid_a), self.stream(cookie=sid_b), self.stream(token=tok)
        status, body, _ = request(self.srv, "DELETE", "/api/v1/session", headers={
            "Cookie": f"__Host-vw_session={sid_a}",
            "Origin": f"https://127.0.0.1:{self.srv.port}"})
        self.assertEqual(status, 200, body)
        self.wait_ended([a], "the logged-out session's stream to end")
        self.srv.proc.wait_for_output(r"event=stream_ended .*reason=logout", 10)
        for s in (b, bearer):
            s.pump()
            self.assertFalse(s.eof)


class LifetimeEndsStream(Revalidation):
    WEB = "session_idle = 1h\nsession_lifetime = 3s\nstream_recheck = 300ms"

    def test_a_cookie_stream_ends_at_the_session_lifetime(self):
        start = time.monotonic()
        s = self.stream(cookie=self.login(self.token("short")))
        self.wait_ended([s], "the stream to end at the session's lifetime", timeout=30)
        self.assertGreaterEqual(time.monotonic() - start, 3)
        self.srv.proc.wait_for_output(r"event=stream_ended .*reason=expired_session", 10)


class IdleEndsStream(Revalidation):
    WEB = "session_idle = 2s\nsession_lifetime = 1h\nstream_recheck = 300ms"

    def test_a_cookie_stream_alone_is_no_use_and_ends_at_the_idle_time(self):
        start = time.monotonic()
        s = self.stream(cookie=self.login(self.token("idle")))
        self.wait_ended([s], "the idle session's stream to end", timeout=30)
        self.assertGreaterEqual(time.monotonic() - start, 2)
        self.srv.proc.wait_for_output(r"event=stream_ended .*reason=expired_session", 10)


if __name__ == "__main__":
    main()
