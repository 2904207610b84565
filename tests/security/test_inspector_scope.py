#!/usr/bin/python3
"""Issue 12 D: what an inspector token may read. An inspector sees only the inspections he is
an active member of and, while one of them is assigned or recorded, the sites of its org
(targets.sites) on the per-site routes — never lists, events, problems or sessions; a replaced
inspector loses access at once; access ends when the inspection is confirmed; a city token of
another city sees no inspection; evidence access is logged.

The inspections are written into inspect.db by this test's setup with sqlite3 — the rows a
draw's execute makes, seeded so that each case holds exactly the members and states it
checks (tests/integration/test_inspections.py makes them through the real draw path); every
read and write afterwards goes through the real server.

    /usr/bin/python3 tests/security/test_inspector_scope.py [-k PATTERN]
"""

import re
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from secharness import (ORG, IntegrationTest, batch, main, people_token,  # noqa: E402,F401
                        request)
from harness import wait_for  # noqa: E402

JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")


def seed(db, now_ms):
    """Two inspections of draw d1: #1 of org-a (sites site-a1, site-a2; slot at site-a1, running)
    by I001 + I002, #2 of org-b (site-b1) by I003 + I004; org-c's site-c1 is nobody's."""
    c = sqlite3.connect(db, timeout=10)
    try:
        c.execute("PRAGMA foreign_keys = ON")
        for org, city, sites in (("org-a", "jinan", '["site-a1","site-a2"]'),
                                 ("org-b", "jinan", '["site-b1"]'),
                                 ("org-c", "qingdao", '["site-c1"]')):
            c.execute("INSERT INTO targets VALUES (?, ?, ?, 'city', '[]', 'high', ?, 1)",
                      (org, org + " 学校", city, sites))
        for i, name in (("I001", "张三"), ("I002", "李四"), ("I003", "王五"), ("I004", "赵六"),
                        ("I005", "钱七")):
            c.execute("INSERT INTO inspectors VALUES (?, ?, 'jinan', '处', '[]', '[]', 1)",
                      (i, name))
        c.execute("INSERT INTO draws(id, scope_city, state, plan, created_ms, actor) VALUES"
                  " ('d1', 'jinan', 'executed', '{}', ?, 'test')", (now_ms,))
        c.execute("INSERT INTO inspections(id, draw, seq, org, city, mode, site, exam_session,"
                  " slot_start_ms, slot_end_ms) VALUES (1, 'd1', 1, 'org-a', 'jinan', 'remote',"
                  " 'site-a1', 0, ?, ?)", (now_ms - 60000, now_ms + 3600000))
        c.execute("INSERT INTO inspections(id, draw, seq, org, city, mode) VALUES"
                  " (2, 'd1', 2, 'org-b', 'jinan', 'onsite')")
        for insp, who in ((1, "I001"), (1, "I002"), (2, "I003"), (2, "I004")):
            c.execute("INSERT INTO inspection_inspectors(inspection, inspector) VALUES (?, ?)",
                      (insp, who))
        c.execute("INSERT INTO inspection_evidence(inspection, captured_ms, kind, camera, data,"
                  " jpeg) VALUES (1, ?, 'thumbnail', 'cam-1', '{}', ?)", (now_ms, JPEG))
        c.commit()
    finally:
        c.close()


