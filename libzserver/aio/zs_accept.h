/*
 * zs_accept.h — the accept strategy of aio mode (zs_accept.c): which worker a new connection
 * wakes.  A listener's watcher is started and stopped here; its entry in libev's epoll set is
 * made EPOLLEXCLUSIVE, moved to the tail of the wait queue now and then, and taken out for a
 * while when this worker holds more than its share.  zs_aio.c accepts and hands connections
 * over; it asks this module whether to accept one connection per event (exclusive) or a batch.
 * The design, the libev assumptions and how they are checked: doc/accept.md.
 */
#ifndef ZS_ACCEPT_H
#define ZS_ACCEPT_H
#include <stdint.h>
#include <ev.h>

typedef struct zs_acc zs_acc;
struct zs_acc {
    ev_io w;              /* the listener's watcher: the caller ev_io_init's it (fd, EV_READ) */
    int fd;               /* the listening socket */
    /* the strategy's own */
    zs_acc *next;
    int excl;             /* our EPOLLEXCLUSIVE entry for fd is in libev's epoll set excl_epfd */
    int excl_epfd;
    uint64_t excl_data;   /* libev's data word for fd */
    unsigned since_rotate;  /* accepts since the entry last went to the tail of the queue */
    ev_timer fair;        /* stepped back (entry out) for fairness: put it back when this fires */
    int retired;          /* the socket no longer listens: never started again */
    int dropped;          /* stop took our entry out, in loop iteration stop_iter */
    unsigned stop_iter;
};

/* Chooses how listeners are registered in this process's loop: plain when ZSERVER_ACCEPT=plain
 * or the self-check of libev fails at once, else exclusive once the self-check (run during the
 * first loop iteration) passes.  siblings: other processes share the listeners. */
void zs_accept_init(struct ev_loop *loop, int siblings);

/* Adds listener l (l->fd set, l->w initialised) and starts it. */
void zs_accept_add(struct ev_loop *loop, zs_acc *l);
/* The listener on fd, NULL when none is left.  remove stops and unlinks it (the caller frees). */
zs_acc *zs_accept_find(int fd);
void zs_accept_remove(struct ev_loop *loop, zs_acc *l);

/* Starting and stopping a listener's watcher always goes through these: an exclusive entry is
 * taken out before the watcher stops (libev would not), and upgraded again after it starts. */
void zs_accept_start(struct ev_loop *loop, zs_acc *l);
void zs_accept_stop(struct ev_loop *loop, zs_acc *l);
/* The socket no longer listens (why, for the one log line): stop it for good. */
void zs_accept_retire(struct ev_loop *loop, zs_acc *l, const char *why);

/* Exclusive: accept one connection per event (see doc/accept.md); else a batch. */
int zs_accept_is_exclusive(const zs_acc *l);
/* Called after a connection was accepted on an exclusive l: rotate or step back. */
void zs_accept_accepted(struct ev_loop *loop, zs_acc *l);

/* 1: exclusive (the self-check passed); 0: self-check under way; -1: plain. */
int zs_accept_state(void);
/* Counters for ZSERVER_ACCEPT_STATS: entries moved to the queue's tail, step-backs, and epoll
 * set rebuilds libev made (fork, or an epoll_ctl of its own that failed).  NULL: not wanted. */
void zs_accept_counts(unsigned long *rotations, unsigned long *stepbacks, unsigned long *rebuilds);

#endif
