# Jobs on the server: the batch input file parser (unit) and the Files and
# Batches API against the real daemon (integration).
moa_unit_test(test-batch-input ${CMAKE_CURRENT_LIST_DIR}/test-batch-input.c)
moa_integration_test(jobs)
