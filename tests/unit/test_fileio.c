/* fileio: a replaced file has the content and the mode asked for whatever the umask, a failed
 * replacement leaves the old file and no temporary behind, a symlink at the target is
 * replaced rather than followed, and several files replace together or not at all. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "fileio.h"
#include "testdir.h"

struct fx {
	char dir[64];
	char path[PATH_MAX];
};

static int setup(void **state)
{
	static struct fx f;
	if (testdir_make(f.dir, sizeof(f.dir), "fileio"))
		return -1;
	snprintf(f.path, sizeof(f.path), "%s/target", f.dir);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	umask(022);
	return testdir_remove(f->dir);
}

static int put_text(FILE *fp, const void *arg)
{
	return fputs(arg, fp) >= 0;
}

/* Writes half of what it is given, then fails: a write that breaks in the middle. */
static int put_half_then_fail(FILE *fp, const void *arg)
{
	const char *s = arg;
	fwrite(s, 1, strlen(s) / 2, fp);
	return 0;
}

static void slurp(const char *path, char *out, size_t n)
{
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	size_t got = fread(out, 1, n - 1, fp);
	out[got] = '\0';
	fclose(fp);
}

static void put_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
}

/* Entries of dir other than . and .., into names (joined by spaces). */
static int dir_entries(const char *dir, char *names, size_t n)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int count = 0;
	names[0] = '\0';
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		count++;
		size_t len = strlen(names);
		snprintf(names + len, n - len, "%s%s", len ? " " : "", e->d_name);
	}
	closedir(d);
	return count;
}

static void check_mode_under_umask(struct fx *f, mode_t mask)
{
	char err[256], buf[64];
	struct stat st;
	umask(mask);
	assert_int_equal(vw_file_replace(f->path, 0640, put_text, "first\n", err, sizeof(err)), 0);
	slurp(f->path, buf, sizeof(buf));
	assert_string_equal(buf, "first\n");
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	/* Replacing an existing file: the new content, and the mode asked for again. */
	assert_int_equal(chmod(f->path, 0666), 0);
	assert_int_equal(vw_file_replace(f->path, 0640, put_text, "second\n", err, sizeof(err)), 0);
	slurp(f->path, buf, sizeof(buf));
	assert_string_equal(buf, "second\n");
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	char names[512];
	assert_int_equal(dir_entries(f->dir, names, sizeof(names)), 1);
	assert_string_equal(names, "target");
}

static void mode_is_exact_under_umask_0(void **state)
{
	check_mode_under_umask(*state, 0);
}
static void mode_is_exact_under_umask_077(void **state)
{
	check_mode_under_umask(*state, 077);
}

static void failed_write_leaves_old_file_and_no_tmp(void **state)
{
	struct fx *f = *state;
	char err[256] = "", buf[64], names[512];
	put_file(f->path, "old\n");
	int rc =
	    vw_file_replace(f->path, 0600, put_half_then_fail, "new content\n", err, sizeof(err));
	assert_true(rc < 0);
	assert_non_null(strstr(err, f->path)); /* the error names the file */
	slurp(f->path, buf, sizeof(buf));
	assert_string_equal(buf, "old\n");
	assert_int_equal(dir_entries(f->dir, names, sizeof(names)), 1);
	assert_string_equal(names, "target");
}

static void missing_directory_fails_with_its_name(void **state)
{
	struct fx *f = *state;
	char err[256] = "", path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/no-such-dir/target", f->dir);
	assert_true(vw_file_replace(path, 0600, put_text, "x", err, sizeof(err)) < 0);
	assert_non_null(strstr(err, path));
}

static void symlink_at_target_is_replaced_not_followed(void **state)
{
	struct fx *f = *state;
	char err[256], victim[PATH_MAX], buf[64];
	struct stat st;
	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	put_file(victim, "untouched\n");
	assert_int_equal(symlink(victim, f->path), 0);
	assert_int_equal(vw_file_replace(f->path, 0600, put_text, "mine\n", err, sizeof(err)), 0);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	slurp(f->path, buf, sizeof(buf));
	assert_string_equal(buf, "mine\n");
	slurp(victim, buf, sizeof(buf));
	assert_string_equal(buf, "untouched\n");
}

/* The old helper wrote through the fixed name PATH.tmp: a symlink planted there led the write
 * elsewhere. The temporary name is now unique and created O_EXCL. */
