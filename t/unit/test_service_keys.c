/*
 * test_service_keys.c — key names under the reserved prefixes (zs_service_keys.c,
 * doc/CONTRACT.md §2): server- and master- are matched in any case, so a case variant of a
 * known key is an error that gives its spelling, and an unknown key under server- is an error
 * whatever its case; a program's own keys are never touched.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/zs_service.h"
#include "check_run.h"

static char tmp[64];
static char cf[128];   /* tmp/svc.cf */

static void setup(void)
{
    strcpy(tmp, "/tmp/zs-test-keys-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    snprintf(cf, sizeof(cf), "%s/svc.cf", tmp);
}

static void teardown(void)
{
    unlink(cf);
    rmdir(tmp);
}

/* Writes text as tmp/svc.cf, reads and validates it; returns the errors. */
static zs_errs validate(const char *text, int *rc)
{
    zs_config c;
    zs_errs e = { 0 };
    zs_service s;
    FILE *f = fopen(cf, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, cf, &e), 0);
    *rc = zs_service_from_config(&s, "svc", cf, &c, 1, &e);
    if (*rc == 0)
        zs_service_free(&s);
    zs_config_free(&c);
    return e;
}

/* text must be refused with exactly these errors ("LINE: rest", after "svc.cf:"), in order. */
static void refused(const char *text, const char **want, size_t nwant)
{
    int rc;
    zs_errs e = validate(text, &rc);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(e.n == nwant, "%zu errors for %s, first '%s'", e.n, text, e.n ? e.msg[0] : "");
    for (size_t i = 0; i < nwant; i++) {
        char *w = zs_xasprintf("%s:%s", cf, want[i]);
        ck_assert_str_eq(e.msg[i], w);
        free(w);
    }
    zs_errs_free(&e);
}

static void accepted(const char *text)
{
    int rc;
    zs_errs e = validate(text, &rc);
    ck_assert_msg(rc == 0 && e.n == 0, "refused: %s", e.n ? e.msg[0] : "(no message)");
    zs_errs_free(&e);
}

START_TEST(case_variant_of_a_known_key)
{
    const char *w1[] = { "2: Server-Proc-Count: keys are case-sensitive: this one is spelled server-proc-count" };
    refused("server-command = /bin/sleep 100\nServer-Proc-Count = 5000\n", w1, 1);
    const char *w2[] = { "1: SERVER-SERVICE: keys are case-sensitive: this one is spelled server-service",
                         "2: server-Restart: keys are case-sensitive: this one is spelled server-restart" };
    refused("SERVER-SERVICE = 127.0.0.1:25\nserver-Restart = never\nserver-command = /bin/true\n", w2, 2);
}
END_TEST

START_TEST(case_variant_of_lib_zc_master_keys)
{
    const char *w[] = {
        "2: MASTER-CHROOT: not supported: a chroot per service is not done; run masterd itself in a chroot "
        "or a container",
        "3: Master-Chdir: lib-zc's working directory of the service's processes is spelled server-chdir here "
        "(relative paths taken from the config directory)",
    };
    refused("server-command = /bin/true\nMASTER-CHROOT = /tmp\nMaster-Chdir = /\n", w, 2);
}
END_TEST

START_TEST(unknown_key_under_server_in_any_case)
{
    const char *w[] = {
        "1: Server-Colour: unknown key (keys starting with server- are reserved; a typo?)",
        "3: SERVER-: unknown key (keys starting with server- are reserved; a typo?)",
        "4: server-proc-cont: unknown key (keys starting with server- are reserved; a typo?)",
    };
    refused("Server-Colour = red\nserver-command = /bin/true\nSERVER- = 1\nserver-proc-cont = 2\n", w, 3);
}
END_TEST

START_TEST(program_keys_untouched)
{
    /* Not under a reserved prefix: the program's, in any case.  master-* keys other than
     * lib-zc's two are the program's too, as in lower case. */
    accepted("server-command = /bin/true\nServer = 1\nServerX-Proc-Count = 2\nmyserver-proc-count = 3\n"
             "Host = a\nmaster-foo = 1\nMaster-Foo = 2\n");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("service_keys");
    TCase *tc = tcase_create("keys");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, case_variant_of_a_known_key);
    tcase_add_test(tc, case_variant_of_lib_zc_master_keys);
    tcase_add_test(tc, unknown_key_under_server_in_any_case);
    tcase_add_test(tc, program_keys_untouched);
    suite_add_tcase(s, tc);
    return check_run(s);
}
