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

    def __init__(self, server, token=None, rcvbuf=None, cookie=None, last_event_id=None):
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
                           + (f"Last-Event-ID: {last_event_id}\r\n"
                              if last_event_id is not None else "")
                           + "\r\n").encode())
        self.port = self.sock.getsockname()[1]
        self.buf = b""
        self.head = None
        self.events = []  # (id, type, data)
        self.retry = None
        self.last_id = None
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
                # What a browser keeps as its last event ID, an id-only frame included.
                self.last_id = fields["id"]
            if "event" in fields:  # a report has no id (not resumable, not stored)
                self.events.append((int(fields["id"]) if "id" in fields else None,
                                    fields["event"], json.loads(fields["data"])))

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
            # Reports are ephemeral: no id: (the stored events' ids are the store's).
            self.assertEqual({e[0] for e in s.events}, {None})
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


class Resume(IntegrationTest):
    """Issue 16 (A): a stream resumed from far back gets the whole stored backlog, in id
    order and none twice, paced by its connection (a 4 KiB queue would cut off a stream
    that was handed thousands of events at once), then the live events."""

    def test_a_long_backlog_is_paced_in_order_then_live(self):
        h = self.h
        state = h.path("srv")
        conf = h.server_config(state, name="srv.ini", extra="[limits]\nstream_queue = 4KiB\n")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        pki = h.ca_issue(srv.conf, "site-jn", ORG, city="jinan")
        province = people_token(h, srv, "province")
        qingdao = people_token(h, srv, "city", city="qingdao")
        agent = http.client.HTTPSConnection(
            "127.0.0.1", srv.port, context=client_context(srv, pki.cert, pki.key),
            timeout=30 * SCALE)
        seq = 0

        def post(status):
            # Ten cameras changing status at once: ten status events and ten problem events.
            nonlocal seq
            results = []
            for i in range(10):
                seq += 1
                r = json.loads(json.dumps(batch("site-jn", seq, target=f"cam-{i}")))
                r = r["results"][0]
                r["status"] = status
                r["faults"] = [] if status == "ok" else ["black"]
                results.append(r)
            agent.request("POST", "/api/v1/ingest",
                          body=json.dumps({"site": "site-jn", "agent": "site-jn",
                                           "results": results}),
                          headers={"Content-Type": "application/json"})
            resp = agent.getresponse()
            self.assertEqual(resp.status, 200, resp.read())
            resp.read()

        rounds = 80  # 80 x 10 x 2 = 1,600 stored events: pages of 500, ~500 KB of frames
        for k in range(rounds):
            post("down" if k % 2 == 0 else "ok")
        stored = [row[0] for row in __import__("sqlite3").connect(
            f"file:{srv.db}?mode=ro", uri=True).execute("SELECT id FROM events ORDER BY id")]
        self.assertGreaterEqual(len(stored), rounds * 20 - 10)

        full = Subscriber(srv, province, last_event_id=0)
        full.wait_started()
        other = Subscriber(srv, qingdao, last_event_id=0)
        other.wait_started()

        def caught_up():
            full.pump()
            other.pump()
            return len([e for e in full.events if e[0] is not None]) >= len(stored)

        wait_for(caught_up, 60 * SCALE, f"{len(stored)} stored events on the resumed stream")
        ids = [e[0] for e in full.events if e[0] is not None]
        self.assertEqual(ids, stored, "the backlog in id order, none twice, none lost")
        self.assertFalse(full.eof)
        post("down")  # live after the backlog

        def live():
            full.pump()
            return len([e for e in full.events if e[0] is not None]) > len(stored)

        wait_for(live, 30 * SCALE, "a live event after the backlog")
        ids = [e[0] for e in full.events if e[0] is not None]
        self.assertEqual(ids, sorted(set(ids)))
        other.pump()
        self.assertEqual(other.events, [], "another city's backlog is not qingdao's")
        self.assertFalse(other.eof)
        self.assertNotIn("event=stream_dropped", srv.proc.stderr())
        agent.close()
        full.sock.close()
        other.sock.close()


def post_rounds(test, agent, site, seq, rounds, cams=10):
    """rounds batches of cams cameras all changing status (down, ok, ...): 2 x cams stored
    events each (status and problem_*). Returns the last seq."""
    for k in range(rounds):
        status = "down" if k % 2 == 0 else "ok"
        results = []
        for i in range(cams):
            seq += 1
            r = dict(batch(site, seq, target=f"cam-{i}")["results"][0])
            r["status"] = status
            r["faults"] = [] if status == "ok" else ["black"]
            results.append(r)
        agent.request("POST", "/api/v1/ingest",
                      body=json.dumps({"site": site, "agent": site, "results": results}),
                      headers={"Content-Type": "application/json"})
        resp = agent.getresponse()
        test.assertEqual(resp.status, 200, resp.read())
        resp.read()
    return seq


