/* The registers (issue 12 B): one row's checks naming the field, labels turned into ids,
 * upserts all or nothing with a version per change (an unchanged row bumps nothing), the
 * city scope of writes, deletes kept in the history, the snapshot a draw hashes, and the
 * CSV importers (file:line: column: what, BOM, Chinese headers and labels, all or nothing).
 * A real inspect.db in a temporary directory, opened as the CLI opens it. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "inspect.h"
#include "labels.h"
#include "registers.h"
#include "registers_csv.h"
#include "server_conf.h"
#include "testdir.h"

static struct inspect_labels grades;

static int setup_grades(void **state)
{
	(void)state;
	char err[256];
	return inspect_labels_parse("high:高风险,medium:中风险,low:低风险", &grades, err,
	                            sizeof(err));
}

static int setup(void **state)
{
	char *dir = malloc(64);
	assert_int_equal(testdir_make(dir, 64, "registers"), 0);
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	testdir_remove(*state);
	free(*state);
	return 0;
}

static struct inspect *open_db(const char *dir)
{
	char path[128], err[256];
	snprintf(path, sizeof(path), "%s/inspect.db", dir);
	struct inspect *in = NULL;
	assert_int_equal(inspect_open(NULL, path, &in, err, sizeof(err)), 0);
	return in;
}

/* registers_check of text: 0 with *out, or the rc with field/err filled. */
static int check(enum registers_kind k, const char *json, cJSON **out, char *field, char *err)
{
	cJSON *in = cJSON_Parse(json);
	assert_non_null(in);
	int rc = registers_check(k, in, &grades, out, field, 64, err, 256);
	cJSON_Delete(in);
	return rc;
}

static void expect_bad(enum registers_kind k, const char *json, const char *want_field)
{
	cJSON *out = NULL;
	char field[64], err[256];
	int rc = check(k, json, &out, field, err);
	if (rc != -EINVAL || strcmp(field, want_field) != 0)
		print_message("  %s -> rc %d field %s err %s\n", json, rc, field, err);
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(field, want_field);
	assert_true(err[0] != '\0');
	assert_null(out);
}

