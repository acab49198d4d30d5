# Fuzz targets of the HTTP layer and of the document converters (the
# others are registered next to their area's tests). moa_fuzz_test is in
# tests/CMakeLists.txt; scripts/fuzz.sh runs them all under libFuzzer.
get_filename_component(MOA_FUZZ_SRCDIR ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)

# A real HttpServer with the daemon's admit hook, fed raw bytes over a socket.
moa_fuzz_test(fuzz-http-head ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz-http-head.c
  ${CMAKE_CURRENT_LIST_DIR}/fuzz/corpus-http)
if(NOT MOAD_LIBFUZZER)
  # Inputs near regress-http10-stream-after-suspend wait 1 s each for
  # libmicrohttpd's idle timeout: 50 mutations per file, not 200, keep the
  # replay near 15 s.
  set_tests_properties(fuzz-http-head PROPERTIES ENVIRONMENT "MOA_FUZZ_MUTATIONS=50")
endif()

# The converters moactl and moad share (common/, the moa-convert library).
moa_fuzz_test(fuzz-doc-text ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz-doc-text.c
  ${CMAKE_CURRENT_LIST_DIR}/fuzz/corpus-doc-text NO_MOACORE)
target_link_libraries(fuzz-doc-text PRIVATE moa-convert PkgConfig::ZLIB)
