/*
 * zs_libev_epoll.h — what the accept strategy (zs_accept.c) does inside libev's own epoll set,
 * and the start-up check of the libev assumptions that makes it safe (zs_libev_epoll.c).
 * doc/accept.md lists the assumptions; t/unit/test_accept_libev.c tests each of them.
 */
#ifndef ZS_LIBEV_EPOLL_H
#define ZS_LIBEV_EPOLL_H
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <ev.h>

/* The exclusive path is built only against the libev it was checked with: libev 4 (its epoll
 * backend keeps the fd in the low 32 bits of an entry's data word and a generation counter in
 * the high 32, and calls the release callback just before epoll_wait), on Linux with
 * EPOLLEXCLUSIVE.  Anywhere else (or with -DZS_ACCEPT_EXCLUSIVE=0) listeners stay plain. */
#ifndef ZS_ACCEPT_EXCLUSIVE
#if EV_VERSION_MAJOR == 4 && defined(__linux__) && defined(EPOLLEXCLUSIVE)
#define ZS_ACCEPT_EXCLUSIVE 1
#else
#define ZS_ACCEPT_EXCLUSIVE 0
#endif
#endif

/* Finds fd's registration in the epoll set epfd, as /proc/self/fdinfo/EPFD lists it: 0 with its
 * event mask and data word, -1 when fd is not in the set or the file cannot be read. */
int zs_libev_epoll_entry(int epfd, int fd, uint32_t *events, uint64_t *data);

/* libev's epoll set, found through fd: the one epoll fd of this process whose entry for fd is
 * libev's (events EPOLLIN, fd in the data word's low 32 bits); its data word in *data.  -1 when
 * none or more than one is; -2 when the process is out of fds to look with (try again later). */
int zs_libev_epoll_fd(int fd, uint64_t *data);

/* Adds fd to epfd with libev's data word and EPOLLEXCLUSIVE (at the tail of the socket's wait
 * queue); when that fails, adds the plain registration libev made back and returns -1 (errno
 * from the exclusive attempt). */
int zs_libev_excl_insert(int epfd, int fd, uint64_t data);
/* Replaces fd's entry in epfd (libev's plain one, or an exclusive one: it then only moves to
 * the tail of the wait queue) by the exclusive one.  0, or -1 as above. */
int zs_libev_excl_replace(int epfd, int fd, uint64_t data);
/* Puts back the plain entry libev believes it has (events EPOLLIN, its data word), whatever
 * fd has in epfd now.  0, or -1 with errno. */
int zs_libev_plain_restore(int epfd, int fd, uint64_t data);

/* The start-up self-check, on a probe pipe watched by the loop, in three steps (one loop
 * iteration):  start: the loop uses the epoll backend of the libev we were built for, and the
 * probe is watched;  release (from the release callback, after libev's epoll_ctl calls): the
 * probe's entry is found with the data word we expect and rewritten EPOLLEXCLUSIVE, and a byte
 * written;  verdict (from an ev_check watcher, after epoll_wait): libev queued the probe's
 * event.  Each returns -1 with the broken assumption in why; release returns 0 when it must be
 * tried again (out of fds), 1 when done; verdict returns 1 when all held, 0 when it is not due
 * yet (or epoll_wait brought nothing: a few iterations are allowed).  end frees the probe
 * (always called once start succeeded). */
int zs_libev_check_start(struct ev_loop *loop, char *why, size_t whylen);
int zs_libev_check_release(char *why, size_t whylen);
int zs_libev_check_verdict(struct ev_loop *loop, char *why, size_t whylen);
void zs_libev_check_end(struct ev_loop *loop);

#endif
