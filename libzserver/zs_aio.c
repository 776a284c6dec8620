/*
 * zs_aio.c — aio mode (zserver.h): the libev loop, the general accept register, timers.
 *
 * The general register accepts until EAGAIN on each readiness event (one wake-up serves a
 * burst).  When the process runs out of fds it does not spin: it keeps one reserve fd, and on
 * EMFILE/ENFILE frees it, accepts and closes the connection at once (the client sees a clean
 * close rather than waiting in a backlog we cannot drain), and takes the reserve back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ev.h>
#include "zs_err.h"
#include "zs_server.h"
#include "zserver.h"

struct zaio_t {
    zaio_t *next;
    ev_io w;
    int fd;
    void (*callback)(int);
};

struct zaio_timer_t {
    ev_timer w;
    void (*fn)(void *);
    void *ctx;
};

static zaio_base_t base;
zaio_base_t *zvar_default_aio_base = &base;
void (*zaio_server_service_register)(const char *service, int fd, int fd_type) = 0;
void (*zaio_server_before_service)(void) = 0;
void (*zaio_server_before_softstop)(void) = 0;

static zaio_t *registered;
static int reserve_fd = -1;

static void take_reserve(void)
{
    if (reserve_fd < 0)
        reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    zaio_t *a = (zaio_t *)((char *)w - offsetof(zaio_t, w));
    for (;;) {
        int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            a->callback(fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if ((errno == EMFILE || errno == ENFILE) && reserve_fd >= 0) {
            close(reserve_fd);
            reserve_fd = -1;
            fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0)
                close(fd);
            take_reserve();
            zwarning("out of file descriptors: a connection on fd %d was closed unserved", a->fd);
            if (fd >= 0)
                continue;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            zwarning("accept on fd %d: %m", a->fd);
        }
        return;
    }
}

zaio_t *zaio_server_general_aio_register(zaio_base_t *eb, int fd, int fd_type, void (*callback)(int))
{
    if (fd_type == zvar_tcp_listen_type_fifo) {
        zerror("zaio_server_general_aio_register: fd %d is a fifo: read it yourself, there is nothing to accept", fd);
        return NULL;
    }
    if (!eb || !eb->loop || !callback) {
        zerror("zaio_server_general_aio_register: no loop or no callback");
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        zerror("zaio_server_general_aio_register: fd %d: %m", fd);
        return NULL;
    }
    take_reserve();
    zaio_t *a = zs_xcalloc(1, sizeof(*a));
    a->fd = fd;
    a->callback = callback;
    ev_io_init(&a->w, accept_cb, fd, EV_READ);
    ev_io_start(eb->loop, &a->w);
    a->next = registered;
    registered = a;
    return a;
}

static void aio_close_listener(int fd)
{
    for (zaio_t **pp = &registered; *pp;) {
        zaio_t *a = *pp;
        if (a->fd == fd) {
            ev_io_stop(base.loop, &a->w);
            *pp = a->next;
            free(a);
        } else {
            pp = &a->next;
        }
    }
    close(fd);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zaio_timer_t *t = (zaio_timer_t *)w;
    void (*fn)(void *) = t->fn;
    void *ctx = t->ctx;
    free(t); /* before the call, so the handler may set a new timer (the seed's re-arm) */
    fn(ctx);
}

zaio_timer_t *zaio_timer_set(long ms, void (*fn)(void *ctx), void *ctx)
{
    if (!base.loop || !fn)
        return NULL;
    zaio_timer_t *t = zs_xcalloc(1, sizeof(*t));
    t->fn = fn;
    t->ctx = ctx;
    ev_timer_init(&t->w, timer_cb, ms < 0 ? 0. : (double)ms / 1000., 0.);
    ev_timer_start(base.loop, &t->w);
    return t;
}

void zaio_timer_cancel(zaio_timer_t *t)
{
    if (!t)
        return;
    ev_timer_stop(base.loop, &t->w);
    free(t);
}

static int aio_init(struct ev_loop *loop)
{
    base.loop = loop;
    return 0;
}

static void aio_run(struct ev_loop *loop)
{
    ev_run(loop, 0);
}

static void aio_stop(struct ev_loop *loop)
{
    ev_break(loop, EVBREAK_ALL);
}

static const zs_server_mode aio_mode = {
    "zaio", &zaio_server_service_register, &zaio_server_before_service, &zaio_server_before_softstop,
    aio_init, aio_run, aio_stop, aio_close_listener,
};

int zaio_server_main(int argc, char **argv)
{
    return zs_server_main(&aio_mode, argc, argv);
}

void zaio_server_stop_notify(int stop_after_second)
{
    zs_server_stop_notify(stop_after_second);
}

void zaio_server_detach_from_master(void)
{
    zs_server_detach();
}
