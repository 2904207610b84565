/* sqlite: the store's SQLite backend — one database file (<dir>/venuewatch.db) in WAL mode,
 * its schema and in-place migrations, the writer's prepared statements and group-commit
 * transaction, and read-only connections for the reader threads. Implements store_ops
 * (store_backend.h); nothing SQLite leaves this file.
 * Threads: open/close on the store_open/store_close caller; the write connection on the
 * writer thread only; each read connection on one reader thread. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credit.h"
#include "db.h"
#include "log.h"
#include "store_backend.h"
#include "vtime.h"

#define DB_FILE "venuewatch.db"

/* Schema history: migrations[i] takes user_version i to i + 1, in one transaction.
 *
 * results is append-only in arrival order with no secondary index, so an insert touches
 * one b-tree page at the end; duplicates are kept out by the per-agent high-water mark in
 * agents.high_seq, not by a unique index. latest holds one row per (agent, kind, target)
 * with the status copied in, so a site's page reads current state without history; and
 * agents.cam_* count the agent's cameras by latest stream status, kept by the writer as
 * latest changes, so the overview of every site reads one row per agent instead of every
 * camera (3000 sites x 200 cameras: ~0.2 s of loop time per request otherwise).
 * No foreign keys: the writer is the only code that inserts, and the per-row lookup a
 * foreign key costs is most of an insert's price. */
#define TOTALS_COLS(c)                                                                             \
	" " c "_ok_ms INTEGER NOT NULL DEFAULT 0, " c "_degraded_ms INTEGER NOT NULL DEFAULT 0,"   \
	" " c "_down_ms INTEGER NOT NULL DEFAULT 0, " c "_targets INTEGER NOT NULL DEFAULT 0,"
static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE agents("
    " id INTEGER PRIMARY KEY,"
    " site TEXT NOT NULL,"
    " agent TEXT NOT NULL,"
    " org TEXT NOT NULL DEFAULT '',"
    " city TEXT NOT NULL DEFAULT '',"
    " high_seq INTEGER NOT NULL DEFAULT 0,"
    " last_report_ms INTEGER NOT NULL DEFAULT 0,"
    " cam_ok INTEGER NOT NULL DEFAULT 0,"
    " cam_degraded INTEGER NOT NULL DEFAULT 0,"
    " cam_down INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE(site, agent));"
    "CREATE TABLE results("
    " id INTEGER PRIMARY KEY,"
    " agent_id INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " ts_ms INTEGER NOT NULL,"
    " mono_ms INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " target TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " session TEXT,"
    " codec TEXT,"
    " faults TEXT NOT NULL,"  /* JSON array of fault codes */
    " metrics TEXT NOT NULL," /* JSON object name -> number */
    " received_ms INTEGER NOT NULL);"
    "CREATE TABLE latest("
    " agent_id INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " target TEXT NOT NULL,"
    " result_id INTEGER NOT NULL,"
    " status TEXT NOT NULL,"
    " PRIMARY KEY(agent_id, kind, target)) WITHOUT ROWID;",
    /* 2: seqs an agent never sent. A batch that starts (or continues) beyond the agent's
     * mark + 1 means the agent no longer holds those seqs: its outbox dropped them at its
     * bound (and said so in a buffer_overflow result) or, after a collector power loss, they
     * were acknowledged here and rolled back. Either way nobody can send them again, so the
     * mark moves on and the hole is written down instead of waited for. */
    "CREATE TABLE seq_gaps("
    " agent_id INTEGER NOT NULL,"
    " first_seq INTEGER NOT NULL,"
    " last_seq INTEGER NOT NULL,"
    " received_ms INTEGER NOT NULL);",
    /* 3: agent epochs. A venue machine that is reinstalled loses its outbox and starts
     * again at seq 1; its new outbox draws a new epoch id, and the mark is kept per
     * (agent, epoch), so the new run is neither skipped as resends nor refused. The agent's
     * row (site, org, city, latest, camera counts) stays one, so the old history is still
     * the site's and the new results replace its latest state. ord numbers an agent's
     * epochs in order of first sight, 0 being the legacy epoch '' (batches that carry
     * none); results and gaps keep the ord, which keeps the rows small and lets the
     * ALTERs add a constant default (no rewrite of existing rows). agents.high_seq stays
     * as the mark of the epoch that stored last, for people and tools; the dedup reads
     * epochs. */
    "CREATE TABLE epochs("
    " agent_id INTEGER NOT NULL,"
    " epoch TEXT NOT NULL,"
    " ord INTEGER NOT NULL,"
    " high_seq INTEGER NOT NULL DEFAULT 0,"
    " first_ms INTEGER NOT NULL,"
    " last_ms INTEGER NOT NULL,"
    " PRIMARY KEY(agent_id, epoch)) WITHOUT ROWID;"
    "INSERT INTO epochs(agent_id, epoch, ord, high_seq, first_ms, last_ms)"
    " SELECT id, '', 0, high_seq, last_report_ms, last_report_ms FROM agents;"
    "ALTER TABLE results ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE seq_gaps ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;",
    /* 4: exam sessions (考试场次), entered by the organisation or the bureau; the collector is
     * their authority. code is the organisation's own id for the session (unique within the
     * org); rooms is a comma-separated list of room names, or "*" for every room of the site.
     * A session changes only before it starts; every change is a row of exam_session_changes
     * in the same transaction. site_versions counts each site's changes, so an agent asks
     * for its sessions again only when its site's number moved. */
    "CREATE TABLE exam_sessions("
    " id INTEGER PRIMARY KEY,"
    " org TEXT NOT NULL,"
    " city TEXT NOT NULL,"
    " site TEXT NOT NULL,"
    " code TEXT NOT NULL,"
    " occupation TEXT NOT NULL,"
    " level TEXT NOT NULL,"
    " start_ms INTEGER NOT NULL,"
    " end_ms INTEGER NOT NULL,"
    " rooms TEXT NOT NULL,"
    " candidates INTEGER NOT NULL DEFAULT 0,"
    " cancelled_ms INTEGER,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " UNIQUE(org, code));"
    "CREATE INDEX exam_sessions_site ON exam_sessions(site, start_ms);"
    "CREATE INDEX exam_sessions_org ON exam_sessions(org, start_ms);"
    "CREATE INDEX exam_sessions_city ON exam_sessions(city, start_ms);"
    "CREATE TABLE exam_session_changes("
    " id INTEGER PRIMARY KEY,"
    " session_id INTEGER NOT NULL,"
    " at_ms INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " before TEXT,"
    " after TEXT NOT NULL);"
    "CREATE TABLE site_versions("
    " site TEXT PRIMARY KEY,"
    " sessions INTEGER NOT NULL) WITHOUT ROWID;",
    /* 5: rollups, so a score reads years of sessions without the raw results (pruned after
     * [store] raw_retention). rollup_mark holds the last results.id the job rolled (it reads
     * results in id order, never rescanning) and the pruning cursor. rollup_state is each
     * (agent, kind, target)'s last result: its hold is credited up to until_ms, and the
     * partial index finds the holds still open, whose tails the job moves on with time.
     * rollup_agents keeps each agent's last rolled check time (a session's rolled_to).
     * exam_credits is per (exam session, class, target) and exam_totals one row per session
     * (the province ranking reads ~300k sessions a year: one row each, no GROUP BY);
     * rollup_days per (agent, kind, target, local day UTC+8), kept for years.
     * results_target_ts serves evidence and history; exam_sessions_site_end finds the
     * sessions a hold overlaps without walking a site's past ones. */
    "CREATE TABLE rollup_mark("
    " id INTEGER PRIMARY KEY CHECK(id = 1),"
    " result_id INTEGER NOT NULL,"
    " at_ms INTEGER NOT NULL,"
    " pruned_id INTEGER NOT NULL,"
    " pruned_ts_ms INTEGER NOT NULL);"
    "INSERT INTO rollup_mark VALUES(1, 0, 0, 0, 0);"
    "CREATE TABLE rollup_state("
    " agent_id INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " target TEXT NOT NULL,"
    " status INTEGER NOT NULL,"
    " ts_ms INTEGER NOT NULL,"
    " stale_ms INTEGER NOT NULL,"
    " until_ms INTEGER NOT NULL,"
    " PRIMARY KEY(agent_id, kind, target)) WITHOUT ROWID;"
    "CREATE INDEX rollup_state_open ON rollup_state(ts_ms + stale_ms)"
    " WHERE until_ms < ts_ms + stale_ms;"
    "CREATE TABLE rollup_agents("
    " agent_id INTEGER PRIMARY KEY,"
    " site TEXT NOT NULL,"
    " last_ts_ms INTEGER NOT NULL);"
    "CREATE TABLE exam_credits("
    " exam_id INTEGER NOT NULL,"
    " cls INTEGER NOT NULL,"
    " target TEXT NOT NULL,"
    " ok_ms INTEGER NOT NULL DEFAULT 0,"
    " degraded_ms INTEGER NOT NULL DEFAULT 0,"
    " down_ms INTEGER NOT NULL DEFAULT 0,"
    " results INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(exam_id, cls, target)) WITHOUT ROWID;"
    "CREATE TABLE exam_totals("
    " exam_id INTEGER PRIMARY KEY," TOTALS_COLS("connected") TOTALS_COLS("network")
        TOTALS_COLS("stream") TOTALS_COLS("recording") TOTALS_COLS(
            "coverage") " updated_ms INTEGER NOT NULL DEFAULT 0);"
                        "CREATE TABLE rollup_days("
                        " agent_id INTEGER NOT NULL,"
                        " kind TEXT NOT NULL,"
                        " target TEXT NOT NULL,"
                        " day INTEGER NOT NULL," /* days since 1970-01-01, Asia/Shanghai */
                        " ok_ms INTEGER NOT NULL DEFAULT 0,"
                        " degraded_ms INTEGER NOT NULL DEFAULT 0,"
                        " down_ms INTEGER NOT NULL DEFAULT 0,"
                        " results INTEGER NOT NULL DEFAULT 0,"
                        " PRIMARY KEY(agent_id, kind, target, day)) WITHOUT ROWID;"
                        "CREATE INDEX results_agent_ts ON results(agent_id, ts_ms);"
                        "CREATE INDEX exam_sessions_site_end ON exam_sessions(site, end_ms);"
                        "CREATE INDEX exam_sessions_start ON exam_sessions(start_ms);",
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
_Static_assert(NMIGRATIONS == STORE_SCHEMA_VERSION, "a migration per schema version");

