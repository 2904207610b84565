#!/usr/bin/python3
"""A collector on PostgreSQL (issue 13): venuewatch-server with [store] backend = postgresql
on the throw-away PostgreSQL tests/tools/pg.sh started (VW_PG_DSN, VW_PG_PASSFILE), a real
agent enrolled and uploading. Every result the agent's outbox released is in PostgreSQL
exactly once, the mark is the agent's, and the site reads back through the API; the
password never shows in the server's output.

    bash tests/tools/pg.sh /usr/bin/python3 tests/integration/test_pg_collector.py
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (psql, AGENT, SERVER, TIMEOUT_SCALE, IntegrationTest, get_json,  # noqa: E402
                     main, query, site_targets, wait_for)

SITE, ORG = "site-pg", "org-pg"


class PgCollector(IntegrationTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not os.environ.get("VW_PG_DSN"):
            raise RuntimeError("no VW_PG_DSN: run under tests/tools/pg.sh")

    def test_agent_results_land_in_postgresql_once_and_read_back(self):
        h = self.h
        base = os.environ["VW_PG_DSN"]
        psql(f"{base} dbname=postgres", "CREATE DATABASE vw_collector")
        dsn = f"{base} dbname=vw_collector"
        state = h.path("srv")
        conf = h.server_config(state, extra=f"""
[store]
backend = postgresql
dsn = {dsn}
password_file = {os.environ["VW_PG_PASSFILE"]}
""")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        srv.proc.wait_for_output(r"event=store_open backend=postgresql", 10 * TIMEOUT_SCALE)

        venue = h.path("venue")
        pki = {"ca": srv.ca, "cert": venue / "pki" / "agent.crt",
               "key": venue / "pki" / "agent.key"}
        camera = f"rtsp://127.0.0.1:{h.closed_port()}/front"
        aconf = h.agent_config("agent.ini", SITE, ORG, venue, srv.url, pki, [("front", camera)],
                               interval="1s", check_timeout="1s")
        token = h.run("enroll-token", [SERVER, "-c", srv.conf, "enroll-token", "--site", SITE,
                                       "--org", ORG, "--city", "jinan"]).stdout().strip()
        h.run("agent-enroll", [AGENT, "-c", aconf, "enroll", "--token", token])
        agent = h.start_agent(aconf)

        def mark():
            v = psql(dsn, "SELECT coalesce(max(e.high_seq), 0) FROM epochs e"
                          f" JOIN agents a ON a.id = e.agent_id WHERE a.site = '{SITE}'")
            return int(v or 0)

        wait_for(lambda: mark() >= 10, 60 * TIMEOUT_SCALE, "10 results stored in PostgreSQL")
        agent.stop()
        # What the agent still holds was never acknowledged; everything below the mark is
        # in results, once each, with no hole the agent did not report.
        held = query(venue / "outbox.db", "SELECT coalesce(min(seq), 0) FROM outbox")[0][0]
        m = mark()
        self.assertTrue(held == 0 or held > m, f"the outbox holds {held}, at or below {m}")
        rows, distinct, top = psql(
            dsn, "SELECT count(*), count(DISTINCT (r.epoch, r.seq)), max(r.seq) FROM results r"
                 f" JOIN agents a ON a.id = r.agent_id WHERE a.site = '{SITE}'").split("|")
        gaps = int(psql(dsn, "SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM seq_gaps"))
        self.assertEqual(int(rows), int(distinct), "an (epoch, seq) stored twice")
        self.assertEqual(int(top), m)
        self.assertEqual(int(rows) + gaps, m, "every seq up to the mark stored or a gap")

        # The API reads the same store: the site and its camera, down (nothing listens).
        sites = get_json(srv, "/api/v1/sites")
        names = [s["site"] for s in sites.get("sites", sites if isinstance(sites, list) else [])]
        self.assertIn(SITE, names)
        targets = site_targets(srv, SITE)
        self.assertEqual(targets["front"]["status"], "down")

        srv.proc.stop()
        password = Path(os.environ["VW_PG_PASSFILE"]).read_text().strip().rsplit(":", 1)[1]
        self.assertNotIn(password, srv.proc.stderr() + srv.proc.stdout())


if __name__ == "__main__":
    main()
