#!/usr/bin/python3
"""The collector's PostgreSQL goes away during ingest and comes back (issue 13).

A real agent uploads to a collector on the throw-away PostgreSQL of tests/tools/pg.sh; the
database is stopped (pg_ctl stop -m fast) while results flow, held down longer than the feed's
silent_after, and started again. While it is away the collector keeps serving: /healthz and
reads answer at once, 503 with Retry-After; ingest answers 503 and the agent keeps its results.
When it is back the collector reconnects by itself, the agent's backlog lands, every seq is
stored exactly once, and the outage opened no site_silent problem: the site never went quiet,
our database did.

    bash tests/tools/pg.sh /usr/bin/python3 tests/integration/test_pg_outage.py
"""

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (psql, AGENT, SERVER, TIMEOUT_SCALE, IntegrationTest, main, query,  # noqa: E402
                     reader_token, wait_for)

SITE, ORG = "site-outage", "org-pg"
SILENT_AFTER_S = 10


def pg_ctl(*args):
    subprocess.run([os.environ["VW_PG_CTL"], *args], check=True, capture_output=True,
                   timeout=120 * TIMEOUT_SCALE, stdin=subprocess.DEVNULL)


def get(srv, path, token=None):
    """(status, JSON body or text, headers) of one GET; the timeout is the proof that an
    answer came without waiting on the database."""
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx,
                                       timeout=10 * TIMEOUT_SCALE)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        r = conn.getresponse()
        raw = r.read().decode()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        return r.status, body, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


class PgOutage(IntegrationTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not os.environ.get("VW_PG_DSN") or not os.environ.get("VW_PG_CTL"):
            raise RuntimeError("no VW_PG_DSN / VW_PG_CTL: run under tests/tools/pg.sh")

    def test_database_restart_during_ingest_loses_nothing_and_opens_no_silence(self):
        h = self.h
        base = os.environ["VW_PG_DSN"]
        psql(f"{base} dbname=postgres", "CREATE DATABASE vw_outage")
        dsn = f"{base} dbname=vw_outage"
        state = h.path("srv")
        conf = h.server_config(state, extra=f"""
[store]
backend = postgresql
dsn = {dsn}
password_file = {os.environ["VW_PG_PASSFILE"]}

[feed]
silent_after = {SILENT_AFTER_S}s
""")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        srv.proc.wait_for_output(r"event=store_open backend=postgresql", 10 * TIMEOUT_SCALE)
        token = reader_token(srv)

        venue = h.path("venue")
        pki = {"ca": srv.ca, "cert": venue / "pki" / "agent.crt",
               "key": venue / "pki" / "agent.key"}
        camera = f"rtsp://127.0.0.1:{h.closed_port()}/front"
        # retry_max 1s: the agent is back within a second of the database, so that a
        # site_silent after the outage could only come from the collector's own counting.
        aconf = h.agent_config("agent.ini", SITE, ORG, venue, srv.url, pki, [("front", camera)],
                               interval="1s", check_timeout="1s")
        aconf.write_text(aconf.read_text().replace("[collector]\n", "[collector]\nretry_max = 1s\n"))
        enroll = h.run("enroll-token", [SERVER, "-c", srv.conf, "enroll-token", "--site", SITE,
                                        "--org", ORG, "--city", "jinan"]).stdout().strip()
        h.run("agent-enroll", [AGENT, "-c", aconf, "enroll", "--token", enroll])
        agent = h.start_agent(aconf)

        def mark():
            v = psql(dsn, "SELECT coalesce(max(e.high_seq), 0) FROM epochs e"
                          f" JOIN agents a ON a.id = e.agent_id WHERE a.site = '{SITE}'")
            return int(v or 0)

        def outbox_top():
            return query(venue / "outbox.db", "SELECT coalesce(max(seq), 0) FROM outbox")[0][0]

        wait_for(lambda: mark() >= 5, 60 * TIMEOUT_SCALE, "5 results stored in PostgreSQL")
        status, _, _ = get(srv, "/healthz")
        self.assertEqual(status, 200)

        # --- the database goes away mid-ingest ---
        before = mark()
        pg_ctl("stop", "-m", "fast")
        down_at = time.monotonic()

        def healthz_down():
            st, body, hdr = get(srv, "/healthz")
            return (st, body, hdr) if st == 503 else None

        st, body, hdr = wait_for(healthz_down, 30 * TIMEOUT_SCALE, "/healthz answering 503")
        self.assertEqual(body["status"], "store_unavailable")
        self.assertFalse(body["store"]["up"])
        self.assertGreater(body["store"]["down_since_ms"], 0)
        self.assertGreaterEqual(int(hdr["retry-after"]), 1)
        self.assertNotIn(base.split()[0].split("=", 1)[1], json.dumps(body),
                         "/healthz names the database to anonymous callers")
        # Ingest: the agent's batches are refused with 503 and it keeps them.
        srv.proc.wait_for_output(r"event=ingest_failed site=site-outage .*error=-107",
                                 30 * TIMEOUT_SCALE, stream="stderr",
                                 what="an ingest answered 503 (store unavailable)")
        top_at_down = outbox_top()
        wait_for(lambda: outbox_top() >= top_at_down + 3, 30 * TIMEOUT_SCALE,
                 "the agent keeping new results while the database is away")
        # Reads answer at once, 503 + Retry-After, instead of hanging on the database.
        st, _, hdr = get(srv, "/api/v1/sites", token)
        self.assertEqual(st, 503)
        self.assertIn("retry-after", hdr)

        # Longer than silent_after: without care every site would be "silent" afterwards.
        left = SILENT_AFTER_S + 3 - (time.monotonic() - down_at)
        if left > 0:
            time.sleep(left)  # holds the outage; not an assertion
        # The agent is held still across the reconnect, so that the collector's first feed
        # tick with its database back sees the site's last batch from before the outage:
        # counted from that batch the site would be silent; counted from the reconnect, not.
        agent.send(signal.SIGSTOP)
        pg_ctl("start")

        # --- back: the collector reconnects by itself ---
        wait_for(lambda: get(srv, "/healthz")[0] == 200, 90 * TIMEOUT_SCALE,
                 "/healthz 200 again after the database came back")
        srv.proc.wait_for_output(r"event=store_reconnected backend=postgresql", 10 * TIMEOUT_SCALE)
        time.sleep(2)  # a couple of feed ticks (1 s) run; well inside silent_after
        agent.send(signal.SIGCONT)
        target = outbox_top()
        wait_for(lambda: mark() >= target, 60 * TIMEOUT_SCALE,
                 f"the backlog (to seq {target}) stored after the outage")
        self.assertGreater(target, before + 3)
        agent.stop()
        silent = int(psql(dsn, "SELECT count(*) FROM problems"
                               f" WHERE site = '{SITE}' AND kind = 'site'"))
        self.assertEqual(silent, 0, "the database's outage opened a site_silent problem")

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
        self.assertEqual(gaps, 0, "the outage left a hole in the seqs")
        srv.proc.stop()


if __name__ == "__main__":
    main()
