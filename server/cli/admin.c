#include "admin.h"
#include "register_cli.h"
#include "score_cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "conf.h"
#include "crashpoint.h"
#include "draw_cli.h"
#include "exams_cli.h"
#include "log.h"
#include "signer.h"
#include "utf8.h"
#include "vtime.h"

/* A day: long enough to carry a token from the bureau to a venue's technician, short
 * enough that a token lost on the way is soon worthless. */
#define ENROLL_TTL_DEFAULT "24h"
#define ENROLL_TTL_MAX_MS (30LL * 86400000)
/* Two years: a person's token outlasting that is one nobody remembers handing out. */
#define TOKEN_TTL_MAX_MS (730LL * 86400000)
/* How often a running server looks at ca.crl (see main.c); told to the operator. */
#define CRL_POLL_HINT "2 s"

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
	size_t n = 0;
	struct auth_revoked *list = NULL;
	if (auth_revoked_list(au, &list, &n)) {
		log_warn("event=crl_check_failed path=%s error=\"cannot read the revocations\"",
		         cfg->crl_path);
		return -EIO;
	}
	struct ca_revoked *cl = calloc(n ? n : 1, sizeof(*cl));
	for (size_t i = 0; cl && i < n; i++)
		cl[i] = (struct ca_revoked){list[i].serial, list[i].revoked_ms};
	int missing = access(cfg->crl_path, F_OK) != 0 && errno == ENOENT;
	int current = cl && !missing && ca_crl_covers(cfg->pki_dir, cfg->crl_path, cl, n) == 1;
	free(cl);
	free(list);
	if (current)
		return 0;
	if (crl_rebuild(cfg, au, &n, err, sizeof(err))) {
		log_warn("event=crl_create_failed path=%s error=\"%s\"", cfg->crl_path, err);
		return -EIO;
	}
	log_info("event=crl_created path=%s entries=%zu reason=%s", cfg->crl_path, n,
	         missing ? "missing" : "behind_revocations");
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
		/* The record and its audit row in one transaction: both or neither. */
		int64_t not_after = vw_now_ms() + (int64_t)CA_AGENT_DAYS * 86400000;
		snprintf(detail, sizeof(detail), "serial=%s org=%s city=%s out=%s", serial, o->org,
		         o->city ? o->city : "-", o->out_dir);
		if (auth_cert_issued(au, serial, o->site, o->org, o->city ? o->city : "", not_after,
		                     actor, detail)) {
			fprintf(stderr,
			        "issued, but cannot record serial %s: 'revoke --site %s' "
			        "will not find it (use --serial)\n",
			        serial, o->site);
			return 1;
		}
		return 0;
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

/* A site is one org's, in one city (the city's supervisors see it): a second machine
 * issued with a mistyped --city would make the site flicker between cities. 1 = refused
 * (the reason is on stderr). */
static int site_conflict(struct auth *au, const char *cmd, const char *site, const char *org,
                         const char *city)
{
	char what[600];
	int rc = auth_site_conflict(au, site, org, city, what, sizeof(what));
	if (rc < 0) {
		fprintf(stderr, "%s: cannot read the certificates of site %s\n", cmd, site);
		return 1;
	}
	if (rc > 0) {
		fprintf(stderr,
		        "%s: site %s already belongs to another org or city: %s; --org %s --city "
		        "%s would differ. Use the same org and city, or revoke those first "
		        "('revoke --site %s') to move the site\n",
		        cmd, site, what, org, city[0] ? city : "-", site);
		return 1;
	}
	return 0;
}

/* --- enroll-token -------------------------------------------------------------------------- */

