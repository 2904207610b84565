#include "admin.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "vtime.h"

/* A day: long enough to carry a token from the bureau to a venue's technician, short
 * enough that a token lost on the way is soon worthless. */
#define ENROLL_TTL_DEFAULT "24h"
#define ENROLL_TTL_MAX_MS (30LL * 86400000)
/* How often a running server looks at ca.crl (see main.c); told to the operator. */
#define CRL_POLL_HINT "2 s"

void admin_usage(FILE *out)
{
	fprintf(out, "       venuewatch-server -c FILE enroll-token --site S --org O --city C "
	             "[--ttl 24h]\n"
	             "       venuewatch-server -c FILE revoke --site S | --serial HEX\n"
	             "       venuewatch-server -c FILE token create --role "
	             "province|city|org|inspector|public [--city C] [--org O] --name N\n"
	             "       venuewatch-server -c FILE token revoke ID | token list\n"
	             "       venuewatch-server -c FILE audit [--limit N] [--reset-anchor]\n");
}

int admin_is_command(const char *argv0)
{
	static const char *const cmds[] = {"enroll-token", "revoke", "token", "audit"};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv0, cmds[i]) == 0)
			return 1;
	return 0;
}

struct auth *admin_open(struct server_conf *cfg, int for_audit)
{
	char err[512];
	struct auth *au = NULL;
	if (mkdir(cfg->server.state_dir, 0750) != 0 && errno != EEXIST) {
		fprintf(stderr, "cannot create %s: %s\n", cfg->server.state_dir, strerror(errno));
		return NULL;
	}
	if (auth_open(cfg->auth_db_path, &au, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	const char *why;
	/* A missing anchor needs nothing here: the first row appended makes it (auth.c). */
	if (auth_anchor_state(au, &why) == AUTH_ANCHOR_MISMATCH && !for_audit) {
		fprintf(stderr,
		        "%s: the audit log no longer reaches its anchor (%s).\n"
		        "Nothing is written until this is understood: see it with 'audit', then "
		        "record it with 'audit --reset-anchor'.\n",
		        cfg->auth_db_path, why);
		auth_close(au);
		return NULL;
	}
	return au;
}

/* Rewrites ca.crl from every revocation on record. 0 or -errno with err set. */
static int crl_rebuild(struct server_conf *cfg, struct auth *au, size_t *count, char *err,
                       size_t errlen)
{
	struct auth_revoked *list = NULL;
	size_t n = 0;
	if (auth_revoked_list(au, &list, &n)) {
		snprintf(err, errlen, "cannot read the revocations");
		return -EIO;
	}
	struct ca_revoked *cl = calloc(n ? n : 1, sizeof(*cl));
	if (!cl) {
		free(list);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		cl[i] = (struct ca_revoked){list[i].serial, list[i].revoked_ms};
	int rc = ca_crl_write(cfg->pki_dir, cl, n, err, errlen);
	free(cl);
	free(list);
	if (!rc)
		*count = n;
	return rc;
}

static int write_crl(struct server_conf *cfg, struct auth *au, size_t *count)
{
	char err[512];
	if (crl_rebuild(cfg, au, count, err, sizeof(err))) {
		fprintf(stderr, "cannot write the CRL: %s\n", err);
		return 1;
	}
	return 0;
}

int admin_crl_ensure(struct server_conf *cfg, struct auth *au)
{
	char err[512];
	size_t n;
	if (access(cfg->crl_path, F_OK) == 0 || errno != ENOENT)
		return 0;
	if (crl_rebuild(cfg, au, &n, err, sizeof(err))) {
		log_warn("event=crl_create_failed path=%s error=\"%s\"", cfg->crl_path, err);
		return -EIO;
	}
	log_info("event=crl_created path=%s entries=%zu reason=missing", cfg->crl_path, n);
	return 0;
}

int admin_ca_done(struct server_conf *cfg, struct auth *au, const char *action,
                  const struct ca_issue_opts *o, const char *serial)
{
	char actor[96], detail[300];
	auth_cli_actor(actor, sizeof(actor));
	const char *subject = cfg->pki_dir;
	detail[0] = '\0';
	if (strcmp(action, "issue") == 0) {
		int64_t not_after = vw_now_ms() + (int64_t)CA_AGENT_DAYS * 86400000;
		if (auth_cert_record(au, serial, o->site, o->org, o->city ? o->city : "", not_after,
		                     "ca_issue")) {
			fprintf(stderr,
			        "issued, but cannot record serial %s: 'revoke --site %s' "
			        "will not find it (use --serial)\n",
			        serial, o->site);
			return 1;
		}
		subject = o->site;
		snprintf(detail, sizeof(detail), "serial=%s org=%s city=%s out=%s", serial, o->org,
		         o->city ? o->city : "-", o->out_dir);
	}
	if (strcmp(action, "init") == 0) {
		size_t n;
		if (write_crl(cfg, au, &n))
			return 1;
		snprintf(detail, sizeof(detail), "force=%d crl_entries=%zu", o->force, n);
	}
	char what[32];
	snprintf(what, sizeof(what), "ca_%s", action);
	if (auth_audit(au, actor, what, subject, detail)) {
		fprintf(stderr, "done, but the audit log could not record it\n");
		return 1;
	}
	return 0;
}

/* --- enroll-token -------------------------------------------------------------------------- */

static int cmd_enroll_token(struct server_conf *cfg, struct auth *au, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"site", required_argument, NULL, 's'},
	    {"org", required_argument, NULL, 'o'},
	    {"city", required_argument, NULL, 'l'},
	    {"ttl", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	const char *site = NULL, *org = NULL, *city = NULL, *ttl = ENROLL_TTL_DEFAULT;
	int opt;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			site = optarg;
			break;
		case 'o':
			org = optarg;
			break;
		case 'l':
			city = optarg;
			break;
		case 't':
			ttl = optarg;
			break;
		default:
			return 2;
		}
	}
	if (optind != argc || !site || !org || !city) {
		fprintf(stderr, "enroll-token: --site, --org and --city are required\n");
		return 2;
	}
	int64_t ttl_ms;
	if (!vw_conf_id_valid(site) || !ca_name_valid(org) || !ca_name_valid(city)) {
		fprintf(stderr, "enroll-token: --site is 1-63 of [A-Za-z0-9._-]; --org and --city "
		                "1-64 bytes of [A-Za-z0-9._-] or UTF-8 letters\n");
		return 2;
	}
	if (auth_parse_ttl(ttl, &ttl_ms) || ttl_ms > ENROLL_TTL_MAX_MS) {
		fprintf(stderr,
		        "enroll-token: --ttl: expected e.g. 30m, 24h or 7d (at most 30d), "
		        "got '%s'\n",
		        ttl);
		return 2;
	}
	(void)cfg;
	char actor[96], token[AUTH_TOKEN_LEN], id[AUTH_ID_LEN], err[512], exp[VW_ISO_LEN];
	int64_t expires;
	auth_cli_actor(actor, sizeof(actor));
	if (auth_enroll_create(au, site, org, city, ttl_ms, actor, token, id, &expires, err,
	                       sizeof(err))) {
		fprintf(stderr, "enroll-token: %s\n", err);
		return 1;
	}
	vw_time_iso(expires, exp);
	/* The token on stdout alone, so scripts can take it; the rest to stderr. */
	printf("%s\n", token);
	fflush(stdout);
	explicit_bzero(token, sizeof(token));
	fprintf(stderr,
	        "enrollment token %s for site %s (org %s, city %s): single use, expires %s.\n"
	        "It is shown once. On the venue machine: venuewatch-agent -c FILE enroll "
	        "--token TOKEN\n",
	        id, site, org, city, exp);
	return 0;
}

/* --- revoke -------------------------------------------------------------------------------- */

static int cmd_revoke(struct server_conf *cfg, struct auth *au, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"site", required_argument, NULL, 's'},
	    {"serial", required_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	const char *site = NULL, *serial_in = NULL;
	int opt;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			site = optarg;
			break;
		case 'n':
			serial_in = optarg;
			break;
		default:
			return 2;
		}
	}
	if (optind != argc || !site == !serial_in) {
		fprintf(stderr, "revoke: exactly one of --site or --serial\n");
		return 2;
	}
	char actor[96], detail[128], serial[AUTH_SERIAL_LEN];
	auth_cli_actor(actor, sizeof(actor));
	int rc, count = 1;
	if (site) {
		rc = auth_revoke_site(au, site, &count);
		if (rc == -ENOENT) {
			fprintf(stderr,
			        "revoke: no certificate of site %s on record (issued by 'ca "
			        "issue' or enrollment, or seen in use); revoke by --serial\n",
			        site);
			return 1;
		}
	} else {
		if (ca_serial_normalize(serial_in, serial, sizeof(serial))) {
			fprintf(stderr,
			        "revoke: --serial: expected a hexadecimal serial, got '%s'\n",
			        serial_in);
			return 2;
		}
		rc = auth_revoke_serial(au, serial);
		if (rc == -EALREADY) {
			count = 0;
			rc = 0;
		}
	}
	if (rc) {
		fprintf(stderr, "revoke: cannot record the revocation\n");
		return 1;
	}
	size_t n;
	if (write_crl(cfg, au, &n))
		return 1;
	snprintf(detail, sizeof(detail), "newly_revoked=%d crl_entries=%zu", count, n);
	if (auth_audit(au, actor, "revoke", site ? site : serial, detail)) {
		fprintf(stderr, "revoked, but the audit log could not record it\n");
		return 1;
	}
	printf("revoked %d certificate%s of %s %s; %s lists %zu. A running server applies it "
	       "within %s (or at once on SIGHUP) and closes the revoked agents' connections.\n",
	       count, count == 1 ? "" : "s", site ? "site" : "serial", site ? site : serial,
	       cfg->crl_path, n, CRL_POLL_HINT);
	return 0;
}

