#!/usr/bin/python3
"""The live feed (issue 16, part A) end to end: real server, agents and camd on loopback.

A camera stopped in camd opens a problem (GET /api/v1/problems) and the event stream delivers
problem_opened with the store's id; after a server restart a stream resumed with Last-Event-ID
gets exactly the stored events it missed, in order, none twice, then live ones; a killed agent's
site gets site_silent within [feed] silent_after (counted in the cadence_ms its batches carried)
and its return closes it; a city's supervisor never receives another city's events; an ack is
the city's or the province's (an org token is refused), audited, and a second ack is 409.

    /usr/bin/python3 tests/integration/test_feed.py [-k PATTERN]
"""

import json
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (SERVER, TIMEOUT_SCALE, IntegrationTest, https_request, main,  # noqa: E402
                     query, reader_token, site_targets, wait_for)

ORG = "org-feed"
SITE_JN, SITE_QD = "site-jn", "site-qd"
# 10 x the agents' 1 s cadence: far above a batch's gap on a loaded machine, short enough
# for a test.
SILENT_FACTOR = 10
CADENCE_S = 1


class Stream:
    """One GET /api/v1/events over TLS, read on a thread: frames as (id or None, type, data)."""

    def __init__(self, server, token, last_event_id=None):
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        ctx = ssl.create_default_context(cafile=str(server.ca))
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
        self.sock.sendall((f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n"
                           f"{extra}\r\n").encode())
        self.sock.settimeout(0.5)
        self.frames = []
        self.lock = threading.Lock()
        self.eof = False
        self.head = None
        self.buf = b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (OSError, ssl.SSLError):
                data = b""
            if not data:
                self.eof = True
                return
            self.buf += data
            if self.head is None:
                if b"\r\n\r\n" not in self.buf:
                    continue
                self.head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            while b"\n\n" in self.buf:
                frame, self.buf = self.buf.split(b"\n\n", 1)
                fields = {}
                for line in frame.decode().split("\n"):
                    if line.startswith(":"):
                        continue
                    k, _, v = line.partition(":")
                    fields[k] = v[1:] if v.startswith(" ") else v
                if "event" in fields:
                    with self.lock:
                        self.frames.append((int(fields["id"]) if "id" in fields else None,
                                            fields["event"], json.loads(fields["data"])))

    def stored(self):
        """The stored events received (those with an id)."""
        with self.lock:
            return [f for f in self.frames if f[0] is not None]

    def find(self, pred):
        with self.lock:
            return [f for f in self.frames if pred(f)]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def token(h, srv, role, name, city=None, org=None):
    argv = [SERVER, "-c", str(srv.conf), "token", "create", "--role", role, "--name", name]
    if city:
        argv += ["--city", city]
    if org:
        argv += ["--org", org]
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=60 * TIMEOUT_SCALE)
    if out.returncode != 0 or not out.stdout.startswith("vwt_"):
        raise AssertionError(f"token create failed: {out.stderr}")
    return out.stdout.strip()


def api(srv, method, path, tok, body=None):
    return https_request(srv.port, srv.ca, method, path, body=body, token=tok)


