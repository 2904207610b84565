# The zh-CN operators' guides (issue 14): docs/zh-CN/venue.md and bureau.md.
# Fast (unit): every fault code the collector labels has guidance in venue.md's fault table.
add_test(NAME docs_fault_table
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/docs/fault_table_test.py
                 $<TARGET_FILE:venuewatch-server> ${CMAKE_SOURCE_DIR}/docs/zh-CN/venue.md)
set_tests_properties(docs_fault_table PROPERTIES LABELS unit TIMEOUT 30)

# Every command of both guides, run in order in a clean bookworm root booted with systemd,
# with the packages installed as the guides say. Needs root and Debian's mirror (packaging);
# RESOURCE_LOCK root: no other test boots or chroots a root meanwhile. Budget 300 s: one root,
# apt from the mirror (the agent's FFmpeg libraries: ~90 s the first time, then from the apt
# cache beside the root cache), the agent's first checks, the CA rotated and the venue
# enrolled again.
# The packages: the packaging test's (tests/packaging builds them into packaging/new and keeps
# them), so one ctest run builds them once; ctest -R docs_guides runs that test first. Without
# it (a tree before the packaging part), run_guides.sh builds them itself, +3 min.
add_test(NAME docs_guides
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/docs/run_guides.sh ${CMAKE_SOURCE_DIR}
                 ${CMAKE_BINARY_DIR})
if(TEST packaging_packages)
  set_tests_properties(packaging_packages PROPERTIES FIXTURES_SETUP vw_debs)
  set_tests_properties(docs_guides PROPERTIES FIXTURES_REQUIRED vw_debs TIMEOUT 300
                       ENVIRONMENT "VW_GUIDES_DEBS=${CMAKE_BINARY_DIR}/packaging/new")
else()
  set_tests_properties(docs_guides PROPERTIES TIMEOUT 480)
endif()
# VW_ROOT_CACHE and VW_TIMEOUT_SCALE come from ctest's caller, as they are when it runs.
set_tests_properties(docs_guides PROPERTIES LABELS packaging RESOURCE_LOCK root)

# Fast (unit): the guides' markup is what the runner accepts and the run order names every
# part, so a malformed block fails without a root.
add_test(NAME docs_guides_markup
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/docs/guides_test.py --list
                 ${CMAKE_SOURCE_DIR}/docs/zh-CN/bureau.md:1 ${CMAKE_SOURCE_DIR}/docs/zh-CN/venue.md:1
                 ${CMAKE_SOURCE_DIR}/docs/zh-CN/bureau.md:2 ${CMAKE_SOURCE_DIR}/docs/zh-CN/venue.md:2)
set_tests_properties(docs_guides_markup PROPERTIES LABELS unit TIMEOUT 30)