/* --- token --------------------------------------------------------------------------------- */

static int cmd_token(struct auth *au, int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "token: create, revoke ID or list\n");
		return 2;
	}
	const char *action = argv[1];
	char actor[96];
	auth_cli_actor(actor, sizeof(actor));
	if (strcmp(action, "list") == 0 && argc == 2)
		return auth_token_list(au, stdout) ? 1 : 0;
	if (strcmp(action, "revoke") == 0 && argc == 3) {
		int rc = auth_token_revoke(au, argv[2], actor);
		if (rc == -ENOENT)
			fprintf(stderr, "token revoke: no token with id %s (see 'token list')\n",
			        argv[2]);
		else if (rc == -EALREADY)
			fprintf(stderr, "token revoke: %s was already revoked\n", argv[2]);
		else if (rc)
			fprintf(stderr, "token revoke: cannot record the revocation\n");
		else
			printf("revoked token %s; it is refused from the next request on\n",
			       argv[2]);
		return rc ? 1 : 0;
	}
	if (strcmp(action, "create") != 0) {
		fprintf(stderr, "token: create, revoke ID or list\n");
		return 2;
	}
	static const struct option longopts[] = {
	    {"role", required_argument, NULL, 'r'},
	    {"city", required_argument, NULL, 'l'},
	    {"name", required_argument, NULL, 'n'},
	    {"org", required_argument, NULL, 'o'},
	    {NULL, 0, NULL, 0},
	};
	const char *role_s = NULL, *city = NULL, *name = NULL, *org = NULL;
	int opt;
	optind = 0;
	argc--, argv++; /* getopt starts after "create" */
	while ((opt = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			role_s = optarg;
			break;
		case 'l':
			city = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'o':
			org = optarg;
			break;
		default:
			return 2;
		}
	}
	enum auth_role role;
	if (optind != argc || auth_role_parse(role_s, &role)) {
		fprintf(stderr,
		        "token create: --role province|city|org|inspector|public is required\n");
		return 2;
	}
	if (city && !ca_name_valid(city)) {
		fprintf(stderr, "token create: --city: 1-64 bytes of [A-Za-z0-9._-] or UTF-8 "
		                "letters\n");
		return 2;
	}
	if (name && (strlen(name) > 128 || strpbrk(name, "\r\n\t"))) {
		fprintf(stderr, "token create: --name: at most 128 bytes on one line\n");
		return 2;
	}
	char token[AUTH_TOKEN_LEN], id[AUTH_ID_LEN], err[512];
	/* A province token has no city: it reads every city's sites. */
	if (auth_token_create(au, role, role == AUTH_PROVINCE ? "" : city, org, name, actor, token,
	                      id, err, sizeof(err))) {
		fprintf(stderr, "token create: %s\n", err);
		return 1;
	}
	printf("%s\n", token);
	fflush(stdout);
	explicit_bzero(token, sizeof(token));
	fprintf(stderr,
	        "token %s (%s%s%s, %s): shown once; send it as 'Authorization: Bearer TOKEN'. "
	        "Revoke with: token revoke %s\n",
	        id, auth_role_name(role),
	        role == AUTH_ORG ? " of " : role != AUTH_PROVINCE && city ? " of " : "",
	        role == AUTH_ORG ? org : role != AUTH_PROVINCE && city ? city : "", name, id);
	return 0;
}

