#!/usr/bin/python3
"""The agent's textfile metrics ([agent] metrics_file) read by real peers: promtool, the
Prometheus client library's text parser and node_exporter's textfile collector.

    /usr/bin/python3 tests/integration/test_agent_metrics.py [-k PATTERN]

One agent with a healthy camd camera and a closed port, a real collector that is stopped and
started again. See harness.py for the environment it needs.
"""

import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import AGENT, TIMEOUT_SCALE, IntegrationTest, main, wait_for  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

SITE, ORG, CITY = "site-m01", "org-m01", "city-01"
PROMTOOL = "/usr/bin/promtool"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
DEADLINE = 40  # upper bounds on a loaded 2-core machine, not expected durations

# Every family the agent writes (docs/METRICS.md "Agent"): a file without one is partial.
FAMILIES = {
    "venuewatch_agent_checks", "venuewatch_agent_check_duration_seconds",
    "venuewatch_agent_outbox_results", "venuewatch_agent_outbox_bytes",
    "venuewatch_agent_outbox_oldest_age_seconds", "venuewatch_agent_uploads",
    "venuewatch_agent_results_acked", "venuewatch_agent_results_dropped",
    "venuewatch_agent_cameras", "venuewatch_agent_uplink_connected",
    "venuewatch_agent_start_time_seconds", "venuewatch_agent_build_info",
}


def parse(text):
    """{family name: {(sample name, sorted label items): value}}, by the client library's
    parser (which raises on anything malformed), checked to hold every family."""
    fams = {}
    for f in text_string_to_metric_families(text):
        fams[f.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in f.samples}
    missing = FAMILIES - set(fams)
    if missing:
        raise AssertionError(f"families missing: {sorted(missing)}")
    return fams


def total(fams, family, sample, **labels):
    """The sum of family's samples named sample whose labels include labels."""
    return sum(v for (name, ls), v in fams[family].items()
               if name == sample and all(dict(ls).get(k) == w for k, w in labels.items()))


def promtool_check(text):
    """promtool check metrics on stdin: (exit code, its complaints)."""
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30 * TIMEOUT_SCALE)
    return p.returncode, (p.stdout + p.stderr).decode()


