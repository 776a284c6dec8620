/*
 * burst.c — a load client for the tests: opens many short connections and counts outcomes.
 *
 *   burst -a ADDR [-n TOTAL] [-p PARALLEL] [-r RATE] [-d SECONDS] [-s SEND] [-e EXPECT] [-t TIMEOUT]
 *
 * ADDR is HOST:PORT, [V6]:PORT or a unix socket path.  Each connection connects, sends SEND
 * (C escapes \r \n allowed), reads until EOF and checks that the answer starts with EXPECT.
 * Without -r, TOTAL connections go out with PARALLEL in flight; with -r, RATE connections a
 * second for -d SECONDS (PARALLEL still caps what is in flight).  Prints one line:
 *   ok=N refused=N reset=N timeout=N bad=N other=N pids=N
 * (pids: distinct `pid=N` values seen in answers) and exits 0 only if every connection was ok.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
    int fd;
    double started;
    size_t sent, got;
    char buf[512];
} conn;

static struct sockaddr_storage sa;
static socklen_t salen;
static char sendbuf[4096];
static size_t sendlen;
static const char *expect = "";
static long counts[6]; /* ok refused reset timeout bad other */
static long pids[4096];
static int npids;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_addr(const char *a)
{
    memset(&sa, 0, sizeof(sa));
    if (strchr(a, '/')) {
        struct sockaddr_un *u = (struct sockaddr_un *)&sa;
        u->sun_family = AF_UNIX;
        snprintf(u->sun_path, sizeof(u->sun_path), "%s", a);
        salen = sizeof(*u);
        return 0;
    }
    char host[128];
    const char *colon = strrchr(a, ':');
    if (!colon)
        return -1;
    int port = atoi(colon + 1);
    if (a[0] == '[') {
        snprintf(host, sizeof(host), "%.*s", (int)(colon - a - 2), a + 1);
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        salen = sizeof(*s6);
        return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 ? 0 : -1;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - a), a);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    salen = sizeof(*s4);
    return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -1;
}

static void unescape(const char *s)
{
    for (; *s && sendlen < sizeof(sendbuf); s++) {
        if (*s == '\\' && s[1] == 'r') {
            sendbuf[sendlen++] = '\r';
            s++;
        } else if (*s == '\\' && s[1] == 'n') {
            sendbuf[sendlen++] = '\n';
            s++;
        } else {
            sendbuf[sendlen++] = *s;
        }
    }
}

static void note_pid(const conn *c)
{
    const char *p = memmem(c->buf, c->got, "pid=", 4);
    if (!p)
        return;
    long pid = strtol(p + 4, NULL, 10);
    for (int i = 0; i < npids; i++)
        if (pids[i] == pid)
            return;
    if (npids < 4096)
        pids[npids++] = pid;
}

static void finish(int ep, conn *c, int outcome)
{
    if (outcome == 0) {
        if (c->got < strlen(expect) || memcmp(c->buf, expect, strlen(expect)))
            outcome = 4;
        else
            note_pid(c);
    }
    counts[outcome]++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

static int errno_outcome(int e)
{
    return e == ECONNREFUSED ? 1 : e == ECONNRESET || e == EPIPE ? 2 : 5;
}

static conn *start(int ep)
{
    conn *c = calloc(1, sizeof(*c));
    c->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->started = now();
    if (c->fd < 0) {
        counts[5]++;
        free(c);
        return NULL;
    }
    if (connect(c->fd, (struct sockaddr *)&sa, salen) < 0 && errno != EINPROGRESS) {
        counts[errno == EAGAIN ? 1 : errno_outcome(errno)]++; /* unix: EAGAIN = backlog full */
        close(c->fd);
        free(c);
        return NULL;
    }
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return c;
}

/* Returns 1 when the connection is finished. */
static int step(int ep, conn *c, unsigned events)
{
    int err = 0;
    socklen_t el = sizeof(err);
    if (events & EPOLLERR) {
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        finish(ep, c, errno_outcome(err));
        return 1;
    }
    if ((events & EPOLLOUT) && c->sent < sendlen) {
        ssize_t n = send(c->fd, sendbuf + c->sent, sendlen - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
            finish(ep, c, errno_outcome(errno));
            return 1;
        }
        if (n > 0)
            c->sent += (size_t)n;
    }
    if (c->sent >= sendlen) {
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
    for (;;) {
        char tmp[4096];
        ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
        if (n == 0) {
            finish(ep, c, 0);
            return 1;
        }
        if (n < 0) {
            if (errno == EAGAIN)
                return 0;
            finish(ep, c, errno_outcome(errno));
            return 1;
        }
        size_t room = sizeof(c->buf) - c->got;
        memcpy(c->buf + c->got, tmp, (size_t)n < room ? (size_t)n : room);
        c->got += (size_t)n < room ? (size_t)n : room;
    }
}

int main(int argc, char **argv)
{
    const char *addr = NULL;
    long total = 1000, parallel = 100;
    double rate = 0, duration = 0, timeout = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-a"))
            addr = argv[i + 1];
        else if (!strcmp(argv[i], "-n"))
            total = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-p"))
            parallel = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-r"))
            rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "-d"))
            duration = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "-s"))
            unescape(argv[i + 1]);
        else if (!strcmp(argv[i], "-e"))
            expect = argv[i + 1];
        else if (!strcmp(argv[i], "-t"))
            timeout = atof(argv[i + 1]);
    }
    if (!addr || parse_addr(addr) < 0) {
        fprintf(stderr, "usage: burst -a ADDR [-n TOTAL] [-p PARALLEL] [-r RATE -d SECONDS] [-s SEND] [-e EXPECT] [-t TIMEOUT]\n");
        return 2;
    }
    if (rate > 0)
        total = (long)(rate * duration + 0.5);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    conn **live = calloc((size_t)parallel, sizeof(conn *));
    long launched = 0, inflight = 0;
    double t0 = now();
    while (launched < total || inflight > 0) {
        double t = now();
        while (launched < total && inflight < parallel && (rate <= 0 || launched < (t - t0) * rate)) {
            conn *c = start(ep);
            launched++;
            if (!c)
                continue;
            for (long k = 0; k < parallel; k++)
                if (!live[k]) {
                    live[k] = c;
                    break;
                }
            inflight++;
        }
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 5);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (step(ep, c, evs[i].events)) {
                for (long k = 0; k < parallel; k++)
                    if (live[k] == c) {
                        live[k] = NULL;
                        break;
                    }
                inflight--;
            }
        }
        t = now();
        for (long k = 0; k < parallel; k++) {
            if (live[k] && t - live[k]->started > timeout) {
                finish(ep, live[k], 3);
                live[k] = NULL;
                inflight--;
            }
        }
    }
    free(live);
    close(ep);
    printf("ok=%ld refused=%ld reset=%ld timeout=%ld bad=%ld other=%ld pids=%d\n", counts[0], counts[1],
           counts[2], counts[3], counts[4], counts[5], npids);
    return counts[0] == total ? 0 : 1;
}
