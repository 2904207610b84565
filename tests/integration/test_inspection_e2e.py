#!/usr/bin/python3
"""Issue 12 end to end: a city's double-random inspection, from the registers to the public
page, with the real server, a real agent and real cameras (camd).

    /usr/bin/python3 tests/integration/test_inspection_e2e.py [-k PATTERN]

The city imports its registers (CSV, CLI) and an organisation's exam sessions (CSV, CLI);
the city's supervisor creates a remote-check draw over the API, the bureau commits it with the
CLI (a fresh secret in a 0600 file) and executes it once the declared value exists. Proves:
each drawn target gets its inspection — the one with a session running now has its slot on
it, the one without is reported `no_session`; each inspector's token lists exactly the
inspections he was drawn for and reads the site of his running inspection only; the
collector captures the running session's live status and one picture per camera as the
remote check's evidence by itself; one inspector records the result and two confirm it; the
city publishes the result and the draw; the public page and CSV (anonymous) show the result
with its outcome's label and never the internal note; `draw verify` passes on the document
downloaded anonymously from /public/ against the manifest hash published at commit, and fails
(exit 1, naming it) on a copy with a drawn inspector altered.
"""

import json
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (SERVER, TIMEOUT_SCALE, IntegrationTest, https_request, main,  # noqa: E402
                     query, reader_token, site_targets, wait_for)

CITY = "济南市"
CST = timezone(timedelta(hours=8))  # the draw's and the timetables' local time
DRAW = "jn-e2e"
REPORT_DEADLINE = 60 * TIMEOUT_SCALE
CAPTURE_DEADLINE = 60 * TIMEOUT_SCALE  # capture_every = 1s here, plus a loaded machine

TARGETS_CSV = """\
机构编号,机构名称,所在城市,备案级别,职业,风险等级,考点
org-a,甲职业技能培训学校,济南市,市级,电工；焊工,高风险,site-a1
org-b,乙职业技能培训学校,济南市,市级,电工,高风险,site-b1
"""
# I001 is tied to org-a: never drawn for it.
INSPECTORS_CSV = """\
编号,姓名,所在城市,部门,关联机构,不可用日期
I001,张一,济南市,职业能力建设处,org-a:任职,
I002,张二,济南市,职业能力建设处,,
I003,张三,济南市,监察支队,,
I004,张四,济南市,监察支队,,
I005,张五,济南市,监察支队,,
"""
ITEMS_CSV = """\
编号,事项名称,依据,方式
item-1,考评场所视频监控,《职业技能等级认定工作规程》第十条,远程核查
"""
NOTE = "内部备注：不公开"


def now_ms():
    return int(time.time() * 1000)


