#!/usr/bin/python3
"""People: bearer tokens with a role and a jurisdiction read the sites API (a city reads only
its own city's sites, 属地管理); every admin action is in an append-only audit log.

    /usr/bin/python3 tests/security/test_people.py [-k PATTERN]
"""

import re
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (ORG, SERVER, IntegrationTest, batch, cli, enroll_token,  # noqa: E402
                        main, make_csr, people_token, request)

PEER = r"peer=127\.0\.0\.1:\d+"


class Roles(IntegrationTest):
    """Two cities' sites; tokens of each role read what their role and city allow."""

    def setUp(self):
        super().setUp()
        h = self.h
        self.srv = srv = h.setup_server()
        # Reported through the real ingest path, with certificates naming their cities.
        for site, city in (("site-jn", "jinan"), ("site-qd", "qingdao"), ("site-nocity", None)):
            pki = h.ca_issue(srv.conf, site, ORG, city=city)
            status, body, _ = request(srv, "POST", "/api/v1/ingest", batch(site), pki.cert,
                                      pki.key)
            self.assertEqual(status, 200, body)

    def sites(self, token):
        status, body, _ = request(self.srv, "GET", "/api/v1/sites", token=token)
        self.assertEqual(status, 200, body)
        return sorted(s["site"] for s in body["sites"])

    def test_no_token_or_a_bad_one_gets_401_and_healthz_stays_open(self):
        srv = self.srv
        for path in ("/api/v1/sites", "/api/v1/sites/site-jn"):
            status, body, headers = request(srv, "GET", path)
            self.assertEqual(status, 401, body)
            self.assertEqual(headers.get("WWW-Authenticate"), 'Bearer realm="venuewatch"')
        for bad in ("vwt_" + "A" * 43, "garbage", "vwe_" + "A" * 43):
            status, body, _ = request(srv, "GET", "/api/v1/sites", token=bad)
            self.assertEqual(status, 401, (bad, body))
        srv.proc.wait_for_output(
            rf"event=auth_refused {PEER} path=/api/v1/sites token=- reason=unknown_token", 10)
        status, body, _ = request(srv, "GET", "/healthz")
        self.assertEqual((status, body), (200, {"status": "ok"}))

    def test_city_token_reads_only_its_own_citys_sites(self):
        h, srv = self.h, self.srv
        jinan = people_token(h, srv, "city", city="jinan", name="Jinan bureau")
        self.assertEqual(self.sites(jinan), ["site-jn"])
        status, body, _ = request(srv, "GET", "/api/v1/sites/site-jn", token=jinan)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["targets"][0]["target"], "cam-1")
        # Another city's site looks exactly like a site that does not exist.
        status_other, body_other, _ = request(srv, "GET", "/api/v1/sites/site-qd", token=jinan)
        status_none, body_none, _ = request(srv, "GET", "/api/v1/sites/no-such", token=jinan)
        self.assertEqual((status_other, body_other), (404, {"error": "no such site"}))
        self.assertEqual((status_none, body_none), (status_other, body_other))
        status, _, _ = request(srv, "GET", "/api/v1/sites/site-nocity", token=jinan)
        self.assertEqual(status, 404, "a site with no city is the province's alone")

    def test_province_token_reads_every_site(self):
        province = people_token(self.h, self.srv, "province", name="Province bureau")
        self.assertEqual(self.sites(province), ["site-jn", "site-nocity", "site-qd"])
        for site in ("site-jn", "site-qd", "site-nocity"):
            status, body, _ = request(self.srv, "GET", f"/api/v1/sites/{site}", token=province)
            self.assertEqual(status, 200, body)

    def test_public_and_unassigned_inspector_tokens_read_no_site_data(self):
        h, srv = self.h, self.srv
        for role in ("public", "inspector"):
            tok = people_token(h, srv, role, city="jinan", name=f"a {role}")
            for path in ("/api/v1/sites", "/api/v1/sites/site-jn"):
                status, body, _ = request(srv, "GET", path, token=tok)
                # issue 12 D: an inspector's per-site routes answer 404 for every site no
                # inspection of his covers (tests/security/test_inspector_scope.py); lists
                # stay refused.
                want = 404 if role == "inspector" and path != "/api/v1/sites" else 403
                self.assertEqual(status, want, (role, path, body))
            srv.proc.wait_for_output(rf"role={role} reason=role_reads_no_sites", 10)

    def test_revoked_token_is_refused_from_the_next_request(self):
        h, srv = self.h, self.srv
        tok = people_token(h, srv, "city", city="qingdao", name="Qingdao bureau")
        self.assertEqual(self.sites(tok), ["site-qd"])
        listing = cli(h, srv, "token", "list", name="token-list").stdout()
        token_id = re.search(r"^([0-9a-f]{16}) +city +qingdao ", listing, re.M).group(1)
        cli(h, srv, "token", "revoke", token_id, name="token-revoke")
        status, body, _ = request(srv, "GET", "/api/v1/sites", token=tok)
        self.assertEqual(status, 401, body)
        srv.proc.wait_for_output(r"reason=revoked_token", 10)
        listing = cli(h, srv, "token", "list", name="token-list").stdout()
        # ID ROLE CITY CREATED EXPIRES LAST_USED REVOKED NAME
        self.assertTrue(re.search(rf"^{token_id} +city +qingdao +\S+ +\S+ +\S+ +\d{{4}}-\S+Z ",
                                  listing, re.M), listing)
        again = cli(h, srv, "token", "revoke", token_id, check=False, name="token-revoke")
        self.assertEqual(again.returncode, 1)

    def test_city_and_inspector_tokens_need_a_city(self):
        for role in ("city", "inspector"):
            p = cli(self.h, self.srv, "token", "create", "--role", role, "--name", "x",
                    check=False, name="token-create")
            self.assertEqual(p.returncode, 1, p.tail())
            self.assertIn("--city is required", p.stderr())
            self.assertEqual(p.stdout(), "")

    def test_tokens_are_stored_hashed(self):
        h, srv = self.h, self.srv
        tok = people_token(h, srv, "province", name="p")
        etok = enroll_token(h, srv, "site-x")
        raw = (srv.state_dir / "auth.db").read_bytes()
        for secret in (tok, etok, tok[4:], etok[4:]):
            self.assertNotIn(secret.encode(), raw)


