/*
 * tinyserv.c — the tiny server every supervisor in the benchmarks runs: the same binary under
 * masterd, supervisord, runsv, s6-supervise and the bare fork+exec baseline.
 *
 *   tinyserv [ADDR]
 *
 * With LISTEN_FDS=1 (masterd, systemd) it serves fd 3 and binds nothing.  Otherwise it binds
 * ADDR itself: the TINY_ADDR environment variable when set (how runsv and s6-supervise, which
 * run ./run with no arguments of ours, pass it: s6-supervise even adds the service dir as
 * argv[1]), else the argument: PORT (127.0.0.1) or a unix socket path (anything with a '/').  Every connection gets "<pid>\n" and is closed, so a client
 * knows which process answered.  Blocking accept loop, no libraries: what it costs to start is
 * fork + exec + (bind + listen) + the dynamic loader, nothing else.  SIGTERM: default (dies).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int bind_addr(const char *addr)
{
    int fd, one = 1;
    if (strchr(addr, '/')) {
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        if (strlen(addr) >= sizeof(un.sun_path))
            return -1;
        strcpy(un.sun_path, addr);
        unlink(addr);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0)
            return -1;
    } else {
        struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(addr)) };
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&in, sizeof(in)) < 0)
            return -1;
    }
    if (listen(fd, 511) < 0)
        return -1;
    return fd;
}

int main(int argc, char **argv)
{
    const char *lf = getenv("LISTEN_FDS");
    const char *addr = getenv("TINY_ADDR") ? getenv("TINY_ADDR") : argc > 1 ? argv[1] : NULL;
    char msg[32];
    int lfd, n;

    if (lf && atoi(lf) >= 1) {
        lfd = 3;
    } else if (!addr) {
        fprintf(stderr, "tinyserv: no LISTEN_FDS and no address (argument or TINY_ADDR)\n");
        return 2;
    } else if ((lfd = bind_addr(addr)) < 0) {
        fprintf(stderr, "tinyserv: %s: %s\n", addr, strerror(errno));
        return 1;
    }
    n = snprintf(msg, sizeof(msg), "%ld\n", (long)getpid());
    for (;;) {
        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* masterd hands listeners over non-blocking: wait for the next one */
                struct pollfd p = { .fd = lfd, .events = POLLIN };
                poll(&p, 1, -1);
            } else if (errno != EINTR && errno != ECONNABORTED) {
                fprintf(stderr, "tinyserv: accept: %s\n", strerror(errno));
                return 1;
            }
            continue;
        }
        if (write(c, msg, (size_t)n) < 0) {
            /* the client went away: nothing to do */
        }
        close(c);
    }
}
