#!/usr/bin/env python3
"""Draws (issue 12 C): a city draw through its states with the real server and CLI.

Registers imported as CSV and exam sessions entered at the collector; the city's supervisor
creates the draw over the API; the CLI commits it (a fresh secret in a 0600 file, only its
commitment stored); a second commit is a 409; an execute with a wrong secret is refused and
changes nothing; the CLI executes it (inspections rows from the document, on the sessions the
collector knows); a replacement over the API moves the inspector rows; the CLI publishes and
exports the document, `draw verify` passes on it and fails (exit 1, naming what) on copies
with a target, a revealed value or an inspector altered. Another city's token neither sees nor
executes the draw, and a city may not create a province draw. Every change is in the audit.
"""

import json
import os
import re
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (SERVER, TIMEOUT_SCALE, IntegrationTest, https_request, main, query,  # noqa: E402
                     reader_token, wait_for)

JINAN, QINGDAO = "济南市", "青岛市"
DRAW = "jn-2026-12"

TARGETS_CSV = """\
org,name,city,level,occupations,risk,sites
org-a,甲职业技能培训学校,济南市,city,电工;焊工,high,site-a1
org-b,乙职业技能培训学校,济南市,city,电工,high,site-b1
org-c,丙评价中心,济南市,city,焊工,medium,site-c1
org-d,丁评价中心,济南市,province,电工,low,site-d1
org-q,青评价中心,青岛市,city,电工,high,site-q1
"""
# I001 is tied to org-a (recusal); I006 is away for the whole window.
INSPECTORS_CSV = """\
id,name,city,department,ties,away
I001,张一,济南市,职业能力建设处,org-a:affiliation,
I002,张二,济南市,职业能力建设处,,
I003,张三,济南市,职业能力建设处,org-b:relative,
I004,张四,济南市,监察支队,,
I005,张五,济南市,监察支队,,
I006,张六,济南市,监察支队,,{away}
I007,张七,济南市,监察支队,,
Q001,青一,青岛市,监察支队,,
Q002,青二,青岛市,监察支队,,
"""
ITEMS_CSV = """\
id,title,basis,method
item-1,考评场所视频监控,《职业技能等级认定工作规程》第十条,远程核查
"""


def now_ms():
    return int(time.time() * 1000)


def iso_utc(ms):
    return datetime.utcfromtimestamp(ms / 1000).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{ms % 1000:03d}Z"


# The draw's and the timetables' local time: China Standard Time (UTC+8, no DST).
CST = timezone(timedelta(hours=8))


def iso_local(ms):
    return datetime.fromtimestamp(ms / 1000, CST).isoformat(timespec="seconds")


