/* The signer's sandbox (signer_sandbox_apply): the real filter and Landlock rules, applied in
 * a forked child per case (they cannot be undone), which reports back through its exit status
 * or dies by SIGSYS. What the signer does (files in its two directories: create, write, sync,
 * read, rename, remove) still works; fork, clone3, sockets, memfd, unshare, signals to others
 * and files elsewhere are refused; exec, io_uring and process_vm_readv kill it. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/landlock.h>
#include <cmocka.h>

#include "signer.h"
#include "testdir.h"

struct fx {
	char root[64], pki[96], db[96], outside[128];
};

static int setup(void **state)
{
	static struct fx f;
	memset(&f, 0, sizeof(f));
	if (testdir_make(f.root, sizeof(f.root), "sandbox"))
		return -1;
	snprintf(f.pki, sizeof(f.pki), "%s/pki", f.root);
	snprintf(f.db, sizeof(f.db), "%s/db", f.root);
	snprintf(f.outside, sizeof(f.outside), "%s/outside.txt", f.root);
	if (mkdir(f.pki, 0700) || mkdir(f.db, 0700))
		return -1;
	int fd = open(f.outside, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "x", 1) != 1)
		return -1;
	close(fd);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	return testdir_remove(f->root) ? -1 : 0;
}

static int kernel_has_landlock(void)
{
	return syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) > 0;
}

/* Runs check in a sandboxed child: its wait status. check returns 0, or the number of the
 * step that went wrong (the exit status). 100 + n: the sandbox itself failed. */
static int in_sandbox(struct fx *f, int (*check)(struct fx *f, int abi))
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const char *dirs[2] = {f->pki, f->db};
		int abi = -1;
		int rc = signer_sandbox_apply(dirs, 2, &abi);
		if (rc)
			_exit(100 + (-rc & 0x3f));
		_exit(check(f, abi));
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void assert_exit0(int st)
{
	if (WIFSIGNALED(st))
		fail_msg("child killed by signal %d", WTERMSIG(st));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void assert_killed_by_seccomp(int st)
{
	if (WIFEXITED(st))
		fail_msg("child exited %d: the call was not killed", WEXITSTATUS(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
}

/* --- what the signer does --------------------------------------------------------------- */

static int do_files(struct fx *f, int abi)
{
	char a[160], b[160], buf[16];
	snprintf(a, sizeof(a), "%s/auth.db.anchor.tmp", f->db);
	snprintf(b, sizeof(b), "%s/auth.db.anchor", f->db);
	int fd = open(a, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return 1;
	if (write(fd, "anchor", 6) != 6 || fsync(fd) || fdatasync(fd) || fchmod(fd, 0600))
		return 2;
	if (pread(fd, buf, 6, 0) != 6 || memcmp(buf, "anchor", 6) || ftruncate(fd, 3))
		return 3;
	struct stat st;
	if (fstat(fd, &st) || st.st_size != 3 || lseek(fd, 0, SEEK_END) != 3)
		return 4;
	close(fd);
	if (rename(a, b) || access(b, R_OK) || unlink(b))
		return 5;
	/* the CA's directory: read and write there too */
	snprintf(a, sizeof(a), "%s/ca.crl.tmp", f->pki);
	fd = open(a, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "crl", 3) != 3 || close(fd))
		return 6;
	snprintf(b, sizeof(b), "%s/ca.crl", f->pki);
	if (rename(a, b))
		return 7;
	fd = open(b, O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf)) != 3)
		return 8;
	close(fd);
	/* memory and time, as malloc and the log need them */
	void *big = malloc(8u << 20);
	if (!big)
		return 9;
	memset(big, 1, 8u << 20);
	free(big);
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) || getpid() <= 0)
		return 10;
	/* Landlock: a file outside both directories is out of reach */
	if (abi > 0) {
		errno = 0;
		fd = open(f->outside, O_RDONLY);
		if (fd >= 0 || errno != EACCES)
			return 11;
		if (open("/etc/passwd", O_RDONLY) >= 0)
			return 12;
	}
	return abi < 0 ? 13 : 0;
}

static void test_the_signers_own_file_work_still_works(void **state)
{
	assert_exit0(in_sandbox(*state, do_files));
}

static int do_landlock_abi(struct fx *f, int abi)
{
	(void)f;
	return abi > 0 ? 0 : 1;
}

static void test_landlock_is_applied_when_the_kernel_has_it(void **state)
{
	if (!kernel_has_landlock()) {
		print_message("kernel without Landlock: only seccomp is checked\n");
		skip();
	}
	assert_exit0(in_sandbox(*state, do_landlock_abi));
}

/* --- refused: EPERM / ENOSYS -------------------------------------------------------------- */

static int do_refusals(struct fx *f, int abi)
{
	(void)f, (void)abi;
	errno = 0;
	pid_t p = fork(); /* glibc: clone(SIGCHLD) */
	if (p == 0)
		_exit(0); /* a fork that worked: the parent reports it */
	if (p > 0 || errno != EPERM)
		return 1;
	errno = 0;
	if (syscall(__NR_clone3, NULL, 0) != -1 || errno != ENOSYS)
		return 2;
	errno = 0;
	if (socket(AF_INET, SOCK_STREAM, 0) >= 0 || errno != EPERM)
		return 3;
	errno = 0;
	if (socket(AF_UNIX, SOCK_STREAM, 0) >= 0 || errno != EPERM)
		return 4;
	errno = 0;
	if (syscall(__NR_memfd_create, "x", 0) >= 0 || errno != EPERM)
		return 5;
	errno = 0;
	if (syscall(__NR_unshare, 0) == 0 || errno != EPERM)
		return 6;
	errno = 0;
	if (kill(getppid(), 0) == 0 || errno != EPERM)
		return 7;
	errno = 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 || errno != EPERM)
		return 8;
	return 0;
}

static void test_fork_clone3_socket_memfd_unshare_kill_are_refused(void **state)
{
	assert_exit0(in_sandbox(*state, do_refusals));
}

/* --- hostile: the process dies ------------------------------------------------------------ */

static int do_io_uring(struct fx *f, int abi)
{
	(void)f, (void)abi;
	char params[120] = {0}; /* struct io_uring_params; never looked at */
	syscall(__NR_io_uring_setup, 4, params);
	return 1;
}

static int do_process_vm_readv(struct fx *f, int abi)
{
	(void)f, (void)abi;
	char a[8], b[8] = "secret";
	struct iovec l = {a, sizeof(a)}, r = {b, sizeof(b)};
	syscall(__NR_process_vm_readv, getppid(), &l, 1, &r, 1, 0);
	return 1;
}

static int do_execve(struct fx *f, int abi)
{
	(void)f, (void)abi;
	char *argv[] = {"/bin/true", NULL};
	execve("/bin/true", argv, NULL);
	return 1;
}

static void test_io_uring_kills(void **state)
{
	assert_killed_by_seccomp(in_sandbox(*state, do_io_uring));
}

static void test_process_vm_readv_kills(void **state)
{
	assert_killed_by_seccomp(in_sandbox(*state, do_process_vm_readv));
}

static void test_execve_kills(void **state)
{
	assert_killed_by_seccomp(in_sandbox(*state, do_execve));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_the_signers_own_file_work_still_works),
	    cmocka_unit_test(test_landlock_is_applied_when_the_kernel_has_it),
	    cmocka_unit_test(test_fork_clone3_socket_memfd_unshare_kill_are_refused),
	    cmocka_unit_test(test_io_uring_kills),
	    cmocka_unit_test(test_process_vm_readv_kills),
	    cmocka_unit_test(test_execve_kills),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
