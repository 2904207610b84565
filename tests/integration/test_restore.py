#!/usr/bin/python3
"""An agent whose outbox.db is restored from a backup (or a VM snapshot revert) keeps its epoch
and an older next_seq: the collector already holds seqs of that epoch the restored copy never
handed out. Sent under it, every new result numbered up to the old mark would be skipped as a
resend and then released by the agent: a silent loss. The agent must draw a new epoch instead
and resend what it holds under it, so every result produced after the restore is stored
(review of agent identity and epochs, D1).

    /usr/bin/python3 tests/integration/test_restore.py [-k PATTERN]
"""

import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (AGENT, SERVER, IntegrationTest, main, query,  # noqa: E402
                     wait_for)

SITE, ORG = "site-rs", "org-rs"


class Restore(IntegrationTest):

    def _mark(self, srv, ord_):
        """The collector's high-water mark of the agent's epoch number ord_ (0 if unknown)."""
        rows = query(srv.db, "SELECT e.high_seq FROM epochs e JOIN agents a"
                             " ON a.id = e.agent_id WHERE a.site = ? AND e.ord = ?",
                     (SITE, ord_))
        return rows[0][0] if rows else 0

    def _seqs(self, srv, ord_):
        return [r[0] for r in query(srv.db, "SELECT r.seq FROM results r JOIN agents a"
                                            " ON a.id = r.agent_id WHERE a.site = ?"
                                            " AND r.epoch = ? ORDER BY r.seq", (SITE, ord_))]

    def _outbox_files(self, state):
        return [f for f in state.iterdir() if f.name.startswith("outbox.db")]

    def test_results_after_a_restore_are_stored_under_a_new_epoch(self):
        h = self.h
        srv = h.setup_server()
        state = h.path("venue")
        pki = {"ca": srv.ca, "cert": state / "pki" / "agent.crt",
               "key": state / "pki" / "agent.key"}
        camera = f"rtsp://127.0.0.1:{h.closed_port()}/front"
        conf = h.agent_config("agent.ini", SITE, ORG, state, srv.url, pki, [("front", camera)],
                              interval="1s", check_timeout="1s")
        token = h.run("enroll-token", [SERVER, "-c", srv.conf, "enroll-token", "--site", SITE,
                                       "--org", ORG, "--city", "jinan"]).stdout().strip()
        h.run("agent-enroll", [AGENT, "-c", conf, "enroll", "--token", token])
        outbox = state / "outbox.db"

        # Run, stop, back the outbox up.
        agent = h.start_agent(conf, name="agent-a")
        wait_for(lambda: self._mark(srv, 1) >= 5, 60, "the first results stored")
        agent.stop()
        backup = h.path("backup")
        backup.mkdir()
        for f in self._outbox_files(state):
            shutil.copy(f, backup / f.name)
        old_epoch = query(outbox, "SELECT id FROM epoch")[0][0]
        restored_next = query(outbox, "SELECT value FROM meta WHERE key = 'next_seq'")[0][0]
        held = query(outbox, "SELECT min(seq) FROM outbox")[0][0]

        # Run on well past the backup, stop: the collector's mark M is now ahead of it.
        agent = h.start_agent(conf, name="agent-b")
        wait_for(lambda: self._mark(srv, 1) >= restored_next + 10, 60,
                 "results stored after the backup")
        agent.stop()
        old_mark = self._mark(srv, 1)
        old_rows = self._seqs(srv, 1)

        # Restore the backup and run until next_seq passes the old mark.
        for f in self._outbox_files(state):
            f.unlink()
        for f in backup.iterdir():
            shutil.copy(f, state / f.name)
        agent = h.start_agent(conf, name="agent-c")
        wait_for(lambda: self._mark(srv, 2) > old_mark + 3, 90,
                 "results past the old mark stored under a new epoch")
        agent.stop()
        log = agent.stderr()

        self.assertNotIn("event=upload_refused", log)
        m = re.search(r"event=outbox_epoch_renewed old=(\w+) new=(\w+) reason=collector_ahead "
                      r"collector_mark=(\d+) next_seq=(\d+)", log)
        self.assertIsNotNone(m, "the renewal is logged")
        self.assertEqual(m.group(1), old_epoch)
        self.assertEqual(int(m.group(3)), old_mark)
        self.assertGreaterEqual(int(m.group(4)), restored_next)
        new_epoch = query(outbox, "SELECT id FROM epoch")[0][0]
        self.assertEqual(m.group(2), new_epoch)
        self.assertRegex(new_epoch, r"^[0-9a-f]{32}$")
        self.assertNotEqual(new_epoch, old_epoch)
        self.assertEqual(query(srv.db, "SELECT e.epoch FROM epochs e JOIN agents a"
                                       " ON a.id = e.agent_id WHERE a.site = ? AND e.ord = 2",
                               (SITE,)), [(new_epoch,)])

        # Every result produced after the restore (and every row the backup still held) is
        # stored under the new epoch, or still waits in the outbox: none was released unseen.
        first = held if held is not None else restored_next
        stored = self._seqs(srv, 2)
        mark = self._mark(srv, 2)
        self.assertEqual(stored, list(range(first, mark + 1)))
        pending = [r[0] for r in query(outbox, "SELECT seq FROM outbox ORDER BY seq")]
        # A row at or below the mark may still wait in the outbox: the agent was stopped
        # between the collector's commit and its own release of the acked rows. It is then
        # one the collector stored (a resend is skipped as a duplicate), never one it lacks.
        self.assertTrue(all(s > mark or s in stored for s in pending), (pending, mark))
        next_seq = query(outbox, "SELECT value FROM meta WHERE key = 'next_seq'")[0][0]
        self.assertEqual(sorted(set(stored) | set(pending)), list(range(first, next_seq)))
        # The new epoch's seqs below its first are a recorded gap, in the open.
        if first > 1:
            self.assertEqual(query(srv.db, "SELECT first_seq, last_seq FROM seq_gaps"
                                           " WHERE epoch = 2"), [(1, first - 1)])
        # The old epoch's history is kept as it was.
        self.assertEqual(self._seqs(srv, 1), old_rows)


if __name__ == "__main__":
    main()
