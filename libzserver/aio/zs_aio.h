/*
 * zs_aio.h — internals of aio mode (zs_aio.c) that tests reach.
 */
#ifndef ZS_AIO_H
#define ZS_AIO_H

/* The accept counters ZSERVER_ACCEPT_STATS logs: wake-ups of a listener's watcher, connections
 * accepted, wake-ups that found none. */
void zs_aio_counts(unsigned long *wakeups, unsigned long *accepted, unsigned long *empty);

/* Stops watching fd and closes it (the mode's close_listener, run at soft-stop); safe from
 * inside the listener's own connection callback. */
void zs_aio_close_listener(int fd);

#endif
