/*
 * zs_sv_proc.c — process records of the supervisor (zs_sv_int.h): finding one by pid,
 * forgetting one, marking it ready, signalling it, its one deadline, and retiring it.
 *
 * One deadline per process.  While it starts, it is the ready deadline: a program that never
 * speaks is ready after PLAIN_READY_AFTER, one that said HELLO must say READY within
 * server-ready-timeout or is killed.  Once retired, it is the kill deadline: the process group is
 * SIGKILLed KILL_GRACE seconds after the deadline the child announced (ZS_ST_STOPPING: its
 * server-stop-on-softstop-after, 3600 s when it has a before_softstop hook and 0, or what it
 * asked for with stop_notify), never later than max(server-stop-on-softstop-after, 3600 s) +
 * KILL_GRACE; until it announces one (a plain program, or one still in its hook) the deadline
 * is server-stop-on-softstop-after.  The same rule for a reload, a graceful restart, a
 * scale-down and a shutdown; zs_supervisor_hurry() cuts every deadline to KILL_GRACE.
 *
 * Exports: zs_sv_proc_find, _add, _forget_all, _close_chan, _leave_slot, _forget, _set_ready,
 * _arm, _signal, _retire, _deadline_cb.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>
#include "core/zs_status.h"
#include "core/zserver_core.h"
#include "zs_sv_int.h"

static unsigned pid_bucket(pid_t pid, unsigned size)
{
    return ((unsigned)pid * 2654435761u) & (size - 1);
}

zs_proc *zs_sv_proc_find(zs_supervisor *s, pid_t pid)
{
    if (!s->ptab)
        return NULL;
    for (zs_proc *p = s->ptab[pid_bucket(pid, s->ptab_size)]; p; p = p->hnext)
        if (p->pid == pid)
            return p;
    return NULL;
}

/* Doubles the pid table (at most one process per bucket on average). */
static void grow_ptab(zs_supervisor *s)
{
    unsigned size = s->ptab_size ? s->ptab_size * 2 : 64;
    zs_proc **t = zs_xcalloc(size, sizeof(*t));
    for (unsigned i = 0; i < s->ptab_size; i++) {
        for (zs_proc *p = s->ptab[i], *nx; p; p = nx) {
            nx = p->hnext;
            unsigned b = pid_bucket(p->pid, size);
            p->hnext = t[b];
            t[b] = p;
        }
    }
    free(s->ptab);
    s->ptab = t;
    s->ptab_size = size;
}

void zs_sv_proc_add(zs_proc *p)
{
    zs_supervisor *s = p->g->s;
    p->prev = NULL;
    p->next = s->procs;
    if (s->procs)
        s->procs->prev = p;
    s->procs = p;
    p->gprev = NULL;
    p->gnext = p->g->procs;
    if (p->g->procs)
        p->g->procs->gprev = p;
    p->g->procs = p;
    p->g->nrunning++;
    if ((unsigned)s->nprocs + 1 > s->ptab_size)
        grow_ptab(s);
    unsigned b = pid_bucket(p->pid, s->ptab_size);
    p->hnext = s->ptab[b];
    s->ptab[b] = p;
    s->nprocs++;
}

static void unlink_proc(zs_proc *p)
{
    zs_supervisor *s = p->g->s;
    if (p->prev)
        p->prev->next = p->next;
    else
        s->procs = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (p->gprev)
        p->gprev->gnext = p->gnext;
    else
        p->g->procs = p->gnext;
    if (p->gnext)
        p->gnext->gprev = p->gprev;
    p->g->nrunning--;
    for (zs_proc **pp = &s->ptab[pid_bucket(p->pid, s->ptab_size)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == p) {
            *pp = p->hnext;
            break;
        }
    }
    s->nprocs--;
}

void zs_sv_proc_forget_all(zs_supervisor *s)
{
    for (zs_generation *g = s->gens; g; g = g->next) {
        g->procs = NULL;
        g->nrunning = 0;
    }
    s->procs = NULL;
    if (s->ptab)
        memset(s->ptab, 0, s->ptab_size * sizeof(*s->ptab));
    s->nprocs = 0;
}

