/*
 * zs_spawn.h — start one child with the fd contract (doc/CONTRACT.md §4): listeners at 3.., the status
 * channel after them, /dev/null on 0, the log (or the owner's pipe) on 1 and 2, the systemd and ZMASTER_* environment, its own session
 * (so no controlling terminal) and process group, PR_SET_PDEATHSIG, rlimits and the user of the service; then exec server-command, or
 * (fork mode) call run() and exit with its result.  An exec-mode child is started with
 * clone(CLONE_VM|CLONE_VFORK) (ZS_SPAWN=fork in the environment: fork()); zs_spawn.c says why.
 */
#ifndef ZS_SPAWN_H
#define ZS_SPAWN_H
#include <sys/resource.h>
#include <sys/types.h>
#include "core/zs_service.h"
#include "zs_supervisor.h"

typedef struct zs_spawn_req {
    const zs_service *svc;
    const int *fds;            /* svc->nlisten listening fds */
    unsigned gen;
    const char *config_dir;
    zs_run_fn run;             /* NULL: exec svc->argv */
    void *run_ctx;
    int slot;                  /* 1-based */
    void (*after_fork)(void *);/* fork mode: called first in the child */
    void *after_fork_ctx;
    int out_fd;                /* > 0: the child's stdout and stderr (exec mode); 0: the log's */
} zs_spawn_req;

/* Children that do not set server-max-nofile get this soft RLIMIT_NOFILE (capped by the hard
 * one): masterd raises its own soft limit and gives its children the original back. */
void zs_spawn_set_child_nofile(rlim_t soft);

/* Returns the child's pid and our end of its status channel in *chan (non-blocking,
 * close-on-exec), or -1 with errno set and nothing left open. */
pid_t zs_spawn(const zs_spawn_req *req, int *chan);
#endif
