#!/usr/bin/python3
"""一公开 (issue 12 E): the /public/ pages, CSVs and JSON, anonymous, against a real server.

    /usr/bin/python3 tests/integration/test_public.py [-k PATTERN]

The draws and inspections are written into inspect.db as the draws/inspections modules store
them (the schema of server/inspect/inspect.c), beside the running server — the server reads
them through its own worker, as it would rows its draw CLI made.

Proves: every /public/ route answers without a login (no token, no cookie); a draw before
commit, and an unpublished draw's document and drawn list, answer as unknown; the CSVs parse
with Python's csv and defuse formulas; the HTML escapes the registers' text and carries a CSP;
nothing private ever appears in any body (inspector ties and away dates, notes, evidence, the
private part, tokens, the secret of a draw executed but not published); due dates count
working days with the holidays file (a holiday and a make-up Saturday inside the span) and
overdue / late follow them. End to end with the real CLI and API (registers imported, a draw
created, committed, executed and published, a result recorded by one inspector, confirmed by
two, published by the city): the public page names the drawn inspectors, the result appears
with its outcome label, the document downloaded from /public/ passes `draw verify` and an
altered copy fails.
"""

import csv
import io
import json
import ssl
import subprocess
import sqlite3
import sys
import time
import http.client
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import SERVER, TIMEOUT_SCALE, IntegrationTest, main, wait_for  # noqa: E402

CITY = "济南市"
SHANGHAI = timezone(timedelta(hours=8))
DAY_MS = 86400000

# Strings that exist only in private places; none may reach a public body.
PRIVATE = {
    "tie kind": "affiliation",
    "tie kind 2": "relative",
    "ties member": '"ties":[',
    "away member": '"away":[',
    "away date": "2031-03-03",
    "note": "INTERNAL-NOTE-7f3a",
    "evidence": "EVIDENCE-DATA-91c2",
    "private part": "PRIVATE-PART-55aa",
    "unpublished secret": "e" * 64,
    "unpublished draw's session": "site-hidden-1",
}


def now_ms():
    return int(time.time() * 1000)


def local_date(ms):
    return datetime.fromtimestamp(ms / 1000, SHANGHAI).date()


def add_working(d, n, holidays, workdays):
    """The n-th working day after d: weekends rest unless listed workday; holidays rest."""
    while n > 0:
        d += timedelta(days=1)
        if d in workdays or (d.weekday() < 5 and d not in holidays):
            n -= 1
    return d


class PublicHttp:
    """Anonymous GETs against self.srv, each body checked for every private string."""

    secret_tokens = ()

    def get(self, path, headers=None):
        ctx = ssl.create_default_context(cafile=str(self.srv.ca))
        conn = http.client.HTTPSConnection("127.0.0.1", self.srv.port, context=ctx,
                                           timeout=10 * TIMEOUT_SCALE)
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8"), {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()

    def ok(self, path, ctype):
        status, body, hdrs = self.get(path)
        self.assertEqual(status, 200, f"{path}: {body}")
        self.assertTrue(hdrs["content-type"].startswith(ctype), f"{path}: {hdrs}")
        self.assertEqual(hdrs.get("x-content-type-options"), "nosniff", path)
        self.assert_nothing_private(path, body)
        return body, hdrs

    def assert_nothing_private(self, path, body):
        for what, s in list(PRIVATE.items()) + [("token", t) for t in self.secret_tokens]:
            self.assertNotIn(s, body, f"{path} shows the {what}")
        self.assertNotIn("DRAFT-FINDINGS-not-public", body, f"{path} shows an unpublished result")


