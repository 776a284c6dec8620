/*
 * zs_aio.c — aio mode (zserver.h): the libev loop, the general accept register, timers.
 *
 * A listener registered with zaio_server_general_aio_register is watched by the accept strategy
 * (zs_accept.h: who is woken for a connection, EPOLLEXCLUSIVE in libev's epoll set); this file
 * accepts: one connection per event on an exclusive listener (the level-triggered listener is
 * reported again by the next epoll_wait while connections wait, along with the connections'
 * own events, and no accept4 is spent on EAGAIN), up to ACCEPT_BATCH per wake-up on a plain one.
 * It tracks the connections it handed out (one bit an fd, counted on the group's scoreboard,
 * zs_board.h, which the strategy's fairness reads), until the close hooks forget them.
 *
 * Out of fds.  The process keeps one reserve fd; on EMFILE/ENFILE it frees it, accepts and
 * closes the connection (the client sees a clean close rather than waiting in a backlog nobody
 * drains), and takes the reserve back.  Should even that fail, the listener pauses for 100 ms
 * instead of spinning.  Such events are logged at most once a second, with a count.  A socket
 * that no longer listens (accept4: EINVAL, shut down by a process sharing it) is retired.
 *
 * Exports: the zaio_* API of zserver.h (the mode, the accept register, timers).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>
#include "zs_accept.h"
#include "zs_aio.h"
#include "core/zs_board.h"
#include "core/zs_err.h"
#include "server/zs_server.h"
#include "zc.h"

#define ACCEPT_BATCH 64

/* One listener accepted on (zaio_server_general_aio_register).  Not lib-zc's zaio_t, which is
 * the buffered aio of zs_aio_io.c: a registration hands the program one of those (handle). */
typedef struct zs_listener {
    zs_acc acc;       /* the listener's watcher and its place in the accept strategy */
    zaio_t *handle;   /* what the registration returned to the program */
    ev_timer pause;   /* out of fds with no reserve: resume accepting after a pause */
    void (*callback)(int);
} zs_listener;

struct zaio_timer_t {
    ev_timer w;
    void (*fn)(void *);
    void *ctx;
};

void (*zaio_server_service_register)(const char *service, int fd, int fd_type) = 0;
void (*zaio_server_before_service)(void) = 0;
void (*zaio_server_before_softstop)(void) = 0;

/* Accept statistics, logged when the process stops if ZSERVER_ACCEPT_STATS is set (benchmarks
 * count wake-ups per accepted connection with them). */
static unsigned long stat_wakeups, stat_accepted, stat_empty;
/* The connections this process accepted and has not closed, one bit an fd. */
static unsigned char *conn_bits;
static size_t conn_nbits;
static int reserve_fd = -1;
/* The listener whose connection callback runs now, and whether that callback closed it (then
 * accept_one frees it once the callback has returned, and nobody touches it after). */
static zs_listener *in_callback;
static int in_callback_closed;
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

/* ---- connections held (published on the accept scoreboard, zs_board.h) ---- */

/* The bitmap only grows, and an outgrown one is never freed: another thread's close() may be
 * reading it (conn_forget) while the loop thread grows it.  It holds one bit per fd, so all
 * the outgrown maps together are smaller than the last. */
static void conn_track(int fd)
{
    if ((size_t)fd >= conn_nbits) {
        size_t n = conn_nbits ? conn_nbits : 1024;
        while (n <= (size_t)fd)
            n *= 2;
        unsigned char *b = calloc(n / 8, 1);
        if (!b)
            return; /* untracked: the board undercounts, which only makes us less fair */
        if (conn_bits)
            memcpy(b, conn_bits, conn_nbits / 8);
        __atomic_store_n(&conn_bits, b, __ATOMIC_RELEASE);
        __atomic_store_n(&conn_nbits, n, __ATOMIC_RELEASE);
    }
    __atomic_fetch_or(&conn_bits[fd / 8], (unsigned char)(1u << (fd % 8)), __ATOMIC_RELAXED);
    zs_board_add_live(1);
}

/* zs_fd_forget's callback (server/zs_server.h): fd is closing or was handed out again. */
static void conn_forget(int fd)
{
    if (fd < 0 || (size_t)fd >= __atomic_load_n(&conn_nbits, __ATOMIC_ACQUIRE))
        return;
    unsigned char bit = (unsigned char)(1u << (fd % 8));
    if (__atomic_fetch_and(&__atomic_load_n(&conn_bits, __ATOMIC_ACQUIRE)[fd / 8], (unsigned char)~bit,
                           __ATOMIC_RELAXED) & bit)
        zs_board_add_live(-1);
}

/* ---- accepting ---- */

static void pause_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    zs_listener *a = (zs_listener *)((char *)t - offsetof(zs_listener, pause));
    take_reserve();
    zs_accept_start(loop, &a->acc);
}

/* The program's handle goes with the listener; the fd is the runtime's to close. */
static void listener_free(zs_listener *a)
{
    zaio_free(a->handle, 0);
    free(a);
}