/* --- audit --------------------------------------------------------------------------------- */

static int cmd_audit(struct auth *au, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"limit", required_argument, NULL, 'n'},
	    {"reset-anchor", no_argument, NULL, 'r'},
	    {NULL, 0, NULL, 0},
	};
	long limit = 0;
	int reset = 0;
	int opt;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		char *end;
		switch (opt) {
		case 'n':
			limit = strtol(optarg, &end, 10);
			if (*end || limit < 0 || limit > 1000000)
				return 2;
			break;
		case 'r':
			reset = 1;
			break;
		default:
			return 2;
		}
	}
	if (optind != argc)
		return 2;
	if (reset) {
		const char *why;
		int state = auth_anchor_state(au, &why);
		char actor[96], said[PATH_MAX + 256];
		snprintf(said, sizeof(said), "%s", why);
		auth_cli_actor(actor, sizeof(actor));
		if (state != AUTH_ANCHOR_OK && auth_anchor_reset(au, actor) != 0) {
			fprintf(stderr, "audit: cannot reset the anchor\n");
			return 1;
		}
		if (state == AUTH_ANCHOR_MISMATCH)
			printf("anchor reset; what it said is in the audit log: %s\n", said);
	}
	int rc = auth_audit_list(au, (int)limit, stdout);
	if (rc == -EBADMSG)
		fprintf(stderr, "audit: the log's hash chain is broken, cut or rewritten: it was "
		                "changed outside venuewatch\n");
	return rc ? 1 : 0;
}

int admin_main(struct server_conf *cfg, int argc, char **argv)
{
	struct auth *au = admin_open(cfg, strcmp(argv[0], "audit") == 0);
	if (!au)
		return 1;
	int rc;
	if (strcmp(argv[0], "enroll-token") == 0)
		rc = cmd_enroll_token(cfg, au, argc, argv);
	else if (strcmp(argv[0], "revoke") == 0)
		rc = cmd_revoke(cfg, au, argc, argv);
	else if (strcmp(argv[0], "token") == 0)
		rc = cmd_token(au, argc, argv);
	else
		rc = cmd_audit(au, argc, argv);
	auth_close(au);
	if (rc == 2) {
		fprintf(stderr, "usage:\n");
		admin_usage(stderr);
	}
	return rc;
}
