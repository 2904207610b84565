/* postgresql: the store's PostgreSQL backend (issue 13) — one database that several
 * collectors may share: its schema and in-place migrations (table schema_version), the
 * writer's group-commit transaction with rows loaded by COPY, the results table partitioned
 * by day of arrival (retention drops whole partitions), and one connection per reader
 * thread. Implements store_ops (store_backend.h); nothing of libpq leaves this file.
 * Threads: open/close on the store_open/store_close caller; the write connection on the
 * writer thread only; each read connection on one reader thread. The rollup job (rollup.c's)
 * runs on the writer connection of the rollup lease's holder (pg_rollup). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pg_dsn.h"
#include "pg_lease.h"
#include "rollup.h"
#include "store_backend.h"
#include "vtime.h"

#define DAY_MS ((int64_t)86400000)
/* One batch's COPY text may reach this: [limits] max_body_bytes goes up to 1 GiB, and the
 * text of a row is about its JSON's size. PQputCopyData takes an int, so below 2 GiB. */
#define COPY_BUF_MAX ((size_t)1536 << 20)
/* Partitions made before they are needed: a batch never waits on DDL at midnight, and a
 * collector started late in the day already has tomorrow's. */
#define PARTS_AHEAD 2
/* Days of partitions made at once to keep the cached range whole (an arrival far from it,
 * a test's or a tool's old timestamps, starts a new range instead). */
#define PARTS_FILL_MAX 31
/* pg_advisory_xact_lock keys: the collectors sharing a database serialize their migrations
 * and their partition DDL on these (any constants unique to this schema: "vwmg" and "vwpt"
 * in ASCII, as decimal text for the SQL). */
#define LOCK_MIGRATE "1987538279"
#define LOCK_PARTS "1987539060"

/* issue 16 E: agents' per-class counts (enum store_health x ok/degraded/down, in that order),
 * as sqlite.c's agent_health keeps them. */
/* exam_totals' columns per class (sqlite.c's) */
#define TOTALS_COLS(c)                                                                             \
	" " c "_ok_ms bigint NOT NULL DEFAULT 0, " c "_degraded_ms bigint NOT NULL DEFAULT 0,"     \
	" " c "_down_ms bigint NOT NULL DEFAULT 0, " c "_targets bigint NOT NULL DEFAULT 0,"
#define HEALTH_CLASSES(X)                                                                          \
	X(connected) X(network) X(stream) X(recording) X(coverage) X(assessment) X(buffer)
#define HC_DEF(c)                                                                                  \
	", h_" #c "_ok bigint NOT NULL DEFAULT 0, h_" #c                                           \
	"_degraded bigint NOT NULL DEFAULT 0, h_" #c "_down bigint NOT NULL DEFAULT 0"
#define HC_SUM(c) ", sum(h_" #c "_ok), sum(h_" #c "_degraded), sum(h_" #c "_down)"
#define HEALTH_DEFS HEALTH_CLASSES(HC_DEF)
#define HEALTH_SUMS HEALTH_CLASSES(HC_SUM)
#define HC_NAME(c) "h_" #c "_ok", "h_" #c "_degraded", "h_" #c "_down",
static const char *const health_cols[STORE_H_COUNT * VW_STATUS_COUNT] = {HEALTH_CLASSES(HC_NAME)};
_Static_assert(VW_STATUS_COUNT == 3, "health columns are ok, degraded, down");

/* Schema history: migrations[i] takes schema_version i to i + 1, in one transaction.
 *
 * results is partitioned by received_ms (the collector's clock, so every row lands in a
 * partition made ahead, whatever check time an agent claims), one partition per UTC day:
 * retention is then a DROP of a whole day, never a mass DELETE that bloats the table and
 * the WAL. No unique key on (agent, epoch, seq): a partitioned table's unique index must
 * hold the partition key, and the dedup is the per-(agent, epoch) high-water mark read
 * under the agent row's lock. latest carries a copy of each target's newest result (not a
 * result id), so a site's page reads no partition at all and survives retention. */
