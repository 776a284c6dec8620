/*
 * test_coroutine_hook.c — the syscall hooks (libzserver/co/zs_co_hook.c): outside coroutines they
 * are libc's calls (blocking, same errno); inside, blocking socket calls wait in the loop, honour
 * SO_RCVTIMEO/SO_SNDTIMEO, are woken by close(), and leave fd flags as they were.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "co/zs_co.h"
#include "zserver.h"
#include "check_run.h"

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);

static double now(void)
{
    return zs_co_now();
}

static void run(void)
{
    zs_co_run();
    ck_assert_uint_eq(zs_co_live(), 0);
}

static void set_timeo(int fd, int opt, long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)), 0);
}

static int tcp_listener(int flags, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    return sa;
}

/* A forked child that writes msg to fd after ms milliseconds, then exits. */
static pid_t write_later(int fd, const char *msg, int ms)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct timespec ts = { 0, ms * 1000000L };
        nanosleep(&ts, NULL);
        _exit(write(fd, msg, strlen(msg)) == (ssize_t)strlen(msg) ? 0 : 1);
    }
    return pid;
}

static void reap(pid_t pid)
{
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_int_eq(st, 0);
}

/* ---- outside coroutines: libc's behaviour ---- */

START_TEST(outside_blocking_reads_block)
{
    int p[2], sv[2];
    char buf[16] = { 0 };
    ck_assert_int_eq(pipe(p), 0);
    double t0 = now();
    pid_t pid = write_later(p[1], "hello", 100);
    ck_assert_int_eq(read(p[0], buf, sizeof(buf)), 5);
    ck_assert_str_eq(buf, "hello");
    ck_assert_msg(now() - t0 >= 0.09, "read returned after %.3f s: it did not block", now() - t0);
    reap(pid);

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    t0 = now();
    pid = write_later(sv[1], "socket", 100);
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(recv(sv[0], buf, sizeof(buf), 0), 6);
    ck_assert_str_eq(buf, "socket");
    ck_assert_msg(now() - t0 >= 0.09, "recv did not block");
    reap(pid);

    t0 = now();
    ck_assert_int_eq(usleep(20000), 0);
    ck_assert_msg(now() - t0 >= 0.019, "usleep did not sleep");
    struct pollfd pf = { sv[0], POLLIN, 0 };
    t0 = now();
    ck_assert_int_eq(poll(&pf, 1, 50), 0);
    ck_assert_msg(now() - t0 >= 0.049, "poll did not wait");
}
END_TEST

START_TEST(outside_errno_values_are_libcs)
{
    int p[2], sv[2];
    char buf[8];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct sockaddr_in sa = loopback(1);

    errno = 0; ck_assert_int_eq(read(-1, buf, 1), -1); ck_assert_int_eq(errno, EBADF);
    errno = 0; ck_assert_int_eq(write(-1, buf, 1), -1); ck_assert_int_eq(errno, EBADF);
    errno = 0; ck_assert_int_eq(close(-1), -1); ck_assert_int_eq(errno, EBADF);
    errno = 0; ck_assert_int_eq(recv(p[0], buf, 1, 0), -1); ck_assert_int_eq(errno, ENOTSOCK);
    errno = 0; ck_assert_int_eq(send(p[1], buf, 1, 0), -1); ck_assert_int_eq(errno, ENOTSOCK);
    errno = 0; ck_assert_int_eq(accept(p[0], NULL, NULL), -1); ck_assert_int_eq(errno, ENOTSOCK);
    errno = 0; ck_assert_int_eq(accept4(p[0], NULL, NULL, 0), -1); ck_assert_int_eq(errno, ENOTSOCK);
    errno = 0; ck_assert_int_eq(connect(p[0], (struct sockaddr *)&sa, sizeof(sa)), -1); ck_assert_int_eq(errno, ENOTSOCK);
    struct iovec iov = { buf, 1 };
    errno = 0; ck_assert_int_eq(readv(-1, &iov, 1), -1); ck_assert_int_eq(errno, EBADF);
    volatile int negative = -1; /* a constant -1 is a compile-time error already */
    errno = 0; ck_assert_int_eq(writev(p[1], &iov, negative), -1); ck_assert_int_eq(errno, EINVAL);
    errno = 0; ck_assert_int_eq(recv(sv[0], buf, 1, 0), -1); ck_assert_int_eq(errno, EAGAIN);
    struct timespec bad = { 0, 2000000000L };
    errno = 0; ck_assert_int_eq(nanosleep(&bad, NULL), -1); ck_assert_int_eq(errno, EINVAL);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    errno = 0; ck_assert_int_eq(read(p[0], buf, 1), -1); ck_assert_int_eq(errno, EAGAIN);
    signal(SIGPIPE, SIG_IGN);
    close(p[0]);
    errno = 0; ck_assert_int_eq(write(p[1], "x", 1), -1); ck_assert_int_eq(errno, EPIPE);

    /* Success leaves errno alone. */
    errno = ERANGE;
    ck_assert_int_eq(write(sv[1], "ab", 2), 2);
    ck_assert_int_eq(read(sv[0], buf, sizeof(buf)), 2);
    ck_assert_int_eq(poll(NULL, 0, 0), 0);
    ck_assert_int_eq(close(sv[1]), 0);
    ck_assert_int_eq(errno, ERANGE);
}
END_TEST