static void test_labels_parse(void **state)
{
	(void)state;
	struct inspect_labels l;
	char err[256];
	assert_int_equal(inspect_labels_parse(" a:甲， b_2：乙 ,c:丙", &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.id[1], "b_2");
	assert_string_equal(l.label[1], "乙");
	assert_int_equal(inspect_labels_lookup(&l, "丙"), 2);
	assert_int_equal(inspect_labels_find(&l, "丙"), -1);
	assert_int_equal(inspect_labels_parse("High:x", &l, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "item 1"));
	assert_int_equal(inspect_labels_parse("a:x,,b:y", &l, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "item 2"));
	assert_int_equal(inspect_labels_parse("a:x,a:y", &l, err, sizeof(err)), -EINVAL);
	assert_int_equal(inspect_labels_parse("a", &l, err, sizeof(err)), -EINVAL);
	assert_int_equal(inspect_labels_parse("", &l, err, sizeof(err)), -EINVAL);
	char many[512] = "";
	for (int i = 0; i < 17; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sg%d:L%d",
		         i ? "," : "", i, i);
	assert_int_equal(inspect_labels_parse(many, &l, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than 16"));
}

static void test_check_canonical(void **state)
{
	(void)state;
	cJSON *out;
	char field[64], err[256];
	assert_int_equal(
	    check(
	        REGISTERS_TARGETS,
	        "{\"sites\":[\"s1\"],\"risk\":\"高风险\",\"level\":\"省级\",\"city\":\" 济南市 \","
	        "\"name\":\"学校\",\"org\":\"org-a\",\"occupations\":[\"电工\"]}",
	        &out, field, err),
	    0);
	char *s = cJSON_PrintUnformatted(out);
	assert_string_equal(s, "{\"org\":\"org-a\",\"name\":\"学校\",\"city\":\"济南市\","
	                       "\"level\":\"province\",\"occupations\":[\"电工\"],\"risk\":"
	                       "\"high\",\"sites\":[\"s1\"]}");
	free(s);
	cJSON_Delete(out);
	assert_int_equal(check(REGISTERS_INSPECTORS,
	                       "{\"id\":\"I001\",\"name\":\"张三\",\"city\":\"济南市\","
	                       "\"ties\":[{\"org\":\"org-b\",\"kind\":\"亲属\"}],"
	                       "\"away\":[[\"2026-12-01\",\"2026-12-05\"],\"2026-12-09\"]}",
	                       &out, field, err),
	                 0);
	s = cJSON_PrintUnformatted(out);
	assert_string_equal(s, "{\"id\":\"I001\",\"name\":\"张三\",\"city\":\"济南市\","
	                       "\"department\":\"\",\"ties\":[{\"org\":\"org-b\",\"kind\":"
	                       "\"relative\"}],\"away\":[[\"2026-12-01\",\"2026-12-05\"],"
	                       "[\"2026-12-09\",\"2026-12-09\"]]}");
	free(s);
	cJSON_Delete(out);
}

/* base with field set to value (JSON text; NULL removes it). */
static void with(char *out, size_t n, const char *base, const char *field, const char *value)
{
	cJSON *o = cJSON_Parse(base);
	assert_non_null(o);
	cJSON_DeleteItemFromObject(o, field);
	if (value)
		cJSON_AddItemToObject(o, field, cJSON_Parse(value));
	char *s = cJSON_PrintUnformatted(o);
	snprintf(out, n, "%s", s);
	free(s);
	cJSON_Delete(o);
}

static void test_check_names_the_field(void **state)
{
	(void)state;
	const char *t = "{\"org\":\"o\",\"name\":\"n\",\"city\":\"c\",\"level\":\"city\",\"risk\":"
	                "\"low\"}";
	char j[512];
	cJSON *ok;
	char field[64], err[256];
	assert_int_equal(check(REGISTERS_TARGETS, t, &ok, field, err), 0);
	cJSON_Delete(ok);
	with(j, sizeof(j), t, "org", "\"bad id\"");
	expect_bad(REGISTERS_TARGETS, j, "org");
	with(j, sizeof(j), t, "risk", "\"extreme\"");
	expect_bad(REGISTERS_TARGETS, j, "risk");
	with(j, sizeof(j), t, "level", "\"county\"");
	expect_bad(REGISTERS_TARGETS, j, "level");
	with(j, sizeof(j), t, "sites", "[\"a\",\"b/c\"]");
	expect_bad(REGISTERS_TARGETS, j, "sites[1]");
	with(j, sizeof(j), t, "sites", "[\"a\",\"a\"]");
	expect_bad(REGISTERS_TARGETS, j, "sites[1]");
	with(j, sizeof(j), t, "occupations", "\"电工\"");
	expect_bad(REGISTERS_TARGETS, j, "occupations");
	with(j, sizeof(j), t, "colour", "1");
	expect_bad(REGISTERS_TARGETS, j, "colour");
	with(j, sizeof(j), t, "city", NULL);
	expect_bad(REGISTERS_TARGETS, j, "city");
	with(j, sizeof(j), t, "city", "\"\\u0001x\"");
	expect_bad(REGISTERS_TARGETS, j, "city");
	char longcity[200];
	memset(longcity, 'x', 131);
	longcity[0] = longcity[130] = '"';
	longcity[131] = '\0';
	with(j, sizeof(j), t, "city", longcity);
	expect_bad(REGISTERS_TARGETS, j, "city");
	/* A field given twice: JSON parsers differ on which one wins. */
	expect_bad(REGISTERS_TARGETS,
	           "{\"org\":\"o\",\"name\":\"n\",\"city\":\"c\",\"level\":\"city\",\"risk\":"
	           "\"low\",\"risk\":\"high\"}",
	           "risk");
	const char *i = "{\"id\":\"I1\",\"name\":\"n\",\"city\":\"c\"}";
	with(j, sizeof(j), i, "ties", "[{\"org\":\"o\",\"kind\":\"friend\"}]");
	expect_bad(REGISTERS_INSPECTORS, j, "ties[0].kind");
	with(j, sizeof(j), i, "ties", "[{\"org\":\"o\",\"kind\":\"former\",\"x\":1}]");
	expect_bad(REGISTERS_INSPECTORS, j, "ties[0].x");
	with(j, sizeof(j), i, "ties",
	     "[{\"org\":\"o\",\"kind\":\"former\"},{\"org\":\"o\",\"kind\":\"relative\"}]");
	expect_bad(REGISTERS_INSPECTORS, j, "ties[1].org");
	with(j, sizeof(j), i, "away", "[[\"2026-12-05\",\"2026-12-01\"]]");
	expect_bad(REGISTERS_INSPECTORS, j, "away[0]");
	with(j, sizeof(j), i, "away", "[\"2026-02-29\"]");
	expect_bad(REGISTERS_INSPECTORS, j, "away[0]");
	with(j, sizeof(j), i, "away", "[\"2028-02-29\"]");
	assert_int_equal(check(REGISTERS_INSPECTORS, j, &ok, field, err), 0);
	cJSON_Delete(ok);
	expect_bad(REGISTERS_ITEMS, "{\"id\":\"item-1\",\"title\":\"t\",\"method\":\"m\"}",
	           "basis");
	expect_bad(REGISTERS_ITEMS,
	           "{\"id\":\"item-1\",\"title\":\"t\",\"basis\":\"b\",\"method\":\"m\","
	           "\"version\":-1}",
	           "version");
	expect_bad(REGISTERS_ITEMS, "[1]", "");
}

static cJSON *rows_of(enum registers_kind k, const char *json)
{
	cJSON *in = cJSON_Parse(json), *arr = cJSON_CreateArray();
	assert_non_null(in);
	const cJSON *e;
	cJSON_ArrayForEach(e, in)
	{
		cJSON *out;
		char field[64], err[256];
		int rc =
		    registers_check(k, e, &grades, &out, field, sizeof(field), err, sizeof(err));
		if (rc)
			print_message("  check: %s: %s\n", field, err);
		assert_int_equal(rc, 0);
		cJSON_AddItemToArray(arr, out);
	}
	cJSON_Delete(in);
	return arr;
}

static int put(struct inspect *in, enum registers_kind k, const char *json, const char *city,
               struct registers_put *p)
{
	cJSON *rows = rows_of(k, json);
	*p = (struct registers_put){
	    .kind = k, .rows = rows, .scope_city = city, .actor = "test", .now_ms = 1000};
	int rc = inspect_run_now(in, registers_put_run, p);
	cJSON_Delete(rows);
	cJSON_Delete(p->changed);
	p->changed = NULL;
	return rc;
}

static const char *T_JN = "{\"org\":\"org-a\",\"name\":\"甲学校\",\"city\":\"济南市\",\"level\":"
                          "\"city\",\"risk\":\"high\",\"sites\":[\"site-a1\"]}";
static const char *T_QD = "{\"org\":\"org-q\",\"name\":\"青学校\",\"city\":\"青岛市\",\"level\":"
                          "\"province\",\"risk\":\"low\",\"occupations\":[\"焊工\"]}";

static void test_versions_and_all_or_nothing(void **state)
{
	struct inspect *in = open_db(*state);
	struct registers_put p;
	char two[1024];
	snprintf(two, sizeof(two), "[%s,%s]", T_JN, T_QD);
	assert_int_equal(put(in, REGISTERS_TARGETS, two, NULL, &p), 0);
	assert_int_equal(p.version, 2);
	assert_int_equal(p.created, 2);
	/* The same rows again change nothing: no version, no history row. */
	assert_int_equal(put(in, REGISTERS_TARGETS, two, NULL, &p), 0);
	assert_int_equal(p.version, 2);
	assert_int_equal(p.unchanged, 2);
	/* A good row and a conflicting one: nothing of the request is kept. */
	char mixed[1024];
	snprintf(mixed, sizeof(mixed),
	         "[{\"org\":\"org-new\",\"name\":\"n\",\"city\":\"济南市\",\"level\":\"city\","
	         "\"risk\":\"low\"},%.*s,\"version\":7}]",
	         (int)strlen(T_JN) - 1, T_JN);
	assert_int_equal(put(in, REGISTERS_TARGETS, mixed, NULL, &p), -ESTALE);
	assert_int_equal(p.index, 1);
	assert_string_equal(p.field, "version");
	struct registers_list l = {.kind = REGISTERS_TARGETS};
	assert_int_equal(inspect_run_now(in, registers_list_run, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.version, 2);
	free(l.json);
	/* The right version updates it; the row's version is the change's number. */
	snprintf(mixed, sizeof(mixed),
	         "[{\"org\":\"org-a\",\"name\":\"甲学校\",\"city\":\"济南市\",\"level\":\"city\","
	         "\"risk\":\"medium\",\"sites\":[\"site-a1\"],\"version\":1}]");
	assert_int_equal(put(in, REGISTERS_TARGETS, mixed, NULL, &p), 0);
	assert_int_equal(p.version, 3);
	assert_int_equal(p.updated, 1);
	/* The same key twice in one request. */
	snprintf(two, sizeof(two), "[%s,%s]", T_QD, T_QD);
	assert_int_equal(put(in, REGISTERS_TARGETS, two, NULL, &p), -EINVAL);
	assert_int_equal(p.index, 1);
	assert_string_equal(p.field, "org");
	/* The history: create, create, update, each with before and after. */
	struct registers_changes c = {.kind = -1, .after = 0, .limit = 2};
	assert_int_equal(inspect_run_now(in, registers_changes_run, &c), 0);
	assert_int_equal(c.next, 2);
	assert_true(c.more);
	free(c.json);
	c = (struct registers_changes){.kind = REGISTERS_TARGETS, .after = 2, .limit = 10};
	assert_int_equal(inspect_run_now(in, registers_changes_run, &c), 0);
	cJSON *h = cJSON_Parse(c.json);
	assert_int_equal(cJSON_GetArraySize(h), 1);
	cJSON *u = cJSON_GetArrayItem(h, 0);
	assert_string_equal(cJSON_GetObjectItem(u, "action")->valuestring, "update");
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(u, "before"), "risk")->valuestring, "high");
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(u, "after"), "risk")->valuestring, "medium");
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(u, "after"), "version")->valueint,
	                 3);
	assert_false(c.more);
	cJSON_Delete(h);
	free(c.json);
	inspect_close(in);
}

