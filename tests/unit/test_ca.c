/* The CA: init creates a P-256 CA and a server certificate with the configured SANs, keys
 * are 0600, an existing CA is never replaced without force, and an issued agent
 * certificate verifies for client auth and names site, org and city. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ca.h"
#include "testdir.h"

static char dir[64], pki[128], out[128];

static int setup(void **state)
{
	(void)state;
	if (testdir_make(dir, sizeof(dir), "ca"))
		return -1;
	snprintf(pki, sizeof(pki), "%s/state/pki", dir);
	snprintf(out, sizeof(out), "%s/agent-out", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return testdir_remove(dir);
}

static X509 *load_cert(const char *d, const char *name)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", d, name);
	FILE *fp = fopen(p, "r");
	assert_non_null(fp);
	X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	return x;
}

static int mode_of(const char *d, const char *name)
{
	char p[256];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", d, name);
	assert_int_equal(stat(p, &st), 0);
	return (int)(st.st_mode & 0777);
}

static int verifies(X509 *ca, X509 *leaf, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_add_cert(store, ca);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_STORE_CTX_init(ctx, store, leaf, NULL);
	X509_STORE_CTX_set_purpose(ctx, purpose);
	int ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ok == 1;
}

static void entry(X509 *x, int nid, char *buf, size_t n)
{
	buf[0] = '\0';
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), nid, buf, (int)n);
}

static void init_creates_ca_and_server_cert(void **state)
{
	(void)state;
	char err[512];
	int rc = ca_init(pki, "collector.example, 10.1.2.3", 0, err, sizeof(err));
	if (rc)
		fail_msg("%s", err);
	assert_int_equal(mode_of(pki, "ca.key"), 0600);
	assert_int_equal(mode_of(pki, "server.key"), 0600);
	assert_int_equal(mode_of(pki, "ca.crt"), 0644);
	X509 *ca = load_cert(pki, "ca.crt"), *srv = load_cert(pki, "server.crt");
	assert_true(X509_check_ca(ca) >= 1);
	assert_true(verifies(ca, srv, X509_PURPOSE_SSL_SERVER));
	assert_int_equal(X509_check_host(srv, "collector.example", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(srv, "10.1.2.3", 0), 1);
	assert_int_equal(X509_check_host(srv, "other.example", 0, 0, NULL), 0);
	/* ~10 years */
	int days, secs;
	assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(ca), X509_get0_notAfter(ca)), 1);
	assert_true(days >= 3650 && days <= 3651);
	X509_free(ca);
	X509_free(srv);

	assert_int_equal(ca_init(pki, "localhost", 0, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "--force"));
	assert_int_equal(ca_init(pki, "localhost", 1, err, sizeof(err)), 0);
}

static void issued_agent_cert_names_the_site(void **state)
{
	(void)state;
	char err[512], serial[64];
	assert_int_equal(ca_init(pki, "localhost", 0, err, sizeof(err)), 0);
	struct ca_issue_opts o = {"site-7", NULL, "org-3", "济南", out, 0};
	int rc = ca_issue(pki, &o, serial, sizeof(serial), err, sizeof(err));
	if (rc)
		fail_msg("%s", err);
	assert_int_equal(strlen(serial), 32); /* 128 bits */
	assert_int_equal(mode_of(out, "agent.key"), 0600);
	X509 *ca = load_cert(pki, "ca.crt"), *a = load_cert(out, "agent.crt"),
	     *copy = load_cert(out, "ca.crt");
	assert_int_equal(X509_cmp(ca, copy), 0);
	assert_true(verifies(ca, a, X509_PURPOSE_SSL_CLIENT));
	assert_false(verifies(ca, a, X509_PURPOSE_SSL_SERVER)); /* clientAuth only */
	char buf[128];
	entry(a, NID_commonName, buf, sizeof(buf));
	assert_string_equal(buf, "site-7");
	entry(a, NID_organizationName, buf, sizeof(buf));
	assert_string_equal(buf, "org-3");
	entry(a, NID_localityName, buf, sizeof(buf));
	assert_string_equal(buf, "济南");
	entry(a, NID_userId, buf, sizeof(buf)); /* no --agent: the site's one machine */
	assert_string_equal(buf, "site-7");
	X509_free(ca);
	X509_free(a);
	X509_free(copy);

	/* --agent names the venue machine in UID; CN stays the site */
	struct ca_issue_opts named = o;
	named.agent = "gate-2";
	named.force = 1;
	assert_int_equal(ca_issue(pki, &named, serial, sizeof(serial), err, sizeof(err)), 0);
	a = load_cert(out, "agent.crt");
	entry(a, NID_userId, buf, sizeof(buf));
	assert_string_equal(buf, "gate-2");
	entry(a, NID_commonName, buf, sizeof(buf));
	assert_string_equal(buf, "site-7");
	X509_free(a);
	named.agent = "gate 2";
	assert_int_equal(ca_issue(pki, &named, serial, sizeof(serial), err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--agent"));

	/* no overwrite without force; bad names refused before anything is written */
	assert_int_equal(ca_issue(pki, &o, serial, sizeof(serial), err, sizeof(err)), -EEXIST);
	o.force = 1;
	assert_int_equal(ca_issue(pki, &o, serial, sizeof(serial), err, sizeof(err)), 0);
	struct ca_issue_opts bad = {"site 7", NULL, "org", NULL, out, 1};
	assert_int_equal(ca_issue(pki, &bad, serial, sizeof(serial), err, sizeof(err)), -EINVAL);
	struct ca_issue_opts bad_city = {"s", NULL, "org", "Ji nan", out, 1};
	assert_int_equal(ca_issue(pki, &bad_city, serial, sizeof(serial), err, sizeof(err)), -EINVAL);
}

static void issue_without_a_ca_says_so(void **state)
{
	(void)state;
	char err[512], serial[64];
	struct ca_issue_opts o = {"s", NULL, "o", NULL, out, 0};
	assert_int_equal(ca_issue(pki, &o, serial, sizeof(serial), err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "ca init"));
}

/* org and city go into certificate subjects as UTF8String: whole UTF-8 characters only. */
static void names_for_certificates_must_be_utf8(void **state)
{
	(void)state;
	assert_true(ca_name_valid("org-1"));
	assert_true(ca_name_valid("济南"));
	assert_false(ca_name_valid("\xe6\xb5"));         /* truncated 济 */
	assert_false(ca_name_valid("ji\xc0\xaf"));       /* overlong '/' */
	assert_false(ca_name_valid("\xed\xa0\x80" "city")); /* surrogate */
	assert_false(ca_name_valid("a b"));
	assert_false(ca_name_valid(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(init_creates_ca_and_server_cert, setup, teardown),
		cmocka_unit_test_setup_teardown(issued_agent_cert_names_the_site, setup, teardown),
		cmocka_unit_test_setup_teardown(issue_without_a_ca_says_so, setup, teardown),
		cmocka_unit_test(names_for_certificates_must_be_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
