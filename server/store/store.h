/* store: the collector's results store behind one interface — batches in, acks out, reads
 * answered asynchronously. The only header callers include; backends (sqlite.c, later pg)
 * fill a struct store_ops (store_backend.h) and never show through.
 * Threads: every function here runs on the loop thread (store_open before the loop runs).
 * One writer thread commits queued batches in groups; reader threads run read requests on
 * their own connections. A batch and a read both come back through a callback on the loop
 * thread: the submitter frees its batch (store_batch_destroy); a read's reply, strings
 * included, belongs to the store and is freed when the callback returns. */
#ifndef VW_STORE_H
#define VW_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "result.h"

#define STORE_SCHEMA_VERSION 6

/* One result, compact: strings live in the batch's arena (offsets, NUL-terminated). */
struct store_row {
	int64_t seq, ts_ms, mono_ms;
	uint8_t kind, status; /* enum vw_kind, enum vw_status */
	uint32_t target, session, codec, faults, metrics;
	/* The VW_M_INTERVAL_MS metric (the agent's cadence when it checked), 0 when absent:
	 * results.interval_ms, which the rollup job reads instead of parsing metrics. */
	double interval_ms;
};

struct store_batch {
	/* Set by the submitter. */
	char site[64];
	char agent[64];
	/* The agent's outbox (32 hex digits, drawn when its outbox.db was made): seqs and the
	 * high-water mark are per (site, agent, epoch), so a reinstalled machine starting again
	 * at seq 1 is a new epoch, not a resend. "" = the legacy epoch (batches without one). */
	char epoch[33];
	char org[65];
	char city[129];
	int64_t received_ms;
	/* At most this many new epochs (not the legacy '') per agent in the 24 h before
	 * received_ms; a batch that would open one more fails with -EDQUOT and stores nothing.
	 * 0 = no bound. */
	long new_epochs_max;
	struct store_row *rows; /* sorted by seq (store_batch_sort) */
	size_t nrows, cap;
	struct vw_buf arena;
	void (*done)(struct store_batch *b); /* loop thread, once */
	void *data;
	/* Set by the store before done runs. */
	int status;        /* 0, or negative errno: -ESHUTDOWN, -EIO, -EDQUOT (epochs),
	                    * -EPERM (org/city differ from the site's) ... */
	int64_t acked_seq; /* the high-water mark of (site, agent, epoch) after the commit */
	size_t stored;     /* rows written; the rest were at or below the mark */
	size_t gap_seqs;   /* seqs skipped over (recorded as gaps), see sqlite.c */
	struct store_batch *next;
};

struct store_batch *store_batch_create(void);
void store_batch_destroy(struct store_batch *b); /* accepts NULL */
/* Copies the result into the batch (faults and metrics encoded as JSON text). */
int store_batch_add(struct store_batch *b, const struct vw_result *r);
void store_batch_sort(struct store_batch *b);
const char *store_batch_str(const struct store_batch *b, uint32_t off);

struct store;

/* How an acknowledged batch survives: FULL = a power cut (the default, what DELIVERY.md
 * promises); NORMAL = only a crash of the process (measurements only). */
enum store_durability { STORE_DURABLE_FULL, STORE_DURABLE_NORMAL };

struct store_options {
	const char *backend; /* "sqlite" (NULL = "sqlite"); see store_backend_names */
	const char *dir;     /* where an embedded backend keeps its files (the state dir) */
	enum store_durability durability;
	unsigned readers;   /* reader threads, each with its own connection; 0 = 2 */
	unsigned max_reads; /* reads queued or running at once; more get -EAGAIN; 0 = 64 */
	/* The rollup job (writer thread): raw results that arrived longer ago than this and
	 * are rolled up are pruned (0 = kept for ever); a result without an interval_ms metric
	 * holds for this long at most (0 = STORE_DEFAULT_STALE_MS). */
	int64_t raw_retention_ms, default_stale_ms;
	/* How often the job wakes when no batch comes, to close the holds of silent targets;
	 * 0 = 2 s; < 0 = the job does not run at all (measurements of ingest alone). */
	int64_t rollup_tick_ms;
	/* How often the job writes what it rolled in memory (its holds, credits and mark, in
	 * one transaction); scores see new credits that much later. 0 = STORE_ROLLUP_FLUSH_MS. */
	int64_t rollup_flush_ms;
};
#define STORE_ROLLUP_FLUSH_MS 5000
/* [score] default_stale's default: 2 x the agent's default 60 s in-session camera cadence. */
#define STORE_DEFAULT_STALE_MS 120000

