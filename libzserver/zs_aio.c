/*
 * zs_aio.c — aio mode (zserver.h): the libev loop, the general accept register, timers.
 *
 * Accepting.  N processes share one listening socket, each watching it with libev (level-
 * triggered).  Each wake-up accepts at most ACCEPT_BATCH connections, so one busy process cannot
 * take a whole burst from the others.  We measured an EPOLLEXCLUSIVE registration in a private
 * epoll fd watched by libev: the kernel only counts an exclusive wake-up as delivered when a
 * process sleeps in epoll_wait on that very fd, so every worker was still woken (2.02 context
 * switches per connection with 2 idle workers, as plain) while it cost 3 more syscalls per
 * wake-up; it was removed.  Most extra wake-ups end inside the kernel: epoll re-checks a
 * level-triggered listener and puts the loser back to sleep before it returns to user space.
 *
 * Out of fds.  The process keeps one reserve fd; on EMFILE/ENFILE it frees it, accepts and
 * closes the connection (the client sees a clean close rather than waiting in a backlog nobody
 * drains), and takes the reserve back.  Should even that fail, the listener pauses for 100 ms
 * instead of spinning.  Such events are logged at most once a second, with a count.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>
#include "zs_err.h"
#include "zs_server.h"
#include "zserver.h"

#define ACCEPT_BATCH 64

struct zaio_t {
    zaio_t *next;
    ev_io w;
    ev_timer pause;   /* out of fds with no reserve: resume accepting after a pause */
    int fd;           /* the listening socket */
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
/* Accept statistics, logged when the process stops if ZSERVER_ACCEPT_STATS is set (benchmarks
 * count wake-ups per accepted connection with them). */
static unsigned long stat_wakeups, stat_accepted, stat_empty;
static int reserve_fd = -1;
static unsigned long shed_count;  /* connections closed unserved since the last report */
static time_t shed_reported;

static void take_reserve(void)
{
    if (reserve_fd < 0)
        reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void report_shed(int fd)
{
    time_t now = time(NULL);
    if (now == shed_reported)
        return;
    zwarning("out of file descriptors: %lu connection%s on fd %d closed unserved", shed_count,
             shed_count == 1 ? "" : "s", fd);
    shed_count = 0;
    shed_reported = now;
}

static void pause_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    zaio_t *a = (zaio_t *)((char *)t - offsetof(zaio_t, pause));
    take_reserve();
    ev_io_start(loop, &a->w);
}

/* Accepts one connection; 1 when one was handed over (or shed), 0 when there is none now. */
static int accept_one(struct ev_loop *loop, zaio_t *a)
{
    for (;;) {
        int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            stat_accepted++;
            a->callback(fd);
            return 1;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE) {
            if (reserve_fd >= 0) {
                close(reserve_fd);
                reserve_fd = -1;
                fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd >= 0)
                    close(fd);
                take_reserve();
                shed_count++;
                report_shed(a->fd);
                if (fd >= 0 && reserve_fd >= 0)
                    return 1;
            }
            ev_io_stop(loop, &a->w);
            ev_timer_set(&a->pause, 0.1, 0.);
            ev_timer_start(loop, &a->pause);
            return 0;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            zwarning("accept on fd %d: %m", a->fd);
        return 0;
    }
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    zaio_t *a = (zaio_t *)((char *)w - offsetof(zaio_t, w));
    int i = 0;
    stat_wakeups++;
    while (i < ACCEPT_BATCH && accept_one(loop, a))
        i++;
    if (i == 0)
        stat_empty++;
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
    ev_init(&a->pause, pause_cb);
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
            ev_timer_stop(base.loop, &a->pause);
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
    if (getenv("ZSERVER_ACCEPT_STATS"))
        zinfo("accept stats: %lu wake-ups, %lu accepted, %lu found nothing", stat_wakeups, stat_accepted,
              stat_empty);
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