def iso_utc(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{ms % 1000:03d}Z"


def local(ms):
    return datetime.fromtimestamp(ms / 1000, CST).strftime("%Y-%m-%d %H:%M:%S")


class InspectionEndToEnd(IntegrationTest):

    def cli(self, *args, name="cli"):
        p = self.h.run(name, [SERVER, "-c", self.conf, *args], timeout=60 * TIMEOUT_SCALE)
        return p.stdout()

    def token(self, role, city=None, inspector=None):
        argv = [SERVER, "-c", str(self.conf), "token", "create", "--role", role, "--name",
                inspector or role]
        if city:
            argv += ["--city", city]
        if inspector:
            argv += ["--inspector", inspector]
        out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout.strip()

    def call(self, method, path, tok=None, body=None):
        return https_request(self.srv.port, self.srv.ca, method, path, body, token=tok)

    def test_a_city_draw_from_registers_to_publication(self):
        h = self.h
        _, cam_port = h.start_camd("ok", "black")
        state = h.path("srv")
        self.conf = h.server_config(state, name="srv.ini",
                                    extra="[inspection]\ncapture_every = 1s\n")
        h.ca_init(self.conf)
        self.srv = srv = h.start_server(self.conf, state)
        pki = h.ca_issue(srv.conf, "site-a1", "org-a", city=CITY)
        h.ca_issue(srv.conf, "site-b1", "org-b", city=CITY)

        # --- the registers and the plan of sessions, as the bureau and the org keep them
        for kind, text in (("targets", TARGETS_CSV), ("inspectors", INSPECTORS_CSV),
                           ("items", ITEMS_CSV)):
            f = h.write(f"{kind}.csv", "\ufeff" + text)  # as a spreadsheet saves it
            self.cli("register", "import", "--kind", kind, "--file", str(f), name="import")
        # org-a examines now (the slot of a remote check must be a running session);
        # org-b has no session in the window. Timetables are to the second here.
        start = (now_ms() // 1000 + 3) * 1000
        end = start + 3600 * 1000
        plan_csv = h.write("sessions.csv", "org,site,id,occupation,level,start,end,rooms,"
                           f"candidates\norg-a,site-a1,S-0001,电工,四级,{local(start)},"
                           f"{local(end)},hall-1,30\n")
        self.cli("session", "import", "--file", str(plan_csv), name="sessions")
        exam = query(srv.db, "SELECT id FROM exam_sessions WHERE site = 'site-a1'")[0][0]
        conf = h.agent_config("agent.ini", "site-a1", "org-a", h.path("agent-state"), srv.url,
                              pki, [("cam-ok", f"rtsp://127.0.0.1:{cam_port}/ok"),
                                    ("cam-black", f"rtsp://127.0.0.1:{cam_port}/black")],
                              interval="2s")
        h.start_agent(conf)

        # --- the draw: created by the city, committed and executed by the bureau's CLI
        city = self.token("city", CITY)
        today = datetime.now(CST).date()
        plan = {"scope_city": CITY, "grades": [{"risk": "high", "ratio": 1, "min": 1}],
                "inspectors_per": 2,
                "recusal": {"ties": True, "home_city": False, "same_pair": True},
                "window": {"from": today.isoformat(),
                           "to": (today + timedelta(days=1)).isoformat()},
                "mode": "remote", "items": ["item-1"]}
        st, d = self.call("POST", "/api/v1/draws", city, {"id": DRAW, "plan": plan})
        self.assertEqual(st, 201, d)
        expected = now_ms() + 2000
        secret = h.path("jn-e2e.secret")
        out = self.cli("draw", "commit", DRAW, "--source", "福彩3D 第2026330期", "--expected",
                       iso_utc(expected), "--replacement-source", "福彩3D 第2026331期",
                       "--expected", iso_utc(expected + 3600000), "--secret-out", str(secret))
        manifest_sha = re.search(r"manifest_sha256 ([0-9a-f]{64})", out).group(1)
        st, pub = self.call("GET", f"/public/api/draws/{DRAW}")
        self.assertEqual((st, pub.get("manifest_sha256")), (200, manifest_sha),
                         "the manifest is public from its commit")
        wait_for(lambda: now_ms() > max(expected, start) + 500, 10,
                 "the declared value to exist and the session to start")
        # The remote check captures once, at its slot's start: the cameras have reported by
        # then, as at a real venue whose agent runs before the session.
        wait_for(lambda: all(site_targets(srv, "site-a1").get(c, {}).get("thumbnail_at")
                             for c in ("cam-ok", "cam-black")), REPORT_DEADLINE,
                 "both cameras reported with a picture")
        self.cli("draw", "execute", DRAW, "--value", "3 7 1", "--secret-file", str(secret))

        st, listing = self.call("GET", f"/api/v1/inspections?draw={DRAW}", city)
        self.assertEqual(st, 200, listing)
        by_org = {i["org"]: i for i in listing["inspections"]}
        self.assertEqual(sorted(by_org), ["org-a", "org-b"])
        a, b = by_org["org-a"], by_org["org-b"]
        self.assertEqual((a["mode"], a["slot"]["session"], a["slot"]["site"]),
                         ("remote", exam, "site-a1"), a)
        self.assertEqual(b["finding"], "no_session", b)
        members = {}
        for org, row in by_org.items():
            st, doc = self.call("GET", f"/api/v1/inspections/{row['id']}", city)
            members[org] = sorted(m["id"] for m in doc["inspectors"] if m["active"])
            self.assertEqual(len(members[org]), 2, doc)
        self.assertNotIn("I001", members["org-a"], "recusal: I001 works for org-a")

        # --- inspectors see their own tasks, and the site of their running one, only
        tokens = {i: self.token("inspector", CITY, i) for i in
                  ("I001", "I002", "I003", "I004", "I005")}
        for i, tok in tokens.items():
            st, mine = self.call("GET", "/api/v1/inspections", tok)
            self.assertEqual(st, 200, mine)
            want = sorted(by_org[o]["id"] for o in members if i in members[o])
            self.assertEqual(sorted(x["id"] for x in mine["inspections"]), want, i)
            for o, row in by_org.items():
                st, _ = self.call("GET", f"/api/v1/inspections/{row['id']}", tok)
                self.assertEqual(st, 200 if i in members[o] else 404, (i, o))
            st, _ = self.call("GET", "/api/v1/sites/site-a1", tok)
            self.assertEqual(st == 200, i in members["org-a"], (i, st))

        # --- the remote check: the collector captures the running session by itself
        ia, ib = members["org-a"]
        base = f"/api/v1/inspections/{a['id']}"

        def evidence():
            st, doc = self.call("GET", base, tokens[ia])
            kinds = sorted((e["kind"], e.get("camera", "")) for e in doc.get("evidence", []))
            return (("status", "") in kinds and ("thumbnail", "cam-black") in kinds
                    and ("thumbnail", "cam-ok") in kinds and doc)

        doc = wait_for(evidence, CAPTURE_DEADLINE, "the remote check's captured evidence")
        status_row = query(state / "inspect.db", "SELECT data FROM inspection_evidence WHERE "
                           "inspection = ? AND kind = 'status'", (a["id"],))[0][0]
        cams = {t["target"]: t for t in json.loads(status_row)["targets"]}
        self.assertIn("black", cams["cam-black"]["faults"], "the live status as reported")

        # --- the result: recorded by one inspector, confirmed by both
        st, r = self.call("POST", base + "/result", tokens[ia],
                          {"outcome": "rectify", "findings": "后排摄像头画面全黑", "note": NOTE})
        self.assertEqual((st, r.get("state")), (200, "recorded"), r)
        version = r["result_version"]
        for who in (ia, ib):
            st, r = self.call("POST", base + "/confirm", tokens[who],
                              {"result_version": version})
            self.assertEqual(st, 200, r)
        self.assertEqual(r["state"], "confirmed", r)

        # --- publication: the result and the draw; the public page and CSV show them
        st, r = self.call("POST", base + "/publish", city)
        self.assertEqual((st, r.get("state")), (200, "published"), r)
        st, d = self.call("POST", f"/api/v1/draws/{DRAW}/publish", city)
        self.assertEqual((st, d.get("state")), (200, "published"), d)
        st, page = self.call("GET", f"/public/draws/{DRAW}")
        self.assertEqual(st, 200)
        for text in ("甲职业技能培训学校", "后排摄像头画面全黑", "责令整改", manifest_sha):
            self.assertIn(text, page, text)
        names = {"I002": "张二", "I003": "张三", "I004": "张四", "I005": "张五"}
        for i in members["org-a"]:
            self.assertIn(names[i], page, "the drawn inspectors by name")
        st, csv_ = self.call("GET", "/public/results.csv")
        self.assertEqual(st, 200)
        row = next(line for line in csv_.splitlines() if '"org-a"' in line)
        for text in (DRAW, "rectify", "责令整改", "后排摄像头画面全黑", "published"):
            self.assertIn(f'"{text}"', row, (text, row))
        st, results = self.call("GET", "/public/api/results")
        self.assertIn("no_session", [x["finding"] for x in results["results"]
                                     if x["org"] == "org-b"])
        for body in (page, csv_, json.dumps(results, ensure_ascii=False)):
            self.assertNotIn(NOTE, body, "the internal note is never public")
            self.assertNotIn("affiliation", body)

        # --- anyone verifies the published draw offline, and catches an altered one
        st, document = self.call("GET", f"/public/api/draws/{DRAW}/document")
        self.assertEqual(st, 200, document)
        published = h.write("published.json", json.dumps(document, ensure_ascii=False))
        ok = subprocess.run([SERVER, "draw", "verify", str(published), "--manifest-sha256",
                             manifest_sha], capture_output=True, text=True,
                            timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        changed = next(i for i in document["inspections"] if i["org"] == "org-a")
        changed["inspectors"][0] = "I001"  # the tied inspector, as a forger would want
        altered = h.write("altered.json", json.dumps(document, ensure_ascii=False))
        bad = subprocess.run([SERVER, "draw", "verify", str(altered), "--manifest-sha256",
                              manifest_sha], capture_output=True, text=True,
                             timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(bad.returncode, 1, bad.stderr)
        self.assertRegex(bad.stderr, r"does not match: inspections\[")


if __name__ == "__main__":
    main()
