/*
 * zs_super_int.h — what the supervision core's files share (zs_super.c: the group API, the start
 * queue and stopping; zs_super_chan.c: status records; zs_super_reap.c: exits and the respawn
 * policy).  Not installed; nothing outside libzserver/super/zs_super*.c includes it.
 *
 * Ownership: a zs_proc is in the supervisor's list from fork until it is reaped (or detached);
 * it sits in a slot of its group while it counts towards `want`, and leaves the slot the moment
 * it is asked to stop.  Slots are allocated one by one because libev holds pointers to the
 * timers inside them.
 */
#ifndef ZS_SUPER_INT_H
#define ZS_SUPER_INT_H
#include <time.h>
#include <ev.h>
#include "zs_super.h"

#define BACKOFF_FIRST 0.1
#define BACKOFF_MAX 60.0
#define FAILURE_LIFETIME 1.0   /* dying sooner than this after start is a failure */
#define RESET_LIFETIME 10.0    /* living this long forgives earlier failures */
#define PLAIN_READY_AFTER 1.0  /* a program that never says HELLO is ready after this */
#define KILL_GRACE 5.0         /* added to a child's soft-stop deadline before SIGKILL */
#define MIN_DRAIN_CAP 3600     /* a child may announce a soft-stop deadline up to this (or its M) */
#define SPAWN_BATCH 16         /* processes started per loop iteration, at most... */
#define SPAWN_SLICE 0.010      /* ...and no more once this many seconds went into starting */
#define RECORDS_PER_WAKE 32    /* status records read from one channel per loop iteration */

typedef struct zs_proc zs_proc;
typedef struct zs_slot zs_slot;

struct zs_proc {
    zs_proc *next;
    zs_group *g;
    pid_t pid;
    zs_slot *slot;     /* NULL once it was asked to stop */
    int chan;          /* our end of the status channel, -1 once closed */
    ev_io chan_w;
    ev_timer timer;    /* ready deadline while starting, kill deadline while stopping */
    ev_timer stopped_w; /* armed while the process is stopped by a signal */
    double started;    /* CLOCK_MONOTONIC seconds */
    int spoke, hello, ready, stopping, timed_out, stopped;
    int announced;     /* sent STOPPING since it was asked to stop */
    int board_slot;    /* its slot on the group's scoreboard, -1 before HELLO */
    unsigned abuse;    /* malformed or unexpected records it sent */
};

struct zs_slot {
    zs_group *g;
    int index;         /* 0-based; worker No.index+1 */
    zs_proc *proc;
    int failures;
    ev_timer backoff;
    zs_slot *qnext;    /* in the supervisor's start queue while queued */
    int queued;
    pid_t detached_pid;/* the last process that detached from this slot */
};

struct zs_group {
    zs_group *next;
    zs_super *s;
    const zs_service *svc;
    int *fds;
    unsigned gen;
    char *config_dir;
    zs_run_fn run;
    void *run_ctx;
    zs_slot **slots;
    int nslots, want;
    int stopping, empty_pending, empty_fired;
    int nready;
    int board_fd;      /* the accept scoreboard (zs_board.h), -1 until a child says HELLO */
    int config_fd;     /* the validated config view (ZS_ST_CONFIG), -1: none (fork mode) */
    void *user;
};

struct zs_super {
    struct ev_loop *loop;
    zs_super_hooks hooks;
    ev_child child_w;
    ev_timer work_w;   /* zero timer: queued starts and group-empty reports */
    zs_proc *procs;
    zs_group *groups;
    zs_slot *q_head, *q_tail;
    int hurry;         /* zs_super_hurry(): deadlines are KILL_GRACE at most */
    pid_t *seen_strays;/* strays already accounted for (daemonize warning) */
    int nseen_strays;
};

static inline double zs_sv_mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum slot_end { END_EXIT, END_DETACH };

/* zs_super.c */
zs_proc *zs_sv_proc_find(zs_super *s, pid_t pid);
void zs_sv_proc_close_chan(zs_proc *p);
void zs_sv_proc_leave_slot(zs_proc *p);
/* Drops every trace of p (slot, channel, timers, board slot) and frees it. */
void zs_sv_proc_forget(zs_proc *p);
void zs_sv_proc_set_ready(zs_proc *p);
void zs_sv_proc_arm(zs_proc *p, double after);
/* kill() of p's process group, else of p: 0 or -1 (errno set). */
int zs_sv_proc_signal(const zs_proc *p, int sig);
/* Queues sl to be started from the work timer. */
void zs_sv_spawn_slot(zs_slot *sl);
/* Reports g empty from the work timer once it is stopping and has no process left. */
void zs_sv_check_empty(zs_group *g);
/* zs_super_chan.c */
void zs_sv_chan_cb(struct ev_loop *loop, ev_io *w, int revents);
/* zs_super_reap.c */
void zs_sv_child_cb(struct ev_loop *loop, ev_child *w, int revents);
void zs_sv_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents);
/* Decides what happens to a slot whose process ended after `lived` seconds. */
void zs_sv_slot_after_end(zs_slot *sl, double lived, int failed_start, int status, enum slot_end how);
int zs_sv_is_supervised(pid_t pid, void *ctx);
#endif
