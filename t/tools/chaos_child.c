/*
 * chaos_child.c — a plain-C child that misbehaves on masterd's status channel (for t/chaos).
 *
 * It runs no libzserver runtime: it speaks the channel itself, with the fd from ZMASTER_STATUS_FD
 * and the generation from ZMASTER_GENERATION, through core's wire format (core/zs_status.h,
 * linked from libzs_core.a: no syscall hooks, no loop).
 *
 * Usage: chaos_child MODE [CAPFILE CAP]
 * With CAPFILE, each start first appends a line with its CLOCK_MONOTONIC time in seconds to
 * CAPFILE (so the tester sees how fast masterd starts them); once it holds more than CAP lines
 * the program exits 1 at once instead (a bound on how many a run can make, whatever masterd does).
 *
 * MODE:
 *     garbage        HELLO, then short, long and wrong-magic packets, then READY; keeps running
 *     flood          HELLO, READY, then as many AVAIL records as the channel takes for 2 s; keeps running
 *     passfd         HELLO with an fd attached (SCM_RIGHTS), READY with another; keeps running
 *     daemon         forks, the child calls setsid() and forks again: the grandchild (comm
 *                    "chaos-daemon") holds a listening socket on 127.0.0.1 (any port) and
 *                    sleeps; the middle process exits; the original says HELLO+READY and
 *                    keeps running
 *     detach         HELLO, READY, DETACH, then keeps running
 *     noready        HELLO, never READY; keeps running
 *     exit           exits 3 at once
 * "Keeps running" means: sleeps until a signal with the default disposition ends it, at most
 * LIFETIME seconds (second-to-last safety net, so a leak never outlives a test run by much).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "../../libzserver/core/zs_status.h"

#define LIFETIME 600

static int chan = -1;
static uint32_t gen;

static int send_raw(const void *buf, size_t len, int passfd)
{
    return zs_status_sendmsg(chan, buf, len, passfd, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -1 : 0;
}

static int send_rec(uint32_t type, int32_t value, int passfd)
{
    zs_status_rec r = { ZS_STATUS_MAGIC, type, gen, value };
    return send_raw(&r, sizeof(r), passfd);
}

static void linger(void)
{
    for (int i = 0; i < LIFETIME; i++)
        sleep(1);
    exit(0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void daemonize(int port)
{
    pid_t p = fork();
    if (p < 0) {
        perror("hostile: fork");
        return;
    }
    if (p > 0) {
        (void)waitpid(p, NULL, 0);
        return;
    }
    if (setsid() < 0)
        perror("hostile: setsid");
    pid_t q = fork();
    if (q != 0)
        _exit(q < 0 ? 1 : 0);
    (void)prctl(PR_SET_NAME, "chaos-daemon", 0, 0, 0);
    if (chan >= 0)
        close(chan); /* a real daemon closes what it does not know */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { 0 };
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 8) < 0)
        perror("hostile: daemon socket");
    linger();
}

static double now_s(void);

/* Appends a start-time line to file; true when it now holds more than cap lines. */
static int over_cap(const char *file, long cap)
{
    char line[64], buf[4096];
    int fd = open(file, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return 0;
    int n = snprintf(line, sizeof(line), "%.6f\n", now_s());
    long lines = 0;
    if (write(fd, line, (size_t)n) == n && lseek(fd, 0, SEEK_SET) == 0) {
        ssize_t r;
        while ((r = read(fd, buf, sizeof(buf))) > 0)
            for (ssize_t i = 0; i < r; i++)
                lines += buf[i] == '\n';
    }
    close(fd);
    return lines > cap;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "exit";
    const char *fd_env = getenv("ZMASTER_STATUS_FD");
    const char *gen_env = getenv("ZMASTER_GENERATION");
    chan = fd_env ? atoi(fd_env) : -1;
    gen = gen_env ? (uint32_t)strtoul(gen_env, NULL, 10) : 0;

    if (argc > 3 && over_cap(argv[2], atol(argv[3])))
        return 1;
    if (!strcmp(mode, "exit"))
        return 3;
    if (!strcmp(mode, "garbage")) {
        static const char junk[300] = "not a status record";
        zs_status_rec bad = { 0xdeadbeefu, ZS_ST_READY, gen, 0 };
        zs_status_rec odd = { ZS_STATUS_MAGIC, 77, gen + 1000, -1 };
        send_rec(ZS_ST_HELLO, (int32_t)getpid(), -1);
        send_raw(junk, 3, -1);
        send_raw(junk, sizeof(junk), -1);
        send_raw(&bad, sizeof(bad), -1);
        send_raw(&odd, sizeof(odd), -1);
        send_raw(junk, 0, -1);
        send_rec(ZS_ST_READY, 0, -1);
        linger();
    }
    if (!strcmp(mode, "flood")) {
        send_rec(ZS_ST_HELLO, (int32_t)getpid(), -1);
        send_rec(ZS_ST_READY, 0, -1);
        double end = now_s() + 2;
        for (int32_t n = 0; now_s() < end; n++)
            if (send_rec(ZS_ST_AVAIL, n, -1) < 0 && errno != EAGAIN)
                break;
        linger();
    }
    if (!strcmp(mode, "passfd")) {
        int p[2];
        if (pipe(p) < 0)
            return 2;
        send_rec(ZS_ST_HELLO, (int32_t)getpid(), p[0]);
        send_rec(ZS_ST_READY, 0, p[1]);
        send_rec(ZS_ST_AVAIL, 5, chan);
        linger();
    }
    if (!strcmp(mode, "daemon")) {
        daemonize(0);
        send_rec(ZS_ST_HELLO, (int32_t)getpid(), -1);
        send_rec(ZS_ST_READY, 0, -1);
        linger();
    }
    if (!strcmp(mode, "detach")) {
        send_rec(ZS_ST_HELLO, (int32_t)getpid(), -1);
        send_rec(ZS_ST_READY, 0, -1);
        send_rec(ZS_ST_DETACH, 0, -1);
        linger();
    }
    if (!strcmp(mode, "noready")) {
        send_rec(ZS_ST_HELLO, (int32_t)getpid(), -1);
        linger();
    }
    fprintf(stderr, "hostile: unknown mode %s\n", mode);
    return 2;
}
