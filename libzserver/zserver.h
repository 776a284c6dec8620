/*
 * zserver.h — the one public header of libzserver.
 *
 * A server program supervised by masterd (or run by hand with `alone`) includes this and links
 * -lzserver.  Names follow lib-zc's MASTER/SERVER API so its sample programs compile unchanged:
 * set the hooks, then return zaio_server_main(argc, argv) or zcoroutine_server_main(argc, argv).
 * See doc/CONTRACT.md §7–§9 and `man 3 zserver`.
 */
#ifndef ZSERVER_H
#define ZSERVER_H

#include <stddef.h>
#include "zserver_core.h" /* logging and fd types: the part masterd shares */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- config: the merged view (*.gcf, then the service's .cf, then -key value arguments) ---- */
const char *zconfig_get_str(const char *key, const char *def);
/* A value that is not a whole number in range is logged (file:line: key) and exits 1 (zfatal):
 * a server must never run on a half-understood setting. */
long zconfig_get_int(const char *key, long def);
/* yes/no, true/false, on/off, 1/0 (any case); anything else is fatal as above. */
int zconfig_get_bool(const char *key, int def);
/* A duration in seconds: 30, 30s, 5m, 2h, 1d, 1w (doc/CONTRACT.md §2); anything else is fatal. */
long zconfig_get_second(const char *key, long def);

/* ---- aio mode (libev) ---- */
struct ev_loop;
typedef struct zaio_base_t {
    struct ev_loop *loop;
} zaio_base_t;
typedef struct zaio_t zaio_t;

/* The process's libev loop; ready when zaio_server_before_service runs. */
extern zaio_base_t *zvar_default_aio_base;

extern void (*zaio_server_service_register)(const char *service, int fd, int fd_type);
extern void (*zaio_server_before_service)(void);
extern void (*zaio_server_before_softstop)(void);
int zaio_server_main(int argc, char **argv);
void zaio_server_stop_notify(int stop_after_second);
void zaio_server_detach_from_master(void);
/* Accepts every pending connection on the non-blocking listener fd and calls callback(new_fd)
 * (new_fd is non-blocking and close-on-exec; the callback owns it).  Refuses a fifo (NULL).
 * Returns the listener's zaio_t (zc.h) as lib-zc does: the runtime owns it and frees it when it
 * closes the listener at soft-stop; do not free it or make requests on it. */
zaio_t *zaio_server_general_aio_register(zaio_base_t *eb, int fd, int fd_type, void (*callback)(int));

/* aio mode owns libev's release/acquire callback slot of its loop (ev_set_loop_release_cb: the
 * accept strategy works just before the loop sleeps).  A program that needs its own gives them
 * here (any time): they are called from ours, release after our work, acquire first.  Calling
 * ev_set_loop_release_cb on the loop instead replaces ours: accepting then falls back to the
 * plain registration, with a warning in the log. */
void zaio_set_loop_release_cb(void (*release)(struct ev_loop *loop), void (*acquire)(struct ev_loop *loop));

/* One-shot timer on zvar_default_aio_base; re-arm from the handler for a periodic one. */
typedef struct zaio_timer_t zaio_timer_t;
zaio_timer_t *zaio_timer_set(long ms, void (*fn)(void *ctx), void *ctx);
void zaio_timer_cancel(zaio_timer_t *timer);

/* ---- coroutine mode ---- */
extern void (*zcoroutine_server_service_register)(const char *service, int fd, int fd_type);
extern void (*zcoroutine_server_before_service)(void);
extern void (*zcoroutine_server_before_softstop)(void);
int zcoroutine_server_main(int argc, char **argv);
void zcoroutine_server_stop_notify(int stop_after_second);
void zcoroutine_server_detach_from_master(void);

/* Starts fn(ctx) in a new coroutine with a stack of stack_kb KiB (< 1: 128 KiB, as lib-zc's -1;
 * at least 16), below a guard page; it first runs when the loop does.  0, or -1 with errno
 * (EINVAL for no fn, ENOMEM,
 * EPERM from another thread than the one running the coroutines).  Start coroutines from the
 * hooks (service_register, before_service) or from other coroutines, not before
 * zcoroutine_server_main.  Inside a coroutine, blocking socket calls, poll and the sleeps yield
 * to the others (see libzserver/co/zs_co_hook.c for the list and what is not covered). */
int zcoroutine_go(void *(*fn)(void *), void *ctx, int stack_kb);
/* Lets the other ready coroutines run; no-op outside a coroutine. */
void zcoroutine_yield(void);
/* Sleeps ms milliseconds; inside a coroutine only that coroutine sleeps. */
void zcoroutine_sleep_ms(long ms);

/* A mutex and a condition variable for coroutines of one process (FIFO, no spurious wake-ups).
 * Waiting is only possible inside a coroutine; misuse (unlocking a mutex one does not hold,
 * locking a held mutex outside a coroutine) logs and aborts. */
typedef struct zcoroutine_mutex_t zcoroutine_mutex_t;
zcoroutine_mutex_t *zcoroutine_mutex_create(void);
void zcoroutine_mutex_free(zcoroutine_mutex_t *mutex);
void zcoroutine_mutex_lock(zcoroutine_mutex_t *mutex);
int zcoroutine_mutex_trylock(zcoroutine_mutex_t *mutex); /* 0, or -1 with errno EBUSY */
void zcoroutine_mutex_unlock(zcoroutine_mutex_t *mutex);
typedef struct zcoroutine_cond_t zcoroutine_cond_t;
zcoroutine_cond_t *zcoroutine_cond_create(void);
void zcoroutine_cond_free(zcoroutine_cond_t *cond);
void zcoroutine_cond_wait(zcoroutine_cond_t *cond, zcoroutine_mutex_t *mutex);
/* 0 when signalled, -1 with errno ETIMEDOUT after timeout_ms (< 0: no limit). */
int zcoroutine_cond_timedwait(zcoroutine_cond_t *cond, zcoroutine_mutex_t *mutex, long timeout_ms);
void zcoroutine_cond_signal(zcoroutine_cond_t *cond);
void zcoroutine_cond_broadcast(zcoroutine_cond_t *cond);

#ifdef __cplusplus
}
#endif
#endif
