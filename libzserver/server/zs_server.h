/*
 * zs_server.h — the server skeleton shared by the aio and coroutine modes: argument parsing,
 * master / alone / self-hosted multi-process start, the merged config, the status channel,
 * soft-stop, stop_notify and detach.  A mode supplies its hooks and how to run its loop.
 */
#ifndef ZS_SERVER_H
#define ZS_SERVER_H
#include "core/zs_config.h"

struct ev_loop;

typedef struct zs_server_mode {
    const char *name;
    void (**service_register)(const char *service, int fd, int fd_type);
    void (**before_service)(void);
    void (**before_softstop)(void);
    int (*loop_init)(struct ev_loop *loop);  /* may be NULL */
    void (*loop_run)(struct ev_loop *loop);
    void (*loop_stop)(struct ev_loop *loop);
    /* Stops whatever accepts on fd in this mode, then closes it. */
    void (*close_listener)(int fd);
} zs_server_mode;

int zs_server_main(const zs_server_mode *mode, int argc, char **argv);
void zs_server_stop_notify(int secs);
void zs_server_detach(void);

/* The process's libev loop: serve() creates it and publishes it as zvar_default_aio_base->loop
 * (zserver.h), in either mode.  A runtime started outside zs_server_main (a coroutine started
 * by a test program) offers its loop with zs_server_adopt_loop; the first one stays. */
void zs_server_adopt_loop(struct ev_loop *loop);

/* Per-fd state kept above this layer (aio mode's held connections) learns here that an fd
 * number no longer names the file it knew: it is being closed, or a call (accept, socket,
 * dup...) just returned it again, so a close nobody saw came before.  The syscall hooks
 * (co/zs_co_hook.c) call zs_fd_forget for each; one module registers a callback (it may be
 * called from any thread, so it only does atomic work). */
extern void (*zs_fd_forget_cb)(int fd);
static inline void zs_fd_forget(int fd)
{
    void (*cb)(int) = __atomic_load_n(&zs_fd_forget_cb, __ATOMIC_ACQUIRE);
    if (cb)
        cb(fd);
}

/* A duration setting of the merged view in seconds, lib-zc's units allowed (5s, 2m; zs_units.h);
 * a value that does not parse is fatal, naming where it was set (zs_zconfig.c). */
long zs_server_config_seconds(const char *key, long def);
/* 1 once SIGINT arrived (lib-zc's zvar_sigint_flag, zc.h). */
extern int zvar_sigint_flag;

/* The merged config view behind zconfig_get_* is core's zs_process_config (zs_config.h). */

/* Parses generic arguments (`-key value`, `--flag`, the first other word is the command) into
 * cfg.  Returns 0 with *command set (or NULL), or -1 with why (e.g. `-port` lacks a value). */
int zs_server_parse_args(int argc, char **argv, zs_config *cfg, const char **command, char *why, size_t whylen);
#endif
