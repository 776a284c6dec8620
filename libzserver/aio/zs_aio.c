/*
 * zs_aio.c — aio mode (zserver.h): the libev loop, the general accept register, timers.
 *
 * Accepting without a thundering herd.  N processes share one listening socket.  Registered
 * plainly, every idle process is woken for every new connection and all but one find nothing.
 * Linux (>= 4.5) wakes just one when the listener sits in each process's epoll set with
 * EPOLLEXCLUSIVE, but only in the very epoll set the process sleeps in: an exclusive
 * registration in a private epoll fd watched by libev wakes everyone (measured: 2.02 context
 * switches per connection with 2 idle workers, the same as plain).  libev cannot set the flag,
 * so we do it in libev's own epoll set: once libev has added the listener (it does so in the
 * loop iteration after ev_io_start), the release callback that libev calls just before it
 * sleeps reads libev's registration for the fd from /proc/self/fdinfo (the data word libev
 * matches events with) and replaces it with the same data plus EPOLLEXCLUSIVE.  libev keeps
 * believing the fd is registered as it left it, and dispatches its events as usual.  Where
 * that cannot be done (another backend, an old kernel, no /proc, ZSERVER_ACCEPT=plain) the
 * registration stays plain: correct, only herd-prone.  We take the entry out ourselves before
 * the watcher stops (EMFILE pause, soft-stop close), because a listener stays in an epoll set
 * after close() while other processes hold it, and an exclusive entry nobody serves would
 * swallow wake-ups; libev re-adds it plainly on restart and we upgrade it again.  When libev
 * rebuilds its epoll set (after fork, or on a stale event) an ev_fork watcher notices.
 *
 * Taking turns.  The kernel wakes the first sleeping process in the socket's wait queue, so
 * a worker that is always back asleep first would take every connection.  After every
 * ROTATE_EVERY accepts a worker with siblings moves its entry to the tail of the queue (delete
 * and add again), so idle workers take turns.  That does not spread a burst on a busy machine:
 * a sibling that is woken but gets no CPU cannot accept, and the running worker takes the whole
 * burst (nginx does the same: 100 %/0 % on keep-alive benchmarks).  So workers publish the
 * connections they hold on the group's scoreboard (zs_board.h; the close hooks count them
 * down), and a worker holding clearly more than its least-loaded sibling steps back: it takes
 * its entry out, sleeps, and the sibling gets the CPU and the next connections.  It comes back
 * when it is no longer ahead (checked each time its loop is about to sleep) or after FAIR_PAUSE.
 * A pause judged from inside one worker alone (a run of accepts piling up fds) was tried first:
 * connection-per-request loads look the same from inside and it cost them 10-20 % of req/s.
 * An exclusive worker accepts one connection per event, as nginx without multi_accept: the
 * level-triggered listener is reported again by the next epoll_wait while connections wait,
 * along with the connections' own events, and no accept4 is spent on EAGAIN.  A plain
 * registration accepts up to ACCEPT_BATCH per wake-up.
 *
 * Out of fds.  The process keeps one reserve fd; on EMFILE/ENFILE it frees it, accepts and
 * closes the connection (the client sees a clean close rather than waiting in a backlog nobody
 * drains), and takes the reserve back.  Should even that fail, the listener pauses for 100 ms
 * instead of spinning.  Such events are logged at most once a second, with a count.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>
#include "zs_aio.h"
#include "core/zs_board.h"
#include "core/zs_err.h"
#include "server/zs_server.h"
#include "zc.h"

#define ACCEPT_BATCH 64
#define ROTATE_EVERY 4
#define FAIR_SLACK 2     /* see fair_ahead */
#define FAIR_PAUSE 0.001 /* s */

/* One listener accepted on (zaio_server_general_aio_register).  Not lib-zc's zaio_t, which is
 * the buffered aio of zs_aio_io.c: a registration hands the program one of those (handle). */
typedef struct zs_listener zs_listener;
struct zs_listener {
    zaio_t *handle;   /* what the registration returned to the program */
    zs_listener *next;
    ev_io w;
    ev_timer pause;   /* out of fds with no reserve: resume accepting after a pause */
    int fd;           /* the listening socket */
    int excl;         /* our EPOLLEXCLUSIVE entry for fd is in libev's epoll set excl_epfd */
    int excl_epfd;
    uint64_t excl_data;  /* libev's data word for fd */
    unsigned since_rotate;  /* accepts since the entry last went to the tail of the queue */
    ev_timer fair;    /* stepped back (entry out) for fairness: add it again when this fires */
    void (*callback)(int);
};

