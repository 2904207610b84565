/* sqlite: the store's SQLite backend — one database file (<dir>/venuewatch.db) in WAL mode,
 * its schema and in-place migrations, the writer's prepared statements and group-commit
 * transaction, and read-only connections for the reader threads. Implements store_ops
 * (store_backend.h); nothing SQLite leaves this file.
 * Threads: open/close on the store_open/store_close caller; the write connection on the
 * writer thread only; each read connection on one reader thread. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credit.h"
#include "db.h"
#include "log.h"
#include "rollup.h"
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
/* issue 16 E: agent_health's columns, one triple per enum store_health in its order. */
#define HEALTH_CLASSES(X)                                                                          \
	X(connected) X(network) X(stream) X(recording) X(coverage) X(assessment) X(buffer)
#define HC_DEF(c)                                                                                  \
	", " #c "_ok INTEGER NOT NULL DEFAULT 0, " #c "_degraded INTEGER NOT NULL DEFAULT 0, " #c  \
	"_down INTEGER NOT NULL DEFAULT 0"
#define HC_NAMES(c) ", " #c "_ok, " #c "_degraded, " #c "_down"
#define HC_Q(c) ", ?, ?, ?"
#define HC_ADD(c)                                                                                  \
	", " #c "_ok = " #c "_ok + excluded." #c "_ok, " #c "_degraded = " #c                      \
	"_degraded + excluded." #c "_degraded, " #c "_down = " #c "_down + excluded." #c "_down"
#define HC_COL(c) ", h." #c "_ok, h." #c "_degraded, h." #c "_down"
/* A class's three counts from latest, for the backfill: pred selects its rows. */
#define HC_FILL(pred)                                                                              \
	", sum(" pred " AND status = 'ok'), sum(" pred " AND status = 'degraded'), sum(" pred      \
	" AND status = 'down')"
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
    /* 6: the agent's cadence (its interval_ms metric) in a column of its own, written at
     * ingest from the decoded result, so the rollup job reads it without json_extract over
     * the metrics text (most of the job's per-result CPU, docs/BENCHMARKS.md). 0 = no such
     * metric. The default is a constant, so the ALTER rewrites no row; rows stored before it
     * read 0, and rollup_mark.legacy_id (the last results.id when this ran) tells the job
     * which rows to read the metric of from the JSON instead, so results still unrolled at
     * the upgrade are credited as before it. rollup_state_open is dropped: the job walks its
     * holds in memory and never read it, and it cost every rollup_state write. */
    "ALTER TABLE results ADD COLUMN interval_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE rollup_mark ADD COLUMN legacy_id INTEGER NOT NULL DEFAULT 0;"
    "UPDATE rollup_mark SET legacy_id = (SELECT coalesce(max(id), 0) FROM results)"
    " WHERE id = 1;"
    "DROP INDEX rollup_state_open;",
    /* 7 — issue 16 (A): problems, persisted events, silence. A problem is one spell of a
     * target's latest status away from ok (at most one open per (site, agent, kind,
     * target): the partial unique index, which also finds the open ones); the writer opens,
     * updates and closes them in the batch's own transaction, from the change of latest.
     * events keeps what the SSE stream sent, by id (AUTOINCREMENT: an id is never reused,
     * even after every row was pruned), for Last-Event-ID; feed_mark.events_pruned_id is
     * how far pruning reached. feed_sites is each site's last batch and cadence, and its
     * open site_silent problem. Targets not ok at the upgrade get their problem here,
     * starting at their latest result (when the spell began is not known). */
    "CREATE TABLE problems("
    " id INTEGER PRIMARY KEY,"
    " site TEXT NOT NULL, org TEXT NOT NULL, city TEXT NOT NULL,"
    " agent TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL,"
    " status TEXT NOT NULL," /* the current non-ok status */
    " worst TEXT NOT NULL,"
    " severity TEXT NOT NULL,"
    " faults TEXT NOT NULL," /* JSON array, the union while open */
    " start_ms INTEGER NOT NULL,"
    " end_ms INTEGER," /* NULL while open */
    " in_session INTEGER NOT NULL DEFAULT 0,"
    " ack_by TEXT, ack_ms INTEGER, ack_message TEXT);"
    "CREATE UNIQUE INDEX problems_open ON problems(site, agent, kind, target)"
    " WHERE end_ms IS NULL;"
    "CREATE INDEX problems_site_end ON problems(site, end_ms);"
    "CREATE INDEX problems_start ON problems(start_ms, id);"
    /* A city's or an org's problems newest first, without walking the province's. */
    "CREATE INDEX problems_city_start ON problems(city, start_ms, id);"
    "CREATE INDEX problems_org_start ON problems(org, start_ms, id);"
    "CREATE TABLE events("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ts_ms INTEGER NOT NULL, type TEXT NOT NULL,"
    " site TEXT NOT NULL, org TEXT NOT NULL, city TEXT NOT NULL,"
    " data TEXT NOT NULL);"
    /* A city's or an org's stream resumes from these: its backlog reads its own rows only. */
    "CREATE INDEX events_city ON events(city, id);"
    "CREATE INDEX events_org ON events(org, id);"
    "CREATE TABLE feed_mark("
    " id INTEGER PRIMARY KEY CHECK(id = 1),"
    " events_pruned_id INTEGER NOT NULL);"
    "INSERT INTO feed_mark VALUES(1, 0);"
    "CREATE TABLE feed_sites("
    " site TEXT PRIMARY KEY, org TEXT NOT NULL, city TEXT NOT NULL,"
    " last_batch_ms INTEGER NOT NULL,"
    " cadence_ms INTEGER NOT NULL DEFAULT 0,"
    " silent_id INTEGER) WITHOUT ROWID;"
    "INSERT INTO feed_sites(site, org, city, last_batch_ms)"
    " SELECT site, org, city, max(last_report_ms) FROM agents GROUP BY site;"
    "INSERT INTO problems(site, org, city, agent, kind, target, status, worst, severity,"
    " faults, start_ms)"
    " SELECT a.site, a.org, a.city, a.agent, l.kind, l.target, l.status, l.status,"
    " CASE l.status WHEN 'down' THEN 'major' ELSE 'minor' END, r.faults, r.ts_ms"
    " FROM latest l JOIN agents a ON a.id = l.agent_id JOIN results r ON r.id = l.result_id"
    " WHERE l.status <> 'ok';",
    /* 8: issue 16 (C): picture evidence. thumbnails holds the JPEG a stream result carried
     * (<= 30 KB, checked at ingest), written in the batch's commit; served newest-first per
     * (site, camera) from thumbnails_target_ts, which also gives a site page each camera's
     * newest one with a single seek; pruned by arrival (received_ms rises with id, like
     * results'). thumbnail_access records every picture served: who, which site and camera,
     * the time asked for and the picture's own. */
    "CREATE TABLE thumbnails("
    " id INTEGER PRIMARY KEY,"
    " site TEXT NOT NULL,"
    " agent TEXT NOT NULL,"
    " target TEXT NOT NULL,"
    " ts_ms INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " received_ms INTEGER NOT NULL,"
    " jpeg BLOB NOT NULL);"
    "CREATE INDEX thumbnails_target_ts ON thumbnails(site, target, ts_ms);"
    "CREATE TABLE thumbnail_access("
    " id INTEGER PRIMARY KEY,"
    " at_ms INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " site TEXT NOT NULL,"
    " camera TEXT NOT NULL,"
    " asked_ms INTEGER," /* NULL: the newest was asked for */
    " thumb_ts_ms INTEGER NOT NULL,"
    " peer TEXT NOT NULL);",
    /* 9 — issue 16 (D): notifications. One row per (sink, problem, dedup_key), the unique key
     * that makes a message go out once however often its event is seen: dedup_key is the
     * event ('opened', 'closed', 'acked') — one of each a problem — or 'updated:<event id>',
     * since a problem changes any number of times and each change is news. The problem's
     * site, org and city for the API's scope, its JSON to make the message from after a
     * restart. */
    "CREATE TABLE notifications("
    " id INTEGER PRIMARY KEY,"
    " sink TEXT NOT NULL,"
    " problem_id INTEGER NOT NULL,"
    " event_id INTEGER NOT NULL,"
    " event TEXT NOT NULL,"
    " site TEXT NOT NULL,"
    " org TEXT NOT NULL,"
    " city TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK(state IN ('pending', 'sent', 'failed', 'suppressed')),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT NOT NULL DEFAULT '',"
    " next_attempt_ms INTEGER NOT NULL DEFAULT 0,"
    " sent_ms INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " data TEXT NOT NULL,"
    " dedup_key TEXT NOT NULL,"
    " UNIQUE(sink, problem_id, dedup_key));"
    "CREATE INDEX notifications_state ON notifications(state, id);"
    "CREATE INDEX notifications_city ON notifications(city, id);"
    "CREATE INDEX notifications_event ON notifications(event_id);"
    /* what pruning walks: rows done with, oldest first */
    "CREATE INDEX notifications_done ON notifications(created_ms) WHERE state <> 'pending';",
    /* 10 — issue 16 E: what the sites overview shows per site — its status and the 3.6 criteria
     * — from counts the writer keeps as latest changes (as agents.cam_* for cameras), one
     * row per agent: the overview of a province reads 3,000 rows, never latest's ~10^5 or
     * results. Filled here from latest for the targets already known. (A site's history
     * reads results_agent_ts; an index by target would double the writer's commit CPU,
     * docs/BENCHMARKS.md "Feed".) */
    "CREATE TABLE agent_health(agent_id INTEGER PRIMARY KEY" HEALTH_CLASSES(
        HC_DEF) ");"
                "INSERT INTO agent_health(agent_id" HEALTH_CLASSES(
                    HC_NAMES) ")"
                              " SELECT agent_id" HC_FILL(
                                  "(kind = 'network' AND target = 'collector')")
                                  HC_FILL("kind = 'network'") HC_FILL("kind = 'stream'")
                                      HC_FILL("kind = 'recording'") HC_FILL("kind = 'coverage'")
                                          HC_FILL("kind = 'assessment'") HC_FILL(
                                              "kind = 'buffer'") " FROM latest GROUP BY agent_id;",
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
	W_AGENT_SITE,
	W_STATE_LOAD,
	W_STATE_PUT,
	W_AGENTS_LOAD,
	W_AGENT_SEEN,
	W_EXAMS_SITE,
	W_DATA_VERSION,
	W_PRUNE_MARK,
	W_CREDIT_ADD,
	W_CREDIT_NEW,
	W_TOTALS_NEW,
	W_TOTALS_ADD, /* + enum store_class */
	W_DAY_ADD = W_TOTALS_ADD + STORE_CLASS_COUNT,
	W_PRUNE_STOP,
	W_PRUNE_TS,
	W_PRUNE,
	W_HEALTH, /* issue 16 E */
	/* issue 16 (A): problems, events, silence */
	W_PROB_OPEN,
	W_PROB_NEW,
	W_PROB_SET,
	W_PROB_CLOSE,
	W_PROB_GET,
	W_PROB_ACK,
	W_IN_SESSION,
	W_EVENT,
	W_FEED_SITE,
	W_FEED_SILENT_SET,
	W_FEED_DUE,
	W_PROB_ESCALATE,
	W_EVENTS_PRUNE_TO,
	W_EVENTS_PRUNE,
	W_EVENTS_MARK,
	W_EVENTS_MARK_GET,
	W_THUMB,            /* issue 16 C */
	W_THUMB_OLDEST,     /* issue 16 C */
	W_THUMB_PRUNE,      /* issue 16 C */
	W_ACCESS,           /* issue 16 C */
	W_ACCESS_OLDEST,    /* issue 16 C */
	W_ACCESS_PRUNE,     /* issue 16 C */
	W_FEED_COUNT_OPEN,  /* issue 14 */
	W_FEED_COUNT_SITES, /* issue 14 */
	W_COUNT
};
#define TOTALS_ADD(c)                                                                              \
	"UPDATE exam_totals SET " c "_ok_ms = " c "_ok_ms + ?2, " c "_degraded_ms = " c            \
	"_degraded_ms + ?3, " c "_down_ms = " c "_down_ms + ?4, " c "_targets = " c                \
	"_targets + ?5,"                                                                           \
	" updated_ms = ?6 WHERE exam_id = ?1"
