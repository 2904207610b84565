/* published: a published score is stored with its rubric and document on the module's
 * worker, read back newest first per org a page at a time (limit, before= cursor, the
 * city's own), survives a reopen, and can never be changed in place or deleted (the table's
 * triggers refuse an UPDATE and a DELETE). */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "published.h"

struct got {
	int calls, status;
	size_t n;
	int64_t ids[4];
	int scores[4];
	char versions[4][16], docs[4][64];
};

static void on_rows(void *ud, int status, const struct published_row *rows, size_t n)
{
	struct got *g = ud;
	g->calls++;
	g->status = status;
	g->n = n;
	for (size_t i = 0; i < n && i < 4; i++) {
		g->ids[i] = rows[i].id;
		g->scores[i] = rows[i].score;
		snprintf(g->versions[i], sizeof(g->versions[i]), "%s", rows[i].rubric_version);
		snprintf(g->docs[i], sizeof(g->docs[i]), "%s", rows[i].doc);
	}
}

static void wait_calls(uv_loop_t *loop, struct got *g, int calls)
{
	for (int i = 0; i < 100000 && g->calls < calls; i++)
		uv_run(loop, UV_RUN_ONCE);
	assert_int_equal(g->calls, calls);
}

static void test_published_rows_are_kept_as_written_and_frozen(void **st)
{
	(void)st;
	char dir[] = "/tmp/vw-published-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/scores.db", dir);
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct published *p;
	char err[256];
	assert_int_equal(published_open(&loop, path, &p, err, sizeof(err)), 0);
	struct published_row a = {.org = "O1",
	                          .scope_city = "",
	                          .from_ms = 1,
	                          .to_ms = 2,
	                          .published_ms = 100,
	                          .score = 3,
	                          .rubric_version = "3334d40b6acd",
	                          .rubric_text = "venuewatch score rubric 1\n",
	                          .actor = "t1",
	                          .doc = "{\"score\":3}"};
	struct published_row b = a;
	b.published_ms = 200;
	b.score = 5;
	b.rubric_version = "f6b30f7c51ae";
	b.doc = "{\"score\":5}";
	struct published_row other = a;
	other.org = "O2";
	struct got g = {0};
	assert_int_equal(published_add(p, &a, on_rows, &g), 0);
	assert_int_equal(published_add(p, &b, on_rows, &g), 0);
	assert_int_equal(published_add(p, &other, on_rows, &g), 0);
	wait_calls(&loop, &g, 3);
	assert_int_equal(g.status, 0);
	assert_int_equal(g.n, 1);
	memset(&g, 0, sizeof(g));
	assert_int_equal(
	    published_list(p, &(struct published_query){.org = "O1", .limit = 10}, on_rows, &g), 0);
	wait_calls(&loop, &g, 1);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.scores[0], 5); /* newest first */
	assert_string_equal(g.versions[0], "f6b30f7c51ae");
	assert_int_equal(g.scores[1], 3);
	assert_string_equal(g.versions[1], "3334d40b6acd");
	assert_string_equal(g.docs[1], "{\"score\":3}");
	int64_t newest = g.ids[0], older = g.ids[1];

	/* Pages: limit rows plus one when another page follows; before= goes on from there. */
	memset(&g, 0, sizeof(g));
	assert_int_equal(
	    published_list(p, &(struct published_query){.org = "O1", .limit = 1}, on_rows, &g), 0);
	wait_calls(&loop, &g, 1);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.ids[0], newest);
	memset(&g, 0, sizeof(g));
	assert_int_equal(
	    published_list(p,
	                   &(struct published_query){.org = "O1", .before_id = newest, .limit = 1},
	                   on_rows, &g),
	    0);
	wait_calls(&loop, &g, 1);
	assert_int_equal(g.n, 1); /* the last page: nothing past it */
	assert_int_equal(g.ids[0], older);
	assert_int_equal(
	    published_list(p, &(struct published_query){.org = "O1", .limit = 101}, on_rows, &g),
	    -EINVAL);
	assert_int_equal(
	    published_list(p, &(struct published_query){.org = "O1", .limit = 0}, on_rows, &g),
	    -EINVAL);
	/* A city's page holds what it published only, so its pages are full. */
	struct published_row city = a;
	city.scope_city = "jinan";
	city.score = 1;
	memset(&g, 0, sizeof(g));
	assert_int_equal(published_add(p, &city, on_rows, &g), 0);
	wait_calls(&loop, &g, 1);
	memset(&g, 0, sizeof(g));
	assert_int_equal(
	    published_list(
	        p, &(struct published_query){.org = "O1", .scope_city = "jinan", .limit = 5},
	        on_rows, &g),
	    0);
	wait_calls(&loop, &g, 1);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.scores[0], 1);
	published_close(p);
	uv_run(&loop, UV_RUN_DEFAULT);

	/* Another connection may not rewrite one. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char *msg = NULL;
	assert_int_not_equal(
	    sqlite3_exec(db, "UPDATE published_scores SET score = 5", NULL, NULL, &msg), SQLITE_OK);
	assert_non_null(strstr(msg, "never changed"));
	sqlite3_free(msg);
	msg = NULL;
	/* Nor take one back. */
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM published_scores", NULL, NULL, &msg),
	                     SQLITE_OK);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "never deleted"));
	sqlite3_free(msg);
	sqlite3_close(db);

	/* Reopened: still there. */
	assert_int_equal(published_open(&loop, path, &p, err, sizeof(err)), 0);
	memset(&g, 0, sizeof(g));
	assert_int_equal(
	    published_list(p, &(struct published_query){.org = "O1", .limit = 10}, on_rows, &g), 0);
	wait_calls(&loop, &g, 1);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.scores[2], 3);
	published_close(p);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	static const char *const suffix[] = {"", "-wal", "-shm"};
	for (int i = 0; i < 3; i++) {
		char f[160];
		snprintf(f, sizeof(f), "%s%s", path, suffix[i]);
		unlink(f);
	}
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_published_rows_are_kept_as_written_and_frozen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
