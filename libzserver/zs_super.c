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
 * Ownership: a zs_proc is in the supervisor's list from fork until it is reaped (or detached);
 * it sits in a slot of its group while it counts towards `want`, and leaves the slot the moment
 * it is asked to stop.  Slots are allocated one by one because libev holds pointers to the
 * timers inside them.
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
#include "zs_board.h"
#include "zs_spawn.h"
#include "zs_status.h"
#include "zs_strays.h"
#include "zs_super.h"
#include "zserver.h"

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
    int nready, ever_ready;
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

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void spawn_slot(zs_slot *sl);
static void stop_proc(zs_proc *p);
static void check_empty(zs_group *g);

static void work_kick(zs_super *s)
{
    if (!ev_is_active(&s->work_w)) {
        ev_timer_set(&s->work_w, 0., 0.);
        ev_timer_start(s->loop, &s->work_w);
    }
}

/* ---- process records ---- */

static zs_proc *proc_find(zs_super *s, pid_t pid)
{
    for (zs_proc *p = s->procs; p; p = p->next)
        if (p->pid == pid)
            return p;
    return NULL;
}

const zs_service *zs_super_pid_service(zs_super *s, pid_t pid)
{
    zs_proc *p = proc_find(s, pid);
    return p ? p->g->svc : NULL;
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
    p->g->ever_ready = 1;
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

/* A lying or broken child costs a counter and a log line at 1, 10, 100, ... occurrences. */
static void proc_abuse(zs_proc *p, const char *what)
{
    unsigned n = ++p->abuse;
    for (unsigned k = 1; k && k <= n; k *= 10) {
        if (k == n) {
            zwarning("%s: pid %ld: %s on its status channel (%u bad record%s so far)", p->g->svc->id,
                     (long)p->pid, what, n, n == 1 ? "" : "s");
            break;
        }
    }
}

enum slot_end { END_EXIT, END_DETACH };
static void slot_after_end(zs_slot *sl, double lived, int failed_start, int status, enum slot_end how);

static void proc_detach(zs_proc *p)
{
    zs_group *g = p->g;
    zs_super *s = g->s;
    zs_slot *sl = p->slot;
    double lived = mono_now() - p->started;
    zinfo("%s: pid %ld detached after %.1f s; starting a replacement", g->svc->id, (long)p->pid, lived);
    /* From now on a stray: still our child, signalled when we stop, never counted again. */
    s->seen_strays = zs_xrealloc(s->seen_strays, (size_t)(s->nseen_strays + 1) * sizeof(pid_t));
    s->seen_strays[s->nseen_strays++] = p->pid;
    proc_forget(p);
    if (sl)
        slot_after_end(sl, lived, 0, 0, END_DETACH);
    check_empty(g);
}

static void chan_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_proc *p = (zs_proc *)((char *)w - offsetof(zs_proc, chan_w));
    zs_status_rec r;
    int rc = -1;
    /* Bounded: a flooding child gets the next turn on the next loop iteration. */
    for (int n = 0; n < RECORDS_PER_WAKE; n++) {
        rc = zs_status_recv(p->chan, &r);
        if (rc < 0 && errno == ECONNRESET)
            continue; /* it closed with our records unread: what it sent before is still queued */
        if (rc < 0 && errno == EPROTO) {
            proc_abuse(p, "a malformed record");
            continue;
        }
        if (rc != 1)
            break;
        if (r.generation != p->g->gen) {
            proc_abuse(p, "a record of another generation");
            continue; /* never acted on */
        }
        switch (r.type) {
        case ZS_ST_HELLO:
            if (p->hello) {
                proc_abuse(p, "a second HELLO"); /* answered once: no fd per record to a liar */
                break;
            }
            p->spoke = p->hello = 1;
            if (!p->ready && !p->stopping)
                proc_arm(p, p->g->svc->ready_timeout);
            /* Asked for, not queued at spawn: a plain program never holds an fd in flight. */
            if (p->g->config_fd >= 0 && p->chan >= 0 &&
                zs_status_send_fd(p->chan, ZS_ST_CONFIG, p->g->gen, 0, p->g->config_fd) < 0)
                zerror("%s: pid %ld: cannot send its config: %s", p->g->svc->id, (long)p->pid, strerror(errno));
            board_offer(p);
            break;
        case ZS_ST_READY:
            p->spoke = 1;
            proc_set_ready(p);
            break;
        case ZS_ST_STOPPING:
            if (p->stopping && r.value >= 0) {
                double cap = p->g->svc->softstop_after > MIN_DRAIN_CAP ? p->g->svc->softstop_after : MIN_DRAIN_CAP;
                double d = r.value < cap ? r.value : cap;
                proc_arm(p, (p->g->s->hurry ? 0 : d) + KILL_GRACE);
            }
            break;
        case ZS_ST_DETACH:
            proc_detach(p);
            return;
        case ZS_ST_AVAIL:
            break;
        default:
            proc_abuse(p, "an unknown record type");
            break;
        }
    }
    if (rc == 0 || (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNRESET &&
                    errno != EPROTO)) {
        if (rc < 0)
            zwarning("%s: pid %ld: status channel: %s", p->g->svc->id, (long)p->pid, strerror(errno));
        proc_close_chan(p); /* the child closed it; SIGCHLD will tell us the rest */
    }
}

/* ---- respawn policy ---- */

/* Queues sl to be started from the work timer (never more than SPAWN_BATCH an iteration). */
static void spawn_slot(zs_slot *sl)
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

static void backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_slot *sl = (zs_slot *)((char *)w - offsetof(zs_slot, backoff));
    if (!sl->proc && !sl->g->stopping && sl->index < sl->g->want)
        spawn_slot(sl);
}