struct zaio_timer_t {
    ev_timer w;
    void (*fn)(void *);
    void *ctx;
};

void (*zaio_server_service_register)(const char *service, int fd, int fd_type) = 0;
void (*zaio_server_before_service)(void) = 0;
void (*zaio_server_before_softstop)(void) = 0;

static zs_listener *registered;
/* Accept statistics, logged when the process stops if ZSERVER_ACCEPT_STATS is set (benchmarks
 * count wake-ups per accepted connection with them). */
static unsigned long stat_wakeups, stat_accepted, stat_empty, stat_rotations, stat_stepbacks;
static int has_siblings;  /* server-proc-count > 1: other workers share the listeners */
/* The connections this process accepted and has not closed, one bit an fd. */
static unsigned char *conn_bits;
static size_t conn_nbits;
static int reserve_fd = -1;
static unsigned long shed_count;  /* connections closed unserved since the last report */
static time_t shed_reported;

/* 1: exclusive registrations work here; 0: not tried yet; -1: plain only (and why, once). */
static int excl_state;
static int excl_pending;   /* some listener waits for its exclusive registration */
static int fair_out;       /* listeners stepped back for fairness (their fair timer runs) */
static ev_fork excl_fork;

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

/* ---- exclusive registration in libev's epoll set ---- */

static void fair_release(struct ev_loop *loop);
static void fair_cancel(struct ev_loop *loop, zs_listener *a);

static void excl_give_up(const char *why)
{
    if (excl_state >= 0)
        zdebug("accept: plain listener registration (%s)", why);
    excl_state = -1;
}

/* Finds fd's registration in the epoll set epfd (/proc/self/fdinfo/EPFD, lines
 * "tfd: FD events: HEX data: HEX ...", read a chunk at a time: a set holding thousands of
 * connections lists them all): 0 with its events and data word, -1 if absent. */
int zs_aio_epoll_entry(int epfd, int fd, uint32_t *events, uint64_t *data)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0)
        return -1;
    size_t len = 0;
    int found = -1;
    for (;;) {
        ssize_t n = read(f, buf + len, sizeof(buf) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = 0;
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            int tfd;
            unsigned ev;
            unsigned long long d;
            *nl = 0;
            if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &ev, &d) == 3 && tfd == fd) {
                *events = ev;
                *data = d;
                found = 0;
                break;
            }
            line = nl + 1;
        }
        if (found == 0)
            break;
        len -= (size_t)(line - buf); /* keep the unfinished line */
        memmove(buf, line, len);
        if (len == sizeof(buf) - 1)
            len = 0; /* a line this long is none of ours */
    }
    close(f);
    return found;
}

/* Adds a->fd to libev's epoll set with libev's data word and EPOLLEXCLUSIVE, at the tail of
 * the socket's wait queue; when that fails, adds libev's own plain registration back instead
 * and returns -1 (errno from the exclusive attempt). */
static int excl_insert(zs_listener *a)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = a->excl_data };
    if (epoll_ctl(a->excl_epfd, EPOLL_CTL_ADD, a->fd, &ev) == 0)
        return 0;
    int saved = errno;
    ev.events = EPOLLIN;
    if (epoll_ctl(a->excl_epfd, EPOLL_CTL_ADD, a->fd, &ev) < 0)
        zerror("accept: fd %d lost from the epoll set: %m", a->fd);
    errno = saved;
    return -1;
}

/* Replaces the registration of a->fd (libev's plain one, or our exclusive one: then it only
 * moves to the tail of the wait queue) by the exclusive one. */
static int excl_add(zs_listener *a)
{
    if (epoll_ctl(a->excl_epfd, EPOLL_CTL_DEL, a->fd, NULL) < 0)
        return -1;
    return excl_insert(a);
}

/* libev does not tell which fd is its epoll set: it is the one epoll fd of ours whose entry for
 * fd carries libev's data word (fd in the low 32 bits).  -1 when none or more than one does;
 * -2 when the process is out of fds to look with (try again later). */
static int libev_epoll_fd(int fd, uint64_t *data)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return errno == EMFILE || errno == ENFILE ? -2 : -1;
    int found = -1, count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], target[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
            continue;
        target[n] = 0;
        if (strcmp(target, "anon_inode:[eventpoll]"))
            continue;
        int epfd = atoi(e->d_name);
        uint32_t events;
        uint64_t dw;
        if (epfd == dirfd(d))
            continue;
        errno = 0;
        if (zs_aio_epoll_entry(epfd, fd, &events, &dw) < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                closedir(d);
                return -2;
            }
            continue;
        }
        if ((events & ~(uint32_t)(EPOLLERR | EPOLLHUP)) == EPOLLIN && (uint32_t)dw == (uint32_t)fd) {
            found = epfd;
            *data = dw;
            count++;
        }
    }
    closedir(d);
    return count == 1 ? found : -1;
}

