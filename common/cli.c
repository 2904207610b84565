#include "cli.h"
#include "roff.h"

#include <string.h>

static const struct vw_cli_opt *find_long(const struct vw_cli_opt *o, size_t n, const char *s,
                                          size_t len, size_t *idx)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(o[i].name) == len && strncmp(o[i].name, s, len) == 0) {
			*idx = i;
			return &o[i];
		}
	return NULL;
}

static const struct vw_cli_opt *find_short(const struct vw_cli_opt *o, size_t n, char c,
                                           size_t *idx)
{
	for (size_t i = 0; c && i < n; i++)
		if (o[i].short_name == c) {
			*idx = i;
			return &o[i];
		}
	return NULL;
}

static void where(const struct vw_cli *c, const struct vw_cli_cmd *cmd, FILE *out)
{
	if (cmd)
		fprintf(out, "%s: %s: ", c->prog, cmd->name);
	else
		fprintf(out, "%s: ", c->prog);
}

/* 0, or -1 for a table longer than a vw_cli_vals holds (a program bug VW_CLI_NOPTS catches
 * at compile time; a table sized by hand is refused here rather than cut short). */
static int vals_init(const struct vw_cli *c, struct vw_cli_vals *v, const struct vw_cli_opt *o,
                     size_t n, const char *what)
{
	memset(v, 0, sizeof(*v));
	if (n > VW_CLI_OPTS_MAX) {
		fprintf(stderr, "%s: %s has %zu options, more than VW_CLI_OPTS_MAX (%d)\n", c->prog,
		        what, n, VW_CLI_OPTS_MAX);
		return -1;
	}
	v->opts = o;
	v->nopts = n;
	return 0;
}

/* Parses options from argv[*i] on: into own (the command's, if any) or g. Stops at the first
 * positional when stop_at_word (the global part), else collects positionals into own.
 * "--help" with a command prints its help. */
