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
 * Ownership: a zs_proc is in the supervisor's list from fork until it is reaped (or detached);
 * it sits in a slot of its group while it counts towards `want`, and leaves the slot the moment
 * it is asked to stop.  Slots are allocated one by one because libev holds pointers to the
 * timers inside them.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>
#include "zs_board.h"
#include "zs_spawn.h"
#include "zs_status.h"
#include "zs_super.h"
#include "zserver.h"

#define BACKOFF_FIRST 0.1
#define BACKOFF_MAX 60.0
#define FAILURE_LIFETIME 1.0   /* dying sooner than this after start is a failure */
#define RESET_LIFETIME 10.0    /* living this long forgives earlier failures */
#define PLAIN_READY_AFTER 1.0  /* a program that never says HELLO is ready after this */
#define KILL_GRACE 5.0         /* added to a child's soft-stop deadline before SIGKILL */

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
    int spoke, ready, stopping, timed_out, stopped;
    int board_slot;    /* its slot on the group's scoreboard, -1 before HELLO */
};

struct zs_slot {
    zs_group *g;
    int index;         /* 0-based; worker No.index+1 */
    zs_proc *proc;
    int failures;
    ev_timer backoff;
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
    int stopping, stop_for_exit, empty_fired;
    int nready;
    int board_fd;      /* the accept scoreboard (zs_board.h), -1 until a child says HELLO */
    void *user;
};

