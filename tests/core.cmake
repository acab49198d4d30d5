# Core daemon: request validation, response framing, prompts (unit).
moa_unit_test(test-chat-request ${CMAKE_CURRENT_LIST_DIR}/test-chat-request.c)
moa_unit_test(test-chat-response ${CMAKE_CURRENT_LIST_DIR}/test-chat-response.c)
moa_unit_test(test-prompts ${CMAKE_CURRENT_LIST_DIR}/test-prompts.c)
moa_unit_test(test-strbuf ${CMAKE_CURRENT_LIST_DIR}/test-strbuf.c)

# Integration suites: start the real daemon on a temporary Unix socket and
# talk HTTP to it (Python 3 standard library only). A suite that passed with
# skipped cases ("OK (skipped=N)") is reported as skipped, not passed, so a
# case that could not run shows in CTest's summary (its reason is in the
# output); under CI (CI=true) a case that uses moadtest.cannot_run() fails.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
function(moa_integration_test suite)
  add_test(NAME integration-${suite}
           COMMAND ${Python3_EXECUTABLE} -m unittest -v test_${suite}
           WORKING_DIRECTORY ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/integration)
  set_tests_properties(integration-${suite} PROPERTIES LABELS integration TIMEOUT 900
    SKIP_REGULAR_EXPRESSION "OK \\([^)]*skipped=[0-9]+"
    ENVIRONMENT "MOAD_TEST_SRCDIR=${CMAKE_SOURCE_DIR};MOAD_TEST_BUILDDIR=${CMAKE_BINARY_DIR};MOAD_PLUGIN_DIR=${CMAKE_BINARY_DIR}/plugins;MOAD_MOCK_UPSTREAM=$<TARGET_FILE:mock-upstream>;PYTHONDONTWRITEBYTECODE=1")
endfunction()
moa_integration_test(api)
moa_integration_test(lifecycle)
moa_integration_test(engine)
moa_integration_test(staircase)

# Fuzz targets of the core, run over their corpora (+ mutations) by CTest.
moa_fuzz_test(fuzz-chat-request ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz-chat-request.c ${CMAKE_CURRENT_LIST_DIR}/fuzz/corpus-chat)
moa_integration_test(access)
moa_integration_test(knowledge)
moa_integration_test(plugins)
moa_integration_test(routing)
moa_unit_test(test-stream-review ${CMAKE_CURRENT_LIST_DIR}/test-stream-review.c)
moa_integration_test(hostile)
moa_integration_test(budget)
moa_integration_test(listing)
moa_unit_test(test-json-write ${CMAKE_CURRENT_LIST_DIR}/test-json-write.c)
