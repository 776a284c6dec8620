/*
 * zs_co_hook_fd.c — the hooks on connections, waiting and fd lifetime: accept accept4 connect,
 * poll (and __poll_chk), sleep usleep nanosleep, and the bookkeeping ones, close fclose dup dup2
 * dup3 socket socketpair fcntl fcntl64 ioctl setsockopt, which keep the per-fd table true and
 * wake coroutines waiting on an fd that goes.  What is and is not covered: zs_co_hook.c.
 */
#include "zs_co_hook_int.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include "zserver.h"

/* The _FORTIFY_SOURCE entry point (not declared: this file is built without fortify). */
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
extern void __chk_fail(void) __attribute__((noreturn));

/* ---- connections ---- */

/* A coroutine that keeps calling accept on a closed or broken listener must not starve the
 * others (the seed's accept loop has no error check): let them run before returning. */
static void accept_failed_politely(void)
{
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        zs_co_wait(0.01); /* nothing will free an fd while we spin */
    else if (errno != EINTR && errno != ECONNABORTED)
        zcoroutine_yield();
}

static int co_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    fdst *s = fdst_sock(fd);
    if (!s) {
        int r = REAL(accept4)(fd, addr, len, flags);
        if (r < 0 && errno == EBADF && zs_hook_listener_retired(fd) && REAL(fcntl)(fd, F_GETFD) < 0)
            zs_hook_park_forever(); /* soft-stop closed it: see zs_co_hook_retire_listener */
        if (r < 0)
            accept_failed_politely();
        return r;
    }
    int saved = errno;
    double deadline = 0;
    for (;;) {
        int fl = s->lib_nonblock ? O_NONBLOCK : REAL(fcntl)(fd, F_GETFL);
        int flip = fl >= 0 && !(fl & O_NONBLOCK);
        if (flip && REAL(fcntl)(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            flip = 0;
        int r = REAL(accept4)(fd, addr, len, flags);
        if (flip) {
            int e = errno;
            REAL(fcntl)(fd, F_SETFL, fl); /* back as the program left it */
            errno = e;
        }
        if (r >= 0) {
            /* The new socket has the listener's type; a listener without timeouts gives one
             * without timeouts (TCP copies the listener's, unix sockets start at none), so
             * only then its entry is filled now instead of on its first read. */
            fd_forget(r);
            fdst *n = zs_hook_fdst_slot(r);
            s = fdst_sock(fd); /* fdst_slot may have moved the table */
            if (n && s && !s->rcv_us && !s->snd_us) {
                *n = *s;
                n->lib_nonblock = 0;
                n->nonblock = (flags & SOCK_NONBLOCK) != 0;
            }
            errno = saved;
            return r;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            accept_failed_politely();
            return -1;
        }
        if (!flip && !s->lib_nonblock)
            return -1; /* the program's non-blocking listener: EAGAIN is its answer */
        int lib = s->lib_nonblock;
        if (zs_hook_wait_io(fd, EV_READ, s->rcv_us, &deadline) < 0) {
            if (errno == EBADF && lib && zs_hook_listener_retired(fd))
                zs_hook_park_forever(); /* soft-stop closed it: see zs_co_hook_retire_listener */
            return -1;
        }
        s = fdst_sock(fd); /* the wait may have moved the table */
        if (!s)
            return -1;
    }
}

int accept(int fd, __SOCKADDR_ARG addr, socklen_t *restrict len)
{
    if (IN_CO())
        return co_accept4(fd, SA(addr), len, 0);
    int r = REAL(accept)(fd, addr, len);
    fd_forget(r);
    return r;
}

int accept4(int fd, __SOCKADDR_ARG addr, socklen_t *restrict len, int flags)
{
    if (IN_CO())
        return co_accept4(fd, SA(addr), len, flags);
    int r = REAL(accept4)(fd, addr, len, flags);
    fd_forget(r);
    return r;
}

static __attribute__((noinline)) int in_co_connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    fdst *s = fdst_sock(fd);
    if (!s)
        return REAL(connect)(fd, addr, len);
    int fl = REAL(fcntl)(fd, F_GETFL);
    if (fl < 0 || (fl & O_NONBLOCK))
        return REAL(connect)(fd, addr, len); /* the program's non-blocking socket */
    int saved = errno;
    double deadline = 0;
    for (;;) {
        if (REAL(fcntl)(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            return REAL(connect)(fd, addr, len);
        int r = REAL(connect)(fd, addr, len);
        int e = errno;
        REAL(fcntl)(fd, F_SETFL, fl);
        errno = e;
        if (r == 0) {
            errno = saved;
            return 0;
        }
        if (e == EAGAIN) {
            /* A unix socket whose listener's backlog is full: poll cannot tell us when it has
             * room, so look again shortly (a blocking connect would sleep in the kernel). */
            double pause = 0.005;
            if (s->snd_us) {
                double now = zs_co_now();
                if (!deadline)
                    deadline = now + (double)s->snd_us / 1e6;
                if (deadline <= now)
                    return -1; /* EAGAIN, as Linux reports a full backlog after the timeout */
                if (deadline - now < pause)
                    pause = deadline - now;
            }
            zs_co_wait(pause);
            continue;
        }
        if (e != EINPROGRESS)
            return -1;
        if (zs_hook_wait_io(fd, EV_WRITE, s->snd_us, &deadline) < 0) {
            if (errno == EAGAIN)
                errno = EINPROGRESS; /* Linux: a connect that timed out goes on in the background */
            return -1;
        }
        int err = 0;
        socklen_t elen = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
            return -1;
        if (err) {
            errno = err;
            return -1;
        }
        errno = saved;
        return 0;
    }
}

int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    if (!IN_CO())
        return REAL(connect)(fd, addr, len);
    return in_co_connect(fd, addr, len);
}

/* ---- poll ---- */

static __attribute__((noinline)) int in_co_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (timeout == 0)
        return REAL(poll)(fds, n, timeout);
    int saved = errno;
    int r = REAL(poll)(fds, n, 0);
    if (r != 0)
        return r;
    zs_co_fdwait small[16], *w = n <= 16 ? small : calloc(n, sizeof(*w));
    if (!w) {
        errno = ENOMEM;
        return -1;
    }
    double deadline = timeout > 0 ? zs_co_now() + timeout / 1000. : 0;
    for (;;) {
        for (nfds_t i = 0; i < n; i++) {
            int ev = (fds[i].events & (POLLIN | POLLPRI | POLLRDHUP | POLLRDNORM | POLLRDBAND) ? EV_READ : 0) |
                     (fds[i].events & (POLLOUT | POLLWRNORM | POLLWRBAND) ? EV_WRITE : 0);
            w[i].fd = ev ? fds[i].fd : -1; /* events 0: only errors, which poll reports anyway */
            w[i].events = ev;
            w[i].renew = 1; /* any fd, opened any way: tell libev it may be a new file */
        }
        double left = timeout > 0 ? deadline - zs_co_now() : -1;
        if (timeout > 0 && left <= 0)
            break;
        zs_co_wait_fds(w, (int)n, left);
        r = REAL(poll)(fds, n, 0);
        if (r != 0)
            break;
    }
    if (w != small)
        free(w);
    if (r >= 0)
        errno = saved;
    return r;
}

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (!IN_CO())
        return REAL(poll)(fds, n, timeout);
    return in_co_poll(fds, n, timeout);
}

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < n)
        __chk_fail();
    return poll(fds, n, timeout);
}