static const char *const wsql[W_COUNT] = {
    /* ?1 the agent, then the changes of its counts in enum store_health order. */
    [W_HEALTH] = "INSERT INTO agent_health(agent_id" HEALTH_CLASSES(
        HC_NAMES) ") VALUES(?" HEALTH_CLASSES(HC_Q) ") ON CONFLICT(agent_id) DO UPDATE SET "
                                                    "agent_id = agent_id" HEALTH_CLASSES(HC_ADD),
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
                 " session, codec, faults, metrics, received_ms, epoch, interval_ms)"
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
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
    [W_MARK_GET] = "SELECT result_id, pruned_id, pruned_ts_ms, legacy_id FROM rollup_mark"
                   " WHERE id = 1",
    [W_MARK_SET] = "UPDATE rollup_mark SET result_id = ?1, at_ms = ?2, pruned_id = ?3,"
                   " pruned_ts_ms = ?4 WHERE id = 1",
    /* The primary key's order: incremental, each result once. interval_ms is the cadence
     * the agent checked at (its metric, 0 = absent: the default staleness applies); rows
     * stored before migration 6 (id <= ?3, rollup_mark.legacy_id) have it in their metrics
     * only. No join: the job keeps each agent's site in memory (W_AGENT_SITE when new). */
    [W_NEW_RESULTS] = "SELECT id, agent_id, kind, target, status, ts_ms,"
                      " CASE WHEN interval_ms = 0 AND id <= ?3"
                      " THEN json_extract(metrics, '$.interval_ms') ELSE interval_ms END"
                      " FROM results WHERE id > ?1 ORDER BY id LIMIT ?2",
    [W_AGENT_SITE] = "SELECT site FROM agents WHERE id = ?1",
    /* The job's memory is loaded from these once (and again after a failed flush). */
    [W_STATE_LOAD] = "SELECT agent_id, kind, target, status, ts_ms, stale_ms, until_ms"
                     " FROM rollup_state",
    [W_AGENTS_LOAD] = "SELECT agent_id, site, last_ts_ms FROM rollup_agents",
    [W_STATE_PUT] = "INSERT INTO rollup_state(agent_id, kind, target, status, ts_ms, stale_ms,"
                    " until_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    " ON CONFLICT(agent_id, kind, target) DO UPDATE SET status = excluded.status,"
                    " ts_ms = excluded.ts_ms, stale_ms = excluded.stale_ms,"
                    " until_ms = excluded.until_ms",
    [W_AGENT_SEEN] = "INSERT INTO rollup_agents(agent_id, site, last_ts_ms) VALUES(?1, ?2, ?3)"
                     " ON CONFLICT(agent_id) DO UPDATE SET site = excluded.site,"
                     " last_ts_ms = max(last_ts_ms, excluded.last_ts_ms)",
    /* A site's sessions the job may still credit, cached until a session changes.
     * Cancelled ones too: what is added to a session is taken back from the same one, and
     * a cancelled session is left out when scores are read. */
    [W_EXAMS_SITE] = "SELECT id, start_ms, end_ms, rooms FROM exam_sessions"
                     " INDEXED BY exam_sessions_site_end WHERE site = ?1 AND end_ms > ?2"
                     " ORDER BY start_ms, id",
    /* Moves when another connection commits: sessions written by another process. */
    [W_DATA_VERSION] = "PRAGMA data_version",
    [W_PRUNE_MARK] = "UPDATE rollup_mark SET pruned_id = ?1, pruned_ts_ms = ?2 WHERE id = 1",
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
    /* issue 16 (A). problems_open (the partial unique index) answers these lookups. */
    [W_PROB_OPEN] = "SELECT id, worst, faults, in_session FROM problems"
                    " WHERE site = ?1 AND agent = ?2 AND kind = ?3 AND target = ?4"
                    " AND end_ms IS NULL",
    [W_PROB_NEW] = "INSERT INTO problems(site, org, city, agent, kind, target, status, worst,"
                   " severity, faults, start_ms, in_session)"
                   " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11)",
    [W_PROB_SET] = "UPDATE problems SET status = ?2, worst = ?3, severity = ?4, faults = ?5,"
                   " in_session = ?6 WHERE id = ?1",
    [W_PROB_CLOSE] = "UPDATE problems SET end_ms = ?2, in_session = max(in_session, ?3)"
                     " WHERE id = ?1",
    [W_PROB_GET] = "SELECT id, site, org, city, agent, kind, target, status, worst, severity,"
                   " faults, start_ms, coalesce(end_ms, 0), in_session, ack_by,"
                   " coalesce(ack_ms, 0), ack_message FROM problems WHERE id = ?1",
    [W_PROB_ACK] = "UPDATE problems SET ack_by = ?2, ack_ms = ?3, ack_message = ?4"
                   " WHERE id = ?1",
    /* A running (or, for ?2 < ?3, overlapping) session of the site not cancelled. */
    [W_IN_SESSION] = "SELECT 1 FROM exam_sessions INDEXED BY exam_sessions_site_end"
                     " WHERE site = ?1 AND end_ms > ?2 AND start_ms <= ?3"
                     " AND cancelled_ms IS NULL LIMIT 1",
    [W_EVENT] = "INSERT INTO events(ts_ms, type, site, org, city, data)"
                " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    /* Once per batch: the site was heard from; its open site_silent problem, if any. */
    [W_FEED_SITE] = "INSERT INTO feed_sites(site, org, city, last_batch_ms, cadence_ms)"
                    " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(site) DO UPDATE SET"
                    " org = excluded.org, city = excluded.city,"
                    " last_batch_ms = max(last_batch_ms, excluded.last_batch_ms),"
                    " cadence_ms = CASE WHEN excluded.cadence_ms > 0 THEN excluded.cadence_ms"
                    " ELSE cadence_ms END RETURNING silent_id",
    [W_FEED_SILENT_SET] = "UPDATE feed_sites SET silent_id = ?2 WHERE site = ?1",
    /* Sites silent past their bound (store.h STORE_FEED_TICK): a scan of one row per
     * site, once a tick (3000 sites: well under a millisecond). */
    [W_FEED_DUE] = "SELECT site, org, city, last_batch_ms FROM feed_sites"
                   " WHERE silent_id IS NULL AND max(last_batch_ms, ?2) + CASE WHEN ?3 > 0"
                   " THEN ?3 ELSE CAST(?4 * CASE WHEN cadence_ms > 0 THEN cadence_ms"
                   " ELSE 60000 END AS INTEGER) END <= ?1 ORDER BY site LIMIT 1000",
    /* issue 14: the open problems, site by site (the partial index holds only those, in
     * site order: no sort), and the sites heard from, for /metrics (feed_count). */
    [W_FEED_COUNT_OPEN] = "SELECT site, kind, status, severity FROM problems"
                          " INDEXED BY problems_open WHERE end_ms IS NULL ORDER BY site",
    [W_FEED_COUNT_SITES] = "SELECT count(*) FROM feed_sites",
    [W_PROB_ESCALATE] = "SELECT p.id FROM problems p WHERE p.end_ms IS NULL"
                        " AND p.in_session = 0 AND EXISTS(SELECT 1 FROM exam_sessions e"
                        " WHERE e.site = p.site AND e.cancelled_ms IS NULL"
                        " AND e.start_ms <= ?1 AND e.end_ms > ?1) ORDER BY p.id LIMIT 1000",
    /* The writer's clock stamps events, so ts_ms rises with id: what is old enough is a
     * prefix of the ids. */
    [W_EVENTS_PRUNE_TO] = "SELECT max(id) FROM (SELECT id FROM events WHERE id > ?1"
                          " AND ts_ms < ?2 ORDER BY id LIMIT 2000)",
    [W_EVENTS_PRUNE] = "DELETE FROM events WHERE id > ?1 AND id <= ?2",
    [W_EVENTS_MARK] = "UPDATE feed_mark SET events_pruned_id = ?1 WHERE id = 1",
    [W_EVENTS_MARK_GET] = "SELECT events_pruned_id FROM feed_mark WHERE id = 1",
    [W_THUMB] = "INSERT INTO thumbnails(site, agent, target, ts_ms, seq, received_ms, jpeg)"
                " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* Arrival order is id order: the first row tells whether anything is due at all. */
    [W_THUMB_OLDEST] = "SELECT received_ms FROM thumbnails ORDER BY id LIMIT 1",
    [W_THUMB_PRUNE] = "DELETE FROM thumbnails WHERE id IN"
                      " (SELECT id FROM thumbnails ORDER BY id LIMIT ?2) AND received_ms < ?1",
    /* One access record; prepared once, run for every queued access in one transaction. */
    [W_ACCESS] = "INSERT INTO thumbnail_access(at_ms, actor, site, camera, asked_ms,"
                 " thumb_ts_ms, peer) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* The writer stamps at_ms as it commits, so id order is (nearly) at_ms order: the
     * rowid alone finds the oldest and bounds each delete, no index needed. */
    [W_ACCESS_OLDEST] = "SELECT at_ms FROM thumbnail_access ORDER BY id LIMIT 1",
    [W_ACCESS_PRUNE] = "DELETE FROM thumbnail_access WHERE id IN"
                       " (SELECT id FROM thumbnail_access ORDER BY id LIMIT ?2) AND at_ms < ?1",
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
	/* issue 16 E */
	R_RUNNING,
	R_RUNNING_SITE,
	R_HIST_AGENTS,
	R_OPEN_PROBLEMS,
	R_OPEN_PROBLEMS_SITE,
	R_EVENTS_AFTER, /* issue 16 (A) */
	R_EVENTS_CITY,
	R_EVENTS_ORG,
	R_PROBLEMS_CITY,
	R_PROBLEMS_ORG,
	R_PROBLEMS_SITE,
	R_EVENTS_MARKS,
	R_PROBLEMS,
	R_THUMB, /* issue 16 C */
	R_COUNT
};
/* A session lasts at most STORE_EXAM_MAX_MS, so one overlapping [from, to) starts after
 * from - that: the bound lets the (name, start_ms) indexes range over the period instead of
 * every session since the first (3 years of a province: 936k rows per read otherwise). */
#define STORE_EXAM_MAX_SQL "86400000"
_Static_assert(STORE_EXAM_MAX_MS == 86400000, "STORE_EXAM_MAX_SQL spells STORE_EXAM_MAX_MS");
/* issue 16 (A): R_PROBLEMS's filters after an equality on where (R_PROBLEMS_CITY, _ORG, _SITE). */
#define PROBLEMS(where)                                                                            \
	"SELECT id, site, org, city, agent, kind, target, status, worst, severity, faults,"        \
	" start_ms, coalesce(end_ms, 0), in_session, ack_by, coalesce(ack_ms, 0), ack_message"     \
	" FROM problems WHERE " where " AND (?1 = 0 OR (?1 = 1 AND end_ms IS NULL)"                \
	" OR (?1 = 2 AND end_ms IS NOT NULL))"                                                     \
	" AND (?2 IS NULL OR city = ?2) AND (?3 IS NULL OR site = ?3)"                             \
	" AND (?4 IS NULL OR org = ?4)"                                                            \
	" AND (?5 = 0 OR end_ms IS NULL OR end_ms > ?5)"                                           \
	" AND (?6 = 0 OR start_ms < ?6)"                                                           \
	" AND (?8 = 0 OR start_ms < ?7 OR (start_ms = ?7 AND id < ?8))"                            \
	" ORDER BY start_ms DESC, id DESC LIMIT ?9"
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
	                    " AND e.start_ms > ?1 - " STORE_EXAM_MAX_SQL                           \
	                    " AND (?3 IS NULL OR e.org = ?3) AND (?4 IS NULL OR e.city = ?4)"      \
	                    " AND (?5 IS NULL OR e.site = ?5) ORDER BY e.start_ms, e.id"
/* One row per agent, by site: the reader sums a site's agents in C (site_next) — SQLite's
 * sum() over these 24 columns cost 5x the read itself on 3,000 sites. */
#define SITE_ROWS(where)                                                                           \
	"SELECT a.site, a.org, a.city, a.last_report_ms, a.cam_ok, a.cam_degraded, "               \
	"a.cam_down" HEALTH_CLASSES(                                                               \
	    HC_COL) " FROM agents a LEFT JOIN agent_health h ON h.agent_id = a.id " where          \
	            " ORDER BY a.site"
static const char *const rsql[R_COUNT] = {
    /* Every agent row of a site holds the same org and city (check_site_place refuses a
     * certificate naming others), so the bare columns are the site's. */
    [R_SITES] = SITE_ROWS(""),
    [R_SITE] = SITE_ROWS("WHERE a.site = ?1"),
    /* A camera's newest thumbnail: one seek of thumbnails_target_ts (issue 16 C). */
    [R_TARGETS] = "SELECT a.agent, l.kind, l.target, r.status, r.session, r.codec, r.faults,"
                  " r.metrics, r.ts_ms, r.seq, CASE WHEN l.kind = 'stream' THEN"
                  " (SELECT max(t.ts_ms) FROM thumbnails t WHERE t.site = a.site"
                  " AND t.target = l.target) END"
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
    /* issue 16 E. Sites with an exam session running at ?1 (not cancelled): a session lasts
     * at most STORE_EXAM_MAX_MS, so exam_sessions_start ranges over a day of starts. */
    [R_RUNNING] = "SELECT DISTINCT site FROM exam_sessions INDEXED BY exam_sessions_start"
                  " WHERE start_ms <= ?1 AND start_ms > ?1 - " STORE_EXAM_MAX_SQL
                  " AND end_ms > ?1 AND cancelled_ms IS NULL ORDER BY site",
    [R_RUNNING_SITE] = "SELECT 1 FROM exam_sessions INDEXED BY exam_sessions_site"
                       " WHERE site = ?2 AND start_ms <= ?1 AND start_ms > ?1 - " STORE_EXAM_MAX_SQL
                       " AND end_ms > ?1 AND cancelled_ms IS NULL LIMIT 1",
    [R_HIST_AGENTS] = "SELECT id, agent FROM agents WHERE site = ?1 ORDER BY agent",
    /* Open problems per site (the feed's problems_open index: by site, open ones only);
     * silent = one of them is the site's site_silent (kind "site"). */
    [R_OPEN_PROBLEMS] =
        "SELECT site, count(*), max(kind = 'site') FROM problems"
        " INDEXED BY problems_open WHERE end_ms IS NULL GROUP BY site ORDER BY site",
    [R_OPEN_PROBLEMS_SITE] = "SELECT count(*), coalesce(max(kind = 'site'), 0) FROM problems"
                             " INDEXED BY problems_open WHERE site = ?1 AND end_ms IS NULL",
    /* issue 16 (A) */
    [R_EVENTS_AFTER] = "SELECT id, ts_ms, type, site, org, city, data FROM events"
                       " WHERE id > ?1 ORDER BY id LIMIT ?2",
    /* A scope's rows only (events_city, events_org): a resume never pages through
     * another scope's week. */
    [R_EVENTS_CITY] = "SELECT id, ts_ms, type, site, org, city, data FROM events"
                      " WHERE city = ?3 AND id > ?1 ORDER BY id LIMIT ?2",
    [R_EVENTS_ORG] = "SELECT id, ts_ms, type, site, org, city, data FROM events"
                     " WHERE org = ?3 AND id > ?1 ORDER BY id LIMIT ?2",
    /* R_PROBLEMS (below) with a named city, org or site: that one's own index (an equality
     * first, so the planner takes it) instead of walking the province's problems_start. */
    [R_PROBLEMS_CITY] = PROBLEMS("city = ?2"),
    [R_PROBLEMS_ORG] = PROBLEMS("org = ?4"),
    [R_PROBLEMS_SITE] = PROBLEMS("site = ?3"),
    [R_EVENTS_MARKS] = "SELECT (SELECT events_pruned_id FROM feed_mark WHERE id = 1),"
                       " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
    /* Newest start first (problems_start, backwards), paged by (start_ms, id). The
     * filters are checked on the way; problems are few beside results (a spell each). */
    [R_PROBLEMS] = "SELECT id, site, org, city, agent, kind, target, status, worst, severity,"
                   " faults, start_ms, coalesce(end_ms, 0), in_session, ack_by,"
                   " coalesce(ack_ms, 0), ack_message FROM problems"
                   " WHERE (?1 = 0 OR (?1 = 1 AND end_ms IS NULL)"
                   " OR (?1 = 2 AND end_ms IS NOT NULL))"
                   " AND (?2 IS NULL OR city = ?2) AND (?3 IS NULL OR site = ?3)"
                   " AND (?4 IS NULL OR org = ?4)"
                   " AND (?5 = 0 OR end_ms IS NULL OR end_ms > ?5)"
                   " AND (?6 = 0 OR start_ms < ?6)"
                   " AND (?8 = 0 OR start_ms < ?7 OR (start_ms = ?7 AND id < ?8))"
                   " ORDER BY start_ms DESC, id DESC LIMIT ?9",
    [R_THUMB] = "SELECT agent, ts_ms, seq, jpeg FROM thumbnails"
                " WHERE site = ?1 AND target = ?2 AND ts_ms <= ?3 ORDER BY ts_ms DESC, id DESC"
                " LIMIT 1",
};

/* issue 16 E: one agent's stream of a site's history, newest first by (ts_ms, id), from
 * results_agent_ts in its own order (rowid is the index's last column): ?1 agent, ?2 ts_ms
 * >= from, ?3/?4 the upper bound (ts_ms, id), exclusive. Kind and target are checked by the
 * reader as rows go by (site_history), so it can bound what one page examines. */
static const char hist_sql[] =
    "SELECT id, kind, target, status, session, codec, faults, metrics, ts_ms, seq FROM results"
    " INDEXED BY results_agent_ts"
    " WHERE agent_id = ?1 AND ts_ms >= ?2 AND ts_ms <= ?3 AND (ts_ms < ?3 OR id < ?4)"
    " ORDER BY ts_ms DESC, id DESC";

/* The job's memory is rollup.c's (rollup.h); what stays here is how it finds new results
 * (by id: one writer, so ids become visible in order), its SQL and its transactions. */
struct sq_roll {
	int64_t pruned_id, pruned_ts;
	int64_t legacy_id; /* results up to this id predate migration 6 (see W_NEW_RESULTS) */
	/* exam_sessions changes: bumped by the writer connection's temp triggers (any module
	 * writing sessions on it) and by other connections' commits (PRAGMA data_version). */
	uint64_t cache_gen; /* the sqlite_be exams_gen the cache was read at */
	int64_t data_version;
	int64_t now_ms; /* the flush's, for exam_totals.updated_ms */
};

