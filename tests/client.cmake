# moactl's tests, and checks of the files shipped with it (systemd units,
# man pages). None uses the network.
find_program(MOACTL_PYTHON3 python3)
get_filename_component(MOACTL_SRCDIR ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)
set(MOACTL_TEST_ENV "MOAD_TEST_SRCDIR=${CMAKE_SOURCE_DIR};MOAD_TEST_BUILDDIR=${CMAKE_BINARY_DIR}")

# moactl's pure helpers (tables, JSON getters, bounded reads); no moacore.
add_executable(test-client-output ${CMAKE_CURRENT_LIST_DIR}/test-client-output.c
  ${MOACTL_SRCDIR}/client/output.c ${MOACTL_SRCDIR}/daemon/file-read.c)
target_compile_definitions(test-client-output PRIVATE _GNU_SOURCE)
target_include_directories(test-client-output PRIVATE ${MOACTL_SRCDIR}/client ${MOACTL_SRCDIR}/daemon)
target_link_libraries(test-client-output PRIVATE moa-convert PkgConfig::JANSSON PkgConfig::CHECK)
add_test(NAME test-client-output COMMAND test-client-output)
set_tests_properties(test-client-output PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "CK_FORK=yes;${MOACTL_TEST_ENV}")

# The ingest helpers moactl and moad share: SHA-256, the converters of
# common/ (gzip, encodings, HTML, PDF), titles and walks.
add_executable(test-doc-text ${CMAKE_CURRENT_LIST_DIR}/test-doc-text.c
  ${MOACTL_SRCDIR}/daemon/ingest-files.c ${MOACTL_SRCDIR}/daemon/sha256.c ${MOACTL_SRCDIR}/daemon/file-read.c)
target_compile_definitions(test-doc-text PRIVATE _GNU_SOURCE)
target_include_directories(test-doc-text PRIVATE ${MOACTL_SRCDIR}/daemon)
target_link_libraries(test-doc-text PRIVATE moa-convert PkgConfig::JANSSON PkgConfig::CHECK PkgConfig::ZLIB
  Threads::Threads)
add_test(NAME test-doc-text COMMAND test-doc-text)
set_tests_properties(test-doc-text PROPERTIES LABELS unit TIMEOUT 60 ENVIRONMENT "CK_FORK=yes;${MOACTL_TEST_ENV}")

if(MOACTL_PYTHON3)
  # Every command and failure mode against tests/fake-moad.py on a
  # temporary Unix socket.
  add_test(NAME test-moactl
    COMMAND ${MOACTL_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test-moactl.py $<TARGET_FILE:moactl>)
  set_tests_properties(test-moactl PROPERTIES LABELS integration TIMEOUT 300 ENVIRONMENT "${MOACTL_TEST_ENV}"
    SKIP_REGULAR_EXPRESSION "OK \\([^)]*skipped=[0-9]+")

  # moactl against the real daemon (shipped agents, builtin provider).
  if(TARGET moad)
    add_test(NAME test-moactl-daemon
      COMMAND ${MOACTL_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test-moactl-daemon.py
              $<TARGET_FILE:moactl> $<TARGET_FILE:moad> ${MOACTL_SRCDIR}/agents.d)
    set_tests_properties(test-moactl-daemon PROPERTIES LABELS integration TIMEOUT 300
      ENVIRONMENT "${MOACTL_TEST_ENV}" SKIP_REGULAR_EXPRESSION "OK \\([^)]*skipped=[0-9]+")

    # moactl batch: the real daemon, plus a scripted slow/flaky server.
    add_test(NAME test-moactl-batch
      COMMAND ${MOACTL_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test-moactl-batch.py
              $<TARGET_FILE:moactl> $<TARGET_FILE:moad> ${MOACTL_SRCDIR}/agents.d)
    set_tests_properties(test-moactl-batch PROPERTIES LABELS integration TIMEOUT 300
      ENVIRONMENT "${MOACTL_TEST_ENV}" SKIP_REGULAR_EXPRESSION "OK \\([^)]*skipped=[0-9]+")
  endif()
else()
  message(WARNING "python3 not found: moactl's tests are not registered")
endif()

# systemd-analyze verify/security on the units, sysusers in a scratch root.
if(TARGET moad)
  add_test(NAME test-units
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/test-units.sh ${MOACTL_SRCDIR} $<TARGET_FILE:moad>)
  set_tests_properties(test-units PROPERTIES LABELS lint TIMEOUT 120 SKIP_RETURN_CODE 77)
endif()

# The man pages render without groff warnings.
find_program(MOACTL_GROFF groff)
if(MOACTL_GROFF)
  add_test(NAME test-man-pages
    COMMAND sh -c "for f in \"$@\"; do out=$(LC_ALL=C ${MOACTL_GROFF} -man -ww -z \"$f\" 2>&1); \
if [ -n \"$out\" ]; then echo \"$f: $out\"; exit 1; fi; done" sh
            ${MOACTL_SRCDIR}/docs/moactl.1 ${MOACTL_SRCDIR}/docs/moad.8 ${MOACTL_SRCDIR}/docs/moad.yaml.5)
  set_tests_properties(test-man-pages PROPERTIES LABELS lint TIMEOUT 60)
endif()
