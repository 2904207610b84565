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
#include "prom.h"
#include "result.h"

#define STORE_SCHEMA_VERSION 10

/* One result, compact: strings live in the batch's arena (offsets, NUL-terminated). */
struct store_row {
	int64_t seq, ts_ms, mono_ms;
	uint8_t kind, status; /* enum vw_kind, enum vw_status */
	uint32_t target, session, codec, faults, metrics;
	/* The VW_M_INTERVAL_MS metric (the agent's cadence when it checked), 0 when absent:
	 * results.interval_ms, which the rollup job reads instead of parsing metrics. */
	double interval_ms;
	/* issue 16 C: the result's JPEG thumbnail in the arena (offset, bytes); 0, 0: none.
	 * Stored in table thumbnails in the same commit as the row. */
	uint32_t thumb, thumb_len;
};

/* issue 16 (A): one stored event (the events table): id is its store id, monotonic, the
 * SSE id. data is one line of JSON. Strings live as long as the list holding it. */
struct store_event {
	int64_t id, ts_ms;
	const char *type, *site, *org, *city, *data;
};
struct store_events {
	struct store_event *v;
	size_t n, cap;
};
/* Appends a copy (strings copied) with the given id. 0 or -ENOMEM. */
int store_events_add(struct store_events *e, const struct store_event *ev);
void store_events_clear(struct store_events *e); /* frees the copies; e stays usable */

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
	/* issue 16 (A): the agent's upload cadence as its batch said ("cadence_ms"; 0 =
	 * not said), which [feed] silent_after = "3x" multiplies. */
	int64_t cadence_ms;
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
	/* issue 16 (A): the events this batch's commit stored (status changes, problems),
	 * in id order; valid during done, freed by store_batch_destroy. Empty when the
	 * batch failed: nothing of a rolled-back batch is ever published. */
	struct store_events events;
	uint64_t commit_no; /* store-internal: delivery in commit order */
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
	/* issue 13, "postgresql": libpq's connection string, without a password (refused),
	 * and the libpq password file for it (NULL or "" = PGPASSFILE, else ~/.pgpass). */
	const char *dsn, *password_file;
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
	/* issue 16 C: thumbnails that arrived longer ago than this are pruned by the job's
	 * slices (0 = kept for ever). */
	int64_t thumb_retention_ms;
	/* issue 16 C: thumbnail_access rows older than this are pruned by the job's slices
	 * (0 = kept for ever). */
	int64_t thumb_access_retention_ms;
	/* How often the job writes what it rolled in memory (its holds, credits and mark, in
	 * one transaction); scores see new credits that much later. 0 = STORE_ROLLUP_FLUSH_MS. */
	int64_t rollup_flush_ms;
	/* issue 13, "postgresql": the singleton jobs' leases (store_lease_names) expire this
	 * long after their last renewal, renewed every lease_renew_ms; 0 = the defaults. */
	int64_t lease_ttl_ms, lease_renew_ms;
};
#define STORE_ROLLUP_FLUSH_MS 5000
/* 15 s / 5 s: two renewals may fail (a busy database, a GC pause) before a lease is lost;
 * a dead collector's jobs move to another within TTL + one renewal, about 20 s. */
#define STORE_LEASE_TTL_MS 15000
#define STORE_LEASE_RENEW_MS 5000

/* issue 13: the jobs that run on exactly one collector at a time, each under a lease of the
 * same name (server/store/pg_lease.h). On sqlite one collector owns the file: always held. */
enum store_lease_id { STORE_LEASE_FEED, STORE_LEASE_NOTIFY, STORE_LEASE_ROLLUP, STORE_LEASES };
extern const char *const store_lease_names[STORE_LEASES]; /* feed, notify, rollup */
struct store_lease {
	int held;
	int64_t epoch; /* the fencing token held (0: none, or sqlite's: no token) */
};
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

/* issue 14: what GET /metrics says of the feed, counted by the writer in a feed tick from
 * the open problems (the partial index problems_open holds only those) and feed_sites, and
 * only when a problem or site changed since the last count: a gauge read from the stats,
 * never a scan per scrape. A site's status is the dashboard's (api/sites.c site_status):
 * silent while its site_silent problem is open, else the worst status of its open
 * problems, else ok. */
enum store_site_state {
	STORE_SITE_OK,
	STORE_SITE_DEGRADED,
	STORE_SITE_DOWN,
	STORE_SITE_SILENT,
	STORE_SITE_STATES
};
extern const char *const store_site_state_names[STORE_SITE_STATES];
/* Problem kinds: the result kinds (enum vw_kind), then "site" (site_silent). */
#define STORE_PROBLEM_KINDS (VW_KIND_COUNT + 1)
#define STORE_SEVERITIES 3
extern const char *const store_severity_names[STORE_SEVERITIES]; /* minor, major, critical */
struct store_feed_counts {
	int64_t at_ms;
	int64_t sites[STORE_SITE_STATES];
	int64_t problems[STORE_PROBLEM_KINDS][STORE_SEVERITIES];
};

