# HTTP robustness against a real server (tests/security/test_http_limits.py): limits, timeouts,
# strict framing, the connection cap and the SIGTERM drain. Label security, like the identity
# tests beside it. include()d from tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/.
if(VW_SANITIZE)
  set(_vw_http_limits_scale 3)
else()
  set(_vw_http_limits_scale 1)
endif()
add_test(NAME security_http_limits
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/security/test_http_limits.py)
set_tests_properties(security_http_limits PROPERTIES
  ENVIRONMENT "VW_AGENT=$<TARGET_FILE:venuewatch-agent>;VW_SERVER=$<TARGET_FILE:venuewatch-server>;VW_TIMEOUT_SCALE=${_vw_http_limits_scale}"
  LABELS security
  TIMEOUT 300
  RUN_SERIAL TRUE)
