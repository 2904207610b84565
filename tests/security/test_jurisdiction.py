#!/usr/bin/python3
"""A site belongs to one org and one city: a second machine issued with a mistyped --city must
not move the site in and out of a city's view. `ca issue` and `enroll-token` refuse an org or
city that differs from the site's current certificates and pending tokens, naming them; and at
ingest a certificate whose O/L differ from the site's stored ones is refused with 403 (review
of agent identity and epochs, D3).

    /usr/bin/python3 tests/security/test_jurisdiction.py [-k PATTERN]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (ORG, SERVER, IntegrationTest, batch, cli, main, query,  # noqa: E402
                        request, sign_with_dates)


class Jurisdiction(IntegrationTest):

    def test_the_cli_refuses_another_city_or_org_for_a_site(self):
        h = self.h
        srv = h.setup_server()
        h.ca_issue(srv.conf, "site-j", ORG, city="jinan")
        serial = query(srv.state_dir / "auth.db", "SELECT serial FROM certs WHERE site = ?",
                       ("site-j",))[0][0]
        p = cli(h, srv, "ca", "issue", "--site", "site-j", "--agent", "m2", "--org", ORG,
                "--city", "jinnan", "--out", h.path("pki-typo"), check=False)
        self.assertEqual(p.returncode, 1, p.stderr())
        self.assertIn(f"site site-j already belongs to another org or city: certificate "
                      f"{serial} (org {ORG}, city jinan)", p.stderr())
        self.assertFalse((h.path("pki-typo") / "agent.crt").exists())
        p = cli(h, srv, "enroll-token", "--site", "site-j", "--agent", "m2", "--org", "other",
                "--city", "jinan", check=False)
        self.assertEqual(p.returncode, 1, p.stderr())
        self.assertIn(f"certificate {serial} (org {ORG}, city jinan)", p.stderr())
        self.assertEqual(p.stdout(), "")
        # Revoking the site's certificates frees it to move; a second machine with the
        # site's (new) org and city is fine.
        cli(h, srv, "revoke", "--site", "site-j")
        cli(h, srv, "ca", "issue", "--site", "site-j", "--org", ORG, "--city", "qingdao",
            "--out", h.path("pki-moved"))
        p = cli(h, srv, "enroll-token", "--site", "site-j", "--agent", "m2", "--org", ORG,
                "--city", "qingdao")
        self.assertTrue(p.stdout().strip())
        # A pending token binds the site as well, and is named.
        p = cli(h, srv, "enroll-token", "--site", "site-k", "--org", ORG, "--city", "qingdao")
        p = cli(h, srv, "ca", "issue", "--site", "site-k", "--org", ORG, "--city", "jinan",
                "--out", h.path("pki-k"), check=False)
        self.assertEqual(p.returncode, 1, p.stderr())
        self.assertRegex(p.stderr(), r"enrollment token \S+ \(org org-sec, city qingdao\)")
    def test_ingest_refuses_a_certificate_for_another_city(self):
        h = self.h
        srv = h.setup_server()
        good = h.ca_issue(srv.conf, "site-m", ORG, city="jinan")
        status, body, _ = request(srv, "POST", "/api/v1/ingest", batch("site-m"), good.cert,
                                  good.key)
        self.assertEqual(status, 200, body)
        # Made past the CLI (by hand, or before it checked): same site, another city.
        typo = sign_with_dates(h, srv, "typo", "site-m", "20240101000000Z", "20400101000000Z",
                               city="jinnan")
        status, body, _ = request(srv, "POST", "/api/v1/ingest", batch("site-m", seq=5),
                                  typo.cert, typo.key)
        self.assertEqual(status, 403, body)
        self.assertEqual(body["error"], "certificate's org or city differs from the site's")
        srv.proc.wait_for_output(r"event=ingest_refused peer=127\.0\.0\.1:\d+ site=site-m "
                                 r"agent=site-m reason=site_jurisdiction_mismatch", 10)
        srv.proc.wait_for_output(r"event=site_jurisdiction_refused site=site-m agent=site-m "
                                 r'cert_org="org-sec" cert_city="jinnan" site_org="org-sec" '
                                 r'site_city="jinan" reason=site_jurisdiction_mismatch', 10)
        # Nothing moved: the site is still jinan's, with only the first result.
        self.assertEqual(query(srv.db, "SELECT org, city, high_seq FROM agents"
                                       " WHERE site = 'site-m'"), [(ORG, "jinan", 1)])
        self.assertEqual(query(srv.db, "SELECT count(*) FROM results"), [(1,)])


if __name__ == "__main__":
    main()
