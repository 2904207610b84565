#!/usr/bin/python3
"""Agent identity: only a current certificate from this collector's CA, for the site whose
data it posts, gets in; every refusal leaves a log line naming the peer and the reason.
Enrollment hands out such certificates for one-time tokens; revocation takes them back.

    /usr/bin/python3 tests/security/test_agent_identity.py [-k PATTERN]
"""

import http.client
import os
import signal
import ssl
import stat
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (AGENT, ORG, RESULT, IntegrationTest, Pki,  # noqa: E402
                        agent_config, batch, cli, client_context, enroll_token,
                        handshake_refused, main, make_csr, query, request, sign_with_dates,
                        wait_for)

PEER = r"peer=127\.0\.0\.1:\d+"


class BadIdentities(IntegrationTest):
    """Each kind of bad identity is refused, with a log line naming peer and reason."""

    def setUp(self):
        super().setUp()
        h = self.h
        self.srv = h.setup_server()
        self.good = h.ca_issue(self.srv.conf, "site-a", ORG, city="jinan")

    def test_no_certificate_on_an_agent_path_is_refused_and_logged(self):
        for path in ("/api/v1/ingest", "/api/v1/speedtest"):
            status, body, _ = request(self.srv, "POST", path, batch("site-a"))
            self.assertEqual(status, 401, body)
            self.srv.proc.wait_for_output(
                rf"event=auth_refused {PEER} path={path} cert=- reason=no_certificate", 10)

    def test_self_signed_certificate_is_refused_in_the_handshake(self):
        h = self.h
        d = h.path("self")
        d.mkdir()
        h.run("openssl", ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                          "/CN=site-a/O=evil", "-keyout", d / "k", "-out", d / "c"])
        self.assertTrue(handshake_refused(self.srv, d / "c", d / "k"))
        self.srv.proc.wait_for_output(
            rf"event=tls_refused {PEER} reason=self_signed cert_cn=site-a serial=\w+", 10)

    def test_certificate_from_a_foreign_ca_is_refused(self):
        h = self.h
        # Another venuewatch installation's CA: a real, well-formed certificate for the same
        # site id, just not ours.
        other_state = h.path("foreign")
        other_conf = h.server_config(other_state, name="foreign.ini")
        h.ca_init(other_conf)
        foreign = h.ca_issue(other_conf, "site-a", ORG, out=h.path("pki-foreign"), city="jinan")
        self.assertTrue(handshake_refused(self.srv, foreign.cert, foreign.key))
        self.srv.proc.wait_for_output(
            rf"event=tls_refused {PEER} reason=unknown_ca cert_cn=site-a serial=\w+", 10)

    def test_expired_certificate_is_refused(self):
        old = sign_with_dates(self.h, self.srv, "expired", "site-a", "20200101000000Z",
                              "20200201000000Z")
        self.assertTrue(handshake_refused(self.srv, old.cert, old.key))
        self.srv.proc.wait_for_output(
            rf"event=tls_refused {PEER} reason=cert_expired cert_cn=site-a serial=1000", 10)

    def test_not_yet_valid_certificate_is_refused(self):
        future = sign_with_dates(self.h, self.srv, "future", "site-a", "20400101000000Z",
                                 "20410101000000Z")
        self.assertTrue(handshake_refused(self.srv, future.cert, future.key))
        self.srv.proc.wait_for_output(
            rf"event=tls_refused {PEER} reason=cert_not_yet_valid cert_cn=site-a serial=1000",
            10)

    def test_valid_certificate_for_another_site_cannot_post_this_sites_data(self):
        other = self.h.ca_issue(self.srv.conf, "site-b", ORG, city="jinan")
        status, body, _ = request(self.srv, "POST", "/api/v1/ingest", batch("site-a"),
                                  other.cert, other.key)
        self.assertEqual(status, 403, body)
        self.srv.proc.wait_for_output(
            rf"event=ingest_refused {PEER} cert_site=site-b claimed_site=site-a", 10)
        self.assertEqual(query(self.srv.db, "SELECT COUNT(*) FROM results")[0][0], 0)
        # Its own data it may post; and the certificate is on record as first seen.
        status, body, _ = request(self.srv, "POST", "/api/v1/ingest", batch("site-b"),
                                  other.cert, other.key)
        self.assertEqual((status, body), (200, {"acked_seq": 1}))
        rows = query(self.srv.state_dir / "auth.db",
                     "SELECT site, org, city FROM agents WHERE site = 'site-b'")
        self.assertEqual(rows, [("site-b", ORG, "jinan")])

    def test_tls_below_1_2_and_legacy_ciphers_are_refused(self):
        srv = self.srv
        ctx = client_context(srv, self.good.cert, self.good.key)
        with warnings.catch_warnings():  # deprecated is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            c = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)
            c.request("GET", "/healthz")
            c.getresponse()
        # Refused by the server, not merely never offered by this client.
        srv.proc.wait_for_output(rf"event=tls_refused {PEER} reason=unsupported_protocol", 10)
        # TLS 1.2 with a non-forward-secret CBC suite.
        ctx = client_context(srv, self.good.cert, self.good.key)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("AES128-SHA:AES256-SHA")
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            c = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)
            c.request("GET", "/healthz")
            c.getresponse()
        srv.proc.wait_for_output(rf"event=tls_refused {PEER} reason=no_shared_cipher", 10)
        # The modern default still works.
        status, body, _ = request(srv, "POST", "/api/v1/speedtest", b"x" * 1000,
                                  self.good.cert, self.good.key)
        self.assertEqual((status, body), (200, {"bytes": 1000}))


