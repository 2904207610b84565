/* The draws' state machine (issue 12 C) on a real inspect.db with the real draw core, opened
 * as the CLI opens it: a city creates draws of its own city only and sees no other; a commit
 * declares values of the future only and freezes the snapshot and the previous pairs; an
 * execute before the declared time, or with a wrong secret, changes nothing; an execute makes
 * one inspections row per drawn target on the sessions of its sites (a cancelled one and
 * another org's site ignored) and its members; a replacement moves the rows; publish needs
 * executed; the private part is the province's only. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "draw.h"
#include "draws.h"
#include "inspect.h"
#include "store.h"
#include "testdir.h"
#include "vtime.h"

#define NOW 1796000000000LL /* 2026-11-30T... UTC */
#define SECRET "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

struct fx {
	char dir[64];
	char path[128];
	struct inspect *in;
	sqlite3 *db; /* a second connection for the fixtures and checks */
	char commitment[65];
};

static void exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

static long long count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	long long n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_int_equal(testdir_make(f->dir, sizeof(f->dir), "draws"), 0);
	snprintf(f->path, sizeof(f->path), "%s/inspect.db", f->dir);
	char err[256];
	assert_int_equal(inspect_open(NULL, f->path, &f->in, err, sizeof(err)), 0);
	assert_int_equal(sqlite3_open(f->path, &f->db), SQLITE_OK);
	exec(f->db, "INSERT INTO targets VALUES"
	            " ('org-a', 'A', 'jinan', 'city', '[]', 'high', '[\"site-a1\"]', 1),"
	            " ('org-b', 'B', 'jinan', 'city', '[]', 'high', '[\"site-b1\"]', 1),"
	            " ('org-q', 'Q', 'qingdao', 'city', '[]', 'high', '[\"site-q1\"]', 1);"
	            "INSERT INTO inspectors VALUES"
	            " ('I1', 'a', 'jinan', 'd', '[{\"org\":\"org-a\",\"kind\":\"affiliation\"}]',"
	            "  '[]', 1),"
	            " ('I2', 'b', 'jinan', 'd', '[]', '[]', 1),"
	            " ('I3', 'c', 'jinan', 'd', '[]', '[]', 1),"
	            " ('I4', 'e', 'jinan', 'd', '[]', '[]', 1),"
	            " ('I5', 'f', 'jinan', 'd', '[]', '[]', 1),"
	            " ('Q1', 'q', 'qingdao', 'd', '[]', '[]', 1),"
	            " ('Q2', 'r', 'qingdao', 'd', '[]', '[]', 1);"
	            "INSERT INTO items VALUES ('item-1', 't', 'b', 'remote', 1);");
	assert_int_equal(draw_commitment(SECRET, f->commitment, err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	sqlite3_close(f->db);
	inspect_close(f->in);
	testdir_remove(f->dir);
	free(f);
	return 0;
}

/* A job of the asker (city "" = the province) on draw id at now. */
static struct draws_job *job(const char *id, const char *city, int64_t now)
{
	struct draws_job *j = calloc(1, sizeof(*j));
	snprintf(j->id, sizeof(j->id), "%s", id);
	snprintf(j->actor, sizeof(j->actor), "test");
	snprintf(j->scope_city, sizeof(j->scope_city), "%s", city);
	j->province = !city[0];
	j->now_ms = now;
	return j;
}

static int run(struct fx *f, inspect_run_fn fn, struct draws_job *j)
{
	return inspect_run_now(f->in, fn, j);
}

static const char *PLAN = "{\"scope_city\":\"jinan\",\"grades\":[{\"risk\":\"high\",\"ratio\":1,"
                          "\"min\":1}],\"inspectors_per\":2,\"recusal\":{\"ties\":true,"
                          "\"home_city\":false,\"same_pair\":true},\"window\":{\"from\":"
                          "\"2026-12-07\",\"to\":\"2026-12-18\"},\"mode\":\"onsite\","
                          "\"items\":[\"item-1\"]}";

static void create(struct fx *f, const char *id)
{
	struct draws_job *j = job(id, "jinan", NOW);
	j->plan_json = strdup(PLAN);
	assert_int_equal(run(f, draws_create_run, j), 0);
	assert_non_null(strstr(j->json, "\"state\":\"created\""));
	draws_job_free(j);
}

/* Commit with one source and one replacement source expected at NOW + 1 h. */
static int commit(struct fx *f, const char *id, const char *city, int64_t now,
                  struct draws_job **out)
{
	struct draws_job *j = job(id, city, now);
	j->commitment = strdup(f->commitment);
	j->randomness_json =
	    strdup("{\"sources\":[{\"name\":\"lottery 1\",\"expected\":\"2026-11-30T12:00:00Z\","
	           "\"form\":\"ordered\"}],\"replacements\":[{\"name\":\"lottery 2\",\"expected\":"
	           "\"2026-11-30T12:00:00Z\",\"form\":\"ordered\"}]}");
	int rc = run(f, draws_commit_run, j);
	if (out)
		*out = j;
	else
		draws_job_free(j);
	return rc;
}

#define AFTER (NOW + 24 * 3600000LL) /* a day later: the declared values exist */

/* Execute at AFTER with the sessions the store would give (draws_sessions_json's input). */
static int execute(struct fx *f, const char *id, const char *secret, struct draws_job **out)
{
	struct draws_job *j = job(id, "jinan", AFTER);
	int rc = run(f, draws_execute_inputs_run, j);
	if (!rc) {
		int64_t s = 0;
		/* 2026-12-08 09:00 +08:00 */
		assert_int_equal(vw_time_parse_iso("2026-12-08T01:00:00Z", &s), 0);
		struct store_exam_session ss[] = {
		    {.id = 11,
		     .org = "org-a",
		     .site = "site-a1",
		     .start_ms = s,
		     .end_ms = s + 7200000},
		    {.id = 12,
		     .org = "org-b",
		     .site = "site-b1",
		     .start_ms = s,
		     .end_ms = s + 7200000,
		     .cancelled_ms = 1},
		    {.id = 13,
		     .org = "org-x",
		     .site = "site-x1",
		     .start_ms = s,
		     .end_ms = s + 7200000},
		};
		assert_int_equal(draws_sessions_json(j, ss, 3), 0);
		assert_non_null(strstr(j->sessions_json, "\"id\":11"));
		assert_null(strstr(j->sessions_json, "\"id\":12")); /* cancelled */
		assert_null(strstr(j->sessions_json, "\"id\":13")); /* not a target's site */
		j->values_json = strdup("[\"3 7 1\"]");
		j->secret_hex = strdup(secret);
		rc = run(f, draws_execute_run, j);
	}
	if (out)
		*out = j;
	else
		draws_job_free(j);
	return rc;
}

static void test_create_and_scope(void **state)
{
	struct fx *f = *state;
	create(f, "d1");
	struct draws_job *j = job("d1", "jinan", NOW);
	j->plan_json = strdup(PLAN);
	assert_int_equal(run(f, draws_create_run, j), -EEXIST);
	assert_string_equal(j->field, "id");
	draws_job_free(j);
	/* another city's draw, and a province draw, are not a city's to create */
	j = job("q1", "qingdao", NOW);
	j->plan_json = strdup(PLAN);
	assert_int_equal(run(f, draws_create_run, j), -EACCES);
	assert_string_equal(j->field, "plan.scope_city");
	draws_job_free(j);
	j = job("p1", "jinan", NOW);
	j->plan_json = strdup("{\"scope_city\":\"\",\"grades\":[{\"risk\":\"high\",\"ratio\":1}],"
	                      "\"window\":{\"from\":\"2026-12-07\",\"to\":\"2026-12-18\"},"
	                      "\"mode\":\"onsite\",\"items\":[]}");
	assert_int_equal(run(f, draws_create_run, j), -EACCES);
	draws_job_free(j);
	j = job("bad", "jinan", NOW);
	j->plan_json = strdup("{\"scope_city\":\"jinan\",\"grades\":[{\"risk\":\"high\","
	                      "\"ratio\":7}]}");
	assert_int_equal(run(f, draws_create_run, j), -EINVAL);
	assert_memory_equal(j->field, "plan.", 5);
	draws_job_free(j);
	/* qingdao sees nothing of jinan's draw */
	j = job("d1", "qingdao", NOW);
	assert_int_equal(run(f, draws_get_run, j), -ENOENT);
	draws_job_free(j);
	j = job("", "qingdao", NOW);
	assert_int_equal(run(f, draws_list_run, j), 0);
	assert_string_equal(j->json, "{\"draws\":[]}");
	draws_job_free(j);
	assert_int_equal(count(f->db, "SELECT count(*) FROM draws"), 1);
}

static void test_commit_rules(void **state)
{
	struct fx *f = *state;
	create(f, "d1");
	/* the declared values must be of the future */
	assert_int_equal(commit(f, "d1", "jinan", NOW + 30LL * 86400000, NULL), -EINVAL);
	struct draws_job *j = job("d1", "jinan", NOW);
	j->commitment = strdup("ABCD");
	j->randomness_json = strdup("{}");
	assert_int_equal(run(f, draws_commit_run, j), -EINVAL);
	assert_string_equal(j->field, "commitment");
	draws_job_free(j);
	assert_int_equal(commit(f, "d1", "qingdao", NOW, NULL), -ENOENT);
	assert_int_equal(count(f->db, "SELECT count(*) FROM draws WHERE state = 'created'"), 1);
	assert_int_equal(commit(f, "d1", "jinan", NOW, &j), 0);
	assert_non_null(j->manifest_sha256);
	assert_int_equal(strlen(j->manifest_sha256), 64);
	/* the city sees the manifest, not the private part; the province both */
	assert_null(strstr(j->json, "\"private\""));
	draws_job_free(j);
	j = job("d1", "", NOW);
	assert_int_equal(run(f, draws_get_run, j), 0);
	assert_non_null(strstr(j->json, "\"private\":{"));
	draws_job_free(j);
	assert_int_equal(commit(f, "d1", "jinan", NOW, &j), -EALREADY);
	assert_string_equal(j->field, "state");
	draws_job_free(j);
	assert_int_equal(
	    count(f->db, "SELECT count(*) FROM draw_log WHERE draw = 'd1' AND action = 'commit'"),
	    1);
}

static void test_execute_replace_publish(void **state)
{
	struct fx *f = *state;
	create(f, "d1");
	struct draws_job *j;
	assert_int_equal(execute(f, "d1", SECRET, &j), -EALREADY); /* not committed */
	draws_job_free(j);
	assert_int_equal(commit(f, "d1", "jinan", NOW, NULL), 0);
	/* before the declared values exist */
	j = job("d1", "jinan", NOW + 1000);
	j->values_json = strdup("[\"3 7 1\"]");
	j->secret_hex = strdup(SECRET);
	assert_int_equal(run(f, draws_execute_run, j), -EALREADY);
	assert_string_equal(j->field, "values");
	draws_job_free(j);
	/* a wrong secret: refused, nothing changed */
	char wrong[] = SECRET;
	wrong[0] = '1';
	assert_int_equal(execute(f, "d1", wrong, &j), -EPERM);
	assert_string_equal(j->field, "secret");
	draws_job_free(j);
	assert_int_equal(count(f->db, "SELECT count(*) FROM draws WHERE state = 'committed'"
	                              " AND document IS NULL"),
	                 1);
	assert_int_equal(count(f->db, "SELECT count(*) FROM inspections"), 0);
	/* the real one */
	assert_int_equal(execute(f, "d1", SECRET, &j), 0);
	assert_int_equal(j->ninspections, 2);
	draws_job_free(j);
	assert_int_equal(count(f->db, "SELECT count(*) FROM inspections WHERE draw = 'd1'"), 2);
	assert_int_equal(count(f->db,
	                       "SELECT count(*) FROM inspections WHERE org = 'org-a' AND"
	                       " exam_session = 11 AND site = 'site-a1' AND slot_start_ms > 0"),
	                 1);
	assert_int_equal(count(f->db, "SELECT count(*) FROM inspections WHERE org = 'org-b' AND"
	                              " exam_session = 0 AND finding = 'no_session'"),
	                 1);
	assert_int_equal(
	    count(f->db, "SELECT count(*) FROM inspection_inspectors WHERE active = 1"), 4);
	assert_int_equal(count(f->db, "SELECT count(*) FROM inspection_inspectors ii JOIN"
	                              " inspections i ON i.id = ii.inspection WHERE i.org = 'org-a'"
	                              " AND ii.inspector = 'I1'"),
	                 0);                                       /* tied to org-a */
	assert_int_equal(execute(f, "d1", SECRET, &j), -EALREADY); /* once */
	draws_job_free(j);

	/* replace the first inspector of org-a's inspection */
	sqlite3_stmt *st;
	assert_int_equal(
	    sqlite3_prepare_v2(f->db,
	                       "SELECT i.seq, min(ii.inspector) FROM inspections i JOIN"
	                       " inspection_inspectors ii ON ii.inspection = i.id"
	                       " WHERE i.org = 'org-a'",
	                       -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int seq = sqlite3_column_int(st, 0);
	char out[65];
	snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	j = job("d1", "jinan", AFTER);
	j->seq = seq;
	snprintf(j->out, sizeof(j->out), "I1"); /* not a member of it */
	j->reason = strdup("sick");
	j->value = strdup("4 2 9");
	assert_int_equal(run(f, draws_replace_run, j), -EINVAL);
	assert_string_equal(j->field, "out");
	snprintf(j->out, sizeof(j->out), "%s", out);
	assert_int_equal(run(f, draws_replace_run, j), 0);
	assert_true(j->in_inspector[0]);
	assert_string_not_equal(j->in_inspector, out);
	assert_string_not_equal(j->in_inspector, "I1");
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM inspection_inspectors WHERE inspector = '%s' AND active = 0"
	         " AND replaced_by = '%s'",
	         out, j->in_inspector);
	assert_int_equal(count(f->db, sql), 1);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM inspection_inspectors WHERE inspector = '%s' AND active = 1",
	         j->in_inspector);
	assert_true(count(f->db, sql) >= 1);
	draws_job_free(j);

	/* publish: once */
	j = job("d1", "jinan", AFTER);
	assert_int_equal(run(f, draws_publish_run, j), 0);
	assert_int_equal(run(f, draws_publish_run, j), -EALREADY);
	draws_job_free(j);
	j = job("d1", "jinan", AFTER);
	assert_int_equal(run(f, draws_document_run, j), 0);
	char err[512];
	assert_int_equal(draw_verify(j->document, NULL, NULL, err, sizeof(err)), 0);
	draws_job_free(j);
	assert_int_equal(count(f->db, "SELECT count(*) FROM draw_log WHERE draw = 'd1'"), 5);

	/* a later draw's manifest carries the previous pairs of these inspections */
	create(f, "d2");
	assert_int_equal(commit(f, "d2", "jinan", NOW, &j), 0);
	assert_non_null(strstr(j->json, "\"previous\":[{"));
	draws_job_free(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create_and_scope, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_execute_replace_publish, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