class InspectorScope(IntegrationTest):

    def setUp(self):
        super().setUp()
        h = self.h
        self.srv = srv = h.setup_server()
        for site, city, org in (("site-a1", "jinan", "org-a"), ("site-a2", "jinan", "org-a"),
                                ("site-b1", "jinan", "org-b"), ("site-c1", "qingdao", "org-c")):
            pki = h.ca_issue(srv.conf, site, org, city=city)
            status, body, _ = request(srv, "POST", "/api/v1/ingest", batch(site), pki.cert,
                                      pki.key)
            self.assertEqual(status, 200, body)
        seed(srv.state_dir / "inspect.db", int(time.time() * 1000))
        self.tok = {i: people_token(h, srv, "inspector", city="jinan", name=i, inspector=i)
                    for i in ("I001", "I002", "I003", "I005")}

    def get(self, path, token):
        status, body, _ = request(self.srv, "GET", path, token=token)
        return status, body

    def test_inspector_sees_only_his_inspections_and_their_sites(self):
        t = self.tok["I001"]
        status, body = self.get("/api/v1/inspections", t)
        self.assertEqual(status, 200, body)
        self.assertEqual([i["id"] for i in body["inspections"]], [1])
        self.assertEqual(self.get("/api/v1/inspections/1", t)[0], 200)
        self.assertEqual(self.get("/api/v1/inspections/2", t), (404, {"error": "no such inspection"}))
        for site in ("site-a1", "site-a2"):  # both sites of org-a, the slot's and the other
            for suffix in ("", "/history", "/score?from=2026-01-01&to=2027-01-01"):
                status, body = self.get(f"/api/v1/sites/{site}{suffix}", t)
                self.assertEqual(status, 200, (site, suffix, body))
        # another inspection's site and a site of nobody's answer like sites that do not exist
        for site in ("site-b1", "site-c1", "no-such"):
            for suffix in ("", "/history", "/score", "/cameras/cam-1/thumbnail"):
                status, body = self.get(f"/api/v1/sites/{site}{suffix}", t)
                self.assertEqual(status, 404, (site, suffix, body))
        # lists, events, problems, sessions: the role is not admitted at all
        for path in ("/api/v1/sites", "/api/v1/sites.csv", "/api/v1/events", "/api/v1/problems",
                     "/api/v1/sessions", "/api/v1/score/ranking", "/api/v1/orgs/org-a/score"):
            status, body = self.get(path, t)
            self.assertEqual(status, 403, (path, body))
        # an inspector of no inspection sees none
        status, body = self.get("/api/v1/inspections", self.tok["I005"])
        self.assertEqual((status, body["inspections"]), (200, []))
        self.assertEqual(self.get("/api/v1/sites/site-a1", self.tok["I005"])[0], 404)

    def test_a_dashboard_session_carries_the_inspector_binding(self):
        status, body, headers = request(self.srv, "POST", "/api/v1/session",
                                        token=self.tok["I001"])
        self.assertEqual(status, 200, body)
        self.assertEqual((body["role"], body["inspector"]), ("inspector", "I001"))
        sid = re.match(r"__Host-vw_session=([A-Za-z0-9_-]{43});", headers["Set-Cookie"]).group(1)
        cookie = {"Cookie": f"__Host-vw_session={sid}"}
        status, me, _ = request(self.srv, "GET", "/api/v1/session", headers=cookie)
        self.assertEqual((status, me["inspector"]), (200, "I001"))
        status, _, _ = request(self.srv, "GET", "/api/v1/sites/site-a1", headers=cookie)
        self.assertEqual(status, 200, "the cookie reads what the token reads")
        status, _, _ = request(self.srv, "GET", "/api/v1/sites/site-b1", headers=cookie)
        self.assertEqual(status, 404)
        status, body, _ = request(self.srv, "GET", "/api/v1/inspections", headers=cookie)
        self.assertEqual([i["id"] for i in body["inspections"]], [1])

    def test_replaced_inspector_loses_access_at_once(self):
        t = self.tok["I002"]
        self.assertEqual(self.get("/api/v1/sites/site-a1", t)[0], 200)
        c = sqlite3.connect(self.srv.state_dir / "inspect.db", timeout=10)
        c.execute("UPDATE inspection_inspectors SET active = 0, replaced_by = 'I005' WHERE"
                  " inspection = 1 AND inspector = 'I002'")
        c.execute("INSERT INTO inspection_inspectors(inspection, inspector) VALUES (1, 'I005')")
        c.commit()
        c.close()
        self.assertEqual(self.get("/api/v1/sites/site-a1", t)[0], 404)
        self.assertEqual(self.get("/api/v1/inspections/1", t)[0], 404)
        self.assertEqual(self.get("/api/v1/inspections/1/evidence/1", t)[0], 404)
        status, _, _ = request(self.srv, "POST", "/api/v1/inspections/1/result",
                               {"outcome": "clear"}, token=t)
        self.assertEqual(status, 404)
        # and the one who came in gains it
        self.assertEqual(self.get("/api/v1/sites/site-a1", self.tok["I005"])[0], 200)

    def test_access_ends_when_the_inspection_is_confirmed(self):
        a, b = self.tok["I001"], self.tok["I002"]
        srv = self.srv
        status, body, _ = request(srv, "POST", "/api/v1/inspections/1/result",
                                  {"outcome": "rectify", "findings": "后摄像头离线"}, token=a)
        self.assertEqual((status, body.get("state")), (200, "recorded"), body)
        self.assertEqual(self.get("/api/v1/sites/site-a2", a)[0], 200)  # recorded: still his
        for t in (a, b):
            status, body, _ = request(srv, "POST", "/api/v1/inspections/1/confirm",
                                      {"result_version": 1}, token=t)
            self.assertEqual(status, 200, body)
        self.assertEqual(body["state"], "confirmed")
        for t in (a, b):
            self.assertEqual(self.get("/api/v1/sites/site-a1", t)[0], 404)
        # the inspection itself stays his to read
        status, body = self.get("/api/v1/inspections/1", a)
        self.assertEqual((status, body["state"]), (200, "confirmed"))

    def test_city_of_another_city_sees_nothing(self):
        h, srv = self.h, self.srv
        qd = people_token(h, srv, "city", city="qingdao", name="Qingdao bureau")
        status, body = self.get("/api/v1/inspections", qd)
        self.assertEqual((status, body["inspections"]), (200, []))
        for path in ("/api/v1/inspections/1", "/api/v1/inspections/2",
                     "/api/v1/inspections/1/evidence/1"):
            self.assertEqual(self.get(path, qd)[0], 404, path)
        status, _, _ = request(srv, "POST", "/api/v1/inspections/1/publish", token=qd)
        self.assertEqual(status, 404)
        jn = people_token(h, srv, "city", city="jinan", name="Jinan bureau")
        status, body = self.get("/api/v1/inspections", jn)
        self.assertEqual([i["id"] for i in body["inspections"]], [1, 2])
        # people of the bureau do not record results: that is the inspectors'
        status, _, _ = request(srv, "POST", "/api/v1/inspections/1/result", {"outcome": "clear"},
                               token=jn)
        self.assertEqual(status, 403)

    def test_evidence_jpeg_access_is_logged(self):
        t = self.tok["I001"]
        status, raw, headers = request(self.srv, "GET", "/api/v1/inspections/1/evidence/1",
                                       token=t)
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("Content-Type"), "image/jpeg")
        self.assertIn("no-store", headers.get("Cache-Control", ""))
        self.srv.proc.wait_for_output(
            r"event=inspection_evidence_access inspection=1 evidence=1 kind=thumbnail "
            r"actor=\"token:[0-9a-f]{16}\"", 10)
        self.assertEqual(self.get("/api/v1/inspections/1/evidence/1", self.tok["I003"])[0], 404)


if __name__ == "__main__":
    main()
