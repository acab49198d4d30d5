/* check-main.h — the main() of every Check suite: run it (forking per test
 * unless CK_FORK=no), exit non-zero if anything failed. */
#pragma once

#include <check.h>
#include <stdlib.h>

static inline int moa_check_run(Suite *s) {
        SRunner *sr = srunner_create(s);
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