static void excl_apply(struct ev_loop *loop, zs_listener *a)
{
    if (ev_backend(loop) != EVBACKEND_EPOLL) {
        excl_give_up("libev does not use epoll");
        return;
    }
    a->excl_epfd = libev_epoll_fd(a->fd, &a->excl_data);
    if (a->excl_epfd == -2) {
        excl_pending = 1; /* out of fds right now: the next loop iteration tries again */
        return;
    }
    if (a->excl_epfd < 0) {
        excl_give_up("libev's registration of the listener is not found in /proc/self/fdinfo");
        return;
    }
    if (excl_add(a) < 0) {
        excl_give_up(errno == EINVAL ? "the kernel has no EPOLLEXCLUSIVE" : "epoll_ctl failed");
        return;
    }
    excl_state = 1;
    a->excl = 1;
    a->since_rotate = 0;
}

/* Called by libev just before it sleeps, after it has made its own epoll_ctl calls. */
static void excl_release_cb(struct ev_loop *loop) EV_NOEXCEPT
{
    if (fair_out)
        fair_release(loop);
    if (!excl_pending)
        return;
    excl_pending = 0;
    for (zs_listener *a = registered; a && excl_state >= 0; a = a->next)
        if (ev_is_active(&a->w) && !a->excl)
            excl_apply(loop, a);
}

static void excl_acquire_cb(struct ev_loop *loop) EV_NOEXCEPT
{
    (void)loop;
}

/* libev is rebuilding its epoll set: our entries go with the old one. */
static void excl_fork_cb(struct ev_loop *loop, ev_fork *w, int revents)
{
    (void)w;
    (void)revents;
    for (zs_listener *a = registered; a; a = a->next) {
        a->excl = 0;
        fair_cancel(loop, a); /* libev adds the listener back itself; we upgrade it */
    }
    excl_pending = 1;
}

/* Takes our entry out before the watcher stops (see the top of the file). */
static void excl_drop(zs_listener *a)
{
    if (!a->excl)
        return;
    if (epoll_ctl(a->excl_epfd, EPOLL_CTL_DEL, a->fd, NULL) < 0)
        zwarning("accept: fd %d: epoll_ctl(DEL): %m", a->fd);
    a->excl = 0;
}

static void listener_start(struct ev_loop *loop, zs_listener *a)
{
    ev_io_start(loop, &a->w);
    if (excl_state >= 0)
        excl_pending = 1;
}

static void listener_stop(struct ev_loop *loop, zs_listener *a)
{
    fair_cancel(loop, a);
    excl_drop(a);
    ev_io_stop(loop, &a->w);
}

/* ---- accepting ---- */

static void pause_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    zs_listener *a = (zs_listener *)((char *)t - offsetof(zs_listener, pause));
    take_reserve();
    listener_start(loop, a);
}

/* Accepts one connection; 1 when one was handed over (or shed), 0 when there is none now. */
static int accept_one(struct ev_loop *loop, zs_listener *a)
{
    for (;;) {
        int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            stat_accepted++;
            conn_track(fd);
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
            listener_stop(loop, a);
            ev_timer_set(&a->pause, 0.1, 0.);
            ev_timer_start(loop, &a->pause);
            return 0;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            zwarning("accept on fd %d: %m", a->fd);
        return 0;
    }
}

/* Moves our entry to the tail of the socket's wait queue, so the next connection wakes another
 * idle worker first. */
static void rotate(zs_listener *a)
{
    a->since_rotate = 0;
    stat_rotations++;
    if (excl_add(a) < 0) {
        a->excl = 0;
        excl_give_up("epoll_ctl failed");
    }
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

/* Puts a stepped-back listener's entry back (at the tail of the socket's wait queue). */
static void fair_readd(struct ev_loop *loop, zs_listener *a)
{
    ev_timer_stop(loop, &a->fair);
    fair_out--;
    if (excl_insert(a) == 0) {
        a->excl = 1;
        a->since_rotate = 0;
        return;
    }
    /* short of ENOMEM this cannot happen; libev's own registration is back */
    zwarning("accept: fd %d: epoll_ctl(ADD): %m; back to a plain registration", a->fd);
    excl_give_up("epoll_ctl failed");
}

/* Forgets a step-back whose entry is gone anyway (listener stopped, epoll set rebuilt). */
static void fair_cancel(struct ev_loop *loop, zs_listener *a)
{
    if (!ev_is_active(&a->fair))
        return;
    ev_timer_stop(loop, &a->fair);
    fair_out--;
}

static void fair_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    fair_readd(loop, (zs_listener *)((char *)t - offsetof(zs_listener, fair)));
}

