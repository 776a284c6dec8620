/*
 * zs_sv_stats.h — what the supervisor can tell about what it runs, read-only (doc/CONTRACT.md
 * §12): per generation its restarts, its last unexpected exit and the state of each slot and
 * process.  Owners (masterd's control socket) read these; they never touch the supervisor's
 * records.  Times are CLOCK_MONOTONIC seconds (zs_sv_now()).
 */
#ifndef ZS_SV_STATS_H
#define ZS_SV_STATS_H
#include <sys/types.h>
#include "zs_supervisor.h"

#define ZS_RESTART_RING 64   /* restart times kept: "restarts in the last 10 min" counts these */
#define ZS_CRASH_LOOP 3      /* failed starts in a row of one slot that make a crash loop */

/* Restarts: a total, and the times of the latest ZS_RESTART_RING. */
typedef struct zs_restarts {
    unsigned long total;
    double at[ZS_RESTART_RING];
    unsigned head;           /* at[head % RING] is the next to write */
} zs_restarts;

/* The last exit of a process the supervisor did not stop itself (it crashed, or exited). */
typedef struct zs_exit_info {
    int valid;               /* 0: no such exit yet */
    pid_t pid;
    int slot;                /* 1-based */
    int status;              /* wait status */
    double at;               /* when it was reaped */
    double lived;            /* seconds from start to exit */
} zs_exit_info;

enum zs_proc_state { ZS_PROC_STARTING, ZS_PROC_READY, ZS_PROC_RETIRING, ZS_PROC_STOPPED };

typedef struct zs_proc_info {
    pid_t pid;
    int slot;                /* 1-based; 0 once retired (no longer in a slot) */
    unsigned gen;
    int state;               /* enum zs_proc_state (STOPPED: stopped by a signal) */
    double started;
    int live;                /* connections it holds (accept scoreboard), -1 unknown */
} zs_proc_info;

typedef struct zs_gen_stats {
    unsigned gen;
    int want, running, ready, retiring;
    int backoff;             /* slots waiting out a backoff */
    int crash_loop;          /* slots with ZS_CRASH_LOOP failed starts or more in a row and no
                                ready process (none, or one trying again) */
    int sigstopped;          /* slots whose process is stopped by a signal (SIGSTOP...) */
    int idle;                /* slots with no process and none coming (server-restart said no) */
    double next_try;         /* the soonest backoff end, 0: none */
    zs_restarts restarts;
    zs_exit_info last_exit;
} zs_gen_stats;

double zs_sv_now(void);
/* Fills st for g. */
void zs_gen_stats_get(const zs_generation *g, zs_gen_stats *st);
/* Up to max of g's live processes into out (slot order, retiring ones last); returns the count
 * (which may exceed max: only max were filled). */
int zs_gen_procs(const zs_generation *g, zs_proc_info *out, int max);
/* Every generation the supervisor holds, up to max; returns the count (may exceed max). */
int zs_supervisor_gens(const zs_supervisor *s, zs_generation **out, int max);

void zs_restarts_add(zs_restarts *r, double at);
/* Restarts recorded at or after since (only the latest ZS_RESTART_RING are known). */
unsigned zs_restarts_since(const zs_restarts *r, double since);
/* Adds src's total and times into dst (what a freed generation leaves to its service). */
void zs_restarts_merge(zs_restarts *dst, const zs_restarts *src);
#endif
