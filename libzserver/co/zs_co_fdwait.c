/*
 * zs_co_fdwait.c — coroutines waiting on fds (zs_co.h): zs_co_wait_fds, zs_co_wait_fd, and
 * zs_co_fd_closing, which wakes them when their fd goes.  The hooks (zs_co_hook*.c) wait here.
 *
 * Each fd a coroutine waited on has an entry with one ev_io per direction, kept across waits:
 * a coroutine that reads, waits, wakes, reads and waits again (a request loop) stops and
 * restarts the same watcher within one loop iteration, which libev turns into no system call
 * at all.  The watchers are set for the fd (ev_io_set: "this may be a new file") only when the
 * entry is fresh, i.e. after close() or anything else that makes the number another file
 * (zs_co_fd_closing), or when the waiter asks for it (poll, on any fd).
 *
 * Invariant: a waiter is linked in its fd's entry exactly while its coroutine is parked in
 * zs_co_wait_fds (w->linked says so); zs_co_fd_closing unlinks every waiter of the fd it wakes.
 */
#include <stdlib.h>
#include <string.h>
#include "zs_co.h"
#include "zs_co_int.h"

typedef struct zs_co_fdent {
    ev_io io[2];            /* EV_READ, EV_WRITE */
    zs_co_fdwait *waiters;  /* every coroutine waiting on this fd, either direction */
    int fd;
    unsigned char set[2];   /* io[k] was ev_io_set for the file now behind fd */
} fdent;

static const int dir_events[2] = { EV_READ, EV_WRITE };

/* fdw[fd]: the fd's watchers and waiting coroutines (NULL: never waited on).  The hooks look
 * at it (zs_co_hook_int.h: zs_co_fdw, zs_co_nfdw) to skip zs_co_fd_closing for an fd no
 * coroutine ever waited on. */
#define fdw zs_co_fdw
#define nfdw zs_co_nfdw
__attribute__((visibility("hidden"))) fdent **fdw;
__attribute__((visibility("hidden"))) size_t nfdw;

/* An fd is ready (or broken): wake the waiters on it that wanted this direction. */
static void io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    fdent *e = io->data;
    for (zs_co_fdwait *w = e->waiters; w; w = w->next) {
        if (w->events & revents) {
            w->revents |= revents & (EV_READ | EV_WRITE);
            zs_co_wake(w->co, ZS_CO_WOKEN);
        } else if (revents & EV_ERROR) { /* libev gave up on the fd (closed behind its back) */
            zs_co_wake(w->co, ZS_CO_WOKEN);
        }
    }
}

/* fd's entry, made on first use (the table grows as needed); out of memory stops the program. */
static fdent *fdent_get(int fd)
{
    if ((size_t)fd >= nfdw) {
        size_t n = nfdw ? nfdw : 64;
        while (n <= (size_t)fd)
            n *= 2;
        fdent **p = realloc(fdw, n * sizeof(*p));
        if (!p)
            zs_co_panic("out of memory for the fd table");
        memset(p + nfdw, 0, (n - nfdw) * sizeof(*p));
        fdw = p;
        nfdw = n;
    }
    fdent *e = fdw[fd];
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e)
            zs_co_panic("out of memory for an fd entry");
        e->fd = fd;
        for (int k = 0; k < 2; k++) {
            ev_init(&e->io[k], io_cb);
            e->io[k].data = e;
        }
        fdw[fd] = e;
    }
    return e;
}

/* Starts or stops e's watchers to match what its waiters want. */
static void fdent_arm(fdent *e, int renew)
{
    int want = 0;
    for (zs_co_fdwait *w = e->waiters; w; w = w->next)
        want |= w->events;
    for (int k = 0; k < 2; k++) {
        ev_io *io = &e->io[k];
        if (!(want & dir_events[k])) {
            if (ev_is_active(io))
                ev_io_stop(zs_co_rt_loop, io);
        } else if (!ev_is_active(io)) {
            if (!e->set[k] || renew) {
                ev_io_set(io, e->fd, dir_events[k]);
                e->set[k] = 1;
            }
            ev_io_start(zs_co_rt_loop, io);
        }
    }
}

/* Puts w first on e's waiters. */
static void fdent_link(fdent *e, zs_co_fdwait *w)
{
    w->prev = NULL;
    w->next = e->waiters;
    if (w->next)
        w->next->prev = w;
    e->waiters = w;
    w->linked = 1;
}

/* Takes w off e's waiters, if it is still on them (zs_co_fd_closing may have taken it). */
static void fdent_unlink(fdent *e, zs_co_fdwait *w)
{
    if (!w->linked)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        e->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->linked = 0;
}

int zs_co_wait_fds(zs_co_fdwait *w, int n, double timeout_s)
{
    zs_co *co = zs_co_current;
    if (!co)
        zs_co_panic("zs_co_wait_fds outside a coroutine");
    for (int i = 0; i < n; i++) {
        w[i].co = co;
        w[i].revents = 0;
        w[i].linked = 0;
        if (w[i].fd < 0 || !(w[i].events & (EV_READ | EV_WRITE)))
            continue;
        fdent *e = fdent_get(w[i].fd);
        fdent_link(e, &w[i]);
        fdent_arm(e, w[i].renew);
    }
    int why = zs_co_wait(timeout_s);
    for (int i = 0; i < n; i++) {
        if (!w[i].linked)
            continue;
        fdent *e = fdw[w[i].fd];
        fdent_unlink(e, &w[i]);
        fdent_arm(e, 0);
    }
    return why;
}

int zs_co_wait_fd(int fd, int events, double timeout_s)
{
    zs_co_fdwait w = { 0 };
    w.fd = fd;
    w.events = events;
    return zs_co_wait_fds(&w, 1, timeout_s);
}

void zs_co_fd_closing(int fd)
{
    if (!zs_co_owner_thread || fd < 0 || (size_t)fd >= nfdw || !fdw[fd])
        return;
    fdent *e = fdw[fd];
    /* Before the fd goes: libev must not watch a closed fd, and the next file with this
     * number is another file. */
    for (int k = 0; k < 2; k++) {
        if (ev_is_active(&e->io[k]))
            ev_io_stop(zs_co_rt_loop, &e->io[k]);
        e->set[k] = 0;
    }
    zs_co_fdwait *w = e->waiters, *next;
    e->waiters = NULL;
    for (; w; w = next) {
        next = w->next;
        w->linked = 0;
        zs_co_wake_closed(w->co);
    }
}