static void test_city_scope(void **state)
{
	struct inspect *in = open_db(*state);
	struct registers_put p;
	char two[1024];
	snprintf(two, sizeof(two), "[%s,%s]", T_JN, T_QD);
	assert_int_equal(put(in, REGISTERS_TARGETS, two, NULL, &p), 0);
	/* 济南市 may not write a 青岛市 row, nor take over one by its key. */
	assert_int_equal(put(in, REGISTERS_TARGETS,
	                     "[{\"org\":\"org-x\",\"name\":\"n\",\"city\":\"青岛市\","
	                     "\"level\":\"city\",\"risk\":\"low\"}]",
	                     "济南市", &p),
	                 -EACCES);
	assert_string_equal(p.field, "city");
	assert_int_equal(put(in, REGISTERS_TARGETS,
	                     "[{\"org\":\"org-q\",\"name\":\"n\",\"city\":\"济南市\",\"level\":"
	                     "\"city\",\"risk\":\"low\"}]",
	                     "济南市", &p),
	                 -EACCES);
	assert_string_equal(p.field, "org");
	assert_int_equal(put(in, REGISTERS_ITEMS,
	                     "[{\"id\":\"i1\",\"title\":\"t\",\"basis\":\"b\",\"method\":\"m\"}]",
	                     "济南市", &p),
	                 -EACCES);
	/* Deleting another city's row is "no such row". */
	struct registers_del d = {
	    .kind = REGISTERS_TARGETS, .key = "org-q", .scope_city = "济南市", .actor = "t"};
	assert_int_equal(inspect_run_now(in, registers_del_run, &d), -ENOENT);
	d.scope_city = NULL;
	assert_int_equal(inspect_run_now(in, registers_del_run, &d), 0);
	assert_int_equal(d.version, 3);
	assert_non_null(strstr(d.before, "青学校"));
	free(d.before);
	d.before = NULL;
	assert_int_equal(inspect_run_now(in, registers_del_run, &d), -ENOENT);
	struct registers_changes c = {.kind = -1, .scope_city = "青岛市", .limit = 10};
	assert_int_equal(inspect_run_now(in, registers_changes_run, &c), 0);
	cJSON *h = cJSON_Parse(c.json);
	assert_int_equal(cJSON_GetArraySize(h), 2); /* its create and its delete */
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(h, 1), "after")));
	cJSON_Delete(h);
	free(c.json);
	/* The history refuses to be rewritten. */
	sqlite3 *db;
	char path[128];
	snprintf(path, sizeof(path), "%s/inspect.db", (char *)*state);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM register_changes", NULL, NULL, NULL),
	                     SQLITE_OK);
	sqlite3_close(db);
	inspect_close(in);
}