enum wstmt {
	W_AGENT,
	W_EPOCH,
	W_RESULT,
	W_OLD_STATUS,
	W_LATEST,
	W_HIGH,
	W_EPOCH_HIGH,
	W_GAP,
	W_EPOCH_FIND,
	W_EPOCH_RECENT,
	W_EPOCH_LAST,
	W_SITE_PLACE,
	/* the rollup job */
	W_MARK_GET,
	W_MARK_SET,
	W_NEW_RESULTS,
	W_STATE_GET,
	W_STATE_PUT,
	W_STATE_UNTIL,
	W_TAILS,
	W_AGENT_SEEN,
	W_EXAMS_AT,
	W_CREDIT_ADD,
	W_CREDIT_NEW,
	W_TOTALS_NEW,
	W_TOTALS_ADD, /* + enum store_class */
	W_DAY_ADD = W_TOTALS_ADD + STORE_CLASS_COUNT,
	W_PRUNE_STOP,
	W_PRUNE_TS,
	W_PRUNE,
	W_COUNT
};
#define TOTALS_ADD(c)                                                                              \
	"UPDATE exam_totals SET " c "_ok_ms = " c "_ok_ms + ?2, " c "_degraded_ms = " c            \
	"_degraded_ms + ?3, " c "_down_ms = " c "_down_ms + ?4, " c "_targets = " c                \
	"_targets + ?5,"                                                                           \
	" updated_ms = ?6 WHERE exam_id = ?1"
static const char *const wsql[W_COUNT] = {
    [W_AGENT] = "INSERT INTO agents(site, agent, org, city, last_report_ms)"
                " VALUES(?1, ?2, ?3, ?4, ?5)"
                " ON CONFLICT(site, agent) DO UPDATE SET org = excluded.org,"
                " city = excluded.city, last_report_ms = excluded.last_report_ms"
                " RETURNING id, high_seq",
    /* A new epoch gets the next ord of its agent (0 only for the legacy ''). */
    [W_EPOCH] = "INSERT INTO epochs(agent_id, epoch, ord, first_ms, last_ms)"
                " VALUES(?1, ?2, CASE WHEN ?2 = '' THEN 0 ELSE"
                " (SELECT coalesce(max(ord), 0) + 1 FROM epochs WHERE agent_id = ?1) END,"
                " ?3, ?3)"
                " ON CONFLICT(agent_id, epoch) DO UPDATE SET last_ms = excluded.last_ms"
                " RETURNING ord, high_seq",
    [W_RESULT] = "INSERT INTO results(agent_id, seq, ts_ms, mono_ms, kind, target, status,"
                 " session, codec, faults, metrics, received_ms, epoch)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [W_LATEST] = "INSERT INTO latest(agent_id, kind, target, result_id, status)"
                 " VALUES(?1, ?2, ?3, ?4, ?5)"
                 " ON CONFLICT(agent_id, kind, target) DO UPDATE SET"
                 " result_id = excluded.result_id, status = excluded.status",
    [W_OLD_STATUS] = "SELECT status FROM latest WHERE agent_id = ?1 AND kind = ?2 AND target = ?3",
    [W_HIGH] = "UPDATE agents SET high_seq = ?2, cam_ok = cam_ok + ?3,"
               " cam_degraded = cam_degraded + ?4, cam_down = cam_down + ?5 WHERE id = ?1",
    [W_EPOCH_HIGH] = "UPDATE epochs SET high_seq = ?3 WHERE agent_id = ?1 AND epoch = ?2",
    [W_GAP] = "INSERT INTO seq_gaps(agent_id, first_seq, last_seq, received_ms, epoch)"
              " VALUES(?1, ?2, ?3, ?4, ?5)",
    [W_EPOCH_FIND] = "SELECT 1 FROM epochs WHERE agent_id = ?1 AND epoch = ?2",
    /* The primary key's agent_id prefix bounds the scan to one agent's epochs. */
    [W_EPOCH_RECENT] = "SELECT count(*) FROM epochs"
                       " WHERE agent_id = ?1 AND epoch <> '' AND first_ms > ?2",
    /* UNIQUE(site, agent)'s index: the site's first row. All its rows agree (see
     * check_site_place). */
    [W_SITE_PLACE] = "SELECT org, city FROM agents WHERE site = ?1 LIMIT 1",
    [W_EPOCH_LAST] = "SELECT ord, high_seq, last_ms FROM epochs WHERE agent_id = ?1"
                     " ORDER BY ord DESC LIMIT 1",
    [W_MARK_GET] = "SELECT result_id, pruned_id, pruned_ts_ms FROM rollup_mark WHERE id = 1",
    [W_MARK_SET] = "UPDATE rollup_mark SET result_id = ?1, at_ms = ?2, pruned_id = ?3,"
                   " pruned_ts_ms = ?4 WHERE id = 1",
    /* The primary key's order: incremental, each result once. interval_ms is the cadence
     * the agent checked at (its metric); absent, the default staleness applies. */
    [W_NEW_RESULTS] = "SELECT r.id, r.agent_id, a.site, r.kind, r.target, r.status, r.ts_ms,"
                      " json_extract(r.metrics, '$.interval_ms')"
                      " FROM results r JOIN agents a ON a.id = r.agent_id"
                      " WHERE r.id > ?1 ORDER BY r.id LIMIT ?2",
    [W_STATE_GET] = "SELECT status, ts_ms, stale_ms, until_ms FROM rollup_state"
                    " WHERE agent_id = ?1 AND kind = ?2 AND target = ?3",
    [W_STATE_PUT] = "INSERT INTO rollup_state(agent_id, kind, target, status, ts_ms, stale_ms,"
                    " until_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    " ON CONFLICT(agent_id, kind, target) DO UPDATE SET status = excluded.status,"
                    " ts_ms = excluded.ts_ms, stale_ms = excluded.stale_ms,"
                    " until_ms = excluded.until_ms",
    [W_STATE_UNTIL] = "UPDATE rollup_state SET until_ms = ?4"
                      " WHERE agent_id = ?1 AND kind = ?2 AND target = ?3",
    /* The partial index rollup_state_open (the same WHERE term): open holds whose bound
     * has passed. */
    [W_TAILS] = "SELECT st.agent_id, ra.site, st.kind, st.target, st.status, st.ts_ms,"
                " st.stale_ms, st.until_ms FROM rollup_state st"
                " JOIN rollup_agents ra ON ra.agent_id = st.agent_id"
                " WHERE st.until_ms < st.ts_ms + st.stale_ms AND st.ts_ms + st.stale_ms <= ?1"
                " LIMIT ?2",
    [W_AGENT_SEEN] = "INSERT INTO rollup_agents(agent_id, site, last_ts_ms) VALUES(?1, ?2, ?3)"
                     " ON CONFLICT(agent_id) DO UPDATE SET site = excluded.site,"
                     " last_ts_ms = max(last_ts_ms, excluded.last_ts_ms)",
    /* Cancelled sessions too: what is added to a session is taken back from the same one,
     * and a cancelled session is left out when scores are read. */
    [W_EXAMS_AT] = "SELECT id, start_ms, end_ms, rooms FROM exam_sessions"
                   " INDEXED BY exam_sessions_site_end"
                   " WHERE site = ?1 AND end_ms > ?2 AND start_ms < ?3",
    [W_CREDIT_ADD] = "UPDATE exam_credits SET ok_ms = ok_ms + ?4, degraded_ms = degraded_ms + ?5,"
                     " down_ms = down_ms + ?6, results = results + ?7"
                     " WHERE exam_id = ?1 AND cls = ?2 AND target = ?3",
    [W_CREDIT_NEW] = "INSERT INTO exam_credits(exam_id, cls, target, ok_ms, degraded_ms, down_ms,"
                     " results) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [W_TOTALS_NEW] = "INSERT OR IGNORE INTO exam_totals(exam_id) VALUES(?1)",
    [W_TOTALS_ADD + STORE_CLASS_CONNECTED] = TOTALS_ADD("connected"),
    [W_TOTALS_ADD + STORE_CLASS_NETWORK] = TOTALS_ADD("network"),
    [W_TOTALS_ADD + STORE_CLASS_STREAM] = TOTALS_ADD("stream"),
    [W_TOTALS_ADD + STORE_CLASS_RECORDING] = TOTALS_ADD("recording"),
    [W_TOTALS_ADD + STORE_CLASS_COVERAGE] = TOTALS_ADD("coverage"),
    [W_DAY_ADD] =
        "INSERT INTO rollup_days(agent_id, kind, target, day, ok_ms, degraded_ms,"
        " down_ms, results) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        " ON CONFLICT(agent_id, kind, target, day) DO UPDATE SET"
        " ok_ms = ok_ms + excluded.ok_ms, degraded_ms = degraded_ms + excluded.degraded_ms,"
        " down_ms = down_ms + excluded.down_ms, results = results + excluded.results",
    /* received_ms rises with id (batches commit in arrival order), so what is old enough is
     * a prefix of the ids: the first young row ends the batch. */
    [W_PRUNE_STOP] = "SELECT min(id) FROM results WHERE id > ?1 AND id <= ?2"
                     " AND received_ms >= ?3",
    [W_PRUNE_TS] = "SELECT max(min(ts_ms, received_ms)) FROM results WHERE id > ?1 AND id <= ?2",
    /* A target's latest result stays: the site's page joins latest to it. */
    [W_PRUNE] = "DELETE FROM results WHERE id > ?1 AND id <= ?2 AND id <> coalesce("
                "(SELECT l.result_id FROM latest l WHERE l.agent_id = results.agent_id"
                " AND l.kind = results.kind AND l.target = results.target), 0)",
};

