/* FFmpeg's log lines on their way into ours: camera credentials never pass, in any of the
 * forms libavformat prints them (URL userinfo, RTSP request dumps at debug/trace). And a
 * camera's host name is resolved within the check's deadline, however long the resolver
 * hangs. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "probe_stream.h"

static void masks_to(const char *in, const char *want)
{
	char out[512];
	probe_stream_mask_log(in, out, sizeof(out));
	if (strcmp(out, want) != 0)
		fail_msg("\n  in:   %s\n  got:  %s\n  want: %s", in, out, want);
}

static void url_userinfo_is_masked(void **state)
{
	(void)state;
	masks_to("Opening 'rtsp://viewer:s3cr3t@127.0.0.1:8554/cam1' for reading",
	         "Opening 'rtsp://***@127.0.0.1:8554/cam1' for reading");
	masks_to("rtsp://viewer:s3cr3t@cam/a rtsp://u:p@cam/b",
	         "rtsp://***@cam/a rtsp://***@cam/b");
	masks_to("[tcp @ 0x55d0] Starting connection attempt to viewer:s3cr3t@10.0.0.7 port 554",
	         "[tcp @ 0x55d0] Starting connection attempt to ***@10.0.0.7 port 554");
	masks_to("url=http://admin:pa%3Ass@cam", "url=http://***@cam");
	/* libav's own context tags stay: "[rtsp @ 0x...]" has nothing before its '@' */
	masks_to("[rtsp @ 0x5581c0] method DESCRIBE failed: 401 Unauthorized",
	         "[rtsp @ 0x5581c0] method DESCRIBE failed: 401 Unauthorized");
	masks_to("rtsp://cam.example/a?x=1", "rtsp://cam.example/a?x=1");
}

static void authorization_lines_are_cut(void **state)
{
	(void)state;
	/* what rtsp.c prints at AV_LOG_DEBUG: the whole request, one message */
	masks_to(
	    "Sending:\nDESCRIBE rtsp://127.0.0.1:8554/auth RTSP/1.0\r\nAccept: application/sdp\r\n"
	    "CSeq: 3\r\nAuthorization: Basic dmlld2VyOnMzY3IzdA==\r\n\r\n--",
	    "Sending: | DESCRIBE rtsp://127.0.0.1:8554/auth RTSP/1.0 | Accept: application/sdp | "
	    "CSeq: 3 | Authorization: *** | --");
	masks_to("authorization: Digest username=\"viewer\", response=\"6629fae4\"",
	         "authorization: ***");
	masks_to("Proxy-Authorization: Basic Zm9v", "Proxy-Authorization: ***");
	masks_to("auth header: Digest username=viewer, nonce=abc, response=0f",
	         "auth header: Digest  ***");
	masks_to("using Basic dmlld2VyOnMzY3IzdA==", "using Basic  ***");
	/* the server's challenge names no secret, but a later token on the line could */
	masks_to("line='WWW-Authenticate: Basic realm=\"camd\"'",
	         "line='WWW-Authenticate: Basic  ***");
}

static void quotes_and_controls_cannot_break_the_log_line(void **state)
{
	(void)state;
	masks_to("a \"quoted\" \x01word\x7f\n", "a 'quoted'  word ");
	masks_to("\n\n", "");
	char small[8];
	probe_stream_mask_log("rtsp://viewer:s3cr3t@host/long/path", small, sizeof(small));
	assert_int_equal(strlen(small), 7);
	assert_null(strstr(small, "s3c"));
}

/* The second security review's cases: userinfo with separators in it, and secrets in the
 * query string. Split into words, each of these let part of the password through. */