static void test_snapshot(void **state)
{
	struct inspect *in = open_db(*state);
	struct registers_put p;
	char rows[1024];
	snprintf(rows, sizeof(rows), "[%s,%s]", T_QD, T_JN);
	assert_int_equal(put(in, REGISTERS_TARGETS, rows, NULL, &p), 0);
	assert_int_equal(
	    put(in, REGISTERS_INSPECTORS,
	        "[{\"id\":\"I002\",\"name\":\"李四\",\"city\":\"青岛市\"},"
	        "{\"id\":\"I001\",\"name\":\"张三\",\"city\":\"济南市\",\"department\":"
	        "\"处\",\"ties\":[{\"org\":\"org-a\",\"kind\":\"former\"}]}]",
	        NULL, &p),
	    0);
	assert_int_equal(
	    put(in, REGISTERS_ITEMS,
	        "[{\"id\":\"item-1\",\"title\":\"视频监控\",\"basis\":\"《办法》第3条\","
	        "\"method\":\"远程核查\"},{\"id\":\"item-2\",\"title\":\"引号\\\"与\\\\反斜杠\","
	        "\"basis\":\"b\",\"method\":\"m\"}]",
	        NULL, &p),
	    0);
	char *t, *i, *it;
	int64_t v;
	sqlite3 *db;
	char path[128];
	snprintf(path, sizeof(path), "%s/inspect.db", (char *)*state);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(registers_snapshot(db, NULL, &t, &i, &it, &v), 0);
	assert_int_equal(v, 6);
	/* Sorted by key, no versions: what the draw hashes. */
	assert_string_equal(t, "[{\"org\":\"org-a\",\"name\":\"甲学校\",\"city\":\"济南市\","
	                       "\"level\":\"city\",\"occupations\":[],\"risk\":\"high\",\"sites\":"
	                       "[\"site-a1\"]},{\"org\":\"org-q\",\"name\":\"青学校\",\"city\":"
	                       "\"青岛市\",\"level\":\"province\",\"occupations\":[\"焊工\"],"
	                       "\"risk\":\"low\",\"sites\":[]}]");
	assert_non_null(strstr(i, "\"id\":\"I001\""));
	assert_true(strstr(i, "I001") < strstr(i, "I002"));
	assert_non_null(strstr(i, "\"ties\":[{\"org\":\"org-a\",\"kind\":\"former\"}]"));
	assert_null(strstr(t, "version"));
	assert_non_null(strstr(it, "item-1"));
	/* Written from the columns, the text is what cJSON itself prints of the rows. */
	cJSON *parsed = cJSON_Parse(it);
	char *again = cJSON_PrintUnformatted(parsed);
	assert_string_equal(again, it);
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetArrayItem(parsed, 1), "title")->valuestring,
	    "引号\"与\\反斜杠");
	free(again);
	cJSON_Delete(parsed);
	free(t), free(i), free(it);
	/* A city's snapshot: its targets and inspectors, every item. */
	assert_int_equal(registers_snapshot(db, "济南市", &t, &i, &it, &v), 0);
	assert_null(strstr(t, "org-q"));
	assert_non_null(strstr(t, "org-a"));
	assert_null(strstr(i, "I002"));
	assert_non_null(strstr(it, "item-1"));
	free(t), free(i), free(it);
	/* Inside the caller's transaction it reads that transaction's state. */
	assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(registers_snapshot(db, "青岛市", &t, &i, &it, &v), 0);
	assert_false(sqlite3_get_autocommit(db));
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	assert_string_equal(i, "[{\"id\":\"I002\",\"name\":\"李四\",\"city\":\"青岛市\","
	                       "\"department\":\"\",\"ties\":[],\"away\":[]}]");
	free(t), free(i), free(it);
	sqlite3_close(db);
	inspect_close(in);
}

