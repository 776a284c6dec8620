/*
 * zs_co_hook.c — blocking calls made inside a coroutine yield instead of blocking the process.
 *
 * libzserver defines these libc symbols; a program linked with it (the archive is linked whole,
 * so masterd and every sample get them too) calls ours, and ours call libc's through
 * dlsym(RTLD_NEXT, name), resolved once, on first use.
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
 * hook is a thread-local test and a call of libc's function: same result, same errno (on the
 * thread that runs coroutines, the fd hooks also do the bookkeeping above).
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
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "server/zs_server.h"
#include "zs_co.h"
#include "zserver.h"

/* glibc's socket prototypes take transparent unions under _GNU_SOURCE. */
#if defined(__USE_GNU) && defined(__GNUC__) && !defined(__cplusplus)
#define SA(a) ((a).__sockaddr__)
#else
#define SA(a) (a)
#endif

/* The _FORTIFY_SOURCE entry points (not declared: this file is built without fortify). */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, __SOCKADDR_ARG addr,
                       socklen_t *addrlen);
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
extern void __chk_fail(void) __attribute__((noreturn));

/* ---- libc's functions ---- */

static void *real_accept, *real_accept4, *real_connect, *real_read, *real_readv, *real_recv, *real_recvfrom,
    *real_recvmsg, *real_write, *real_writev, *real_send, *real_sendto, *real_sendmsg, *real_poll, *real_sleep,
    *real_usleep, *real_nanosleep, *real_close, *real_fclose, *real_dup, *real_dup2, *real_dup3, *real_socket,
    *real_socketpair, *real_setsockopt, *real_fcntl, *real_fcntl64, *real_ioctl;

__attribute__((noinline, cold)) static void *resolve(void **slot, const char *name)
{
    int saved = errno;
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        /* No libc function to call: nothing sensible can follow.  Not write(): that is us. */
        static const char m1[] = "libzserver: dlsym(RTLD_NEXT) finds no ";
        (void)!syscall(SYS_write, 2, m1, sizeof(m1) - 1);
        (void)!syscall(SYS_write, 2, name, strlen(name));
        (void)!syscall(SYS_write, 2, "\n", 1);
        abort();
    }
    __atomic_store_n(slot, p, __ATOMIC_RELEASE);
    errno = saved;
    return p;
}

static inline void *real_fn(void **slot, const char *name)
{
    void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    return __builtin_expect(p != NULL, 1) ? p : resolve(slot, name);
}

#define REAL(name) ((__typeof__(&name))real_fn(&real_##name, #name))
#define IN_CO() __builtin_expect(zs_co_current != NULL, 0)

/* ---- per-fd state ---- */

typedef struct fdst {
    unsigned char sock;         /* 1: a socket, the fields below are valid; 0: not looked at */
    unsigned char stream;       /* SOCK_STREAM: a blocking send writes everything */
    unsigned char nonblock;     /* O_NONBLOCK is set (the fcntl and ioctl hooks keep it true) */
    unsigned char lib_nonblock; /* a listener libzserver made non-blocking, not the program */
    long long rcv_us, snd_us;   /* SO_RCVTIMEO / SO_SNDTIMEO; 0: none */
} fdst;

static fdst *fdt;
static size_t nfdt;

static fdst *fdst_slot(int fd)
{
    if ((size_t)fd < nfdt)
        return &fdt[fd];
    size_t n = nfdt ? nfdt : 64;
    while (n <= (size_t)fd)
        n *= 2;
    fdst *p = realloc(fdt, n * sizeof(*p));
    if (!p)
        return NULL;
    memset(p + nfdt, 0, (n - nfdt) * sizeof(*p));
    fdt = p;
    nfdt = n;
    return &fdt[fd];
}

static long long timeo_us(int fd, int opt)
{
    struct timeval tv;
    socklen_t len = sizeof(tv);
    if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len) < 0)
        return 0;
    return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* The cached state of fd when it is a socket; NULL when it is not (or is not open). */
