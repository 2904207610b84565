# The dashboard (web/): `npm run build` (vue-tsc, then vite) into ${CMAKE_BINARY_DIR}/web, the
# directory [web] root points at. Built with ALL when node, npm and web/node_modules (from
# `npm ci`, which scripts/setup.sh runs) are there; otherwise the C build goes on and says why.
# Tests: label `web` (vitest, the UI's logic), label `browser` (tests/browser: Chromium driven by
# playwright-core against a real server, agent and camd).

find_program(VW_NODE node)
find_program(VW_NPM npm)
set(VW_WEB_SRC ${CMAKE_SOURCE_DIR}/web)
set(VW_WEB_OUT ${CMAKE_BINARY_DIR}/web)

if(VW_NODE AND VW_NPM AND EXISTS ${VW_WEB_SRC}/node_modules/.package-lock.json)
  set(VW_WEB_ENABLED ON)
  file(GLOB_RECURSE VW_WEB_INPUTS CONFIGURE_DEPENDS
       ${VW_WEB_SRC}/src/* ${VW_WEB_SRC}/scripts/*)
  list(APPEND VW_WEB_INPUTS ${VW_WEB_SRC}/index.html ${VW_WEB_SRC}/vite.config.ts
       ${VW_WEB_SRC}/tsconfig.json ${VW_WEB_SRC}/package.json ${VW_WEB_SRC}/package-lock.json)
  add_custom_command(
    OUTPUT ${VW_WEB_OUT}/index.html
    COMMAND ${CMAKE_COMMAND} -E env VW_WEB_OUT=${VW_WEB_OUT} ${VW_NPM} run --silent build
    WORKING_DIRECTORY ${VW_WEB_SRC}
    DEPENDS ${VW_WEB_INPUTS}
    COMMENT "web: npm run build -> ${VW_WEB_OUT}"
    VERBATIM)
  add_custom_target(web ALL DEPENDS ${VW_WEB_OUT}/index.html)
  # The dashboard the server package ships ([web] root in server.example.ini).
  install(DIRECTORY ${VW_WEB_OUT}/ DESTINATION ${CMAKE_INSTALL_DATADIR}/venuewatch/web)
else()
  set(VW_WEB_ENABLED OFF)
  # The package build sets this: a server package without its dashboard is not one to ship.
  if(VW_WEB_REQUIRED)
    message(FATAL_ERROR "web: VW_WEB_REQUIRED but the dashboard cannot be built: needs node, "
                        "npm and web/node_modules (run scripts/setup.sh, or `npm ci` in web/)")
  endif()
  message(STATUS "web: not building the dashboard: needs node, npm and web/node_modules "
                 "(run scripts/setup.sh, or `npm ci` in web/)")
  add_custom_target(web
    COMMAND ${CMAKE_COMMAND} -E echo
            "web: needs node, npm and web/node_modules: run scripts/setup.sh (npm ci in web/)"
    COMMAND ${CMAKE_COMMAND} -E false)
endif()
