/*
 * zs_supervisor.h — process supervision: the one core used by masterd and by a libzserver
 * program's self-hosted multi-process mode (doc/CONTRACT.md §4–§6, §9).
 *
 * A generation (zs_generation) is one set of `want` slots of one service, started from one
 * config; each slot normally holds a running process.  A reload starts a new generation beside
 * the old one, which is retired.  The core spawns into empty slots (exec of server-command with
 * the fd contract, or a fork that runs a function) from a start queue worked in bounded
 * batches, watches each child's status channel, reaps on SIGCHLD, and respawns by the restart
 * policy with exponential backoff (100 ms doubling to 60 s, reset after 10 s of life).
 *
 * Four verbs, four meanings:
 *   retire    a generation's (or one slot's) soft stop: SOFTSTOP record, or SIGTERM for a
 *             program that never spoke, then a kill deadline (zs_sv_proc.c's header);
 *   shutdown  the owner stopping everything (masterd's SIGTERM): it retires every generation;
 *   hurry     a second stop signal: every kill deadline becomes KILL_GRACE (5 s) at most;
 *   kill      SIGKILL of a process group once its deadline is over.
 *
 * Invariants: every live child is in exactly one generation's table (a slot, or retiring) or
 * is detached (forgotten, never signalled); every channel fd is close-on-exec and owned by its
 * proc.  Everything runs on one libev loop; the core never blocks and arms no periodic timer.
 */
#ifndef ZS_SUPERVISOR_H
#define ZS_SUPERVISOR_H
#include <sys/types.h>
#include "core/zs_service.h"

struct ev_loop;
typedef struct zs_supervisor zs_supervisor;
typedef struct zs_generation zs_generation;

typedef struct zs_supervisor_hooks {
    /* A process of g became ready (said READY, or ran 1 s without speaking). */
    void (*proc_ready)(zs_generation *g, void *ctx);
    /* g has no process left and wants none (after zs_gen_retire): its owner may free it. */
    void (*gen_empty)(zs_generation *g, void *ctx);
    void *ctx;
    /* Optional.  When set, every exec'd child's stdout and stderr are the write end of a pipe
     * (close-on-exec in the owner) whose read end fd is handed over here, right after the
     * fork: the owner reads it and closes it.  When NULL, children share the log fd. */
    void (*child_output)(zs_generation *g, pid_t pid, int fd, void *ctx);
    /* Optional.  Child pid (one we started, detached or not) has ended and was reaped; called
     * before its end is logged.  The owner drops what it holds for it: masterd drains and
     * closes its output pipe, which an orphan it left could otherwise keep open forever. */
    void (*child_reaped)(pid_t pid, void *ctx);
} zs_supervisor_hooks;

/* In fork mode (no exec) the child runs this and exits with its return value.  slot is 1-based
 * (worker No.K); status_fd is the child's end of its status channel. */
typedef int (*zs_run_fn)(void *ctx, int slot, int status_fd);

zs_supervisor *zs_supervisor_new(struct ev_loop *loop, const zs_supervisor_hooks *hooks);
/* Frees the supervisor; its generations must be freed first. */
void zs_supervisor_free(zs_supervisor *s);

/* A generation numbered gen of svc (not copied: it must outlive the generation), with no slot
 * yet, whose children inherit fds[0..svc->nlisten) in order.  config_dir goes to
 * ZMASTER_CONFIG_PATH.  run == NULL: exec svc->argv; else fork and call run(run_ctx, ...). */
zs_generation *zs_gen_new(zs_supervisor *s, const zs_service *svc, const int *fds, unsigned gen,
                         const char *config_dir, zs_run_fn run, void *run_ctx);
/* Starts processes until want == count (scale up), or retires the highest slots (scale down). */
void zs_gen_set_want(zs_generation *g, int count);
/* Retires one process (the highest slot) and lowers want by one: a reload retires the old
 * generation this way as the new one becomes ready.  Returns 0, or -1 when none is left. */
int zs_gen_retire_one(zs_generation *g);
/* Retires every process and wants none (deadlines: zs_sv_proc.c's header).  gen_empty fires
 * from the loop once nothing is left, never from inside this call. */
void zs_gen_retire(zs_generation *g);
/* Frees g; a child still alive in it is forgotten (never signalled again): call it from
 * gen_empty, or when the owner gives up on its children. */
void zs_gen_free(zs_generation *g);

int zs_gen_ready_count(const zs_generation *g);
int zs_gen_want(const zs_generation *g);
int zs_gen_running_count(const zs_generation *g);   /* processes alive (slots + retiring) */
void *zs_gen_user(const zs_generation *g);
void zs_gen_set_user(zs_generation *g, void *user);
/* Every child of g that says HELLO from now on is answered with a ZS_ST_CONFIG record carrying
 * (a duplicate of) fd, a zs_config_to_memfd view; -1 stops that.  Returns 0, or -1 (errno) when
 * the fd cannot be duplicated (the previous one is kept). */
int zs_gen_set_config_fd(zs_generation *g, int fd);

/* Cuts every retiring process's kill deadline to KILL_GRACE (5 s), and every later one. */
void zs_supervisor_hurry(zs_supervisor *s);
/* Sends sig (0: none) to every stray (zs_strays.h: detached processes, what daemonizing
 * programs left behind, and everything below them); returns how many there are, -1 unknown. */
int zs_supervisor_strays(zs_supervisor *s, int sig);

/* The service of the live process pid, or NULL when pid is not one of ours. */
const zs_service *zs_supervisor_pid_service(zs_supervisor *s, pid_t pid);

/* Call in a freshly forked child (fork mode) before anything else: forgets every proc and
 * closes every channel fd the parent held, so the worker starts clean. */
void zs_supervisor_after_fork(zs_supervisor *s);
#endif
