#!/usr/bin/python3
"""Issue 12 D end to end: a real agent checks real cameras (camd) during an exam session at
the collector; the inspections of a draw record, confirm and publish their result with the
session's 3.6 evidence, and the remote check captures the site's live status and pictures.

The inspections come through the real draw path (helper C's `draws`, merged): the registers
imported as CSV with the CLI, a city draw created over the API, committed and executed with
the CLI (its execute makes the inspections and inspection_inspectors rows from the document,
on the exam session the collector knows; `draw replace` moves a member); everything else goes
through the real server.

    /usr/bin/python3 tests/integration/test_inspections.py [-k PATTERN]

Proves: only the [inspection] outcomes ids are taken (422 naming the field), and unknown
fields are refused; a result carries the slot session's 3.6 snapshot (its criteria as GET
.../score shows them); a new result bumps result_version and the confirmations of the old
one stop counting (confirming an old version is 409); two distinct active inspectors
confirming the current version confirm it, the recorder included; a confirmed result cannot
be changed; publishing needs confirmed (409 before) and happens once; every change is in the
audit log; the capture timer takes a remote inspection's status and one picture per camera
during its slot, once; an assigned inspector's manual capture does the same on demand (the
third, unassigned inspector gets 404), and the picture is served to him as image/jpeg; an
inspector replaced through the draw loses the site, the inspection and the weight of his
confirmation, and the one who came in gains them.
"""

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (SERVER, TIMEOUT_SCALE, IntegrationTest, https_request, main,  # noqa: E402
                     query, reader_token, site_targets, wait_for)

SITE, ORG, CITY = "site-i1", "org-i1", "city-01"
SHANGHAI = timezone(timedelta(hours=8))
REPORT_DEADLINE = 60 * TIMEOUT_SCALE
# The capture timer's period (30 s, [inspection] capture_every's default) plus a loaded
# machine's slack.
CAPTURE_DEADLINE = 90 * TIMEOUT_SCALE


def now_ms():
    return int(time.time() * 1000)


def iso_local(ms):
    return datetime.fromtimestamp(ms / 1000, SHANGHAI).isoformat()


def token(srv, role, city=None, inspector=None, name="t"):
    argv = [SERVER, "-c", str(srv.conf), "token", "create", "--role", role, "--name", name]
    if city:
        argv += ["--city", city]
    if inspector:
        argv += ["--inspector", inspector]
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=60 * TIMEOUT_SCALE)
    if out.returncode != 0 or not out.stdout.startswith("vwt_"):
        raise AssertionError(f"token create failed ({out.returncode}): {out.stderr}")
    return out.stdout.strip()


TARGETS_CSV = f"""\
org,name,city,level,occupations,risk,sites
{ORG},某职业技能培训学校,{CITY},city,电工,high,{SITE}
"""
INSPECTORS_CSV = f"""\
id,name,city,department,ties,away
I001,张一,{CITY},职业能力建设处,,
I002,张二,{CITY},职业能力建设处,,
I003,张三,{CITY},监察支队,,
"""
ITEMS_CSV = """\
id,title,basis,method
item-1,考评场所视频监控,《职业技能等级认定工作规程》第十条,远程核查
"""