struct store_stats {
	uint64_t commits, batches, rows_stored, rows_skipped, gap_seqs;
	uint64_t reads, reads_refused; /* completed; refused with -EAGAIN */
	/* the rollup job: rows_rolled counts results whose credits are persisted */
	uint64_t rows_rolled, rows_pruned, rollup_slices, rollup_flushes;
	/* writer thread CPU (CLOCK_THREAD_CPUTIME_ID) in group commits and in the job */
	uint64_t commit_cpu_ns, rollup_cpu_ns;
	/* issue 14: each group commit's wall time (the writer's, under the lock it already
	 * takes to hand the batches back), for GET /metrics */
	struct vw_prom_hist commit_seconds;
	/* issue 14: the open problems and sites by status, as of the last STORE_FEED_TICK
	 * that recounted them (feed.at_ms; 0 = not counted yet). */
	struct store_feed_counts feed;
};
#define STORE_COMMIT_BOUNDS 10
extern const double store_commit_bounds[STORE_COMMIT_BOUNDS];
void store_get_stats(struct store *s, struct store_stats *out); /* loop thread */
/* issue 13: the leases this collector holds (any thread). */
/* issue 13: whether several collectors may write this store (its backend is a database
 * server); the core then follows every collector's events (store.c follow_read). */
int store_shared(const struct store *s);
void store_leases(struct store *s, struct store_lease out[STORE_LEASES]);

/* issue 13: whether the store's database answers, as its writer last found it. An embedded
 * store is always up; a database server can be away: then batches and writes fail at once
 * with -ENOTCONN (no wait on the network) and the writer tries to reconnect with backoff. */
struct store_avail {
	int up;                /* 0 while the writer has no working connection */
	int64_t down_since_ms; /* wall clock, when it was lost; 0 when up */
	int64_t retry_in_ms;   /* until the writer's next reconnect attempt (0 = at its next use) */
	int64_t attempts;      /* reconnect attempts that failed since it was lost */
	/* when it last came back (wall clock; 0 = never lost): the feed tick counts silence
	 * from here at the earliest, since agents held their results while it was away */
	int64_t up_since_ms;
	char why[192]; /* the last connection error, one line, no secrets */
};
void store_get_avail(struct store *s, struct store_avail *out); /* loop thread */
/* The Retry-After (seconds, 1..60) to give a client while the store is away: just past its
 * next reconnect attempt. */
int store_avail_retry_s(const struct store_avail *a);

/* --- reads (asynchronous) ----------------------------------------------------------------
 * Each read returns 0 when queued — its callback then runs exactly once, later, on the loop
 * thread, never from inside the call — or -EAGAIN (max_reads in flight: answer 503 with
 * Retry-After) or -ESHUTDOWN (not started, or closing). The reply and every string in it
 * are valid only during the callback. */

