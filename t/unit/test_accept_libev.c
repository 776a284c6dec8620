/*
 * test_accept_libev.c — each libev behaviour the accept strategy relies on (doc/accept.md,
 * "libev assumptions"), on a plain libev loop with nothing of the strategy running, so that a
 * libev upgrade that breaks one fails here by name instead of silently degrading to plain.
 * Also the self-check (zs_libev_epoll.c) passing on this machine's libev.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ev.h>
#include "check_run.h"
#include "aio/zs_libev_epoll.h"

/* One loop of our own per test (Check runs each test in a child process). */
static struct ev_loop *L;
static int fds[2];
static ev_io io;
static int io_calls, io_revents, releases, checks, forks;
static int release_found;      /* in the release callback: libev's entry for fds[0] was found */
static uint64_t release_data;
static int release_epfd;
static int make_exclusive;     /* the release callback rewrites the entry (once) */

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    char c;
    io_calls++;
    io_revents |= revents;
    if (read(w->fd, &c, 1) < 0 && errno != EAGAIN && errno != ENOTCONN) /* ENOTCONN: a listener */
        ck_abort_msg("read: %s", strerror(errno));
}

static void release_cb(struct ev_loop *loop) EV_NOEXCEPT
{
    (void)loop;
    releases++;
    uint64_t data;
    int epfd = zs_libev_epoll_fd(io.fd, &data);
    if (epfd >= 0) {
        release_found = 1;
        release_data = data;
        release_epfd = epfd;
        if (make_exclusive) {
            make_exclusive = 0;
            ck_assert_int_eq(zs_libev_excl_replace(epfd, io.fd, data), 0);
        }
    }
}

static void acquire_cb(struct ev_loop *loop) EV_NOEXCEPT
{
    (void)loop;
}

static void check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    checks++;
}

static void fork_cb(struct ev_loop *loop, ev_fork *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    forks++;
}

static void setup(void)
{
    L = ev_loop_new(EVFLAG_AUTO);
    ck_assert_ptr_nonnull(L);
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    ev_io_init(&io, io_cb, fds[0], EV_READ);
    io_calls = io_revents = releases = checks = forks = release_found = make_exclusive = 0;
}

static void teardown(void)
{
    ev_loop_destroy(L);
    close(fds[0]);
    close(fds[1]);
}

#define entry_events(epfd, fd, data) entry_events_at(__LINE__, epfd, fd, data)
static uint32_t entry_events_at(int line, int epfd, int fd, uint64_t *data)
{
    uint32_t events = 0;
    uint64_t d;
    ck_assert_msg(zs_libev_epoll_entry(epfd, fd, &events, data ? data : &d) == 0, "line %d: fd %d not in epoll set %d",
                  line, fd, epfd);
    return events;
}

/* Assumption 1: libev on Linux picks the epoll backend, and the library at run time is the
 * major version the header (and the build guard) speak of. */
START_TEST(test_backend_is_epoll)
{
    ck_assert_int_eq(ev_backend(L), EVBACKEND_EPOLL);
    ck_assert_int_eq(ev_version_major(), EV_VERSION_MAJOR);
    ck_assert_int_eq(ZS_ACCEPT_EXCLUSIVE, 1);
}
END_TEST

/* Assumption 2: when the release callback runs, libev has made this iteration's epoll_ctl calls:
 * a watcher started before the iteration is in exactly one epoll set, events EPOLLIN, with the
 * fd in the data word's low 32 bits and a generation counter in the high 32. */
START_TEST(test_entry_in_release_cb)
{
    ev_set_loop_release_cb(L, release_cb, acquire_cb);
    ev_io_start(L, &io);
    ev_run(L, EVRUN_NOWAIT);
    ck_assert_int_eq(releases, 1);
    ck_assert_msg(release_found, "libev's entry for a started watcher not found from the release callback");
    ck_assert_uint_eq((uint32_t)release_data, (uint32_t)fds[0]);
    ck_assert_uint_ne(release_data >> 32, 0);
    ck_assert_uint_eq(entry_events(release_epfd, fds[0], NULL) & ~(uint32_t)(EPOLLERR | EPOLLHUP), EPOLLIN);
}
END_TEST

/* Assumption 3: the release callback runs once before every epoll_wait, and an ev_check
 * watcher once after it: the strategy notices a replaced callback by counting both. */