class Feed(IntegrationTest):

    def test_problems_resume_silence_scope_and_ack(self):
        h = self.h
        state = h.path("srv")
        conf = h.server_config(state, name="srv.ini",
                               extra=f"\n[feed]\nsilent_after = {SILENT_FACTOR}x\n")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        prov = reader_token(srv)
        jinan = token(h, srv, "city", "jn-duty", city="jinan")
        qingdao = token(h, srv, "city", "qd-duty", city="qingdao")
        org = token(h, srv, "org", "org-staff", org=ORG)

        camd, cam_port = h.start_camd("ok")
        pki_jn = h.ca_issue(conf, SITE_JN, ORG, city="jinan")
        pki_qd = h.ca_issue(conf, SITE_QD, ORG, city="qingdao")
        conf_jn = h.agent_config("jn.ini", SITE_JN, ORG, h.path("venue-jn"), srv.url, pki_jn,
                                 [("front", f"rtsp://127.0.0.1:{cam_port}/ok")],
                                 interval=f"{CADENCE_S}s", check_timeout="3s")
        # Qingdao's camera is down from the start: a problem of another city.
        conf_qd = h.agent_config("qd.ini", SITE_QD, ORG, h.path("venue-qd"), srv.url, pki_qd,
                                 [("gate", f"rtsp://127.0.0.1:{h.closed_port()}/gate")],
                                 interval=f"{CADENCE_S}s", check_timeout="3s")
        p_all = Stream(srv, prov)
        p_jn = Stream(srv, jinan)
        h.start_agent(conf_jn, name="agent-jn")
        agent_qd = h.start_agent(conf_qd, name="agent-qd")

        wait_for(lambda: site_targets(srv, SITE_JN).get("front", {}).get("status") == "ok",
                 60 * TIMEOUT_SCALE, "jinan's camera ok")

        def open_problems(site, tok=prov):
            st, body = api(srv, "GET", f"/api/v1/problems?state=open&site={site}", tok)
            self.assertEqual(st, 200, body)
            return body["problems"]

        wait_for(lambda: any(p["target"] == "gate" for p in open_problems(SITE_QD)),
                 60 * TIMEOUT_SCALE, "qingdao's down camera as an open problem")

        # The camera stopped in camd: its problem opens, in the API and on the stream.
        camd.stop()
        wait_for(lambda: any(p["target"] == "front" for p in open_problems(SITE_JN)),
                 60 * TIMEOUT_SCALE, "the stopped camera's problem")
        prob = next(p for p in open_problems(SITE_JN) if p["target"] == "front")
        self.assertEqual((prob["state"], prob["status"], prob["kind"], prob["city"]),
                         ("open", "down", "stream", "jinan"))
        self.assertIsNone(prob["end"])
        self.assertIn(prob["severity"], ("major", "minor"))
        opened = lambda s: s.find(lambda f: f[1] == "problem_opened"  # noqa: E731
                                  and f[2]["id"] == prob["id"])
        wait_for(lambda: opened(p_all) and opened(p_jn), 30 * TIMEOUT_SCALE,
                 "problem_opened on the streams")
        self.assertEqual(opened(p_all)[0][0], query(
            srv.db, "SELECT id FROM events WHERE type = 'problem_opened'"
                    " AND json_extract(data, '$.id') = ?", (prob["id"],))[0][0])
        # Scope: the org token sees its own org's; jinan's never sees qingdao's.
        self.assertTrue(any(p["site"] == SITE_QD for p in
                            api(srv, "GET", "/api/v1/problems", org)[1]["problems"]))
        st, body = api(srv, "GET", f"/api/v1/problems?site={SITE_QD}", jinan)
        self.assertEqual((st, body["problems"]), (200, []))
        st, body = api(srv, "GET", "/api/v1/problems?city=qingdao", jinan)
        self.assertEqual((st, body["problems"]), (200, []))

        # --- restart: a resumed stream gets exactly what it missed --------------------------
        wait_for(lambda: p_all.stored(), 10, "stored events on the province stream")
        srv.proc.stop()
        wait_for(lambda: p_all.eof, 30 * TIMEOUT_SCALE, "the stream to end with the server")
        last_seen = p_all.stored()[-1][0]
        before = [f[0] for f in p_all.stored()]
        self.assertEqual(before, sorted(set(before)), "ids rise, none twice")
        # The same port: the agents' collector URL names it.
        conf = h.server_config(state, port=srv.port, name="srv-restarted.ini",
                               extra=f"\n[feed]\nsilent_after = {SILENT_FACTOR}x\n")
        srv = h.start_server(conf, state)
        # Events after the restart, while nobody is subscribed: qingdao's agent is killed, so
        # its site goes silent (a status event and a problem_opened).
        t_kill = time.monotonic()
        agent_qd.stop(sig=9)
        wait_for(lambda: query(srv.db, "SELECT count(*) FROM problems WHERE site = ?"
                                       " AND kind = 'site' AND end_ms IS NULL",
                               (SITE_QD,))[0][0] == 1,
                 (SILENT_FACTOR * CADENCE_S + 15) * TIMEOUT_SCALE, "qingdao's site_silent")
        silent_after = time.monotonic() - t_kill
        # Detected by the server's own timer within silent_after (plus its 1 s tick and the
        # last batch's age when the agent died), not when a batch comes.
        self.assertLess(silent_after, SILENT_FACTOR * CADENCE_S + 5 * TIMEOUT_SCALE)
        self.assertGreater(silent_after, SILENT_FACTOR * CADENCE_S - 3)
        missed = query(srv.db, "SELECT id, type FROM events WHERE id > ? ORDER BY id",
                       (last_seen,))
        self.assertTrue(any(t == "problem_opened" for _, t in missed), missed)
        r_all = Stream(srv, prov, last_event_id=last_seen)
        r_jn = Stream(srv, jinan, last_event_id=last_seen)
        wait_for(lambda: len(r_all.stored()) >= len(missed), 30 * TIMEOUT_SCALE,
                 "the missed events on the resumed stream")
        got = r_all.stored()
        self.assertEqual([f[0] for f in got[:len(missed)]], [m[0] for m in missed])
        self.assertEqual([f[1] for f in got[:len(missed)]], [m[1] for m in missed])
        ids = [f[0] for f in got]
        self.assertEqual(ids, sorted(set(ids)), "nothing repeated")
        self.assertTrue(all(i > last_seen for i in ids))
        # The city's resumed stream: only its own city's of the same events.
        jn_missed = query(srv.db, "SELECT id FROM events WHERE id > ? AND city = 'jinan'"
                                  " ORDER BY id", (last_seen,))
        wait_for(lambda: len(r_jn.stored()) >= len(jn_missed), 30 * TIMEOUT_SCALE,
                 "jinan's missed events")

        # Live after the backlog: qingdao's agent returns and closes site_silent, once.
        agent_qd = h.start_agent(conf_qd, name="agent-qd-2")
        closed = lambda s: s.find(lambda f: f[1] == "problem_closed"  # noqa: E731
                                  and f[2]["kind"] == "site" and f[2]["site"] == SITE_QD)
        wait_for(lambda: closed(r_all), (30 + SILENT_FACTOR) * TIMEOUT_SCALE,
                 "site_silent closed by the returning agent")
        self.assertEqual(len(closed(r_all)), 1)
        self.assertEqual(closed(r_all)[0][2]["faults"], ["site_silent"])
        ids = [f[0] for f in r_all.stored()]
        self.assertEqual(ids, sorted(set(ids)), "backlog then live, nothing repeated")

        # A city never receives another city's events, resumed or live.
        for s in (p_jn, r_jn):
            self.assertFalse(s.find(lambda f: f[2].get("city") not in (None, "jinan")),
                             "a jinan stream got another city's event")
        self.assertTrue(r_all.find(lambda f: f[2].get("city") == "qingdao"))
        self.assertEqual([f[0] for f in r_jn.stored()][:len(jn_missed)],
                         [m[0] for m in jn_missed])

        # A resume from before the retained window (an id never given) is told to reload.
        far = Stream(srv, prov, last_event_id=10 ** 9)
        wait_for(lambda: far.find(lambda f: f[1] == "reload"), 20 * TIMEOUT_SCALE,
                 "event: reload for an unknown id")

        # --- ack ------------------------------------------------------------------------------
        qd = next(p for p in open_problems(SITE_QD) if p["target"] == "gate")
        path = f"/api/v1/problems/{qd['id']}/ack"
        self.assertEqual(api(srv, "POST", path, org, {"message": "x"})[0], 403)
        self.assertEqual(api(srv, "POST", path, jinan, {"message": "x"})[0], 404)
        st, body = api(srv, "POST", path, qingdao, {"message": "bad\u0007bell"})
        self.assertEqual((st, body.get("field")), (400, "message"))
        st, body = api(srv, "POST", path, qingdao, {"message": "x" * 1001})
        self.assertEqual((st, body.get("field")), (400, "message"))
        st, body = api(srv, "POST", path, qingdao, {"message": "已电话通知考点负责人"})
        self.assertEqual(st, 200, body)
        self.assertEqual(body["ack"]["by"], "qd-duty")
        self.assertEqual(body["ack"]["message"], "已电话通知考点负责人")
        st, body = api(srv, "POST", path, prov, {"message": "again"})
        self.assertEqual(st, 409, body)
        wait_for(lambda: r_all.find(lambda f: f[1] == "problem_acked"
                                    and f[2]["id"] == qd["id"]),
                 20 * TIMEOUT_SCALE, "problem_acked on the stream")
        audit = h.run("audit", [SERVER, "-c", conf, "audit"]).stdout()
        self.assertIn("problem_ack", audit)
        self.assertIn(f"problem:{qd['id']}", audit)
        self.assertIn("audit chain: intact", audit)

        # Labels: anonymous, every fault code an agent sent has one.
        st, labels = https_request(srv.port, srv.ca, "GET", "/api/v1/labels")
        self.assertEqual(st, 200)
        self.assertEqual(labels["faults"]["site_silent"]["zh"], "站点失联")
        for (faults,) in query(srv.db, "SELECT DISTINCT faults FROM problems"):
            for code in json.loads(faults):
                self.assertIn(code, labels["faults"])
        for s in (p_all, p_jn, r_all, r_jn, far):
            s.close()


