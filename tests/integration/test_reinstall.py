#!/usr/bin/python3
"""A reinstalled venue machine (state dir lost, seq starts again at 1) continues under a new
agent epoch once it has enrolled again: its new results are stored (not skipped as resends,
not refused), and the site's history holds both runs (issue 10, item 2).

    /usr/bin/python3 tests/integration/test_reinstall.py [-k PATTERN]
"""

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (AGENT, SERVER, IntegrationTest, main, query,  # noqa: E402
                     site_targets, wait_for)

SITE, ORG = "site-re", "org-re"


class Reinstall(IntegrationTest):

    def _token(self, srv):
        p = self.h.run("enroll-token", [SERVER, "-c", srv.conf, "enroll-token", "--site", SITE,
                                        "--org", ORG, "--city", "jinan"])
        return p.stdout().strip()

    def _enroll(self, conf, token):
        return self.h.run("agent-enroll", [AGENT, "-c", conf, "enroll", "--token", token])

    def _rows(self, srv, ord_):
        """(count, min seq, max seq) of the site's results stored under epoch number ord_."""
        return query(srv.db, "SELECT count(*), min(r.seq), max(r.seq) FROM results r"
                             " JOIN agents a ON a.id = r.agent_id"
                             " WHERE a.site = ? AND a.agent = ? AND r.epoch = ?",
                     (SITE, SITE, ord_))[0]

    def test_reinstalled_agent_continues_under_a_new_epoch(self):
        h = self.h
        srv = h.setup_server()
        state = h.path("venue")
        pki = {"ca": srv.ca, "cert": state / "pki" / "agent.crt", "key": state / "pki" / "agent.key"}
        camera = f"rtsp://127.0.0.1:{h.closed_port()}/front"  # a camera that is down: results all the same
        conf = h.agent_config("agent.ini", SITE, ORG, state, srv.url, pki, [("front", camera)],
                              interval="1s", check_timeout="2s")

        # First life: enrolled, delivering.
        self._enroll(conf, self._token(srv))
        agent = h.start_agent(conf, name="agent-1")
        wait_for(lambda: self._rows(srv, 1)[0] >= 5, 60, "the first run's results stored")
        first_epoch = query(state / "outbox.db", "SELECT id FROM epoch")[0][0]
        self.assertRegex(first_epoch, r"^[0-9a-f]{32}$")
        agent.stop()
        first = self._rows(srv, 1)

        # Reinstall: the state dir (outbox, certificate, key) is gone; a new token, a new run.
        shutil.rmtree(state)
        out = self._enroll(conf, self._token(srv)).stdout()
        self.assertRegex(out, rf"enrolled site={SITE} serial=[0-9A-F]+ agent={SITE} ")
        agent = h.start_agent(conf, name="agent-2")
        wait_for(lambda: self._rows(srv, 2)[0] >= 5, 60, "the second run's results stored")
        second_epoch = query(state / "outbox.db", "SELECT id FROM epoch")[0][0]
        self.assertNotEqual(second_epoch, first_epoch)

        # The new run started again at 1 and was stored from there: nothing skipped.
        count, low, high = self._rows(srv, 2)
        self.assertEqual(low, 1)
        self.assertEqual(count, high, "every seq of the new run stored once")
        # The old run is kept, unchanged, and still the site's: one agent, two epochs.
        self.assertEqual(self._rows(srv, 1), first)
        marks = query(srv.db, "SELECT e.epoch, e.ord, e.high_seq FROM epochs e"
                              " JOIN agents a ON a.id = e.agent_id WHERE a.site = ?"
                              " ORDER BY e.ord", (SITE,))
        self.assertEqual([(m[0], m[1]) for m in marks], [(first_epoch, 1), (second_epoch, 2)])
        self.assertEqual(marks[0][2], first[2])
        self.assertEqual(query(srv.db, "SELECT count(*) FROM agents WHERE site = ?", (SITE,)),
                         [(1,)])
        self.assertEqual(query(srv.db, "SELECT count(*) FROM seq_gaps"), [(0,)])
        # Never refused, and the site's page shows the new run's latest result.
        self.assertNotIn("event=upload_refused", agent.stderr())
        wait_for(lambda: site_targets(srv, SITE).get("front", {}).get("seq", 0) >= 1, 30,
                 "the site page to show the camera")
        agent.stop()


if __name__ == "__main__":
    main()