def issue_agent(h, srv, site, agent, city="jinan"):
    """`ca issue --site S --agent A`: one venue machine's certificate."""
    out = h.path(f"pki-{site}-{agent}")
    cli(h, srv, "ca", "issue", "--site", site, "--agent", agent, "--org", ORG, "--city", city,
        "--out", out, name="ca-issue")
    return Pki(out)


def agent_batch(site, agent, *seqs):
    b = {"site": site, "results": [dict(RESULT, seq=s, target=f"cam-{s}") for s in seqs]}
    if agent is not None:
        b["agent"] = agent
    return b


def agent_rows(db, site, agent):
    return query(db, "SELECT r.seq FROM results r JOIN agents a ON a.id = r.agent_id"
                     " WHERE a.site = ? AND a.agent = ? ORDER BY r.seq", (site, agent))


class AgentFromCertificate(IntegrationTest):
    """The agent a batch counts for is the one its certificate names (issue 10, item 2): a
    site's certificate cannot move another agent's high-water mark."""

    def setUp(self):
        super().setUp()
        self.srv = self.h.setup_server()

    def test_poisoning_another_agents_mark_is_refused_and_its_results_still_stored(self):
        h, srv = self.h, self.srv
        # A certificate from before agents were named (CN = site only) is agent = site.
        legacy = h.ca_issue(srv.conf, "site-p", ORG, city="jinan")
        for who, cert_agent in ((legacy, "site-p"), ("a1", "a1")):
            if isinstance(who, str):
                who = a1 = issue_agent(h, srv, "site-p", who)
            status, body, _ = request(srv, "POST", "/api/v1/ingest",
                                      agent_batch("site-p", "a2", 10**6), who.cert, who.key)
            self.assertEqual(status, 403, body)
            srv.proc.wait_for_output(
                rf"event=ingest_refused {PEER} site=site-p cert_agent={cert_agent} "
                r"batch_agent=a2 reason=agent_mismatch", 10)
        self.assertEqual(query(srv.db, "SELECT COUNT(*) FROM results")[0][0], 0)
        self.assertEqual(query(srv.db, "SELECT COUNT(*) FROM agents WHERE agent = 'a2'"),
                         [(0,)], "a refused batch must not even create the agent's row")
        # a2's own machine now reports from seq 1: stored, not skipped as resends.
        a2 = issue_agent(h, srv, "site-p", "a2")
        status, body, _ = request(srv, "POST", "/api/v1/ingest",
                                  agent_batch("site-p", "a2", 1, 2), a2.cert, a2.key)
        self.assertEqual((status, body["acked_seq"]), (200, 2), body)
        self.assertEqual(agent_rows(srv.db, "site-p", "a2"), [(1,), (2,)])
        # Without an agent field the certificate decides: a1's batch is a1's.
        status, body, _ = request(srv, "POST", "/api/v1/ingest",
                                  agent_batch("site-p", None, 1), a1.cert, a1.key)
        self.assertEqual((status, body["acked_seq"]), (200, 1), body)
        self.assertEqual(agent_rows(srv.db, "site-p", "a1"), [(1,)])
        # The legacy certificate still posts as agent = site, as before.
        status, body, _ = request(srv, "POST", "/api/v1/ingest", batch("site-p"),
                                  legacy.cert, legacy.key)
        self.assertEqual((status, body["acked_seq"]), (200, 1), body)
        self.assertEqual(agent_rows(srv.db, "site-p", "site-p"), [(1,)])

    def test_ca_issue_names_the_agent_in_the_certificate(self):
        h, srv = self.h, self.srv
        a1 = issue_agent(h, srv, "site-q", "a1")
        p = h.run("x509", ["openssl", "x509", "-in", a1.cert, "-noout", "-subject",
                           "-nameopt", "oneline"])
        self.assertIn("CN = site-q", p.stdout())
        self.assertIn("UID = a1", p.stdout())
        bad = cli(h, srv, "ca", "issue", "--site", "site-q", "--agent", "a 1", "--org", ORG,
                  "--out", h.path("pki-bad"), check=False, name="ca-issue-bad")
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("--agent", bad.stderr())


