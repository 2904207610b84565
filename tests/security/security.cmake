# Security tests: real server and agent processes, real TLS, real SQLite files; bad agent
# identities, enrollment tokens, revocation, people's tokens and their scope, the audit log.
# include()d from tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/. They reuse the
# integration harness (tests/integration/harness.py) and need no cameras.

set(VW_SECURITY_PYTHON /usr/bin/python3 CACHE FILEPATH "Python 3 for the security tests")
if(VW_SANITIZE)
  set(VW_SECURITY_TIMEOUT_SCALE 3)
else()
  set(VW_SECURITY_TIMEOUT_SCALE 1)
endif()
math(EXPR VW_SECURITY_TIMEOUT "300 * ${VW_SECURITY_TIMEOUT_SCALE}")

# vw_security_test(NAME MODULE): tests/security/MODULE.py as ctest test NAME.
function(vw_security_test name module)
  add_test(NAME ${name}
           COMMAND ${VW_SECURITY_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/security/${module}.py)
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "VW_AGENT=$<TARGET_FILE:venuewatch-agent>;VW_SERVER=$<TARGET_FILE:venuewatch-server>;VW_TIMEOUT_SCALE=${VW_SECURITY_TIMEOUT_SCALE}"
    LABELS security
    TIMEOUT ${VW_SECURITY_TIMEOUT}
    # They bind loopback ports and start servers; one at a time, like the integration tests.
    RUN_SERIAL TRUE)
endfunction()

vw_security_test(security_agent_identity test_agent_identity)
vw_security_test(security_people test_people)
vw_security_test(security_tls test_tls)
vw_security_test(security_tls_interop test_tls_interop)
vw_security_test(security_session test_session)
vw_security_test(security_signer test_signer)
vw_security_test(security_audit_txn test_audit_txn)
vw_security_test(security_auth_lock test_auth_lock)
vw_security_test(security_routes test_routes)
vw_security_test(security_stream test_stream)
# Asynchronous store reads: clients that leave mid-read, reads after an ack.
vw_security_test(security_store_reads test_store_reads)
# UTF-8 at every string boundary, range-checked numbers, Host on HTTP/1.1, private files
# under umask 000 (issue 10, item 7).
vw_security_test(security_input test_input)
# issue 16 E: a site's history, scoped and with its parameters checked.
vw_security_test(security_history test_history)
# Pipelined large GETs that are never read: memory bounded by the output budget.
vw_security_test(security_static_flood test_static_flood)
# Review D2: new epochs per agent are logged and bounded ([limits] new_epochs_per_day).
vw_security_test(security_epochs test_epochs)
# Review D3: a site keeps one org and city; the CLI and ingest refuse another.
vw_security_test(security_jurisdiction test_jurisdiction)
vw_security_test(security_exams test_exams)
# The score's API under hostile data and askers (issue 11's review): markup and formula
# session codes, publishing a partly visible org, unbounded periods, published pages.
vw_security_test(security_score test_score_security)
# Issue 12 D: an inspector sees his inspections and, while they run, their orgs' sites only.
vw_security_test(security_inspector_scope test_inspector_scope)
