/*
 * test_aio.c — zs_libev_epoll.c: reading an epoll set's registrations from /proc/self/fdinfo,
 * which is how aio mode finds libev's entry for a listener before making it EPOLLEXCLUSIVE.
 */
#include <check.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>
#include "check_run.h"
#include "aio/zs_libev_epoll.h"

START_TEST(test_entry_found_with_data)
{
    int ep = epoll_create1(EPOLL_CLOEXEC), p[2];
    ck_assert_int_ge(ep, 0);
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = ((uint64_t)7 << 32) | (uint32_t)p[0] };
    ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), 0);
    ev.events = EPOLLOUT | EPOLLEXCLUSIVE;
    ev.data.u64 = 0xfedcba9876543210ull;
    ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev), 0);
    uint32_t events = 0;
    uint64_t data = 0;
    ck_assert_int_eq(zs_libev_epoll_entry(ep, p[0], &events, &data), 0);
    ck_assert_uint_eq(events & ~(uint32_t)(EPOLLERR | EPOLLHUP), EPOLLIN);
    ck_assert_uint_eq(data, ((uint64_t)7 << 32) | (uint32_t)p[0]);
    ck_assert_int_eq(zs_libev_epoll_entry(ep, p[1], &events, &data), 0);
    ck_assert(events & EPOLLEXCLUSIVE);
    ck_assert(events & EPOLLOUT);
    ck_assert_uint_eq(data, 0xfedcba9876543210ull);
    close(p[0]);
    close(p[1]);
    close(ep);
}
END_TEST

START_TEST(test_entry_absent)
{
    int ep = epoll_create1(EPOLL_CLOEXEC), p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    uint32_t events;
    uint64_t data;
    ck_assert_int_eq(zs_libev_epoll_entry(ep, p[0], &events, &data), -1); /* empty set */
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };
    ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), 0);
    ck_assert_int_eq(zs_libev_epoll_entry(ep, p[1], &events, &data), -1); /* another fd */
    ck_assert_int_eq(zs_libev_epoll_entry(p[0], p[0], &events, &data), -1); /* not an epoll fd */
    ck_assert_int_eq(zs_libev_epoll_entry(-1, p[0], &events, &data), -1);
    close(p[0]);
    close(p[1]);
    close(ep);
}
END_TEST

START_TEST(test_entry_among_many)
{
    /* a set whose listing spans many reads (400 lines of ~80 bytes, read 4 KiB at a time) */
    int ep = epoll_create1(EPOLL_CLOEXEC), fds[2 * 400];
    for (int i = 0; i < 400; i++) {
        ck_assert_int_eq(pipe2(fds + 2 * i, O_CLOEXEC), 0);
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)i << 32 };
        ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, fds[2 * i], &ev), 0);
    }
    uint32_t events;
    uint64_t data;
    ck_assert_int_eq(zs_libev_epoll_entry(ep, fds[2 * 399], &events, &data), 0);
    ck_assert_uint_eq(data, (uint64_t)399 << 32);
    for (int i = 0; i < 800; i++)
        close(fds[i]);
    close(ep);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("aio");
    TCase *tc = tcase_create("epoll_entry");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_entry_found_with_data);
    tcase_add_test(tc, test_entry_absent);
    tcase_add_test(tc, test_entry_among_many);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
