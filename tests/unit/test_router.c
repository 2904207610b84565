/* The route matcher and the static files' path checks: which route a method and path
 * reach, parameters validated as ids, 405's Allow list, HEAD reaching GET routes, and
 * every traversal spelling refused before any file is opened. No sockets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "authz.h"
#include "router.h"
#include "static.h"

static void h_a(struct api *a, struct conn *c, const struct http_request *r,
                const struct router_match *m, const struct authz_principal *w)
{
	(void)a, (void)c, (void)r, (void)m, (void)w;
}
static void h_b(struct api *a, struct conn *c, const struct http_request *r,
                const struct router_match *m, const struct authz_principal *w)
{
	(void)a, (void)c, (void)r, (void)m, (void)w;
}

static const struct router_route table[] = {
    {HTTP_VERB_GET, "/healthz", AUTHZ_ANON, h_a},
    {HTTP_VERB_POST, "/api/v1/ingest", AUTHZ_AGENT_CERT, h_a},
    {HTTP_VERB_GET, "/api/v1/sites", AUTHZ_SITE_READERS, h_a},
    {HTTP_VERB_GET, "/api/v1/sites.csv", AUTHZ_SITE_READERS, h_b},
    {HTTP_VERB_GET, "/api/v1/sites/{site}", AUTHZ_SITE_READERS, h_b},
    {HTTP_VERB_POST, "/api/v1/sites/{site}", AUTHZ_PROVINCE, h_a},
    {HTTP_VERB_GET, "/api/v1/orgs/{org}/sites/{site}", AUTHZ_SITE_READERS, h_a},
};
#define N (sizeof(table) / sizeof(table[0]))

static void literal_paths_match_exactly(void **state)
{
	(void)state;
	struct router_match m;
	assert_int_equal(router_match(table, N, HTTP_VERB_GET, "/healthz", &m), ROUTER_FOUND);
	assert_ptr_equal(m.route, &table[0]);
	assert_int_equal(router_match(table, N, HTTP_VERB_GET, "/healthz/", &m), ROUTER_NO_PATH);
	assert_int_equal(router_match(table, N, HTTP_VERB_GET, "/healthzz", &m), ROUTER_NO_PATH);
	assert_int_equal(router_match(table, N, HTTP_VERB_GET, "/", &m), ROUTER_NO_PATH);
	assert_int_equal(router_match(table, N, HTTP_VERB_GET, "", &m), ROUTER_NO_PATH);
	assert_int_equal(router_match(table, N, HTTP_VERB_GET, "/api/v1/sites.csv", &m),
	                 ROUTER_FOUND);
	assert_ptr_equal(m.route, &table[3]);
}

static void parameters_are_ids_or_no_match(void **state)
{
	(void)state;
	struct router_match m;
	assert_int_equal(router_match(table, N, HTTP_VERB_GET, "/api/v1/sites/site-jn", &m),
	                 ROUTER_FOUND);
	assert_ptr_equal(m.route, &table[4]);
	assert_string_equal(router_param(&m, "site"), "site-jn");
	assert_null(router_param(&m, "org"));
	assert_int_equal(router_match(table, N, HTTP_VERB_GET, "/api/v1/orgs/org-a/sites/s1", &m),
	                 ROUTER_FOUND);
	assert_string_equal(router_param(&m, "org"), "org-a");
	assert_string_equal(router_param(&m, "site"), "s1");
	/* Not ids: percent-encoding, traversal, empty, too long. */
	const char *bad[] = {"/api/v1/sites/..%2f", "/api/v1/sites/%2e%2e", "/api/v1/sites/",
	                     "/api/v1/sites//",     "/api/v1/sites/a b",    "/api/v1/sites/a/b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(router_match(table, N, HTTP_VERB_GET, bad[i], &m), ROUTER_NO_PATH);
	char longid[80];
	memset(longid, 'a', sizeof(longid));
	memcpy(longid, "/api/v1/sites/", 14);
	longid[79] = '\0';
	assert_int_equal(router_match(table, N, HTTP_VERB_GET, longid, &m), ROUTER_NO_PATH);
}

