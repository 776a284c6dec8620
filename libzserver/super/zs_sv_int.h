/*
 * zs_sv_int.h — what the supervision core's files share.  Not installed; only
 * libzserver/super/zs_supervisor.c and zs_sv_*.c include it.
 *
 * The files, one concern each:
 *   zs_supervisor.c  the supervisor object: create, free, after-fork, hurry, strays, pid lookup
 *   zs_sv_gen.c      the generation API (zs_supervisor.h): slots, want, retire, free
 *   zs_sv_queue.c    the start queue: starts and "generation empty" reports, bounded per iteration
 *   zs_sv_proc.c     process records: find, forget, ready, signal, the ready/kill deadline, retire
 *   zs_sv_sigstop.c  children stopped by a signal (SIGSTOP, SIGTSTP...)
 *   zs_sv_board.c    the accept scoreboard a generation hands its children
 *   zs_sv_chan.c     status records children send
 *   zs_sv_reap.c     reaping, the respawn policy and its backoff, the daemonize warning
 *   zs_sv_stats.c    the read-only accessors of zs_sv_stats.h
 *
 * Ownership: a zs_proc is in the supervisor's list (and its generation's, and the pid table)
 * from its start until it is reaped (or detached);
 * it sits in a slot of its generation while it counts towards `want`, and leaves the slot the
 * moment it is retired.  Slots are allocated one by one because libev holds pointers to the
 * timers inside them.
 */
#ifndef ZS_SV_INT_H
#define ZS_SV_INT_H
#include <time.h>
#include <ev.h>
#include "zs_supervisor.h"
#include "zs_sv_stats.h"

#define BACKOFF_FIRST 0.1
#define BACKOFF_MAX 60.0
#define FAILURE_LIFETIME 1.0   /* dying sooner than this after start is a failure */
#define RESET_LIFETIME 10.0    /* living this long forgives earlier failures */
#define PLAIN_READY_AFTER 1.0  /* a program that never says HELLO is ready after this */
#define KILL_GRACE 5.0         /* added to a child's soft-stop deadline before SIGKILL */
#define MIN_DRAIN_CAP 3600     /* a child may announce a soft-stop deadline up to this (or its M) */
#define SPAWN_BATCH 16         /* processes started per loop iteration, at most... */
#define SPAWN_SLICE 0.005      /* ...and no more once this many seconds went into starting */
#define SPAWN_STARVE 0.050     /* a batch at least this often, even when the loop is never idle */
#define REAP_BATCH 128         /* children reaped per loop iteration, at most */
#define RECORDS_PER_WAKE 32    /* status records read from one channel per loop iteration */

typedef struct zs_proc zs_proc;
typedef struct zs_slot zs_slot;

/* One live child process of the supervisor, from fork until it is reaped or detaches.  It is on
 * three lists, each unlinked in O(1): the supervisor's, its generation's, and its pid's hash
 * chain, so nothing done per process costs time proportional to the number of processes. */
struct zs_proc {
    zs_proc *next, *prev;   /* the supervisor's list */
    zs_proc *gnext, *gprev; /* its generation's list */
    zs_proc *hnext;         /* the pid table's chain */
    zs_generation *g;
    pid_t pid;
    zs_slot *slot;     /* NULL once it was retired */
    int chan;          /* our end of the status channel, -1 once closed */
    ev_io chan_w;
    ev_timer deadline_w; /* ready deadline while starting, kill deadline while retiring */
    ev_timer sigstop_w;  /* armed while the process is stopped by a signal */
    double started;    /* CLOCK_MONOTONIC seconds */
    int spoke, hello, ready, retiring, timed_out, sigstopped;
    int announced;     /* sent STOPPING since it was retired */
    int board_slot;    /* its slot on the generation's scoreboard, -1 before HELLO */
    unsigned abuse;    /* malformed or unexpected records it sent */
};

/* One place for a process in a generation (worker No.index+1): it outlives the processes that
 * fill it, and keeps their failure count for the backoff. */
struct zs_slot {
    zs_generation *g;
    int index;         /* 0-based; worker No.index+1 */
    zs_proc *proc;
    int failures;
    ev_timer backoff;
    zs_slot *qnext;    /* in the supervisor's start queue while queued */
    int queued;
    pid_t detached_pid;/* the last process that detached from this slot */
    double next_try;   /* when its backoff ends (zs_sv_stats.h), while one runs */
};

/* One generation of one service: the slots started from one config (zs_supervisor.h). */
struct zs_generation {
    zs_generation *next;
    zs_supervisor *s;
    const zs_service *svc;
    int *fds;
    unsigned gen;
    char *config_dir;
    zs_run_fn run;
    void *run_ctx;
    zs_slot **slots;
    int nslots, want;
    zs_proc *procs;    /* its live processes (slots and retiring), linked by gnext */
    int nrunning;      /* how many */
    int retiring, empty_pending, empty_fired;
    int nready;
    int board_fd;      /* the accept scoreboard (zs_board.h), -1 until a child says HELLO */
    int config_fd;     /* the validated config view (ZS_ST_CONFIG), -1: none (fork mode) */
    zs_restarts restarts;   /* ends of processes it did not stop itself (zs_sv_stats.h) */
    zs_exit_info last_exit;
    void *user;
};

