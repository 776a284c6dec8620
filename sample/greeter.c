/*
 * greeter.c — a line-based greeter in aio mode (SMTP-like), showing per-connection state on
 * libev: a banner, then every line is answered, `HELO name` is remembered, `QUIT` says goodbye.
 *
 * Config keys (a .cf file, a .gcf, or -key value): banner (default "220 greeter ready"),
 * max-lines (default 1000: a connection is closed after that many lines).
 * On soft-stop an idle session is told `421 closing: server going down` and closed; a session in
 * the middle of a line gets it answered and is closed; the process leaves when the
 * last session is gone, or after server-stop-on-softstop-after seconds (3 when unset).
 */
#include <stdio.h>
#include "aio_conn.h"

typedef struct session {
    char helo[64];
    long lines;
} session;

static const char *banner;
static long max_lines;

static void reply(aio_conn *c, const char *fmt, const char *a, long n)
{
    char buf[256];
    int len = snprintf(buf, sizeof(buf), fmt, a, n);
    if (len > 0)
        aio_conn_out(c, buf, (size_t)len < sizeof(buf) ? (size_t)len : sizeof(buf) - 1);
}

static size_t on_data(aio_conn *c, const char *in, size_t len)
{
    session *s = c->user;
    size_t used = 0;
    const char *nl;
    while (!c->closing && (nl = memchr(in + used, '\n', len - used))) {
        char line[1024];
        size_t l = (size_t)(nl - (in + used));
        if (l && in[used + l - 1] == '\r')
            l--;
        if (l >= sizeof(line))
            l = sizeof(line) - 1;
        memcpy(line, in + used, l);
        line[l] = '\0';
        used = (size_t)(nl - in) + 1;
        s->lines++;
        if (!strcasecmp(line, "QUIT")) {
            reply(c, "221 bye%s after %ld lines\r\n", s->helo[0] ? ", " : "", s->lines);
            c->closing = 1;
        } else if (!strncasecmp(line, "HELO ", 5)) {
            snprintf(s->helo, sizeof(s->helo), "%.63s", line + 5);
            reply(c, "250 hello %s (line %ld)\r\n", s->helo, s->lines);
        } else {
            reply(c, "250 you said: %s (line %ld)\r\n", line, s->lines);
        }
        if (s->lines >= max_lines && !c->closing) {
            reply(c, "421 too many lines%s (%ld)\r\n", "", s->lines);
            c->closing = 1;
        }
    }
    return used;
}

static void on_accept(int fd)
{
    char greeting[256];
    snprintf(greeting, sizeof(greeting), "%s\r\n", banner);
    session *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        return;
    }
    aio_conn_start(fd, s, greeting);
}

static void before_service(void)
{
    banner = zconfig_get_str("banner", "220 greeter ready");
    max_lines = zconfig_get_int("max-lines", 1000);
    zinfo("greeter ready: banner '%s'", banner);
}

int main(int argc, char **argv)
{
    zaio_server_before_service = before_service;
    aio_conn_goodbye = "421 closing: server going down\r\n";
    return aio_conn_main(argc, argv);
}