/* ---- inside coroutines ---- */

static int sv[2], ticks, events;
static double t_read_done;
static double took[4];
static ssize_t results[4];
static int errnos[4];

static void *ticker(void *ctx)
{
    int n = (int)(long)ctx;
    for (int i = 0; i < n; i++) {
        zcoroutine_sleep_ms(10);
        ticks++;
    }
    return NULL;
}

static void *reader(void *ctx)
{
    (void)ctx;
    char buf[16] = { 0 };
    ck_assert_int_eq(read(sv[0], buf, sizeof(buf)), 4);
    ck_assert_str_eq(buf, "ping");
    t_read_done = now();
    events++;
    return NULL;
}

static void *writer(void *ctx)
{
    (void)ctx;
    zcoroutine_sleep_ms(50);
    ck_assert_int_eq(write(sv[1], "ping", 4), 4);
    events++;
    return NULL;
}

START_TEST(inside_read_waits_and_flags_stay)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    double t0 = now();
    zcoroutine_go(reader, NULL, 0);
    zcoroutine_go(writer, NULL, 0);
    zcoroutine_go(ticker, (void *)3L, 0);
    run();
    ck_assert_int_eq(events, 2);
    ck_assert_int_eq(ticks, 3);
    ck_assert_msg(t_read_done - t0 >= 0.049, "read returned before the write");
    /* The fds are as blocking as before: the same read outside a coroutine blocks. */
    ck_assert_int_eq(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_eq(fcntl(sv[1], F_GETFL) & O_NONBLOCK, 0);
    pid_t pid = write_later(sv[1], "late", 80);
    char buf[8];
    t0 = now();
    ck_assert_int_eq(read(sv[0], buf, sizeof(buf)), 4);
    ck_assert_msg(now() - t0 >= 0.07, "read outside did not block");
    reap(pid);
}
END_TEST

static int lfd, lport;
static void *nonblocking_user(void *ctx)
{
    (void)ctx;
    int nb[2];
    char buf[4];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, nb), 0);
    double t0 = now();
    errno = 0; ck_assert_int_eq(read(nb[0], buf, 1), -1); ck_assert_int_eq(errno, EAGAIN);
    errno = 0; ck_assert_int_eq(recv(nb[0], buf, 1, 0), -1); ck_assert_int_eq(errno, EAGAIN);
    errno = 0; ck_assert_int_eq(accept(lfd, NULL, NULL), -1); ck_assert_int_eq(errno, EAGAIN);
    /* A blocking socket asked for MSG_DONTWAIT: EAGAIN too. */
    errno = 0; ck_assert_int_eq(recv(sv[0], buf, 1, MSG_DONTWAIT), -1); ck_assert_int_eq(errno, EAGAIN);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = loopback(lport);
    int r = connect(c, (struct sockaddr *)&sa, sizeof(sa));
    ck_assert(r == 0 || errno == EINPROGRESS);
    ck_assert_msg(now() - t0 < 0.5, "non-blocking calls waited");
    /* Not a socket: a pipe passes through (here with data, so it does not block). */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(write(p[1], "abc", 3), 3);
    ck_assert_int_eq(read(p[0], buf, sizeof(buf)), 3);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    errno = 0; ck_assert_int_eq(read(p[0], buf, 1), -1); ck_assert_int_eq(errno, EAGAIN);
    events++;
    return NULL;
}

