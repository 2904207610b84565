/* cli: a command is found by one or two words, its options and the global ones parse in
 * either place, and bad input exits 2 with an error naming the command and the option. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cli.h"

static const struct vw_cli_opt gopts[] = {
    {"config", 'c', "FILE", "config"},
    {"help", 'h', NULL, "help"},
};
static const struct vw_cli_opt create_opts[] = {
    {"role", 0, "ROLE", "role"},
    {"force", 0, NULL, "flag"},
};
static const struct vw_cli_cmd cmds[] = {
    {"token create", "--role R", "", create_opts, 2, 0, 0, NULL},
    {"token revoke", "ID", "", NULL, 0, 1, 1, NULL},
    {"status", "", "", NULL, 0, 0, 0, NULL},
};
static const struct vw_cli cli = {"prog", "-c FILE", gopts, 2, cmds, 3};

static int parse(char **argv, struct vw_cli_vals *g, const struct vw_cli_cmd **cmd,
                 struct vw_cli_vals *cv)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	return vw_cli_parse(&cli, argc, argv, g, cmd, cv);
}

static void two_word_command_with_options_both_forms(void **state)
{
	(void)state;
	char *argv[] = {"prog", "-c", "f.ini", "token", "create", "--role=city", "--force", NULL};
	struct vw_cli_vals g, cv;
	const struct vw_cli_cmd *cmd;
	assert_int_equal(parse(argv, &g, &cmd, &cv), VW_CLI_OK);
	assert_ptr_equal(cmd, &cmds[0]);
	assert_string_equal(vw_cli_str(&g, "config"), "f.ini");
	assert_string_equal(vw_cli_str(&cv, "role"), "city");
	assert_true(vw_cli_flag(&cv, "force"));
	char *argv2[] = {"prog",     "token",    "create", "--role",
	                 "province", "--config", "g.ini",  NULL};
	assert_int_equal(parse(argv2, &g, &cmd, &cv), VW_CLI_OK);
	assert_string_equal(vw_cli_str(&cv, "role"), "province");
	assert_string_equal(vw_cli_str(&g, "config"), "g.ini"); /* a global after the command */
	assert_false(vw_cli_flag(&cv, "force"));
}

static void positionals_are_counted(void **state)
{
	(void)state;
	struct vw_cli_vals g, cv;
	const struct vw_cli_cmd *cmd;
	char *ok[] = {"prog", "-cf", "token", "revoke", "abc", NULL};
	assert_int_equal(parse(ok, &g, &cmd, &cv), VW_CLI_OK);
	assert_string_equal(vw_cli_str(&g, "config"), "f");
	assert_int_equal(cv.npos, 1);
	assert_string_equal(cv.pos[0], "abc");
	char *none[] = {"prog", "token", "revoke", NULL};
	assert_int_equal(parse(none, &g, &cmd, &cv), VW_CLI_USAGE);
	char *extra[] = {"prog", "status", "x", NULL};
	assert_int_equal(parse(extra, &g, &cmd, &cv), VW_CLI_USAGE);
	char *no_cmd[] = {"prog", "-c", "f", NULL};
	assert_int_equal(parse(no_cmd, &g, &cmd, &cv), VW_CLI_OK);
	assert_null(cmd);
}

static void bad_input_is_a_usage_error(void **state)
{
	(void)state;
	struct vw_cli_vals g, cv;
	const struct vw_cli_cmd *cmd;
	char *unknown[] = {"prog", "token", "create", "--x", NULL};
	assert_int_equal(parse(unknown, &g, &cmd, &cv), VW_CLI_USAGE);
	char *abbrev[] = {"prog", "token", "create", "--ro", "city", NULL};
	assert_int_equal(parse(abbrev, &g, &cmd, &cv), VW_CLI_USAGE);
	char *missing[] = {"prog", "token", "create", "--role", NULL};
	assert_int_equal(parse(missing, &g, &cmd, &cv), VW_CLI_USAGE);
	char *flagval[] = {"prog", "token", "create", "--force=1", NULL};
	assert_int_equal(parse(flagval, &g, &cmd, &cv), VW_CLI_USAGE);
	char *half[] = {"prog", "token", NULL};
	assert_int_equal(parse(half, &g, &cmd, &cv), VW_CLI_USAGE);
	char *wrong[] = {"prog", "token", "burn", NULL};
	assert_int_equal(parse(wrong, &g, &cmd, &cv), VW_CLI_USAGE);
	char *nocmd[] = {"prog", "frobnicate", NULL};
	assert_int_equal(parse(nocmd, &g, &cmd, &cv), VW_CLI_USAGE);
	char *help[] = {"prog", "token", "create", "--help", NULL};
	assert_int_equal(parse(help, &g, &cmd, &cv), VW_CLI_HELP);
}

/* A table sized by hand past VW_CLI_OPTS_MAX is refused, not silently cut short (tables
 * sized with VW_CLI_NOPTS do not compile). */
static void an_oversized_option_table_is_refused(void **state)
{
	(void)state;
	static const struct vw_cli_opt many[VW_CLI_OPTS_MAX + 1] = {{"o0", 0, NULL, ""}};
	static const struct vw_cli_cmd big[] = {
	    {"big", "", "", many, VW_CLI_OPTS_MAX + 1, 0, 0, NULL}};
	static const struct vw_cli bc = {"prog", "", gopts, VW_CLI_NOPTS(gopts), big, 1};
	char *argv[] = {"prog", "big", NULL};
	struct vw_cli_vals g, cv;
	const struct vw_cli_cmd *cmd = NULL;
	assert_int_equal(vw_cli_parse(&bc, 2, argv, &g, &cmd, &cv), VW_CLI_USAGE);
	assert_null(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(two_word_command_with_options_both_forms),
	    cmocka_unit_test(positionals_are_counted),
	    cmocka_unit_test(bad_input_is_a_usage_error),
	    cmocka_unit_test(an_oversized_option_table_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
