/*
 * zs_status.c — send and receive status-channel records (zs_status.h).  One packet a record on a
 * SOCK_SEQPACKET pair; a short or foreign packet is a protocol error, never half-interpreted.
 * A record may carry one descriptor (SCM_RIGHTS); only the master sends one.
 *
 * A descriptor from a child is hostile until proven otherwise: closing it may block (the last
 * close of a TCP socket with SO_LINGER set waits for its unsent data).  The master's end refuses
 * them in the kernel where it can (SO_PASSRIGHTS), and whatever still arrives is closed without
 * lingering.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "zs_status.h"

/* Linux 6.16 (include/uapi/asm-generic/socket.h); alpha, mips, parisc and sparc number their
 * socket options differently: there the fallback alone applies. */
#if !defined(SO_PASSRIGHTS) && !defined(__alpha__) && !defined(__mips__) && !defined(__hppa__) && \
    !defined(__sparc__)
#define SO_PASSRIGHTS 83
#endif

/* The most descriptors one message carries (SCM_MAX_FD): receiving them all keeps the kernel
 * from dropping the surplus itself, which it would do in our context, lingering included. */
#define MAX_PASSED 253

int zs_status_refuse_fds(int fd)
{
#ifdef SO_PASSRIGHTS
    int off = 0;
    return setsockopt(fd, SOL_SOCKET, SO_PASSRIGHTS, &off, sizeof(off));
#else
    (void)fd;
    errno = ENOPROTOOPT;
    return -1;
#endif
}

/* Closes a descriptor received from a child without blocking on it.  Nothing for fd < 0. */
static void drop_fd(int fd)
{
    if (fd < 0)
        return;
    /* Linger 0: the close resets the connection at once instead of waiting to send.  On a
     * descriptor that is not a socket this fails (ENOTSOCK), which is what we want. */
    struct linger lg = { 1, 0 };
    (void)!setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

int zs_status_take_fds(struct msghdr *m, int keep_first)
{
    int kept = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (keep_first && kept < 0)
                kept = got;
            else
                drop_fd(got);
        }
    }
    return kept;
}

ssize_t zs_status_sendmsg(int fd, const void *buf, size_t len, int passed_fd, int flags)
{
    struct iovec iov = { (void *)buf, len };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (passed_fd >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        m.msg_control = ctl.buf;
        m.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &passed_fd, sizeof(int));
    }
    ssize_t n;
    do {
        n = sendmsg(fd, &m, flags);
    } while (n < 0 && errno == EINTR);
    return n;
}

int zs_status_send_fd(int fd, uint32_t type, uint32_t generation, int32_t value, int passed_fd)
{
    zs_status_rec r = { ZS_STATUS_MAGIC, type, generation, value };
    ssize_t n = zs_status_sendmsg(fd, &r, sizeof(r), passed_fd, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0)
        return -1;
    if ((size_t)n != sizeof(r)) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

int zs_status_send(int fd, uint32_t type, uint32_t generation, int32_t value)
{
    return zs_status_send_fd(fd, type, generation, value, -1);
}

/* recvmsg() returned 0: the end of the channel, or a record of no bytes (SOCK_SEQPACKET says both
 * the same way), which is malformed and must not end the channel.  It was a record if another one
 * is queued behind it, or if the peer still holds its end. */
static int empty_record(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && errno == EAGAIN))
        return 1;
    struct pollfd p = { fd, POLLRDHUP, 0 };
    return poll(&p, 1, 0) == 0;
}

int zs_status_recv_fd(int fd, zs_status_rec *rec, int *passed_fd)
{
    struct iovec iov = { rec, sizeof(*rec) };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * MAX_PASSED)];
    } ctl;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
    ssize_t n;
    *passed_fd = -1;
    do {
        n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    *passed_fd = zs_status_take_fds(&m, 1); /* one descriptor a record: the rest is not ours */
    if (n == 0) {
        if (!empty_record(fd))
            return 0;
        n = -1; /* malformed, below */
    }
    if ((size_t)n != sizeof(*rec) || (m.msg_flags & MSG_TRUNC) || rec->magic != ZS_STATUS_MAGIC) {
        drop_fd(*passed_fd);
        *passed_fd = -1;
        errno = EPROTO;
        return -1;
    }
    return 1;
}

int zs_status_recv(int fd, zs_status_rec *rec)
{
    int passed;
    int rc = zs_status_recv_fd(fd, rec, &passed);
    drop_fd(passed);
    return rc;
}
