# Configuration loader (daemon/config.c, daemon/yaml-tree.c).
moa_unit_test(test-config test-config.c)

# Fuzz target: with the built-in driver it replays the corpus under CTest.
add_executable(fuzz-config ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz-config.c)
target_link_libraries(fuzz-config PRIVATE moacore)
add_test(NAME fuzz-config COMMAND fuzz-config ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-config)
set_tests_properties(fuzz-config PROPERTIES LABELS fuzz TIMEOUT 120)