/* This worker holds more than its share: over 1.5 times the connections of the least-loaded
 * accepting sibling on the scoreboard, plus FAIR_SLACK (no board or no sibling: never).  The
 * ratio keeps a connection-per-request load, where counts wobble, from stepping back often. */
static int fair_ahead(void)
{
    int fewest = zs_board_fewest_others();
    return fewest >= 0 && zs_board_live() > fewest + fewest / 2 + FAIR_SLACK;
}

/* Before the loop sleeps: a worker that stepped back and is no longer ahead (it closed
 * connections, or a sibling caught up) takes its entry back at once, without waiting out the
 * pause: the pause is only there for a worker that has nothing else to do. */
static void fair_release(struct ev_loop *loop)
{
    if (fair_ahead())
        return;
    for (zs_listener *a = registered; a; a = a->next)
        if (ev_is_active(&a->fair))
            fair_readd(loop, a);
}

/* After an accept: ahead of the siblings (fair_ahead), take the entry out for FAIR_PAUSE at
 * most, so that this worker sleeps and a sibling gets the CPU and the next connections (unless
 * the listen queue is filling); otherwise every ROTATE_EVERY accepts go to the tail. */
static void after_accept(struct ev_loop *loop, zs_listener *a)
{
    if (!has_siblings)
        return;
    if (fair_ahead() && !queue_filling(a->fd)) {
        excl_drop(a);
        stat_stepbacks++;
        ev_timer_set(&a->fair, FAIR_PAUSE, 0.);
        ev_timer_start(loop, &a->fair);
        fair_out++;
        return;
    }
    if (++a->since_rotate >= ROTATE_EVERY)
        rotate(a);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    zs_listener *a = (zs_listener *)((char *)w - offsetof(zs_listener, w));
    stat_wakeups++;
    if (a->excl) {
        if (!accept_one(loop, a))
            stat_empty++;
        else if (a->excl) /* the callback may have closed the listener */
            after_accept(loop, a);
        return;
    }
    int i = 0;
    while (i < ACCEPT_BATCH && ev_is_active(&a->w) && accept_one(loop, a))
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
    zs_listener *a = zs_xcalloc(1, sizeof(*a));
    a->fd = fd;
    a->callback = callback;
    ev_io_init(&a->w, accept_cb, fd, EV_READ);
    ev_init(&a->pause, pause_cb);
    ev_init(&a->fair, fair_cb);
    a->next = registered;
    registered = a;
    listener_start(eb->loop, a);
    a->handle = zaio_create_by_fd(fd, eb);
    return a->handle;
}

static void aio_close_listener(int fd)
{
    for (zs_listener **pp = &registered; *pp;) {
        zs_listener *a = *pp;
        if (a->fd == fd) {
            listener_stop(zvar_default_aio_base->loop, a);
            ev_timer_stop(zvar_default_aio_base->loop, &a->pause);
            *pp = a->next;
            zaio_free(a->handle, 0);
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
    if (!zvar_default_aio_base->loop || !fn)
        return NULL;
    zaio_timer_t *t = zs_xcalloc(1, sizeof(*t));
    t->fn = fn;
    t->ctx = ctx;
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
    const char *how = getenv("ZSERVER_ACCEPT");
    has_siblings = (zconfig_get_int)("server-proc-count", 1) > 1; /* zserver.h's form (zc.h) */
    if (how && !strcmp(how, "plain")) {
        excl_give_up("ZSERVER_ACCEPT=plain");
    } else {
        ev_set_loop_release_cb(loop, excl_release_cb, excl_acquire_cb);
        ev_fork_init(&excl_fork, excl_fork_cb);
        ev_fork_start(loop, &excl_fork);
        ev_unref(loop); /* the fork watcher alone must not keep the loop running */
    }
    return 0;
}

static void aio_run(struct ev_loop *loop)
{
    ev_run(loop, 0);
    if (getenv("ZSERVER_ACCEPT_STATS"))
        zinfo("accept stats: %lu wake-ups, %lu accepted, %lu found nothing (%s), %lu rotations, %lu step-backs", stat_wakeups,
              stat_accepted, stat_empty, excl_state > 0 ? "exclusive" : "plain", stat_rotations, stat_stepbacks);
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
