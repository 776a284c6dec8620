/*
 * zs_libev_epoll.c — the accept strategy's hands inside libev's epoll set (zs_libev_epoll.h).
 *
 * libev cannot register an fd with EPOLLEXCLUSIVE, so the accept strategy rewrites libev's own
 * entry for a listener: the same data word (libev matches events with it), plus the flag.  This
 * file holds everything that relies on how libev's epoll backend works: finding its epoll set
 * (libev does not tell which fd it is) and an entry's data word through /proc/self/fdinfo,
 * rewriting entries, and the start-up self-check that each of those assumptions holds in the
 * running process before a listener is touched (doc/accept.md, "libev assumptions").
 * Exports: zs_libev_epoll_entry, zs_libev_epoll_fd, zs_libev_excl_insert/_replace,
 * zs_libev_plain_restore, zs_libev_check_start/_release/_verdict/_end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "zs_libev_epoll.h"
#include "zserver.h"

/* Lines "tfd: FD events: HEX data: HEX ...", read a chunk at a time: a set holding thousands
 * of connections lists them all. */
int zs_libev_epoll_entry(int epfd, int fd, uint32_t *events, uint64_t *data)
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

int zs_libev_epoll_fd(int fd, uint64_t *data)
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
        if (zs_libev_epoll_entry(epfd, fd, &events, &dw) < 0) {
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

#if ZS_ACCEPT_EXCLUSIVE

int zs_libev_excl_insert(int epfd, int fd, uint64_t data)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = data };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
        return 0;
    int saved = errno;
    if (zs_libev_plain_restore(epfd, fd, data) < 0)
        zerror("accept: fd %d lost from libev's epoll set: %m", fd);
    errno = saved;
    return -1;
}

int zs_libev_excl_replace(int epfd, int fd, uint64_t data)
{
    if (epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != ENOENT)
        return -1;
    return zs_libev_excl_insert(epfd, fd, data);
}

#else /* the exclusive path is compiled out: nothing is ever made exclusive */

int zs_libev_excl_insert(int epfd, int fd, uint64_t data)
{
    (void)epfd, (void)fd, (void)data;
    errno = ENOSYS;
    return -1;
}

int zs_libev_excl_replace(int epfd, int fd, uint64_t data)
{
    return zs_libev_excl_insert(epfd, fd, data);
}

#endif

int zs_libev_plain_restore(int epfd, int fd, uint64_t data)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = data };
    if (epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != ENOENT)
        return -1;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* ---- the start-up self-check ---- */

static struct {
    int rd, wr;         /* the probe pipe (-1: none) */
    ev_io w;            /* libev's watcher on rd */
    int epfd;           /* libev's epoll set, as found through rd */
    uint64_t data;      /* libev's data word for rd */
    int step;           /* 0: started, 1: rewritten and written to (verdict due) */
    int misses;         /* iterations whose epoll_wait did not bring the probe's event */
} P = { -1, -1, { 0 }, -1, 0, 0, 0 };

/* epoll_wait interrupted by a signal brings no event: the verdict waits a few iterations. */
#define PROBE_MISSES_MAX 3

#if ZS_ACCEPT_EXCLUSIVE

static void probe_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)w, (void)revents; /* the verdict looks at the pending event, never runs it */
}

int zs_libev_check_start(struct ev_loop *loop, char *why, size_t whylen)
{
    if (ev_version_major() != EV_VERSION_MAJOR) {
        snprintf(why, whylen, "libev at run time is %d.%d, built for %d.%d", ev_version_major(), ev_version_minor(),
                 EV_VERSION_MAJOR, EV_VERSION_MINOR);
        return -1;
    }
    if (ev_backend(loop) != EVBACKEND_EPOLL) {
        snprintf(why, whylen, "libev does not use epoll (backend 0x%x)", ev_backend(loop));
        return -1;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
        snprintf(why, whylen, "self-check: pipe: %s", strerror(errno));
        return -1;
    }
    P.rd = p[0];
    P.wr = p[1];
    P.step = P.misses = 0;
    ev_io_init(&P.w, probe_cb, P.rd, EV_READ);
    ev_io_start(loop, &P.w);
    ev_unref(loop); /* the probe must not keep the loop running */
    return 0;
}