static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE agents("
    " id bigserial PRIMARY KEY,"
    " site text NOT NULL,"
    " agent text NOT NULL,"
    " org text NOT NULL DEFAULT '',"
    " city text NOT NULL DEFAULT '',"
    " high_seq bigint NOT NULL DEFAULT 0,"
    " last_report_ms bigint NOT NULL DEFAULT 0,"
    " cam_ok bigint NOT NULL DEFAULT 0,"
    " cam_degraded bigint NOT NULL DEFAULT 0,"
    " cam_down bigint NOT NULL DEFAULT 0" HEALTH_DEFS ","
    " UNIQUE(site, agent));"
    "CREATE TABLE epochs("
    " agent_id bigint NOT NULL,"
    " epoch text NOT NULL,"
    " ord integer NOT NULL,"
    " high_seq bigint NOT NULL DEFAULT 0,"
    " first_ms bigint NOT NULL,"
    " last_ms bigint NOT NULL,"
    " PRIMARY KEY(agent_id, epoch));"
    "CREATE TABLE results("
    " id bigserial,"
    " agent_id bigint NOT NULL,"
    " epoch integer NOT NULL,"
    " seq bigint NOT NULL,"
    " ts_ms bigint NOT NULL,"
    " mono_ms bigint NOT NULL,"
    " kind text NOT NULL,"
    " target text NOT NULL,"
    " status text NOT NULL,"
    " session text,"
    " codec text,"
    " faults text NOT NULL,"
    " metrics text NOT NULL,"
    " received_ms bigint NOT NULL,"
    " interval_ms double precision NOT NULL DEFAULT 0"
    ") PARTITION BY RANGE (received_ms);"
    /* history and evidence read one agent's rows by check time (sqlite.c's
     * results_agent_ts); made on every partition */
    "CREATE INDEX results_agent_ts ON results(agent_id, ts_ms);"
    "CREATE TABLE latest("
    " agent_id bigint NOT NULL,"
    " kind text NOT NULL,"
    " target text NOT NULL,"
    " epoch integer NOT NULL,"
    " seq bigint NOT NULL,"
    " ts_ms bigint NOT NULL,"
    " status text NOT NULL,"
    " session text,"
    " codec text,"
    " faults text NOT NULL,"
    " metrics text NOT NULL,"
    /* every commit rewrites latest's rows: half of each page free lets those updates
     * stay on their page (HOT, no index entry each) */
    " PRIMARY KEY(agent_id, kind, target)) WITH (fillfactor = 50);"
    /* seqs an agent never sent (sqlite.c's migration 2 says why the mark moves on) */
    "CREATE TABLE seq_gaps("
    " agent_id bigint NOT NULL,"
    " epoch integer NOT NULL,"
    " first_seq bigint NOT NULL,"
    " last_seq bigint NOT NULL,"
    " received_ms bigint NOT NULL);",
    /* 2: exam sessions (sqlite.c's migration 4 says what each is); the indexes are those
     * sqlite.c ended up with (lists by site, org or city and start; running sessions by
     * start; a site's sessions by end). */
    "CREATE TABLE exam_sessions("
    " id bigserial PRIMARY KEY,"
    " org text NOT NULL,"
    " city text NOT NULL,"
    " site text NOT NULL,"
    " code text NOT NULL,"
    " occupation text NOT NULL,"
    " level text NOT NULL,"
    " start_ms bigint NOT NULL,"
    " end_ms bigint NOT NULL,"
    " rooms text NOT NULL,"
    " candidates bigint NOT NULL DEFAULT 0,"
    " cancelled_ms bigint,"
    " created_ms bigint NOT NULL,"
    " updated_ms bigint NOT NULL,"
    " UNIQUE(org, code));"
    "CREATE INDEX exam_sessions_site ON exam_sessions(site, start_ms);"
    "CREATE INDEX exam_sessions_org ON exam_sessions(org, start_ms);"
    "CREATE INDEX exam_sessions_city ON exam_sessions(city, start_ms);"
    "CREATE INDEX exam_sessions_start ON exam_sessions(start_ms);"
    "CREATE INDEX exam_sessions_site_end ON exam_sessions(site, end_ms);"
    "CREATE TABLE exam_session_changes("
    " id bigserial PRIMARY KEY,"
    " session_id bigint NOT NULL,"
    " at_ms bigint NOT NULL,"
    " actor text NOT NULL,"
    " action text NOT NULL,"
    " before text,"
    " after text NOT NULL);"
    "CREATE TABLE site_versions("
    " site text PRIMARY KEY,"
    " sessions bigint NOT NULL);",
    /* 3: issue 16 (A) problems, events and silence, as sqlite.c's migration 7 says them.
     * One difference: an event's id is not a sequence's. feed_mark.events_last_id is
     * bumped under its row lock in the transaction that stores the event, so ids become
     * visible in commit order across collectors (a sequence hands out 11 to one that
     * commits before another's 10, and a stream resumed after 11 never sees 10), and a
     * rolled-back id is never counted as stored. Targets not ok at the upgrade get their
     * problem from latest, starting at their latest result. */
    "CREATE TABLE problems("
    " id bigserial PRIMARY KEY,"
    " site text NOT NULL, org text NOT NULL, city text NOT NULL,"
    " agent text NOT NULL, kind text NOT NULL, target text NOT NULL,"
    " status text NOT NULL,"
    " worst text NOT NULL,"
    " severity text NOT NULL,"
    " faults text NOT NULL,"
    " start_ms bigint NOT NULL,"
    " end_ms bigint,"
    " in_session integer NOT NULL DEFAULT 0,"
    " ack_by text, ack_ms bigint, ack_message text);"
    "CREATE UNIQUE INDEX problems_open ON problems(site, agent, kind, target)"
    " WHERE end_ms IS NULL;"
    "CREATE INDEX problems_site_end ON problems(site, end_ms);"
    "CREATE INDEX problems_start ON problems(start_ms, id);"
    "CREATE INDEX problems_city_start ON problems(city, start_ms, id);"
    "CREATE INDEX problems_org_start ON problems(org, start_ms, id);"
    "CREATE TABLE events("
    " id bigint PRIMARY KEY,"
    " ts_ms bigint NOT NULL, type text NOT NULL,"
    " site text NOT NULL, org text NOT NULL, city text NOT NULL,"
    " data text NOT NULL);"
    "CREATE INDEX events_city ON events(city, id);"
    "CREATE INDEX events_org ON events(org, id);"
    "CREATE TABLE feed_mark("
    " id integer PRIMARY KEY CHECK(id = 1),"
    " events_pruned_id bigint NOT NULL,"
    " events_last_id bigint NOT NULL);"
    "INSERT INTO feed_mark VALUES(1, 0, 0);"
    "CREATE TABLE feed_sites("
    " site text PRIMARY KEY, org text NOT NULL, city text NOT NULL,"
    " last_batch_ms bigint NOT NULL,"
    " cadence_ms bigint NOT NULL DEFAULT 0,"
    " silent_id bigint);"
    "INSERT INTO feed_sites(site, org, city, last_batch_ms)"
    " SELECT site, max(org), max(city), max(last_report_ms) FROM agents GROUP BY site;"
    "INSERT INTO problems(site, org, city, agent, kind, target, status, worst, severity,"
    " faults, start_ms)"
    " SELECT a.site, a.org, a.city, a.agent, l.kind, l.target, l.status, l.status,"
    " CASE l.status WHEN 'down' THEN 'major' ELSE 'minor' END, l.faults, l.ts_ms"
    " FROM latest l JOIN agents a ON a.id = l.agent_id WHERE l.status <> 'ok';",
    /* 4: issue 16 (C) picture evidence, as sqlite.c's migration 8 says it: the JPEG a
     * stream result carried, written in the batch's commit, served newest-first per (site,
     * camera) from thumbnails_target_ts, pruned by arrival in bounded batches (oldest id
     * first: received_ms rises with id); and who was shown which picture. Not partitioned:
     * a picture is pruned after days, not kept for years like results, and a bounded
     * DELETE from the front of the id index stays cheap at that size. */
    "CREATE TABLE thumbnails("
    " id bigserial PRIMARY KEY,"
    " site text NOT NULL,"
    " agent text NOT NULL,"
    " target text NOT NULL,"
    " ts_ms bigint NOT NULL,"
    " seq bigint NOT NULL,"
    " received_ms bigint NOT NULL,"
    " jpeg bytea NOT NULL);"
    "CREATE INDEX thumbnails_target_ts ON thumbnails(site, target, ts_ms);"
    "CREATE TABLE thumbnail_access("
    " id bigserial PRIMARY KEY,"
    " at_ms bigint NOT NULL,"
    " actor text NOT NULL,"
    " site text NOT NULL,"
    " camera text NOT NULL,"
    " asked_ms bigint," /* NULL: the newest was asked for */
    " thumb_ts_ms bigint NOT NULL,"
    " peer text NOT NULL);",
    /* 5: issue 16 (D) notifications, as sqlite.c's migration 9 says them: one row per
     * (sink, problem, dedup_key), so a message goes out once however often its event is
     * seen (by any collector: the unique key is the database's). */
    "CREATE TABLE notifications("
    " id bigserial PRIMARY KEY,"
    " sink text NOT NULL,"
    " problem_id bigint NOT NULL,"
    " event_id bigint NOT NULL,"
    " event text NOT NULL,"
    " site text NOT NULL,"
    " org text NOT NULL,"
    " city text NOT NULL,"
    " state text NOT NULL CHECK(state IN ('pending', 'sent', 'failed', 'suppressed')),"
    " attempts bigint NOT NULL DEFAULT 0,"
    " last_error text NOT NULL DEFAULT '',"
    " next_attempt_ms bigint NOT NULL DEFAULT 0,"
    " sent_ms bigint NOT NULL DEFAULT 0,"
    " created_ms bigint NOT NULL,"
    " data text NOT NULL,"
    " dedup_key text NOT NULL,"
    " UNIQUE(sink, problem_id, dedup_key));"
    "CREATE INDEX notifications_state ON notifications(state, id);"
    "CREATE INDEX notifications_city ON notifications(city, id);"
    "CREATE INDEX notifications_event ON notifications(event_id);"
    "CREATE INDEX notifications_done ON notifications(created_ms) WHERE state <> 'pending';",
    /* 6: the singleton jobs' leases (pg_lease.h) */
    PG_LEASE_TABLE_SQL,
    /* 7: rollups, as sqlite.c's migrations 5 and 6 say them (the job is rollup.c's, run
     * under the rollup lease). Two differences. The job reads results by id below a
     * horizon (pg_rollup says why), so results gets an index on id, made on every
     * partition; pruning drops whole days (pruned_ts_ms: check times before it may be
     * gone). And sessions written by any collector, or by hand, move exam_gen (a
     * statement trigger, in the writer's transaction), which the job reads in the snapshot
     * it reads results in: a result it sees is never credited with a stale session list. */
    "CREATE INDEX results_id ON results(id);"
    "CREATE TABLE rollup_mark("
    " id integer PRIMARY KEY CHECK(id = 1),"
    " result_id bigint NOT NULL,"
    " at_ms bigint NOT NULL,"
    " pruned_ts_ms bigint NOT NULL);"
    "INSERT INTO rollup_mark VALUES(1, 0, 0, 0);"
    "CREATE TABLE rollup_state("
    " agent_id bigint NOT NULL,"
    " kind text NOT NULL,"
    " target text NOT NULL,"
    " status integer NOT NULL,"
    " ts_ms bigint NOT NULL,"
    " stale_ms bigint NOT NULL,"
    " until_ms bigint NOT NULL,"
    " PRIMARY KEY(agent_id, kind, target));"
    "CREATE TABLE rollup_agents("
    " agent_id bigint PRIMARY KEY,"
    " site text NOT NULL,"
    " last_ts_ms bigint NOT NULL);"
    "CREATE INDEX rollup_agents_site ON rollup_agents(site);"
    "CREATE TABLE exam_credits("
    " exam_id bigint NOT NULL,"
    " cls integer NOT NULL,"
    " target text NOT NULL,"
    " ok_ms bigint NOT NULL DEFAULT 0,"
    " degraded_ms bigint NOT NULL DEFAULT 0,"
    " down_ms bigint NOT NULL DEFAULT 0,"
    " results bigint NOT NULL DEFAULT 0,"
    " PRIMARY KEY(exam_id, cls, target));"
    "CREATE TABLE exam_totals("
    " exam_id bigint PRIMARY KEY," TOTALS_COLS("connected") TOTALS_COLS("network")
        TOTALS_COLS("stream") TOTALS_COLS("recording") TOTALS_COLS(
            "coverage") " updated_ms bigint NOT NULL DEFAULT 0);"
                        "CREATE TABLE rollup_days("
                        " agent_id bigint NOT NULL,"
                        " kind text NOT NULL,"
                        " target text NOT NULL,"
                        " day bigint NOT NULL," /* days since 1970-01-01, Asia/Shanghai */
                        " ok_ms bigint NOT NULL DEFAULT 0,"
                        " degraded_ms bigint NOT NULL DEFAULT 0,"
                        " down_ms bigint NOT NULL DEFAULT 0,"
                        " results bigint NOT NULL DEFAULT 0,"
                        " PRIMARY KEY(agent_id, kind, target, day));"
                        "CREATE TABLE exam_gen("
                        " id integer PRIMARY KEY CHECK(id = 1),"
                        " gen bigint NOT NULL);"
                        "INSERT INTO exam_gen VALUES(1, 0);"
                        "CREATE FUNCTION vw_exams_changed() RETURNS trigger LANGUAGE plpgsql AS"
                        " $$BEGIN UPDATE exam_gen SET gen = gen + 1 WHERE id = 1; RETURN NULL; "
                        "END$$;"
                        "CREATE TRIGGER exams_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
                        " ON exam_sessions FOR EACH STATEMENT EXECUTE FUNCTION vw_exams_changed();",
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* The COPY column lists, in the order copy_row and stage_row write the fields. */
#define RESULT_COLS                                                                                \
	"agent_id, epoch, seq, ts_ms, mono_ms, kind, target, status, session, codec, faults,"      \
	" metrics, received_ms, interval_ms"
#define LATEST_COLS                                                                                \
	"agent_id, kind, target, epoch, seq, ts_ms, status, session, codec, faults, metrics"
#define LATEST_COLS_DEF                                                                            \
	"agent_id bigint, kind text, target text, epoch integer, seq bigint, ts_ms bigint,"        \
	" status text, session text, codec text, faults text, metrics text"

/* Statements prepared on every connection that runs them (by name, on connect). */
struct pg_stmt {
	const char *name, *sql;
};
static const struct pg_stmt wstmts[] = {
    {"site_place", "SELECT org, city FROM agents WHERE site = $1 AND (org <> '' OR city <> '')"
                   " LIMIT 1"},
    {"agent_new", "INSERT INTO agents(site, agent, org, city, last_report_ms)"
                  " VALUES($1, $2, $3, $4, $5) ON CONFLICT (site, agent) DO NOTHING"},
    /* The lock that makes the mark a mark across collectors: a second collector's commit
     * of the same agent waits here until the first commits, then reads its mark. */
    {"agent_lock", "SELECT id FROM agents WHERE site = $1 AND agent = $2 FOR UPDATE"},
    {"epoch_get", "SELECT ord, high_seq FROM epochs WHERE agent_id = $1 AND epoch = $2"},
    {"epoch_recent", "SELECT count(*) FROM epochs WHERE agent_id = $1 AND epoch <> ''"
                     " AND first_ms >= $2"},
    {"epoch_last", "SELECT ord, high_seq, last_ms FROM epochs WHERE agent_id = $1"
                   " ORDER BY ord DESC LIMIT 1"},
    {"epoch_new", "INSERT INTO epochs(agent_id, epoch, ord, high_seq, first_ms, last_ms)"
                  " VALUES($1, $2, $3, 0, $4, $4)"},
    {"epoch_high", "UPDATE epochs SET high_seq = $3, last_ms = greatest(last_ms, $4)"
                   " WHERE agent_id = $1 AND epoch = $2"},
    {"latest_of", "SELECT kind, target, status FROM latest WHERE agent_id = $1"},
    {"gap", "INSERT INTO seq_gaps(agent_id, epoch, first_seq, last_seq, received_ms)"
            " VALUES($1, $2, $3, $4, $5)"},
    /* latest from the batch's stage: one row per target (the batch's newest of it) */
    {"latest_put", "WITH s AS (DELETE FROM latest_stage RETURNING " LATEST_COLS ")"
                   " INSERT INTO latest(" LATEST_COLS ") SELECT " LATEST_COLS " FROM s"
                   " ON CONFLICT (agent_id, kind, target) DO UPDATE SET epoch = excluded.epoch,"
                   " seq = excluded.seq, ts_ms = excluded.ts_ms, status = excluded.status,"
                   " session = excluded.session, codec = excluded.codec, faults = excluded.faults,"
                   " metrics = excluded.metrics"},
};
/* Exam sessions: rare writes by people, prepared with the rest all the same. */
#define EXAM_COLS                                                                                  \
	"id, org, city, site, code, occupation, level, rooms, start_ms, end_ms, candidates,"       \
	" coalesce(cancelled_ms, 0), created_ms, updated_ms"
static const struct pg_stmt xstmts[] = {
    {"exam_new", "INSERT INTO exam_sessions(org, city, site, code, occupation, level, start_ms,"
                 " end_ms, rooms, candidates, created_ms, updated_ms)"
                 " VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)"
                 " ON CONFLICT (org, code) DO NOTHING RETURNING id"},
    /* the row a change applies to, locked: another collector's change of it waits */
    {"exam_lock", "SELECT " EXAM_COLS " FROM exam_sessions WHERE id = $1"
                  " AND ($2 = '' OR org = $2) AND ($3 = '' OR city = $3) FOR UPDATE"},
    {"exam_set",
     "UPDATE exam_sessions SET occupation = $2, level = $3, rooms = $4,"
     " start_ms = $5, end_ms = $6, candidates = $7, cancelled_ms = nullif($8::bigint, 0),"
     " updated_ms = $9 WHERE id = $1"},
    {"exam_audit", "INSERT INTO exam_session_changes(session_id, at_ms, actor, action, before,"
                   " after) VALUES($1, $2, $3, $4, $5, $6)"},
    {"exam_bump", "INSERT INTO site_versions(site, sessions) VALUES($1, 1)"
                  " ON CONFLICT (site) DO UPDATE SET sessions = site_versions.sessions + 1"},
};
#define X_NSTMTS (sizeof(xstmts) / sizeof(xstmts[0]))

/* issue 16 (A): the feed's writes (sqlite.c's W_PROB_* and W_FEED_*), by the same names
 * as there. Parameters are cast where their use alone would leave their type open. */
#define PROBLEM_COLS                                                                               \
	"id, site, org, city, agent, kind, target, status, worst, severity, faults, start_ms,"     \
	" coalesce(end_ms, 0), in_session, ack_by, coalesce(ack_ms, 0), ack_message"
static const struct pg_stmt fstmts[] = {
    /* issue 13: a batch's agent's open problems, read once for the batch (problems_open,
     * the partial unique index, answers it by its prefix) */
    {"prob_of_agent", "SELECT id, org, city, kind, target, status, worst, severity, faults,"
                      " start_ms, in_session, ack_by, coalesce(ack_ms, 0), ack_message"
                      " FROM problems WHERE site = $1 AND agent = $2 AND end_ms IS NULL"},
    {"prob_new", "INSERT INTO problems(site, org, city, agent, kind, target, status, worst,"
                 " severity, faults, start_ms, in_session)"
                 " VALUES($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11) RETURNING id"},
    {"prob_set", "UPDATE problems SET status = $2, worst = $3, severity = $4, faults = $5,"
                 " in_session = $6 WHERE id = $1"},
    {"prob_close", "UPDATE problems SET end_ms = $2, in_session = greatest(in_session, $3)"
                   " WHERE id = $1"},
    /* issue 13: a batch's problem writes, one statement each (feed_end): the ids of those it
     * opened, in order; the final state of those it changed; those it opened */
    {"prob_ids", "SELECT nextval(pg_get_serial_sequence('problems', 'id'))"
                 " FROM generate_series(1, $1::int) ORDER BY 1"},
    {"prob_put", "UPDATE problems p SET status = u.status, worst = u.worst,"
                 " severity = u.severity, faults = u.faults, end_ms = nullif(u.end_ms, 0),"
                 " in_session = greatest(p.in_session, u.in_session)"
                 " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],"
                 " $6::bigint[], $7::int[]) AS u(id, status, worst, severity, faults, end_ms,"
                 " in_session) WHERE p.id = u.id"},
    {"prob_add", "INSERT INTO problems(id, site, org, city, agent, kind, target, status, worst,"
                 " severity, faults, start_ms, end_ms, in_session)"
                 " SELECT u.id, $1, $2, $3, $4, u.kind, u.target, u.status, u.worst,"
                 " u.severity, u.faults, u.start_ms, nullif(u.end_ms, 0), u.in_session"
                 " FROM unnest($5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[],"
                 " $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::int[])"
                 " AS u(id, kind, target, status, worst, severity, faults, start_ms, end_ms,"
                 " in_session)"},
    {"prob_get", "SELECT " PROBLEM_COLS " FROM problems WHERE id = $1"},
    /* the row lock: two collectors acking one problem, the second finds it acked */
    {"prob_get_lock", "SELECT " PROBLEM_COLS " FROM problems WHERE id = $1 FOR UPDATE"},
    {"prob_ack", "UPDATE problems SET ack_by = $2, ack_ms = $3, ack_message = $4 WHERE id = $1"},
    {"in_session", "SELECT 1 FROM exam_sessions WHERE site = $1 AND end_ms > $2"
                   " AND start_ms <= $3 AND cancelled_ms IS NULL LIMIT 1"},
    /* issue 13: the site's sessions over a batch's check times, read once for the batch */
    {"sessions_of", "SELECT start_ms, end_ms FROM exam_sessions WHERE site = $1"
                    " AND end_ms > $2 AND start_ms <= $3 AND cancelled_ms IS NULL"},
    /* A transaction's events take their ids just before its COMMIT (events_flush): n of
     * them, under feed_mark's row lock (migration 3 says why) held to the COMMIT, so ids
     * become visible in commit order and a rolled-back one is never counted. */
    {"events_take", "UPDATE feed_mark SET events_last_id = events_last_id + $1 WHERE id = 1"
                    " RETURNING events_last_id"},
    {"feed_site", "INSERT INTO feed_sites(site, org, city, last_batch_ms, cadence_ms)"
                  " VALUES($1, $2, $3, $4, $5) ON CONFLICT (site) DO UPDATE SET"
                  " org = excluded.org, city = excluded.city,"
                  " last_batch_ms = greatest(feed_sites.last_batch_ms, excluded.last_batch_ms),"
                  " cadence_ms = CASE WHEN excluded.cadence_ms > 0 THEN excluded.cadence_ms"
                  " ELSE feed_sites.cadence_ms END RETURNING silent_id"},
    {"feed_silent_set", "UPDATE feed_sites SET silent_id = $2 WHERE site = $1"},
    /* trunc: sqlite.c's CAST AS INTEGER truncates, ::bigint would round */
    {"feed_due", "SELECT site, org, city, last_batch_ms FROM feed_sites"
                 " WHERE silent_id IS NULL AND greatest(last_batch_ms, $2::bigint) +"
                 " CASE WHEN $3::bigint > 0 THEN $3::bigint ELSE trunc($4::float8 *"
                 " CASE WHEN cadence_ms > 0 THEN cadence_ms ELSE 60000 END)::bigint END"
                 " <= $1::bigint ORDER BY site COLLATE \"C\" LIMIT 1000"
                 /* two collectors' ticks: the second waits for the first's commit, then
                  * finds the rows it silenced no longer due (re-checked under the lock) */
                 " FOR UPDATE"},
    {"feed_count_open", "SELECT site, kind, status, severity FROM problems"
                        " WHERE end_ms IS NULL ORDER BY site COLLATE \"C\""},
    {"feed_count_sites", "SELECT count(*) FROM feed_sites"},
    {"prob_escalate", "SELECT p.id FROM problems p WHERE p.end_ms IS NULL"
                      " AND p.in_session = 0 AND EXISTS(SELECT 1 FROM exam_sessions e"
                      " WHERE e.site = p.site AND e.cancelled_ms IS NULL"
                      " AND e.start_ms <= $1 AND e.end_ms > $1) ORDER BY p.id LIMIT 1000"},
    /* the events' ts_ms rises with id (the writers' clocks stamp them): a prefix */
    {"events_prune_to", "SELECT max(id) FROM (SELECT id FROM events WHERE id > $1"
                        " AND ts_ms < $2 ORDER BY id LIMIT 2000) t"},
    {"events_prune", "DELETE FROM events WHERE id > $1 AND id <= $2"},
    {"events_mark", "UPDATE feed_mark SET events_pruned_id = greatest(events_pruned_id, $1)"
                    " WHERE id = 1"},
    {"events_mark_get", "SELECT events_pruned_id FROM feed_mark WHERE id = 1"},
    /* issue 16 (C); $7 is sent in binary (the picture's bytes as they are) */
    {"thumb", "INSERT INTO thumbnails(site, agent, target, ts_ms, seq, received_ms, jpeg)"
              " VALUES($1, $2, $3, $4, $5, $6, $7)"},
    {"thumb_oldest", "SELECT received_ms FROM thumbnails ORDER BY id LIMIT 1"},
    {"thumb_prune", "DELETE FROM thumbnails WHERE id IN"
                    " (SELECT id FROM thumbnails ORDER BY id LIMIT $2) AND received_ms < $1"},
    {"access", "INSERT INTO thumbnail_access(at_ms, actor, site, camera, asked_ms,"
               " thumb_ts_ms, peer) VALUES($1, $2, $3, $4, $5, $6, $7)"},
    {"access_oldest", "SELECT at_ms FROM thumbnail_access ORDER BY id LIMIT 1"},
    {"access_prune", "DELETE FROM thumbnail_access WHERE id IN"
                     " (SELECT id FROM thumbnail_access ORDER BY id LIMIT $2) AND at_ms < $1"},
    /* issue 16 (D): sqlite.c's notify_put statements */
    {"notify_ins", "INSERT INTO notifications(sink, problem_id, event_id, event, site, org, city,"
                   " state, attempts, last_error, next_attempt_ms, sent_ms, created_ms, data,"
                   " dedup_key) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
                   " $14, CASE $4::text WHEN 'updated' THEN 'updated:' || $3::bigint"
                   " ELSE $4::text END)"
                   " ON CONFLICT (sink, problem_id, dedup_key) DO NOTHING RETURNING id"},
    /* whether the sink was told the problem opened (or is being told) */
    {"notify_told", "SELECT 1 FROM notifications WHERE sink = $1 AND problem_id = $2"
                    " AND dedup_key = 'opened' AND state IN ('pending', 'sent')"},
    {"notify_upd", "UPDATE notifications SET state = $2, attempts = $3, last_error = $4,"
                   " next_attempt_ms = $5, sent_ms = $6 WHERE id = $1"},
    /* rows done with live as long as raw results: a few of the oldest go with each write */
    {"notify_prune", "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications"
                     " WHERE state <> 'pending' AND created_ms < $1 ORDER BY created_ms"
                     " LIMIT 16)"},
};
#define F_NSTMTS (sizeof(fstmts) / sizeof(fstmts[0]))

/* issue 13: the rollup job's (pg_rollup): sqlite.c's W_MARK_*, W_NEW_RESULTS, W_STATE_*,
 * W_AGENT*, W_EXAMS_SITE, W_CREDIT_*, W_TOTALS_* and W_DAY_ADD. A flush writes each table
 * with one statement of arrays (one row per key: the job's sums are keyed so). */
#define TOTALS_SUM(c, n)                                                                           \
	", coalesce(sum(ok) FILTER (WHERE cls = " n "), 0),"                                       \
	" coalesce(sum(deg) FILTER (WHERE cls = " n "), 0),"                                       \
	" coalesce(sum(down) FILTER (WHERE cls = " n "), 0),"                                      \
	" coalesce(sum(fresh) FILTER (WHERE cls = " n "), 0)"
#define TOTALS_NAMES(c) ", " c "_ok_ms, " c "_degraded_ms, " c "_down_ms, " c "_targets"
#define TOTALS_UPD(c)                                                                              \
	", " c "_ok_ms = t." c "_ok_ms + excluded." c "_ok_ms, " c "_degraded_ms = t." c           \
	"_degraded_ms + excluded." c "_degraded_ms, " c "_down_ms = t." c "_down_ms + excluded." c \
	"_down_ms, " c "_targets = t." c "_targets + excluded." c "_targets"
_Static_assert(STORE_CLASS_CONNECTED == 0 && STORE_CLASS_NETWORK == 1 && STORE_CLASS_STREAM == 2 &&
                   STORE_CLASS_RECORDING == 3 && STORE_CLASS_COVERAGE == 4,
               "roll_credits spells the classes' numbers");
static const struct pg_stmt jstmts[] = {
    {"roll_mark_get", "SELECT result_id FROM rollup_mark WHERE id = 1"},
    {"roll_mark_set", "UPDATE rollup_mark SET result_id = $1, at_ms = $2 WHERE id = 1"},
    {"roll_agents_load", "SELECT agent_id, site, last_ts_ms FROM rollup_agents"},
    {"roll_state_load", "SELECT agent_id, kind, target, status, ts_ms, stale_ms, until_ms"
                        " FROM rollup_state"},
    /* the horizon's two halves, in this order (pg_rollup) */
    {"roll_seq", "SELECT coalesce(pg_sequence_last_value("
                 "pg_get_serial_sequence('results', 'id')::regclass), 0)"},
    {"roll_snap", "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint"
                  " FROM pg_current_snapshot() s"},
    {"roll_gen", "SELECT gen FROM exam_gen WHERE id = 1"},
    /* results_id on each partition; no bound on received_ms: a backlog arrives late */
    {"roll_new", "SELECT id, agent_id, kind, target, status, ts_ms, interval_ms FROM results"
                 " WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3"},
    {"roll_agent_site", "SELECT site FROM agents WHERE id = $1"},
    {"roll_exams_site", "SELECT id, start_ms, end_ms, rooms FROM exam_sessions"
                        " WHERE site = $1 AND end_ms > $2 ORDER BY start_ms, id"},
    {"roll_holds", "INSERT INTO rollup_state(agent_id, kind, target, status, ts_ms, stale_ms,"
                   " until_ms) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[],"
                   " $4::int[], $5::bigint[], $6::bigint[], $7::bigint[])"
                   " ON CONFLICT (agent_id, kind, target) DO UPDATE SET status = excluded.status,"
                   " ts_ms = excluded.ts_ms, stale_ms = excluded.stale_ms,"
                   " until_ms = excluded.until_ms"},
    {"roll_agents", "INSERT INTO rollup_agents(agent_id, site, last_ts_ms)"
                    " SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])"
                    " ON CONFLICT (agent_id) DO UPDATE SET site = excluded.site,"
                    " last_ts_ms = greatest(rollup_agents.last_ts_ms, excluded.last_ts_ms)"},
    {"roll_days",
     "INSERT INTO rollup_days AS d(agent_id, kind, target, day, ok_ms,"
     " degraded_ms, down_ms, results) SELECT * FROM unnest($1::bigint[],"
     " $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],"
     " $7::bigint[], $8::bigint[])"
     " ON CONFLICT (agent_id, kind, target, day) DO UPDATE SET"
     " ok_ms = d.ok_ms + excluded.ok_ms,"
     " degraded_ms = d.degraded_ms + excluded.degraded_ms,"
     " down_ms = d.down_ms + excluded.down_ms, results = d.results + excluded.results"},
    /* A session's totals count the targets credited in it: a credit row new in this
     * flush adds one (fresh, read before the INSERT: a WITH's parts share one snapshot). */
    {"roll_credits",
     "WITH u AS (SELECT * FROM unnest($2::bigint[], $3::int[], $4::text[], $5::bigint[],"
     " $6::bigint[], $7::bigint[], $8::bigint[]) AS u(exam_id, cls, target, ok, deg, down, n)),"
     " f AS (SELECT u.*, CASE WHEN EXISTS(SELECT 1 FROM exam_credits c WHERE c.exam_id ="
     " u.exam_id AND c.cls = u.cls AND c.target = u.target) THEN 0 ELSE 1 END AS fresh FROM u),"
     " c AS (INSERT INTO exam_credits AS c(exam_id, cls, target, ok_ms, degraded_ms, down_ms,"
     " results) SELECT exam_id, cls, target, ok, deg, down, n FROM u"
     " ON CONFLICT (exam_id, cls, target) DO UPDATE SET ok_ms = c.ok_ms + excluded.ok_ms,"
     " degraded_ms = c.degraded_ms + excluded.degraded_ms,"
     " down_ms = c.down_ms + excluded.down_ms, results = c.results + excluded.results)"
     " INSERT INTO exam_totals AS t(exam_id" TOTALS_NAMES("connected") TOTALS_NAMES("network")
         TOTALS_NAMES("stream") TOTALS_NAMES("recording") TOTALS_NAMES(
             "coverage") ", updated_ms) SELECT exam_id" TOTALS_SUM("connected", "0")
             TOTALS_SUM("network", "1") TOTALS_SUM("stream", "2") TOTALS_SUM("recording", "3")
                 TOTALS_SUM(
                     "coverage",
                     "4") ", $1::bigint FROM f GROUP BY exam_id ON CONFLICT (exam_id) DO UPDATE SET"
                          " updated_ms = excluded.updated_ms" TOTALS_UPD("connected")
                              TOTALS_UPD("network") TOTALS_UPD("stream") TOTALS_UPD("recording")
                                  TOTALS_UPD("coverage")},
    /* retention: a day's partition goes only when the job rolled every row of it */
    {"roll_pruned", "UPDATE rollup_mark SET pruned_ts_ms = greatest(pruned_ts_ms, $1)"
                    " WHERE id = 1"},
};
#define J_NSTMTS (sizeof(jstmts) / sizeof(jstmts[0]))

enum {
	W_SITE_PLACE,
	W_AGENT_NEW,
	W_AGENT_LOCK,
	W_EPOCH_GET,
	W_EPOCH_RECENT,
	W_EPOCH_LAST,
	W_EPOCH_NEW,
	W_EPOCH_HIGH,
	W_LATEST_OF,
	W_GAP,
	W_LATEST_PUT,
	W_NSTMTS
};
_Static_assert(sizeof(wstmts) / sizeof(wstmts[0]) == W_NSTMTS, "one name per statement");

#define SITE_SUMMARY(where)                                                                        \
	"SELECT site, max(org), max(city), max(last_report_ms), sum(cam_ok), sum(cam_degraded),"   \
	" sum(cam_down)" HEALTH_SUMS " FROM agents " where                                         \
	" GROUP BY site ORDER BY site COLLATE \"C\""
/* issue 16 (A): a problems list; $2..$4 city, site, org (NULL = any) */
#define PROBLEMS(where)                                                                            \
	"SELECT " PROBLEM_COLS " FROM problems WHERE " where                                       \
	" AND ($1::int = 0 OR ($1::int = 1 AND end_ms IS NULL)"                                    \
	" OR ($1::int = 2 AND end_ms IS NOT NULL))"                                                \
	" AND ($2::text IS NULL OR city = $2::text) AND ($3::text IS NULL OR site = $3::text)"     \
	" AND ($4::text IS NULL OR org = $4::text)"                                                \
	" AND ($5::bigint = 0 OR end_ms IS NULL OR end_ms > $5::bigint)"                           \
	" AND ($6::bigint = 0 OR start_ms < $6::bigint)"                                           \
	" AND ($8::bigint = 0 OR start_ms < $7::bigint OR (start_ms = $7::bigint"                  \
	" AND id < $8::bigint))"                                                                   \
	" ORDER BY start_ms DESC, id DESC LIMIT $9"
/* issue 16 (D): notifications by id; $1 state, $2 city (NULL = any), $3 limit */
#define NOTIFY_LIST(order)                                                                         \
	"SELECT id, sink, event, problem_id, event_id, site, org, city, state, attempts,"          \
	" last_error, next_attempt_ms, sent_ms, created_ms, data FROM notifications"               \
	" WHERE ($1::text IS NULL OR state = $1::text) AND ($2::text IS NULL OR city = $2::text)"  \
	" ORDER BY id " order " LIMIT $3"
/* issue 13: sessions overlapping [$1, $2) not cancelled, with their totals (sqlite.c's
 * EXAMS): $3..$5 org, city, site (NULL = any); $6 the earliest start that can overlap
 * ($1 - the longest session, saturated in C: bigint arithmetic here would overflow). */
#define TOTALS_SEL(c)                                                                              \
	", coalesce(t." c "_ok_ms, 0), coalesce(t." c "_degraded_ms, 0),"                          \
	" coalesce(t." c "_down_ms, 0), coalesce(t." c "_targets, 0)"
#define SCORED_EXAMS(where)                                                                        \
	"SELECT e.id, e.org, e.city, e.site, e.code, e.occupation, e.level, e.rooms, e.start_ms,"  \
	" e.end_ms, e.candidates" TOTALS_SEL("connected") TOTALS_SEL("network")                    \
	    TOTALS_SEL("stream") TOTALS_SEL("recording")                                           \
	        TOTALS_SEL("coverage") " FROM exam_sessions e LEFT JOIN exam_totals t ON "         \
	                               "t.exam_id = e.id WHERE " where                             \
	                               " AND e.cancelled_ms IS NULL AND e.start_ms < $2::bigint "  \
	                               "AND e.end_ms > $1::bigint"                                 \
	                               " AND e.start_ms > $6::bigint"                              \
	                               " AND ($3::text IS NULL OR e.org = $3::text) AND "          \
	                               "($4::text IS NULL OR e.city = $4::text)"                   \
	                               " AND ($5::text IS NULL OR e.site = $5::text) AND "         \
	                               "($7::bigint IS NULL OR e.id = $7::bigint)"                 \
	                               " ORDER BY e.start_ms, e.id"
static const struct pg_stmt rstmts[] = {
    {"sites", SITE_SUMMARY("")},
    {"site", SITE_SUMMARY("WHERE site = $1")},
    /* strcmp's order, as sqlite.c's BINARY collation gives it */
    /* issue 16 (C): a camera's newest picture time, one seek of thumbnails_target_ts */
    {"targets", "SELECT a.agent, l.kind, l.target, l.status, l.session, l.codec, l.faults,"
                " l.metrics, l.ts_ms, l.seq, CASE WHEN l.kind = 'stream' THEN"
                " (SELECT max(t.ts_ms) FROM thumbnails t WHERE t.site = a.site"
                " AND t.target = l.target) END"
                " FROM agents a JOIN latest l ON l.agent_id = a.id"
                " WHERE a.site = $1"
                " ORDER BY l.kind COLLATE \"C\", l.target COLLATE \"C\", a.agent COLLATE \"C\""},
    {"high", "SELECT e.high_seq FROM agents a JOIN epochs e ON e.agent_id = a.id"
             " WHERE a.site = $1 AND a.agent = $2 AND e.epoch = $3"},
    {"count", "SELECT count(*) FROM results"},
    /* a list by the filters given: each empty filter is true at once, so one text serves
     * them all (bound values, never spliced) */
    {"exams", "SELECT " EXAM_COLS " FROM exam_sessions WHERE ($1 = '' OR site = $1)"
              " AND ($2 = '' OR org = $2) AND ($3 = '' OR city = $3)"
              " AND end_ms > $4 AND start_ms < $5 AND ($6 OR cancelled_ms IS NULL)"
              " ORDER BY start_ms, id"},
    {"exam", "SELECT " EXAM_COLS " FROM exam_sessions WHERE id = $1"},
    {"exam_version", "SELECT sessions FROM site_versions WHERE site = $1"},
    /* issue 16 E: the sites with a session running at $1 (one lasts at most
     * STORE_EXAM_MAX_MS, so the start index ranges over a day) */
    {"running", "SELECT DISTINCT site COLLATE \"C\" FROM exam_sessions WHERE start_ms <= $1"
                " AND start_ms > $1 - $2 AND end_ms > $1 AND cancelled_ms IS NULL"
                " ORDER BY 1"},
    {"running_site", "SELECT 1 FROM exam_sessions WHERE site = $3 AND start_ms <= $1"
                     " AND start_ms > $1 - $2 AND end_ms > $1 AND cancelled_ms IS NULL LIMIT 1"},
    /* issue 16 (A): open problems per site (problems_open holds only those); silent = one
     * of them is the site's site_silent (kind "site") */
    {"open_problems", "SELECT site COLLATE \"C\", count(*),"
                      " max(CASE WHEN kind = 'site' THEN 1 ELSE 0 END) FROM problems"
                      " WHERE end_ms IS NULL GROUP BY 1 ORDER BY 1"},
    {"open_problems_site", "SELECT count(*), coalesce(max(CASE WHEN kind = 'site' THEN 1"
                           " ELSE 0 END), 0) FROM problems WHERE site = $1 AND end_ms IS NULL"},
    {"events_marks", "SELECT events_pruned_id, events_last_id FROM feed_mark WHERE id = 1"},
    {"events_after", "SELECT id, ts_ms, type, site, org, city, data FROM events"
                     " WHERE id > $1 ORDER BY id LIMIT $2"},
    /* a scope's rows only (events_city, events_org) */
    {"events_city", "SELECT id, ts_ms, type, site, org, city, data FROM events"
                    " WHERE city = $3 AND id > $1 ORDER BY id LIMIT $2"},
    {"events_org", "SELECT id, ts_ms, type, site, org, city, data FROM events"
                   " WHERE org = $3 AND id > $1 ORDER BY id LIMIT $2"},
    /* newest start first, paged by (start_ms, id); an equality on the city, org or site
     * named lets the planner take that one's index (sqlite.c's R_PROBLEMS_*) */
    {"problems", PROBLEMS("true")},
    {"problems_city", PROBLEMS("city = $2")},
    {"problems_org", PROBLEMS("org = $4")},
    {"problems_site", PROBLEMS("site = $3")},
    {"thumb", "SELECT agent, ts_ms, seq, jpeg FROM thumbnails WHERE site = $1 AND target = $2"
              " AND ts_ms <= $3 ORDER BY ts_ms DESC, id DESC LIMIT 1"},
    /* issue 16 E: the site's agents, and one agent's stream of its history newest first by
     * (ts_ms, id) from results_agent_ts (sqlite.c's hist_sql), a chunk at a time: $2 ts_ms
     * >= from, $3/$4 the upper bound (ts_ms, id), exclusive. Not bounded by the partition
     * key: an agent's check times say nothing sure of arrival (an outbox may hold days), so
     * each partition's index is ranged instead. */
    {"hist_agents", "SELECT id, agent FROM agents WHERE site = $1 ORDER BY agent COLLATE \"C\""},
    /* issue 16 (D) */
    {"notify_max", "SELECT coalesce(max(event_id), 0) FROM notifications"},
    {"notify_asc", NOTIFY_LIST("ASC")},
    {"notify_desc", NOTIFY_LIST("DESC")},
    {"hist", "SELECT id, kind, target, status, session, codec, faults, metrics, ts_ms, seq"
             " FROM results WHERE agent_id = $1 AND ts_ms >= $2 AND ts_ms <= $3"
             " AND (ts_ms < $3 OR id < $4) ORDER BY ts_ms DESC, id DESC LIMIT $5"},
    /* issue 13: the score's reads (sqlite.c's R_ROLLED, R_EXAMS_*, R_CREDITS, R_EXAM,
     * R_EV_*). rolled: a site's rolled_to, sorted for rolled_to()'s search. */
    {"rolled", "SELECT site COLLATE \"C\", min(last_ts_ms) FROM rollup_agents GROUP BY 1"
               " ORDER BY 1"},
    {"score_site", SCORED_EXAMS("e.site = $5")},
    {"score_org", SCORED_EXAMS("e.org = $3")},
    {"score_city", SCORED_EXAMS("e.city = $4")},
    {"score_all", SCORED_EXAMS("true")},
    {"score_one", SCORED_EXAMS("e.id = $7")},
    {"credits", "SELECT cls, target, ok_ms, degraded_ms, down_ms, results FROM exam_credits"
                " WHERE exam_id = $1 ORDER BY cls, target COLLATE \"C\""},
    {"ev_exam", "SELECT e.site, e.rooms, e.start_ms, e.end_ms,"
                " (SELECT coalesce(max(st.stale_ms), 0) FROM rollup_state st"
                " JOIN agents a ON a.id = st.agent_id WHERE a.site = e.site),"
                " (SELECT pruned_ts_ms FROM rollup_mark WHERE id = 1)"
                " FROM exam_sessions e WHERE e.id = $1"},
    {"ev_targets", "SELECT DISTINCT st.target COLLATE \"C\" FROM agents a"
                   " JOIN rollup_state st ON st.agent_id = a.id AND st.kind = $2"
                   " WHERE a.site = $1 AND ($3::text IS NULL OR st.target = $3::text)"
                   " ORDER BY 1"},
    {"ev_rows", "SELECT a.agent, r.kind, r.target, r.status, r.session, r.codec, r.faults,"
                " r.metrics, r.ts_ms, r.seq FROM agents a JOIN results r ON r.agent_id = a.id"
                " AND r.kind = $2 AND r.target = $3 AND r.ts_ms >= $4 AND r.ts_ms < $5"
                " WHERE a.site = $1 ORDER BY r.seq, a.agent COLLATE \"C\""},
};
enum {
	R_SITES,
	R_SITE,
	R_TARGETS,
	R_HIGH,
	R_COUNT_RESULTS,
	R_EXAMS,
	R_EXAM,
	R_EXAM_VERSION,
	R_RUNNING,
	R_RUNNING_SITE,
	R_OPEN_PROBLEMS,
	R_OPEN_PROBLEMS_SITE,
	R_EVENTS_MARKS,
	R_EVENTS_AFTER,
	R_EVENTS_CITY,
	R_EVENTS_ORG,
	R_PROBLEMS,
	R_PROBLEMS_CITY,
	R_PROBLEMS_ORG,
	R_PROBLEMS_SITE,
	R_THUMB,
	R_HIST_AGENTS,
	R_NOTIFY_MAX,
	R_NOTIFY_ASC,
	R_NOTIFY_DESC,
	R_HIST,
	R_ROLLED,
	R_SCORE_SITE,
	R_SCORE_ORG,
	R_SCORE_CITY,
	R_SCORE_ALL,
	R_SCORE_ONE,
	R_CREDITS,
	R_EV_EXAM,
	R_EV_TARGETS,
	R_EV_ROWS,
	R_NSTMTS
};
_Static_assert(sizeof(rstmts) / sizeof(rstmts[0]) == R_NSTMTS, "one name per statement");

/* issue 13: a connection that broke is reset at its next use, at once the first time (a
 * database restart then costs at most the one request that found it gone); each failed
 * reset doubles the wait before the next, from RETRY_MIN_MS to RETRY_MAX_MS, with +-25 %
 * jitter so that collectors do not come back in step. Meanwhile the connection's users fail
 * at once with -ENOTCONN: no request waits on the network for a database that is away. */
#define RETRY_MIN_MS 250
#define RETRY_MAX_MS 30000
struct pg_retry {
	int64_t wait_ms;  /* 0: the next reset is immediate */
	int64_t at_mono;  /* no reset before this */
	int64_t attempts; /* failed resets since the connection was lost */
	uint64_t rng;
};

/* issue 13: the rollup job here (pg_rollup). A flush's arrays, per statement: roll_holds' 7,
 * roll_credits' 7, roll_days' 8, roll_agents' 3. */
enum { RA_HOLD = 0, RA_CREDIT = 7, RA_DAY = 14, RA_AGENT = 22, RA_COUNT = 25 };
struct pg_roll {
	struct rollup_mem *job; /* rollup.c's memory; NULL until loaded under the lease */
	int64_t epoch;          /* the rollup lease's epoch it was loaded under */
	int64_t safe_id;        /* every result id at or below it committed, or never will */
	/* ids at or below pend_id are safe once every transaction id below pend_xmax ended
	 * (pend_xmax 0: none waiting) */
	int64_t pend_id, pend_xmax;
	int64_t gen; /* exam_gen when the sessions cache was read */
	int64_t now_ms;
	struct vw_buf a[RA_COUNT];
};

struct pg_be {
	char *dsn, *passfile; /* for every connection; passfile NULL = libpq's default */
	char where[256];      /* the dsn without secrets, for errors and logs */
	PGconn *w;            /* the writer's (the store_open caller's until started) */
	int durable_normal;
	int64_t raw_retention_ms;
	int64_t thumb_retention_ms, access_retention_ms; /* store_options' (issue 16 C) */
	/* Days [parts_from, parts_until) whose partitions this collector made or found. */
	int64_t parts_from, parts_until;
	struct vw_buf copy, stage; /* COPY text of a batch's results and latest rows */
	char agent_update[2048];   /* the batch's final UPDATE of its agent row */
	/* issue 14: a problem or site moved since the last feed_count (1 at open) */
	int feed_dirty;
	int64_t feed_nsites;    /* feed_sites' rows at the last feed_count */
	struct pg_lease *lease; /* issue 13: the singleton jobs' leases */
	/* issue 13: the writer's reconnects while the database is away (writer_ready). */
	struct pg_retry wretry;
	uv_mutex_t avail_mu; /* avail is read by the loop thread (pg_avail) */
	struct store_avail avail;
	int64_t retry_at_mono; /* avail's retry_in_ms, as a monotonic time */
	int w_unset;           /* connected, but its session could not be set up again */
	int64_t default_stale_ms, flush_ms; /* store_options' (the rollup job) */
	struct pg_roll roll;
};

struct pg_rd {
	struct pg_be *be;
	PGconn *c;
	struct pg_retry retry; /* its own: a reader never waits on the writer's state */
	int unset;             /* connected, but its session could not be set up again */
};

/* --- connections and errors ------------------------------------------------------------- */

/* libpq's messages end in a newline and may hold more lines; one log line gets the first. */
static const char *one_line(const char *msg, char *buf, size_t n)
{
	snprintf(buf, n, "%s", msg ? msg : "");
	buf[strcspn(buf, "\r\n")] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '"')
			*p = '\'';
	return buf;
}

