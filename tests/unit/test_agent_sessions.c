/* The exam sessions the agent follows: the collector's answer is checked field by field
 * (a bad one names the field and changes nothing), merged with the [session] sections (the
 * collector's wins on the same id), kept in the state dir so a restart without the
 * collector follows it, and read through snapshots an update never changes under a reader. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "agent_conf.h"
#include "result.h"
#include "sessions.h"
#include "testdir.h"

/* 2026-12-01 09:00 and 11:00 in Asia/Shanghai = 01:00 and 03:00 UTC. */
#define START_MS 1796086800000LL
#define END_MS 1796094000000LL

static const char answer[] =
    "{\"site\":\"S1\",\"version\":7,\"sessions\":["
    "{\"id\":\"2026-0412\",\"occupation\":\"电工\",\"level\":\"四级\","
    "\"start\":\"2026-12-01T09:00:00+08:00\",\"end\":\"2026-12-01T11:00:00+08:00\","
    "\"start_ms\":1796086800000,\"end_ms\":1796094000000,"
    "\"rooms\":[\"A101\",\"A102\"],\"candidates\":30},"
    "{\"id\":\"all\",\"occupation\":\"o\",\"level\":\"l\","
    "\"start\":\"2026-12-02T01:00:00Z\",\"end\":\"2026-12-02T02:00:00Z\","
    "\"start_ms\":1796173200000,\"end_ms\":1796176800000,\"rooms\":[\"*\"]}]}";

static void test_parse_the_contract_answer(void **state)
{
	(void)state;
	struct session_list l;
	int64_t version = -1;
	char why[256] = "";
	assert_int_equal(
	    sessions_parse(answer, strlen(answer), "S1", &l, &version, why, sizeof(why)), 0);
	assert_int_equal(version, 7);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.items[0].id, "2026-0412");
	assert_string_equal(l.items[0].rooms, "A101,A102");
	assert_int_equal(l.items[0].start_ms, START_MS);
	assert_int_equal(l.items[0].end_ms, END_MS);
	assert_int_equal(l.items[0].line, 0); /* from the collector */
	assert_string_equal(l.items[1].rooms, "*");
	assert_true(agent_conf_session_has_room(&l.items[0], "A102"));
	assert_false(agent_conf_session_has_room(&l.items[0], "A10"));
	session_list_free(&l);
}

/* Replaces the first occurrence of from in answer with to. */
static void mutate(char *out, size_t n, const char *from, const char *to)
{
	const char *p = strstr(answer, from);
	assert_non_null(p);
	snprintf(out, n, "%.*s%s%s", (int)(p - answer), answer, to, p + strlen(from));
}

