# bench.cmake — builds bench/moabench, the load generator of the benchmark
# harness (bench/run.sh), and registers bench-smoke. No timing ever gates a
# build: benchmarks are run by hand (docs/performance.md). Output: <builddir>/bench/moabench.
add_executable(moabench ${CMAKE_SOURCE_DIR}/bench/moabench.c)
target_compile_definitions(moabench PRIVATE _GNU_SOURCE)
target_link_libraries(moabench PRIVATE PkgConfig::CURL)
set_target_properties(moabench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)

# bench/route-cost: routing cost with many agents and large knowledge bases,
# in process (docs/performance.md, "Routing at scale").
add_library(bench-corpus STATIC ${CMAKE_SOURCE_DIR}/bench/bench-corpus.c)
target_link_libraries(bench-corpus PUBLIC moacore)
add_executable(route-cost ${CMAKE_SOURCE_DIR}/bench/route-cost.c)
target_link_libraries(route-cost PRIVATE bench-corpus)
set_target_properties(route-cost PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)

# bench/kb-backends: SQLite and PostgreSQL searches on the same documents
# (bench/kb-backends.py starts a private PostgreSQL server for it;
# docs/performance.md, "Knowledge backends").
add_executable(kb-backends ${CMAKE_SOURCE_DIR}/bench/kb-backends.c)
target_link_libraries(kb-backends PRIVATE bench-corpus)
set_target_properties(kb-backends PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)

# bench-smoke: about 10 s of every benchmark scenario with tiny counts. It
# checks that the harness runs (each scenario answers, nothing skipped); the
# figures it prints mean nothing and nothing is compared with a time.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME bench-smoke
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/bench/bench.py --smoke --no-write
                 --build ${CMAKE_BINARY_DIR})
set_tests_properties(bench-smoke PROPERTIES LABELS bench TIMEOUT 300)

# moabench's own options that the harness relies on (--header for the
# Portkey peer of bench/peer.sh): against the mock, no timing.
add_test(NAME moabench-options COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/test-moabench.py
                                       ${CMAKE_BINARY_DIR})
set_tests_properties(moabench-options PROPERTIES LABELS bench TIMEOUT 120)