struct sqlite_be {
	char *path;
	sqlite3 *wdb; /* the writer thread's, once started */
	sqlite3_stmt *w[W_COUNT];
	int64_t raw_retention_ms, default_stale_ms; /* store_options' */
	int64_t thumb_retention_ms;                 /* store_options' (issue 16 C) */
	int64_t access_retention_ms; /* store_options' thumb_access_retention_ms (issue 16 C) */
	int64_t flush_ms;            /* store_options' rollup_flush_ms */
	struct rollup_mem *job; /* the rollup job's memory (writer thread; NULL until loaded) */
	struct sq_roll roll;    /* the job's own state here, beside its memory */
	uint64_t exams_gen;     /* bumped by the writer connection's exam_sessions triggers */
	/* issue 14: a problem opened, changed or closed since the last feed_count (writer
	 * thread; 1 at open, so the first tick counts) */
	int feed_dirty;
	int64_t feed_nsites; /* feed_sites' rows at the last feed_count */
};
static void rollup_close(struct sqlite_be *s);
static int exams_hook_install(struct sqlite_be *s, char *why, size_t whylen);

struct sqlite_rd {
	struct sqlite_be *be;
	sqlite3 *db; /* read-only, one reader thread */
	sqlite3_stmt *r[R_COUNT];
	/* issue 16 E: history streams, one per agent of the site read, prepared once each
	 * and kept. */
	sqlite3_stmt **hist;
	size_t nhist;
};

/* --- open ------------------------------------------------------------------------------- */

static void sq_close(void *p)
{
	struct sqlite_be *s = p;
	if (!s)
		return;
	if (s->wdb)
		rollup_close(s);
	vw_db_finalize_all(s->w, W_COUNT);
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
	s->thumb_retention_ms = o->thumb_retention_ms;
	s->access_retention_ms = o->thumb_access_retention_ms;
	s->default_stale_ms =
	    o->default_stale_ms > 0 ? o->default_stale_ms : STORE_DEFAULT_STALE_MS;
	s->flush_ms = o->rollup_flush_ms > 0 ? o->rollup_flush_ms : STORE_ROLLUP_FLUSH_MS;
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
	if ((rc = exams_hook_install(s, why, sizeof(why))) != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	s->feed_dirty = 1;
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
	/* An integer cadence (every agent's) as an integer; anything else as the double the
	 * agent sent, so the job reads what json_extract of the metric would have read. */
	double iv = row->interval_ms;
	if (fabs(iv) < 9e15 && iv == (double)(int64_t)iv)
		sqlite3_bind_int64(st, 14, (int64_t)iv);
	else
		sqlite3_bind_double(st, 14, iv);
	return step_done(s, st);
}

/* issue 16 C: the row's picture, in the batch's transaction. */
static int insert_thumb(struct sqlite_be *s, const struct store_batch *b,
                        const struct store_row *row)
{
	sqlite3_stmt *st = s->w[W_THUMB];
	sqlite3_bind_text(st, 1, b->site, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b->agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, store_batch_str(b, row->target), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, row->ts_ms);
	sqlite3_bind_int64(st, 5, row->seq);
	sqlite3_bind_int64(st, 6, b->received_ms);
	sqlite3_bind_blob(st, 7, b->arena.data + row->thumb, (int)row->thumb_len, SQLITE_STATIC);
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

/* issue 16 E: which agent_health class a result counts in (network target "collector"
 * counts in connected as well). */
static const enum store_health kind_health[VW_KIND_COUNT] = {
    [VW_KIND_STREAM] = STORE_H_STREAM,         [VW_KIND_NETWORK] = STORE_H_NETWORK,
    [VW_KIND_RECORDING] = STORE_H_RECORDING,   [VW_KIND_COVERAGE] = STORE_H_COVERAGE,
    [VW_KIND_ASSESSMENT] = STORE_H_ASSESSMENT, [VW_KIND_BUFFER] = STORE_H_BUFFER,
};

/* Moves one target from its old latest status (-1: new target) to row's; 1 if a count
 * changed. */
static int health_move(int64_t health[STORE_H_COUNT][VW_STATUS_COUNT], const struct store_row *row,
                       const char *target, int old)
{
	if (old == (int)row->status || row->kind >= VW_KIND_COUNT || row->status >= VW_STATUS_COUNT)
		return 0;
	enum store_health cls[2] = {kind_health[row->kind], STORE_H_COUNT};
	if (row->kind == VW_KIND_NETWORK && strcmp(target, "collector") == 0)
		cls[1] = STORE_H_CONNECTED;
	for (int i = 0; i < 2 && cls[i] < STORE_H_COUNT; i++) {
		if (old >= 0)
			health[cls[i]][old]--;
		health[cls[i]][row->status]++;
	}
	return 1;
}

/* --- issue 16 (A): problems and events, in the writer's transaction ----------------------
 * Only changes write: a row whose target's latest status stays ok costs the one lookup of
 * its old status in latest (a primary-key probe of the page the upsert then writes). */

enum { SEV_MINOR, SEV_MAJOR, SEV_CRITICAL };
#define severity_names store_severity_names

/* degraded -> minor, down (or site_silent) -> major; one step up in an exam session. */
static const char *problem_severity(const char *worst, int in_session)
{
	int sev = strcmp(worst, "down") == 0 ? SEV_MAJOR : SEV_MINOR;
	return severity_names[sev + (in_session ? 1 : 0)];
}

/* One row into events, and a copy with its id into out (published after the commit). */
static int emit_event(struct sqlite_be *s, struct store_events *out, int64_t ts_ms,
                      const char *type, const char *site, const char *org, const char *city,
                      const char *data)
{
	sqlite3_stmt *st = s->w[W_EVENT];
	sqlite3_bind_int64(st, 1, ts_ms);
	sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, site, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, org, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, city, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, data, -1, SQLITE_STATIC);
	int rc = step_done(s, st);
	if (rc)
		return rc;
	struct store_event ev = {
	    sqlite3_last_insert_rowid(s->wdb), ts_ms, type, site, org, city, data};
	return store_events_add(out, &ev);
}

static void problem_row(sqlite3_stmt *st, struct store_problem *p)
{
	p->id = sqlite3_column_int64(st, 0);
	p->site = col_text(st, 1);
	p->org = col_text(st, 2);
	p->city = col_text(st, 3);
	p->agent = col_text(st, 4);
	p->kind = col_text(st, 5);
	p->target = col_text(st, 6);
	p->status = col_text(st, 7);
	p->worst = col_text(st, 8);
	p->severity = col_text(st, 9);
	p->faults = col_text(st, 10);
	p->start_ms = sqlite3_column_int64(st, 11);
	p->end_ms = sqlite3_column_int64(st, 12);
	p->in_session = sqlite3_column_int(st, 13);
	p->ack_by = sqlite3_column_type(st, 14) == SQLITE_NULL ? NULL : col_text(st, 14);
	p->ack_ms = sqlite3_column_int64(st, 15);
	p->ack_message = sqlite3_column_type(st, 16) == SQLITE_NULL ? NULL : col_text(st, 16);
}

/* The problem as it now stands, as an event of type (problem_opened, ...). */
static int emit_problem(struct sqlite_be *s, struct store_events *out, int64_t ts_ms,
                        const char *type, int64_t id)
{
	sqlite3_stmt *st = s->w[W_PROB_GET];
	sqlite3_bind_int64(st, 1, id);
	int found, rc = step_row(s, st, &found);
	if (rc)
		return rc;
	if (!found) {
		sqlite3_reset(st);
		return -EIO;
	}
	struct store_problem p;
	problem_row(st, &p);
	struct vw_buf d;
	vw_buf_init(&d, 1u << 20);
	rc = store_problem_json(&d, &p, ts_ms);
	if (!rc)
		rc = emit_event(s, out, ts_ms, type, p.site, p.org, p.city, vw_buf_cstr(&d));
	vw_buf_free(&d);
	sqlite3_reset(st);
	return rc;
}

/* 1 when a session of the site, not cancelled, overlaps [from, to]. */
static int site_in_session(struct sqlite_be *s, const char *site, int64_t from, int64_t to,
                           int *yes)
{
	sqlite3_stmt *st = s->w[W_IN_SESSION];
	sqlite3_bind_text(st, 1, site, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, from);
	sqlite3_bind_int64(st, 3, to);
	int rc = step_row(s, st, yes);
	sqlite3_reset(st);
	return rc;
}

/* The status event's data: {"site","org","city","agent","kind","target","from","to",
 * "faults","ts"}; from NULL = first seen. */
static int emit_status(struct sqlite_be *s, struct store_events *out, int64_t ev_ms,
                       const char *site, const char *org, const char *city, const char *agent,
                       const char *kind, const char *target, const char *from, const char *to,
                       const char *faults, int64_t ts_ms)
{
	struct vw_buf d;
	vw_buf_init(&d, 1u << 20);
	char ts[VW_ISO_LEN];
	vw_time_iso(ts_ms, ts);
	vw_buf_puts(&d, "{\"site\":");
	vw_buf_json_str(&d, site);
	vw_buf_puts(&d, ",\"org\":");
	vw_buf_json_str(&d, org);
	vw_buf_puts(&d, ",\"city\":");
	vw_buf_json_str(&d, city);
	vw_buf_puts(&d, ",\"agent\":");
	vw_buf_json_str(&d, agent);
	vw_buf_puts(&d, ",\"kind\":");
	vw_buf_json_str(&d, kind);
	vw_buf_puts(&d, ",\"target\":");
	vw_buf_json_str(&d, target);
	vw_buf_puts(&d, ",\"from\":");
	if (from)
		vw_buf_json_str(&d, from);
	else
		vw_buf_puts(&d, "null");
	vw_buf_puts(&d, ",\"to\":");
	vw_buf_json_str(&d, to);
	vw_buf_printf(&d, ",\"faults\":%s,\"ts\":\"%s\"}", faults[0] ? faults : "[]", ts);
	int rc =
	    d.err ? d.err : emit_event(s, out, ev_ms, "status", site, org, city, vw_buf_cstr(&d));
	vw_buf_free(&d);
	return rc;
}

/* The union of two fault arrays (ours: codes of [a-z0-9_]), old's order first. */
static int faults_union(const char *old, const char *add, struct vw_buf *out, int *added)
{
	*added = 0;
	cJSON *a = cJSON_Parse(old), *b = cJSON_Parse(add);
	int rc = 0;
	if (!a)
		a = cJSON_CreateArray();
	if (!a) {
		cJSON_Delete(b);
		return -ENOMEM;
	}
	const cJSON *f;
	cJSON_ArrayForEach(f, b)
	{
		if (!cJSON_IsString(f))
			continue;
		int have = 0;
		const cJSON *g;
		cJSON_ArrayForEach(g, a)
		{
			if (cJSON_IsString(g) && strcmp(g->valuestring, f->valuestring) == 0)
				have = 1;
		}
		if (!have && cJSON_GetArraySize(a) < 64) {
			cJSON_AddItemToArray(a, cJSON_CreateString(f->valuestring));
			(*added)++;
		}
	}
	char *txt = cJSON_PrintUnformatted(a);
	if (!txt || vw_buf_puts(out, txt))
		rc = -ENOMEM;
	free(txt);
	cJSON_Delete(a);
	cJSON_Delete(b);
	return rc;
}

static int status_rank(const char *st)
{
	return strcmp(st, "down") == 0 ? 2 : strcmp(st, "degraded") == 0 ? 1 : 0;
}

/* One stored row whose target's latest status was old (NULL: first seen): a change writes
 * a status event and opens, updates or closes the target's problem. An unchanged non-ok
 * status updates the problem only when it brings new fault codes. */
static int feed_row(struct sqlite_be *s, struct store_batch *b, const struct store_row *row,
                    const char *old)
{
	const char *kind = vw_kind_name((enum vw_kind)row->kind);
	const char *status = vw_status_name((enum vw_status)row->status);
	const char *target = store_batch_str(b, row->target);
	const char *faults = store_batch_str(b, row->faults);
	int changed = !old || strcmp(old, status) != 0;
	int ok = row->status == VW_STATUS_OK;
	if (!changed && ok)
		return 0;
	int rc;
	if (changed && (old || !ok) &&
	    (rc = emit_status(s, &b->events, b->received_ms, b->site, b->org, b->city, b->agent,
	                      kind, target, old, status, faults, row->ts_ms)) != 0)
		return rc;
	sqlite3_stmt *st = s->w[W_PROB_OPEN];
	sqlite3_bind_text(st, 1, b->site, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b->agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, target, -1, SQLITE_STATIC);
	int found;
	if ((rc = step_row(s, st, &found)) != 0)
		return rc;
	int64_t id = found ? sqlite3_column_int64(st, 0) : 0;
	char worst[16] = "";
	int in_session = found ? sqlite3_column_int(st, 3) : 0, added = 0;
	struct vw_buf fu;
	vw_buf_init(&fu, 1u << 16);
	if (found) {
		snprintf(worst, sizeof(worst), "%s", col_text(st, 1));
		rc = faults_union(col_text(st, 2), faults, &fu, &added);
	}
	sqlite3_reset(st);
	if (rc)
		goto out;

	if (ok) { /* closes the spell */
		if (!found)
			goto out;
		s->feed_dirty = 1;
		int overlap = 0;
		if (!in_session &&
		    (rc = site_in_session(s, b->site, row->ts_ms, row->ts_ms, &overlap)) != 0)
			goto out;
		st = s->w[W_PROB_CLOSE];
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, row->ts_ms);
		sqlite3_bind_int(st, 3, overlap);
		if (!(rc = step_done(s, st)))
			rc = emit_problem(s, &b->events, b->received_ms, "problem_closed", id);
		goto out;
	}
	if (!found) {
		s->feed_dirty = 1;
		if ((rc = site_in_session(s, b->site, row->ts_ms, row->ts_ms, &in_session)) != 0)
			goto out;
		st = s->w[W_PROB_NEW];
		sqlite3_bind_text(st, 1, b->site, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, b->org, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, b->city, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, b->agent, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, target, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, status, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, problem_severity(status, in_session), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 9, faults[0] ? faults : "[]", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 10, row->ts_ms);
		sqlite3_bind_int(st, 11, in_session);
		if (!(rc = step_done(s, st)))
			rc = emit_problem(s, &b->events, b->received_ms, "problem_opened",
			                  sqlite3_last_insert_rowid(s->wdb));
		goto out;
	}
	/* Still open: a new status (degraded <-> down) or new fault codes. */
	if (!changed && !added)
		goto out;
	s->feed_dirty = 1;
	const char *nworst = status_rank(status) > status_rank(worst) ? status : worst;
	st = s->w[W_PROB_SET];
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, nworst, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, problem_severity(nworst, in_session), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, vw_buf_cstr(&fu), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, in_session);
	if ((rc = step_done(s, st)) == 0)
		rc = emit_problem(s, &b->events, b->received_ms, "problem_updated", id);
out:
	vw_buf_free(&fu);
	return rc;
}

