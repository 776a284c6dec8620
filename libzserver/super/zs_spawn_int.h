/*
 * zs_spawn_int.h — what zs_spawn.c (the parent's side of a start) and zs_spawn_child.c (the
 * child's side, between clone/fork and exec) share.  Not installed.
 *
 * The parent prepares one zs_spawn_child record (every string, the environment, the group list)
 * and starts the child on it; the child reads it and writes only its own stack, the digits of
 * LISTEN_PID in the prepared environment, and, when a step fails, the report.
 */
#ifndef ZS_SPAWN_INT_H
#define ZS_SPAWN_INT_H
#include <sys/resource.h>
#include <sys/types.h>
#include "zs_spawn.h"

/* What the child was doing when it gave up: the parent names it in its log line. */
enum zs_spawn_step {
    ZS_STEP_NONE,
    ZS_STEP_UNSHARE,
    ZS_STEP_SETSID,
    ZS_STEP_DUP_LOG,
    ZS_STEP_DUP,
    ZS_STEP_DUP2,
    ZS_STEP_DEVNULL,
    ZS_STEP_DUP2_LOG,
    ZS_STEP_NONBLOCK,
    ZS_STEP_NOFILE,
    ZS_STEP_GETNOFILE,
    ZS_STEP_NOFILE_BACK,
    ZS_STEP_CORE,
    ZS_STEP_SETGROUPS,
    ZS_STEP_SETGID,
    ZS_STEP_SETUID,
    ZS_STEP_NOT_DROPPED,
    ZS_STEP_REGAIN_ROOT,
    ZS_STEP_CHDIR,
    ZS_STEP_PDEATHSIG,
    ZS_STEP_ORPHANED,
    ZS_STEP_EXEC,
    ZS_STEP_COUNT
};

typedef struct zs_spawn_report {
    int step;      /* enum zs_spawn_step; ZS_STEP_NONE: the child exec'd (or never reported) */
    int err;       /* its errno */
} zs_spawn_report;

typedef struct zs_spawn_child {
    const zs_spawn_req *r;
    int chan;              /* the child's end of its status channel */
    int chan_other;        /* the parent's end: the child closes it (fork) */
    int report_fd;         /* fork: the write end of the report pipe (close-on-exec); -1: clone,
                            * the report is written into `report` (shared memory) */
    pid_t parent;
    const gid_t *groups;
    int ngroups;
    char *pid_digits;      /* where the digits of LISTEN_PID=... go (exec mode) */
    char **env;
    int devnull;           /* an O_RDWR /dev/null the parent keeps open, or -1 */
    int files_shared;      /* clone(CLONE_FILES): the child shares our fd table until it
                            * unshares it, keeping only fds 0..maxfd */
    int maxfd;             /* the highest fd the child needs: listeners, channel, output, log */
    int nofile_set;        /* give the child this soft RLIMIT_NOFILE (capped by the hard one) */
    rlim_t nofile;
    volatile zs_spawn_report report;
} zs_spawn_child;

/* The step's name as the log line says it ("setuid for server-user"). */
const char *zs_spawn_step_name(int step);
/* Exec mode, clone(CLONE_VM|CLONE_VFORK) or fork: signals, session, fds, rlimits, user,
 * directory, parent-death signal, then execve.  Never returns: a failed step is reported
 * and the child exits 126 (setup) or 127 (exec).  Async-signal-safe: system calls only. */
int zs_spawn_child_exec(void *child);
/* Fork mode (a function instead of a program): the same setup, then run(); never returns.
 * A failed step is written to fd 2 and the child exits 126. */
void zs_spawn_child_run(zs_spawn_child *c);
#endif