/* A failed result or connection as a negative errno: disk full and out of memory keep
 * their meaning, a serialization failure or deadlock is a retry (-EBUSY), a lost
 * connection -ENOTCONN, the rest -EIO. */
static int pg_errno(PGconn *c, const PGresult *r)
{
	if (PQstatus(c) != CONNECTION_OK)
		return -ENOTCONN;
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (!state)
		return -EIO;
	if (strcmp(state, "53100") == 0)
		return -ENOSPC;
	if (strcmp(state, "53200") == 0)
		return -ENOMEM;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "55P03") == 0)
		return -EBUSY;
	return -EIO;
}

/* Logs a failed step (which statement, libpq's reason) and returns its errno; r is
 * cleared. */
static int pg_fail(PGconn *c, PGresult *r, const char *event, const char *step)
{
	char msg[512];
	int rc = pg_errno(c, r);
	one_line(r ? PQresultErrorMessage(r) : PQerrorMessage(c), msg, sizeof(msg));
	if (!msg[0])
		one_line(PQerrorMessage(c), msg, sizeof(msg));
	log_error("event=%s backend=postgresql step=%s error=\"%s\"", event, step, msg);
	PQclear(r);
	return rc;
}

/* A command without parameters or rows (BEGIN, SAVEPOINT, DDL). */
static int pg_exec(PGconn *c, const char *event, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		PQclear(r);
		return 0;
	}
	return pg_fail(c, r, event, sql);
}

/* Ends a failed transaction: ROLLBACK, unless there is none to end (BEGIN never ran) or no
 * connection to send it on (the failure was the connection: the server rolled it back),
 * which would only add a second error line per request while the database is away. */
static void pg_rollback(PGconn *c, const char *event)
{
	PGTransactionStatusType t = PQtransactionStatus(c);
	if (t == PQTRANS_IDLE || t == PQTRANS_UNKNOWN)
		return;
	pg_exec(c, event, "ROLLBACK");
}

/* A prepared statement with text parameters; *out gets the rows (caller clears) or NULL
 * when the caller wants none. */
static int pg_run(PGconn *c, const char *event, const char *name, int n, const char *const *vals,
                  PGresult **out)
{
	PGresult *r = PQexecPrepared(c, name, n, vals, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		return pg_fail(c, r, event, name);
	if (out)
		*out = r;
	else
		PQclear(r);
	return 0;
}

static int64_t val_i64(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Up to 4 integers as text parameters, in one place the caller owns. */
struct ints {
	char v[4][24];
};
static const char *i64s(struct ints *t, int i, int64_t v)
{
	snprintf(t->v[i], sizeof(t->v[i]), "%" PRId64, v);
	return t->v[i];
}

/* "host=... port=... dbname=... user=..." of dsn, for people: never a password (the dsn
 * may not carry one; this does not show it even then). */
static void dsn_describe(const char *dsn, char *out, size_t n)
{
	static const char *const shown[] = {"host", "hostaddr", "port", "dbname", "user"};
	PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
	size_t len = 0;
	out[0] = '\0';
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++)
			if (o->val && o->val[0] && strcmp(o->keyword, shown[i]) == 0 && len < n)
				len += (size_t)snprintf(out + len, n - len, "%s%s=%s",
				                        len ? " " : "", o->keyword, o->val);
	if (!out[0])
		snprintf(out, n, "libpq defaults");
	PQconninfoFree(opts);
}

/* 0 when dsn parses and holds no password; else -EINVAL with the reason in err. */
static int dsn_check(const char *dsn, char *err, size_t errlen)
{
	char *why = NULL;
	PQconninfoOption *opts = PQconninfoParse(dsn, &why);
	if (!opts) {
		char msg[256];
		snprintf(err, errlen, "postgresql store: dsn: %s",
		         !why                    ? "out of memory"
		         : pg_dsn_may_quote(dsn) ? one_line(why, msg, sizeof(msg))
		                                 : PG_DSN_UNQUOTED);
		PQfreemem(why);
		return -EINVAL;
	}
	int rc = 0;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val && o->val[0] && strcmp(o->keyword, "password") == 0) {
			snprintf(err, errlen,
			         "postgresql store: dsn carries a password; use a "
			         "password file (password_file or PGPASSFILE)");
			rc = -EINVAL;
		}
	PQconninfoFree(opts);
	return rc;
}

static int prepare_all(PGconn *c, const struct pg_stmt *v, size_t n, char *err, size_t errlen,
                       const char *where)
{
	for (size_t i = 0; i < n; i++) {
		PGresult *r = PQprepare(c, v[i].name, v[i].sql, 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			char msg[256];
			snprintf(err, errlen, "postgresql store (%s): prepare %s: %s", where,
			         v[i].name, one_line(PQresultErrorMessage(r), msg, sizeof(msg)));
			PQclear(r);
			return -EIO;
		}
		PQclear(r);
	}
	return 0;
}

/* The server's notices (CREATE ... IF NOT EXISTS skipping, and the like) go to the log at
 * debug, one line each, instead of libpq's default of stderr. */
static void notice_log(void *arg, const char *msg)
{
	char line[512];
	(void)arg;
	log_debug("event=store_notice backend=postgresql notice=\"%s\"",
	          one_line(msg, line, sizeof(line)));
}

/* The session's settings: UTF-8 (what the agents send) and UTC. A PQreset opens a new
 * session without them, so every reset runs this again. */
static int session_setup(PGconn *c)
{
	if (PQsetClientEncoding(c, "UTF8") != 0)
		return -EIO;
	return pg_exec(c, "store_open_failed", "SET TIME ZONE 'UTC'");
}

/* A connection of dsn: UTC, UTF-8 (what the agents send), and the statements it runs. */
static int pg_connect(struct pg_be *s, const char *role, PGconn **out, char *err, size_t errlen)
{
	/* Before the dsn, so that its own values win: a database host that vanished is found
	 * in seconds, not after the kernel's two-hour keepalive or TCP's minutes of SYNs. */
	const char *keys[9] = {"connect_timeout",
	                       "keepalives_idle",
	                       "keepalives_interval",
	                       "keepalives_count",
	                       "dbname",
	                       "application_name",
	                       NULL,
	                       NULL};
	const char *vals[9] = {"5", "10", "5", "3", s->dsn, role, NULL, NULL};
	if (s->passfile)
		keys[6] = "passfile", vals[6] = s->passfile;
	/* expand_dbname: dsn is a whole connection string; what follows it overrides it */
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	char msg[512];
	if (!c) {
		snprintf(err, errlen, "postgresql store (%s): out of memory", s->where);
		return -ENOMEM;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(err, errlen, "postgresql store (%s): connect: %s", s->where,
		         one_line(PQerrorMessage(c), msg, sizeof(msg)));
		PQfinish(c);
		return -ECONNREFUSED;
	}
	PQsetNoticeProcessor(c, notice_log, NULL);
	if (PQserverVersion(c) < 150000) {
		snprintf(err, errlen,
		         "postgresql store (%s): server version %d, 15 or newer needed", s->where,
		         PQserverVersion(c));
		PQfinish(c);
		return -EPROTO;
	}
	if (session_setup(c) != 0) {
		snprintf(err, errlen, "postgresql store (%s): session set-up: %s", s->where,
		         one_line(PQerrorMessage(c), msg, sizeof(msg)));
		PQfinish(c);
		return -EIO;
	}
	*out = c;
	return 0;
}

/* --- schema ------------------------------------------------------------------------------ */

static int migrate(struct pg_be *s, char *err, size_t errlen)
{
	PGconn *c = s->w;
	char msg[512];
	struct ints t;
	/* Collectors starting together: one migrates, the others wait and find it done. */
	int rc = pg_exec(c, "store_open_failed", "BEGIN");
	if (!rc)
		rc = pg_exec(c, "store_open_failed",
		             "SELECT pg_advisory_xact_lock(" LOCK_MIGRATE ")");
	if (!rc)
		rc = pg_exec(c, "store_open_failed",
		             "CREATE TABLE IF NOT EXISTS schema_version(version integer NOT NULL)");
	PGresult *r = NULL;
	if (!rc && !(r = PQexec(c, "SELECT max(version) FROM schema_version"),
	             PQresultStatus(r) == PGRES_TUPLES_OK))
		rc = pg_fail(c, r, "store_open_failed", "schema_version"), r = NULL;
	if (rc) {
		snprintf(err, errlen, "postgresql store (%s): schema_version: %s", s->where,
		         one_line(PQerrorMessage(c), msg, sizeof(msg)));
		goto fail;
	}
	int have = (int)val_i64(r, 0, 0);
	PQclear(r);
	if (have > NMIGRATIONS) {
		snprintf(err, errlen,
		         "postgresql store (%s): schema version %d is newer than this collector's "
		         "%d: run the newer collector, or restore a matching database",
		         s->where, have, NMIGRATIONS);
		rc = -EPROTO;
		goto fail;
	}
	for (int v = have; v < NMIGRATIONS; v++) {
		const char *vals[1] = {i64s(&t, 0, v + 1)};
		r = NULL; /* a failed migration leaves no result of this pass to clear */
		if ((rc = pg_exec(c, "store_migrate_failed", migrations[v])) != 0 ||
		    (r = PQexecParams(c, "INSERT INTO schema_version VALUES($1)", 1, NULL, vals,
		                      NULL, NULL, 0),
		     PQresultStatus(r) != PGRES_COMMAND_OK)) {
			if (!rc)
				rc = pg_fail(c, r, "store_migrate_failed", "schema_version");
			else
				PQclear(r);
			snprintf(err, errlen, "postgresql store (%s): migration %d: %s", s->where,
			         v + 1, one_line(PQerrorMessage(c), msg, sizeof(msg)));
			goto fail;
		}
		PQclear(r);
		log_info("event=store_migrated backend=postgresql to_version=%d", v + 1);
	}
	if ((rc = pg_exec(c, "store_open_failed", "COMMIT")) != 0) {
		snprintf(err, errlen, "postgresql store (%s): commit of the schema: %s", s->where,
		         one_line(PQerrorMessage(c), msg, sizeof(msg)));
		return rc;
	}
	return 0;
fail:
	pg_rollback(c, "store_open_failed");
	return rc;
}

/* The name and bounds of the partition holding day (days since 1970-01-01 UTC):
 * results_YYYYMMDD, for a person reading \d+ results. */
static void part_name(int64_t day, char *name, size_t n)
{
	time_t t = (time_t)(day * 86400);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(name, n, "results_%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static int64_t day_of(int64_t ms)
{
	return ms >= 0 ? ms / DAY_MS : -((-ms + DAY_MS - 1) / DAY_MS);
}

/* Days [from, to) exist afterwards; their own transaction, outside any group commit (the
 * DDL locks the parent briefly), serialized across collectors. The SQL holds only numbers
 * and a name made of them. */
static int parts_make(struct pg_be *s, int64_t from, int64_t to)
{
	PGconn *c = s->w;
	char sql[256], name[64];
	int rc = pg_exec(c, "store_partition_failed", "BEGIN");
	if (!rc)
		rc = pg_exec(c, "store_partition_failed",
		             "SELECT pg_advisory_xact_lock(" LOCK_PARTS ")");
	for (int64_t d = from; !rc && d < to; d++) {
		part_name(d, name, sizeof(name));
		snprintf(
		    sql, sizeof(sql),
		    "CREATE TABLE IF NOT EXISTS %s PARTITION OF results FOR VALUES FROM (%" PRId64
		    ") TO (%" PRId64 ")",
		    name, d * DAY_MS, (d + 1) * DAY_MS);
		rc = pg_exec(c, "store_partition_failed", sql);
	}
	if (!rc)
		rc = pg_exec(c, "store_partition_failed", "COMMIT");
	if (rc) {
		pg_rollback(c, "store_partition_failed");
		return rc;
	}
	/* The cache stays one range with no hole: joined to it, or in its place. */
	int have = s->parts_until > s->parts_from;
	if (have && from <= s->parts_until && to >= s->parts_from) {
		s->parts_from = from < s->parts_from ? from : s->parts_from;
		s->parts_until = to > s->parts_until ? to : s->parts_until;
	} else {
		s->parts_from = from;
		s->parts_until = to;
	}
	return 0;
}

/* Before a group: the partition of every batch's arrival day (and the days ahead). */
static int parts_ensure(struct pg_be *s, int64_t received_ms)
{
	int64_t day = day_of(received_ms);
	int have = s->parts_until > s->parts_from;
	if (have && day >= s->parts_from && day < s->parts_until)
		return 0;
	/* Days between the known range and this one are made too, so that the range the
	 * cache says exists has no hole (a day in a hole would never be made, and every COPY
	 * into it would fail), up to PARTS_FILL_MAX days; past that the range starts anew. */
	if (have && day < s->parts_from)
		return parts_make(s, day,
		                  s->parts_from - day <= PARTS_FILL_MAX ? s->parts_from : day + 1);
	if (have && day - s->parts_until <= PARTS_FILL_MAX)
		return parts_make(s, s->parts_until, day + 1 + PARTS_AHEAD);
	return parts_make(s, day, day + 1 + PARTS_AHEAD);
}

/* The writer's session: its statements and the stage latest is loaded through. */
static int writer_session(struct pg_be *s, char *err, size_t errlen)
{
	int rc = pg_exec(s->w, "store_open_failed",
	                 "CREATE TEMP TABLE IF NOT EXISTS latest_stage(" LATEST_COLS_DEF
	                 ") ON COMMIT DELETE ROWS");
	if (rc)
		snprintf(err, errlen, "postgresql store (%s): the latest stage: see the log",
		         s->where);
	else if (!(rc = prepare_all(s->w, wstmts, W_NSTMTS, err, errlen, s->where)) &&
	         !(rc = prepare_all(s->w, xstmts, X_NSTMTS, err, errlen, s->where)) &&
	         !(rc = prepare_all(s->w, fstmts, F_NSTMTS, err, errlen, s->where)))
		rc = prepare_all(s->w, jstmts, J_NSTMTS, err, errlen, s->where);
	/* NORMAL: an acknowledged batch may be lost to a crash of the database (never to one of
	 * the collector); for measurements only, as with SQLite. */
	if (!rc && s->durable_normal)
		rc = pg_exec(s->w, "store_open_failed", "SET synchronous_commit = off");
	return rc;
}

static void roll_close(struct pg_be *s);

static void pg_close(void *p)
{
	struct pg_be *s = p;
	if (!s)
		return;
	roll_close(s);
	pg_lease_destroy(s->lease);
	PQfinish(s->w);
	for (int i = 0; i < RA_COUNT; i++)
		vw_buf_free(&s->roll.a[i]);
	free(s->dsn);
	free(s->passfile);
	vw_buf_free(&s->copy);
	vw_buf_free(&s->stage);
	uv_mutex_destroy(&s->avail_mu);
	free(s);
}

static int pg_open(const struct store_options *o, void **out, char *err, size_t errlen)
{
	if (!o->dsn || !o->dsn[0]) {
		snprintf(err, errlen, "postgresql store: no dsn given ([store] dsn)");
		return -EINVAL;
	}
	int rc = dsn_check(o->dsn, err, errlen);
	if (rc)
		return rc;
	struct pg_be *s = calloc(1, sizeof(*s));
	if (s && uv_mutex_init(&s->avail_mu) != 0) {
		free(s);
		s = NULL;
	}
	if (!s || !(s->dsn = strdup(o->dsn)) ||
	    (o->password_file && o->password_file[0] &&
	     !(s->passfile = strdup(o->password_file)))) {
		pg_close(s);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	dsn_describe(o->dsn, s->where, sizeof(s->where));
	s->durable_normal = o->durability == STORE_DURABLE_NORMAL;
	s->raw_retention_ms = o->raw_retention_ms;
	s->thumb_retention_ms = o->thumb_retention_ms;
	s->access_retention_ms = o->thumb_access_retention_ms;
	s->default_stale_ms =
	    o->default_stale_ms > 0 ? o->default_stale_ms : STORE_DEFAULT_STALE_MS;
	s->flush_ms = o->rollup_flush_ms > 0 ? o->rollup_flush_ms : STORE_ROLLUP_FLUSH_MS;
	for (int i = 0; i < RA_COUNT; i++)
		vw_buf_init(&s->roll.a[i], COPY_BUF_MAX);
	s->feed_dirty = 1; /* nothing counted yet */
	s->avail.up = 1;
	s->wretry.rng = (uint64_t)vw_now_ms() ^ ((uint64_t)(uintptr_t)s << 16) ^ (uint64_t)getpid();
	vw_buf_init(&s->copy, COPY_BUF_MAX);
	vw_buf_init(&s->stage, COPY_BUF_MAX);
	/* The final UPDATE of a batch's agent row: its columns are this file's constants. */
	size_t len = (size_t)snprintf(
	    s->agent_update, sizeof(s->agent_update),
	    "UPDATE agents SET org = $2, city = $3, last_report_ms = greatest(last_report_ms, $4),"
	    " high_seq = CASE WHEN $5::bigint > 0 THEN $5::bigint ELSE high_seq END");
	for (int i = 0; i < STORE_H_COUNT * VW_STATUS_COUNT; i++)
		len += (size_t)snprintf(s->agent_update + len, sizeof(s->agent_update) - len,
		                        ", %s = %s + $%d", health_cols[i], health_cols[i], 6 + i);
	len += (size_t)snprintf(s->agent_update + len, sizeof(s->agent_update) - len,
	                        ", cam_ok = cam_ok + $%d, cam_degraded = cam_degraded + $%d,"
	                        " cam_down = cam_down + $%d WHERE id = $1",
	                        6 + STORE_H_STREAM * VW_STATUS_COUNT + VW_STATUS_OK,
	                        6 + STORE_H_STREAM * VW_STATUS_COUNT + VW_STATUS_DEGRADED,
	                        6 + STORE_H_STREAM * VW_STATUS_COUNT + VW_STATUS_DOWN);
	if (len >= sizeof(s->agent_update)) {
		snprintf(err, errlen, "postgresql store: agent update outgrew its buffer");
		rc = -E2BIG;
		goto fail;
	}
	if ((rc = pg_connect(s, "venuewatch-server writer", &s->w, err, errlen)) != 0 ||
	    (rc = migrate(s, err, errlen)) != 0 || (rc = writer_session(s, err, errlen)) != 0)
		goto fail;
	PGresult *r = PQprepare(s->w, "agent_update", s->agent_update, 0, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		rc = pg_fail(s->w, r, "store_open_failed", "agent_update");
		snprintf(err, errlen, "postgresql store (%s): prepare agent_update: see the log",
		         s->where);
		goto fail;
	}
	PQclear(r);
	int64_t today = day_of(vw_now_ms());
	if ((rc = parts_make(s, today, today + 1 + PARTS_AHEAD)) != 0) {
		snprintf(err, errlen, "postgresql store (%s): partitions of results: see the log",
		         s->where);
		goto fail;
	}
	if ((rc = pg_lease_create(s->dsn, s->passfile,
	                          o->lease_ttl_ms > 0 ? o->lease_ttl_ms : STORE_LEASE_TTL_MS,
	                          o->lease_renew_ms > 0 ? o->lease_renew_ms : STORE_LEASE_RENEW_MS,
	                          &s->lease, err, errlen)) != 0 ||
	    (rc = pg_lease_start(s->lease)) != 0)
		goto fail;
	log_info("event=store_open backend=postgresql db=\"%s\" schema_version=%d", s->where,
	         NMIGRATIONS);
	*out = s;
	return 0;
fail:
	pg_close(s);
	return rc;
}

/* --- writer thread ---------------------------------------------------------------------- */

/* One field of COPY's text format: backslash, tab, newline and carriage return escaped
 * (the format's only specials; PostgreSQL's "COPY ... Text Format"), NULL as \N. */
static void copy_field(struct vw_buf *b, const char *v, int last)
{
	if (!v) {
		vw_buf_append(b, "\\N", 2);
	} else {
		const char *run = v;
		for (const char *p = v; *p; p++) {
			const char *esc = *p == '\\'   ? "\\\\"
			                  : *p == '\t' ? "\\t"
			                  : *p == '\n' ? "\\n"
			                  : *p == '\r' ? "\\r"
			                               : NULL;
			if (!esc)
				continue;
			vw_buf_append(b, run, (size_t)(p - run));
			vw_buf_append(b, esc, 2);
			run = p + 1;
		}
		vw_buf_puts(b, run);
	}
	vw_buf_append(b, last ? "\n" : "\t", 1);
}

static void copy_i64(struct vw_buf *b, int64_t v, int last)
{
	vw_buf_printf(b, "%" PRId64 "%c", v, last ? '\n' : '\t');
}

static const char *row_str(const struct store_batch *b, uint32_t off)
{
	return off ? store_batch_str(b, off) : NULL;
}

/* A result as one line of COPY results(RESULT_COLS). */
static void copy_row(struct vw_buf *out, const struct store_batch *b, const struct store_row *row,
                     int64_t agent_id, int64_t ord)
{
	copy_i64(out, agent_id, 0);
	copy_i64(out, ord, 0);
	copy_i64(out, row->seq, 0);
	copy_i64(out, row->ts_ms, 0);
	copy_i64(out, row->mono_ms, 0);
	copy_field(out, vw_kind_name((enum vw_kind)row->kind), 0);
	copy_field(out, store_batch_str(b, row->target), 0);
	copy_field(out, vw_status_name((enum vw_status)row->status), 0);
	copy_field(out, row_str(b, row->session), 0);
	copy_field(out, row_str(b, row->codec), 0);
	copy_field(out, store_batch_str(b, row->faults), 0);
	copy_field(out, store_batch_str(b, row->metrics), 0);
	copy_i64(out, b->received_ms, 0);
	/* %.17g: the double the agent sent, exactly (float8in reads it back bit for bit) */
	vw_buf_printf(out, "%.17g\n", row->interval_ms);
}

/* A target's newest row of the batch as one line of COPY latest_stage(LATEST_COLS). */
static void stage_row(struct vw_buf *out, const struct store_batch *b, const struct store_row *row,
                      int64_t agent_id, int64_t ord)
{
	copy_i64(out, agent_id, 0);
	copy_field(out, vw_kind_name((enum vw_kind)row->kind), 0);
	copy_field(out, store_batch_str(b, row->target), 0);
	copy_i64(out, ord, 0);
	copy_i64(out, row->seq, 0);
	copy_i64(out, row->ts_ms, 0);
	copy_field(out, vw_status_name((enum vw_status)row->status), 0);
	copy_field(out, row_str(b, row->session), 0);
	copy_field(out, row_str(b, row->codec), 0);
	copy_field(out, store_batch_str(b, row->faults), 0);
	copy_field(out, store_batch_str(b, row->metrics), 1);
}

/* COPY sql FROM STDIN with data (text format): the rows in one round of messages. */
static int copy_in(PGconn *c, const char *step, const char *sql, const struct vw_buf *data)
{
	if (data->err) {
		log_error("event=store_write_failed backend=postgresql step=%s error=\"%s\"", step,
		          strerror(-data->err));
		return data->err;
	}
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COPY_IN)
		return pg_fail(c, r, "store_write_failed", step);
	PQclear(r);
	/* PQputCopyData takes an int length: a batch is bounded far below (the body limit) */
	int ok = data->len <= (size_t)0x7fffffff &&
	         (data->len == 0 || PQputCopyData(c, data->data, (int)data->len) == 1);
	if (PQputCopyEnd(c, ok ? NULL : "venuewatch: the rows could not be sent") != 1)
		ok = 0;
	int rc = 0;
	while ((r = PQgetResult(c)) != NULL) {
		if (!rc && PQresultStatus(r) != PGRES_COMMAND_OK)
			rc = pg_fail(c, r, "store_write_failed", step);
		else
			PQclear(r);
	}
	if (!rc && !ok)
		rc = pg_fail(c, NULL, "store_write_failed", step);
	return rc;
}

/* The targets of one agent and their current status, while its batch applies: old
 * statuses from latest, then each new row's; last = the batch's newest row of the target
 * (index into b->rows, -1: none). Open addressing on (kind, target). */
struct tgt {
	uint8_t kind;
	int status; /* enum vw_status */
	long last;
	long prob; /* its open problem in the batch's feed (struct feed), -1: none (issue 13) */
	char *name;
};
struct tgts {
	struct tgt *v;
	size_t cap, n;
};

static uint64_t tgt_hash(uint8_t kind, const char *name)
{
	uint64_t h = 1469598103934665603ULL ^ kind; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

static void tgts_free(struct tgts *t)
{
	for (size_t i = 0; i < t->cap; i++)
		free(t->v[i].name);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

/* The entry of (kind, name), made (status -1) when absent; NULL: out of memory. */
static struct tgt *tgts_get(struct tgts *t, uint8_t kind, const char *name)
{
	if ((t->n + 1) * 2 > t->cap) {
		struct tgts g = {.cap = t->cap ? t->cap * 2 : 64};
		if (!(g.v = calloc(g.cap, sizeof(*g.v))))
			return NULL;
		for (size_t i = 0; i < t->cap; i++)
			if (t->v[i].name) {
				size_t k = tgt_hash(t->v[i].kind, t->v[i].name) & (g.cap - 1);
				while (g.v[k].name)
					k = (k + 1) & (g.cap - 1);
				g.v[k] = t->v[i];
			}
		g.n = t->n;
		free(t->v);
		*t = g;
	}
	size_t k = tgt_hash(kind, name) & (t->cap - 1);
	for (; t->v[k].name; k = (k + 1) & (t->cap - 1))
		if (t->v[k].kind == kind && strcmp(t->v[k].name, name) == 0)
			return &t->v[k];
	if (!(t->v[k].name = strdup(name)))
		return NULL;
	t->v[k].kind = kind;
	t->v[k].status = -1;
	t->v[k].last = -1;
	t->v[k].prob = -1;
	t->n++;
	return &t->v[k];
}

static const enum store_health kind_health[VW_KIND_COUNT] = {
    [VW_KIND_STREAM] = STORE_H_STREAM,         [VW_KIND_NETWORK] = STORE_H_NETWORK,
    [VW_KIND_RECORDING] = STORE_H_RECORDING,   [VW_KIND_COVERAGE] = STORE_H_COVERAGE,
    [VW_KIND_ASSESSMENT] = STORE_H_ASSESSMENT, [VW_KIND_BUFFER] = STORE_H_BUFFER,
};

/* A target moving from old (-1: new) to row's status, in the agent's counts (sqlite.c's
 * health_move: network target "collector" counts in connected as well). */
static void health_move(int64_t h[STORE_H_COUNT][VW_STATUS_COUNT], const struct store_row *row,
                        const char *target, int old)
{
	if (old == (int)row->status || row->kind >= VW_KIND_COUNT || row->status >= VW_STATUS_COUNT)
		return;
	enum store_health cls[2] = {kind_health[row->kind], STORE_H_COUNT};
	if (row->kind == VW_KIND_NETWORK && strcmp(target, "collector") == 0)
		cls[1] = STORE_H_CONNECTED;
	for (int i = 0; i < 2 && cls[i] < STORE_H_COUNT; i++) {
		if (old >= 0)
			h[cls[i]][old]--;
		h[cls[i]][row->status]++;
	}
}

/* A site is one org's, in one city (sqlite.c's check_site_place says why): -EPERM. */
static int check_site_place(struct pg_be *s, const struct store_batch *b)
{
	const char *vals[1] = {b->site};
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "site_place", 1, vals, &r);
	if (rc)
		return rc;
	const char *org = PQntuples(r) ? PQgetvalue(r, 0, 0) : "";
	const char *city = PQntuples(r) ? PQgetvalue(r, 0, 1) : "";
	if ((org[0] && strcmp(org, b->org) != 0) || (city[0] && strcmp(city, b->city) != 0)) {
		log_warn("event=site_jurisdiction_refused site=%s agent=%s cert_org=\"%s\" "
		         "cert_city=\"%s\" site_org=\"%s\" site_city=\"%s\" "
		         "reason=site_jurisdiction_mismatch",
		         b->site, b->agent, b->org, b->city, org, city);
		rc = -EPERM;
	}
	PQclear(r);
	return rc;
}

/* The agent row, made on first sight and locked (FOR UPDATE) to the end of the
 * transaction: its id. */
static int agent_lock(struct pg_be *s, const struct store_batch *b, int64_t *agent_id)
{
	struct ints t;
	const char *ins[5] = {b->site, b->agent, b->org, b->city, i64s(&t, 0, b->received_ms)};
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "agent_new", 5, ins, NULL);
	if (!rc)
		rc = pg_run(s->w, "store_write_failed", "agent_lock", 2, ins, &r);
	if (rc)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		log_error("event=store_write_failed backend=postgresql step=agent_lock "
		          "error=\"no agent row after its insert\" site=%s agent=%s",
		          b->site, b->agent);
		return -EIO;
	}
	*agent_id = val_i64(r, 0, 0);
	PQclear(r);
	return 0;
}

/* The batch's epoch of the agent (made on first sight, after the new-epoch bound): its
 * ord and high-water mark, read under the agent's lock. */
static int epoch_get(struct pg_be *s, const struct store_batch *b, int64_t agent_id, int64_t *ord,
                     int64_t *high)
{
	struct ints t;
	const char *vals[4] = {i64s(&t, 0, agent_id), b->epoch};
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "epoch_get", 2, vals, &r);
	if (rc)
		return rc;
	if (PQntuples(r)) {
		*ord = val_i64(r, 0, 0);
		*high = val_i64(r, 0, 1);
		PQclear(r);
		return 0;
	}
	PQclear(r);
	if (b->epoch[0] && b->new_epochs_max > 0) {
		vals[1] = i64s(&t, 1, b->received_ms - 24LL * 3600 * 1000);
		if ((rc = pg_run(s->w, "store_write_failed", "epoch_recent", 2, vals, &r)) != 0)
			return rc;
		int64_t recent = val_i64(r, 0, 0);
		PQclear(r);
		if (recent >= b->new_epochs_max) {
			log_warn("event=agent_epoch_refused site=%s agent=%s epoch=%s "
			         "reason=epoch_limit new_epochs_24h=%" PRId64 " limit=%ld",
			         b->site, b->agent, b->epoch, recent, b->new_epochs_max);
			return -EDQUOT;
		}
	}
	if ((rc = pg_run(s->w, "store_write_failed", "epoch_last", 1, vals, &r)) != 0)
		return rc;
	int found = PQntuples(r) == 1;
	int64_t prev_ord = found ? val_i64(r, 0, 0) : -1;
	int64_t prev_high = found ? val_i64(r, 0, 1) : 0, prev_last = found ? val_i64(r, 0, 2) : 0;
	PQclear(r);
	/* 0 is the legacy epoch ''; the others count from 1 in order of first sight */
	*ord = !b->epoch[0] ? 0 : (prev_ord > 0 ? prev_ord + 1 : 1);
	*high = 0;
	if (prev_ord >= 0 && prev_high > 0 && b->received_ms - prev_last < 3600LL * 1000)
		log_warn("event=agent_epoch_new site=%s agent=%s epoch=%s ord=%" PRId64
		         " prev_ord=%" PRId64 " prev_high_seq=%" PRId64
		         " hint=\"the previous epoch stored results within the last hour: a "
		         "restored outbox, or a cloned machine using this certificate?\"",
		         b->site, b->agent, b->epoch[0] ? b->epoch : "-", *ord, prev_ord,
		         prev_high);
	else
		log_info("event=agent_epoch_new site=%s agent=%s epoch=%s ord=%" PRId64, b->site,
		         b->agent, b->epoch[0] ? b->epoch : "-", *ord);
	const char *nv[4] = {vals[0], b->epoch, i64s(&t, 2, *ord), i64s(&t, 3, b->received_ms)};
	return pg_run(s->w, "store_write_failed", "epoch_new", 4, nv, NULL);
}