START_TEST(inside_nonblocking_fds_get_eagain)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    lfd = tcp_listener(SOCK_NONBLOCK, &lport);
    zcoroutine_go(nonblocking_user, NULL, 0);
    run();
    ck_assert_int_eq(events, 1);
}
END_TEST

/* ---- O_NONBLOCK changed after first use; fcntl and ioctl pass their argument on ---- */

static void *flag_flipper(void *ctx)
{
    (void)ctx;
    char buf[8];
    int avail = -1;
    zcoroutine_sleep_ms(1);
    ck_assert_int_eq(read(sv[0], buf, sizeof(buf)), 4); /* blocking: waits for the writer */
    ck_assert_int_eq(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK), 0);
    errno = 0; ck_assert_int_eq(read(sv[0], buf, 1), -1); ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) & ~O_NONBLOCK), 0);
    ck_assert_int_eq(read(sv[0], buf, sizeof(buf)), 4); /* waits again */
    int on = 1;
    ck_assert_int_eq(ioctl(sv[0], FIONBIO, &on), 0);
    errno = 0; ck_assert_int_eq(recv(sv[0], buf, 1, 0), -1); ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_ne(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
    on = 0;
    ck_assert_int_eq(ioctl(sv[0], FIONBIO, &on), 0);
    ck_assert_int_eq(recv(sv[0], buf, 2, 0), 2);
    ck_assert_int_eq(ioctl(sv[0], FIONREAD, &avail), 0);
    ck_assert_int_eq(avail, 2);
    int d = fcntl(sv[0], F_DUPFD_CLOEXEC, 100);
    ck_assert_int_ge(d, 100);
    ck_assert_int_eq(fcntl(d, F_GETFD), FD_CLOEXEC);
    close(d);
    events++;
    return NULL;
}
static void *three_writes(void *ctx)
{
    (void)ctx;
    for (int i = 0; i < 3; i++) {
        zcoroutine_sleep_ms(20);
        ck_assert_int_eq(write(sv[1], "ping", 4), 4);
    }
    return NULL;
}

START_TEST(nonblocking_set_later_is_seen)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    zcoroutine_go(flag_flipper, NULL, 0);
    zcoroutine_go(three_writes, NULL, 0);
    run();
    ck_assert_int_eq(events, 1);
}
END_TEST

/* ---- fd numbers reused: the watchers follow the new file ---- */

static void *pinger(void *ctx)
{
    int fd = (int)(long)ctx;
    zcoroutine_sleep_ms(1);
    ck_assert_int_eq(write(fd, "x", 1), 1);
    return NULL;
}