/* The backends compiled in, "|"-separated (for config help and errors). */
extern const char store_backend_names[];

/* Opens (creating or migrating) the backend's store. Runs on the caller's thread; errors
 * name what failed and where, in err. */
int store_open(const struct store_options *o, struct store **out, char *err, size_t errlen);
/* Starts the writer and reader threads; at most queue_max batches wait for the writer.
 * On failure the store is still to be closed with store_close, and its memory then goes
 * when the loop runs the async handle's close callback (as after a started store). */
int store_start(struct store *s, uv_loop_t *loop, size_t queue_max);
/* Queues a batch for the next group commit. -EAGAIN when the queue is full, -ESHUTDOWN
 * once store_close began. */
int store_submit(struct store *s, struct store_batch *b);
/* Commits what is queued, answers the queued reads, runs the remaining callbacks, stops the
 * threads and closes the backend. If started, the memory goes when the loop runs the async
 * handle's close callback. Accepts NULL. */
void store_close(struct store *s);

struct store_stats {
	uint64_t commits, batches, rows_stored, rows_skipped, gap_seqs;
	uint64_t reads, reads_refused; /* completed; refused with -EAGAIN */
	/* the rollup job: rows_rolled counts results whose credits are persisted */
	uint64_t rows_rolled, rows_pruned, rollup_slices, rollup_flushes;
	/* writer thread CPU (CLOCK_THREAD_CPUTIME_ID) in group commits and in the job */
	uint64_t commit_cpu_ns, rollup_cpu_ns;
};
void store_get_stats(struct store *s, struct store_stats *out); /* loop thread */

/* --- reads (asynchronous) ----------------------------------------------------------------
 * Each read returns 0 when queued — its callback then runs exactly once, later, on the loop
 * thread, never from inside the call — or -EAGAIN (max_reads in flight: answer 503 with
 * Retry-After) or -ESHUTDOWN (not started, or closing). The reply and every string in it
 * are valid only during the callback. */

struct store_site {
	const char *site, *org, *city;
	int64_t last_report_ms;
	int64_t ok, degraded, down; /* cameras: latest stream result per target */
};
struct store_target {
	const char *agent, *kind, *target, *status, *session, *codec;
	const char *faults, *metrics; /* JSON text as stored */
	int64_t ts_ms, seq;
};

struct store_reply {
	/* 0; -ENOENT (store_get_site: the site never reported); -E2BIG (the reply outgrew
	 * STORE_REPLY_MAX); -EIO; -ESHUTDOWN (the store closed before the read ran). */
	int status;
	const struct store_site *sites; /* list: every site by id; get: the one site */
	size_t nsites;
	const struct store_target *targets; /* get: each (agent, kind, target)'s latest */
	size_t ntargets;
	int64_t value; /* store_high_seq (0 when unknown), store_count_results,
	                * store_exam_version */
	const struct store_exam_session *exam_sessions; /* store_exam_list, store_exam_get */
	size_t nexam_sessions;
	const struct store_exam *exams;
	size_t nexams;
	const struct store_credit *credits;
	size_t ncredits;
};
typedef void (*store_read_cb)(void *ud, const struct store_reply *r);

