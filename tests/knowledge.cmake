# Knowledge base, chunking, extractive provider algorithms, background ingest.
moa_unit_test(test-kb ${CMAKE_CURRENT_SOURCE_DIR}/test-kb.c)
moa_unit_test(test-chunk ${CMAKE_CURRENT_SOURCE_DIR}/test-chunk.c)
moa_unit_test(test-ingest ${CMAKE_CURRENT_SOURCE_DIR}/test-ingest.c)
moa_unit_test(test-extract ${CMAKE_CURRENT_SOURCE_DIR}/test-extract.c)

# Fuzz targets: LLVMFuzzerTestOneInput + our own tiny driver (driver-knowledge.c)
# so they build with gcc and replay their corpus (plus deterministic
# mutations) under CTest. For libFuzzer, build the target file alone with
# clang -fsanitize=fuzzer,address.
foreach(t kb-query extract)
  add_executable(fuzz-${t} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz-${t}.c
                 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/driver-knowledge.c)
  target_link_libraries(fuzz-${t} PRIVATE moacore)
endforeach()
add_test(NAME fuzz-kb-query COMMAND fuzz-kb-query ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-kb)
add_test(NAME fuzz-extract COMMAND fuzz-extract ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-extract)
set_tests_properties(fuzz-kb-query fuzz-extract PROPERTIES LABELS fuzz TIMEOUT 300)
