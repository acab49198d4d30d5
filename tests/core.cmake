# Core daemon: request validation, response framing, prompts (unit).
moa_unit_test(test-chat-request ${CMAKE_CURRENT_LIST_DIR}/test-chat-request.c)
moa_unit_test(test-chat-response ${CMAKE_CURRENT_LIST_DIR}/test-chat-response.c)
moa_unit_test(test-prompts ${CMAKE_CURRENT_LIST_DIR}/test-prompts.c)
