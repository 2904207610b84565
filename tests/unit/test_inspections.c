/* The inspections' rules (issue 12 D) on a real inspect.db, opened as the CLI opens it: only
 * active members record and confirm; a new result bumps result_version and the older
 * confirmations stop counting; two distinct active members confirming the current version
 * confirm it (a replaced one's confirmation does not count); a confirmed result is final;
 * publishing needs confirmed; the scope of reads (city, inspector, province); the
 * inspector's site check; the capture's due list. */
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

#include "calendar.h"
#include "inspect.h"
#include "inspections.h"
#include "testdir.h"

#define NOW 1800000000000LL

struct fx {
	char dir[64];
	char path[128];
	struct inspect *in;
	sqlite3 *db; /* a second connection for the fixtures and checks */
};

static void exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_int_equal(testdir_make(f->dir, sizeof(f->dir), "inspections"), 0);
	snprintf(f->path, sizeof(f->path), "%s/inspect.db", f->dir);
	char err[256];
	assert_int_equal(inspect_open(NULL, f->path, &f->in, err, sizeof(err)), 0);
	assert_int_equal(sqlite3_open(f->path, &f->db), SQLITE_OK);
	exec(f->db,
	     "INSERT INTO targets VALUES ('org-a', 'A', 'jinan', 'city', '[]', 'high',"
	     " '[\"site-a1\",\"site-a2\"]', 1);"
	     "INSERT INTO targets VALUES ('org-b', 'B', 'qingdao', 'city', '[]', 'high',"
	     " '[\"site-b1\"]', 1);"
	     "INSERT INTO draws(id, scope_city, state, plan, created_ms, actor) VALUES"
	     " ('d1', '', 'executed', '{}', 1, 't');"
	     "INSERT INTO inspections(id, draw, seq, org, city, mode, site, exam_session,"
	     " slot_start_ms, slot_end_ms) VALUES (1, 'd1', 1, 'org-a', 'jinan', 'remote',"
	     " 'site-a1', 7, 1799999990000, 1800000100000);"
	     "INSERT INTO inspections(id, draw, seq, org, city, mode) VALUES"
	     " (2, 'd1', 2, 'org-b', 'qingdao', 'onsite');"
	     "INSERT INTO inspection_inspectors(inspection, inspector) VALUES (1, 'I1'), (1, 'I2'),"
	     " (1, 'I3'), (2, 'I4'), (2, 'I5');");
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

static struct insp_who inspector(const char *id)
{
	struct insp_who w = {.role = INSP_INSPECTOR};
	snprintf(w.inspector, sizeof(w.inspector), "%s", id);
	snprintf(w.actor, sizeof(w.actor), "test:%s", id);
	return w;
}

static struct insp_who city(const char *c)
{
	struct insp_who w = {.role = INSP_CITY};
	snprintf(w.city, sizeof(w.city), "%s", c);
	return w;
}

static int record(struct fx *f, const struct insp_who *w, int64_t id, const char *outcome,
                  struct insp_write *out)
{
	*out = (struct insp_write){.who = w,
	                           .id = id,
	                           .now_ms = NOW,
	                           .outcome = outcome,
	                           .findings = "f",
	                           .note = "n",
	                           .outcomes = INSPECTIONS_OUTCOMES_DEFAULT,
	                           .evidence = ""};
	return inspect_run_now(f->in, inspections_record, out);
}

static int confirm(struct fx *f, const struct insp_who *w, int64_t id, int64_t version,
                   struct insp_write *out)
{
	*out = (struct insp_write){.who = w, .id = id, .now_ms = NOW, .result_version = version};
	return inspect_run_now(f->in, inspections_confirm, out);
}

static int publish(struct fx *f, const struct insp_who *w, int64_t id)
{
	struct insp_write x = {.who = w, .id = id, .now_ms = NOW};
	return inspect_run_now(f->in, inspections_publish, &x);
}

