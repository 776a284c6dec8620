/*
 * zs_super.h — process supervision: the one core used by masterd and by a libzserver program's
 * self-hosted multi-process mode (CONTRACT §4–§6, §9).
 *
 * A group is one generation of one service: `want` slots, each normally holding a running
 * process.  The core spawns into empty slots (exec of server-command with the fd contract, or a
 * fork that runs a function), watches each child's status channel, reaps on SIGCHLD, respawns
 * by the restart policy with exponential backoff (100 ms doubling to 60 s, reset after 10 s of
 * life) from a start queue worked in bounded batches, and soft-stops (SOFTSTOP record, or SIGTERM for a program that never spoke) with a
 * SIGKILL of the process group once the grace period is over.
 *
 * Invariants: every live child is in exactly one group's table (slot or stopping list) or is
 * detached (forgotten, never signalled); every channel fd is close-on-exec and owned by its proc.
 * Everything runs on one libev loop; the core never blocks and arms no periodic timer.
 */
#ifndef ZS_SUPER_H
#define ZS_SUPER_H
#include <sys/types.h>
#include "core/zs_service.h"

struct ev_loop;
typedef struct zs_super zs_super;
typedef struct zs_group zs_group;

typedef struct zs_super_hooks {
    /* A process of g became ready (said READY, or ran 1 s without speaking). */
    void (*proc_ready)(zs_group *g, void *ctx);
    /* g has no process left and wants none (after zs_group_stop): its owner may free it. */
    void (*group_empty)(zs_group *g, void *ctx);
    void *ctx;
} zs_super_hooks;

/* In fork mode (no exec) the child runs this and exits with its return value.  slot is 1-based
 * (worker No.K); status_fd is the child's end of its status channel. */
typedef int (*zs_run_fn)(void *ctx, int slot, int status_fd);

zs_super *zs_super_new(struct ev_loop *loop, const zs_super_hooks *hooks);
/* Frees the supervisor; its groups must be empty. */
void zs_super_free(zs_super *s);

/* A group for svc (not copied: it must outlive the group) whose children inherit fds[0..nfds)
 * (svc->nlisten of them, in order) and run as generation gen.  config_dir goes to
 * ZMASTER_CONFIG_PATH.  run == NULL: exec svc->argv; else fork and call run(run_ctx, ...). */
zs_group *zs_group_new(zs_super *s, const zs_service *svc, const int *fds, unsigned gen,
                       const char *config_dir, zs_run_fn run, void *run_ctx);
/* Starts processes until want == count (scale up), or soft-stops the highest slots (scale down). */
void zs_group_set_want(zs_group *g, int count);
/* Soft-stops one process (the highest slot) and lowers want by one: used by a reload to retire
 * the old generation as the new one becomes ready.  Returns 0, or -1 when none is left. */
int zs_group_retire_one(zs_group *g);
/* Soft-stops every process and wants none (deadlines: zs_super.c's header).  group_empty fires
 * from the loop once nothing is left, never from inside this call. */
void zs_group_stop(zs_group *g);
void zs_group_free(zs_group *g);

int zs_group_ready_count(const zs_group *g);
int zs_group_want(const zs_group *g);
int zs_group_running_count(const zs_group *g);   /* processes alive (slots + stopping) */
void *zs_group_user(const zs_group *g);
void zs_group_set_user(zs_group *g, void *user);
/* Every child of g that says HELLO from now on is answered with a ZS_ST_CONFIG record carrying
 * (a duplicate of) fd, a zs_config_to_memfd view; -1 stops that.  Returns 0, or -1 (errno) when
 * the fd cannot be duplicated (the previous one is kept). */
int zs_group_set_config_fd(zs_group *g, int fd);

/* Cuts every stopping process's deadline to 5 s, and every later one (a second stop signal). */
void zs_super_hurry(zs_super *s);
/* Sends sig (0: none) to every stray (zs_strays.h: detached processes, what daemonizing
 * programs left behind, and everything below them); returns how many there are, -1 unknown. */
int zs_super_strays(zs_super *s, int sig);

/* The service of the live process pid, or NULL when pid is not one of ours. */
const zs_service *zs_super_pid_service(zs_super *s, pid_t pid);

/* Call in a freshly forked child (fork mode) before anything else: forgets every proc and
 * closes every channel fd the parent held, so the worker starts clean. */
void zs_super_after_fork(zs_super *s);
#endif
