#!/usr/bin/python3
"""A change and its audit row commit together: a process killed at any step of a revocation
or an enrollment (VW_TEST_CRASH_AT, see README "Who gets in") leaves both or neither, and a
CRL left behind by a crash after the commit is rewritten when the server starts.

    /usr/bin/python3 tests/security/test_audit_txn.py [-k PATTERN]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secharness import (ORG, SERVER, IntegrationTest, enroll_token, handshake_refused,  # noqa
                        main, make_csr, query, request)

CRASHED = 99


def crash_run(h, conf, point, *args):
    """venuewatch-server -c CONF ARGS with VW_TEST_CRASH_AT=point; returns its exit code."""
    p = h.start("crash-" + point, [SERVER, "-c", conf, *args], env={"VW_TEST_CRASH_AT": point})
    p.wait(60)
    p.stop()
    return p.returncode


def crl_serials(h, pki):
    p = h.run("crl", ["openssl", "crl", "-in", pki / "ca.crl", "-noout", "-text"])
    return p.stdout()


class Revocation(IntegrationTest):

    def setUp(self):
        super().setUp()
        h = self.h
        self.state = h.path("srv")
        self.conf = h.server_config(self.state, name="srv.ini")
        h.ca_init(self.conf)
        self.victim = h.ca_issue(self.conf, "site-v", ORG, city="jinan")
        self.db = self.state / "auth.db"
        self.serial = query(self.db, "SELECT serial FROM certs WHERE site='site-v'")[0][0]

    def _rows(self):
        rev = query(self.db, "SELECT count(*) FROM revocations")[0][0]
        aud = query(self.db, "SELECT count(*) FROM audit WHERE action='revoke'")[0][0]
        return rev, aud

    def test_crash_inside_the_transaction_leaves_neither(self):
        rc = crash_run(self.h, self.conf, "revoke_before_audit", "revoke", "--site", "site-v")
        self.assertEqual(rc, CRASHED)
        self.assertEqual(self._rows(), (0, 0))
        self.assertNotIn(self.serial, crl_serials(self.h, self.state / "pki"))

    def test_crash_after_the_commit_leaves_both_and_the_crl_is_rewritten_at_start(self):
        h = self.h
        rc = crash_run(h, self.conf, "revoke_after_commit", "revoke", "--site", "site-v")
        self.assertEqual(rc, CRASHED)
        self.assertEqual(self._rows(), (1, 1), "the revocation with its audit row")
        self.assertNotIn(self.serial, crl_serials(h, self.state / "pki"),
                         "the crash came before the CRL")
        srv = h.start_server(self.conf, self.state)
        srv.proc.wait_for_output(r"event=crl_created path=\S+ca\.crl entries=1 "
                                 r"reason=behind_revocations", 10)
        self.assertIn(self.serial, crl_serials(h, self.state / "pki"))
        self.assertTrue(handshake_refused(srv, self.victim.cert, self.victim.key))
        p = h.run("audit", [SERVER, "-c", self.conf, "audit"])
        self.assertIn("audit chain: intact", p.stdout())

    def test_a_current_crl_is_left_alone_at_start(self):
        h = self.h
        h.run("revoke", [SERVER, "-c", self.conf, "revoke", "--site", "site-v"])
        srv = h.start_server(self.conf, self.state)
        srv.proc.wait_for_output(r"event=signer_ready", 10)
        self.assertNotIn("event=crl_created", srv.proc.stderr())


class Enrollment(IntegrationTest):

    def _setup(self, point):
        h = self.h
        self.state = h.path("srv")
        self.conf = h.server_config(self.state, name="srv.ini")
        h.ca_init(self.conf)
        p = h.start("server", [SERVER, "-c", self.conf], env={"VW_TEST_CRASH_AT": point})
        m = p.wait_for_output(r"event=listening\b.*\bport=(\d+)", 20)
        from harness import Server
        self.srv = Server(p, int(m.group(1)), self.conf, self.state)
        self.db = self.state / "auth.db"

    def _enroll(self):
        token = enroll_token(self.h, self.srv, "site-n")
        csr, _ = make_csr(self.h, "req")
        return request(self.srv, "POST", "/api/v1/enroll", {"token": token, "csr": csr})

    def _rows(self):
        used = query(self.db, "SELECT count(*) FROM enroll_tokens WHERE used_ms IS NOT NULL")
        certs = query(self.db, "SELECT count(*) FROM certs WHERE source='enroll'")
        aud = query(self.db, "SELECT count(*) FROM audit WHERE action='enroll'")
        return used[0][0], certs[0][0], aud[0][0]

    def test_signer_crash_before_the_commit_spends_nothing(self):
        self._setup("enroll_before_commit")
        status, body, _ = self._enroll()
        self.assertEqual(status, 503, body)
        self.srv.proc.wait_for_output(r"event=signer_exited status=99", 10)
        self.assertEqual(self._rows(), (0, 0, 0))

    def test_signer_crash_after_the_commit_leaves_token_cert_and_audit_together(self):
        self._setup("enroll_after_commit")
        status, body, _ = self._enroll()
        self.assertEqual(status, 503, body)  # the certificate never left: the signer died
        self.srv.proc.wait_for_output(r"event=signer_exited status=99", 10)
        self.assertEqual(self._rows(), (1, 1, 1))
        self.srv.proc.wait_for_output(r"event=signer_ready pid=\d+ restarts=1", 20)


if __name__ == "__main__":
    main()
