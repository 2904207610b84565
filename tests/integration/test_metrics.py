#!/usr/bin/env python3
"""The collector's GET /metrics (issue 14), read by a real peer: promtool checks the
exposition; the values move after an upload (batches, results, the ack histogram), after a
client the TLS handshake refuses (refusals by reason) and while an event stream is open (the
subscriber gauge); sites by status and problems open follow a camera going down and coming back,
a second site and that site's silence. Access: no token 401, a city token 403, the metrics token 200 (and 403 on
/api/v1/sites), a [metrics] allow address without a token 200, any other address 401."""

import http.client
import os
import re
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SERVER, TIMEOUT_SCALE, IntegrationTest, exchange, https_request,  # noqa: E402
                     main, make_self_signed, reader_token, wait_for)

PROMTOOL = "/usr/bin/promtool"
ORG, CITY = "org-m", "city-m"
# The allow list names a second loopback address, so the same machine is both an allowed
# and a refused scraper (Linux routes all of 127/8 to lo).
ALLOWED = "127.0.0.2"


def token(server, role, **kw):
    argv = [SERVER, "-c", str(server.conf), "token", "create", "--role", role, "--name", role]
    for k, v in kw.items():
        argv += [f"--{k}", v]
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=60 * TIMEOUT_SCALE)
    if out.returncode != 0 or not out.stdout.startswith("vwt_"):
        raise AssertionError(f"token create --role {role} failed: {out.stderr}")
    return out.stdout.strip()


def scrape(server, tok=None, source=None):
    """(status, body text, Content-Type) of GET /metrics, from source (an address) if given."""
    ctx = ssl.create_default_context(cafile=str(server.ca))
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx,
                                       timeout=10 * TIMEOUT_SCALE,
                                       source_address=(source, 0) if source else None)
    try:
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        status, body, hdrs = exchange(conn, "GET", "/metrics", headers=headers)
        ctype = {k.lower(): v for k, v in hdrs.items()}.get("content-type", "")
        return status, body if isinstance(body, str) else repr(body), ctype
    finally:
        conn.close()