enum rstmt {
	R_SITES,
	R_SITE,
	R_TARGETS,
	R_HIGH,
	R_COUNT_RESULTS,
	R_ROLLED,
	R_EXAMS_SITE,
	R_EXAMS_ORG,
	R_EXAMS_CITY,
	R_EXAMS_ALL,
	R_CREDITS,
	R_EXAM_ONE,
	R_EXAM,
	R_EV_TARGETS,
	R_EV_ROWS,
	R_COUNT
};
/* Sessions overlapping [?1, ?2) that are not cancelled, with their totals (a session no
 * result touched has no totals row: zeros), by start then id. ?3..?5 = org, city, site. */
#define TOTALS_SEL(c)                                                                              \
	", coalesce(t." c "_ok_ms, 0), coalesce(t." c "_degraded_ms, 0),"                          \
	" coalesce(t." c "_down_ms, 0), coalesce(t." c "_targets, 0)"
#define EXAMS(where)                                                                               \
	"SELECT e.id, e.org, e.city, e.site, e.code, e.occupation, e.level, e.rooms, e.start_ms,"  \
	" e.end_ms, e.candidates" TOTALS_SEL("connected") TOTALS_SEL("network")                    \
	    TOTALS_SEL("stream") TOTALS_SEL("recording") TOTALS_SEL(                               \
	        "coverage") " FROM exam_sessions e LEFT JOIN exam_totals t ON t.exam_id = e.id"    \
	                    " WHERE " where                                                        \
	                    " AND e.cancelled_ms IS NULL AND e.start_ms < ?2 AND e.end_ms > ?1"    \
	                    " AND (?3 IS NULL OR e.org = ?3) AND (?4 IS NULL OR e.city = ?4)"      \
	                    " AND (?5 IS NULL OR e.site = ?5) ORDER BY e.start_ms, e.id"
#define SITE_SUMMARY(where)                                                                        \
	"SELECT site, org, city, max(last_report_ms), sum(cam_ok), sum(cam_degraded),"             \
	" sum(cam_down) FROM agents " where " GROUP BY site ORDER BY site"
static const char *const rsql[R_COUNT] = {
    /* Every agent row of a site holds the same org and city (check_site_place refuses a
     * certificate naming others), so the bare columns are the site's. */
    [R_SITES] = SITE_SUMMARY(""),
    [R_SITE] = SITE_SUMMARY("WHERE site = ?1"),
    [R_TARGETS] = "SELECT a.agent, l.kind, l.target, r.status, r.session, r.codec, r.faults,"
                  " r.metrics, r.ts_ms, r.seq"
                  " FROM agents a JOIN latest l ON l.agent_id = a.id"
                  " JOIN results r ON r.id = l.result_id"
                  " WHERE a.site = ?1 ORDER BY l.kind, l.target, a.agent",
    [R_HIGH] = "SELECT e.high_seq FROM agents a JOIN epochs e ON e.agent_id = a.id"
               " WHERE a.site = ?1 AND a.agent = ?2 AND e.epoch = ?3",
    [R_COUNT_RESULTS] = "SELECT count(*) FROM results",
    [R_ROLLED] = "SELECT site, min(last_ts_ms) FROM rollup_agents GROUP BY site ORDER BY site",
    /* A plain equality, so the planner takes that name's (name, start_ms) index. */
    [R_EXAMS_SITE] = EXAMS("e.site = ?5"),
    [R_EXAMS_ORG] = EXAMS("e.org = ?3"),
    [R_EXAMS_CITY] = EXAMS("e.city = ?4"),
    /* The province: exam_sessions_start orders it. */
    [R_EXAMS_ALL] = EXAMS("1"),
    [R_EXAM_ONE] = EXAMS("e.id = ?6"),
    [R_CREDITS] = "SELECT cls, target, ok_ms, degraded_ms, down_ms, results FROM exam_credits"
                  " WHERE exam_id = ?1 ORDER BY cls, target",
    /* The session, the longest staleness its site's targets run with, and how far pruning
     * reached (check times below that may be gone). */
    [R_EXAM] = "SELECT e.site, e.rooms, e.start_ms, e.end_ms,"
               " (SELECT coalesce(max(st.stale_ms), 0) FROM rollup_state st"
               "  JOIN agents a ON a.id = st.agent_id WHERE a.site = e.site),"
               " (SELECT pruned_ts_ms FROM rollup_mark WHERE id = 1)"
               " FROM exam_sessions e WHERE e.id = ?1",
    [R_EV_TARGETS] = "SELECT DISTINCT st.target FROM agents a"
                     " JOIN rollup_state st ON st.agent_id = a.id AND st.kind = ?2"
                     " WHERE a.site = ?1 AND (?3 IS NULL OR st.target = ?3) ORDER BY st.target",
    [R_EV_ROWS] = "SELECT a.agent, r.kind, r.target, r.status, r.session, r.codec, r.faults,"
                  " r.metrics, r.ts_ms, r.seq FROM agents a"
                  " JOIN results r INDEXED BY results_agent_ts ON r.agent_id = a.id"
                  " AND r.kind = ?2 AND r.target = ?3 AND r.ts_ms >= ?4 AND r.ts_ms < ?5"
                  " WHERE a.site = ?1 ORDER BY r.seq, a.agent",
};

struct sqlite_be {
	char *path;
	sqlite3 *wdb; /* the writer thread's, once started */
	sqlite3_stmt *w[W_COUNT];
	int64_t raw_retention_ms, default_stale_ms; /* store_options' */
	struct day_sum *days; /* the rollup job's per-slice day sums (writer thread) */
};

struct sqlite_rd {
	struct sqlite_be *be;
	sqlite3 *db; /* read-only, one reader thread */
	sqlite3_stmt *r[R_COUNT];
};

/* --- open ------------------------------------------------------------------------------- */