class Revocation(IntegrationTest):
    """A revoked certificate stops working without a restart: on SIGHUP at once, or when the
    server notices the new CRL; connections it already had are closed."""

    def _open_agent_connection(self, srv, pki):
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port,
                                           context=client_context(srv, pki.cert, pki.key),
                                           timeout=10)
        status, body, _ = request(srv, "POST", "/api/v1/speedtest", b"x" * 10, conn=conn)
        self.assertEqual((status, body), (200, {"bytes": 10}))
        return conn

    def test_revoked_site_is_refused_after_sighup_and_its_open_connection_closed(self):
        h = self.h
        srv = h.setup_server()
        victim = h.ca_issue(srv.conf, "site-r", ORG, city="jinan")
        bystander = h.ca_issue(srv.conf, "site-s", ORG, city="jinan")
        conn = self._open_agent_connection(srv, victim)
        other = self._open_agent_connection(srv, bystander)

        out = cli(h, srv, "revoke", "--site", "site-r", name="revoke").stdout()
        self.assertIn("revoked 1 certificate of site site-r", out)
        srv.proc.send(signal.SIGHUP)
        srv.proc.wait_for_output(r"event=reload signal=SIGHUP", 10)
        srv.proc.wait_for_output(
            rf"event=tls_revoked_closed {PEER} site=site-r serial=[0-9A-F]+", 10)
        with self.assertRaises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            request(srv, "POST", "/api/v1/speedtest", b"x", conn=conn)
        self.assertTrue(handshake_refused(srv, victim.cert, victim.key))
        srv.proc.wait_for_output(
            rf"event=tls_refused {PEER} reason=cert_revoked cert_cn=site-r serial=[0-9A-F]+", 10)
        # Everybody else is untouched, on the same connection as before.
        status, body, _ = request(srv, "POST", "/api/v1/speedtest", b"yy", conn=other)
        self.assertEqual((status, body), (200, {"bytes": 2}))
        other.close()
        conn.close()

    def test_revoke_by_serial_applies_without_a_signal(self):
        h = self.h
        srv = h.setup_server()
        p = cli(h, srv, "ca", "issue", "--site", "site-t", "--org", ORG, "--city", "jinan",
                "--out", h.path("pki-t"), name="ca-issue")
        serial = p.stdout().split("serial ")[1].split(",")[0]
        cert, key = h.path("pki-t", "agent.crt"), h.path("pki-t", "agent.key")
        status, _, _ = request(srv, "POST", "/api/v1/speedtest", b"x", cert, key)
        self.assertEqual(status, 200)
        cli(h, srv, "revoke", "--serial", serial.lower(), name="revoke")
        srv.proc.wait_for_output(r"event=crl_changed", 15)

        def refused():
            try:
                request(srv, "POST", "/api/v1/speedtest", b"x", cert, key)
            except (ssl.SSLError, ConnectionError, http.client.HTTPException):
                return True
            return False

        wait_for(refused, 15, "the revoked certificate to be refused")
        srv.proc.wait_for_output(rf"reason=cert_revoked cert_cn=site-t serial={serial}", 10)


    def test_a_deleted_crl_is_rebuilt_from_the_records_at_start(self):
        h = self.h
        srv = h.setup_server()
        victim = h.ca_issue(srv.conf, "site-u", ORG, city="jinan")
        cli(h, srv, "revoke", "--site", "site-u", name="revoke")
        srv.proc.stop()
        (srv.state_dir / "pki" / "ca.crl").unlink()
        srv = h.start_server(srv.conf, srv.state_dir)
        srv.proc.wait_for_output(r"event=crl_created path=\S+ca\.crl entries=1", 10)
        self.assertTrue(handshake_refused(srv, victim.cert, victim.key))
        srv.proc.wait_for_output(r"reason=cert_revoked cert_cn=site-u", 10)