struct zs_super {
    struct ev_loop *loop;
    zs_super_hooks hooks;
    ev_child child_w;
    zs_proc *procs;
    zs_group *groups;
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void spawn_slot(zs_slot *sl);
static void stop_proc(zs_proc *p, int for_exit);
static void check_empty(zs_group *g);

/* ---- process records ---- */

static zs_proc *proc_find(zs_super *s, pid_t pid)
{
    for (zs_proc *p = s->procs; p; p = p->next)
        if (p->pid == pid)
            return p;
    return NULL;
}

static void proc_close_chan(zs_proc *p)
{
    if (p->chan < 0)
        return;
    ev_io_stop(p->g->s->loop, &p->chan_w);
    close(p->chan);
    p->chan = -1;
}

/* Takes p out of its slot; it no longer counts towards the group's capacity. */
static void proc_leave_slot(zs_proc *p)
{
    if (!p->slot)
        return;
    if (p->ready)
        p->g->nready--;
    p->slot->proc = NULL;
    p->slot = NULL;
}

static void proc_forget(zs_proc *p)
{
    zs_super *s = p->g->s;
    if (p->board_slot >= 0)
        zs_board_clear(p->g->board_fd, p->board_slot, p->pid);
    proc_leave_slot(p);
    proc_close_chan(p);
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

static void proc_set_ready(zs_proc *p)
{
    ev_timer_stop(p->g->s->loop, &p->timer);
    if (p->ready || p->stopping || !p->slot)
        return;
    p->ready = 1;
    p->g->nready++;
    zdebug("%s: pid %ld ready", p->g->svc->id, (long)p->pid);
    if (p->g->s->hooks.proc_ready)
        p->g->s->hooks.proc_ready(p->g, p->g->s->hooks.ctx);
}

/* One timer per proc: while starting it is the ready deadline, while stopping the kill one. */
static void proc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_proc *p = (zs_proc *)((char *)w - offsetof(zs_proc, timer));
    if (p->stopping) {
        zwarning("%s: pid %ld did not stop in time; killing its process group", p->g->svc->id, (long)p->pid);
        if (kill(-p->pid, SIGKILL) < 0)
            kill(p->pid, SIGKILL);
    } else if (!p->spoke) {
        proc_set_ready(p); /* a plain program: running for a second is all it can tell us */
    } else {
        zerror("%s: pid %ld said HELLO but not READY within %d s; killing it", p->g->svc->id,
               (long)p->pid, p->g->svc->ready_timeout);
        p->timed_out = 1;
        if (kill(-p->pid, SIGKILL) < 0)
            kill(p->pid, SIGKILL);
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
    if (kill(-p->pid, SIGKILL) < 0)
        kill(p->pid, SIGKILL);
}

static void proc_arm(zs_proc *p, double after)
{
    ev_timer_stop(p->g->s->loop, &p->timer);
    ev_timer_set(&p->timer, after, 0.);
    ev_timer_start(p->g->s->loop, &p->timer);
}

/* Hands a child that said HELLO its slot on the group's accept scoreboard (zs_board.h).  A
 * group that cannot have one runs without: the board only makes accepting fairer. */
static void board_offer(zs_proc *p)
{
    zs_group *g = p->g;
    if (!p->slot || p->board_slot >= 0 || p->chan < 0)
        return;
    if (g->board_fd < 0 && (g->board_fd = zs_board_create()) < 0) {
        zwarning("%s: no accept scoreboard: %m", g->svc->id);
        return;
    }
    zs_board_publish(g->board_fd, g->nslots);
    if (zs_status_send_fd(p->chan, ZS_ST_BOARD, g->gen, p->slot->index, g->board_fd) == 0)
        p->board_slot = p->slot->index;
}

static void chan_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_proc *p = (zs_proc *)((char *)w - offsetof(zs_proc, chan_w));
    zs_status_rec r;
    int rc;
    while ((rc = zs_status_recv(p->chan, &r)) == 1) {
        if (r.generation != p->g->gen)
            continue; /* a record meant for another generation is never acted on */
        switch (r.type) {
        case ZS_ST_HELLO:
            p->spoke = 1;
            if (!p->ready && !p->stopping)
                proc_arm(p, p->g->svc->ready_timeout);
            board_offer(p);
            break;
        case ZS_ST_READY:
            p->spoke = 1;
            proc_set_ready(p);
            break;
        case ZS_ST_STOPPING:
            if (p->stopping && !p->g->stop_for_exit && r.value >= 0)
                proc_arm(p, (double)r.value + KILL_GRACE);
            break;
        case ZS_ST_DETACH: {
            zs_slot *sl = p->slot;
            zinfo("%s: pid %ld detached; starting a replacement", p->g->svc->id, (long)p->pid);
            zs_group *g = p->g;
            proc_forget(p);
            if (sl && !g->stopping && sl->index < g->want)
                spawn_slot(sl);
            check_empty(g);
            return;
        }
        default:
            break;
        }
    }
    if (rc == 0 || (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        if (rc < 0)
            zwarning("%s: pid %ld: status channel: %s", p->g->svc->id, (long)p->pid, strerror(errno));
        proc_close_chan(p); /* the child closed it; SIGCHLD will tell us the rest */
    }
}

/* ---- respawn policy ---- */

static void backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_slot *sl = (zs_slot *)((char *)w - offsetof(zs_slot, backoff));
    if (!sl->proc && !sl->g->stopping && sl->index < sl->g->want)
        spawn_slot(sl);
}

/* Decides what happens to a slot whose process ended after `lived` seconds. */
static void slot_after_exit(zs_slot *sl, double lived, int failed_start, int status)
{
    zs_group *g = sl->g;
    const zs_service *svc = g->svc;
    if (g->stopping || sl->index >= g->want)
        return;
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (svc->restart == ZS_RESTART_NEVER || (svc->restart == ZS_RESTART_ON_FAILURE && clean)) {
        zinfo("%s: slot %d not restarted (server-restart %s)", svc->id, sl->index + 1,
              svc->restart == ZS_RESTART_NEVER ? "never" : "on-failure");
        return;
    }
    if (failed_start || lived < FAILURE_LIFETIME) {
        sl->failures++;
        double delay = BACKOFF_FIRST;
        for (int i = 1; i < sl->failures && delay < BACKOFF_MAX; i++)
            delay *= 2;
        if (delay > BACKOFF_MAX)
            delay = BACKOFF_MAX;
        zwarning("%s: slot %d failed %d time%s in a row; next try in %ld ms", svc->id, sl->index + 1,
                 sl->failures, sl->failures == 1 ? "" : "s", (long)(delay * 1000));
        ev_timer_set(&sl->backoff, delay, 0.);
        ev_timer_start(g->s->loop, &sl->backoff);
        return;
    }
    if (lived >= RESET_LIFETIME)
        sl->failures = 0;
    spawn_slot(sl);
}

static void describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "status 0x%x", status);
}