class Draws(IntegrationTest):

    def cli(self, *args, check=True, name="cli"):
        p = self.h.run(name, [SERVER, "-c", self.conf, *args], timeout=60 * TIMEOUT_SCALE,
                       check=check)
        return p.returncode, p.stdout(), p.stderr()

    def token(self, role, city=None):
        argv = [SERVER, "-c", str(self.conf), "token", "create", "--role", role, "--name", role]
        if city:
            argv += ["--city", city]
        out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout.strip()

    def api(self, method, path, body=None, token=None):
        return https_request(self.srv.port, self.srv.ca, method, path, body,
                             token=token or self.province)

    def setUp(self):
        super().setUp()
        h = self.h
        state = h.path("srv")
        self.conf = h.server_config(state, name="srv.ini")
        h.ca_init(self.conf)
        self.srv = h.start_server(self.conf, state)
        self.inspect_db = Path(state) / "inspect.db"
        self.province = reader_token(self.srv)
        self.jinan = self.token("city", JINAN)
        self.qingdao = self.token("city", QINGDAO)
        today = datetime.now(CST).date()
        self.window = (today.isoformat(), (today + timedelta(days=13)).isoformat())
        away = f"{today.isoformat()}..{(today + timedelta(days=13)).isoformat()}"
        for kind, text in (("targets", TARGETS_CSV), ("inspectors",
                                                      INSPECTORS_CSV.format(away=away)),
                           ("items", ITEMS_CSV)):
            f = h.write(f"{kind}.csv", text)
            self.cli("register", "import", "--kind", kind, "--file", str(f), name="import")
        # Sessions for org-a, org-b and org-d from tomorrow; org-c's site has none in the window.
        base = int(datetime.combine(today + timedelta(days=1), datetime.min.time(),
                                    CST).timestamp() * 1000)
        self.sessions = {}
        # On different days: an inspector is booked once a day.
        for site, org, day in (("site-a1", "org-a", 0), ("site-b1", "org-b", 1),
                               ("site-c1", "org-c", None), ("site-d1", "org-d", 2)):
            h.ca_issue(self.conf, site, org, city=JINAN)
            if day is None:
                continue
            start = base + day * 86400000 + 9 * 3600000
            body = {"site": site, "id": f"S-{site}", "occupation": "电工", "level": "四级",
                    "start": iso_local(start), "end": iso_local(start + 2 * 3600000),
                    "rooms": ["A101"], "candidates": 30}
            st, reply = self.api("POST", "/api/v1/sessions", body)
            self.assertEqual(st, 201, reply)
            self.sessions[site] = reply["sessions"][0]["ref"]

    def plan(self, city=JINAN):
        return {"scope_city": city,
                "grades": [{"risk": "high", "ratio": 1, "min": 1},
                           {"risk": "medium", "ratio": 1, "min": 1},
                           {"risk": "low", "ratio": 1, "min": 0}],
                "inspectors_per": 2,
                "recusal": {"ties": True, "home_city": False, "same_pair": True},
                "window": {"from": self.window[0], "to": self.window[1]},
                "mode": "onsite", "items": ["item-1"]}

    def test_a_city_draw_through_its_states(self):
        h = self.h
        # --- create over the API (the city's own), and what others may not do
        st, d = self.api("POST", "/api/v1/draws", {"id": DRAW, "plan": self.plan()},
                         token=self.jinan)
        self.assertEqual(st, 201, d)
        self.assertEqual((d["id"], d["state"], d["scope_city"]), (DRAW, "created", JINAN))
        st, d = self.api("POST", "/api/v1/draws", {"id": DRAW, "plan": self.plan()},
                         token=self.jinan)
        self.assertEqual((st, d.get("field")), (409, "id"), d)
        st, d = self.api("POST", "/api/v1/draws", {"id": "jn-prov", "plan": self.plan("")},
                         token=self.jinan)
        self.assertEqual((st, d.get("field")), (403, "plan.scope_city"), d)
        bad = self.plan()
        bad["inspectors_per"] = 1
        st, d = self.api("POST", "/api/v1/draws", {"id": "jn-bad", "plan": bad},
                         token=self.jinan)
        self.assertEqual(st, 422, d)
        self.assertTrue(d["field"].startswith("plan.inspectors_per"), d)
        for path in (f"/api/v1/draws/{DRAW}", f"/api/v1/draws/{DRAW}/document"):
            st, _ = self.api("GET", path, token=self.qingdao)
            self.assertEqual(st, 404, path)
        st, lst = self.api("GET", "/api/v1/draws", token=self.qingdao)
        self.assertEqual((st, lst["draws"]), (200, []))
        st, lst = self.api("GET", "/api/v1/draws", token=self.jinan)
        self.assertEqual([x["id"] for x in lst["draws"]], [DRAW])
        # Not committed yet: execute is a state conflict.
        st, d = self.api("POST", f"/api/v1/draws/{DRAW}/execute",
                         {"values": ["1 2 3"], "secret": "00" * 32}, token=self.jinan)
        self.assertEqual(st, 409, d)

        # --- commit with the CLI: a fresh secret in a 0600 file, only the commitment kept
        expected = now_ms() + 3000
        secret = h.path("secret.hex")
        rc, out, err = self.cli("draw", "commit", DRAW, "--source", "福彩3D 第2026330期",
                                "--expected", iso_utc(expected), "--replacement-source",
                                "福彩3D 第2026331期", "--expected", iso_utc(expected + 1000),
                                "--form", "sorted", "--secret-out", str(secret))
        m = re.search(r"manifest_sha256 ([0-9a-f]{64})", out)
        self.assertTrue(m, out)
        manifest_sha = m.group(1)
        self.assertEqual(stat.S_IMODE(os.stat(secret).st_mode), 0o600)
        secret_hex = secret.read_text().strip()
        self.assertRegex(secret_hex, r"^[0-9a-f]{64}$")
        rows = query(self.inspect_db, "SELECT state, manifest_sha256, private IS NOT NULL "
                     "FROM draws WHERE id = ?", (DRAW,))
        self.assertEqual(rows, [("committed", manifest_sha, 1)])
        dump = "\n".join(str(r) for r in query(self.inspect_db, "SELECT * FROM draws"))
        self.assertNotIn(secret_hex, dump, "the secret itself is never stored")
        # A second commit: 409 over the API; the CLI refuses an existing secret file first.
        st, d = self.api("POST", f"/api/v1/draws/{DRAW}/commit",
                         {"commitment": "ab" * 32, "randomness": {"sources": [
                             {"name": "x", "expected": iso_utc(now_ms() + 60000),
                              "form": "ordered"}]}}, token=self.jinan)
        self.assertEqual(st, 409, d)
        rc, _, err = self.cli("draw", "commit", DRAW, "--source", "x", "--expected",
                              iso_utc(now_ms() + 60000), "--secret-out", str(secret),
                              check=False)
        self.assertEqual(rc, 1, err)
        self.assertEqual(secret.read_text().strip(), secret_hex, "the old secret is kept")
        # The manifest is visible; the private part only to the province.
        st, d = self.api("GET", f"/api/v1/draws/{DRAW}", token=self.jinan)
        self.assertEqual((st, d["manifest_sha256"]), (200, manifest_sha), d)
        self.assertNotIn("private", d)
        public = json.dumps(d["manifest"], ensure_ascii=False)
        for private in ("affiliation", "relative", "away", self.window[1] + '"]'):
            self.assertNotIn(private, public)
        st, d = self.api("GET", f"/api/v1/draws/{DRAW}")
        self.assertIn("private", d)

        # --- execute: not before the values exist; never another city; never a wrong secret
        wait_for(lambda: now_ms() > expected + 1000, 10, "the declared values to exist")
        st, d = self.api("POST", f"/api/v1/draws/{DRAW}/execute",
                         {"values": ["3 7 1"], "secret": secret_hex}, token=self.qingdao)
        self.assertEqual(st, 404, d)
        wrong = ("0" if secret_hex[0] != "0" else "1") + secret_hex[1:]
        st, d = self.api("POST", f"/api/v1/draws/{DRAW}/execute",
                         {"values": ["3 7 1"], "secret": wrong}, token=self.jinan)
        self.assertEqual((st, d.get("field")), (422, "secret"), d)
        self.assertEqual(query(self.inspect_db, "SELECT state, document FROM draws "
                               "WHERE id = ?", (DRAW,)), [("committed", None)])
        self.assertEqual(query(self.inspect_db, "SELECT count(*) FROM inspections"), [(0,)])
        rc, out, err = self.cli("draw", "execute", DRAW, "--value", "3 7 1", "--secret-file",
                                str(secret))
        self.assertIn("executed", out)
        st, doc = self.api("GET", f"/api/v1/draws/{DRAW}/document", token=self.jinan)
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["manifest_sha256"], manifest_sha)
        # Every target of a grade with ratio 1 is drawn; each has ≥ 2 inspectors, never one
        # tied to it, never the one away; sessions are the collector's.
        by_org = {i["org"]: i for i in doc["inspections"]}
        self.assertEqual(sorted(by_org), ["org-a", "org-b", "org-c", "org-d"])
        for org, i in by_org.items():
            self.assertGreaterEqual(len(i["inspectors"]), 2, i)
            self.assertNotIn("I006", i["inspectors"])
        self.assertNotIn("I001", by_org["org-a"]["inspectors"])
        self.assertNotIn("I003", by_org["org-b"]["inspectors"])
        self.assertEqual(by_org["org-a"]["session"]["id"], self.sessions["site-a1"])
        self.assertIsNone(by_org["org-c"]["session"])
        self.assertEqual(by_org["org-c"]["finding"], "no_session")
        rows = query(self.inspect_db, "SELECT seq, org, city, mode, site, exam_session, "
                     "slot_start_ms > 0, finding, state FROM inspections WHERE draw = ? "
                     "ORDER BY seq", (DRAW,))
        self.assertEqual(len(rows), len(doc["inspections"]))
        for row, i in zip(rows, sorted(doc["inspections"], key=lambda x: x["seq"])):
            sess = i["session"] or {}
            self.assertEqual(row, (i["seq"], i["org"], JINAN, i["mode"], sess.get("site", ""),
                                   sess.get("id", 0), 1 if sess else 0, i["finding"],
                                   "assigned"))
            members = query(self.inspect_db, "SELECT ii.inspector FROM inspection_inspectors "
                            "ii JOIN inspections n ON n.id = ii.inspection WHERE n.draw = ? "
                            "AND n.seq = ? AND ii.active = 1 ORDER BY 1", (DRAW, i["seq"]))
            self.assertEqual([m[0] for m in members], sorted(i["inspectors"]))
        st, d = self.api("POST", f"/api/v1/draws/{DRAW}/execute",
                         {"values": ["3 7 1"], "secret": secret_hex}, token=self.jinan)
        self.assertEqual(st, 409, d)

        # --- replace over the API: the leaving inspector's row stays, inactive
        a = by_org["org-a"]
        out_id = a["inspectors"][0]
        st, d = self.api("POST", f"/api/v1/draws/{DRAW}/replace",
                         {"seq": a["seq"], "out": out_id, "reason": "病假", "value": "4 2 9"},
                         token=self.jinan)
        self.assertEqual(st, 200, d)
        rep = d["document"]["replacements"]
        self.assertEqual(len(rep), 1, rep)
        self.assertEqual((rep[0]["inspection"], rep[0]["out"]), (a["seq"], out_id))
        new_id = rep[0]["in"]
        self.assertNotIn(new_id, a["inspectors"] + ["I001", "I006"])
        rows = dict(((r[0]), r[1:]) for r in query(
            self.inspect_db, "SELECT ii.inspector, ii.active, ii.replaced_by FROM "
            "inspection_inspectors ii JOIN inspections n ON n.id = ii.inspection "
            "WHERE n.draw = ? AND n.seq = ?", (DRAW, a["seq"])))
        self.assertEqual(rows[out_id], (0, new_id))
        self.assertEqual(rows[new_id], (1, ""))
        st, d = self.api("POST", f"/api/v1/draws/{DRAW}/replace",
                         {"seq": a["seq"], "out": out_id, "reason": "again", "value": "1"},
                         token=self.jinan)
        self.assertEqual((st, d.get("field")), (422, "out"), d)

        # --- publish and export with the CLI; verify offline
        self.cli("draw", "publish", DRAW)
        st, d = self.api("GET", f"/api/v1/draws/{DRAW}", token=self.jinan)
        self.assertEqual(d["state"], "published")
        self.assertEqual([x["action"] for x in d["log"]],
                         ["create", "commit", "execute", "replace", "publish"])
        exported = h.path("draw.json")
        self.cli("draw", "export", DRAW, "--out", str(exported))
        published = json.loads(exported.read_text())
        self.assertEqual(published["replacements"], rep)
        # verify needs no configuration (no -c) and no database
        ok = subprocess.run([SERVER, "draw", "verify", str(exported), "--manifest-sha256",
                             manifest_sha], capture_output=True, text=True,
                            timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertIn("ok", ok.stdout)

        def altered(name, change):
            d = json.loads(exported.read_text())
            change(d)
            p = h.write(f"altered-{name}.json", json.dumps(d, ensure_ascii=False))
            return subprocess.run([SERVER, "draw", "verify", str(p)], capture_output=True,
                                  text=True, timeout=60 * TIMEOUT_SCALE)

        def target(d):
            d["manifest"]["targets"][0]["name"] += "（改）"

        def value(d):
            d["reveal"]["values"][0] = "3 7 2"

        def inspector(d):
            i = next(x for x in d["inspections"] if x["org"] == "org-b")
            i["inspectors"][0] = "I005" if i["inspectors"][0] != "I005" else "I004"

        # What verify names first: the altered input, or the first output that no longer
        # follows from it (a changed value breaks the replayed replacement before the
        # comparison of the revealed part: draw_verify's order).
        for name, change, named in (("target", target, r"manifest\.targets"),
                                    ("value", value, r"reveal\.|replacements\["),
                                    ("inspector", inspector, r"inspections\[")):
            r = altered(name, change)
            self.assertEqual(r.returncode, 1, (name, r.stdout, r.stderr))
            self.assertRegex(r.stderr, rf"does not match: ({named})", name)
        r = subprocess.run([SERVER, "draw", "verify", str(exported), "--manifest-sha256",
                            "0" * 64], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        r = subprocess.run([SERVER, "draw", "verify", str(h.path("missing.json"))],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)

        # --- the audit has every step
        _, out, _ = self.cli("audit", name="audit")
        for action in ("draw_create", "draw_commit", "draw_execute", "draw_replace",
                       "draw_publish"):
            self.assertRegex(out, rf"{action}\b.*{DRAW}", action)


if __name__ == "__main__":
    main()
