# The man pages (issue 14): man/*.[58] are generated from man/*.in and the binaries' own
# command and config tables by scripts/man-pages.sh, committed, and installed here.
install(FILES ${CMAKE_SOURCE_DIR}/man/venuewatch-agent.8 ${CMAKE_SOURCE_DIR}/man/venuewatch-server.8
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${CMAKE_SOURCE_DIR}/man/venuewatch-agent.ini.5
              ${CMAKE_SOURCE_DIR}/man/venuewatch-server.ini.5
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)

# Stale when a command, an option or a config key changed without the pages.
add_test(NAME man_pages_current
         COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/man-pages.sh ${CMAKE_BINARY_DIR} --check)
# groff (through man -l), mandoc -T lint and lexgrog: no warning.
add_test(NAME man_pages_lint
         COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/man-pages.sh ${CMAKE_BINARY_DIR} --lint)
set_tests_properties(man_pages_current man_pages_lint PROPERTIES LABELS unit TIMEOUT 60)
