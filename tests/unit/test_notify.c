/* notify_msg and the [notify NAME] config: DingTalk's signature against a vector computed
 * outside this code, the Chinese message and each robot's body, the filters, the token
 * bucket, the retry schedule, the reply verdicts, and config errors naming the section. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <stdio.h>
#include <uv.h>

#include "notify.h"
#include "notify_msg.h"
#include "server_conf.h"
#include "store.h"
#include "testdir.h"
#include "testpg.h"

/* Every string of the NULL-ended wants is somewhere in text. */
static void assert_all_in(const char *text, const char *const *wants)
{
	for (; *wants; wants++)
		if (!strstr(text, *wants))
			fail_msg("'%s' not in: %s", *wants, text);
}

static const char problem_json[] =
    "{\"id\":12,\"site\":\"S1\",\"org\":\"O1\",\"city\":\"济南市\",\"agent\":\"a1\","
    "\"kind\":\"stream\",\"target\":\"cam1\",\"state\":\"open\",\"status\":\"down\","
    "\"worst\":\"down\",\"severity\":\"major\",\"faults\":[\"black\",\"frozen\"],"
    "\"start\":\"2026-12-02T03:00:00.000Z\",\"end\":null,\"duration_s\":95,"
    "\"in_session\":true,\"ack\":null,\"thumbnail\":\"/9j/4AAQSkZJRg==\"}";

/* python3: quote_plus(b64encode(hmac.new(secret, "1764644400000\n" + secret, sha256)))
 * and `printf '1764644400000\n%s' SECRET | openssl dgst -sha256 -hmac SECRET -binary |
 * base64` agree on it (the latter before URL-encoding). */
static void dingtalk_sign_matches_the_documented_algorithm(void **state)
{
	(void)state;
	char out[128];
	assert_int_equal(notify_dingtalk_sign(
	                     "SECd3b1f7a0c2e94b5f8a6e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a",
	                     1764644400000LL, out, sizeof(out)),
	                 0);
	assert_string_equal(out, "%2FnwYWbW2yci0AQgMRhPB1mJgW37Zae8hdUH%2FuC4cwyk%3D");
	char small[8];
	assert_int_equal(notify_dingtalk_sign("SEC1", 1, small, sizeof(small)), -ENOSPC);
}

static void a_problem_parses_and_bad_ones_name_the_field(void **state)
{
	(void)state;
	struct notify_problem p;
	char err[200];
	assert_int_equal(notify_problem_parse(problem_json, &p, err, sizeof(err)), 0);
	assert_int_equal(p.id, 12);
	assert_string_equal(p.city, "济南市");
	assert_int_equal(p.nfaults, 2);
	assert_string_equal(p.faults[1], "frozen");
	assert_int_equal(p.start_ms, 1796180400000LL);
	assert_int_equal(p.end_ms, 0);
	assert_true(p.in_session);
	assert_int_equal(
	    notify_problem_parse("{\"id\":3,\"kind\":\"stream\",\"severity\":\"major\","
	                         "\"start\":\"2026-12-02T03:00:00Z\"}",
	                         &p, err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "'site'"));
	assert_int_equal(
	    notify_problem_parse("{\"id\":3,\"site\":\"S\",\"kind\":\"stream\","
	                         "\"severity\":\"huge\",\"start\":\"2026-12-02T03:00:00Z\"}",
	                         &p, err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "'severity'"));
	assert_int_equal(notify_problem_parse("[1]", &p, err, sizeof(err)), -EINVAL);
}