static void userinfo_with_separators_and_query_secrets_are_masked(void **state)
{
	(void)state;
	masks_to("rtsp://admin:pa;ss@h/c", "rtsp://***@h/c");
	masks_to("rtsp://admin:p=ss,word@h", "rtsp://***@h");
	masks_to("rtsp://admin:pa(ss)@h/c", "rtsp://***@h/c");
	masks_to("rtsps://admin:s3cr'et@cam/ch1", "rtsps://***@cam/ch1");
	masks_to("rtsp://admin:pa\tss@h/c", "rtsp://***@h/c");
	masks_to("rtsp://admin:p@ss@h/c", "rtsp://***@h/c");
	masks_to("Opening 'rtsp://admin:a b\"c@10.0.0.7:554/c' for reading",
	         "Opening 'rtsp://***@10.0.0.7:554/c' for reading");
	masks_to("rtsp://h/ch1?user=admin&password=s3cret", "rtsp://h/ch1?user=admin&password=***");
	/* a value ends at '&' only: a ';' may be part of the password, so it goes too */
	masks_to("http://h/snap?PWD=x1&Token=t2;k3&sig=ok&signature=s4 done",
	         "http://h/snap?PWD=***&Token=***&sig=ok&signature=*** done");
	masks_to("http://h/snap?a=1;key=k3", "http://h/snap?a=1;key=***");
	masks_to("'rtsp://h/c?pass=a(b)c&auth=z' x", "'rtsp://h/c?pass=***&auth=***' x");
	/* names that only contain a secret one are not secret */
	masks_to("rtsp://h/c?passage=1&monkey=2", "rtsp://h/c?passage=1&monkey=2");
	char out[128];
	probe_stream_mask_url("rtsp://admin:p@ss@h/c?pwd=x", out, sizeof(out));
	assert_string_equal(out, "rtsp://***@h/c?pwd=***");
}

/* The resolver test's child: its own network (loopback only) and mount namespace, with a
 * resolv.conf naming a server on loopback that takes every query and never answers, and a
 * resolver told to wait 30 s per try, 3 tries. Exit codes: 0 ok, 77 no namespaces here
 * (skip), 1.. what failed. */
#define HUNG_RESOLVER_TIMEOUT_S 30
static int hung_resolver_child(void)
{
	if (unshare(CLONE_NEWNS | CLONE_NEWNET))
		return 77;
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return 77;
	char conf[] = "/tmp/vw-test-resolv.XXXXXX";
	int fd = mkstemp(conf);
	if (fd < 0)
		return 2;
	dprintf(fd, "nameserver 127.0.0.1\noptions timeout:%d attempts:3\n",
	        HUNG_RESOLVER_TIMEOUT_S);
	close(fd);
	int bound = mount(conf, "/etc/resolv.conf", NULL, MS_BIND, NULL);
	unlink(conf);
	if (bound)
		return 77;
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr))
		return 3;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr))
		return 3;
	/* The silent DNS server: bound, so queries are neither refused nor answered. */
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)))
		return 4;

	probe_stream_global_init();
	struct probe_stream_req req = {.name = "front",
	                               .url = "rtsp://camera.hung-resolver.test:554/live",
	                               .timeout_ms = 1000,
	                               .window_ms = 500};
	picture_opts_default(&req.picture);
	struct vw_result r;
	probe_stream_run(&req, &r);
	double ms = -1;
	vw_result_get_metric(&r, "check_ms", &ms);
	fprintf(stderr, "hung resolver: status=%s faults=%u first=%s check_ms=%.0f\n",
	        vw_status_name(r.status), r.nfaults, r.nfaults ? r.faults[0] : "-", ms);
	if (!vw_result_has_fault(&r, "timeout") || r.status != VW_STATUS_DOWN)
		return 5;
	/* Ended by the check's deadline, not by the resolver giving up (30 s at the least). */
	if (ms < 0 || ms >= HUNG_RESOLVER_TIMEOUT_S * 1000)
		return 6;
	/* A numeric host never asks the resolver: a closed port is unreachable, not a timeout. */
	req.url = "rtsp://127.0.0.1:1/live";
	probe_stream_run(&req, &r);
	fprintf(stderr, "numeric host: status=%s first=%s\n", vw_status_name(r.status),
	        r.nfaults ? r.faults[0] : "-");
	if (!vw_result_has_fault(&r, "unreachable"))
		return 7;
	return 0;
}

static void hung_resolver_does_not_hold_the_check_past_its_deadline(void **state)
{
	(void)state;
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(hung_resolver_child());
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77)
		skip(); /* no mount or network namespaces (not root, or a locked-down container) */
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(url_userinfo_is_masked),
	    cmocka_unit_test(authorization_lines_are_cut),
	    cmocka_unit_test(quotes_and_controls_cannot_break_the_log_line),
	    cmocka_unit_test(userinfo_with_separators_and_query_secrets_are_masked),
	    cmocka_unit_test(hung_resolver_does_not_hold_the_check_past_its_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
