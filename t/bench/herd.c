/*
 * herd.c — how many processes does one new connection wake?  An isolated check of the three
 * ways N workers can wait on one shared listening socket:
 *
 *   plain   the listener in each worker's epoll                     (the thundering herd)
 *   direct  the listener in each worker's epoll with EPOLLEXCLUSIVE  (nginx on Linux >= 4.5, and
 *           libzserver's aio mode, zs_accept.c, in libev's own epoll set)
 *   nested  the listener with EPOLLEXCLUSIVE in a small epoll fd of its own, and that epoll
 *           fd in the worker's main epoll (what aio mode tried first: it wakes everyone)
 *
 *   herd [-w WORKERS] [-n CONNECTIONS] plain|direct|nested
 *
 * The parent connects CONNECTIONS times, one at a time, 2 ms apart, to 127.0.0.1 (its own
 * socket on an ephemeral port) and closes each.  Each worker accepts one connection per
 * wake-up (non-blocking accept4) and counts its epoll_wait returns, accepts, EAGAINs, and its
 * context switches (getrusage): a wake-up the kernel gives and takes back before epoll_wait
 * returns still shows as a context switch.  Prints one line per mode with the totals per
 * connection.  Idle workers, so every extra wake-up is a herd wake-up.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct counts {
    long wakeups, accepted, eagain, csw;
} counts;

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void worker(int lfd, const char *mode, int out)
{
    counts c = { 0, 0, 0, 0 };
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, got[8];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!strcmp(mode, "nested")) {
        int inner = epoll_create1(EPOLL_CLOEXEC);
        ev.events = EPOLLIN | EPOLLEXCLUSIVE;
        epoll_ctl(inner, EPOLL_CTL_ADD, lfd, &ev);
        struct epoll_event outer = { .events = EPOLLIN, .data.fd = inner };
        epoll_ctl(ep, EPOLL_CTL_ADD, inner, &outer);
    } else {
        if (!strcmp(mode, "direct"))
            ev.events |= EPOLLEXCLUSIVE;
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    }
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    while (!stop) {
        int n = epoll_wait(ep, got, 8, 200);
        if (n <= 0)
            continue;
        c.wakeups++;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            c.accepted++;
            close(fd);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c.eagain++;
        }
    }
    getrusage(RUSAGE_SELF, &r1);
    c.csw = (r1.ru_nvcsw - r0.ru_nvcsw) + (r1.ru_nivcsw - r0.ru_nivcsw);
    if (write(out, &c, sizeof(c)) != (ssize_t)sizeof(c))
        _exit(1);
    _exit(0);
}

int main(int argc, char **argv)
{
    int workers = 2, conns = 300, opt;
    while ((opt = getopt(argc, argv, "w:n:")) != -1) {
        switch (opt) {
        case 'w': workers = atoi(optarg); break;
        case 'n': conns = atoi(optarg); break;
        default: return 2;
        }
    }
    if (optind >= argc || workers < 1 || workers > 64 || conns < 1 || conns > 100000)
        return 2;
    const char *mode = argv[optind];
    if (strcmp(mode, "plain") && strcmp(mode, "direct") && strcmp(mode, "nested"))
        return 2;

    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t sl = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 511) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
        perror("herd: listen");
        return 1;
    }
    int pfd[2];
    if (pipe(pfd) < 0)
        return 1;
    pid_t pids[64];
    for (int i = 0; i < workers; i++) {
        pids[i] = fork();
        if (pids[i] < 0)
            return 1;
        if (pids[i] == 0) {
            struct sigaction sa_term = { .sa_handler = on_term };
            sigaction(SIGTERM, &sa_term, NULL);
            close(pfd[0]);
            worker(lfd, mode, pfd[1]);
        }
    }
    close(pfd[1]);
    struct timespec settle = { 0, 200 * 1000000L }, gap = { 0, 2 * 1000000L };
    nanosleep(&settle, NULL);
    for (int i = 0; i < conns; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            perror("herd: connect");
            return 1;
        }
        close(c);
        nanosleep(&gap, NULL);
    }
    nanosleep(&settle, NULL);
    counts t = { 0, 0, 0, 0 }, c;
    for (int i = 0; i < workers; i++)
        kill(pids[i], SIGTERM);
    for (int i = 0; i < workers; i++) {
        if (read(pfd[0], &c, sizeof(c)) == (ssize_t)sizeof(c)) {
            t.wakeups += c.wakeups;
            t.accepted += c.accepted;
            t.eagain += c.eagain;
            t.csw += c.csw;
        }
    }
    for (int i = 0; i < workers; i++)
        waitpid(pids[i], NULL, 0);
    printf("%s workers=%d connections=%d accepted=%ld wakeups_per_conn=%.2f eagain_per_conn=%.2f csw_per_conn=%.2f\n",
           mode, workers, conns, t.accepted, (double)t.wakeups / conns, (double)t.eagain / conns,
           (double)t.csw / conns);
    return t.accepted == conns ? 0 : 1;
}
