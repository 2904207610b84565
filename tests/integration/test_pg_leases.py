#!/usr/bin/python3
"""Singleton jobs under leases (issue 13): two real collectors on one PostgreSQL (the one
tests/tools/pg.sh started). Exactly one holds each lease; kill -9 of the holder moves every
lease to the other within TTL + renew; a holder stopped (SIGSTOP) past its TTL is replaced,
and once resumed (SIGCONT) it logs that it lost its leases and no longer detects silence.

    bash tests/tools/pg.sh /usr/bin/python3 tests/integration/test_pg_leases.py
"""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (psql, TIMEOUT_SCALE, IntegrationTest, https_request, main,  # noqa: E402
                     wait_for)
from test_metrics import ALLOWED, PROMTOOL, scrape, value  # noqa: E402

LEASES = ("feed", "notify", "rollup")
TTL_S, RENEW_S = 3, 1
# Take-over within TTL + renew by the lease's own clock; the deadline adds a busy machine's
# slack (the scale) on top, never a tighter bound.
TAKEOVER_S = (TTL_S + RENEW_S) * 5 * TIMEOUT_SCALE


def leases(srv):
    status, body = https_request(srv.port, srv.ca, "GET", "/healthz")
    if status != 200:
        raise AssertionError(f"/healthz -> {status}")
    return body["leases"]


def silent_site(dsn, site):
    """A site last heard 100 s ago at a 1 s cadence: silent at the next feed tick."""
    psql(dsn, "INSERT INTO feed_sites(site, org, city, last_batch_ms, cadence_ms) VALUES"
              f" ('{site}', 'org-l', 'jinan', (extract(epoch FROM now()) * 1000)::bigint"
              " - 100000, 1000)")


def site_problems(dsn, site):
    return int(psql(dsn, f"SELECT count(*) FROM problems WHERE kind = 'site' AND site = '{site}'"))


class PgLeases(IntegrationTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not os.environ.get("VW_PG_DSN"):
            raise RuntimeError("no VW_PG_DSN: run under tests/tools/pg.sh")

    def collector(self, name, dsn):
        h = self.h
        state = h.path(name)
        conf = h.server_config(state, name=f"{name}.ini", extra=f"""
[store]
backend = postgresql
dsn = {dsn}
password_file = {os.environ["VW_PG_PASSFILE"]}
lease_ttl = {TTL_S}s
lease_renew = {RENEW_S}s

[metrics]
allow = {ALLOWED}
""")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        m = srv.proc.wait_for_output(r"event=lease_holder holder=(\S+)", 10 * TIMEOUT_SCALE)
        srv.holder = m.group(1)
        return srv

    def assert_one_holder(self, a, b):
        la, lb = leases(a), leases(b)
        for name in LEASES:
            self.assertNotEqual(la[name], lb[name], f"lease {name}: {la} / {lb}")

    def test_one_holder_and_take_over_after_kill_and_stop(self):
        base = os.environ["VW_PG_DSN"]
        psql(f"{base} dbname=postgres", "CREATE DATABASE vw_leases")
        dsn = f"{base} dbname=vw_leases"
        one = self.collector("one", dsn)
        two = self.collector("two", dsn)
        # The first started holds every lease (taken in store_open); the second none.
        self.assertEqual(leases(one), {n: True for n in LEASES})
        self.assertEqual(leases(two), {n: False for n in LEASES})
        self.assert_one_holder(one, two)
        holders = psql(dsn, "SELECT DISTINCT holder FROM leases")
        self.assertEqual(holders, one.holder)
        silent_site(dsn, "s-1")
        wait_for(lambda: site_problems(dsn, "s-1") == 1, 30 * TIMEOUT_SCALE, "s-1 silent")
        self.assertRegex(one.proc.stderr(), r"event=site_silent site=s-1\b")
        self.assertNotRegex(two.proc.stderr(), r"event=site_silent site=s-1\b")

        # kill -9: nothing handed back; the other takes each over once it expires.
        one.proc.send(signal.SIGKILL)
        one.proc.wait(10 * TIMEOUT_SCALE)
        wait_for(lambda: leases(two) == {n: True for n in LEASES}, TAKEOVER_S,
                 "two takes every lease over")
        for name in LEASES:
            two.proc.wait_for_output(rf"event=lease_taken lease={name} holder=\S+ epoch=2",
                                     10 * TIMEOUT_SCALE)
        three = self.collector("three", dsn)
        self.assert_one_holder(two, three)

        # SIGSTOP the holder past its TTL: the other takes over at the next epoch.
        two.proc.send(signal.SIGSTOP)
        try:
            wait_for(lambda: leases(three) == {n: True for n in LEASES}, TAKEOVER_S,
                     "three takes every lease over from the stopped two")
            mark = len(two.proc.stderr())
            silent_site(dsn, "s-2")
        finally:
            two.proc.send(signal.SIGCONT)
        # Resumed: it learns it lost the leases (renewal refused, or fenced at its tick)...
        for name in ("feed", "notify"):
            two.proc.wait_for_output(
                rf"event=lease_lost lease={name} holder={re.escape(two.holder)} epoch=2",
                TAKEOVER_S)
        wait_for(lambda: site_problems(dsn, "s-2") == 1, 30 * TIMEOUT_SCALE, "s-2 silent")
        # ...and does not act: s-2's silence is three's alone, though two ticked meanwhile.
        wait_for(lambda: leases(two) == {n: False for n in LEASES}, TAKEOVER_S,
                 "two says it holds nothing")
        three.proc.wait_for_output(r"event=site_silent site=s-2\b", 10 * TIMEOUT_SCALE)
        self.assertNotRegex(two.proc.stderr()[mark:], r"event=site_silent")
        self.assertEqual(site_problems(dsn, "s-2"), 1)
        self.assert_one_holder(two, three)
        self.assertEqual(psql(dsn, "SELECT min(epoch) || ',' || max(epoch) FROM leases"), "3,3")
        # /metrics says the same, in a form promtool (a peer we did not write) accepts.
        for srv, want in ((two, 0), (three, 1)):
            status, text, _ = scrape(srv, source=ALLOWED)
            self.assertEqual(status, 200, text)
            chk = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                                 text=True, timeout=60 * TIMEOUT_SCALE)
            self.assertEqual(chk.returncode, 0, f"promtool: {chk.stdout}{chk.stderr}")
            for name in LEASES:
                self.assertEqual(value(text, f'venuewatch_server_lease_held{{name="{name}"}}'),
                                 want)


if __name__ == "__main__":
    main()
