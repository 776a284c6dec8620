/*
 * zs_co_hook_io.c — the input and output hooks: read readv recv recvfrom recvmsg, write writev
 * send sendto sendmsg, and the _FORTIFY_SOURCE entry points __read_chk __recv_chk
 * __recvfrom_chk.  Inside a coroutine, on a socket, each becomes recvmsg/sendmsg with
 * MSG_DONTWAIT and a wait in the loop on EAGAIN (co_recvmsg, co_sendmsg); everything else goes
 * to libc's call.  What is and is not covered: zs_co_hook.c.
 */
#include "zs_co_hook_int.h"
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

/* The _FORTIFY_SOURCE entry points (not declared: this file is built without fortify). */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, __SOCKADDR_ARG addr,
                       socklen_t *addrlen);
extern void __chk_fail(void) __attribute__((noreturn));

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

/* After the first r bytes of msg went through (*m), points *m at a header for the rest:
 * the first time a copy of msg's iovec in cur (ancillary data and the address went with the
 * first bytes), later cur advanced.  -1 when the copy cannot be made. */
static int iov_rest(const struct msghdr *msg, const struct msghdr **m, struct msghdr *more, iovcur *cur,
                    struct iovec **alloc, size_t r)
{
    if (*m == msg) {
        if (iovcur_init(cur, msg->msg_iov, (int)msg->msg_iovlen) < 0)
            return -1;
        *alloc = cur->iov;
        *more = (struct msghdr){ 0 };
        *m = more;
    }
    iovcur_skip(cur, r);
    more->msg_iov = cur->iov;
    more->msg_iovlen = (size_t)cur->cnt;
    return 0;
}

/* Whether a call that failed with errno should wait for fd and try again; fd not a socket
 * after all (the cache was stale) sets *pass, for the caller to use libc's call instead. */
static int retry_after_wait(int fd, fdst *s, int events, long long timeout_us, double *deadline, int *pass)
{
    if (errno == ENOTSOCK) {
        fd_forget(fd);
        *pass = 1;
        return 0;
    }
    return (errno == EAGAIN || errno == EWOULDBLOCK) && wants_blocking(s) &&
           zs_hook_wait_io(fd, events, timeout_us, deadline) == 0;
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
    struct msghdr more;
    const struct msghdr *m = msg;
    ssize_t r;
    for (;;) {
        r = REAL(recvmsg)(fd, (struct msghdr *)m, flags | MSG_DONTWAIT);
        if (r > 0 && want) {
            got += (size_t)r;
            if (got < want) { /* the rest goes to what the first call did not fill */
                if (iov_rest(msg, &m, &more, &cur, &alloc, (size_t)r) < 0)
                    break;
                continue;
            }
        }
        if (r >= 0 || !retry_after_wait(fd, s, EV_READ, s->rcv_us, &deadline, pass))
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
            if (sent >= total || iov_rest(msg, &m, &more, &cur, &alloc, (size_t)r) < 0)
                break;
            continue;
        }
        if (!retry_after_wait(fd, s, EV_WRITE, s->snd_us, &deadline, pass))
            break;
    }
    iovcur_free(&cur, alloc);
    if (sent)
        r = (ssize_t)sent; /* partial: the bytes that went out count, as in the kernel */
    if (r >= 0)
        errno = saved;
    return r;
}

/* One buffer (out: to send) or an iovec array through co_sendmsg / co_recvmsg. */
static inline ssize_t co_buf(int fd, fdst *s, void *buf, size_t n, int flags, int out, int *pass)
{
    struct iovec iov = { buf, n };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    return out ? co_sendmsg(fd, s, &msg, flags, pass) : co_recvmsg(fd, s, &msg, flags, pass);
}

static inline ssize_t co_vec(int fd, fdst *s, const struct iovec *iov, int cnt, int out, int *pass)
{
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt };
    return out ? co_sendmsg(fd, s, &msg, 0, pass) : co_recvmsg(fd, s, &msg, 0, pass);
}

/* ---- input ---- */

ssize_t read(int fd, void *buf, size_t n)
{
    fdst *s;
    if (!IN_CO() || !(s = fdst_sock(fd)))
        return REAL(read)(fd, buf, n);
    int pass = 0;
    ssize_t r = co_buf(fd, s, buf, n, 0, 0, &pass);
    return pass ? REAL(read)(fd, buf, n) : r;
}

ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    fdst *s;
    if (!IN_CO() || cnt < 0 || cnt > IOV_MAX || !(s = fdst_sock(fd)))
        return REAL(readv)(fd, iov, cnt);
    int pass = 0;
    ssize_t r = co_vec(fd, s, iov, cnt, 0, &pass);
    return pass ? REAL(readv)(fd, iov, cnt) : r;
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    fdst *s;
    if (!IN_CO() || (flags & MSG_DONTWAIT) || !(s = fdst_sock(fd)))
        return REAL(recv)(fd, buf, n, flags);
    int pass = 0;
    ssize_t r = co_buf(fd, s, buf, n, flags, 0, &pass);
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
    int pass = 0;
    ssize_t r = co_buf(fd, s, (void *)buf, n, 0, 1, &pass);
    return pass ? REAL(write)(fd, buf, n) : r;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    fdst *s;
    if (!IN_CO() || cnt < 0 || cnt > IOV_MAX || !(s = fdst_sock(fd)))
        return REAL(writev)(fd, iov, cnt);
    int pass = 0;
    ssize_t r = co_vec(fd, s, iov, cnt, 1, &pass);
    return pass ? REAL(writev)(fd, iov, cnt) : r;
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    fdst *s;
    if (!IN_CO() || (flags & MSG_DONTWAIT) || !(s = fdst_sock(fd)))
        return REAL(send)(fd, buf, n, flags);
    int pass = 0;
    ssize_t r = co_buf(fd, s, (void *)buf, n, flags, 1, &pass);
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
