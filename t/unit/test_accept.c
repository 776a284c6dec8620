/*
 * test_accept.c — the accept strategy (zs_accept.c) on a real libev loop with a real listener:
 * the self-check upgrading a listener to EPOLLEXCLUSIVE, the plain fall-backs and their one log
 * line, the program's own release/acquire callbacks (chained, or replacing ours: noticed), a
 * listener that hangs up (retired, not an endless rebuild of libev's epoll set), and libev
 * rebuilding its set again and again.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>
#include "check_run.h"
#include "aio/zs_accept.h"
#include "aio/zs_aio.h"
#include "aio/zs_libev_epoll.h"
#include "core/zs_log.h"
#include "server/zs_server.h"
#include "zserver.h"

static struct ev_loop *L;
static int lfd, port, accepted;
static char logpath[64];

static void on_conn(int fd)
{
    accepted++;
    close(fd);
}

static void setup_loop(struct ev_loop *loop)
{
    L = loop;
    ck_assert_ptr_nonnull(L);
    zs_server_adopt_loop(L);
    snprintf(logpath, sizeof(logpath), "/tmp/test_accept.%d.log", (int)getpid());
    char err[200], target[100];
    snprintf(target, sizeof(target), "file,%s", logpath);
    ck_assert_msg(zs_log_open(target, "test_accept", err, sizeof(err)) == 0, "%s", err);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    ck_assert_int_ge(lfd, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(lfd, 64), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    accepted = 0;
}

static void start(struct ev_loop *loop, int siblings)
{
    setup_loop(loop);
    zs_accept_init(L, siblings);
    ck_assert_ptr_nonnull(zaio_server_general_aio_register(zvar_default_aio_base, lfd, zvar_tcp_listen_type_inet, on_conn));
}

static void teardown(void)
{
    unlink(logpath);
}

/* The listener's event mask in whichever epoll set of ours holds it; 0 when none does. */
static uint32_t listener_events(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    uint32_t found = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], target[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
            continue;
        target[n] = 0;
        uint32_t ev;
        uint64_t data;
        if (!strcmp(target, "anon_inode:[eventpoll]") && zs_libev_epoll_entry(atoi(e->d_name), lfd, &ev, &data) == 0)
            found |= ev;
    }
    closedir(d);
    return found;
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
}

/* Runs the loop (10 ms an iteration at most) until cond() or 5 s have passed. */
static int run_until(int (*cond)(void))
{
    ev_timer tick;
    ev_timer_init(&tick, tick_cb, 0.01, 0.01);
    ev_timer_start(L, &tick);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int ok;
    do {
        ev_run(L, EVRUN_ONCE);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (!(ok = cond()) && t.tv_sec - t0.tv_sec < 5);
    ev_timer_stop(L, &tick);
    return ok;
}

static void iterations(int n)
{
    for (int i = 0; i < n; i++)
        ev_run(L, EVRUN_NOWAIT);
}

static int is_exclusive(void)
{
    return zs_accept_state() == 1 && (listener_events() & EPOLLEXCLUSIVE);
}

static int is_plain(void)
{
    return zs_accept_state() == -1 && (listener_events() & ~(uint32_t)(EPOLLERR | EPOLLHUP)) == EPOLLIN;
}

static int one_accepted(void)
{
    return accepted >= 1;
}

/* A client connects; the strategy's listener must hand the connection over. */
static void connect_and_expect_accept(void)
{
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port) };
    ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    accepted = 0;
    ck_assert_msg(run_until(one_accepted), "connection not accepted");
    close(c);
}