/* [inspection]: the defaults, and a bad list named with its file and line. */
static void test_config_section(void **state)
{
	(void)state;
	struct server_conf cfg;
	struct vw_conf_errors errs = {0};
	assert_int_equal(server_conf_load_string(&cfg, "s.ini", "[server]\nstate_dir = s\n", &errs),
	                 0);
	assert_string_equal(cfg.inspection.risk_grades, "high:高风险,medium:中风险,low:低风险");
	assert_string_equal(cfg.inspection.outcomes,
	                    "clear:未发现问题,rectify:责令整改,refer:移交处理");
	assert_string_equal(cfg.inspection.holidays, "");
	assert_int_equal(cfg.inspection.result_due_days, 20);
	assert_int_equal(cfg.inspection.capture_every_ms, 30000);
	server_conf_free(&cfg);
	memset(&errs, 0, sizeof(errs));
	assert_true(server_conf_load_string(&cfg, "s.ini",
	                                    "[server]\nstate_dir = s\n\n[inspection]\n"
	                                    "risk_grades = high:高,High:中\n",
	                                    &errs) > 0);
	print_message("  %s", errs.text);
	assert_non_null(strstr(errs.text, "s.ini:4"));
	assert_non_null(strstr(errs.text, "risk_grades: item 2 (High:中)"));
	server_conf_free(&cfg);
}

