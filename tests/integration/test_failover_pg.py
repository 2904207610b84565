#!/usr/bin/python3
"""Two collectors on one PostgreSQL (issue 13), an agent with both URLs: kill -9 of the
collector it uses while it uploads moves it to the other, and every seq is stored exactly
once; the first collector back on its port gets the agent again after failback_after.

    bash tests/tools/pg.sh /usr/bin/python3 tests/integration/test_failover_pg.py
"""

import os
import shutil
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (AGENT, SERVER, TIMEOUT_SCALE, IntegrationTest, main,  # noqa: E402
                     query, wait_for)
from harness import psql  # noqa: E402

SITE, ORG = "site-fo", "org-fo"


class FailoverPg(IntegrationTest):

    def test_kill_9_of_the_used_collector_moves_the_agent_and_stores_each_seq_once(self):
        h = self.h
        if not os.environ.get("VW_PG_DSN"):
            raise RuntimeError("no VW_PG_DSN: run under tests/tools/pg.sh")
        base = os.environ["VW_PG_DSN"]
        psql(f"{base} dbname=postgres", "CREATE DATABASE vw_fo")
        dsn = f"{base} dbname=vw_fo"
        store = f"""
[store]
backend = postgresql
dsn = {dsn}
password_file = {os.environ["VW_PG_PASSFILE"]}
"""
        sa, sb = h.path("srv-a"), h.path("srv-b")
        ca_conf = h.server_config(sa, name="a.ini", extra=store)
        h.ca_init(ca_conf)
        shutil.copytree(sa, sb)  # one CA and server certificate for both collectors
        a = h.start_server(ca_conf, sa)
        b = h.start_server(h.server_config(sb, name="b.ini", extra=store), sb)

        venue = h.path("venue")
        pki = {"ca": a.ca, "cert": venue / "pki" / "agent.crt",
               "key": venue / "pki" / "agent.key"}
        camera = f"rtsp://127.0.0.1:{h.closed_port()}/front"
        aconf = h.agent_config("agent.ini", SITE, ORG, venue, f"{a.url}, {b.url}", pki,
                               [("front", camera)], interval="1s", check_timeout="1s")
        text = Path(aconf).read_text().replace(
            "[collector]\n", "[collector]\nfailback_after = 3s\nbatch_max = 2\n")
        Path(aconf).write_text(text)
        token = h.run("enroll-token", [SERVER, "-c", a.conf, "enroll-token", "--site", SITE,
                                       "--org", ORG, "--city", "jinan"]).stdout().strip()
        h.run("agent-enroll", [AGENT, "-c", aconf, "enroll", "--token", token])
        agent = h.start_agent(aconf)

        def stored():
            rows, distinct = psql(
                dsn, "SELECT count(*), count(DISTINCT (r.epoch, r.seq)) FROM results r"
                     f" JOIN agents a ON a.id = r.agent_id WHERE a.site = '{SITE}'").split("|")
            return int(rows), int(distinct)

        wait_for(lambda: stored()[0] >= 5, 60 * TIMEOUT_SCALE, "5 results stored through A")
        a.proc.stop(sig=signal.SIGKILL)
        agent.wait_for_output(rf"event=collector_switch from={a.url} to={b.url}",
                              60 * TIMEOUT_SCALE)
        n = stored()[0]
        wait_for(lambda: stored()[0] >= n + 5, 60 * TIMEOUT_SCALE, "5 more results through B")

        # A back on its own port: after failback_after the agent uses it again.
        a2 = h.start_server(h.server_config(sa, port=a.port, name="a2.ini", extra=store), sa)
        agent.wait_for_output(rf"event=collector_switch to={a2.url} reason=failback",
                              60 * TIMEOUT_SCALE)
        agent.stop()
        rows, distinct = stored()
        self.assertEqual(rows, distinct, "an (epoch, seq) stored twice")
        mark = int(psql(dsn, "SELECT coalesce(max(e.high_seq), 0) FROM epochs e"
                             f" JOIN agents a ON a.id = e.agent_id WHERE a.site = '{SITE}'"))
        gaps = int(psql(dsn, "SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM seq_gaps"))
        self.assertEqual(rows + gaps, mark, "every seq up to the mark stored or a gap")
        held = query(venue / "outbox.db", "SELECT coalesce(min(seq), 0) FROM outbox")[0][0]
        # What the outbox still holds continues the stored seqs without a hole (a row at or
        # below the mark is one whose ack was in flight when the agent stopped: a resend).
        self.assertTrue(held == 0 or held <= mark + 1,
                        f"the outbox starts at {held}, the store ends at {mark}: seqs lost")


if __name__ == "__main__":
    main()
