#!/usr/bin/python3
"""Several [collector] urls (issue 13): the first collector cannot be reached (nothing listens
on its port), so the agent moves to the second, says so in its log and its status, and the
second acknowledges its results. The network to the collector is then measured to the second
(the first being away says nothing of the venue's network): reachable, with collector_index 1.
Enrollment tries each url in turn while none answers; the first answer (a refusal too) is the
enrollment's, and says which collector gave it.

    VW_AGENT=... VW_SERVER=... /usr/bin/python3 tests/integration/test_failover.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (AGENT, SERVER, TIMEOUT_SCALE, IntegrationTest, main, query,  # noqa: E402
                     wait_for)

SITE, ORG = "site-fo", "org-fo"


class Failover(IntegrationTest):

    def test_an_unreachable_first_collector_sends_uploads_to_the_second(self):
        h = self.h
        srv = h.setup_server()
        pki = h.ca_issue(srv.conf, SITE, ORG)
        venue = h.path("venue")
        dead = f"https://127.0.0.1:{h.closed_port()}"
        camera = f"rtsp://127.0.0.1:{h.closed_port()}/front"
        aconf = h.agent_config("agent.ini", SITE, ORG, venue, f"{dead}, {srv.url}", pki,
                               [("front", camera)], interval="1s", check_timeout="1s")
        aconf.write_text(aconf.read_text().replace("[collector]\n",
                                                   "[collector]\nsessions_poll = 1s\n"))
        agent = h.start_agent(aconf)
        agent.wait_for_output(rf"event=collector_switch from={dead} to={srv.url}",
                              30 * TIMEOUT_SCALE)

        def status():
            return h.run("status", [AGENT, "-c", aconf, "status"]).stdout()

        wait_for(lambda: f"collector in use: {srv.url}" in status(), 30 * TIMEOUT_SCALE,
                 "status names the second collector")
        wait_for(lambda: "upload to collector: ok" in status(), 30 * TIMEOUT_SCALE,
                 "the second collector acknowledged uploads")
        # The exam sessions come from the collector the results go to: the first answer
        # (kept in sessions.json) can only have come from the second.
        wait_for(lambda: (venue / "sessions.json").exists(), 30 * TIMEOUT_SCALE,
                 "the sessions fetched from the second collector")
        agent.wait_for_output(rf"event=network_probe_collector from={dead} to={srv.url}",
                              30 * TIMEOUT_SCALE)

        def measured():
            rows = query(srv.db, "SELECT status, json_extract(metrics, '$.collector_index'), faults, metrics"
                         " FROM results WHERE kind = 'network' AND target = 'collector'"
                         " ORDER BY id DESC LIMIT 1")
            return rows[0] if rows and rows[0][1] == 1 else None

        wait_for(measured, 60 * TIMEOUT_SCALE, "a network result measured to the second")
        # The second answers: reachable (ok, or degraded only by a loaded machine's delays).
        status, _, faults, metrics = measured()
        self.assertNotEqual(status, "down", (faults, metrics))

    def _token(self, srv, site):
        return self.h.run("enroll-token", [SERVER, "-c", srv.conf, "enroll-token", "--site", site,
                                           "--org", ORG, "--city", "jinan"]).stdout().strip()

    def _enroll_conf(self, urls, srv):
        h = self.h
        venue = h.path("venue-enroll")
        pki = {"ca": srv.ca, "cert": venue / "pki" / "agent.crt", "key": venue / "pki" / "agent.key"}
        camera = f"rtsp://127.0.0.1:{h.closed_port()}/front"
        return h.agent_config("enroll.ini", SITE, ORG, venue, urls, pki, [("front", camera)]), pki

    def test_enrollment_moves_past_an_unreachable_first_collector(self):
        h = self.h
        srv = h.setup_server()
        dead = f"https://127.0.0.1:{h.closed_port()}"
        conf, pki = self._enroll_conf(f"{dead}, {srv.url}", srv)
        p = h.run("enroll", [AGENT, "-c", conf, "enroll", "--token", self._token(srv, SITE)])
        self.assertRegex(p.stdout(), rf"enrolled site={SITE} serial=[0-9A-F]+ ")
        self.assertRegex(p.stderr(), rf"event=enroll_collector_failed url={dead} ")
        self.assertTrue(pki["cert"].exists() and pki["key"].exists())

    def test_a_refusal_is_final_and_names_the_collector(self):
        """The first collector answers (unknown token: it was made on the second), so the
        agent does not try the second with it, and says who refused and why."""
        h = self.h
        a = h.setup_server("a")
        # b shares a's CA (one [pki] dir, as a multi-collector install copies it)
        b_state = h.path("b")
        b_conf = h.server_config(b_state, name="b.ini", extra=f"[pki]\ndir = {a.state_dir / 'pki'}\n")
        b = h.start_server(b_conf, b_state)
        conf, pki = self._enroll_conf(f"{a.url}, {b.url}", a)
        p = h.run("enroll", [AGENT, "-c", conf, "enroll", "--token", self._token(b, SITE)],
                  check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f"the collector at {a.url} refused the enrollment (HTTP 403)", p.stderr())
        self.assertIn("known only to the collector that made it", p.stderr())
        self.assertFalse(pki["cert"].exists())
        # the token is unspent: b takes it
        conf2, _ = self._enroll_conf(f"{b.url}", a)
        p = h.run("enroll", [AGENT, "-c", conf2, "enroll", "--token", self._token(b, SITE)])
        self.assertRegex(p.stdout(), rf"enrolled site={SITE} ")


if __name__ == "__main__":
    main()
