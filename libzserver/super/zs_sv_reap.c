/*
 * zs_sv_reap.c — children that end: reaping (every zombie as soon as SIGCHLD is seen, timed at
 * the iteration that saw it), killing what a retired process left in its process group, the
 * daemonize warning, and the respawn policy: a process that dies within FAILURE_LIFETIME of
 * its start (or never became ready in time) is a failure, and its slot waits BACKOFF_FIRST
 * seconds, doubling with each failure in a row up to BACKOFF_MAX; RESET_LIFETIME of life
 * forgives earlier failures.  Stops and continues go to zs_sv_sigstop.c.
 *
 * Exports: zs_sv_child_cb, zs_sv_backoff_cb, zs_sv_slot_after_end, zs_sv_is_supervised.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <ev.h>
#include "core/zs_status.h"
#include "zs_strays.h"
#include "zs_sv_int.h"
#include "core/zserver_core.h"

/* A stray that started up to this long before a process did may still be its: /proc start
 * times have clock-tick resolution, and lived is measured at the loop iteration. */
#define START_SLACK 0.25

void zs_sv_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zs_slot *sl = (zs_slot *)((char *)w - offsetof(zs_slot, backoff));
    if (!sl->proc && !sl->g->retiring && sl->index < sl->g->want)
        zs_sv_queue_start(sl);
}

/* Decides what happens to a slot whose process ended (exited, or detached) after `lived`
 * seconds.  A detach is replaced whatever server-restart says, and counts like an exit. */
void zs_sv_slot_after_end(zs_slot *sl, double lived, enum slot_verdict verdict, int status, enum slot_end how)
{
    zs_generation *g = sl->g;
    const zs_service *svc = g->svc;
    if (g->retiring || sl->index >= g->want)
        return;
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (how == END_EXIT &&
        (svc->restart == ZS_RESTART_NEVER || (svc->restart == ZS_RESTART_ON_FAILURE && clean))) {
        zinfo("%s: slot %d not restarted (server-restart %s)", svc->id, sl->index + 1,
              svc->restart == ZS_RESTART_NEVER ? "never" : "on-failure");
        return;
    }
    if (verdict == FAILED_START || lived < FAILURE_LIFETIME) {
        sl->failures++;
        double delay = BACKOFF_FIRST;
        for (int i = 1; i < sl->failures && delay < BACKOFF_MAX; i++)
            delay *= 2;
        if (delay > BACKOFF_MAX)
            delay = BACKOFF_MAX;
        zwarning("%s: slot %d failed %d time%s in a row; next try in %ld ms", svc->id, sl->index + 1,
                 sl->failures, sl->failures == 1 ? "" : "s", (long)(delay * 1000));
        ev_timer_stop(g->s->loop, &sl->backoff);
        sl->next_try = zs_sv_mono_now() + delay;
        ev_timer_set(&sl->backoff, delay, 0.);
        ev_timer_start(g->s->loop, &sl->backoff);
        return;
    }
    if (lived >= RESET_LIFETIME)
        sl->failures = 0;
    zs_sv_queue_start(sl);
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

int zs_sv_is_supervised(pid_t pid, void *ctx)
{
    zs_supervisor *s = ctx;
    if (zs_sv_proc_find(s, pid))
        return 1;
    return 0;
}

/* The strays now, in a malloc'd *out; their count, or -1 when unknown. */
static int strays_now(zs_supervisor *s, pid_t **out)
{
    size_t cap = 64;
    for (;;) {
        pid_t *v = zs_xcalloc(cap, sizeof(pid_t));
        int n = zs_strays_find(zs_sv_is_supervised, s, v, cap);
        if (n >= 0 && (size_t)n <= cap) {
            *out = v;
            return n;
        }
        free(v);
        if (n < 0) {
            *out = NULL;
            return -1;
        }
        cap = (size_t)n * 2;
    }
}

static int seen_stray(const zs_supervisor *s, pid_t pid)
{
    for (int k = 0; k < s->nseen_strays; k++)
        if (s->seen_strays[k] == pid)
            return 1;
    return 0;
}

/* After each batch of reaped children: the strays of now are accounted for, so the next
 * daemonize check counts only what appeared since (what its process left, or what was
 * orphaned silently meanwhile: check_daemonized sorts that out). */
static void remember_strays(zs_supervisor *s)
{
    pid_t *v;
    int n = strays_now(s, &v);
    if (n < 0)
        return;
    free(s->seen_strays);
    s->seen_strays = v;
    s->nseen_strays = n;
}

/* A process that exited 0 at once may have put itself in the background.  What it left are the
 * strays that appeared since the last batch of reaped children (remember_strays) and are its:
 * in its session or process group; or, in a session of their own (setsid, as a daemon does),
 * started after it (a stray older than it belongs to something else).  A stray in the session
 * of another process still supervised, or of a stray already accounted for, is that one's
 * (a helper another service's process left, without a SIGCHLD to tell us when). */
static void check_daemonized(zs_supervisor *s, const zs_proc *p, double lived)
{
    pid_t *found;
    int n = strays_now(s, &found);
    if (n <= 0) {
        free(found);
        return;
    }
    char list[256] = "";
    size_t len = 0;
    int fresh = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = found[i], sid = getsid(pid);
        if (seen_stray(s, pid))
            continue;
        if (sid != p->pid && getpgid(pid) != p->pid) {
            if (sid > 0 && sid != pid && (zs_sv_is_supervised(sid, s) || seen_stray(s, sid)))
                continue;
            double age = zs_strays_age(pid);
            if (age >= 0 && age > lived + START_SLACK)
                continue;
        }
        fresh++;
        if (len < sizeof(list) - 16)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%ld", len ? " " : "", (long)pid);
    }
    free(found);
    if (fresh)
        zerror("%s: pid %ld exited with status 0 at once and left %d process%s running (pid %s): the program "
               "put itself in the background (daemonized). masterd supervises the process it starts: run the "
               "program in the foreground (its -D, --foreground or --nodaemon option; nginx: daemon off;). "
               "What it left is stopped when masterd stops", p->g->svc->id, (long)p->pid, fresh,
               fresh == 1 ? "" : "es", list);
}