static int record_gap(struct pg_be *s, struct store_batch *b, int64_t agent_id, int64_t ord,
                      int64_t first, int64_t last)
{
	log_warn("event=ingest_seq_gap site=%s agent=%s epoch=%s first_seq=%" PRId64
	         " last_seq=%" PRId64 " count=%" PRId64
	         " hint=\"the agent no longer held these; look for its buffer_overflow result\"",
	         b->site, b->agent, b->epoch[0] ? b->epoch : "-", first, last, last - first + 1);
	struct ints t, u;
	const char *vals[5] = {i64s(&t, 0, agent_id), i64s(&t, 1, ord), i64s(&t, 2, first),
	                       i64s(&t, 3, last), i64s(&u, 0, b->received_ms)};
	int rc = pg_run(s->w, "store_write_failed", "gap", 5, vals, NULL);
	if (!rc)
		b->gap_seqs += (size_t)(last - first + 1);
	return rc;
}

/* The agent's targets as latest has them. */
static int load_latest(struct pg_be *s, int64_t agent_id, struct tgts *t)
{
	struct ints n;
	const char *vals[1] = {i64s(&n, 0, agent_id)};
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "latest_of", 1, vals, &r);
	if (rc)
		return rc;
	for (int i = 0; !rc && i < PQntuples(r); i++) {
		enum vw_kind kind;
		enum vw_status st;
		if (vw_kind_parse(PQgetvalue(r, i, 0), &kind) ||
		    vw_status_parse(PQgetvalue(r, i, 2), &st))
			continue; /* not a kind or status of this build: counted nowhere */
		struct tgt *e = tgts_get(t, (uint8_t)kind, PQgetvalue(r, i, 1));
		if (!e)
			rc = -ENOMEM;
		else
			e->status = (int)st;
	}
	PQclear(r);
	return rc;
}

/* --- issue 16 (A): problems and events, in the writer's transaction ----------------------
 * sqlite.c's rules, statement for statement (its comments say why); only changes write. */

enum { SEV_MINOR, SEV_MAJOR, SEV_CRITICAL };

/* degraded -> minor, down (or site_silent) -> major; one step up in an exam session. */
static const char *problem_severity(const char *worst, int in_session)
{
	int sev = strcmp(worst, "down") == 0 ? SEV_MAJOR : SEV_MINOR;
	return store_severity_names[sev + (in_session ? 1 : 0)];
}

/* An event of the open transaction into out: its id is taken, and the row written, by
 * events_flush before the COMMIT (published after it). */
static int emit_event(struct store_events *out, int64_t ts_ms, const char *type, const char *site,
                      const char *org, const char *city, const char *data)
{
	struct store_event ev = {0, ts_ms, type, site, org, city, data};
	return store_events_add(out, &ev);
}

/* Row i of PROBLEM_COLS (strings point into r). */
static void problem_row(const PGresult *r, int i, struct store_problem *p)
{
	p->id = val_i64(r, i, 0);
	p->site = PQgetvalue(r, i, 1);
	p->org = PQgetvalue(r, i, 2);
	p->city = PQgetvalue(r, i, 3);
	p->agent = PQgetvalue(r, i, 4);
	p->kind = PQgetvalue(r, i, 5);
	p->target = PQgetvalue(r, i, 6);
	p->status = PQgetvalue(r, i, 7);
	p->worst = PQgetvalue(r, i, 8);
	p->severity = PQgetvalue(r, i, 9);
	p->faults = PQgetvalue(r, i, 10);
	p->start_ms = val_i64(r, i, 11);
	p->end_ms = val_i64(r, i, 12);
	p->in_session = (int)val_i64(r, i, 13);
	p->ack_by = PQgetisnull(r, i, 14) ? NULL : PQgetvalue(r, i, 14);
	p->ack_ms = val_i64(r, i, 15);
	p->ack_message = PQgetisnull(r, i, 16) ? NULL : PQgetvalue(r, i, 16);
}

/* The problem as it now stands, as an event of type (problem_opened, ...). */
static int emit_problem(struct pg_be *s, struct store_events *out, int64_t ts_ms, const char *type,
                        int64_t id)
{
	struct ints t;
	const char *vals[1] = {i64s(&t, 0, id)};
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "prob_get", 1, vals, &r);
	if (rc)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return -EIO;
	}
	struct store_problem p;
	problem_row(r, 0, &p);
	struct vw_buf d;
	vw_buf_init(&d, 1u << 20);
	rc = store_problem_json(&d, &p, ts_ms);
	if (!rc)
		rc = emit_event(out, ts_ms, type, p.site, p.org, p.city, vw_buf_cstr(&d));
	vw_buf_free(&d);
	PQclear(r);
	return rc;
}

/* 1 in *yes when a session of the site, not cancelled, overlaps [from, to]. */
static int site_in_session(struct pg_be *s, const char *site, int64_t from, int64_t to, int *yes)
{
	struct ints t;
	const char *vals[3] = {site, i64s(&t, 0, from), i64s(&t, 1, to)};
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "in_session", 3, vals, &r);
	if (rc)
		return rc;
	*yes = PQntuples(r) > 0;
	PQclear(r);
	return 0;
}

/* The status event's data into d (sqlite.c's emit_status: the same keys); from NULL = first
 * seen. */
static int status_json(struct vw_buf *d, const char *site, const char *org, const char *city,
                       const char *agent, const char *kind, const char *target, const char *from,
                       const char *to, const char *faults, int64_t ts_ms)
{
	char ts[VW_ISO_LEN];
	vw_time_iso(ts_ms, ts);
	vw_buf_puts(d, "{\"site\":");
	vw_buf_json_str(d, site);
	vw_buf_puts(d, ",\"org\":");
	vw_buf_json_str(d, org);
	vw_buf_puts(d, ",\"city\":");
	vw_buf_json_str(d, city);
	vw_buf_puts(d, ",\"agent\":");
	vw_buf_json_str(d, agent);
	vw_buf_puts(d, ",\"kind\":");
	vw_buf_json_str(d, kind);
	vw_buf_puts(d, ",\"target\":");
	vw_buf_json_str(d, target);
	vw_buf_puts(d, ",\"from\":");
	if (from)
		vw_buf_json_str(d, from);
	else
		vw_buf_puts(d, "null");
	vw_buf_puts(d, ",\"to\":");
	vw_buf_json_str(d, to);
	vw_buf_printf(d, ",\"faults\":%s,\"ts\":\"%s\"}", faults[0] ? faults : "[]", ts);
	return d->err;
}

static int emit_status(struct store_events *out, int64_t ev_ms, const char *site, const char *org,
                       const char *city, const char *agent, const char *kind, const char *target,
                       const char *from, const char *to, const char *faults, int64_t ts_ms)
{
	struct vw_buf d;
	vw_buf_init(&d, 1u << 20);
	int rc = status_json(&d, site, org, city, agent, kind, target, from, to, faults, ts_ms);
	if (!rc)
		rc = emit_event(out, ev_ms, "status", site, org, city, vw_buf_cstr(&d));
	vw_buf_free(&d);
	return rc;
}

/* The union of two fault arrays (codes of [a-z0-9_]), old's order first; *added = how many
 * of add's were new. */
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

/* A new problem row; its id in *id. */
static int problem_new(struct pg_be *s, const char *site, const char *org, const char *city,
                       const char *agent, const char *kind, const char *target, const char *status,
                       const char *faults, int64_t start_ms, int in_session, int64_t *id)
{
	struct ints t;
	const char *vals[11] = {site,
	                        org,
	                        city,
	                        agent,
	                        kind,
	                        target,
	                        status,
	                        problem_severity(status, in_session),
	                        faults,
	                        i64s(&t, 0, start_ms),
	                        i64s(&t, 1, in_session)};
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "prob_new", 11, vals, &r);
	if (rc)
		return rc;
	*id = PQntuples(r) == 1 ? val_i64(r, 0, 0) : 0;
	PQclear(r);
	return *id ? 0 : -EIO;
}

static int problem_set(struct pg_be *s, int64_t id, const char *status, const char *worst,
                       const char *faults, int in_session)
{
	struct ints t;
	const char *vals[6] = {i64s(&t, 0, id), status,
	                       worst,           problem_severity(worst, in_session),
	                       faults,          i64s(&t, 1, in_session)};
	return pg_run(s->w, "store_write_failed", "prob_set", 6, vals, NULL);
}

static int problem_close(struct pg_be *s, int64_t id, int64_t end_ms, int in_session)
{
	struct ints t;
	const char *vals[3] = {i64s(&t, 0, id), i64s(&t, 1, end_ms), i64s(&t, 2, in_session)};
	return pg_run(s->w, "store_write_failed", "prob_close", 3, vals, NULL);
}

/* --- issue 13: a batch's feed, worked out in memory ----------------------------------------
 * sqlite.c's feed_row runs a few statements per status change (the status event, the
 * problem's lookup, its write, the read back for its event): on PostgreSQL each is a round
 * trip inside the group's transaction, ~5 per change, and with 5 % of results not ok they
 * were most of a group's time (ratio 0.14 to the raw COPY, tests/bench/scale_bench.sh). So
 * here a batch reads its agent's open problems once and its site's exam sessions once (each
 * only when a row needs them), applies feed_row's rules to them in memory, row by row, and
 * at its end writes what changed: the ids of the problems it opened (one statement), the
 * changed ones (one UPDATE from arrays), the opened ones (one INSERT from arrays), all
 * inside the batch's savepoint; its events wait in b->events for events_flush. The rows
 * and the events are those the statements gave, in the same order. */

/* A problem of the batch's agent, as it stands after the batch's rows so far. */
struct fprob {
	int64_t id;       /* 0 while fresh, until feed_end takes its id */
	int fresh;        /* opened by this batch: inserted by feed_end */
	int dirty;        /* changed: written by feed_end */
	const char *kind; /* vw_kind_name's */
	char *target, *org, *city, *faults, *ack_by, *ack_message;
	char status[16], worst[16], severity[16];
	int64_t start_ms, end_ms, ack_ms;
	int in_session;
};
/* An event of the batch, in order: a status event's data, or a problem's as it stood. */
struct fev {
	const char *type;
	char *data; /* status: its JSON; NULL: the problem's, rendered by feed_end */
	size_t prob;
	char status[16], worst[16], severity[16];
	char *faults;
	int64_t end_ms;
	int in_session;
};
struct feed {
	int loaded, sessions_loaded;
	struct fprob *p;
	size_t np, capp, nnew;
	struct fev *e;
	size_t ne, cape;
	int64_t *sess; /* [start, end) of the site's sessions, pairs */
	size_t nsess;
};

static void feed_free(struct feed *f)
{
	for (size_t i = 0; i < f->np; i++) {
		struct fprob *p = &f->p[i];
		free(p->target), free(p->org), free(p->city), free(p->faults);
		free(p->ack_by), free(p->ack_message);
	}
	for (size_t i = 0; i < f->ne; i++)
		free(f->e[i].data), free(f->e[i].faults);
	free(f->p), free(f->e), free(f->sess);
	memset(f, 0, sizeof(*f));
}

/* A new slot at the end of f->p (zeroed); NULL: out of memory. */
static struct fprob *feed_prob_new(struct feed *f)
{
	if (f->np == f->capp) {
		size_t cap = f->capp ? f->capp * 2 : 16;
		struct fprob *v = realloc(f->p, cap * sizeof(*v));
		if (!v)
			return NULL;
		f->p = v, f->capp = cap;
	}
	struct fprob *p = &f->p[f->np++];
	memset(p, 0, sizeof(*p));
	return p;
}

/* The agent's open problems, each on its target's entry of t (made when absent: status -1
 * counts as unseen, as an absent entry does). */
static int feed_load(struct pg_be *s, struct feed *f, const struct store_batch *b, struct tgts *t)
{
	const char *key[2] = {b->site, b->agent};
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "prob_of_agent", 2, key, &r);
	if (rc)
		return rc;
	f->loaded = 1;
	for (int i = 0; !rc && i < PQntuples(r); i++) {
		enum vw_kind kind;
		if (vw_kind_parse(PQgetvalue(r, i, 3), &kind))
			continue; /* not a kind of this build: no row of it reaches this batch */
		struct fprob *p = feed_prob_new(f);
		struct tgt *e = p ? tgts_get(t, (uint8_t)kind, PQgetvalue(r, i, 4)) : NULL;
		if (!e) {
			rc = -ENOMEM;
			break;
		}
		e->prob = (long)(f->np - 1);
		p->id = val_i64(r, i, 0);
		p->kind = vw_kind_name(kind);
		p->org = strdup(PQgetvalue(r, i, 1));
		p->city = strdup(PQgetvalue(r, i, 2));
		p->target = strdup(PQgetvalue(r, i, 4));
		snprintf(p->status, sizeof(p->status), "%s", PQgetvalue(r, i, 5));
		snprintf(p->worst, sizeof(p->worst), "%s", PQgetvalue(r, i, 6));
		snprintf(p->severity, sizeof(p->severity), "%s", PQgetvalue(r, i, 7));
		p->faults = strdup(PQgetvalue(r, i, 8));
		p->start_ms = val_i64(r, i, 9);
		p->in_session = (int)val_i64(r, i, 10);
		p->ack_by = PQgetisnull(r, i, 11) ? NULL : strdup(PQgetvalue(r, i, 11));
		p->ack_ms = val_i64(r, i, 12);
		p->ack_message = PQgetisnull(r, i, 13) ? NULL : strdup(PQgetvalue(r, i, 13));
		if (!p->org || !p->city || !p->target || !p->faults ||
		    (!PQgetisnull(r, i, 11) && !p->ack_by) ||
		    (!PQgetisnull(r, i, 13) && !p->ack_message))
			rc = -ENOMEM;
	}
	PQclear(r);
	return rc;
}

/* 1 in *yes when a session of the batch's site, not cancelled, holds ts (start <= ts <
 * end, the in_session statement's test with from = to = ts); the site's sessions over the
 * batch's check times are read at the first call. */
static int feed_in_session(struct pg_be *s, struct feed *f, const struct store_batch *b, int64_t ts,
                           int *yes)
{
	if (!f->sessions_loaded) {
		int64_t lo = INT64_MAX, hi = INT64_MIN;
		for (size_t i = 0; i < b->nrows; i++) {
			if (b->rows[i].ts_ms < lo)
				lo = b->rows[i].ts_ms;
			if (b->rows[i].ts_ms > hi)
				hi = b->rows[i].ts_ms;
		}
		struct ints t;
		const char *vals[3] = {b->site, i64s(&t, 0, lo), i64s(&t, 1, hi)};
		PGresult *r = NULL;
		int rc = pg_run(s->w, "store_write_failed", "sessions_of", 3, vals, &r);
		if (rc)
			return rc;
		int n = PQntuples(r);
		if (n && !(f->sess = malloc((size_t)n * 2 * sizeof(*f->sess)))) {
			PQclear(r);
			return -ENOMEM;
		}
		for (int i = 0; i < n; i++) {
			f->sess[2 * i] = val_i64(r, i, 0);
			f->sess[2 * i + 1] = val_i64(r, i, 1);
		}
		f->nsess = (size_t)n;
		f->sessions_loaded = 1;
		PQclear(r);
	}
	*yes = 0;
	for (size_t i = 0; i < f->nsess && !*yes; i++)
		*yes = f->sess[2 * i] <= ts && f->sess[2 * i + 1] > ts;
	return 0;
}

/* The next event slot (zeroed); NULL: out of memory. */
static struct fev *feed_ev_new(struct feed *f)
{
	if (f->ne == f->cape) {
		size_t cap = f->cape ? f->cape * 2 : 16;
		struct fev *v = realloc(f->e, cap * sizeof(*v));
		if (!v)
			return NULL;
		f->e = v, f->cape = cap;
	}
	struct fev *e = &f->e[f->ne++];
	memset(e, 0, sizeof(*e));
	return e;
}

/* Problem k's event of type, as k now stands (its data rendered by feed_end, once k has
 * its id). */
static int feed_ev_problem(struct feed *f, const char *type, size_t k)
{
	struct fev *e = feed_ev_new(f);
	if (!e)
		return -ENOMEM;
	const struct fprob *p = &f->p[k];
	e->type = type;
	e->prob = k;
	memcpy(e->status, p->status, sizeof(e->status));
	memcpy(e->worst, p->worst, sizeof(e->worst));
	memcpy(e->severity, p->severity, sizeof(e->severity));
	e->end_ms = p->end_ms;
	e->in_session = p->in_session;
	return (e->faults = strdup(p->faults)) ? 0 : -ENOMEM;
}

/* One stored row whose target (entry e of the batch's targets) had status e->status (-1:
 * first seen): a change gives a status event and opens, updates or closes the target's
 * problem; an unchanged non-ok status updates it only when it brings new fault codes
 * (sqlite.c's feed_row, rule for rule). */
