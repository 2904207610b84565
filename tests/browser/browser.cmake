# The dashboard's tests. include()d from tests/CMakeLists.txt; VW_WEB_ENABLED comes from
# web/web.cmake. Label `web`: vitest, the UI's logic (no browser). Label `browser`: Chromium
# driven by playwright-core against a real server, agents and camd (tests/browser).
if(VW_WEB_ENABLED)
  add_test(NAME web_vitest COMMAND ${VW_NPM} run --silent test
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/web)
else()
  # Not a skip: a missing toolchain must not read as a pass.
  add_test(NAME web_vitest COMMAND sh -c
           "echo 'web_vitest: needs node, npm and web/node_modules (scripts/setup.sh)' >&2; exit 1")
endif()
set_tests_properties(web_vitest PROPERTIES LABELS web TIMEOUT 300)

add_test(NAME browser_dashboard
         COMMAND ${VW_INTEGRATION_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/browser/test_dashboard.py)
set_tests_properties(browser_dashboard PROPERTIES
  ENVIRONMENT "VW_AGENT=$<TARGET_FILE:venuewatch-agent>;VW_SERVER=$<TARGET_FILE:venuewatch-server>;VW_TIMEOUT_SCALE=${VW_INTEGRATION_TIMEOUT_SCALE};VW_WEB_ROOT=${CMAKE_BINARY_DIR}/web"
  LABELS browser
  TIMEOUT 1200
  RUN_SERIAL TRUE)

# issue 12 E: 双随机抽查 and 我的检查任务 against a real server with a draw made by the CLI.
add_test(NAME browser_inspections
         COMMAND ${VW_INTEGRATION_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/browser/test_inspections.py)
set_tests_properties(browser_inspections PROPERTIES
  ENVIRONMENT "VW_AGENT=$<TARGET_FILE:venuewatch-agent>;VW_SERVER=$<TARGET_FILE:venuewatch-server>;VW_TIMEOUT_SCALE=${VW_INTEGRATION_TIMEOUT_SCALE};VW_WEB_ROOT=${CMAKE_BINARY_DIR}/web"
  LABELS browser
  TIMEOUT 900
  RUN_SERIAL TRUE)

# issue 13: live events across collectors. Two collectors on one PostgreSQL (tests/tools/pg.sh);
# the agent uploads to A, Chromium watches B's venue page: the stopped camera and its problem
# show there live.
add_test(NAME browser_fanout_pg
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tools/pg.sh ${VW_INTEGRATION_PYTHON}
                 ${CMAKE_CURRENT_SOURCE_DIR}/browser/test_fanout.py)
set_tests_properties(browser_fanout_pg PROPERTIES
  ENVIRONMENT "VW_AGENT=$<TARGET_FILE:venuewatch-agent>;VW_SERVER=$<TARGET_FILE:venuewatch-server>;VW_TIMEOUT_SCALE=${VW_INTEGRATION_TIMEOUT_SCALE};VW_WEB_ROOT=${CMAKE_BINARY_DIR}/web"
  LABELS browser
  TIMEOUT 900
  RUN_SERIAL TRUE
  SKIP_RETURN_CODE 77)