class Audit(IntegrationTest):
    """Every admin action lands in the audit log, which cannot be edited."""

    def test_admin_actions_are_audited_and_the_log_is_append_only(self):
        h = self.h
        srv = h.setup_server()  # ca init
        h.ca_issue(srv.conf, "site-a", ORG, city="jinan")
        etok = enroll_token(h, srv, "site-b")
        csr, _ = make_csr(h, "req")
        status, body, _ = request(srv, "POST", "/api/v1/enroll", {"token": etok, "csr": csr})
        self.assertEqual(status, 200, body)
        cli(h, srv, "revoke", "--site", "site-a", name="revoke")
        people_token(h, srv, "city", city="jinan", name="Jinan bureau")
        tid = re.search(r"^([0-9a-f]{16}) ", cli(h, srv, "token", "list").stdout(), re.M)[1]
        cli(h, srv, "token", "revoke", tid, name="token-revoke")

        out = cli(h, srv, "audit", name="audit").stdout()
        actions = re.findall(r"^\d+ +\S+ +(\S+) +(\S+) +(\S+)", out, re.M)
        self.assertEqual([a[1] for a in actions],
                         ["ca_init", "ca_issue", "enroll_token", "enroll", "revoke",
                          "token_create", "token_revoke"], out)
        self.assertTrue(all(a[0].startswith(("cli:", "enroll:")) for a in actions), out)
        self.assertEqual(actions[3][2], "site-b")
        self.assertIn("audit chain: intact (7 rows)", out)

        db = sqlite3.connect(srv.state_dir / "auth.db")
        try:
            for sql in ("UPDATE audit SET actor = 'nobody'", "DELETE FROM audit",
                        "DELETE FROM audit WHERE id = 1"):
                with self.assertRaisesRegex(sqlite3.DatabaseError, "append-only"):
                    db.execute(sql)
            with self.assertRaisesRegex(sqlite3.DatabaseError, "permanent"):
                db.execute("DELETE FROM revocations")
            # Someone with the file drops the trigger and rewrites history: the chain shows it.
            db.execute("DROP TRIGGER audit_no_update")
            db.execute("UPDATE audit SET actor = 'nobody' WHERE id = 5")
            db.commit()
        finally:
            db.close()
        p = cli(h, srv, "audit", check=False, name="audit")
        self.assertEqual(p.returncode, 1)
        self.assertIn("BROKEN at row 5", p.stdout())

    def test_rows_cut_off_the_tail_are_caught_by_the_anchor(self):
        """Deleting the newest rows leaves a valid chain; the anchor file beside auth.db still
        names the old head, so the cut shows, nothing more is written over it, the server
        refuses to start, and only an audited reset lets it go on."""
        h = self.h
        srv = h.setup_server()  # row 1: ca_init
        people_token(h, srv, "province", name="p1")  # row 2
        people_token(h, srv, "province", name="p2")  # row 3
        srv.proc.stop()
        db = sqlite3.connect(srv.state_dir / "auth.db")
        try:
            db.execute("DROP TRIGGER audit_no_delete")
            db.execute("DELETE FROM audit WHERE id = 3")
            db.commit()
        finally:
            db.close()

        p = cli(h, srv, "audit", check=False, name="audit")
        self.assertEqual(p.returncode, 1, p.tail())
        self.assertRegex(p.stdout(), r"audit chain: CUT OR REWRITTEN \(2 rows.*rows cut: "
                         r".*auth\.db\.anchor says row 3 .* but the chain ends at row 2")
        p = cli(h, srv, "token", "create", "--role", "province", "--name", "p3", check=False,
                name="token-create")
        self.assertEqual(p.returncode, 1, p.tail())
        self.assertIn("no longer reaches its anchor", p.stderr())
        # nor does the CA act: a certificate the log cannot record is not issued
        out_dir = h.path("pki-z")
        p = cli(h, srv, "ca", "issue", "--site", "site-z", "--org", ORG, "--out", str(out_dir),
                check=False, name="ca-issue")
        self.assertEqual(p.returncode, 1, p.tail())
        self.assertFalse(out_dir.exists())
        p = h.run("server-again", [SERVER, "-c", srv.conf], check=False, timeout=20)
        self.assertEqual(p.returncode, 1, p.tail())
        self.assertIn("event=start_failed reason=audit_anchor_mismatch", p.stderr())

        out = cli(h, srv, "audit", "--reset-anchor", name="audit-reset").stdout()
        self.assertIn("anchor reset; what it said is in the audit log: rows cut", out)
        # row 4, not 3: SQLite's AUTOINCREMENT never reuses an id, so the gap stays visible
        self.assertRegex(out, r"(?m)^4 .* audit_anchor_reset .*rows cut")
        self.assertIn("audit chain: intact (3 rows)", out)
        self.assertIn("1 gap(s) in the ids, each recorded by an audit_anchor_reset row", out)
        self.assertIn("anchor=matches", out)
        people_token(h, srv, "province", name="p3")  # writes again

    def cut_tail(self, srv, row):
        db = sqlite3.connect(srv.state_dir / "auth.db")
        try:
            db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
            db.execute("DELETE FROM audit WHERE id >= ?", (row,))
            db.commit()
            return db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        finally:
            db.close()

    def test_a_cut_while_the_server_runs_stops_its_next_audit_row(self):
        """The running server checks the anchor again before each row it appends (it opened
        auth.db long before the cut): its next row (an enrollment) is refused, not chained
        onto the cut, which would have moved the anchor past it."""
        h = self.h
        srv = h.setup_server()  # row 1
        etok = enroll_token(h, srv, "site-e")  # row 2
        people_token(h, srv, "province", name="p1")  # row 3
        self.cut_tail(srv, 3)
        csr, _ = make_csr(h, "req")
        status, body, _ = request(srv, "POST", "/api/v1/enroll", {"token": etok, "csr": csr})
        self.assertNotEqual(status, 200, body)
        srv.proc.wait_for_output(r"event=audit_refused reason=anchor_mismatch", 5)
        p = cli(h, srv, "audit", check=False, name="audit")
        self.assertEqual(p.returncode, 1, p.tail())
        self.assertIn("says row 3", p.stdout())

    def test_a_hole_no_reset_row_explains_is_a_cut(self):
        """Rows cut off the tail, the anchor forged to the new head, then appended to: the chain
        and the anchor agree, but the ids have a hole no audit_anchor_reset row records."""
        h = self.h
        srv = h.setup_server()  # row 1
        people_token(h, srv, "province", name="p1")  # row 2
        people_token(h, srv, "province", name="p2")  # row 3
        srv.proc.stop()
        head_id, head_hash = self.cut_tail(srv, 3)
        (srv.state_dir / "auth.db.anchor").write_text(
            f"venuewatch audit anchor 1\nrow={head_id} hash={head_hash}\n")
        people_token(h, srv, "province", name="p3")  # row 4, chained onto row 2
        p = cli(h, srv, "audit", check=False, name="audit")
        self.assertEqual(p.returncode, 1, p.tail())
        self.assertIn("audit chain: CUT (rows 3-3 are missing and no audit_anchor_reset row "
                      "records it)", p.stdout())

    def test_concurrent_appenders_leave_an_anchor_that_checks(self):
        """Several CLI processes append at once (each writes the anchor after its commit):
        whichever rename wins, the anchor names a row the chain holds."""
        from concurrent.futures import ThreadPoolExecutor
        h = self.h
        srv = h.setup_server()
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(lambda i: people_token(h, srv, "province", name=f"p{i}"), range(24)))
        out = cli(h, srv, "audit", "--limit", "1", name="audit").stdout()
        self.assertRegex(out, r"audit chain: intact \(25 rows\) head=\w+ anchor=matches")
        leftovers = [p.name for p in srv.state_dir.iterdir() if ".anchor." in p.name]
        self.assertEqual(leftovers, [])

    def test_audit_limit_shows_the_latest_rows(self):
        h = self.h
        srv = h.setup_server()
        for i in range(3):
            people_token(h, srv, "province", name=f"p{i}")
        out = cli(h, srv, "audit", "--limit", "2", name="audit").stdout()
        rows = re.findall(r"^(\d+) ", out, re.M)
        self.assertEqual(rows, ["3", "4"], out)
        # out is the finished command's output: nothing to wait for.
        self.assertIn("intact (4 rows)", out)


if __name__ == "__main__":
    main()