/* ---- sleeping ---- */

unsigned int sleep(unsigned int secs)
{
    if (!IN_CO())
        return REAL(sleep)(secs);
    zs_co_wait((double)secs);
    return 0;
}

int usleep(useconds_t us)
{
    if (!IN_CO())
        return REAL(usleep)(us);
    if (us == 0)
        zcoroutine_yield();
    else
        zs_co_wait((double)us / 1e6);
    return 0;
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (!IN_CO() || !req || req->tv_sec < 0 || req->tv_nsec < 0 || req->tv_nsec >= 1000000000L)
        return REAL(nanosleep)(req, rem);
    zs_co_wait((double)req->tv_sec + (double)req->tv_nsec / 1e9);
    if (rem)
        rem->tv_sec = rem->tv_nsec = 0;
    return 0;
}

/* ---- fd lifetime ---- */

int close(int fd)
{
    fd_forget(fd);
    return REAL(close)(fd);
}

int fclose(FILE *f)
{
    if (f)
        fd_forget(fileno(f));
    return REAL(fclose)(f);
}

int dup(int fd)
{
    int r = REAL(dup)(fd);
    fd_forget(r);
    return r;
}

/* newfd is closed and reused by the call itself: its waiters learn it afterwards. */
int dup2(int fd, int newfd)
{
    int r = REAL(dup2)(fd, newfd);
    if (r >= 0 && fd != newfd)
        fd_forget(r);
    return r;
}

int dup3(int fd, int newfd, int flags)
{
    int r = REAL(dup3)(fd, newfd, flags);
    fd_forget(r);
    return r;
}

int socket(int domain, int type, int protocol)
{
    int r = REAL(socket)(domain, type, protocol);
    fd_forget(r);
    return r;
}

int socketpair(int domain, int type, int protocol, int sv[2])
{
    int r = REAL(socketpair)(domain, type, protocol, sv);
    if (r == 0) {
        fd_forget(sv[0]);
        fd_forget(sv[1]);
    }
    return r;
}

/* F_SETFL and FIONBIO change O_NONBLOCK, setsockopt may change the timeouts: the fd's state is
 * read again when next needed.  The optional argument is passed on as glibc's fcntl takes it
 * (one pointer-sized word). */
int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int r = REAL(fcntl)(fd, cmd, arg);
    if (cmd == F_SETFL && r != -1)
        fd_refresh(fd);
    return r;
}

#if __GLIBC_PREREQ(2, 28)
int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int r = REAL(fcntl64)(fd, cmd, arg);
    if (cmd == F_SETFL && r != -1)
        fd_refresh(fd);
    return r;
}
#endif

int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int r = REAL(ioctl)(fd, req, arg);
    if (req == FIONBIO && r != -1)
        fd_refresh(fd);
    return r;
}

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    int r = REAL(setsockopt)(fd, level, name, val, len);
    if (r == 0 && level == SOL_SOCKET)
        fd_refresh(fd);
    return r;
}

