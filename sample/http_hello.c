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
        aio_conn_close_after(c);
    return used;
}

static void on_accept(int fd)
{
    aio_conn_start(fd, on_data, NULL, NULL);
}

static void service_register(const char *service, int fd, int fd_type)
{
    if (!zaio_server_general_aio_register(zvar_default_aio_base, fd, fd_type, on_accept))
        zerror("service %s: not served", service);
}

static void before_softstop(void)
{
    long m = zconfig_get_int("server-stop-on-softstop-after", 0);
    aio_conn_drain(m >= 1 ? (int)m : 3);
}

int main(int argc, char **argv)
{
    zaio_server_service_register = service_register;
    zaio_server_before_softstop = before_softstop;
    return zaio_server_main(argc, argv);
}
