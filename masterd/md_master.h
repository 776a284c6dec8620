/*
 * md_master.h — the running master: one libev loop with signals, the supervision core's
 * children and channels, stop and reload (doc/CONTRACT.md §6).
 */
#ifndef MD_MASTER_H
#define MD_MASTER_H
#include "md_set.h"

typedef struct md_master_opts {
    const char *config_dir;
    const char *pid_file;
    int pid_fd;
} md_master_opts;

/* Binds set's sockets, starts every service and runs until stopped.  Takes ownership of set.
 * Returns the process exit code (0 clean stop, 1 could not bind). */
/* The signals masterd handles (stop, hurry, reload, log reopen, restart); main holds them
 * blocked from the pid file on, md_master_run unblocks them once its watchers are set. */
extern const int md_master_signals[5];
int md_master_run(md_set *set, const md_master_opts *o);
#endif