static int feed_row(struct pg_be *s, struct feed *f, struct store_batch *b, struct tgt *e,
                    const struct store_row *row)
{
	const char *old = e->status >= 0 ? vw_status_name((enum vw_status)e->status) : NULL;
	const char *kind = vw_kind_name((enum vw_kind)row->kind);
	const char *status = vw_status_name((enum vw_status)row->status);
	const char *target = store_batch_str(b, row->target);
	const char *faults = store_batch_str(b, row->faults);
	int changed = !old || strcmp(old, status) != 0;
	int ok = row->status == VW_STATUS_OK;
	if (!changed && ok)
		return 0;
	int rc = 0;
	if (changed && (old || !ok)) {
		struct fev *ev = feed_ev_new(f);
		struct vw_buf d;
		vw_buf_init(&d, 1u << 20);
		if (!ev)
			rc = -ENOMEM;
		else if (!(rc = status_json(&d, b->site, b->org, b->city, b->agent, kind, target,
		                            old, status, faults, row->ts_ms))) {
			ev->type = "status";
			if (!(ev->data = strdup(vw_buf_cstr(&d))))
				rc = -ENOMEM;
		}
		vw_buf_free(&d);
		if (rc)
			return rc;
	}
	struct fprob *p = e->prob >= 0 ? &f->p[e->prob] : NULL;
	if (ok) { /* closes the spell */
		if (!p)
			return 0;
		s->feed_dirty = 1;
		int overlap = 0;
		if (!p->in_session && (rc = feed_in_session(s, f, b, row->ts_ms, &overlap)) != 0)
			return rc;
		p->end_ms = row->ts_ms;
		if (overlap)
			p->in_session = 1;
		p->dirty = 1;
		size_t k = (size_t)e->prob;
		e->prob = -1;
		return feed_ev_problem(f, "problem_closed", k);
	}
	if (!p) {
		s->feed_dirty = 1;
		int in_session = 0;
		if ((rc = feed_in_session(s, f, b, row->ts_ms, &in_session)) != 0)
			return rc;
		if (!(p = feed_prob_new(f)))
			return -ENOMEM;
		p->dirty = p->fresh = 1;
		p->kind = kind;
		snprintf(p->status, sizeof(p->status), "%s", status);
		snprintf(p->worst, sizeof(p->worst), "%s", status);
		snprintf(p->severity, sizeof(p->severity), "%s",
		         problem_severity(status, in_session));
		p->start_ms = row->ts_ms;
		p->in_session = in_session;
		f->nnew++;
		e->prob = (long)(f->np - 1);
		if (!(p->target = strdup(target)) || !(p->org = strdup(b->org)) ||
		    !(p->city = strdup(b->city)) ||
		    !(p->faults = strdup(faults[0] ? faults : "[]")))
			return -ENOMEM;
		return feed_ev_problem(f, "problem_opened", (size_t)e->prob);
	}
	/* Still open: a new status (degraded <-> down) or new fault codes. */
	struct vw_buf fu;
	vw_buf_init(&fu, 1u << 16);
	int added = 0;
	if ((rc = faults_union(p->faults, faults, &fu, &added)) != 0 || (!changed && !added))
		goto out;
	s->feed_dirty = 1;
	char *nf = strdup(vw_buf_cstr(&fu));
	if (!nf) {
		rc = -ENOMEM;
		goto out;
	}
	free(p->faults);
	p->faults = nf;
	if (status_rank(status) > status_rank(p->worst))
		snprintf(p->worst, sizeof(p->worst), "%s", status);
	snprintf(p->status, sizeof(p->status), "%s", status);
	snprintf(p->severity, sizeof(p->severity), "%s", problem_severity(p->worst, p->in_session));
	p->dirty = 1;
	rc = feed_ev_problem(f, "problem_updated", (size_t)e->prob);
out:
	vw_buf_free(&fu);
	return rc;
}

/* PostgreSQL's array literal text, one element at a time (the "Array Value Input" rules:
 * each text element in double quotes, " and \ escaped, so any text goes as it is). */
static void arr_str(struct vw_buf *a, const char *v)
{
	vw_buf_puts(a, a->len ? ",\"" : "{\"");
	const char *run = v;
	for (const char *q = v; *q; q++)
		if (*q == '"' || *q == '\\') {
			vw_buf_append(a, run, (size_t)(q - run));
			vw_buf_append(a, "\\", 1);
			run = q;
		}
	vw_buf_puts(a, run);
	vw_buf_append(a, "\"", 1);
}

static void arr_i64(struct vw_buf *a, int64_t v)
{
	vw_buf_printf(a, "%c%" PRId64, a->len ? ',' : '{', v);
}

/* The array's closing brace ("{}" when empty); its text. */
static const char *arr_end(struct vw_buf *a)
{
	vw_buf_puts(a, a->len ? "}" : "{}");
	return vw_buf_cstr(a);
}

/* Ten arrays at most (prob_add's), for one statement's parameters. */
#define FEED_ARRAYS 10

static int feed_arrays_run(struct pg_be *s, const char *stmt, int nfixed, const char **fixed,
                           struct vw_buf *arr, int narr)
{
	const char *vals[4 + FEED_ARRAYS];
	for (int i = 0; i < nfixed; i++)
		vals[i] = fixed[i];
	for (int i = 0; i < narr; i++) {
		vals[nfixed + i] = arr_end(&arr[i]);
		if (arr[i].err) {
			log_error(
			    "event=store_write_failed backend=postgresql step=%s error=\"%s\"",
			    stmt, strerror(-arr[i].err));
			return arr[i].err;
		}
	}
	return pg_run(s->w, "store_write_failed", stmt, nfixed + narr, vals, NULL);
}

/* The batch's end: ids for the problems it opened, its problem writes, and its events (in
 * order) into b->events. */
static int feed_end(struct pg_be *s, struct feed *f, struct store_batch *b)
{
	int rc = 0;
	if (f->nnew) {
		struct ints t;
		const char *vals[1] = {i64s(&t, 0, (int64_t)f->nnew)};
		PGresult *r = NULL;
		if ((rc = pg_run(s->w, "store_write_failed", "prob_ids", 1, vals, &r)) != 0)
			return rc;
		size_t got = (size_t)PQntuples(r), k = 0;
		for (size_t i = 0; i < f->np && k < got; i++)
			if (f->p[i].fresh)
				f->p[i].id = val_i64(r, (int)k++, 0);
		PQclear(r);
		if (k != f->nnew) {
			log_error("event=store_write_failed backend=postgresql step=prob_ids "
			          "error=\"%zu ids for %zu problems\" site=%s agent=%s",
			          got, f->nnew, b->site, b->agent);
			return -EIO;
		}
	}
	struct vw_buf arr[FEED_ARRAYS];
	for (int i = 0; i < FEED_ARRAYS; i++)
		vw_buf_init(&arr[i], COPY_BUF_MAX);
	/* the changed ones first: a problem closed here frees its target's place in
	 * problems_open for one this batch opened after it */
	size_t n = 0;
	for (size_t i = 0; i < f->np; i++) {
		const struct fprob *p = &f->p[i];
		if (!p->dirty || p->fresh)
			continue;
		arr_i64(&arr[0], p->id);
		arr_str(&arr[1], p->status);
		arr_str(&arr[2], p->worst);
		arr_str(&arr[3], p->severity);
		arr_str(&arr[4], p->faults);
		arr_i64(&arr[5], p->end_ms);
		arr_i64(&arr[6], p->in_session);
		n++;
	}
	if (n)
		rc = feed_arrays_run(s, "prob_put", 0, NULL, arr, 7);
	for (int i = 0; i < FEED_ARRAYS; i++)
		vw_buf_reset(&arr[i]);
	if (!rc && f->nnew) {
		for (size_t i = 0; i < f->np; i++) {
			const struct fprob *p = &f->p[i];
			if (!p->fresh)
				continue;
			arr_i64(&arr[0], p->id);
			arr_str(&arr[1], p->kind);
			arr_str(&arr[2], p->target);
			arr_str(&arr[3], p->status);
			arr_str(&arr[4], p->worst);
			arr_str(&arr[5], p->severity);
			arr_str(&arr[6], p->faults);
			arr_i64(&arr[7], p->start_ms);
			arr_i64(&arr[8], p->end_ms);
			arr_i64(&arr[9], p->in_session);
		}
		const char *fixed[4] = {b->site, b->org, b->city, b->agent};
		rc = feed_arrays_run(s, "prob_add", 4, fixed, arr, 10);
	}
	for (int i = 0; i < FEED_ARRAYS; i++)
		vw_buf_free(&arr[i]);
	/* the events, each problem's as it stood then (now with its id) */
	struct vw_buf d;
	vw_buf_init(&d, 1u << 20);
	for (size_t i = 0; !rc && i < f->ne; i++) {
		const struct fev *e = &f->e[i];
		if (e->data) {
			rc = emit_event(&b->events, b->received_ms, e->type, b->site, b->org,
			                b->city, e->data);
			continue;
		}
		const struct fprob *p = &f->p[e->prob];
		struct store_problem sp = {.id = p->id,
		                           .site = b->site,
		                           .org = p->org,
		                           .city = p->city,
		                           .agent = b->agent,
		                           .kind = p->kind,
		                           .target = p->target,
		                           .status = e->status,
		                           .worst = e->worst,
		                           .severity = e->severity,
		                           .faults = e->faults,
		                           .start_ms = p->start_ms,
		                           .end_ms = e->end_ms,
		                           .in_session = e->in_session,
		                           .ack_by = p->ack_by,
		                           .ack_message = p->ack_message,
		                           .ack_ms = p->ack_ms};
		vw_buf_reset(&d);
		if (!(rc = store_problem_json(&d, &sp, b->received_ms)))
			rc = emit_event(&b->events, b->received_ms, e->type, b->site, p->org,
			                p->city, vw_buf_cstr(&d));
	}
	vw_buf_free(&d);
	return rc;
}

/* Once per batch: the site is heard from (feed_sites), which closes its site_silent. */
static int feed_site(struct pg_be *s, struct store_batch *b)
{
	struct ints t;
	const char *vals[5] = {b->site, b->org, b->city, i64s(&t, 0, b->received_ms),
	                       i64s(&t, 1, b->cadence_ms > 0 ? b->cadence_ms : 0)};
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "feed_site", 5, vals, &r);
	if (rc)
		return rc;
	int64_t silent = PQntuples(r) == 1 ? val_i64(r, 0, 0) : 0;
	PQclear(r);
	if (!silent)
		return 0;
	s->feed_dirty = 1;
	const char *clear[2] = {b->site, NULL};
	if ((rc = pg_run(s->w, "store_write_failed", "feed_silent_set", 2, clear, NULL)) != 0 ||
	    (rc = problem_close(s, silent, b->received_ms, 0)) != 0)
		return rc;
	log_info("event=site_heard_again site=%s agent=%s problem=%" PRId64, b->site, b->agent,
	         silent);
	if ((rc = emit_status(&b->events, b->received_ms, b->site, b->org, b->city, "", "site", "",
	                      "down", "ok", "[]", b->received_ms)) != 0)
		return rc;
	return emit_problem(s, &b->events, b->received_ms, "problem_closed", silent);
}

/* issue 16 C: the row's picture, in the batch's transaction (its bytes as a binary
 * parameter: no escaping of 30 KB into text and back). */
static int insert_thumb(struct pg_be *s, const struct store_batch *b, const struct store_row *row)
{
	struct ints t;
	const char *vals[7] = {b->site,
	                       b->agent,
	                       store_batch_str(b, row->target),
	                       i64s(&t, 0, row->ts_ms),
	                       i64s(&t, 1, row->seq),
	                       i64s(&t, 2, b->received_ms),
	                       (const char *)b->arena.data + row->thumb};
	int lens[7] = {0, 0, 0, 0, 0, 0, (int)row->thumb_len};
	int fmts[7] = {0, 0, 0, 0, 0, 0, 1};
	PGresult *r = PQexecPrepared(s->w, "thumb", 7, vals, lens, fmts, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		return pg_fail(s->w, r, "store_write_failed", "thumb");
	PQclear(r);
	return 0;
}

static int apply_batch(struct pg_be *s, struct store_batch *b)
{
	int64_t agent_id = 0, ord = 0, high = 0;
	b->gap_seqs = 0;
	int rc = check_site_place(s, b);
	if (!rc)
		rc = agent_lock(s, b, &agent_id);
	if (!rc)
		rc = epoch_get(s, b, agent_id, &ord, &high);
	if (!rc)
		rc = feed_site(s, b);
	if (rc)
		return rc;
	struct tgts t = {0};
	struct feed f = {0};
	int64_t health[STORE_H_COUNT][VW_STATUS_COUNT] = {{0}};
	int64_t last = high;
	size_t stored = 0;
	int loaded = 0;
	for (size_t i = 0; i < b->nrows; i++) {
		const struct store_row *row = &b->rows[i];
		if (row->seq <= last)
			continue; /* already stored (a resend), or a repeat within the batch */
		if (!loaded++ && (rc = load_latest(s, agent_id, &t)) != 0)
			goto out;
		/* rows come sorted; a hole below this row can never be filled (sqlite.c) */
		if (row->seq > last + 1 &&
		    (rc = record_gap(s, b, agent_id, ord, last + 1, row->seq - 1)) != 0)
			goto out;
		const char *target = store_batch_str(b, row->target);
		struct tgt *e = tgts_get(&t, row->kind, target);
		/* a change, or a status still not ok: the feed's (feed_row), which needs the
		 * agent's open problems (loading them may move t's entries: e again) */
		int feed = e && (e->status != (int)row->status || row->status != VW_STATUS_OK);
		if (feed && !f.loaded) {
			if ((rc = feed_load(s, &f, b, &t)) != 0)
				goto out;
			e = tgts_get(&t, row->kind, target);
		}
		if (!e) {
			rc = -ENOMEM;
			goto out;
		}
		if (row->thumb_len && (rc = insert_thumb(s, b, row)) != 0)
			goto out;
		health_move(health, row, target, e->status);
		if (feed && (rc = feed_row(s, &f, b, e, row)) != 0)
			goto out;
		e->status = row->status;
		e->last = (long)i;
		copy_row(&s->copy, b, row, agent_id, ord);
		last = row->seq;
		stored++;
	}
	if ((f.ne || f.nnew) && (rc = feed_end(s, &f, b)) != 0)
		goto out;
	/* the rows wait in s->copy and s->stage for the group's COPY (group_flush) */
	for (size_t k = 0; stored && k < t.cap; k++)
		if (t.v[k].name && t.v[k].last >= 0)
			stage_row(&s->stage, b, &b->rows[t.v[k].last], agent_id, ord);
	if ((rc = s->copy.err ? s->copy.err : s->stage.err) != 0) {
		log_error("event=store_write_failed backend=postgresql step=copy_buffer site=%s "
		          "agent=%s error=\"%s\"",
		          b->site, b->agent, strerror(-rc));
		goto out;
	}
	/* the agent row: place, last report, mark and counts */
	struct ints n;
	char hv[STORE_H_COUNT * VW_STATUS_COUNT][24];
	const char *vals[5 + STORE_H_COUNT * VW_STATUS_COUNT] = {
	    i64s(&n, 0, agent_id), b->org, b->city, i64s(&n, 1, b->received_ms),
	    i64s(&n, 2, last > high ? last : 0)};
	for (int h = 0; h < STORE_H_COUNT; h++)
		for (int k = 0; k < VW_STATUS_COUNT; k++) {
			char *v = hv[h * VW_STATUS_COUNT + k];
			snprintf(v, sizeof(hv[0]), "%" PRId64, health[h][k]);
			vals[5 + h * VW_STATUS_COUNT + k] = v;
		}
	if ((rc = pg_run(s->w, "store_write_failed", "agent_update",
	                 (int)(sizeof(vals) / sizeof(vals[0])), vals, NULL)) != 0)
		goto out;
	if (last > high) {
		const char *ev[4] = {vals[0], b->epoch, i64s(&n, 2, last), vals[3]};
		if ((rc = pg_run(s->w, "store_write_failed", "epoch_high", 4, ev, NULL)) != 0)
			goto out;
	}
	b->acked_seq = last;
	b->stored = stored;
out:
	feed_free(&f);
	tgts_free(&t);
	return rc;
}

/* Whether a reset of the connection of r may run now: at once the first time, then after
 * r's backoff. */
static int retry_due(const struct pg_retry *r)
{
	return r->wait_ms == 0 || vw_mono_ms() >= r->at_mono;
}

/* A reset failed: the next waits twice as long (RETRY_MIN_MS .. RETRY_MAX_MS, +-25 %). */
static void retry_failed(struct pg_retry *r)
{
	r->attempts++;
	r->wait_ms = r->wait_ms ? r->wait_ms * 2 : RETRY_MIN_MS;
	if (r->wait_ms > RETRY_MAX_MS)
		r->wait_ms = RETRY_MAX_MS;
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	int64_t quarter = r->wait_ms / 4;
	int64_t jitter = quarter ? (int64_t)(r->rng % (uint64_t)(2 * quarter + 1)) - quarter : 0;
	r->at_mono = vw_mono_ms() + r->wait_ms + jitter;
}

static void avail_set(struct pg_be *s, int up, const char *why)
{
	uv_mutex_lock(&s->avail_mu);
	if (up) {
		memset(&s->avail, 0, sizeof(s->avail));
		s->avail.up = 1;
		s->avail.up_since_ms = vw_now_ms();
	} else {
		if (s->avail.up)
			s->avail.down_since_ms = vw_now_ms();
		s->avail.up = 0;
		s->avail.attempts = s->wretry.attempts;
		s->retry_at_mono = s->wretry.at_mono;
		snprintf(s->avail.why, sizeof(s->avail.why), "%s", why);
	}
	uv_mutex_unlock(&s->avail_mu);
}

static void pg_avail(void *p, struct store_avail *out)
{
	struct pg_be *s = p;
	uv_mutex_lock(&s->avail_mu);
	*out = s->avail;
	if (!out->up) {
		int64_t left = s->retry_at_mono - vw_mono_ms();
		out->retry_in_ms = left > 0 ? left : 0;
	}
	uv_mutex_unlock(&s->avail_mu);
}

/* The writer's connection, made again if it broke (retry_due): libpq's PQreset reconnects
 * with the same parameters, then the session (settings, statements, stage) is made again.
 * -ENOTCONN while the database is away, at once between attempts. */
/* A connection that broke (or whose session was left half set up, *unset), reset once its
 * backoff is due and set up again — session_setup, then setup(ud). 0: it was fine; 1: reset
 * and ready (the backoff cleared); -ENOTCONN: not yet, or the reset failed (then the backoff
 * moved on, and *unset says the next attempt must reset a connected session again). Writer
 * and readers share it, each with its own pg_retry. */
static int conn_reset(PGconn *c, struct pg_retry *rt, int *unset, int (*setup)(void *), void *ud)
{
	if (PQstatus(c) == CONNECTION_OK && !*unset)
		return 0;
	if (!retry_due(rt))
		return -ENOTCONN;
	PQreset(c);
	*unset = 0;
	int rc = PQstatus(c) == CONNECTION_OK ? session_setup(c) : -ENOTCONN;
	if (!rc)
		rc = setup(ud);
	if (rc) {
		retry_failed(rt);
		*unset = PQstatus(c) == CONNECTION_OK;
		return -ENOTCONN;
	}
	rt->wait_ms = rt->attempts = 0;
	return 1;
}

/* What the writer sets up on a new session beyond session_setup (conn_reset's setup). */
static int writer_setup(void *ud)
{
	struct pg_be *s = ud;
	char err[256];
	int rc = writer_session(s, err, sizeof(err));
	if (!rc) {
		PGresult *r = PQprepare(s->w, "agent_update", s->agent_update, 0, NULL);
		rc = PQresultStatus(r) == PGRES_COMMAND_OK
		         ? (PQclear(r), 0)
		         : pg_fail(s->w, r, "store_reconnect_failed", "agent_update");
	}
	return rc;
}

static int writer_ready(struct pg_be *s)
{
	int64_t failed = s->wretry.attempts;
	int rc = conn_reset(s->w, &s->wretry, &s->w_unset, writer_setup, s);
	if (rc == 0)
		return 0;
	if (rc == 1) {
		avail_set(s, 1, NULL);
		log_warn(
		    "event=store_reconnected backend=postgresql db=\"%s\" failed_attempts=%" PRId64,
		    s->where, failed);
		return 0;
	}
	if (failed != s->wretry.attempts) { /* a reset was tried, and failed */
		char msg[192];
		one_line(PQerrorMessage(s->w), msg, sizeof(msg));
		avail_set(s, 0, msg[0] ? msg : "the session could not be set up again");
		log_warn(
		    "event=store_reconnect_failed backend=postgresql db=\"%s\" attempt=%" PRId64
		    " next_in_ms=%" PRId64 " error=\"%s\"",
		    s->where, s->wretry.attempts, s->wretry.at_mono - vw_mono_ms(), msg);
	}
	return -ENOTCONN;
}

/* writer_ready, the partitions the batches of list need, and BEGIN. A connection that
 * broke while idle (the database restarted) is found only when used: that first failure
 * gets one immediate reset and a second try, so a restart costs no request at all. */
static int writer_begin(struct pg_be *s, const struct store_batch *list)
{
	int rc = 0;
	for (int tries = 0; tries < 2; tries++) {
		int was_ok = PQstatus(s->w) == CONNECTION_OK && !s->w_unset;
		rc = writer_ready(s);
		for (const struct store_batch *b = list; !rc && b; b = b->next)
			rc = parts_ensure(s, b->received_ms);
		if (!rc)
			rc = pg_exec(s->w, "store_begin_failed", "BEGIN");
		if (rc != -ENOTCONN || !was_ok)
			break;
	}
	return rc;
}

/* A group's COPY text is sent once it passes this, before the next batch: the buffers stay
 * far below COPY_BUF_MAX however many batches a group holds. */
#define GROUP_FLUSH_BYTES (8u << 20)

/* The group's rows so far: results by one COPY, latest by one COPY into the stage and one
 * upsert from it. Per group rather than per batch: a COPY's fixed cost (and the stage's
 * dead rows, which a DELETE within one transaction scans again) is paid once. */
static int group_flush(struct pg_be *s)
{
	int rc = 0;
	if (s->copy.len)
		rc = copy_in(s->w, "copy_results", "COPY results(" RESULT_COLS ") FROM STDIN",
		             &s->copy);
	if (!rc && s->stage.len &&
	    !(rc = copy_in(s->w, "copy_latest", "COPY latest_stage(" LATEST_COLS ") FROM STDIN",
	                   &s->stage)))
		rc = pg_run(s->w, "store_write_failed", "latest_put", 0, NULL, NULL);
	vw_buf_reset(&s->copy);
	vw_buf_reset(&s->stage);
	return rc;
}

/* Whether an earlier batch of the group since the last flush is from b's agent: its rows
 * must reach latest before b reads the agent's old statuses (and the stage holds one row
 * per target). */
static int agent_repeats(const struct store_batch *from, const struct store_batch *b)
{
	for (const struct store_batch *a = from; a && a != b; a = a->next)
		if (strcmp(a->site, b->site) == 0 && strcmp(a->agent, b->agent) == 0)
			return 1;
	return 0;
}

/* COMMIT of a transaction that had failed is answered "ROLLBACK", with no error: the acks
 * hang on the command tag, not only on the status. */
static int commit_checked(PGconn *c)
{
	PGresult *r = PQexec(c, "COMMIT");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		return pg_fail(c, r, "store_commit_failed", "COMMIT");
	int ok = strcmp(PQcmdStatus(r), "COMMIT") == 0;
	if (!ok)
		log_error("event=store_commit_failed backend=postgresql step=COMMIT "
		          "error=\"the transaction had failed: rolled back\"");
	PQclear(r);
	return ok ? 0 : -EIO;
}

/* issue 13: the events of the open transaction (those of the batches of list that stand,
 * then one's), in that order, take their ids and are written, just before its COMMIT: one
 * UPDATE of feed_mark takes n ids under its row lock (held to the COMMIT, so another
 * collector's ids come wholly before or after these: rising in commit order, no gap), one
 * COPY writes the rows. Before, the lock was taken at a group's first event and held
 * through the rest of its batches, and each event was a round trip of its own. */
static int events_flush(struct pg_be *s, struct store_batch *list, struct store_events *one)
{
	size_t n = one ? one->n : 0;
	for (struct store_batch *b = list; b; b = b->next)
		if (!b->status)
			n += b->events.n;
	if (!n)
		return 0;
	struct ints t;
	const char *vals[1] = {i64s(&t, 0, (int64_t)n)};
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "events_take", 1, vals, &r);
	if (rc)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		log_error("event=store_write_failed backend=postgresql step=events_take "
		          "error=\"no feed_mark row: the schema is damaged\"");
		return -EIO;
	}
	int64_t id = val_i64(r, 0, 0) - (int64_t)n;
	PQclear(r);
	vw_buf_reset(&s->copy);
	for (struct store_batch *b = list;; b = b->next) {
		struct store_events *e = b ? &b->events : one;
		if (b && b->status)
			continue;
		for (size_t i = 0; e && i < e->n; i++) {
			struct store_event *ev = &e->v[i];
			ev->id = ++id;
			copy_i64(&s->copy, ev->id, 0);
			copy_i64(&s->copy, ev->ts_ms, 0);
			copy_field(&s->copy, ev->type, 0);
			copy_field(&s->copy, ev->site, 0);
			copy_field(&s->copy, ev->org, 0);
			copy_field(&s->copy, ev->city, 0);
			copy_field(&s->copy, ev->data, 1);
		}
		if (!b)
			break;
	}
	rc = copy_in(s->w, "copy_events",
	             "COPY events(id, ts_ms, type, site, org, city, data)"
	             " FROM STDIN",
	             &s->copy);
	vw_buf_reset(&s->copy);
	return rc;
}

/* One transaction for the group, a savepoint per batch (one bad batch does not sink the
 * others: its rows leave the COPY buffers with it); a batch's acks are final only when
 * COMMIT returned: the core hands them back after this returns. */
