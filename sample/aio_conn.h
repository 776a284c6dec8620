/*
 * aio_conn.h — a buffered connection on libev for the aio samples: read what arrives, hand it
 * to the protocol, write what it answers, close when it says so.  Per-connection state lives in
 * one struct; nothing blocks.  The protocol is one function:
 *     size_t on_data(aio_conn *c, const char *in, size_t len)   -> bytes consumed
 * which appends its answer with aio_conn_out() and may call aio_conn_close_after(c).
 *
 * Soft-stop: aio_conn_drain() (from the before_softstop hook) marks every connection to close
 * after its next answer and asks libzserver to return from main once the last one is gone
 * (zaio_server_stop_notify(0)), or after max_seconds at the latest.
 */
#ifndef SAMPLE_AIO_CONN_H
#define SAMPLE_AIO_CONN_H
#include <errno.h>
#include <ev.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zserver.h>

#define AIO_CONN_IN 16384
#define AIO_CONN_OUT 65536

typedef struct aio_conn aio_conn;
typedef size_t (*aio_conn_data_fn)(aio_conn *c, const char *in, size_t len);

struct aio_conn {
    ev_io w;
    ev_timer linger;          /* bounds a lingering close */
    aio_conn *prev, *next;    /* every live connection, for draining */
    int fd;
    int closing;              /* close once the output is written */
    int drained;              /* the last read emptied the socket (it returned less than asked) */
    aio_conn_data_fn on_data;
    void *user;               /* the protocol's per-connection state */
    size_t in_len, out_off, out_len;
    char in[AIO_CONN_IN];
    char out[AIO_CONN_OUT];
};

static aio_conn *aio_conn_list;
static long aio_conn_live;     /* connections open in this process */
static int aio_conn_draining;  /* soft-stopping: close each connection after its next answer */

static void aio_conn_free(aio_conn *c)
{
    ev_io_stop(zvar_default_aio_base->loop, &c->w);
    ev_timer_stop(zvar_default_aio_base->loop, &c->linger);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        aio_conn_list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->user);
    free(c);
    if (--aio_conn_live == 0 && aio_conn_draining)
        zaio_server_stop_notify(0);
}

/* A close the server decides on while the peer may still be sending is lingering (as nginx's
 * lingering_close): shut down our side, then read and discard what the peer still sends until
 * it closes too (at most 2 s).  Closing a socket with unread input sends a reset, and the peer
 * could lose the last answer we wrote.  When everything the peer sent was read and answered
 * (a request with `Connection: close`), the socket is simply closed, as nginx does. */
static void aio_conn_linger_read(struct ev_loop *loop, ev_io *w, int revents)
{
    aio_conn *c = (aio_conn *)((char *)w - offsetof(aio_conn, w));
    char sink[4096];
    (void)loop;
    (void)revents;
    for (;;) {
        ssize_t n = read(c->fd, sink, sizeof(sink));
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        aio_conn_free(c);
        return;
    }
}

static void aio_conn_linger_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    aio_conn_free((aio_conn *)((char *)t - offsetof(aio_conn, linger)));
}

static void aio_conn_close(aio_conn *c, int linger)
{
    struct ev_loop *loop = zvar_default_aio_base->loop;
    if (!linger && !c->in_len && c->drained) {
        aio_conn_free(c);
        return;
    }
    if (shutdown(c->fd, SHUT_WR) < 0) {
        aio_conn_free(c);
        return;
    }
    ev_io_stop(loop, &c->w);
    ev_io_init(&c->w, aio_conn_linger_read, c->fd, EV_READ);
    ev_io_start(loop, &c->w);
    ev_timer_init(&c->linger, aio_conn_linger_timeout, 2., 0.);
    ev_timer_start(loop, &c->linger);
}

/* goodbye (may be NULL): said to every idle connection (nothing unread, nothing unsent), which
 * is then closed at once, as an SMTP server says 421 on shutdown; without it idle connections
 * are closed after their next answer (HTTP keep-alive: the client's next request is answered). */
static const char *aio_conn_goodbye;

static void aio_conn_drain(int max_seconds)
{
    aio_conn_draining = 1;
    for (aio_conn *c = aio_conn_list, *next; c && aio_conn_goodbye; c = next) {
        next = c->next;
        if (c->in_len || c->out_len)
            continue;
        if (ev_is_active(&c->linger))
            continue; /* already closing */
        (void)!send(c->fd, aio_conn_goodbye, strlen(aio_conn_goodbye), MSG_NOSIGNAL | MSG_DONTWAIT);
        aio_conn_close(c, 1); /* the peer may be sending a line right now */
    }
    if (aio_conn_live)
        zaio_server_stop_notify(max_seconds);
    else
        zaio_server_stop_notify(0);
}