static fdst *fdst_sock(int fd)
{
    if (fd < 0)
        return NULL;
    if ((size_t)fd < nfdt && fdt[fd].sock)
        return &fdt[fd];
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
        return NULL;
    int type, fl;
    socklen_t len = sizeof(type);
    fdst *s = fdst_slot(fd);
    if (!s || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || (fl = REAL(fcntl)(fd, F_GETFL)) < 0)
        return NULL;
    s->stream = type == SOCK_STREAM;
    s->nonblock = (fl & O_NONBLOCK) != 0;
    s->rcv_us = timeo_us(fd, SO_RCVTIMEO);
    s->snd_us = timeo_us(fd, SO_SNDTIMEO);
    s->sock = 1;
    return s;
}

/* fd is being closed or has become another file: nothing cached about it is true any more,
 * and coroutines waiting on the old file wake up (-1/EBADF). */
static inline void fd_forget(int fd)
{
    if (fd < 0)
        return;
    zs_fd_forget(fd); /* e.g. a connection aio mode counts on the accept scoreboard */
    if (!zs_co_owner_thread)
        return;
    zs_co_fd_closing(fd);
    if ((size_t)fd < nfdt)
        memset(&fdt[fd], 0, sizeof(fdt[fd]));
}

void zs_co_hook_mark_listener(int fd)
{
    fdst *s = fd >= 0 ? fdst_slot(fd) : NULL;
    if (s)
        s->lib_nonblock = 1;
}

/* After EAGAIN: does the program expect this call to block? */
static inline int wants_blocking(const fdst *s)
{
    return s->lib_nonblock || !s->nonblock;
}

/* Waits for fd, within timeout_us (0: none) counted from the first wait of this call
 * (*deadline, 0 until then).  0 when ready; -1 with EAGAIN (timed out) or EBADF (closed). */
static int wait_io(int fd, int events, long long timeout_us, double *deadline)
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

/* ---- an iovec cursor, for calls that must move on after a partial transfer ---- */

typedef struct iovcur {
    struct iovec *iov;
    int cnt;
    struct iovec small[8];
} iovcur;

static int iovcur_init(iovcur *c, const struct iovec *iov, int cnt)
{
    c->iov = cnt <= 8 ? c->small : malloc((size_t)cnt * sizeof(*iov));
    if (!c->iov)
        return -1;
    memcpy(c->iov, iov, (size_t)cnt * sizeof(*iov));
    c->cnt = cnt;
    return 0;
}

static void iovcur_skip(iovcur *c, size_t n)
{
    while (c->cnt && n >= c->iov->iov_len) {
        n -= c->iov->iov_len;
        c->iov++;
        c->cnt--;
    }
    if (c->cnt && n) {
        c->iov->iov_base = (char *)c->iov->iov_base + n;
        c->iov->iov_len -= n;
    }
}

static void iovcur_free(iovcur *c, struct iovec *first)
{
    if (first && first != c->small)
        free(first);
}

static size_t iov_total(const struct msghdr *m)
{
    size_t t = 0;
    for (size_t i = 0; i < (size_t)m->msg_iovlen; i++)
        t += m->msg_iov[i].iov_len;
    return t;
}

/* ---- the coroutine side of input and output ---- */

/* recvmsg as a blocking call would behave.  *pass = 1: fd is not a socket after all (the cache
 * was stale), the caller must use libc's call instead. */
static ssize_t co_recvmsg(int fd, fdst *s, struct msghdr *msg, int flags, int *pass)
{
    int saved = errno;
    double deadline = 0;
    size_t got = 0, want = (flags & MSG_WAITALL) && s->stream ? iov_total(msg) : 0;
    iovcur cur = { 0 };
    struct iovec *alloc = NULL;
    struct msghdr more, *m = msg;
    ssize_t r;
    for (;;) {
        r = REAL(recvmsg)(fd, m, flags | MSG_DONTWAIT);
        if (r > 0 && want) {
            got += (size_t)r;
            if (got < want) {
                if (m == msg) { /* the rest goes to what the first call did not fill */
                    if (iovcur_init(&cur, msg->msg_iov, (int)msg->msg_iovlen) < 0)
                        break;
                    alloc = cur.iov;
                    more = (struct msghdr){ 0 };
                    m = &more;
                }
                iovcur_skip(&cur, (size_t)r);
                more.msg_iov = cur.iov;
                more.msg_iovlen = (size_t)cur.cnt;
                continue;
            }
        }
        if (r >= 0)
            break;
        if (errno == ENOTSOCK) {
            fd_forget(fd);
            *pass = 1;
            break;
        }
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || !wants_blocking(s) ||
            wait_io(fd, EV_READ, s->rcv_us, &deadline) < 0)
            break;
    }
    iovcur_free(&cur, alloc);
    if (want && got)
        r = (ssize_t)got; /* MSG_WAITALL: what arrived before EOF, an error or the timeout */
    if (r >= 0)
        errno = saved;
    return r;
}