class PublicTest(PublicHttp, IntegrationTest):
    def setUp(self):
        super().setUp()
        self.now = now_ms()
        today = local_date(self.now)
        # The old slot: 40 days ago, at 10:00 local; a holiday on the 3 weekdays after it
        # and the first Saturday after it worked (调休) — both move the due date.
        self.old_slot = int(datetime.combine(today - timedelta(days=40), datetime.min.time(),
                                             SHANGHAI).timestamp() * 1000) + 10 * 3600000
        old = local_date(self.old_slot)
        self.holidays, d = set(), old
        while len(self.holidays) < 3:
            d += timedelta(days=1)
            if d.weekday() < 5:
                self.holidays.add(d)
        sat = old + timedelta(days=(5 - old.weekday()) % 7 or 7)
        self.workdays = {sat}
        lines = ["date,kind,name"] + [f"{h.isoformat()},holiday,测试假日" for h in
                                      sorted(self.holidays)]
        lines += [f"{w.isoformat()},workday,调休上班" for w in self.workdays]
        hol = self.h.write("holidays.csv", "\n".join(lines) + "\n")
        self.due_old = add_working(old, 20, self.holidays, self.workdays)
        self.recent_slot = self.now - DAY_MS
        self.due_recent = add_working(local_date(self.recent_slot), 20, self.holidays,
                                      self.workdays)
        state = self.h.path("srv")
        conf = self.h.server_config(
            state, extra=f"\n[inspection]\nholidays = {hol}\nresult_due_days = 20\n")
        self.h.ca_init(conf)
        self.srv = self.h.start_server(conf, state)
        self.db = Path(state) / "inspect.db"
        wait_for(self.db.exists, 10 * TIMEOUT_SCALE, "inspect.db")
        # A token exists (and must never show up publicly).
        out = subprocess.run([SERVER, "-c", str(conf), "token", "create", "--role", "province",
                              "--name", "pub-test"], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.secret_tokens = [out.stdout.strip()]
        self.seed()

    # ---- data ----

    def seed(self):
        targets = [
            {"org": "org-a", "name": "甲职业技能培训学校<script>alert(1)</script>", "city": CITY,
             "level": "city", "occupations": ["电工"], "risk": "high", "sites": ["site-a1"]},
            {"org": "org-b", "name": "乙评价中心", "city": CITY, "level": "city",
             "occupations": ["焊工"], "risk": "low", "sites": ["site-b1"]},
            {"org": "org-c", "name": "丙学校", "city": CITY, "level": "province",
             "occupations": ["电工"], "risk": "low", "sites": ["site-c1"]},
        ]
        inspectors = [
            {"id": "I001", "name": "张三", "city": CITY, "department": "职业能力建设处",
             "ties": [{"org": "org-c", "kind": "affiliation"}], "away": [["2031-03-03",
                                                                          "2031-03-05"]]},
            {"id": "I002", "name": "李四", "city": CITY, "department": "职业能力建设处",
             "ties": [{"org": "org-b", "kind": "relative"}], "away": []},
            {"id": "I003", "name": "王五", "city": CITY, "department": "监察支队",
             "ties": [], "away": []},
        ]
        plan = {"scope_city": CITY, "grades": [{"risk": "high", "ratio": 1, "min": 1},
                                               {"risk": "low", "ratio": 0.5, "min": 1}],
                "inspectors_per": 2, "recusal": {"ties": True, "home_city": False,
                                                 "same_pair": True},
                "window": {"from": "2026-12-07", "to": "2026-12-18"}, "mode": "onsite",
                "items": ["item-1"]}
        randomness = {"sources": [{"name": "福彩3D 2026338期", "expected":
                                   "2026-12-04T13:30:00.000Z", "form": "digits"}],
                      "replacements": [{"name": "福彩3D 2026339期", "expected":
                                        "2026-12-05T13:30:00.000Z", "form": "digits"}]}

        def manifest(draw):
            return {"format": "venuewatch-draw/1", "draw": draw, "plan": plan,
                    "targets": targets,
                    "inspectors": [{k: i[k] for k in ("id", "name", "city", "department")}
                                   for i in inspectors],
                    "private_sha256": "1" * 64, "randomness": randomness,
                    "commitment": "c" * 64}

        def iso(ms):
            return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if ms else None

        self.exec_ms = self.now - 45 * DAY_MS
        slots = {1: self.old_slot, 2: self.old_slot, 3: self.recent_slot, 4: 0}
        doc_insp = [
            {"seq": 1, "org": "org-a", "city": CITY, "risk": "high", "mode": "onsite",
             "session": {"id": 17, "site": "site-a1", "start": iso(slots[1]),
                         "end": iso(slots[1] + 3600000)}, "finding": "",
             "inspectors": ["I002", "I003"], "skipped": []},
            {"seq": 2, "org": "org-b", "city": CITY, "risk": "low", "mode": "onsite",
             "session": {"id": 18, "site": "site-b1", "start": iso(slots[2]),
                         "end": iso(slots[2] + 3600000)}, "finding": "",
             "inspectors": ["I001", "I003"], "skipped": []},
            {"seq": 3, "org": "org-c", "city": CITY, "risk": "low", "mode": "remote",
             "session": {"id": 19, "site": "site-c1", "start": iso(slots[3]),
                         "end": iso(slots[3] + 3600000)}, "finding": "",
             "inspectors": ["I002", "I003"], "skipped": []},
            {"seq": 4, "org": "org-b", "city": CITY, "risk": "low", "mode": "remote",
             "session": None, "finding": "no_session", "inspectors": ["I002", "I003"],
             "skipped": []},
        ]
        m_pub = manifest("jn-pub")
        self.document = json.dumps({
            "format": "venuewatch-draw/1", "manifest": m_pub, "manifest_sha256": "a" * 64,
            "reveal": {"values": ["3 8 1"], "secret": "d" * 64}, "sessions": [],
            "inspections": doc_insp, "replacements": [],
            "strata": [{"city": CITY, "risk": "high", "population": 1, "drawn": 1}]},
            ensure_ascii=False)
        m_exec = manifest("jn-exec")
        doc_exec = json.dumps({"format": "venuewatch-draw/1", "manifest": m_exec,
                               "manifest_sha256": "b" * 64,
                               "reveal": {"values": ["4 4 4"], "secret": "e" * 64},
                               "inspections": [{"seq": 1, "org": "org-a", "session": {
                                   "id": 99, "site": "site-hidden-1"}}]},
                              ensure_ascii=False)
        private = json.dumps({"inspectors": inspectors, "marker": "PRIVATE-PART-55aa"},
                             ensure_ascii=False)
        c = sqlite3.connect(self.db, timeout=10)
        with c:
            for t in targets:
                c.execute("INSERT INTO targets VALUES(?,?,?,?,?,?,?,1)",
                          (t["org"], t["name"], t["city"], t["level"],
                           json.dumps(t["occupations"]), t["risk"], json.dumps(t["sites"])))
            for i in inspectors:
                c.execute("INSERT INTO inspectors VALUES(?,?,?,?,?,?,1)",
                          (i["id"], i["name"], i["city"], i["department"], json.dumps(i["ties"]),
                           json.dumps(i["away"])))
            pj = json.dumps(plan, ensure_ascii=False)
            ins = ("INSERT INTO draws(id, scope_city, state, plan, manifest, manifest_sha256,"
                   " private, document, created_ms, committed_ms, executed_ms, published_ms,"
                   " actor) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,'test')")
            c.execute(ins, ("jn-created", CITY, "created", pj, None, None, None, None,
                            self.now, None, None, None))
            c.execute(ins, ("jn-committed", CITY, "committed", pj,
                            json.dumps(manifest("jn-committed"), ensure_ascii=False), "f" * 64,
                            private, None, self.now, self.now, None, None))
            c.execute(ins, ("jn-exec", CITY, "executed", pj, json.dumps(m_exec,
                                                                        ensure_ascii=False),
                            "b" * 64, private, doc_exec, self.now - 50 * DAY_MS,
                            self.now - 50 * DAY_MS, self.now - 45 * DAY_MS, None))
            c.execute(ins, ("jn-pub", CITY, "published", pj, json.dumps(m_pub,
                                                                        ensure_ascii=False),
                            "a" * 64, private, self.document, self.now - 50 * DAY_MS,
                            self.now - 50 * DAY_MS, self.exec_ms, self.exec_ms + 1000))
            # the executed-not-published draw's inspection, with a result that is not public
            c.execute("INSERT INTO inspections(draw, seq, org, city, mode, site, exam_session,"
                      " slot_start_ms, slot_end_ms, state) VALUES('jn-exec',1,'org-a',?,"
                      "'onsite','site-hidden-1',99,?,?,'assigned')",
                      (CITY, self.old_slot, self.old_slot + 3600000))
            rows = [
                # seq, org, mode, site, slot, finding, state, outcome, findings, published
                (1, "org-a", "onsite", "site-a1", slots[1], "", "published", "rectify",
                 "=HYPERLINK(\"http://x\",\"y\") 监控未覆盖考场二", self.now - 1000),
                (2, "org-b", "onsite", "site-b1", slots[2], "", "recorded", "clear",
                 "DRAFT-FINDINGS-not-public", 0),
                (3, "org-c", "remote", "site-c1", slots[3], "", "assigned", "", "", 0),
                (4, "org-b", "remote", "", 0, "no_session", "assigned", "", "", 0),
            ]
            for seq, org, mode, site, slot, finding, st, outcome, findings, pub in rows:
                c.execute("INSERT INTO inspections(draw, seq, org, city, mode, site,"
                          " exam_session, slot_start_ms, slot_end_ms, finding, state, outcome,"
                          " findings, note, evidence, result_version, recorded_by,"
                          " published_ms) VALUES('jn-pub',?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,"
                          "'I003',?)",
                          (seq, org, CITY, mode, site, 17 if slot else 0, slot,
                           slot + 3600000 if slot else 0, finding, st, outcome, findings,
                           "INTERNAL-NOTE-7f3a", '{"x":"EVIDENCE-DATA-91c2"}', pub))
                iid = c.execute("SELECT id FROM inspections WHERE draw='jn-pub' AND seq=?",
                                (seq,)).fetchone()[0]
                c.execute("INSERT INTO inspection_evidence(inspection, captured_ms, kind,"
                          " camera, data, jpeg) VALUES(?,?,'thumbnail','cam-1',?,?)",
                          (iid, self.now, '{"y":"EVIDENCE-DATA-91c2"}', b"\xff\xd8jpeg"))
        c.close()

    # ---- tests ----

    def test_public_pages_answer_anonymously_and_show_nothing_private(self):
        html, hdrs = self.ok("/public/", "text/html")
        csp = hdrs["content-security-policy"]
        self.assertIn("default-src 'none'", csp)
        self.assertNotIn("script-src", csp)
        self.assertIn("jn-committed", html)
        self.assertIn("jn-pub", html)
        self.assertNotIn("jn-created", html)  # not committed: nothing of it is public
        self.assertNotIn("<script", html.lower())
        status, _, hdrs = self.get("/public")
        self.assertEqual(status, 308)
        self.assertEqual(hdrs["location"], "/public/")

        page, _ = self.ok("/public/draws/jn-pub", "text/html")
        self.assertIn("甲职业技能培训学校&lt;script&gt;", page)  # the register's text, escaped
        self.assertNotIn("<script", page.lower())
        for s in ("张三", "李四", "王五", "福彩3D 2026338期", "3 8 1", "d" * 64, "c" * 64,
                  "a" * 64, "责令整改"):
            self.assertIn(s, page)
        page, _ = self.ok("/public/draws/jn-committed", "text/html")
        self.assertIn("福彩3D 2026338期", page)
        self.assertIn("c" * 64, page)  # the commitment is public from commit on
        self.assertIn("尚未产生", page)

        d = json.loads(self.ok("/public/api/draws", "application/json")[0])
        self.assertEqual({x["id"]: x["state"] for x in d["draws"]},
                         {"jn-committed": "committed", "jn-exec": "executed",
                          "jn-pub": "published"})
        pub = json.loads(self.ok("/public/api/draws/jn-pub", "application/json")[0])
        self.assertEqual(pub["reveal"], {"values": ["3 8 1"], "secret": "d" * 64})
        self.assertEqual([i["seq"] for i in pub["inspections"]], [1, 2, 3, 4])
        self.assertEqual([p["name"] for p in pub["inspections"][0]["inspectors"]],
                         ["李四", "王五"])
        self.assertEqual(pub["manifest_sha256"], "a" * 64)
        ex = json.loads(self.ok("/public/api/draws/jn-exec", "application/json")[0])
        self.assertEqual(ex["state"], "executed")
        self.assertNotIn("reveal", ex)
        self.assertNotIn("inspections", ex)
        com = json.loads(self.ok("/public/api/draws/jn-committed", "application/json")[0])
        self.assertEqual(com["commitment"], "c" * 64)
        self.assertEqual(com["randomness"]["sources"][0]["name"], "福彩3D 2026338期")

        doc, hdrs = self.ok("/public/api/draws/jn-pub/document", "application/json")
        self.assertEqual(doc, self.document)  # verbatim: what draw verify reads
        self.assertIn("attachment", hdrs["content-disposition"])

        # Not public: before commit, and an executed draw's document and list before publish
        # — the same 404 as a draw that does not exist.
        for path in ("/public/draws/jn-created", "/public/api/draws/jn-created",
                     "/public/api/draws/nope", "/public/api/draws/jn-exec/document",
                     "/public/draws/jn-exec.csv", "/public/draws/jn-committed.csv",
                     "/public/api/draws/jn-created/document"):
            status, body, _ = self.get(path)
            self.assertEqual(status, 404, f"{path}: {body}")
            self.assert_nothing_private(path, body)

        res = json.loads(self.ok("/public/api/results", "application/json")[0])
        self.assertEqual([(r["draw"], r["seq"]) for r in res["results"]],
                         [("jn-pub", 1), ("jn-pub", 2), ("jn-pub", 3), ("jn-pub", 4)])

    def test_csv_parses_and_defuses_formulas(self):
        body, hdrs = self.ok("/public/results.csv", "text/csv")
        self.assertIn("attachment; filename=results.csv", hdrs["content-disposition"])
        rows = list(csv.DictReader(io.StringIO(body, newline="")))
        self.assertEqual(len(rows), 4)
        r1 = rows[0]
        self.assertEqual((r1["draw"], r1["seq"], r1["org"], r1["state"], r1["outcome"],
                          r1["outcome_label"]),
                         ("jn-pub", "1", "org-a", "published", "rectify", "责令整改"))
        self.assertTrue(r1["findings"].startswith("'=HYPERLINK"), r1["findings"])
        self.assertEqual(rows[1]["state"], "pending")
        self.assertEqual(rows[1]["findings"], "")
        body, _ = self.ok("/public/draws/jn-pub.csv", "text/csv")
        rows = list(csv.DictReader(io.StringIO(body, newline="")))
        self.assertEqual([r["seq"] for r in rows], ["1", "2", "3", "4"])
        self.assertEqual(rows[0]["inspectors"], "李四;王五")
        self.assertEqual(rows[3]["finding"], "no_session")

    def test_due_dates_count_working_days_and_flag_overdue(self):
        res = json.loads(self.ok("/public/api/results", "application/json")[0])["results"]
        by = {r["seq"]: r for r in res}
        # published, but after its due date: not overdue, late
        self.assertEqual(by[1]["due"], self.due_old.isoformat())
        self.assertFalse(by[1]["overdue"])
        self.assertTrue(by[1]["late"])
        self.assertEqual(by[1]["outcome_label"], "责令整改")
        # recorded, not published, past due: overdue; its draft never shows
        self.assertEqual(by[2]["due"], self.due_old.isoformat())
        self.assertTrue(by[2]["overdue"])
        self.assertIsNone(by[2]["findings"])
        self.assertIsNone(by[2]["outcome"])
        # the slot was yesterday: due in the future
        self.assertEqual(by[3]["due"], self.due_recent.isoformat())
        self.assertFalse(by[3]["overdue"])
        # no session: counted from the draw's execute date
        self.assertEqual(by[4]["due"], add_working(local_date(self.exec_ms), 20, self.holidays,
                                                   self.workdays).isoformat())
        self.assertTrue(by[4]["overdue"])
        self.assertEqual(by[4]["date"], "")
        # the holidays file moved the date: weekends alone would give another day
        self.assertNotEqual(self.due_old, add_working(local_date(self.old_slot), 20, set(),
                                                      set()))
        page, _ = self.ok("/public/", "text/html")
        self.assertIn("已逾期", page)
        self.assertIn(self.due_old.isoformat(), page)


TARGETS_CSV = """\
org,name,city,level,occupations,risk,sites
org-a,甲职业技能培训学校,济南市,city,电工;焊工,high,site-a1
org-b,乙职业技能培训学校,济南市,city,电工,high,site-b1
"""
INSPECTORS_CSV = """\
id,name,city,department,ties,away
I001,张一,济南市,职业能力建设处,org-a:affiliation,2031-03-03..2031-03-05
I002,张二,济南市,职业能力建设处,org-b:relative,
I003,张三,济南市,监察支队,,
I004,张四,济南市,监察支队,,
"""
ITEMS_CSV = """\
id,title,basis,method
item-1,考评场所视频监控,《职业技能等级认定工作规程》第十条,远程核查
"""


def iso_utc(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class PublicEndToEnd(PublicHttp, IntegrationTest):
    def cli(self, *args, check=True):
        p = self.h.run("cli", [SERVER, "-c", str(self.conf), *args], timeout=60 * TIMEOUT_SCALE,
                       check=check)
        return p.returncode, p.stdout(), p.stderr()

    def token(self, role, *extra):
        _, out, _ = self.cli("token", "create", "--role", role, "--name", role, *extra)
        self.secret_tokens = [*self.secret_tokens, out.strip()]
        return out.strip()

    def call(self, method, path, token, body=None):
        ctx = ssl.create_default_context(cafile=str(self.srv.ca))
        conn = http.client.HTTPSConnection("127.0.0.1", self.srv.port, context=ctx,
                                           timeout=10 * TIMEOUT_SCALE)
        try:
            hdrs = {"Authorization": f"Bearer {token}"} if token else {}
            data = None
            if body is not None:
                data = json.dumps(body)
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=hdrs)
            r = conn.getresponse()
            raw = r.read().decode("utf-8")
            try:
                return r.status, json.loads(raw)
            except ValueError:
                return r.status, raw
        finally:
            conn.close()

    def test_a_bad_holidays_file_is_named_by_check_config_and_start(self):
        h = self.h
        bad = h.write("hol.csv", "date,kind,name\n2026-10-01,holiday,国庆节\n2026-10-0x,holiday,x\n")
        conf = h.server_config(h.path("srv"), extra=f"\n[inspection]\nholidays = {bad}\n")
        p = subprocess.run([SERVER, "-c", str(conf), "--check-config"], capture_output=True,
                           text=True, timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn(f"{bad}:3: date: not a date (YYYY-MM-DD)", p.stderr)
        h.ca_init(conf)
        srv = h.start("server", [SERVER, "-c", str(conf)])
        wait_for(lambda: not srv.alive(), 30 * TIMEOUT_SCALE, "the server to refuse to start")
        self.assertNotEqual(srv.returncode, 0)
        self.assertIn(f"{bad}:3: date", srv.stderr())

    def test_a_published_draw_and_result_through_the_real_cli_and_api(self):
        h = self.h
        state = h.path("srv")
        self.conf = h.server_config(state)
        h.ca_init(self.conf)
        self.srv = h.start_server(self.conf, state)
        province = self.token("province")
        jinan = self.token("city", "--city", CITY)
        for kind, text in (("targets", TARGETS_CSV), ("inspectors", INSPECTORS_CSV),
                           ("items", ITEMS_CSV)):
            self.cli("register", "import", "--kind", kind, "--file",
                     str(h.write(f"{kind}.csv", text)))
        # org-a examines tomorrow; org-b has no session in the window (no_session).
        today = date.today()
        start = int(datetime.combine(today + timedelta(days=1), datetime.min.time(),
                                     SHANGHAI).timestamp() * 1000) + 9 * 3600000
        h.ca_issue(self.conf, "site-a1", "org-a", city=CITY)
        st, r = self.call("POST", "/api/v1/sessions", province, {
            "site": "site-a1", "id": "S-1", "occupation": "电工", "level": "四级",
            "start": datetime.fromtimestamp(start / 1000, SHANGHAI).isoformat(),
            "end": datetime.fromtimestamp(start / 1000 + 7200, SHANGHAI).isoformat(),
            "rooms": ["A101"], "candidates": 30})
        self.assertEqual(st, 201, r)
        plan = {"scope_city": CITY, "grades": [{"risk": "high", "ratio": 1, "min": 1}],
                "inspectors_per": 2, "recusal": {"ties": True, "home_city": False,
                                                 "same_pair": True},
                "window": {"from": today.isoformat(),
                           "to": (today + timedelta(days=13)).isoformat()},
                "mode": "onsite", "items": ["item-1"]}
        self.cli("draw", "create", "--id", "jn-e2e", "--plan",
                 str(h.write("plan.json", json.dumps(plan, ensure_ascii=False))))
        status, body, _ = self.get("/public/api/draws/jn-e2e")
        self.assertEqual(status, 404, "a created draw is not public")
        expected = int(time.time() * 1000) + 2000
        secret = h.path("secret.hex")
        self.cli("draw", "commit", "jn-e2e", "--source", "福彩3D 第2026330期", "--expected",
                 iso_utc(expected), "--secret-out", str(secret))
        com = json.loads(self.ok("/public/api/draws/jn-e2e", "application/json")[0])
        self.assertEqual(com["state"], "committed")
        self.assertEqual(com["randomness"]["sources"][0]["name"], "福彩3D 第2026330期")
        self.assertNotIn(secret.read_text().strip(), json.dumps(com))
        wait_for(lambda: time.time() * 1000 > expected + 500, 10 * TIMEOUT_SCALE,
                 "the declared value to exist")
        self.cli("draw", "execute", "jn-e2e", "--value", "3 7 1", "--secret-file", str(secret))
        ex, _ = self.ok("/public/api/draws/jn-e2e", "application/json")
        self.assertNotIn(secret.read_text().strip(), ex, "the secret before publish")
        exj = json.loads(ex)
        self.assertNotIn("inspections", exj, "an executed draw's drawn list before publish")
        self.assertNotIn("reveal", exj)
        self.assertNotIn('"start"', ex, "an executed draw's slots before publish")
        self.cli("draw", "publish", "jn-e2e")
        pub = json.loads(self.ok("/public/api/draws/jn-e2e", "application/json")[0])
        by_org = {i["org"]: i for i in pub["inspections"]}
        self.assertEqual(sorted(by_org), ["org-a", "org-b"])
        self.assertEqual(by_org["org-b"]["finding"], "no_session")
        names = {"I001": "张一", "I002": "张二", "I003": "张三", "I004": "张四"}
        a = by_org["org-a"]
        self.assertNotIn("I001", [p["id"] for p in a["inspectors"]], "recusal: tied to org-a")
        for p in a["inspectors"]:
            self.assertEqual(p["name"], names[p["id"]])
        page, _ = self.ok("/public/draws/jn-e2e", "text/html")
        for p in a["inspectors"]:
            self.assertIn(p["name"], page)
        self.assertIn("甲职业技能培训学校", page)
        self.assertIn("high：100%，至少 1 家", page)  # the normalised plan's ratio_bp
        # The downloaded document verifies offline; an altered copy does not.
        doc, _ = self.ok("/public/api/draws/jn-e2e/document", "application/json")
        f = h.write("doc.json", doc)
        v = subprocess.run([SERVER, "draw", "verify", str(f), "--manifest-sha256",
                            pub["manifest_sha256"]], capture_output=True, text=True,
                           timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        d = json.loads(doc)
        d["inspections"][0]["inspectors"][0] = "I001" if \
            d["inspections"][0]["inspectors"][0] != "I001" else "I004"
        bad = h.write("bad.json", json.dumps(d, ensure_ascii=False))
        v = subprocess.run([SERVER, "draw", "verify", str(bad)], capture_output=True, text=True,
                           timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(v.returncode, 1, v.stdout + v.stderr)

        # A result: recorded by one drawn inspector, confirmed by both, published by the city.
        st, lst = self.call("GET", "/api/v1/inspections?draw=jn-e2e", jinan)
        self.assertEqual(st, 200, lst)
        iid = next(i["id"] for i in lst["inspections"] if i["org"] == "org-a")
        who = [p["id"] for p in a["inspectors"]]
        toks = [self.token("inspector", "--city", CITY, "--inspector", i) for i in who]
        base = f"/api/v1/inspections/{iid}"
        st, r = self.call("POST", base + "/result", toks[0], {
            "outcome": "rectify", "findings": "考场二后方摄像机缺失", "note": "INTERNAL-NOTE-7f3a"})
        self.assertEqual(st, 200, r)
        self.assertEqual(json.loads(self.ok("/public/api/results",
                                                  "application/json")[0])["results"][0]["state"],
                         "pending")
        for tk in toks:
            st, r = self.call("POST", base + "/confirm", tk, {"result_version": 1})
            self.assertEqual(st, 200, r)
        st, r = self.call("POST", base + "/publish", jinan)
        self.assertEqual(st, 200, r)
        res = json.loads(self.ok("/public/api/results", "application/json")[0])
        r = next(x for x in res["results"] if x["org"] == "org-a")
        self.assertEqual((r["state"], r["outcome"], r["outcome_label"], r["findings"]),
                         ("published", "rectify", "责令整改", "考场二后方摄像机缺失"))
        self.assertFalse(r["overdue"])
        self.assertRegex(r["due"], r"^\d{4}-\d{2}-\d{2}$")
        body, _ = self.ok("/public/results.csv", "text/csv")
        rows = list(csv.DictReader(io.StringIO(body, newline="")))
        self.assertIn("责令整改", [x["outcome_label"] for x in rows])
        for path in ("/public/", "/public/draws/jn-e2e", "/public/draws/jn-e2e.csv"):
            self.ok(path, "text/")


if __name__ == "__main__":
    main()