class EmptyScope(IntegrationTest):
    """A city token whose city is empty (or an org token whose org is), as a hand-edited or
    damaged auth.db could hold, sees nothing: not another scope's problems, nor their place
    in a next_cursor, nor their events on a resumed stream."""

    def test_an_empty_city_or_org_sees_no_problem_no_cursor_no_event(self):
        h = self.h
        state = h.path("srv")
        conf = h.server_config(state, name="srv.ini")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        pki = h.ca_issue(conf, SITE_QD, ORG, city="qingdao")
        seq = 0
        for cam in range(5):  # five problems of qingdao's, newest start last
            seq += 1
            result = {"seq": seq, "ts": f"2026-11-26T19:11:{10 + cam:02d}.000Z",
                      "mono_ms": 1000 + seq, "kind": "stream", "target": f"cam-{cam}",
                      "status": "down", "codec": "h264", "faults": ["black"],
                      "metrics": {"width": 1280, "height": 720, "fps": 0}}
            st, body = https_request(srv.port, srv.ca, "POST", "/api/v1/ingest",
                                     body={"site": SITE_QD, "agent": SITE_QD,
                                           "results": [result]},
                                     cert=pki.cert, key=pki.key)
            self.assertEqual(st, 200, body)
        empty_city = token(h, srv, "city", "empty-city", city="qingdao")
        empty_org = token(h, srv, "org", "empty-org", org=ORG)
        qingdao = token(h, srv, "city", "qd-duty", city="qingdao")
        auth = sqlite3.connect(str(Path(state) / "auth.db"), timeout=10)
        auth.execute("UPDATE tokens SET city = '' WHERE name = 'empty-city'")
        auth.execute("UPDATE tokens SET org = '' WHERE name = 'empty-org'")
        auth.commit()
        auth.close()

        # The city's own token pages through its five, two at a time, by cursor.
        seen, cursor = [], None
        while True:
            path = "/api/v1/problems?limit=2" + (f"&cursor={cursor}" if cursor else "")
            st, body = api(srv, "GET", path, qingdao)
            self.assertEqual(st, 200, body)
            seen += [p["target"] for p in body["problems"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        self.assertEqual(seen, [f"cam-{i}" for i in (4, 3, 2, 1, 0)])
        for tok in (empty_city, empty_org):
            for path in ("/api/v1/problems?limit=2", "/api/v1/problems?limit=2&state=open",
                         "/api/v1/problems?limit=2&city=qingdao",
                         f"/api/v1/problems?limit=2&site={SITE_QD}"):
                st, body = api(srv, "GET", path, tok)
                self.assertEqual((st, body), (200, {"problems": [], "next_cursor": None}),
                                 path)
        # Nor on a stream resumed from the first event: the reply stays empty while the
        # province's resume from 0 gets every stored event.
        stored = [r[0] for r in query(srv.db, "SELECT id FROM events ORDER BY id")]
        self.assertEqual(len(stored), 10)
        prov = Stream(srv, reader_token(srv), last_event_id=0)
        empties = [Stream(srv, tok, last_event_id=0) for tok in (empty_city, empty_org)]
        wait_for(lambda: len(prov.stored()) >= len(stored), 30 * TIMEOUT_SCALE,
                 "the province's backlog")
        self.assertEqual([f[0] for f in prov.stored()], stored)
        wait_for(lambda: len([ln for ln in srv.proc.stderr().splitlines()
                              if "event=stream_resume" in ln and "result=resumed" in ln])
                 >= 3, 30 * TIMEOUT_SCALE, "the three resumes done")
        for s in empties:
            self.assertEqual(s.frames, [])
            self.assertFalse(s.eof)
        for s in [prov] + empties:
            s.close()


if __name__ == "__main__":
    main()