static void test_every_bad_field_is_named(void **state)
{
	(void)state;
	static const struct {
		const char *from, *to, *why;
	} cases[] = {
	    {"{\"site\"", "[{\"site\"", "body: not a JSON object"},
	    {"\"S1\"", "\"S2\"", "site: expected \"S1\""},
	    {"\"version\":7", "\"version\":-1", "version:"},
	    {"\"version\":7", "\"version\":7.5", "version:"},
	    {"\"sessions\":[", "\"sessions\":7,\"x\":[", "sessions: expected an array"},
	    {"\"id\":\"2026-0412\"", "\"id\":\"\"", "sessions[0].id:"},
	    {"\"id\":\"2026-0412\"", "\"id\":\"a\\nb\"", "sessions[0].id:"},
	    {"\"id\":\"all\"", "\"id\":\"2026-0412\"", "sessions[1].id: same id as sessions[0]"},
	    {"\"occupation\":\"电工\"", "\"occupation\":1", "sessions[0].occupation:"},
	    {"\"level\":\"l\",", "", "sessions[1].level:"},
	    {"\"start_ms\":1796086800000", "\"start_ms\":\"1796086800000\"",
	     "sessions[0].start_ms:"},
	    {"\"end_ms\":1796094000000", "\"end_ms\":1796086800000",
	     "sessions[0].end_ms: not after"},
	    {"\"end_ms\":1796094000000", "\"end_ms\":99999999999999", "sessions[0].end_ms:"},
	    /* the local time says another instant than start_ms */
	    {"2026-12-01T09:00:00+08:00", "2026-12-01T09:00:00+09:00", "sessions[0].start:"},
	    {"2026-12-01T11:00:00+08:00", "2026-12-01 11:00", "sessions[0].end:"},
	    {"[\"A101\",\"A102\"]", "[]", "sessions[0].rooms:"},
	    {"[\"A101\",\"A102\"]", "[\"A101\",\"*\"]", "sessions[0].rooms[1]: \"*\""},
	    {"[\"A101\",\"A102\"]", "[\"A101,A102\"]", "sessions[0].rooms[0]:"},
	    {"[\"A101\",\"A102\"]", "[\"A101\",7]", "sessions[0].rooms[1]:"},
	    {"\"candidates\":30", "\"candidates\":-3", "sessions[0].candidates:"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[2048], why[256] = "";
		struct session_list l = {(void *)1, 99};
		int64_t version = -1;
		mutate(body, sizeof(body), cases[i].from, cases[i].to);
		int rc = sessions_parse(body, strlen(body), "S1", &l, &version, why, sizeof(why));
		if (rc != -EBADMSG || !strstr(why, cases[i].why))
			fail_msg("case %zu: rc %d, why '%s', expected '%s'", i, rc, why,
			         cases[i].why);
		assert_int_equal(l.n, 0);
		assert_null(l.items);
	}
	/* The seconds the strings carry are all that must agree. */
	char body[2048], why[256] = "";
	struct session_list l;
	int64_t version;
	mutate(body, sizeof(body), "\"start_ms\":1796086800000", "\"start_ms\":1796086800250");
	assert_int_equal(sessions_parse(body, strlen(body), "S1", &l, &version, why, sizeof(why)),
	                 0);
	assert_int_equal(l.items[0].start_ms, START_MS + 250);
	session_list_free(&l);
}

static int overrides;
static void on_override(void *arg, const char *id)
{
	assert_string_equal(id, (const char *)arg);
	overrides++;
}

static void test_merge_collector_wins_on_the_same_id(void **state)
{
	(void)state;
	struct session_conf ini[2] = {
	    {.id = "local",
	     .start = "a",
	     .end = "b",
	     .rooms = "hall",
	     .start_ms = 1,
	     .end_ms = 2,
	     .line = 9},
	    {.id = "2026-0412",
	     .start = "a",
	     .end = "b",
	     .rooms = "*",
	     .start_ms = 5,
	     .end_ms = 6,
	     .line = 12},
	};
	struct session_list col;
	int64_t version;
	char why[256];
	assert_int_equal(
	    sessions_parse(answer, strlen(answer), "S1", &col, &version, why, sizeof(why)), 0);
	struct session_list out;
	overrides = 0;
	assert_int_equal(sessions_merge(ini, 2, &col, &out, on_override, "2026-0412"), 0);
	assert_int_equal(overrides, 1);
	assert_int_equal(out.n, 3); /* both of the collector's, and the INI's own one */
	int seen_local = 0;
	for (size_t i = 0; i < out.n; i++) {
		if (strcmp(out.items[i].id, "2026-0412") == 0) {
			assert_int_equal(out.items[i].start_ms, START_MS); /* not the INI's 5 */
			assert_string_equal(out.items[i].rooms, "A101,A102");
		}
		if (strcmp(out.items[i].id, "local") == 0) {
			seen_local = 1;
			assert_string_equal(out.items[i].rooms, "hall");
			assert_int_equal(out.items[i].line, 9);
		}
	}
	assert_true(seen_local);
	session_list_free(&out);
	session_list_free(&col);
}

static void load_cfg(struct agent_conf *cfg, const char *dir)
{
	char text[1024];
	snprintf(text, sizeof(text),
	         "[agent]\nsite = S1\norg = O1\nstate_dir = %s\n"
	         "[collector]\nurl = https://127.0.0.1:1\nca = c\ncert = c\nkey = k\n"
	         "[room A101]\n[room hall]\n[camera front]\nroom = hall\nurl = rtsp://h/1\n"
	         "[session local]\nstart = 2026-11-28T01:00:00Z\nend = 2026-11-28T03:00:00Z\n"
	         "rooms = hall\n",
	         dir);
	struct vw_conf_errors errs = {0};
	if (agent_conf_load_string(cfg, "t.ini", text, &errs))
		fail_msg("%s", errs.text);
}

static void test_kept_answer_is_followed_after_a_restart(void **state)
{
	(void)state;
	char dir[64], path[128];
	assert_int_equal(testdir_make(dir, sizeof(dir), "sessions"), 0);
	snprintf(path, sizeof(path), "%s/sessions.json", dir);
	struct agent_conf cfg;
	load_cfg(&cfg, dir);
	struct sessions *ss = NULL;
	assert_int_equal(sessions_create(&cfg, &ss), 0);
	cfg.live = ss;
	assert_int_equal(sessions_load(ss), 0); /* nothing kept yet */
	assert_int_equal(sessions_version(ss), -1);

	struct sessions_view before;
	sessions_view_get(&cfg, &before);
	assert_int_equal(before.n, 1);
	assert_null(sessions_view_at(&before, "A101", START_MS));

	struct session_list col;
	int64_t version;
	char why[256];
	assert_int_equal(
	    sessions_parse(answer, strlen(answer), "S1", &col, &version, why, sizeof(why)), 0);
	assert_int_equal(sessions_update(ss, &col, version, answer, strlen(answer)), 0);
	assert_int_equal(col.n, 0); /* taken over */
	assert_int_equal(sessions_version(ss), 7);

	/* A view taken before the update still reads the old set, intact. */
	assert_int_equal(before.n, 1);
	assert_string_equal(before.items[0].id, "local");
	sessions_view_put(&before);

	struct sessions_view v;
	sessions_view_get(&cfg, &v);
	assert_int_equal(v.n, 3);
	const struct session_conf *se = sessions_view_at(&v, "A101", START_MS + 60000);
	assert_non_null(se);
	assert_string_equal(se->id, "2026-0412");
	assert_null(sessions_view_at(&v, "hall", START_MS + 60000)); /* A101,A102 only */
	sessions_view_put(&v);

	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	cfg.live = NULL;
	sessions_destroy(&ss);
	assert_null(ss);

	/* Restart: the kept answer is in force before the collector says anything. */
	assert_int_equal(sessions_create(&cfg, &ss), 0);
	cfg.live = ss;
	assert_int_equal(sessions_load(ss), 0);
	assert_int_equal(sessions_version(ss), 7);
	sessions_view_get(&cfg, &v);
	assert_int_equal(v.n, 3);
	assert_non_null(sessions_view_at(&v, "A102", START_MS));
	sessions_view_put(&v);
	cfg.live = NULL;
	sessions_destroy(&ss);

	/* A damaged file is refused and the [session] sections alone count. */
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("{\"site\":\"S1\",\"version\":8,\"sessions\":[{\"id\":1}]}", fp);
	fclose(fp);
	assert_int_equal(sessions_create(&cfg, &ss), 0);
	cfg.live = ss;
	assert_int_equal(sessions_load(ss), -EBADMSG);
	assert_int_equal(sessions_version(ss), -1);
	sessions_view_get(&cfg, &v);
	assert_int_equal(v.n, 1);
	sessions_view_put(&v);
	cfg.live = NULL;
	sessions_destroy(&ss);

	/* Without a live set the view is the [session] sections themselves. */
	sessions_view_get(&cfg, &v);
	assert_null(v.snap);
	assert_int_equal(v.n, 1);
	sessions_view_put(&v);
	agent_conf_free(&cfg);
	testdir_remove(dir);
}

static void test_interval_metric_and_poll_off(void **state)
{
	(void)state;
	assert_string_equal(vw_metric_name(VW_M_INTERVAL_MS), "interval_ms");
	struct agent_conf cfg;
	struct vw_conf_errors errs = {0};
	static const char base[] = "[agent]\nsite = S1\norg = O1\nstate_dir = /tmp/x\n"
	                           "[collector]\nurl = https://h:1\nca = c\ncert = c\nkey = k\n";
	char text[512];
	assert_int_equal(agent_conf_load_string(&cfg, "t.ini", base, &errs), 0);
	assert_int_equal(cfg.collector.sessions_poll_ms, 60000);
	agent_conf_free(&cfg);
	snprintf(text, sizeof(text), "%ssessions_poll = off\n", base);
	assert_int_equal(agent_conf_load_string(&cfg, "t.ini", text, &errs), 0);
	assert_int_equal(cfg.collector.sessions_poll_ms, 0);
	agent_conf_free(&cfg);
	snprintf(text, sizeof(text), "%ssessions_poll = 10ms\n", base);
	assert_int_not_equal(agent_conf_load_string(&cfg, "t.ini", text, &errs), 0);
	assert_non_null(strstr(errs.text, "sessions_poll"));
	agent_conf_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_the_contract_answer),
	    cmocka_unit_test(test_every_bad_field_is_named),
	    cmocka_unit_test(test_merge_collector_wins_on_the_same_id),
	    cmocka_unit_test(test_kept_answer_is_followed_after_a_restart),
	    cmocka_unit_test(test_interval_metric_and_poll_off),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
