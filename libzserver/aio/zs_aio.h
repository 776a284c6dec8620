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

#endif
