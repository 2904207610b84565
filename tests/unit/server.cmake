vw_unit_test(test_http vwserver)
vw_unit_test(test_store vwserver)
vw_unit_test(test_credit vwserver)
vw_unit_test(test_score vwserver)
vw_unit_test(test_published vwserver)
vw_unit_test(test_csvout vwserver)
vw_unit_test(test_rollup vwserver)
vw_unit_test(test_problems vwserver)
vw_unit_test(test_server_conf vwserver)
vw_unit_test(test_ingest vwserver)
vw_unit_test(test_ca vwserver)
vw_unit_test(test_router vwserver)
vw_unit_test(test_signer_sandbox vwserver)
vw_unit_test(test_signer_reply vwserver)
vw_unit_test(test_exams vwserver)
vw_unit_test(test_thumbs vwserver) # issue 16 C
vw_unit_test(test_notify vwserver)
vw_unit_test(test_history vwserver)
vw_unit_test(test_registers vwserver) # issue 12 B
# issue 12 A: the draw core; draw_tool runs the test vectors, draw_ref.py (independent, from
# docs/DRAW.md) reproduces them.
vw_unit_test(test_draw vwserver)
# 10,000 fairness draws and 2,000 random rosters: ~10 s in Release, ~45 s under ASan.
set_tests_properties(test_draw PROPERTIES TIMEOUT 300)
add_executable(draw_tool tools/draw_tool.c)
target_link_libraries(draw_tool PRIVATE vwserver)
add_test(NAME draw_vectors
         COMMAND bash -c "set -e; for v in ${CMAKE_SOURCE_DIR}/tests/vectors/draw/*.json; do $<TARGET_FILE:draw_tool> check $v; python3 ${CMAKE_SOURCE_DIR}/tests/tools/draw_ref.py $v; done")
set_tests_properties(draw_vectors PROPERTIES LABELS unit TIMEOUT 120)
vw_unit_test(test_inspections vwserver) # issue 12 D
vw_unit_test(test_draws vwserver) # issue 12 C: the draws' state machine
# issue 12 E: the working-day calendar (reads config/holidays-cn.csv from the source tree).
vw_unit_test(test_calendar vwserver)
target_compile_definitions(test_calendar PRIVATE VW_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
vw_unit_test(test_prom vwserver) # issue 14: the exposition writer and the [metrics] allow list
