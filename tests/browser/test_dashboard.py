"""The dashboard in a real browser (ctest label `browser`): Debian's Chromium, driven by
playwright-core from web/node_modules (tests/browser/dashboard.mjs), against a real server
serving the built web/ from [web] root, two agents in two cities and camd on loopback.

This file owns the processes; the node script asks for what it needs (stop a camera, restart
the server, kill an agent, the stored event ids) over a line protocol on its stdin/stdout, and
checks what the page shows. Parts that need issue 16's other branches (problems, site_silent,
stored events) run when the server has them and are reported as skipped otherwise.

Env: VW_WEB_ROOT (the build's web/ directory), VW_CHROMIUM (default /usr/bin/chromium),
VW_SHOTS (a directory for the README's screenshots, e.g. docs/img; unset: none are saved).
"""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from harness import (REPO, SERVER, SYSTEM_PYTHON, CAMD, TIMEOUT_SCALE,  # noqa: E402
                     IntegrationTest, main, query, wait_for)

WEB_ROOT = Path(os.environ.get("VW_WEB_ROOT", REPO / "build" / "web"))
WEB_DIR = REPO / "web"
CHROMIUM = os.environ.get("VW_CHROMIUM", "/usr/bin/chromium")
SITE, ORG, CITY = "jn-001", "jn-jixie", "济南市"
OTHER_SITE, OTHER_ORG, OTHER_CITY = "qd-001", "qd-zhiye", "青岛市"
SILENT_AFTER_S = 6
NODE_TIMEOUT = 900  # seconds for the whole browser run (each wait inside has its own deadline)


