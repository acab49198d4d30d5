# Structured citations, questions about attached documents, reviews.
moa_unit_test(test-citations ${CMAKE_CURRENT_LIST_DIR}/test-citations.c)
# moa_integration_test() is defined in core.cmake, which may be included
# after this file: defer the calls to the end of the directory.
cmake_language(DEFER CALL moa_integration_test citations)