/* ---- the usual wiring of a sample: accept every listener into on_accept, drain on soft-stop ---- */

static void (*aio_conn_on_accept)(int fd);

static void aio_conn_service_register(const char *service, int fd, int fd_type)
{
    if (!zaio_server_general_aio_register(zvar_default_aio_base, fd, fd_type, aio_conn_on_accept))
        zerror("service %s: not served", service);
}

/* Drains for server-stop-on-softstop-after seconds, or 3 when it is unset. */
static void aio_conn_before_softstop(void)
{
    long m = zconfig_get_int("server-stop-on-softstop-after", 0);
    aio_conn_drain(m >= 1 ? (int)m : 3);
}

static int aio_conn_main(int argc, char **argv, void (*on_accept)(int fd))
{
    aio_conn_on_accept = on_accept;
    zaio_server_service_register = aio_conn_service_register;
    zaio_server_before_softstop = aio_conn_before_softstop;
    return zaio_server_main(argc, argv);
}

static void aio_conn_out(aio_conn *c, const char *s, size_t len)
{
    if (len > sizeof(c->out) - c->out_len) {
        len = sizeof(c->out) - c->out_len;
        c->closing = 1; /* a protocol that outruns its peer this far gets cut off */
    }
    memcpy(c->out + c->out_len, s, len);
    c->out_len += len;
}

static void aio_conn_close_after(aio_conn *c)
{
    c->closing = 1;
}

/* Writes what is pending; returns -1 when the connection is gone. */
static int aio_conn_flush(aio_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

static void aio_conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    aio_conn *c = (aio_conn *)w;
    (void)revents;
    /* Read only while nothing is waiting to be written: a slow reader slows its own writer. */
    while (!c->out_len && !c->closing && c->in_len < sizeof(c->in)) {
        size_t room = sizeof(c->in) - c->in_len;
        ssize_t n = read(c->fd, c->in + c->in_len, room);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            aio_conn_free(c);
            return;
        }
        if (n < 0) {
            c->drained = 1;
            break;
        }
        c->drained = (size_t)n < room;
        c->in_len += (size_t)n;
        size_t used = c->on_data(c, c->in, c->in_len);
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        if (aio_conn_draining && c->out_len)
            c->closing = 1;
        if (aio_conn_flush(c) < 0) {
            aio_conn_free(c);
            return;
        }
        if ((size_t)n < room)
            break; /* a short read drained the socket: skip the read that would say EAGAIN */
    }
    if (c->out_len && aio_conn_flush(c) < 0) {
        aio_conn_free(c);
        return;
    }
    if (c->in_len == sizeof(c->in) && !c->out_len) {
        c->closing = 1; /* a request that does not fit is not one we serve */
    }
    if (c->closing && !c->out_len) {
        aio_conn_close(c, 0);
        return;
    }
    int want = c->out_len ? EV_WRITE : EV_READ;
    if ((c->w.events & (EV_READ | EV_WRITE)) != want) {
        ev_io_stop(loop, &c->w);
        ev_io_set(&c->w, c->fd, want);
        ev_io_start(loop, &c->w);
    }
}

/* Takes over an accepted (non-blocking) fd.  greeting, if not NULL, is sent first. */
static aio_conn *aio_conn_start(int fd, aio_conn_data_fn on_data, void *user, const char *greeting)
{
    aio_conn *c = malloc(sizeof(*c));
    if (!c) {
        close(fd);
        free(user);
        return NULL;
    }
    c->fd = fd;
    c->closing = 0;
    c->drained = 0;
    c->on_data = on_data;
    c->user = user;
    c->in_len = c->out_off = c->out_len = 0;
    ev_io_init(&c->w, aio_conn_cb, fd, EV_READ);
    ev_init(&c->linger, aio_conn_linger_timeout);
    if (greeting) {
        aio_conn_out(c, greeting, strlen(greeting));
        if (aio_conn_flush(c) < 0) {
            free(c);
            close(fd);
            free(user);
            return NULL;
        }
        if (c->out_len)
            ev_io_set(&c->w, fd, EV_WRITE);
    }
    ev_io_start(zvar_default_aio_base->loop, &c->w);
    c->prev = NULL;
    c->next = aio_conn_list;
    if (aio_conn_list)
        aio_conn_list->prev = c;
    aio_conn_list = c;
    aio_conn_live++;
    return c;
}
#endif