/* Decides what happens to a slot whose process ended (exited, or detached) after `lived`
 * seconds.  A detach is replaced whatever server-restart says, and counts like an exit. */
static void slot_after_end(zs_slot *sl, double lived, int failed_start, int status, enum slot_end how)
{
    zs_group *g = sl->g;
    const zs_service *svc = g->svc;
    if (g->stopping || sl->index >= g->want)
        return;
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (how == END_EXIT &&
        (svc->restart == ZS_RESTART_NEVER || (svc->restart == ZS_RESTART_ON_FAILURE && clean))) {
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
        ev_timer_stop(g->s->loop, &sl->backoff);
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

static int is_supervised(pid_t pid, void *ctx)
{
    zs_super *s = ctx;
    if (proc_find(s, pid))
        return 1;
    return 0;
}

/* A process that exits 0 at once and leaves processes behind put itself in the background:
 * say so once (its first failure in a row), naming what it left. */
static void check_daemonized(zs_super *s, const zs_proc *p)
{
    pid_t found[64];
    int n = zs_strays_find(is_supervised, s, found, 64);
    if (n <= 0)
        return;
    char list[256] = "";
    size_t len = 0;
    int fresh = 0;
    for (int i = 0; i < n && i < 64; i++) {
        int seen = 0;
        for (int k = 0; k < s->nseen_strays && !seen; k++)
            seen = s->seen_strays[k] == found[i];
        if (seen)
            continue;
        fresh++;
        if (len < sizeof(list) - 16)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%ld", len ? " " : "", (long)found[i]);
    }
    free(s->seen_strays);
    s->seen_strays = zs_xcalloc((size_t)(n < 64 ? n : 64), sizeof(pid_t));
    memcpy(s->seen_strays, found, (size_t)(n < 64 ? n : 64) * sizeof(pid_t));
    s->nseen_strays = n < 64 ? n : 64;
    if (fresh)
        zerror("%s: pid %ld exited with status 0 at once and left %d process%s running (pid %s): the program "
               "put itself in the background (daemonized). masterd supervises the process it starts: run the "
               "program in the foreground (its -D, --foreground or --nodaemon option; nginx: daemon off;). "
               "What it left is stopped when masterd stops", p->g->svc->id, (long)p->pid, fresh,
               fresh == 1 ? "" : "es", list);
}

/* One reaped (or stopped, or continued) child; now is the time the loop saw SIGCHLD. */
static void reaped(zs_super *s, pid_t pid, int status, double now)
{
    zs_proc *p = proc_find(s, pid);
    char how[160];
    if (WIFSTOPPED(status) || WIFCONTINUED(status)) {
        if (p)
            proc_stop_event(p, status);
        return;
    }
    describe_status(status, how, sizeof(how));
    if (!p) {
        zdebug("reaped pid %ld (not a supervised process): %s", (long)pid, how);
        return;
    }
    zs_group *g = p->g;
    zs_slot *sl = p->slot;
    double lived = now - p->started;
    int failed_start = p->timed_out;
    /* A process asked to stop is gone: what it leaves in its process group (helpers it
     * forked) goes too, as systemd's KillMode=mixed does.  Nobody else can hold that group id
     * while any member is alive. */
    if (p->stopping && kill(-p->pid, SIGKILL) == 0)
        zdebug("%s: killed what pid %ld left in its process group", g->svc->id, (long)p->pid);
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    int level = (p->stopping || clean) ? ZLOG_INFO : ZLOG_WARNING;
    zlog_write(level, __FILE__, __func__, __LINE__, "%s: pid %ld %s after %.1f s", g->svc->id,
               (long)p->pid, how, lived);
    if (clean && !p->stopping && lived < FAILURE_LIFETIME && sl && sl->failures == 0)
        check_daemonized(s, p);
    proc_forget(p);
    if (sl)
        slot_after_end(sl, lived, failed_start, status, END_EXIT);
    check_empty(g);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_super *s = (zs_super *)((char *)w - offsetof(zs_super, child_w));
    double now = mono_now();
    reaped(s, w->rpid, w->rstatus, now);
    /* libev reaps one child per loop iteration; take every other zombie now, so none waits
     * (and grows its lifetime) behind the others.  Every child of this process is ours. */
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG | WUNTRACED | WCONTINUED)) > 0)
        reaped(s, pid, st, now);
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
        slot_after_end(sl, 0, 1, W_EXITCODE(127, 0), END_EXIT); /* a failure, also for on-failure */
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
    double t0 = mono_now();
    for (int n = 0; n < SPAWN_BATCH && s->q_head && (n == 0 || mono_now() - t0 < SPAWN_SLICE); n++) {
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
    proc_arm(p, stop_deadline(p));
}

static void check_empty(zs_group *g)
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
    ev_child_init(&s->child_w, child_cb, 0, 1); /* 1: stops and continues too */
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
            stop_proc(g->slots[i]->proc);
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

void zs_group_stop(zs_group *g)
{
    g->stopping = 1;
    zs_group_set_want(g, 0);
    for (zs_proc *p = g->s->procs; p; p = p->next)
        if (p->g == g)
            stop_proc(p);
    check_empty(g);
}

void zs_super_hurry(zs_super *s)
{
    s->hurry = 1;
    for (zs_proc *p = s->procs; p; p = p->next)
        if (p->stopping && ev_timer_remaining(s->loop, &p->timer) > KILL_GRACE)
            proc_arm(p, KILL_GRACE);
}

int zs_super_strays(zs_super *s, int sig)
{
    pid_t found[1024];
    int n = zs_strays_find(is_supervised, s, found, 1024);
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
            proc_forget(p); /* only reached when the owner gives up on live children */
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
int zs_group_ever_ready(const zs_group *g) { return g->ever_ready; }
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
