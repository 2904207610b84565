#!/usr/bin/python3
"""Agent epochs are bounded: a certificate cannot start new epochs at will. Each new epoch is
logged (a warning when the previous one stored results within the hour: a restored outbox or
a cloned machine), and past [limits] new_epochs_per_day in 24 h a batch opening one more is
refused with 403 and stores nothing (review of agent identity and epochs, D2).

    /usr/bin/python3 tests/security/test_epochs.py [-k PATTERN]
"""

import http.client
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (ORG, IntegrationTest, batch, client_context, log_count,  # noqa: E402
                        main, query, request)


def epoch_batch(site, epoch, seq=1):
    return dict(batch(site, seq), epoch=epoch)


class EpochLimit(IntegrationTest):

    def _post_all(self, srv, pki, bodies):
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port,
                                           context=client_context(srv, pki.cert, pki.key),
                                           timeout=10)
        try:
            return [request(srv, "POST", "/api/v1/ingest", b, conn=conn)[:2] for b in bodies]
        finally:
            conn.close()

    def _epochs(self, srv, site):
        return query(srv.db, "SELECT e.epoch FROM epochs e JOIN agents a ON a.id = e.agent_id"
                             " WHERE a.site = ? ORDER BY e.ord", (site,))

    def test_300_fresh_epochs_are_refused_after_the_daily_limit(self):
        h = self.h
        srv = h.setup_server()  # default [limits] new_epochs_per_day = 4
        pki = h.ca_issue(srv.conf, "site-ep", ORG, city="jinan")
        epochs = [secrets.token_hex(16) for _ in range(300)]
        replies = self._post_all(srv, pki, [epoch_batch("site-ep", e) for e in epochs])

        statuses = [s for s, _ in replies]
        self.assertEqual(statuses[:4], [200] * 4, replies[:4])
        self.assertEqual(statuses[4:], [403] * 296, [r for r in replies[4:] if r[0] != 403][:3])
        self.assertEqual(replies[4][1]["error"], "too many new epochs for this agent")
        self.assertIn("new_epochs_per_day", replies[4][1]["detail"])
        # Nothing of a refused batch is kept: four epochs, four rows.
        self.assertEqual(self._epochs(srv, "site-ep"), [(e,) for e in epochs[:4]])
        self.assertEqual(query(srv.db, "SELECT count(*) FROM results"), [(4,)])

        srv.proc.wait_for_output(r"event=ingest_refused peer=127\.0\.0\.1:\d+ site=site-ep "
                                 rf"agent=site-ep epoch={epochs[-1]} reason=epoch_limit", 10)
        self.assertEqual(log_count(srv, r"event=ingest_refused .*reason=epoch_limit"), 296)
        self.assertEqual(log_count(srv, r"event=agent_epoch_refused .*reason=epoch_limit "
                                        r"new_epochs_24h=4 limit=4"), 296)
        # Each new epoch logged once, with its ord and the one before; from the second on a
        # warning, since the previous epoch stored a result moments ago.
        self.assertEqual(log_count(srv, r"level=info event=agent_epoch_new site=site-ep "
                                        rf"agent=site-ep epoch={epochs[0]} ord=1 prev_ord=-$"),
                         1)
        for i in range(1, 4):
            self.assertEqual(log_count(srv, r"level=warn event=agent_epoch_new site=site-ep "
                                            rf"agent=site-ep epoch={epochs[i]} ord={i + 1} "
                                            rf"prev_ord={i} .*cloned machine"), 1)
        self.assertEqual(log_count(srv, r"event=agent_epoch_new"), 4)

        # The epochs it has keep working; another agent is not held back by this one's.
        ok = self._post_all(srv, pki, [epoch_batch("site-ep", epochs[0], seq=2)])
        self.assertEqual(ok[0][0], 200, ok)
        self.assertEqual(ok[0][1], {"acked_seq": 2, "epoch": epochs[0]})
        other = h.ca_issue(srv.conf, "site-ep2", ORG, city="jinan")
        ok = self._post_all(srv, other, [epoch_batch("site-ep2", secrets.token_hex(16))])
        self.assertEqual(ok[0][0], 200, ok)

    def test_the_limit_is_configurable(self):
        h = self.h
        state = h.path("srv1")
        conf = h.server_config(state, name="srv1.ini", extra="[limits]\nnew_epochs_per_day = 1\n")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        pki = h.ca_issue(srv.conf, "site-one", ORG, city="jinan")
        replies = self._post_all(srv, pki, [epoch_batch("site-one", secrets.token_hex(16))
                                            for _ in range(3)])
        self.assertEqual([s for s, _ in replies], [200, 403, 403], replies)
        self.assertEqual(log_count(srv, r"event=agent_epoch_refused .*new_epochs_24h=1 "
                                        r"limit=1"), 2)


if __name__ == "__main__":
    main()
