# Benchmarks: tests/bench/loadgen (a C load generator acting as many agents) and
# tests/bench/ingest_bench.sh, which runs it against a real server. Built with the project so it
# keeps compiling; never run by ctest (it loads both cores for minutes).
# include()d from tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/.
add_executable(loadgen bench/loadgen.c)
# vwserver for the store (the ceiling runs its write path) and the batch encoding; vwcommon
# for results. No SQLite of its own: the SQL lives in server/store/sqlite.c only.
target_link_libraries(loadgen PRIVATE vwserver PkgConfig::SSL PkgConfig::ZLIB Threads::Threads)

# The score's arithmetic alone on synthetic sessions (docs/SCORE.md, "Cost").
add_executable(bench_score_core bench/bench_score_core.c)
target_link_libraries(bench_score_core PRIVATE vwserver)
# bench_score: item 3.6 scores over a synthetic province (tests/bench/score_bench.sh). Its gen
# step writes rollup rows with SQL of its own (replaying 10^10 raw results is not possible);
# its run step is the product's read and scoring path only.
add_executable(bench_score bench/bench_score.c)
target_link_libraries(bench_score PRIVATE vwserver PkgConfig::SQLITE Threads::Threads)
# bench_feed: issue 16's synthetic province for the sites/history/SSE figures
# (tests/bench/feed_bench.sh); its rows go through store_bench_commit, the writer's own path.
add_executable(bench_feed bench/bench_feed.c)
target_link_libraries(bench_feed PRIVATE vwserver PkgConfig::SQLITE)
# sse_bench: 1,000 event-stream subscribers and a probe agent (tests/bench/sse_bench.sh).
add_executable(sse_bench bench/sse_bench.c)
target_link_libraries(sse_bench PRIVATE PkgConfig::SSL Threads::Threads)
# Smoke runs of the feed benches on a tiny province, so the commands keep working; their
# figures are not checked (they are the benches' job, docs/BENCHMARKS.md). They start real
# servers on loopback ports of their choosing, one at a time.
add_test(NAME bench_feed_smoke
         COMMAND ${CMAKE_COMMAND} -E env DIR=${CMAKE_CURRENT_BINARY_DIR}/bench-feed-smoke FRESH=1
                 VENUES=20 CAMERAS=8 DAYS=4 DETAILED=1 STEP_S=3600 REPS=5
                 ${CMAKE_CURRENT_SOURCE_DIR}/bench/feed_bench.sh ${CMAKE_BINARY_DIR})
add_test(NAME bench_sse_smoke
         COMMAND ${CMAKE_COMMAND} -E env SUBS=20 CONNS=4 BATCHES=4 BATCH=100 RATE=20
                 ${CMAKE_CURRENT_SOURCE_DIR}/bench/sse_bench.sh ${CMAKE_BINARY_DIR})
set_tests_properties(bench_feed_smoke bench_sse_smoke PROPERTIES
  LABELS integration TIMEOUT 300 RUN_SERIAL TRUE)
# issue 12 A: the draw core on 100,000 targets x 5,000 inspectors (tests/bench/draw_bench.sh).
add_executable(bench_draw bench/bench_draw.c)
target_link_libraries(bench_draw PRIVATE vwserver)
# bench_sees_site: an inspector's per-site check on a synthetic inspect.db (issue 12 D,
# docs/API.md "Inspections").
add_executable(bench_sees_site bench/bench_sees_site.c)
target_link_libraries(bench_sees_site PRIVATE vwserver PkgConfig::SQLITE)
