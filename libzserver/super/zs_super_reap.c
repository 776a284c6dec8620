/*
 * zs_super_reap.c — children that end: reaping (every zombie as soon as SIGCHLD is seen),
 * stops and continues, the daemonize warning, and the respawn policy with its backoff.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <ev.h>
#include "core/zs_board.h"
#include "core/zs_status.h"
#include "zs_strays.h"
#include "zs_super_int.h"
#include "core/zserver_core.h"

void zs_sv_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_slot *sl = (zs_slot *)((char *)w - offsetof(zs_slot, backoff));
    if (!sl->proc && !sl->g->stopping && sl->index < sl->g->want)
        zs_sv_spawn_slot(sl);
}

/* Decides what happens to a slot whose process ended (exited, or detached) after `lived`
 * seconds.  A detach is replaced whatever server-restart says, and counts like an exit. */
void zs_sv_slot_after_end(zs_slot *sl, double lived, int failed_start, int status, enum slot_end how)
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
    zs_sv_spawn_slot(sl);
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
        if (p->stopping)
            zs_sv_proc_signal(p, SIGCONT); /* it was asked to stop: let it hear that */
    } else {
        p->stopped = 0;
        ev_timer_stop(loop, &p->stopped_w);
        zinfo("%s: pid %ld continued", p->g->svc->id, (long)p->pid);
    }
}

int zs_sv_is_supervised(pid_t pid, void *ctx)
{
    zs_super *s = ctx;
    if (zs_sv_proc_find(s, pid))
        return 1;
    return 0;
}

/* A process that exits 0 at once and leaves processes behind put itself in the background:
 * say so once (its first failure in a row), naming what it left. */
static void check_daemonized(zs_super *s, const zs_proc *p)
{
    pid_t found[64];
    int n = zs_strays_find(zs_sv_is_supervised, s, found, 64);
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
    zs_proc *p = zs_sv_proc_find(s, pid);
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
    zs_sv_proc_forget(p);
    if (sl)
        zs_sv_slot_after_end(sl, lived, failed_start, status, END_EXIT);
    zs_sv_check_empty(g);
}

void zs_sv_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_super *s = (zs_super *)((char *)w - offsetof(zs_super, child_w));
    double now = zs_sv_mono_now();
    reaped(s, w->rpid, w->rstatus, now);
    /* libev reaps one child per loop iteration; take every other zombie now, so none waits
     * (and grows its lifetime) behind the others.  Every child of this process is ours. */
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG | WUNTRACED | WCONTINUED)) > 0)
        reaped(s, pid, st, now);
}