def agent_conn(h, srv, site, org, city):
    pki = h.ca_issue(srv.conf, site, org, city=city)
    return http.client.HTTPSConnection(
        "127.0.0.1", srv.port, context=client_context(srv, pki.cert, pki.key),
        timeout=30 * SCALE)


def org_token(h, srv, org, name):
    p = cli(h, srv, "token", "create", "--role", "org", "--org", org, "--name", name,
            name="token-create")
    token = p.stdout().strip()
    assert token.startswith("vwt_"), p.tail()
    return token


def resume_line(srv, port):
    """The server's account of the resume of the stream from port: pages read and how it
    ended (resumed, reload, cut_off, queued, refused), or None."""
    m = None
    for m in re.finditer(rf"event=stream_resume peer=127\.0\.0\.1:{port} .*", srv.proc.stderr()):
        pass
    return m.group(0) if m else None


class ScopedResume(IntegrationTest):
    """Security review (issue 16 A): a city's or an org's resume from the first event reads
    its own scope's rows only — in SQL, so the pages the server reads grow with what the
    stream may see, not with the province's week — and receives exactly those."""

    def test_city_and_org_resume_their_own_rows_only(self):
        h = self.h
        state = h.path("srv")
        conf = h.server_config(state, name="srv.ini")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        province = people_token(h, srv, "province")
        jinan = people_token(h, srv, "city", city="jinan")
        org = org_token(h, srv, ORG, "org-staff")
        other = agent_conn(h, srv, "site-qd", "org-other", "qingdao")
        mine = agent_conn(h, srv, "site-jn", ORG, "jinan")
        # 1,200 events of another city and org around 40 of jinan's (ORG's).
        seq = post_rounds(self, other, "site-qd", 0, 30)
        post_rounds(self, mine, "site-jn", 0, 2)
        post_rounds(self, other, "site-qd", seq, 30)
        db = __import__("sqlite3").connect(f"file:{srv.db}?mode=ro", uri=True)
        everything = [r[0] for r in db.execute("SELECT id FROM events ORDER BY id")]
        own = [r[0] for r in db.execute("SELECT id FROM events WHERE city = 'jinan'"
                                        " AND org = ? ORDER BY id", (ORG,))]
        db.close()
        self.assertTrue(30 <= len(own) <= 40, len(own))
        self.assertGreaterEqual(len(everything), 1200)

        streams = {"city": Subscriber(srv, jinan, last_event_id=0),
                   "org": Subscriber(srv, org, last_event_id=0),
                   "province": Subscriber(srv, province, last_event_id=0)}
        for s in streams.values():
            s.wait_started()
        want = {"city": own, "org": own, "province": everything}

        def done():
            for s in streams.values():
                s.pump()
            return all(resume_line(srv, s.port) and "result=resumed" in resume_line(srv, s.port)
                       and len([e for e in s.events if e[0] is not None]) >= len(want[k])
                       for k, s in streams.items())

        wait_for(done, 60 * SCALE, "three resumed streams")
        pages = {}
        for k, s in streams.items():
            self.assertEqual([e[0] for e in s.events if e[0] is not None], want[k], k)
            pages[k] = int(re.search(r"pages=(\d+)", resume_line(srv, s.port)).group(1))
        # 40 rows in scope: one page each, while the province (the same server, the same
        # week) reads several: the others' 1,200 rows were never read for the city or org.
        self.assertEqual((pages["city"], pages["org"]), (1, 1), pages)
        self.assertGreaterEqual(pages["province"], 3, pages)
        print(f"scoped resume: {len(own)} of {len(everything)} events in scope; pages read "
              f"{pages}", file=sys.stderr)
        for c in (other, mine):
            c.close()
        for s in streams.values():
            s.sock.close()