static int pg_commit(void *p, struct store_batch *list)
{
	struct pg_be *s = p;
	int rc = writer_begin(s, list);
	vw_buf_reset(&s->copy);
	vw_buf_reset(&s->stage);
	struct store_batch *since = list; /* the first batch not flushed yet */
	for (struct store_batch *b = list; b; b = b->next) {
		b->status = rc;
		if (rc)
			continue;
		if (agent_repeats(since, b) || s->copy.len > GROUP_FLUSH_BYTES) {
			if ((rc = group_flush(s)) != 0) {
				b->status = rc;
				continue;
			}
			since = b;
		}
		if (pg_exec(s->w, "store_write_failed", "SAVEPOINT batch")) {
			b->status = rc =
			    -EIO; /* the transaction is lost: every batch fails below */
			continue;
		}
		size_t copy_len = s->copy.len, stage_len = s->stage.len;
		b->status = apply_batch(s, b);
		if (b->status) {
			/* rolled back with it: its events never take ids (events_flush) */
			store_events_clear(&b->events);
			/* what came before b was whole (else its batch failed here before) */
			s->copy.len = copy_len, s->copy.err = 0;
			s->stage.len = stage_len, s->stage.err = 0;
			if (pg_exec(s->w, "store_write_failed", "ROLLBACK TO SAVEPOINT batch"))
				rc = -EIO; /* the transaction is lost: every batch fails below */
		}
		if (!rc && pg_exec(s->w, "store_write_failed", "RELEASE SAVEPOINT batch"))
			rc = -EIO;
	}
	if (!rc)
		rc = group_flush(s);
	if (!rc)
		rc = events_flush(s, list, NULL);
	if (!rc)
		rc = commit_checked(s->w);
	if (rc)
		pg_rollback(s->w, "store_commit_failed");
	if (rc)
		for (struct store_batch *b = list; b; b = b->next) {
			b->status = rc;
			store_events_clear(&b->events);
		}
	return rc;
}

/* The ceiling: b's rows by the same COPY, with the agent row they need and nothing else
 * (no lock, mark, latest or counts). */
static int pg_raw(void *p, const struct store_batch *b)
{
	struct pg_be *s = p;
	int64_t agent_id;
	int rc = writer_ready(s);
	if (!rc)
		rc = parts_ensure(s, b->received_ms);
	if (!rc)
		rc = pg_exec(s->w, "store_begin_failed", "BEGIN");
	if (rc)
		return rc;
	if ((rc = agent_lock(s, b, &agent_id)) != 0)
		goto fail;
	vw_buf_reset(&s->copy);
	for (size_t i = 0; i < b->nrows; i++)
		copy_row(&s->copy, b, &b->rows[i], agent_id, 0);
	if ((rc = copy_in(s->w, "copy_results", "COPY results(" RESULT_COLS ") FROM STDIN",
	                  &s->copy)) != 0 ||
	    (rc = pg_exec(s->w, "store_commit_failed", "COMMIT")) != 0)
		goto fail;
	return 0;
fail:
	pg_rollback(s->w, "store_commit_failed");
	return rc;
}

/* Retention: the oldest partition whose every row arrived longer ago than raw_retention,
 * and was rolled, is dropped, one per call (1 = another may be due). rolled_id: the rollup
 * job's persisted mark (rows at or below it are in the rollups scores read). */
static int parts_prune(struct pg_be *s, int64_t now_ms, int64_t rolled_id)
{
	if (s->raw_retention_ms <= 0)
		return 0;
	int rc = 0;
	PGresult *r = PQexec(s->w, "SELECT c.relname FROM pg_inherits i"
	                           " JOIN pg_class c ON c.oid = i.inhrelid"
	                           " WHERE i.inhparent = 'results'::regclass ORDER BY c.relname");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		return pg_fail(s->w, r, "store_prune_failed", "partitions");
	int64_t cutoff = now_ms - s->raw_retention_ms;
	int due = 0;
	char sql[160], name[64];
	for (int i = 0; i < PQntuples(r) && !rc; i++) {
		int y, m, d;
		char tail;
		/* only our own names; anything else a person attached is left alone */
		if (sscanf(PQgetvalue(r, i, 0), "results_%4d%2d%2d%c", &y, &m, &d, &tail) != 3)
			continue;
		struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
		int64_t day = (int64_t)timegm(&tm) / 86400;
		if ((day + 1) * DAY_MS > cutoff)
			continue;
		part_name(day, name, sizeof(name));
		if (strcmp(name, PQgetvalue(r, i, 0)) != 0)
			continue; /* "results_2025+1231" and the like: not a name we made */
		if (due++)        /* one per call: the writer goes back to ingest in between */
			break;
		/* DROP locks all of results (ACCESS EXCLUSIVE): behind a long read it would
		 * queue every collector's ingest behind it. Given up after 2 s instead; the
		 * next slice tries again. The partition's rows are checked rolled under that
		 * lock, so none can join them between the check and the DROP. */
		struct ints t;
		const char *pv[1] = {i64s(&t, 0, (day + 1) * DAY_MS)};
		PGresult *mx = NULL;
		snprintf(sql, sizeof(sql), "LOCK TABLE results IN ACCESS EXCLUSIVE MODE");
		if ((rc = pg_exec(s->w, "store_prune_failed", "BEGIN")) == 0 &&
		    (rc = pg_exec(s->w, "store_prune_failed", "SET LOCAL lock_timeout = '2s'")) ==
		        0 &&
		    (rc = pg_exec(s->w, "store_prune_failed", sql)) == 0) {
			snprintf(sql, sizeof(sql), "SELECT coalesce(max(id), 0) FROM %s", name);
			mx = PQexec(s->w, sql);
			if (PQresultStatus(mx) != PGRES_TUPLES_OK)
				rc = pg_fail(s->w, mx, "store_prune_failed", "partition_max"),
				mx = NULL;
		}
		int64_t top = mx ? val_i64(mx, 0, 0) : 0;
		PQclear(mx);
		if (!rc && top > rolled_id) {
			/* not rolled yet: kept until it is (the job is behind, or not running) */
			pg_rollback(s->w, "store_prune_failed");
			due = 0;
			break;
		}
		snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", name);
		if (!rc && (rc = pg_exec(s->w, "store_prune_failed", sql)) == 0 &&
		    (rc = pg_run(s->w, "store_prune_failed", "roll_pruned", 1, pv, NULL)) == 0 &&
		    (rc = pg_exec(s->w, "store_prune_failed", "COMMIT")) == 0) {
			log_info("event=store_partition_dropped backend=postgresql partition=%s",
			         name);
			/* the oldest goes first: the range of known days loses its front (a row
			 * that still arrives for that day makes it again) */
			if (day >= s->parts_from && day < s->parts_until)
				s->parts_from = day + 1;
		} else
			pg_rollback(s->w, "store_prune_failed");
	}
	PQclear(r);
	if (rc)
		return rc;
	return due > 1;
}

/* issue 16 C: rows older than retention_ms (column read by `oldest`, compared by `prune`),
 * oldest first, at most THUMB_PRUNE_BATCH per call in a transaction of their own (sqlite.c's
 * bounded_prune); *deleted says how many. Caught up, it costs one read of the first row. */
#define THUMB_PRUNE_BATCH 500
static int bounded_prune(struct pg_be *s, int64_t now_ms, int64_t retention_ms, const char *oldest,
                         const char *prune, const char *what, int64_t *deleted)
{
	*deleted = 0;
	if (retention_ms <= 0)
		return 0;
	int64_t cutoff = now_ms - retention_ms;
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_prune_failed", oldest, 0, NULL, &r);
	if (rc)
		return rc;
	int due = PQntuples(r) == 1 && val_i64(r, 0, 0) < cutoff;
	PQclear(r);
	if (!due)
		return 0;
	struct ints t;
	const char *vals[2] = {i64s(&t, 0, cutoff), i64s(&t, 1, THUMB_PRUNE_BATCH)};
	/* autocommit: the DELETE is its own transaction */
	PGresult *d = PQexecPrepared(s->w, prune, 2, vals, NULL, NULL, 0);
	if (PQresultStatus(d) != PGRES_COMMAND_OK)
		return pg_fail(s->w, d, "store_prune_failed", prune);
	*deleted = strtoll(PQcmdTuples(d), NULL, 10);
	PQclear(d);
	if (*deleted)
		log_info("event=%s_pruned backend=postgresql rows=%" PRId64, what, *deleted);
	return 0;
}

/* --- issue 13: the rollup job --------------------------------------------------------------
 * rollup.c's job, run by the holder of the rollup lease between group commits. sqlite.c
 * reads new results by id: one writer, so ids become visible in their order. Here a
 * sequence hands out ids to several collectors' transactions, which commit in any order: a
 * cursor past 11 would never see a 10 committed after it. So the job reads only up to a
 * horizon every transaction that could hold a lower id has passed: it reads the sequence's
 * last id L, then the snapshot's xmax X (the first transaction id not yet assigned). Every id
 * at or below L was taken by a transaction with an id below X (ingest locks its agent row,
 * which assigns its transaction id, before its COPY takes ids), so once the oldest running
 * transaction is at or past X (snapshot xmin >= X), every id at or below L has committed or
 * never will. Nothing is added to ingest: no lock, no counter row. */

#define ROLL_SLICE 5000

static void roll_drop(struct pg_be *s)
{
	rollup_mem_free(s->roll.job);
	s->roll.job = NULL;
}

static int jrun(struct pg_be *s, const char *name, int n, const char *const *vals, PGresult **out)
{
	return pg_run(s->w, "rollup_failed", name, n, vals, out);
}

static int jio_agent_site(void *db, int64_t agent_id, char *site, size_t n)
{
	struct pg_be *s = db;
	struct ints t;
	const char *v[1] = {i64s(&t, 0, agent_id)};
	PGresult *r = NULL;
	int rc = jrun(s, "roll_agent_site", 1, v, &r);
	if (rc)
		return rc;
	rc = PQntuples(r) ? 0 : -ENOENT;
	if (!rc)
		snprintf(site, n, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return rc;
}

static int jio_site_exams(void *db, const char *site, int64_t from, struct rollup_exams *out)
{
	struct pg_be *s = db;
	struct ints t;
	const char *v[2] = {site, i64s(&t, 0, from)};
	PGresult *r = NULL;
	int rc = jrun(s, "roll_exams_site", 2, v, &r);
	for (int i = 0; !rc && i < PQntuples(r); i++)
		rc = rollup_exams_add(out, val_i64(r, i, 0), val_i64(r, i, 1), val_i64(r, i, 2),
		                      PQgetvalue(r, i, 3));
	PQclear(r);
	return rc;
}

static int jio_put_hold(void *db, int64_t agent_id, const char *kind, const char *target,
                        const struct credit_state *cs)
{
	struct vw_buf *a = ((struct pg_be *)db)->roll.a + RA_HOLD;
	arr_i64(&a[0], agent_id);
	arr_str(&a[1], kind);
	arr_str(&a[2], target);
	arr_i64(&a[3], cs->status);
	arr_i64(&a[4], cs->ts_ms);
	arr_i64(&a[5], cs->stale_ms);
	arr_i64(&a[6], cs->until_ms);
	return 0;
}

static int jio_put_credit(void *db, int64_t exam_id, int cls, const char *target,
                          const int64_t ms[VW_STATUS_COUNT], int64_t results)
{
	struct vw_buf *a = ((struct pg_be *)db)->roll.a + RA_CREDIT;
	arr_i64(&a[0], exam_id);
	arr_i64(&a[1], cls);
	arr_str(&a[2], target);
	for (int i = 0; i < VW_STATUS_COUNT; i++)
		arr_i64(&a[3 + i], ms[i]);
	arr_i64(&a[6], results);
	return 0;
}

static int jio_put_day(void *db, int64_t agent_id, const char *kind, const char *target,
                       int64_t day, const int64_t ms[VW_STATUS_COUNT], int64_t results)
{
	struct vw_buf *a = ((struct pg_be *)db)->roll.a + RA_DAY;
	arr_i64(&a[0], agent_id);
	arr_str(&a[1], kind);
	arr_str(&a[2], target);
	arr_i64(&a[3], day);
	for (int i = 0; i < VW_STATUS_COUNT; i++)
		arr_i64(&a[4 + i], ms[i]);
	arr_i64(&a[7], results);
	return 0;
}

static int jio_put_agent(void *db, int64_t agent_id, const char *site, int64_t ts_ms)
{
	struct vw_buf *a = ((struct pg_be *)db)->roll.a + RA_AGENT;
	arr_i64(&a[0], agent_id);
	arr_str(&a[1], site);
	arr_i64(&a[2], ts_ms);
	return 0;
}

static void jio(struct pg_be *s, struct rollup_io *io)
{
	*io = (struct rollup_io){
	    s,           jio_agent_site, jio_site_exams, jio_put_hold, jio_put_credit,
	    jio_put_day, jio_put_agent};
}

/* The persisted job (mark, agents, holds) into fresh memory, in one snapshot. */
static int roll_load(struct pg_be *s, int64_t epoch)
{
	struct rollup_mem *m = rollup_mem_new();
	if (!m)
		return -ENOMEM;
	PGresult *r = NULL;
	int rc = pg_exec(s->w, "rollup_failed", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (!rc && !(rc = jrun(s, "roll_mark_get", 0, NULL, &r))) {
		struct rollup_pos *pos = rollup_pos(m);
		pos->mark = pos->flushed_mark = PQntuples(r) ? val_i64(r, 0, 0) : 0;
		PQclear(r);
	}
	if (!rc && !(rc = jrun(s, "roll_agents_load", 0, NULL, &r))) {
		for (int i = 0; !rc && i < PQntuples(r); i++)
			rc = rollup_load_agent(m, val_i64(r, i, 0), PQgetvalue(r, i, 1),
			                       val_i64(r, i, 2));
		PQclear(r);
	}
	if (!rc && !(rc = jrun(s, "roll_state_load", 0, NULL, &r))) {
		for (int i = 0; !rc && i < PQntuples(r); i++) {
			struct credit_state cs = {1, (int)val_i64(r, i, 3), val_i64(r, i, 4),
			                          val_i64(r, i, 5), val_i64(r, i, 6)};
			rc = rollup_load_hold(m, val_i64(r, i, 0), PQgetvalue(r, i, 1),
			                      PQgetvalue(r, i, 2), &cs);
		}
		PQclear(r);
	}
	if (!rc)
		rc = pg_exec(s->w, "rollup_failed", "COMMIT");
	if (rc) {
		pg_rollback(s->w, "rollup_failed");
		rollup_mem_free(m);
		log_error("event=rollup_failed backend=postgresql step=load error=%d", rc);
		return rc;
	}
	s->roll.job = m;
	s->roll.epoch = epoch;
	s->roll.safe_id = rollup_pos(m)->mark;
	s->roll.pend_xmax = 0;
	s->roll.gen = -1;
	log_info("event=rollup_loaded backend=postgresql mark=%" PRId64 " lease_epoch=%" PRId64,
	         rollup_pos(m)->mark, epoch);
	return 0;
}

/* Moves safe_id on (the comment above the section says how). Autocommit, two statements in
 * this order: L first, then a snapshot taken after it. */
static int roll_horizon(struct pg_be *s)
{
	PGresult *r = NULL;
	int rc = jrun(s, "roll_seq", 0, NULL, &r);
	if (rc)
		return rc;
	int64_t last = val_i64(r, 0, 0);
	PQclear(r);
	if ((rc = jrun(s, "roll_snap", 0, NULL, &r)) != 0)
		return rc;
	int64_t xmin = val_i64(r, 0, 0), xmax = val_i64(r, 0, 1);
	PQclear(r);
	struct pg_roll *j = &s->roll;
	if (j->pend_xmax && xmin >= j->pend_xmax) {
		j->safe_id = j->pend_id > j->safe_id ? j->pend_id : j->safe_id;
		j->pend_xmax = 0;
	}
	if (xmin >= xmax) { /* nothing running: every id taken so far is settled */
		j->safe_id = last > j->safe_id ? last : j->safe_id;
		j->pend_xmax = 0;
	} else if (!j->pend_xmax && last > j->safe_id) {
		j->pend_id = last;
		j->pend_xmax = xmax;
	}
	return 0;
}

/* Up to ROLL_SLICE results past the mark and at or below safe_id into memory, in one
 * snapshot with exam_gen (migration 7 says why). *rolled = how many. */
static int roll_slice(struct pg_be *s, int64_t now_ms, size_t *rolled)
{
	struct rollup_mem *m = s->roll.job;
	struct rollup_pos *pos = rollup_pos(m);
	*rolled = 0;
	if (pos->mark >= s->roll.safe_id)
		return 0;
	struct rollup_io io;
	jio(s, &io);
	PGresult *r = NULL;
	int rc = pg_exec(s->w, "rollup_failed", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (!rc && !(rc = jrun(s, "roll_gen", 0, NULL, &r))) {
		int64_t gen = PQntuples(r) ? val_i64(r, 0, 0) : 0;
		PQclear(r);
		if (gen != s->roll.gen) {
			rollup_exams_changed(m);
			s->roll.gen = gen;
		}
	}
	struct ints t;
	const char *v[3] = {i64s(&t, 0, pos->mark), i64s(&t, 1, s->roll.safe_id),
	                    i64s(&t, 2, ROLL_SLICE)};
	if (!rc && !(rc = jrun(s, "roll_new", 3, v, &r))) {
		for (int i = 0; !rc && i < PQntuples(r); i++) {
			enum vw_status status;
			if (vw_status_parse(PQgetvalue(r, i, 4), &status) != 0)
				status = VW_STATUS_DOWN; /* the writer stores only known names */
			double interval = strtod(PQgetvalue(r, i, 6), NULL);
			if ((rc = rollup_result(m, &io, val_i64(r, i, 1), PQgetvalue(r, i, 2),
			                        PQgetvalue(r, i, 3), (int)status, val_i64(r, i, 5),
			                        credit_stale_ms(interval, s->default_stale_ms),
			                        now_ms)) != 0)
				break;
			pos->mark = val_i64(r, i, 0);
			pos->pending++;
			(*rolled)++;
		}
		PQclear(r);
	}
	if (!rc)
		rc = pg_exec(s->w, "rollup_failed", "COMMIT");
	if (rc)
		pg_rollback(s->w, "rollup_failed");
	return rc;
}

/* What memory holds beyond the last flush, and the mark, in one transaction fenced by the
 * rollup lease: a collector that lost it writes nothing. */
static int roll_flush(struct pg_be *s, int64_t now_ms, struct store_stats *out)
{
	struct rollup_mem *m = s->roll.job;
	struct rollup_pos *pos = rollup_pos(m);
	struct rollup_io io;
	jio(s, &io);
	for (int i = 0; i < RA_COUNT; i++)
		vw_buf_reset(&s->roll.a[i]);
	size_t holds = 0;
	int rc = rollup_tails(m, &io, now_ms);
	if (!rc)
		rc = rollup_write(m, &io, &holds);
	if (!rc)
		rc = pg_exec(s->w, "rollup_failed", "BEGIN");
	if (!rc)
		rc = pg_lease_fence(s->lease, s->w, STORE_LEASE_ROLLUP);
	struct ints t;
	const char *now[1] = {i64s(&t, 0, now_ms)};
	static const struct {
		const char *stmt;
		int first, n, fixed;
	} tables[] = {{"roll_holds", RA_HOLD, 7, 0},
	              {"roll_credits", RA_CREDIT, 7, 1},
	              {"roll_days", RA_DAY, 8, 0},
	              {"roll_agents", RA_AGENT, 3, 0}};
	for (size_t i = 0; !rc && i < sizeof(tables) / sizeof(tables[0]); i++)
		if (s->roll.a[tables[i].first].len)
			rc = feed_arrays_run(s, tables[i].stmt, tables[i].fixed, now,
			                     &s->roll.a[tables[i].first], tables[i].n);
	const char *mv[2] = {i64s(&t, 1, pos->mark), now[0]};
	if (!rc)
		rc = jrun(s, "roll_mark_set", 2, mv, NULL);
	if (!rc)
		rc = commit_checked(s->w);
	if (rc) {
		pg_rollback(s->w, "rollup_failed");
		log_error("event=rollup_failed backend=postgresql step=flush mark=%" PRId64
		          " error=%d",
		          pos->mark, rc);
		roll_drop(s); /* reloaded from the database when next due */
		return rc;
	}
	log_debug("event=rollup_flush backend=postgresql results=%llu holds=%zu mark=%" PRId64,
	          (unsigned long long)pos->pending, holds, pos->mark);
	out->rows_rolled += pos->pending;
	out->rollup_flushes++;
	rollup_written(m, now_ms);
	return 0;
}

/* Between group commits, by the rollup lease's holder only: one slice of the job (and a
 * flush when due), a partition past raw_retention that is rolled dropped, and a batch of
 * old pictures and of old access records deleted. 1 when more may be due. */
static int pg_rollup(void *p, int64_t now_ms, struct store_stats *out)
{
	struct pg_be *s = p;
	int rc = writer_ready(s);
	if (rc)
		return rc;
	struct store_lease held[STORE_LEASES];
	pg_lease_view(s->lease, held);
	const struct store_lease *l = &held[STORE_LEASE_ROLLUP];
	if (!l->held) {
		roll_drop(s); /* another collector's job moves the tables meanwhile */
		return 0;
	}
	if (s->roll.job && s->roll.epoch != l->epoch)
		roll_drop(s); /* lost and taken again: what another holder wrote is read */
	if (!s->roll.job && (rc = roll_load(s, l->epoch)) != 0)
		return rc;
	size_t rolled = 0;
	if ((rc = roll_horizon(s)) != 0 || (rc = roll_slice(s, now_ms, &rolled)) != 0) {
		log_error("event=rollup_failed backend=postgresql step=roll mark=%" PRId64
		          " error=%d",
		          rollup_pos(s->roll.job)->mark, rc);
		roll_drop(s); /* memory may hold half a result: start again from the last flush */
		return rc;
	}
	out->rollup_slices++;
	if (rollup_flush_due(s->roll.job, now_ms, s->flush_ms) &&
	    (rc = roll_flush(s, now_ms, out)) != 0)
		return rc;
	int more = s->roll.job ? parts_prune(s, now_ms, rollup_pos(s->roll.job)->flushed_mark) : 0;
	if (more < 0)
		return more;
	int64_t thumbs = 0, accesses = 0;
	if ((rc = bounded_prune(s, now_ms, s->thumb_retention_ms, "thumb_oldest", "thumb_prune",
	                        "thumbnails", &thumbs)) != 0 ||
	    (rc = bounded_prune(s, now_ms, s->access_retention_ms, "access_oldest", "access_prune",
	                        "thumbnail_access", &accesses)) != 0)
		return rc;
	return rolled == ROLL_SLICE || more || thumbs == THUMB_PRUNE_BATCH ||
	       accesses == THUMB_PRUNE_BATCH;
}

/* At close (writer thread joined): what memory holds beyond the last flush is written, if
 * the lease is still this collector's (the fence says). */
static void roll_close(struct pg_be *s)
{
	if (!s->roll.job)
		return;
	struct store_stats st = {0};
	int64_t now = vw_now_ms();
	if (PQstatus(s->w) == CONNECTION_OK &&
	    (rollup_pos(s->roll.job)->pending || rollup_flush_due(s->roll.job, now, 0)))
		roll_flush(s, now, &st);
	roll_drop(s);
}

/* --- readers ------------------------------------------------------------------------------ */

static void pg_reader_close(void *p)
{
	struct pg_rd *rd = p;
	if (!rd)
		return;
	PQfinish(rd->c);
	free(rd);
}

static int pg_reader_open(void *p, void **out, char *err, size_t errlen)
{
	struct pg_be *s = p;
	struct pg_rd *rd = calloc(1, sizeof(*rd));
	if (!rd) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rd->be = s;
	rd->retry.rng = (uint64_t)vw_now_ms() ^ (uint64_t)(uintptr_t)rd;
	int rc = pg_connect(s, "venuewatch-server reader", &rd->c, err, errlen);
	if (!rc)
		rc = prepare_all(rd->c, rstmts, R_NSTMTS, err, errlen, s->where);
	if (rc) {
		pg_reader_close(rd);
		return rc;
	}
	*out = rd;
	return 0;
}

/* A reader whose connection broke is reset before its read, with its own backoff (see
 * writer_ready): while the database is away a read fails at once (503). */
static int reader_setup(void *ud)
{
	struct pg_rd *rd = ud;
	char err[256];
	return prepare_all(rd->c, rstmts, R_NSTMTS, err, sizeof(err), rd->be->where);
}

static int reader_ready(struct pg_rd *rd)
{
	int64_t failed = rd->retry.attempts;
	int rc = conn_reset(rd->c, &rd->retry, &rd->unset, reader_setup, rd);
	if (rc == -ENOTCONN && failed != rd->retry.attempts)
		pg_fail(rd->c, NULL, "store_reconnect_failed", "reader");
	return rc < 0 ? rc : 0;
}

static int rd_run(struct pg_rd *rd, int stmt, int n, const char *const *vals, PGresult **out)
{
	int rc = reader_ready(rd);
	return rc ? rc : pg_run(rd->c, "store_read_failed", rstmts[stmt].name, n, vals, out);
}

/* Row i of SITE_SUMMARY as a site (strings point into r). */
static void site_row(const PGresult *r, int i, struct store_site *st)
{
	memset(st, 0, sizeof(*st));
	st->site = PQgetvalue(r, i, 0);
	st->org = PQgetvalue(r, i, 1);
	st->city = PQgetvalue(r, i, 2);
	st->last_report_ms = val_i64(r, i, 3);
	st->ok = val_i64(r, i, 4);
	st->degraded = val_i64(r, i, 5);
	st->down = val_i64(r, i, 6);
	for (int h = 0; h < STORE_H_COUNT; h++)
		for (int k = 0; k < VW_STATUS_COUNT; k++)
			st->health[h][k] = val_i64(r, i, 7 + h * VW_STATUS_COUNT + k);
	/* in_session, open_problems and silent: the caller's (exam sessions, problems) */
}

/* The row of r whose first column is site (r sorted by strcmp: COLLATE "C"), or -1. */
static int sorted_has(const PGresult *r, const char *site)
{
	int lo = 0, hi = PQntuples(r);
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2, c = strcmp(PQgetvalue(r, mid, 0), site);
		if (!c)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int pg_list_sites(void *p, struct store_fill *f)
{
	struct pg_rd *rd = p;
	/* One snapshot: the summaries and the running sessions agree. */
	int rc = reader_ready(rd);
	if (!rc)
		rc = pg_exec(rd->c, "store_read_failed",
		             "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (rc)
		return rc;
	struct ints t;
	const char *vals[2] = {i64s(&t, 0, vw_now_ms()), i64s(&t, 1, STORE_EXAM_MAX_MS)};
	PGresult *run = NULL, *r = NULL, *probs = NULL;
	if ((rc = rd_run(rd, R_RUNNING, 2, vals, &run)) != 0 ||
	    (rc = rd_run(rd, R_OPEN_PROBLEMS, 0, NULL, &probs)) != 0 ||
	    (rc = rd_run(rd, R_SITES, 0, NULL, &r)) != 0)
		goto out;
	for (int i = 0; !rc && i < PQntuples(r); i++) {
		struct store_site st;
		site_row(r, i, &st);
		st.in_session = sorted_has(run, st.site) >= 0;
		int k = sorted_has(probs, st.site);
		if (k >= 0) {
			st.open_problems = val_i64(probs, k, 1);
			st.silent = val_i64(probs, k, 2) > 0;
		}
		rc = store_fill_site(f, &st);
	}
out:
	PQclear(run);
	PQclear(probs);
	PQclear(r);
	pg_exec(rd->c, "store_read_failed", "COMMIT");
	return rc;
}

/* The site's summary (in_session, open problems and silence too) into f, in the caller's
 * read transaction; -ENOENT when the site never reported. */
static int site_summary(struct pg_rd *rd, const char *site, struct store_fill *f)
{
	const char *vals[1] = {site};
	PGresult *r = NULL, *rr = NULL;
	int rc = rd_run(rd, R_SITE, 1, vals, &r);
	if (rc)
		return rc;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return -ENOENT;
	}
	struct store_site st;
	site_row(r, 0, &st);
	struct ints now;
	const char *run[3] = {i64s(&now, 0, vw_now_ms()), i64s(&now, 1, STORE_EXAM_MAX_MS), site};
	if ((rc = rd_run(rd, R_RUNNING_SITE, 3, run, &rr)) != 0)
		goto out;
	st.in_session = PQntuples(rr) > 0;
	PQclear(rr);
	if ((rc = rd_run(rd, R_OPEN_PROBLEMS_SITE, 1, vals, &rr)) != 0)
		goto out;
	st.open_problems = val_i64(rr, 0, 0);
	st.silent = val_i64(rr, 0, 1) > 0;
	PQclear(rr);
	rc = store_fill_site(f, &st);
out:
	PQclear(r); /* st's strings lived in it until here */
	return rc;
}

static int pg_get_site(void *p, const char *site, struct store_fill *f)
{
	struct pg_rd *rd = p;
	/* One snapshot: the summary and the targets agree with each other. */
	int rc = reader_ready(rd);
	if (!rc)
		rc = pg_exec(rd->c, "store_read_failed",
		             "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (rc)
		return rc;
	const char *vals[1] = {site};
	PGresult *r = NULL;
	if ((rc = site_summary(rd, site, f)) != 0)
		goto out;
	if ((rc = rd_run(rd, R_TARGETS, 1, vals, &r)) != 0) {
		r = NULL;
		goto out;
	}
	for (int i = 0; !rc && i < PQntuples(r); i++) {
		struct store_target t = {
		    .agent = PQgetvalue(r, i, 0),
		    .kind = PQgetvalue(r, i, 1),
		    .target = PQgetvalue(r, i, 2),
		    .status = PQgetvalue(r, i, 3),
		    .session = PQgetvalue(r, i, 4), /* NULL reads "" */
		    .codec = PQgetvalue(r, i, 5),
		    .faults = PQgetvalue(r, i, 6),
		    .metrics = PQgetvalue(r, i, 7),
		    .ts_ms = val_i64(r, i, 8),
		    .seq = val_i64(r, i, 9),
		    .thumb_ts_ms = val_i64(r, i, 10), /* NULL: 0 */
		};
		rc = store_fill_target(f, &t);
	}
out:
	PQclear(r);
	pg_exec(rd->c, "store_read_failed", "COMMIT");
	return rc;
}

/* issue 16 C: the site's summary and one picture, from one snapshot. */
static int pg_thumbnail(void *p, const char *site, const char *camera, int64_t at_ms,
                        struct store_fill *f)
{
	struct pg_rd *rd = p;
	int rc = reader_ready(rd);
	if (!rc)
		rc = pg_exec(rd->c, "store_read_failed",
		             "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (rc)
		return rc;
	PGresult *r = NULL;
	if ((rc = site_summary(rd, site, f)) != 0)
		goto out;
	struct ints t;
	const char *vals[3] = {site, camera, i64s(&t, 0, at_ms > 0 ? at_ms : INT64_MAX)};
	if ((rc = rd_run(rd, R_THUMB, 3, vals, &r)) != 0) {
		r = NULL;
		goto out;
	}
	if (PQntuples(r) == 1) {
		size_t len = 0;
		unsigned char *jpeg =
		    PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 3), &len);
		rc = jpeg ? store_fill_thumb(f, jpeg, len, PQgetvalue(r, 0, 0), val_i64(r, 0, 1),
		                             val_i64(r, 0, 2))
		          : -ENOMEM;
		PQfreemem(jpeg);
	}
out:
	PQclear(r);
	pg_exec(rd->c, "store_read_failed", "COMMIT");
	return rc;
}

static int pg_high_seq(void *p, const char *site, const char *agent, const char *epoch,
                       int64_t *out)
{
	struct pg_rd *rd = p;
	const char *vals[3] = {site, agent, epoch};
	PGresult *r = NULL;
	int rc = rd_run(rd, R_HIGH, 3, vals, &r);
	if (rc)
		return rc;
	*out = PQntuples(r) ? val_i64(r, 0, 0) : 0;
	PQclear(r);
	return 0;
}

static int pg_count_results(void *p, int64_t *out)
{
	struct pg_rd *rd = p;
	PGresult *r = NULL;
	int rc = rd_run(rd, R_COUNT_RESULTS, 0, NULL, &r);
	if (rc)
		return rc;
	*out = val_i64(r, 0, 0);
	PQclear(r);
	return 0;
}

/* --- exam sessions ---------------------------------------------------------------------- *
 * The same rules as sqlite.c's (store.h says them); the rows a change applies to are locked,
 * so two collectors' changes of one session run one after the other. */

static void exam_row(const PGresult *r, int i, struct store_exam_session *e)
{
	e->id = val_i64(r, i, 0);
	e->org = PQgetvalue(r, i, 1);
	e->city = PQgetvalue(r, i, 2);
	e->site = PQgetvalue(r, i, 3);
	e->code = PQgetvalue(r, i, 4);
	e->occupation = PQgetvalue(r, i, 5);
	e->level = PQgetvalue(r, i, 6);
	e->rooms = PQgetvalue(r, i, 7);
	e->start_ms = val_i64(r, i, 8);
	e->end_ms = val_i64(r, i, 9);
	e->candidates = val_i64(r, i, 10);
	e->cancelled_ms = val_i64(r, i, 11);
	e->created_ms = val_i64(r, i, 12);
	e->updated_ms = val_i64(r, i, 13);
}

/* The audit row's picture of a session, as sqlite.c writes it (the same JSON keys). */
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
	vw_buf_printf(b, ",\"start_ms\":%" PRId64 ",\"end_ms\":%" PRId64 ",\"candidates\":%" PRId64,
	              e->start_ms, e->end_ms, e->candidates);
	if (e->cancelled_ms)
		vw_buf_printf(b, ",\"cancelled_ms\":%" PRId64, e->cancelled_ms);
	vw_buf_puts(b, "}");
}

/* The change's audit row and the site's version, in the write's transaction. */
static int exam_changed(struct pg_be *s, const struct store_write *w, int64_t id, const char *site,
                        const char *action, const struct store_exam_session *before,
                        const struct store_exam_session *after)
{
	struct vw_buf jb, ja;
	vw_buf_init(&jb, 1u << 16);
	vw_buf_init(&ja, 1u << 16);
	if (before)
		exam_json(&jb, before);
	exam_json(&ja, after);
	int rc = jb.err ? jb.err : ja.err;
	struct ints t;
	const char *vals[6] = {
	    i64s(&t, 0, id), i64s(&t, 1, w->now_ms),           w->actor ? w->actor : "",
	    action,          before ? vw_buf_cstr(&jb) : NULL, vw_buf_cstr(&ja)};
	if (!rc)
		rc = pg_run(s->w, "store_write_failed", "exam_audit", 6, vals, NULL);
	const char *sv[1] = {site};
	if (!rc)
		rc = pg_run(s->w, "store_write_failed", "exam_bump", 1, sv, NULL);
	vw_buf_free(&jb);
	vw_buf_free(&ja);
	return rc;
}

static int exam_create(struct pg_be *s, struct store_write *w)
{
	for (size_t i = 0; i < w->nexams; i++) {
		struct store_exam_session *e = &w->exams[i];
		int refused = store_exam_check_new(w, i);
		if (refused)
			return refused;
		struct ints t, u;
		const char *vals[11] = {e->org,
		                        e->city,
		                        e->site,
		                        e->code,
		                        e->occupation,
		                        e->level,
		                        i64s(&t, 0, e->start_ms),
		                        i64s(&t, 1, e->end_ms),
		                        e->rooms,
		                        i64s(&t, 2, e->candidates),
		                        i64s(&u, 0, w->now_ms)};
		PGresult *r = NULL;
		int rc = pg_run(s->w, "store_write_failed", "exam_new", 11, vals, &r);
		if (rc)
			return rc;
		int64_t id = PQntuples(r) ? val_i64(r, 0, 0) : 0;
		PQclear(r);
		if (!id)
			return store_exam_refuse(
			    w, i, -EEXIST, "the organisation already has a session %s", e->code);
		e->id = id;
		e->created_ms = e->updated_ms = w->now_ms;
		e->cancelled_ms = 0;
		if ((rc = exam_changed(s, w, id, e->site, "create", NULL, e)) != 0)
			return rc;
	}
	return 0;
}

/* update and cancel: the stored row, in scope, not cancelled, not started. */
static int exam_change(struct pg_be *s, struct store_write *w)
{
	struct store_exam_session *e = &w->exams[0];
	struct ints t;
	const char *vals[3] = {i64s(&t, 0, e->id), w->scope_org ? w->scope_org : "",
	                       w->scope_city ? w->scope_city : ""};
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "exam_lock", 3, vals, &r);
	if (rc)
		return rc;
	if (!PQntuples(r)) {
		PQclear(r);
		return store_exam_refuse(w, 0, -ENOENT, "no such session%s", "");
	}
	struct store_exam_session old, now;
	exam_row(r, 0, &old);
	snprintf(w->site, sizeof(w->site), "%s", old.site);
	rc = store_exam_change(w, &old, &now);
	if (!rc) {
		struct ints a, b;
		const char *up[9] = {vals[0],
		                     now.occupation,
		                     now.level,
		                     now.rooms,
		                     i64s(&a, 0, now.start_ms),
		                     i64s(&a, 1, now.end_ms),
		                     i64s(&a, 2, now.candidates),
		                     i64s(&a, 3, now.cancelled_ms),
		                     i64s(&b, 0, now.updated_ms)};
		rc = pg_run(s->w, "store_write_failed", "exam_set", 9, up, NULL);
		if (!rc)
			rc = exam_changed(s, w, now.id, now.site,
			                  w->op == STORE_EXAM_UPDATE ? "update" : "cancel", &old,
			                  &now);
	}
	PQclear(r); /* old's strings lived in it until here */
	return rc;
}

/* --- issue 16 (A): the feed's writes (STORE_FEED_TICK, STORE_PROBLEM_ACK) ------------------ */

/* issue 14: the open problems by kind and severity, and the sites by status, into c (sqlite.c's
 * feed_count); nsites = feed_sites' rows. */
static int feed_count(struct pg_be *s, int64_t now, int64_t nsites, struct store_feed_counts *c)
{
	memset(c, 0, sizeof(*c));
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "feed_count_open", 0, NULL, &r);
	if (rc)
		return rc;
	const char *site = "";
	int worst = -1; /* the site's: enum store_site_state */
	for (int i = 0; i < PQntuples(r); i++) {
		const char *row_site = PQgetvalue(r, i, 0), *kind = PQgetvalue(r, i, 1);
		const char *status = PQgetvalue(r, i, 2), *sev = PQgetvalue(r, i, 3);
		if (worst >= 0 && strcmp(site, row_site) != 0) {
			c->sites[worst]++;
			worst = -1;
		}
		site = row_site;
		enum vw_kind k;
		int ki = strcmp(kind, "site") == 0      ? VW_KIND_COUNT
		         : vw_kind_parse(kind, &k) == 0 ? (int)k
		                                        : -1;
		int si = -1;
		for (int j = 0; j < STORE_SEVERITIES; j++)
			if (strcmp(sev, store_severity_names[j]) == 0)
				si = j;
		if (ki >= 0 && si >= 0)
			c->problems[ki][si]++;
		int state = ki == VW_KIND_COUNT           ? STORE_SITE_SILENT
		            : strcmp(status, "down") == 0 ? STORE_SITE_DOWN
		                                          : STORE_SITE_DEGRADED;
		if (state > worst)
			worst = state;
	}
	PQclear(r);
	if (worst >= 0)
		c->sites[worst]++;
	int64_t bad =
	    c->sites[STORE_SITE_DEGRADED] + c->sites[STORE_SITE_DOWN] + c->sites[STORE_SITE_SILENT];
	c->sites[STORE_SITE_OK] = nsites > bad ? nsites - bad : 0;
	c->at_ms = now > 0 ? now : 1;
	return 0;
}

/* Sites silent past their bound get a site_silent problem. */
static int feed_silence(struct pg_be *s, struct store_write *w)
{
	int64_t now = w->now_ms;
	struct ints t;
	char factor[32];
	snprintf(factor, sizeof(factor), "%.17g", w->silent_factor > 0 ? w->silent_factor : 3);
	const char *vals[4] = {i64s(&t, 0, now), i64s(&t, 1, w->since_ms),
	                       i64s(&t, 2, w->silent_ms), factor};
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "feed_due", 4, vals, &r);
	if (rc)
		return rc;
	if (PQntuples(r))
		s->feed_dirty = 1;
	for (int i = 0; !rc && i < PQntuples(r); i++) {
		const char *site = PQgetvalue(r, i, 0), *org = PQgetvalue(r, i, 1);
		const char *city = PQgetvalue(r, i, 2);
		int64_t last = val_i64(r, i, 3), id = 0;
		int in_session = 0;
		if ((rc = site_in_session(s, site, last, now, &in_session)) != 0 ||
		    (rc = problem_new(s, site, org, city, "", "site", "", "down",
		                      "[\"site_silent\"]", last, in_session, &id)) != 0)
			break;
		struct ints u;
		const char *set[2] = {site, i64s(&u, 0, id)};
		if ((rc = pg_run(s->w, "store_write_failed", "feed_silent_set", 2, set, NULL)) != 0)
			break;
		log_warn("event=site_silent site=%s org=%s city=\"%s\" last_batch_ms=%" PRId64
		         " silent_s=%" PRId64 " problem=%" PRId64,
		         site, org, city, last, (now - last) / 1000, id);
		if ((rc = emit_status(&w->events, now, site, org, city, "", "site", "", "ok",
		                      "down", "[\"site_silent\"]", now)) != 0 ||
		    (rc = emit_problem(s, &w->events, now, "problem_opened", id)) != 0)
			break;
	}
	PQclear(r);
	return rc;
}

