/*
 * zs_accept.c — the accept strategy of aio mode (zs_accept.h): which of the workers sharing a
 * listener a new connection wakes.  doc/accept.md has the design and the measurements.
 *
 * Exclusive entries.  Linux wakes one process per connection when the listener sits in each
 * process's epoll set with EPOLLEXCLUSIVE, but only in the very set the process sleeps in, and
 * libev cannot set the flag: so the release callback (libev calls it just before epoll_wait,
 * after its own epoll_ctl calls) rewrites libev's entry for the listener with the same data word
 * plus the flag (zs_libev_epoll.c).  That happens only once a self-check of the libev
 * assumptions passed in this very process; any failure leaves the listeners plain (correct,
 * only herd-prone) with one log line saying why.  An exclusive entry is taken out before its
 * watcher stops, since libev does not delete entries and a listener stays in an epoll set after
 * close() while other processes hold it.  When libev rebuilds its epoll set (ev_fork watcher:
 * after a fork, or after one of its own epoll_ctl calls failed) our entries are gone and are
 * made again; a listener that reports an error or hang-up is what makes libev fail (its
 * EPOLL_CTL_MOD of an exclusive entry), so it is retired, and repeated rebuilds end in plain.
 *
 * Taking turns.  The kernel wakes the first sleeping process in the socket's wait queue, so
 * after every ROTATE_EVERY accepts a worker with siblings moves its entry to the tail.  A
 * worker holding clearly more connections than its least-loaded sibling (the group's
 * scoreboard, zs_board.h) takes its entry out and sleeps so that the sibling gets the CPU;
 * it comes back when no longer ahead (checked before each sleep) or after FAIR_PAUSE.
 *
 * libev's release/acquire callback slot has no getter: this module takes it, calls the
 * program's callbacks given with zaio_set_loop_release_cb from its own, and notices (ev_check
 * watcher: ours did not run in an iteration) when the program replaced ours: plain, one line.
 * Exports: zs_accept_* (zs_accept.h), zaio_set_loop_release_cb (zserver.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include "zs_accept.h"
#include "zs_libev_epoll.h"
#include "core/zs_board.h"
#include "zserver.h"

#define ROTATE_EVERY 4
#define FAIR_SLACK 2        /* see fair_ahead */
#define FAIR_PAUSE 0.001    /* s */
#define REBUILDS_MAX 3      /* rebuilds of libev's epoll set without a fork, within */
#define REBUILDS_WINDOW 1.0 /* s, before we go plain */

static zs_acc *listeners;
static int siblings;        /* other workers share the listeners */
static int state = -1;      /* zs_accept_state */
static int pending;         /* some listener waits for its exclusive entry */
static int fair_out;        /* listeners stepped back (their fair timer runs) */
static unsigned long n_rotations, n_stepbacks, n_rebuilds;
static int rebuilds_unforked;
static ev_tstamp rebuilds_since;
static pid_t our_pid;
static ev_fork rebuild_w;
static ev_check check_w;
/* libev's release/acquire slot of the_loop: ours while owned; the program's callbacks chained */
static struct ev_loop *the_loop;
static int owned;
static unsigned long releases, releases_seen;
static void (*user_release)(struct ev_loop *);
static void (*user_acquire)(struct ev_loop *);

static void fair_cancel(struct ev_loop *loop, zs_acc *l);

/* Back to libev's plain entry, wherever our own one stands. */
static void to_plain(struct ev_loop *loop, zs_acc *l)
{
    int out = ev_is_active(&l->fair);
    fair_cancel(loop, l);
    if (!l->excl && !out)
        return;
    if (zs_libev_plain_restore(l->excl_epfd, l->fd, l->excl_data) < 0)
        zerror("accept: fd %d lost from libev's epoll set: %m", l->fd);
    l->excl = 0;
}

/* Plain from now on, every listener included; the first call logs why (at warning level when
 * the program broke something of ours, else info). */
