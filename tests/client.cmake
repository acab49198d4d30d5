# moactl's tests: end to end against tests/fake-moad.py on a temporary
# Unix socket (no daemon, no network).
find_program(MOACTL_PYTHON3 python3)
if(MOACTL_PYTHON3)
  add_test(NAME test-moactl
    COMMAND ${MOACTL_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test-moactl.py $<TARGET_FILE:moactl>)
  set_tests_properties(test-moactl PROPERTIES LABELS integration TIMEOUT 300
    ENVIRONMENT "MOAD_TEST_SRCDIR=${CMAKE_SOURCE_DIR};MOAD_TEST_BUILDDIR=${CMAKE_BINARY_DIR}")
else()
  message(WARNING "python3 not found: test-moactl is not registered")
endif()