/* Open problems a session now overlaps: in_session, one severity up. */
static int feed_escalate(struct pg_be *s, struct store_write *w)
{
	struct ints t;
	const char *vals[1] = {i64s(&t, 0, w->now_ms)};
	PGresult *ids = NULL;
	int rc = pg_run(s->w, "store_write_failed", "prob_escalate", 1, vals, &ids);
	if (rc)
		return rc;
	if (PQntuples(ids))
		s->feed_dirty = 1; /* severities move */
	for (int i = 0; !rc && i < PQntuples(ids); i++) {
		int64_t id = val_i64(ids, i, 0);
		const char *one[1] = {PQgetvalue(ids, i, 0)};
		PGresult *r = NULL;
		if ((rc = pg_run(s->w, "store_write_failed", "prob_get", 1, one, &r)) != 0)
			break;
		if (PQntuples(r) == 1) {
			struct store_problem p;
			problem_row(r, 0, &p);
			rc = problem_set(s, id, p.status, p.worst, p.faults, 1);
		}
		int had = PQntuples(r) == 1;
		PQclear(r);
		if (!rc && had)
			rc = emit_problem(s, &w->events, w->now_ms, "problem_updated", id);
	}
	PQclear(ids);
	return rc;
}

/* Events past the retention, a slice a tick. */
static int feed_prune(struct pg_be *s, struct store_write *w)
{
	if (w->event_retention_ms <= 0)
		return 0;
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "events_mark_get", 0, NULL, &r);
	if (rc)
		return rc;
	int64_t pruned = PQntuples(r) ? val_i64(r, 0, 0) : 0;
	PQclear(r);
	struct ints t;
	const char *vals[2] = {i64s(&t, 0, pruned), i64s(&t, 1, w->now_ms - w->event_retention_ms)};
	if ((rc = pg_run(s->w, "store_write_failed", "events_prune_to", 2, vals, &r)) != 0)
		return rc;
	int64_t to = PQntuples(r) ? val_i64(r, 0, 0) : 0;
	PQclear(r);
	if (to <= pruned)
		return 0;
	vals[1] = i64s(&t, 1, to);
	if ((rc = pg_run(s->w, "store_write_failed", "events_prune", 2, vals, NULL)) != 0)
		return rc;
	return pg_run(s->w, "store_write_failed", "events_mark", 1, vals + 1, NULL);
}

/* STORE_FEED_TICK: silence, escalation, pruning, then the counts when something moved.
 * The first three are the feed lease's (issue 13): only its holder does them; every
 * collector counts (its own /metrics). */
static int feed_tick(struct pg_be *s, struct store_write *w)
{
	int rc = pg_lease_fence(s->lease, s->w, STORE_LEASE_FEED);
	if (!rc)
		rc = feed_silence(s, w);
	if (!rc)
		rc = feed_escalate(s, w);
	if (!rc)
		rc = feed_prune(s, w);
	if (rc && rc != -ESTALE)
		return rc;
	PGresult *r = NULL;
	if ((rc = pg_run(s->w, "store_write_failed", "feed_count_sites", 0, NULL, &r)) != 0)
		return rc;
	int64_t nsites = PQntuples(r) ? val_i64(r, 0, 0) : 0;
	PQclear(r);
	if (!s->feed_dirty && nsites == s->feed_nsites)
		return 0;
	if ((rc = feed_count(s, w->now_ms, nsites, &w->feed)) != 0)
		return rc;
	s->feed_dirty = 0;
	s->feed_nsites = nsites;
	return 0;
}

/* STORE_PROBLEM_ACK: once, by a person in scope; the problem's row is locked, so a second
 * collector's ack of it waits and then finds it acked. */
static int feed_ack(struct pg_be *s, struct store_write *w)
{
	struct ints t;
	const char *vals[1] = {i64s(&t, 0, w->problem_id)};
	PGresult *r = NULL;
	int rc = pg_run(s->w, "store_write_failed", "prob_get_lock", 1, vals, &r);
	if (rc)
		return rc;
	int found = PQntuples(r) == 1;
	if (found) {
		struct store_problem p;
		problem_row(r, 0, &p);
		if ((w->scope_org && w->scope_org[0] && strcmp(p.org, w->scope_org) != 0) ||
		    (w->scope_city && w->scope_city[0] && strcmp(p.city, w->scope_city) != 0))
			found = 0;
		else if (p.ack_by)
			rc = -EALREADY;
		snprintf(w->site, sizeof(w->site), "%s", p.site);
	}
	PQclear(r);
	if (!found) {
		snprintf(w->err, sizeof(w->err), "no such problem");
		return -ENOENT;
	}
	if (rc) {
		snprintf(w->err, sizeof(w->err), "problem %" PRId64 " is already acknowledged",
		         w->problem_id);
		return rc;
	}
	struct ints u;
	const char *ack[4] = {vals[0], w->ack_by ? w->ack_by : "", i64s(&u, 0, w->now_ms),
	                      w->ack_message ? w->ack_message : ""};
	if ((rc = pg_run(s->w, "store_write_failed", "prob_ack", 4, ack, NULL)) != 0)
		return rc;
	return emit_problem(s, &w->events, w->now_ms, "problem_acked", w->problem_id);
}

/* The feed's writes, each one transaction (as an exam write). */
static int feed_write(struct pg_be *s, struct store_write *w)
{
	int rc = writer_begin(s, NULL);
	if (rc)
		return w->status = rc;
	w->now_ms = w->clock ? w->clock(w) : vw_now_ms();
	/* A site is silent when IT stopped reporting, not while our database was away and its
	 * agent held its results: silence counts from the reconnect at the earliest (which may
	 * have been writer_begin's just now, after the tick was queued). */
	if (s->avail.up_since_ms > w->since_ms)
		w->since_ms = s->avail.up_since_ms;
	rc = w->op == STORE_PROBLEM_ACK ? feed_ack(s, w) : feed_tick(s, w);
	if (!rc)
		rc = events_flush(s, NULL, &w->events);
	if (!rc)
		rc = commit_checked(s->w);
	if (rc) {
		pg_rollback(s->w, "store_commit_failed");
		store_events_clear(&w->events);
		w->feed.at_ms = 0;
		s->feed_dirty = 1; /* what was counted may be what rolled back */
	}
	return w->status = rc;
}

/* issue 16 C: the thumbnail_access rows of every STORE_THUMB_ACCESS request in list (the
 * first one only when one_only) in one transaction; each request's status is the
 * commit's (any failure rolls all of them back: fail closed), sqlite.c's thumb_access_rows. */
static int thumb_access_rows(struct pg_be *s, struct store_write *list, int one_only)
{
	int rc = writer_begin(s, NULL);
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
		struct ints t;
		const char *vals[7] = {i64s(&t, 0, a->at_ms ? a->at_ms : w->now_ms),
		                       a->actor ? a->actor : "",
		                       a->site ? a->site : "",
		                       a->camera ? a->camera : "",
		                       a->asked_ms ? i64s(&t, 1, a->asked_ms) : NULL,
		                       i64s(&t, 2, a->thumb_ts_ms),
		                       a->peer ? a->peer : ""};
		rc = pg_run(s->w, "store_write_failed", "access", 7, vals, NULL);
		n++;
	}
	if (began && !rc)
		rc = commit_checked(s->w);
	if (rc && began)
		pg_rollback(s->w, "store_commit_failed");
	if (rc)
		log_error("event=thumbnail_access_failed backend=postgresql requests=%zu err=%d", n,
		          rc);
	for (struct store_write *w = list; w; w = one_only ? NULL : w->next) {
		if (w->op != STORE_THUMB_ACCESS || w->status == -EINVAL)
			continue;
		w->status = rc;
		if (rc)
			snprintf(w->err, sizeof(w->err), "the access could not be recorded");
	}
	return rc;
}

static int pg_thumb_access(void *p, struct store_write *list)
{
	return thumb_access_rows(p, list, 0);
}

/* issue 16 D, STORE_NOTIFY_PUT: every row of w->notes (store.h says what each does) in one
 * transaction, sqlite.c's notify_put. */
static int notify_rows(struct pg_be *s, struct store_write *w)
{
	int rc = 0;
	for (size_t i = 0; i < w->nnotes && !rc; i++) {
		struct store_notification *n = &w->notes[i];
		n->unannounced = 0;
		struct ints t, u, v;
		PGresult *r = NULL;
		if (!n->id && n->if_opened) {
			const char *told[2] = {n->sink, i64s(&t, 0, n->problem_id)};
			if ((rc = pg_run(s->w, "store_write_failed", "notify_told", 2, told, &r)) !=
			    0)
				break;
			int found = PQntuples(r) > 0;
			PQclear(r);
			if (!found) {
				n->unannounced = 1; /* never told it opened: no row */
				continue;
			}
		}
		if (n->id) {
			const char *up[6] = {i64s(&t, 0, n->id),
			                     n->state,
			                     i64s(&t, 1, n->attempts),
			                     n->last_error ? n->last_error : "",
			                     i64s(&t, 2, n->next_attempt_ms),
			                     i64s(&t, 3, n->sent_ms)};
			rc = pg_run(s->w, "store_write_failed", "notify_upd", 6, up, NULL);
			continue;
		}
		const char *ins[14] = {n->sink,
		                       i64s(&t, 0, n->problem_id),
		                       i64s(&t, 1, n->event_id),
		                       n->event,
		                       n->site,
		                       n->org ? n->org : "",
		                       n->city ? n->city : "",
		                       n->state,
		                       i64s(&t, 2, n->attempts),
		                       n->last_error ? n->last_error : "",
		                       i64s(&t, 3, n->next_attempt_ms),
		                       i64s(&u, 0, n->sent_ms),
		                       i64s(&v, 0, n->created_ms),
		                       n->data ? n->data : "{}"};
		if ((rc = pg_run(s->w, "store_write_failed", "notify_ins", 14, ins, &r)) != 0)
			break;
		n->id = PQntuples(r) == 1 ? val_i64(r, 0, 0) : 0; /* 0: a duplicate */
		PQclear(r);
	}
	if (!rc && s->raw_retention_ms > 0) {
		struct ints t;
		const char *cut[1] = {i64s(&t, 0, vw_now_ms() - s->raw_retention_ms)};
		rc = pg_run(s->w, "store_write_failed", "notify_prune", 1, cut, NULL);
	}
	return rc;
}

