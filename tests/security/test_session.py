#!/usr/bin/python3
"""People's credentials: tokens expire and remember their last use; the dashboard trades a token
for an HttpOnly session cookie with idle and absolute expiry and a logout; a state-changing
request carried by the cookie must come from the server's own origin; a token in the URL is
refused. Real server, real TLS, real auth.db; expiries are set to seconds in the config and
waited for by polling.

    /usr/bin/python3 tests/security/test_session.py [-k PATTERN]
"""

import http.client
import os
import re
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (ORG, IntegrationTest, batch, cli, client_context,  # noqa: E402
                        main, people_token, request, wait_for)

COOKIE_RX = r"^__Host-vw_session=([A-Za-z0-9_-]{43}); HttpOnly; Secure; SameSite=Strict; Path=/$"
CLEARED = "__Host-vw_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0"


def iso(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")


class Base(IntegrationTest):
    WEB = ""

    def setUp(self):
        super().setUp()
        h = self.h
        state = h.path("srv")
        conf = h.server_config(state, name="srv.ini", extra=f"[web]\n{self.WEB}\n")
        h.ca_init(conf)
        self.srv = h.start_server(conf, state)
        pki = h.ca_issue(conf, "site-jn", ORG, city="jinan")
        status, body, _ = request(self.srv, "POST", "/api/v1/ingest", batch("site-jn"), pki.cert,
                                  pki.key)
        self.assertEqual(status, 200, body)
        self.origin = f"https://127.0.0.1:{self.srv.port}"

    def token(self, role="city", city="jinan", name="Jinan bureau", ttl=None):
        if ttl is None:
            return people_token(self.h, self.srv, role, city=city, name=name)
        args = ["token", "create", "--role", role, "--name", name, "--ttl", ttl]
        if city:
            args += ["--city", city]
        return cli(self.h, self.srv, *args, name="token-create").stdout().strip()

    def login(self, token):
        status, body, headers = request(self.srv, "POST", "/api/v1/session", token=token)
        self.assertEqual(status, 200, body)
        m = re.match(COOKIE_RX, headers.get("Set-Cookie", ""))
        self.assertTrue(m, headers)
        return m.group(1), body

    def with_cookie(self, method, path, sid, origin=None, extra=None, body=None):
        hdrs = {"Cookie": f"__Host-vw_session={sid}"}
        if origin:
            hdrs["Origin"] = origin
        hdrs.update(extra or {})
        return request(self.srv, method, path, body=body, headers=hdrs)

    def token_line(self, name):
        listing = cli(self.h, self.srv, "token", "list", name="token-list").stdout()
        for line in listing.splitlines():
            if line.endswith(" " + name):
                return line.split()
        raise AssertionError(f"no token named {name}:\n{listing}")

    def sessions(self):
        db = sqlite3.connect(self.srv.state_dir / "auth.db")
        try:
            return db.execute("SELECT count(*) FROM sessions").fetchone()[0]
        finally:
            db.close()


class Tokens(Base):
    def test_an_expired_token_is_refused_and_listed_as_expired(self):
        tok = self.token(ttl="2s", name="short")
        # Polled: the token was good for 2 s from its creation, however slow the machine.
        wait_for(lambda: request(self.srv, "GET", "/api/v1/sites", token=tok)[0] == 401, 30,
                 "the token to expire")
        status, body, _ = request(self.srv, "GET", "/api/v1/sites", token=tok)
        self.assertEqual(status, 401)
        self.assertIn("expired", body["detail"])
        self.srv.proc.wait_for_output(r"event=auth_refused .*reason=expired_token", 10)
        self.assertTrue(self.token_line("short")[4].endswith("(expired)"))

    def test_list_shows_created_expires_and_last_use(self):
        tok = self.token(ttl="30d", name="thirty")
        self.token(name="default")
        cols = self.token_line("thirty")  # ID ROLE CITY CREATED EXPIRES LAST_USED REVOKED NAME
        self.assertAlmostEqual((iso(cols[4]) - iso(cols[3])).total_seconds(), 30 * 86400,
                               delta=60)
        self.assertEqual(cols[5], "-", "never used yet")
        cols = self.token_line("default")
        self.assertAlmostEqual((iso(cols[4]) - iso(cols[3])).total_seconds(), 90 * 86400,
                               delta=60)
        self.assertEqual(request(self.srv, "GET", "/api/v1/sites", token=tok)[0], 200)
        # Recorded by the worker, not by the request: polled.
        wait_for(lambda: self.token_line("thirty")[5] != "-", 20, "the last use to be recorded")
        used = iso(self.token_line("thirty")[5])
        self.assertGreaterEqual(used, iso(cols[3]))
        p = cli(self.h, self.srv, "token", "create", "--role", "province", "--name", "x",
                "--ttl", "soon", check=False, name="token-create")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--ttl", p.stderr())

    def test_a_token_in_the_query_string_is_refused(self):
        tok = self.token()
        for path in ("/api/v1/sites", "/api/v1/events"):
            status, body, _ = request(self.srv, "GET", f"{path}?access_token={tok}")
            self.assertEqual(status, 401, body)
            self.assertIn("Authorization: Bearer", body["detail"])
            self.assertIn("session cookie", body["detail"])
        self.srv.proc.wait_for_output(r"reason=token_in_query", 10)
        self.assertEqual(request(self.srv, "GET", "/api/v1/sites", token=tok)[0], 200)

    def test_a_token_anywhere_in_the_query_string_is_refused_on_every_route(self):
        """Review D4: the exact match on "access_token=" let encodings, case, ';' and other
        keys through; a login (an anonymous route) did not check at all."""
        tok = self.token()
        other = self.token(name="other")
        enc = "".join(f"%{b:02X}" for b in tok.encode())
        queries = [f"%61ccess_token={tok}", f"ACCESS_TOKEN={tok}", f"a=1;access_token={tok}",
                   f"a=1&Access_Token=x", f"q={tok}", f"t={enc}", f"x=1&{tok}",
                   f"note=see-{tok}-here", f"k=VWT_{tok[4:]}", f"a=1;b={other}"]
        for path, method in (("/api/v1/sites", "GET"), ("/api/v1/events", "GET"),
                             ("/api/v1/session", "POST"), ("/healthz", "GET"),
                             ("/api/v1/ingest", "POST")):
            for q in queries:
                # With a good bearer token too: the one in the URL has leaked all the same.
                status, body, _ = request(self.srv, method, f"{path}?{q}", token=tok)
                self.assertEqual(status, 401, (path, q, body))
                self.assertIn("URL", body["detail"], (path, q))
        # Near misses are ordinary query strings.
        for q in ("access_tokens=1", "token=vwt_short", f"q={tok[:-1]}", "a=%zz;b=&&;"):
            self.assertEqual(request(self.srv, "GET", f"/api/v1/sites?{q}", token=tok)[0], 200, q)
        self.assertEqual(request(self.srv, "GET", "/healthz?x=1")[0], 200)

    def test_a_token_name_must_be_printable_utf8_and_is_quoted_in_the_audit(self):
        """Review D6: --name reached the audit detail raw, ESC and C1 controls included."""
        bad = ["a\x1b[31mred", "a\x07bell", "tab\there", "nel\u0085x", "csi\u009bx",
               "del\x7fx", os.fsdecode(b"bad\xffutf8"), os.fsdecode(b"\xc0\xafover")]
        for name in bad:
            p = cli(self.h, self.srv, "token", "create", "--role", "province", "--name", name,
                    check=False, name="token-create")
            self.assertEqual(p.returncode, 2, repr(name))
            self.assertIn("--name", p.stderr())
        self.token(role="province", name='济南 "x" \\ bureau')
        self.token(role="province", name="forged reason=ok")
        out = cli(self.h, self.srv, "audit", name="audit").stdout()
        self.assertIn('name="济南 \\"x\\" \\\\ bureau"', out)
        self.assertIn('name="forged reason=ok"', out)
        self.assertNotIn("\x1b", out)

    def test_tokens_made_before_expiry_existed_get_90_days(self):
        """An auth.db of schema 2 (no expiry, no sessions) is migrated in place."""
        tok = self.token(name="old")
        self.srv.proc.stop()
        db = sqlite3.connect(self.srv.state_dir / "auth.db")
        try:
            created = db.execute("SELECT created_ms FROM tokens WHERE name='old'").fetchone()[0]
            db.executescript("DROP TABLE sessions; ALTER TABLE tokens DROP COLUMN expires_ms;"
                             "ALTER TABLE tokens DROP COLUMN last_used_ms;"
                             # schema 4's column too: a schema-2 file never had it
                             "ALTER TABLE enroll_tokens DROP COLUMN agent;"
                             # and schema 5's (issue 12 D)
                             "ALTER TABLE tokens DROP COLUMN inspector;"
                             "PRAGMA user_version=2;")
        finally:
            db.close()
        self.srv = self.h.start_server(self.srv.conf, self.srv.state_dir)
        self.srv.proc.wait_for_output(r"event=auth_migrated version=3", 10)
        self.assertEqual(request(self.srv, "GET", "/api/v1/sites", token=tok)[0], 200)
        db = sqlite3.connect(self.srv.state_dir / "auth.db")
        try:
            exp = db.execute("SELECT expires_ms FROM tokens WHERE name='old'").fetchone()[0]
        finally:
            db.close()
        self.assertEqual(exp, created + 90 * 86400 * 1000)


class Sessions(Base):
    def test_login_sets_a_strict_cookie_that_reads_what_the_token_reads(self):
        tok = self.token()
        sid, body = self.login(tok)
        self.assertEqual((body["role"], body["city"], body["name"], body["via"]),
                         ("city", "jinan", "Jinan bureau", "session"))
        status, sites, _ = self.with_cookie("GET", "/api/v1/sites", sid)
        self.assertEqual(status, 200, sites)
        self.assertEqual(sites, request(self.srv, "GET", "/api/v1/sites", token=tok)[1])
        status, me, headers = self.with_cookie("GET", "/api/v1/session", sid)
        self.assertEqual(status, 200, me)
        self.assertEqual((me["role"], me["city"], me["org"], me["name"]),
                         ("city", "jinan", "", "Jinan bureau"))
        self.assertEqual(headers.get("Cache-Control"), "no-store")
        self.assertLess(iso(me["idle_expires"]), iso(me["expires"]))
        # Stored hashed: the cookie's value is nowhere in the database file.
        for f in self.srv.state_dir.glob("auth.db*"):
            self.assertNotIn(sid.encode(), f.read_bytes())
        # JSON body login, from our own origin (the dashboard's form)
        status, body, headers = request(self.srv, "POST", "/api/v1/session", {"token": tok},
                                        headers={"Origin": self.origin})
        self.assertEqual(status, 200, body)
        self.assertRegex(headers["Set-Cookie"], COOKIE_RX)
        # A bad token gets no session
        status, body, headers = request(self.srv, "POST", "/api/v1/session",
                                        token="vwt_" + "A" * 43)
        self.assertEqual(status, 401, body)
        self.assertNotIn("Set-Cookie", headers)

    def test_event_stream_works_with_the_cookie(self):
        sid, _ = self.login(self.token())
        conn = http.client.HTTPSConnection("127.0.0.1", self.srv.port,
                                           context=client_context(self.srv), timeout=10)
        try:
            conn.request("GET", "/api/v1/events", headers={"Cookie": f"__Host-vw_session={sid}"})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.getheader("Content-Type"), "text/event-stream")
            self.assertRegex(resp.fp.readline(), rb"^retry: \d+\n$")
        finally:
            conn.close()

    def test_logout_deletes_the_session_and_clears_the_cookie(self):
        sid, _ = self.login(self.token())
        self.assertEqual(self.sessions(), 1)
        status, body, headers = self.with_cookie("DELETE", "/api/v1/session", sid, self.origin)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("Set-Cookie"), CLEARED)
        self.assertEqual(self.sessions(), 0)
        status, body, headers = self.with_cookie("GET", "/api/v1/sites", sid)
        self.assertEqual(status, 401, body)
        self.assertEqual(headers.get("Set-Cookie"), CLEARED)

    def test_revoking_the_token_ends_its_sessions(self):
        tok = self.token(name="to-revoke")
        sid, _ = self.login(tok)
        self.assertEqual(self.with_cookie("GET", "/api/v1/sites", sid)[0], 200)
        cli(self.h, self.srv, "token", "revoke", self.token_line("to-revoke")[0],
            name="token-revoke")
        self.assertEqual(self.sessions(), 0)
        status, body, _ = self.with_cookie("GET", "/api/v1/sites", sid)
        self.assertEqual(status, 401, body)

    def test_cookie_parsing_is_strict(self):
        sid, _ = self.login(self.token())
        ok = [f"a=1; __Host-vw_session={sid}; b=2", f"__Host-vw_session={sid}"]
        for cookie in ok:
            status, body, _ = request(self.srv, "GET", "/api/v1/sites",
                                      headers={"Cookie": cookie})
            self.assertEqual(status, 200, (cookie, body))
        # Several Cookie headers are one list (ours in the second).
        conn = http.client.HTTPSConnection("127.0.0.1", self.srv.port,
                                           context=client_context(self.srv), timeout=10)
        try:
            conn.putrequest("GET", "/api/v1/sites")
            conn.putheader("Cookie", "theme=dark")
            conn.putheader("Cookie", f"__Host-vw_session={sid}")
            conn.endheaders()
            self.assertEqual(conn.getresponse().status, 200)
        finally:
            conn.close()
        bad = [f"VW_SESSION={sid}", f"__Host-vw_session={sid}; __Host-vw_session={sid}",
               f"__Host-vw_session=\"{sid}\"", f"xvw_session={sid}", f"__Host-vw_session={sid}x",
               f"vw_session={sid}"]
        for cookie in bad:
            status, body, _ = request(self.srv, "GET", "/api/v1/sites",
                                      headers={"Cookie": cookie})
            self.assertEqual(status, 401, (cookie, body))
        self.srv.proc.wait_for_output(r"reason=ambiguous_cookie", 10)


