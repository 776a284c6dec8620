/*
 * test_config_shadow.c — what a later setting replaced is kept aside (zs_config's shadow) and
 * validated (zs_service_from_config), and zs_errs_dedup says a repeated error once.
 */
#include <check.h>
#include <string.h>
#include "check_run.h"
#include "core/zs_config.h"
#include "core/zs_service.h"

START_TEST(replaced_settings_kept_aside)
{
    zs_config c, d;
    zs_config_init(&c);
    zs_config_set(&c, "k", "1", "a.cf", 1);
    zs_config_set(&c, "server-service", "0:1", "a.cf", 2);
    zs_config_set(&c, "k", "2", "a.cf", 3);
    zs_config_set(&c, "server-service", "0:2", "a.cf", 4);  /* accumulates: nothing replaced */
    zs_config_set(&c, "k", "3", "b.cf", 5);
    ck_assert_str_eq(zs_config_get(&c, "k", NULL), "3");
    ck_assert_uint_eq(c.n, 3);
    ck_assert_uint_eq(c.nshadow, 2);
    ck_assert_str_eq(c.shadow[0].value, "1");
    ck_assert_str_eq(c.shadow[0].file, "a.cf");
    ck_assert_int_eq(c.shadow[0].line, 1);
    ck_assert_str_eq(c.shadow[1].value, "2");
    ck_assert_int_eq(c.shadow[1].line, 3);
    /* A merge carries them (a .gcf's into each service); the merged-over value joins them. */
    zs_config_init(&d);
    zs_config_set(&d, "k", "0", "main.gcf", 1);
    zs_config_merge(&d, &c);
    ck_assert_str_eq(zs_config_get(&d, "k", NULL), "3");
    ck_assert_uint_eq(d.nshadow, 3);
    ck_assert_str_eq(d.shadow[0].value, "1");
    ck_assert_str_eq(d.shadow[1].value, "2");
    ck_assert_str_eq(d.shadow[2].value, "0");
    ck_assert_str_eq(d.shadow[2].file, "main.gcf");
    /* Unset withdraws every setting of the key, replaced ones too. */
    zs_config_unset(&d, "k");
    ck_assert_ptr_null(zs_config_find(&d, "k"));
    ck_assert_uint_eq(d.nshadow, 0);
    zs_config_free(&c);
    zs_config_free(&d);
}
END_TEST

START_TEST(replaced_values_validated)
{
    zs_config c;
    zs_errs e = { 0 };
    zs_service s;
    zs_config_init(&c);
    zs_config_set(&c, "server-command", "/nonexistent/zz", "a.cf", 1);
    zs_config_set(&c, "server-proc-count", "0", "a.cf", 2);
    zs_config_set(&c, "server-proc-count", "2", "a.cf", 3);
    zs_config_set(&c, "server-command", "/bin/true", "a.cf", 4);
    zs_config_set(&c, "host", "not validated", "a.cf", 5);
    zs_config_set(&c, "host", "by masterd", "a.cf", 6);
    ck_assert_int_eq(zs_service_from_config(&s, "a", NULL, &c, 1, &e), -1);
    ck_assert_uint_eq(e.n, 2);
    /* In the order they were replaced. */
    ck_assert_str_eq(e.msg[0], "a.cf:2: server-proc-count: '0': out of range 1..4096");
    ck_assert_str_eq(e.msg[1], "a.cf:1: server-command: '/nonexistent/zz': No such file or directory");
    zs_errs_free(&e);
    zs_config_free(&c);
    /* Every setting valid: the last wins. */
    zs_config_init(&c);
    zs_config_set(&c, "server-command", "/bin/false", "a.cf", 1);
    zs_config_set(&c, "server-proc-count", "2", "a.cf", 2);
    zs_config_set(&c, "server-proc-count", "3", "a.cf", 3);
    zs_config_set(&c, "server-command", "/bin/true", "a.cf", 4);
    ck_assert_int_eq(zs_service_from_config(&s, "a", NULL, &c, 1, &e), 0);
    ck_assert_int_eq(s.proc_count, 3);
    ck_assert_str_eq(s.exec_path, "/bin/true");
    zs_service_free(&s);
    zs_config_free(&c);
}
END_TEST

START_TEST(dedup_keeps_the_first_of_each)
{
    zs_errs e = { 0 };
    const char *in[] = { "before", "b", "a", "b", "c", "a", "b", "before" };
    for (size_t i = 0; i < sizeof(in) / sizeof(*in); i++)
        zs_errs_add(&e, "%s", in[i]);
    zs_errs_dedup(&e, 1); /* from index 1: "before" at 0 is not compared */
    const char *want[] = { "before", "b", "a", "c", "before" };
    ck_assert_uint_eq(e.n, sizeof(want) / sizeof(*want));
    for (size_t i = 0; i < e.n; i++)
        ck_assert_str_eq(e.msg[i], want[i]);
    zs_errs_dedup(&e, 0);
    ck_assert_uint_eq(e.n, 4);
    ck_assert_str_eq(e.msg[3], "c");
    zs_errs_dedup(&e, 9); /* past the end: nothing */
    ck_assert_uint_eq(e.n, 4);
    zs_errs_free(&e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config_shadow");
    TCase *tc = tcase_create("shadow");
    tcase_add_test(tc, replaced_settings_kept_aside);
    tcase_add_test(tc, replaced_values_validated);
    tcase_add_test(tc, dedup_keeps_the_first_of_each);
    suite_add_tcase(s, tc);
    return check_run(s);
}