/* Once per batch: the site is heard from (feed_sites), which closes its site_silent. */
static int feed_site(struct sqlite_be *s, struct store_batch *b)
{
	sqlite3_stmt *st = s->w[W_FEED_SITE];
	sqlite3_bind_text(st, 1, b->site, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b->org, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, b->city, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, b->received_ms);
	sqlite3_bind_int64(st, 5, b->cadence_ms > 0 ? b->cadence_ms : 0);
	int found, rc = step_row(s, st, &found);
	if (rc)
		return rc;
	int64_t silent =
	    found && sqlite3_column_type(st, 0) != SQLITE_NULL ? sqlite3_column_int64(st, 0) : 0;
	if ((rc = step_done(s, st)) != 0 || !silent) /* RETURNING ends at its next step */
		return rc;
	s->feed_dirty = 1;
	st = s->w[W_FEED_SILENT_SET];
	sqlite3_bind_text(st, 1, b->site, -1, SQLITE_STATIC);
	sqlite3_bind_null(st, 2);
	if ((rc = step_done(s, st)) != 0)
		return rc;
	st = s->w[W_PROB_CLOSE];
	sqlite3_bind_int64(st, 1, silent);
	sqlite3_bind_int64(st, 2, b->received_ms);
	sqlite3_bind_int(st, 3, 0);
	if ((rc = step_done(s, st)) != 0)
		return rc;
	log_info("event=site_heard_again site=%s agent=%s problem=%lld", b->site, b->agent,
	         (long long)silent);
	if ((rc = emit_status(s, &b->events, b->received_ms, b->site, b->org, b->city, "", "site",
	                      "", "down", "ok", "[]", b->received_ms)) != 0)
		return rc;
	return emit_problem(s, &b->events, b->received_ms, "problem_closed", silent);
}

/* issue 14: the open problems by kind and severity, and the sites by status (store.h
 * struct store_feed_counts), into c. One walk of the open problems in site order (the
 * partial index problems_open: only open ones); nsites = feed_sites' rows. */
static int feed_count(struct sqlite_be *s, int64_t now, int64_t nsites, struct store_feed_counts *c)
{
	memset(c, 0, sizeof(*c));
	sqlite3_stmt *st = s->w[W_FEED_COUNT_OPEN];
	char site[64] = "";
	int worst = -1, step; /* the site's: enum store_site_state */
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *row_site = col_text(st, 0), *kind = col_text(st, 1);
		const char *status = col_text(st, 2), *sev = col_text(st, 3);
		if (worst >= 0 && strcmp(site, row_site) != 0) {
			c->sites[worst]++;
			worst = -1;
		}
		snprintf(site, sizeof(site), "%s", row_site);
		enum vw_kind k;
		int ki = strcmp(kind, "site") == 0      ? VW_KIND_COUNT
		         : vw_kind_parse(kind, &k) == 0 ? (int)k
		                                        : -1;
		int si = -1;
		for (int i = 0; i < STORE_SEVERITIES; i++)
			if (strcmp(sev, store_severity_names[i]) == 0)
				si = i;
		if (ki >= 0 && si >= 0)
			c->problems[ki][si]++;
		int state = ki == VW_KIND_COUNT           ? STORE_SITE_SILENT
		            : strcmp(status, "down") == 0 ? STORE_SITE_DOWN
		                                          : STORE_SITE_DEGRADED;
		if (state > worst)
			worst = state;
	}
	sqlite3_reset(st);
	if (step != SQLITE_DONE) {
		log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		return sqlite_errno(step);
	}
	if (worst >= 0)
		c->sites[worst]++;
	int64_t bad =
	    c->sites[STORE_SITE_DEGRADED] + c->sites[STORE_SITE_DOWN] + c->sites[STORE_SITE_SILENT];
	/* A problem of a site that feed_sites lacks cannot be (both are written in the batch's
	 * transaction), but the gauge never goes negative on it. */
	c->sites[STORE_SITE_OK] = nsites > bad ? nsites - bad : 0;
	c->at_ms = now > 0 ? now : 1;
	return 0;
}

/* STORE_FEED_TICK: sites silent past their bound get a site_silent problem; open problems
 * that a session now overlaps move one severity up; old events are pruned. */
static int feed_tick(struct sqlite_be *s, struct store_write *w)
{
	int64_t now = w->now_ms;
	int rc = 0, step;
	sqlite3_stmt *st = s->w[W_FEED_DUE];
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, w->since_ms);
	sqlite3_bind_int64(st, 3, w->silent_ms);
	sqlite3_bind_double(st, 4, w->silent_factor > 0 ? w->silent_factor : 3);
	/* Copied out first: the statement cannot stay open across the inserts. */
	struct due {
		char site[64], org[65], city[129];
		int64_t last;
	} *due = NULL;
	size_t ndue = 0, cap = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (ndue == cap) {
			cap = cap ? cap * 2 : 8;
			struct due *v = realloc(due, cap * sizeof(*v));
			if (!v) {
				rc = -ENOMEM;
				break;
			}
			due = v;
		}
		struct due *d = &due[ndue++];
		snprintf(d->site, sizeof(d->site), "%s", col_text(st, 0));
		snprintf(d->org, sizeof(d->org), "%s", col_text(st, 1));
		snprintf(d->city, sizeof(d->city), "%s", col_text(st, 2));
		d->last = sqlite3_column_int64(st, 3);
	}
	if (!rc && step != SQLITE_DONE) {
		log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		rc = sqlite_errno(step);
	}
	sqlite3_reset(st);
	if (ndue)
		s->feed_dirty = 1;
	for (size_t i = 0; !rc && i < ndue; i++) {
		struct due *d = &due[i];
		int in_session = 0;
		if ((rc = site_in_session(s, d->site, d->last, now, &in_session)) != 0)
			break;
		st = s->w[W_PROB_NEW];
		sqlite3_bind_text(st, 1, d->site, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, d->org, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, d->city, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, "site", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, "down", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, problem_severity("down", in_session), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 9, "[\"site_silent\"]", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 10, d->last);
		sqlite3_bind_int(st, 11, in_session);
		if ((rc = step_done(s, st)) != 0)
			break;
		int64_t id = sqlite3_last_insert_rowid(s->wdb);
		st = s->w[W_FEED_SILENT_SET];
		sqlite3_bind_text(st, 1, d->site, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, id);
		if ((rc = step_done(s, st)) != 0)
			break;
		log_warn("event=site_silent site=%s org=%s city=\"%s\" last_batch_ms=%lld "
		         "silent_s=%lld problem=%lld",
		         d->site, d->org, d->city, (long long)d->last,
		         (long long)((now - d->last) / 1000), (long long)id);
		if ((rc = emit_status(s, &w->events, now, d->site, d->org, d->city, "", "site", "",
		                      "ok", "down", "[\"site_silent\"]", now)) != 0 ||
		    (rc = emit_problem(s, &w->events, now, "problem_opened", id)) != 0)
			break;
	}
	free(due);
	if (rc)
		return rc;

	/* Open problems a session now overlaps: in_session, one severity up. */
	int64_t ids[1000];
	size_t nids = 0;
	st = s->w[W_PROB_ESCALATE];
	sqlite3_bind_int64(st, 1, now);
	while ((step = sqlite3_step(st)) == SQLITE_ROW && nids < 1000)
		ids[nids++] = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		return sqlite_errno(step);
	if (nids)
		s->feed_dirty = 1; /* severities move */
	for (size_t i = 0; i < nids; i++) {
		st = s->w[W_PROB_GET];
		sqlite3_bind_int64(st, 1, ids[i]);
		int found;
		if ((rc = step_row(s, st, &found)) != 0)
			return rc;
		char status[16] = "", worst[16] = "", faults[1024] = "[]";
		if (found) {
			snprintf(status, sizeof(status), "%s", col_text(st, 7));
			snprintf(worst, sizeof(worst), "%s", col_text(st, 8));
			snprintf(faults, sizeof(faults), "%s", col_text(st, 10));
		}
		sqlite3_reset(st);
		if (!found)
			continue;
		st = s->w[W_PROB_SET];
		sqlite3_bind_int64(st, 1, ids[i]);
		sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, worst, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, problem_severity(worst, 1), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, faults, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 6, 1);
		if ((rc = step_done(s, st)) != 0 ||
		    (rc = emit_problem(s, &w->events, now, "problem_updated", ids[i])) != 0)
			return rc;
	}

	/* Events past the retention, a slice a tick. */
	if (w->event_retention_ms > 0) {
		int64_t pruned = 0, to = 0;
		int found;
		st = s->w[W_EVENTS_MARK_GET];
		if ((rc = step_row(s, st, &found)) != 0)
			return rc;
		pruned = found ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_reset(st);
		st = s->w[W_EVENTS_PRUNE_TO];
		sqlite3_bind_int64(st, 1, pruned);
		sqlite3_bind_int64(st, 2, now - w->event_retention_ms);
		if ((rc = step_row(s, st, &found)) != 0)
			return rc;
		to = found ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_reset(st);
		if (to > pruned) {
			st = s->w[W_EVENTS_PRUNE];
			sqlite3_bind_int64(st, 1, pruned);
			sqlite3_bind_int64(st, 2, to);
			if ((rc = step_done(s, st)) != 0)
				return rc;
			st = s->w[W_EVENTS_MARK];
			sqlite3_bind_int64(st, 1, to);
			if ((rc = step_done(s, st)) != 0)
				return rc;
		}
	}

	/* issue 14: /metrics' counts, recounted only when a problem moved or a site was added
	 * (a count of feed_sites, one row per site, is the cheap part). */
	int found;
	st = s->w[W_FEED_COUNT_SITES];
	if ((rc = step_row(s, st, &found)) != 0)
		return rc;
	int64_t nsites = found ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (!s->feed_dirty && nsites == s->feed_nsites)
		return 0;
	if ((rc = feed_count(s, now, nsites, &w->feed)) != 0)
		return rc;
	s->feed_dirty = 0;
	s->feed_nsites = nsites;
	return 0;
}

/* STORE_PROBLEM_ACK: once, by a person in scope. */
static int feed_ack(struct sqlite_be *s, struct store_write *w)
{
	sqlite3_stmt *st = s->w[W_PROB_GET];
	sqlite3_bind_int64(st, 1, w->problem_id);
	int found, rc = step_row(s, st, &found);
	if (rc)
		return rc;
	if (found) {
		struct store_problem p;
		problem_row(st, &p);
		if ((w->scope_org && w->scope_org[0] && strcmp(p.org, w->scope_org) != 0) ||
		    (w->scope_city && w->scope_city[0] && strcmp(p.city, w->scope_city) != 0))
			found = 0;
		else if (p.ack_by)
			rc = -EALREADY;
		snprintf(w->site, sizeof(w->site), "%s", p.site);
	}
	sqlite3_reset(st);
	if (!found) {
		snprintf(w->err, sizeof(w->err), "no such problem");
		return -ENOENT;
	}
	if (rc) {
		snprintf(w->err, sizeof(w->err), "problem %lld is already acknowledged",
		         (long long)w->problem_id);
		return rc;
	}
	st = s->w[W_PROB_ACK];
	sqlite3_bind_int64(st, 1, w->problem_id);
	sqlite3_bind_text(st, 2, w->ack_by ? w->ack_by : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, w->now_ms);
	sqlite3_bind_text(st, 4, w->ack_message ? w->ack_message : "", -1, SQLITE_STATIC);
	if ((rc = step_done(s, st)) != 0)
		return rc;
	return emit_problem(s, &w->events, w->now_ms, "problem_acked", w->problem_id);
}

/* The feed's writes, each one transaction (as an exam write). */
static int feed_write(struct sqlite_be *s, struct store_write *w)
{
	int rc = vw_db_exec(s->wdb, "BEGIN IMMEDIATE", NULL, 0);
	if (rc) {
		log_error("event=store_begin_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		return w->status = rc;
	}
	w->now_ms = w->clock ? w->clock(w) : vw_now_ms();
	rc = w->op == STORE_PROBLEM_ACK ? feed_ack(s, w) : feed_tick(s, w);
	if (!rc && vw_db_exec(s->wdb, "COMMIT", NULL, 0)) {
		log_error("event=store_commit_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		rc = -EIO;
	}
	if (rc) {
		vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
		store_events_clear(&w->events);
		w->feed.at_ms = 0;
		s->feed_dirty = 1; /* what was counted may be what rolled back */
	}
	return w->status = rc;
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
	if (!rc)
		rc = feed_site(s, b);
	if (rc)
		return rc;
	sqlite3_stmt *st;

	int64_t last = high;
	size_t stored = 0;
	/* change in this agent's targets per class and status (cameras: agents.cam_*) */
	int64_t health[STORE_H_COUNT][VW_STATUS_COUNT] = {{0}};
	int health_moved = 0;
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
		if (row->thumb_len && (rc = insert_thumb(s, b, row)) != 0)
			return rc;

		/* The target's status in latest before this row: a camera leaves its old
		 * status count and joins the new one, and a change is a status event and a
		 * problem opened, updated or closed (feed_row). */
		st = s->w[W_OLD_STATUS];
		sqlite3_bind_int64(st, 1, agent_id);
		sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		int has_old = rc == SQLITE_ROW;
		enum vw_status old = VW_STATUS_OK;
		if (has_old && vw_status_parse((const char *)sqlite3_column_text(st, 0), &old))
			has_old = 0;
		sqlite3_reset(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
			return sqlite_errno(rc);
		}
		/* issue 16 E: every class's counts (cameras: agents.cam_*, from the same) */
		health_moved |= health_move(health, row, target, has_old ? (int)old : -1);
		if ((!has_old || old != (enum vw_status)row->status ||
		     row->status != VW_STATUS_OK) &&
		    (rc = feed_row(s, b, row, has_old ? vw_status_name(old) : NULL)) != 0)
			return rc;
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
		sqlite3_bind_int64(st, 3, health[STORE_H_STREAM][VW_STATUS_OK]);
		sqlite3_bind_int64(st, 4, health[STORE_H_STREAM][VW_STATUS_DEGRADED]);
		sqlite3_bind_int64(st, 5, health[STORE_H_STREAM][VW_STATUS_DOWN]);
		if ((rc = step_done(s, st)) != 0)
			return rc;
		if (health_moved) {
			st = s->w[W_HEALTH];
			sqlite3_bind_int64(st, 1, agent_id);
			for (int h = 0; h < STORE_H_COUNT; h++)
				for (int k = 0; k < VW_STATUS_COUNT; k++)
					sqlite3_bind_int64(st, 2 + h * VW_STATUS_COUNT + k,
					                   health[h][k]);
			if ((rc = step_done(s, st)) != 0)
				return rc;
		}
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
		if (b->status) {
			vw_db_exec(s->wdb, "ROLLBACK TO batch", NULL, 0);
			store_events_clear(&b->events); /* rolled back with it */
		}
		vw_db_exec(s->wdb, "RELEASE batch", NULL, 0);
	}
	if (!rc && vw_db_exec(s->wdb, "COMMIT", NULL, 0)) {
		log_error("event=store_commit_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
		rc = -EIO;
	}
	if (rc)
		for (struct store_batch *b = list; b; b = b->next) {
			b->status = rc;
			store_events_clear(&b->events);
		}
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

/* The temp triggers' function: a session of this store changed on the writer connection. */
static void exams_changed_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	struct sqlite_be *s = sqlite3_user_data(ctx);
	s->exams_gen++;
	sqlite3_result_null(ctx);
}

/* Every write to exam_sessions through the writer connection — whichever module makes it —
 * invalidates the job's sessions cache; writes by other connections (the CLI, another
 * process) move PRAGMA data_version, which the job reads before each slice. */
static int exams_hook_install(struct sqlite_be *s, char *why, size_t whylen)
{
	if (sqlite3_create_function(s->wdb, "vw_exams_changed", 0, SQLITE_UTF8, s, exams_changed_fn,
	                            NULL, NULL) != SQLITE_OK) {
		snprintf(why, whylen, "%s", sqlite3_errmsg(s->wdb));
		return -EIO;
	}
	return vw_db_exec(s->wdb,
	                  "CREATE TEMP TRIGGER vw_exams_ins AFTER INSERT ON main.exam_sessions"
	                  " BEGIN SELECT vw_exams_changed(); END;"
	                  "CREATE TEMP TRIGGER vw_exams_upd AFTER UPDATE ON main.exam_sessions"
	                  " BEGIN SELECT vw_exams_changed(); END;"
	                  "CREATE TEMP TRIGGER vw_exams_del AFTER DELETE ON main.exam_sessions"
	                  " BEGIN SELECT vw_exams_changed(); END;",
	                  why, whylen)
	           ? -EIO
	           : 0;
}

static int exams_check_changed(struct sqlite_be *s)
{
	int64_t v = 0;
	int found, rc = step_row(s, s->w[W_DATA_VERSION], &found);
	if (rc)
		return rc;
	if (found)
		v = sqlite3_column_int64(s->w[W_DATA_VERSION], 0);
	sqlite3_reset(s->w[W_DATA_VERSION]);
	if (v != s->roll.data_version) {
		s->roll.data_version = v;
		s->exams_gen++;
	}
	if (s->roll.cache_gen != s->exams_gen) {
		rollup_exams_changed(s->job);
		s->roll.cache_gen = s->exams_gen;
	}
	return 0;
}

/* --- the job's callbacks (rollup_io) --- */

static int io_site_exams(void *db, const char *site, int64_t from, struct rollup_exams *out)
{
	struct sqlite_be *s = db;
	sqlite3_stmt *st = s->w[W_EXAMS_SITE];
	sqlite3_bind_text(st, 1, site, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, from);
	int rc, added = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && !added)
		added =
		    rollup_exams_add(out, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
		                     sqlite3_column_int64(st, 2), col_text(st, 3));
	sqlite3_reset(st);
	if (added)
		return added;
	if (rc != SQLITE_DONE) {
		log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		return sqlite_errno(rc);
	}
	return 0;
}

/* An agent's site never changes (UNIQUE(site, agent) names the row): read once per agent. */
static int io_agent_site(void *db, int64_t agent_id, char *site, size_t n)
{
	struct sqlite_be *s = db;
	sqlite3_stmt *st = s->w[W_AGENT_SITE];
	sqlite3_bind_int64(st, 1, agent_id);
	int found, rc = step_row(s, st, &found);
	if (!rc && !found)
		rc = -ENOENT;
	if (!rc)
		snprintf(site, n, "%s", col_text(st, 0));
	sqlite3_reset(st);
	return rc;
}

static int io_put_credit(void *db, int64_t exam_id, int cls, const char *target,
                         const int64_t ms[VW_STATUS_COUNT], int64_t results)
{
	struct sqlite_be *s = db;
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
	sqlite3_bind_int64(st, 6, s->roll.now_ms);
	return step_done(s, st);
}

static int io_put_day(void *db, int64_t agent_id, const char *kind, const char *target, int64_t day,
                      const int64_t ms[VW_STATUS_COUNT], int64_t results)
{
	struct sqlite_be *s = db;
	sqlite3_stmt *st = s->w[W_DAY_ADD];
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, day);
	for (int i = 0; i < VW_STATUS_COUNT; i++)
		sqlite3_bind_int64(st, 5 + i, ms[i]);
	sqlite3_bind_int64(st, 8, results);
	return step_done(s, st);
}