class Origins(Base):
    def test_cookie_state_changes_need_our_origin_bearer_does_not(self):
        tok = self.token()
        sid, _ = self.login(tok)
        for origin, extra in (("https://evil.example", {}), ("null", {}),
                              (f"http://127.0.0.1:{self.srv.port}", {}),
                              (None, {}), (None, {"Sec-Fetch-Site": "cross-site"})):
            status, body, _ = self.with_cookie("DELETE", "/api/v1/session", sid, origin, extra)
            self.assertEqual(status, 403, (origin, extra, body))
        self.srv.proc.wait_for_output(r"event=auth_refused .*reason=bad_origin", 10)
        self.assertEqual(self.sessions(), 1, "no foreign request ended the session")
        # The log names the kind of Origin, never its value (review D2: a quote in it forged
        # fields in the line).
        forged = 'https://evil.example" reason=ok by="x'
        status, body, _ = self.with_cookie("DELETE", "/api/v1/session", sid, forged)
        self.assertEqual(status, 403, body)
        for kind in ("foreign", "null", "none"):
            self.srv.proc.wait_for_output(rf"origin={kind} reason=bad_origin", 10)
        log = self.srv.proc.stderr()
        self.assertNotIn("evil.example", log)
        self.assertNotIn("reason=ok", log)
        # A login whose token is in the body (a form) from elsewhere: refused (login CSRF).
        status, body, _ = request(self.srv, "POST", "/api/v1/session", {"token": tok},
                                  headers={"Origin": "https://evil.example"})
        self.assertEqual(status, 403, body)
        # A bearer token is no ambient credential: no Origin needed, a foreign one ignored.
        status, body, _ = request(self.srv, "POST", "/api/v1/session", token=tok,
                                  headers={"Origin": "https://evil.example"})
        self.assertEqual(status, 200, body)
        self.assertEqual(request(self.srv, "POST", "/api/v1/session", token=tok)[0], 200)
        # Same origin, or no Origin but Sec-Fetch-Site: same-origin
        status, body, _ = self.with_cookie("DELETE", "/api/v1/session", sid, None,
                                           {"Sec-Fetch-Site": "same-origin"})
        self.assertEqual(status, 200, body)
        sid, _ = self.login(tok)
        status, body, _ = self.with_cookie("DELETE", "/api/v1/session", sid, self.origin)
        self.assertEqual(status, 200, body)