static int cmd_enroll_token(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	struct server_conf *cfg = ctx;
	const char *site = vw_cli_str(v, "site"), *org = vw_cli_str(v, "org");
	const char *city = vw_cli_str(v, "city"), *ttl = vw_cli_str(v, "ttl");
	const char *agent = vw_cli_str(v, "agent");
	if (!ttl)
		ttl = ENROLL_TTL_DEFAULT;
	if (!site || !org || !city) {
		fprintf(stderr, "enroll-token: --site, --org and --city are required\n");
		return 2;
	}
	int64_t ttl_ms;
	if (!vw_conf_id_valid(site) || !ca_name_valid(org) || !ca_name_valid(city)) {
		fprintf(stderr, "enroll-token: --site is 1-63 of [A-Za-z0-9._-]; --org and --city "
		                "1-64 bytes of [A-Za-z0-9._-] or UTF-8 letters\n");
		return 2;
	}
	if (!agent)
		agent = site; /* a site with one machine, as before agents were named */
	if (!vw_conf_id_valid(agent)) {
		fprintf(stderr,
		        "enroll-token: --agent: expected 1-63 of [A-Za-z0-9._-], got '%s'\n",
		        agent);
		return 2;
	}
	if (auth_parse_ttl(ttl, &ttl_ms) || ttl_ms > ENROLL_TTL_MAX_MS) {
		fprintf(stderr,
		        "enroll-token: --ttl: expected e.g. 30m, 24h or 7d (at most 30d), "
		        "got '%s'\n",
		        ttl);
		return 2;
	}
	struct auth *au = admin_open(cfg, 0);
	if (!au)
		return 1;
	char actor[96], token[AUTH_TOKEN_LEN], id[AUTH_ID_LEN], err[512], exp[VW_ISO_LEN];
	int64_t expires;
	auth_cli_actor(actor, sizeof(actor));
	if (site_conflict(au, "enroll-token", site, org, city)) {
		auth_close(au);
		return 1;
	}
	int rc = auth_enroll_create(au, site, agent, org, city, ttl_ms, actor, token, id, &expires,
	                            err, sizeof(err));
	auth_close(au);
	if (rc) {
		fprintf(stderr, "enroll-token: %s\n", err);
		return 1;
	}
	vw_time_iso(expires, exp);
	/* The token on stdout alone, so scripts can take it; the rest to stderr. */
	printf("%s\n", token);
	fflush(stdout);
	explicit_bzero(token, sizeof(token));
	fprintf(stderr,
	        "enrollment token %s for site %s agent %s (org %s, city %s): single use, expires "
	        "%s.\n"
	        "It is shown once. On the venue machine: venuewatch-agent -c FILE enroll "
	        "--token TOKEN\n",
	        id, site, agent, org, city, exp);
	return 0;
}

/* --- revoke -------------------------------------------------------------------------------- */

static int revoke_run(struct server_conf *cfg, struct auth *au, const char *site,
                      const char *serial_in);

static int cmd_revoke(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	const char *site = vw_cli_str(v, "site"), *serial_in = vw_cli_str(v, "serial");
	if (!site == !serial_in) {
		fprintf(stderr, "revoke: exactly one of --site or --serial\n");
		return 2;
	}
	struct auth *au = admin_open(ctx, 0);
	if (!au)
		return 1;
	int rc = revoke_run(ctx, au, site, serial_in);
	auth_close(au);
	return rc;
}

static int revoke_run(struct server_conf *cfg, struct auth *au, const char *site,
                      const char *serial_in)
{
	char actor[96], serial[AUTH_SERIAL_LEN];
	auth_cli_actor(actor, sizeof(actor));
	int rc, count = 1;
	/* The revocation and its audit row commit together; the CRL is written after. A crash
	 * in between leaves the CRL behind the records, which the server's signer rewrites at
	 * its next start (admin_crl_ensure). */
	if (site) {
		rc = auth_revoke_site(au, site, actor, &count);
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
		rc = auth_revoke_serial(au, serial, actor, &count);
	}
	if (rc) {
		fprintf(stderr, "revoke: cannot record the revocation\n");
		return 1;
	}
	crashpoint("revoke_after_commit");
	size_t n;
	if (write_crl(cfg, au, &n))
		return 1;
	printf("revoked %d certificate%s of %s %s; %s lists %zu. A running server applies it "
	       "within %s (or at once on SIGHUP) and closes the revoked agents' connections.\n",
	       count, count == 1 ? "" : "s", site ? "site" : "serial", site ? site : serial,
	       cfg->crl_path, n, CRL_POLL_HINT);
	return 0;
}

/* --- token --------------------------------------------------------------------------------- */

static int cmd_token_list(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd, (void)v;
	struct auth *au = admin_open(ctx, 0);
	if (!au)
		return 1;
	int rc = auth_token_list(au, stdout) ? 1 : 0;
	auth_close(au);
	return rc;
}