/* sendmsg as a blocking call would behave: a stream socket takes everything (or what went out
 * before an error or the timeout), other types one attempt that waits for room. */
static ssize_t co_sendmsg(int fd, fdst *s, const struct msghdr *msg, int flags, int *pass)
{
    int saved = errno;
    double deadline = 0;
    size_t sent = 0, total = s->stream ? iov_total(msg) : 0;
    iovcur cur = { 0 };
    struct iovec *alloc = NULL;
    struct msghdr more;
    const struct msghdr *m = msg;
    ssize_t r;
    for (;;) {
        r = REAL(sendmsg)(fd, m, flags | MSG_DONTWAIT);
        if (r >= 0) {
            sent += (size_t)r;
            if (sent >= total)
                break;
            if (m == msg) { /* ancillary data and address went with the first bytes */
                if (iovcur_init(&cur, msg->msg_iov, (int)msg->msg_iovlen) < 0)
                    break;
                alloc = cur.iov;
                more = (struct msghdr){ 0 };
                m = &more;
            }
            iovcur_skip(&cur, (size_t)r);
            more.msg_iov = cur.iov;
            more.msg_iovlen = (size_t)cur.cnt;
            continue;
        }
        if (errno == ENOTSOCK) {
            fd_forget(fd);
            *pass = 1;
            break;
        }
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || !wants_blocking(s) ||
            wait_io(fd, EV_WRITE, s->snd_us, &deadline) < 0)
            break;
    }
    iovcur_free(&cur, alloc);
    if (sent)
        r = (ssize_t)sent; /* partial: the bytes that went out count, as in the kernel */
    if (r >= 0)
        errno = saved;
    return r;
}

/* ---- input ---- */

ssize_t read(int fd, void *buf, size_t n)
{
    fdst *s;
    if (!IN_CO() || !(s = fdst_sock(fd)))
        return REAL(read)(fd, buf, n);
    struct iovec iov = { buf, n };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    int pass = 0;
    ssize_t r = co_recvmsg(fd, s, &msg, 0, &pass);
    return pass ? REAL(read)(fd, buf, n) : r;
}

ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    fdst *s;
    if (!IN_CO() || cnt < 0 || cnt > IOV_MAX || !(s = fdst_sock(fd)))
        return REAL(readv)(fd, iov, cnt);
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt };
    int pass = 0;
    ssize_t r = co_recvmsg(fd, s, &msg, 0, &pass);
    return pass ? REAL(readv)(fd, iov, cnt) : r;
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    fdst *s;
    if (!IN_CO() || (flags & MSG_DONTWAIT) || !(s = fdst_sock(fd)))
        return REAL(recv)(fd, buf, n, flags);
    struct iovec iov = { buf, n };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    int pass = 0;
    ssize_t r = co_recvmsg(fd, s, &msg, flags, &pass);
    return pass ? REAL(recv)(fd, buf, n, flags) : r;
}

ssize_t recvfrom(int fd, void *restrict buf, size_t n, int flags, __SOCKADDR_ARG addr, socklen_t *restrict addrlen)
{
    fdst *s;
    if (!IN_CO() || (flags & MSG_DONTWAIT) || !(s = fdst_sock(fd)))
        return REAL(recvfrom)(fd, buf, n, flags, addr, addrlen);
    struct iovec iov = { buf, n };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (SA(addr) && addrlen) {
        msg.msg_name = SA(addr);
        msg.msg_namelen = *addrlen;
    }
    int pass = 0;
    ssize_t r = co_recvmsg(fd, s, &msg, flags, &pass);
    if (pass)
        return REAL(recvfrom)(fd, buf, n, flags, addr, addrlen);
    if (r >= 0 && SA(addr) && addrlen)
        *addrlen = msg.msg_namelen;
    return r;
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    fdst *s;
    if (!IN_CO() || (flags & MSG_DONTWAIT) || !msg || (size_t)msg->msg_iovlen > IOV_MAX || !(s = fdst_sock(fd)))
        return REAL(recvmsg)(fd, msg, flags);
    int pass = 0;
    ssize_t r = co_recvmsg(fd, s, msg, flags, &pass);
    return pass ? REAL(recvmsg)(fd, msg, flags) : r;
}

