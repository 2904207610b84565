/* The collector's configuration: defaults apply, units parse, every error names file:line,
 * derived paths follow state_dir unless [pki] dir is set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "server_conf.h"

static int load(const char *text, struct server_conf *cfg, struct vw_conf_errors *errs)
{
	memset(errs, 0, sizeof(*errs));
	return server_conf_load_string(cfg, "s.ini", text, errs);
}

static void defaults_apply(void **state)
{
	(void)state;
	struct server_conf cfg;
	struct vw_conf_errors errs;
	assert_int_equal(load("[server]\nstate_dir = /var/lib/vw/\n", &cfg, &errs), 0);
	assert_string_equal(cfg.listen_host, "127.0.0.1");
	assert_int_equal(cfg.listen_port, 8443);
	assert_string_equal(cfg.server.hostnames, "localhost,127.0.0.1");
	assert_int_equal(cfg.server.log_level, 1); /* info */
	assert_string_equal(cfg.pki_dir, "/var/lib/vw/pki");
	assert_string_equal(cfg.db_path, "/var/lib/vw/venuewatch.db");
	assert_int_equal(cfg.limits.max_header_bytes, 16 * 1024);
	assert_int_equal(cfg.limits.max_body_bytes, 8 * 1024 * 1024);
	assert_int_equal(cfg.limits.max_connections, 0); /* 0 = sized from RLIMIT_NOFILE */
	assert_int_equal(cfg.limits.shutdown_timeout_ms, 10000);
	assert_int_equal(cfg.limits.header_timeout_ms, 10000);
	assert_int_equal(cfg.limits.request_timeout_ms, 30000);
	assert_int_equal(cfg.limits.idle_timeout_ms, 60000);
	assert_int_equal(cfg.store.raw_retention_ms, 90LL * 86400000); /* 90 days */
	server_conf_free(&cfg);
}

static void values_parse(void **state)
{
	(void)state;
	struct server_conf cfg;
	struct vw_conf_errors errs;
	int rc =
	    load("[server]\nlisten = [::1]:0\nstate_dir = s\nhostnames = a.example, 10.0.0.1 ,::1\n"
	         "log_level = debug\n[pki]\ndir = /etc/vw/pki\n"
	         "[limits]\nmax_header_bytes = 8KiB\nmax_body_bytes = 1MiB\nmax_connections = 5\n"
	         "header_timeout = 500ms\nrequest_timeout = 2m\nidle_timeout = 1h\n",
	         &cfg, &errs);
	if (rc)
		fail_msg("%s", errs.text);
	assert_string_equal(cfg.listen_host, "::1");
	assert_int_equal(cfg.listen_port, 0);
	assert_string_equal(cfg.pki_dir, "/etc/vw/pki");
	assert_int_equal(cfg.server.log_level, 0);
	assert_int_equal(cfg.limits.max_header_bytes, 8192);
	assert_int_equal(cfg.limits.max_body_bytes, 1 << 20);
	assert_int_equal(cfg.limits.max_connections, 5);
	assert_int_equal(cfg.limits.header_timeout_ms, 500);
	assert_int_equal(cfg.limits.request_timeout_ms, 120000);
	assert_int_equal(cfg.limits.idle_timeout_ms, 3600000);
	server_conf_free(&cfg);
}

