/*
 * http_hello.c — an HTTP/1.1 "hello" server in aio mode: keep-alive and pipelining, good enough
 * for wrk and curl.  The protocol is sample/http_proto.h, shared with the coroutine version.
 *
 * On soft-stop (reload, restart, stop) it drains: every connection gets its current request
 * answered with `Connection: close`, and the process returns once the last connection is gone,
 * or after server-stop-on-softstop-after seconds (3 when unset) at the latest.
 */
#include "aio_conn.h"
#include "http_proto.h"

static size_t on_data(aio_conn *c, const char *in, size_t len)
{
    int close_after;
    http_out o = { c->out + c->out_len, 0, sizeof(c->out) - c->out_len };
    size_t used = http_hello_feed(in, len, &o, aio_conn_draining, &close_after);
    c->out_len += o.len;
    if (close_after)
        c->closing = 1;
    return used;
}

static void on_accept(int fd)
{
    aio_conn_start(fd, NULL, NULL);
}

int main(int argc, char **argv)
{
    return aio_conn_main(argc, argv);
}
