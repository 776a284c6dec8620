/*
 * zs_co_int.h — what the coroutine runtime's two files share, and nothing else uses: the
 * scheduler (zs_co.c) and the waits on fds (zs_co_fdwait.c).  The rest of the library builds on
 * zs_co.h.
 */
#ifndef ZS_CO_INT_H
#define ZS_CO_INT_H
#include <ev.h>
#include "zs_co.h"

/* The loop the runtime is attached to (zs_co_init); NULL before. */
extern struct ev_loop *zs_co_rt_loop __attribute__((visibility("hidden")));

/* A broken invariant: logs what and aborts. */
void zs_co_panic(const char *what) __attribute__((noreturn, visibility("hidden")));

/* The fd co waits on is going: a waiting co wakes with ZS_CO_CLOSED; one already made ready by
 * I/O on it, and not yet run, will see ZS_CO_CLOSED too. */
void zs_co_wake_closed(zs_co *co) __attribute__((visibility("hidden")));
#endif