/* A stop or continue of a supervised child (see the top of this file). */
static void proc_stop_event(zs_proc *p, int status)
{
    struct ev_loop *loop = p->g->s->loop;
    if (WIFSTOPPED(status)) {
        int sig = WSTOPSIG(status);
        p->stopped = 1;
        zwarning("%s: pid %ld stopped by signal %d (%s); killed unless continued within %d s", p->g->svc->id,
                 (long)p->pid, sig, strsignal(sig), p->g->svc->ready_timeout);
        ev_timer_stop(loop, &p->stopped_w);
        ev_timer_set(&p->stopped_w, p->g->svc->ready_timeout, 0.);
        ev_timer_start(loop, &p->stopped_w);
        if (p->stopping && kill(-p->pid, SIGCONT) < 0)
            kill(p->pid, SIGCONT); /* it was asked to stop: let it hear that */
    } else {
        p->stopped = 0;
        ev_timer_stop(loop, &p->stopped_w);
        zinfo("%s: pid %ld continued", p->g->svc->id, (long)p->pid);
    }
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_super *s = (zs_super *)((char *)w - offsetof(zs_super, child_w));
    zs_proc *p = proc_find(s, w->rpid);
    char how[160];
    if (WIFSTOPPED(w->rstatus) || WIFCONTINUED(w->rstatus)) {
        if (p)
            proc_stop_event(p, w->rstatus);
        return;
    }
    describe_status(w->rstatus, how, sizeof(how));
    if (!p) {
        zdebug("reaped pid %ld (not a service child): %s", (long)w->rpid, how);
        return;
    }
    zs_group *g = p->g;
    zs_slot *sl = p->slot;
    double lived = mono_now() - p->started;
    int failed_start = p->timed_out;
    /* A process asked to stop is gone: what it leaves in its process group (helpers it
     * forked) goes too, as systemd's KillMode=mixed does.  Nobody else can hold that group id
     * while any member is alive. */
    if (p->stopping && kill(-p->pid, SIGKILL) == 0)
        zdebug("%s: killed what pid %ld left in its process group", g->svc->id, (long)p->pid);
    int level = (p->stopping || (WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 0)) ? ZLOG_INFO : ZLOG_WARNING;
    zlog_write(level, __FILE__, __func__, __LINE__, "%s: pid %ld %s after %.1f s", g->svc->id,
               (long)p->pid, how, lived);
    proc_forget(p);
    if (sl)
        slot_after_exit(sl, lived, failed_start, w->rstatus);
    check_empty(g);
}

/* ---- spawning ---- */

static void after_fork_cb(void *ctx)
{
    zs_super_after_fork(ctx);
}

static void spawn_slot(zs_slot *sl)
{
    zs_group *g = sl->g;
    zs_super *s = g->s;
    zs_spawn_req req = {
        .svc = g->svc, .fds = g->fds, .gen = g->gen, .config_dir = g->config_dir,
        .run = g->run, .run_ctx = g->run_ctx, .slot = sl->index + 1,
    };
    int chan = -1;
    pid_t pid;

    ev_timer_stop(s->loop, &sl->backoff);
    /* Children of a fork-mode parent must not keep their siblings' channels open. */
    req.after_fork = g->run ? after_fork_cb : NULL;
    req.after_fork_ctx = s;
    pid = zs_spawn(&req, &chan);
    if (pid < 0) {
        zerror("%s: cannot start a process: %s", g->svc->id, strerror(errno));
        slot_after_exit(sl, 0, 1, W_EXITCODE(127, 0)); /* a failure, also for server-restart on-failure */
        return;
    }
    zs_proc *p = zs_xcalloc(1, sizeof(*p));
    p->g = g;
    p->pid = pid;
    p->slot = sl;
    p->chan = chan;
    p->board_slot = -1;
    p->started = mono_now();
    p->next = s->procs;
    s->procs = p;
    sl->proc = p;
    ev_io_init(&p->chan_w, chan_cb, chan, EV_READ);
    ev_io_start(s->loop, &p->chan_w);
    ev_init(&p->timer, proc_timer_cb);
    ev_init(&p->stopped_w, stopped_timer_cb);
    proc_arm(p, PLAIN_READY_AFTER);
    if (g->run)
        zinfo("Start up worker process No.%d (pid %ld)", sl->index + 1, (long)pid);
    else
        zinfo("%s: started pid %ld (slot %d, generation %u)", g->svc->id, (long)pid, sl->index + 1, g->gen);
}

