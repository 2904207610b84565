#!/usr/bin/python3
"""Two collectors on one PostgreSQL (issue 13), an agent with both URLs: kill -9 of the
collector it uses while it uploads moves it to the other, and every seq is stored exactly
once; the first collector back on its port gets the agent again after failback_after. And a
collector whose database is away (its own path to PostgreSQL cut: a unix-socket relay) answers
503: the agent keeps its results while no collector takes them, and when the second comes up it
drains that backlog through it, each seq once.

    bash tests/tools/pg.sh /usr/bin/python3 tests/integration/test_failover_pg.py
"""

import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (AGENT, SERVER, TIMEOUT_SCALE, IntegrationTest, main,  # noqa: E402
                     query, wait_for)
from harness import psql  # noqa: E402

SITE, ORG = "site-fo", "org-fo"


class UnixRelay:
    """PostgreSQL's unix socket at another directory, as long as it is open: close() cuts every
    connection through it and refuses new ones, so one collector loses its database and the
    other (on the real socket) does not."""

    def __init__(self, real_dir, port, relay_dir):
        self.real = os.path.join(real_dir, f".s.PGSQL.{port}")
        os.makedirs(relay_dir, exist_ok=True)
        os.chmod(relay_dir, 0o755)
        self.path = os.path.join(relay_dir, f".s.PGSQL.{port}")
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.conns, self.lock, self.closed = [], threading.Lock(), False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.socket(socket.AF_UNIX)
            try:
                u.connect(self.real)
            except OSError:
                c.close()
                continue
            with self.lock:
                if self.closed:  # accepted while close() ran: no way through
                    c.close()
                    u.close()
                    return
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        # close() alone leaves a thread blocked in accept() with the socket still listening
        # (the kernel keeps it while the call runs): shutdown wakes it, unlink refuses new ones.
        with self.lock:
            if self.closed:
                return
            self.closed = True
        try:
            os.unlink(self.path)
        except OSError:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()


def dsn_field(dsn, key):
    return dict(kv.split("=", 1) for kv in dsn.split())[key]


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

    def test_a_503_collector_and_a_backlog_drained_through_the_other(self):
        h = self.h
        if not os.environ.get("VW_PG_DSN"):
            raise RuntimeError("no VW_PG_DSN: run under tests/tools/pg.sh")
        base = os.environ["VW_PG_DSN"]
        psql(f"{base} dbname=postgres", "CREATE DATABASE vw_fo503")
        dsn = f"{base} dbname=vw_fo503"
        rdir = tempfile.mkdtemp(prefix="vw-relay-")  # short: a unix socket path is <= 107 bytes
        self.addCleanup(shutil.rmtree, rdir, True)
        relay = UnixRelay(dsn_field(base, "host"), dsn_field(base, "port"), rdir)
        self.addCleanup(relay.close)
        a_dsn = dsn.replace(f"host={dsn_field(base, 'host')}", f"host={rdir}")
        # libpq's password file names the host: the relay's directory gets the same line
        real = dsn_field(base, "host").replace(":", "\\:")
        lines = Path(os.environ["VW_PG_PASSFILE"]).read_text().splitlines()
        a_pass = Path(rdir) / "pgpass"
        a_pass.write_text("\n".join(lines + [ln.replace(real, rdir, 1) for ln in lines
                                              if ln.startswith(real + ":")]) + "\n")
        a_pass.chmod(0o600)

        def store(d):
            pw = a_pass if d == a_dsn else os.environ["VW_PG_PASSFILE"]
            return f"""
[store]
backend = postgresql
dsn = {d}
password_file = {pw}
"""
        sa, sb = h.path("srv-a"), h.path("srv-b")
        a_conf = h.server_config(sa, name="a.ini", extra=store(a_dsn))
        h.ca_init(a_conf)
        shutil.copytree(sa, sb)  # one CA and server certificate for both collectors
        a = h.start_server(a_conf, sa)
        b_port = h.closed_port()  # b starts later, on this port
        b_url = f"https://127.0.0.1:{b_port}"

        venue = h.path("venue")
        pki = {"ca": a.ca, "cert": venue / "pki" / "agent.crt",
               "key": venue / "pki" / "agent.key"}
        camera = f"rtsp://127.0.0.1:{h.closed_port()}/front"
        aconf = h.agent_config("agent.ini", SITE, ORG, venue, f"{a.url}, {b_url}", pki,
                               [("front", camera)], interval="1s", check_timeout="1s")
        text = Path(aconf).read_text().replace(
            "[collector]\n", "[collector]\nfailback_after = 1h\nretry_max = 2s\n")
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

        def outbox():
            return query(venue / "outbox.db", "SELECT count(*) FROM outbox")[0][0]

        wait_for(lambda: stored()[0] >= 5, 60 * TIMEOUT_SCALE, "5 results stored through A")
        relay.close()  # A's database is away; A itself still answers
        agent.wait_for_output(rf"event=collector_switch from={a.url} to={b_url} reason=\"HTTP 503",
                              60 * TIMEOUT_SCALE)
        # Nobody takes results now (A 503, B not up): they stay in the outbox.
        wait_for(lambda: outbox() >= 20, 120 * TIMEOUT_SCALE, "a backlog of 20 results")
        held = stored()[0]
        b = h.start_server(h.server_config(sb, port=h.open_port(b_port), name="b.ini", extra=store(dsn)), sb)
        wait_for(lambda: outbox() == 0 or stored()[0] >= held + 20, 120 * TIMEOUT_SCALE,
                 "the backlog drained through B")
        agent.stop()
        self.assertIn("collector in use: " + b.url,
                      h.run("status", [AGENT, "-c", aconf, "status"]).stdout())
        rows, distinct = stored()
        self.assertEqual(rows, distinct, "an (epoch, seq) stored twice")
        self.assertGreaterEqual(rows, held + 20)
        mark = int(psql(dsn, "SELECT coalesce(max(e.high_seq), 0) FROM epochs e"
                             f" JOIN agents a ON a.id = e.agent_id WHERE a.site = '{SITE}'"))
        gaps = int(psql(dsn, "SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM seq_gaps"))
        self.assertEqual(gaps, 0, "a gap: results lost across the switch")
        self.assertEqual(rows, mark, "every seq up to the mark stored")


if __name__ == "__main__":
    main()
