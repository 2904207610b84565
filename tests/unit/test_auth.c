/* The access records: tokens are checked by hash and refused once revoked, an enrollment
 * token works exactly once and only before it expires (also when two connections race for
 * it), the audit log refuses edits and its hash chain shows edits made behind its back; the
 * CA signs a CSR with the subject it is told, not the CSR's, and writes a CRL that lists
 * what was revoked. Real SQLite files and real OpenSSL objects in a temp dir. */
/* cmocka needs these before it, in this order */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "ca.h"
#include "testdir.h"
#include "vtime.h"

static char dir[64], db[128], pki[128];

static int setup(void **state)
{
	(void)state;
	if (testdir_make(dir, sizeof(dir), "auth"))
		return -1;
	snprintf(db, sizeof(db), "%s/auth.db", dir);
	snprintf(pki, sizeof(pki), "%s/pki", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return testdir_remove(dir);
}

static struct auth *open_db(void)
{
	struct auth *a = NULL;
	char err[256] = "";
	int rc = auth_open(db, &a, err, sizeof(err));
	if (rc)
		fail_msg("auth_open: %s", err);
	return a;
}

static void test_ttl_parse(void **state)
{
	(void)state;
	int64_t ms;
	assert_int_equal(auth_parse_ttl("24h", &ms), 0);
	assert_int_equal(ms, 24LL * 3600000);
	assert_int_equal(auth_parse_ttl("90s", &ms), 0);
	assert_int_equal(ms, 90000);
	assert_int_equal(auth_parse_ttl("7d", &ms), 0);
	assert_int_equal(ms, 7LL * 86400000);
	const char *bad[] = {"", "0h", "-1h", "1", "1w", "h", " 1h", "1h ", "99999999999999999d"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(auth_parse_ttl(bad[i], &ms), -EINVAL);
}

static void test_people_tokens(void **state)
{
	(void)state;
	struct auth *a = open_db();
	char tok[AUTH_TOKEN_LEN], id[AUTH_ID_LEN], err[256];
	struct auth_principal who;
	assert_int_equal(auth_token_create(a, AUTH_CITY, "", NULL, NULL, "x", 0, "test", tok, id,
	                                   err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(auth_token_create(a, AUTH_CITY, "jinan", NULL, NULL, "Jinan bureau", 0,
	                                   "test", tok, id, err, sizeof(err)),
	                 0);
	assert_int_equal(strncmp(tok, "vwt_", 4), 0);
	assert_int_equal(strlen(tok), 47);
	assert_int_equal(auth_token_check(a, tok, &who), 0);
	assert_int_equal(who.role, AUTH_CITY);
	assert_string_equal(who.city, "jinan");
	assert_string_equal(who.org, "");
	assert_string_equal(who.id, id);

	/* An org token is bound to its org; the org belongs to no other role. */
	char otok[AUTH_TOKEN_LEN], oid[AUTH_ID_LEN];
	assert_int_equal(auth_token_create(a, AUTH_ORG, "", NULL, NULL, "x", 0, "test", otok, oid,
	                                   err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(auth_token_create(a, AUTH_ORG, "", "bad org", NULL, "x", 0, "test", otok,
	                                   oid, err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(auth_token_create(a, AUTH_CITY, "jinan", "org-a", NULL, "x", 0, "test",
	                                   otok, oid, err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(auth_token_create(a, AUTH_ORG, "", "org-a", NULL, "Org A staff", 0, "test",
	                                   otok, oid, err, sizeof(err)),
	                 0);
	struct auth_principal ow;
	assert_int_equal(auth_token_check(a, otok, &ow), 0);
	assert_int_equal(ow.role, AUTH_ORG);
	assert_string_equal(ow.org, "org-a");
	enum auth_role r;
	assert_int_equal(auth_role_parse("org", &r), 0);
	assert_int_equal(r, AUTH_ORG);
	assert_string_equal(auth_role_name(AUTH_ORG), "org");

	/* issue 12 D: an inspector token names his register id; no other role takes one. */
	char itok[AUTH_TOKEN_LEN], iid[AUTH_ID_LEN];
	assert_int_equal(auth_token_create(a, AUTH_INSPECTOR, "jinan", NULL, NULL, "x", 0, "test",
	                                   itok, iid, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "--inspector"));
	assert_int_equal(auth_token_create(a, AUTH_INSPECTOR, "jinan", NULL, "bad id", "x", 0,
	                                   "test", itok, iid, err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(auth_token_create(a, AUTH_CITY, "jinan", NULL, "I001", "x", 0, "test",
	                                   itok, iid, err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(auth_token_create(a, AUTH_INSPECTOR, "jinan", NULL, "I001", "Zhang", 0,
	                                   "test", itok, iid, err, sizeof(err)),
	                 0);
	struct auth_principal iw;
	assert_int_equal(auth_token_check(a, itok, &iw), 0);
	assert_int_equal(iw.role, AUTH_INSPECTOR);
	assert_string_equal(iw.inspector, "I001");
	assert_string_equal(iw.city, "jinan");
	assert_string_equal(ow.inspector, "");

	char forged[AUTH_TOKEN_LEN];
	snprintf(forged, sizeof(forged), "%s", tok);
	forged[10] = forged[10] == 'A' ? 'B' : 'A';
	assert_int_equal(auth_token_check(a, forged, &who), -ENOENT);
	assert_int_equal(auth_token_check(a, "vwt_short", &who), -ENOENT);
	assert_int_equal(auth_token_check(a, "", &who), -ENOENT);
	assert_int_equal(auth_token_check(a, NULL, &who), -ENOENT);

	assert_int_equal(auth_token_revoke(a, id, "test"), 0);
	assert_int_equal(auth_token_check(a, tok, &who), -EKEYREVOKED);
	assert_int_equal(auth_token_revoke(a, id, "test"), -EALREADY);
	assert_int_equal(auth_token_revoke(a, "0000000000000000", "test"), -ENOENT);
	auth_close(a);
}

/* The redemption's issuer: refuses when told to (a bad CSR), else names a serial. */
static int issue_calls;
static int test_issue(void *ud, const struct auth_enrollment *e, char serial[AUTH_SERIAL_LEN],
                      int64_t *not_after_ms)
{
	(void)e;
	issue_calls++;
	if (ud)
		return -EINVAL;
	snprintf(serial, AUTH_SERIAL_LEN, "5E%04X", issue_calls);
	*not_after_ms = vw_now_ms() + 86400000;
	return 0;
}

static int64_t count_rows(const char *sql)
{
	sqlite3 *raw;
	sqlite3_stmt *st;
	int64_t n = -1;
	if (sqlite3_open(db, &raw) == SQLITE_OK &&
	    sqlite3_prepare_v2(raw, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(raw);
	return n;
}

static void test_enroll_token_once_and_before_expiry(void **state)
{
	(void)state;
	struct auth *a = open_db(), *b = open_db(); /* two connections: two server processes */
	char tok[AUTH_TOKEN_LEN], id[AUTH_ID_LEN], err[256];
	int64_t expires;
	struct auth_enrollment e;
	assert_int_equal(auth_enroll_create(a, "site-1", NULL, "org-1", "jinan", 3600000, "test",
	                                    tok, id, &expires, err, sizeof(err)),
	                 0);
	assert_int_equal(strncmp(tok, "vwe_", 4), 0);
	/* A people's token is not an enrollment token, nor the other way round. */
	struct auth_principal who;
	assert_int_equal(auth_token_check(a, tok, &who), -ENOENT);

	assert_int_equal(auth_enroll_check(b, tok, &e), 0);
	assert_string_equal(e.site, "site-1");
	assert_string_equal(e.agent, "site-1"); /* no agent named: the site's one machine */
	/* An issuer that refuses (a bad CSR) takes the redemption back: the token stays good. */
	int bad = 1;
	assert_int_equal(auth_enroll_redeem(a, tok, "127.0.0.1:0", test_issue, &bad, &e), -EINVAL);
	assert_int_equal(auth_enroll_check(a, tok, &e), 0);
	assert_int_equal(auth_enroll_redeem(a, tok, "127.0.0.1:1", test_issue, NULL, &e), 0);
	assert_string_equal(e.org, "org-1");
	assert_string_equal(e.city, "jinan");
	/* Token spent, certificate on record and audited: one transaction. */
	assert_int_equal(count_rows("SELECT count(*) FROM certs WHERE site = 'site-1' AND "
	                            "source = 'enroll'"),
	                 1);
	assert_int_equal(count_rows("SELECT count(*) FROM audit WHERE action = 'enroll' AND "
	                            "subject = 'site-1'"),
	                 1);
	int calls = issue_calls;
	assert_int_equal(auth_enroll_redeem(b, tok, "127.0.0.1:2", test_issue, NULL, &e),
	                 -EALREADY);
	assert_int_equal(issue_calls, calls); /* a spent token is never signed for */
	assert_int_equal(auth_enroll_check(a, tok, &e), -EALREADY);

	assert_int_equal(auth_enroll_create(a, "site-2", "gate-9", "org-1", "jinan", 1, "test", tok,
	                                    id, &expires, err, sizeof(err)),
	                 0);
	while (vw_now_ms() <= expires) /* a 1 ms lifetime: poll the clock past it */
		;
	assert_int_equal(auth_enroll_redeem(a, tok, "127.0.0.1:3", test_issue, NULL, &e),
	                 -EKEYEXPIRED);
	assert_string_equal(e.agent, "gate-9"); /* the token names the machine it is for */
	assert_int_equal(auth_enroll_redeem(a, "vwe_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	                                    "127.0.0.1:4", test_issue, NULL, &e),
	                 -ENOENT);
	auth_close(b);
	auth_close(a);
}

static void test_audit_append_only_and_chained(void **state)
{
	(void)state;
	struct auth *a = open_db();
	assert_int_equal(auth_audit(a, "cli:root", "revoke", "site-1", "newly_revoked=1"), 0);
	assert_int_equal(auth_audit(a, "cli:root", "token_create", "abc", "role=city"), 0);
	FILE *out = tmpfile();
	assert_int_equal(auth_audit_list(a, 0, out), 0);
	fclose(out);
	auth_close(a);

	sqlite3 *raw;
	assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(raw, "UPDATE audit SET actor = 'x'", NULL, NULL, NULL),
	                     SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(raw, "DELETE FROM audit", NULL, NULL, NULL), SQLITE_OK);
	/* Behind the triggers' back: the chain still tells. */
	assert_int_equal(sqlite3_exec(raw,
	                              "DROP TRIGGER audit_no_delete;"
	                              "DELETE FROM audit WHERE action = 'revoke'",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(raw);
	a = open_db();
	out = tmpfile();
	assert_int_equal(auth_audit_list(a, 0, out), -EBADMSG);
	fclose(out);
	auth_close(a);
}

static void test_revocations_by_site(void **state)
{
	(void)state;
	struct auth *a = open_db();
	int n;
	assert_int_equal(auth_revoke_site(a, "site-9", "test", &n), -ENOENT);
	assert_int_equal(auth_cert_record(a, "AA01", "site-9", "org", "jinan", 0, "test"), 0);
	assert_int_equal(auth_agent_seen(a, "BB02", "site-9", "org", "jinan", "127.0.0.1:1"), 0);
	assert_int_equal(auth_agent_seen(a, "BB02", "site-9", "org", "jinan", "127.0.0.1:1"), 0);
	assert_int_equal(auth_revoke_site(a, "site-9", "test", &n), 0);
	assert_int_equal(n, 2); /* issued here, and seen in use */
	assert_int_equal(auth_revoke_site(a, "site-9", "test", &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(auth_revoke_serial(a, "CC03", "test", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(auth_revoke_serial(a, "CC03", "test", &n), 0);
	assert_int_equal(n, 0);
	/* Each revocation carries its audit row (same transaction). */
	assert_int_equal(count_rows("SELECT count(*) FROM audit WHERE action = 'revoke'"), 4);
	struct auth_revoked *list;
	size_t count;
	assert_int_equal(auth_revoked_list(a, &list, &count), 0);
	assert_int_equal(count, 3);
	assert_string_equal(list[0].serial, "AA01");
	free(list);
	auth_close(a);
}

/* A site's org is what can still report for it: a live certificate, then an agent seen in
 * use, then a pending enrollment token; never an expired token. */
static void test_site_place_prefers_what_can_still_report(void **state)
{
	(void)state;
	struct auth *a = open_db();
	char org[65], city[129], tok[AUTH_TOKEN_LEN], id[AUTH_ID_LEN], err[256];
	int64_t expires;
	int n;
	assert_int_equal(auth_enroll_create(a, "site-p", NULL, "org-old", "jinan", 1, "test", tok,
	                                    id, &expires, err, sizeof(err)),
	                 0);
	while (vw_now_ms() <= expires) /* a 1 ms lifetime: poll the clock past it */
		;
	assert_int_equal(auth_site_place(a, "site-p", org, city), -ENOENT);
	assert_int_equal(auth_enroll_create(a, "site-p", NULL, "org-tok", "qingdao", 3600000,
	                                    "test", tok, id, &expires, err, sizeof(err)),
	                 0);
	assert_int_equal(auth_site_place(a, "site-p", org, city), 0);
	assert_string_equal(org, "org-tok");
	assert_string_equal(city, "qingdao");
	/* An agent in use outranks a token, newer or not. */
	assert_int_equal(auth_agent_seen(a, "DD04", "site-p", "org-agent", "jinan", "127.0.0.1:1"),
	                 0);
	assert_int_equal(auth_site_place(a, "site-p", org, city), 0);
	assert_string_equal(org, "org-agent");
	/* A live certificate outranks both; revoked, it says nothing, nor does its agent. */
	assert_int_equal(
	    auth_cert_record(a, "EE05", "site-p", "org-cert", "jinan", vw_now_ms() + 86400000, "t"),
	    0);
	assert_int_equal(auth_site_place(a, "site-p", org, city), 0);
	assert_string_equal(org, "org-cert");
	assert_int_equal(auth_revoke_serial(a, "EE05", "test", &n), 0);
	assert_int_equal(auth_site_place(a, "site-p", org, city), 0);
	assert_string_equal(org, "org-agent");
	assert_int_equal(auth_revoke_serial(a, "DD04", "test", &n), 0);
	assert_int_equal(auth_site_place(a, "site-p", org, city), 0);
	assert_string_equal(org, "org-tok");
	/* An agent whose certificate is on record as expired says nothing either. */
	assert_int_equal(auth_cert_record(a, "FF06", "site-q", "org-gone", "jinan", 1, "t"), 0);
	assert_int_equal(auth_agent_seen(a, "FF06", "site-q", "org-gone", "jinan", "127.0.0.1:2"),
	                 0);
	assert_int_equal(auth_site_place(a, "site-q", org, city), -ENOENT);
	auth_close(a);
}

static char *csr_pem(EVP_PKEY *key, const char *cn)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_REQ_get_subject_name(req);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_REQ_set_pubkey(req, key);
	X509_REQ_sign(req, key, EVP_sha256());
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509_REQ(b, req);
	char *p;
	long n = BIO_get_mem_data(b, &p);
	char *out = strndup(p, (size_t)n);
	BIO_free(b);
	X509_REQ_free(req);
	return out;
}

static void test_ca_signs_csr_with_the_given_subject_and_writes_crl(void **state)
{
	(void)state;
	char err[256] = "", serial[64];
	assert_int_equal(ca_init(pki, "localhost", 0, err, sizeof(err)), 0);
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char *csr = csr_pem(key, "site-evil");
	char *cert = NULL, *ca = NULL;
	int64_t not_after;
	assert_int_equal(ca_sign_csr(pki, csr, strlen(csr), "site-1", "gate-1", "org-1", "jinan",
	                             &cert, &ca, serial, sizeof(serial), &not_after, err,
	                             sizeof(err)),
	                 0);
	BIO *b = BIO_new_mem_buf(cert, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(x);
	char subj[256];
	X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
	assert_string_equal(subj, "/CN=site-1/O=org-1/L=jinan/UID=gate-1");
	assert_int_equal(X509_check_private_key(x, key), 1);
	X509_free(x);
	free(cert);
	free(ca);

	/* A CSR whose signature does not verify is no proof of possession. */
	char *bad = strdup(csr);
	char *mid = strstr(bad, "\n") + 20;
	*mid = *mid == 'A' ? 'B' : 'A';
	assert_int_equal(ca_sign_csr(pki, bad, strlen(bad), "site-1", NULL, "org-1", "jinan", &cert,
	                             &ca, serial, sizeof(serial), &not_after, err, sizeof(err)),
	                 -EINVAL);
	assert_int_equal(ca_sign_csr(pki, "junk", 4, "site-1", NULL, "org-1", "jinan", &cert, &ca,
	                             serial, sizeof(serial), &not_after, err, sizeof(err)),
	                 -EINVAL);
	free(bad);
	free(csr);
	EVP_PKEY_free(key);

	EVP_PKEY *weak = EVP_RSA_gen(1024);
	csr = csr_pem(weak, "site-1");
	assert_int_equal(ca_sign_csr(pki, csr, strlen(csr), "site-1", NULL, "org-1", "", &cert, &ca,
	                             serial, sizeof(serial), &not_after, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "2048"));
	free(csr);
	EVP_PKEY_free(weak);

	char norm[64];
	assert_int_equal(ca_serial_normalize("0x00:ab:CD", norm, sizeof(norm)), 0);
	assert_string_equal(norm, "ABCD");
	assert_int_equal(ca_serial_normalize("xyz", norm, sizeof(norm)), -EINVAL);
	assert_int_equal(ca_serial_normalize("", norm, sizeof(norm)), -EINVAL);

	struct ca_revoked list[] = {{serial, vw_now_ms()}, {"ABCD", vw_now_ms()}};
	assert_int_equal(ca_crl_write(pki, list, 2, err, sizeof(err)), 0);
	char path[256];
	snprintf(path, sizeof(path), "%s/ca.crl", pki);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	X509_CRL *crl = PEM_read_X509_CRL(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(crl);
	assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 2);
	X509_CRL_free(crl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ttl_parse),
	    cmocka_unit_test_setup_teardown(test_people_tokens, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_enroll_token_once_and_before_expiry, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_audit_append_only_and_chained, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_revocations_by_site, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_site_place_prefers_what_can_still_report, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_ca_signs_csr_with_the_given_subject_and_writes_crl,
	                                    setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