static void give_up(struct ev_loop *loop, int warn, const char *why)
{
    if (state >= 0) {
        if (warn)
            zwarning("accept: plain listener registration (%s)", why);
        else
            zinfo("accept: plain listener registration (%s)", why);
    }
    state = -1;
    pending = 0;
    for (zs_acc *l = listeners; l; l = l->next)
        to_plain(loop, l);
    zs_libev_check_end(loop);
    if (ev_is_active(&check_w)) {
        ev_ref(loop);
        ev_check_stop(loop, &check_w);
    }
}

/* Makes l's entry exclusive; gives up (plain) when it cannot be done. */
static void upgrade(struct ev_loop *loop, zs_acc *l)
{
    char why[160];
    l->excl_epfd = zs_libev_epoll_fd(l->fd, &l->excl_data);
    if (l->excl_epfd == -2) {
        pending = 1; /* out of fds right now: the next iteration tries again */
        return;
    }
    if (l->excl_epfd < 0) {
        snprintf(why, sizeof(why), "libev's entry for listener fd %d is not found in /proc/self/fdinfo", l->fd);
        give_up(loop, 0, why);
        return;
    }
    if (zs_libev_excl_replace(l->excl_epfd, l->fd, l->excl_data) < 0) {
        snprintf(why, sizeof(why), "listener fd %d: epoll_ctl: %s", l->fd, strerror(errno));
        give_up(loop, 0, why);
        return;
    }
    l->excl = 1;
    l->since_rotate = 0;
}

/* Takes our entry out (before the watcher stops, or for a step-back). */
static void drop(zs_acc *l)
{
    if (!l->excl)
        return;
    if (epoll_ctl(l->excl_epfd, EPOLL_CTL_DEL, l->fd, NULL) < 0)
        zwarning("accept: fd %d: epoll_ctl(DEL): %m", l->fd);
    l->excl = 0;
}

/* ---- fairness across workers (zs_board.h) ---- */

/* The listen queue is filling: every worker is behind, throughput first. */
static int queue_filling(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 || len < offsetof(struct tcp_info, tcpi_sacked) + 4)
        return 0; /* not TCP (a unix socket): no queue figure */
    /* for a listening socket: tcpi_unacked = connections queued, tcpi_sacked = the backlog */
    return ti.tcpi_unacked * 2 >= ti.tcpi_sacked;
}

/* This worker holds more than its share: over 1.5 times the connections of the least-loaded
 * accepting sibling on the scoreboard, plus FAIR_SLACK (no board or no sibling: never).  The
 * ratio keeps a connection-per-request load, where counts wobble, from stepping back often. */
static int fair_ahead(void)
{
    int fewest = zs_board_fewest_others();
    return fewest >= 0 && zs_board_live() > fewest + fewest / 2 + FAIR_SLACK;
}

/* Puts a stepped-back listener's entry back (at the tail of the socket's wait queue). */
static void fair_readd(struct ev_loop *loop, zs_acc *l)
{
    ev_timer_stop(loop, &l->fair);
    fair_out--;
    if (zs_libev_excl_insert(l->excl_epfd, l->fd, l->excl_data) == 0) {
        l->excl = 1;
        l->since_rotate = 0;
        return;
    }
    /* short of ENOMEM this cannot happen; libev's own registration is back */
    give_up(loop, 1, "epoll_ctl(ADD) of a listener failed");
}

/* Forgets a step-back (its entry stays out: the caller puts back what it needs). */
static void fair_cancel(struct ev_loop *loop, zs_acc *l)
{
    if (!ev_is_active(&l->fair))
        return;
    ev_timer_stop(loop, &l->fair);
    fair_out--;
}

static void fair_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    fair_readd(loop, (zs_acc *)((char *)t - offsetof(zs_acc, fair)));
}

/* Before the loop sleeps: a worker that stepped back and is no longer ahead takes its entry
 * back at once; the pause is only there for a worker that has nothing else to do. */