def iso_utc(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{ms % 1000:03d}Z"


class Inspections(IntegrationTest):

    def setUp(self):
        super().setUp()
        h = self.h
        _, cam_port = h.start_camd("ok", "black")
        state = h.path("srv")
        # capture_every at its floor, so the remote check comes within seconds
        self.conf = h.server_config(state, name="srv.ini",
                                    extra="[inspection]\ncapture_every = 1s\n")
        h.ca_init(self.conf)
        self.srv = srv = h.start_server(self.conf, state)
        pki = h.ca_issue(srv.conf, SITE, ORG, city=CITY)
        # The session, running from now (the slot), as the org's plan would enter it.
        self.start = (now_ms() // 1000 + 2) * 1000
        self.end = self.start + 3600 * 1000
        body = {"site": SITE, "id": "S-0001", "occupation": "电工", "level": "四级",
                "start": iso_local(self.start), "end": iso_local(self.end),
                "rooms": ["hall-1"], "candidates": 30}
        st, reply = https_request(srv.port, srv.ca, "POST", "/api/v1/sessions", body,
                                  token=reader_token(srv))
        self.assertEqual(st, 201, reply)
        self.exam = reply["sessions"][0]["ref"]
        conf = h.agent_config("agent.ini", SITE, ORG, h.path("agent-state"), srv.url, pki, [
            ("cam-ok", f"rtsp://127.0.0.1:{cam_port}/ok"),
            ("cam-black", f"rtsp://127.0.0.1:{cam_port}/black"),
        ], interval="2s")
        h.start_agent(conf)

        def pictured():
            t = site_targets(srv, SITE)
            return all(t.get(c, {}).get("thumbnail_at") for c in ("cam-ok", "cam-black")) and t

        wait_for(pictured, REPORT_DEADLINE, "both cameras reported with a picture")
        wait_for(lambda: now_ms() > self.start, 10, "the session started")
        self.tok = {i: token(srv, "inspector", city=CITY, inspector=i, name=i)
                    for i in ("I001", "I002", "I003")}
        self.city = token(srv, "city", city=CITY, name="bureau")

    def cli(self, *args):
        p = self.h.run("cli", [SERVER, "-c", self.conf, *args], timeout=60 * TIMEOUT_SCALE)
        return p.stdout()

    def draw(self, mode):
        """A city draw of the one target in `mode`, through create (API), commit and execute
        (CLI). Returns (inspection id, its two inspectors, the one left out)."""
        h = self.h
        for kind, text in (("targets", TARGETS_CSV), ("inspectors", INSPECTORS_CSV),
                           ("items", ITEMS_CSV)):
            f = h.write(f"{kind}.csv", text)
            self.cli("register", "import", "--kind", kind, "--file", str(f))
        today = datetime.now(SHANGHAI).date()
        plan = {"scope_city": CITY, "grades": [{"risk": "high", "ratio": 1, "min": 1}],
                "inspectors_per": 2,
                "recusal": {"ties": True, "home_city": False, "same_pair": True},
                "window": {"from": today.isoformat(),
                           "to": (today + timedelta(days=1)).isoformat()},
                "mode": mode, "items": ["item-1"]}
        st, d = self.call("POST", "/api/v1/draws", self.city, {"id": "d1", "plan": plan})
        self.assertEqual(st, 201, d)
        expected = now_ms() + 2000
        self.cli("draw", "commit", "d1", "--source", "福彩3D 第2026330期", "--expected",
                 iso_utc(expected), "--replacement-source", "福彩3D 第2026331期",
                 "--expected", iso_utc(expected + 500), "--secret-out",
                 str(h.path("secret.hex")))
        wait_for(lambda: now_ms() > expected + 1000, 10, "the declared values to exist")
        self.cli("draw", "execute", "d1", "--value", "3 7 1", "--secret-file",
                 str(h.path("secret.hex")))
        st, listing = self.call("GET", "/api/v1/inspections?draw=d1", self.city)
        self.assertEqual((st, len(listing["inspections"])), (200, 1), listing)
        row = listing["inspections"][0]
        self.assertEqual((row["org"], row["mode"], row["state"]), (ORG, mode, "assigned"))
        self.assertEqual(row["slot"]["session"], self.exam, "the collector's session")
        st, doc = self.call("GET", f"/api/v1/inspections/{row['id']}", self.city)
        members = [m["id"] for m in doc["inspectors"] if m["active"]]
        self.assertEqual(len(members), 2, doc)
        other = ({"I001", "I002", "I003"} - set(members)).pop()
        return row["id"], members, other

    def call(self, method, path, tok, body=None):
        return https_request(self.srv.port, self.srv.ca, method, path, body, token=tok)

    def test_result_confirmation_and_publication(self):
        srv = self.srv
        iid, (ia, ib), ic = self.draw("onsite")
        a, b, c = self.tok[ia], self.tok[ib], self.tok[ic]
        base = f"/api/v1/inspections/{iid}"
        st, body = self.call("POST", base + "/result", a, {"outcome": "fine"})
        self.assertEqual((st, body.get("field")), (422, "outcome"), body)
        st, body = self.call("POST", base + "/result", a, {"outcome": "clear", "extra": 1})
        self.assertEqual((st, body.get("field")), (422, "extra"), body)
        st, body = self.call("POST", base + "/result", a, {"outcome": "clear", "findings": 3})
        self.assertEqual((st, body.get("field")), (422, "findings"), body)
        st, body = self.call("POST", base + "/result", c, {"outcome": "clear"})
        self.assertEqual(st, 404, "not a member: the inspection is not his to see")
        st, body = self.call("POST", base + "/confirm", a, {"result_version": 1})
        self.assertEqual(st, 409, "nothing recorded yet")

        st, body = self.call("POST", base + "/result", a,
                             {"outcome": "clear", "findings": "未发现问题", "note": "内部备注"})
        self.assertEqual(st, 200, body)
        self.assertEqual((body["state"], body["result_version"]), ("recorded", 1))
        st, doc = self.call("GET", base, a)
        self.assertEqual(st, 200, doc)
        ev = doc["result"]["evidence"]
        self.assertEqual(ev["session"]["id"], self.exam)
        self.assertEqual(set(ev["session"]["criteria"]),
                         {"connected", "network", "picture", "floor", "records"})
        self.assertEqual(ev["rubric"]["version"], get_rubric(self, srv))
        self.assertEqual(doc["result"]["recorded_by"], ia)

        st, body = self.call("POST", base + "/confirm", a, {"result_version": 1})
        self.assertEqual((st, body["state"], body["confirmations"]), (200, "recorded", 1), body)
        # B changes the result: A's confirmation was of the old text
        st, body = self.call("POST", base + "/result", b,
                             {"outcome": "rectify", "findings": "后摄像头画面全黑"})
        self.assertEqual((st, body["result_version"]), (200, 2), body)
        st, body = self.call("POST", base + "/confirm", a, {"result_version": 1})
        self.assertEqual((st, body.get("field")), (409, "result_version"), body)
        st, body = self.call("POST", base + "/confirm", b, {"result_version": 2})
        self.assertEqual((st, body["state"], body["confirmations"]), (200, "recorded", 1), body)
        jn = self.city
        st, body = self.call("POST", base + "/publish", jn)
        self.assertEqual(st, 409, "only a confirmed result is published")
        st, body = self.call("POST", base + "/confirm", b, {"result_version": 2})
        self.assertEqual((st, body["confirmations"]), (200, 1), "the same inspector twice is one")
        st, body = self.call("POST", base + "/confirm", a, {"result_version": 2})
        self.assertEqual((st, body["state"], body["confirmations"]), (200, "confirmed", 2), body)
        st, body = self.call("POST", base + "/result", a, {"outcome": "clear"})
        self.assertEqual(st, 409, "a confirmed result is final")
        st, body = self.call("POST", base + "/publish", a)
        self.assertEqual(st, 403, "inspectors do not publish")
        st, body = self.call("POST", base + "/publish", jn)
        self.assertEqual((st, body["state"]), (200, "published"), body)
        st, body = self.call("POST", base + "/publish", jn)
        self.assertEqual(st, 409)
        st, doc = self.call("GET", base, jn)
        self.assertEqual((doc["state"], doc["result"]["outcome"]), ("published", "rectify"))
        self.assertEqual(sorted((x["inspector"], x["result_version"]) for x in doc["confirmations"]),
                         sorted([(ia, 1), (ia, 2), (ib, 2)]))
        st, listing = self.call("GET", "/api/v1/inspections?state=published", jn)
        self.assertEqual([i["id"] for i in listing["inspections"]], [iid])
        audit = subprocess.run([SERVER, "-c", str(srv.conf), "audit"], capture_output=True,
                               text=True, timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(audit.returncode, 0, audit.stderr)
        for action, n in (("inspection_result", 2), ("inspection_confirm", 4),
                          ("inspection_publish", 1)):
            self.assertEqual(audit.stdout.count(f" {action} inspection:{iid} "), n,
                             (action, audit.stdout))

    def test_a_replaced_inspector_loses_the_site_and_his_confirmation(self):
        iid, (ia, ib), ic = self.draw("onsite")
        base = f"/api/v1/inspections/{iid}"
        st, body = self.call("POST", base + "/result", self.tok[ia], {"outcome": "refer"})
        self.assertEqual(st, 200, body)
        st, body = self.call("POST", base + "/confirm", self.tok[ib], {"result_version": 1})
        self.assertEqual((st, body["confirmations"]), (200, 1), body)
        self.assertEqual(self.call("GET", f"/api/v1/sites/{SITE}", self.tok[ib])[0], 200)
        self.assertEqual(self.call("GET", f"/api/v1/sites/{SITE}", self.tok[ic])[0], 404)
        # the draw's own replacement (helper C): the next declared value picks who comes in
        self.cli("draw", "replace", "d1", "--seq", "1", "--out", ib, "--reason", "病假",
                 "--value", "4 2 9")
        st, doc = self.call("GET", base, self.city)
        members = {m["id"]: m for m in doc["inspectors"]}
        self.assertEqual((members[ib]["active"], members[ib]["replaced_by"]), (False, ic), doc)
        self.assertTrue(members[ic]["active"])
        for path in (f"/api/v1/sites/{SITE}", base):
            self.assertEqual(self.call("GET", path, self.tok[ib])[0], 404, path)
        st, _ = self.call("POST", base + "/confirm", self.tok[ib], {"result_version": 1})
        self.assertEqual(st, 404, "the one who left confirms nothing")
        self.assertEqual(self.call("GET", f"/api/v1/sites/{SITE}", self.tok[ic])[0], 200)
        # his confirmation no longer counts: two of the active ones are needed
        st, body = self.call("POST", base + "/confirm", self.tok[ia], {"result_version": 1})
        self.assertEqual((st, body["state"], body["confirmations"]), (200, "recorded", 1), body)
        st, body = self.call("POST", base + "/confirm", self.tok[ic], {"result_version": 1})
        self.assertEqual((st, body["state"], body["confirmations"]), (200, "confirmed", 2), body)

    def test_remote_check_captures_status_and_pictures(self):
        srv = self.srv
        iid, (ia, _), ic = self.draw("remote")
        db = srv.state_dir / "inspect.db"

        def rows():
            return query(db, "SELECT id, kind, camera, data, length(jpeg) FROM"
                             " inspection_evidence WHERE inspection = ? ORDER BY id", (iid,))

        # the timer: the remote inspection's status and one picture per camera, once
        got = wait_for(lambda: len(rows()) >= 3 and rows(), CAPTURE_DEADLINE,
                       "the capture timer's evidence")
        kinds = sorted((k, cam) for _, k, cam, _, _ in got)
        self.assertEqual(kinds, [("status", ""), ("thumbnail", "cam-black"),
                                 ("thumbnail", "cam-ok")])
        status = json.loads(next(d for _, k, _, d, _ in got if k == "status"))
        self.assertEqual(status["site"], SITE)
        self.assertEqual({t["target"] for t in status["targets"] if t["kind"] == "stream"},
                         {"cam-ok", "cam-black"})
        black = next(t for t in status["targets"] if t["target"] == "cam-black")
        self.assertIn("black", black["faults"], "the live status as the agent reported it")
        # the manual capture of an assigned inspector, during the slot
        st, body = self.call("POST", f"/api/v1/inspections/{iid}/capture", self.tok[ic])
        self.assertEqual(st, 404, "not his inspection")
        st, body = self.call("POST", f"/api/v1/inspections/{iid}/capture", self.tok[ia])
        self.assertEqual((st, body["rows"]), (201, 3), body)
        # the timer (every second) took it once: its status row and the manual one
        self.assertEqual(sum(1 for _, k, _, _, _ in rows() if k == "status"), 2)
        st, doc = self.call("GET", f"/api/v1/inspections/{iid}", self.tok[ia])
        pic = next(e for e in doc["evidence"] if e["kind"] == "thumbnail")
        st, raw = get_bytes(srv, pic["href"], self.tok[ia])
        self.assertEqual(st, 200)
        self.assertEqual(raw[:2], b"\xff\xd8", "a JPEG")
        srv.proc.wait_for_output(rf"event=inspection_evidence_access inspection={iid} ", 10)
        st, _ = get_bytes(srv, pic["href"], self.tok[ic])
        self.assertEqual(st, 404, "the unassigned inspector sees no evidence")


def get_rubric(test, srv):
    st, body = https_request(srv.port, srv.ca, "GET",
                             f"/api/v1/sites/{SITE}/score?from=2026-01-01&to=2027-12-31",
                             token=reader_token(srv))
    test.assertEqual(st, 200, body)
    return body["rubric"]["version"]


def get_bytes(srv, path, tok):
    import http.client
    import ssl
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {tok}"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


if __name__ == "__main__":
    main()
