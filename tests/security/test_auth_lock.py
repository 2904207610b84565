#!/usr/bin/python3
"""Nothing on the loop waits on auth.db's lock: while the sqlite3 CLI holds a write lock for
5 s, agents used for the first time post batches and people read /api/v1/sites; every request
is answered correctly, nothing is lost, and each agent's first use is on record once the lock
is gone (the worker waited it out; on the loop it would have stalled every connection for the
busy timeout and then given up). /healthz latency while the lock is held is printed, not
asserted: a busy machine must not fail this.

    /usr/bin/python3 tests/security/test_auth_lock.py [-k PATTERN]
"""

import http.client
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (ORG, IntegrationTest, batch, client_context, main,  # noqa: E402
                        people_token, query, request, wait_for)

AGENTS = 6
HOLD_S = 5  # how long the lock is held (issue 10 item 4), not a limit on anything


class AuthLock(IntegrationTest):

    def test_a_held_auth_db_lock_stalls_no_request_and_loses_nothing(self):
        h = self.h
        srv = h.setup_server()
        certs = [h.ca_issue(srv.conf, f"site-l{i}", ORG, city="jinan") for i in range(AGENTS)]
        token = people_token(h, srv, "province")
        db = srv.state_dir / "auth.db"
        self.assertEqual(query(db, "SELECT count(*) FROM agents")[0][0], 0)

        lock = subprocess.Popen(["sqlite3", str(db)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: lock.poll() is None and lock.kill())
        lock.stdin.write("BEGIN IMMEDIATE;\nSELECT 'locked';\n")
        lock.stdin.flush()
        self.assertEqual(lock.stdout.readline().strip(), "locked")

        errors, answered, health = [], {"ingest": 0, "sites": 0}, []
        stop = threading.Event()

        def agent(i):
            seq = 0
            while not stop.is_set():
                seq += 1
                st, body, _ = request(srv, "POST", "/api/v1/ingest",
                                      batch(f"site-l{i}", seq=seq), certs[i].cert, certs[i].key,
                                      timeout=60)
                if st != 200 or body.get("acked_seq") != seq:
                    errors.append(("ingest", i, seq, st, body))
                answered["ingest"] += 1
            answered[f"seq{i}"] = seq

        def reader():
            while not stop.is_set():
                st, body, _ = request(srv, "GET", "/api/v1/sites", token=token, timeout=60)
                if st != 200:
                    errors.append(("sites", st, body))
                answered["sites"] += 1

        threads = [threading.Thread(target=agent, args=(i,)) for i in range(AGENTS)]
        threads.append(threading.Thread(target=reader))
        for t in threads:
            t.start()
        # One keep-alive connection, so the figure is the loop's answer, not a handshake.
        hconn = http.client.HTTPSConnection("127.0.0.1", srv.port,
                                            context=client_context(srv), timeout=60)
        self.addCleanup(hconn.close)
        end = time.monotonic() + HOLD_S
        while time.monotonic() < end:
            t0 = time.monotonic()
            st, _, _ = request(srv, "GET", "/healthz", conn=hconn)
            health.append((time.monotonic() - t0) * 1000)
            if st != 200:
                errors.append(("healthz", st))
        # Still held: nothing the agents did was written to auth.db yet.
        self.assertEqual(query(db, "SELECT count(*) FROM agents")[0][0], 0)
        stop.set()
        for t in threads:
            t.join(120)
        lock.stdin.write("COMMIT;\n.quit\n")
        lock.stdin.flush()
        lock.wait(30)

        self.assertEqual(errors, [])
        self.assertGreater(answered["ingest"], AGENTS)
        self.assertGreater(answered["sites"], 0)
        # Nothing lost: every acknowledged result is stored.
        for i in range(AGENTS):
            rows = query(srv.db, "SELECT count(*) FROM results r JOIN agents a ON "
                         "a.id = r.agent_id WHERE a.site = ?", (f"site-l{i}",))
            self.assertEqual(rows[0][0], answered[f"seq{i}"], f"site-l{i}")
        # Each agent's first use is on record, once, after the lock went.
        wait_for(lambda: query(db, "SELECT count(*) FROM agents")[0][0] == AGENTS, 30,
                 "every agent's first use on record")
        health.sort()
        p99 = health[min(len(health) - 1, int(len(health) * 0.99))]
        print(f"\nauth.db locked {HOLD_S} s: /healthz n={len(health)} "
              f"p50={health[len(health) // 2]:.1f} ms p99={p99:.1f} ms max={health[-1]:.1f} ms; "
              f"ingest={answered['ingest']} sites={answered['sites']}", file=sys.stderr)


if __name__ == "__main__":
    main()
