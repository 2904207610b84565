#!/usr/bin/python3
"""An exam session created at the collector changes a running agent's cadence within one poll
interval (issue 11), and the agent keeps following it after a restart without the collector.

    /usr/bin/python3 tests/integration/test_session_cadence.py [-k PATTERN]

Needs the collector's exam sessions (POST /api/v1/sessions, GET /api/v1/agent/sessions).
"""

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (AGENT, IntegrationTest, https_request, main, query,  # noqa: E402
                     reader_token, wait_for)

SITE, ORG, CITY = "site-sc", "org-sc", "city-sc"
SHANGHAI = timezone(timedelta(hours=8))
CODE = "2026-cad-1"

# Outside sessions the camera is checked every 60 s, inside every 2 s: a handful of checks
# tagged with the session within a minute can only come from the session cadence.
INTERVAL_MS, SESSION_INTERVAL_MS, POLL_S = 60000, 2000, 3
LEAD_S = 15  # the session starts this long after it is created (changes only before start)
# Upper bounds on a loaded 2-core machine, not expected durations.
REPORT_DEADLINE = 40
POLL_DEADLINE = POLL_S + 30  # one poll interval plus a loaded machine's slack


def stream_rows(srv, target):
    """(ts_ms, session, metrics) of the target's stream results stored at the collector."""
    rows = query(srv.db, "SELECT ts_ms, session, metrics FROM results WHERE kind = 'stream' "
                 "AND target = ? ORDER BY ts_ms", (target,))
    return [(ts, sess or "", json.loads(m)) for ts, sess, m in rows]


def assert_cadence(test, metrics, interval_ms, ctx):
    """interval_ms is the camera's interval plus the check's own length (the next check starts
    an interval after this one ends): at least the interval, and less than the interval plus
    the 30 s that separate the two cadences here — whatever a loaded machine makes of a check."""
    got = metrics.get("interval_ms")
    test.assertIsNotNone(got, ctx)
    test.assertGreaterEqual(got, interval_ms, ctx)
    test.assertLess(got, interval_ms + INTERVAL_MS // 2, ctx)


class SessionCadence(IntegrationTest):

    def test_session_created_at_the_collector_changes_the_cadence(self):
        h = self.h
        _, cam_port = h.start_camd("ok")
        srv = h.setup_server()
        pki = h.ca_issue(srv.conf, SITE, ORG, city=CITY)
        state = h.path("agent-state")
        conf = h.agent_config("agent.ini", SITE, ORG, state, srv.url, pki,
                              [("front", f"rtsp://127.0.0.1:{cam_port}/ok", "A101")],
                              interval=f"{INTERVAL_MS // 1000}s",
                              extra_agent=f"session_interval = {SESSION_INTERVAL_MS // 1000}s")
        text = Path(conf).read_text().replace("[collector]\n",
                                              f"[collector]\nsessions_poll = {POLL_S}s\n", 1)
        Path(conf).write_text(text)
        agent = h.start_agent(conf)

        # The agent asked and followed the collector's (empty) set, and checked once.
        agent.wait_for_output(r"event=sessions_updated version=0 collector=0", REPORT_DEADLINE,
                              what="the agent's first sessions answer")
        first = wait_for(lambda: stream_rows(srv, "front"), REPORT_DEADLINE,
                         "the first stream result of front at the collector")
        self.assertEqual(first[0][1], "", first)
        assert_cadence(self, first[0][2], INTERVAL_MS, first)

        start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=LEAD_S)
        end = start + timedelta(minutes=10)
        body = {"site": SITE, "id": CODE, "occupation": "电工", "level": "四级",
                "start": start.astimezone(SHANGHAI).isoformat(),
                "end": end.astimezone(SHANGHAI).isoformat(), "rooms": ["A101"],
                "candidates": 30}
        st, reply = https_request(srv.port, srv.ca, "POST", "/api/v1/sessions", body,
                                  token=reader_token(srv))
        self.assertEqual(st, 201, reply)

        agent.wait_for_output(r"event=sessions_updated version=1 collector=1", POLL_DEADLINE,
                              what="the agent picking up the new session within a poll")

        # Without following the collector the camera's next check would be a minute away
        # and untagged; with it, checks come every 2 s from the session's start.
        def in_session():
            rows = [r for r in stream_rows(srv, "front") if r[1] == CODE]
            return rows if len(rows) >= 4 else None

        rows = wait_for(in_session, LEAD_S + REPORT_DEADLINE,
                        "four stream results of front tagged with the new session")
        start_ms = int(start.timestamp() * 1000)
        for ts, _, metrics in rows:
            self.assertGreaterEqual(ts, start_ms, rows)
            assert_cadence(self, metrics, SESSION_INTERVAL_MS, rows)
        gaps = [b[0] - a[0] for a, b in zip(rows, rows[1:])]
        # 2 s ± 10 % jitter plus a check's duration: far below the 60 s outside sessions.
        self.assertLess(max(gaps), INTERVAL_MS // 2, gaps)

        # Restart without the collector: the kept answer is followed from the start.
        agent.stop()
        srv.proc.stop()
        self.assertTrue((Path(state) / "sessions.json").exists())
        once = h.run("agent-once", [AGENT, "-c", conf, "--once"], timeout=60)
        self.assertIn("event=sessions_loaded", once.stderr())
        results = [json.loads(line) for line in once.stdout().splitlines() if line.strip()]
        front = [r for r in results if r.get("kind") == "stream" and r.get("target") == "front"]
        self.assertEqual(len(front), 1, results)
        self.assertEqual(front[0].get("session"), CODE, front)
        assert_cadence(self, front[0]["metrics"], SESSION_INTERVAL_MS, front)


if __name__ == "__main__":
    main()