START_TEST(test_release_once_per_iteration)
{
    ev_check chk;
    ev_check_init(&chk, check_cb);
    ev_check_start(L, &chk);
    ev_set_loop_release_cb(L, release_cb, acquire_cb);
    ev_io_start(L, &io);
    for (int i = 0; i < 5; i++)
        ev_run(L, EVRUN_NOWAIT);
    ck_assert_int_eq(write(fds[1], "x", 1), 1);
    ev_run(L, EVRUN_ONCE);
    ck_assert_int_eq(io_calls, 1);
    ck_assert_int_eq(releases, 6);
    ck_assert_int_eq(checks, 6);
}
END_TEST

/* Assumption 4: an entry rewritten with EPOLLEXCLUSIVE and libev's data word delivers its
 * events to the watcher, and libev leaves the entry as it is while it does. */
START_TEST(test_exclusive_entry_delivers)
{
    ev_set_loop_release_cb(L, release_cb, acquire_cb);
    ev_io_start(L, &io);
    make_exclusive = 1;
    ev_run(L, EVRUN_NOWAIT);
    ck_assert(release_found);
    uint64_t data;
    ck_assert(entry_events(release_epfd, fds[0], &data) & EPOLLEXCLUSIVE);
    for (int i = 1; i <= 3; i++) {
        ck_assert_int_eq(write(fds[1], "x", 1), 1);
        ev_run(L, EVRUN_ONCE);
        ck_assert_int_eq(io_calls, i);
    }
    uint64_t after;
    ck_assert(entry_events(release_epfd, fds[0], &after) & EPOLLEXCLUSIVE);
    ck_assert_uint_eq(after, data);
}
END_TEST

/* Assumption 5: libev never deletes an entry itself: after ev_io_stop and ev_io_start it
 * believes the entry is still there and leaves it (EEXIST), so an exclusive entry would stay
 * exclusive behind a stopped watcher; once we delete it, and libev has seen the watcher stopped
 * (a loop iteration), the restart adds a plain entry with a new data word (so the strategy reads
 * the word again each time).  A stop and start within one iteration make no epoll_ctl at all. */
START_TEST(test_restart_keeps_or_readds)
{
    ev_set_loop_release_cb(L, release_cb, acquire_cb);
    ev_io_start(L, &io);
    make_exclusive = 1;
    ev_run(L, EVRUN_NOWAIT);
    int epfd = release_epfd;
    uint64_t first;
    ck_assert(entry_events(epfd, fds[0], &first) & EPOLLEXCLUSIVE);
    ev_io_stop(L, &io);
    ev_run(L, EVRUN_NOWAIT);
    ck_assert(entry_events(epfd, fds[0], NULL) & EPOLLEXCLUSIVE); /* stopped, still in the set */
    ev_io_start(L, &io);
    ev_run(L, EVRUN_NOWAIT);
    ck_assert(entry_events(epfd, fds[0], NULL) & EPOLLEXCLUSIVE); /* restarted: left alone */
    ev_io_stop(L, &io);
    ev_io_start(L, &io);
    ev_run(L, EVRUN_NOWAIT);
    ck_assert(entry_events(epfd, fds[0], NULL) & EPOLLEXCLUSIVE); /* stop+start in one iteration */
    ev_io_stop(L, &io);
    ck_assert_int_eq(epoll_ctl(epfd, EPOLL_CTL_DEL, fds[0], NULL), 0);
    ev_run(L, EVRUN_NOWAIT);
    ev_io_start(L, &io);
    ev_run(L, EVRUN_NOWAIT);
    uint64_t second;
    ck_assert_uint_eq(entry_events(epfd, fds[0], &second) & ~(uint32_t)(EPOLLERR | EPOLLHUP), EPOLLIN);
    ck_assert_uint_eq((uint32_t)second, (uint32_t)fds[0]);
    ck_assert_uint_ne(second, first);
}
END_TEST

/* Assumption 6 (why a hung-up listener is retired): an error or hang-up on an exclusive entry
 * makes libev try EPOLL_CTL_MOD, which the kernel refuses for an exclusive entry, and libev
 * then rebuilds its whole epoll set (its fork watchers run, no fork made).  On a plain entry
 * the MOD works and the watcher is called. */
static int hup_listener(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    ck_assert_int_ge(s, 0);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(s, 16), 0);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return s;
}

