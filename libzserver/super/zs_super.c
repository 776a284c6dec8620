/*
 * zs_super.c — the supervision core (zs_super.h): spawn, status channel, reap, respawn with
 * backoff, soft-stop with escalation.  The child side of a spawn (fd layout, environment,
 * privileges) is in zs_spawn.c.
 *
 * Stopped children.  The child watcher also reports stops and continues (ev_child trace): a
 * child stopped by a signal (SIGSTOP, SIGTSTP...) is logged, and if it is still stopped
 * server-ready-timeout seconds later its process group is SIGKILLed and the slot refilled at once
 * (not counted as a failure: the program did nothing wrong).  A child continued in time is
 * logged and left alone.  A child asked to stop is also sent SIGCONT when it is stopped, so the
 * SIGTERM or SOFTSTOP reaches it.  (A debugger's ptrace stops go to the debugger, not to us.)
 *
 * Leftovers.  Once a process masterd asked to stop has exited, whatever is left in its process
 * group (helpers it forked, even ones ignoring SIGTERM) is SIGKILLed, as systemd's
 * KillMode=mixed does; a process that exits by itself keeps its helpers.
 *
 * Bounded work.  Nothing a child does makes one loop iteration long: every zombie is reaped
 * (waitpid only) as soon as SIGCHLD is seen, with the iteration's time as its end, so a
 * process's lifetime never grows while the loop is busy; starting processes (fork and exec) is
 * queued and done from a zero timer, at most SPAWN_BATCH or SPAWN_SLICE seconds' worth an
 * iteration; at most RECORDS_PER_WAKE records are
 * read from one channel per iteration; "group empty" is reported from that timer too, never
 * from inside a call the owner made (so the owner may free what it is walking).
 *
 * Deadlines.  A process asked to stop is killed with its process group KILL_GRACE seconds after
 * the deadline it announced (ZS_ST_STOPPING: its server-stop-on-softstop-after, 3600 s when it
 * has a before_softstop hook and 0, or what it asked for with stop_notify), never later than
 * max(server-stop-on-softstop-after, 3600 s) + KILL_GRACE; until it announces one (a plain
 * program, or one still in its hook) the deadline is server-stop-on-softstop-after.  The same
 * rule for a reload, a graceful restart, a scale-down and the supervisor's stop;
 * zs_super_hurry() cuts every deadline to KILL_GRACE (a second stop signal).
 *
 * Detach and strays.  A process that detaches (ZS_ST_DETACH) leaves its slot as if it had
 * exited (counted towards the slot's backoff) and is forgotten by its group; it remains a child
 * of the supervisor, a stray (zs_strays.h) like what double-forking programs leave behind, and
 * zs_super_strays() signals every stray when the owner stops.
 *
 * This file: the group API, the start queue, stopping.  Status records are zs_super_chan.c,
 * exits and the respawn policy zs_super_reap.c; what they share is zs_super_int.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>
#include "core/zs_board.h"
#include "zs_spawn.h"
#include "core/zs_status.h"
#include "zs_strays.h"
#include "zs_super.h"
#include "core/zserver_core.h"
#include "zs_super_int.h"

static void stop_proc(zs_proc *p);

static void work_kick(zs_super *s)
{
    if (!ev_is_active(&s->work_w)) {
        ev_timer_set(&s->work_w, 0., 0.);
        ev_timer_start(s->loop, &s->work_w);
    }
}

/* ---- process records ---- */

zs_proc *zs_sv_proc_find(zs_super *s, pid_t pid)
{
    for (zs_proc *p = s->procs; p; p = p->next)
        if (p->pid == pid)
            return p;
    return NULL;
}

const zs_service *zs_super_pid_service(zs_super *s, pid_t pid)
{
    zs_proc *p = zs_sv_proc_find(s, pid);
    return p ? p->g->svc : NULL;
}

void zs_sv_proc_close_chan(zs_proc *p)
{
    if (p->chan < 0)
        return;
    ev_io_stop(p->g->s->loop, &p->chan_w);
    close(p->chan);
    p->chan = -1;
}

