/*
 * zs_co_server.c — coroutine mode (zserver.h): the server skeleton (zs_server.c) with the
 * coroutine runtime (zs_co.c) as its loop.  One skeleton, two loops: this file only says how
 * coroutine mode starts, runs, stops and closes a listener.
 *
 * The program's service_register hook usually starts an accept loop coroutine per listener;
 * those listeners are non-blocking (masterd's contract), so they are marked as made so by the
 * library: accept() inside a coroutine waits on them instead of returning EAGAIN.  At soft-stop
 * the skeleton closes each listener with close_listener; a coroutine blocked in accept() on it
 * stays parked there (lib-zc's accept loops die on EBADF, which would cut the sessions the
 * soft-stop lets finish), and the process ends when they have finished or the deadline passes.
 */
#include <signal.h>
#include <unistd.h>
#include <ev.h>
#include "zs_co.h"
#include "server/zs_server.h"
#include "zc_coroutine.h"

void (*zcoroutine_server_service_register)(const char *service, int fd, int fd_type) = 0;
void (*zcoroutine_server_before_service)(void) = 0;
void (*zcoroutine_server_before_softstop)(void) = 0;

/* What the skeleton calls for each listener: the program's hook, or NULL when it has none. */
static void (*register_hook)(const char *service, int fd, int fd_type);

static void co_register(const char *service, int fd, int fd_type)
{
    if (fd_type != zvar_tcp_listen_type_fifo)
        zs_co_hook_mark_listener(fd);
    zcoroutine_server_service_register(service, fd, fd_type);
}

static int co_loop_init(struct ev_loop *loop)
{
    register_hook = zcoroutine_server_service_register ? co_register : 0;
    /* A peer that hangs up must cost a coroutine an EPIPE, not the process its life. */
    signal(SIGPIPE, SIG_IGN);
    return zs_co_init(loop);
}

static void co_loop_run(struct ev_loop *loop)
{
    (void)loop;
    zs_co_run();
}

static void co_loop_stop(struct ev_loop *loop)
{
    ev_break(loop, EVBREAK_ALL);
}

static void co_close_listener(int fd)
{
    zs_co_hook_retire_listener(fd);
    close(fd); /* the hook wakes coroutines waiting on fd first; they park again */
}

static const zs_server_mode coroutine_mode = {
    "zcoroutine", &register_hook, &zcoroutine_server_before_service, &zcoroutine_server_before_softstop,
    co_loop_init, co_loop_run, co_loop_stop, co_close_listener,
};

int zcoroutine_server_main(int argc, char **argv)
{
    return zs_server_main(&coroutine_mode, argc, argv);
}

void zcoroutine_server_stop_notify(int stop_after_second)
{
    zs_server_stop_notify(stop_after_second);
}

void zcoroutine_server_detach_from_master(void)
{
    zs_server_detach();
}

/* lib-zc's zc_coroutine.h: there is one base, the server's. */
void zcoroutine_base_stop_notify(zcoroutine_base_t *cobs)
{
    (void)cobs;
    zs_server_stop_notify(0);
}

void zcoroutine_sleep_millisecond(int milliseconds)
{
    zcoroutine_sleep_ms(milliseconds);
}
