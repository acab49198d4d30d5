# Knowledge base, chunking, extractive provider algorithms, background ingest.
moa_unit_test(test-kb ${CMAKE_CURRENT_SOURCE_DIR}/test-kb.c)
moa_unit_test(test-chunk ${CMAKE_CURRENT_SOURCE_DIR}/test-chunk.c)
moa_unit_test(test-ingest ${CMAKE_CURRENT_SOURCE_DIR}/test-ingest.c)
moa_unit_test(test-extract ${CMAKE_CURRENT_SOURCE_DIR}/test-extract.c)

# Fuzz targets (shared driver, see moa_fuzz_test in tests/CMakeLists.txt).
moa_fuzz_test(fuzz-kb-query ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz-kb-query.c ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-kb)
moa_fuzz_test(fuzz-extract ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz-extract.c ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-extract)