def free_port():
    """A loopback port free a moment ago: the server restarts on the same one, so the page's
    origin (and its cookie) stays the same."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def server_has(key):
    out = subprocess.run([SERVER, "--help-config"], capture_output=True, text=True, timeout=30)
    return key in out.stdout


class DashboardTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        if not (WEB_ROOT / "index.html").exists():
            raise RuntimeError(f"the dashboard is not built: no {WEB_ROOT}/index.html "
                               "(scripts/setup.sh runs npm ci; cmake builds the web target)")
        if not os.access(CHROMIUM, os.X_OK):
            raise RuntimeError(f"no Chromium at {CHROMIUM} (scripts/setup.sh installs it)")

    def token(self, srv_conf, role, city=None, name="browser"):
        argv = [SERVER, "-c", srv_conf, "token", "create", "--role", role, "--name", name]
        if city:
            argv += ["--city", city]
        return self.h.run(f"token-{role}", argv).stdout().strip()

    def test_dashboard_live_scoped_and_same_origin(self):
        h = self.h
        silent = server_has("silent_after")
        # Cameras: camd A serves the cameras that stay up, camd B the one the test stops,
        # camd C the other city's.
        _, port_a = h.start_camd("ok:hall-1-front", "ok2:hall-1-back", "black:hall-2-back")
        camd_b, port_b = h.start_camd("ok:hall-2-front")
        camd_c, port_c = h.start_camd("ok:gate")

        port = free_port()
        state = h.path("srv")
        extra = f"[web]\nroot = {WEB_ROOT}\n"
        if silent:
            extra += f"[feed]\nsilent_after = {SILENT_AFTER_S}s\n"
        conf = h.server_config(state, port=port, extra=extra)
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        pki = h.ca_issue(conf, SITE, ORG, city=CITY)
        pki_o = h.ca_issue(conf, OTHER_SITE, OTHER_ORG, city=OTHER_CITY)
        province = self.token(conf, "province")
        city_tok = self.token(conf, "city", city=CITY)

        def agent_conf(name, site, org, p, cams):
            return h.agent_config(name, site, org, h.path(name + "-state"), srv.url, p, cams,
                                  interval="2s")
        a_conf = agent_conf("agent-jn.ini", SITE, ORG, pki, [
            ("hall-1-front", f"rtsp://127.0.0.1:{port_a}/hall-1-front", "hall-1"),
            ("hall-1-back", f"rtsp://127.0.0.1:{port_a}/hall-1-back", "hall-1"),
            ("hall-2-front", f"rtsp://127.0.0.1:{port_b}/hall-2-front", "hall-2"),
            ("hall-2-back", f"rtsp://127.0.0.1:{port_a}/hall-2-back", "hall-2")])
        o_conf = agent_conf("agent-qd.ini", OTHER_SITE, OTHER_ORG, pki_o, [
            ("gate", f"rtsp://127.0.0.1:{port_c}/gate", "gate")])
        agent = h.start_agent(a_conf, "agent-jn")
        procs = {"server": srv, "agent": agent, "agent-qd": h.start_agent(o_conf, "agent-qd")}

        def events_table():
            try:
                return bool(query(procs["server"].db,
                                  "SELECT name FROM sqlite_master WHERE name='events'"))
            except sqlite3.Error:
                return False

        def labels():
            from harness import https_request
            st, body = https_request(port, srv.ca, "GET", "/api/v1/labels")
            return body if st == 200 else None

        def problems_route():
            from harness import https_request
            st, _ = https_request(port, srv.ca, "GET", "/api/v1/problems", token=province)
            return st == 200

        lab = labels()
        features = {"labels": lab is not None, "problems": problems_route(),
                    "silent": silent, "events_table": events_table()}
        if lab is not None:
            # web/tests/fixtures/labels.json (what the Vitest tests use) says what the server says.
            fixture = json.loads((WEB_DIR / "tests" / "fixtures" / "labels.json").read_text())
            for group, codes in fixture.items():
                for code, text in codes.items():
                    self.assertEqual(lab.get(group, {}).get(code), text,
                                     f"web/tests/fixtures/labels.json {group}.{code} differs "
                                     "from GET /api/v1/labels")
        silent_label = ((lab or {}).get("faults", {}).get("site_silent", {}).get("zh")
                        or "site_silent")
        print(f"features: {features}", flush=True)

        def max_event_id():
            return query(procs["server"].db, "SELECT COALESCE(MAX(id), 0) FROM events")[0][0]

        def act(req):
            what = req["ask"]
            if what == "stop_camera":
                camd_b.stop()
            elif what == "restart_server":
                procs["server"].proc.stop()
                procs["server"] = h.start_server(conf, state)
            elif what == "stop_server":
                procs["server"].proc.stop()
            elif what == "start_server":
                procs["server"] = h.start_server(conf, state)
            elif what == "start_session":
                # An exam session at the venue, running from a few seconds from now (the API
                # refuses a start in the past) for two hours, every room.
                from harness import https_request
                start = time.time() + 3
                fmt = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
                st, body = https_request(port, srv.ca, "POST", "/api/v1/sessions", body={
                    "site": SITE, "id": "browser-shade-1", "occupation": "电工", "level": "四级",
                    "start": fmt(start), "end": fmt(start + 7200), "rooms": "*"}, token=province)
                if st != 201:
                    raise AssertionError(f"POST /api/v1/sessions: {st} {body}")
                while time.time() < start + 1:  # running from here on
                    time.sleep(0.2)
                return {"ref": body["sessions"][0]["ref"]}
            elif what == "kill_agent":
                procs["agent"].stop(sig=9)
            elif what == "start_agent":
                procs["agent"] = h.start_agent(a_conf, "agent-jn")
            elif what == "prime_event":
                # The other city's agent goes silent: a site_silent event the province sees.
                mark = max_event_id()
                procs["agent-qd"].stop(sig=9)
                wait_for(lambda: query(procs["server"].db,
                                       "SELECT 1 FROM events WHERE id > ? AND site = ?",
                                       (mark, OTHER_SITE)), 60, "an event of the silent agent")
                procs["agent-qd"] = h.start_agent(o_conf, "agent-qd")
            elif what == "max_event_id":
                return {"id": max_event_id()}
            elif what == "event_ids_after":
                # What a province reader must have seen: every stored event after the mark,
                # once the site_silent problem (or the restart's changes) are in.
                time.sleep(1)
                rows = query(procs["server"].db, "SELECT id FROM events WHERE id > ? ORDER BY id",
                             (req["after"],))
                return {"ids": [r[0] for r in rows]}
            elif what == "other_city_event":
                mark = max_event_id() if features["events_table"] else 0
                camd_c.stop()
                if features["events_table"]:
                    wait_for(lambda: query(procs["server"].db,
                                           "SELECT 1 FROM events WHERE id > ? AND site = ?",
                                           (mark, OTHER_SITE)), 60, "an event of the other city")
            else:
                raise ValueError(f"unknown ask {what}")
            return {}

        shots = os.environ.get("VW_SHOTS", "")
        cfg = {
            "base": f"https://127.0.0.1:{port}", "web_dir": str(WEB_DIR), "chromium": CHROMIUM,
            "tokens": {"province": province, "city": city_tok},
            "city": CITY, "other_city": OTHER_CITY, "site": SITE, "other_site": OTHER_SITE,
            "cameras": {"ok": "hall-1-front", "stop": "hall-2-front"},
            "features": features, "silent_label": silent_label,
            "shots": shots and str(Path(shots).resolve()), "fail_shot": str(h.path("failure.png")),
            "deadline_s": 90 * TIMEOUT_SCALE, "profile_dir": str(h.dir),
        }
        # The site must be known before the page looks for it.
        from harness import site_targets
        wait_for(lambda: len(site_targets(srv, SITE)) >= 4 and site_targets(srv, OTHER_SITE),
                 90, "both sites reporting")

        node = subprocess.Popen(["node", str(Path(__file__).with_name("dashboard.mjs"))],
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
                print(f"ask: {msg}", flush=True)
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
        for k, v in features.items():
            if not v:
                print(f"SKIPPED (server lacks it): {k}")
        self.assertTrue(verdict["done"], verdict.get("error"))
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    main()
