/* store_backend: what a storage backend implements (struct store_ops, curl-style: a table
 * of function pointers) and the reply builder it fills reads with. For server/store/ only:
 * callers include store.h. The core (store.c) owns the threads; a backend only says how
 * to open, commit a group, and answer a read on one connection.
 * Threads: open/close and reader_open/reader_close on the thread calling store_open or
 * store_close; commit on the writer thread; reads on one reader thread per connection (a
 * connection is never used by two threads at once). Replies are freed by the core. */
#ifndef VW_STORE_BACKEND_H
#define VW_STORE_BACKEND_H

#include "store.h"

/* A reply under construction: strings are copied in, so nothing of the backend's
 * (statements, result buffers) outlives the read. */
struct store_fill;
/* 0, -ENOMEM, or -E2BIG past STORE_REPLY_MAX (the read then fails with it). */
int store_fill_site(struct store_fill *f, const struct store_site *site);
int store_fill_target(struct store_fill *f, const struct store_target *t);
int store_fill_exam_session(struct store_fill *f, const struct store_exam_session *e);
int store_fill_exam(struct store_fill *f, const struct store_exam *e);
int store_fill_credit(struct store_fill *f, const struct store_credit *c);
int store_fill_event(struct store_fill *f, const struct store_event *ev); /* issue 16 (A) */
/* issue 16 C: store_thumbnail's answer (the picture is copied). */
int store_fill_thumb(struct store_fill *f, const void *jpeg, size_t len, const char *agent,
                     int64_t ts_ms, int64_t seq);
int store_fill_notification(struct store_fill *f, const struct store_notification *n); /* 16 D */

/* The exam-session write rules (issue 11), one copy for every backend: each backend calls
 * them inside its write transaction, after it set w->now_ms, and only stores what they
 * allow. Each refusal sets w->bad and w->err and returns the status to answer with. */
/* Records a refusal of w->exams[i]: fmt has one %s, a. Returns rc. */
int store_exam_refuse(struct store_write *w, size_t i, int rc, const char *fmt, const char *a);
/* STORE_EXAM_CREATE, before inserting w->exams[i]: -ETIMEDOUT when it starts in the past. */
int store_exam_check_new(struct store_write *w, size_t i);
/* STORE_EXAM_UPDATE / STORE_EXAM_CANCEL of the stored row old (locked, in scope): -ECANCELED,
 * -EALREADY (started), -ETIMEDOUT (update to a start in the past); else 0 and *now = the
 * row to store (old with the update's fields, or cancelled), its strings old's or
 * w->exams[0]'s. */
int store_exam_change(struct store_write *w, const struct store_exam_session *old,
                      struct store_exam_session *now);

struct store_ops {
	const char *name;
	/* issue 13: several collectors may write this store at once (a database server): the
	 * core then hands event_cb the events read back from the store, all collectors'. */
	int shared;
	/* Opens (creating or migrating) the store; be is the backend's own object. */
	int (*open)(const struct store_options *o, void **be, char *err, size_t errlen);
	/* After every reader is closed. */
	void (*close)(void *be);
	/* Writer thread: every batch of list (linked by next) in one transaction, each
	 * isolated from the others' failures; sets status, acked_seq, stored and gap_seqs.
	 * Returns 0, or the error that failed the whole group (then every status is set). */
	int (*commit)(void *be, struct store_batch *list);
	/* Measurements only: b's rows, nothing else, in one transaction. */
	int (*raw)(void *be, const struct store_batch *b);
	/* Writer thread, between group commits: one slice of the rollup job (and pruning);
	 * adds to out's rows_rolled, rows_pruned, rollup_slices. 1 = more work waits, 0 =
	 * caught up, or a negative errno (the slice rolled back; the next one retries). */
	int (*rollup)(void *be, int64_t now_ms, struct store_stats *out);

	/* One read connection, for one reader thread. */
	int (*reader_open)(void *be, void **rd, char *err, size_t errlen);
	void (*reader_close)(void *rd);
	int (*list_sites)(void *rd, struct store_fill *f);
	/* -ENOENT when the site never reported. */
	int (*get_site)(void *rd, const char *site, struct store_fill *f);
	int (*high_seq)(void *rd, const char *site, const char *agent, const char *epoch,
	                int64_t *out);
	int (*count_results)(void *rd, int64_t *out);

	/* Exam sessions. write: on the writer thread (or store_write_now's caller), one
	 * transaction; sets w->status, bad, err and returns w->status. */
	int (*write)(void *be, struct store_write *w);
	int (*exam_list)(void *rd, const struct store_exam_query *q, struct store_fill *f);
	int (*exam_get)(void *rd, int64_t id, struct store_fill *f); /* -ENOENT */
	int (*exam_version)(void *rd, const char *site, int64_t *out);
	int (*score_inputs)(void *rd, const struct store_score_query *q, struct store_fill *f);
	/* Fills targets; *pruned = 1 when raw results of the window were pruned. -ENOENT: no
	 * such session. */
	int (*score_evidence)(void *rd, int64_t exam_id, int cls, const char *target,
	                      struct store_fill *f, int64_t *pruned);
	/* One session (not cancelled) and its credits; none filled when there is none. */
	int (*score_exam)(void *rd, int64_t exam_id, struct store_fill *f);
	/* issue 16 E: one page of a site's history into targets; the next page's start in
	 * *next_ts / *next_id (0 = none). -ENOENT: no such site. */
	int (*site_history)(void *rd, const struct store_history_query *q, struct store_fill *f,
	                    int64_t *next_ts, int64_t *next_id);
	/* issue 16 (A): events with id > after_id by id (at most limit), and the highest id
	 * pruned and stored; problems matching q, each as an event (store.h). */
	int (*events_after)(void *rd, const struct store_events_query *q, struct store_fill *f,
	                    int64_t *pruned_id, int64_t *last_id);
	int (*problems_list)(void *rd, const struct store_problem_query *q, int64_t now_ms,
	                     struct store_fill *f);
	/* issue 16 C: the site's summary and its newest thumbnail of camera checked at or
	 * before at_ms (0: any); -ENOENT when the site never reported. */
	int (*thumbnail)(void *rd, const char *site, const char *camera, int64_t at_ms,
	                 struct store_fill *f);
	/* issue 16 D: notifications (writes go through write, op STORE_NOTIFY_PUT). */
	int (*notify_list)(void *rd, const struct store_notify_query *q, struct store_fill *f,
	                   int64_t *max_event_id);
	/* issue 16 C: every STORE_THUMB_ACCESS request of list (others skipped) in one
	 * transaction, each request's status set to the commit's; NULL: each by write. */
	int (*thumb_access)(void *be, struct store_write *list);
	/* issue 13, optional (NULL = always up): the connection's state (store_get_avail), from
	 * the loop thread while the writer runs: the backend guards it itself. */
	void (*avail)(void *be, struct store_avail *out);
	/* issue 13: the leases held (any thread); NULL: every one, always (one collector). */
	void (*leases)(void *be, struct store_lease out[STORE_LEASES]);
};

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_postgresql_ops; /* issue 13 */
/* issue 16 E: the SQL of a history stream (one agent's rows in (ts, id) order), for the
 * unit test that checks its query plan ranges over an index in that order. */
const char *store_sqlite_history_sql(void);

#endif