int zs_libev_check_release(char *why, size_t whylen)
{
    if (P.rd < 0 || P.step != 0)
        return 1;
    uint32_t events;
    P.epfd = zs_libev_epoll_fd(P.rd, &P.data);
    if (P.epfd == -2)
        return 0;
    if (P.epfd < 0) {
        snprintf(why, whylen, "libev's entry for a watched fd (events EPOLLIN, the fd in the data word's low "
                 "32 bits) is not in exactly one epoll set of /proc/self/fdinfo when the release callback runs");
        return -1;
    }
    if (zs_libev_excl_replace(P.epfd, P.rd, P.data) < 0) {
        snprintf(why, whylen, errno == EINVAL ? "the kernel has no EPOLLEXCLUSIVE" : "epoll_ctl: %s", strerror(errno));
        return -1;
    }
    if (zs_libev_epoll_entry(P.epfd, P.rd, &events, &P.data) < 0 || !(events & EPOLLEXCLUSIVE)) {
        snprintf(why, whylen, "an entry rewritten with EPOLLEXCLUSIVE does not show the flag in /proc/self/fdinfo");
        return -1;
    }
    if (write(P.wr, "x", 1) != 1) {
        snprintf(why, whylen, "self-check: write: %s", strerror(errno));
        return -1;
    }
    P.step = 1;
    return 1;
}

int zs_libev_check_verdict(struct ev_loop *loop, char *why, size_t whylen)
{
    (void)loop;
    if (P.rd < 0 || P.step != 1)
        return 0;
    if (!ev_is_pending(&P.w)) {
        if (++P.misses < PROBE_MISSES_MAX)
            return 0;
        snprintf(why, whylen, "libev did not deliver the event of an entry rewritten with EPOLLEXCLUSIVE "
                 "(%d loop iterations)", P.misses);
        return -1;
    }
    uint32_t events;
    uint64_t data;
    if (zs_libev_epoll_entry(P.epfd, P.rd, &events, &data) < 0 || !(events & EPOLLEXCLUSIVE) || data != P.data) {
        snprintf(why, whylen, "libev changed an entry rewritten with EPOLLEXCLUSIVE while delivering its event");
        return -1;
    }
    return 1;
}

#else

int zs_libev_check_start(struct ev_loop *loop, char *why, size_t whylen)
{
    (void)loop;
    snprintf(why, whylen, "built without the exclusive path (libev %d.%d, EPOLLEXCLUSIVE %s)", EV_VERSION_MAJOR,
             EV_VERSION_MINOR,
#ifdef EPOLLEXCLUSIVE
             "known"
#else
             "unknown"
#endif
    );
    return -1;
}

int zs_libev_check_release(char *why, size_t whylen)
{
    (void)why, (void)whylen;
    return 1;
}

int zs_libev_check_verdict(struct ev_loop *loop, char *why, size_t whylen)
{
    (void)loop, (void)why, (void)whylen;
    return 0;
}

#endif

/* The probe's entry goes before its fds close: libev keeps believing it has one (it never
 * deletes entries itself), which is harmless for an fd it no longer watches. */
void zs_libev_check_end(struct ev_loop *loop)
{
    if (P.rd < 0)
        return;
    ev_ref(loop);
    ev_io_stop(loop, &P.w);
    if (P.epfd >= 0 && epoll_ctl(P.epfd, EPOLL_CTL_DEL, P.rd, NULL) < 0 && errno != ENOENT)
        P.epfd = -1; /* close() below takes the entry out all the same */
    close(P.rd);
    close(P.wr);
    P.rd = P.wr = P.epfd = -1;
}