/* --- CSV ---------------------------------------------------------------------------------- */

static int has_error(const struct exams_errs *e, const char *want)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->msg[i], want) == 0)
			return 1;
	for (size_t i = 0; i < e->n; i++)
		print_message("  have: %s\n", e->msg[i]);
	print_message("  want: %s\n", want);
	return 0;
}

static int parse(enum registers_kind k, const char *text, cJSON **rows, unsigned **lines,
                 struct exams_errs *errs)
{
	memset(errs, 0, sizeof(*errs));
	return registers_csv_parse(k, "t.csv", text, strlen(text), &grades, rows, lines, errs);
}

static void test_csv_chinese_bom_labels(void **state)
{
	(void)state;
	cJSON *rows;
	unsigned *lines;
	struct exams_errs errs;
	const char *csv =
	    "\xef\xbb\xbf机构编号,机构名称,所在城市,备案级别,职业,风险等级,考点,备注\r\n"
	    "org-a,\"某某学校, 分校\",济南市,市级,电工；焊工,高风险,site-a1;site-a2,x\r\n"
	    "\r\n"
	    "org-b,乙学校,青岛市,province,,low,,\r\n";
	assert_int_equal(parse(REGISTERS_TARGETS, csv, &rows, &lines, &errs), 0);
	assert_int_equal(cJSON_GetArraySize(rows), 2);
	assert_int_equal(lines[0], 2);
	assert_int_equal(lines[1], 4);
	char *s = cJSON_PrintUnformatted(cJSON_GetArrayItem(rows, 0));
	assert_string_equal(s, "{\"org\":\"org-a\",\"name\":\"某某学校, 分校\",\"city\":\"济南市\","
	                       "\"level\":\"city\",\"occupations\":[\"电工\",\"焊工\"],\"risk\":"
	                       "\"high\",\"sites\":[\"site-a1\",\"site-a2\"]}");
	free(s);
	cJSON_Delete(rows);
	free(lines);
	csv = "编号,姓名,所在城市,部门,关联机构,不可用日期\n"
	      "I001,张三,济南市,职业能力建设处,org-b:任职；org-c：亲属,2026-12-01..2026-12-05;2026-"
	      "12-09\n";
	assert_int_equal(parse(REGISTERS_INSPECTORS, csv, &rows, &lines, &errs), 0);
	s = cJSON_PrintUnformatted(cJSON_GetArrayItem(rows, 0));
	assert_string_equal(s, "{\"id\":\"I001\",\"name\":\"张三\",\"city\":\"济南市\","
	                       "\"department\":\"职业能力建设处\",\"ties\":[{\"org\":\"org-b\","
	                       "\"kind\":\"affiliation\"},{\"org\":\"org-c\",\"kind\":"
	                       "\"relative\"}],\"away\":[[\"2026-12-01\",\"2026-12-05\"],"
	                       "[\"2026-12-09\",\"2026-12-09\"]]}");
	free(s);
	/* Export and import again: the same rows. */
	struct vw_buf b;
	vw_buf_init(&b, 0);
	registers_csv_write(REGISTERS_INSPECTORS, rows, &b);
	assert_int_equal(b.err, 0);
	cJSON *again;
	unsigned *l2;
	assert_int_equal(parse(REGISTERS_INSPECTORS, vw_buf_cstr(&b), &again, &l2, &errs), 0);
	assert_true(cJSON_Compare(rows, again, 1));
	assert_non_null(strstr(vw_buf_cstr(&b), "org-b:affiliation;org-c:relative"));
	vw_buf_free(&b);
	cJSON_Delete(again);
	free(l2);
	cJSON_Delete(rows);
	free(lines);
}

