# Configuration loader (daemon/config.c, daemon/yaml-tree.c).
moa_unit_test(test-config test-config.c)

# Fuzz target: with the built-in driver it replays the corpus under CTest.
moa_fuzz_test(fuzz-config ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz-config.c ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-config)