/* Takes p out of its slot; it no longer counts towards the group's capacity. */
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
    zs_super *s = p->g->s;
    if (p->board_slot >= 0)
        zs_board_clear(p->g->board_fd, p->board_slot, p->pid);
    zs_sv_proc_leave_slot(p);
    zs_sv_proc_close_chan(p);
    ev_timer_stop(s->loop, &p->timer);
    ev_timer_stop(s->loop, &p->stopped_w);
    for (zs_proc **pp = &s->procs; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    free(p);
}

void zs_sv_proc_set_ready(zs_proc *p)
{
    /* A process asked to stop keeps its kill deadline whatever it says now. */
    if (p->ready || p->stopping || !p->slot)
        return;
    ev_timer_stop(p->g->s->loop, &p->timer); /* the ready deadline */
    p->ready = 1;
    p->g->nready++;
    zdebug("%s: pid %ld ready", p->g->svc->id, (long)p->pid);
    if (p->g->s->hooks.proc_ready)
        p->g->s->hooks.proc_ready(p->g, p->g->s->hooks.ctx);
}

/* One timer per proc: while starting it is the ready deadline, while stopping the kill one. */
/* Signals p's process group, or p alone when it has none (yet: a child leads its own session
 * only once it ran setsid(); or any more: it may have left it). */
int zs_sv_proc_signal(const zs_proc *p, int sig)
{
    return kill(-p->pid, sig) == 0 ? 0 : kill(p->pid, sig);
}

static void proc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_proc *p = (zs_proc *)((char *)w - offsetof(zs_proc, timer));
    if (p->stopping) {
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

/* Still stopped server-ready-timeout seconds after a stop signal: kill it (SIGKILL ends a
 * stopped process too) and let the exit refill the slot. */
static void stopped_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_proc *p = (zs_proc *)((char *)w - offsetof(zs_proc, stopped_w));
    zerror("%s: pid %ld still stopped after %d s; killing its process group", p->g->svc->id, (long)p->pid,
           p->g->svc->ready_timeout);
    zs_sv_proc_signal(p, SIGKILL);
}

void zs_sv_proc_arm(zs_proc *p, double after)
{
    ev_timer_stop(p->g->s->loop, &p->timer);
    ev_timer_set(&p->timer, after, 0.);
    ev_timer_start(p->g->s->loop, &p->timer);
}

/* ---- respawn policy ---- */

/* Queues sl to be started from the work timer (never more than SPAWN_BATCH an iteration). */
void zs_sv_spawn_slot(zs_slot *sl)
{
    zs_super *s = sl->g->s;
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
    work_kick(s);
}

static void unqueue_group(zs_super *s, zs_group *g)
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

/* ---- spawning ---- */

static void after_fork_cb(void *ctx)
{
    zs_super_after_fork(ctx);
}

static void spawn_now(zs_slot *sl)
{
    zs_group *g = sl->g;
    zs_super *s = g->s;
    zs_spawn_req req = {
        .svc = g->svc, .fds = g->fds, .gen = g->gen, .config_dir = g->config_dir,
        .run = g->run, .run_ctx = g->run_ctx, .slot = sl->index + 1,
    };
    int chan = -1;
    pid_t pid;

    /* Children of a fork-mode parent must not keep their siblings' channels open. */
    req.after_fork = g->run ? after_fork_cb : NULL;
    req.after_fork_ctx = s;
    pid = zs_spawn(&req, &chan);
    if (pid < 0) {
        zerror("%s: cannot start a process: %s", g->svc->id, strerror(errno));
        zs_sv_slot_after_end(sl, 0, 1, W_EXITCODE(127, 0), END_EXIT); /* a failure, also for on-failure */
        return;
    }
    zs_proc *p = zs_xcalloc(1, sizeof(*p));
    p->g = g;
    p->pid = pid;
    p->slot = sl;
    p->chan = chan;
    p->board_slot = -1;
    p->started = zs_sv_mono_now();
    p->next = s->procs;
    s->procs = p;
    sl->proc = p;
    ev_io_init(&p->chan_w, zs_sv_chan_cb, chan, EV_READ);
    ev_io_start(s->loop, &p->chan_w);
    ev_init(&p->timer, proc_timer_cb);
    ev_init(&p->stopped_w, stopped_timer_cb);
    zs_sv_proc_arm(p, PLAIN_READY_AFTER);
    if (g->run)
        zinfo("Start up worker process No.%d (pid %ld)", sl->index + 1, (long)pid);
    else
        zinfo("%s: started pid %ld (slot %d, generation %u)", g->svc->id, (long)pid, sl->index + 1, g->gen);
}

