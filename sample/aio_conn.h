/*
 * aio_conn.h — the connection loop the aio samples (greeter.c, http_hello.c) share, on libev.
 * The sample defines two functions:
 *     static void on_accept(int fd);    takes an accepted fd: calls aio_conn_start()
 *     static size_t on_data(aio_conn *c, const char *in, size_t len);    -> bytes consumed
 * on_data appends its answer to c->out (aio_conn_out) and sets c->closing to close after it.
 * main() returns aio_conn_main(argc, argv).  Nothing blocks; a connection is one struct, kept for
 * the next connection once closed (up to AIO_CONN_KEEP of them, as nginx keeps its connection
 * array): an 80 KB struct freed and allocated per connection made glibc give the top of its heap
 * back and fault it in again, a brk and 0.4 page faults per connection.
 *
 * Soft-stop: every connection is closed after its next answer; an idle one is first told
 * aio_conn_goodbye, when the sample sets it (SMTP's 421).  The process returns once the last
 * connection is gone, or after server-stop-on-softstop-after seconds (3 when unset).
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

typedef struct aio_conn aio_conn;
struct aio_conn {
    ev_io w;                  /* first: the callback casts back */
    ev_timer linger;          /* bounds a lingering close */
    aio_conn *prev, *next;    /* every live connection, for the goodbye */
    int fd;
    int closing;              /* close once the output is written */
    int drained;              /* the last read emptied the socket (it returned less than asked) */
    void *user;               /* the sample's per-connection state, freed with the connection */
    size_t in_len, out_off, out_len;
    char in[16384];
    char out[65536];
};

static void on_accept(int fd);
static size_t on_data(aio_conn *c, const char *in, size_t len);

#define AIO_CONN_KEEP 256
static aio_conn *aio_conn_list;
static aio_conn *aio_conn_spare;  /* closed connections kept for reuse, through next */
static int aio_conn_nspare;
static long aio_conn_live;       /* connections open in this process */
static int aio_conn_draining;    /* soft-stopping: close each connection after its next answer */
static const char *aio_conn_goodbye;

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
    if (aio_conn_nspare < AIO_CONN_KEEP) {
        c->next = aio_conn_spare;
        aio_conn_spare = c;
        aio_conn_nspare++;
    } else {
        free(c);
    }
    if (--aio_conn_live == 0 && aio_conn_draining)
        zaio_server_stop_notify(0);
}

/* Lingering close: discard what the peer still sends until it closes too (or the timer fires). */
static void aio_conn_linger_read(struct ev_loop *loop, ev_io *w, int revents)
{
    aio_conn *c = (aio_conn *)w;
    char sink[4096];
    ssize_t n;
    (void)loop;
    (void)revents;
    while ((n = read(c->fd, sink, sizeof(sink))) > 0)
        ;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    aio_conn_free(c);
}

static void aio_conn_linger_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    aio_conn_free((aio_conn *)((char *)t - offsetof(aio_conn, linger)));
}

/* A close the server decides on while the peer may still be sending lingers (nginx's
 * lingering_close): closing a socket with unread input sends a reset, and the peer could lose
 * the last answer.  So: shut down our side, drain for at most 2 s.  When everything the peer
 * sent was read and answered, the socket is simply closed, as nginx does. */
static void aio_conn_close(aio_conn *c, int linger)
{
    struct ev_loop *loop = zvar_default_aio_base->loop;
    if ((!linger && !c->in_len && c->drained) || shutdown(c->fd, SHUT_WR) < 0) {
        aio_conn_free(c);
        return;
    }
    ev_io_stop(loop, &c->w);
    ev_io_init(&c->w, aio_conn_linger_read, c->fd, EV_READ);
    ev_io_start(loop, &c->w);
    ev_timer_set(&c->linger, 2., 0.);
    ev_timer_start(loop, &c->linger);
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
        size_t used = on_data(c, c->in, c->in_len);
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
    if (c->in_len == sizeof(c->in) && !c->out_len)
        c->closing = 1; /* a request that does not fit is not one we serve */
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

/* Takes over an accepted (non-blocking) fd and user (freed with it); greeting, if not NULL, is
 * sent first. */
static void aio_conn_start(int fd, void *user, const char *greeting)
{
    struct ev_loop *loop = zvar_default_aio_base->loop;
    aio_conn *c = aio_conn_spare;
    if (c) {
        aio_conn_spare = c->next;
        aio_conn_nspare--;
    } else {
        c = malloc(sizeof(*c));
    }
    if (!c) {
        close(fd);
        free(user);
        return;
    }
    c->fd = fd;
    c->closing = c->drained = 0;
    c->user = user;
    c->in_len = c->out_off = c->out_len = 0;
    ev_io_init(&c->w, aio_conn_cb, fd, EV_READ);
    ev_init(&c->linger, aio_conn_linger_timeout);
    ev_io_start(loop, &c->w);
    c->prev = NULL;
    c->next = aio_conn_list;
    if (aio_conn_list)
        aio_conn_list->prev = c;
    aio_conn_list = c;
    aio_conn_live++;
    if (greeting) {
        aio_conn_out(c, greeting, strlen(greeting));
        aio_conn_cb(loop, &c->w, 0); /* sends it, and waits to write the rest if it must */
    }
}

static void aio_conn_service_register(const char *service, int fd, int fd_type)
{
    if (!zaio_server_general_aio_register(zvar_default_aio_base, fd, fd_type, on_accept))
        zerror("service %s: not served", service);
}

static void aio_conn_before_softstop(void)
{
    long m = zconfig_get_second("server-stop-on-softstop-after", 0); /* a duration: 30, 5s, 2m */
    aio_conn_draining = 1;
    for (aio_conn *c = aio_conn_list, *next; c && aio_conn_goodbye; c = next) {
        next = c->next;
        if (c->in_len || c->out_len || ev_is_active(&c->linger))
            continue; /* busy: closed after its answer; or already closing */
        (void)!send(c->fd, aio_conn_goodbye, strlen(aio_conn_goodbye), MSG_NOSIGNAL | MSG_DONTWAIT);
        aio_conn_close(c, 1); /* the peer may be sending a line right now */
    }
    zaio_server_stop_notify(!aio_conn_live ? 0 : m >= 1 ? (int)m : 3);
}

static int aio_conn_main(int argc, char **argv)
{
    zaio_server_service_register = aio_conn_service_register;
    zaio_server_before_softstop = aio_conn_before_softstop;
    return zaio_server_main(argc, argv);
}
#endif