static void test_result_and_confirmation_rules(void **state)
{
	struct fx *f = *state;
	struct insp_who i1 = inspector("I1"), i2 = inspector("I2"), i3 = inspector("I3"),
	                i4 = inspector("I4"), jn = city("jinan");
	struct insp_write w;
	assert_int_equal(record(f, &i1, 1, "nonsense", &w), -EINVAL);
	assert_string_equal(w.field, "outcome");
	assert_int_equal(record(f, &i4, 1, "clear", &w), -ENOENT); /* not his: not seen */
	assert_int_equal(confirm(f, &i1, 1, 1, &w), -EBUSY);       /* nothing recorded */
	assert_int_equal(record(f, &i1, 1, "clear", &w), 0);
	assert_int_equal(w.out_version, 1);
	assert_int_equal(confirm(f, &i1, 1, 1, &w), 0); /* the recorder may confirm his own */
	assert_int_equal(w.out_confirmed, 1);
	assert_int_equal(confirm(f, &i1, 1, 1, &w), 0); /* twice counts once */
	assert_int_equal(w.out_confirmed, 1);
	/* a new result: the old confirmation no longer counts, an old version is refused */
	assert_int_equal(record(f, &i2, 1, "rectify", &w), 0);
	assert_int_equal(w.out_version, 2);
	assert_int_equal(confirm(f, &i3, 1, 1, &w), -EBUSY);
	assert_string_equal(w.field, "result_version");
	assert_int_equal(confirm(f, &i3, 1, 2, &w), 0);
	assert_int_equal(w.out_confirmed, 1);
	assert_string_equal(w.out_state, "recorded");
	assert_int_equal(publish(f, &jn, 1), -EBUSY);
	/* I3 is replaced: his confirmation stops counting, and he may no longer confirm */
	exec(f->db, "UPDATE inspection_inspectors SET active = 0, replaced_by = 'I9' WHERE"
	            " inspection = 1 AND inspector = 'I3'");
	assert_int_equal(confirm(f, &i3, 1, 2, &w), -ENOENT);
	assert_int_equal(confirm(f, &i2, 1, 2, &w), 0);
	assert_int_equal(w.out_confirmed, 1);
	assert_string_equal(w.out_state, "recorded");
	assert_int_equal(confirm(f, &i1, 1, 2, &w), 0);
	assert_int_equal(w.out_confirmed, 2);
	assert_string_equal(w.out_state, "confirmed");
	assert_int_equal(record(f, &i1, 1, "clear", &w), -EBUSY); /* final */
	assert_int_equal(publish(f, &i1, 1), -EPERM);
	struct insp_who qd = city("qingdao");
	assert_int_equal(publish(f, &qd, 1), -ENOENT); /* another city's */
	assert_int_equal(publish(f, &jn, 1), 0);
	assert_int_equal(publish(f, &jn, 1), -EBUSY);
}

static void test_scope_of_reads(void **state)
{
	struct fx *f = *state;
	struct insp_who i1 = inspector("I1"), jn = city("jinan"), qd = city("qingdao"),
	                prov = {.role = INSP_PROVINCE};
	struct insp_list_query q = {.limit = 100};
	char *json = NULL;
	sqlite3 *db = f->db;
	assert_int_equal(inspections_list(db, &i1, &q, NULL, &json), 0);
	assert_non_null(strstr(json, "\"id\":1"));
	assert_null(strstr(json, "\"id\":2"));
	free(json);
	assert_int_equal(inspections_list(db, &qd, &q, NULL, &json), 0);
	assert_null(strstr(json, "\"id\":1"));
	assert_non_null(strstr(json, "\"id\":2"));
	free(json);
	q.limit = 1;
	assert_int_equal(inspections_list(db, &prov, &q, NULL, &json), 0);
	assert_non_null(strstr(json, "\"next\":1"));
	free(json);
	assert_int_equal(inspections_get(db, &jn, 2, NULL, &json), -ENOENT);
	assert_int_equal(inspections_get(db, &jn, 1, NULL, &json), 0);
	assert_non_null(strstr(json, "\"inspectors\":[{\"id\":\"I1\""));
	assert_null(strstr(json, "\"due\""));
	free(json);
	/* With the deadline: 20 working days (weekends only here) after the slot's local date,
	 * Friday 2027-01-15; inspection 2 has neither a slot nor an executed draw. */
	struct calendar cal = {0};
	struct insp_deadline d = {&cal, 20, NOW};
	assert_int_equal(
	    inspections_list(db, &prov, &(struct insp_list_query){.limit = 10}, &d, &json), 0);
	assert_non_null(strstr(json, "\"due\":\"2027-02-12\",\"overdue\":false"));
	assert_non_null(strstr(json, "\"due\":null,\"overdue\":false"));
	free(json);
	d.now_ms = NOW + 40LL * 86400000; /* after 2027-02-12, not published: overdue */
	assert_int_equal(inspections_get(db, &jn, 1, &d, &json), 0);
	assert_non_null(strstr(json, "\"due\":\"2027-02-12\",\"overdue\":true"));
	free(json);
}

