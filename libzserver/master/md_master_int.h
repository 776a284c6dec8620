/*
 * md_master_int.h — what md_master.c (the loop, generations, stop) and md_reload.c (reload and
 * the control verbs) share: the master's state and the generation helpers.  masterd-internal.
 */
#ifndef MD_MASTER_INT_H
#define MD_MASTER_INT_H
#include <ev.h>
#include "md_master.h"

/* A generation being retired, and the one whose readiness it waits for. */
typedef struct retiring {
    struct retiring *next;
    zs_generation *old;
    zs_generation *succ; /* the generation replacing it; NULL: retire it at once */
} retiring;

/* The one running master. */
typedef struct md_state {
    struct ev_loop *loop;
    zs_supervisor *super;
    md_set set;
    md_listener *listeners;
    retiring *retiring;
    int ngens;
    int shutting_down;
    const md_master_opts *o;
    ev_signal sig[6];
    ev_timer finish_w;  /* while shutting down: waits for the strays */
    double empty_at;    /* ev_now when the last generation went */
    int strays_killed;
} md_state;
extern md_state md_M;

/* systemd's notify protocol (NOTIFY_SOCKET), when set. */
void md_sd_notify(const char *msg);
/* Drops one reference to m; the last one unbinds its sockets and frees it. */
void md_svc_unref(md_svc *m);
/* Starts generation gen of m as m's current one. */
void md_start_generation(md_svc *m, unsigned gen);
/* Retires g once succ is ready (at once when succ is NULL or g serves nobody). */
void md_retire_generation(zs_generation *g, zs_generation *succ);
/* For an id the running set does not hold: the highest generation number of a removed
 * service of that id whose processes still drain, or 0. */
unsigned md_draining_gen(const char *id);
/* A new generation of m; the current one drains as in a reload. */
void md_restart_svc(md_svc *m);
/* md_reload.c: a reload still reading is dropped (masterd is stopping). */
void md_reload_abort(void);
#endif