static void sq_close(void *p)
{
	struct sqlite_be *s = p;
	if (!s)
		return;
	vw_db_finalize_all(s->w, W_COUNT);
	free(s->days);
	/* The readers are closed first (store.c): the last connection to close checkpoints and
	 * removes the WAL, and a read-only one cannot. */
	if (s->wdb && sqlite3_close(s->wdb) != SQLITE_OK)
		log_error("event=store_close_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
	free(s->path);
	free(s);
}

static int sq_open(const struct store_options *o, void **out, char *err, size_t errlen)
{
	if (!o->dir || !o->dir[0]) {
		snprintf(err, errlen, "sqlite store: no directory given");
		return -EINVAL;
	}
	struct sqlite_be *s = calloc(1, sizeof(*s));
	size_t n = strlen(o->dir) + sizeof("/" DB_FILE);
	if (!s || !(s->path = malloc(n))) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(s->path, n, "%s/" DB_FILE, o->dir);
	s->raw_retention_ms = o->raw_retention_ms;
	s->default_stale_ms =
	    o->default_stale_ms > 0 ? o->default_stale_ms : STORE_DEFAULT_STALE_MS;
	const char *path = s->path;
	int rc;

	/* synchronous=FULL in WAL: the WAL is fsync'd at every (group) commit, so what we
	 * acknowledge survives a power cut, not only a crash of this process. NORMAL would
	 * fsync only at checkpoints and could take back acknowledged batches whose rows the
	 * agent has already released: a silent loss, so it is for measurements only. Group
	 * commit pays the fsync once per group, which keeps FULL cheap; docs/DELIVERY.md has
	 * the measurement. NOMUTEX (vw_db_open's default): each connection is used by one
	 * thread at a time (the write connection is handed to the writer thread once, at
	 * store_start). */
	struct vw_db_opts wo = {
	    .busy_ms = 5000,
	    .synchronous = o->durability == STORE_DURABLE_NORMAL ? "NORMAL" : "FULL",
	    .wal = 1,
	};
	char why[256];
	if ((rc = vw_db_open(path, &wo, &s->wdb, err, errlen)) != 0)
		goto fail;
	/* journal_size_limit bounds the WAL file that a long read would otherwise let grow. */
	if (vw_db_exec(s->wdb, "PRAGMA journal_size_limit = 67108864", why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", path, why);
		rc = -EIO;
		goto fail;
	}
	if ((rc = vw_db_migrate(s->wdb, "store", migrations, NMIGRATIONS, why, sizeof(why))) != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	if ((rc = vw_db_prepare_all(s->wdb, wsql, s->w, W_COUNT, SQLITE_PREPARE_PERSISTENT, why,
	                            sizeof(why))) != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	sq_close(s);
	return rc;
}

/* --- writer thread ---------------------------------------------------------------------- */

static int sqlite_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static int step_done(struct sqlite_be *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return 0;
	log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
	return sqlite_errno(rc);
}

/* One row into results, through the writer's statement (ingest and the raw measurement). */
static int insert_result(struct sqlite_be *s, const struct store_batch *b,
                         const struct store_row *row, int64_t agent_id, int64_t epoch_ord)
{
	sqlite3_stmt *st = s->w[W_RESULT];
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_int64(st, 2, row->seq);
	sqlite3_bind_int64(st, 3, row->ts_ms);
	sqlite3_bind_int64(st, 4, row->mono_ms);
	sqlite3_bind_text(st, 5, vw_kind_name((enum vw_kind)row->kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, store_batch_str(b, row->target), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, vw_status_name((enum vw_status)row->status), -1, SQLITE_STATIC);
	if (row->session)
		sqlite3_bind_text(st, 8, store_batch_str(b, row->session), -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 8);
	if (row->codec)
		sqlite3_bind_text(st, 9, store_batch_str(b, row->codec), -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 9);
	sqlite3_bind_text(st, 10, store_batch_str(b, row->faults), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, store_batch_str(b, row->metrics), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 12, b->received_ms);
	sqlite3_bind_int64(st, 13, epoch_ord);
	return step_done(s, st);
}

static int record_gap(struct sqlite_be *s, struct store_batch *b, int64_t agent_id,
                      int64_t epoch_ord, int64_t first, int64_t last)
{
	log_warn("event=ingest_seq_gap site=%s agent=%s epoch=%s first_seq=%lld last_seq=%lld "
	         "count=%lld hint=\"the agent no longer held these; look for its buffer_overflow "
	         "result\"",
	         b->site, b->agent, b->epoch[0] ? b->epoch : "-", (long long)first, (long long)last,
	         (long long)(last - first + 1));
	sqlite3_stmt *st = s->w[W_GAP];
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_int64(st, 2, first);
	sqlite3_bind_int64(st, 3, last);
	sqlite3_bind_int64(st, 4, b->received_ms);
	sqlite3_bind_int64(st, 5, epoch_ord);
	int rc = step_done(s, st);
	if (!rc)
		b->gap_seqs += (size_t)(last - first + 1);
	return rc;
}

/* The batch's agent row (created on first sight, org/city/last report refreshed): its id and
 * high-water mark. */
static int upsert_agent(struct sqlite_be *s, const struct store_batch *b, int64_t *agent_id,
                        int64_t *high)
{
	sqlite3_stmt *st = s->w[W_AGENT];
	sqlite3_bind_text(st, 1, b->site, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b->agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, b->org, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, b->city, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, b->received_ms);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		sqlite3_reset(st);
		return sqlite_errno(rc);
	}
	*agent_id = sqlite3_column_int64(st, 0);
	*high = sqlite3_column_int64(st, 1);
	return step_done(s, st); /* RETURNING: the statement ends at its next step */
}

/* The batch's epoch of that agent (created on first sight): its ord and high-water mark. */
static int upsert_epoch(struct sqlite_be *s, const struct store_batch *b, int64_t agent_id,
                        int64_t *ord, int64_t *high)
{
	sqlite3_stmt *st = s->w[W_EPOCH];
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_text(st, 2, b->epoch, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, b->received_ms);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		sqlite3_reset(st);
		return sqlite_errno(rc);
	}
	*ord = sqlite3_column_int64(st, 0);
	*high = sqlite3_column_int64(st, 1);
	return step_done(s, st);
}

static const char *col_text(sqlite3_stmt *st, int i);

/* Steps a one-row query; *found says whether it had a row (its columns then readable until
 * the caller resets it). */
static int step_row(struct sqlite_be *s, sqlite3_stmt *st, int *found)
{
	int rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
	sqlite3_reset(st);
	return sqlite_errno(rc);
}

/* Before the batch's epoch is upserted: a first sight is logged, and refused (-EDQUOT)
 * when the agent already started b->new_epochs_max new epochs in the last 24 h. Every new
 * epoch restarts the agent's seqs at a mark of 0, so a certificate drawing fresh epochs
 * at will could fill the epochs table, and a cloned machine would pass unnoticed. */
static int check_new_epoch(struct sqlite_be *s, const struct store_batch *b, int64_t agent_id)
{
	sqlite3_stmt *st = s->w[W_EPOCH_FIND];
	int found, rc;
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_text(st, 2, b->epoch, -1, SQLITE_STATIC);
	if ((rc = step_row(s, st, &found)) != 0)
		return rc;
	sqlite3_reset(st);
	if (found)
		return 0;
	if (b->epoch[0] && b->new_epochs_max > 0) {
		st = s->w[W_EPOCH_RECENT];
		sqlite3_bind_int64(st, 1, agent_id);
		sqlite3_bind_int64(st, 2, b->received_ms - 24LL * 3600 * 1000);
		if ((rc = step_row(s, st, &found)) != 0)
			return rc;
		int64_t recent = found ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_reset(st);
		if (recent >= b->new_epochs_max) {
			log_warn("event=agent_epoch_refused site=%s agent=%s epoch=%s "
			         "reason=epoch_limit new_epochs_24h=%lld limit=%ld",
			         b->site, b->agent, b->epoch, (long long)recent, b->new_epochs_max);
			return -EDQUOT;
		}
	}
	st = s->w[W_EPOCH_LAST];
	sqlite3_bind_int64(st, 1, agent_id);
	if ((rc = step_row(s, st, &found)) != 0)
		return rc;
	int64_t prev_ord = found ? sqlite3_column_int64(st, 0) : -1;
	int64_t prev_high = found ? sqlite3_column_int64(st, 1) : 0;
	int64_t prev_last = found ? sqlite3_column_int64(st, 2) : 0;
	sqlite3_reset(st);
	/* The ord W_EPOCH will give it. */
	int64_t ord = !b->epoch[0] ? 0 : (prev_ord > 0 ? prev_ord + 1 : 1);
	char prev[24] = "-";
	if (prev_ord >= 0)
		snprintf(prev, sizeof(prev), "%lld", (long long)prev_ord);
	if (prev_ord >= 0 && prev_high > 0 && b->received_ms - prev_last < 3600LL * 1000)
		log_warn("event=agent_epoch_new site=%s agent=%s epoch=%s ord=%lld prev_ord=%s "
		         "prev_high_seq=%lld hint=\"the previous epoch stored results within the "
		         "last hour: a restored outbox, or a cloned machine using this "
		         "certificate?\"",
		         b->site, b->agent, b->epoch[0] ? b->epoch : "-", (long long)ord, prev,
		         (long long)prev_high);
	else
		log_info("event=agent_epoch_new site=%s agent=%s epoch=%s ord=%lld prev_ord=%s",
		         b->site, b->agent, b->epoch[0] ? b->epoch : "-", (long long)ord, prev);
	return 0;
}

/* A site is one org's, in one city: a certificate naming another (a second machine issued
 * with a mistyped --city) is refused (-EPERM) instead of moving the site, which would make
 * it flicker in and out of a city's view. The CLI refuses to issue such a certificate;
 * this holds for any made before that check, or by hand. */
static int check_site_place(struct sqlite_be *s, const struct store_batch *b)
{
	sqlite3_stmt *st = s->w[W_SITE_PLACE];
	int found, rc;
	sqlite3_bind_text(st, 1, b->site, -1, SQLITE_STATIC);
	if ((rc = step_row(s, st, &found)) != 0)
		return rc;
	/* "" is unknown (rows from before certificates carried O and L): filled, not refused. */
	const char *org = found ? col_text(st, 0) : "", *city = found ? col_text(st, 1) : "";
	if ((org[0] && strcmp(org, b->org) != 0) || (city[0] && strcmp(city, b->city) != 0)) {
		log_warn("event=site_jurisdiction_refused site=%s agent=%s cert_org=\"%s\" "
		         "cert_city=\"%s\" site_org=\"%s\" site_city=\"%s\" "
		         "reason=site_jurisdiction_mismatch",
		         b->site, b->agent, b->org, b->city, org, city);
		rc = -EPERM;
	}
	sqlite3_reset(st);
	return rc;
}

static int apply_batch(struct sqlite_be *s, struct store_batch *b)
{
	int64_t agent_id, agent_high, ord = 0, high = 0;
	b->gap_seqs = 0;
	int rc = check_site_place(s, b);
	if (!rc)
		rc = upsert_agent(s, b, &agent_id, &agent_high);
	if (!rc)
		rc = check_new_epoch(s, b, agent_id);
	if (!rc)
		rc = upsert_epoch(s, b, agent_id, &ord, &high);
	if (rc)
		return rc;
	sqlite3_stmt *st;

	int64_t last = high;
	size_t stored = 0;
	int64_t cams[VW_STATUS_COUNT] = {0}; /* change in this agent's cameras per status */
	for (size_t i = 0; i < b->nrows; i++) {
		const struct store_row *row = &b->rows[i];
		if (row->seq <= last)
			continue; /* already stored (a resend), or a repeat within the batch */
		/* Rows come sorted and the agent sends its oldest first, one batch at a time, so
		 * a hole below this row can never be filled later (see migration 2). */
		if (row->seq > last + 1 &&
		    (rc = record_gap(s, b, agent_id, ord, last + 1, row->seq - 1)) != 0)
			return rc;
		const char *kind = vw_kind_name((enum vw_kind)row->kind);
		const char *status = vw_status_name((enum vw_status)row->status);
		const char *target = store_batch_str(b, row->target);
		if ((rc = insert_result(s, b, row, agent_id, ord)) != 0)
			return rc;
		int64_t result_id = sqlite3_last_insert_rowid(s->wdb);

		if (row->kind == VW_KIND_STREAM) {
			/* The camera leaves its old status count and joins the new one. */
			st = s->w[W_OLD_STATUS];
			sqlite3_bind_int64(st, 1, agent_id);
			sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
			rc = sqlite3_step(st);
			if (rc == SQLITE_ROW) {
				enum vw_status old;
				if (vw_status_parse((const char *)sqlite3_column_text(st, 0),
				                    &old) == 0)
					cams[old]--;
			}
			sqlite3_reset(st);
			if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
				log_error("event=store_write_failed error=\"%s\"",
				          sqlite3_errmsg(s->wdb));
				return sqlite_errno(rc);
			}
			cams[row->status]++;
		}
		st = s->w[W_LATEST];
		sqlite3_bind_int64(st, 1, agent_id);
		sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, result_id);
		sqlite3_bind_text(st, 5, status, -1, SQLITE_STATIC);
		if ((rc = step_done(s, st)) != 0)
			return rc;
		last = row->seq;
		stored++;
	}
	if (last > high) {
		st = s->w[W_HIGH];
		sqlite3_bind_int64(st, 1, agent_id);
		sqlite3_bind_int64(st, 2, last);
		sqlite3_bind_int64(st, 3, cams[VW_STATUS_OK]);
		sqlite3_bind_int64(st, 4, cams[VW_STATUS_DEGRADED]);
		sqlite3_bind_int64(st, 5, cams[VW_STATUS_DOWN]);
		if ((rc = step_done(s, st)) != 0)
			return rc;
		st = s->w[W_EPOCH_HIGH];
		sqlite3_bind_int64(st, 1, agent_id);
		sqlite3_bind_text(st, 2, b->epoch, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, last);
		if ((rc = step_done(s, st)) != 0)
			return rc;
	}
	b->acked_seq = last;
	b->stored = stored;
	return 0;
}

/* One transaction for everything that was waiting: the fsync/WAL cost is paid once per
 * group, not per request. A savepoint per batch keeps one bad batch from sinking the
 * others. */
static int sq_commit(void *p, struct store_batch *list)
{
	struct sqlite_be *s = p;
	int rc = vw_db_exec(s->wdb, "BEGIN IMMEDIATE", NULL, 0);
	if (rc)
		log_error("event=store_begin_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
	for (struct store_batch *b = list; b; b = b->next) {
		b->status = rc;
		if (rc)
			continue;
		if (vw_db_exec(s->wdb, "SAVEPOINT batch", NULL, 0)) {
			b->status = -EIO;
			continue;
		}
		b->status = apply_batch(s, b);
		if (b->status)
			vw_db_exec(s->wdb, "ROLLBACK TO batch", NULL, 0);
		vw_db_exec(s->wdb, "RELEASE batch", NULL, 0);
	}
	if (!rc && vw_db_exec(s->wdb, "COMMIT", NULL, 0)) {
		log_error("event=store_commit_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
		rc = -EIO;
	}
	if (rc)
		for (struct store_batch *b = list; b; b = b->next)
			b->status = rc;
	return rc;
}

/* The writer's own W_AGENT and W_RESULT statements, without the mark, latest or counters. */
static int sq_raw(void *p, const struct store_batch *b)
{
	struct sqlite_be *s = p;
	int rc = vw_db_exec(s->wdb, "BEGIN IMMEDIATE", NULL, 0);
	if (rc)
		return rc;
	int64_t agent_id, high;
	if ((rc = upsert_agent(s, b, &agent_id, &high)) != 0)
		goto fail;
	for (size_t i = 0; i < b->nrows; i++)
		if ((rc = insert_result(s, b, &b->rows[i], agent_id, 0)) != 0)
			goto fail;
	if (vw_db_exec(s->wdb, "COMMIT", NULL, 0)) {
		rc = -EIO;
		goto fail;
	}
	return 0;
fail:
	vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
	return rc;
}

/* --- the rollup job (writer thread, between group commits) ------------------------------- */

/* One slice reads at most this many new results, then the writer commits what queued
 * meanwhile: at ~5 us a result (tests/bench), ingest waits at most ~25 ms for a slice. */
#define ROLLUP_SLICE 5000
/* Open holds moved on per slice, and raw results pruned per slice: small deletes keep the
 * WAL short and the writer's pause bounded too. */
#define ROLLUP_TAILS 5000
#define PRUNE_BATCH 2000

/* The classes one result of kind/target is credited to (at most 2). */
static size_t result_classes(const char *kind, const char *target, int cls[2])
{
	if (strcmp(kind, "network") == 0) {
		cls[0] = STORE_CLASS_NETWORK;
		if (strcmp(target, "collector") != 0)
			return 1;
		cls[1] = STORE_CLASS_CONNECTED;
		return 2;
	}
	static const struct {
		const char *kind;
		int cls;
	} map[] = {{"stream", STORE_CLASS_STREAM},
	           {"recording", STORE_CLASS_RECORDING},
	           {"coverage", STORE_CLASS_COVERAGE}};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(kind, map[i].kind) == 0) {
			cls[0] = map[i].cls;
			return 1;
		}
	return 0;
}

/* What one slice of the job works on: the target whose spans are being credited. */
struct roll_target {
	int64_t agent_id;
	const char *site, *kind, *target;
};

static int credit_exam(struct sqlite_be *s, int64_t exam_id, int cls, const char *target,
                       const int64_t ms[VW_STATUS_COUNT], int64_t results, int64_t now_ms)
{
	sqlite3_stmt *st = s->w[W_CREDIT_ADD];
	sqlite3_bind_int64(st, 1, exam_id);
	sqlite3_bind_int(st, 2, cls);
	sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
	for (int i = 0; i < VW_STATUS_COUNT; i++)
		sqlite3_bind_int64(st, 4 + i, ms[i]);
	sqlite3_bind_int64(st, 7, results);
	int rc = step_done(s, st);
	if (rc)
		return rc;
	int fresh = sqlite3_changes(s->wdb) == 0;
	if (fresh) {
		st = s->w[W_CREDIT_NEW];
		sqlite3_bind_int64(st, 1, exam_id);
		sqlite3_bind_int(st, 2, cls);
		sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
		for (int i = 0; i < VW_STATUS_COUNT; i++)
			sqlite3_bind_int64(st, 4 + i, ms[i]);
		sqlite3_bind_int64(st, 7, results);
		if ((rc = step_done(s, st)) != 0)
			return rc;
		st = s->w[W_TOTALS_NEW];
		sqlite3_bind_int64(st, 1, exam_id);
		if ((rc = step_done(s, st)) != 0)
			return rc;
	}
	st = s->w[W_TOTALS_ADD + cls];
	sqlite3_bind_int64(st, 1, exam_id);
	for (int i = 0; i < VW_STATUS_COUNT; i++)
		sqlite3_bind_int64(st, 2 + i, ms[i]);
	sqlite3_bind_int64(st, 5, fresh);
	sqlite3_bind_int64(st, 6, now_ms);
	return step_done(s, st);
}

/* A slice's credits per (agent, kind, target, local day), summed in memory and written once
 * each at the end of the slice: a target checked every minute has one day row to update,
 * not one upsert per result. Open addressing; a full table is written out early. */
#define DAY_SLOTS 8192 /* a power of two, above ROLLUP_SLICE + ROLLUP_TAILS */
struct day_sum {
	int used;
	int64_t agent_id, day, results, ms[VW_STATUS_COUNT];
	char kind[16], target[VW_NAME_MAX + 1];
};

static int credit_day(struct sqlite_be *s, const struct roll_target *t, int64_t day,
                      const int64_t ms[VW_STATUS_COUNT], int64_t results);

static int days_flush(struct sqlite_be *s)
{
	int rc = 0;
	for (size_t i = 0; i < DAY_SLOTS; i++) {
		struct day_sum *d = &s->days[i];
		if (!d->used)
			continue;
		struct roll_target t = {d->agent_id, "", d->kind, d->target};
		if (!rc)
			rc = credit_day(s, &t, d->day, d->ms, d->results);
		d->used = 0;
	}
	return rc;
}

static int days_clear(struct sqlite_be *s)
{
	if (!s->days && !(s->days = calloc(DAY_SLOTS, sizeof(*s->days))))
		return -ENOMEM;
	for (size_t i = 0; i < DAY_SLOTS; i++)
		s->days[i].used = 0;
	return 0;
}

static int days_add(struct sqlite_be *s, const struct roll_target *t, int64_t day,
                    const int64_t ms[VW_STATUS_COUNT], int64_t results)
{
	uint64_t h = 1469598103934665603ULL;
	for (const char *p = t->kind; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (const char *p = t->target; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ (uint64_t)t->agent_id) * 1099511628211ULL;
	h = (h ^ (uint64_t)day) * 1099511628211ULL;
	for (size_t n = 0; n < DAY_SLOTS / 2; n++) { /* at most half full, else write out */
		struct day_sum *d = &s->days[(h + n) & (DAY_SLOTS - 1)];
		if (!d->used) {
			*d = (struct day_sum){.used = 1, .agent_id = t->agent_id, .day = day};
			snprintf(d->kind, sizeof(d->kind), "%s", t->kind);
			snprintf(d->target, sizeof(d->target), "%s", t->target);
		} else if (d->agent_id != t->agent_id || d->day != day ||
		           strcmp(d->kind, t->kind) != 0 || strcmp(d->target, t->target) != 0)
			continue;
		for (int i = 0; i < VW_STATUS_COUNT; i++)
			d->ms[i] += ms[i];
		d->results += results;
		return 0;
	}
	int rc = days_flush(s);
	return rc ? rc : credit_day(s, t, day, ms, results);
}

static int credit_day(struct sqlite_be *s, const struct roll_target *t, int64_t day,
                      const int64_t ms[VW_STATUS_COUNT], int64_t results)
{
	sqlite3_stmt *st = s->w[W_DAY_ADD];
	sqlite3_bind_int64(st, 1, t->agent_id);
	sqlite3_bind_text(st, 2, t->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, t->target, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, day);
	for (int i = 0; i < VW_STATUS_COUNT; i++)
		sqlite3_bind_int64(st, 5 + i, ms[i]);
	sqlite3_bind_int64(st, 8, results);
	return step_done(s, st);
}

/* Everything one step of a target changes (credit_next's or credit_advance's spans, and
 * with count the result itself at ts_ms), applied with one sessions query and one upsert
 * per local day: the statements per result are most of the job's cost. */
static int credit_apply(struct sqlite_be *s, const struct roll_target *t,
                        const struct credit_span *sp, size_t nsp, int count, int64_t ts_ms,
                        int64_t now_ms)
{
	int64_t lo = count ? ts_ms : INT64_MAX, hi = count ? ts_ms + 1 : INT64_MIN;
	for (size_t i = 0; i < nsp; i++) {
		lo = sp[i].from_ms < lo ? sp[i].from_ms : lo;
		hi = sp[i].to_ms > hi ? sp[i].to_ms : hi;
	}
	if (hi <= lo)
		return 0;
	int rc = 0, cls[2];
	size_t ncls = result_classes(t->kind, t->target, cls);
	enum { MAX_AT = 64 };
	struct {
		int64_t id, results, ms[VW_STATUS_COUNT];
	} hit[MAX_AT];
	size_t nhit = 0;
	if (ncls) {
		/* Cancelled sessions too: what is added to a session is taken back from the same
		 * one, and a cancelled session is left out when scores are read. */
		sqlite3_stmt *st = s->w[W_EXAMS_AT];
		sqlite3_bind_text(st, 1, t->site, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, lo);
		sqlite3_bind_int64(st, 3, hi);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW && nhit < MAX_AT) {
			int64_t start = sqlite3_column_int64(st, 1),
			        end = sqlite3_column_int64(st, 2);
			if (cls[0] == STORE_CLASS_COVERAGE &&
			    !credit_room_listed(col_text(st, 3), t->target))
				continue;
			hit[nhit].id = sqlite3_column_int64(st, 0);
			hit[nhit].results = count && ts_ms >= start && ts_ms < end;
			memset(hit[nhit].ms, 0, sizeof(hit[nhit].ms));
			for (size_t i = 0; i < nsp; i++)
				hit[nhit].ms[sp[i].status] +=
				    sp[i].sign *
				    credit_overlap(sp[i].from_ms, sp[i].to_ms, start, end);
			nhit++;
		}
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
			sqlite3_reset(st);
			return sqlite_errno(rc);
		}
		if (rc == SQLITE_ROW)
			log_warn("event=rollup_sessions_capped site=%s from_ms=%lld max=%d",
			         t->site, (long long)lo, MAX_AT);
		sqlite3_reset(st);
		rc = 0;
	}
	for (size_t i = 0; i < nhit && !rc; i++) {
		int64_t *ms = hit[i].ms;
		if (!ms[0] && !ms[1] && !ms[2] && !hit[i].results)
			continue;
		for (size_t c = 0; c < ncls && !rc; c++)
			rc = credit_exam(s, hit[i].id, cls[c], t->target, ms, hit[i].results,
			                 now_ms);
	}
	/* Local days: a hold is at most 2 x a day-long cadence, so a handful. */
	enum { MAX_DAYS = 8 };
	struct {
		int64_t day, results, ms[VW_STATUS_COUNT];
	} days[MAX_DAYS];
	size_t ndays = 0;
	for (int64_t d = credit_local_day(lo); credit_day_start_ms(d) < hi && ndays < MAX_DAYS;
	     d++) {
		int64_t a = credit_day_start_ms(d), b = credit_day_start_ms(d + 1);
		days[ndays].day = d;
		days[ndays].results = count && ts_ms >= a && ts_ms < b;
		memset(days[ndays].ms, 0, sizeof(days[ndays].ms));
		int any = (int)days[ndays].results;
		for (size_t i = 0; i < nsp; i++) {
			int64_t v = credit_overlap(sp[i].from_ms, sp[i].to_ms, a, b);
			days[ndays].ms[sp[i].status] += sp[i].sign * v;
			any |= v != 0;
		}
		if (any)
			ndays++;
	}
	for (size_t i = 0; i < ndays && !rc; i++)
		rc = days_add(s, t, days[i].day, days[i].ms, days[i].results);
	return rc;
}

static int put_state(struct sqlite_be *s, const struct roll_target *t,
                     const struct credit_state *cs)
{
	sqlite3_stmt *st = s->w[W_STATE_PUT];
	sqlite3_bind_int64(st, 1, t->agent_id);
	sqlite3_bind_text(st, 2, t->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, t->target, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, cs->status);
	sqlite3_bind_int64(st, 5, cs->ts_ms);
	sqlite3_bind_int64(st, 6, cs->stale_ms);
	sqlite3_bind_int64(st, 7, cs->until_ms);
	return step_done(s, st);
}

/* One new result: settles its target's previous hold, credits the new one up to now, and
 * counts it in the sessions and the local day it was checked in. */
static int roll_result(struct sqlite_be *s, const struct roll_target *t, int status, int64_t ts_ms,
                       int64_t stale_ms, int64_t now_ms)
{
	struct credit_state cs = {0};
	sqlite3_stmt *st = s->w[W_STATE_GET];
	int found, rc;
	sqlite3_bind_int64(st, 1, t->agent_id);
	sqlite3_bind_text(st, 2, t->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, t->target, -1, SQLITE_STATIC);
	if ((rc = step_row(s, st, &found)) != 0)
		return rc;
	if (found)
		cs =
		    (struct credit_state){1, sqlite3_column_int(st, 0), sqlite3_column_int64(st, 1),
		                          sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3)};
	sqlite3_reset(st);
	struct credit_span sp[2];
	size_t n = credit_next(&cs, status, ts_ms, stale_ms, now_ms, sp);
	rc = credit_apply(s, t, sp, n, 1, ts_ms, now_ms);
	if (!rc)
		rc = put_state(s, t, &cs);
	return rc;
}

