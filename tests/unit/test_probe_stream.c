/* FFmpeg's log lines on their way into ours: camera credentials never pass, in any of the
 * forms libavformat prints them (URL userinfo, RTSP request dumps at debug/trace). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(url_userinfo_is_masked),
	    cmocka_unit_test(authorization_lines_are_cut),
	    cmocka_unit_test(quotes_and_controls_cannot_break_the_log_line),
	    cmocka_unit_test(userinfo_with_separators_and_query_secrets_are_masked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