static void test_csv_errors_all_or_nothing(void **state)
{
	(void)state;
	cJSON *rows;
	unsigned *lines;
	struct exams_errs errs;
	/* One good row and several bad: every error named, nothing returned. */
	const char *csv = "org,name,city,level,risk,sites\n"
	                  "org-a,甲,济南市,city,high,site-a1\n"
	                  "org-b,乙,济南市,county,high,\n"
	                  "org-c,丙,济南市,city,extreme,\n"
	                  "\"org-d\",\"丁\nnext line\",济南市,city,low,a;;b\n"
	                  "org-a,甲,济南市,city,low,\n"
	                  "bad id,戊,济南市,city,low,\n"
	                  "org-f,己,,city,low,\n";
	assert_int_equal(parse(REGISTERS_TARGETS, csv, &rows, &lines, &errs), -EINVAL);
	assert_null(rows);
	assert_true(has_error(&errs, "t.csv:3: level: expected city or province (市级, 省级)"));
	assert_true(has_error(
	    &errs,
	    "t.csv:4: risk: expected a risk grade of [inspection] risk_grades: high, medium, low"));
	assert_true(has_error(&errs, "t.csv:5: sites: an empty entry (two ';' in a row)"));
	assert_true(has_error(&errs, "t.csv:8: org: expected an id: 1-63 of [A-Za-z0-9._-]"));
	assert_true(has_error(&errs, "t.csv:9: city: empty"));
	/* The duplicate is found only once every row is good (it names both lines). */
	exams_errs_free(&errs);
	csv = "org,name,city,level,risk\norg-a,甲,济南市,city,high\norg-b,乙,济南市,city,low\n"
	      "org-a,甲,济南市,city,low\n";
	assert_int_equal(parse(REGISTERS_TARGETS, csv, &rows, &lines, &errs), -EINVAL);
	assert_true(has_error(&errs, "t.csv:4: org: \"org-a\" already on line 2"));
	exams_errs_free(&errs);
	/* A sub-field of a list cell. */
	csv = "id,name,city,ties,away\nI1,张,济南市,org-b:friend,\nI2,李,济南市,,2026-12-05..2026-"
	      "12-01\n"
	      "I3,王,济南市,org-b,\n";
	assert_int_equal(parse(REGISTERS_INSPECTORS, csv, &rows, &lines, &errs), -EINVAL);
	assert_true(has_error(&errs, "t.csv:2: ties: ties[0].kind: expected affiliation, former or "
	                             "relative (任职, 曾任职, 亲属)"));
	assert_true(has_error(&errs, "t.csv:3: away: away[0]: from (2026-12-05) is after to"));
	assert_true(has_error(
	    &errs, "t.csv:4: ties: expected org:kind entries (org-b:affiliation;org-c:亲属)"));
	exams_errs_free(&errs);
	/* The header: a required column missing, one twice; an empty file; bad UTF-8; a quote
	 * never closed. */
	assert_int_equal(parse(REGISTERS_ITEMS, "id,title,方式,title\n", &rows, &lines, &errs),
	                 -EINVAL);
	assert_true(has_error(&errs, "t.csv:1: title: the column appears twice"));
	assert_true(has_error(&errs, "t.csv:1: basis: no such column in the header (依据)"));
	exams_errs_free(&errs);
	assert_int_equal(parse(REGISTERS_ITEMS, "", &rows, &lines, &errs), -EINVAL);
	assert_true(has_error(&errs, "t.csv:1: the file is empty (expected a header row)"));
	exams_errs_free(&errs);
	assert_int_equal(parse(REGISTERS_ITEMS, "id,title,basis,method\n", &rows, &lines, &errs),
	                 -EINVAL);
	assert_true(has_error(&errs, "t.csv:2: no rows after the header"));
	exams_errs_free(&errs);
	assert_int_equal(
	    parse(REGISTERS_ITEMS, "id,title,basis,method\ni,t\xff,b,m\n", &rows, &lines, &errs),
	    -EINVAL);
	assert_true(has_error(&errs, "t.csv:2: not valid UTF-8 (byte 26): save the file as UTF-8"));
	exams_errs_free(&errs);
	assert_int_equal(
	    parse(REGISTERS_ITEMS, "id,title,basis,method\ni,t,\"b,m\n", &rows, &lines, &errs),
	    -EINVAL);
	assert_true(has_error(&errs, "t.csv:2: a quoted field is not closed"));
	exams_errs_free(&errs);
	/* More than the bound of errors: the first 50 kept, all counted. */
	struct vw_buf b;
	vw_buf_init(&b, 0);
	vw_buf_puts(&b, "id,title,basis,method\n");
	for (int i = 0; i < 80; i++)
		vw_buf_puts(&b, "i,t,,m\n");
	assert_int_equal(parse(REGISTERS_ITEMS, vw_buf_cstr(&b), &rows, &lines, &errs), -EINVAL);
	assert_int_equal(errs.n, 50);
	assert_int_equal(errs.total, 80);
	assert_true(has_error(&errs, "t.csv:2: basis: empty"));
	exams_errs_free(&errs);
	vw_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_labels_parse),
	    cmocka_unit_test(test_config_section),
	    cmocka_unit_test(test_check_canonical),
	    cmocka_unit_test(test_check_names_the_field),
	    cmocka_unit_test_setup_teardown(test_versions_and_all_or_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_city_scope, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
	    cmocka_unit_test(test_csv_chinese_bom_labels),
	    cmocka_unit_test(test_csv_errors_all_or_nothing),
	};
	return cmocka_run_group_tests(tests, setup_grades, NULL);
}
