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