static void filters_parse_and_match(void **state)
{
	(void)state;
	struct notify_problem p;
	char err[200];
	assert_int_equal(notify_problem_parse(problem_json, &p, err, sizeof(err)), 0);
	struct notify_scope sc;
	assert_int_equal(notify_scope_parse("province", &sc, err, sizeof(err)), 0);
	assert_true(notify_scope_match(&sc, &p));
	assert_int_equal(notify_scope_parse("city:济南市", &sc, err, sizeof(err)), 0);
	assert_true(notify_scope_match(&sc, &p));
	assert_int_equal(notify_scope_parse("city:青岛市", &sc, err, sizeof(err)), 0);
	assert_false(notify_scope_match(&sc, &p));
	assert_int_equal(notify_scope_parse("org:O1", &sc, err, sizeof(err)), 0);
	assert_true(notify_scope_match(&sc, &p));
	assert_int_equal(notify_scope_parse("site:S2", &sc, err, sizeof(err)), 0);
	assert_false(notify_scope_match(&sc, &p));
	assert_int_equal(notify_scope_parse("county:X", &sc, err, sizeof(err)), -EINVAL);
	assert_int_equal(notify_scope_parse("city:", &sc, err, sizeof(err)), -EINVAL);

	unsigned mask;
	assert_int_equal(notify_events_parse("opened, acked", &mask, err, sizeof(err)), 0);
	assert_int_equal(mask, NOTIFY_EV_OPENED | NOTIFY_EV_ACKED);
	assert_int_equal(notify_events_parse("opened,reopened", &mask, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'reopened'"));
	assert_int_equal(notify_event_bit("problem_closed"), NOTIFY_EV_CLOSED);
	assert_int_equal(notify_event_bit("status"), 0);
	assert_int_equal(notify_event_bit("report"), 0);

	assert_true(notify_severity_rank("critical") > notify_severity_rank("major"));
	assert_true(notify_severity_rank("major") > notify_severity_rank("minor"));
	assert_int_equal(notify_severity_rank("MAJOR"), -1);

	double r;
	assert_int_equal(notify_rate_parse("20/min", &r, err, sizeof(err)), 0);
	assert_true(r == 20);
	assert_int_equal(notify_rate_parse("120/h", &r, err, sizeof(err)), 0);
	assert_true(r == 2);
	assert_int_equal(notify_rate_parse("off", &r, err, sizeof(err)), 0);
	assert_true(r == 0);
	assert_int_equal(notify_rate_parse("20", &r, err, sizeof(err)), -EINVAL);
	assert_int_equal(notify_rate_parse("-1/min", &r, err, sizeof(err)), -EINVAL);
}

static cJSON *body_of(enum notify_type t, unsigned ev, const char *url, int64_t suppressed,
                      const char *json)
{
	struct notify_problem p;
	char err[200];
	assert_int_equal(notify_problem_parse(json, &p, err, sizeof(err)), 0);
	struct vw_buf b;
	vw_buf_init(&b, 1 << 20);
	assert_int_equal(notify_format_body(t, "duty", &p, ev, 77, url, suppressed, &b), 0);
	cJSON *o = cJSON_ParseWithLength(b.data, b.len);
	vw_buf_free(&b);
	assert_non_null(o);
	return o;
}

static const char *str_at(const cJSON *o, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

static void the_message_is_chinese_and_names_everything(void **state)
{
	(void)state;
	cJSON *o =
	    body_of(NOTIFY_DINGTALK, NOTIFY_EV_OPENED, "https://vw.example.cn/", 0, problem_json);
	assert_string_equal(str_at(o, "msgtype", NULL), "markdown");
	const char *title = str_at(o, "markdown", "title");
	const char *text = str_at(o, "markdown", "text");
	assert_non_null(strstr(title, "【严重】"));
	assert_non_null(strstr(title, "S1"));
	assert_all_in(text,
	              (const char *const[]){"考点：S1", "机构：O1", "城市：济南市", "视频 cam1",
	                                    "黑屏、画面冻结", "级别：严重",
	                                    "开始：2026-12-02 11:00:00（北京时间）", "考试期间",
	                                    "(https://vw.example.cn/sites/S1)", NULL});
	assert_null(strstr(text, "/9j/")); /* never the thumbnail */
	cJSON_Delete(o);

	/* Closed: the end and how long; no public_url, no link. */
	o = body_of(
	    NOTIFY_WECOM, NOTIFY_EV_CLOSED, "", 3,
	    "{\"id\":12,\"site\":\"S1\",\"org\":\"O1\",\"city\":\"济南市\",\"kind\":\"site\","
	    "\"target\":\"\",\"status\":\"down\",\"severity\":\"major\",\"faults\":"
	    "[\"site_silent\"],\"start\":\"2026-12-02T03:00:00Z\","
	    "\"end\":\"2026-12-02T04:01:05Z\",\"duration_s\":3665}");
	text = str_at(o, "markdown", "content");
	assert_all_in(text, (const char *const[]){"已恢复", "站点失联", "结束：2026-12-02 12:01:05",
	                                          "持续：1小时1分5秒", "另有 3 条通知", NULL});
	assert_null(strstr(text, "http"));
	cJSON_Delete(o);
}

static void names_cannot_add_markup_or_lines(void **state)
{
	(void)state;
	cJSON *o = body_of(NOTIFY_DINGTALK, NOTIFY_EV_ACKED, NULL, 0,
	                   "{\"id\":5,\"site\":\"S1\",\"org\":\"O](http://evil)\",\"city\":\"C\","
	                   "\"kind\":\"stream\",\"target\":\"c\\n### fake\",\"severity\":\"minor\","
	                   "\"start\":\"2026-12-02T03:00:00Z\",\"ack\":{\"by\":\"张三\","
	                   "\"at\":\"2026-12-02T03:05:00Z\",\"message\":\"已通知\\n[x](y)\"}}");
	const char *text = str_at(o, "markdown", "text");
	assert_null(strstr(text, "](http://evil)"));
	assert_null(strstr(text, "\n###"));
	assert_null(strstr(text, "[x](y)"));
	assert_non_null(strstr(text, "确认：张三 2026-12-02 11:05:00，已通知"));
	cJSON_Delete(o);
}

/* A bare URL in an ack message or a name would be a link in DingTalk and WeCom: its
 * slashes are not slashes any more, also when dropped markup or a line break put it
 * together. */
static void bare_urls_are_not_links(void **state)
{
	(void)state;
	cJSON *o =
	    body_of(NOTIFY_WECOM, NOTIFY_EV_ACKED, NULL, 0,
	            "{\"id\":5,\"site\":\"S1 http://s.example\",\"org\":\"O\","
	            "\"kind\":\"stream\",\"target\":\"c\",\"severity\":\"minor\","
	            "\"start\":\"2026-12-02T03:00:00Z\",\"ack\":{\"by\":\"张三\","
	            "\"at\":\"2026-12-02T03:05:00Z\",\"message\":\"见 https://evil.example/a/b"
	            " 与 HTTPS:/(/x.example) 及 ftp:\\n//y\"}}");
	const char *text = str_at(o, "markdown", "content");
	assert_null(strstr(text, "://"));
	assert_null(strstr(text, ":/"));
	assert_non_null(
	    strstr(text, "见 https:∕∕evil.example/a/b 与 HTTPS:∕∕x.example 及 ftp: //y"));
	assert_non_null(strstr(text, "S1 http:∕∕s.example"));
	cJSON_Delete(o);
}

/* Which events a sink takes, by its settings: openings by the severity the problem
 * reached; closed/acked/updated, for a sink that asks for openings, only after an
 * announced opening (NOTIFY_WANT_IF_TOLD — whatever the severity is by then), else by the
 * severity; an update that brings a problem to the sink's severity opens it there. */
static void a_sink_hears_the_end_of_what_it_was_told(void **state)
{
	(void)state;
	struct notify_problem p;
	char err[200];
	struct notify_scope province, qingdao;
	assert_int_equal(notify_scope_parse("province", &province, err, sizeof(err)), 0);
	assert_int_equal(notify_scope_parse("city:青岛市", &qingdao, err, sizeof(err)), 0);
	unsigned oc = NOTIFY_EV_OPENED | NOTIFY_EV_CLOSED,
	         all = oc | NOTIFY_EV_ACKED | NOTIFY_EV_UPDATED;
	assert_int_equal(notify_problem_parse(problem_json, &p, err, sizeof(err)), 0);
	/* major, open */
	assert_int_equal(notify_wants(oc, NOTIFY_MAJOR, &province, &p, NOTIFY_EV_OPENED),
	                 NOTIFY_WANT_EVENT);
	assert_int_equal(notify_wants(oc, NOTIFY_CRITICAL, &province, &p, NOTIFY_EV_OPENED), 0);
	assert_int_equal(notify_wants(oc, NOTIFY_MINOR, &qingdao, &p, NOTIFY_EV_OPENED), 0);
	assert_int_equal(notify_wants(oc, NOTIFY_MINOR, &qingdao, &p, NOTIFY_EV_CLOSED), 0);
	assert_int_equal(notify_wants(oc, NOTIFY_MAJOR, &province, &p, NOTIFY_EV_ACKED), 0);
	/* an update at the sink's severity: an opening (dropped when there) and, if asked
	 * for, the update after it */
	assert_int_equal(notify_wants(oc, NOTIFY_MAJOR, &province, &p, NOTIFY_EV_UPDATED),
	                 NOTIFY_WANT_OPENED);
	assert_int_equal(notify_wants(all, NOTIFY_MAJOR, &province, &p, NOTIFY_EV_UPDATED),
	                 NOTIFY_WANT_OPENED | NOTIFY_WANT_IF_TOLD);
	assert_int_equal(notify_wants(all, NOTIFY_CRITICAL, &province, &p, NOTIFY_EV_UPDATED),
	                 NOTIFY_WANT_IF_TOLD);

	/* Closed while below the sink's severity — never reached it, or lower now than it was
	 * announced at: the same answer, only if told; the store knows which. */
	p.end_ms = p.start_ms + 95000;
	assert_int_equal(notify_wants(oc, NOTIFY_CRITICAL, &province, &p, NOTIFY_EV_CLOSED),
	                 NOTIFY_WANT_IF_TOLD);
	snprintf(p.severity, sizeof(p.severity), "minor");
	snprintf(p.worst, sizeof(p.worst), "degraded");
	assert_int_equal(notify_wants(oc, NOTIFY_MAJOR, &province, &p, NOTIFY_EV_CLOSED),
	                 NOTIFY_WANT_IF_TOLD);
	assert_int_equal(notify_wants(all, NOTIFY_MAJOR, &province, &p, NOTIFY_EV_UPDATED),
	                 NOTIFY_WANT_IF_TOLD); /* closed: no opening now */
	/* A sink that asks for no openings goes by the severity the problem reached. */
	assert_int_equal(
	    notify_wants(NOTIFY_EV_CLOSED, NOTIFY_MAJOR, &province, &p, NOTIFY_EV_CLOSED), 0);
	assert_int_equal(
	    notify_wants(NOTIFY_EV_CLOSED, NOTIFY_MINOR, &province, &p, NOTIFY_EV_CLOSED),
	    NOTIFY_WANT_EVENT);
	/* the highest it reached: severity, and never below what worst gives */
	assert_int_equal(notify_reached_rank(&p), NOTIFY_MINOR);
	snprintf(p.worst, sizeof(p.worst), "down");
	assert_int_equal(notify_reached_rank(&p), NOTIFY_MAJOR);
	assert_int_equal(
	    notify_wants(NOTIFY_EV_CLOSED, NOTIFY_MAJOR, &province, &p, NOTIFY_EV_CLOSED),
	    NOTIFY_WANT_EVENT);
	snprintf(p.severity, sizeof(p.severity), "critical");
	assert_int_equal(notify_reached_rank(&p), NOTIFY_CRITICAL);
}

static void the_webhook_carries_the_problem_fields_only(void **state)
{
	(void)state;
	cJSON *o =
	    body_of(NOTIFY_WEBHOOK, NOTIFY_EV_OPENED, "https://vw.example.cn", 0, problem_json);
	assert_string_equal(str_at(o, "event", NULL), "problem_opened");
	assert_string_equal(str_at(o, "sink", NULL), "duty");
	assert_string_equal(str_at(o, "url", NULL), "https://vw.example.cn/sites/S1");
	assert_int_equal(cJSON_GetObjectItem(o, "event_id")->valuedouble, 77);
	const cJSON *p = cJSON_GetObjectItem(o, "problem");
	assert_int_equal(cJSON_GetObjectItem(p, "id")->valuedouble, 12);
	assert_string_equal(str_at(p, "city", NULL), "济南市");
	assert_string_equal(str_at(p, "start", NULL), "2026-12-02T03:00:00.000Z");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(p, "end")));
	assert_null(cJSON_GetObjectItem(p, "thumbnail"));
	assert_non_null(strstr(str_at(o, "text", NULL), "黑屏"));
	cJSON_Delete(o);
}

static void the_bucket_allows_a_burst_then_the_rate(void **state)
{
	(void)state;
	struct notify_bucket b;
	notify_bucket_init(&b, 60, 2, 1000); /* one a second, two at once */
	assert_int_equal(notify_bucket_take(&b, 1000), 0);
	assert_int_equal(notify_bucket_take(&b, 1000), 0);
	assert_int_equal(notify_bucket_take(&b, 1000), 1000);
	assert_int_equal(notify_bucket_take(&b, 1500), 500);
	assert_int_equal(notify_bucket_take(&b, 2000), 0);
	assert_int_equal(notify_bucket_take(&b, 2000), 1000);
	/* Refill stops at the burst: an hour idle still allows two, not thousands. */
	assert_int_equal(notify_bucket_take(&b, 3600000), 0);
	assert_int_equal(notify_bucket_take(&b, 3600000), 0);
	assert_true(notify_bucket_take(&b, 3600000) > 0);
	notify_bucket_init(&b, 0, 1, 0); /* off */
	for (int i = 0; i < 100; i++)
		assert_int_equal(notify_bucket_take(&b, 0), 0);
}

static void backoff_doubles_to_its_bound_with_half_jitter(void **state)
{
	(void)state;
	assert_int_equal(notify_backoff_ms(1, 1000, 8000, 0), 500);
	assert_int_equal(notify_backoff_ms(1, 1000, 8000, 500), 1000);
	assert_int_equal(notify_backoff_ms(2, 1000, 8000, 0), 1000);
	assert_int_equal(notify_backoff_ms(3, 1000, 8000, 0), 2000);
	assert_int_equal(notify_backoff_ms(4, 1000, 8000, 4000), 8000);
	assert_int_equal(notify_backoff_ms(30, 1000, 8000, 0), 4000);
	for (uint32_t r = 0; r < 100000; r += 997) {
		int64_t d = notify_backoff_ms(5, 1000, 8000, r);
		assert_true(d >= 4000 && d <= 8000);
	}
}

static void replies_need_2xx_and_errcode_zero(void **state)
{
	(void)state;
	char err[200];
	assert_int_equal(notify_reply_ok(NOTIFY_WEBHOOK, 204, "", 0, err, sizeof(err)), 1);
	assert_int_equal(notify_reply_ok(NOTIFY_WEBHOOK, 500, "", 0, err, sizeof(err)), 0);
	assert_string_equal(err, "HTTP 500");
	const char ok[] = "{\"errcode\":0,\"errmsg\":\"ok\"}";
	const char bad[] = "{\"errcode\":310000,\"errmsg\":\"sign not match\"}";
	assert_int_equal(notify_reply_ok(NOTIFY_DINGTALK, 200, ok, strlen(ok), err, sizeof(err)),
	                 1);
	assert_int_equal(notify_reply_ok(NOTIFY_DINGTALK, 200, bad, strlen(bad), err, sizeof(err)),
	                 0);
	assert_string_equal(err, "errcode 310000: sign not match");
	assert_int_equal(notify_reply_ok(NOTIFY_WECOM, 200, "<html>", 6, err, sizeof(err)), 0);
	assert_int_equal(notify_reply_ok(NOTIFY_WECOM, 502, ok, strlen(ok), err, sizeof(err)), 0);
}

static void notify_sections_are_checked_with_file_and_line(void **state)
{
	(void)state;
	struct server_conf cfg;
	struct vw_conf_errors errs = {0};
	const char good[] =
	    "[server]\nstate_dir = /tmp/x\n"
	    "[notify duty]\ntype = dingtalk\nurl = https://oapi.dingtalk.com/robot/send?"
	    "access_token=abc\nsecret = SEC1\nscope = city:济南市\nmin_severity = minor\n"
	    "[notify hook]\ntype = webhook\nurl = http://127.0.0.1:9/x\n";
	assert_int_equal(server_conf_load_string(&cfg, "t.ini", good, &errs), 0);
	assert_int_equal(cfg.notify.n, 2);
	const struct notify_section *d = VW_CONF_ITEM(cfg.notify, struct notify_section, 0);
	assert_string_equal(d->name, "duty");
	assert_int_equal(d->type, NOTIFY_DINGTALK);
	assert_int_equal(d->min_severity, NOTIFY_MINOR);
	assert_string_equal(d->secret_value, "SEC1");
	const struct notify_section *h = VW_CONF_ITEM(cfg.notify, struct notify_section, 1);
	assert_string_equal(h->events, "opened,closed");
	assert_int_equal(h->min_severity, NOTIFY_MAJOR);
	server_conf_free(&cfg);

	const char bad[] = "[server]\nstate_dir = /tmp/x\n"
	                   "[notify w]\ntype = wecom\nurl = ftp://x\nsecret = s\nscope = county:x\n"
	                   "events = opened,reopened\nrate = fast\n";
	memset(&errs, 0, sizeof(errs));
	assert_true(server_conf_load_string(&cfg, "t.ini", bad, &errs) > 0);
	assert_all_in(errs.text, (const char *const[]){"t.ini:3: [notify w] url",
	                                               "[notify w] scope 'county:x'", "'reopened'",
	                                               "rate 'fast'",
	                                               "[notify w] secret: only a dingtalk", NULL});
	server_conf_free(&cfg);
}

/* --- the notifier with a real store --------------------------------------------------------
 * Real SQLite files, the store's writer and reader threads and a loop; the sinks point at a
 * loopback port nobody listens on, so every attempt fails at once and the rows stay
 * pending (retry_first is an hour): what is checked is which rows the notifier makes. */

/* issue 13: 1 when main runs the store tests on PostgreSQL ("postgresql", under
 * tests/tools/pg.sh): each then gets its own database. */
static int on_pg;

struct nctx {
	char dir[64];
	char db[64], dsn[512]; /* postgresql: the test's own database */
	uv_loop_t loop;
	uv_timer_t tick;
	struct store *st;
	struct notify *n;
	int done;
	/* the last list read, as "sink event problem event_id state" lines */
	char rows[8192];
	size_t nrows;
	int read_done;
};

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

static void on_put(struct store_write *w)
{
	struct nctx *x = w->data;
	x->done++;
}

static void on_rows(void *ud, const struct store_reply *r)
{
	struct nctx *x = ud;
	assert_int_equal(r->status, 0);
	size_t o = 0;
	x->rows[0] = '\0';
	x->nrows = r->nnotifications;
	for (size_t i = 0; i < r->nnotifications; i++) {
		const struct store_notification *n = &r->notifications[i];
		o += (size_t)snprintf(x->rows + o, sizeof(x->rows) - o, "%s %s %lld %lld %s\n",
		                      n->sink, n->event, (long long)n->problem_id,
		                      (long long)n->event_id, n->state);
		assert_true(o < sizeof(x->rows));
	}
	x->read_done = 1;
}

/* The rows, oldest first; state NULL = any. */
static void read_rows(struct nctx *x, const char *state)
{
	struct store_notify_query q = {.state = state, .limit = 1000, .oldest_first = 1};
	x->read_done = 0;
	assert_int_equal(store_notify_list(x->st, &q, on_rows, x), 0);
	while (!x->read_done)
		uv_run(&x->loop, UV_RUN_ONCE);
}

/* Reads until the rows are want (a deadline, not a wait: the writes are asynchronous). */
static void rows_become(struct nctx *x, const char *state, const char *want)
{
	uint64_t until = uv_hrtime() + 60ull * 1000000000u;
	for (;;) {
		read_rows(x, state);
		if (!strcmp(x->rows, want))
			return;
		if (uv_hrtime() > until)
			fail_msg("rows:\n%s\nwanted:\n%s", x->rows, want);
		uv_run(&x->loop, UV_RUN_ONCE); /* the tick wakes it */
	}
}

/* The server's start: the store, then the notifier of these sinks. */
static void notifier_up(struct nctx *x, const char *sinks)
{
	char ini[2048], err[256];
	struct store_options opt = {.backend = "sqlite", .dir = x->dir, .rollup_tick_ms = -1};
	if (on_pg) {
		opt.backend = "postgresql";
		opt.dsn = x->dsn;
		opt.password_file = getenv("VW_PG_PASSFILE");
	}
	if (store_open(&opt, &x->st, err, sizeof(err)))
		fail_msg("store_open: %s", err);
	assert_int_equal(store_start(x->st, &x->loop, 64), 0);
	uv_timer_start(&x->tick, on_tick, 10, 10);
	snprintf(ini, sizeof(ini), "[server]\nstate_dir = %s\n%s", x->dir, sinks);
	struct server_conf cfg;
	struct vw_conf_errors errs = {0};
	if (server_conf_load_string(&cfg, "t.ini", ini, &errs))
		fail_msg("config: %s", errs.text);
	if (notify_create(&x->loop, x->st, &cfg, &x->n, err, sizeof(err)))
		fail_msg("notify_create: %s", err);
	server_conf_free(&cfg);
	assert_int_equal(notify_start(x->n), 0);
}

/* Its stop, as main.c does it: the notifier closes, the store commits what was queued and
 * delivers the replies, then the notifier is freed. */
static void notifier_down(struct nctx *x)
{
	uv_timer_stop(&x->tick);
	notify_close(x->n);
	store_close(x->st);
	x->st = NULL;
	uv_run(&x->loop, UV_RUN_DEFAULT);
	notify_destroy(x->n);
	x->n = NULL;
}

static void event(struct nctx *x, int64_t id, const char *type, int64_t problem,
                  const char *severity, const char *worst, int closed)
{
	char data[1024];
	snprintf(data, sizeof(data),
	         "{\"id\":%lld,\"site\":\"S1\",\"org\":\"O1\",\"city\":\"济南市\","
	         "\"agent\":\"a1\",\"kind\":\"stream\",\"target\":\"cam1\",\"state\":\"%s\","
	         "\"status\":\"%s\",\"worst\":\"%s\",\"severity\":\"%s\",\"faults\":[],"
	         "\"start\":\"2026-12-02T03:00:00.000Z\",\"end\":%s,\"in_session\":false,"
	         "\"ack\":null}",
	         (long long)problem, closed ? "closed" : "open", closed ? "ok" : worst, worst,
	         severity, closed ? "\"2026-12-02T03:05:00.000Z\"" : "null");
	struct store_event ev = {id, 1796180400000LL, type, "S1", "O1", "济南市", data};
	notify_on_event(x->n, &ev);
}

static const char sinks[] = "[notify major]\ntype = webhook\nurl = http://127.0.0.1:1/x\n"
                            "events = opened,closed,updated\nretry_first = 1h\n"
                            "retry_max = 1h\nrate = off\n%s"
                            "[notify crit]\ntype = webhook\nurl = http://127.0.0.1:1/y\n"
                            "min_severity = critical\nretry_first = 1h\nretry_max = 1h\n";

/* Every update of a problem is its own notification (the key holds the event id for them);
 * closed goes to exactly the sinks told of the opening — in memory, or in the store from
 * an earlier run — also when the problem is lower by then; at start the pending rows obey
 * the queue bound. */
static void the_notifier_keys_updates_and_closes_only_what_it_announced(void **state)
{
	(void)state;
	struct nctx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	assert_int_equal(testdir_make(x->dir, sizeof(x->dir), "notify"), 0);
	if (on_pg)
		assert_int_equal(
		    testpg_make("notify", x->db, sizeof(x->db), x->dsn, sizeof(x->dsn)), 0);
	assert_int_equal(uv_loop_init(&x->loop), 0);
	uv_timer_init(&x->loop, &x->tick);
	char conf[2048];
	snprintf(conf, sizeof(conf), sinks, "");
	notifier_up(x, conf);

	/* An earlier run told sink major of problem 9: its opening is in the store, sent, and
	 * not in the notifier's memory. */
	struct store_notification pre = {.sink = "major",
	                                 .event = "opened",
	                                 .problem_id = 9,
	                                 .event_id = 1,
	                                 .site = "S1",
	                                 .org = "O1",
	                                 .city = "济南市",
	                                 .state = "sent",
	                                 .attempts = 1,
	                                 .last_error = "",
	                                 .sent_ms = 1,
	                                 .created_ms = 1,
	                                 .data = "{}"};
	struct store_write w = {.op = STORE_NOTIFY_PUT,
	                        .actor = "test",
	                        .notes = &pre,
	                        .nnotes = 1,
	                        .done = on_put,
	                        .data = x};
	assert_int_equal(store_write_submit(x->st, &w), 0);
	while (x->done < 1)
		uv_run(&x->loop, UV_RUN_ONCE);
	assert_int_equal(w.status, 0);
	/* problem 1: major, two updates (the second to critical), closed */
	event(x, 11, "problem_opened", 1, "major", "down", 0);
	event(x, 12, "problem_updated", 1, "major", "down", 0);
	event(x, 13, "problem_updated", 1, "critical", "down", 0);
	event(x, 14, "problem_closed", 1, "critical", "down", 1);
	/* problem 2: minor all its life — no sink was told, none hears it closed */
	event(x, 21, "problem_opened", 2, "minor", "degraded", 0);
	event(x, 22, "problem_closed", 2, "minor", "degraded", 1);
	/* problem 3: announced at major, lower when it closes: closed all the same */
	event(x, 31, "problem_opened", 3, "major", "down", 0);
	event(x, 32, "problem_closed", 3, "minor", "degraded", 1);
	/* problem 4: major, but its opening came before either sink was there (a reload, a
	 * sink added): its close is news to nobody */
	event(x, 42, "problem_closed", 4, "major", "down", 1);
	/* problem 9: told in the earlier run (the store knows), closed now, lower */
	event(x, 92, "problem_closed", 9, "minor", "degraded", 1);
	rows_become(x, NULL,
	            "major opened 9 1 sent\n"
	            "major opened 1 11 pending\n"
	            "major updated 1 12 pending\n"
	            "crit opened 1 13 pending\n"
	            "major updated 1 13 pending\n"
	            "crit closed 1 14 pending\n"
	            "major closed 1 14 pending\n"
	            "major opened 3 31 pending\n"
	            "major closed 3 32 pending\n"
	            "major closed 9 92 pending\n");
	struct notify_stats ns;
	uint64_t until = uv_hrtime() + 60ull * 1000000000u;
	do {
		uv_run(&x->loop, UV_RUN_ONCE);
		notify_get_stats(x->n, &ns);
	} while (ns.unannounced < 6 && uv_hrtime() < until);
	/* closed 2 and 4 at both sinks, closed 3 and closed 9 at crit */
	assert_int_equal(ns.unannounced, 6);
	assert_int_equal(ns.duplicates, 2); /* the openings each update of 1 offers major */
	/* each pending row has had its first attempt before the restart */
	until = uv_hrtime() + 60ull * 1000000000u;
	do {
		uv_run(&x->loop, UV_RUN_ONCE);
		notify_get_stats(x->n, &ns);
	} while (ns.attempts < 9 && uv_hrtime() < until);
	assert_int_equal(ns.attempts, 9);
	notifier_down(x);

	/* Restart with major's queue at 3: its 3 oldest pending rows stay, the other 4 are
	 * suppressed at once; crit's 2 are within its bound. */
	snprintf(conf, sizeof(conf), sinks, "queue = 3\n");
	notifier_up(x, conf);
	rows_become(x, "suppressed",
	            "major closed 1 14 suppressed\n"
	            "major opened 3 31 suppressed\n"
	            "major closed 3 32 suppressed\n"
	            "major closed 9 92 suppressed\n");
	rows_become(x, "pending",
	            "major opened 1 11 pending\n"
	            "major updated 1 12 pending\n"
	            "crit opened 1 13 pending\n"
	            "major updated 1 13 pending\n"
	            "crit closed 1 14 pending\n");
	notify_get_stats(x->n, &ns);
	assert_int_equal(ns.suppressed, 4);
	notifier_down(x);

	uv_close((uv_handle_t *)&x->tick, NULL);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&x->loop), 0);
	assert_int_equal(testdir_remove(x->dir), 0);
	if (on_pg)
		assert_int_equal(testpg_remove(x->db), 0);
	free(x);
}