/* ---- output ---- */

ssize_t write(int fd, const void *buf, size_t n)
{
    fdst *s;
    if (!IN_CO() || !(s = fdst_sock(fd)))
        return REAL(write)(fd, buf, n);
    struct iovec iov = { (void *)buf, n };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    int pass = 0;
    ssize_t r = co_sendmsg(fd, s, &msg, 0, &pass);
    return pass ? REAL(write)(fd, buf, n) : r;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    fdst *s;
    if (!IN_CO() || cnt < 0 || cnt > IOV_MAX || !(s = fdst_sock(fd)))
        return REAL(writev)(fd, iov, cnt);
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt };
    int pass = 0;
    ssize_t r = co_sendmsg(fd, s, &msg, 0, &pass);
    return pass ? REAL(writev)(fd, iov, cnt) : r;
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    fdst *s;
    if (!IN_CO() || (flags & MSG_DONTWAIT) || !(s = fdst_sock(fd)))
        return REAL(send)(fd, buf, n, flags);
    struct iovec iov = { (void *)buf, n };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    int pass = 0;
    ssize_t r = co_sendmsg(fd, s, &msg, flags, &pass);
    return pass ? REAL(send)(fd, buf, n, flags) : r;
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, __CONST_SOCKADDR_ARG addr, socklen_t addrlen)
{
    fdst *s;
    if (!IN_CO() || (flags & MSG_DONTWAIT) || !(s = fdst_sock(fd)))
        return REAL(sendto)(fd, buf, n, flags, addr, addrlen);
    struct iovec iov = { (void *)buf, n };
    struct msghdr msg = { .msg_name = (void *)SA(addr), .msg_namelen = SA(addr) ? addrlen : 0,
                          .msg_iov = &iov, .msg_iovlen = 1 };
    int pass = 0;
    ssize_t r = co_sendmsg(fd, s, &msg, flags, &pass);
    return pass ? REAL(sendto)(fd, buf, n, flags, addr, addrlen) : r;
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    fdst *s;
    if (!IN_CO() || (flags & MSG_DONTWAIT) || !msg || (size_t)msg->msg_iovlen > IOV_MAX || !(s = fdst_sock(fd)))
        return REAL(sendmsg)(fd, msg, flags);
    int pass = 0;
    ssize_t r = co_sendmsg(fd, s, msg, flags, &pass);
    return pass ? REAL(sendmsg)(fd, msg, flags) : r;
}

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
            fdst *n = fdst_slot(r);
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
        if (wait_io(fd, EV_READ, s->rcv_us, &deadline) < 0)
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

int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    fdst *s;
    if (!IN_CO() || !(s = fdst_sock(fd)))
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
        if (wait_io(fd, EV_WRITE, s->snd_us, &deadline) < 0) {
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

/* ---- poll ---- */

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (!IN_CO() || timeout == 0)
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

/* F_SETFL and FIONBIO change O_NONBLOCK: read the fd's state again when next needed.  The
 * optional argument is passed on as glibc's fcntl takes it (one pointer-sized word). */
static inline void flags_changed(int fd)
{
    if (zs_co_owner_thread && fd >= 0 && (size_t)fd < nfdt)
        fdt[fd].sock = 0;
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int r = REAL(fcntl)(fd, cmd, arg);
    if (cmd == F_SETFL && r != -1)
        flags_changed(fd);
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
        flags_changed(fd);
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
        flags_changed(fd);
    return r;
}

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    int r = REAL(setsockopt)(fd, level, name, val, len);
    if (r == 0 && level == SOL_SOCKET && zs_co_owner_thread && fd >= 0 && (size_t)fd < nfdt)
        fdt[fd].sock = 0; /* timeouts may have changed: read them again when next needed */
    return r;
}

/* ---- _FORTIFY_SOURCE ---- */

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return read(fd, buf, n);
}

ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    if (n > buflen)
        __chk_fail();
    return recv(fd, buf, n, flags);
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, __SOCKADDR_ARG addr, socklen_t *addrlen)
{
    if (n > buflen)
        __chk_fail();
    return recvfrom(fd, buf, n, flags, addr, addrlen);
}