static void planted_tmp_symlink_is_not_followed(void **state)
{
	struct fx *f = *state;
	char err[256], victim[PATH_MAX], tmp[PATH_MAX + 8], buf[64];
	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	put_file(victim, "untouched\n");
	assert_int_equal(symlink(victim, tmp), 0);
	assert_int_equal(vw_file_replace(f->path, 0600, put_text, "mine\n", err, sizeof(err)), 0);
	slurp(victim, buf, sizeof(buf));
	assert_string_equal(buf, "untouched\n");
	slurp(f->path, buf, sizeof(buf));
	assert_string_equal(buf, "mine\n");
}

static void parts_replace_together_or_not_at_all(void **state)
{
	struct fx *f = *state;
	char err[256], key[PATH_MAX], cert[PATH_MAX], buf[64], names[512];
	struct stat st;
	snprintf(key, sizeof(key), "%s/agent.key", f->dir);
	snprintf(cert, sizeof(cert), "%s/agent.crt", f->dir);
	put_file(key, "old key\n");
	put_file(cert, "old cert\n");
	/* The second part fails: the first, though written, must not replace anything. */
	struct vw_file_part bad[] = {
	    {.path = key, .mode = 0600, .write_cb = put_text, .arg = "new key\n"},
	    {.path = cert, .mode = 0644, .write_cb = put_half_then_fail, .arg = "new cert\n"},
	};
	assert_true(vw_file_replace_many(bad, 2, err, sizeof(err)) < 0);
	slurp(key, buf, sizeof(buf));
	assert_string_equal(buf, "old key\n");
	slurp(cert, buf, sizeof(buf));
	assert_string_equal(buf, "old cert\n");
	assert_int_equal(dir_entries(f->dir, names, sizeof(names)), 2);

	struct vw_file_part good[] = {
	    {.path = key, .mode = 0600, .write_cb = put_text, .arg = "new key\n"},
	    {.path = cert, .mode = 0644, .write_cb = put_text, .arg = "new cert\n"},
	};
	assert_int_equal(vw_file_replace_many(good, 2, err, sizeof(err)), 0);
	slurp(key, buf, sizeof(buf));
	assert_string_equal(buf, "new key\n");
	slurp(cert, buf, sizeof(buf));
	assert_string_equal(buf, "new cert\n");
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(cert, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(dir_entries(f->dir, names, sizeof(names)), 2);
}

/* An existing file is what SQLite will open (following symlinks, keeping the mode it finds):
 * a planted symlink or FIFO is refused, a wider mode is narrowed, a narrower one kept. */
static void precreate_refuses_symlinks_and_narrows_a_wider_mode(void **state)
{
	struct fx *f = *state;
	char err[256] = "", victim[PATH_MAX];
	struct stat st;
	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	put_file(victim, "untouched\n");
	assert_int_equal(chmod(victim, 0644), 0);
	assert_int_equal(symlink(victim, f->path), 0);
	assert_int_equal(vw_file_precreate(f->path, 0600, err, sizeof(err)), -ELOOP);
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "symbolic link"));
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644); /* not narrowed through the link */
	assert_int_equal(unlink(f->path), 0);

	assert_int_equal(mkfifo(f->path, 0600), 0);
	assert_int_equal(vw_file_precreate(f->path, 0600, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(unlink(f->path), 0);

	put_file(f->path, "db\n");
	assert_int_equal(chmod(f->path, 0666), 0);
	assert_int_equal(vw_file_precreate(f->path, 0640, err, sizeof(err)), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(chmod(f->path, 0400), 0);
	assert_int_equal(vw_file_precreate(f->path, 0640, err, sizeof(err)), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0400);
	/* a new file: exactly the mode */
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(vw_file_precreate(f->path, 0640, err, sizeof(err)), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(mode_is_exact_under_umask_0, setup, teardown),
	    cmocka_unit_test_setup_teardown(mode_is_exact_under_umask_077, setup, teardown),
	    cmocka_unit_test_setup_teardown(failed_write_leaves_old_file_and_no_tmp, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(missing_directory_fails_with_its_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(symlink_at_target_is_replaced_not_followed, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(planted_tmp_symlink_is_not_followed, setup, teardown),
	    cmocka_unit_test_setup_teardown(parts_replace_together_or_not_at_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(precreate_refuses_symlinks_and_narrows_a_wider_mode,
	                                    setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