/* ---- stopping ---- */

static void stop_proc(zs_proc *p, int for_exit)
{
    double grace = (double)p->g->svc->softstop_after + KILL_GRACE;
    if (p->stopping) {
        if (for_exit && ev_timer_remaining(p->g->s->loop, &p->timer) > grace)
            proc_arm(p, grace);
        return;
    }
    proc_leave_slot(p);
    p->stopping = 1;
    /* A program that never spoke is stopped the systemd way: SIGTERM to its whole process
     * group, so helpers it forked leave with it (it may have left its group: then just it). */
    if (!p->spoke || p->chan < 0 || zs_status_send(p->chan, ZS_ST_SOFTSTOP, p->g->gen, 0) < 0) {
        if (kill(-p->pid, SIGTERM) < 0 && kill(p->pid, SIGTERM) < 0 && errno != ESRCH)
            zerror("%s: kill %ld: %s", p->g->svc->id, (long)p->pid, strerror(errno));
    }
    if (p->stopped && kill(-p->pid, SIGCONT) < 0)
        kill(p->pid, SIGCONT); /* a stopped process would only hear SIGKILL */
    proc_arm(p, grace);
}

static void check_empty(zs_group *g)
{
    if (!g->stopping || g->empty_fired || zs_group_running_count(g) > 0)
        return;
    g->empty_fired = 1;
    if (g->s->hooks.group_empty)
        g->s->hooks.group_empty(g, g->s->hooks.ctx);
}

/* ---- public ---- */

zs_super *zs_super_new(struct ev_loop *loop, const zs_super_hooks *hooks)
{
    zs_super *s = zs_xcalloc(1, sizeof(*s));
    s->loop = loop;
    if (hooks)
        s->hooks = *hooks;
    ev_child_init(&s->child_w, child_cb, 0, 1); /* 1: stops and continues too */
    ev_child_start(loop, &s->child_w);
    return s;
}

void zs_super_free(zs_super *s)
{
    if (!s)
        return;
    ev_child_stop(s->loop, &s->child_w);
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
    }
    ev_child_stop(s->loop, &s->child_w);
    s->procs = NULL;
    s->groups = NULL;
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
            ev_init(&sl->backoff, backoff_cb);
            g->slots[i] = sl;
        }
        g->nslots = count;
    }
    int old = g->want;
    g->want = count;
    for (int i = count; i < old; i++) {
        ev_timer_stop(g->s->loop, &g->slots[i]->backoff);
        if (g->slots[i]->proc)
            stop_proc(g->slots[i]->proc, g->stop_for_exit);
    }
    for (int i = old; i < count; i++)
        if (!g->slots[i]->proc)
            spawn_slot(g->slots[i]);
}

int zs_group_retire_one(zs_group *g)
{
    if (g->want == 0)
        return -1;
    zs_group_set_want(g, g->want - 1);
    return 0;
}

void zs_group_stop(zs_group *g, int for_exit)
{
    g->stopping = 1;
    g->stop_for_exit |= for_exit;
    zs_group_set_want(g, 0);
    for (zs_proc *p = g->s->procs; p; p = p->next)
        if (p->g == g)
            stop_proc(p, g->stop_for_exit);
    check_empty(g);
}

void zs_group_free(zs_group *g)
{
    zs_super *s = g->s;
    for (zs_proc *p = s->procs, *nx; p; p = nx) {
        nx = p->next;
        if (p->g == g)
            proc_forget(p); /* only reached when the owner gives up on live children */
    }
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
    free(g->slots);
    free(g->fds);
    free(g->config_dir);
    free(g);
}

const zs_service *zs_group_service(const zs_group *g) { return g->svc; }
int zs_group_ready_count(const zs_group *g) { return g->nready; }
int zs_group_want(const zs_group *g) { return g->want; }
void *zs_group_user(const zs_group *g) { return g->user; }
void zs_group_set_user(zs_group *g, void *user) { g->user = user; }

int zs_group_running_count(const zs_group *g)
{
    int n = 0;
    for (zs_proc *p = g->s->procs; p; p = p->next)
        if (p->g == g)
            n++;
    return n;
}
