#!/usr/bin/python3
"""End to end: real cameras (camd), a real server and real agents on loopback.

    /usr/bin/python3 tests/integration/test_e2e.py [-k PATTERN]

Each test names the behaviour it proves. See harness.py for the environment it needs.
"""

import json
import re
import signal
import ssl
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (AGENT, SERVER, IntegrationTest, get_json, https_request,  # noqa: E402
                     main, make_self_signed, query, reader_token, site_targets, wait_for)

SITE, ORG, CITY = "site-001", "org-001", "city-01"
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")

# Deadlines. A check of a healthy camera takes ~window (2 s) plus connect; an agent with
# interval 2 s reports within a few seconds. These are upper bounds for a loaded 2-core
# machine, not expected durations.
REPORT_DEADLINE = 40
RECOVERY_DEADLINE = 60  # the agent's upload backoff after an outage, plus a check cycle


def streams(targets):
    return {name: t for name, t in targets.items() if t.get("kind") == "stream"}


class StatusFlow(IntegrationTest):
    """Cameras → agent → server → sites API."""

    def test_healthy_camera_is_ok_and_stopped_camera_is_down_unreachable(self):
        h = self.h
        _, cam_port = h.start_camd("ok")
        srv = h.setup_server()
        pki = h.ca_issue(srv.conf, SITE, ORG, city=CITY)
        closed = h.closed_port()
        conf = h.agent_config("agent.ini", SITE, ORG, h.path("agent-state"), srv.url, pki, [
            ("front", f"rtsp://127.0.0.1:{cam_port}/ok"),
            ("back", f"rtsp://127.0.0.1:{closed}/ok"),
        ])
        h.start_agent(conf)

        def settled():
            t = streams(site_targets(srv, SITE))
            front, back = t.get("front", {}), t.get("back", {})
            if front.get("status") == "ok" and back.get("status") == "down":
                return t
            return None

        targets = wait_for(settled, REPORT_DEADLINE, "front=ok and back=down in the site's API")
        front, back = targets["front"], targets["back"]
        self.assertEqual(front["faults"], [])
        self.assertEqual(front["metrics"].get("width"), 1280, front)
        self.assertEqual(front["metrics"].get("height"), 720, front)
        self.assertIn("unreachable", back["faults"], back)
        for t in (front, back):
            self.assertIsInstance(t["seq"], int)
            self.assertRegex(t["ts"], TS_RE)

        site = get_json(srv, f"/api/v1/sites/{SITE}")
        self.assertEqual(site["site"], SITE)

        def site_entry():
            sites = {s["site"]: s for s in get_json(srv, "/api/v1/sites")["sites"]}
            return sites.get(SITE)

        expected = {"ok": 1, "degraded": 0, "down": 1}
        entry = wait_for(lambda: (e := site_entry()) and e["cameras"] == expected and e,
                         REPORT_DEADLINE, f"GET /api/v1/sites to count {expected} for {SITE}")
        self.assertEqual(entry["org"], ORG)
        self.assertTrue(entry["last_report"], entry)

        status, _ = https_request(srv.port, srv.ca, "GET", "/api/v1/sites/no-such-site",
                                  token=reader_token(srv))
        self.assertEqual(status, 404)
        status, _ = https_request(srv.port, srv.ca, "GET", "/healthz")
        self.assertEqual(status, 200)


