#!/usr/bin/python3
"""Live events across collectors in a real browser (issue 13): two collectors on one
PostgreSQL; the agent uploads to collector A only, Chromium watches the venue page served by
collector B. A camera that stops turns down on B's page, live, and its problem row appears
there, although B never received the result: B's store reads the event back from the shared
events table (server/store/store.c, follow mode).

    bash tests/tools/pg.sh /usr/bin/python3 tests/browser/test_fanout.py

Env as tests/browser/test_dashboard.py (VW_WEB_ROOT, VW_CHROMIUM), plus tests/tools/pg.sh's.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from harness import (REPO, TIMEOUT_SCALE, IntegrationTest, main, psql,  # noqa: E402
                     site_targets, wait_for)

WEB_ROOT = Path(os.environ.get("VW_WEB_ROOT", REPO / "build" / "web"))
WEB_DIR = REPO / "web"
CHROMIUM = os.environ.get("VW_CHROMIUM", "/usr/bin/chromium")
SITE, ORG, CITY = "jn-fan", "jn-fanout", "济南市"
NODE_TIMEOUT = 600


class FanoutBrowser(IntegrationTest):

    def test_a_problem_ingested_by_a_shows_live_on_bs_page(self):
        h = self.h
        if not os.environ.get("VW_PG_DSN"):
            raise RuntimeError("no VW_PG_DSN: run under tests/tools/pg.sh")
        if not (WEB_ROOT / "index.html").exists():
            raise RuntimeError(f"the dashboard is not built: no {WEB_ROOT}/index.html")
        if not os.access(CHROMIUM, os.X_OK):
            raise RuntimeError(f"no Chromium at {CHROMIUM} (scripts/setup.sh installs it)")
        base = os.environ["VW_PG_DSN"]
        psql(f"{base} dbname=postgres", "CREATE DATABASE vw_fanout")
        dsn = f"{base} dbname=vw_fanout"
        extra = f"""
[store]
backend = postgresql
dsn = {dsn}
password_file = {os.environ["VW_PG_PASSFILE"]}
[web]
root = {WEB_ROOT}
"""
        sa, sb = h.path("srv-a"), h.path("srv-b")
        a_conf = h.server_config(sa, name="a.ini", extra=extra)
        h.ca_init(a_conf)
        shutil.copytree(sa, sb)  # one CA and server certificate for both collectors
        a = h.start_server(a_conf, sa)
        b_conf = h.server_config(sb, name="b.ini", extra=extra)
        b = h.start_server(b_conf, sb)

        camd_ok, port_ok = h.start_camd("ok:hall-1-front")
        camd_stop, port_stop = h.start_camd("ok:hall-1-back")
        pki = h.ca_issue(a_conf, SITE, ORG, city=CITY)
        # Collector A only: whatever B shows of this venue came through the database.
        aconf = h.agent_config("agent.ini", SITE, ORG, h.path("venue"), a.url, pki, [
            ("hall-1-front", f"rtsp://127.0.0.1:{port_ok}/hall-1-front", "hall-1"),
            ("hall-1-back", f"rtsp://127.0.0.1:{port_stop}/hall-1-back", "hall-1")],
            interval="2s")
        h.start_agent(aconf)
        wait_for(lambda: len(site_targets(b, SITE)) >= 2, 90 * TIMEOUT_SCALE,
                 "the venue's cameras read through collector B")
        token = h.run("token-province", [os.environ["VW_SERVER"], "-c", b_conf, "token",
                                         "create", "--role", "province", "--name", "browser"]
                      ).stdout().strip()

        def act(req):
            if req["ask"] == "stop_camera":
                camd_stop.stop()
                return {}
            raise ValueError(f"unknown ask {req['ask']}")

        cfg = {"base": f"https://127.0.0.1:{b.port}", "web_dir": str(WEB_DIR),
               "chromium": CHROMIUM, "token": token, "site": SITE,
               "cameras": {"ok": "hall-1-front", "stop": "hall-1-back"},
               "deadline_s": 90 * TIMEOUT_SCALE, "profile_dir": str(h.dir),
               "fail_shot": str(h.path("failure.png"))}
        node = subprocess.Popen(["node", str(Path(__file__).with_name("fanout.mjs"))],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "VW_BROWSER_CONFIG": json.dumps(cfg)})
        verdict = None
        deadline = time.monotonic() + NODE_TIMEOUT * TIMEOUT_SCALE
        try:
            for line in node.stdout:
                if time.monotonic() > deadline:
                    raise AssertionError("the browser run took too long")
                if not line.startswith("@@ "):
                    print(line, end="", flush=True)
                    continue
                msg = json.loads(line[3:])
                if "done" in msg:
                    verdict = msg
                    break
                try:
                    ans = {"ok": True, **(act(msg) or {})}
                except Exception as e:  # reported to the script, which fails with it
                    ans = {"ok": False, "error": repr(e)}
                node.stdin.write(json.dumps(ans) + "\n")
                node.stdin.flush()
        finally:
            try:
                node.stdin.close()
            except OSError:
                pass
            rc = node.wait(timeout=60)
        self.assertIsNotNone(verdict, f"the browser script ended without a verdict (rc {rc})")
        for c in verdict.get("checks", []):
            print(f"PASS {c}")
        self.assertTrue(verdict["done"], verdict.get("error"))
        self.assertEqual(rc, 0)
        # The down result and its problem were stored through A: B only read them.
        n = int(psql(dsn, "SELECT count(*) FROM problems p WHERE p.site = "
                          f"'{SITE}' AND p.target = 'hall-1-back'"))
        self.assertGreaterEqual(n, 1, "no problem stored for the stopped camera")


if __name__ == "__main__":
    main()
