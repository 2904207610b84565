# PostgreSQL tests (ctest label postgres): each runs beside its own throw-away PostgreSQL 15
# started by tests/tools/pg.sh (initdb in a temporary directory, an unprivileged user, a
# unix socket on a run-time port). Skipped (77) only where the PostgreSQL binaries are
# absent; scripts/setup.sh installs them. include()d from tests/CMakeLists.txt.
set(VW_PG_SH ${CMAKE_CURRENT_SOURCE_DIR}/tools/pg.sh)

add_test(NAME pg_harness COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/postgres/test_pg_harness.sh)
set_tests_properties(pg_harness PROPERTIES LABELS postgres TIMEOUT 120 SKIP_RETURN_CODE 77)

# The store contract (tests/unit/test_store.c) a second time, on PostgreSQL, then the
# PostgreSQL backend's own promises (partitions, retention, two collectors on one database).
add_test(NAME test_store_postgresql COMMAND bash ${VW_PG_SH} $<TARGET_FILE:test_store> postgresql)
set_tests_properties(test_store_postgresql PROPERTIES LABELS postgres TIMEOUT 300
                     SKIP_RETURN_CODE 77)

# A real venuewatch-server on PostgreSQL and a real agent uploading to it: every released
# result stored once, the site read back through the API (tests/integration/harness.py).
add_test(NAME integration_pg_collector
         COMMAND bash ${VW_PG_SH} ${VW_INTEGRATION_PYTHON}
                 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_pg_collector.py)
set_tests_properties(integration_pg_collector PROPERTIES
  ENVIRONMENT "VW_AGENT=$<TARGET_FILE:venuewatch-agent>;VW_SERVER=$<TARGET_FILE:venuewatch-server>;VW_TIMEOUT_SCALE=${VW_INTEGRATION_TIMEOUT_SCALE}"
  LABELS postgres TIMEOUT ${VW_INTEGRATION_TIMEOUT} RUN_SERIAL TRUE SKIP_RETURN_CODE 77)

# The database stopped during ingest and started again (VW_PG_CTL): /healthz, reads and
# ingest answer 503 + Retry-After at once, the writer reconnects with backoff, the agent's
# backlog lands exactly once, and the outage opens no site_silent problem.
add_test(NAME integration_pg_outage
         COMMAND bash ${VW_PG_SH} ${VW_INTEGRATION_PYTHON}
                 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_pg_outage.py)
set_tests_properties(integration_pg_outage PROPERTIES
  ENVIRONMENT "VW_AGENT=$<TARGET_FILE:venuewatch-agent>;VW_SERVER=$<TARGET_FILE:venuewatch-server>;VW_TIMEOUT_SCALE=${VW_INTEGRATION_TIMEOUT_SCALE}"
  LABELS postgres TIMEOUT ${VW_INTEGRATION_TIMEOUT} RUN_SERIAL TRUE SKIP_RETURN_CODE 77)

# Exam sessions (tests/unit/test_exams.c's store tests) on PostgreSQL: create all or none,
# late changes refused at the writer's time, the audit rows and the site's version.
add_test(NAME test_exams_postgresql COMMAND bash ${VW_PG_SH} $<TARGET_FILE:test_exams> postgresql)
set_tests_properties(test_exams_postgresql PROPERTIES LABELS postgres TIMEOUT 300
                     SKIP_RETURN_CODE 77)

# issue 16 (A) on PostgreSQL (tests/unit/test_problems.c): problems opened, updated and closed
# in the batch's commit, events with rising ids, silence, acks, the backlog and problems list,
# and the scoped reads on their indexes.
add_test(NAME test_problems_postgresql
         COMMAND bash ${VW_PG_SH} $<TARGET_FILE:test_problems> postgresql)
set_tests_properties(test_problems_postgresql PROPERTIES LABELS postgres TIMEOUT 300
                     SKIP_RETURN_CODE 77)

# issue 16 (C) on PostgreSQL (tests/unit/test_thumbs.c): the picture committed with its row
# and read back, each camera's newest on the site page, accesses recorded (queued ones in one
# transaction), and old pictures and access records pruned by the job.
add_test(NAME test_thumbs_postgresql
         COMMAND bash ${VW_PG_SH} $<TARGET_FILE:test_thumbs> postgresql)
set_tests_properties(test_thumbs_postgresql PROPERTIES LABELS postgres TIMEOUT 300
                     SKIP_RETURN_CODE 77)

# issue 16 (E) on PostgreSQL (tests/unit/test_history.c): history pages newest first by the
# cursor, bounded scans, the per-class counts, in_session, and the stream's index plan.
add_test(NAME test_history_postgresql
         COMMAND bash ${VW_PG_SH} $<TARGET_FILE:test_history> postgresql)
