#!/usr/bin/python3
"""The read API answers from the store's reader threads (asynchronous reads): a client that
leaves while its read runs costs nothing but that read, and a read made after an ingest was
acknowledged sees what that ingest stored. Real server, real TLS, real SQLite.

    /usr/bin/python3 tests/security/test_store_reads.py [-k PATTERN]
"""

import http.client
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (ORG, IntegrationTest, batch, client_context, main,  # noqa: E402
                        people_token, request)


class Reads(IntegrationTest):
    def setUp(self):
        super().setUp()
        h = self.h
        self.srv = srv = h.setup_server()
        self.pki = {}
        for site in ("site-1", "site-2", "site-3"):
            self.pki[site] = pki = h.ca_issue(srv.conf, site, ORG, city="jinan")
            status, body, _ = request(srv, "POST", "/api/v1/ingest", batch(site), pki.cert,
                                      pki.key)
            self.assertEqual(status, 200, body)
        self.token = people_token(h, srv, "province")

    def test_clients_that_leave_while_their_read_runs_do_not_hurt_the_server(self):
        srv = self.srv
        ctx = client_context(srv)
        for i in range(60):
            path = "/api/v1/sites" if i % 2 else "/api/v1/sites/site-2"
            raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
                      f"Authorization: Bearer {self.token}\r\n\r\n".encode())
            # Gone before the answer: the completion finds a connection without a socket.
            s.close()
        status, body, _ = request(srv, "GET", "/healthz")
        self.assertEqual((status, body), (200, {"status": "ok"}))
        status, body, _ = request(srv, "GET", "/api/v1/sites", token=self.token)
        self.assertEqual(status, 200, body)
        self.assertEqual([s["site"] for s in body["sites"]], ["site-1", "site-2", "site-3"])
        self.assertTrue(srv.proc.alive(), srv.proc.tail())
        self.assertNotRegex(srv.proc.stderr(), r"level=error")

    def test_a_read_after_an_ack_sees_the_acked_results(self):
        srv, pki = self.srv, self.pki["site-1"]
        ctx = client_context(srv, pki.cert, pki.key)
        agent = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)
        reader = http.client.HTTPSConnection("127.0.0.1", srv.port,
                                             context=client_context(srv), timeout=10)
        try:
            for seq in range(2, 62):
                status, body, _ = request(srv, "POST", "/api/v1/ingest", batch("site-1", seq),
                                          conn=agent)
                self.assertEqual(status, 200, body)
                self.assertEqual(body["acked_seq"], seq)
                status, body, _ = request(srv, "GET", "/api/v1/sites/site-1",
                                          token=self.token, conn=reader)
                self.assertEqual(status, 200, body)
                self.assertEqual(body["targets"][0]["seq"], seq, body)
        finally:
            agent.close()
            reader.close()


if __name__ == "__main__":
    main()
