/*
 * http_hello_co.c — the HTTP/1.1 "hello" server in coroutine style: one accept-loop coroutine a
 * listener, one coroutine a connection, written as if every call blocked (libzserver makes
 * read/write/accept yield instead).  Keep-alive and pipelining; the protocol is
 * sample/http_proto.h, shared with the aio version (sample/http_hello.c), so both answer byte
 * for byte the same and `t/bench/coroutine/http.sh` compares only the loops.
 *
 * On soft-stop it drains like the aio version: each connection gets its current request
 * answered with `Connection: close`, and the process returns once the last connection is gone,
 * or after server-stop-on-softstop-after seconds (3 when unset) at the latest.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zserver.h>
#include "http_proto.h"

#define CONN_IN 16384  /* as sample/aio_conn.h */
#define CONN_OUT 65536

static int live, draining;

typedef struct conn {
    int fd;
    size_t in_len;
    char in[CONN_IN];
    char out[CONN_OUT];
} conn;

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len); /* blocks this coroutine only; a socket takes it all */
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Answers every complete request in c->in; 1 when the connection must close afterwards. */
static int answer(conn *c)
{
    int close_after = 0;
    for (;;) {
        http_out o = { c->out, 0, sizeof(c->out) };
        size_t used = http_hello_feed(c->in, c->in_len, &o, draining, &close_after);
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        if (o.len && write_all(c->fd, c->out, o.len) < 0)
            return 1;
        /* The output buffer stops a long pipeline early: go on with what is left. */
        if (close_after || !used || !c->in_len)
            return close_after;
    }
}

static void *serve_conn(void *ctx)
{
    conn *c = ctx;
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        c->in_len += (size_t)n;
        if (answer(c))
            break;
        if (c->in_len == sizeof(c->in))
            break; /* a request that does not fit is not one we serve */
    }
    close(c->fd);
    free(c);
    if (--live == 0 && draining)
        zcoroutine_server_stop_notify(0);
    return 0;
}

static void *accept_loop(void *ctx)
{
    int sock = (int)(long)ctx;
    for (;;) {
        int fd = accept4(sock, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EBADF || errno == EINVAL)
                break; /* soft-stop closed the listener */
            continue;
        }
        conn *c = malloc(sizeof(*c));
        if (c) {
            c->fd = fd;
            c->in_len = 0;
        }
        if (!c || zcoroutine_go(serve_conn, c, 0) < 0) {
            zwarning("no memory for a connection: closing it");
            free(c);
            close(fd);
            continue;
        }
        live++;
    }
    return 0;
}

static void service_register(const char *service, int fd, int fd_type)
{
    if (fd_type == zvar_tcp_listen_type_fifo) {
        zerror("service %s: a fifo is not an HTTP listener", service);
        return;
    }
    if (zcoroutine_go(accept_loop, (void *)(long)fd, 0) < 0)
        zerror("service %s: cannot start its accept loop: %m", service);
}

static void before_softstop(void)
{
    long m = zconfig_get_second("server-stop-on-softstop-after", 0); /* a duration: 30, 5s, 2m */
    draining = 1;
    zcoroutine_server_stop_notify(live ? (m >= 1 ? (int)m : 3) : 0);
}

int main(int argc, char **argv)
{
    zcoroutine_server_service_register = service_register;
    zcoroutine_server_before_softstop = before_softstop;
    return zcoroutine_server_main(argc, argv);
}