set_tests_properties(test_history_postgresql PROPERTIES LABELS postgres TIMEOUT 300
                     SKIP_RETURN_CODE 77)

# issue 16 (D) on PostgreSQL (tests/unit/test_notify.c's store test): the notifier's rows keyed
# by (sink, problem, event), closings only where the opening was told, the queue bound at start.
add_test(NAME test_notify_postgresql
         COMMAND bash ${VW_PG_SH} $<TARGET_FILE:test_notify> postgresql)
set_tests_properties(test_notify_postgresql PROPERTIES LABELS postgres TIMEOUT 300
                     SKIP_RETURN_CODE 77)

# issue 13 (tests/unit/test_pg_lease.c): the singleton jobs' leases — take, renew, expiry by the
# database's clock, a stale epoch's write refused by the fence, two keepers handing over.
add_executable(test_pg_lease unit/test_pg_lease.c)
target_link_libraries(test_pg_lease PRIVATE PkgConfig::CMOCKA vwserver)
add_test(NAME test_pg_lease COMMAND bash ${VW_PG_SH} $<TARGET_FILE:test_pg_lease>)
set_tests_properties(test_pg_lease PROPERTIES LABELS postgres TIMEOUT 300 SKIP_RETURN_CODE 77)

# issue 13: two real collectors on one database — one holder per lease, take-over after kill -9
# and after a SIGSTOP past the TTL, the resumed one fenced (tests/integration/test_pg_leases.py).
add_test(NAME integration_pg_leases
         COMMAND bash ${VW_PG_SH} ${VW_INTEGRATION_PYTHON}
                 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_pg_leases.py)
set_tests_properties(integration_pg_leases PROPERTIES
  ENVIRONMENT "VW_AGENT=$<TARGET_FILE:venuewatch-agent>;VW_SERVER=$<TARGET_FILE:venuewatch-server>;VW_TIMEOUT_SCALE=${VW_INTEGRATION_TIMEOUT_SCALE}"
  LABELS postgres TIMEOUT ${VW_INTEGRATION_TIMEOUT} RUN_SERIAL TRUE SKIP_RETURN_CODE 77)

# Issue 13: two collectors on one PostgreSQL and an agent with both URLs: kill -9 of the one
# in use moves the agent to the other, each seq stored once; failback to the first. And one
# whose own path to the database is cut answers 503: the agent keeps a backlog while no
# collector takes it and drains it through the second when that one comes up, each seq once.
add_test(NAME integration_failover_pg
         COMMAND bash ${VW_PG_SH} ${VW_INTEGRATION_PYTHON}
                 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_failover_pg.py)
set_tests_properties(integration_failover_pg PROPERTIES
  ENVIRONMENT "VW_AGENT=$<TARGET_FILE:venuewatch-agent>;VW_SERVER=$<TARGET_FILE:venuewatch-server>;VW_TIMEOUT_SCALE=${VW_INTEGRATION_TIMEOUT_SCALE}"
  LABELS postgres TIMEOUT ${VW_INTEGRATION_TIMEOUT} RUN_SERIAL TRUE SKIP_RETURN_CODE 77)

# issue 13 (tests/unit/test_rollup.c): the rollup job (rollup.c's) on PostgreSQL under the rollup
# lease, reading results below its commit horizon: credits by the rule worked out by hand, a
# late backlog, a silent target, a crash between flushes, a session added while it runs, and
# the score's reads; and retention dropping only days the job has rolled.
add_test(NAME test_rollup_postgresql COMMAND bash ${VW_PG_SH} $<TARGET_FILE:test_rollup> postgresql)
set_tests_properties(test_rollup_postgresql PROPERTIES LABELS postgres TIMEOUT 300
                     SKIP_RETURN_CODE 77)

# issue 13: item 3.6 end to end (tests/integration/test_score.py) with the collector and the CLI
# on PostgreSQL: real cameras and agent, the served score recomputed from its evidence, the
# ranking, the reports, scopes, publication and the rubric's change.
add_test(NAME integration_score_pg
         COMMAND bash ${VW_PG_SH} ${VW_INTEGRATION_PYTHON}
                 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_score.py)
set_tests_properties(integration_score_pg PROPERTIES
  ENVIRONMENT "VW_SCORE_BACKEND=postgresql;VW_AGENT=$<TARGET_FILE:venuewatch-agent>;VW_SERVER=$<TARGET_FILE:venuewatch-server>;VW_TIMEOUT_SCALE=${VW_INTEGRATION_TIMEOUT_SCALE}"
  LABELS postgres TIMEOUT ${VW_INTEGRATION_TIMEOUT} RUN_SERIAL TRUE SKIP_RETURN_CODE 77)
