# ctest label packaging (issue 14): the Debian packages built, linted and installed, upgraded,
# removed and purged in a clean bookworm root. Needs root and Debian's mirror; RESOURCE_LOCK
# root keeps it from running beside the other tests that chroot or boot a root. Its budget in
# CI (2 cores): two package builds (~1 min each), lintian, one root and apt runs; 480 s.
add_test(NAME packaging_packages
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/packaging/test_packages.sh ${CMAKE_SOURCE_DIR}
                 ${CMAKE_BINARY_DIR})
set_tests_properties(packaging_packages PROPERTIES LABELS packaging TIMEOUT 480
                     RESOURCE_LOCK root)
