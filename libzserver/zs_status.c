/*
 * zs_status.c — send and receive status-channel records (zs_status.h).  One packet a record on a
 * SOCK_SEQPACKET pair; a short or foreign packet is a protocol error, never half-interpreted.
 * A record may carry one descriptor (SCM_RIGHTS).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "zs_status.h"

int zs_status_send_fd(int fd, uint32_t type, uint32_t generation, int32_t value, int passed_fd)
{
    zs_status_rec r = { ZS_STATUS_MAGIC, type, generation, value };
    struct iovec iov = { &r, sizeof(r) };
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
        n = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
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

int zs_status_recv_fd(int fd, zs_status_rec *rec, int *passed_fd)
{
    struct iovec iov = { rec, sizeof(*rec) };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 4)];
    } ctl;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
    ssize_t n;
    *passed_fd = -1;
    do {
        n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*passed_fd < 0)
                *passed_fd = got;
            else
                close(got); /* one descriptor a record: the rest is not ours to keep */
        }
    }
    if (n == 0)
        return 0;
    if ((size_t)n != sizeof(*rec) || (m.msg_flags & MSG_TRUNC) || rec->magic != ZS_STATUS_MAGIC) {
        if (*passed_fd >= 0)
            close(*passed_fd);
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
    if (passed >= 0)
        close(passed);
    return rc;
}