class Reload(IntegrationTest):
    """SIGHUP rereads the configuration: what can change live does, a broken file changes
    nothing, and what needs a restart is said."""

    def test_sighup_applies_log_level_and_survives_a_broken_config(self):
        h = self.h
        srv = h.setup_server()
        conf = Path(srv.conf)
        good = conf.read_text()
        conf.write_text(good + "log_level = debug\n")
        srv.proc.send(signal.SIGHUP)
        srv.proc.wait_for_output(r"event=tls_reloaded", 10)
        status, _, _ = request(srv, "GET", "/healthz")
        self.assertEqual(status, 200)
        srv.proc.wait_for_output(r"level=debug event=tls_open ", 10)

        conf.write_text(good + "no_such_key = 1\n")
        srv.proc.send(signal.SIGHUP)
        srv.proc.wait_for_output(r"event=reload_failed config=\S+ errors=1 kept=previous", 10)
        conf.write_text(good.replace("listen = 127.0.0.1:0", "listen = 127.0.0.1:1"))
        srv.proc.send(signal.SIGHUP)
        srv.proc.wait_for_output(r"event=reload_partial changed=server.listen", 10)
        status, _, _ = request(srv, "GET", "/healthz")
        self.assertEqual(status, 200)
        self.assertTrue(srv.proc.alive())