static int cmd_token_revoke(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	const char *id = v->pos[0];
	struct auth *au = admin_open(ctx, 0);
	if (!au)
		return 1;
	char actor[96];
	auth_cli_actor(actor, sizeof(actor));
	int rc = auth_token_revoke(au, id, actor);
	auth_close(au);
	if (rc == -ENOENT)
		fprintf(stderr, "token revoke: no token with id %s (see 'token list')\n", id);
	else if (rc == -EALREADY)
		fprintf(stderr, "token revoke: %s was already revoked\n", id);
	else if (rc)
		fprintf(stderr, "token revoke: cannot record the revocation\n");
	else
		printf("revoked token %s; it is refused from the next request on\n", id);
	return rc ? 1 : 0;
}

/* Why a token's --name cannot be used, or NULL. The name is shown by 'token list', in the
 * audit log and on the dashboard: an ESC or another control would drive the terminal that
 * shows it, invalid UTF-8 would not survive JSON. */
static const char *token_name_problem(const char *name)
{
	if (strlen(name) > 128)
		return "at most 128 bytes";
	if (!vw_utf8_valid(name))
		return "not valid UTF-8";
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		/* C0 and DEL; C1 (U+0080..U+009F) is 0xC2 0x80..0x9F in UTF-8 */
		if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			return "no control characters (tab, newline, escape, U+0080-U+009F)";
	}
	return NULL;
}

static int cmd_token_create(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	const char *role_s = vw_cli_str(v, "role"), *city = vw_cli_str(v, "city");
	const char *name = vw_cli_str(v, "name"), *org = vw_cli_str(v, "org");
	const char *ttl = vw_cli_str(v, "ttl"), *inspector = vw_cli_str(v, "inspector");
	enum auth_role role;
	int64_t ttl_ms = AUTH_TOKEN_TTL_DEFAULT_MS;
	if (ttl && (auth_parse_ttl(ttl, &ttl_ms) || ttl_ms > TOKEN_TTL_MAX_MS)) {
		fprintf(stderr,
		        "token create: --ttl: expected e.g. 12h, 30d or 365d (at most 730d), got "
		        "'%s'\n",
		        ttl);
		return 2;
	}
	if (auth_role_parse(role_s, &role)) {
		fprintf(stderr, "token create: --role province|city|org|inspector|public|metrics "
		                "is required\n");
		return 2;
	}
	if (city && !ca_name_valid(city)) {
		fprintf(stderr, "token create: --city: 1-64 bytes of [A-Za-z0-9._-] or UTF-8 "
		                "letters\n");
		return 2;
	}
	if (name) {
		const char *why = token_name_problem(name);
		if (why) {
			fprintf(stderr, "token create: --name: %s\n", why);
			return 2;
		}
	}
	struct auth *au = admin_open(ctx, 0);
	if (!au)
		return 1;
	char actor[96], token[AUTH_TOKEN_LEN], id[AUTH_ID_LEN], err[512];
	auth_cli_actor(actor, sizeof(actor));
	/* A province token has no city: it reads every city's sites. */
	int rc =
	    auth_token_create(au, role, role == AUTH_PROVINCE || role == AUTH_METRICS ? "" : city,
	                      org, inspector, name, ttl_ms, actor, token, id, err, sizeof(err));
	auth_close(au);
	if (rc) {
		fprintf(stderr, "token create: %s\n", err);
		return 1;
	}
	printf("%s\n", token);
	fflush(stdout);
	explicit_bzero(token, sizeof(token));
	char exp[VW_ISO_LEN];
	vw_time_iso(vw_now_ms() + ttl_ms, exp);
	fprintf(stderr,
	        "token %s (%s%s%s, %s): shown once, expires %s; send it as 'Authorization: "
	        "Bearer TOKEN' (the dashboard trades it for a session cookie). Revoke with: "
	        "token revoke %s\n",
	        id, auth_role_name(role),
	        role == AUTH_ORG                ? " of "
	        : role != AUTH_PROVINCE && city ? " of "
	                                        : "",
	        role == AUTH_ORG                ? org
	        : role != AUTH_PROVINCE && city ? city
	                                        : "",
	        name, exp, id);
	return 0;
}