static int parse_opts(const struct vw_cli *c, const struct vw_cli_cmd *cmd, int argc, char **argv,
                      int *i, struct vw_cli_vals *g, struct vw_cli_vals *own, int stop_at_word)
{
	int only_pos = 0;
	for (; *i < argc; (*i)++) {
		char *a = argv[*i];
		if (only_pos || a[0] != '-' || a[1] == '\0') {
			if (stop_at_word)
				return VW_CLI_OK;
			if (!own->pos)
				own->pos = &argv[*i];
			/* Positionals are gathered in place: move this one down to follow the last.
			 */
			own->pos[own->npos++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_pos = 1;
			continue;
		}
		if (cmd && strcmp(a, "--help") == 0) {
			vw_cli_cmd_help(c, cmd, stdout);
			return VW_CLI_HELP;
		}
		const struct vw_cli_opt *o = NULL;
		struct vw_cli_vals *into = NULL;
		size_t idx = 0;
		const char *val = NULL;
		char shown[64];
		if (a[1] == '-') {
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t len = eq ? (size_t)(eq - name) : strlen(name);
			if (cmd && (o = find_long(own->opts, own->nopts, name, len, &idx)))
				into = own;
			else if ((o = find_long(g->opts, g->nopts, name, len, &idx)))
				into = g;
			if (eq)
				val = eq + 1;
			snprintf(shown, sizeof(shown), "--%.*s", (int)(len < 40 ? len : 40), name);
		} else {
			if (cmd && (o = find_short(own->opts, own->nopts, a[1], &idx)))
				into = own;
			else if ((o = find_short(g->opts, g->nopts, a[1], &idx)))
				into = g;
			if (a[2])
				val = a + 2;
			snprintf(shown, sizeof(shown), "-%c", a[1]);
		}
		if (!o) {
			where(c, cmd, stderr);
			fprintf(stderr, "unknown option %s (see --help)\n", shown);
			return VW_CLI_USAGE;
		}
		if (!o->arg && val) {
			where(c, cmd, stderr);
			fprintf(stderr, "%s takes no value (see --help)\n", shown);
			return VW_CLI_USAGE;
		}
		if (o->arg && !val) {
			if (*i + 1 >= argc) {
				where(c, cmd, stderr);
				fprintf(stderr, "%s needs a value (%s) (see --help)\n", shown,
				        o->arg);
				return VW_CLI_USAGE;
			}
			val = argv[++(*i)];
		}
		if (into->ngiven == VW_CLI_GIVEN_MAX) {
			where(c, cmd, stderr);
			fprintf(stderr, "more than %d options\n", VW_CLI_GIVEN_MAX);
			return VW_CLI_USAGE;
		}
		into->val[idx] = o->arg ? val : "";
		into->given[into->ngiven++] = (struct vw_cli_given){idx, into->val[idx]};
	}
	return VW_CLI_OK;
}

/* The command named by argv[*i] (and argv[*i + 1] for two-word names). */
static const struct vw_cli_cmd *find_cmd(const struct vw_cli *c, int argc, char **argv, int *i)
{
	const char *w1 = argv[*i], *w2 = *i + 1 < argc ? argv[*i + 1] : NULL;
	size_t l1 = strlen(w1);
	int prefix = 0;
	for (size_t k = 0; k < c->ncmds; k++) {
		const char *n = c->cmds[k].name;
		if (strcmp(n, w1) == 0) {
			*i += 1;
			return &c->cmds[k];
		}
		if (strncmp(n, w1, l1) == 0 && n[l1] == ' ') {
			prefix = 1;
			if (w2 && strcmp(n + l1 + 1, w2) == 0) {
				*i += 2;
				return &c->cmds[k];
			}
		}
	}
	if (prefix) {
		fprintf(stderr, "%s: %s: expected one of", c->prog, w1);
		int first = 1;
		for (size_t k = 0; k < c->ncmds; k++) {
			const char *n = c->cmds[k].name;
			if (strncmp(n, w1, l1) == 0 && n[l1] == ' ') {
				fprintf(stderr, "%s%s", first ? " " : ", ", n + l1 + 1);
				first = 0;
			}
		}
		fprintf(stderr, "%s%s (see --help)\n", w2 ? "; got " : "", w2 ? w2 : "");
	} else {
		fprintf(stderr, "%s: unknown command '%s' (see --help)\n", c->prog, w1);
	}
	return NULL;
}

int vw_cli_parse(const struct vw_cli *c, int argc, char **argv, struct vw_cli_vals *g,
                 const struct vw_cli_cmd **cmd, struct vw_cli_vals *cv)
{
	int i = 1, rc;
	*cmd = NULL;
	if (vals_init(c, g, c->gopts, c->ngopts, "the global option table") ||
	    vals_init(c, cv, NULL, 0, ""))
		return VW_CLI_USAGE;
	if ((rc = parse_opts(c, NULL, argc, argv, &i, g, cv, 1)) != VW_CLI_OK || i >= argc)
		return rc;
	const struct vw_cli_cmd *found = find_cmd(c, argc, argv, &i);
	if (!found)
		return VW_CLI_USAGE;
	if (vals_init(c, cv, found->opts, found->nopts, found->name))
		return VW_CLI_USAGE;
	if ((rc = parse_opts(c, found, argc, argv, &i, g, cv, 0)) != VW_CLI_OK)
		return rc;
	if (cv->npos < found->min_pos || cv->npos > found->max_pos) {
		where(c, found, stderr);
		if (cv->npos > found->max_pos)
			fprintf(stderr, "unexpected argument '%s' (see --help)\n",
			        cv->pos[found->max_pos]);
		else
			fprintf(stderr, "expected %s %s (see --help)\n", found->name, found->usage);
		return VW_CLI_USAGE;
	}
	*cmd = found;
	return VW_CLI_OK;
}

static int index_of(const struct vw_cli_vals *v, const char *name)
{
	for (size_t i = 0; i < v->nopts; i++)
		if (strcmp(v->opts[i].name, name) == 0)
			return (int)i;
	return -1;
}

const char *vw_cli_str(const struct vw_cli_vals *v, const char *name)
{
	int i = index_of(v, name);
	return i < 0 ? NULL : v->val[i];
}

int vw_cli_flag(const struct vw_cli_vals *v, const char *name)
{
	return vw_cli_str(v, name) != NULL;
}

void vw_cli_usage_lines(const struct vw_cli *c, FILE *out)
{
	for (size_t k = 0; k < c->ncmds; k++)
		fprintf(out, "       %s %s %s%s%s\n", c->prog, c->global_usage, c->cmds[k].name,
		        c->cmds[k].usage[0] ? " " : "", c->cmds[k].usage);
}

static void man_opts(const struct vw_cli_opt *o, size_t n, FILE *out)
{
	for (size_t i = 0; i < n; i++) {
		char lhs[96];
		snprintf(lhs, sizeof(lhs), "%s%s%s--%s%s%s", o[i].short_name ? "-" : "",
		         o[i].short_name ? (char[2]){o[i].short_name, 0} : "",
		         o[i].short_name ? ", " : "", o[i].name, o[i].arg ? " " : "",
		         o[i].arg ? o[i].arg : "");
		fputs(".TP\n", out);
		vw_roff_req(out, "B", lhs);
		vw_roff_text(out, o[i].help);
		fputc('\n', out);
	}
}

void vw_cli_print_man(const struct vw_cli *c, FILE *out)
{
	vw_roff_req(out, "SS", "Global options");
	man_opts(c->gopts, c->ngopts, out);
	for (size_t k = 0; k < c->ncmds; k++) {
		const struct vw_cli_cmd *cmd = &c->cmds[k];
		char line[512];
		snprintf(line, sizeof(line), "%s %s %s%s%s", c->prog, c->global_usage, cmd->name,
		         cmd->usage[0] ? " " : "", cmd->usage);
		vw_roff_req(out, "SS", cmd->name);
		vw_roff_req(out, "B", line);
		fputs(".PP\n", out);
		vw_roff_text(out, cmd->help && cmd->help[0] ? cmd->help : "");
		fputc('\n', out);
		man_opts(cmd->opts, cmd->nopts, out);
	}
}

void vw_cli_cmd_help(const struct vw_cli *c, const struct vw_cli_cmd *cmd, FILE *out)
{
	fprintf(out, "usage: %s %s %s%s%s\n", c->prog, c->global_usage, cmd->name,
	        cmd->usage[0] ? " " : "", cmd->usage);
	if (cmd->help && cmd->help[0])
		fprintf(out, "\n%s\n", cmd->help);
	if (cmd->nopts)
		fprintf(out, "\n");
	for (size_t i = 0; i < cmd->nopts; i++) {
		char lhs[64];
		snprintf(lhs, sizeof(lhs), "--%s%s%s", cmd->opts[i].name,
		         cmd->opts[i].arg ? " " : "", cmd->opts[i].arg ? cmd->opts[i].arg : "");
		fprintf(out, "  %-20s %s\n", lhs, cmd->opts[i].help);
	}
}