void zs_sv_proc_close_chan(zs_proc *p)
{
    if (p->chan < 0)
        return;
    ev_io_stop(p->g->s->loop, &p->chan_w);
    close(p->chan);
    p->chan = -1;
}

void zs_sv_proc_leave_slot(zs_proc *p)
{
    if (!p->slot)
        return;
    if (p->ready)
        p->g->nready--;
    p->slot->proc = NULL;
    p->slot = NULL;
}

void zs_sv_proc_forget(zs_proc *p)
{
    zs_supervisor *s = p->g->s;
    zs_sv_board_release(p);
    zs_sv_proc_leave_slot(p);
    zs_sv_proc_close_chan(p);
    ev_timer_stop(s->loop, &p->deadline_w);
    ev_timer_stop(s->loop, &p->sigstop_w);
    unlink_proc(p);
    free(p);
}

void zs_sv_proc_set_ready(zs_proc *p)
{
    /* A retired process keeps its kill deadline whatever it says now. */
    if (p->ready || p->retiring || !p->slot)
        return;
    ev_timer_stop(p->g->s->loop, &p->deadline_w); /* the ready deadline */
    p->ready = 1;
    p->g->nready++;
    zdebug("%s: pid %ld ready", p->g->svc->id, (long)p->pid);
    if (p->g->s->hooks.proc_ready)
        p->g->s->hooks.proc_ready(p->g, p->g->s->hooks.ctx);
}

/* Signals p's process group, or p alone when it has none (yet: a child leads its own session
 * only once it ran setsid(); or any more: it may have left it). */
int zs_sv_proc_signal(const zs_proc *p, int sig)
{
    return kill(-p->pid, sig) == 0 ? 0 : kill(p->pid, sig);
}

void zs_sv_proc_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_proc *p = (zs_proc *)((char *)w - offsetof(zs_proc, deadline_w));
    if (p->retiring) {
        zwarning("%s: pid %ld did not stop in time; killing its process group", p->g->svc->id, (long)p->pid);
        zs_sv_proc_signal(p, SIGKILL);
    } else if (!p->spoke) {
        zs_sv_proc_set_ready(p); /* a plain program: running for a second is all it can tell us */
    } else {
        zerror("%s: pid %ld said HELLO but not READY within %d s; killing it", p->g->svc->id,
               (long)p->pid, p->g->svc->ready_timeout);
        p->timed_out = 1;
        zs_sv_proc_signal(p, SIGKILL);
    }
}

void zs_sv_proc_arm(zs_proc *p, double after)
{
    ev_timer_stop(p->g->s->loop, &p->deadline_w);
    ev_timer_set(&p->deadline_w, after, 0.);
    ev_timer_start(p->g->s->loop, &p->deadline_w);
}

/* The kill deadline before the child announces its own (see the top of this file). */
static double retire_deadline(const zs_proc *p)
{
    return (p->g->s->hurry ? 0 : (double)p->g->svc->softstop_after) + KILL_GRACE;
}

void zs_sv_proc_retire(zs_proc *p)
{
    if (p->retiring)
        return;
    zs_sv_proc_leave_slot(p);
    p->retiring = 1;
    /* A program that never spoke is retired the systemd way: server-stop-signal (SIGTERM) to
     * its whole process group, so helpers it forked leave with it (it may have left its group:
     * then just it).  A libzserver child gets the SOFTSTOP record whatever that key says; one
     * that has not spoken yet cannot be told from a plain program in its first second, so a
     * process not ready yet gets SIGTERM (libzserver's soft-stop; nothing to drain anyway). */
    if (!p->spoke || p->chan < 0 || zs_status_send(p->chan, ZS_ST_SOFTSTOP, p->g->gen, 0) < 0) {
        int sig = p->spoke || !p->ready || !p->g->svc->stop_signal ? SIGTERM : p->g->svc->stop_signal;
        if (zs_sv_proc_signal(p, sig) < 0 && errno != ESRCH)
            zerror("%s: kill %ld: %s", p->g->svc->id, (long)p->pid, strerror(errno));
    }
    if (p->sigstopped)
        zs_sv_proc_signal(p, SIGCONT); /* a stopped process would only hear SIGKILL */
    zs_sv_proc_arm(p, retire_deadline(p));
}
