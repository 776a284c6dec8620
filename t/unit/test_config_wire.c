/*
 * test_config_wire.c — the sealed memfd that carries a validated config view to a child
 * (zs_config_to_memfd / zs_config_from_memfd): round trip, and refusal of anything malformed.
 */
#include <check.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "check_run.h"
#include "core/zs_config.h"

START_TEST(test_roundtrip)
{
    zs_config c, back;
    char why[300];
    zs_config_init(&c);
    zs_config_init(&back);
    zs_config_set(&c, "server-service", "127.0.0.1:25", "/etc/m/a.cf", 3);
    zs_config_set(&c, "server-service", "[::1]:25", "/etc/m/a.cf", 4);
    zs_config_set(&c, "greeting", "hello ; world=x", "/etc/m/g.gcf", 7);
    zs_config_set(&c, "empty", "", NULL, 0);
    int fd = zs_config_to_memfd(&c, why, sizeof(why));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    /* Sealed: nobody can change it after the master validated it. */
    ck_assert_int_lt(write(fd, "x", 1), 0);
    ck_assert_int_lt(ftruncate(fd, 0), 0);
    ck_assert_int_eq(zs_config_from_memfd(&back, fd, why, sizeof(why)), 0);
    ck_assert_uint_eq(back.n, 4);
    const zs_kv *kv = zs_config_find(&back, "server-service");
    ck_assert_str_eq(kv->value, "127.0.0.1:25");
    ck_assert_str_eq(kv->file, "/etc/m/a.cf");
    ck_assert_int_eq(kv->line, 3);
    kv = zs_config_next(&back, "server-service", kv);
    ck_assert_str_eq(kv->value, "[::1]:25");
    ck_assert_int_eq(kv->line, 4);
    ck_assert_str_eq(zs_config_get(&back, "greeting", NULL), "hello ; world=x");
    ck_assert_str_eq(zs_config_find(&back, "greeting")->file, "/etc/m/g.gcf");
    ck_assert_str_eq(zs_config_get(&back, "empty", NULL), "");
    close(fd);
    zs_config_free(&c);
    zs_config_free(&back);
}
END_TEST

/* A memfd holding len bytes of buf, sealed (or not). */
static int memfd_with(const void *buf, size_t len, int seal)
{
    int fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    if (seal)
        ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), 0);
    return fd;
}

/* One setting: key, value, file, with the lengths given (so they can lie). */
static size_t one(char *out, uint32_t count, uint32_t kl, uint32_t vl, uint32_t fl, const char *bytes, size_t n)
{
    uint32_t h[7] = { 0, 1, count, kl, vl, fl, 5 };
    memcpy(out, "ZSCF", 4);
    memcpy(out + 4, &h[1], 6 * sizeof(uint32_t));
    memcpy(out + 28, bytes, n);
    return 28 + n;
}

START_TEST(test_refuses_junk)
{
    char buf[256], why[300];
    zs_config c;
    zs_config_init(&c);
    size_t n = one(buf, 1, 1, 1, 1, "kvf", 3);
    int fd = memfd_with(buf, n, 1);
    ck_assert_int_eq(zs_config_from_memfd(&c, fd, why, sizeof(why)), 0);
    ck_assert_str_eq(zs_config_get(&c, "k", NULL), "v");
    close(fd);
    zs_config_free(&c);
    struct { const char *what; size_t len; int seal; } bad[] = {
        { "unsealed", n, 0 },
        { "truncated", n - 1, 1 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        fd = memfd_with(buf, bad[i].len, bad[i].seal);
        ck_assert_msg(zs_config_from_memfd(&c, fd, why, sizeof(why)) == -1, "%s accepted", bad[i].what);
        close(fd);
    }
    /* A NUL byte in a string, a length past the end, an empty key, a wrong count, junk after. */
    const struct { uint32_t count, kl, vl, fl; const char *bytes; size_t n; } lies[] = {
        { 1, 1, 1, 1, "k\0f", 3 },
        { 1, 1, 200, 1, "kvf", 3 },
        { 1, 0, 1, 1, "vf", 2 },
        { 2, 1, 1, 1, "kvf", 3 },
        { 1, 1, 1, 1, "kvfjunk", 7 },
        { 0xffffffffu, 1, 1, 1, "kvf", 3 },
    };
    for (size_t i = 0; i < sizeof(lies) / sizeof(*lies); i++) {
        n = one(buf, lies[i].count, lies[i].kl, lies[i].vl, lies[i].fl, lies[i].bytes, lies[i].n);
        fd = memfd_with(buf, n, 1);
        ck_assert_msg(zs_config_from_memfd(&c, fd, why, sizeof(why)) == -1, "lie %zu accepted", i);
        ck_assert_uint_eq(c.n, 0); /* nothing half-applied */
        close(fd);
    }
    memcpy(buf, "XXXX", 4);
    fd = memfd_with(buf, 28 + 3, 1);
    ck_assert_int_eq(zs_config_from_memfd(&c, fd, why, sizeof(why)), -1);
    close(fd);
    zs_config_free(&c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config_wire");
    TCase *tc = tcase_create("wire");
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_refuses_junk);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
