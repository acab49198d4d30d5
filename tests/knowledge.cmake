# Knowledge base, chunking, extractive provider algorithms, background ingest.
moa_unit_test(test-kb ${CMAKE_CURRENT_SOURCE_DIR}/test-kb.c)
moa_unit_test(test-chunk ${CMAKE_CURRENT_SOURCE_DIR}/test-chunk.c)
moa_unit_test(test-ingest ${CMAKE_CURRENT_SOURCE_DIR}/test-ingest.c)
moa_unit_test(test-extract ${CMAKE_CURRENT_SOURCE_DIR}/test-extract.c)

# Fuzz targets (shared driver, see moa_fuzz_test in tests/CMakeLists.txt).
moa_fuzz_test(fuzz-kb-query ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz-kb-query.c ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-kb)
moa_fuzz_test(fuzz-extract ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz-extract.c ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-extract)

# retrieval-eval: recall@5 of paraphrased questions on the Debian Policy
# Manual (tests/data/retrieval/policy-questions.tsv). Fails, loudly, when
# the manual is not installed (package debian-policy) and when held-out
# recall falls below the floor.
add_executable(retrieval-eval ${CMAKE_CURRENT_SOURCE_DIR}/retrieval-eval.c)
target_link_libraries(retrieval-eval PRIVATE moacore)