/* Each agent's latest check time rolled in this slice, written once per agent at the end
 * (a batch's rows are one agent's, so most lookups hit the last entry). */
struct seen_set {
	size_t n;
	struct {
		int64_t agent_id, ts_ms;
		char site[64];
	} v[256];
};

static int seen_flush(struct sqlite_be *s, struct seen_set *set)
{
	int rc = 0;
	for (size_t i = 0; i < set->n && !rc; i++) {
		sqlite3_stmt *st = s->w[W_AGENT_SEEN];
		sqlite3_bind_int64(st, 1, set->v[i].agent_id);
		sqlite3_bind_text(st, 2, set->v[i].site, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, set->v[i].ts_ms);
		rc = step_done(s, st);
	}
	set->n = 0;
	return rc;
}

static int seen_note(struct sqlite_be *s, struct seen_set *set, const struct roll_target *t,
                     int64_t ts_ms)
{
	for (size_t i = set->n; i-- > 0;)
		if (set->v[i].agent_id == t->agent_id) {
			if (ts_ms > set->v[i].ts_ms)
				set->v[i].ts_ms = ts_ms;
			return 0;
		}
	int rc = 0;
	if (set->n == sizeof(set->v) / sizeof(set->v[0]))
		rc = seen_flush(s, set);
	set->v[set->n].agent_id = t->agent_id;
	set->v[set->n].ts_ms = ts_ms;
	snprintf(set->v[set->n].site, sizeof(set->v[set->n].site), "%s", t->site);
	set->n++;
	return rc;
}

