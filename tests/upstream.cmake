# upstream.cmake — tests of the upstream side: SSE parser, OpenAI-compatible
# provider, and the mock upstream server other suites use
# (MOAD_MOCK_UPSTREAM in their environment: $<TARGET_FILE:mock-upstream>).

moa_unit_test(test-sse-parser ${CMAKE_CURRENT_SOURCE_DIR}/test-sse-parser.c)

# Fuzz target: with the tiny built-in driver it replays the corpus under CTest.
moa_fuzz_test(fuzz-sse-parser ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz-sse-parser.c ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-sse)

# The mock OpenAI-compatible upstream: a test tool (own MHD thread), not daemon code.
add_executable(mock-upstream ${CMAKE_CURRENT_SOURCE_DIR}/mock-upstream.c)
target_compile_definitions(mock-upstream PRIVATE _GNU_SOURCE)
target_link_libraries(mock-upstream PRIVATE PkgConfig::MHD PkgConfig::JANSSON Threads::Threads)

# Integration: the openai provider against mock-upstream on 127.0.0.1.
add_executable(test-provider-openai ${CMAKE_CURRENT_SOURCE_DIR}/test-provider-openai.c)
target_link_libraries(test-provider-openai PRIVATE moacore PkgConfig::CHECK)
add_dependencies(test-provider-openai mock-upstream)
add_test(NAME test-provider-openai COMMAND test-provider-openai)
set_tests_properties(test-provider-openai PROPERTIES LABELS integration TIMEOUT 300
  ENVIRONMENT "CK_FORK=yes;MOAD_MOCK_UPSTREAM=$<TARGET_FILE:mock-upstream>;MOAD_TEST_SRCDIR=${CMAKE_SOURCE_DIR};MOAD_TEST_BUILDDIR=${CMAKE_BINARY_DIR}")
