# Fault injection (issue 4): real camd, server and agent, killed, cut off and starved of disk;
# each scenario ends comparing the agent's ledger with the collector's rows. include()d from
# tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/. The short form runs here
# (label `faults`, ~2 min on 2 cores); the full form (200 agent kills, 50 server kills) is
# tests/faults/run_full.sh. Needs root (network namespaces, nftables, a tmpfs mount).

# Timing-driven scenarios under ASan+UBSan would measure the sanitizer, not delivery: the
# sanitizer build runs unit and integration tests only.
if(VW_SANITIZE)
  return()
endif()

set(VW_FAULTS_PYTHON /usr/bin/python3 CACHE FILEPATH
    "Python 3 with PyGObject (gi) for the fault tests (camd needs it)")

# vw_fault_test(NAME CLASS): one scenario of tests/faults/test_faults.py as ctest test NAME.
function(vw_fault_test name class)
  add_test(NAME ${name}
           COMMAND ${VW_FAULTS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/faults/test_faults.py ${class})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "VW_AGENT=$<TARGET_FILE:venuewatch-agent>;VW_SERVER=$<TARGET_FILE:venuewatch-server>"
    LABELS faults
    TIMEOUT 300
    # They bind ports, mount, create namespaces and load both cores: one at a time.
    RUN_SERIAL TRUE)
endfunction()

vw_fault_test(faults_agent_kill AgentKilled)
vw_fault_test(faults_server_kill ServerKilled)
vw_fault_test(faults_collector_down CollectorDown)
vw_fault_test(faults_refused Refused)
vw_fault_test(faults_network NetworkFaults)
vw_fault_test(faults_disk_full DiskFull)