/* Holds whose bound passed with no next result (a silent target), credited to their end.
 * A hold still within its bound is settled by its target's next result instead: moving
 * every open hold on every few seconds would cost a write per target per tick, and a
 * healthy target's next result comes within one cadence anyway. */
static int roll_tails(struct sqlite_be *s, int64_t now_ms, size_t *moved)
{
	struct tail {
		int64_t agent_id;
		char site[64], kind[16], target[VW_NAME_MAX + 1];
		struct credit_state cs;
	};
	struct tail *tl = malloc(ROLLUP_TAILS * sizeof(*tl));
	if (!tl)
		return -ENOMEM;
	sqlite3_stmt *st = s->w[W_TAILS];
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int(st, 2, ROLLUP_TAILS);
	size_t n = 0;
	int rc;
	/* Read out before any update: the updates take these very rows out of the index. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct tail *t = &tl[n++];
		t->agent_id = sqlite3_column_int64(st, 0);
		snprintf(t->site, sizeof(t->site), "%s", col_text(st, 1));
		snprintf(t->kind, sizeof(t->kind), "%s", col_text(st, 2));
		snprintf(t->target, sizeof(t->target), "%s", col_text(st, 3));
		t->cs =
		    (struct credit_state){1, sqlite3_column_int(st, 4), sqlite3_column_int64(st, 5),
		                          sqlite3_column_int64(st, 6), sqlite3_column_int64(st, 7)};
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		free(tl);
		return sqlite_errno(rc);
	}
	rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		struct roll_target t = {tl[i].agent_id, tl[i].site, tl[i].kind, tl[i].target};
		struct credit_span sp[1];
		if (credit_advance(&tl[i].cs, now_ms, sp) == 0)
			continue;
		rc = credit_apply(s, &t, sp, 1, 0, 0, now_ms);
		if (!rc) {
			st = s->w[W_STATE_UNTIL];
			sqlite3_bind_int64(st, 1, t.agent_id);
			sqlite3_bind_text(st, 2, t.kind, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, t.target, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 4, tl[i].cs.until_ms);
			rc = step_done(s, st);
		}
	}
	*moved = n;
	free(tl);
	return rc;
}

static int int64_query(struct sqlite_be *s, sqlite3_stmt *st, int64_t *out, int *found)
{
	int rc = step_row(s, st, found);
	if (!rc && *found) {
		*found = sqlite3_column_type(st, 0) != SQLITE_NULL;
		*out = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	return rc;
}

/* One batch of raw results past raw_retention (by arrival) that the job already rolled.
 * Scores read the rollups only, so what goes here changes no score. */
static int prune_batch(struct sqlite_be *s, int64_t now_ms, int64_t rolled_id, int64_t *pruned_id,
                       int64_t *pruned_ts, size_t *deleted)
{
	*deleted = 0;
	if (s->raw_retention_ms <= 0)
		return 0;
	int64_t hi = *pruned_id + PRUNE_BATCH, stop = 0, ts = 0;
	if (hi > rolled_id)
		hi = rolled_id;
	if (hi <= *pruned_id)
		return 0;
	sqlite3_stmt *st = s->w[W_PRUNE_STOP];
	int found, rc;
	sqlite3_bind_int64(st, 1, *pruned_id);
	sqlite3_bind_int64(st, 2, hi);
	sqlite3_bind_int64(st, 3, now_ms - s->raw_retention_ms);
	if ((rc = int64_query(s, st, &stop, &found)) != 0)
		return rc;
	if (found)
		hi = stop - 1;
	if (hi <= *pruned_id)
		return 0;
	st = s->w[W_PRUNE_TS];
	sqlite3_bind_int64(st, 1, *pruned_id);
	sqlite3_bind_int64(st, 2, hi);
	if ((rc = int64_query(s, st, &ts, &found)) != 0)
		return rc;
	st = s->w[W_PRUNE];
	sqlite3_bind_int64(st, 1, *pruned_id);
	sqlite3_bind_int64(st, 2, hi);
	if ((rc = step_done(s, st)) != 0)
		return rc;
	*deleted = (size_t)sqlite3_changes(s->wdb);
	if (found && ts > *pruned_ts)
		*pruned_ts = ts;
	*pruned_id = hi;
	return 0;
}

/* One slice, in one transaction: open tails, then up to ROLLUP_SLICE new results in id
 * order, then one prune batch. Returns 1 when more is waiting, 0 when caught up. */
static int sq_rollup(void *p, int64_t now_ms, struct store_stats *out)
{
	struct sqlite_be *s = p;
	int rc = vw_db_exec(s->wdb, "BEGIN IMMEDIATE", NULL, 0);
	if (rc) {
		log_error("event=rollup_failed step=begin error=\"%s\"", sqlite3_errmsg(s->wdb));
		return rc;
	}
	int64_t mark = 0, pruned_id = 0, pruned_ts = 0;
	size_t tails = 0, rolled = 0, deleted = 0;
	struct seen_set *seen = calloc(1, sizeof(*seen));
	if (!seen || days_clear(s)) {
		free(seen);
		vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
		return -ENOMEM;
	}
	sqlite3_stmt *st = s->w[W_MARK_GET];
	int found;
	if ((rc = step_row(s, st, &found)) != 0)
		goto fail;
	if (found) {
		mark = sqlite3_column_int64(st, 0);
		pruned_id = sqlite3_column_int64(st, 1);
		pruned_ts = sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	/* Tails first: they are credited up to now before the new results settle them. */
	if ((rc = roll_tails(s, now_ms, &tails)) != 0)
		goto fail;

	st = s->w[W_NEW_RESULTS];
	sqlite3_bind_int64(st, 1, mark);
	sqlite3_bind_int(st, 2, ROLLUP_SLICE);
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct roll_target t = {sqlite3_column_int64(st, 1), col_text(st, 2),
		                        col_text(st, 3), col_text(st, 4)};
		enum vw_status status;
		if (vw_status_parse(col_text(st, 5), &status) != 0)
			status = VW_STATUS_DOWN; /* the writer stores only known names */
		double interval =
		    sqlite3_column_type(st, 7) == SQLITE_NULL ? 0 : sqlite3_column_double(st, 7);
		int64_t ts = sqlite3_column_int64(st, 6);
		if ((rc = roll_result(s, &t, (int)status, ts,
		                      credit_stale_ms(interval, s->default_stale_ms), now_ms)) != 0)
			break;
		if ((rc = seen_note(s, seen, &t, ts)) != 0)
			break;
		mark = sqlite3_column_int64(st, 0);
		rolled++;
	}
	sqlite3_reset(st);
	if (!rc && step != SQLITE_DONE && step != SQLITE_ROW) {
		log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		rc = sqlite_errno(step);
	}
	if (!rc)
		rc = seen_flush(s, seen);
	if (!rc)
		rc = days_flush(s);
	if (rc)
		goto fail;
	if ((rc = prune_batch(s, now_ms, mark, &pruned_id, &pruned_ts, &deleted)) != 0)
		goto fail;
	st = s->w[W_MARK_SET];
	sqlite3_bind_int64(st, 1, mark);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, pruned_id);
	sqlite3_bind_int64(st, 4, pruned_ts);
	if ((rc = step_done(s, st)) != 0)
		goto fail;
	if (vw_db_exec(s->wdb, "COMMIT", NULL, 0)) {
		rc = -EIO;
		goto fail;
	}
	free(seen);
	out->rows_rolled += rolled;
	out->rows_pruned += deleted;
	out->rollup_slices++;
	if (deleted)
		log_info("event=results_pruned rows=%zu up_to_id=%lld", deleted,
		         (long long)pruned_id);
	log_debug("event=rollup_slice results=%zu tails=%zu pruned=%zu mark=%lld", rolled, tails,
	          deleted, (long long)mark);
	return rolled == ROLLUP_SLICE || tails == ROLLUP_TAILS || deleted > 0;
fail:
	free(seen);
	log_error("event=rollup_failed mark=%lld error=%d", (long long)mark, rc);
	vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
	return rc;
}

