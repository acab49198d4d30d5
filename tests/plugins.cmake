# Plugin ABI, loader, router and agent registry tests, the routing
# evaluation, and the out-of-tree plugin build (owner: plugins).

# Deliberately broken plugins (one ABI rule each) and a probe exercising
# the host services, built like real plugins into tests/plugins/.
set(MOA_TEST_PLUGIN_DIR ${CMAKE_BINARY_DIR}/tests/plugins)
foreach(p bad-major bad-size bad-nosym bad-nullcb bad-init bad-signature bad-name bad-utf8 probe abi-1-0 sleepy)
  add_library(test-plugin-${p} MODULE ${CMAKE_CURRENT_SOURCE_DIR}/plugins/${p}.c)
  set_target_properties(test-plugin-${p} PROPERTIES PREFIX "" OUTPUT_NAME ${p}
    C_VISIBILITY_PRESET hidden LIBRARY_OUTPUT_DIRECTORY ${MOA_TEST_PLUGIN_DIR})
  target_include_directories(test-plugin-${p} PRIVATE ${CMAKE_SOURCE_DIR}/include)
  target_link_libraries(test-plugin-${p} PRIVATE m)
  list(APPEND MOA_TEST_PLUGINS test-plugin-${p})
endforeach()

set(MOA_SHIPPED_PLUGINS legal medical finance code general example)

moa_unit_test(test-plugin-host ${CMAKE_CURRENT_SOURCE_DIR}/test-plugin-host.c)
target_compile_definitions(test-plugin-host PRIVATE
  TEST_PLUGIN_DIR="${MOA_TEST_PLUGIN_DIR}" SHIPPED_PLUGIN_DIR="${CMAKE_BINARY_DIR}/plugins")
add_dependencies(test-plugin-host ${MOA_TEST_PLUGINS} ${MOA_SHIPPED_PLUGINS})

moa_unit_test(test-router ${CMAKE_CURRENT_SOURCE_DIR}/test-router.c)
moa_unit_test(test-terms ${CMAKE_CURRENT_SOURCE_DIR}/test-terms.c)

moa_unit_test(test-agents ${CMAKE_CURRENT_SOURCE_DIR}/test-agents.c)
target_compile_definitions(test-agents PRIVATE
  TEST_PLUGIN_DIR="${MOA_TEST_PLUGIN_DIR}" SHIPPED_PLUGIN_DIR="${CMAKE_BINARY_DIR}/plugins")
add_dependencies(test-agents ${MOA_TEST_PLUGINS} ${MOA_SHIPPED_PLUGINS})

# routing-eval: the labelled routing evaluation sets (docs/routing.md). Each
# fails if its held-out exact-set accuracy is below a floor well under the
# measured value: a broken router, classifier or lexicon fails it, a new
# knowledge document does not.
add_executable(routing-eval ${CMAKE_CURRENT_SOURCE_DIR}/routing-eval.c)
target_link_libraries(routing-eval PRIVATE moacore)
add_dependencies(routing-eval ${MOA_SHIPPED_PLUGINS})
function(moa_routing_eval name file floor)
  add_test(NAME ${name} COMMAND routing-eval
    --data ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/${file}
    --plugin-dir ${CMAKE_BINARY_DIR}/plugins
    --agents-dir ${CMAKE_SOURCE_DIR}/agents.d
    --min-test-accuracy ${floor})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 300)
endfunction()
moa_routing_eval(routing-eval data/routing-eval.tsv 0.90)
moa_routing_eval(routing-eval-registers data/routing/registers.tsv 0.78)
moa_routing_eval(routing-eval-no-lexicon data/routing/no-lexicon.tsv 0.68)
moa_routing_eval(routing-eval-inbox data/routing/inbox.tsv 0.78)
moa_routing_eval(routing-eval-forum data/routing/forum.tsv 0.78)
moa_routing_eval(routing-eval-support-desk data/routing/support-desk.tsv 0.78)

# Out-of-tree plugin build: the documented command line against the
# build-tree moa-plugin.pc, then loaded by the host loader.
add_executable(plugin-load ${CMAKE_CURRENT_SOURCE_DIR}/plugin-load.c)
target_link_libraries(plugin-load PRIVATE moacore)
add_test(NAME plugin-out-of-tree
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/plugin-out-of-tree.sh
    ${CMAKE_BINARY_DIR}/plugins ${CMAKE_SOURCE_DIR}/plugins/example/example.c $<TARGET_FILE:plugin-load>
    $<TARGET_FILE:moactl>)
set_tests_properties(plugin-out-of-tree PROPERTIES LABELS unit TIMEOUT 120
  ENVIRONMENT "MOAD_TEST_SRCDIR=${CMAKE_SOURCE_DIR};MOAD_TEST_BUILDDIR=${CMAKE_BINARY_DIR}")

# Fuzz target: every shipped plugin's callbacks and the router's evidence
# on arbitrary bytes; replays tests/fuzz/corpus-plugins (+ mutations) under CTest.
moa_fuzz_test(fuzz-plugins ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz-plugins.c ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus-plugins)
target_compile_definitions(fuzz-plugins PRIVATE SHIPPED_PLUGIN_DIR="${CMAKE_BINARY_DIR}/plugins")
add_dependencies(fuzz-plugins ${MOA_SHIPPED_PLUGINS})

moa_unit_test(test-plugin-call ${CMAKE_CURRENT_SOURCE_DIR}/test-plugin-call.c)
target_compile_definitions(test-plugin-call PRIVATE SHIPPED_PLUGIN_DIR="${CMAKE_BINARY_DIR}/plugins")
add_dependencies(test-plugin-call ${MOA_SHIPPED_PLUGINS})
