/* cli: subcommands from one table. A program lists its global options and its commands (name
 * of one or two words, usage, help, option table, positional count, handler); vw_cli_parse
 * finds the command, parses both option sets and answers --help from the tables, with errors
 * of the form "PROG: CMD: unknown option --x (see --help)". Main thread, before the loop;
 * values point into argv (nothing to free). */
#ifndef VW_CLI_H
#define VW_CLI_H

#include <stddef.h>
#include <stdio.h>

#define VW_CLI_OPTS_MAX 16
#define VW_CLI_GIVEN_MAX 64 /* options on one command line */
/* The length of an option table, refused at compile time when it holds more options than a
 * vw_cli_vals can (the parser would otherwise have to drop the rest). Use it for nopts. */
#define VW_CLI_NOPTS(a)                                                                            \
	(sizeof(a) / sizeof((a)[0]) +                                                              \
	 0 * sizeof(struct {                                                                       \
		 _Static_assert(sizeof(a) / sizeof((a)[0]) <= VW_CLI_OPTS_MAX,                     \
		                "an option table longer than VW_CLI_OPTS_MAX");                    \
		 int unused;                                                                       \
	 }))

struct vw_cli_opt {
	const char *name; /* long name without "--" */
	char short_name;  /* 0 if none */
	const char *arg;  /* the value's name in help ("FILE"), NULL for a flag */
	const char *help;
};

struct vw_cli_vals {
	const struct vw_cli_opt *opts;
	size_t nopts;
	const char *val[VW_CLI_OPTS_MAX]; /* the last value given; flags: "" when given */
	/* Every option as given, in order (opt indexes opts): for options that repeat and pair
	 * up (draw commit's --source NAME --expected TIME ...). */
	struct vw_cli_given {
		size_t opt;
		const char *val;
	} given[VW_CLI_GIVEN_MAX];
	size_t ngiven;
	char **pos; /* positional arguments, in order */
	int npos;
};

struct vw_cli_cmd;
typedef int (*vw_cli_run_fn)(void *ctx, const struct vw_cli_cmd *cmd, const struct vw_cli_vals *v);

struct vw_cli_cmd {
	const char *name;  /* "status", "token create" */
	const char *usage; /* what follows the name in the usage line, may be "" */
	const char *help;  /* a few lines, printed by "NAME --help" */
	const struct vw_cli_opt *opts;
	size_t nopts;
	int min_pos, max_pos; /* positional arguments allowed */
	vw_cli_run_fn run;
};

struct vw_cli {
	const char *prog;         /* "venuewatch-server" */
	const char *global_usage; /* what goes between prog and a command: "-c FILE" */
	const struct vw_cli_opt *gopts;
	size_t ngopts;
	const struct vw_cli_cmd *cmds;
	size_t ncmds;
};

enum { VW_CLI_OK = 0, VW_CLI_HELP = 1, VW_CLI_USAGE = 2 };

/* Parses argv: global options up to the first word, then a command and its options (global
 * options are accepted there too). *cmd is NULL when argv names no command. VW_CLI_OK,
 * VW_CLI_HELP (a command's --help was printed to stdout: exit 0) or VW_CLI_USAGE (the error
 * was printed to stderr: exit 2). */
int vw_cli_parse(const struct vw_cli *c, int argc, char **argv, struct vw_cli_vals *g,
                 const struct vw_cli_cmd **cmd, struct vw_cli_vals *cv);
/* The value of option name (NULL when not given); vw_cli_flag: 1 when given. */
const char *vw_cli_str(const struct vw_cli_vals *v, const char *name);
int vw_cli_flag(const struct vw_cli_vals *v, const char *name);
/* The global options and every command with its usage line, help and options as man(7)
 * source (the COMMANDS section of venuewatch-agent(8) and venuewatch-server(8)). */
void vw_cli_print_man(const struct vw_cli *c, FILE *out);
/* One "       PROG GLOBAL NAME USAGE" line per command, for a program's --help. */
void vw_cli_usage_lines(const struct vw_cli *c, FILE *out);
/* A command's usage line, help and options (what "NAME --help" prints). */
void vw_cli_cmd_help(const struct vw_cli *c, const struct vw_cli_cmd *cmd, FILE *out);

#endif
