# The PostgreSQL knowledge backend (issue 14): tests/integration/test_pg.py
# starts a private server (pgtest.py: initdb + pg_ctl, Unix socket only,
# as an unprivileged user when run as root) and runs the knowledge suite,
# two instances on one database and the fault cases against it. Without
# the server binaries it is reported as skipped, with the reason; under
# CI=true that is a failure.
moa_integration_test(pg)
# Jobs (Files, Batches) shared by two instances on one database: visible and
# cancellable from either, a killed owner's batch finished by the other
# without repeating a line, 503 while the database is down (test_pg_jobs.py).
moa_integration_test(pg_jobs)
