# Jobs on the server: the batch input file parser (unit) and the Files and
# Batches API against the real daemon (integration).
moa_unit_test(test-batch-input ${CMAKE_CURRENT_LIST_DIR}/test-batch-input.c)
# The worker of slow work, and its inline form that keeps the SQLite jobs
# store on the loop while the PostgreSQL store runs on threads.
moa_unit_test(test-worker ${CMAKE_CURRENT_LIST_DIR}/test-worker.c)
moa_integration_test(jobs)