static int io_put_hold(void *db, int64_t agent_id, const char *kind, const char *target,
                       const struct credit_state *cs)
{
	struct sqlite_be *s = db;
	sqlite3_stmt *st = s->w[W_STATE_PUT];
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, target, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, cs->status);
	sqlite3_bind_int64(st, 5, cs->ts_ms);
	sqlite3_bind_int64(st, 6, cs->stale_ms);
	sqlite3_bind_int64(st, 7, cs->until_ms);
	return step_done(s, st);
}

static int io_put_agent(void *db, int64_t agent_id, const char *site, int64_t ts_ms)
{
	struct sqlite_be *s = db;
	sqlite3_stmt *st = s->w[W_AGENT_SEEN];
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_text(st, 2, site, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, ts_ms);
	return step_done(s, st);
}

static void roll_io(struct sqlite_be *s, struct rollup_io *io)
{
	*io = (struct rollup_io){
	    s, io_agent_site, io_site_exams, io_put_hold, io_put_credit, io_put_day, io_put_agent};
}

/* Reads the persisted job: mark, agents, holds. Memory then equals the last flush. */
static int rollup_load(struct sqlite_be *s)
{
	struct rollup_mem *m = rollup_mem_new();
	if (!m)
		return -ENOMEM;
	struct rollup_pos *pos = rollup_pos(m);
	s->roll = (struct sq_roll){.data_version = -1, .cache_gen = s->exams_gen};
	int rc = 0, found;
	sqlite3_stmt *st = s->w[W_MARK_GET];
	if ((rc = step_row(s, st, &found)) != 0)
		goto fail;
	if (found) {
		pos->mark = pos->flushed_mark = sqlite3_column_int64(st, 0);
		s->roll.pruned_id = sqlite3_column_int64(st, 1);
		s->roll.pruned_ts = sqlite3_column_int64(st, 2);
		s->roll.legacy_id = sqlite3_column_int64(st, 3);
	}
	sqlite3_reset(st);
	st = s->w[W_AGENTS_LOAD];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (rollup_load_agent(m, sqlite3_column_int64(st, 0), col_text(st, 1),
		                      sqlite3_column_int64(st, 2))) {
			rc = SQLITE_NOMEM;
			break;
		}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		goto fail_sql;
	st = s->w[W_STATE_LOAD];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct credit_state cs = {1, sqlite3_column_int(st, 3), sqlite3_column_int64(st, 4),
		                          sqlite3_column_int64(st, 5), sqlite3_column_int64(st, 6)};
		if (rollup_load_hold(m, sqlite3_column_int64(st, 0), col_text(st, 1),
		                     col_text(st, 2), &cs)) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		goto fail_sql;
	s->job = m;
	return 0;
fail_sql:
	log_error("event=rollup_failed step=load error=\"%s\"", sqlite3_errmsg(s->wdb));
	rc = sqlite_errno(rc);
fail:
	rollup_mem_free(m);
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

/* Writes what memory holds beyond the last flush — dirty holds, session and day sums, the
 * agents' check times, the mark — in one transaction. On failure memory is dropped and
 * reloaded from the database at the next slice: the job then redoes what was lost, as
 * after a crash. */
static int rollup_flush(struct sqlite_be *s, int64_t now_ms, struct store_stats *out)
{
	struct rollup_mem *m = s->job;
	struct rollup_pos *pos = rollup_pos(m);
	struct rollup_io io;
	roll_io(s, &io);
	size_t holds = 0;
	int rc = rollup_tails(m, &io, now_ms);
	if (rc)
		goto drop;
	if ((rc = vw_db_exec(s->wdb, "BEGIN IMMEDIATE", NULL, 0)) != 0) {
		log_error("event=rollup_failed step=begin error=\"%s\"", sqlite3_errmsg(s->wdb));
		goto drop;
	}
	s->roll.now_ms = now_ms;
	rc = rollup_write(m, &io, &holds);
	if (!rc) {
		sqlite3_stmt *st = s->w[W_MARK_SET];
		sqlite3_bind_int64(st, 1, pos->mark);
		sqlite3_bind_int64(st, 2, now_ms);
		sqlite3_bind_int64(st, 3, s->roll.pruned_id);
		sqlite3_bind_int64(st, 4, s->roll.pruned_ts);
		rc = step_done(s, st);
	}
	if (!rc && vw_db_exec(s->wdb, "COMMIT", NULL, 0))
		rc = -EIO;
	if (rc) {
		vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
		goto drop;
	}
	log_debug("event=rollup_flush results=%llu holds=%zu mark=%lld",
	          (unsigned long long)pos->pending, holds, (long long)pos->mark);
	out->rows_rolled += pos->pending;
	out->rollup_flushes++;
	rollup_written(m, now_ms);
	return 0;
drop:
	log_error("event=rollup_failed step=flush mark=%lld error=%d", (long long)pos->mark, rc);
	rollup_mem_free(m);
	s->job = NULL;
	return rc;
}

/* Pruning, in its own small transaction: only results whose credits are persisted. */
static int rollup_prune(struct sqlite_be *s, int64_t now_ms, size_t *deleted)
{
	const struct rollup_pos *pos = rollup_pos(s->job);
	*deleted = 0;
	if (s->raw_retention_ms <= 0 || s->roll.pruned_id >= pos->flushed_mark)
		return 0;
	int rc = vw_db_exec(s->wdb, "BEGIN IMMEDIATE", NULL, 0);
	if (rc)
		return rc;
	int64_t id = s->roll.pruned_id, ts = s->roll.pruned_ts;
	if ((rc = prune_batch(s, now_ms, pos->flushed_mark, &id, &ts, deleted)) == 0 &&
	    id != s->roll.pruned_id) {
		sqlite3_stmt *st = s->w[W_PRUNE_MARK];
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, ts);
		rc = step_done(s, st);
	}
	if (!rc && vw_db_exec(s->wdb, "COMMIT", NULL, 0))
		rc = -EIO;
	if (rc) {
		vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
		*deleted = 0;
		return rc;
	}
	s->roll.pruned_id = id;
	s->roll.pruned_ts = ts;
	if (*deleted)
		log_info("event=results_pruned rows=%zu up_to_id=%lld", *deleted, (long long)id);
	return 0;
}

/* issue 16 C: rows older than retention_ms (column read by `oldest`, compared by `prune`),
 * oldest first, at most THUMB_PRUNE_BATCH per call in a transaction of their own; *deleted
 * says how many. Caught up, it costs one read of the table's first row. Used for the
 * pictures (thumbnails, by arrival) and for their access log (thumbnail_access, by at_ms). */
#define THUMB_PRUNE_BATCH 500
static int bounded_prune(struct sqlite_be *s, int64_t now_ms, int64_t retention_ms,
                         enum wstmt oldest_q, enum wstmt prune_q, const char *what, size_t *deleted)
{
	*deleted = 0;
	if (retention_ms <= 0)
		return 0;
	int64_t cutoff = now_ms - retention_ms, oldest = 0;
	int found, rc;
	if ((rc = int64_query(s, s->w[oldest_q], &oldest, &found)) != 0 || !found ||
	    oldest >= cutoff)
		return rc;
	if ((rc = vw_db_exec(s->wdb, "BEGIN IMMEDIATE", NULL, 0)) != 0)
		return rc;
	sqlite3_stmt *st = s->w[prune_q];
	sqlite3_bind_int64(st, 1, cutoff);
	sqlite3_bind_int(st, 2, THUMB_PRUNE_BATCH);
	if ((rc = step_done(s, st)) == 0)
		*deleted = (size_t)sqlite3_changes(s->wdb);
	if (!rc && vw_db_exec(s->wdb, "COMMIT", NULL, 0))
		rc = -EIO;
	if (rc) {
		vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
		*deleted = 0;
		return rc;
	}
	if (*deleted)
		log_info("event=%s_pruned rows=%zu", what, *deleted);
	return 0;
}

/* One slice: up to ROLLUP_SLICE new results in id order into memory, a flush when one is
 * due, and one prune batch. Returns 1 when more is waiting, 0 when caught up. */
static int sq_rollup(void *p, int64_t now_ms, struct store_stats *out)
{
	struct sqlite_be *s = p;
	int rc;
	if (!s->job && (rc = rollup_load(s)) != 0)
		return rc;
	struct rollup_mem *m = s->job;
	struct rollup_pos *pos = rollup_pos(m);
	if ((rc = exams_check_changed(s)) != 0)
		return rc;
	struct rollup_io io;
	roll_io(s, &io);
	sqlite3_stmt *st = s->w[W_NEW_RESULTS];
	sqlite3_bind_int64(st, 1, pos->mark);
	sqlite3_bind_int(st, 2, ROLLUP_SLICE);
	sqlite3_bind_int64(st, 3, s->roll.legacy_id);
	size_t rolled = 0;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		enum vw_status status;
		if (vw_status_parse(col_text(st, 4), &status) != 0)
			status = VW_STATUS_DOWN; /* the writer stores only known names */
		double interval = sqlite3_column_double(st, 6); /* NULL (legacy, no metric): 0 */
		if ((rc = rollup_result(m, &io, sqlite3_column_int64(st, 1), col_text(st, 2),
		                        col_text(st, 3), (int)status, sqlite3_column_int64(st, 5),
		                        credit_stale_ms(interval, s->default_stale_ms), now_ms)) !=
		    0)
			break;
		pos->mark = sqlite3_column_int64(st, 0);
		pos->pending++;
		rolled++;
	}
	sqlite3_reset(st);
	if (!rc && step != SQLITE_DONE && step != SQLITE_ROW) {
		log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		rc = sqlite_errno(step);
	}
	if (rc) {
		/* Memory may hold half a result: start again from the last flush. */
		log_error("event=rollup_failed step=roll mark=%lld error=%d", (long long)pos->mark,
		          rc);
		rollup_mem_free(m);
		s->job = NULL;
		return rc;
	}
	out->rollup_slices++;
	if (rollup_flush_due(m, now_ms, s->flush_ms) && (rc = rollup_flush(s, now_ms, out)) != 0)
		return rc;
	size_t deleted = 0, thumbs = 0, accesses = 0;
	if ((rc = rollup_prune(s, now_ms, &deleted)) != 0)
		return rc;
	out->rows_pruned += deleted;
	if ((rc = bounded_prune(s, now_ms, s->thumb_retention_ms, W_THUMB_OLDEST, W_THUMB_PRUNE,
	                        "thumbnails", &thumbs)) != 0)
		return rc;
	if ((rc = bounded_prune(s, now_ms, s->access_retention_ms, W_ACCESS_OLDEST, W_ACCESS_PRUNE,
	                        "thumbnail_access", &accesses)) != 0)
		return rc;
	return rolled == ROLLUP_SLICE || deleted > 0 || thumbs == THUMB_PRUNE_BATCH ||
	       accesses == THUMB_PRUNE_BATCH;
}

/* At close (writer thread joined): what memory holds beyond the last flush is written. */
static void rollup_close(struct sqlite_be *s)
{
	if (!s->job)
		return;
	struct store_stats st = {0};
	int64_t now = vw_now_ms();
	if (rollup_pos(s->job)->pending || rollup_flush_due(s->job, now, 0))
		rollup_flush(s, now, &st);
	rollup_mem_free(s->job);
	s->job = NULL;
}

/* --- reads (reader threads) ------------------------------------------------------------- */