/* --- exam sessions (考试场次): writes and reads ------------------------------------------
 * Entered by people (api/exams.c, 'session import'); the writer thread applies them between
 * group commits, each in its own transaction with its exam_session_changes rows and the
 * site_versions bump. Times are UTC ms. */
struct store_exam_session {
	int64_t id; /* exam_sessions.id */
	const char *org, *city, *site, *code, *occupation, *level;
	const char *rooms; /* "A101,A102" or "*" */
	int64_t start_ms, end_ms, candidates;
	int64_t cancelled_ms; /* 0: not cancelled */
	int64_t created_ms, updated_ms;
};

enum store_write_op {
	STORE_EXAM_CREATE, /* every session of exams[] (id ignored), all or none */
	STORE_EXAM_UPDATE, /* exams[0] by id: new occupation, level, start, end, rooms,
	                    * candidates (org, city, site, code stay) */
	STORE_EXAM_CANCEL, /* exams[0] by id */
};

/* A write request: queued like a batch, run by the writer thread between group commits,
 * answered by done on the loop thread. The submitter owns it and every string it points to
 * until done runs (then frees it). Refusals (status):
 *   -EALREADY   the session has already started (now_ms >= its start): changes are late;
 *   -ETIMEDOUT  create, or an update's new start, at or before now_ms (in the past);
 *   -EEXIST     create: the org already has a session of that code;
 *   -ENOENT     update/cancel: no such session (or not in scope_org/scope_city);
 *   -ECANCELED  update/cancel of a session already cancelled;
 *   -ESHUTDOWN, -EIO, -ENOMEM.
 * bad is the index in exams[] the refusal is about, err says it for people. */
struct store_write {
	enum store_write_op op;
	const char *actor; /* who, for exam_session_changes */
	/* The time the write runs: the store sets it right after BEGIN IMMEDIATE, from clock
	 * (NULL: vw_now_ms), so the started/past checks, updated_ms and the audit row use the
	 * writer's time, not the time the write was queued (it may wait behind group commits).
	 * A test clock may derive it from the value the submitter left here. */
	int64_t now_ms;
	int64_t (*clock)(const struct store_write *w);
	/* update/cancel: the session must be of this org / city ("" = any), so a principal
	 * cannot change what it cannot see. */
	const char *scope_org, *scope_city;
	struct store_exam_session *exams;
	size_t nexams;
	void (*done)(struct store_write *w); /* loop thread, once */
	void *data;
	/* Set by the store before done runs. */
	int status;
	size_t bad;
	char err[256];
	/* create sets each exams[i].id. update/cancel: the site whose version moved, for
	 * the log (copied from the stored row). */
	char site[64];
	struct store_write *next;
};

/* Queues w; -EAGAIN when the batch queue is full, -ESHUTDOWN when not started or closing. */
int store_write_submit(struct store *s, struct store_write *w);

/* Before store_start only (command-line tools): runs w on the caller's thread, same
 * statements as the writer's; done is not called. Returns w->status. */
int store_write_now(struct store *s, struct store_write *w);

struct store_exam_query {
	const char *site, *org, *city; /* NULL or "" = any */
	int64_t from_ms, to_ms;        /* sessions overlapping [from, to); 0, 0 = all */
	int with_cancelled;
};
/* Sessions by (start_ms, id) in r->exam_sessions. */
int store_exam_list(struct store *s, const struct store_exam_query *q, store_read_cb cb, void *ud);
/* One session (cancelled ones too); -ENOENT. */
int store_exam_get(struct store *s, int64_t id, store_read_cb cb, void *ud);
/* The site's version in r->value (0 when it never had a session). */
int store_exam_version(struct store *s, const char *site, store_read_cb cb, void *ud);

/* What one reply may hold in memory (strings and arrays). */
#define STORE_REPLY_MAX (64u << 20)

