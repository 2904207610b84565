"""The inspections pages in a real browser (issue 12 E; ctest label `browser`): Chromium via
playwright-core (tests/browser/inspections.mjs) against a real server serving the built web/.

The data is made as a bureau makes it: registers imported with the CLI, an exam session at the
collector, a draw created, committed, executed and published with the CLI, a second draw only
committed; inspector tokens bound to the drawn inspectors. The page checks: a city supervisor's
双随机抽查 (draw states, public link, inspections with due dates), the public page without a
login, and 我的检查任务 where one drawn inspector records a result and both confirm it — which
this file then checks in inspect.db.
"""

import json
import os
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from harness import (REPO, SERVER, TIMEOUT_SCALE, IntegrationTest, https_request,  # noqa: E402
                     main, query, wait_for)
from test_public import INSPECTORS_CSV, ITEMS_CSV, TARGETS_CSV  # noqa: E402

WEB_ROOT = Path(os.environ.get("VW_WEB_ROOT", REPO / "build" / "web"))
WEB_DIR = REPO / "web"
CHROMIUM = os.environ.get("VW_CHROMIUM", "/usr/bin/chromium")
CITY = "济南市"
SHANGHAI = timezone(timedelta(hours=8))
NAMES = {"I001": "张一", "I002": "张二", "I003": "张三", "I004": "张四"}


def iso_utc(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class InspectionsPagesTest(IntegrationTest):
    def cli(self, *args):
        return self.h.run("cli", [SERVER, "-c", str(self.conf), *args],
                          timeout=60 * TIMEOUT_SCALE).stdout()

    def token(self, role, *extra):
        return self.cli("token", "create", "--role", role, "--name", role, *extra).strip()

    def test_inspections_pages_in_a_browser(self):
        if not (WEB_ROOT / "index.html").exists():
            raise RuntimeError(f"the dashboard is not built: no {WEB_ROOT}/index.html")
        if not os.access(CHROMIUM, os.X_OK):
            raise RuntimeError(f"no Chromium at {CHROMIUM}")
        h = self.h
        state = h.path("srv")
        self.conf = h.server_config(state, extra=f"[web]\nroot = {WEB_ROOT}\n")
        h.ca_init(self.conf)
        srv = h.start_server(self.conf, state)
        province = self.token("province")
        city = self.token("city", "--city", CITY)
        for kind, text in (("targets", TARGETS_CSV), ("inspectors", INSPECTORS_CSV),
                           ("items", ITEMS_CSV)):
            self.cli("register", "import", "--kind", kind, "--file",
                     str(h.write(f"{kind}.csv", text)))
        today = date.today()
        start = int(datetime.combine(today + timedelta(days=1), datetime.min.time(),
                                     SHANGHAI).timestamp() * 1000) + 9 * 3600000
        h.ca_issue(self.conf, "site-a1", "org-a", city=CITY)
        st, r = https_request(srv.port, srv.ca, "POST", "/api/v1/sessions", {
            "site": "site-a1", "id": "S-1", "occupation": "电工", "level": "四级",
            "start": datetime.fromtimestamp(start / 1000, SHANGHAI).isoformat(),
            "end": datetime.fromtimestamp(start / 1000 + 7200, SHANGHAI).isoformat(),
            "rooms": ["A101"], "candidates": 30}, token=province)
        self.assertEqual(st, 201, r)
        plan = {"scope_city": CITY, "grades": [{"risk": "high", "ratio": 1, "min": 1}],
                "inspectors_per": 2, "recusal": {"ties": True, "home_city": False,
                                                 "same_pair": True},
                "window": {"from": today.isoformat(),
                           "to": (today + timedelta(days=13)).isoformat()},
                "mode": "onsite", "items": ["item-1"]}
        pf = str(h.write("plan.json", json.dumps(plan, ensure_ascii=False)))
        expected = int(time.time() * 1000) + 2000
        for d in ("jn-b1", "jn-b2"):
            self.cli("draw", "create", "--id", d, "--plan", pf)
            self.cli("draw", "commit", d, "--source", "福彩3D 第2026330期", "--expected",
                     iso_utc(expected), "--secret-out", str(h.path(f"{d}.secret")))
        wait_for(lambda: time.time() * 1000 > expected + 500, 10 * TIMEOUT_SCALE,
                 "the declared value to exist")
        self.cli("draw", "execute", "jn-b1", "--value", "3 7 1", "--secret-file",
                 str(h.path("jn-b1.secret")))
        self.cli("draw", "publish", "jn-b1")
        db = Path(state) / "inspect.db"
        iid, = query(db, "SELECT id FROM inspections WHERE draw = 'jn-b1' AND org = 'org-a'")[0]
        who = [r[0] for r in query(db, "SELECT inspector FROM inspection_inspectors WHERE"
                                   " inspection = ? AND active = 1 ORDER BY inspector", (iid,))]
        self.assertEqual(len(who), 2, who)
        toks = [self.token("inspector", "--city", CITY, "--inspector", i) for i in who]
        cfg = {"base": f"https://127.0.0.1:{srv.port}", "web_dir": str(WEB_DIR),
               "chromium": CHROMIUM,
               "tokens": {"city": city, "inspector_a": toks[0], "inspector_b": toks[1]},
               "draw": "jn-b1", "committed_draw": "jn-b2", "org": "org-a", "site": "site-a1",
               "inspector_names": [NAMES[i] for i in who], "profile_dir": str(h.dir),
               "deadline_s": 20 * TIMEOUT_SCALE, "fail_shot": str(h.path("failure.png"))}
        p = subprocess.run(["node", str(Path(__file__).with_name("inspections.mjs"))],
                           env={**os.environ, "VW_BROWSER_CONFIG": json.dumps(cfg)},
                           capture_output=True, text=True, timeout=600 * TIMEOUT_SCALE)
        print(p.stderr, flush=True)
        self.assertTrue(srv.proc.alive(), f"the server ended: {srv.proc.returncode}")
        last = [ln for ln in p.stdout.splitlines() if ln.startswith("@@ ")]
        self.assertTrue(last, f"no verdict (rc {p.returncode}): {p.stdout}")
        verdict = json.loads(last[-1][3:])
        for c in verdict.get("checks", []):
            print(f"PASS {c}")
        self.assertTrue(verdict["done"], verdict.get("error"))
        self.assertEqual(p.returncode, 0)
        # What the pages did is in inspect.db: the result, recorded by A, confirmed by both.
        row = query(db, "SELECT state, outcome, findings, note, recorded_by FROM inspections"
                    " WHERE id = ?", (iid,))[0]
        self.assertEqual(row, ("confirmed", "rectify", "考场二后方摄像机缺失", "内部备注", who[0]))
        conf = query(db, "SELECT inspector FROM inspection_confirmations WHERE inspection = ?"
                     " ORDER BY inspector", (iid,))
        self.assertEqual([c[0] for c in conf], who)


if __name__ == "__main__":
    main()
