#!/usr/bin/env python3
"""The collector's GET /metrics (issue 14), read by a real peer: promtool checks the
exposition; the values move after an upload (batches, results, the ack histogram), after a
client the TLS handshake refuses (refusals by reason) and while an event stream is open (the
subscriber gauge). Access: no token 401, a city token 403, the metrics token 200 (and 403 on
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
        conf = h.server_config(state, extra=f"\n[metrics]\nallow = {ALLOWED}, ::1\n")
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
        batch = {"site": "site-m", "agent": "m-1", "results": [result]}
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