static void sq_reader_close(void *p)
{
	struct sqlite_rd *rd = p;
	if (!rd)
		return;
	vw_db_finalize_all(rd->r, R_COUNT);
	for (size_t i = 0; i < rd->nhist; i++)
		sqlite3_finalize(rd->hist[i]);
	free(rd->hist);
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

/* A site summed over its agents' rows (SITE_ROWS), its strings copied out of the row. */
struct site_acc {
	char site[64], org[65], city[129];
	struct store_site s;
	int have, done;
};

static void acc_start(struct site_acc *a, sqlite3_stmt *st)
{
	snprintf(a->site, sizeof(a->site), "%s", col_text(st, 0));
	snprintf(a->org, sizeof(a->org), "%s", col_text(st, 1));
	snprintf(a->city, sizeof(a->city), "%s", col_text(st, 2));
	memset(&a->s, 0, sizeof(a->s));
	a->have = 1;
}

static void acc_add(struct site_acc *a, sqlite3_stmt *st)
{
	int64_t last = sqlite3_column_int64(st, 3);
	if (last > a->s.last_report_ms)
		a->s.last_report_ms = last;
	a->s.ok += sqlite3_column_int64(st, 4);
	a->s.degraded += sqlite3_column_int64(st, 5);
	a->s.down += sqlite3_column_int64(st, 6);
	for (int h = 0; h < STORE_H_COUNT; h++)
		for (int k = 0; k < VW_STATUS_COUNT; k++)
			a->s.health[h][k] += sqlite3_column_int64(st, 7 + h * VW_STATUS_COUNT + k);
}

static int read_failed(struct sqlite_rd *rd, sqlite3_stmt *st);

/* The next site of st (rows by site) in *out: 1, or 0 when there is none left, or -EIO. The
 * row that starts the following site waits in a. */
static int site_next(struct sqlite_rd *rd, sqlite3_stmt *st, struct site_acc *a,
                     struct site_acc *out)
{
	while (!a->done) {
		int step = sqlite3_step(st);
		if (step == SQLITE_DONE) {
			a->done = 1;
			break;
		}
		if (step != SQLITE_ROW)
			return read_failed(rd, st);
		if (a->have && strcmp(col_text(st, 0), a->site) != 0) {
			*out = *a;
			acc_start(a, st);
			acc_add(a, st);
			goto emit;
		}
		if (!a->have)
			acc_start(a, st);
		acc_add(a, st);
	}
	if (!a->have)
		return 0;
	*out = *a;
	a->have = 0;
emit:
	out->s.site = out->site;
	out->s.org = out->org;
	out->s.city = out->city;
	return 1;
}

static int read_failed(struct sqlite_rd *rd, sqlite3_stmt *st)
{
	log_error("event=store_read_failed error=\"%s\"", sqlite3_errmsg(rd->db));
	sqlite3_reset(st);
	return -EIO;
}

/* issue 16 E: per-site marks read in one statement — the sites with an exam session running
 * now (R_RUNNING: site), or with open problems (R_OPEN_PROBLEMS: site, count, silent) —
 * sorted (strcmp) for the list to look each site up. Names in one malloc'd block. */
struct site_marks {
	char **site;
	int64_t *count;
	int *silent;
	size_t n;
};

static void marks_free(struct site_marks *m)
{
	if (m->n)
		free(m->site[0]);
	free(m->site);
	free(m->count);
	free(m->silent);
	memset(m, 0, sizeof(*m));
}

static int marks_load(struct sqlite_rd *rd, sqlite3_stmt *st, struct site_marks *out)
{
	struct vw_buf names;
	vw_buf_init(&names, STORE_REPLY_MAX);
	size_t n = 0, cap = 0;
	int64_t *count = NULL;
	int *silent = NULL;
	int step, rc = 0;
	memset(out, 0, sizeof(*out));
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			int64_t *c = realloc(count, cap * sizeof(*c));
			if (c)
				count = c;
			int *sl = realloc(silent, cap * sizeof(*sl));
			if (sl)
				silent = sl;
			if (!c || !sl) {
				rc = -ENOMEM;
				break;
			}
		}
		const char *site = col_text(st, 0);
		vw_buf_append(&names, site, strlen(site) + 1);
		int cols = sqlite3_column_count(st);
		count[n] = cols > 1 ? sqlite3_column_int64(st, 1) : 1;
		silent[n] = cols > 2 ? sqlite3_column_int(st, 2) : 0;
		n++;
	}
	if (!rc && step != SQLITE_DONE && step != SQLITE_ROW)
		rc = read_failed(rd, st);
	sqlite3_reset(st);
	if (!rc && names.err)
		rc = names.err;
	if (!rc && n) {
		char *block = (char *)names.data;
		names.data = NULL; /* the block is out->site[0]'s now */
		if (!(out->site = malloc(n * sizeof(*out->site)))) {
			free(block);
			rc = -ENOMEM;
		} else {
			for (size_t i = 0; i < n; i++, block += strlen(block) + 1)
				out->site[i] = block;
			out->count = count, out->silent = silent, out->n = n;
			count = NULL, silent = NULL;
			/* ORDER BY site (BINARY: strcmp's order), which marks_find relies on */
			for (size_t i = 1; i < n; i++)
				if (strcmp(out->site[i - 1], out->site[i]) > 0) {
					rc = -EIO; /* not by site: a plan changed under us */
					log_error("event=store_read_failed error=\"site marks out "
					          "of order\"");
					break;
				}
		}
	}
	free(count);
	free(silent);
	vw_buf_free(&names);
	return rc;
}

/* The index of site in m, or -1. */
static long marks_find(const struct site_marks *m, const char *site)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->site[mid], site);
		if (!c)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int sq_list_sites(void *p, struct store_fill *f)
{
	struct sqlite_rd *rd = p;
	/* One read transaction: the summaries, sessions and problems agree. */
	if (vw_db_exec(rd->db, "BEGIN", NULL, 0))
		return -EIO;
	struct site_marks run = {0}, probs = {0};
	sqlite3_bind_int64(rd->r[R_RUNNING], 1, vw_now_ms());
	int rc = marks_load(rd, rd->r[R_RUNNING], &run);
	if (!rc)
		rc = marks_load(rd, rd->r[R_OPEN_PROBLEMS], &probs);
	sqlite3_stmt *st = rd->r[R_SITES];
	struct site_acc acc = {0}, site;
	int got = 0;
	while (!rc && (got = site_next(rd, st, &acc, &site)) == 1) {
		site.s.in_session = marks_find(&run, site.site) >= 0;
		long k = marks_find(&probs, site.site);
		if (k >= 0) {
			site.s.open_problems = probs.count[k];
			site.s.silent = probs.silent[k];
		}
		rc = store_fill_site(f, &site.s);
	}
	if (!rc && got < 0)
		rc = got;
	sqlite3_reset(st);
	marks_free(&run);
	marks_free(&probs);
	vw_db_exec(rd->db, "COMMIT", NULL, 0);
	return rc;
}