static int log_count(const char *what)
{
    FILE *f = fopen(logpath, "r");
    if (!f)
        return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

START_TEST(test_exclusive_after_self_check)
{
    start(ev_default_loop(0), 1);
    ck_assert_int_eq(zs_accept_state(), 0); /* the self-check runs in the first iteration */
    ck_assert_msg(run_until(is_exclusive), "listener not made exclusive (state %d, events 0x%x)", zs_accept_state(),
                  listener_events());
    connect_and_expect_accept();
    ck_assert_int_eq(log_count("plain listener registration"), 0);
}
END_TEST

START_TEST(test_plain_when_asked)
{
    setenv("ZSERVER_ACCEPT", "plain", 1);
    start(ev_default_loop(0), 1);
    iterations(5);
    ck_assert(is_plain());
    connect_and_expect_accept();
    ck_assert_int_eq(log_count("plain listener registration (ZSERVER_ACCEPT=plain)"), 1);
}
END_TEST

START_TEST(test_plain_on_other_backend)
{
    start(ev_loop_new(EVBACKEND_POLL), 1);
    ck_assert_int_eq(zs_accept_state(), -1);
    connect_and_expect_accept();
    ck_assert_int_eq(log_count("plain listener registration (libev does not use epoll"), 1);
    ck_assert_int_eq(log_count("accept:"), 1);
}
END_TEST

static int user_releases, user_acquires, user2_releases;
static void user_release(struct ev_loop *loop)
{
    (void)loop;
    user_releases++;
}
static void user_acquire(struct ev_loop *loop)
{
    (void)loop;
    user_acquires++;
}
static void user2_release(struct ev_loop *loop)
{
    (void)loop;
    user2_releases++;
}

START_TEST(test_program_callbacks_chained)
{
    zaio_set_loop_release_cb(user_release, user_acquire); /* before the loop exists */
    start(ev_default_loop(0), 1);
    ck_assert(run_until(is_exclusive));
    ck_assert_int_gt(user_releases, 0);
    ck_assert_int_eq(user_acquires, user_releases);
    zaio_set_loop_release_cb(user2_release, NULL); /* and while it runs */
    int before = user_releases;
    iterations(3);
    ck_assert_int_eq(user_releases, before);
    ck_assert_int_eq(user2_releases, 3);
    ck_assert(is_exclusive());
    connect_and_expect_accept();
    ck_assert_int_eq(log_count("accept:"), 0);
}
END_TEST

START_TEST(test_program_callbacks_when_plain)
{
    setenv("ZSERVER_ACCEPT", "plain", 1);
    zaio_set_loop_release_cb(user_release, user_acquire);
    start(ev_default_loop(0), 1);
    iterations(3);
    ck_assert_int_eq(user_releases, 3); /* installed directly: nothing of ours in the slot */
    ck_assert_int_eq(user_acquires, 3);
}
END_TEST

static void their_release(struct ev_loop *loop) EV_NOEXCEPT
{
    (void)loop;
    user_releases++;
}
static void their_acquire(struct ev_loop *loop) EV_NOEXCEPT
{
    (void)loop;
    user_acquires++;
}

START_TEST(test_replaced_callbacks_noticed)
{
    start(ev_default_loop(0), 1);
    ck_assert(run_until(is_exclusive));
    ev_set_loop_release_cb(L, their_release, their_acquire); /* as a program's before_service could */
    iterations(1);
    ck_assert_msg(is_plain(), "state %d, events 0x%x", zs_accept_state(), listener_events());
    iterations(5);
    ck_assert_int_eq(user_releases, 6); /* theirs works */
    connect_and_expect_accept();
    ck_assert_int_eq(log_count("release callback was replaced"), 1);
    ck_assert_int_eq(log_count("accept:"), 1);
}
END_TEST

static int retired(void)
{
    zs_acc *l = zs_accept_find(lfd);
    return l && l->retired && !ev_is_active(&l->w);
}

/* Exclusive: the hang-up makes libev's EPOLL_CTL_MOD fail and rebuild its set once; the
 * listener is retired then, so there is no second rebuild. */
START_TEST(test_hung_up_listener_retired_exclusive)
{
    start(ev_default_loop(0), 1);
    ck_assert(run_until(is_exclusive));
    ck_assert_int_eq(shutdown(lfd, SHUT_RDWR), 0);
    ck_assert_msg(run_until(retired), "hung-up listener still watched");
    iterations(20);
    unsigned long rebuilds, wakeups, acc, empty;
    zs_accept_counts(NULL, NULL, &rebuilds);
    zs_aio_counts(&wakeups, &acc, &empty);
    ck_assert_uint_eq(rebuilds, 1);
    ck_assert_uint_eq(wakeups, 0);
    ck_assert_int_eq(log_count("no longer watched"), 1);
    ck_assert_int_eq(zs_accept_state(), 1); /* one broken listener says nothing about libev */
}
END_TEST

/* Plain: libev hands the hang-up to the watcher; accept4's EINVAL retires the listener. */
START_TEST(test_hung_up_listener_retired_plain)
{
    setenv("ZSERVER_ACCEPT", "plain", 1);
    start(ev_default_loop(0), 1);
    iterations(3);
    ck_assert_int_eq(shutdown(lfd, SHUT_RDWR), 0);
    ck_assert_msg(run_until(retired), "hung-up listener still watched");
    iterations(20);
    unsigned long rebuilds, wakeups, acc, empty;
    zs_accept_counts(NULL, NULL, &rebuilds);
    zs_aio_counts(&wakeups, &acc, &empty);
    ck_assert_uint_eq(rebuilds, 0);
    ck_assert_uint_eq(wakeups, 1);
    ck_assert_int_eq(log_count("no longer watched"), 1);
}
END_TEST

/* Stopped and started again within one loop iteration (libev then makes no epoll_ctl): the
 * entry the stop took out must be back, or the listener is deaf. */
START_TEST(test_stop_start_in_one_iteration)
{
    start(ev_default_loop(0), 1);
    ck_assert(run_until(is_exclusive));
    zs_acc *l = zs_accept_find(lfd);
    zs_accept_stop(L, l);
    ck_assert_uint_eq(listener_events(), 0);
    zs_accept_start(L, l);
    connect_and_expect_accept();
    ck_assert(run_until(is_exclusive)); /* and upgraded again */
}
END_TEST

/* A connection's callback that closes the listener (a soft-stop from inside it): the accept
 * loop must not touch the freed listener (the sanitizer build catches it if it does). */
static void close_listener_conn(int fd)
{
    accepted++;
    close(fd);
    zs_aio_close_listener(lfd);
}

static void callback_closes_listener(int plain)
{
    if (plain)
        setenv("ZSERVER_ACCEPT", "plain", 1);
    setup_loop(ev_default_loop(0));
    zs_accept_init(L, 1);
    ck_assert_ptr_nonnull(zaio_server_general_aio_register(zvar_default_aio_base, lfd, zvar_tcp_listen_type_inet,
                                                           close_listener_conn));
    ck_assert(run_until(plain ? is_plain : is_exclusive));
    int c[2];
    for (int i = 0; i < 2; i++) { /* two waiting: a plain listener's batch would go on */
        c[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port) };
        ck_assert_int_eq(connect(c[i], (struct sockaddr *)&a, sizeof(a)), 0);
    }
    ck_assert(run_until(one_accepted));
    iterations(3);
    ck_assert_int_eq(accepted, 1);
    ck_assert_ptr_null(zs_accept_find(lfd));
    close(c[0]);
    close(c[1]);
}