/* issue 13, PostgreSQL only: two collectors on one database; the second does not hold the
 * notify lease (the first took it at open), so its notification write is refused whole
 * (-ESTALE, nothing stored, the note's id back to 0), and the holder's goes in. */
static void only_the_notify_lease_holder_writes_notifications(void **state)
{
	(void)state;
	struct nctx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	assert_int_equal(testpg_make("notify", x->db, sizeof(x->db), x->dsn, sizeof(x->dsn)), 0);
	assert_int_equal(uv_loop_init(&x->loop), 0);
	char err[256];
	struct store_options opt = {.backend = "postgresql",
	                            .dsn = x->dsn,
	                            .password_file = getenv("VW_PG_PASSFILE"),
	                            .rollup_tick_ms = -1};
	struct store *st[2];
	for (int i = 0; i < 2; i++) {
		if (store_open(&opt, &st[i], err, sizeof(err)))
			fail_msg("store_open: %s", err);
		assert_int_equal(store_start(st[i], &x->loop, 64), 0);
	}
	struct store_lease held[2][STORE_LEASES];
	store_leases(st[0], held[0]);
	store_leases(st[1], held[1]);
	assert_int_equal(held[0][STORE_LEASE_NOTIFY].held, 1);
	assert_int_equal(held[1][STORE_LEASE_NOTIFY].held, 0);
	struct store_notification note[2];
	struct store_write w[2];
	for (int i = 1; i >= 0; i--) { /* the non-holder first */
		note[i] = (struct store_notification){.sink = "major",
		                                      .event = "opened",
		                                      .problem_id = 7,
		                                      .event_id = 1,
		                                      .site = "S1",
		                                      .state = "pending",
		                                      .created_ms = 1,
		                                      .data = "{}"};
		w[i] = (struct store_write){.op = STORE_NOTIFY_PUT,
		                            .actor = "test",
		                            .notes = &note[i],
		                            .nnotes = 1,
		                            .done = on_put,
		                            .data = x};
		int want = x->done + 1;
		assert_int_equal(store_write_submit(st[i], &w[i]), 0);
		while (x->done < want)
			uv_run(&x->loop, UV_RUN_ONCE);
		if (i == 1) {
			int64_t n = -1;
			assert_int_equal(
			    testpg_query(x->dsn, "SELECT count(*) FROM notifications", &n), 0);
			assert_int_equal(n, 0);
		}
	}
	assert_int_equal(w[1].status, -ESTALE);
	assert_int_equal(note[1].id, 0);
	assert_int_equal(w[0].status, 0);
	assert_true(note[0].id > 0);
	store_close(st[0]);
	store_close(st[1]);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&x->loop), 0);
	assert_int_equal(testpg_remove(x->db), 0);
	free(x);
}

