# libFuzzer targets for the parsers of outside input (HTTP request framing, the ingest JSON and
# gzip decoder, the INI config parser, the exam-session plan CSV, the registers' CSV, the
# holidays CSV). include()d from tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/.
# Built only with clang and -DVW_FUZZ=ON:
#   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DVW_FUZZ=ON
#   cmake --build build-fuzz --target fuzzers && ctest --test-dir build-fuzz -L fuzz
# tests/fuzz/run.sh NAME [SECONDS] runs one target on its seed corpus (see tests/fuzz/README).

option(VW_FUZZ "Build the libFuzzer targets (needs clang)" OFF)
set(VW_FUZZ_SECONDS 20 CACHE STRING "How long each ctest 'fuzz' run lasts")

if(VW_FUZZ AND NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
  message(WARNING "VW_FUZZ=ON needs clang (CMAKE_C_COMPILER=clang); fuzz targets skipped")
endif()

if(VW_FUZZ AND CMAKE_C_COMPILER_ID STREQUAL "Clang")
  set(_vw_fuzz_flags -fsanitize=fuzzer-no-link,address,undefined
      -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
  # The code under test, compiled again with coverage instrumentation and sanitizers; the
  # project's own libraries stay as they are so the rest of this build is unaffected.
  # The same sources as vwcommon and vwserver (read from those targets, so a new file is
  # picked up), plus the agent's config tables for fuzz_conf and the url list they parse.
  get_target_property(_vw_common_srcs vwcommon SOURCES)
  get_target_property(_vw_server_srcs vwserver SOURCES)
  set(_vw_fuzz_srcs ${_vw_common_srcs} ${_vw_server_srcs} agent/agent_conf.c agent/failover.c)
  list(TRANSFORM _vw_fuzz_srcs PREPEND "${PROJECT_SOURCE_DIR}/")
  add_library(vwfuzzlib STATIC ${_vw_fuzz_srcs})
  # The server's folders by role, as vwserver has them (CMakeLists.txt).
  set(_vw_fuzz_inc common server server/net server/api server/store server/pki server/cli
      server/core server/notify server/inspect agent)
  list(TRANSFORM _vw_fuzz_inc PREPEND "${PROJECT_SOURCE_DIR}/")
  target_include_directories(vwfuzzlib PUBLIC ${_vw_fuzz_inc})
  # clang's -Wstring-concatenation flags store.c's SQL table (strings split across lines
  # inside an array initialiser, on purpose); gcc, the project's compiler, has no such warning.
  target_compile_options(vwfuzzlib PRIVATE ${_vw_fuzz_flags} -Wno-string-concatenation)
  target_link_libraries(vwfuzzlib PUBLIC PkgConfig::CJSON PkgConfig::INIH PkgConfig::UV PkgConfig::CURL
                        PkgConfig::SSL PkgConfig::SQLITE PkgConfig::PQ PkgConfig::ZLIB ${HTTP_PARSER_LIB}
                        ${CSV_LIB} Threads::Threads m)

  add_custom_target(fuzzers)
  foreach(name http ingest conf sessions_csv registers_csv draw_verify holidays_csv) # draw_verify: issue 12 A
    add_executable(fuzz_${name} fuzz/fuzz_${name}.c)
    target_compile_options(fuzz_${name} PRIVATE ${_vw_fuzz_flags})
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(fuzz_${name} PRIVATE vwfuzzlib)
    add_dependencies(fuzzers fuzz_${name})
    add_test(NAME fuzz_${name}
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run.sh ${name} ${VW_FUZZ_SECONDS})
    set_tests_properties(fuzz_${name} PROPERTIES
      ENVIRONMENT "VW_FUZZ_BIN=$<TARGET_FILE:fuzz_${name}>;VW_FUZZ_WORK=${CMAKE_CURRENT_BINARY_DIR}/fuzz-work"
      LABELS fuzz
      TIMEOUT 300)
  endforeach()
endif()