/* One site's in_session, open problems and silence, into s. */
static int site_marks_one(struct sqlite_rd *rd, const char *site, struct store_site *s)
{
	sqlite3_stmt *run = rd->r[R_RUNNING_SITE];
	sqlite3_bind_int64(run, 1, vw_now_ms());
	sqlite3_bind_text(run, 2, site, -1, SQLITE_TRANSIENT);
	int step = sqlite3_step(run);
	s->in_session = step == SQLITE_ROW;
	int rc = step == SQLITE_ROW || step == SQLITE_DONE ? 0 : read_failed(rd, run);
	sqlite3_reset(run);
	if (rc)
		return rc;
	sqlite3_stmt *pr = rd->r[R_OPEN_PROBLEMS_SITE];
	sqlite3_bind_text(pr, 1, site, -1, SQLITE_TRANSIENT);
	if ((step = sqlite3_step(pr)) == SQLITE_ROW) {
		s->open_problems = sqlite3_column_int64(pr, 0);
		s->silent = sqlite3_column_int(pr, 1);
	} else {
		rc = read_failed(rd, pr);
	}
	sqlite3_reset(pr);
	return rc;
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
	struct site_acc acc = {0}, one;
	int got = site_next(rd, st, &acc, &one);
	sqlite3_reset(st);
	if (got <= 0) {
		rc = got < 0 ? got : -ENOENT;
		goto out;
	}
	struct store_site summary = one.s;
	int step;
	rc = site_marks_one(rd, site, &summary);
	if (!rc)
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
		    .thumb_ts_ms = sqlite3_column_int64(st, 10), /* NULL: 0 */
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

/* --- exam sessions ---------------------------------------------------------------------- *
 * Rare writes (people entering a timetable) and small reads: statements are prepared per
 * call rather than kept, so nothing here weighs on ingest's prepared set. */

#define EXAM_COLS                                                                                  \
	"id, org, city, site, code, occupation, level, rooms, start_ms, end_ms, candidates,"       \
	" coalesce(cancelled_ms, 0), created_ms, updated_ms"

static void exam_row(sqlite3_stmt *st, struct store_exam_session *e)
{
	e->id = sqlite3_column_int64(st, 0);
	e->org = col_text(st, 1);
	e->city = col_text(st, 2);
	e->site = col_text(st, 3);
	e->code = col_text(st, 4);
	e->occupation = col_text(st, 5);
	e->level = col_text(st, 6);
	e->rooms = col_text(st, 7);
	e->start_ms = sqlite3_column_int64(st, 8);
	e->end_ms = sqlite3_column_int64(st, 9);
	e->candidates = sqlite3_column_int64(st, 10);
	e->cancelled_ms = sqlite3_column_int64(st, 11);
	e->created_ms = sqlite3_column_int64(st, 12);
	e->updated_ms = sqlite3_column_int64(st, 13);
}

/* The audit row's picture of a session: what a person entered, UTC ms as stored. */
static void exam_json(struct vw_buf *b, const struct store_exam_session *e)
{
	vw_buf_puts(b, "{\"org\":");
	vw_buf_json_str(b, e->org);
	vw_buf_puts(b, ",\"city\":");
	vw_buf_json_str(b, e->city);
	vw_buf_puts(b, ",\"site\":");
	vw_buf_json_str(b, e->site);
	vw_buf_puts(b, ",\"id\":");
	vw_buf_json_str(b, e->code);
	vw_buf_puts(b, ",\"occupation\":");
	vw_buf_json_str(b, e->occupation);
	vw_buf_puts(b, ",\"level\":");
	vw_buf_json_str(b, e->level);
	vw_buf_puts(b, ",\"rooms\":");
	vw_buf_json_str(b, e->rooms);
	vw_buf_printf(b, ",\"start_ms\":%lld,\"end_ms\":%lld,\"candidates\":%lld",
	              (long long)e->start_ms, (long long)e->end_ms, (long long)e->candidates);
	if (e->cancelled_ms)
		vw_buf_printf(b, ",\"cancelled_ms\":%lld", (long long)e->cancelled_ms);
	vw_buf_puts(b, "}");
}

static sqlite3_stmt *wprep(struct sqlite_be *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->wdb, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("event=store_prepare_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		return NULL;
	}
	return st;
}

/* One step of a one-shot statement, then finalized. */
static int wstep_once(struct sqlite_be *s, sqlite3_stmt *st)
{
	if (!st)
		return -EIO;
	int rc = sqlite3_step(st);
	int out = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sqlite_errno(rc);
	if (out)
		log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
	sqlite3_finalize(st);
	return out;
}

/* The change's audit row and the site's version, in the write's transaction. */
static int exam_changed(struct sqlite_be *s, const struct store_write *w, int64_t id,
                        const char *site, const char *action,
                        const struct store_exam_session *before,
                        const struct store_exam_session *after)
{
	struct vw_buf jb, ja;
	vw_buf_init(&jb, 1u << 16);
	vw_buf_init(&ja, 1u << 16);
	if (before)
		exam_json(&jb, before);
	exam_json(&ja, after);
	int rc = jb.err ? jb.err : ja.err;
	if (!rc) {
		sqlite3_stmt *st = wprep(s, "INSERT INTO exam_session_changes(session_id, at_ms,"
		                            " actor, action, before, after)"
		                            " VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
		if (st) {
			sqlite3_bind_int64(st, 1, id);
			sqlite3_bind_int64(st, 2, w->now_ms);
			sqlite3_bind_text(st, 3, w->actor ? w->actor : "", -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 4, action, -1, SQLITE_STATIC);
			if (before)
				sqlite3_bind_text(st, 5, vw_buf_cstr(&jb), -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 6, vw_buf_cstr(&ja), -1, SQLITE_STATIC);
		}
		rc = wstep_once(s, st);
	}
	if (!rc) {
		sqlite3_stmt *st =
		    wprep(s, "INSERT INTO site_versions(site, sessions) VALUES(?1, 1)"
		             " ON CONFLICT(site) DO UPDATE SET sessions = sessions + 1");
		if (st)
			sqlite3_bind_text(st, 1, site, -1, SQLITE_STATIC);
		rc = wstep_once(s, st);
	}
	vw_buf_free(&jb);
	vw_buf_free(&ja);
	return rc;
}

static int exam_create(struct sqlite_be *s, struct store_write *w)
{
	for (size_t i = 0; i < w->nexams; i++) {
		struct store_exam_session *e = &w->exams[i];
		int refused = store_exam_check_new(w, i);
		if (refused)
			return refused;
		sqlite3_stmt *st =
		    wprep(s, "INSERT INTO exam_sessions(org, city, site, code,"
		             " occupation, level, start_ms, end_ms, rooms, candidates,"
		             " created_ms, updated_ms)"
		             " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)"
		             " ON CONFLICT(org, code) DO NOTHING RETURNING id");
		if (!st)
			return -EIO;
		sqlite3_bind_text(st, 1, e->org, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, e->city, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, e->site, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, e->code, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, e->occupation, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, e->level, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, e->start_ms);
		sqlite3_bind_int64(st, 8, e->end_ms);
		sqlite3_bind_text(st, 9, e->rooms, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 10, e->candidates);
		sqlite3_bind_int64(st, 11, w->now_ms);
		int step = sqlite3_step(st);
		int64_t id = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		if (step == SQLITE_ROW)
			step = sqlite3_step(st);
		int err = step == SQLITE_DONE ? 0 : sqlite_errno(step);
		if (err)
			log_error("event=store_write_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		sqlite3_finalize(st);
		if (err)
			return err;
		if (!id)
			return store_exam_refuse(
			    w, i, -EEXIST, "the organisation already has a session %s", e->code);
		e->id = id;
		e->created_ms = e->updated_ms = w->now_ms;
		e->cancelled_ms = 0;
		int rc = exam_changed(s, w, id, e->site, "create", NULL, e);
		if (rc)
			return rc;
	}
	return 0;
}

/* update and cancel: the stored row, in scope, not cancelled, not started. */
static int exam_change(struct sqlite_be *s, struct store_write *w)
{
	struct store_exam_session *e = &w->exams[0];
	sqlite3_stmt *st = wprep(s, "SELECT " EXAM_COLS " FROM exam_sessions WHERE id = ?1"
	                            " AND (?2 = '' OR org = ?2) AND (?3 = '' OR city = ?3)");
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, e->id);
	sqlite3_bind_text(st, 2, w->scope_org ? w->scope_org : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, w->scope_city ? w->scope_city : "", -1, SQLITE_STATIC);
	int step = sqlite3_step(st), rc = 0;
	if (step != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (step != SQLITE_DONE)
			return -EIO;
		return store_exam_refuse(w, 0, -ENOENT, "no such session%s", "");
	}
	struct store_exam_session old, now;
	exam_row(st, &old);
	snprintf(w->site, sizeof(w->site), "%s", old.site);
	rc = store_exam_change(w, &old, &now);
	if (rc) {
		sqlite3_finalize(st);
		return rc;
	}
	sqlite3_stmt *up = wprep(s, "UPDATE exam_sessions SET occupation = ?2, level = ?3,"
	                            " rooms = ?4, start_ms = ?5, end_ms = ?6, candidates = ?7,"
	                            " cancelled_ms = nullif(?8, 0), updated_ms = ?9 WHERE id = ?1");
	if (up) {
		sqlite3_bind_int64(up, 1, now.id);
		sqlite3_bind_text(up, 2, now.occupation, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(up, 3, now.level, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(up, 4, now.rooms, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(up, 5, now.start_ms);
		sqlite3_bind_int64(up, 6, now.end_ms);
		sqlite3_bind_int64(up, 7, now.candidates);
		sqlite3_bind_int64(up, 8, now.cancelled_ms);
		sqlite3_bind_int64(up, 9, now.updated_ms);
	}
	rc = wstep_once(s, up);
	if (!rc)
		rc = exam_changed(s, w, now.id, now.site,
		                  w->op == STORE_EXAM_UPDATE ? "update" : "cancel", &old, &now);
	sqlite3_finalize(st); /* old's strings lived in it until here */
	return rc;
}

/* issue 16 C: the thumbnail_access rows of every STORE_THUMB_ACCESS request in list (the
 * first one only when one_only), in ONE transaction with the cached W_ACCESS: a venue page's
 * 40 tiles, or a token looping on one picture, cost the writer one commit per run of its
 * write queue instead of one each. Each request's status is the commit's: any failure rolls
 * all of them back and every one answers 503 (fail closed). */
static int thumb_access_rows(struct sqlite_be *s, struct store_write *list, int one_only)
{
	int rc = vw_db_exec(s->wdb, "BEGIN IMMEDIATE", NULL, 0);
	if (rc)
		log_error("event=store_begin_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
	int began = !rc;
	size_t n = 0;
	for (struct store_write *w = list; w && !rc; w = one_only ? NULL : w->next) {
		if (w->op != STORE_THUMB_ACCESS)
			continue;
		const struct store_thumb_access *a = w->access;
		if (!a) {
			w->status = -EINVAL; /* a caller's bug; the others' rows still go */
			continue;
		}
		w->now_ms = w->clock ? w->clock(w) : vw_now_ms();
		sqlite3_stmt *st = s->w[W_ACCESS];
		sqlite3_bind_int64(st, 1, a->at_ms ? a->at_ms : w->now_ms);
		sqlite3_bind_text(st, 2, a->actor ? a->actor : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, a->site ? a->site : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, a->camera ? a->camera : "", -1, SQLITE_STATIC);
		if (a->asked_ms)
			sqlite3_bind_int64(st, 5, a->asked_ms);
		else
			sqlite3_bind_null(st, 5);
		sqlite3_bind_int64(st, 6, a->thumb_ts_ms);
		sqlite3_bind_text(st, 7, a->peer ? a->peer : "", -1, SQLITE_STATIC);
		rc = step_done(s, st);
		n++;
	}
	if (began && !rc && vw_db_exec(s->wdb, "COMMIT", NULL, 0)) {
		log_error("event=store_commit_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		rc = -EIO;
	}
	if (rc && began)
		vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
	if (rc)
		log_error("event=thumbnail_access_failed requests=%zu err=%d", n, rc);
	for (struct store_write *w = list; w; w = one_only ? NULL : w->next) {
		if (w->op != STORE_THUMB_ACCESS || w->status == -EINVAL)
			continue;
		w->status = rc;
		if (rc)
			snprintf(w->err, sizeof(w->err), "the access could not be recorded");
	}
	return rc;
}

static int sq_thumb_access(void *p, struct store_write *list)
{
	return thumb_access_rows(p, list, 0);
}
static int notify_put(struct sqlite_be *s, struct store_write *w);

static int sq_exam_write(void *p, struct store_write *w)
{
	struct sqlite_be *s = p;
	if (w->op == STORE_PROBLEM_ACK || w->op == STORE_FEED_TICK)
		return feed_write(s, w);
	if (w->op == STORE_THUMB_ACCESS) {
		thumb_access_rows(s, w, 1);
		return w->status;
	}
	if (w->op == STORE_NOTIFY_PUT)
		return w->status = notify_put(s, w);
	if (!w->nexams)
		return w->status = -EINVAL;
	int rc = vw_db_exec(s->wdb, "BEGIN IMMEDIATE", NULL, 0);
	if (rc) {
		log_error("event=store_begin_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		return w->status = rc;
	}
	/* Now that no other writer can run: a change queued a moment before the start and
	 * run after it is late, and is refused as one. */
	w->now_ms = w->clock ? w->clock(w) : vw_now_ms();
	rc = w->op == STORE_EXAM_CREATE ? exam_create(s, w) : exam_change(s, w);
	if (!rc && vw_db_exec(s->wdb, "COMMIT", NULL, 0)) {
		log_error("event=store_commit_failed error=\"%s\"", sqlite3_errmsg(s->wdb));
		rc = -EIO;
	}
	if (rc) {
		vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
		if (w->op == STORE_EXAM_CREATE)
			for (size_t i = 0; i < w->nexams; i++)
				w->exams[i].id = 0; /* all or none: none */
	}
	return w->status = rc;
}

static int exam_fill_rows(struct sqlite_rd *rd, sqlite3_stmt *st, struct store_fill *f, int *count)
{
	int step, rc = 0;
	*count = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_exam_session e;
		exam_row(st, &e);
		if ((rc = store_fill_exam_session(f, &e)) != 0)
			break;
		(*count)++;
	}
	if (!rc && step != SQLITE_DONE) {
		log_error("event=store_read_failed error=\"%s\"", sqlite3_errmsg(rd->db));
		rc = -EIO;
	}
	sqlite3_finalize(st);
	return rc;
}

static int sq_exam_list(void *p, const struct store_exam_query *q, struct store_fill *f)
{
	struct sqlite_rd *rd = p;
	/* Built from the filters given, so each list uses its own index (site, org or city,
	 * then start_ms); every value is bound, never spliced. */
	char sql[512];
	int n = snprintf(sql, sizeof(sql), "SELECT " EXAM_COLS " FROM exam_sessions WHERE 1");
	if (q->site && q->site[0])
		n += snprintf(sql + n, sizeof(sql) - (size_t)n, " AND site = ?1");
	if (q->org && q->org[0])
		n += snprintf(sql + n, sizeof(sql) - (size_t)n, " AND org = ?2");
	if (q->city && q->city[0])
		n += snprintf(sql + n, sizeof(sql) - (size_t)n, " AND city = ?3");
	if (q->from_ms || q->to_ms)
		n += snprintf(sql + n, sizeof(sql) - (size_t)n,
		              " AND end_ms > ?4 AND start_ms < ?5");
	if (!q->with_cancelled)
		n += snprintf(sql + n, sizeof(sql) - (size_t)n, " AND cancelled_ms IS NULL");
	snprintf(sql + n, sizeof(sql) - (size_t)n, " ORDER BY start_ms, id");
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(rd->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("event=store_read_failed error=\"%s\"", sqlite3_errmsg(rd->db));
		return -EIO;
	}
	if (q->site && q->site[0])
		sqlite3_bind_text(st, 1, q->site, -1, SQLITE_STATIC);
	if (q->org && q->org[0])
		sqlite3_bind_text(st, 2, q->org, -1, SQLITE_STATIC);
	if (q->city && q->city[0])
		sqlite3_bind_text(st, 3, q->city, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, q->from_ms);
	sqlite3_bind_int64(st, 5, q->to_ms ? q->to_ms : INT64_MAX);
	int count;
	return exam_fill_rows(rd, st, f, &count);
}

static int sq_exam_get(void *p, int64_t id, struct store_fill *f)
{
	struct sqlite_rd *rd = p;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(rd->db, "SELECT " EXAM_COLS " FROM exam_sessions WHERE id = ?1", -1,
	                       &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	int count, rc = exam_fill_rows(rd, st, f, &count);
	return rc ? rc : count ? 0 : -ENOENT;
}

static int sq_exam_version(void *p, const char *site, int64_t *out)
{
	struct sqlite_rd *rd = p;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(rd->db, "SELECT sessions FROM site_versions WHERE site = ?1", -1,
	                       &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, site, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	*out = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : -EIO;
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

/* One row of an EXAMS() statement: the session and its totals (strings valid until the
 * statement steps again). */
static void scored_exam_row(sqlite3_stmt *st, struct store_exam *e)
{
	*e = (struct store_exam){
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
		e->ok_ms[c] = sqlite3_column_int64(st, 11 + 4 * c);
		e->degraded_ms[c] = sqlite3_column_int64(st, 12 + 4 * c);
		e->down_ms[c] = sqlite3_column_int64(st, 13 + 4 * c);
		e->ntargets[c] = sqlite3_column_int64(st, 14 + 4 * c);
	}
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
		struct store_exam e;
		scored_exam_row(st, &e);
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
		struct store_exam e;
		scored_exam_row(st, &e);
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

/* --- issue 16 E: site history ------------------------------------------------------------ */

const char *store_sqlite_history_sql(void)
{
	return hist_sql;
}

/* One stream of the merge: its statement, stepped to its current row (has_row). */
struct hist_stream {
	sqlite3_stmt *st;
	const char *agent;
	int has_row;
};

/* The reader's n-th kept statement, prepared on first use. */
static sqlite3_stmt *hist_stmt(struct sqlite_rd *rd, size_t n)
{
	if (n < rd->nhist)
		return rd->hist[n];
	sqlite3_stmt **p = realloc(rd->hist, (n + 1) * sizeof(*p));
	if (!p)
		return NULL;
	rd->hist = p;
	if (sqlite3_prepare_v3(rd->db, hist_sql, -1, SQLITE_PREPARE_PERSISTENT, &p[n], NULL) !=
	    SQLITE_OK) {
		log_error("event=store_prepare_failed error=\"%s\"", sqlite3_errmsg(rd->db));
		return NULL;
	}
	rd->nhist = n + 1;
	return p[n];
}

static int hist_step(struct sqlite_rd *rd, struct hist_stream *h)
{
	int step = sqlite3_step(h->st);
	h->has_row = step == SQLITE_ROW;
	return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : read_failed(rd, h->st);
}

/* The site's agents (id, name), names copied into arena. */
struct hist_agents {
	int64_t *id;
	char **name;
	size_t n;
	struct vw_buf arena;
};

static int hist_agents_load(struct sqlite_rd *rd, const char *site, struct hist_agents *a)
{
	sqlite3_stmt *st = rd->r[R_HIST_AGENTS];
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	size_t cap = 0;
	int step, rc = 0;
	vw_buf_init(&a->arena, 1u << 20);
	size_t *off = NULL;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (a->n == cap) {
			cap = cap ? cap * 2 : 4;
			int64_t *ids = realloc(a->id, cap * sizeof(*ids));
			if (ids)
				a->id = ids;
			size_t *o = realloc(off, cap * sizeof(*o));
			if (o)
				off = o;
			if (!ids || !o) {
				rc = -ENOMEM;
				break;
			}
		}
		const char *name = col_text(st, 1);
		a->id[a->n] = sqlite3_column_int64(st, 0);
		off[a->n++] = a->arena.len;
		vw_buf_append(&a->arena, name, strlen(name) + 1);
	}
	if (!rc && step != SQLITE_DONE && step != SQLITE_ROW)
		rc = read_failed(rd, st);
	sqlite3_reset(st);
	if (!rc && a->arena.err)
		rc = a->arena.err;
	if (!rc && a->n && !(a->name = malloc(a->n * sizeof(*a->name))))
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < a->n; i++)
		a->name[i] = a->arena.data + off[i];
	free(off);
	return rc;
}

static void hist_agents_free(struct hist_agents *a)
{
	free(a->id);
	free(a->name);
	vw_buf_free(&a->arena);
}

/* Binds stream h's bounds and reads its first row. */
static int hist_start(struct sqlite_rd *rd, struct hist_stream *h,
                      const struct store_history_query *q, int64_t agent_id)
{
	int64_t hi_ts = INT64_MAX, hi_id = INT64_MAX;
	if (q->to_ms)
		hi_ts = q->to_ms - 1;
	if (q->before_id && q->before_ts_ms <= hi_ts) {
		hi_ts = q->before_ts_ms;
		hi_id = q->before_id;
	}
	sqlite3_stmt *st = h->st;
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_int64(st, 2, q->from_ms ? q->from_ms : INT64_MIN);
	sqlite3_bind_int64(st, 3, hi_ts);
	sqlite3_bind_int64(st, 4, hi_id);
	return hist_step(rd, h);
}

/* A page newest first: one stream per agent of the site runs down results_agent_ts in
 * (ts, id) order and the merge takes the newest current row each time, checking kind and
 * target as it goes. It stops at limit rows (the next match, when there is one, says a next
 * page exists) or after scan_max rows examined: a filter that matches rarely then gets a
 * short page whose cursor continues from the last row examined, so no request walks a whole
 * history. */
static int sq_site_history(void *p, const struct store_history_query *q, struct store_fill *f,
                           int64_t *next_ts, int64_t *next_id)
{
	struct sqlite_rd *rd = p;
	*next_ts = *next_id = 0;
	if (vw_db_exec(rd->db, "BEGIN", NULL, 0))
		return -EIO;
	struct hist_agents ag = {0};
	struct hist_stream *hs = NULL;
	size_t nh = 0;
	int rc = hist_agents_load(rd, q->site, &ag);
	if (!rc && !ag.n)
		rc = -ENOENT;
	if (rc)
		goto out;
	/* The site's summary first (org, city): the API checks the asker's scope with it. */
	sqlite3_stmt *sum = rd->r[R_SITE];
	sqlite3_bind_text(sum, 1, q->site, -1, SQLITE_TRANSIENT);
	struct site_acc acc = {0}, one;
	int got = site_next(rd, sum, &acc, &one);
	rc = got < 0 ? got : got == 0 ? -ENOENT : store_fill_site(f, &one.s);
	sqlite3_reset(sum);
	if (rc)
		goto out;
	if (!(hs = calloc(ag.n, sizeof(*hs)))) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; !rc && i < ag.n; i++) {
		hs[i].agent = ag.name[i];
		if (!(hs[i].st = hist_stmt(rd, i)))
			rc = -EIO;
		else
			nh = i + 1, rc = hist_start(rd, &hs[i], q, ag.id[i]);
	}
	long scan_max = q->scan_max > 0 ? q->scan_max : STORE_HISTORY_SCAN_MAX;
	long examined = 0;
	int taken = 0;
	int64_t last_ts = 0, last_id = 0; /* the last row examined */
	int64_t page_ts = 0, page_id = 0; /* the last row taken */
	while (!rc) {
		struct hist_stream *best = NULL;
		int64_t bts = 0, bid = 0;
		for (size_t i = 0; i < nh; i++) {
			if (!hs[i].has_row)
				continue;
			int64_t ts = sqlite3_column_int64(hs[i].st, 8),
			        id = sqlite3_column_int64(hs[i].st, 0);
			if (!best || ts > bts || (ts == bts && id > bid))
				best = &hs[i], bts = ts, bid = id;
		}
		if (!best)
			break; /* every stream ran out: no next page */
		if (examined == scan_max) {
			*next_ts = last_ts,
			*next_id = last_id; /* continue after the last examined */
			break;
		}
		examined++;
		sqlite3_stmt *st = best->st;
		if ((!q->kind || strcmp(col_text(st, 1), q->kind) == 0) &&
		    (!q->target || strcmp(col_text(st, 2), q->target) == 0)) {
			if (taken == q->limit) {
				/* a row beyond the page: the next page starts after its last row */
				*next_ts = page_ts, *next_id = page_id;
				break;
			}
			struct store_target t = {
			    .agent = best->agent,
			    .kind = col_text(st, 1),
			    .target = col_text(st, 2),
			    .status = col_text(st, 3),
			    .session = col_text(st, 4),
			    .codec = col_text(st, 5),
			    .faults = col_text(st, 6),
			    .metrics = col_text(st, 7),
			    .ts_ms = bts,
			    .seq = sqlite3_column_int64(st, 9),
			};
			if ((rc = store_fill_target(f, &t)) != 0)
				break;
			taken++;
			page_ts = bts, page_id = bid;
		}
		last_ts = bts, last_id = bid;
		rc = hist_step(rd, best);
	}
out:
	for (size_t i = 0; i < nh; i++) {
		sqlite3_reset(hs[i].st);
		sqlite3_clear_bindings(hs[i].st);
	}
	free(hs);
	hist_agents_free(&ag);
	vw_db_exec(rd->db, "COMMIT", NULL, 0);
	return rc;
}

/* --- issue 16 (A): events and problems (reader threads) ---------------------------------- */

static int sq_events_after(void *p, const struct store_events_query *q, struct store_fill *f,
                           int64_t *pruned_id, int64_t *last_id)
{
	struct sqlite_rd *rd = p;
	/* One snapshot: the marks and the rows agree. */
	if (vw_db_exec(rd->db, "BEGIN", NULL, 0))
		return -EIO;
	int rc = 0, step;
	sqlite3_stmt *st = rd->r[R_EVENTS_MARKS];
	if ((step = sqlite3_step(st)) != SQLITE_ROW) {
		rc = read_failed(rd, st);
		goto out;
	}
	*pruned_id = sqlite3_column_int64(st, 0);
	*last_id = sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	st = rd->r[q->org ? R_EVENTS_ORG : q->city ? R_EVENTS_CITY : R_EVENTS_AFTER];
	sqlite3_bind_int64(st, 1, q->after_id);
	sqlite3_bind_int64(st, 2, (int64_t)q->limit);
	if (q->org || q->city)
		sqlite3_bind_text(st, 3, q->org ? q->org : q->city, -1, SQLITE_TRANSIENT);
	size_t bytes = 0;
	while ((q->max_bytes == 0 || bytes < q->max_bytes) &&
	       (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_event ev = {sqlite3_column_int64(st, 0),
		                         sqlite3_column_int64(st, 1),
		                         col_text(st, 2),
		                         col_text(st, 3),
		                         col_text(st, 4),
		                         col_text(st, 5),
		                         col_text(st, 6)};
		bytes += strlen(ev.data);
		if ((rc = store_fill_event(f, &ev)) != 0)
			break;
	}
	if (!rc && step != SQLITE_DONE && step != SQLITE_ROW)
		rc = read_failed(rd, st);
	sqlite3_reset(st);
out:
	vw_db_exec(rd->db, "COMMIT", NULL, 0);
	return rc;
}

/* issue 16 C: the site's summary and one picture, from one snapshot. */
static int sq_thumbnail(void *p, const char *site, const char *camera, int64_t at_ms,
                        struct store_fill *f)
{
	struct sqlite_rd *rd = p;
	if (vw_db_exec(rd->db, "BEGIN", NULL, 0))
		return -EIO;
	int rc = 0;
	sqlite3_stmt *st = rd->r[R_SITE];
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	struct site_acc acc = {0}, one;
	int step = site_next(rd, st, &acc, &one);
	sqlite3_reset(st);
	if (step <= 0) {
		rc = step < 0 ? step : -ENOENT;
		goto out;
	}
	rc = store_fill_site(f, &one.s);
	if (rc)
		goto out;
	st = rd->r[R_THUMB];
	sqlite3_bind_text(st, 1, site, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, camera, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 3, at_ms > 0 ? at_ms : INT64_MAX);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		rc = store_fill_thumb(f, sqlite3_column_blob(st, 3),
		                      (size_t)sqlite3_column_bytes(st, 3), col_text(st, 0),
		                      sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2));
	else if (step != SQLITE_DONE)
		rc = read_failed(rd, st);
	sqlite3_reset(st);
out:
	vw_db_exec(rd->db, "COMMIT", NULL, 0);
	return rc;
}

static void bind_opt(sqlite3_stmt *st, int i, const char *v)
{
	if (v && v[0])
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static int sq_problems_list(void *p, const struct store_problem_query *q, int64_t now_ms,
                            struct store_fill *f)
{
	struct sqlite_rd *rd = p;
	/* The narrowest index the query names (store.c makes "" NULL). */
	sqlite3_stmt *st = rd->r[q->site   ? R_PROBLEMS_SITE
	                         : q->city ? R_PROBLEMS_CITY
	                         : q->org  ? R_PROBLEMS_ORG
	                                   : R_PROBLEMS];
	sqlite3_bind_int(st, 1, q->state);
	bind_opt(st, 2, q->city);
	bind_opt(st, 3, q->site);
	bind_opt(st, 4, q->org);
	sqlite3_bind_int64(st, 5, q->from_ms);
	sqlite3_bind_int64(st, 6, q->to_ms);
	sqlite3_bind_int64(st, 7, q->before_start_ms);
	sqlite3_bind_int64(st, 8, q->before_id);
	sqlite3_bind_int64(st, 9, (int64_t)q->limit);
	int rc = 0, step;
	struct vw_buf d;
	vw_buf_init(&d, 1u << 20);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_problem pr;
		problem_row(st, &pr);
		vw_buf_reset(&d);
		if ((rc = store_problem_json(&d, &pr, now_ms)) != 0)
			break;
		struct store_event ev = {pr.id,  pr.start_ms, "problem",      pr.site,
		                         pr.org, pr.city,     vw_buf_cstr(&d)};
		if ((rc = store_fill_event(f, &ev)) != 0)
			break;
	}
	vw_buf_free(&d);
	if (!rc && step != SQLITE_DONE)
		rc = read_failed(rd, st);
	sqlite3_reset(st);
	return rc;
}

/* --- issue 16 D: notifications ---------------------------------------------------------- */

/* STORE_NOTIFY_PUT: every row of w->notes in one transaction. */
static int notify_put(struct sqlite_be *s, struct store_write *w)
{
	static const char ins[] =
	    "INSERT INTO notifications(sink, problem_id, event_id, event, site, org, city, state,"
	    " attempts, last_error, next_attempt_ms, sent_ms, created_ms, data, dedup_key)"
	    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
	    " CASE ?4 WHEN 'updated' THEN 'updated:' || ?3 ELSE ?4 END)"
	    " ON CONFLICT(sink, problem_id, dedup_key) DO NOTHING RETURNING id";
	/* Whether the sink was told the problem opened (or is being told): what a closed or
	 * acked row with if_opened needs. The unique key's index answers it. */
	static const char told[] = "SELECT 1 FROM notifications WHERE sink = ?1 AND problem_id = ?2"
	                           " AND dedup_key = 'opened' AND state IN ('pending', 'sent')";
	static const char upd[] = "UPDATE notifications SET state = ?2, attempts = ?3,"
	                          " last_error = ?4, next_attempt_ms = ?5, sent_ms = ?6"
	                          " WHERE id = ?1";
	sqlite3_stmt *si = NULL, *su = NULL, *so = NULL;
	unsigned char *was_new = calloc(w->nnotes ? w->nnotes : 1, 1);
	if (!was_new)
		return -ENOMEM;
	for (size_t i = 0; i < w->nnotes; i++)
		was_new[i] = w->notes[i].id == 0;
	int rc = vw_db_exec(s->wdb, "BEGIN IMMEDIATE", NULL, 0);
	if (rc) {
		free(was_new);
		return rc;
	}
	if (sqlite3_prepare_v2(s->wdb, ins, -1, &si, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->wdb, upd, -1, &su, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->wdb, told, -1, &so, NULL) != SQLITE_OK) {
		rc = -EIO;
		goto out;
	}
	for (size_t i = 0; i < w->nnotes && !rc; i++) {
		struct store_notification *n = &w->notes[i];
		n->unannounced = 0;
		if (!n->id && n->if_opened) {
			sqlite3_reset(so);
			sqlite3_bind_text(so, 1, n->sink, -1, SQLITE_STATIC);
			sqlite3_bind_int64(so, 2, n->problem_id);
			int step = sqlite3_step(so);
			sqlite3_reset(so);
			if (step == SQLITE_DONE) {
				n->unannounced = 1; /* never told it opened: no row */
				continue;
			}
			if (step != SQLITE_ROW) {
				rc = sqlite_errno(step);
				break;
			}
		}
		sqlite3_stmt *st = n->id ? su : si;
		sqlite3_reset(st);
		if (n->id) {
			sqlite3_bind_int64(st, 1, n->id);
			sqlite3_bind_text(st, 2, n->state, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, n->attempts);
			sqlite3_bind_text(st, 4, n->last_error ? n->last_error : "", -1,
			                  SQLITE_STATIC);
			sqlite3_bind_int64(st, 5, n->next_attempt_ms);
			sqlite3_bind_int64(st, 6, n->sent_ms);
		} else {
			sqlite3_bind_text(st, 1, n->sink, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, n->problem_id);
			sqlite3_bind_int64(st, 3, n->event_id);
			sqlite3_bind_text(st, 4, n->event, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 5, n->site, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 6, n->org ? n->org : "", -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 7, n->city ? n->city : "", -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 8, n->state, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 9, n->attempts);
			sqlite3_bind_text(st, 10, n->last_error ? n->last_error : "", -1,
			                  SQLITE_STATIC);
			sqlite3_bind_int64(st, 11, n->next_attempt_ms);
			sqlite3_bind_int64(st, 12, n->sent_ms);
			sqlite3_bind_int64(st, 13, n->created_ms);
			sqlite3_bind_text(st, 14, n->data ? n->data : "{}", -1, SQLITE_STATIC);
		}
		int step = sqlite3_step(st);
		if (step == SQLITE_ROW && !n->id)
			n->id = sqlite3_column_int64(st, 0);
		else if (step != SQLITE_DONE)
			rc = sqlite_errno(step);
		if (step == SQLITE_ROW)
			step = sqlite3_step(st); /* RETURNING: run the statement to its end */
	}
	/* Rows done with (sent, failed, suppressed) live as long as raw results: a few of the
	 * oldest go with each write, so the table stays bounded without a job of its own. */
	if (!rc && s->raw_retention_ms > 0) {
		sqlite3_stmt *pr = NULL;
		if (sqlite3_prepare_v2(s->wdb,
		                       "DELETE FROM notifications WHERE id IN (SELECT id FROM"
		                       " notifications WHERE state <> 'pending' AND created_ms < ?1"
		                       " ORDER BY created_ms LIMIT 16)",
		                       -1, &pr, NULL) != SQLITE_OK) {
			rc = -EIO;
		} else {
			sqlite3_bind_int64(pr, 1, vw_now_ms() - s->raw_retention_ms);
			if (sqlite3_step(pr) != SQLITE_DONE)
				rc = -EIO;
		}
		sqlite3_finalize(pr);
	}
out:
	if (rc)
		log_error("event=store_write_failed what=notifications error=\"%s\"",
		          sqlite3_errmsg(s->wdb));
	sqlite3_finalize(si);
	sqlite3_finalize(su);
	sqlite3_finalize(so);
	if (!rc && vw_db_exec(s->wdb, "COMMIT", NULL, 0))
		rc = -EIO;
	if (rc) {
		vw_db_exec(s->wdb, "ROLLBACK", NULL, 0);
		for (size_t i = 0; was_new && i < w->nnotes; i++)
			if (was_new[i])
				w->notes[i].id = 0; /* rolled back: not inserted after all */
	}
	free(was_new);
	return rc;
}

static int sq_notify_list(void *p, const struct store_notify_query *q, struct store_fill *f,
                          int64_t *max_event_id)
{
	struct sqlite_rd *rd = p;
	sqlite3_stmt *mx = NULL;
	*max_event_id = 0;
	if (sqlite3_prepare_v2(rd->db, "SELECT coalesce(max(event_id), 0) FROM notifications", -1,
	                       &mx, NULL) != SQLITE_OK) {
		log_error("event=store_read_failed error=\"%s\"", sqlite3_errmsg(rd->db));
		return -EIO;
	}
	if (sqlite3_step(mx) == SQLITE_ROW)
		*max_event_id = sqlite3_column_int64(mx, 0);
	sqlite3_finalize(mx);
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT id, sink, event, problem_id, event_id, site, org, city, state, attempts,"
	         " last_error, next_attempt_ms, sent_ms, created_ms, data FROM notifications"
	         " WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR city = ?2)"
	         " ORDER BY id %s LIMIT ?3",
	         q->oldest_first ? "ASC" : "DESC");
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(rd->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("event=store_read_failed error=\"%s\"", sqlite3_errmsg(rd->db));
		return -EIO;
	}
	if (q->state)
		sqlite3_bind_text(st, 1, q->state, -1, SQLITE_STATIC);
	if (q->city)
		sqlite3_bind_text(st, 2, q->city, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)q->limit);
	int step, rc = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_notification n = {
		    .id = sqlite3_column_int64(st, 0),
		    .sink = col_text(st, 1),
		    .event = col_text(st, 2),
		    .problem_id = sqlite3_column_int64(st, 3),
		    .event_id = sqlite3_column_int64(st, 4),
		    .site = col_text(st, 5),
		    .org = col_text(st, 6),
		    .city = col_text(st, 7),
		    .state = col_text(st, 8),
		    .attempts = sqlite3_column_int64(st, 9),
		    .last_error = col_text(st, 10),
		    .next_attempt_ms = sqlite3_column_int64(st, 11),
		    .sent_ms = sqlite3_column_int64(st, 12),
		    .created_ms = sqlite3_column_int64(st, 13),
		    .data = col_text(st, 14),
		};
		if ((rc = store_fill_notification(f, &n)) != 0)
			break;
	}
	if (!rc && step != SQLITE_DONE) {
		log_error("event=store_read_failed error=\"%s\"", sqlite3_errmsg(rd->db));
		rc = -EIO;
	}
	sqlite3_finalize(st);
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
    .write = sq_exam_write,
    .exam_list = sq_exam_list,
    .exam_get = sq_exam_get,
    .exam_version = sq_exam_version,
    .score_inputs = sq_score_inputs,
    .score_evidence = sq_score_evidence,
    .score_exam = sq_score_exam,
    .site_history = sq_site_history,
    .events_after = sq_events_after,
    .problems_list = sq_problems_list,
    .thumbnail = sq_thumbnail,
    .notify_list = sq_notify_list,
    .thumb_access = sq_thumb_access,
};
