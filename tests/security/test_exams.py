#!/usr/bin/python3
"""Exam sessions at the collector (issue 11): who may plan and see which sessions, the agents'
endpoint with its ETag, late changes refused, every change audited, and the CSV import.
A real server, real TLS, real tokens and certificates made by the server's own CLI.

    /usr/bin/python3 tests/security/test_exams.py [-k PATTERN]
"""

import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (IntegrationTest, cli, main, query, request,  # noqa: E402
                        wait_for)

SHANGHAI = timezone(timedelta(hours=8))


def local(dt):
    return dt.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def session(site, code, start, hours=2, **kw):
    s = {"site": site, "id": code, "occupation": "电工", "level": "四级",
         "start": local(start), "end": local(start + timedelta(hours=hours)),
         "rooms": ["A101", "A102"], "candidates": 30}
    s.update(kw)
    return s


def token(h, srv, role, city=None, org=None):
    args = ["token", "create", "--role", role, "--name", f"{role}-{org or city or 'all'}"]
    if city:
        args += ["--city", city]
    if org:
        args += ["--org", org]
    return cli(h, srv, *args, name="token-create").stdout().strip()


class ExamSessions(IntegrationTest):

    def setUp(self):
        super().setUp()
        h = self.h
        self.srv = srv = h.setup_server()
        self.pki_a = h.ca_issue(srv.conf, "site-a", "org-a", city="jinan")
        self.pki_b = h.ca_issue(srv.conf, "site-b", "org-b", city="jinan")
        self.pki_c = h.ca_issue(srv.conf, "site-c", "org-c", city="qingdao")
        self.org_a = token(h, srv, "org", city="jinan", org="org-a")
        self.org_b = token(h, srv, "org", city="jinan", org="org-b")
        self.jinan = token(h, srv, "city", city="jinan")
        self.qingdao = token(h, srv, "city", city="qingdao")
        self.province = token(h, srv, "province")
        self.tomorrow = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=1)

    def post(self, tok, body):
        return request(self.srv, "POST", "/api/v1/sessions", body, token=tok)

    def get(self, tok, path):
        return request(self.srv, "GET", path, token=tok)

    def test_org_plans_and_sees_only_its_own(self):
        st, body, _ = self.post(self.org_a, session("site-a", "2026-0412", self.tomorrow))
        self.assertEqual(st, 201, body)
        s = body["sessions"][0]
        # org and city are the site's, from enrollment, though the request named neither.
        self.assertEqual((s["org"], s["city"], s["site"], s["id"]),
                         ("org-a", "jinan", "site-a", "2026-0412"))
        self.assertEqual(s["start"], self.tomorrow.astimezone(SHANGHAI)
                         .strftime("%Y-%m-%dT%H:%M:00+08:00"))
        self.assertEqual(s["rooms"], ["A101", "A102"])
        ref = s["ref"]
        # Another org's site answers like an unknown one; naming another org is refused.
        st, body, _ = self.post(self.org_a, session("site-b", "X1", self.tomorrow))
        self.assertEqual((st, body["field"]), (422, "site"), body)
        st, body, _ = self.post(self.org_a, session("site-a", "X2", self.tomorrow, org="org-b"))
        self.assertEqual((st, body["field"]), (403, "org"), body)
        st, body, _ = self.post(self.province, session("site-a", "X3", self.tomorrow,
                                                       org="org-b"))
        self.assertEqual((st, body["field"]), (422, "org"), body)
        st, body, _ = self.post(self.org_a, session("nowhere", "X4", self.tomorrow))
        self.assertEqual((st, body["field"]), (422, "site"), body)
        # An array is all or nothing, and its errors name the element.
        st, body, _ = self.post(self.org_a, [session("site-a", "Y1", self.tomorrow),
                                             dict(session("site-a", "Y2", self.tomorrow),
                                                  start="tomorrow")])
        self.assertEqual((st, body["field"], body["index"]), (422, "start", 1), body)
        st, body, _ = self.post(self.org_a, [session("site-a", "Y1", self.tomorrow),
                                             session("site-a", "2026-0412", self.tomorrow)])
        self.assertEqual((st, body["field"], body["index"]), (409, "id", 1), body)
        self.assertEqual(query(self.srv.db, "SELECT count(*) FROM exam_sessions"), [(1,)])

        # org B sees none of it, not even by its number.
        st, body, _ = self.get(self.org_b, "/api/v1/sessions")
        self.assertEqual((st, body["sessions"]), (200, []), body)
        for method in ("GET", "PATCH", "DELETE"):
            st, body, _ = request(self.srv, method, f"/api/v1/sessions/{ref}",
                                  {"candidates": 1} if method == "PATCH" else None,
                                  token=self.org_b)
            self.assertEqual(st, 404, (method, body))
        st, body, _ = self.get(self.org_a, "/api/v1/sessions?org=org-b")
        self.assertEqual(st, 403, body)
        st, body, _ = self.get(self.org_a, "/api/v1/sessions")
        self.assertEqual([x["ref"] for x in body["sessions"]], [ref])

    def test_numbers_and_room_names_are_checked_before_use(self):
        # A candidates count no integer holds, and a room holding a full-width comma (the
        # CSV import splits on it, so it would come back as two rooms): 422 naming the field.
        for field, value in (("candidates", 1e300), ("candidates", -1), ("candidates", 2.5),
                             ("rooms", ["A101，A102"]), ("rooms", ["A101,A102"])):
            st, body, _ = self.post(self.org_a, session("site-a", "N1", self.tomorrow,
                                                        **{field: value}))
            self.assertEqual((st, body.get("field")), (422, field), (field, value, body))
        self.assertEqual(query(self.srv.db, "SELECT count(*) FROM exam_sessions"), [(0,)])
        st, body, _ = self.post(self.org_a, session("site-a", "N1", self.tomorrow,
                                                    candidates=100000, rooms=["A101", "甲"]))
        self.assertEqual(st, 201, body)
        self.assertEqual(body["sessions"][0]["rooms"], ["A101", "甲"])

    def test_city_and_province_scope(self):
        for tok, site, code in ((self.org_a, "site-a", "A1"), (self.org_b, "site-b", "B1"),
                                (self.province, "site-c", "C1")):
            st, body, _ = self.post(tok, session(site, code, self.tomorrow))
            self.assertEqual(st, 201, body)
        # A city plans its own city's sites only.
        st, body, _ = self.post(self.qingdao, session("site-a", "Q1", self.tomorrow))
        self.assertEqual((st, body["field"]), (422, "site"), body)

        def sites(tok, q=""):
            st, body, _ = self.get(tok, "/api/v1/sessions" + q)
            self.assertEqual(st, 200, body)
            return sorted(x["site"] for x in body["sessions"])

        self.assertEqual(sites(self.jinan), ["site-a", "site-b"])
        self.assertEqual(sites(self.qingdao), ["site-c"])
        self.assertEqual(sites(self.province), ["site-a", "site-b", "site-c"])
        self.assertEqual(sites(self.province, "?site=site-b"), ["site-b"])
        day = (self.tomorrow + timedelta(days=3)).astimezone(SHANGHAI).strftime("%Y-%m-%d")
        self.assertEqual(sites(self.province, f"?from={day}"), [])
        st, body, _ = self.get(self.province, "/api/v1/sessions?from=soon")
        self.assertEqual((st, body["field"]), (400, "from"), body)

    def test_agent_sees_its_site_with_etag(self):
        a, b = self.pki_a, self.pki_b
        st, body, hdr = request(self.srv, "GET", "/api/v1/agent/sessions", cert=a.cert,
                                key=a.key)
        self.assertEqual(st, 200, body)
        self.assertEqual((body["site"], body["version"], body["sessions"]), ("site-a", 0, []))
        self.assertEqual(hdr["ETag"], '"0"')
        st, body, _ = self.post(self.org_a, session("site-a", "2026-0412", self.tomorrow))
        self.assertEqual(st, 201, body)
        st, body, hdr = request(self.srv, "GET", "/api/v1/agent/sessions", cert=a.cert,
                                key=a.key, headers={"If-None-Match": '"0"'})
        self.assertEqual(st, 200, body)
        self.assertEqual(hdr["ETag"], '"1"')
        s = body["sessions"][0]
        self.assertEqual((s["id"], s["rooms"], s["candidates"]), ("2026-0412", ["A101", "A102"], 30))
        self.assertEqual(s["end_ms"] - s["start_ms"], 2 * 3600 * 1000)
        self.assertNotIn("org", s)
        st, body, hdr = request(self.srv, "GET", "/api/v1/agent/sessions", cert=a.cert,
                                key=a.key, headers={"If-None-Match": '"1"'})
        self.assertEqual((st, hdr["ETag"]), (304, '"1"'))
        # Another site's agent sees none of it; people's tokens are not agents.
        st, body, _ = request(self.srv, "GET", "/api/v1/agent/sessions", cert=b.cert,
                              key=b.key)
        self.assertEqual((st, body["site"], body["sessions"]), (200, "site-b", []))
        st, body, _ = self.get(self.province, "/api/v1/agent/sessions")
        self.assertIn(st, (401, 403), body)
        # A cancel moves the version and the session leaves the agent's list.
        ref = query(self.srv.db, "SELECT id FROM exam_sessions")[0][0]
        st, body, _ = request(self.srv, "DELETE", f"/api/v1/sessions/{ref}", token=self.org_a)
        self.assertEqual(st, 200, body)
        st, body, hdr = request(self.srv, "GET", "/api/v1/agent/sessions", cert=a.cert,
                                key=a.key, headers={"If-None-Match": '"1"'})
        self.assertEqual((st, hdr["ETag"], body["sessions"]), (200, '"2"', []))

    def test_changes_before_the_start_are_audited_and_late_ones_refused(self):
        soon = datetime.now(timezone.utc) + timedelta(seconds=4)
        s = session("site-a", "LATE", self.tomorrow)
        s["start"] = soon.astimezone(SHANGHAI).isoformat(timespec="seconds")
        s["end"] = (soon + timedelta(hours=1)).astimezone(SHANGHAI).isoformat(timespec="seconds")
        st, body, _ = self.post(self.org_a, s)
        self.assertEqual(st, 201, body)
        ref = body["sessions"][0]["ref"]
        st, body, _ = request(self.srv, "PATCH", f"/api/v1/sessions/{ref}",
                              {"candidates": 31, "rooms": "A101"}, token=self.org_a)
        self.assertEqual((st, body.get("candidates"), body.get("rooms")), (200, 31, ["A101"]),
                         body)
        st, body, _ = request(self.srv, "PATCH", f"/api/v1/sessions/{ref}", {"site": "site-b"},
                              token=self.org_a)
        self.assertEqual((st, body["field"]), (422, "site"), body)
        start_s = datetime.fromisoformat(s["start"]).timestamp()
        wait_for(lambda: time.time() > start_s + 0.2, 30, "the session's start")
        st, body, _ = request(self.srv, "PATCH", f"/api/v1/sessions/{ref}", {"candidates": 5},
                              token=self.org_a)
        self.assertEqual(st, 409, body)
        self.assertIn("has already started", body["error"])
        st, body, _ = request(self.srv, "DELETE", f"/api/v1/sessions/{ref}", token=self.org_a)
        self.assertEqual(st, 409, body)
        rows = query(self.srv.db, "SELECT action, actor, before, after FROM"
                                  " exam_session_changes WHERE session_id = ? ORDER BY id", (ref,))
        self.assertEqual([r[0] for r in rows], ["create", "update"])
        self.assertTrue(rows[0][1].startswith("org:"), rows[0][1])
        self.assertIsNone(rows[0][2])
        self.assertEqual(json.loads(rows[1][2])["candidates"], 30)
        self.assertEqual(json.loads(rows[1][3])["candidates"], 31)
        self.assertEqual(query(self.srv.db, "SELECT candidates FROM exam_sessions"), [(31,)])
        self.srv.proc.wait_for_output(r"event=exam_session_change action=update ref=%d "
                                      r"org=org-a site=site-a" % ref, 10)

    def test_csv_import_is_all_or_nothing(self):
        h, srv = self.h, self.srv
        day = self.tomorrow.astimezone(SHANGHAI).strftime("%Y-%m-%d")
        good = ("\ufeff机构编号,考点,场次编号,职业(工种),等级,开始时间,结束时间,考场,计划人数\r\n"
                f"org-a,site-a,P1,电工,四级,{day} 09:00,{day} 11:00,\"A101,A102\",30\r\n"
                f"org-a,site-a,P2,焊工,三级,{day} 13:00,{day} 15:00,*,20\r\n")
        bad = good + (f"org-a,site-b,P3,电工,四级,{day} 09:00,{day} 11:00,A1,3\r\n"
                      f"org-a,site-a,P4,电工,四级,{day} 25:00,{day} 11:00,A1,3\r\n")
        path = h.write("bad.csv", bad)
        p = cli(h, srv, "session", "import", "--file", path, "--org", "org-a", check=False)
        self.assertEqual(p.returncode, 1, p.stderr())
        self.assertIn(f"{path}:5: 开始时间: expected a time", p.stderr())
        self.assertEqual(query(srv.db, "SELECT count(*) FROM exam_sessions"), [(0,)])
        # The parse passes once P4 is gone, but site-b is org-b's: still nothing imported.
        path = h.write("bad2.csv", bad.rsplit("org-a,site-a,P4", 1)[0])
        p = cli(h, srv, "session", "import", "--file", path, "--org", "org-a", check=False)
        self.assertEqual(p.returncode, 1, p.stderr())
        self.assertIn(f"{path}:4: org: site site-b belongs to org-b, not org-a", p.stderr())
        self.assertEqual(query(srv.db, "SELECT count(*) FROM exam_sessions"), [(0,)])
        path = h.write("good.csv", good)
        p = cli(h, srv, "session", "import", "--file", path, "--actor", "planner")
        self.assertIn("imported 2 sessions", p.stdout())
        self.assertEqual(query(srv.db, "SELECT code, org, city, rooms FROM exam_sessions"
                                       " ORDER BY code"),
                         [("P1", "org-a", "jinan", "A101,A102"), ("P2", "org-a", "jinan", "*")])
        self.assertEqual(query(srv.db, "SELECT DISTINCT actor FROM exam_session_changes"),
                         [("cli:planner",)])
        # The running server serves what the CLI wrote.
        st, body, _ = self.get(self.org_a, "/api/v1/sessions")
        self.assertEqual(sorted(x["id"] for x in body["sessions"]), ["P1", "P2"])
        p = cli(h, srv, "session", "list", "--org", "org-a")
        self.assertIn("P1", p.stdout())
        self.assertIn("A101,A102", p.stdout())


if __name__ == "__main__":
    main()