static void hup_case(int exclusive)
{
    int port, s = hup_listener(&port);
    ev_fork fw;
    ev_fork_init(&fw, fork_cb);
    ev_fork_start(L, &fw);
    ev_io_stop(L, &io);
    ev_io_init(&io, io_cb, s, EV_READ);
    ev_set_loop_release_cb(L, release_cb, acquire_cb);
    ev_io_start(L, &io);
    make_exclusive = exclusive;
    ev_run(L, EVRUN_NOWAIT);
    ck_assert(release_found);
    ck_assert_int_eq(!!(entry_events(release_epfd, s, NULL) & EPOLLEXCLUSIVE), exclusive);
    ck_assert_int_eq(shutdown(s, SHUT_RDWR), 0);
    ev_run(L, EVRUN_NOWAIT); /* sees the hang-up */
    ck_assert_int_eq(io_calls, exclusive ? 0 : 1);
    ev_run(L, EVRUN_NOWAIT); /* a rebuild, if one is due, starts with the fork watchers */
    ck_assert_int_eq(forks, exclusive ? 1 : 0);
    if (exclusive) /* the new set has libev's plain entry: the hang-up reaches the watcher now */
        ck_assert_int_eq(io_calls, 1);
    ev_io_stop(L, &io);
    close(s);
}

START_TEST(test_hup_on_exclusive_entry_rebuilds)
{
    hup_case(1);
}
END_TEST

START_TEST(test_hup_on_plain_entry_is_delivered)
{
    hup_case(0);
}
END_TEST

/* Assumption 7: a check watcher runs after epoll_wait with the watchers of ready fds pending
 * (the self-check's verdict looks at ev_is_pending of its probe). */
static ev_io *pending_probe;
static int pending_seen;
static void pending_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    if (ev_is_pending(pending_probe))
        pending_seen++;
}

START_TEST(test_check_sees_pending_io)
{
    ev_check chk;
    ev_check_init(&chk, pending_check_cb);
    ev_check_start(L, &chk);
    pending_probe = &io;
    pending_seen = 0;
    ev_io_start(L, &io);
    ev_run(L, EVRUN_NOWAIT);
    ck_assert_int_eq(pending_seen, 0);
    ck_assert_int_eq(write(fds[1], "x", 1), 1);
    ev_run(L, EVRUN_ONCE);
    ck_assert_int_eq(pending_seen, 1);
    ck_assert_int_eq(io_calls, 1);
}
END_TEST

/* The self-check as the strategy runs it passes here. */
static int verdict;
static char why[200];
static void sc_release(struct ev_loop *loop) EV_NOEXCEPT
{
    (void)loop;
    int r = zs_libev_check_release(why, sizeof(why));
    ck_assert_msg(r >= 0, "self-check: %s", why);
}
static void sc_check(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)w, (void)revents;
    int r = zs_libev_check_verdict(loop, why, sizeof(why));
    if (r)
        verdict = r;
}

START_TEST(test_self_check_passes)
{
    ev_check chk;
    ev_check_init(&chk, sc_check);
    ev_check_start(L, &chk);
    ev_set_loop_release_cb(L, sc_release, acquire_cb);
    verdict = 0;
    ck_assert_msg(zs_libev_check_start(L, why, sizeof(why)) == 0, "self-check: %s", why);
    ev_run(L, EVRUN_NOWAIT);
    ck_assert_msg(verdict == 1, "self-check verdict %d: %s", verdict, why);
    zs_libev_check_end(L);
}
END_TEST

START_TEST(test_self_check_refuses_other_backend)
{
    struct ev_loop *p = ev_loop_new(EVBACKEND_POLL);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(zs_libev_check_start(p, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "does not use epoll"), "%s", why);
    ev_loop_destroy(p);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("accept_libev");
    TCase *tc = tcase_create("assumptions");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_backend_is_epoll);
    tcase_add_test(tc, test_entry_in_release_cb);
    tcase_add_test(tc, test_release_once_per_iteration);
    tcase_add_test(tc, test_exclusive_entry_delivers);
    tcase_add_test(tc, test_restart_keeps_or_readds);
    tcase_add_test(tc, test_hup_on_exclusive_entry_rebuilds);
    tcase_add_test(tc, test_hup_on_plain_entry_is_delivered);
    tcase_add_test(tc, test_check_sees_pending_io);
    tcase_add_test(tc, test_self_check_passes);
    tcase_add_test(tc, test_self_check_refuses_other_backend);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
