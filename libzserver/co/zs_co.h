/*
 * zs_co.h — the coroutine runtime inside libzserver (internal interface).
 *
 * Public calls (zserver.h): zcoroutine_go, zcoroutine_yield, zcoroutine_sleep_ms, the mutex and
 * condition variable.  This header is what the rest of the runtime builds on: the syscall hooks
 * (zs_co_hook*.c), the sync primitives (zs_co_sync.c), coroutine server mode (zs_co_server.c) and
 * the tests.
 *
 * The runtime belongs to one thread (the one that first creates a coroutine or attaches a loop)
 * and runs on that thread's libev loop (the default loop in a server).  zs_co_current is
 * thread-local: in every other thread it is NULL and every hook passes straight through.
 */
#ifndef ZS_CO_H
#define ZS_CO_H
#include <stddef.h>
#include <ev.h>

typedef struct zs_co zs_co;

/* The coroutine running now on this thread, NULL in the main context.  The hooks' first test. */
extern __thread zs_co *zs_co_current __attribute__((tls_model("initial-exec")));
/* 1 on the thread that owns the runtime (the hooks' fd bookkeeping is only done there). */
extern __thread int zs_co_owner_thread __attribute__((tls_model("initial-exec")));

#define ZS_CO_DEFAULT_STACK (128 * 1024)
#define ZS_CO_MIN_STACK (16 * 1024)

/* Attaches the runtime to loop (once; attaching another loop moves the scheduler's watchers
 * there).  Also offers loop to the server layer (zs_server_adopt_loop), so a program that runs
 * coroutines outside zs_server_main has a zvar_default_aio_base loop and zaio_timer_set works. */
int zs_co_init(struct ev_loop *loop);
/* Runs the loop until nothing can happen any more: every coroutine finished, or the rest wait
 * on something no watcher will ever wake (a mutex nobody unlocks).  Main context only. */
void zs_co_run(void);
/* Coroutines started and not yet finished. */
size_t zs_co_live(void);

/* Why a wait ended. */
enum { ZS_CO_WOKEN = 1, ZS_CO_TIMEDOUT, ZS_CO_CLOSED };

/* Parks the current coroutine until zs_co_wake() (ZS_CO_WOKEN or whatever `why` it passes) or,
 * when timeout_s >= 0, until that many seconds pass (ZS_CO_TIMEDOUT).  errno is preserved. */
int zs_co_wait(double timeout_s);
/* Makes a parked coroutine ready, recording why; no effect on one that is not parked. */
void zs_co_wake(zs_co *co, int why);

/* One fd a coroutine waits on.  Lives on the waiting stack.  (zs_co_fdwait.c) */
typedef struct zs_co_fdwait {
    int fd, events; /* in: the fd and EV_READ and/or EV_WRITE (fd < 0 or no events: ignored) */
    int renew;      /* in: the fd may be another file than the last wait on it saw (poll) */
    int revents;    /* out: what was ready */
    zs_co *co;
    struct zs_co_fdwait *next, *prev;
    int linked;
} zs_co_fdwait;
/* Waits until one of the n fds is ready, the timeout passes (timeout_s < 0: none) or one of the
 * fds is closed with close().  Returns ZS_CO_WOKEN, ZS_CO_TIMEDOUT or ZS_CO_CLOSED. */
int zs_co_wait_fds(zs_co_fdwait *w, int n, double timeout_s);
/* The same for one fd. */
int zs_co_wait_fd(int fd, int events, double timeout_s);
/* fd is about to be closed, or has become another file (a new socket, a dup): every coroutine
 * waiting on it wakes with ZS_CO_CLOSED, and its watchers forget the old file. */
void zs_co_fd_closing(int fd);

/* CLOCK_MONOTONIC in seconds. */
double zs_co_now(void);

/* For tests: the guard page of the running coroutine's stack (NULL outside a coroutine). */
void *zs_co_guard_page(size_t *len);
/* For tests: how many stacks sit on the free list. */
size_t zs_co_free_stacks(void);

/* Marks fd as a listener libzserver made non-blocking (not the program): inside coroutines,
 * accept on it waits instead of returning EAGAIN.  (zs_co_hook.c) */
void zs_co_hook_mark_listener(int fd);
/* fd, a listener, is about to be closed by a soft-stop: a coroutine in accept() on it, now or
 * later, stays parked there instead of failing with EBADF (lib-zc's accept loops treat any
 * error but EAGAIN/EINTR as fatal), while the process's open connections finish.  (zs_co_hook.c) */
void zs_co_hook_retire_listener(int fd);
#endif