class Enrollment(IntegrationTest):
    """venuewatch-agent enroll: key made locally, certificate for the token's site only, each
    token once and only until it expires."""

    def setUp(self):
        super().setUp()
        self.srv = self.h.setup_server()

    def _enroll(self, conf, token, check=True):
        return self.h.run("agent-enroll", [AGENT, "-c", conf, "enroll", "--token", token],
                          check=check)

    def test_agent_enrolls_with_a_token_and_its_certificate_works(self):
        h, srv = self.h, self.srv
        token = enroll_token(h, srv, "site-e", city="qingdao")
        self.assertRegex(token, r"^vwe_[A-Za-z0-9_-]{43}$")
        d = h.path("venue", "pki")
        conf = agent_config(h, "agent.ini", "site-e", srv, d / "agent.crt", d / "agent.key")
        out = self._enroll(conf, token).stdout()
        self.assertRegex(out, r"enrolled site=site-e serial=[0-9A-F]+ ")
        self.assertEqual(stat.S_IMODE(os.stat(d / "agent.key").st_mode), 0o600)
        p = h.run("x509", ["openssl", "x509", "-in", d / "agent.crt", "-noout", "-subject"])
        self.assertIn("CN = site-e, O = org-sec, L = qingdao", p.stdout())
        status, body, _ = request(srv, "POST", "/api/v1/speedtest", b"z" * 4096,
                                  d / "agent.crt", d / "agent.key")
        self.assertEqual((status, body), (200, {"bytes": 4096}))
        srv.proc.wait_for_output(r"event=enrolled site=site-e org=org-sec city=qingdao", 10)

    def test_the_server_not_the_csr_decides_the_subject(self):
        h, srv = self.h, self.srv
        token = enroll_token(h, srv, "site-f", city="jinan")
        csr, _ = make_csr(h, "req", cn="site-evil")
        status, body, _ = request(srv, "POST", "/api/v1/enroll", {"token": token, "csr": csr})
        self.assertEqual(status, 200, body)
        self.assertEqual((body["site"], body["org"], body["city"]), ("site-f", ORG, "jinan"))
        crt = h.write("f.crt", body["certificate"])
        p = h.run("x509", ["openssl", "x509", "-in", crt, "-noout", "-subject"])
        self.assertIn("CN = site-f, O = org-sec, L = jinan", p.stdout())

    def test_used_expired_and_forged_tokens_are_refused(self):
        h, srv = self.h, self.srv
        d = h.path("venue", "pki")
        conf = agent_config(h, "agent.ini", "site-g", srv, d / "agent.crt", d / "agent.key")

        token = enroll_token(h, srv, "site-g")
        self._enroll(conf, token)
        first = (d / "agent.crt").read_bytes()
        used = self._enroll(conf, token, check=False)
        self.assertEqual(used.returncode, 1)
        self.assertIn("enrollment token already used", used.stderr())
        self.assertEqual((d / "agent.crt").read_bytes(), first, "a refusal installs nothing")

        short = enroll_token(h, srv, "site-g", ttl="1s")
        expires = h.procs[-1].stderr().split("expires ")[1].split(".")[0]
        import datetime
        when = datetime.datetime.strptime(expires, "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc)
        wait_for(lambda: datetime.datetime.now(datetime.timezone.utc) > when + datetime.
                 timedelta(seconds=1), 10, "the token's expiry")
        expired = self._enroll(conf, short, check=False)
        self.assertEqual(expired.returncode, 1)
        self.assertIn("enrollment token expired", expired.stderr())

        forged = "vwe_" + "A" * 43
        tampered = token[:-1] + ("B" if token[-1] != "B" else "C")
        for bad in (forged, tampered, "not-a-token"):
            p = self._enroll(conf, bad, check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("unknown enrollment token", p.stderr(), bad)
        self.assertEqual((d / "agent.crt").read_bytes(), first)
        srv.proc.wait_for_output(rf"event=auth_refused {PEER} path=/api/v1/enroll token=\w+ "
                                 r"reason=enroll_token_used", 10)
        srv.proc.wait_for_output(r"reason=enroll_token_expired", 10)
        srv.proc.wait_for_output(r"token=- reason=unknown_enroll_token", 10)
        self.assertNotIn(token, srv.proc.stderr(), "a token must never reach the log")

    def test_a_token_for_another_site_installs_nothing(self):
        h, srv = self.h, self.srv
        token = enroll_token(h, srv, "site-h")
        d = h.path("venue", "pki")
        conf = agent_config(h, "agent.ini", "site-other", srv, d / "agent.crt", d / "agent.key")
        p = self._enroll(conf, token, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("the token was for site 'site-h'", p.stderr())
        self.assertFalse((d / "agent.crt").exists())
        self.assertFalse((d / "agent.key").exists())

    def test_enrollment_refuses_a_collector_it_cannot_verify(self):
        h, srv = self.h, self.srv
        token = enroll_token(h, srv, "site-i")
        foreign = h.path("foreign")
        h.ca_init(h.server_config(foreign, name="foreign.ini"))
        d = h.path("venue", "pki")
        conf = agent_config(h, "agent.ini", "site-i", srv, d / "agent.crt", d / "agent.key",
                            ca=foreign / "pki" / "ca.crt")
        p = self._enroll(conf, token, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot reach the collector", p.stderr())
        # The token never left: it still works against the right CA.
        conf = agent_config(h, "agent2.ini", "site-i", srv, d / "agent.crt", d / "agent.key")
        self._enroll(conf, token)


if __name__ == "__main__":
    main()