/* issue 16 E: what a site's latest results say per class, for its status and criteria. */
enum store_health {
	STORE_H_CONNECTED, /* network target "collector" */
	STORE_H_NETWORK,   /* every network target (collector included) */
	STORE_H_STREAM,
	STORE_H_RECORDING,
	STORE_H_COVERAGE,
	STORE_H_ASSESSMENT,
	STORE_H_BUFFER,
	STORE_H_COUNT
};
struct store_site {
	const char *site, *org, *city;
	int64_t last_report_ms;
	int64_t ok, degraded, down; /* cameras: latest stream result per target */
	/* issue 16 E: targets per class and latest status (enum store_health x enum
	 * vw_status), summed over the site's agents; whether an exam session of the site is
	 * running (not cancelled) at the time of the read; its open problems and whether one
	 * of them is site_silent. */
	int64_t health[STORE_H_COUNT][VW_STATUS_COUNT];
	int in_session, silent;
	int64_t open_problems;
};
struct store_target {
	const char *agent, *kind, *target, *status, *session, *codec;
	const char *faults, *metrics; /* JSON text as stored */
	int64_t ts_ms, seq;
	/* issue 16 C: the check time of the target's newest thumbnail (stream targets of
	 * store_get_site), 0 when it has none. */
	int64_t thumb_ts_ms;
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
	/* issue 16 E: store_site_history's next page starts before (next_ts_ms, next_id);
	 * next_id 0 = this was the last page. */
	int64_t next_ts_ms, next_id;
	/* issue 16 (A): store_events_after (events by id; events_pruned_id = the highest id
	 * pruned, events_last_id = the highest id stored) and store_problems_list (one item
	 * per problem: id = the problem's, ts_ms = its start, type "problem", data = its
	 * JSON as of the read). */
	const struct store_event *events;
	size_t nevents;
	int64_t events_pruned_id, events_last_id;
	/* issue 16 C: store_thumbnail's JPEG (NULL when none) with its check time, agent and
	 * seq; sites[0] is the site's summary (org and city, for the scope check). */
	const unsigned char *thumb;
	size_t thumb_len;
	int64_t thumb_ts_ms, thumb_seq;
	const char *thumb_agent;
	/* issue 16 D: store_notify_list */
	const struct store_notification *notifications;
	size_t nnotifications;
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
	/* issue 16 (A): problems and silence (no exams[]). */
	STORE_PROBLEM_ACK, /* problem_id, by ack_by with ack_message; scope_org/city apply */
	STORE_FEED_TICK,   /* silence detection, exam-session escalation, event pruning */
	/* issue 16 C: one row of thumbnail_access, from access */
	STORE_THUMB_ACCESS,
	STORE_NOTIFY_PUT, /* issue 16 D: notes[] (see "notifications" below) */
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
	/* --- issue 16 (A) --- */
	/* STORE_PROBLEM_ACK: -ENOENT no such problem in scope, -EALREADY acked before. */
	int64_t problem_id;
	const char *ack_by, *ack_message;
	/* STORE_FEED_TICK: a site is silent when no batch came for silent_ms (> 0), else for
	 * silent_factor x its last cadence_ms (60 s when it never said), counted from its
	 * last batch or since_ms (this server's start: a collector that was down heard
	 * nobody; a store whose database was away raises it to the reconnect), whichever is
	 * later. Events older than event_retention_ms are pruned (0 = kept). */
	int64_t silent_ms, since_ms, event_retention_ms;
	double silent_factor;
	/* Set by the store: the events the write stored, as on a batch (ack: its
	 * problem_acked, whose data is the problem's JSON). */
	struct store_events events;
	/* STORE_FEED_TICK, set by the store: feed.at_ms > 0 when the tick recounted them. */
	struct store_feed_counts feed;
	uint64_t commit_no; /* store-internal */
	/* issue 16 C: STORE_THUMB_ACCESS's row (strings the submitter's until done). */
	const struct store_thumb_access *access;
	struct store_write *next;
	/* issue 16 D: STORE_NOTIFY_PUT's rows (exams unused). */
	struct store_notification *notes;
	size_t nnotes;
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

/* --- issue 16 E: site history ------------------------------------------------------------
 * A site's stored results, newest first by (ts_ms, results.id), one page at a time: each
 * agent's rows are read from results_agent_ts in that order and the streams merged, kind and
 * target checked on the way. A page examines at most scan_max rows, so a filter that
 * matches rarely gets a short page (fewer than limit rows) with a cursor that continues. */
#define STORE_HISTORY_MAX 1000
/* ~10 ms of a reader's time (docs/BENCHMARKS.md "Feed"). */
#define STORE_HISTORY_SCAN_MAX 20000
struct store_history_query {
	const char *site;
	const char *kind, *target; /* NULL = any */
	int64_t from_ms, to_ms;    /* ts_ms in [from, to); 0 = unbounded on that side */
	/* The cursor: only rows before (before_ts_ms, before_id); before_id 0 = from the newest. */
	int64_t before_ts_ms, before_id;
	int limit;     /* 1..STORE_HISTORY_MAX */
	long scan_max; /* rows one page may examine; 0 = STORE_HISTORY_SCAN_MAX */
};
/* The site's summary in r->sites[0] (its org and city, for the asker's scope); rows in
 * r->targets (agent, kind, target, status, session, codec, faults, metrics, ts_ms, seq), the
 * next page in r->next_ts_ms / r->next_id (next_id 0: no more rows). -ENOENT: the site never
 * reported; -EINVAL: a bad query (limit, a string too long). */
int store_site_history(struct store *s, const struct store_history_query *q, store_read_cb cb,
                       void *ud);
/* --- issue 16 A: problems, persisted events, silence --------------------------------- */
/* Called on the loop thread for every stored event, in id order, after its commit and
 * before the done of the batch or write that made it. One callback (the hub, events.c). */
typedef void (*store_event_fn)(void *ud, const struct store_event *ev);
void store_set_event_cb(struct store *s, store_event_fn fn, void *ud);

/* A problem row (table problems, docs/API.md "Problems"). */
struct store_problem {
	int64_t id;
	const char *site, *org, *city, *agent, *kind, *target, *status, *worst, *severity;
	const char *faults;       /* JSON array text */
	int64_t start_ms, end_ms; /* end_ms 0 = open */
	int in_session;
	const char *ack_by, *ack_message; /* NULL = not acked */
	int64_t ack_ms;
};
/* The problem's JSON object (one line), duration_s up to now_ms while open. */
int store_problem_json(struct vw_buf *b, const struct store_problem *p, int64_t now_ms);

/* Events with id > after_id, by id, at most limit (1..10000). */
int store_events_after(struct store *s, int64_t after_id, size_t limit, store_read_cb cb, void *ud);
/* One stream's backlog page, narrowed in SQL to its reader's scope (the events_city and
 * events_org indexes), so a resume never reads another scope's rows: events with
 * id > after_id, by id, at most limit (1..10000) rows, and — max_bytes > 0 — ending with
 * the row that takes the sum of the rows' strlen(data) to max_bytes or beyond. A page is
 * full (there may be more) when it holds limit rows or reached max_bytes. org or city (at
 * most one; NULL or "" = every scope) must equal the row's. -EINVAL for both. */
struct store_events_query {
	int64_t after_id;
	size_t limit, max_bytes;
	const char *org, *city;
};
int store_events_scoped(struct store *s, const struct store_events_query *q, store_read_cb cb,
                        void *ud);
struct store_problem_query {
	int state;                     /* 0 all, 1 open, 2 closed */
	const char *city, *site, *org; /* NULL or "" = any (the principal's scope included) */
	int64_t from_ms, to_ms;        /* problems overlapping [from, to); 0 = unbounded */
	size_t limit;                  /* 1..1000 */
	/* Paging: problems after (before_start_ms, before_id) in (start desc, id desc);
	 * before_id 0 = the first page. */
	int64_t before_start_ms, before_id;
};
int store_problems_list(struct store *s, const struct store_problem_query *q, store_read_cb cb,
                        void *ud);
/* --- issue 16 C: picture evidence (thumbnails) ------------------------------------------
 * Ingest stores a result's JPEG in table thumbnails in the batch's own commit; the rollup
 * job's slices prune those that arrived longer ago than store_options.thumb_retention_ms.
 * Every one served is recorded first (STORE_THUMB_ACCESS, thumbnail_access): pictures of an
 * exam room show candidates, so who looked at which camera when is kept, for
 * thumb_access_retention_ms. The writer commits all queued accesses in one transaction. */
struct store_thumb_access {
	int64_t at_ms;             /* when it was served (the writer sets it if 0) */
	const char *actor;         /* "city:<token id> (<holder>)": role, token id and name */
	const char *site, *camera; /* what was asked for */
	int64_t asked_ms;          /* ?at= (0: the latest) */
	int64_t thumb_ts_ms;       /* the check time of the picture served */
	const char *peer;          /* the client's address */
};
/* The newest thumbnail of (site, camera) checked at or before at_ms (0 = the newest of all)
 * in r->thumb (NULL when there is none), with the site's summary in r->sites[0]; -ENOENT
 * when the site never reported. */
int store_thumbnail(struct store *s, const char *site, const char *camera, int64_t at_ms,
                    store_read_cb cb, void *ud);

/* --- issue 16 D: notifications ------------------------------------------------------------
 * One row per (sink, problem, dedup key): the delivery state of a [notify NAME] message
 * (server/notify/notify.c), written by STORE_NOTIFY_PUT write requests and read back by
 * the API and by the notifier at start (its pending ones). */
struct store_notification {
	int64_t id; /* 0 in a PUT: insert; the store sets it, or leaves 0 for a duplicate */
	const char *sink, *event; /* event: opened|closed|acked|updated */
	int64_t problem_id, event_id;
	const char *site, *org, *city; /* the problem's, for scope */
	const char *state;             /* pending|sent|failed|suppressed */
	int64_t attempts;
	const char *last_error;  /* "" = none */
	int64_t next_attempt_ms; /* 0 = none */
	int64_t sent_ms;         /* 0 = not sent */
	int64_t created_ms;
	const char *data; /* the problem JSON the message is made from */
	int if_opened;    /* PUT insert: only if the sink's 'opened' row of the problem is there
	                   * and pending or sent (closed/acked: only after an announced opening) */
	int unannounced;  /* PUT reply: not inserted because if_opened found no such row */
};
/* A PUT row with id = 0 is inserted unless its key is already there (then its id stays 0:
 * a duplicate) or if_opened finds no opening (id 0, unannounced 1). The key is (sink,
 * problem_id, event) for opened/closed/acked and (sink, problem_id, event_id) for updated:
 * every change of a problem is its own message. One with an id updates that row's state,
 * attempts, last_error, next_attempt_ms and sent_ms. All rows of one write in one
 * transaction. */
struct store_notify_query {
	const char *state; /* NULL = any */
	const char *city;  /* NULL = any; else the problem's city */
	size_t limit;      /* 1..; rows */
	int oldest_first;  /* 0: newest (id) first */
};
/* Rows in r->notifications; r->value = the highest event_id of any row (0: none). */
int store_notify_list(struct store *s, const struct store_notify_query *q, store_read_cb cb,
                      void *ud);

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
