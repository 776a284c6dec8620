/*
 * zs_supervisor.c — the supervisor object (zs_supervisor.h): made once per supervising process
 * (masterd, or a self-hosted master of workers), it owns one child watcher, the start queue's
 * work timer, every generation and every live process.
 *
 * Leftovers.  Once a retired process has exited, whatever is left in its process group
 * (helpers it forked, even ones ignoring SIGTERM) is SIGKILLed, as systemd's KillMode=mixed
 * does; a process that exits by itself keeps its helpers (zs_sv_reap.c).
 *
 * Bounded work.  Nothing a child does makes one loop iteration long: every zombie is reaped
 * (waitpid only) as soon as SIGCHLD is seen, with the iteration's time as its end, so a
 * process's lifetime never grows while the loop is busy (zs_sv_reap.c); starts are queued and
 * done in bounded batches (zs_sv_queue.c); at most RECORDS_PER_WAKE records are read from one
 * channel per iteration (zs_sv_chan.c).
 *
 * Detach and strays.  A process that detaches (ZS_ST_DETACH) leaves its slot as if it had
 * exited (counted towards the slot's backoff) and is forgotten by its generation; it remains a
 * child of the supervisor, a stray (zs_strays.h) like what double-forking programs leave
 * behind, and zs_supervisor_strays() signals every stray when the owner shuts down.
 *
 * How the other files divide the rest: zs_sv_int.h.  The design, with figures:
 * doc/supervision.md.
 *
 * Exports: zs_supervisor_new, _free, _after_fork, _hurry, _strays, _pid_service.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <ev.h>
#include "core/zserver_core.h"
#include "zs_strays.h"
#include "zs_sv_int.h"

zs_supervisor *zs_supervisor_new(struct ev_loop *loop, const zs_supervisor_hooks *hooks)
{
    zs_supervisor *s = zs_xcalloc(1, sizeof(*s));
    s->loop = loop;
    if (hooks)
        s->hooks = *hooks;
    ev_child_init(&s->child_w, zs_sv_child_cb, 0, 1); /* 1: stops and continues too */
    /* First among what is pending: an exit is timed before any other work of the iteration. */
    ev_set_priority(&s->child_w, EV_MAXPRI);
    ev_child_start(loop, &s->child_w);
    ev_init(&s->work_w, zs_sv_queue_cb);
    /* Starts wait for a moment when nothing else is pending: signals, control requests and
     * status records come first (zs_sv_queue.c). */
    ev_idle_init(&s->spawn_w, zs_sv_spawn_idle_cb);
    ev_set_priority(&s->spawn_w, EV_MINPRI);
    ev_init(&s->starve_w, zs_sv_spawn_starve_cb);
    s->starve_w.repeat = SPAWN_STARVE;
    return s;
}

void zs_supervisor_free(zs_supervisor *s)
{
    if (!s)
        return;
    ev_child_stop(s->loop, &s->child_w);
    ev_timer_stop(s->loop, &s->work_w);
    ev_idle_stop(s->loop, &s->spawn_w);
    ev_timer_stop(s->loop, &s->starve_w);
    free(s->ptab);
    free(s->seen_strays);
    free(s);
}

void zs_supervisor_after_fork(zs_supervisor *s)
{
    /* The worker keeps the parent's loop (ev_loop_fork), so every watcher the parent had in it
     * must go: none of those fds, timers or children are the worker's business. */
    for (zs_proc *p = s->procs; p; p = p->next) {
        ev_timer_stop(s->loop, &p->deadline_w);
        ev_timer_stop(s->loop, &p->sigstop_w);
        if (p->chan >= 0) {
            ev_io_stop(s->loop, &p->chan_w);
            close(p->chan);
        }
    }
    for (zs_generation *g = s->gens; g; g = g->next) {
        for (int i = 0; i < g->nslots; i++)
            ev_timer_stop(s->loop, &g->slots[i]->backoff);
        zs_sv_board_close(g); /* the worker gets its board over its channel, like any child */
        if (g->config_fd >= 0)
            close(g->config_fd);
    }
    ev_child_stop(s->loop, &s->child_w);
    ev_timer_stop(s->loop, &s->work_w);
    ev_idle_stop(s->loop, &s->spawn_w);
    ev_timer_stop(s->loop, &s->starve_w);
    zs_sv_proc_forget_all(s);
    s->gens = NULL;
    s->q_head = s->q_tail = NULL;
}

void zs_supervisor_hurry(zs_supervisor *s)
{
    s->hurry = 1;
    for (zs_proc *p = s->procs; p; p = p->next)
        if (p->retiring && ev_timer_remaining(s->loop, &p->deadline_w) > KILL_GRACE)
            zs_sv_proc_arm(p, KILL_GRACE);
}

int zs_supervisor_strays(zs_supervisor *s, int sig)
{
    pid_t found[1024];
    int n = zs_strays_find(zs_sv_is_supervised, s, found, 1024);
    for (int i = 0; i < n && i < 1024 && sig; i++) {
        kill(found[i], sig);
        if (sig != SIGKILL)
            kill(found[i], SIGCONT); /* a stopped stray would only hear SIGKILL */
    }
    return n;
}

const zs_service *zs_supervisor_pid_service(zs_supervisor *s, pid_t pid)
{
    zs_proc *p = zs_sv_proc_find(s, pid);
    return p ? p->g->svc : NULL;
}