static void *reuse_loop(void *ctx)
{
    (void)ctx;
    char c;
    int first = -1;
    for (int i = 0; i < 60; i++) {
        int p[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
        if (first < 0)
            first = p[0];
        ck_assert_int_eq(p[0], first); /* the same numbers every round */
        zcoroutine_go(pinger, (void *)(long)p[1], 0);
        ck_assert_int_eq(read(p[0], &c, 1), 1); /* waits on a new file behind an old number */
        switch (i % 3) {
        case 0:
            close(p[0]);
            break;
        case 1: {
            FILE *f = fdopen(p[0], "r");
            ck_assert_ptr_nonnull(f);
            fclose(f);
            break;
        }
        default: {
            int n = open("/dev/null", O_RDONLY);
            ck_assert_int_eq(dup2(n, p[0]), p[0]); /* p[0] is now /dev/null... */
            close(n);
            close(p[0]);
        }
        }
        close(p[1]); /* the pinger wrote before we woke; no yield: the next wait on this
                      * number starts within the same loop iteration as this close */
    }
    events++;
    return NULL;
}

START_TEST(reused_fd_numbers_are_watched)
{
    zcoroutine_go(reuse_loop, NULL, 0);
    double t0 = now();
    run();
    ck_assert_int_eq(events, 1);
    ck_assert_msg(now() - t0 < 5, "60 rounds took %.1f s", now() - t0);
}
END_TEST

static void *dup2_victim(void *ctx)
{
    (void)ctx;
    char c;
    results[0] = read(sv[0], &c, 1);
    errnos[0] = errno;
    return NULL;
}
static void *dup2_over(void *ctx)
{
    (void)ctx;
    zcoroutine_sleep_ms(20);
    int n = open("/dev/null", O_RDONLY);
    ck_assert_int_eq(dup2(n, sv[0]), sv[0]);
    close(n);
    return NULL;
}

START_TEST(dup2_over_a_waited_fd_wakes_the_waiter)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    zcoroutine_go(dup2_victim, NULL, 0);
    zcoroutine_go(dup2_over, NULL, 0);
    run();
    ck_assert_int_eq(results[0], -1);
    ck_assert_int_eq(errnos[0], EBADF);
}
END_TEST

/* ---- timeouts ---- */


static void *timed_calls(void *ctx)
{
    (void)ctx;
    char buf[4];
    double t0 = now();
    set_timeo(sv[0], SO_RCVTIMEO, 200);
    results[0] = read(sv[0], buf, sizeof(buf));
    errnos[0] = errno;
    took[0] = now() - t0;

    /* Set before this coroutine touched it (lfd's timeout was set outside): read lazily. */
    t0 = now();
    results[1] = accept(lfd, NULL, NULL);
    errnos[1] = errno;
    took[1] = now() - t0;

    /* SO_SNDTIMEO: 8 MiB into a socket nobody reads: part goes out, then the timeout. */
    size_t big = 8 << 20;
    char *p = calloc(1, big);
    set_timeo(sv[1], SO_SNDTIMEO, 150);
    t0 = now();
    results[2] = write(sv[1], p, big);
    errnos[2] = errno;
    took[2] = now() - t0;
    /* The socket is full now: nothing goes out, so -1/EAGAIN after the timeout. */
    t0 = now();
    results[3] = send(sv[1], p, 1024, 0);
    errnos[3] = errno;
    took[3] = now() - t0;
    free(p);
    return NULL;
}

START_TEST(so_rcvtimeo_and_so_sndtimeo_are_honoured)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    lfd = tcp_listener(0, &lport);
    set_timeo(lfd, SO_RCVTIMEO, 100);
    zcoroutine_go(timed_calls, NULL, 0);
    zcoroutine_go(ticker, (void *)20L, 0);
    run();
    ck_assert_int_eq(results[0], -1);
    ck_assert_int_eq(errnos[0], EAGAIN);
    ck_assert_msg(took[0] >= 0.199 && took[0] < 3, "read timed out after %.3f s", took[0]);
    ck_assert_int_eq(results[1], -1);
    ck_assert_int_eq(errnos[1], EAGAIN);
    ck_assert_msg(took[1] >= 0.099 && took[1] < 3, "accept timed out after %.3f s", took[1]);
    ck_assert_msg(results[2] > 0 && results[2] < (8 << 20), "write returned %zd", results[2]);
    ck_assert_msg(took[2] >= 0.149 && took[2] < 3, "write timed out after %.3f s", took[2]);
    ck_assert_int_eq(results[3], -1);
    ck_assert_int_eq(errnos[3], EAGAIN);
    ck_assert_msg(took[3] >= 0.149 && took[3] < 3, "send timed out after %.3f s", took[3]);
    /* The others ran meanwhile: 20 ticks of 10 ms fit in the ~0.6 s of timeouts. */
    ck_assert_int_eq(ticks, 20);
}
END_TEST

