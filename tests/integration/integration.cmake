# Integration tests: real processes (camd, venuewatch-server, venuewatch-agent) on loopback ports
# chosen at run time. include()d from tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/.
# They run under Debian's /usr/bin/python3: the test camera server needs its PyGObject (gi).

set(VW_INTEGRATION_PYTHON /usr/bin/python3 CACHE FILEPATH
    "Python 3 with PyGObject (gi) for the integration tests")

# Sanitizer builds run several times slower; stretch every deadline rather than flake.
if(VW_SANITIZE)
  set(VW_INTEGRATION_TIMEOUT_SCALE 3)
else()
  set(VW_INTEGRATION_TIMEOUT_SCALE 1)
endif()
math(EXPR VW_INTEGRATION_TIMEOUT "300 * ${VW_INTEGRATION_TIMEOUT_SCALE}")

# vw_integration_test(NAME MODULE): tests/integration/MODULE.py as ctest test NAME.
function(vw_integration_test name module)
  add_test(NAME ${name}
           COMMAND ${VW_INTEGRATION_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/integration/${module}.py)
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "VW_AGENT=$<TARGET_FILE:venuewatch-agent>;VW_SERVER=$<TARGET_FILE:venuewatch-server>;VW_TIMEOUT_SCALE=${VW_INTEGRATION_TIMEOUT_SCALE}"
    LABELS integration
    TIMEOUT ${VW_INTEGRATION_TIMEOUT}
    # They bind loopback ports and load both cores; run them one at a time.
    RUN_SERIAL TRUE)
endfunction()

vw_integration_test(integration_e2e test_e2e)

# Item 3.6's evidence: every picture fault, hostile cameras, recordings, camera_moved, coverage.
vw_integration_test(integration_evidence test_evidence)
# Issue 15: the vendors' VQD faults (colour cast, stripes, occlusion) and healthy look-alikes.
vw_integration_test(integration_vqd test_vqd)
# camd itself: every first client of a fresh camd gets packets (a healthy camera never reads
# as no_video because of the test server).
vw_integration_test(integration_camd test_camd)
# high_rtt / packet_loss through network namespaces; skipped (77) where they cannot be made.
vw_integration_test(integration_evidence_net test_evidence_net)
set_tests_properties(integration_evidence_net PROPERTIES SKIP_RETURN_CODE 77)
# Issue 15.5: a camera name the resolver never answers fails by the check's deadline, the whole
# agent in a mount namespace with its own resolv.conf; skipped (77) where one cannot be made.
vw_integration_test(integration_resolver_deadline test_resolver_deadline)
set_tests_properties(integration_resolver_deadline PROPERTIES SKIP_RETURN_CODE 77)

# Camera credentials never reach a log or the outbox, with FFmpeg at trace (issue 10, item 6).
vw_integration_test(integration_credentials test_credentials)
set_tests_properties(integration_credentials PROPERTIES LABELS "integration;security")
# Issue 10.2: a reinstalled agent continues under a new epoch after enrolling again.
vw_integration_test(integration_reinstall test_reinstall)
# Review D1: an outbox restored from a backup goes on under a new epoch, nothing skipped.
vw_integration_test(integration_restore test_restore)

# Issue 11: a session created at the collector changes a running agent's cadence.
vw_integration_test(integration_session_cadence test_session_cadence)
# Item 3.6's score: a stopped camera in the served score, recomputed from its evidence alone.
vw_integration_test(integration_score test_score)
# Issue 16 (A): problems, SSE resume after a restart, site_silent, scope, ack.
vw_integration_test(integration_feed test_feed)
# Issue 16 C: picture evidence — a black camera's thumbnail, served to its readers only, logged.
vw_integration_test(integration_thumbnails test_thumbnails)
# Issue 16 D: [notify NAME] sinks against a loopback webhook / DingTalk / WeCom receiver.
vw_integration_test(integration_notify test_notify)
# Issue 12 C: a city draw through its states (API + CLI), verify on the exported document.
vw_integration_test(integration_draws test_draws)

# issue 12 E: 一公开 — anonymous /public/ pages, CSV and JSON; nothing private; due dates.
vw_integration_test(integration_public test_public)
set_tests_properties(integration_public PROPERTIES LABELS "integration;security")
# Issue 12 D: results, confirmation, publication, the 3.6 snapshot and remote capture.
vw_integration_test(integration_inspections test_inspections)
# Issue 12 B: the registers — JSON and CSV writes, field/line errors, city scope, export round trip.
vw_integration_test(integration_registers test_registers)
# Issue 12: a city's double-random inspection end to end — registers and sessions by CSV,
# draw, remote-check capture with a real agent and cameras, results, /public/, verify.
vw_integration_test(integration_inspection_e2e test_inspection_e2e)
# Issue 14: the agent's textfile metrics read by promtool, the Prometheus client's parser and
# node_exporter's textfile collector; the collector stopped and back (budget: 60 s).
vw_integration_test(integration_agent_metrics test_agent_metrics)
math(EXPR VW_AGENT_METRICS_TIMEOUT "120 * ${VW_INTEGRATION_TIMEOUT_SCALE}")
set_tests_properties(integration_agent_metrics PROPERTIES TIMEOUT ${VW_AGENT_METRICS_TIMEOUT})
# Issue 14: the collector's GET /metrics — promtool on the scrape, values after an upload, a
# refused TLS client and an open stream; the metrics role and [metrics] allow (budget: 60 s).
vw_integration_test(integration_metrics test_metrics)
# A real Prometheus scrapes it over TLS with the metrics token; a wrong token is a 401.
vw_integration_test(integration_prometheus test_prometheus)

# Issue 15.2: NVR recordings proven by playback against a real RTSP playback server
# (tests/tools/playbackd.py): a hole, a short retention, a healthy camera, bounded reads.
vw_integration_test(integration_playback test_playback)
# Issue 13: several [collector] urls — an unreachable first collector, uploads move to the
# second, logged and shown by `status` (two collectors on PostgreSQL: integration_failover_pg).
vw_integration_test(integration_failover test_failover)