static int notify_put(struct pg_be *s, struct store_write *w)
{
	unsigned char *was_new = calloc(w->nnotes ? w->nnotes : 1, 1);
	if (!was_new)
		return -ENOMEM;
	for (size_t i = 0; i < w->nnotes; i++)
		was_new[i] = w->notes[i].id == 0;
	int rc = writer_begin(s, NULL);
	/* issue 13: the notify lease's holder alone writes (and so sends) notifications */
	if (!rc && (rc = pg_lease_fence(s->lease, s->w, STORE_LEASE_NOTIFY)) == -ESTALE)
		snprintf(w->err, sizeof(w->err), "this collector does not hold the notify lease");
	if (!rc && !(rc = notify_rows(s, w)))
		rc = commit_checked(s->w);
	if (rc == -ESTALE) {
		pg_rollback(s->w, "store_commit_failed");
		for (size_t i = 0; i < w->nnotes; i++)
			if (was_new[i])
				w->notes[i].id = 0;
	} else if (rc) {
		log_error("event=store_write_failed backend=postgresql what=notifications error=%d",
		          rc);
		pg_rollback(s->w, "store_commit_failed");
		for (size_t i = 0; i < w->nnotes; i++)
			if (was_new[i])
				w->notes[i].id = 0; /* rolled back: not inserted after all */
	}
	free(was_new);
	return rc;
}

/* Exam sessions', the feed's, thumbnail accesses' and notifications' writes. */
static int pg_write(void *p, struct store_write *w)
{
	struct pg_be *s = p;
	if (w->op == STORE_NOTIFY_PUT)
		return w->status = notify_put(s, w);
	if (w->op == STORE_PROBLEM_ACK || w->op == STORE_FEED_TICK)
		return feed_write(s, w);
	if (w->op == STORE_THUMB_ACCESS) {
		thumb_access_rows(s, w, 1);
		return w->status;
	}
	if (w->op != STORE_EXAM_CREATE && w->op != STORE_EXAM_UPDATE &&
	    w->op != STORE_EXAM_CANCEL) {
		snprintf(w->err, sizeof(w->err), "not a write this store knows");
		return w->status = -ENOSYS;
	}
	if (!w->nexams)
		return w->status = -EINVAL;
	int rc = writer_begin(s, NULL);
	if (rc)
		return w->status = rc;
	/* The time the write runs (store.h): read after BEGIN, like sqlite.c after BEGIN
	 * IMMEDIATE; the row lock of a change is taken under it. */
	w->now_ms = w->clock ? w->clock(w) : vw_now_ms();
	rc = w->op == STORE_EXAM_CREATE ? exam_create(s, w) : exam_change(s, w);
	if (!rc && (rc = pg_exec(s->w, "store_commit_failed", "COMMIT")) != 0)
		snprintf(w->err, sizeof(w->err), "the change could not be committed");
	if (rc) {
		pg_rollback(s->w, "store_commit_failed");
		if (w->op == STORE_EXAM_CREATE)
			for (size_t i = 0; i < w->nexams; i++)
				w->exams[i].id = 0; /* all or none: none */
	}
	return w->status = rc;
}

static int exam_fill(const PGresult *r, struct store_fill *f)
{
	int rc = 0;
	for (int i = 0; !rc && i < PQntuples(r); i++) {
		struct store_exam_session e;
		exam_row(r, i, &e);
		rc = store_fill_exam_session(f, &e);
	}
	return rc;
}

static int pg_exam_list(void *p, const struct store_exam_query *q, struct store_fill *f)
{
	struct pg_rd *rd = p;
	struct ints t;
	const char *vals[6] = {q->site ? q->site : "",
	                       q->org ? q->org : "",
	                       q->city ? q->city : "",
	                       i64s(&t, 0, q->from_ms || q->to_ms ? q->from_ms : INT64_MIN),
	                       i64s(&t, 1, q->to_ms ? q->to_ms : INT64_MAX),
	                       q->with_cancelled ? "true" : "false"};
	PGresult *r = NULL;
	int rc = rd_run(rd, R_EXAMS, 6, vals, &r);
	if (rc)
		return rc;
	rc = exam_fill(r, f);
	PQclear(r);
	return rc;
}

static int pg_exam_get(void *p, int64_t id, struct store_fill *f)
{
	struct pg_rd *rd = p;
	struct ints t;
	const char *vals[1] = {i64s(&t, 0, id)};
	PGresult *r = NULL;
	int rc = rd_run(rd, R_EXAM, 1, vals, &r);
	if (rc)
		return rc;
	rc = PQntuples(r) ? exam_fill(r, f) : -ENOENT;
	PQclear(r);
	return rc;
}

static int pg_exam_version(void *p, const char *site, int64_t *out)
{
	struct pg_rd *rd = p;
	const char *vals[1] = {site};
	PGresult *r = NULL;
	int rc = rd_run(rd, R_EXAM_VERSION, 1, vals, &r);
	if (rc)
		return rc;
	*out = PQntuples(r) ? val_i64(r, 0, 0) : 0;
	PQclear(r);
	return 0;
}

/* --- issue 16 E: site history ------------------------------------------------------------ */

/* Rows one stream fetches at a time: a page examines at most scan_max rows in all, so a
 * stream's chunk need not be larger than that (plus the one that says a next page exists). */
#define HIST_CHUNK 500

/* One agent's stream of the merge: its current chunk and row in it. */
struct hist_stream {
	int64_t agent_id;
	const char *agent;
	PGresult *r;
	int row, done; /* done: the last chunk was short, nothing after it */
};

/* The stream's next row (h->row < PQntuples(h->r) after, or none left). */
static int hist_next(struct pg_rd *rd, struct hist_stream *h, const struct store_history_query *q,
                     long chunk)
{
	if (h->r && ++h->row < PQntuples(h->r))
		return 0;
	int64_t hi_ts = INT64_MAX, hi_id = INT64_MAX;
	if (h->r) {
		int n = PQntuples(h->r);
		if (h->done || n == 0)
			return 0;
		hi_ts = val_i64(h->r, n - 1, 8);
		hi_id = val_i64(h->r, n - 1, 0);
	} else {
		if (q->to_ms)
			hi_ts = q->to_ms - 1;
		if (q->before_id && q->before_ts_ms <= hi_ts) {
			hi_ts = q->before_ts_ms;
			hi_id = q->before_id;
		}
	}
	struct ints t, u;
	const char *vals[5] = {i64s(&t, 0, h->agent_id),
	                       i64s(&t, 1, q->from_ms ? q->from_ms : INT64_MIN), i64s(&t, 2, hi_ts),
	                       i64s(&t, 3, hi_id), i64s(&u, 0, chunk)};
	PQclear(h->r);
	h->r = NULL;
	h->row = 0;
	int rc = rd_run(rd, R_HIST, 5, vals, &h->r);
	if (rc)
		return rc;
	h->done = PQntuples(h->r) < chunk;
	return 0;
}

static int hist_has(const struct hist_stream *h)
{
	return h->r && h->row < PQntuples(h->r);
}

/* A page newest first, as sqlite.c's sq_site_history: one stream per agent of the site
 * runs down results_agent_ts in (ts, id) order and the merge takes the newest current row
 * each time, checking kind and target as it goes; it stops at limit rows (the next match
 * says a next page exists) or after scan_max rows examined (the cursor then continues from
 * the last row examined). */
static int pg_site_history(void *p, const struct store_history_query *q, struct store_fill *f,
                           int64_t *next_ts, int64_t *next_id)
{
	struct pg_rd *rd = p;
	*next_ts = *next_id = 0;
	int rc = reader_ready(rd);
	if (!rc)
		rc = pg_exec(rd->c, "store_read_failed",
		             "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (rc)
		return rc;
	const char *vals[1] = {q->site};
	PGresult *ag = NULL;
	struct hist_stream *hs = NULL;
	int nh = 0;
	if ((rc = rd_run(rd, R_HIST_AGENTS, 1, vals, &ag)) != 0) {
		ag = NULL;
		goto out;
	}
	if (!PQntuples(ag)) {
		rc = -ENOENT;
		goto out;
	}
	/* The site's summary first (org, city): the API checks the asker's scope with it. */
	if ((rc = site_summary(rd, q->site, f)) != 0)
		goto out;
	if (!(hs = calloc((size_t)PQntuples(ag), sizeof(*hs)))) {
		rc = -ENOMEM;
		goto out;
	}
	long scan_max = q->scan_max > 0 ? q->scan_max : STORE_HISTORY_SCAN_MAX;
	long chunk = scan_max + 1 < HIST_CHUNK ? scan_max + 1 : HIST_CHUNK;
	for (int i = 0; !rc && i < PQntuples(ag); i++) {
		hs[i].agent_id = val_i64(ag, i, 0);
		hs[i].agent = PQgetvalue(ag, i, 1);
		nh = i + 1;
		rc = hist_next(rd, &hs[i], q, chunk);
	}
	long examined = 0;
	int taken = 0;
	int64_t last_ts = 0, last_id = 0; /* the last row examined */
	int64_t page_ts = 0, page_id = 0; /* the last row taken */
	while (!rc) {
		struct hist_stream *best = NULL;
		int64_t bts = 0, bid = 0;
		for (int i = 0; i < nh; i++) {
			if (!hist_has(&hs[i]))
				continue;
			int64_t ts = val_i64(hs[i].r, hs[i].row, 8),
			        id = val_i64(hs[i].r, hs[i].row, 0);
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
		const PGresult *r = best->r;
		int i = best->row;
		if ((!q->kind || strcmp(PQgetvalue(r, i, 1), q->kind) == 0) &&
		    (!q->target || strcmp(PQgetvalue(r, i, 2), q->target) == 0)) {
			if (taken == q->limit) {
				/* a row beyond the page: the next page starts after its last row */
				*next_ts = page_ts, *next_id = page_id;
				break;
			}
			struct store_target t = {
			    .agent = best->agent,
			    .kind = PQgetvalue(r, i, 1),
			    .target = PQgetvalue(r, i, 2),
			    .status = PQgetvalue(r, i, 3),
			    .session = PQgetvalue(r, i, 4),
			    .codec = PQgetvalue(r, i, 5),
			    .faults = PQgetvalue(r, i, 6),
			    .metrics = PQgetvalue(r, i, 7),
			    .ts_ms = bts,
			    .seq = val_i64(r, i, 9),
			};
			if ((rc = store_fill_target(f, &t)) != 0)
				break;
			taken++;
			page_ts = bts, page_id = bid;
		}
		last_ts = bts, last_id = bid;
		rc = hist_next(rd, best, q, chunk);
	}
out:
	for (int i = 0; i < nh; i++)
		PQclear(hs[i].r);
	free(hs);
	PQclear(ag);
	pg_exec(rd->c, "store_read_failed", "COMMIT");
	return rc;
}

/* --- issue 16 (A): events and problems (reader threads) ---------------------------------- */

static int pg_events_after(void *p, const struct store_events_query *q, struct store_fill *f,
                           int64_t *pruned_id, int64_t *last_id)
{
	struct pg_rd *rd = p;
	/* One snapshot: the marks and the rows agree. */
	int rc = reader_ready(rd);
	if (!rc)
		rc = pg_exec(rd->c, "store_read_failed",
		             "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if (rc)
		return rc;
	PGresult *r = NULL;
	if ((rc = rd_run(rd, R_EVENTS_MARKS, 0, NULL, &r)) != 0)
		goto out;
	*pruned_id = PQntuples(r) ? val_i64(r, 0, 0) : 0;
	*last_id = PQntuples(r) ? val_i64(r, 0, 1) : 0;
	PQclear(r);
	r = NULL;
	struct ints t;
	const char *vals[3] = {i64s(&t, 0, q->after_id), i64s(&t, 1, (int64_t)q->limit),
	                       q->org ? q->org : q->city};
	int stmt = q->org ? R_EVENTS_ORG : q->city ? R_EVENTS_CITY : R_EVENTS_AFTER;
	if ((rc = rd_run(rd, stmt, q->org || q->city ? 3 : 2, vals, &r)) != 0) {
		r = NULL;
		goto out;
	}
	size_t bytes = 0;
	for (int i = 0; !rc && i < PQntuples(r) && (q->max_bytes == 0 || bytes < q->max_bytes);
	     i++) {
		struct store_event ev = {val_i64(r, i, 0),    val_i64(r, i, 1),
		                         PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
		                         PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
		                         PQgetvalue(r, i, 6)};
		bytes += strlen(ev.data);
		rc = store_fill_event(f, &ev);
	}
out:
	PQclear(r);
	pg_exec(rd->c, "store_read_failed", "COMMIT");
	return rc;
}

static const char *opt_str(const char *v)
{
	return v && v[0] ? v : NULL;
}

static int pg_problems_list(void *p, const struct store_problem_query *q, int64_t now_ms,
                            struct store_fill *f)
{
	struct pg_rd *rd = p;
	/* The narrowest index the query names (store.c makes "" NULL). */
	int stmt = q->site   ? R_PROBLEMS_SITE
	           : q->city ? R_PROBLEMS_CITY
	           : q->org  ? R_PROBLEMS_ORG
	                     : R_PROBLEMS;
	struct ints t, u;
	const char *vals[9] = {i64s(&t, 0, q->state),
	                       opt_str(q->city),
	                       opt_str(q->site),
	                       opt_str(q->org),
	                       i64s(&t, 1, q->from_ms),
	                       i64s(&t, 2, q->to_ms),
	                       i64s(&t, 3, q->before_start_ms),
	                       i64s(&u, 0, q->before_id),
	                       i64s(&u, 1, (int64_t)q->limit)};
	PGresult *r = NULL;
	int rc = rd_run(rd, stmt, 9, vals, &r);
	if (rc)
		return rc;
	struct vw_buf d;
	vw_buf_init(&d, 1u << 20);
	for (int i = 0; !rc && i < PQntuples(r); i++) {
		struct store_problem pr;
		problem_row(r, i, &pr);
		vw_buf_reset(&d);
		if ((rc = store_problem_json(&d, &pr, now_ms)) != 0)
			break;
		struct store_event ev = {pr.id,  pr.start_ms, "problem",      pr.site,
		                         pr.org, pr.city,     vw_buf_cstr(&d)};
		rc = store_fill_event(f, &ev);
	}
	vw_buf_free(&d);
	PQclear(r);
	return rc;
}

/* --- issue 13: the score's reads (reader threads) ----------------------------------------- */

/* A site's rolled_to from R_ROLLED's rows (sorted by strcmp's order): 0 when none. */
static int64_t rolled_to(const PGresult *r, const char *site)
{
	int lo = 0, hi = r ? PQntuples(r) : 0;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2, c = strcmp(PQgetvalue(r, mid, 0), site);
		if (c == 0)
			return val_i64(r, mid, 1);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static int read_credits(struct pg_rd *rd, int64_t exam_id, struct store_fill *f)
{
	struct ints t;
	const char *v[1] = {i64s(&t, 0, exam_id)};
	PGresult *r = NULL;
	int rc = rd_run(rd, R_CREDITS, 1, v, &r);
	for (int i = 0; !rc && i < PQntuples(r); i++) {
		struct store_credit c = {
		    .exam_id = exam_id,
		    .cls = (int)val_i64(r, i, 0),
		    .target = PQgetvalue(r, i, 1),
		    .ok_ms = val_i64(r, i, 2),
		    .degraded_ms = val_i64(r, i, 3),
		    .down_ms = val_i64(r, i, 4),
		    .results = val_i64(r, i, 5),
		};
		rc = store_fill_credit(f, &c);
	}
	PQclear(r);
	return rc;
}

/* Row i of a SCORED_EXAMS statement (strings point into r). */
static void scored_exam_row(const PGresult *r, int i, struct store_exam *e)
{
	*e = (struct store_exam){
	    .id = val_i64(r, i, 0),
	    .org = PQgetvalue(r, i, 1),
	    .city = PQgetvalue(r, i, 2),
	    .site = PQgetvalue(r, i, 3),
	    .code = PQgetvalue(r, i, 4),
	    .occupation = PQgetvalue(r, i, 5),
	    .level = PQgetvalue(r, i, 6),
	    .rooms = PQgetvalue(r, i, 7),
	    .start_ms = val_i64(r, i, 8),
	    .end_ms = val_i64(r, i, 9),
	    .candidates = val_i64(r, i, 10),
	};
	for (int c = 0; c < STORE_CLASS_COUNT; c++) {
		e->ok_ms[c] = val_i64(r, i, 11 + 4 * c);
		e->degraded_ms[c] = val_i64(r, i, 12 + 4 * c);
		e->down_ms[c] = val_i64(r, i, 13 + 4 * c);
		e->ntargets[c] = val_i64(r, i, 14 + 4 * c);
	}
}

/* A read of several statements in one snapshot (totals, credits and rolled_to agree). */
static int rd_begin(struct pg_rd *rd)
{
	int rc = reader_ready(rd);
	return rc ? rc
	          : pg_exec(rd->c, "store_read_failed",
	                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
}

static void rd_end(struct pg_rd *rd)
{
	if (pg_exec(rd->c, "store_read_failed", "COMMIT"))
		pg_rollback(rd->c, "store_read_failed");
}

/* The sessions of stmt (a SCORED_EXAMS) with vals, each with its rolled_to and (with
 * credits) its credits. */
static int scored_exams(struct pg_rd *rd, int stmt, const char *const vals[7], int credits,
                        struct store_fill *f)
{
	PGresult *rv = NULL, *r = NULL;
	int rc = rd_begin(rd);
	if (rc)
		return rc;
	if (!(rc = rd_run(rd, R_ROLLED, 0, NULL, &rv)) && !(rc = rd_run(rd, stmt, 7, vals, &r)))
		for (int i = 0; !rc && i < PQntuples(r); i++) {
			struct store_exam e;
			scored_exam_row(r, i, &e);
			e.rolled_to_ms = rolled_to(rv, e.site);
			if (!(rc = store_fill_exam(f, &e)) && credits)
				rc = read_credits(rd, e.id, f);
		}
	PQclear(r);
	PQclear(rv);
	rd_end(rd);
	return rc;
}

static int pg_score_inputs(void *p, const struct store_score_query *q, struct store_fill *f)
{
	/* the most selective index the query allows; the other names filter */
	int which = q->site   ? R_SCORE_SITE
	            : q->org  ? R_SCORE_ORG
	            : q->city ? R_SCORE_CITY
	                      : R_SCORE_ALL;
	struct ints t;
	int64_t earliest =
	    q->from_ms > INT64_MIN + STORE_EXAM_MAX_MS ? q->from_ms - STORE_EXAM_MAX_MS : INT64_MIN;
	const char *vals[7] = {i64s(&t, 0, q->from_ms),
	                       i64s(&t, 1, q->to_ms),
	                       q->org,
	                       q->city,
	                       q->site,
	                       i64s(&t, 2, earliest),
	                       NULL};
	return scored_exams(p, which, vals, q->with_credits, f);
}

/* One session by id, as pg_score_inputs reads each (store_score_exam). */
static int pg_score_exam(void *p, int64_t exam_id, struct store_fill *f)
{
	struct ints t;
	const char *vals[7] = {i64s(&t, 0, INT64_MIN), i64s(&t, 1, INT64_MAX), NULL, NULL, NULL,
	                       i64s(&t, 2, INT64_MIN), i64s(&t, 3, exam_id)};
	return scored_exams(p, R_SCORE_ONE, vals, 1, f);
}

static const char *const class_kind[STORE_CLASS_COUNT] = {
    [STORE_CLASS_CONNECTED] = "network", [STORE_CLASS_NETWORK] = "network",
    [STORE_CLASS_STREAM] = "stream",     [STORE_CLASS_RECORDING] = "recording",
    [STORE_CLASS_COVERAGE] = "coverage",
};

/* A session's raw results of one class (sqlite.c's sq_score_evidence): target by target,
 * the site's agents merged by seq. */
static int pg_score_evidence(void *p, int64_t exam_id, int cls, const char *target,
                             struct store_fill *f, int64_t *pruned)
{
	struct pg_rd *rd = p;
	if (cls < 0 || cls >= STORE_CLASS_COUNT)
		return -EINVAL;
	if (cls == STORE_CLASS_CONNECTED) {
		if (target && strcmp(target, "collector") != 0)
			return 0; /* the class has no other target */
		target = "collector";
	}
	struct ints t;
	const char *ev[1] = {i64s(&t, 0, exam_id)};
	PGresult *e = NULL, *tt = NULL;
	int rc = rd_begin(rd);
	if (rc)
		return rc;
	if ((rc = rd_run(rd, R_EV_EXAM, 1, ev, &e)) != 0)
		goto out;
	if (!PQntuples(e)) {
		rc = -ENOENT;
		goto out;
	}
	const char *site = PQgetvalue(e, 0, 0), *rooms = PQgetvalue(e, 0, 1);
	int64_t start = val_i64(e, 0, 2), end = val_i64(e, 0, 3);
	/* a result checked up to the longest staleness before the start still holds into it */
	int64_t stale = val_i64(e, 0, 4), pruned_ts = val_i64(e, 0, 5);
	if (stale < rd->be->default_stale_ms)
		stale = rd->be->default_stale_ms;
	*pruned = start - stale < pruned_ts;
	const char *tv[3] = {site, class_kind[cls], target};
	if ((rc = rd_run(rd, R_EV_TARGETS, 3, tv, &tt)) != 0)
		goto out;
	for (int i = 0; !rc && i < PQntuples(tt); i++) {
		const char *one = PQgetvalue(tt, i, 0);
		if (cls == STORE_CLASS_COVERAGE && !credit_room_listed(rooms, one))
			continue;
		struct ints b;
		const char *rv[5] = {site, class_kind[cls], one, i64s(&b, 0, start - stale),
		                     i64s(&b, 1, end)};
		PGresult *r = NULL;
		if ((rc = rd_run(rd, R_EV_ROWS, 5, rv, &r)) != 0)
			break;
		for (int k = 0; !rc && k < PQntuples(r); k++) {
			struct store_target x = {
			    .agent = PQgetvalue(r, k, 0),
			    .kind = PQgetvalue(r, k, 1),
			    .target = PQgetvalue(r, k, 2),
			    .status = PQgetvalue(r, k, 3),
			    .session = PQgetvalue(r, k, 4), /* NULL reads "" */
			    .codec = PQgetvalue(r, k, 5),
			    .faults = PQgetvalue(r, k, 6),
			    .metrics = PQgetvalue(r, k, 7),
			    .ts_ms = val_i64(r, k, 8),
			    .seq = val_i64(r, k, 9),
			};
			rc = store_fill_target(f, &x);
		}
		PQclear(r);
	}
out:
	PQclear(tt);
	PQclear(e);
	rd_end(rd);
	return rc;
}

/* --- issue 16 D: notifications ---------------------------------------------------------- */

static void pg_leases(void *p, struct store_lease out[STORE_LEASES])
{
	pg_lease_view(((struct pg_be *)p)->lease, out);
}

static int pg_notify_list(void *p, const struct store_notify_query *q, struct store_fill *f,
                          int64_t *max_event_id)
{
	struct pg_rd *rd = p;
	*max_event_id = 0;
	PGresult *r = NULL;
	int rc = rd_run(rd, R_NOTIFY_MAX, 0, NULL, &r);
	if (rc)
		return rc;
	*max_event_id = val_i64(r, 0, 0);
	PQclear(r);
	struct ints t;
	const char *vals[3] = {q->state, q->city, i64s(&t, 0, (int64_t)q->limit)};
	if ((rc = rd_run(rd, q->oldest_first ? R_NOTIFY_ASC : R_NOTIFY_DESC, 3, vals, &r)) != 0)
		return rc;
	for (int i = 0; !rc && i < PQntuples(r); i++) {
		struct store_notification n = {
		    .id = val_i64(r, i, 0),
		    .sink = PQgetvalue(r, i, 1),
		    .event = PQgetvalue(r, i, 2),
		    .problem_id = val_i64(r, i, 3),
		    .event_id = val_i64(r, i, 4),
		    .site = PQgetvalue(r, i, 5),
		    .org = PQgetvalue(r, i, 6),
		    .city = PQgetvalue(r, i, 7),
		    .state = PQgetvalue(r, i, 8),
		    .attempts = val_i64(r, i, 9),
		    .last_error = PQgetvalue(r, i, 10),
		    .next_attempt_ms = val_i64(r, i, 11),
		    .sent_ms = val_i64(r, i, 12),
		    .created_ms = val_i64(r, i, 13),
		    .data = PQgetvalue(r, i, 14),
		};
		rc = store_fill_notification(f, &n);
	}
	PQclear(r);
	return rc;
}

const struct store_ops store_postgresql_ops = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .commit = pg_commit,
    .raw = pg_raw,
    .rollup = pg_rollup,
    .reader_open = pg_reader_open,
    .reader_close = pg_reader_close,
    .list_sites = pg_list_sites,
    .get_site = pg_get_site,
    .high_seq = pg_high_seq,
    .count_results = pg_count_results,
    .write = pg_write,
    .exam_list = pg_exam_list,
    .exam_get = pg_exam_get,
    .exam_version = pg_exam_version,
    .score_inputs = pg_score_inputs,
    .score_evidence = pg_score_evidence,
    .score_exam = pg_score_exam,
    .site_history = pg_site_history,
    .events_after = pg_events_after,
    .problems_list = pg_problems_list,
    .thumbnail = pg_thumbnail,
    .notify_list = pg_notify_list,
    .thumb_access = pg_thumb_access,
    .avail = pg_avail,
    .shared = 1,
    .leases = pg_leases,
};