static void fire_empty(zs_super *s)
{
    for (;;) {
        zs_group *g = s->groups;
        while (g && !g->empty_pending)
            g = g->next;
        if (!g)
            return;
        g->empty_pending = 0;
        if (g->empty_fired || zs_group_running_count(g) > 0)
            continue;
        g->empty_fired = 1;
        if (s->hooks.group_empty)
            s->hooks.group_empty(g, s->hooks.ctx); /* may free g: the list is searched again */
    }
}

static void work_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_super *s = (zs_super *)((char *)w - offsetof(zs_super, work_w));
    double t0 = zs_sv_mono_now();
    for (int n = 0; n < SPAWN_BATCH && s->q_head && (n == 0 || zs_sv_mono_now() - t0 < SPAWN_SLICE); n++) {
        zs_slot *sl = s->q_head;
        s->q_head = sl->qnext;
        if (!s->q_head)
            s->q_tail = NULL;
        sl->queued = 0;
        if (!sl->proc && !sl->g->stopping && sl->index < sl->g->want)
            spawn_now(sl);
    }
    fire_empty(s);
    if (s->q_head)
        work_kick(s);
}

/* ---- stopping ---- */

static double stop_deadline(const zs_proc *p)
{
    return (p->g->s->hurry ? 0 : (double)p->g->svc->softstop_after) + KILL_GRACE;
}

static void stop_proc(zs_proc *p)
{
    if (p->stopping)
        return;
    zs_sv_proc_leave_slot(p);
    p->stopping = 1;
    /* A program that never spoke is stopped the systemd way: SIGTERM to its whole process
     * group, so helpers it forked leave with it (it may have left its group: then just it). */
    if (!p->spoke || p->chan < 0 || zs_status_send(p->chan, ZS_ST_SOFTSTOP, p->g->gen, 0) < 0) {
        if (zs_sv_proc_signal(p, SIGTERM) < 0 && errno != ESRCH)
            zerror("%s: kill %ld: %s", p->g->svc->id, (long)p->pid, strerror(errno));
    }
    if (p->stopped)
        zs_sv_proc_signal(p, SIGCONT); /* a stopped process would only hear SIGKILL */
    zs_sv_proc_arm(p, stop_deadline(p));
}

void zs_sv_check_empty(zs_group *g)
{
    if (!g->stopping || g->empty_fired || g->empty_pending || zs_group_running_count(g) > 0)
        return;
    g->empty_pending = 1;
    work_kick(g->s);
}

/* ---- public ---- */

zs_super *zs_super_new(struct ev_loop *loop, const zs_super_hooks *hooks)
{
    zs_super *s = zs_xcalloc(1, sizeof(*s));
    s->loop = loop;
    if (hooks)
        s->hooks = *hooks;
    ev_child_init(&s->child_w, zs_sv_child_cb, 0, 1); /* 1: stops and continues too */
    /* First among what is pending: an exit is timed before any other work of the iteration. */
    ev_set_priority(&s->child_w, EV_MAXPRI);
    ev_child_start(loop, &s->child_w);
    ev_init(&s->work_w, work_cb);
    return s;
}

void zs_super_free(zs_super *s)
{
    if (!s)
        return;
    ev_child_stop(s->loop, &s->child_w);
    ev_timer_stop(s->loop, &s->work_w);
    free(s->seen_strays);
    free(s);
}

void zs_super_after_fork(zs_super *s)
{
    /* The worker keeps the parent's loop (ev_loop_fork), so every watcher the parent had in it
     * must go: none of those fds, timers or children are the worker's business. */
    for (zs_proc *p = s->procs; p; p = p->next) {
        ev_timer_stop(s->loop, &p->timer);
        ev_timer_stop(s->loop, &p->stopped_w);
        if (p->chan >= 0) {
            ev_io_stop(s->loop, &p->chan_w);
            close(p->chan);
        }
    }
    for (zs_group *g = s->groups; g; g = g->next) {
        for (int i = 0; i < g->nslots; i++)
            ev_timer_stop(s->loop, &g->slots[i]->backoff);
        if (g->board_fd >= 0) /* the worker gets its board over its channel, like any child */
            close(g->board_fd);
        if (g->config_fd >= 0)
            close(g->config_fd);
    }
    ev_child_stop(s->loop, &s->child_w);
    ev_timer_stop(s->loop, &s->work_w);
    s->procs = NULL;
    s->groups = NULL;
    s->q_head = s->q_tail = NULL;
}

