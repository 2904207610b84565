/* The CA: init creates a P-256 CA and a server certificate with the configured SANs, keys
 * are 0600, an existing CA is never replaced without force, and an issued agent
 * certificate verifies for client auth and names site, org and city; a CSR's RSA key past
 * 8192 bits is refused. */
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

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
	assert_int_equal(
	    ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(ca), X509_get0_notAfter(ca)), 1);
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
	assert_int_equal(ca_issue(pki, &bad_city, serial, sizeof(serial), err, sizeof(err)),
	                 -EINVAL);
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
	assert_false(ca_name_valid("\xe6\xb5"));   /* truncated 济 */
	assert_false(ca_name_valid("ji\xc0\xaf")); /* overlong '/' */
	assert_false(ca_name_valid("\xed\xa0\x80"
	                           "city")); /* surrogate */
	assert_false(ca_name_valid("a b"));
	assert_false(ca_name_valid(""));
}

/* A CSR for an 8200-bit RSA key (openssl genpkey rsa_keygen_bits:8200, then req -new; made
 * once: generating one takes half a minute). */
static const char rsa8200_csr[] =
    "-----BEGIN CERTIFICATE REQUEST-----\n"
    "MIIIUzCCBDoCAQAwDDEKMAgGA1UEAwwBeDCCBCMwDQYJKoZIhvcNAQEBBQADggQQ\n"
    "ADCCBAsCggQCAOipFJC38scG/vaaddP2XeXrc8/7uw5bIBZ7cKuArnlVaHi9JKxP\n"
    "E7ya8rGugeSI7e9eGBgPUL0kYFQpAk75hrCLecY2PNW+kXDTDNpDty/udJLP8wfw\n"
    "qR4xWINT3vbf5zsZx8DWx8tjX2gR8mQTEwiIkZr8n27M/y8/qw+BsGWtgfeqP4Fr\n"
    "aOe8IW4D0ldWTfbI/EH3QYIJlalPl678+o4BtVQ/IoX+I6riiiNQhLbZ5ACQJXyh\n"
    "+RGUALLNs6l8JF/Q/oNYAUOXstgO46EREMq8D73WD9rkY+V+aLtq2i+q+7PBmt9s\n"
    "TqwFhp8OxUNsGBwopdPtlHRYm6gp/NXjvkoEp+8vODCT0kLGw+/0IfmCpllVOZiH\n"
    "5o85OKMVfxxPfeJbkykDVnoJQERiy/5Dc86Pq30//CLdS4MLNjxDzcOhV7Fmum25\n"
    "BNYKeydgL7tY3nJmuniT3CH7EdSmzv+bE3i3AO1E4BIFiE3D1RfLx1yHRawpGpy6\n"
    "n4MnzGWLwqyRBPd6DfqhFdiFEiV8JiSsq45I+Cqm0Vp431kcjU0IbDK0cNzIQER2\n"
    "TZ50XX7ssCFsuaYLzPfDq3SumlZg2LvZ1p7V8j//Wq8ss0M4ALdn2ahWDCUZcpP/\n"
    "+qh882LLbOmTwlIYvI2vZlVfRztv6Q6gqTCRXwJpY/iipAnYzImINV4y+XQTG3WA\n"
    "oarVYgA6/8+kPhAZRxGAtERQfEynm9vARTEgQAKJgI/whUfZq1Da2j6U/8m/fpWC\n"
    "J52l5qYvaxzZRrML6PrK9I+5VFYrLB7VoBcbsQkjM44X7CUD1lby0NoczVSDbHXa\n"
    "5X8daH6uS+EadMYnIj1/HjmQ+BZB+1m+xNFTtw5MyiFCqhlrMI51RdaTajsXCjig\n"
    "eilkXLbb3eIDn/k6+nsnOf7Exxiww2f4/do/VFmDjEEByxgiZJXOTEZvs3POrgUQ\n"
    "L8fiABdOzlgjUE+3iKNbPlJcY1OlG7HwrjSwcARXiAIcz2C2ItTWT6giYnMNWRYW\n"
    "sLdA9CPFEbJ2t9FIf6tLL0pWqZryHt+KQVA6nHVD3vA/frkQYtfueC+P11dgzFA1\n"
    "89/NE9EvJy9E5GSF1v+4tZf5zXEtbLvMjMDYt/KTo4G/bBoqA+E063fZMjP/88FR\n"
    "mUcPSeOdOmb9F94yrQ4HzQ+W1koQSQC4S1fEmDGWqjdMd0nGEaCm+ltYKW9Y1xbL\n"
    "3Vanswq/nZwUNbEKh79T3O8Ug5JvRg3Z5pgLcnAQpP06z8myOWmfNPXWmPz+ODCP\n"
    "sggzdCHzUhSYkoAvLWRv73y+orWDoU8sLPPhlMa0y0VsWzGb8gkT5AZPPPs7U1of\n"
    "TEO5yAULpsgxDQA/MXDbnkeOXbNJ8upXRdihAgMBAAGgADANBgkqhkiG9w0BAQsF\n"
    "AAOCBAIAgKGjCUGYZ8QbINcmlJfhApsPY1ajuzG378DRFrDIbVY4ri6howayYg27\n"
    "PHdBAxvRe1vWNlVtAsocDXC2FwH4iqUaunVzr9nSezvt0FFv+nHi3404CD4W4v/d\n"
    "ypI478txv0Bm7REJguVoPrmTjfGtcYNh8fwTxU3i8lErlg7mHbOEh7nzhLptqxc8\n"
    "fftSUor232Q+0SDMBkuQiPmZJn6z/302rU611hnrmpI/qZTPMFTPMBrCPIPJ/XxL\n"
    "88uKVEp3OePV8ypBWOV9iH7fhOa/zgHb4qxbGca8o6uMUI4vQfREH7zUyvl1aYNT\n"
    "8sSCMfGhJtvkwkFWd0zATn8qMA678FbakIw6rsyFCSY25QwHUCCddlyE8f0IA8hq\n"
    "h5uIBN5ZMcJjpvaVdqf4fTvhxaGNyeIHFPV0LMpak1yjUCxE06B/kGDKMDOeIbi/\n"
    "MLe1SZ0QMQy/j8/+2mMRHGyUMeDy9xE57YVpkd9vdJT7nB/sRpGkN4xgQ3zazEjm\n"
    "YnEfTgCEfxML7OZ7bYIu97/uopxd5kys8E5CGiNhjcLHoP7aG7wthp/ACVreSry0\n"
    "Dd5qD5Btw0fM0yzQCPPIdFpToF8TsZFU47mSNfuxgYw2G7m9dlsIsYHV3nR58keS\n"
    "oCHxY5RuK5Yni4cMPoJB9UGntPI4725KJvZ+Uf2IIJwgi6fO47mZ323eECQG2V7b\n"
    "tL//TXQjaZIQElxdLzqU4hdgWETL3BUDzchHwbklgFxZtREcd+cqSMna3jSG4uNJ\n"
    "nTx48ZJ7R5k3hAqjP5Z4vj5+YWOtu408xX6tlwuk4//KLK1NqJyCYz0rCPQpRrM9\n"
    "1xSSJSyKZbWyBqLV1lJj3geknMiYJRTlycg7RGuQcfH0i32i694LnVCz03KNtjTX\n"
    "8/lbhappd/L2iGsT5/sg8wP8nYFiNI4swMexS75mDeHWS7IS0jULaefWYIfTeVAg\n"
    "pqbvhI7B82I5kNiH7uLVfVDaYY+0Qp/B5a11krY5LVLV4ZQSSxxgdtzuBCIBSoeM\n"
    "9Dx1jGxafJE8wGabd/KJlj/n0Yh6s9AWchhR4y18Wir8GyaCePf1KwOv0xXgqpxI\n"
    "6jOpU+R41yIjgn3KdygkFiehU0UaCG67SeWkDUcOYv7gDQ+H+OuE5wNQd+Bo0RZW\n"
    "+Fd4cb/MawU7hijCGZmEPxvpEgJd6C47yc8hdZzW2i0dVH/p9EEmoQQ7Unht/jFT\n"
    "bIxCgCC+PxhOu3QnYhvWGkqSu9hDih6gLmgxNSGIoEZtOPd+Zr2iGOXWOcCtGJZ6\n"
    "+GKehOEUZtFuQVOEZjOm7aMR6jFTPsK/+gUYr8OCAfr21HNDF5Nhsj7zBDCQpPy/\n"
    "Cfe+1dEfRQW4Y6d/BWUMyjQMDDdF/kc=\n"
    "-----END CERTIFICATE REQUEST-----\n";

static void an_rsa_key_past_8192_bits_is_refused(void **state)
{
	(void)state;
	char err[512], serial[64];
	char *cert = NULL, *cacert = NULL;
	int64_t not_after = 0;
	assert_int_equal(ca_init(pki, "localhost", 0, err, sizeof(err)), 0);
	int rc = ca_sign_csr(pki, rsa8200_csr, sizeof(rsa8200_csr) - 1, "site-7", "", "org-3", "",
	                     &cert, &cacert, serial, sizeof(serial), &not_after, err, sizeof(err));
	assert_int_equal(rc, -EINVAL);
	assert_null(cert);
	if (!strstr(err, "8200 bits") || !strstr(err, "8192"))
		fail_msg("unexpected reason: %s", err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(init_creates_ca_and_server_cert, setup, teardown),
	    cmocka_unit_test_setup_teardown(issued_agent_cert_names_the_site, setup, teardown),
	    cmocka_unit_test_setup_teardown(issue_without_a_ca_says_so, setup, teardown),
	    cmocka_unit_test(names_for_certificates_must_be_utf8),
	    cmocka_unit_test_setup_teardown(an_rsa_key_past_8192_bits_is_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
