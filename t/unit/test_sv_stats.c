/*
 * test_sv_stats.c — the supervisor's restart log (super/zs_sv_stats.h): totals, the window of
 * "restarts since", the ring's bound, and merging what a freed generation leaves to its service.
 */
#include <check.h>
#include "check_run.h"
#include "super/zs_sv_stats.h"

START_TEST(test_restarts_window)
{
    zs_restarts r = { 0 };
    ck_assert_uint_eq(zs_restarts_since(&r, 0), 0);
    for (int i = 0; i < 10; i++)
        zs_restarts_add(&r, 100.0 + i);
    ck_assert_uint_eq(r.total, 10);
    ck_assert_uint_eq(zs_restarts_since(&r, 0), 10);
    ck_assert_uint_eq(zs_restarts_since(&r, 105.0), 5);
    ck_assert_uint_eq(zs_restarts_since(&r, 200.0), 0);
}
END_TEST

START_TEST(test_restarts_ring_is_bounded)
{
    zs_restarts r = { 0 };
    for (int i = 0; i < 3 * ZS_RESTART_RING; i++)
        zs_restarts_add(&r, (double)i);
    ck_assert_uint_eq(r.total, 3 * ZS_RESTART_RING);
    /* Only the latest RING times are known: exactly those count. */
    ck_assert_uint_eq(zs_restarts_since(&r, 0), ZS_RESTART_RING);
    ck_assert_uint_eq(zs_restarts_since(&r, (double)(3 * ZS_RESTART_RING - 4)), 4);
}
END_TEST

START_TEST(test_restarts_merge)
{
    zs_restarts a = { 0 }, b = { 0 };
    zs_restarts_add(&a, 1.0);
    for (int i = 0; i < 5; i++)
        zs_restarts_add(&b, 50.0 + i);
    zs_restarts_merge(&a, &b);
    ck_assert_uint_eq(a.total, 6);
    ck_assert_uint_eq(zs_restarts_since(&a, 0), 6);
    ck_assert_uint_eq(zs_restarts_since(&a, 52.0), 3);
    zs_restarts_merge(&a, &(zs_restarts){ 0 }); /* an empty one adds nothing */
    ck_assert_uint_eq(a.total, 6);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sv_stats");
    TCase *tc = tcase_create("restarts");
    tcase_add_test(tc, test_restarts_window);
    tcase_add_test(tc, test_restarts_ring_is_bounded);
    tcase_add_test(tc, test_restarts_merge);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