zs_group *zs_group_new(zs_super *s, const zs_service *svc, const int *fds, unsigned gen,
                       const char *config_dir, zs_run_fn run, void *run_ctx)
{
    zs_group *g = zs_xcalloc(1, sizeof(*g));
    g->s = s;
    g->svc = svc;
    g->fds = zs_xcalloc((size_t)svc->nlisten + 1, sizeof(int));
    if (svc->nlisten)
        memcpy(g->fds, fds, (size_t)svc->nlisten * sizeof(int));
    g->gen = gen;
    g->board_fd = -1;
    g->config_fd = -1;
    g->config_dir = config_dir ? zs_xstrdup(config_dir) : NULL;
    g->run = run;
    g->run_ctx = run_ctx;
    g->next = s->groups;
    s->groups = g;
    return g;
}

void zs_group_set_want(zs_group *g, int count)
{
    if (count > g->nslots) {
        g->slots = zs_xrealloc(g->slots, (size_t)count * sizeof(*g->slots));
        for (int i = g->nslots; i < count; i++) {
            zs_slot *sl = zs_xcalloc(1, sizeof(*sl));
            sl->g = g;
            sl->index = i;
            ev_init(&sl->backoff, zs_sv_backoff_cb);
            g->slots[i] = sl;
        }
        g->nslots = count;
    }
    int old = g->want;
    g->want = count;
    for (int i = count; i < old; i++) {
        ev_timer_stop(g->s->loop, &g->slots[i]->backoff);
        if (g->slots[i]->proc)
            stop_proc(g->slots[i]->proc);
    }
    for (int i = old; i < count; i++)
        if (!g->slots[i]->proc)
            zs_sv_spawn_slot(g->slots[i]);
}

int zs_group_retire_one(zs_group *g)
{
    if (g->want == 0)
        return -1;
    zs_group_set_want(g, g->want - 1);
    return 0;
}

void zs_group_stop(zs_group *g)
{
    g->stopping = 1;
    zs_group_set_want(g, 0);
    for (zs_proc *p = g->s->procs; p; p = p->next)
        if (p->g == g)
            stop_proc(p);
    zs_sv_check_empty(g);
}

void zs_super_hurry(zs_super *s)
{
    s->hurry = 1;
    for (zs_proc *p = s->procs; p; p = p->next)
        if (p->stopping && ev_timer_remaining(s->loop, &p->timer) > KILL_GRACE)
            zs_sv_proc_arm(p, KILL_GRACE);
}

int zs_super_strays(zs_super *s, int sig)
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

void zs_group_free(zs_group *g)
{
    zs_super *s = g->s;
    for (zs_proc *p = s->procs, *nx; p; p = nx) {
        nx = p->next;
        if (p->g == g)
            zs_sv_proc_forget(p); /* only reached when the owner gives up on live children */
    }
    unqueue_group(s, g);
    for (int i = 0; i < g->nslots; i++) {
        ev_timer_stop(s->loop, &g->slots[i]->backoff);
        free(g->slots[i]);
    }
    for (zs_group **pp = &s->groups; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    }
    if (g->board_fd >= 0)
        close(g->board_fd);
    if (g->config_fd >= 0)
        close(g->config_fd);
    free(g->slots);
    free(g->fds);
    free(g->config_dir);
    free(g);
}

int zs_group_ready_count(const zs_group *g) { return g->nready; }
int zs_group_want(const zs_group *g) { return g->want; }
void *zs_group_user(const zs_group *g) { return g->user; }
void zs_group_set_user(zs_group *g, void *user) { g->user = user; }

int zs_group_set_config_fd(zs_group *g, int fd)
{
    int copy = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (fd >= 0 && copy < 0)
        return -1;
    if (g->config_fd >= 0)
        close(g->config_fd);
    g->config_fd = copy;
    return 0;
}

int zs_group_running_count(const zs_group *g)
{
    int n = 0;
    for (zs_proc *p = g->s->procs; p; p = p->next)
        if (p->g == g)
            n++;
    return n;
}