/* The supervisor: every generation, every live process, the start queue, one child watcher. */
struct zs_supervisor {
    struct ev_loop *loop;
    zs_supervisor_hooks hooks;
    ev_child child_w;
    ev_idle spawn_w;   /* lowest priority: a batch of queued starts when nothing else is pending */
    ev_timer starve_w; /* a batch anyway when the loop was never idle for SPAWN_STARVE */
    ev_timer work_w;   /* zero timer: generation-empty reports */
    zs_proc *procs;
    zs_proc **ptab;    /* pid -> proc, chained; ptab_size buckets (a power of 2) */
    unsigned ptab_size;
    int nprocs;
    double reap_epoch; /* the time a burst of exits was first seen, in iteration reap_iter... */
    unsigned reap_iter;
    int reap_more;     /* ...when a batch of reaping left zombies for the next iteration */
    zs_generation *gens;
    zs_slot *q_head, *q_tail;
    int hurry;         /* zs_supervisor_hurry(): deadlines are KILL_GRACE at most */
    pid_t *seen_strays;/* strays already accounted for (daemonize warning) */
    int nseen_strays;
};

static inline double zs_sv_mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* How a slot's process ended, and whether that counts as a failed start whatever its lifetime. */
enum slot_end { END_EXIT, END_DETACH };
enum slot_verdict { JUDGE_BY_LIFETIME, FAILED_START };

/* zs_sv_proc.c */
zs_proc *zs_sv_proc_find(zs_supervisor *s, pid_t pid);
/* Enters p (p->g and p->pid set) on the supervisor's list, its generation's and the pid table. */
void zs_sv_proc_add(zs_proc *p);
/* Forgets every process record without freeing anything (a forked worker). */
void zs_sv_proc_forget_all(zs_supervisor *s);
void zs_sv_proc_close_chan(zs_proc *p);
/* Takes p out of its slot; it no longer counts towards its generation's capacity. */
void zs_sv_proc_leave_slot(zs_proc *p);
/* Drops every trace of p (slot, channel, timers, board slot) and frees it. */
void zs_sv_proc_forget(zs_proc *p);
void zs_sv_proc_set_ready(zs_proc *p);
/* (Re)arms p's one deadline: the ready one while starting, the kill one while retiring. */
void zs_sv_proc_arm(zs_proc *p, double after);
/* kill() of p's process group, else of p: 0 or -1 (errno set). */
int zs_sv_proc_signal(const zs_proc *p, int sig);
/* Soft-stops p (SOFTSTOP record, or SIGTERM) and arms its kill deadline; a no-op the second time. */
void zs_sv_proc_retire(zs_proc *p);
void zs_sv_proc_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents);
/* zs_sv_sigstop.c */
void zs_sv_sigstop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
/* A stop by a signal, or a continue, of p reported by the child watcher. */
void zs_sv_proc_sigstop_event(zs_proc *p, int status);
/* zs_sv_queue.c */
/* Queues sl to be started in a later batch. */
void zs_sv_queue_start(zs_slot *sl);
/* Takes every slot of g out of the start queue. */
void zs_sv_queue_drop_gen(zs_supervisor *s, zs_generation *g);
/* Makes sure the work timer runs this loop iteration (generation-empty reports). */
void zs_sv_queue_kick(zs_supervisor *s);
void zs_sv_queue_cb(struct ev_loop *loop, ev_timer *w, int revents);
void zs_sv_spawn_idle_cb(struct ev_loop *loop, ev_idle *w, int revents);
void zs_sv_spawn_starve_cb(struct ev_loop *loop, ev_timer *w, int revents);
/* zs_sv_gen.c */
/* Reports g empty from the work timer once it is retiring and has no process left. */
void zs_sv_gen_check_empty(zs_generation *g);
/* zs_sv_board.c */
/* Hands p (which said HELLO) its slot on its generation's accept scoreboard. */
void zs_sv_board_offer(zs_proc *p);
/* Clears p's slot on the scoreboard, if it had one. */
void zs_sv_board_release(zs_proc *p);
/* Closes g's scoreboard (the generation is freed, or this is a forked worker). */
void zs_sv_board_close(zs_generation *g);
/* zs_sv_chan.c */
void zs_sv_chan_cb(struct ev_loop *loop, ev_io *w, int revents);
/* zs_sv_reap.c */
void zs_sv_child_cb(struct ev_loop *loop, ev_child *w, int revents);
void zs_sv_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents);
/* Decides what happens to a slot whose process ended after `lived` seconds. */
void zs_sv_slot_after_end(zs_slot *sl, double lived, enum slot_verdict verdict, int status, enum slot_end how);
int zs_sv_is_supervised(pid_t pid, void *ctx);
#endif
