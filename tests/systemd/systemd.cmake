# issue 14 (sysd): systemd integration. The sd_notify wrapper against a socket of its own
# (unit), the units' exposure scores (unit, offline), and the hardened services booted under
# a real systemd in a clean root (label systemd; RESOURCE_LOCK root: one booted root at once).

add_test(NAME systemd_security
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/systemd/security.sh ${CMAKE_SOURCE_DIR}/systemd)
set_tests_properties(systemd_security PROPERTIES LABELS unit TIMEOUT 60)
vw_unit_test(test_sdnotify vwcommon)

# The hardened services booted under systemd in a clean root: ~35 s here, most of it the
# boot, the first camera check and the watchdog's 3 s; 240 s leaves room for a busy machine
# and a first debootstrap of the root cache (mkroot.sh).
find_program(VW_NSPAWN systemd-nspawn)
if(VW_NSPAWN)
  add_test(NAME systemd_units
           COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/systemd/test_units.py
                   ${CMAKE_BINARY_DIR})
  set_tests_properties(systemd_units PROPERTIES LABELS systemd TIMEOUT 240 RESOURCE_LOCK root)
endif()
