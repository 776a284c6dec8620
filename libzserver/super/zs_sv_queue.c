/*
 * zs_sv_queue.c — the start queue: slots wait here to get a process, and they are started in
 * batches of at most SPAWN_BATCH, or SPAWN_SLICE seconds' worth, so a mass start never makes
 * one loop iteration long.  A batch runs from an idle watcher of the lowest priority: only in an
 * iteration where nothing else is pending, so a signal, a control request or a status record
 * that arrives while thousands of processes start waits for one batch at most, and a request
 * that takes several iterations (accept, read, reply) gets them back to back.  Should the loop
 * never be idle, a timer runs a batch every SPAWN_STARVE seconds anyway.
 *
 * A zero timer reports generations that went empty, so the owner's gen_empty hook never runs
 * from inside a call the owner made (it may free what it is walking).  Starting one process
 * (clone and exec, the fd contract) is zs_spawn.c; this file makes its record.
 *
 * Exports: zs_sv_queue_start, zs_sv_queue_drop_gen, zs_sv_queue_kick, zs_sv_queue_cb,
 * zs_sv_spawn_idle_cb, zs_sv_spawn_starve_cb.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <ev.h>
#include "core/zserver_core.h"
#include "zs_spawn.h"
#include "zs_sv_int.h"

void zs_sv_queue_kick(zs_supervisor *s)
{
    if (!ev_is_active(&s->work_w)) {
        ev_timer_set(&s->work_w, 0., 0.);
        ev_timer_start(s->loop, &s->work_w);
    }
}

/* Makes sure a batch of starts comes: at the next idle moment, or after SPAWN_STARVE. */
static void spawn_soon(zs_supervisor *s)
{
    if (!ev_is_active(&s->spawn_w))
        ev_idle_start(s->loop, &s->spawn_w);
    if (!ev_is_active(&s->starve_w))
        ev_timer_again(s->loop, &s->starve_w);
}

void zs_sv_queue_start(zs_slot *sl)
{
    zs_supervisor *s = sl->g->s;
    ev_timer_stop(s->loop, &sl->backoff);
    if (sl->queued)
        return;
    sl->queued = 1;
    sl->qnext = NULL;
    if (s->q_tail)
        s->q_tail->qnext = sl;
    else
        s->q_head = sl;
    s->q_tail = sl;
    spawn_soon(s);
}

void zs_sv_queue_drop_gen(zs_supervisor *s, zs_generation *g)
{
    zs_slot *prev = NULL;
    for (zs_slot *sl = s->q_head, *nx; sl; sl = nx) {
        nx = sl->qnext;
        if (sl->g != g) {
            prev = sl;
            continue;
        }
        if (prev)
            prev->qnext = nx;
        else
            s->q_head = nx;
        if (s->q_tail == sl)
            s->q_tail = prev;
        sl->queued = 0;
    }
}

static void after_fork_cb(void *ctx)
{
    zs_supervisor_after_fork(ctx);
}

