/*
 * zs_aio.h — internals of aio mode (zs_aio.c) that tests reach.
 */
#ifndef ZS_AIO_H
#define ZS_AIO_H
#include <stddef.h>
#include <stdint.h>

/* Finds fd's registration in the epoll set epfd, as /proc/self/fdinfo/EPFD lists it: 0 with its
 * event mask and data word, -1 when fd is not in the set or the file cannot be read. */
int zs_aio_epoll_entry(int epfd, int fd, uint32_t *events, uint64_t *data);

/* Connections accepted by aio mode and not yet closed, one bit an fd; the close hooks
 * (zs_co_hook.c) report each fd that goes, and a tracked one lowers the count this worker
 * publishes on the accept scoreboard (zs_board.h). */
extern unsigned char *zs_aio_conn_bits;
extern size_t zs_aio_conn_nbits;
void zs_aio_conn_gone(int fd);
static inline void zs_aio_fd_gone(int fd)
{
    if ((size_t)fd < __atomic_load_n(&zs_aio_conn_nbits, __ATOMIC_ACQUIRE) &&
        (__atomic_load_n(&zs_aio_conn_bits, __ATOMIC_ACQUIRE)[fd / 8] & (1u << (fd % 8))))
        zs_aio_conn_gone(fd);
}
#endif