/* ---- close() wakes waiters ---- */

static void *blocked_reader(void *ctx)
{
    (void)ctx;
    char buf[4];
    results[0] = read(sv[0], buf, sizeof(buf));
    errnos[0] = errno;
    return NULL;
}
static void *blocked_acceptor(void *ctx)
{
    (void)ctx;
    results[1] = accept(lfd, NULL, NULL);
    errnos[1] = errno;
    return NULL;
}
static void *blocked_poller(void *ctx)
{
    (void)ctx;
    struct pollfd pf = { sv[1], POLLIN, 0 };
    results[2] = poll(&pf, 1, 5000);
    errnos[2] = pf.revents;
    return NULL;
}
static void *closer(void *ctx)
{
    (void)ctx;
    zcoroutine_sleep_ms(30);
    close(sv[0]);
    close(lfd);
    close(sv[1]);
    return NULL;
}

START_TEST(close_wakes_waiting_coroutines)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    lfd = tcp_listener(0, &lport);
    zcoroutine_go(blocked_reader, NULL, 0);
    zcoroutine_go(blocked_acceptor, NULL, 0);
    zcoroutine_go(blocked_poller, NULL, 0);
    zcoroutine_go(closer, NULL, 0);
    double t0 = now();
    run();
    ck_assert_msg(now() - t0 < 3, "waiters were not woken by close");
    ck_assert_int_eq(results[0], -1);
    ck_assert_int_eq(errnos[0], EBADF);
    ck_assert_int_eq(results[1], -1);
    ck_assert_int_eq(errnos[1], EBADF);
    ck_assert_int_eq(results[2], 1);
    ck_assert_int_eq(errnos[2], POLLNVAL);
}
END_TEST

/* ---- connect, accept, UDP ---- */

static char unix_path[108];
static void *echo_once(void *ctx)
{
    int l = (int)(long)ctx;
    int fd = accept(l, NULL, NULL);
    ck_assert_int_ge(fd, 0);
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(send(fd, buf, (size_t)n, 0), n);
    close(fd);
    return NULL;
}

static void *client(void *ctx)
{
    (void)ctx;
    char buf[64] = { 0 };
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = loopback(lport);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(fcntl(c, F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_eq(write(c, "tcp!", 4), 4);
    ck_assert_int_eq(read(c, buf, sizeof(buf)), 4);
    ck_assert_str_eq(buf, "tcp!");
    close(c);

    c = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un su = { .sun_family = AF_UNIX };
    memcpy(su.sun_path, unix_path, sizeof(su.sun_path));
    ck_assert_int_eq(connect(c, (struct sockaddr *)&su, sizeof(su)), 0);
    ck_assert_int_eq(send(c, "unix", 4, 0), 4);
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(recv(c, buf, sizeof(buf), MSG_WAITALL), 4);
    ck_assert_str_eq(buf, "unix");
    close(c);

    /* A port nobody listens on: refused, as a blocking connect says. */
    int dead_port;
    int d = tcp_listener(0, &dead_port);
    close(d);
    c = socket(AF_INET, SOCK_STREAM, 0);
    sa = loopback(dead_port);
    errno = 0;
    ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), -1);
    ck_assert_int_eq(errno, ECONNREFUSED);
    close(c);
    events++;
    return NULL;
}