/* --- audit --------------------------------------------------------------------------------- */

static int audit_run(struct auth *au, long limit, int reset);

static int cmd_audit(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	long limit = 0;
	const char *ls = vw_cli_str(v, "limit");
	if (ls) {
		char *end;
		limit = strtol(ls, &end, 10);
		if (!*ls || *end || limit < 0 || limit > 1000000) {
			fprintf(stderr,
			        "audit: --limit: expected a number of rows 0-1000000, got '%s'\n",
			        ls);
			return 2;
		}
	}
	/* for_audit: a chain that no longer reaches its anchor is what 'audit' shows. */
	struct auth *au = admin_open(ctx, 1);
	if (!au)
		return 1;
	int rc = audit_run(au, limit, vw_cli_flag(v, "reset-anchor"));
	auth_close(au);
	return rc;
}

static int audit_run(struct auth *au, long limit, int reset)
{
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

static const struct vw_cli_opt enroll_opts[] = {
    {"site", 0, "S", "the venue's site id (1-63 of [A-Za-z0-9._-])"},
    {"agent", 0, "A", "the venue machine the certificate is for (same syntax; default: the site)"},
    {"org", 0, "O", "the organisation that runs the venue"},
    {"city", 0, "C", "the city whose supervisors see the site"},
    {"ttl", 0, "24h", "how long the token stays usable: 30m, 24h, 7d (at most 30d)"},
};
static const struct vw_cli_opt revoke_opts[] = {
    {"site", 0, "S", "every certificate of the site on record"},
    {"serial", 0, "HEX", "one certificate by its serial"},
};
static const struct vw_cli_opt token_opts[] = {
    {"role", 0, "ROLE", "province, city, org, inspector, public, or metrics (GET /metrics only)"},
    {"city", 0, "C", "the city a city or inspector token is limited to"},
    {"org", 0, "O", "the organisation an org token is limited to"},
    {"inspector", 0, "ID", "an inspector token's id in the inspectors' register (required)"},
    {"name", 0, "N", "who holds the token (shown in 'token list' and the audit log)"},
    {"ttl", 0, "90d", "how long the token stays valid: 12h, 30d, 365d (at most 730d)"},
};
static const struct vw_cli_opt audit_opts[] = {
    {"limit", 0, "N", "show only the last N rows"},
    {"reset-anchor", 0, NULL,
     "record in the log that the chain no longer reached its anchor, "
     "and anchor it anew"},
};
#define NOPTS(a) (sizeof(a) / sizeof(a[0]))

/* --- ca ---------------------------------------------------------------------------------- */

static int cmd_ca(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	struct server_conf *cfg = ctx;
	const char *action = cmd->name + strlen("ca ");
	struct ca_issue_opts o = {
	    .site = vw_cli_str(v, "site"),
	    .agent = vw_cli_str(v, "agent"),
	    .org = vw_cli_str(v, "org"),
	    .city = vw_cli_str(v, "city"),
	    .out_dir = vw_cli_str(v, "out"),
	    .force = vw_cli_flag(v, "force"),
	};
	if (strcmp(action, "issue") == 0 && (!o.site || !o.org || !o.out_dir)) {
		fprintf(stderr, "ca issue: --site, --org and --out are required\n");
		return 2;
	}
	/* The audit log first: an action it cannot record (its anchor no longer checks) is
	 * not taken. It also records the certificate and, after 'init', writes the CRL. */
	struct auth *au = admin_open(cfg, 0);
	if (!au)
		return 1;
	char err[512] = "", serial[64] = "";
	int rc;
	/* Malformed options first get ca_issue's own error, naming the option. */
	int opts_valid = strcmp(action, "issue") == 0 && vw_conf_id_valid(o.site) &&
	                 (!o.agent || vw_conf_id_valid(o.agent)) && ca_name_valid(o.org) &&
	                 (!o.city || ca_name_valid(o.city));
	if (opts_valid && site_conflict(au, "ca issue", o.site, o.org, o.city ? o.city : "")) {
		auth_close(au);
		return 1;
	}
	if (strcmp(action, "init") == 0) {
		rc = ca_init(cfg->pki_dir, cfg->server.hostnames, o.force, err, sizeof(err));
		if (!rc)
			printf("created CA and server certificate in %s\n", cfg->pki_dir);
	} else if (strcmp(action, "server") == 0) {
		rc = ca_server(cfg->pki_dir, cfg->server.hostnames, err, sizeof(err));
		if (!rc)
			printf(
			    "issued server certificate in %s (SIGHUP a running server to use it)\n",
			    cfg->pki_dir);
	} else {
		rc = ca_issue(cfg->pki_dir, &o, serial, sizeof(serial), err, sizeof(err));
		if (!rc)
			printf("issued %s/agent.crt for site %s agent %s (serial %s, %d days)\n",
			       o.out_dir, o.site, o.agent ? o.agent : o.site, serial,
			       CA_AGENT_DAYS);
	}
	if (rc) {
		fprintf(stderr, "ca %s: %s\n", action, err);
		auth_close(au);
		return 1;
	}
	rc = admin_ca_done(cfg, au, action, &o, serial);
	auth_close(au);
	return rc;
}

static const struct vw_cli_opt ca_init_opts[] = {
    {"force", 0, NULL, "replace a CA already in the pki directory"},
};
static const struct vw_cli_opt ca_issue_opts[] = {
    {"site", 0, "S", "the agent's site id (CN)"},
    {"agent", 0, "A", "the venue machine (UID; default: the site)"},
    {"org", 0, "O", "its organisation (O)"},
    {"city", 0, "C", "its city (L)"},
    {"out", 0, "DIR", "where agent.key, agent.crt and ca.crt are written"},
    {"force", 0, NULL, "replace an agent.key already in DIR"},
};

/* Internal: the server runs itself as "venuewatch-server -c FILE signer" over a socketpair
 * on fd 3 (signer.c); it is listed so that nothing else can take the name. */
static int cmd_signer(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v)
{
	(void)cmd;
	(void)v;
	return signer_main(ctx);
}

const struct vw_cli_cmd admin_cmds[] = {
    {"ca init", "[--force]",
     "Create the CA (EC P-256, 10 years) and the server certificate for [server] hostnames\n"
     "in the pki directory.",
     ca_init_opts, VW_CLI_NOPTS(ca_init_opts), 0, 0, cmd_ca},
    {"ca server", "", "Re-issue the server certificate from the existing CA.", NULL, 0, 0, 0,
     cmd_ca},
    {"ca issue", "--site S [--agent A] --org O [--city C] --out DIR [--force]",
     "Write DIR/agent.key, DIR/agent.crt and DIR/ca.crt for an agent:\n"
     "CN=site, O=org, L=city, UID=agent, clientAuth, 1 year.",
     ca_issue_opts, VW_CLI_NOPTS(ca_issue_opts), 0, 0, cmd_ca},
    {"enroll-token", "--site S [--agent A] --org O --city C [--ttl 24h]",
     "Print a one-time enrollment token for a venue's agent (venuewatch-agent enroll).",
     enroll_opts, VW_CLI_NOPTS(enroll_opts), 0, 0, cmd_enroll_token},
    {"revoke", "--site S | --serial HEX",
     "Revoke agent certificates and rewrite the CRL; a running server applies it "
     "within " CRL_POLL_HINT ".",
     revoke_opts, VW_CLI_NOPTS(revoke_opts), 0, 0, cmd_revoke},
    {"token create",
     "--role province|city|org|inspector|public|metrics [--city C] [--org O] [--inspector ID] "
     "--name N "
     "[--ttl 90d]",
     "Print a new bearer token for a person (shown once).", token_opts, VW_CLI_NOPTS(token_opts), 0,
     0, cmd_token_create},
    {"token revoke", "ID", "Revoke a person's token by its id; its dashboard sessions end too.",
     NULL, 0, 1, 1, cmd_token_revoke},
    {"token list", "",
     "List people's tokens (id, role, created, expires, last use; never the secrets).", NULL, 0, 0,
     0, cmd_token_list},
    {"audit", "[--limit N] [--reset-anchor]",
     "Print the audit log and check its hash chain and anchor.", audit_opts,
     VW_CLI_NOPTS(audit_opts), 0, 0, cmd_audit},
    {"session import", "--file plan.csv [--org O] [--actor NAME]",
     "Import an organisation's exam sessions (认定计划) from CSV: all of them or none;\n"
     "every error as file:line: column: what (docs/API.md, Exam sessions).",
     exams_import_opts, EXAMS_IMPORT_NOPTS, 0, 0, exams_cmd_import},
    {"session list", "[--site S] [--org O] [--cancelled]", "List exam sessions as a table.",
     exams_list_opts, EXAMS_LIST_NOPTS, 0, 0, exams_cmd_list},
    {"score", "--org O --from F --to T [--explain] [--config FILE]",
     "Print an organisation's item-3.6 score for a period as the API computes it;\n"
     "--explain shows every step (docs/SCORE.md).",
     score_cli_opts, SCORE_CLI_NOPTS, 0, 0, score_cli_run},
    /* issue 12 C: draws (draw_cli.c) */
    {"draw create", "--id ID --plan plan.json [--actor NAME]",
     "Create a draw from its plan (docs/DRAW.md \"Plan\"): state created.", draw_create_opts,
     DRAW_CREATE_NOPTS, 0, 0, draw_cmd_create},
    {"draw commit",
     "ID --source NAME --expected TIME [--form F] [--source ...] [--replacement-source NAME "
     "--expected TIME ...] --secret-out FILE",
     "Freeze the registers' snapshot and the public randomness to be used; make the bureau's\n"
     "secret (written to FILE, mode 0600) and store only its commitment. Prints the manifest\n"
     "hash to publish.",
     draw_commit_opts, DRAW_COMMIT_NOPTS, 1, 1, draw_cmd_commit},
    {"draw execute", "ID --value V [--value V ...] --secret-file FILE",
     "Enter the public values (in declared order) and the secret: the draw is made, with its\n"
     "inspections on the window's exam sessions.",
     draw_execute_opts, DRAW_EXECUTE_NOPTS, 1, 1, draw_cmd_execute},
    {"draw replace", "ID --seq N --out I --reason R --value V",
     "Replace inspector I of inspection N; the next declared replacement value picks who.",
     draw_replace_opts, DRAW_REPLACE_NOPTS, 1, 1, draw_cmd_replace},
    {"draw publish", "ID", "Publish an executed draw's document.", draw_publish_opts,
     DRAW_PUBLISH_NOPTS, 1, 1, draw_cmd_publish},
    {"draw show", "ID", "Print the draw as JSON (plan, manifest, document, log).", NULL, 0, 1, 1,
     draw_cmd_show},
    {"draw export", "ID [--out FILE]", "Write the draw's document (the file draw verify reads).",
     draw_export_opts, DRAW_EXPORT_NOPTS, 1, 1, draw_cmd_export},
    {"draw verify", "FILE [--manifest-sha256 H] [--private FILE]",
     "Recompute a published draw from FILE alone, offline (no -c needed): exit 0 matches,\n"
     "1 does not (the first mismatch is named), 2 usage or I/O.",
     draw_verify_opts, DRAW_VERIFY_NOPTS, 1, 1, draw_cmd_verify},
    /* issue 12 B: the registers (一单两库) */
    {"register import", "--kind targets|inspectors|items --file F [--actor NAME]",
     "Import a register from CSV: every row or none; rows equal to the stored ones change\n"
     "nothing; every error as file:line: column: what (docs/API.md, Registers).",
     register_import_opts, REGISTER_IMPORT_NOPTS, 0, 0, register_cmd_import},
    {"register list", "--kind targets|inspectors|items [--city C]",
     "List a register as a table (key, city, version, name).", register_list_opts,
     REGISTER_LIST_NOPTS, 0, 0, register_cmd_list},
    {"register export", "--kind targets|inspectors|items [--city C]",
     "Print a register as CSV in the import's own columns.", register_list_opts,
     REGISTER_LIST_NOPTS, 0, 0, register_cmd_export},
    {"signer", "", "Internal: the CA key's process, started by the server itself (not for people).",
     NULL, 0, 0, 0, cmd_signer},
};
const size_t admin_ncmds = NOPTS(admin_cmds);