class ConfiguredOrigins(Base):
    WEB = "origins = https://dash.example, https://other.example:8443"

    def test_only_the_configured_origins_pass(self):
        tok = self.token()
        sid, _ = self.login(tok)
        status, _, _ = self.with_cookie("DELETE", "/api/v1/session", sid, self.origin)
        self.assertEqual(status, 403, "Host no longer decides once origins are configured")
        status, body, _ = self.with_cookie("DELETE", "/api/v1/session", sid,
                                           "https://other.example:8443")
        self.assertEqual(status, 200, body)


class IdleExpiry(Base):
    WEB = "session_idle = 3s\nsession_lifetime = 1h"

    def test_a_session_in_use_lives_and_an_unused_one_ends(self):
        sid, body = self.login(self.token())
        self.assertEqual(body["idle_timeout_s"], 3)
        start = time.monotonic()
        # Used every 0.3 s for twice the idle time: each use moves the idle end on.
        while time.monotonic() - start < 6:
            status, body, _ = self.with_cookie("GET", "/api/v1/sites", sid)
            self.assertEqual(status, 200, body)
            time.sleep(0.3)
        # Then left alone. Every request with the cookie is a use, so the poll asks only once
        # the recorded last use is more than the idle time ago (the same clock the server
        # reads); a mark written late makes that request succeed and the poll go on.
        def ended():
            db = sqlite3.connect(self.srv.state_dir / "auth.db")
            try:
                seen = db.execute("SELECT last_seen_ms FROM sessions").fetchone()[0]
            finally:
                db.close()
            if time.time() * 1000 < seen + 3000:
                return False
            return self.with_cookie("GET", "/api/v1/session", sid)[0] == 401

        wait_for(ended, 30, "the idle session to end", interval=0.5)
        self.srv.proc.wait_for_output(r"reason=expired_session", 10)


class AbsoluteExpiry(Base):
    WEB = "session_idle = 1h\nsession_lifetime = 3s"

    def test_a_session_ends_at_its_lifetime_even_in_use(self):
        login = time.monotonic()
        sid, _ = self.login(self.token())

        def ended():
            status = self.with_cookie("GET", "/api/v1/sites", sid)[0]
            self.assertIn(status, (200, 401))
            return status == 401

        wait_for(ended, 30, "the session to reach its lifetime", interval=0.3)
        self.assertGreaterEqual(time.monotonic() - login, 3)
        self.srv.proc.wait_for_output(r"reason=expired_session", 10)


if __name__ == "__main__":
    main()