static void fair_release(struct ev_loop *loop)
{
    if (fair_ahead())
        return;
    for (zs_acc *l = listeners; l; l = l->next)
        if (ev_is_active(&l->fair))
            fair_readd(loop, l);
}

void zs_accept_accepted(struct ev_loop *loop, zs_acc *l)
{
    if (!siblings || !l->excl)
        return;
    if (fair_ahead() && !queue_filling(l->fd)) {
        drop(l);
        n_stepbacks++;
        ev_timer_set(&l->fair, FAIR_PAUSE, 0.);
        ev_timer_start(loop, &l->fair);
        fair_out++;
        return;
    }
    if (++l->since_rotate < ROTATE_EVERY)
        return;
    /* to the tail of the wait queue, so the next connection wakes another idle worker first */
    l->since_rotate = 0;
    n_rotations++;
    if (zs_libev_excl_replace(l->excl_epfd, l->fd, l->excl_data) < 0) {
        l->excl = 0; /* libev's plain entry is back */
        give_up(loop, 1, "epoll_ctl of a listener failed");
    }
}

/* ---- libev's callbacks ---- */

/* Called by libev just before epoll_wait, after its own epoll_ctl calls. */
static void release_cb(struct ev_loop *loop) EV_NOEXCEPT
{
    char why[200];
    releases++;
    if (state == 0 && zs_libev_check_release(why, sizeof(why)) < 0)
        give_up(loop, 0, why);
    if (fair_out)
        fair_release(loop);
    if (pending && state > 0) {
        pending = 0;
        for (zs_acc *l = listeners; l && state > 0; l = l->next)
            if (ev_is_active(&l->w) && !l->excl && !ev_is_active(&l->fair))
                upgrade(loop, l);
    }
    if (user_release)
        user_release(loop);
}

static void acquire_cb(struct ev_loop *loop) EV_NOEXCEPT
{
    if (user_acquire)
        user_acquire(loop);
}

/* After each epoll_wait: our release callback must have run before it (else the program
 * replaced it), and the self-check's verdict is due once. */
static void check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    (void)w, (void)revents;
    char why[200];
    if (releases == releases_seen) {
        owned = 0;
        give_up(loop, 1, "libev's release callback was replaced by another ev_set_loop_release_cb: "
                "a program chains its own with zaio_set_loop_release_cb");
        return;
    }
    releases_seen = releases;
    if (state != 0)
        return;
    int r = zs_libev_check_verdict(loop, why, sizeof(why));
    if (r < 0) {
        give_up(loop, 0, why);
    } else if (r > 0) {
        zs_libev_check_end(loop);
        state = 1;
        pending = 1;
        zdebug("accept: libev self-check passed: exclusive listener registration");
    }
}

/* A listener in error or hung up (shut down by some process sharing it). */
static int listener_broken(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL));
}

/* libev is rebuilding its epoll set (a fork, or an epoll_ctl of its own failed): our entries
 * go with the old set, libev adds the listeners back plainly and we upgrade them again. */
static void rebuild_cb(struct ev_loop *loop, ev_fork *w, int revents)
{
    (void)w, (void)revents;
    n_rebuilds++;
    for (zs_acc *l = listeners; l; l = l->next) {
        l->excl = l->dropped = 0;
        fair_cancel(loop, l);
        if (!l->retired && listener_broken(l->fd))
            zs_accept_retire(loop, l, "reports an error or hang-up (shut down?)");
    }
    if (getpid() != our_pid) { /* a fork: expected */
        our_pid = getpid();
        rebuilds_unforked = 0;
    } else {
        if (ev_now(loop) - rebuilds_since > REBUILDS_WINDOW) {
            rebuilds_unforked = 0;
            rebuilds_since = ev_now(loop);
        }
        if (++rebuilds_unforked >= REBUILDS_MAX && state >= 0) {
            char why[120];
            snprintf(why, sizeof(why), "libev rebuilt its epoll set %d times within %.0f s without a fork",
                     rebuilds_unforked, REBUILDS_WINDOW);
            give_up(loop, 1, why);
        }
    }
    if (state >= 0)
        pending = 1;
}