/* Accepts one connection; 1 when one was handed over (or shed), 0 when there is none now,
 * -1 when the connection's callback closed the listener (a is freed). */
static int accept_one(struct ev_loop *loop, zs_listener *a)
{
    for (;;) {
        int fd = accept4(a->acc.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            stat_accepted++;
            conn_track(fd);
            in_callback = a;
            in_callback_closed = 0;
            a->callback(fd);
            in_callback = NULL;
            if (in_callback_closed) {
                listener_free(a);
                return -1;
            }
            return 1;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE) {
            if (reserve_fd >= 0) {
                close(reserve_fd);
                reserve_fd = -1;
                fd = accept4(a->acc.fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd >= 0)
                    close(fd);
                take_reserve();
                shed_count++;
                report_shed(a->acc.fd);
                if (fd >= 0 && reserve_fd >= 0)
                    return 1;
            }
            zs_accept_stop(loop, &a->acc);
            ev_timer_set(&a->pause, 0.1, 0.);
            ev_timer_start(loop, &a->pause);
            return 0;
        }
        if (errno == EINVAL) {
            zs_accept_retire(loop, &a->acc, "no longer listens (accept: EINVAL; shut down?)");
            return 0;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            zwarning("accept on fd %d: %m", a->acc.fd);
        return 0;
    }
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    zs_listener *a = (zs_listener *)((char *)w - offsetof(zs_listener, acc.w));
    stat_wakeups++;
    int r;
    if (zs_accept_is_exclusive(&a->acc)) {
        r = accept_one(loop, a);
        if (r == 0)
            stat_empty++;
        else if (r > 0)
            zs_accept_accepted(loop, &a->acc);
        return;
    }
    int i = 0;
    while (i < ACCEPT_BATCH && ev_is_active(&a->acc.w) && (r = accept_one(loop, a)) != 0) {
        if (r < 0)
            return;
        i++;
    }
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
    zs_listener *a = zs_xcalloc(1, sizeof(*a));
    a->acc.fd = fd;
    a->callback = callback;
    ev_io_init(&a->acc.w, accept_cb, fd, EV_READ);
    ev_init(&a->pause, pause_cb);
    zs_accept_add(eb->loop, &a->acc);
    a->handle = zaio_create_by_fd(fd, eb);
    return a->handle;
}

void zs_aio_close_listener(int fd)
{
    struct ev_loop *loop = zvar_default_aio_base->loop;
    zs_acc *l;
    while ((l = zs_accept_find(fd))) {
        zs_listener *a = (zs_listener *)((char *)l - offsetof(zs_listener, acc));
        zs_accept_remove(loop, l);
        ev_timer_stop(loop, &a->pause);
        if (a == in_callback)
            in_callback_closed = 1;
        else
            listener_free(a);
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
    if (!zvar_default_aio_base->loop || !fn)
        return NULL;
    zaio_timer_t *t = zs_xcalloc(1, sizeof(*t));
    t->fn = fn;
    t->ctx = ctx;
    /* libev counts from the loop's cached time, which is stale when the loop has not run for
     * a while (set from a hook, before the first iteration): refresh it so ms is never short. */
    ev_now_update(zvar_default_aio_base->loop);
    ev_timer_init(&t->w, timer_cb, ms < 0 ? 0. : (double)ms / 1000., 0.);
    ev_timer_start(zvar_default_aio_base->loop, &t->w);
    return t;
}

void zaio_timer_cancel(zaio_timer_t *t)
{
    if (!t)
        return;
    ev_timer_stop(zvar_default_aio_base->loop, &t->w);
    free(t);
}

static int aio_init(struct ev_loop *loop)
{
    __atomic_store_n(&zs_fd_forget_cb, conn_forget, __ATOMIC_RELEASE);
    zs_accept_init(loop, (zconfig_get_int)("server-proc-count", 1) /* zserver.h's form (zc.h) */ > 1);
    return 0;
}

static void aio_run(struct ev_loop *loop)
{
    ev_run(loop, 0);
    if (getenv("ZSERVER_ACCEPT_STATS")) {
        unsigned long rotations, stepbacks;
        zs_accept_counts(&rotations, &stepbacks, NULL);
        zinfo("accept stats: %lu wake-ups, %lu accepted, %lu found nothing (%s), %lu rotations, %lu step-backs", stat_wakeups,
              stat_accepted, stat_empty, zs_accept_state() > 0 ? "exclusive" : "plain", rotations, stepbacks);
    }
}

void zs_aio_counts(unsigned long *wakeups, unsigned long *accepted, unsigned long *empty)
{
    *wakeups = stat_wakeups;
    *accepted = stat_accepted;
    *empty = stat_empty;
}

static void aio_stop(struct ev_loop *loop)
{
    ev_break(loop, EVBREAK_ALL);
}

static const zs_server_mode aio_mode = {
    "zaio", &zaio_server_service_register, &zaio_server_before_service, &zaio_server_before_softstop,
    aio_init, aio_run, aio_stop, zs_aio_close_listener,
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