def value(text, series):
    """The value of one series, named exactly as exposed (name{labels}), or None."""
    m = re.search(r"^" + re.escape(series) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


class MetricsTest(IntegrationTest):
    def test_metrics_scrape_access_and_values(self):
        h = self.h
        state = h.path("srv")
        # silent_after counts in the cadence each site's batches carry: site-m says an hour,
        # site-q a second, so only site-q falls silent while the test runs.
        conf = h.server_config(state, extra=f"\n[metrics]\nallow = {ALLOWED}, ::1\n"
                                            "\n[feed]\nsilent_after = 3x\n")
        h.ca_init(conf)
        srv = h.start_server(conf, state)
        mtok = token(srv, "metrics")

        def text():
            status, body, ctype = scrape(srv, mtok)
            self.assertEqual(status, 200, body)
            self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
            return body

        # --- access ---
        self.assertEqual(scrape(srv)[0], 401, "no token")
        self.assertEqual(scrape(srv, token(srv, "city", city=CITY))[0], 403, "a city token")
        self.assertEqual(scrape(srv, reader_token(srv))[0], 403, "a province token")
        status, body = https_request(srv.port, srv.ca, "GET", "/api/v1/sites", token=mtok)
        self.assertEqual(status, 403, f"the metrics token on the sites API: {body!r}")
        status, body, _ = scrape(srv, source=ALLOWED)
        self.assertEqual(status, 200, f"an allowed address without a token: {body!r}")
        # A credential is judged as such even from an allowed address.
        self.assertEqual(scrape(srv, "vwt_" + "A" * 43, source=ALLOWED)[0], 401)

        # --- promtool, a peer we did not write, on the exposition as scraped ---
        first = text()
        chk = subprocess.run([PROMTOOL, "check", "metrics"], input=first, capture_output=True,
                             text=True, timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(chk.returncode, 0, f"promtool: {chk.stdout}{chk.stderr}\n{first}")
        self.assertEqual(value(first, "venuewatch_server_build_info{version=\"0.1.0\"}"), 1)
        stored0 = value(first, 'venuewatch_server_ingest_batches_total{outcome="stored"}')
        self.assertEqual(stored0, 0)

        # --- an upload moves the ingest families ---
        own = h.ca_issue(srv.conf, "site-m", ORG, city=CITY, agent="m-1")
        result = {"seq": 1, "ts": "2026-11-26T19:11:18.123Z", "mono_ms": 1000, "kind": "stream",
                  "target": "cam-m", "status": "ok", "codec": "h264", "faults": [],
                  "metrics": {"width": 1280, "height": 720, "fps": 25}}
        batch = {"site": "site-m", "agent": "m-1", "cadence_ms": 3600_000, "results": [result]}
        for _ in range(2):  # the second is a resend: a duplicate, not stored again
            status, body = https_request(srv.port, srv.ca, "POST", "/api/v1/ingest", batch,
                                         own.cert, own.key)
            self.assertEqual(status, 200, body)
        status, _ = https_request(srv.port, srv.ca, "POST", "/api/v1/ingest", "{not json",
                                  own.cert, own.key)
        self.assertEqual(status, 400)
        after = text()
        self.assertEqual(value(after, 'venuewatch_server_ingest_batches_total{outcome="stored"}'),
                         2, after)
        self.assertEqual(
            value(after, 'venuewatch_server_ingest_batches_total{outcome="invalid"}'), 1)
        self.assertEqual(
            value(after, 'venuewatch_server_ingest_results_total{outcome="stored"}'), 1)
        self.assertEqual(
            value(after, 'venuewatch_server_ingest_results_total{outcome="duplicate"}'), 1)
        self.assertEqual(value(after, "venuewatch_server_ingest_ack_seconds_count"), 2)
        self.assertEqual(value(after, 'venuewatch_server_ingest_ack_seconds_bucket{le="+Inf"}'),
                         2)
        self.assertGreaterEqual(value(after, "venuewatch_server_store_commit_seconds_count"), 1)
        self.assertGreater(value(after, "venuewatch_server_connections_accepted_total"),
                           value(first, "venuewatch_server_connections_accepted_total"))

        # --- sites by status and problems open, counted by the store's writer ---
        def feed(sites, problems):
            """Waits until /metrics shows these sites by status and problems open (kind,
            severity) -> n, every other series 0; returns the text."""
            got = {}

            def check():
                body = text()
                got["body"] = body
                for st in ("ok", "degraded", "down", "silent"):
                    if value(body, f'venuewatch_server_sites{{status="{st}"}}') != \
                            sites.get(st, 0):
                        return False
                for kind in ("stream", "network", "recording", "coverage", "assessment",
                             "buffer", "site"):
                    for sev in ("minor", "major", "critical"):
                        series = (f'venuewatch_server_problems_open{{kind="{kind}",'
                                  f'severity="{sev}"}}')
                        if value(body, series) != problems.get((kind, sev), 0):
                            return False
                return True
            wait_for(check, 15 * TIMEOUT_SCALE,
                     f"sites {sites} and problems {problems} in /metrics")
            return got["body"]

        feed({"ok": 1}, {})
        seq = [1]

        def upload(site, agent, ident, status, faults, cadence_ms, target="cam-m"):
            seq[0] += 1
            r = dict(result, seq=seq[0], target=target, status=status, faults=faults)
            b = {"site": site, "agent": agent, "cadence_ms": cadence_ms, "results": [r]}
            st, body = https_request(srv.port, srv.ca, "POST", "/api/v1/ingest", b,
                                     ident.cert, ident.key)
            self.assertEqual(st, 200, body)

        upload("site-m", "m-1", own, "down", ["no_video"], 3600_000)
        feed({"down": 1}, {("stream", "major"): 1})
        upload("site-m", "m-1", own, "degraded", ["low_fps"], 3600_000, target="cam-n")
        feed({"down": 1}, {("stream", "major"): 1, ("stream", "minor"): 1})
        other = h.ca_issue(srv.conf, "site-q", ORG, city=CITY, agent="q-1")
        upload("site-q", "q-1", other, "ok", [], 1000)
        upload("site-m", "m-1", own, "ok", [], 3600_000)
        # site-q said a 1 s cadence and then nothing: silent after 3 s, and while it is, a
        # silent site is counted as silent only.
        feed({"degraded": 1, "silent": 1}, {("stream", "minor"): 1, ("site", "major"): 1})
        upload("site-m", "m-1", own, "ok", [], 3600_000, target="cam-n")
        upload("site-q", "q-1", other, "ok", [], 3600_000)
        feed({"ok": 2}, {})

        # --- a client certificate from another CA: refused in the handshake, counted ---
        evil = make_self_signed(h, "pki-evil", "site-m")
        try:
            https_request(srv.port, srv.ca, "POST", "/api/v1/ingest", batch, evil.cert, evil.key)
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        srv.proc.wait_for_output(r"event=tls_refused\b.*reason=self_signed", 10 * TIMEOUT_SCALE)
        refused = text()
        self.assertEqual(
            value(refused, 'venuewatch_server_tls_refusals_total{reason="self_signed"}'), 1,
            refused)
        self.assertGreaterEqual(
            value(refused, 'venuewatch_server_tls_handshakes_total{result="refused"}'), 1)

        # --- an open event stream is a subscriber ---
        self.assertEqual(value(refused, "venuewatch_server_sse_subscribers"), 0)
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10 * TIMEOUT_SCALE)
        sock = ssl.create_default_context(cafile=str(srv.ca)).wrap_socket(
            raw, server_hostname="127.0.0.1")
        try:
            sock.sendall((f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Authorization: Bearer {reader_token(srv)}\r\n"
                          f"Accept: text/event-stream\r\n\r\n").encode())
            wait_for(lambda: value(text(), "venuewatch_server_sse_subscribers") == 1,
                     10 * TIMEOUT_SCALE, "sse_subscribers 1 with a stream open")
        finally:
            sock.close()
        wait_for(lambda: value(text(), "venuewatch_server_sse_subscribers") == 0,
                 10 * TIMEOUT_SCALE, "sse_subscribers 0 once the stream closed")
        last = text()
        chk = subprocess.run([PROMTOOL, "check", "metrics"], input=last, capture_output=True,
                             text=True, timeout=60 * TIMEOUT_SCALE)
        self.assertEqual(chk.returncode, 0, f"promtool: {chk.stdout}{chk.stderr}\n{last}")


if __name__ == "__main__":
    main()