/* --- reads (reader threads) ------------------------------------------------------------- */

static void sq_reader_close(void *p)
{
	struct sqlite_rd *rd = p;
	if (!rd)
		return;
	vw_db_finalize_all(rd->r, R_COUNT);
	sqlite3_close(rd->db);
	free(rd);
}

static int sq_reader_open(void *p, void **out, char *err, size_t errlen)
{
	struct sqlite_be *s = p;
	struct sqlite_rd *rd = calloc(1, sizeof(*rd));
	if (!rd) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rd->be = s;
	/* Readers wait only on WAL recovery or a truncating checkpoint. They run off the
	 * loop now, but a reply that waits long is a request that times out. */
	struct vw_db_opts ro = {.flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
	                        .busy_ms = 1000};
	char why[256];
	int rc = vw_db_open(s->path, &ro, &rd->db, err, errlen);
	if (!rc && (rc = vw_db_prepare_all(rd->db, rsql, rd->r, R_COUNT, SQLITE_PREPARE_PERSISTENT,
	                                   why, sizeof(why))) != 0)
		snprintf(err, errlen, "%s: %s", s->path, why);
	if (rc) {
		sq_reader_close(rd);
		return rc;
	}
	*out = rd;
	return 0;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? (const char *)t : "";
}

static void read_site_row(sqlite3_stmt *st, struct store_site *out)
{
	out->site = col_text(st, 0);
	out->org = col_text(st, 1);
	out->city = col_text(st, 2);
	out->last_report_ms = sqlite3_column_int64(st, 3);
	out->ok = sqlite3_column_int64(st, 4);
	out->degraded = sqlite3_column_int64(st, 5);
	out->down = sqlite3_column_int64(st, 6);
}

static int read_failed(struct sqlite_rd *rd, sqlite3_stmt *st)
{
	log_error("event=store_read_failed error=\"%s\"", sqlite3_errmsg(rd->db));
	sqlite3_reset(st);
	return -EIO;
}

static int sq_list_sites(void *p, struct store_fill *f)
{
	struct sqlite_rd *rd = p;
	sqlite3_stmt *st = rd->r[R_SITES];
	int rc, step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_site site;
		read_site_row(st, &site);
		if ((rc = store_fill_site(f, &site)) != 0) {
			sqlite3_reset(st);
			return rc;
		}
	}
	if (step != SQLITE_DONE)
		return read_failed(rd, st);
	sqlite3_reset(st);
	return 0;
}

static int sq_get_site(void *p, const char *site, struct store_fill *f)
{
	struct sqlite_rd *rd = p;
	/* One read transaction: the summary and the targets come from the same snapshot. */
	if (vw_db_exec(rd->db, "BEGIN", NULL, 0))
		return -EIO;
	int rc = 0;
	sqlite3_stmt *st = rd->r[R_SITE];
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	int step = sqlite3_step(st);
	if (step == SQLITE_DONE) {
		sqlite3_reset(st);
		rc = -ENOENT;
		goto out;
	}
	if (step != SQLITE_ROW) {
		rc = read_failed(rd, st);
		goto out;
	}
	struct store_site summary;
	read_site_row(st, &summary);
	rc = store_fill_site(f, &summary);
	sqlite3_reset(st);
	if (rc)
		goto out;

	st = rd->r[R_TARGETS];
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_target t = {
		    .agent = col_text(st, 0),
		    .kind = col_text(st, 1),
		    .target = col_text(st, 2),
		    .status = col_text(st, 3),
		    .session = col_text(st, 4),
		    .codec = col_text(st, 5),
		    .faults = col_text(st, 6),
		    .metrics = col_text(st, 7),
		    .ts_ms = sqlite3_column_int64(st, 8),
		    .seq = sqlite3_column_int64(st, 9),
		};
		if ((rc = store_fill_target(f, &t)) != 0)
			break;
	}
	if (!rc && step != SQLITE_DONE)
		rc = read_failed(rd, st);
	sqlite3_reset(st);
out:
	vw_db_exec(rd->db, "COMMIT", NULL, 0);
	return rc;
}

static int sq_high_seq(void *p, const char *site, const char *agent, const char *epoch,
                       int64_t *out)
{
	struct sqlite_rd *rd = p;
	sqlite3_stmt *st = rd->r[R_HIGH];
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, agent, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, epoch, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return read_failed(rd, st);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return 0;
}

static int sq_count_results(void *p, int64_t *out)
{
	struct sqlite_rd *rd = p;
	sqlite3_stmt *st = rd->r[R_COUNT_RESULTS];
	if (sqlite3_step(st) != SQLITE_ROW)
		return read_failed(rd, st);
	*out = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

/* --- the score's reads (reader threads) -------------------------------------------------- */

/* Each (site, the earliest of its agents' last rolled check times), by site: a session's
 * rolled_to. One row per site, so a province query reads 3000 rows, not one per session. */
struct rolled {
	char site[64];
	int64_t to_ms;
};

static int rolled_cmp(const void *a, const void *b)
{
	return strcmp(((const struct rolled *)a)->site, ((const struct rolled *)b)->site);
}

static int load_rolled(struct sqlite_rd *rd, struct rolled **out, size_t *n)
{
	sqlite3_stmt *st = rd->r[R_ROLLED];
	size_t cap = 0;
	struct rolled *v = NULL;
	int step;
	*n = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			struct rolled *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				sqlite3_reset(st);
				return -ENOMEM;
			}
			v = nv;
		}
		snprintf(v[*n].site, sizeof(v[*n].site), "%s", col_text(st, 0));
		v[*n].to_ms = sqlite3_column_int64(st, 1);
		(*n)++;
	}
	if (step != SQLITE_DONE) {
		free(v);
		return read_failed(rd, st);
	}
	sqlite3_reset(st);
	*out = v;
	return 0;
}

static int64_t rolled_to(const struct rolled *v, size_t n, const char *site)
{
	struct rolled key;
	snprintf(key.site, sizeof(key.site), "%s", site);
	const struct rolled *r = n ? bsearch(&key, v, n, sizeof(*v), rolled_cmp) : NULL;
	return r ? r->to_ms : 0;
}

