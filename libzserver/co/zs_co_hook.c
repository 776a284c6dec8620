/*
 * zs_co_hook.c — blocking calls made inside a coroutine yield instead of blocking the process:
 * what every hook shares.  This file: libc's functions behind ours, the per-fd state table, the
 * wait of a hooked call, and zs_co_hook_mark_listener (zs_co.h); libc's functions behind ours:
 * zs_co_hook_real.c.  The hooks themselves:
 * zs_co_hook_io.c (input and output), zs_co_hook_fd.c (connections, poll, sleeping, fd
 * lifetime); what they share inline: zs_co_hook_int.h.
 *
 * libzserver defines these libc symbols; a program linked with it (the archive is linked whole,
 * so every server and sample gets them) calls ours, and ours call libc's through
 * dlsym(RTLD_NEXT, name), resolved once, on first use (zs_co_hook_real.c).
 *
 * Hooked, and what they do inside a coroutine:
 *   accept accept4 connect                     wait for the listener / the connection
 *   read readv recv recvfrom recvmsg           wait for input      (SO_RCVTIMEO honoured)
 *   write writev send sendto sendmsg           wait for room; a stream socket is written whole,
 *                                              as a blocking send would  (SO_SNDTIMEO honoured)
 *   poll                                       wait on every fd and the timeout
 *   sleep usleep nanosleep                     a timer; the other coroutines run meanwhile
 *   close fclose dup2 dup3                     wake coroutines waiting on the fd that goes (they
 *                                              get -1/EBADF), then close / replace it
 *   __read_chk __recv_chk __recvfrom_chk __poll_chk   the _FORTIFY_SOURCE spellings of the same
 *   socket socketpair dup setsockopt           bookkeeping only: forget or refresh what is
 *   fcntl fcntl64 ioctl                        cached about the fd (F_SETFL, FIONBIO)
 * The waiting applies to sockets the program has not made non-blocking (O_NONBLOCK,
 * SOCK_NONBLOCK): those still return EAGAIN, as the program asked.  Listening sockets that
 * libzserver itself made non-blocking (the ones masterd hands over) count as blocking.  Timeouts
 * end with -1/EAGAIN like the kernel's (connect: EINPROGRESS, as Linux does).
 *
 * How: the call is tried without blocking (MSG_DONTWAIT; accept and connect set O_NONBLOCK for
 * the one call and put the flags back), and on EAGAIN the coroutine waits for the fd in the
 * loop (ev_io, plus a timer for a timeout) and tries again.  No fd's flags change for good, so
 * the same fd used outside a coroutine still blocks.  Per-fd state (is it a socket, its type,
 * its timeouts, O_NONBLOCK) is cached in a table, filled lazily with fstat/getsockopt/fcntl and
 * forgotten when the fd is closed or re-created through these hooks, or when setsockopt, fcntl
 * F_SETFL or ioctl FIONBIO change it.
 *
 * Outside a coroutine (the main context, other threads, a program that never starts one) each
 * hook is a thread-local test and a jump to libc's function through its pointer: same result,
 * same errno, under a nanosecond (t/bench/coroutine/hookcost.c).  The fd hooks also tell the
 * owner's callback (aio mode's scoreboard) that an fd went, and on the thread that runs
 * coroutines do the bookkeeping above (a few nanoseconds more).
 * Inside a coroutine errno is left untouched on success, too.
 *
 * NOT hooked — these block the whole process when called inside a coroutine: DNS resolution
 * (getaddrinfo, gethostbyname: glibc's resolver calls its internal, non-interposable socket
 * functions), file, pipe and tty I/O (read/write on anything that is not a socket passes
 * through and blocks as usual), stdio on sockets (fread/fgets/fprintf use internal calls),
 * select, pselect, ppoll, epoll_wait, pread/pwrite, sendfile, splice, recvmmsg/sendmmsg,
 * clock_nanosleep, waitpid, flock, lockf, and anything in other threads.  An fd closed by
 * other means than these hooks (close_range, glibc-internal closes) does not wake coroutines
 * waiting on it.
 * A statically linked program (-static) cannot use dlsym(RTLD_NEXT) and is not supported.
 */
#include "zs_co_hook_int.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- per-fd state ---- */

fdst *zs_hook_fdt;
size_t zs_hook_nfdt;

fdst *zs_hook_fdst_slot(int fd)
{
    if ((size_t)fd < zs_hook_nfdt)
        return &zs_hook_fdt[fd];
    size_t n = zs_hook_nfdt ? zs_hook_nfdt : 64;
    while (n <= (size_t)fd)
        n *= 2;
    fdst *p = realloc(zs_hook_fdt, n * sizeof(*p));
    if (!p)
        return NULL;
    memset(p + zs_hook_nfdt, 0, (n - zs_hook_nfdt) * sizeof(*p));
    zs_hook_fdt = p;
    zs_hook_nfdt = n;
    return &zs_hook_fdt[fd];
}

static long long timeo_us(int fd, int opt)
{
    struct timeval tv;
    socklen_t len = sizeof(tv);
    if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len) < 0)
        return 0;
    return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

fdst *zs_hook_fdst_probe(int fd)
{
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
        return NULL;
    int type, fl;
    socklen_t len = sizeof(type);
    fdst *s = zs_hook_fdst_slot(fd);
    if (!s || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || (fl = REAL(fcntl)(fd, F_GETFL)) < 0)
        return NULL;
    s->stream = type == SOCK_STREAM;
    s->nonblock = (fl & O_NONBLOCK) != 0;
    s->rcv_us = timeo_us(fd, SO_RCVTIMEO);
    s->snd_us = timeo_us(fd, SO_SNDTIMEO);
    s->sock = 1;
    return s;
}

void zs_co_hook_mark_listener(int fd)
{
    fdst *s = fd >= 0 ? zs_hook_fdst_slot(fd) : NULL;
    if (s)
        s->lib_nonblock = 1;
}

/* Listener fds closed by a soft-stop (zs_co_hook_retire_listener), until the number is reused. */
#define RETIRED_MAX 64
static int retired[RETIRED_MAX];
static int nretired;

void zs_co_hook_retire_listener(int fd)
{
    if (fd >= 0 && nretired < RETIRED_MAX)
        retired[nretired++] = fd;
}

int zs_hook_listener_retired(int fd)
{
    for (int i = 0; i < nretired; i++)
        if (retired[i] == fd)
            return 1;
    return 0;
}

void zs_hook_park_forever(void)
{
    for (;;)
        zs_co_wait(-1);
}

/* ---- waiting ---- */

int zs_hook_wait_io(int fd, int events, long long timeout_us, double *deadline)
{
    double left = -1;
    if (timeout_us > 0) {
        double now = zs_co_now();
        if (*deadline == 0)
            *deadline = now + (double)timeout_us / 1e6;
        left = *deadline - now;
        if (left <= 0) {
            errno = EAGAIN;
            return -1;
        }
    }
    switch (zs_co_wait_fd(fd, events, left)) {
    case ZS_CO_WOKEN:
        return 0;
    case ZS_CO_TIMEDOUT:
        errno = EAGAIN;
        return -1;
    default:
        errno = EBADF;
        return -1;
    }
}