/* One reaped (or stopped, or continued) child; now is the time the loop saw SIGCHLD. */
static void reaped(zs_supervisor *s, pid_t pid, int status, double now)
{
    zs_proc *p = zs_sv_proc_find(s, pid);
    char how[160];
    if (WIFSTOPPED(status) || WIFCONTINUED(status)) {
        if (p)
            zs_sv_proc_sigstop_event(p, status);
        return;
    }
    describe_status(status, how, sizeof(how));
    if (s->hooks.child_reaped)
        s->hooks.child_reaped(pid, s->hooks.ctx);
    if (!p) {
        zdebug("reaped pid %ld (not a supervised process): %s", (long)pid, how);
        return;
    }
    zs_generation *g = p->g;
    zs_slot *sl = p->slot;
    double lived = now - p->started;
    enum slot_verdict verdict = p->timed_out ? FAILED_START : JUDGE_BY_LIFETIME;
    /* A retired process is gone: what it leaves in its process group (helpers it
     * forked) goes too, as systemd's KillMode=mixed does.  Nobody else can hold that group id
     * while any member is alive. */
    if (p->retiring && kill(-p->pid, SIGKILL) == 0)
        zdebug("%s: killed what pid %ld left in its process group", g->svc->id, (long)p->pid);
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    int level = (p->retiring || clean) ? ZLOG_INFO : ZLOG_WARNING;
    zlog_write(level, __FILE__, __func__, __LINE__, "%s: pid %ld %s after %.1f s", g->svc->id,
               (long)p->pid, how, lived);
    if (clean && !p->retiring && lived < FAILURE_LIFETIME && sl && sl->failures == 0)
        check_daemonized(s, p, lived);
    if (sl) { /* still in its slot: nobody asked it to go */
        zs_restarts_add(&g->restarts, now);
        g->last_exit = (zs_exit_info){ 1, p->pid, sl->index + 1, status, now, lived };
    }
    zs_sv_proc_forget(p);
    if (sl)
        zs_sv_slot_after_end(sl, lived, verdict, status, END_EXIT);
    zs_sv_gen_check_empty(g);
}

void zs_sv_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)revents;
    zs_supervisor *s = (zs_supervisor *)((char *)w - offsetof(zs_supervisor, child_w));
    /* An exit is timed when the loop first saw it: zombies a batch had to leave for the next
     * iteration keep the time of the iteration that saw them, so a long burst never makes a
     * process look as if it lived longer (which would forgive a crash loop). */
    unsigned iter = ev_iteration(loop);
    double now = s->reap_more && iter == s->reap_iter + 1 ? s->reap_epoch : zs_sv_mono_now();
    reaped(s, w->rpid, w->rstatus, now);
    /* libev reaps one child per loop iteration (and comes back while there are more); take
     * more now, so none waits behind the others, but at most REAP_BATCH: a thousand exits at
     * once (a stop, a mass crash) must not hold the loop.  Every child of this process is ours. */
    int st, n = 1;
    pid_t pid = 0;
    while (n < REAP_BATCH && (pid = waitpid(-1, &st, WNOHANG | WUNTRACED | WCONTINUED)) > 0) {
        reaped(s, pid, st, now);
        n++;
    }
    s->reap_more = n >= REAP_BATCH;
    s->reap_epoch = now;
    s->reap_iter = iter;
    remember_strays(s);
}
