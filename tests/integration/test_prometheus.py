#!/usr/bin/env python3
"""A real Prometheus (Debian's prometheus 2.42, Go's TLS stack and its own parser) scrapes the
collector's GET /metrics over HTTPS as docs/zh-CN/bureau.md tells a bureau to configure it:
scheme https, the CA file, the metrics token from a credentials file. The target is up, our
families are queryable with the values an upload gave them, and a second job with a token the
collector never issued is down with the 401 in its lastError. Every query of the Grafana
dashboard in docs/grafana/ passes promtool and evaluates to series in that Prometheus."""

import json
import os
import socket
import subprocess
import sys
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (REPO, SERVER, TIMEOUT_SCALE, IntegrationTest, https_request, main,  # noqa: E402
                     wait_for)

PROMETHEUS = "/usr/bin/prometheus"


class PrometheusScrape(IntegrationTest):
    def test_prometheus_scrapes_metrics_over_tls_with_the_token(self):
        h = self.h
        state = h.path("srv")
        conf = h.server_config(state)
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        out = subprocess.run([SERVER, "-c", str(conf), "token", "create", "--role", "metrics",
                              "--name", "prometheus"], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(out.returncode, 0, out.stderr)
        good = h.write("metrics.token", out.stdout.strip() + "\n")
        bad = h.write("bad.token", "vwt_" + "B" * 43 + "\n")

        own = h.ca_issue(srv.conf, "site-p", "org-p", city="city-p", agent="p-1")
        result = {"seq": 1, "ts": "2026-11-26T19:11:18.123Z", "mono_ms": 1000, "kind": "stream",
                  "target": "cam-p", "status": "down", "codec": "h264", "faults": ["no_video"],
                  "metrics": {}}
        status, body = https_request(srv.port, srv.ca, "POST", "/api/v1/ingest",
                                     {"site": "site-p", "agent": "p-1", "results": [result]},
                                     own.cert, own.key)
        self.assertEqual(status, 200, body)

        with socket.socket() as s:  # a free port for Prometheus's own listener
            s.bind(("127.0.0.1", 0))
            web = s.getsockname()[1]
        jobs = []
        for name, tok in (("venuewatch", good), ("intruder", bad)):
            jobs.append(f"""
  - job_name: {name}
    scheme: https
    tls_config:
      ca_file: {srv.ca}
    authorization:
      credentials_file: {tok}
    static_configs:
      - targets: ["127.0.0.1:{srv.port}"]""")
        cfg = h.write("prometheus.yml", "global:\n  scrape_interval: 1s\n"
                      "  scrape_timeout: 1s\nscrape_configs:" + "".join(jobs) + "\n")
        chk = subprocess.run(["/usr/bin/promtool", "check", "config", str(cfg)],
                             capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(chk.returncode, 0, chk.stdout + chk.stderr)
        h.start("prometheus", [PROMETHEUS, f"--config.file={cfg}",
                               f"--storage.tsdb.path={h.path('tsdb')}",
                               f"--web.listen-address=127.0.0.1:{web}"])

        def api(path, **params):
            url = f"http://127.0.0.1:{web}/api/v1/{path}?" + urllib.parse.urlencode(params)
            try:
                with urllib.request.urlopen(url, timeout=5 * TIMEOUT_SCALE) as r:
                    return json.load(r)["data"]
            except OSError:
                return None  # not listening yet

        def sample(expr):
            d = api("query", query=expr)
            return float(d["result"][0]["value"][1]) if d and d["result"] else None

        wait_for(lambda: sample('up{job="venuewatch"}') == 1, 60 * TIMEOUT_SCALE,
                 "Prometheus scraping /metrics (up == 1)")
        wait_for(lambda: sample('venuewatch_server_problems_open{kind="stream",'
                                'severity="major"}') == 1, 30 * TIMEOUT_SCALE,
                 "the open problem in Prometheus")
        self.assertEqual(sample('venuewatch_server_sites{status="down"}'), 1)
        self.assertEqual(
            sample('venuewatch_server_ingest_results_total{outcome="stored"}'), 1)
        self.assertEqual(sample("venuewatch_server_ingest_ack_seconds_count"), 1)

        # The Grafana dashboard (docs/grafana/): every panel's query is valid PromQL that
        # promtool accepts and this Prometheus evaluates to series of ours (TLS refusals
        # excepted: none happened, so that family has no series yet).
        dash = json.loads((REPO / "docs" / "grafana" / "venuewatch-collector.json").read_text())
        exprs = [tg["expr"] for p in dash["panels"] for tg in p["targets"]]
        self.assertGreaterEqual(len(exprs), 10)
        rules = h.write("dashboard-rules.yml", "groups:\n  - name: dashboard\n    rules:\n" + "".join(
            f"      - record: dashboard:q{i}\n        expr: {json.dumps(e)}\n"
            for i, e in enumerate(exprs)))
        chk = subprocess.run(["/usr/bin/promtool", "check", "rules", str(rules)],
                             capture_output=True, text=True, timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(chk.returncode, 0, chk.stdout + chk.stderr)

        def evaluates(e):
            d = api("query", query=e)
            return d is not None and (bool(d["result"]) or "tls_refusals" in e)
        for e in exprs:
            wait_for(lambda: evaluates(e), 30 * TIMEOUT_SCALE, f"the dashboard's {e!r}")

        def intruder():
            d = api("targets")
            for t in (d or {}).get("activeTargets", []):
                if t["labels"].get("job") == "intruder" and t["health"] == "down":
                    return t["lastError"]
            return None
        wait_for(lambda: intruder() is not None, 30 * TIMEOUT_SCALE,
                 "the intruder job's target down")
        self.assertIn("401", intruder())
        self.assertEqual(sample('up{job="intruder"}'), 0)


if __name__ == "__main__":
    main()
