#!/usr/bin/python3
"""Several [collector] urls (issue 13): the first collector cannot be reached (nothing listens
on its port), so the agent moves to the second, says so in its log and its status, and the
second acknowledges its results. The network to the collector is then measured to the second
(the first being away says nothing of the venue's network): reachable, with collector_index 1.

    VW_AGENT=... VW_SERVER=... /usr/bin/python3 tests/integration/test_failover.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import AGENT, TIMEOUT_SCALE, IntegrationTest, main, query, wait_for  # noqa: E402

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


if __name__ == "__main__":
    main()
