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
    const char *control;    /* control socket path (md_ctl.h), NULL: none */
    const char *metrics;    /* -metrics HOST:PORT, NULL: none */
    const char *control_group; /* -control-group NAME: its members may use the socket too */
} md_master_opts;

/* What a reload asked on the control socket did: lines for its client, and the generations it
 * started, which a synchronous reload waits for. */
typedef struct md_reload {
    int invalid;            /* nothing changed: lines are the errors */
    zs_errs lines;
    struct md_reload_wait { char *id; unsigned gen; unsigned long restarts0; } *waits;
    int nwaits;
    int reading;            /* the reload is still reading the config: nothing decided yet */
    int told;               /* its lines are in the client's reply (md_ctl_reload_poll) */
    double started;         /* when it was applied: the readiness wait counts from then */
} md_reload;

/* Binds set's sockets, starts every service and runs until stopped.  Takes ownership of set.
 * Returns the process exit code (0 clean stop, 1 could not bind). */
/* The signals masterd handles (stop, hurry, reload, log reopen, restart); main holds them
 * blocked from the pid file on, md_master_run unblocks them once its watchers are set. */
extern const int md_master_signals[5];
int md_master_run(md_set *set, const md_master_opts *o);

/* For the control socket (md_ctl*.c): the running set and supervisor, read-only. */
const md_set *md_master_set(void);
zs_supervisor *md_master_super(void);
int md_master_stopping(void);
/* A new generation of m, the old one draining; a held service starts.  -1 while stopping. */
int md_master_restart(md_svc *m);
/* down: hold m down (its processes retire, its sockets stay); 0: start it again.  -1 when it
 * already is so, or while stopping. */
int md_master_hold(md_svc *m, int down);
/* A reload, as SIGHUP does, reporting into r (NULL: nobody waits).  The config is read a slice
 * per loop iteration; r->reading stays set until it is applied (or refused), then
 * md_ctl_reload_wake is called.  Asked while one is reading, another reload follows that one
 * (r waits for the second).  -1 while stopping. */
int md_master_reload(md_reload *r);
/* 1 while a reload reads the config, with how many services it has read of how many. */
int md_master_reload_progress(int *done, int *total);
/* Frees what r holds; a reload still reading forgets it. */
void md_reload_free(md_reload *r);
#endif