/* Starts sl's process now and makes its record; a failed fork counts as a failed start. */
static void spawn_now(zs_slot *sl)
{
    zs_generation *g = sl->g;
    zs_supervisor *s = g->s;
    zs_spawn_req req = {
        .svc = g->svc, .fds = g->fds, .gen = g->gen, .config_dir = g->config_dir,
        .run = g->run, .run_ctx = g->run_ctx, .slot = sl->index + 1,
    };
    int chan = -1;
    pid_t pid;

    /* Children of a fork-mode parent must not keep their siblings' channels open. */
    req.after_fork = g->run ? after_fork_cb : NULL;
    req.after_fork_ctx = s;
    /* The owner relays what the child prints (masterd: stamped with its service and pid). */
    int out[2] = { -1, -1 };
    if (s->hooks.child_output && !g->run) {
        if (pipe2(out, O_CLOEXEC) < 0)
            zwarning("%s: output pipe: %s (this process writes to the log directly)", g->svc->id, strerror(errno));
        else
            req.out_fd = out[1];
        /* A pipe belongs to its creator, mode 0600: a server-user child must own it to reopen
         * its stderr through /proc (zs_log.c's non-blocking alias).  Only root can give it. */
        if (out[1] >= 0 && g->svc->user && geteuid() == 0 && fchown(out[1], g->svc->uid, g->svc->gid) < 0)
            zwarning("%s: output pipe: fchown: %s", g->svc->id, strerror(errno));
    }
    double t0 = zs_sv_mono_now(); /* before the fork: nothing the child starts is older */
    pid = zs_spawn(&req, &chan);
    int e = errno;
    if (out[1] >= 0)
        close(out[1]);
    if (out[0] >= 0) {
        if (pid > 0)
            s->hooks.child_output(g, pid, out[0], s->hooks.ctx);
        else
            close(out[0]);
    }
    errno = e;
    if (pid < 0) {
        zerror("%s: cannot start a process: %s", g->svc->id, strerror(errno));
        /* A failure, also for server-restart on-failure. */
        zs_sv_slot_after_end(sl, 0, FAILED_START, W_EXITCODE(127, 0), END_EXIT);
        return;
    }
    zs_proc *p = zs_xcalloc(1, sizeof(*p));
    p->g = g;
    p->pid = pid;
    p->slot = sl;
    p->chan = chan;
    p->board_slot = -1;
    p->started = t0;
    zs_sv_proc_add(p);
    sl->proc = p;
    ev_io_init(&p->chan_w, zs_sv_chan_cb, chan, EV_READ);
    ev_io_start(s->loop, &p->chan_w);
    ev_init(&p->deadline_w, zs_sv_proc_deadline_cb);
    ev_init(&p->sigstop_w, zs_sv_sigstop_timer_cb);
    zs_sv_proc_arm(p, PLAIN_READY_AFTER);
    if (g->run)
        zinfo("Start up worker process No.%d (pid %ld)", sl->index + 1, (long)pid);
    else
        zinfo("%s: started pid %ld (slot %d, generation %u)", g->svc->id, (long)pid, sl->index + 1, g->gen);
}

/* Calls gen_empty for each generation reported empty that still is. */
static void fire_empty(zs_supervisor *s)
{
    for (;;) {
        zs_generation *g = s->gens;
        while (g && !g->empty_pending)
            g = g->next;
        if (!g)
            return;
        g->empty_pending = 0;
        if (g->empty_fired || zs_gen_running_count(g) > 0)
            continue;
        g->empty_fired = 1;
        if (s->hooks.gen_empty)
            s->hooks.gen_empty(g, s->hooks.ctx); /* may free g: the list is searched again */
    }
}

/* One bounded batch of starts; then either more are due (the starvation timer restarts) or
 * the queue is empty (both watchers stop). */
static void spawn_batch(zs_supervisor *s)
{
    double t0 = zs_sv_mono_now();
    for (int n = 0; n < SPAWN_BATCH && s->q_head && (n == 0 || zs_sv_mono_now() - t0 < SPAWN_SLICE); n++) {
        zs_slot *sl = s->q_head;
        s->q_head = sl->qnext;
        if (!s->q_head)
            s->q_tail = NULL;
        sl->queued = 0;
        if (!sl->proc && !sl->g->retiring && sl->index < sl->g->want)
            spawn_now(sl);
    }
    if (s->q_head) {
        ev_timer_again(s->loop, &s->starve_w);
    } else {
        ev_idle_stop(s->loop, &s->spawn_w);
        ev_timer_stop(s->loop, &s->starve_w);
    }
}

void zs_sv_spawn_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)revents;
    spawn_batch((zs_supervisor *)((char *)w - offsetof(zs_supervisor, spawn_w)));
}

void zs_sv_spawn_starve_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    spawn_batch((zs_supervisor *)((char *)w - offsetof(zs_supervisor, starve_w)));
}

/* The work timer: the generation-empty reports. */
void zs_sv_queue_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    fire_empty((zs_supervisor *)((char *)w - offsetof(zs_supervisor, work_w)));
}
