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

/* A message being sent or received in parts: m is what the next call uses, msg itself at
 * first, then `more` over a copy of its iovec in cur advanced past what went through
 * (ancillary data and the address go with the first part). */
typedef struct msgrest {
    const struct msghdr *m;
    struct msghdr more;
    iovcur cur;
    struct iovec *alloc;
} msgrest;

/* After r more bytes of msg went through, points rest->m at the rest.  -1 when the copy of
 * the iovec cannot be made. */
static int iov_rest(const struct msghdr *msg, msgrest *rest, size_t r)
{
    if (rest->m == msg) {
        if (iovcur_init(&rest->cur, msg->msg_iov, (int)msg->msg_iovlen) < 0)
            return -1;
        rest->alloc = rest->cur.iov;
        rest->more = (struct msghdr){ 0 };
        rest->m = &rest->more;
    }
    iovcur_skip(&rest->cur, r);
    rest->more.msg_iov = rest->cur.iov;
    rest->more.msg_iovlen = (size_t)rest->cur.cnt;
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
    msgrest rest = { .m = msg };
    ssize_t r;
    for (;;) {
        r = REAL(recvmsg)(fd, (struct msghdr *)rest.m, flags | MSG_DONTWAIT);
        if (r > 0 && want) {
            got += (size_t)r;
            if (got < want) { /* the rest goes to what the first call did not fill */
                if (iov_rest(msg, &rest, (size_t)r) < 0)
                    break;
                continue;
            }
        }
        if (r >= 0 || !retry_after_wait(fd, s, EV_READ, s->rcv_us, &deadline, pass))
            break;
    }
    iovcur_free(&rest.cur, rest.alloc);
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
    msgrest rest = { .m = msg };
    ssize_t r;
    for (;;) {
        r = REAL(sendmsg)(fd, rest.m, flags | MSG_DONTWAIT);
        if (r >= 0) {
            sent += (size_t)r;
            if (sent >= total || iov_rest(msg, &rest, (size_t)r) < 0)
                break;
            continue;
        }
        if (!retry_after_wait(fd, s, EV_WRITE, s->snd_us, &deadline, pass))
            break;
    }
    iovcur_free(&rest.cur, rest.alloc);
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

/* A hook with nothing to do around the call.  Outside a coroutine: one thread-local test and a
 * jump to libc's function (the coroutine side is a function of its own, so the hook itself
 * needs no stack frame).  Inside: when usable is false or fd is no cached socket, libc's call;
 * else co_call, or libc's call after all when co_call found fd not to be a socket (pass). */
#define SIMPLE_HOOK(name, params, args, usable, co_call)                \
    static __attribute__((noinline)) ssize_t in_co_##name params        \
    {                                                                   \
        fdst *s;                                                        \
        if (!(usable) || !(s = fdst_sock(fd)))                          \
            return REAL(name) args;                                     \
        int pass = 0;                                                   \
        ssize_t r = co_call;                                            \
        return pass ? REAL(name) args : r;                              \
    }                                                                   \
    ssize_t name params                                                 \
    {                                                                   \
        if (!IN_CO())                                                   \
            return REAL(name) args;                                     \
        return in_co_##name args;                                       \
    }

/* ---- input ---- */

SIMPLE_HOOK(read, (int fd, void *buf, size_t n), (fd, buf, n), 1, co_buf(fd, s, buf, n, 0, 0, &pass))
SIMPLE_HOOK(readv, (int fd, const struct iovec *iov, int cnt), (fd, iov, cnt), cnt >= 0 && cnt <= IOV_MAX,
            co_vec(fd, s, iov, cnt, 0, &pass))
SIMPLE_HOOK(recv, (int fd, void *buf, size_t n, int flags), (fd, buf, n, flags), !(flags & MSG_DONTWAIT),
            co_buf(fd, s, buf, n, flags, 0, &pass))
SIMPLE_HOOK(recvmsg, (int fd, struct msghdr *msg, int flags), (fd, msg, flags),
            !(flags & MSG_DONTWAIT) && msg && (size_t)msg->msg_iovlen <= IOV_MAX, co_recvmsg(fd, s, msg, flags, &pass))

static __attribute__((noinline)) ssize_t in_co_recvfrom(int fd, void *restrict buf, size_t n, int flags,
                                                        __SOCKADDR_ARG addr, socklen_t *restrict addrlen)
{
    fdst *s;
    if ((flags & MSG_DONTWAIT) || !(s = fdst_sock(fd)))
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

ssize_t recvfrom(int fd, void *restrict buf, size_t n, int flags, __SOCKADDR_ARG addr, socklen_t *restrict addrlen)
{
    if (!IN_CO())
        return REAL(recvfrom)(fd, buf, n, flags, addr, addrlen);
    return in_co_recvfrom(fd, buf, n, flags, addr, addrlen);
}

/* ---- output ---- */

SIMPLE_HOOK(write, (int fd, const void *buf, size_t n), (fd, buf, n), 1, co_buf(fd, s, (void *)buf, n, 0, 1, &pass))
SIMPLE_HOOK(writev, (int fd, const struct iovec *iov, int cnt), (fd, iov, cnt), cnt >= 0 && cnt <= IOV_MAX,
            co_vec(fd, s, iov, cnt, 1, &pass))
SIMPLE_HOOK(send, (int fd, const void *buf, size_t n, int flags), (fd, buf, n, flags), !(flags & MSG_DONTWAIT),
            co_buf(fd, s, (void *)buf, n, flags, 1, &pass))
SIMPLE_HOOK(sendmsg, (int fd, const struct msghdr *msg, int flags), (fd, msg, flags),
            !(flags & MSG_DONTWAIT) && msg && (size_t)msg->msg_iovlen <= IOV_MAX, co_sendmsg(fd, s, msg, flags, &pass))

static __attribute__((noinline)) ssize_t in_co_sendto(int fd, const void *buf, size_t n, int flags,
                                                      __CONST_SOCKADDR_ARG addr, socklen_t addrlen)
{
    fdst *s;
    if ((flags & MSG_DONTWAIT) || !(s = fdst_sock(fd)))
        return REAL(sendto)(fd, buf, n, flags, addr, addrlen);
    struct iovec iov = { (void *)buf, n };
    struct msghdr msg = { .msg_name = (void *)SA(addr), .msg_namelen = SA(addr) ? addrlen : 0,
                          .msg_iov = &iov, .msg_iovlen = 1 };
    int pass = 0;
    ssize_t r = co_sendmsg(fd, s, &msg, flags, &pass);
    return pass ? REAL(sendto)(fd, buf, n, flags, addr, addrlen) : r;
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, __CONST_SOCKADDR_ARG addr, socklen_t addrlen)
{
    if (!IN_CO())
        return REAL(sendto)(fd, buf, n, flags, addr, addrlen);
    return in_co_sendto(fd, buf, n, flags, addr, addrlen);
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
