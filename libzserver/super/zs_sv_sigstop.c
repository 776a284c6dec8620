/*
 * zs_sv_sigstop.c — children stopped by a signal (SIGSTOP, SIGTSTP...).
 *
 * The child watcher also reports stops and continues (ev_child trace).  A stopped child is
 * logged, and if it is still stopped server-ready-timeout seconds later its process group is
 * SIGKILLed and the slot refilled at once (not counted as a failure: the program did nothing
 * wrong).  A child continued in time is logged and left alone.  A retired child is also sent
 * SIGCONT when it is stopped, so the SIGTERM or SOFTSTOP reaches it.  (A debugger's ptrace
 * stops go to the debugger, not to us.)
 *
 * Exports: zs_sv_proc_sigstop_event, zs_sv_sigstop_timer_cb.
 */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <ev.h>
#include "core/zserver_core.h"
#include "zs_sv_int.h"

/* Still stopped server-ready-timeout seconds after a stop signal: kill it (SIGKILL ends a
 * stopped process too) and let the exit refill the slot. */
void zs_sv_sigstop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_proc *p = (zs_proc *)((char *)w - offsetof(zs_proc, sigstop_w));
    zerror("%s: pid %ld still stopped after %d s; killing its process group", p->g->svc->id, (long)p->pid,
           p->g->svc->ready_timeout);
    zs_sv_proc_signal(p, SIGKILL);
}

void zs_sv_proc_sigstop_event(zs_proc *p, int status)
{
    struct ev_loop *loop = p->g->s->loop;
    if (WIFSTOPPED(status)) {
        int sig = WSTOPSIG(status);
        p->sigstopped = 1;
        zwarning("%s: pid %ld stopped by signal %d (%s); killed unless continued within %d s", p->g->svc->id,
                 (long)p->pid, sig, strsignal(sig), p->g->svc->ready_timeout);
        ev_timer_stop(loop, &p->sigstop_w);
        ev_timer_set(&p->sigstop_w, p->g->svc->ready_timeout, 0.);
        ev_timer_start(loop, &p->sigstop_w);
        if (p->retiring)
            zs_sv_proc_signal(p, SIGCONT); /* it was retired: let it hear that */
    } else {
        p->sigstopped = 0;
        ev_timer_stop(loop, &p->sigstop_w);
        zinfo("%s: pid %ld continued", p->g->svc->id, (long)p->pid);
    }
}