class QuietResume(IntegrationTest):
    """Browser test finding (issue 16): a stream opened without Last-Event-ID at a quiet
    moment is told the highest stored id at once (an id-only frame, which sets the client's
    last event ID without an event), so a server restart while nothing happens still
    resumes: reconnected with that id it gets exactly the events it missed. Live events
    after the id frame are exactly the stored ones above it."""

    def test_a_quiet_connect_resumes_across_a_restart(self):
        h = self.h
        state = h.path("srv")
        conf = h.server_config(state, name="srv.ini")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        province = people_token(h, srv, "province")
        pki = h.ca_issue(srv.conf, "site-jn", ORG, city="jinan")
        agent = http.client.HTTPSConnection(
            "127.0.0.1", srv.port, timeout=30 * SCALE,
            context=client_context(srv, pki.cert, pki.key))
        seq = post_rounds(self, agent, "site-jn", 0, 2, cams=3)

        def ids(db_path, after=0):
            db = __import__("sqlite3").connect(f"file:{db_path}?mode=ro", uri=True)
            try:
                return [r[0] for r in db.execute("SELECT id FROM events WHERE id > ?"
                                                 " ORDER BY id", (after,))]
            finally:
                db.close()

        stored = ids(srv.db)
        self.assertTrue(stored)
        quiet = Subscriber(srv, province)
        quiet.wait_started()

        def got_id():
            quiet.pump()
            return quiet.last_id is not None
        wait_for(got_id, 20 * SCALE, "the id frame of a quiet connect")
        self.assertEqual(int(quiet.last_id), stored[-1])
        self.assertEqual([e for e in quiet.events if e[0] is not None], [])
        # Live: exactly the stored events above the id told, in order.
        seq = post_rounds(self, agent, "site-jn", seq, 1, cams=3)
        live_want = ids(srv.db, stored[-1])
        self.assertTrue(live_want)

        def got_live():
            quiet.pump()
            return len([e for e in quiet.events if e[0] is not None]) >= len(live_want)
        wait_for(got_live, 20 * SCALE, "the live events after the id frame")
        self.assertEqual([e[0] for e in quiet.events if e[0] is not None], live_want)
        quiet.pump()
        frames_first = 2 + len(quiet.events)  # retry:, id: and the events
        agent.close()
        quiet.sock.close()

        # A second quiet connect, then the restart while nothing happens.
        quiet = Subscriber(srv, province)
        quiet.wait_started()
        wait_for(got_id, 20 * SCALE, "the id frame of the second quiet connect")
        told = int(quiet.last_id)
        self.assertEqual(told, live_want[-1])
        quiet.pump()
        frames = frames_first + 2 + len(quiet.events)  # retry:, id:, any event
        srv.proc.stop()
        quiet.sock.close()
        # Coalesced writes: each stream's frames of a loop turn go as one write (the hello
        # and its id frame; a commit's status, problem and report events), so the server
        # wrote far fewer times than it sent frames (one write a frame before).
        m = re.search(r"event=events_closed flushes=\d+ stream_writes=(\d+)",
                      srv.proc.stderr())
        self.assertTrue(m, "the hub's counters at shutdown")
        self.assertLessEqual(int(m.group(1)) * 2, frames, (m.group(0), frames))
        conf = h.server_config(state, port=srv.port, name="srv-restarted.ini")
        srv = h.start_server(conf, state)
        # The same agent certificate (the CA lives in the state directory).
        agent = http.client.HTTPSConnection(
            "127.0.0.1", srv.port, timeout=30 * SCALE,
            context=client_context(srv, pki.cert, pki.key))
        # The cameras are down: this round (down again) changes nothing, the next (ok) does.
        post_rounds(self, agent, "site-jn", seq, 2, cams=3)
        missed = ids(srv.db, told)
        self.assertTrue(missed)
        back = Subscriber(srv, province, last_event_id=told)
        back.wait_started()

        def resumed():
            back.pump()
            line = resume_line(srv, back.port)
            return line and "result=resumed" in line
        wait_for(resumed, 30 * SCALE, "the resumed stream")
        back.pump()
        self.assertEqual([e[0] for e in back.events if e[0] is not None], missed)
        self.assertEqual([e for e in back.events if e[1] == "reload"], [])
        agent.close()
        back.sock.close()


