/*
 * http_hello.c — an HTTP/1.1 "hello" server in aio mode: keep-alive and pipelining, good enough
 * for wrk and curl.  The protocol is sample/http_proto.h, shared with the coroutine version.
 */
#include "aio_conn.h"
#include "http_proto.h"

static size_t on_data(aio_conn *c, const char *in, size_t len)
{
    int close_after;
    http_out o = { c->out + c->out_len, 0, sizeof(c->out) - c->out_len };
    size_t used = http_hello_feed(in, len, &o, &close_after);
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

int main(int argc, char **argv)
{
    zaio_server_service_register = service_register;
    return zaio_server_main(argc, argv);
}