class Delivery(IntegrationTest):
    """Every result arrives exactly once, in seq order, across a server restart."""

    def _restart_server_mid_run(self, stop_signal):
        h = self.h
        _, cam_port = h.start_camd("ok")
        srv = h.setup_server()
        pki = h.ca_issue(srv.conf, SITE, ORG, city=CITY)
        agent_state = h.path("agent-state")
        conf = h.agent_config("agent.ini", SITE, ORG, agent_state, srv.url, pki, [
            ("front", f"rtsp://127.0.0.1:{cam_port}/ok"),
            ("back", f"rtsp://127.0.0.1:{h.closed_port()}/ok"),
        ], interval="1s")
        agent = h.start_agent(conf)

        def server_max_seq():
            return query(srv.db, "SELECT COALESCE(MAX(seq), 0) FROM results")[0][0]

        wait_for(lambda: server_max_seq() >= 4, REPORT_DEADLINE, "4 results stored by the server")

        # Stop the server; the agent keeps checking and buffers in its outbox meanwhile.
        port = srv.port
        rc = srv.proc.stop(sig=stop_signal)
        if stop_signal == signal.SIGTERM:
            self.assertEqual(rc, 0, "server exit code after SIGTERM")
        stored_before = server_max_seq()

        def outbox_max_seq():
            # The agent's outbox (DESIGN.md §3): results wait there, by seq, until acked.
            return query(agent_state / "outbox.db",
                         "SELECT COALESCE(MAX(seq), 0) FROM outbox")[0][0]

        buffered = wait_for(lambda: (n := outbox_max_seq()) >= stored_before + 3 and n,
                            REPORT_DEADLINE, "the agent to buffer results while the server is down")

        # Same state dir, same port (taken from the first run's log), so the agent finds it.
        conf2 = h.server_config(srv.state_dir, port=port, name="srv-restarted.ini")
        srv2 = h.start_server(conf2, srv.state_dir)
        self.assertEqual(srv2.port, port)
        wait_for(lambda: server_max_seq() > buffered, RECOVERY_DEADLINE,
                 f"results after seq {buffered} to arrive at the restarted server")

        self.assertEqual(agent.stop(), 0, "agent exit code after SIGTERM")
        dups = query(srv2.db, "SELECT agent_id, seq, COUNT(*) FROM results "
                              "GROUP BY agent_id, seq HAVING COUNT(*) > 1")
        self.assertEqual(dups, [], "(agent_id, seq) stored more than once")
        agents = query(srv2.db, "SELECT DISTINCT agent_id FROM results")
        self.assertEqual(len(agents), 1, agents)
        seqs = [r[0] for r in query(srv2.db, "SELECT seq FROM results ORDER BY seq")]
        missing = sorted(set(range(1, seqs[-1] + 1)) - set(seqs))
        self.assertEqual(missing, [], f"seqs missing from 1..{seqs[-1]}")
        self.assertEqual(seqs, list(range(1, seqs[-1] + 1)))
        # The site's view survived the restart.
        self.assertIn("front", site_targets(srv2, SITE))

    def test_server_restart_loses_and_duplicates_nothing(self):
        self._restart_server_mid_run(signal.SIGTERM)

    def test_server_crash_loses_and_duplicates_nothing(self):
        # SIGKILL: the server acknowledges only what it has committed, so a batch cut short by
        # the crash is resent and stored once.
        self._restart_server_mid_run(signal.SIGKILL)