class ResumeBounds(IntegrationTest):
    """Security review (issue 16 A): resumes in flight are bounded. 16 at once read their
    backlog (the rest wait their turn, holding no backlog), a principal has at most 4
    resuming streams (a fifth is refused with 503 and Retry-After before the stream starts),
    and a resume's held copies count against its queue bound: live events piling up behind
    a client that does not read cut it off, which frees its turn for the next."""

    def test_many_resumes_are_bounded_and_a_non_reader_gives_its_turn_up(self):
        h = self.h
        state = h.path("srv")
        conf = h.server_config(state, name="srv.ini", extra="[limits]\nstream_queue = 4KiB\n")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        jn_agent = agent_conn(h, srv, "site-jn", ORG, "jinan")
        qd_agent = agent_conn(h, srv, "site-qd", ORG, "qingdao")
        seq = post_rounds(self, jn_agent, "site-jn", 0, 60)  # 1,200 of jinan's: ~500 KB
        post_rounds(self, qd_agent, "site-qd", 0, 3)          # 60 of qingdao's
        db = __import__("sqlite3").connect(f"file:{srv.db}?mode=ro", uri=True)
        qd_ids = [r[0] for r in db.execute("SELECT id FROM events WHERE city = 'qingdao'"
                                           " ORDER BY id")]
        db.close()
        jinan = [people_token(h, srv, "city", city="jinan", name=f"jn-{i}") for i in range(4)]
        qingdao = people_token(h, srv, "city", city="qingdao", name="qd")

        # Four principals x four streams that never read: the 16 slots, held.
        stalled = []
        for tok in jinan:
            for _ in range(4):
                s = Subscriber(srv, tok, rcvbuf=1024, last_event_id=0)
                s.wait_started()
                stalled.append(s)
        # A fifth of the same principal is refused before its stream starts.
        fifth = Subscriber(srv, jinan[0], last_event_id=0)
        fifth.sock.setblocking(True)
        head = b""
        while b"\r\n\r\n" not in head:
            data = fifth.sock.recv(65536)
            self.assertTrue(data, "the refused resume's answer")
            head += data
        self.assertTrue(head.startswith(b"HTTP/1.1 503"), head[:200])
        self.assertIn(b"Retry-After: 5", head)
        self.assertNotIn(b"text/event-stream", head.split(b"\r\n\r\n")[0])
        self.assertIn("result=refused reason=principal_busy", resume_line(srv, fifth.port))
        fifth.sock.close()

        # Another principal's resume waits its turn: queued, no backlog yet.
        waiter = Subscriber(srv, qingdao, last_event_id=0)
        waiter.wait_started()
        wait_for(lambda: resume_line(srv, waiter.port), 10 * SCALE, "the waiter's resume")
        self.assertIn("result=queued active=16 waiting=1", resume_line(srv, waiter.port))
        waiter.pump()
        self.assertEqual([e for e in waiter.events if e[0] is not None], [])

        # Live events of jinan's behind the 16 stalled clients: more than half their 4 KiB
        # bound held, so each is cut off (or, not yet stalled on its socket, told to reload),
        # and the waiter gets its turn and its whole backlog.
        post_rounds(self, jn_agent, "site-jn", seq, 1)

        def given_up():
            lines = [resume_line(srv, s.port) or "" for s in stalled]
            return all("result=cut_off" in ln or "result=reload" in ln for ln in lines)

        wait_for(given_up, 30 * SCALE, "the 16 stalled resumes to give their turns up")
        self.assertTrue(any("result=cut_off reason=pending_full" in resume_line(srv, s.port)
                            for s in stalled))

        def waiter_done():
            waiter.pump()
            return len([e for e in waiter.events if e[0] is not None]) >= len(qd_ids)

        wait_for(waiter_done, 60 * SCALE, "the queued resume's backlog")
        self.assertEqual([e[0] for e in waiter.events if e[0] is not None], qd_ids)
        wait_for(lambda: "result=resumed" in (resume_line(srv, waiter.port) or ""),
                 10 * SCALE, "the waiter resumed")
        self.assertFalse(waiter.eof)
        print(f"resume bounds: {resume_line(srv, waiter.port)}", file=sys.stderr)
        for c in (jn_agent, qd_agent):
            c.close()
        for s in stalled + [waiter]:
            s.sock.close()


class ResumeDeadline(IntegrationTest):
    """Security review (issue 16 A): a resuming client that never reads no longer holds its
    turn and its copies forever: the resume has 60 s (EVENTS_RESUME_DEADLINE_MS), then the
    stream is cut off as a slow reader, while a reading stream resumed meanwhile is done."""

    def test_a_resume_that_never_drains_ends_at_its_deadline(self):
        h = self.h
        state = h.path("srv")
        conf = h.server_config(state, name="srv.ini", extra="[limits]\nstream_queue = 4KiB\n")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        agent = agent_conn(h, srv, "site-jn", ORG, "jinan")
        post_rounds(self, agent, "site-jn", 0, 30)  # 600 events: far more than buffers hold
        province = people_token(h, srv, "province")
        stalled = Subscriber(srv, province, rcvbuf=1024, last_event_id=0)
        stalled.wait_started()  # then never read again
        reader = Subscriber(srv, people_token(h, srv, "province", name="r"), last_event_id=0)
        reader.wait_started()
        wait_for(lambda: reader.pump() or "result=resumed" in (resume_line(srv, reader.port)
                                                               or ""),
                 60 * SCALE, "the reading stream resumed")
        self.assertIsNone(resume_line(srv, stalled.port), "the stalled resume ended early")
        # No live event, no heartbeat past its queue: only the deadline can end it.
        wait_for(lambda: "result=cut_off reason=deadline" in (resume_line(srv, stalled.port)
                                                              or ""),
                 (60 + 30) * SCALE, "the stalled resume cut off at its deadline")

        def ended():
            stalled.pump()
            return stalled.eof

        wait_for(ended, 30 * SCALE, "the stalled stream's connection closed")
        self.assertFalse(reader.eof)
        agent.close()
        for s in (stalled, reader):
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