static int udp_a, udp_b;
static void *udp_receiver(void *ctx)
{
    (void)ctx;
    char buf[64] = { 0 };
    struct sockaddr_in from;
    socklen_t flen = sizeof(from);
    ck_assert_int_eq(recvfrom(udp_a, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen), 5);
    ck_assert_str_eq(buf, "dgram");
    ck_assert_int_eq(flen, sizeof(from));
    struct sockaddr_in b;
    socklen_t blen = sizeof(b);
    getsockname(udp_b, (struct sockaddr *)&b, &blen);
    ck_assert_int_eq(from.sin_port, b.sin_port);
    events++;
    return NULL;
}
static void *udp_sender(void *ctx)
{
    (void)ctx;
    zcoroutine_sleep_ms(20);
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    getsockname(udp_a, (struct sockaddr *)&a, &alen);
    ck_assert_int_eq(sendto(udp_b, "dgram", 5, 0, (struct sockaddr *)&a, alen), 5);
    return NULL;
}

START_TEST(connect_accept_and_udp_in_coroutines)
{
    lfd = tcp_listener(0, &lport);
    snprintf(unix_path, sizeof(unix_path), "/tmp/zs-co-test-%ld.sock", (long)getpid());
    unlink(unix_path);
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un su = { .sun_family = AF_UNIX };
    memcpy(su.sun_path, unix_path, sizeof(su.sun_path));
    ck_assert_int_eq(bind(u, (struct sockaddr *)&su, sizeof(su)), 0);
    ck_assert_int_eq(listen(u, 8), 0);
    udp_a = socket(AF_INET, SOCK_DGRAM, 0);
    udp_b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = loopback(0);
    ck_assert_int_eq(bind(udp_a, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(bind(udp_b, (struct sockaddr *)&sa, sizeof(sa)), 0);
    zcoroutine_go(echo_once, (void *)(long)lfd, 0);
    zcoroutine_go(echo_once, (void *)(long)u, 0);
    zcoroutine_go(client, NULL, 0);
    zcoroutine_go(udp_receiver, NULL, 0);
    zcoroutine_go(udp_sender, NULL, 0);
    run();
    unlink(unix_path);
    ck_assert_int_eq(events, 2);
    ck_assert_int_eq(fcntl(lfd, F_GETFL) & O_NONBLOCK, 0); /* accept put the flags back */
}
END_TEST

/* ---- poll ---- */

static void *poller(void *ctx)
{
    (void)ctx;
    struct pollfd pf[2] = { { sv[0], POLLIN, 0 }, { -1, POLLIN, 0 } };
    double t0 = now();
    ck_assert_int_eq(poll(pf, 2, 2000), 1);
    ck_assert_int_eq(pf[0].revents, POLLIN);
    took[0] = now() - t0;
    char buf[8];
    ck_assert_int_eq(read(sv[0], buf, sizeof(buf)), 4);
    t0 = now();
    ck_assert_int_eq(poll(pf, 1, 100), 0);
    took[1] = now() - t0;
    events++;
    return NULL;
}

START_TEST(poll_waits_in_the_loop)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    zcoroutine_go(poller, NULL, 0);
    zcoroutine_go(writer, NULL, 0);
    zcoroutine_go(ticker, (void *)5L, 0);
    run();
    ck_assert_int_eq(events, 2);
    ck_assert_msg(took[0] >= 0.049 && took[0] < 1.5, "poll woke after %.3f s", took[0]);
    ck_assert_msg(took[1] >= 0.099 && took[1] < 1.5, "poll timed out after %.3f s", took[1]);
    ck_assert_int_eq(ticks, 5);
}
END_TEST

/* ---- big transfers: written whole, read whole ---- */

#define BIG (4 << 20)
static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 2654435761u >> 13);
}

static void *big_writer(void *ctx)
{
    (void)ctx;
    unsigned char *p = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        p[i] = pattern(i);
    struct iovec iov[3] = { { p, 1000 }, { p + 1000, BIG / 2 }, { p + 1000 + BIG / 2, BIG / 2 - 1000 } };
    results[0] = writev(sv[1], iov, 3); /* blocking semantics: all of it */
    results[1] = write(sv[1], p, BIG);
    free(p);
    shutdown(sv[1], SHUT_WR);
    return NULL;
}

