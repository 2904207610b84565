/* sdnotify: what libsystemd's sd_notify puts on NOTIFY_SOCKET, received on an AF_UNIX
 * datagram socket this test binds (the same protocol systemd's manager reads), so no
 * systemd is needed. READY=1 carries the status line; STATUS= is re-sent only on change;
 * WATCHDOG=1 arrives at half of WATCHDOG_USEC from the loop's timer; without NOTIFY_SOCKET
 * nothing is sent and no timer runs. Every test closes its loop with uv_loop_close == 0. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>
#include <cmocka.h>

#include "sdnotify.h"

struct t {
	uv_loop_t loop;
	struct sdnotify n;
	int fd;
	char path[108];
	char status[SDNOTIFY_STATUS_MAX];
	int closed;
	char msgs[64][512]; /* datagrams received, in order */
	int nmsgs;
};

static void fill_status(void *ud, char *buf, size_t len)
{
	snprintf(buf, len, "%s", ((struct t *)ud)->status);
}

static void on_closed(void *arg)
{
	((struct t *)arg)->closed = 1;
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	t->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(t->fd >= 0);
	snprintf(t->path, sizeof(t->path), "/tmp/vw-sdnotify-%d.sock", (int)getpid());
	unlink(t->path);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, t->path, strlen(t->path) + 1);
	assert_int_equal(bind(t->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", t->path, 1);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(uv_loop_init(&t->loop), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	assert_int_equal(uv_loop_close(&t->loop), 0);
	close(t->fd);
	unlink(t->path);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	free(t);
	return 0;
}

/* Everything that arrived so far. */
static void drain(struct t *t)
{
	char buf[512];
	ssize_t k;
	while ((k = recv(t->fd, buf, sizeof(buf) - 1, 0)) > 0 && t->nmsgs < 64) {
		buf[k] = '\0';
		memcpy(t->msgs[t->nmsgs++], buf, (size_t)k + 1);
	}
}

static int count(struct t *t, const char *prefix)
{
	int c = 0;
	for (int i = 0; i < t->nmsgs; i++)
		c += strncmp(t->msgs[i], prefix, strlen(prefix)) == 0;
	return c;
}

/* Runs the loop until `want` messages starting with prefix arrived, or 20 s passed (a
 * deadline for a busy machine, never a threshold the test measures). */
static void run_until(struct t *t, const char *prefix, int want)
{
	uint64_t deadline = uv_hrtime() + 20000000000ull;
	while (count(t, prefix) < want && uv_hrtime() < deadline) {
		uv_run(&t->loop, UV_RUN_ONCE);
		drain(t);
	}
}

static void close_and_run(struct t *t)
{
	sdnotify_close(&t->n, on_closed, t);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	assert_true(t->closed);
}

static void test_ready_carries_status_then_status_only_on_change(void **state)
{
	struct t *t = *state;
	snprintf(t->status, sizeof(t->status), "3 cameras, 1 down, outbox 0, uploading");
	assert_int_equal(sdnotify_init(&t->n, &t->loop, fill_status, t), 0);
	assert_int_equal(sdnotify_watchdog_ms(&t->n), 0);
	assert_int_equal(sdnotify_ready(&t->n), 0);
	drain(t);
	assert_int_equal(t->nmsgs, 2);
	assert_string_equal(t->msgs[0], "STATUS=3 cameras, 1 down, outbox 0, uploading");
	assert_string_equal(t->msgs[1], "READY=1");
	/* Unchanged: nothing more. Changed: exactly one new line. */
	sdnotify_status_update(&t->n);
	drain(t);
	assert_int_equal(t->nmsgs, 2);
	snprintf(t->status, sizeof(t->status), "3 cameras, 2 down, outbox 5, uploading");
	sdnotify_status_update(&t->n);
	drain(t);
	assert_int_equal(t->nmsgs, 3);
	assert_string_equal(t->msgs[2], "STATUS=3 cameras, 2 down, outbox 5, uploading");
	/* The status timer picks a change up by itself. */
	snprintf(t->status, sizeof(t->status), "3 cameras, 0 down, outbox 0, uploading");
	run_until(t, "STATUS=3 cameras, 0 down", 1);
	assert_int_equal(count(t, "STATUS=3 cameras, 0 down"), 1);
	close_and_run(t);
}

static void test_reloading_and_stopping(void **state)
{
	struct t *t = *state;
	assert_int_equal(sdnotify_init(&t->n, &t->loop, NULL, NULL), 0);
	assert_int_equal(sdnotify_reloading(&t->n), 0);
	assert_int_equal(sdnotify_ready(&t->n), 0);
	assert_int_equal(sdnotify_stopping(&t->n), 0);
	drain(t);
	assert_int_equal(t->nmsgs, 3);
	assert_true(strncmp(t->msgs[0], "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
	assert_true(strtoull(t->msgs[0] + 27, NULL, 10) > 0);
	assert_string_equal(t->msgs[1], "READY=1");
	assert_string_equal(t->msgs[2], "STOPPING=1");
	close_and_run(t);
}

static void test_watchdog_pings_from_the_loop_at_half_the_interval(void **state)
{
	struct t *t = *state;
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_USEC", "200000", 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(sdnotify_init(&t->n, &t->loop, NULL, NULL), 0);
	assert_int_equal(sdnotify_watchdog_ms(&t->n), 100);
	run_until(t, "WATCHDOG=1", 3);
	assert_true(count(t, "WATCHDOG=1") >= 3);
	close_and_run(t);
}

static void test_watchdog_for_another_pid_is_not_ours(void **state)
{
	struct t *t = *state;
	/* A child that inherited the parent's environment must not ping for it. */
	setenv("WATCHDOG_USEC", "200000", 1);
	setenv("WATCHDOG_PID", "1", 1);
	assert_int_equal(sdnotify_init(&t->n, &t->loop, NULL, NULL), 0);
	assert_int_equal(sdnotify_watchdog_ms(&t->n), 0);
	close_and_run(t);
}

static void test_without_notify_socket_nothing_is_sent(void **state)
{
	struct t *t = *state;
	unsetenv("NOTIFY_SOCKET");
	setenv("WATCHDOG_USEC", "200000", 1);
	assert_int_equal(sdnotify_init(&t->n, &t->loop, fill_status, t), 0);
	assert_int_equal(sdnotify_ready(&t->n), 0);
	assert_int_equal(sdnotify_reloading(&t->n), 0);
	assert_int_equal(sdnotify_stopping(&t->n), 0);
	/* No timer either: the loop has nothing alive. */
	assert_int_equal(uv_run(&t->loop, UV_RUN_NOWAIT), 0);
	drain(t);
	assert_int_equal(t->nmsgs, 0);
	close_and_run(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ready_carries_status_then_status_only_on_change,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reloading_and_stopping, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_watchdog_pings_from_the_loop_at_half_the_interval,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_watchdog_for_another_pid_is_not_ours, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_without_notify_socket_nothing_is_sent, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