START_TEST(test_callback_closes_listener_exclusive)
{
    callback_closes_listener(0);
}
END_TEST

START_TEST(test_callback_closes_listener_plain)
{
    callback_closes_listener(1);
}
END_TEST

/* libev rebuilding its epoll set again and again (here: told it forked, without a fork). */
START_TEST(test_rebuild_storm_goes_plain)
{
    start(ev_default_loop(0), 1);
    ck_assert(run_until(is_exclusive));
    for (int i = 0; i < 3; i++) {
        ev_loop_fork(L);
        iterations(2);
    }
    ck_assert_msg(is_plain(), "state %d, events 0x%x", zs_accept_state(), listener_events());
    ck_assert_int_eq(log_count("rebuilt its epoll set 3 times"), 1);
    connect_and_expect_accept();
}
END_TEST

START_TEST(test_one_rebuild_is_repaired)
{
    start(ev_default_loop(0), 1);
    ck_assert(run_until(is_exclusive));
    ev_loop_fork(L);
    iterations(1);
    ck_assert(run_until(is_exclusive));
    connect_and_expect_accept();
    ck_assert_int_eq(log_count("accept:"), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("accept");
    TCase *tc = tcase_create("strategy");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_exclusive_after_self_check);
    tcase_add_test(tc, test_plain_when_asked);
    tcase_add_test(tc, test_plain_on_other_backend);
    tcase_add_test(tc, test_program_callbacks_chained);
    tcase_add_test(tc, test_program_callbacks_when_plain);
    tcase_add_test(tc, test_replaced_callbacks_noticed);
    tcase_add_test(tc, test_hung_up_listener_retired_exclusive);
    tcase_add_test(tc, test_hung_up_listener_retired_plain);
    tcase_add_test(tc, test_stop_start_in_one_iteration);
    tcase_add_test(tc, test_callback_closes_listener_exclusive);
    tcase_add_test(tc, test_callback_closes_listener_plain);
    tcase_add_test(tc, test_rebuild_storm_goes_plain);
    tcase_add_test(tc, test_one_rebuild_is_repaired);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
