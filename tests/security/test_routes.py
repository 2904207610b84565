#!/usr/bin/python3
"""The route table and the responses: 401/403/404/405 with Allow, HEAD for every GET, the
org role's scope, static files (ETag/304 without Content-Length, .gz, cache headers, SPA
fallback) with every traversal spelling and every dotfile refused, and the CSV export's BOM.

    /usr/bin/python3 tests/security/test_routes.py [-k PATTERN]
"""

import csv
import gzip
import http.client
import io
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (ORG, IntegrationTest, batch, cli, client_context, main,  # noqa: E402
                        people_token, request)


def raw(server, method, path, headers=None, token=None):
    """(status, body bytes, headers) without decoding: gzip and BOMs stay as sent."""
    conn = http.client.HTTPSConnection("127.0.0.1", server.port,
                                       context=client_context(server), timeout=10)
    try:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        conn.request(method, path, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()


class Routes(IntegrationTest):
    def setUp(self):
        super().setUp()
        h = self.h
        web = Path(h.path("web"))
        (web / "assets").mkdir(parents=True)
        (web / "index.html").write_text("<!doctype html><title>venuewatch</title>\n")
        self.app_js = b"console.log('venuewatch');\n" * 40
        (web / "assets" / "app.1a2b3c.js").write_bytes(self.app_js)
        (web / "assets" / "app.1a2b3c.js.gz").write_bytes(gzip.compress(self.app_js))
        (web / ".env").write_text("DB_PASSWORD=dotfile-secret\n")
        (web / ".git").mkdir()
        (web / ".git" / "config").write_text("[remote] url = dotfile-secret\n")
        (web / "assets" / ".app.js.swp").write_text("dotfile-secret\n")
        secret = Path(h.path("secret.txt"))
        secret.write_text("outside the root\n")
        os.symlink(secret, web / "link.txt")
        os.symlink(secret.parent, web / "up")
        state = h.path("srv")
        conf = h.server_config(state, name="srv.ini", extra=f"[web]\nroot = {web}\n")
        h.ca_init(conf)
        self.srv = srv = h.start_server(conf, state)
        for site, org, city in (("site-a", "org-a", "jinan"), ("site-b", "org-b", "jinan"),
                                ("site-q", "org-a", "qingdao")):
            pki = h.ca_issue(srv.conf, site, org, city=city)
            status, body, _ = request(srv, "POST", "/api/v1/ingest", batch(site), pki.cert,
                                      pki.key)
            self.assertEqual(status, 200, body)
        self.province = people_token(h, srv, "province")

    def org_token(self, org):
        p = cli(self.h, self.srv, "token", "create", "--role", "org", "--org", org, "--name",
                "org staff", name="token-org")
        return p.stdout().strip()

    def test_401_403_404_405_and_allow(self):
        srv = self.srv
        status, _, headers = request(srv, "GET", "/api/v1/sites")
        self.assertEqual(status, 401)
        self.assertEqual(headers.get("WWW-Authenticate"), 'Bearer realm="venuewatch"')
        status, _, headers = request(srv, "GET", "/api/v1/events")
        self.assertEqual(status, 401)
        public = people_token(self.h, srv, "public")
        self.assertEqual(request(srv, "GET", "/api/v1/sites", token=public)[0], 403)
        self.assertEqual(request(srv, "GET", "/api/v1/sites.csv", token=public)[0], 403)
        for path in ("/api/v1/nothing", "/api/v1/sites/..%2f", "/api", "/api/v1/sites/"):
            status, body, _ = request(srv, "GET", path, token=self.province)
            self.assertEqual(status, 404, (path, body))
        status, body, headers = request(srv, "POST", "/api/v1/sites", b"{}",
                                        token=self.province)
        self.assertEqual((status, headers.get("Allow")), (405, "GET, HEAD"), body)
        status, body, headers = request(srv, "GET", "/api/v1/ingest")
        self.assertEqual((status, headers.get("Allow")), (405, "POST"), body)
        status, body, headers = request(srv, "DELETE", "/healthz")
        self.assertEqual((status, headers.get("Allow")), (405, "GET, HEAD"), body)
        # The dashboard's paths take GET and HEAD only.
        status, _, headers = request(srv, "POST", "/index.html", b"x")
        self.assertEqual((status, headers.get("Allow")), (405, "GET, HEAD"))

    def test_head_is_get_without_a_body(self):
        srv = self.srv
        for path, token in (("/healthz", None), ("/api/v1/sites", self.province),
                            ("/api/v1/sites/site-a", self.province),
                            ("/api/v1/sites.csv", self.province), ("/", None),
                            ("/assets/app.1a2b3c.js", None)):
            gs, gbody, gh = raw(srv, "GET", path, token=token)
            hs, hbody, hh = raw(srv, "HEAD", path, token=token)
            self.assertEqual((gs, hs), (200, 200), path)
            self.assertEqual(hbody, b"", path)
            self.assertEqual(hh["Content-Length"], str(len(gbody)), path)
            self.assertEqual(hh["Content-Type"], gh["Content-Type"], path)
        # HEAD on the event stream: its head, then the connection ends.
        hs, hbody, hh = raw(srv, "HEAD", "/api/v1/events", token=self.province)
        self.assertEqual((hs, hbody, hh["Content-Type"]), (200, b"", "text/event-stream"))

    def test_org_token_reads_only_its_own_orgs_sites(self):
        srv = self.srv
        tok = self.org_token("org-a")
        status, body, _ = request(srv, "GET", "/api/v1/sites", token=tok)
        self.assertEqual(status, 200, body)
        self.assertEqual(sorted(s["site"] for s in body["sites"]), ["site-a", "site-q"])
        self.assertEqual(request(srv, "GET", "/api/v1/sites/site-a", token=tok)[0], 200)
        # Another org's site answers exactly like a missing one.
        other = request(srv, "GET", "/api/v1/sites/site-b", token=tok)
        missing = request(srv, "GET", "/api/v1/sites/site-zz", token=tok)
        self.assertEqual((other[0], other[1]), (missing[0], missing[1]))
        self.assertEqual(other[0], 404)
        bad = cli(self.h, srv, "token", "create", "--role", "org", "--name", "x", check=False)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("--org is required", bad.stderr())

    def test_static_files_etag_gzip_cache_and_fallback(self):
        srv = self.srv
        status, body, h = raw(srv, "GET", "/")
        self.assertEqual(status, 200)
        self.assertIn(b"<title>venuewatch</title>", body)
        self.assertEqual(h["Content-Type"], "text/html; charset=utf-8")
        self.assertEqual(h["Cache-Control"], "no-cache")
        etag = h["ETag"]
        status, body, h2 = raw(srv, "GET", "/", {"If-None-Match": etag})
        self.assertEqual((status, body), (304, b""))
        self.assertEqual(h2["ETag"], etag)
        # RFC 9110 8.6: no Content-Length on a 304 (it would describe the 200's body).
        self.assertNotIn("Content-Length", h2)
        # The ETag names no inode (size and mtime, hashed).
        ino = os.stat(Path(self.h.path("web")) / "index.html").st_ino
        self.assertNotIn(f"{ino:x}", etag.strip('"').split("-"))
        self.assertNotIn(f"-{ino:x}", etag)
        self.assertEqual(raw(srv, "GET", "/", {"If-None-Match": '"other"'})[0], 200)
        # The precompressed sibling when the client takes gzip, the plain file otherwise.
        status, body, h = raw(srv, "GET", "/assets/app.1a2b3c.js",
                              {"Accept-Encoding": "gzip, deflate"})
        self.assertEqual((status, h.get("Content-Encoding")), (200, "gzip"))
        self.assertEqual(gzip.decompress(body), self.app_js)
        self.assertEqual(h["Vary"], "Accept-Encoding")
        self.assertIn("immutable", h["Cache-Control"])
        self.assertTrue(h["Content-Type"].startswith("text/javascript"))
        status, body, h = raw(srv, "GET", "/assets/app.1a2b3c.js",
                              {"Accept-Encoding": "gzip;q=0"})
        self.assertEqual((status, body, h.get("Content-Encoding")), (200, self.app_js, None))
        # The single-page app's own routes get index.html; a missing asset does not.
        status, body, h = raw(srv, "GET", "/venues/site-a")
        self.assertEqual(status, 200)
        self.assertIn(b"<title>venuewatch</title>", body)
        self.assertEqual(raw(srv, "GET", "/assets/missing.js")[0], 404)
        # A token in a dashboard page's URL is refused like anywhere else: it is logged.
        self.assertEqual(raw(srv, "GET", "/venues/site-a?access_token=vwt_" + "A" * 43)[0], 401)

    def test_traversal_and_symlinks_out_of_the_root_are_404(self):
        srv = self.srv
        for path in ("/..%2fsecret.txt", "/%2e%2e/secret.txt", "//etc/passwd", "/../secret.txt",
                     "/assets/..%2f..%2fsecret.txt", "/%2E%2E/%2E%2E/etc/passwd",
                     "/assets%5c..%5csecret.txt", "/a%00b", "/link.txt", "/up/secret.txt",
                     "/./index.html", "/assets/../index.html"):
            status, body, _ = raw(srv, "GET", path)
            self.assertEqual(status, 404, (path, body))
            self.assertNotIn(b"outside the root", body)

    def test_dotfiles_and_dot_directories_are_404(self):
        srv = self.srv
        for path in ("/.env", "/.git/config", "/assets/.app.js.swp", "/%2eenv", "/%2Egit/config",
                     "/.well-known/security.txt", "/assets/.", "/x/.env"):
            for method in ("GET", "HEAD"):
                status, body, _ = raw(srv, method, path)
                self.assertEqual(status, 404, (method, path, body))
                self.assertNotIn(b"dotfile-secret", body)
        # A name with a dot inside is an ordinary file.
        self.assertEqual(raw(srv, "GET", "/assets/app.1a2b3c.js")[0], 200)

    def test_csv_has_bom_and_is_scoped(self):
        srv = self.srv
        status, body, h = raw(srv, "GET", "/api/v1/sites.csv", token=self.province)
        self.assertEqual(status, 200)
        self.assertEqual(h["Content-Type"], "text/csv; charset=utf-8")
        self.assertEqual(h["Content-Disposition"], "attachment; filename=sites.csv")
        self.assertTrue(body.startswith(b"\xef\xbb\xbf"), body[:8])
        rows = list(csv.reader(io.StringIO(body[3:].decode("utf-8"), newline="")))
        self.assertEqual(rows[0][:3], ["site", "org", "city"])
        self.assertEqual(sorted(r[0] for r in rows[1:]), ["site-a", "site-b", "site-q"])
        jinan = people_token(self.h, srv, "city", city="qingdao")
        body = raw(srv, "GET", "/api/v1/sites.csv", token=jinan)[1]
        rows = list(csv.reader(io.StringIO(body[3:].decode("utf-8"), newline="")))
        self.assertEqual([r[0] for r in rows[1:]], ["site-q"])


if __name__ == "__main__":
    main()
