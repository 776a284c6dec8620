/*
 * zs_server.h — the server skeleton shared by the aio and coroutine modes: argument parsing,
 * master / alone / self-hosted multi-process start, the merged config, the status channel,
 * soft-stop, stop_notify and detach.  A mode supplies its hooks and how to run its loop.
 */
#ifndef ZS_SERVER_H
#define ZS_SERVER_H
#include "zs_config.h"

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

/* The merged config view behind zconfig_get_*. */
extern zs_config zs_server_config;

/* Parses generic arguments (`-key value`, `--flag`, the first other word is the command) into
 * cfg.  Returns 0 with *command set (or NULL), or -1 with why (e.g. `-port` lacks a value). */
int zs_server_parse_args(int argc, char **argv, zs_config *cfg, const char **command, char *why, size_t whylen);
#endif