static void every_error_names_file_and_line(void **state)
{
	(void)state;
	static const struct {
		const char *text, *expect;
	} cases[] = {
	    {"[server]\nlisten = x\n", "s.ini:1: [server]: missing required key 'state_dir'"},
	    {"[limits]\n", "s.ini: missing required section [server]"},
	    {"[server]\nstate_dir = s\nbogus = 1\n", "s.ini:3: [server]: unknown key 'bogus'"},
	    {"[server]\nstate_dir = s\n[tls]\n", "s.ini:3: unknown section [tls]"},
	    {"[server]\nstate_dir = s\nlisten = localhost:80\n",
	     "s.ini:1: [server] listen: expected IP:port"},
	    {"[server]\nstate_dir = s\nlisten = 1.2.3.4:70000\n", "s.ini:1: [server] listen"},
	    {"[server]\nstate_dir = s\nlisten = ::1:80\n", "s.ini:1: [server] listen"},
	    {"[server]\nstate_dir = s\nhostnames = ok.example,bad_name!\n",
	     "s.ini:1: [server] hostnames: 'bad_name!' is neither"},
	    {"[server]\nstate_dir = s\nhostnames = ,\n", "s.ini:1: [server] hostnames: empty list"},
	    {"[server]\nstate_dir = s\nlog_level = loud\n",
	     "s.ini:3: [server] log_level: expected one of"},
	    {"[server]\nstate_dir = s\n[limits]\nmax_body_bytes = lots\n",
	     "s.ini:4: [limits] max_body_bytes: expected a size"},
	    {"[server]\nstate_dir = s\n[limits]\nmax_header_bytes = 10MiB\n",
	     "s.ini:4: [limits] max_header_bytes: value 10MiB out of range"},
	    {"[server]\nstate_dir = s\n[limits]\nidle_timeout = soon\n",
	     "s.ini:4: [limits] idle_timeout: expected a duration"},
	    {"[server]\nstate_dir = s\n[limits]\nmax_connections = -1\n",
	     "s.ini:4: [limits] max_connections: value -1 out of range"},
	    {"[server]\nstate_dir = s\nstate_dir = t\n",
	     "s.ini:3: [server]: key 'state_dir' set twice"},
	    /* a [notify] without its url is an error, not a crash (found by fuzz_conf) */
	    {"[server]\nstate_dir = s\n[notify z]\ntype = webhook\n",
	     "s.ini:3: [notify z]: missing required key 'url'"},
	    /* issue 13: [store] dsn belongs to postgresql, is required there, is libpq's syntax
	     * and never holds the password */
	    {"[server]\nstate_dir = s\n[store]\nbackend = postgresql\n",
	     "s.ini:3: [store] dsn: required with backend = postgresql"},
	    {"[server]\nstate_dir = s\n[store]\ndsn = host=db\n",
	     "s.ini:3: [store] dsn: only for backend = postgresql (backend is sqlite)"},
	    {"[server]\nstate_dir = s\n[store]\nbackend = postgresql\ndsn = host=db pasword=x\n",
	     "s.ini:3: [store] dsn: invalid connection option \"pasword\""},
	    {"[server]\nstate_dir = s\n[store]\nbackend = postgresql\n"
	     "dsn = host=db password=hunter2\n",
	     "s.ini:3: [store] dsn: carries a password; put it in password_file"},
	    {"[server]\nstate_dir = s\n[store]\nbackend = postgresql\n"
	     "dsn = postgresql://vw:hunter2@db/vw\n",
	     "s.ini:3: [store] dsn: carries a password"},
	    /* issue 13: a lease renewed no sooner than it expires would lapse between renewals */
	    {"[server]\nstate_dir = s\n[store]\nbackend = postgresql\ndsn = host=db\n"
	     "lease_ttl = 5s\nlease_renew = 5s\n",
	     "s.ini:3: [store] lease_renew (5000 ms) must be shorter than lease_ttl (5000 ms)"},
	    /* libpq's reason for a URI it cannot parse quotes the URI, password and all */
	    {"[server]\nstate_dir = s\n[store]\nbackend = postgresql\n"
	     "dsn = postgresql://vw:S3cretPW@[::1/vw\n",
	     "s.ini:3: [store] dsn: not a valid libpq connection string"},
	    {"[server]\nstate_dir = s\n[store]\nbackend = postgresql\n"
	     "dsn = postgresql://vw:S3%zzPW@db1/vw\n",
	     "s.ini:3: [store] dsn: not a valid libpq connection string"},
	    {"[server]\nstate_dir = s\n[store]\nbackend = postgresql\ndsn = host=db\n"
	     "password_file = /nonexistent/pgpass\n",
	     "s.ini:3: [store] password_file /nonexistent/pgpass: No such file"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct server_conf cfg;
		struct vw_conf_errors errs;
		int rc = load(cases[i].text, &cfg, &errs);
		if (rc <= 0 || !strstr(errs.text, cases[i].expect) || strstr(errs.text, "S3cret") ||
		    strstr(errs.text, "S3%zz"))
			fail_msg("case %zu: rc=%d, wanted '%s' in:\n%s", i, rc, cases[i].expect,
			         errs.text);
		server_conf_free(&cfg);
	}
}

/* [score]: the defaults are DOMAIN.md's rubric; a changed step is a new version; steps out
 * of order are an error naming the section's line. */
static void score_rubric_from_config(void **state)
{
	(void)state;
	struct server_conf cfg;
	struct vw_conf_errors errs;
	assert_int_equal(load("[server]\nstate_dir = s\n", &cfg, &errs), 0);
	assert_true(cfg.rubric.full_pct == 99 && cfg.rubric.step4_pct == 95);
	assert_true(cfg.rubric.step3_pct == 80 && cfg.rubric.step2_pct == 50);
	assert_int_equal(cfg.rubric.default_stale_ms, 120000);
	assert_string_equal(cfg.rubric.version, "3334d40b6acd");
	server_conf_free(&cfg);
	assert_int_equal(
	    load("[server]\nstate_dir = s\n[score]\nstep4 = 96\ndefault_stale = 2m\n", &cfg, &errs),
	    0);
	assert_string_equal(cfg.rubric.version, "f6b30f7c51ae");
	server_conf_free(&cfg);
	assert_int_equal(load("[server]\nstate_dir = s\n\n[score]\nstep3 = 97\n", &cfg, &errs), 1);
	assert_non_null(strstr(errs.text, "s.ini:4:"));
	assert_non_null(strstr(errs.text, "step2 <= step3 <= step4"));
	server_conf_free(&cfg);
}

/* issue 13: a PostgreSQL store's dsn and password file reach the store as given. */
static void postgresql_store_keys(void **state)
{
	(void)state;
	struct server_conf cfg;
	struct vw_conf_errors errs;
	int rc = load("[server]\nstate_dir = s\n[store]\nbackend = postgresql\n"
	              "dsn = host=/run/postgresql dbname=vw user=vw\npassword_file = /dev/null\n",
	              &cfg, &errs);
	if (rc)
		fail_msg("%s", errs.text);
	assert_string_equal(cfg.store_backend, "postgresql");
	assert_string_equal(cfg.store.dsn, "host=/run/postgresql dbname=vw user=vw");
	assert_string_equal(cfg.store.password_file, "/dev/null");
	server_conf_free(&cfg);
}

static void listen_forms(void **state)
{
	(void)state;
	char host[64];
	int port;
	assert_int_equal(server_conf_parse_listen("0.0.0.0:443", host, &port), 0);
	assert_string_equal(host, "0.0.0.0");
	assert_int_equal(port, 443);
	assert_int_equal(server_conf_parse_listen("[::]:8443", host, &port), 0);
	assert_string_equal(host, "::");
	assert_int_not_equal(server_conf_parse_listen("127.0.0.1", host, &port), 0);
	assert_int_not_equal(server_conf_parse_listen("127.0.0.1:", host, &port), 0);
	assert_int_not_equal(server_conf_parse_listen("127.0.0.1:-1", host, &port), 0);
	assert_int_not_equal(server_conf_parse_listen("[::1]80", host, &port), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults_apply),
	    cmocka_unit_test(values_parse),
	    cmocka_unit_test(every_error_names_file_and_line),
	    cmocka_unit_test(listen_forms),
	    cmocka_unit_test(postgresql_store_keys),
	    cmocka_unit_test(score_rubric_from_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