def _stream_rows(db):
    """Stream results waiting in the agent's outbox (its collector is unreachable here)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return c.execute("SELECT count(*) FROM outbox WHERE json_extract(body, '$.kind') = "
                         "'stream'").fetchone()[0]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class AgentMetrics(IntegrationTest):

    def _agent(self, interval="1s"):
        h = self.h
        _, cam_port = h.start_camd("ok")
        srv = h.setup_server()
        pki = h.ca_issue(srv.conf, SITE, ORG, city=CITY)
        textdir = h.path("textfile")
        textdir.mkdir()
        prom = textdir / "venuewatch-agent.prom"
        conf = h.agent_config("agent.ini", SITE, ORG, h.path("agent-state"), srv.url, pki, [
            ("front", f"rtsp://127.0.0.1:{cam_port}/ok"),
            ("back", f"rtsp://127.0.0.1:{h.closed_port()}/ok"),
        ], interval=interval,
            extra_agent=f"metrics_file = {prom}\nmetrics_interval = 1s")
        # A collector that comes back is found within a couple of seconds, not a minute.
        conf.write_text(conf.read_text().replace("[collector]\n", "[collector]\nretry_max = 2s\n"))
        agent = h.start_agent(conf)
        return srv, agent, prom

    def _read(self, prom, what, pred=lambda f: True):
        return wait_for(lambda: (f := parse(prom.read_text())) and pred(f) and f, DEADLINE, what)

    def test_metrics_file_follows_checks_outbox_and_uploads(self):
        h = self.h
        srv, agent, prom = self._agent()
        first = self._read(prom, "both cameras checked and an upload acked",
                           lambda f: total(f, "venuewatch_agent_cameras",
                                           "venuewatch_agent_cameras", status="unknown") == 0
                           and total(f, "venuewatch_agent_uploads", "venuewatch_agent_uploads_total",
                                     outcome="acked") > 0)
        text = prom.read_text()
        rc, out = promtool_check(text)
        self.assertEqual((rc, out), (0, ""), "promtool check metrics")
        # Readable by node_exporter's user; the state dir's files stay private.
        self.assertEqual(stat.S_IMODE(os.stat(prom).st_mode), 0o644)
        self.assertEqual(stat.S_IMODE(os.stat(h.path("agent-state", "outbox.db")).st_mode), 0o600)
        self.assertEqual(total(first, "venuewatch_agent_cameras", "venuewatch_agent_cameras",
                               status="ok"), 1)
        self.assertEqual(total(first, "venuewatch_agent_cameras", "venuewatch_agent_cameras",
                               status="down"), 1)
        self.assertGreater(total(first, "venuewatch_agent_check_duration_seconds",
                                 "venuewatch_agent_check_duration_seconds_count", kind="stream"), 0)
        checks = total(first, "venuewatch_agent_checks", "venuewatch_agent_checks_total")
        self._read(prom, "checks_total to grow over the next pass",
                   lambda f: total(f, "venuewatch_agent_checks",
                                   "venuewatch_agent_checks_total") > checks)

        # Collector away: results wait in the outbox, its age grows, uploads fail.
        port = srv.port
        srv.proc.stop()
        away = self._read(prom, "outbox depth > 0 and a failed upload while the collector is away",
                          lambda f: total(f, "venuewatch_agent_outbox_results",
                                          "venuewatch_agent_outbox_results") > 0
                          and total(f, "venuewatch_agent_uploads", "venuewatch_agent_uploads_total",
                                    outcome="transport_error") > 0
                          and total(f, "venuewatch_agent_outbox_oldest_age_seconds",
                                    "venuewatch_agent_outbox_oldest_age_seconds") > 0)
        self.assertEqual(total(away, "venuewatch_agent_uplink_connected",
                               "venuewatch_agent_uplink_connected"), 0)
        acked = total(away, "venuewatch_agent_uploads", "venuewatch_agent_uploads_total",
                      outcome="acked")

        # Back on the same port: the backlog is acknowledged and the gauges return to 0.
        conf2 = h.server_config(srv.state_dir, port=port, name="srv-restarted.ini")
        h.start_server(conf2, srv.state_dir)
        back = self._read(prom, "outbox drained and uploads acked after the collector returned",
                          lambda f: total(f, "venuewatch_agent_outbox_results",
                                          "venuewatch_agent_outbox_results") == 0
                          and total(f, "venuewatch_agent_uploads", "venuewatch_agent_uploads_total",
                                    outcome="acked") > acked)
        self.assertEqual(total(back, "venuewatch_agent_outbox_oldest_age_seconds",
                               "venuewatch_agent_outbox_oldest_age_seconds"), 0)
        self.assertGreater(total(back, "venuewatch_agent_results_acked",
                                 "venuewatch_agent_results_acked_total"), 0)
        self.assertEqual(agent.stop(), 0, "agent exit code after SIGTERM")

    def test_readers_never_see_a_partial_file_and_node_exporter_serves_it(self):
        h = self.h
        _, _, prom = self._agent(interval="1s")
        self._read(prom, "the metrics file")
        # A reader polling during many rewrites: every read parses fully, has every family,
        # and every tenth passes promtool.
        seen, reads, errors = set(), [0], []
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                try:
                    text = prom.read_text()
                    parse(text)
                    if reads[0] % 10 == 0:
                        rc, out = promtool_check(text)
                        if rc or out:
                            raise AssertionError(out)
                    seen.add(os.stat(prom).st_ino)
                    reads[0] += 1
                except Exception as e:  # noqa: BLE001 - recorded and reported below
                    errors.append(repr(e))
                    return

        t = threading.Thread(target=reader)
        t.start()
        try:
            wait_for(lambda: errors or (len(seen) >= 8 and reads[0] >= 50), DEADLINE,
                     "8 rewrites of the file seen by the reader")
        finally:
            stop.set()
            t.join()
        self.assertEqual(errors, [], "a read of the metrics file")

        port = free_port()
        ne = h.start("node-exporter", [
            NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
            "--collector.textfile", f"--collector.textfile.directory={prom.parent}"])

        def scrape():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return r.read().decode()

        text = wait_for(lambda: (t := scrape()) and "venuewatch_agent_checks_total" in t and t,
                        DEADLINE, "our families in node_exporter's /metrics")
        self.assertTrue(ne.alive())
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        self.assertEqual(fams["node_textfile_scrape_error"].samples[0].value, 0)
        for name in FAMILIES:
            self.assertIn(name, fams, "family served by node_exporter")
        self.assertGreater(total({n: {(s.name, tuple(sorted(s.labels.items()))): s.value
                                      for s in f.samples} for n, f in fams.items()},
                                 "venuewatch_agent_checks", "venuewatch_agent_checks_total"), 0)

    def test_relative_metrics_file_is_a_config_error_with_file_and_line(self):
        h = self.h
        conf = h.agent_config("agent.ini", SITE, ORG, h.path("state"), "https://127.0.0.1:1",
                              {"ca": "ca.pem", "cert": "c.pem", "key": "k.pem"},
                              [("front", "rtsp://127.0.0.1:1/ok")],
                              extra_agent="metrics_file = node-exporter/venuewatch-agent.prom")
        p = h.run("check", [AGENT, "-c", conf, "--check-config"], check=False)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr(), rf"{re.escape(str(conf))}:1: \[agent\] metrics_file: "
                                     r"'node-exporter/venuewatch-agent.prom' must be an absolute")

    def test_unwritable_metrics_file_is_logged_once_and_checks_go_on(self):
        h = self.h
        missing = h.path("no-such-dir", "venuewatch-agent.prom")
        conf = h.agent_config("agent.ini", SITE, ORG, h.path("state"), "https://127.0.0.1:1",
                              {"ca": "ca.pem", "cert": "c.pem", "key": "k.pem"},
                              [("front", f"rtsp://127.0.0.1:{h.closed_port()}/ok")],
                              interval="1s",
                              extra_agent=f"metrics_file = {missing}\nmetrics_interval = 1s")
        agent = h.start_agent(conf)
        agent.wait_for_output(rf"level=warn event=metrics_write_failed file={re.escape(str(missing))}"
                              r" err=\".*No such file", DEADLINE)
        # Three camera checks, each followed by a rewrite tried: the agent goes on, and says
        # it once, not once a rewrite.
        wait_for(lambda: _stream_rows(h.path("state", "outbox.db")) >= 3, DEADLINE,
                 "three stream results in the outbox")
        self.assertTrue(agent.alive())
        self.assertEqual(agent.stderr().count("event=metrics_write_failed"), 1)


if __name__ == "__main__":
    main()