int store_list_sites(struct store *s, store_read_cb cb, void *ud);
/* One snapshot: the site's summary and its targets agree with each other. */
int store_get_site(struct store *s, const char *site, store_read_cb cb, void *ud);
/* The high-water mark of one epoch of the agent ("" = the legacy epoch). */
int store_high_seq(struct store *s, const char *site, const char *agent, const char *epoch,
                   store_read_cb cb, void *ud);
/* Rows stored as results (tests, diagnostics). */
int store_count_results(struct store *s, store_read_cb cb, void *ud);

/* --- exam sessions and their rollups, for the score ------------------------------------ */
/* The credit classes a session's time is scored on (see docs/SCORE.md). */
enum store_class {
	STORE_CLASS_CONNECTED, /* network results of target "collector" */
	STORE_CLASS_NETWORK,   /* every network target */
	STORE_CLASS_STREAM,    /* cameras' picture */
	STORE_CLASS_RECORDING, /* cameras' recordings */
	STORE_CLASS_COVERAGE,  /* rooms */
	STORE_CLASS_COUNT
};
/* The longest exam session the store holds (the API refuses longer): reads of a period rely
 * on it to range over an index. */
#define STORE_EXAM_MAX_MS (24LL * 3600000)

struct store_exam {
	int64_t id; /* exam_sessions.id */
	const char *org, *city, *site, *code, *occupation, *level, *rooms;
	int64_t start_ms, end_ms, candidates;
	/* Rolled-up time of the session per class, summed over the class's targets. */
	int64_t ok_ms[STORE_CLASS_COUNT], degraded_ms[STORE_CLASS_COUNT],
	    down_ms[STORE_CLASS_COUNT];
	int64_t ntargets[STORE_CLASS_COUNT]; /* targets with any credit in the session */
	int64_t rolled_to_ms; /* the rollup has seen every result checked before this time */
};
struct store_credit {
	int64_t exam_id;
	int cls; /* enum store_class */
	const char *target;
	int64_t ok_ms, degraded_ms, down_ms, results;
};
struct store_score_query {
	const char *org, *city, *site; /* NULL = any; all three NULL = the province */
	int64_t from_ms, to_ms;        /* sessions overlapping [from, to) that are not cancelled */
	int with_credits;              /* 0: totals only (rankings); 1: per-target credits too */
};
/* Reply: exams (by start_ms, id) in r->exams / r->nexams, credits (by exam_id, cls, target)
 * in r->credits / r->ncredits. A province-wide year (~300k sessions) outgrows
 * STORE_REPLY_MAX (-E2BIG): rankings read per city or per org. */
int store_score_inputs(struct store *s, const struct store_score_query *q, store_read_cb cb,
                       void *ud);
/* The raw results behind one session's class (every target of it when target is NULL):
 * rows of the site's agents with ts in [start − the longest staleness, end), by (target, seq),
 * as r->targets (struct store_target; status, ts_ms, seq, faults, metrics). r->value = 1
 * when raw results of that window were already pruned (the credits are then all that is left). */
int store_score_evidence(struct store *s, int64_t exam_id, int cls, const char *target,
                         store_read_cb cb, void *ud);

/* One session by id (issue 11's score API, helper R2): r->exams holds it (nexams 0 when
 * there is none or it was cancelled) with its totals, r->credits its credits. The API
 * needs it to check the asker's scope before it shows a session's evidence. */
int store_score_exam(struct store *s, int64_t exam_id, store_read_cb cb, void *ud);

/* --- measurements only --------------------------------------------------------------------
 * The backend's own write path without the writer thread, on the caller's thread, before
 * store_start: tests/bench's "ceiling" and "raw" figures run the very statements ingest
 * does, so they cannot drift from them.
 * store_bench_commit: the list (linked by next) in one transaction, as one group commit;
 * each batch's status/acked_seq/stored are set, done is not called.
 * store_bench_raw: only the rows themselves (no marks, latest or counters), in one
 * transaction — the floor a results table allows. */
int store_bench_commit(struct store *s, struct store_batch *list);
int store_bench_raw(struct store *s, const struct store_batch *b);

#endif