static void *big_reader(void *ctx)
{
    (void)ctx;
    unsigned char *p = malloc(BIG);
    /* MSG_WAITALL: one call, the whole first copy. */
    results[2] = recv(sv[0], p, BIG, MSG_WAITALL);
    size_t bad = 0;
    for (size_t i = 0; i < BIG; i++)
        bad += p[i] != pattern(i);
    size_t got = 0;
    for (;;) {
        struct iovec iov[2] = { { p + got, 333 }, { p + got + 333, BIG - got - 333 } };
        ssize_t n = got + 333 < BIG ? readv(sv[0], iov, 2) : read(sv[0], p + got, BIG - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    for (size_t i = 0; i < got; i++)
        bad += p[i] != pattern(i);
    results[3] = (ssize_t)got;
    errnos[0] = (int)bad;
    free(p);
    return NULL;
}

START_TEST(big_writes_are_written_whole)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    zcoroutine_go(big_reader, NULL, 0);
    zcoroutine_go(big_writer, NULL, 0);
    run();
    ck_assert_int_eq(results[0], BIG);
    ck_assert_int_eq(results[1], BIG);
    ck_assert_int_eq(results[2], BIG);
    ck_assert_int_eq(results[3], BIG);
    ck_assert_int_eq(errnos[0], 0);
}
END_TEST

/* ---- _FORTIFY_SOURCE entry points wait too ---- */

static void *fortified_reader(void *ctx)
{
    (void)ctx;
    char buf[8] = { 0 };
    ck_assert_int_eq(__read_chk(sv[0], buf, 4, sizeof(buf)), 4);
    ck_assert_str_eq(buf, "ping");
    ck_assert_int_eq(__recv_chk(sv[0], buf, 4, sizeof(buf), 0), 4);
    events++;
    return NULL;
}
static void *two_pings(void *ctx)
{
    (void)ctx;
    zcoroutine_sleep_ms(20);
    ck_assert_int_eq(write(sv[1], "ping", 4), 4);
    zcoroutine_sleep_ms(20);
    ck_assert_int_eq(write(sv[1], "ping", 4), 4);
    return NULL;
}

START_TEST(fortify_entry_points_wait)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    zcoroutine_go(fortified_reader, NULL, 0);
    zcoroutine_go(two_pings, NULL, 0);
    run();
    ck_assert_int_eq(events, 1);
}
END_TEST

/* ---- other threads are not coroutines ---- */

static void *thread_reader(void *ctx)
{
    (void)ctx;
    char buf[8];
    /* Blocks in this thread (a coroutine of the main thread writes later). */
    results[0] = recv(sv[0], buf, sizeof(buf), 0);
    return NULL;
}
static void *late_writer(void *ctx)
{
    (void)ctx;
    zcoroutine_sleep_ms(50);
    ck_assert_int_eq(send(sv[1], "thr", 3, 0), 3);
    return NULL;
}

START_TEST(other_threads_pass_through)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    zcoroutine_go(late_writer, NULL, 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, thread_reader, NULL), 0);
    run();
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(results[0], 3);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("coroutine-hooks");
    TCase *tc = tcase_create("hooks");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, outside_blocking_reads_block);
    tcase_add_test(tc, outside_errno_values_are_libcs);
    tcase_add_test(tc, inside_read_waits_and_flags_stay);
    tcase_add_test(tc, inside_nonblocking_fds_get_eagain);
    tcase_add_test(tc, nonblocking_set_later_is_seen);
    tcase_add_test(tc, reused_fd_numbers_are_watched);
    tcase_add_test(tc, dup2_over_a_waited_fd_wakes_the_waiter);
    tcase_add_test(tc, so_rcvtimeo_and_so_sndtimeo_are_honoured);
    tcase_add_test(tc, close_wakes_waiting_coroutines);
    tcase_add_test(tc, connect_accept_and_udp_in_coroutines);
    tcase_add_test(tc, poll_waits_in_the_loop);
    tcase_add_test(tc, big_writes_are_written_whole);
    tcase_add_test(tc, fortify_entry_points_wait);
    tcase_add_test(tc, other_threads_pass_through);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
