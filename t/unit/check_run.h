/*
 * check_run.h — the main() every Check test binary shares: run the suite with Check's normal
 * output (its "N%: Checks: X, Failures: Y, Errors: Z" line) and exit non-zero on any failure.
 */
#ifndef T_UNIT_CHECK_RUN_H
#define T_UNIT_CHECK_RUN_H
#include <check.h>
#include <stdlib.h>

static int check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
#endif
