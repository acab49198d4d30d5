# upstream.cmake — tests of the upstream side: SSE parser, OpenAI-compatible
# provider, and the mock upstream server other suites use
# (MOAD_MOCK_UPSTREAM in their environment: $<TARGET_FILE:mock-upstream>).

moa_unit_test(test-sse-parser ${CMAKE_CURRENT_SOURCE_DIR}/test-sse-parser.c)

# Fuzz target: with the tiny built-in driver it replays the corpus under CTest.
add_executable(fuzz-sse-parser ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz-sse-parser.c)
target_link_libraries(fuzz-sse-parser PRIVATE moacore)
add_test(NAME fuzz-sse-parser COMMAND fuzz-sse-parser ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-sse)
set_tests_properties(fuzz-sse-parser PROPERTIES LABELS fuzz TIMEOUT 120)