void zaio_set_loop_release_cb(void (*release)(struct ev_loop *loop), void (*acquire)(struct ev_loop *loop))
{
    user_release = release;
    user_acquire = acquire;
    if (the_loop && !owned)
        ev_set_loop_release_cb(the_loop, release, acquire);
}

/* ---- the interface ---- */

void zs_accept_init(struct ev_loop *loop, int has_siblings)
{
    char why[200];
    the_loop = loop;
    siblings = has_siblings;
    our_pid = getpid();
    ev_fork_init(&rebuild_w, rebuild_cb);
    ev_fork_start(loop, &rebuild_w);
    ev_unref(loop); /* our own watchers must not keep the loop running */
    state = 0;
    const char *how = getenv("ZSERVER_ACCEPT");
    if (how && !strcmp(how, "plain")) {
        give_up(loop, 0, "ZSERVER_ACCEPT=plain");
    } else if (zs_libev_check_start(loop, why, sizeof(why)) < 0) {
        give_up(loop, 0, why);
    } else {
        ev_set_loop_release_cb(loop, release_cb, acquire_cb);
        owned = 1;
        ev_check_init(&check_w, check_cb);
        ev_check_start(loop, &check_w);
        ev_unref(loop);
    }
    if (!owned && (user_release || user_acquire))
        ev_set_loop_release_cb(loop, user_release, user_acquire);
}

void zs_accept_add(struct ev_loop *loop, zs_acc *l)
{
    ev_init(&l->fair, fair_cb);
    l->next = listeners;
    listeners = l;
    zs_accept_start(loop, l);
}

zs_acc *zs_accept_find(int fd)
{
    for (zs_acc *l = listeners; l; l = l->next)
        if (l->fd == fd)
            return l;
    return NULL;
}

void zs_accept_remove(struct ev_loop *loop, zs_acc *l)
{
    zs_accept_stop(loop, l);
    for (zs_acc **pp = &listeners; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
}

/* A restart in the iteration that stopped the watcher makes libev no epoll_ctl at all (it has
 * not seen the stop), so the entry stop took out goes back as libev left it. */
void zs_accept_start(struct ev_loop *loop, zs_acc *l)
{
    if (l->retired)
        return;
    if (l->dropped && ev_iteration(loop) == l->stop_iter &&
        zs_libev_plain_restore(l->excl_epfd, l->fd, l->excl_data) < 0)
        zerror("accept: fd %d lost from libev's epoll set: %m", l->fd);
    l->dropped = 0;
    ev_io_start(loop, &l->w);
    if (state >= 0)
        pending = 1;
}

void zs_accept_stop(struct ev_loop *loop, zs_acc *l)
{
    int out = ev_is_active(&l->fair) || l->excl;
    fair_cancel(loop, l);
    drop(l);
    if (out && ev_is_active(&l->w)) {
        l->dropped = 1;
        l->stop_iter = ev_iteration(loop);
    }
    ev_io_stop(loop, &l->w);
}

void zs_accept_retire(struct ev_loop *loop, zs_acc *l, const char *why)
{
    if (l->retired)
        return;
    zwarning("accept: listener fd %d %s: no longer watched", l->fd, why);
    zs_accept_stop(loop, l);
    l->retired = 1;
}

int zs_accept_is_exclusive(const zs_acc *l)
{
    return l->excl;
}

int zs_accept_state(void)
{
    return state;
}

void zs_accept_counts(unsigned long *rotations, unsigned long *stepbacks, unsigned long *rebuilds)
{
    if (rotations)
        *rotations = n_rotations;
    if (stepbacks)
        *stepbacks = n_stepbacks;
    if (rebuilds)
        *rebuilds = n_rebuilds;
}