class Identity(IntegrationTest):
    """Only an agent holding a certificate from the server's CA for its own site gets in."""

    def test_agents_without_valid_certificate_for_their_site_are_refused(self):
        h = self.h
        _, cam_port = h.start_camd("ok")
        cam = f"rtsp://127.0.0.1:{cam_port}/ok"
        srv = h.setup_server()
        good = h.ca_issue(srv.conf, SITE, ORG, city=CITY)
        other = h.ca_issue(srv.conf, "site-other", ORG, city=CITY)
        self_signed = make_self_signed(h, "pki-self", SITE)

        # A control agent proves the server takes results while the others try.
        h.start_agent(h.agent_config("good.ini", SITE, ORG, h.path("good-state"), srv.url, good,
                                     [("front", cam)]), name="agent-good")
        # Three impostors, all claiming SITE, each with cameras the real site does not have.
        nocert = {"ca": good.ca, "cert": h.path("missing", "agent.crt"),
                  "key": h.path("missing", "agent.key")}
        impostors = {}
        for name, pki in (("nocert", nocert),
                          ("selfsigned", {"ca": good.ca, "cert": self_signed.cert,
                                          "key": self_signed.key}),
                          ("othersite", other),
                          # trusts another CA: it refuses the collector, not the reverse
                          ("wrongca", {"ca": self_signed.cert, "cert": good.cert,
                                       "key": good.key})):
            conf = h.agent_config(f"{name}.ini", SITE, ORG, h.path(f"{name}-state"), srv.url,
                                  pki, [(f"evil-{name}", cam)])
            impostors[name] = h.start_agent(conf, name=f"agent-{name}")

        wait_for(lambda: site_targets(srv, SITE).get("front", {}).get("status") == "ok",
                 REPORT_DEADLINE, "the control agent's camera to be ok")
        # Each impostor has tried (logged an upload outcome) or given up (exited).
        for name, p in impostors.items():
            wait_for(lambda p=p: not p.alive() or re.search(r"event=upload_\w+", p.stderr()),
                     REPORT_DEADLINE, f"agent-{name} to attempt an upload")
        self.assertRegex(impostors["othersite"].stderr(), r"\b403\b",
                         "the other-site agent should log the server's 403")
        # How each failure is classified (issue 15.5: by curl's result code and the TLS alert
        # OpenSSL received, not by error text). Refused in the handshake (the collector's
        # alert names our certificate), by a key we cannot load, or by a 403: uploads stop.
        for name in ("selfsigned", "nocert", "othersite"):
            wait_for(lambda name=name: "event=upload_refused" in impostors[name].stderr(),
                     REPORT_DEADLINE, f"agent-{name} to stop uploading as refused")
        # The collector's certificate refused by the agent is no verdict on the agent: retry.
        wrongca = impostors["wrongca"].stderr()
        self.assertIn("event=upload_failed", wrongca)
        self.assertNotIn("event=upload_refused", wrongca)

        targets = site_targets(srv, SITE)
        evil = [t for t in targets if t.startswith("evil-")]
        self.assertEqual(evil, [], f"impostor results stored: {targets}")
        self.assertEqual(streams(site_targets(srv, "site-other")), {})
        sites = {s["site"]: s for s in get_json(srv, "/api/v1/sites")["sites"]}
        self.assertEqual(sum(sites[SITE]["cameras"].values()), 1,
                         f"only the control agent's camera counts: {sites[SITE]}")
        if "site-other" in sites:  # enrolled, so the server may list it, but with no cameras
            self.assertEqual(sum(sites["site-other"]["cameras"].values()), 0, sites["site-other"])

    def test_ingest_checks_the_client_certificate_directly(self):
        h = self.h
        srv = h.setup_server()
        # The batch names agent direct-1: so must its certificate (issue 10.2).
        own = h.ca_issue(srv.conf, "site-direct", ORG, city=CITY, agent="direct-1")
        other = h.ca_issue(srv.conf, "site-other", ORG, city=CITY)
        self_signed = make_self_signed(h, "pki-self", "site-direct")
        result = {"seq": 1, "ts": "2026-11-26T19:11:18.123Z", "mono_ms": 1000, "kind": "stream",
                  "target": "cam-direct", "status": "ok", "codec": "h264", "faults": [],
                  "metrics": {"width": 1280, "height": 720, "fps": 25}}
        batch = {"site": "site-direct", "agent": "direct-1", "results": [result]}

        def post(body, cert=None, key=None):
            return https_request(srv.port, srv.ca, "POST", "/api/v1/ingest", body, cert, key)

        status, body = post(batch)
        self.assertEqual(status, 401, f"no client certificate: {body!r}")

        # A certificate from another CA must not get in: refused in the handshake, or 401/403.
        try:
            status, body = post(batch, self_signed.cert, self_signed.key)
            self.assertIn(status, (401, 403), f"self-signed certificate: {body!r}")
        except (ssl.SSLError, ConnectionError):
            pass

        status, body = post(batch, other.cert, other.key)
        self.assertEqual(status, 403, f"site-other's certificate, batch for site-direct: {body!r}")

        status, body = post(batch, own.cert, own.key)
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"acked_seq": 1})
        # A resent batch is acknowledged again and not stored twice.
        status, body = post(batch, own.cert, own.key)
        self.assertEqual((status, body), (200, {"acked_seq": 1}))
        rows = query(srv.db, "SELECT COUNT(*) FROM results WHERE seq = 1")
        self.assertEqual(rows[0][0], 1)
        self.assertEqual(site_targets(srv, "site-direct")["cam-direct"]["status"], "ok")
        self.assertEqual(streams(site_targets(srv, "site-other")), {})