static void head_reaches_get_and_other_methods_get_allow(void **state)
{
	(void)state;
	struct router_match m;
	assert_int_equal(router_match(table, N, HTTP_VERB_HEAD, "/api/v1/sites", &m), ROUTER_FOUND);
	assert_ptr_equal(m.route, &table[2]);
	assert_int_equal(router_match(table, N, HTTP_VERB_POST, "/api/v1/sites", &m),
	                 ROUTER_NO_METHOD);
	assert_int_equal(m.allow, ROUTER_ALLOW_GET);
	assert_null(m.route);
	assert_int_equal(router_match(table, N, HTTP_VERB_OTHER, "/api/v1/sites/x", &m),
	                 ROUTER_NO_METHOD);
	assert_int_equal(m.allow, ROUTER_ALLOW_GET | ROUTER_ALLOW_POST);
	assert_int_equal(router_match(table, N, HTTP_VERB_POST, "/api/v1/sites/x", &m),
	                 ROUTER_FOUND);
	assert_ptr_equal(m.route, &table[5]);
	assert_int_equal(router_match(table, N, HTTP_VERB_GET, "/api/v1/ingest", &m),
	                 ROUTER_NO_METHOD);
	assert_int_equal(m.allow, ROUTER_ALLOW_POST);

	char h[64];
	assert_int_equal(router_allow_header(ROUTER_ALLOW_GET, h, sizeof(h)), 0);
	assert_string_equal(h, "Allow: GET, HEAD\r\n");
	assert_int_equal(router_allow_header(ROUTER_ALLOW_POST, h, sizeof(h)), 0);
	assert_string_equal(h, "Allow: POST\r\n");
	assert_int_equal(router_allow_header(ROUTER_ALLOW_GET | ROUTER_ALLOW_POST, h, sizeof(h)),
	                 0);
	assert_string_equal(h, "Allow: GET, HEAD, POST\r\n");
	assert_int_equal(router_allow_header(ROUTER_ALLOW_GET, h, 8), -ENOSPC);
}

static void scope_is_city_org_or_all_and_empty_matches_nothing(void **state)
{
	(void)state;
	struct authz_principal p = {.kind = AUTHZ_PERSON};
	p.person.role = AUTH_PROVINCE;
	assert_true(authz_site_visible(&p, "s", "o", "jinan"));
	assert_true(authz_site_visible(&p, "s", "", ""));
	p.person.role = AUTH_CITY;
	strcpy(p.person.city, "jinan");
	assert_true(authz_site_visible(&p, "s", "o", "jinan"));
	assert_false(authz_site_visible(&p, "s", "o", "qingdao"));
	assert_false(authz_site_visible(&p, "s", "o", ""));
	p.person.city[0] = '\0';
	assert_false(authz_site_visible(&p, "s", "o", ""));
	p.person.role = AUTH_ORG;
	strcpy(p.person.org, "org-a");
	assert_true(authz_site_visible(&p, "s", "org-a", "x"));
	assert_false(authz_site_visible(&p, "s", "org-b", "x"));
	assert_false(authz_site_visible(&p, "s", "", "x"));
	p.person.role = AUTH_INSPECTOR;
	assert_false(authz_site_visible(&p, "s", "org-a", "x"));
	p.person.role = AUTH_PUBLIC;
	assert_false(authz_site_visible(&p, "s", "org-a", "x"));
	struct authz_principal ag = {.kind = AUTHZ_AGENT};
	strcpy(ag.agent.site, "s1");
	assert_true(authz_site_visible(&ag, "s1", "o", "c"));
	assert_false(authz_site_visible(&ag, "s2", "o", "c"));
	struct authz_principal anon = {.kind = AUTHZ_ANONYMOUS};
	assert_false(authz_site_visible(&anon, "s1", "o", "c"));
	assert_int_equal(authz_role_bit(AUTH_ORG), AUTHZ_ORG);
	assert_true(authz_role_bit(AUTH_CITY) & AUTHZ_SITE_READERS);
	assert_false(authz_role_bit(AUTH_PUBLIC) & AUTHZ_SITE_READERS);
}

static void static_paths_cannot_leave_the_root(void **state)
{
	(void)state;
	char out[256];
	size_t n;
	assert_int_equal(static_path_split("/", out, sizeof(out), &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(out, "index.html");
	assert_int_equal(static_path_split("/assets/app.1f2e.js", out, sizeof(out), &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out, "assets");
	assert_string_equal(out + 7, "app.1f2e.js");
	assert_int_equal(static_path_split("/a%20b.txt", out, sizeof(out), &n), 0);
	assert_string_equal(out, "a b.txt");
	assert_int_equal(static_path_split("/docs/", out, sizeof(out), &n), 0);
	assert_int_equal(n, 2);
	const char *bad[] = {"/..",    "/../etc/passwd", "/..%2f",       "/%2e%2e/", "/%2E%2e",
	                     "/.",     "/./x",           "//etc/passwd", "/a//b",    "/a%2fb",
	                     "/a%5cb", "/a\\b",          "/a%00b",       "/%",       "/%2",
	                     "/%zz",   "relative",       "/a/%2e%2e/b",  "/a/./b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(static_path_split(bad[i], out, sizeof(out), &n), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(literal_paths_match_exactly),
	    cmocka_unit_test(parameters_are_ids_or_no_match),
	    cmocka_unit_test(head_reaches_get_and_other_methods_get_allow),
	    cmocka_unit_test(scope_is_city_org_or_all_and_empty_matches_nothing),
	    cmocka_unit_test(static_paths_cannot_leave_the_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