static void test_site_check_and_capture_due(void **state)
{
	struct fx *f = *state;
	assert_int_equal(inspections_sees_site(f->in, "I1", "site-a1"), 1);
	assert_int_equal(inspections_sees_site(f->in, "I1", "site-a2"), 1); /* the org's other */
	assert_int_equal(inspections_sees_site(f->in, "I1", "site-b1"), 0);
	assert_int_equal(inspections_sees_site(f->in, "I4", "site-b1"), 1);
	assert_int_equal(inspections_sees_site(f->in, "I9", "site-a1"), 0);
	assert_int_equal(inspections_sees_site(f->in, "", "site-a1"), 0);
	struct insp_due due[4];
	size_t n;
	const int64_t retry = 60000;
	assert_int_equal(inspections_capture_due(f->db, NOW, retry, due, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(due[0].id, 1);
	assert_string_equal(due[0].site, "site-a1");
	assert_int_equal(inspections_capture_due(f->db, 1800000100000LL, retry, due, 4, &n), 0);
	assert_int_equal(n, 0); /* the slot has ended */
	/* a status without any picture: taken again after retry, at most three times */
	struct insp_evidence e = {.captured_ms = NOW - 3 * retry, .kind = "status", .data = "{}"};
	assert_int_equal(inspections_evidence_add(f->db, 1, &e, 1), 0);
	assert_int_equal(inspections_capture_due(f->db, NOW, retry, due, 4, &n), 0);
	assert_int_equal(n, 1);
	e.captured_ms = NOW - retry / 2;
	assert_int_equal(inspections_evidence_add(f->db, 1, &e, 1), 0);
	assert_int_equal(inspections_capture_due(f->db, NOW, retry, due, 4, &n), 0);
	assert_int_equal(n, 0); /* not before retry */
	assert_int_equal(inspections_capture_due(f->db, NOW + retry, retry, due, 4, &n), 0);
	assert_int_equal(n, 1);
	e.captured_ms = NOW;
	assert_int_equal(inspections_evidence_add(f->db, 1, &e, 1), 0);
	assert_int_equal(inspections_capture_due(f->db, NOW + 2 * retry, retry, due, 4, &n), 0);
	assert_int_equal(n, 0); /* three tries in all */
	exec(f->db, "DELETE FROM inspection_evidence WHERE id > 1");
	struct insp_evidence pic = {
	    .captured_ms = NOW, .kind = "thumbnail", .camera = "cam-1", .data = "{}"};
	assert_int_equal(inspections_evidence_add(f->db, 1, &pic, 1), 0);
	assert_int_equal(inspections_capture_due(f->db, NOW + 2 * retry, retry, due, 4, &n), 0);
	assert_int_equal(n, 0); /* a picture: done */
	char site[64];
	assert_int_equal(inspections_capture_allowed(f->db, "I1", 1, NOW, site), 0);
	assert_int_equal(inspections_capture_allowed(f->db, "I4", 1, NOW, site), -ENOENT);
	assert_int_equal(inspections_capture_allowed(f->db, "I4", 2, NOW, site), -EBUSY);
	/* confirmed: the site is his no longer */
	exec(f->db, "UPDATE inspections SET state = 'confirmed' WHERE id = 1");
	assert_int_equal(inspections_sees_site(f->in, "I1", "site-a1"), 0);
	assert_int_equal(inspections_capture_allowed(f->db, "I1", 1, NOW, site), -EBUSY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_result_and_confirmation_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scope_of_reads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_site_check_and_capture_due, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