class AgentCli(IntegrationTest):
    """The agent's command line: --once and --check-config."""

    def _dummy_collector(self):
        # --once never uploads; the collector keys are required but their files are not read.
        d = self.h.path("dummy-pki")
        d.mkdir()
        for f in ("ca.crt", "agent.crt", "agent.key"):
            (d / f).write_text("")
        return {"ca": d / "ca.crt", "cert": d / "agent.crt", "key": d / "agent.key"}

    def test_once_prints_one_json_result_per_camera(self):
        h = self.h
        _, port = h.start_camd("ok", "auth", "audio")
        base = f"rtsp://127.0.0.1:{port}"
        cams = [
            ("front", f"{base}/ok"),
            ("locked", f"{base}/auth"),
            ("unlocked", f"rtsp://viewer:secret@127.0.0.1:{port}/auth"),
            ("mute", f"{base}/audio"),
            ("stopped", f"rtsp://127.0.0.1:{h.closed_port()}/ok"),
        ]
        conf = h.agent_config("once.ini", SITE, ORG, h.path("once-state"),
                              "https://127.0.0.1:9", self._dummy_collector(), cams)
        p = h.run("agent-once", [AGENT, "-c", conf, "--once"], timeout=60)

        results = {}
        for line in p.stdout().splitlines():
            r = json.loads(line)  # every line is one JSON object
            self.assertIsInstance(r, dict, line)
            for key in ("seq", "ts", "kind", "target", "status", "faults", "metrics"):
                self.assertIn(key, r, line)
            self.assertRegex(r["ts"], TS_RE)
            self.assertIn(r["status"], ("ok", "degraded", "down"))
            self.assertIsInstance(r["faults"], list)
            self.assertIsInstance(r["metrics"], dict)
            if r["kind"] == "stream":
                self.assertNotIn(r["target"], results, "one stream result per camera")
                results[r["target"]] = r
        self.assertEqual(sorted(results), sorted(c[0] for c in cams), p.stdout())
        seqs = [r["seq"] for r in results.values()]
        self.assertEqual(len(set(seqs)), len(seqs), "seqs are unique")

        def verdict(name):
            r = results[name]
            return r["status"], r["faults"]

        self.assertEqual(verdict("front"), ("ok", []), results["front"])
        self.assertEqual(results["front"].get("codec"), "h264")
        m = results["front"]["metrics"]
        self.assertEqual((m.get("width"), m.get("height")), (1280, 720), m)
        self.assertAlmostEqual(m.get("fps", 0), 25, delta=2.5, msg=m)
        self.assertEqual(verdict("unlocked"), ("ok", []), results["unlocked"])
        self.assertEqual(results["locked"]["status"], "down")
        self.assertIn("auth_failed", results["locked"]["faults"])
        self.assertEqual(results["mute"]["status"], "down")
        self.assertIn("no_video", results["mute"]["faults"])
        self.assertEqual(results["stopped"]["status"], "down")
        self.assertIn("unreachable", results["stopped"]["faults"])
        # Credentials never reach the output.
        self.assertNotIn("secret", p.stdout() + p.stderr())

    def test_check_config_reports_unknown_key_with_file_and_line(self):
        h = self.h
        good = h.agent_config("good.ini", SITE, ORG, h.path("s"), "https://127.0.0.1:9",
                              self._dummy_collector(), [("front", "rtsp://127.0.0.1:9/ok")])
        h.run("check-good", [AGENT, "-c", good, "--check-config"], timeout=30)

        lines = good.read_text().splitlines()
        at = lines.index("[collector]") + 1
        lines.insert(at, "colour = blue")
        bad = h.write("bad.ini", "\n".join(lines) + "\n")
        p = h.run("check-bad", [AGENT, "-c", bad, "--check-config"], timeout=30, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f"{bad}:{at + 1}", p.stderr())
        self.assertIn("colour", p.stderr())

    def test_example_configs_pass_check_config(self):
        repo = Path(__file__).resolve().parents[2]
        self.h.run("agent-example", [AGENT, "-c", repo / "config" / "agent.example.ini",
                                     "--check-config"], timeout=30)
        self.h.run("server-example", [SERVER, "-c", repo / "config" / "server.example.ini",
                                      "--check-config"], timeout=30)

    def test_server_check_config_reports_unknown_key_with_file_and_line(self):
        h = self.h
        h.path("srv").mkdir()
        good = h.server_config(h.path("srv"))
        h.run("srv-check-good", [SERVER, "-c", good, "--check-config"], timeout=30)
        bad = h.write("bad-server.ini", good.read_text() + "colour = blue\n")
        line = len(bad.read_text().splitlines())
        p = h.run("srv-check-bad", [SERVER, "-c", bad, "--check-config"], timeout=30, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f"{bad}:{line}", p.stderr())


if __name__ == "__main__":
    main()
