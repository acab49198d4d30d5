# Formatting is part of the build's contract: every C file matches
# .clang-format (STYLE.md rule 11). Fix with: clang-format -i <files>.
find_program(MOA_CLANG_FORMAT clang-format)
if(MOA_CLANG_FORMAT)
  file(GLOB_RECURSE MOA_FORMAT_FILES CONFIGURE_DEPENDS
    ${CMAKE_SOURCE_DIR}/daemon/*.[ch] ${CMAKE_SOURCE_DIR}/client/*.[ch] ${CMAKE_SOURCE_DIR}/common/*.[ch]
    ${CMAKE_SOURCE_DIR}/plugins/*.[ch]
    ${CMAKE_SOURCE_DIR}/include/*.h ${CMAKE_SOURCE_DIR}/tests/*.c ${CMAKE_SOURCE_DIR}/bench/*.c)
  add_test(NAME format COMMAND ${MOA_CLANG_FORMAT} --dry-run --Werror ${MOA_FORMAT_FILES})
  set_tests_properties(format PROPERTIES LABELS lint TIMEOUT 120)
else()
  message(STATUS "clang-format not found: the format check is not registered")
endif()