static int read_credits(struct sqlite_rd *rd, int64_t exam_id, struct store_fill *f)
{
	sqlite3_stmt *st = rd->r[R_CREDITS];
	sqlite3_bind_int64(st, 1, exam_id);
	int step, rc = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_credit c = {
		    .exam_id = exam_id,
		    .cls = sqlite3_column_int(st, 0),
		    .target = col_text(st, 1),
		    .ok_ms = sqlite3_column_int64(st, 2),
		    .degraded_ms = sqlite3_column_int64(st, 3),
		    .down_ms = sqlite3_column_int64(st, 4),
		    .results = sqlite3_column_int64(st, 5),
		};
		if ((rc = store_fill_credit(f, &c)) != 0)
			break;
	}
	if (!rc && step != SQLITE_DONE)
		return read_failed(rd, st);
	sqlite3_reset(st);
	return rc;
}

static int sq_score_inputs(void *p, const struct store_score_query *q, struct store_fill *f)
{
	struct sqlite_rd *rd = p;
	/* The most selective index the query allows; the other names filter. */
	int which = q->site   ? R_EXAMS_SITE
	            : q->org  ? R_EXAMS_ORG
	            : q->city ? R_EXAMS_CITY
	                      : R_EXAMS_ALL;
	/* One snapshot: totals, credits and rolled_to agree. */
	if (vw_db_exec(rd->db, "BEGIN", NULL, 0))
		return -EIO;
	struct rolled *rv = NULL;
	size_t nrv = 0;
	int rc = load_rolled(rd, &rv, &nrv);
	if (rc)
		goto out;
	sqlite3_stmt *st = rd->r[which];
	sqlite3_bind_int64(st, 1, q->from_ms);
	sqlite3_bind_int64(st, 2, q->to_ms);
	const char *names[3] = {q->org, q->city, q->site};
	for (int i = 0; i < 3; i++)
		if (names[i])
			sqlite3_bind_text(st, 3 + i, names[i], -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(st, 3 + i);
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_exam e = {
		    .id = sqlite3_column_int64(st, 0),
		    .org = col_text(st, 1),
		    .city = col_text(st, 2),
		    .site = col_text(st, 3),
		    .code = col_text(st, 4),
		    .occupation = col_text(st, 5),
		    .level = col_text(st, 6),
		    .rooms = col_text(st, 7),
		    .start_ms = sqlite3_column_int64(st, 8),
		    .end_ms = sqlite3_column_int64(st, 9),
		    .candidates = sqlite3_column_int64(st, 10),
		};
		for (int c = 0; c < STORE_CLASS_COUNT; c++) {
			e.ok_ms[c] = sqlite3_column_int64(st, 11 + 4 * c);
			e.degraded_ms[c] = sqlite3_column_int64(st, 12 + 4 * c);
			e.down_ms[c] = sqlite3_column_int64(st, 13 + 4 * c);
			e.ntargets[c] = sqlite3_column_int64(st, 14 + 4 * c);
		}
		e.rolled_to_ms = rolled_to(rv, nrv, e.site);
		if ((rc = store_fill_exam(f, &e)) != 0)
			break;
		if (q->with_credits && (rc = read_credits(rd, e.id, f)) != 0)
			break;
	}
	if (!rc && step != SQLITE_DONE)
		rc = read_failed(rd, st);
	sqlite3_reset(st);
out:
	free(rv);
	vw_db_exec(rd->db, "COMMIT", NULL, 0);
	return rc;
}

static const char *const class_kind[STORE_CLASS_COUNT] = {
    [STORE_CLASS_CONNECTED] = "network", [STORE_CLASS_NETWORK] = "network",
    [STORE_CLASS_STREAM] = "stream",     [STORE_CLASS_RECORDING] = "recording",
    [STORE_CLASS_COVERAGE] = "coverage",
};

static int sq_score_evidence(void *p, int64_t exam_id, int cls, const char *target,
                             struct store_fill *f, int64_t *pruned)
{
	struct sqlite_rd *rd = p;
	if (cls < 0 || cls >= STORE_CLASS_COUNT)
		return -EINVAL;
	if (cls == STORE_CLASS_CONNECTED) {
		if (target && strcmp(target, "collector") != 0)
			return 0; /* the class has no other target */
		target = "collector";
	}
	if (vw_db_exec(rd->db, "BEGIN", NULL, 0))
		return -EIO;
	int rc = 0, step;
	char site[64], rooms[1024];
	int64_t start, end, stale, pruned_ts;
	sqlite3_stmt *st = rd->r[R_EXAM];
	sqlite3_bind_int64(st, 1, exam_id);
	if ((step = sqlite3_step(st)) != SQLITE_ROW) {
		rc = step == SQLITE_DONE ? -ENOENT : read_failed(rd, st);
		sqlite3_reset(st);
		goto out;
	}
	snprintf(site, sizeof(site), "%s", col_text(st, 0));
	snprintf(rooms, sizeof(rooms), "%s", col_text(st, 1));
	start = sqlite3_column_int64(st, 2);
	end = sqlite3_column_int64(st, 3);
	/* A result checked up to the longest staleness before the start still holds into it. */
	stale = sqlite3_column_int64(st, 4);
	pruned_ts = sqlite3_column_int64(st, 5);
	sqlite3_reset(st);
	if (stale < rd->be->default_stale_ms)
		stale = rd->be->default_stale_ms;
	*pruned = start - stale < pruned_ts;

	/* Target by target (the index's order within each agent), the site's agents merged by
	 * seq: results_agent_ts answers each with one range of the agent's rows. */
	sqlite3_stmt *tt = rd->r[R_EV_TARGETS];
	sqlite3_bind_text(tt, 1, site, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(tt, 2, class_kind[cls], -1, SQLITE_STATIC);
	if (target)
		sqlite3_bind_text(tt, 3, target, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(tt, 3);
	while (!rc && (step = sqlite3_step(tt)) == SQLITE_ROW) {
		const char *t = col_text(tt, 0);
		if (cls == STORE_CLASS_COVERAGE && !credit_room_listed(rooms, t))
			continue;
		st = rd->r[R_EV_ROWS];
		sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, class_kind[cls], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, t, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 4, start - stale);
		sqlite3_bind_int64(st, 5, end);
		while ((step = sqlite3_step(st)) == SQLITE_ROW) {
			struct store_target r = {
			    .agent = col_text(st, 0),
			    .kind = col_text(st, 1),
			    .target = col_text(st, 2),
			    .status = col_text(st, 3),
			    .session = col_text(st, 4),
			    .codec = col_text(st, 5),
			    .faults = col_text(st, 6),
			    .metrics = col_text(st, 7),
			    .ts_ms = sqlite3_column_int64(st, 8),
			    .seq = sqlite3_column_int64(st, 9),
			};
			if ((rc = store_fill_target(f, &r)) != 0)
				break;
		}
		if (!rc && step != SQLITE_DONE)
			rc = read_failed(rd, st);
		sqlite3_reset(st);
	}
	if (!rc && step != SQLITE_DONE)
		rc = read_failed(rd, tt);
	sqlite3_reset(tt);
out:
	vw_db_exec(rd->db, "COMMIT", NULL, 0);
	return rc;
}

/* One session by id, as sq_score_inputs reads each (store_score_exam). */
static int sq_score_exam(void *p, int64_t exam_id, struct store_fill *f)
{
	struct sqlite_rd *rd = p;
	if (vw_db_exec(rd->db, "BEGIN", NULL, 0))
		return -EIO;
	struct rolled *rv = NULL;
	size_t nrv = 0;
	int rc = load_rolled(rd, &rv, &nrv), step;
	if (rc)
		goto out;
	sqlite3_stmt *st = rd->r[R_EXAM_ONE];
	sqlite3_bind_int64(st, 1, INT64_MIN);
	sqlite3_bind_int64(st, 2, INT64_MAX);
	for (int i = 3; i <= 5; i++)
		sqlite3_bind_null(st, i);
	sqlite3_bind_int64(st, 6, exam_id);
	if ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_exam e = {
		    .id = sqlite3_column_int64(st, 0),
		    .org = col_text(st, 1),
		    .city = col_text(st, 2),
		    .site = col_text(st, 3),
		    .code = col_text(st, 4),
		    .occupation = col_text(st, 5),
		    .level = col_text(st, 6),
		    .rooms = col_text(st, 7),
		    .start_ms = sqlite3_column_int64(st, 8),
		    .end_ms = sqlite3_column_int64(st, 9),
		    .candidates = sqlite3_column_int64(st, 10),
		};
		for (int c = 0; c < STORE_CLASS_COUNT; c++) {
			e.ok_ms[c] = sqlite3_column_int64(st, 11 + 4 * c);
			e.degraded_ms[c] = sqlite3_column_int64(st, 12 + 4 * c);
			e.down_ms[c] = sqlite3_column_int64(st, 13 + 4 * c);
			e.ntargets[c] = sqlite3_column_int64(st, 14 + 4 * c);
		}
		e.rolled_to_ms = rolled_to(rv, nrv, e.site);
		rc = store_fill_exam(f, &e);
		if (!rc)
			rc = read_credits(rd, e.id, f);
	} else if (step != SQLITE_DONE) {
		rc = read_failed(rd, st);
	}
	sqlite3_reset(st);
out:
	free(rv);
	vw_db_exec(rd->db, "COMMIT", NULL, 0);
	return rc;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .commit = sq_commit,
    .raw = sq_raw,
    .rollup = sq_rollup,
    .reader_open = sq_reader_open,
    .reader_close = sq_reader_close,
    .list_sites = sq_list_sites,
    .get_site = sq_get_site,
    .high_seq = sq_high_seq,
    .count_results = sq_count_results,
    .score_inputs = sq_score_inputs,
    .score_evidence = sq_score_evidence,
    .score_exam = sq_score_exam,
};
