# Fuzz targets of the HTTP layer and of moactl's ingest converters (the
# others are registered next to their area's tests). moa_fuzz_test is in
# tests/CMakeLists.txt; scripts/fuzz.sh runs them all under libFuzzer.
get_filename_component(MOA_FUZZ_SRCDIR ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)

# A real HttpServer with the daemon's admit hook, fed raw bytes over a socket.
moa_fuzz_test(fuzz-http-head ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz-http-head.c
  ${CMAKE_CURRENT_LIST_DIR}/fuzz/corpus-http)

# client/doc-text.c is moactl's, not moacore's: compiled in, as moactl does.
moa_fuzz_test(fuzz-doc-text ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz-doc-text.c
  ${CMAKE_CURRENT_LIST_DIR}/fuzz/corpus-doc-text NO_MOACORE
  SOURCES ${MOA_FUZZ_SRCDIR}/client/doc-text.c ${MOA_FUZZ_SRCDIR}/client/file-text.c
          ${MOA_FUZZ_SRCDIR}/daemon/file-read.c)
target_compile_definitions(fuzz-doc-text PRIVATE _GNU_SOURCE)
target_include_directories(fuzz-doc-text PRIVATE ${MOA_FUZZ_SRCDIR}/client ${MOA_FUZZ_SRCDIR}/daemon)
target_link_libraries(fuzz-doc-text PRIVATE PkgConfig::JANSSON PkgConfig::ZLIB)