/* No argument: everything on SQLite. "postgresql" (ctest test_notify_postgresql, under
 * tests/tools/pg.sh): the notifier with a real store, on PostgreSQL. */
int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "postgresql") == 0) {
		if (!getenv("VW_PG_DSN")) {
			fprintf(stderr, "test_notify postgresql: no VW_PG_DSN (run it under "
			                "tests/tools/pg.sh)\n");
			return 1;
		}
		on_pg = 1;
		const struct CMUnitTest pg[] = {
		    cmocka_unit_test(the_notifier_keys_updates_and_closes_only_what_it_announced),
		    cmocka_unit_test(only_the_notify_lease_holder_writes_notifications),
		};
		return cmocka_run_group_tests_name("notify: postgresql store", pg, NULL, NULL);
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(dingtalk_sign_matches_the_documented_algorithm),
	    cmocka_unit_test(a_problem_parses_and_bad_ones_name_the_field),
	    cmocka_unit_test(filters_parse_and_match),
	    cmocka_unit_test(the_message_is_chinese_and_names_everything),
	    cmocka_unit_test(names_cannot_add_markup_or_lines),
	    cmocka_unit_test(bare_urls_are_not_links),
	    cmocka_unit_test(a_sink_hears_the_end_of_what_it_was_told),
	    cmocka_unit_test(the_notifier_keys_updates_and_closes_only_what_it_announced),
	    cmocka_unit_test(the_webhook_carries_the_problem_fields_only),
	    cmocka_unit_test(the_bucket_allows_a_burst_then_the_rate),
	    cmocka_unit_test(backoff_doubles_to_its_bound_with_half_jitter),
	    cmocka_unit_test(replies_need_2xx_and_errcode_zero),
	    cmocka_unit_test(notify_sections_are_checked_with_file_and_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
