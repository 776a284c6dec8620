/*
 * zs_status.c — send and receive status-channel records (zs_status.h).  One packet a record on a
 * SOCK_SEQPACKET pair; a short or foreign packet is a protocol error, never half-interpreted.
 */
#include <errno.h>
#include <sys/socket.h>
#include "zs_status.h"

int zs_status_send(int fd, uint32_t type, uint32_t generation, int32_t value)
{
    zs_status_rec r = { ZS_STATUS_MAGIC, type, generation, value };
    ssize_t n;
    do {
        n = send(fd, &r, sizeof(r), MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    if ((size_t)n != sizeof(r)) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

int zs_status_recv(int fd, zs_status_rec *rec)
{
    ssize_t n;
    do {
        n = recv(fd, rec, sizeof(*rec), MSG_DONTWAIT | MSG_TRUNC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    if (n == 0)
        return 0;
    if ((size_t)n != sizeof(*rec) || rec->magic != ZS_STATUS_MAGIC) {
        errno = EPROTO;
        return -1;
    }
    return 1;
}
