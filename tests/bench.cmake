# bench.cmake — builds bench/moabench, the load generator of the benchmark
# harness (bench/run.sh). Not a test: nothing is registered with CTest, so
# no timing ever gates a build (benchmarks are run by hand, see
# docs/performance.md). Output: <builddir>/bench/moabench.
add_executable(moabench ${CMAKE_SOURCE_DIR}/bench/moabench.c)
target_compile_definitions(moabench PRIVATE _GNU_SOURCE)
target_link_libraries(moabench PRIVATE PkgConfig::CURL)
set_target_properties(moabench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)

# bench/route-cost: routing cost with many agents and large knowledge bases,
# in process (docs/performance.md, "Routing at scale").
add_executable(route-cost ${CMAKE_SOURCE_DIR}/bench/route-cost.c)
target_link_libraries(route-cost PRIVATE moacore)
set_target_properties(route-cost PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
