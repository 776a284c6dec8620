/*
 * test_status.c — the status channel's handling of descriptors (zs_status.c): the master's end
 * refuses them where the kernel can, and one that arrives anyway is closed without blocking.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "check_run.h"
#include "core/zs_status.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A loopback TCP socket whose peer never reads, its send buffer full, SO_LINGER {1, 15}: its
 * last close waits up to 15 s.  *peer gets the listener (kept open by the caller). */
static int lingering_socket(int *peer)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    int small = 4096;
    *peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(*peer, 0);
    ck_assert_int_eq(setsockopt(*peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    ck_assert_int_eq(bind(*peer, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(*peer, 4), 0);
    ck_assert_int_eq(getsockname(*peer, (struct sockaddr *)&a, &alen), 0);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(s, 0);
    ck_assert_int_eq(setsockopt(s, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    int rc = connect(s, (struct sockaddr *)&a, sizeof(a));
    ck_assert(rc == 0 || errno == EINPROGRESS);
    static char junk[65536];
    double t0 = now();
    /* until the send buffer is full (connect may still be completing at first) */
    while (now() - t0 < 5) {
        ssize_t n = send(s, junk, sizeof(junk), MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN && now() - t0 > 0.2)
            break;
    }
    struct linger lg = { 1, 15 };
    ck_assert_int_eq(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    return s;
}

START_TEST(test_received_socket_closed_without_lingering)
{
    /* A plain pair, as on a kernel without SO_PASSRIGHTS: the descriptor does arrive. */
    int sv[2], peer;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    int s = lingering_socket(&peer);
    ck_assert_int_eq(zs_status_send_fd(sv[1], ZS_ST_AVAIL, 1, 0, s), 0);
    close(s); /* the record now holds the last reference */
    zs_status_rec r;
    double t0 = now();
    ck_assert_int_eq(zs_status_recv(sv[0], &r), 1);
    ck_assert_double_lt(now() - t0, 2.0);
    ck_assert_uint_eq(r.type, ZS_ST_AVAIL);
    close(sv[0]);
    close(sv[1]);
    close(peer);
}
END_TEST

START_TEST(test_refusing_end)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    if (zs_status_refuse_fds(sv[0]) < 0) {
        ck_assert_int_eq(errno, ENOPROTOOPT); /* a kernel before 6.16 */
    } else {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        errno = 0;
        ck_assert_int_eq(zs_status_send_fd(sv[1], ZS_ST_AVAIL, 1, 0, fd), -1);
        ck_assert_int_eq(errno, EPERM);
        close(fd);
    }
    /* records without a descriptor pass, both ways; the child's end still takes descriptors */
    zs_status_rec r;
    ck_assert_int_eq(zs_status_send(sv[1], ZS_ST_READY, 1, 0), 0);
    ck_assert_int_eq(zs_status_recv(sv[0], &r), 1);
    ck_assert_uint_eq(r.type, ZS_ST_READY);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC), got = -1;
    ck_assert_int_eq(zs_status_send_fd(sv[0], ZS_ST_BOARD, 1, 0, fd), 0);
    ck_assert_int_eq(zs_status_recv_fd(sv[1], &r, &got), 1);
    ck_assert_int_ge(got, 0);
    close(got);
    close(fd);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("status");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_received_socket_closed_without_lingering);
    tcase_add_test(tc, test_refusing_end);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
