/*
 * zs_sv_chan.c — what children say on their status channels (doc/CONTRACT.md §5): HELLO (answered
 * with the validated config and the accept scoreboard), READY, STOPPING (the announced
 * deadline), DETACH; at most RECORDS_PER_WAKE records a channel per loop iteration, and every
 * malformed or unexpected record counted, never acted on.
 *
 * Exports: zs_sv_chan_cb.
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

/* A lying or broken child costs a counter and a log line at 1, 10, 100, ... occurrences. */
static void proc_abuse(zs_proc *p, const char *what)
{
    unsigned n = ++p->abuse, m = n;
    while (m % 10 == 0)
        m /= 10;
    if (m == 1)
        zwarning("%s: pid %ld: %s on its status channel (%u bad record%s so far)", p->g->svc->id,
                 (long)p->pid, what, n, n == 1 ? "" : "s");
}

/* p said DETACH: it becomes a stray and its slot gets a replacement. */
static void proc_detach(zs_proc *p)
{
    zs_generation *g = p->g;
    zs_supervisor *s = g->s;
    zs_slot *sl = p->slot;
    double lived = zs_sv_mono_now() - p->started;
    /* A slot whose previous detached process still runs is detaching faster than its processes
     * finish: that is a failure in a row, so the pile of detached processes grows only as fast as
     * the backoff lets it. */
    int piling = sl && sl->detached_pid > 0 && kill(sl->detached_pid, 0) == 0;
    zinfo("%s: pid %ld detached after %.1f s; starting a replacement", g->svc->id, (long)p->pid, lived);
    /* From now on a stray: still our child, signalled when the owner shuts down, never counted again.  The
     * list forgets the dead ones before it grows past a few hundred. */
    if (s->nseen_strays >= 256) {
        int k = 0;
        for (int i = 0; i < s->nseen_strays; i++)
            if (kill(s->seen_strays[i], 0) == 0)
                s->seen_strays[k++] = s->seen_strays[i];
        s->nseen_strays = k;
    }
    s->seen_strays = zs_xrealloc(s->seen_strays, (size_t)(s->nseen_strays + 1) * sizeof(pid_t));
    s->seen_strays[s->nseen_strays++] = p->pid;
    if (sl)
        sl->detached_pid = p->pid;
    zs_sv_proc_forget(p);
    if (sl)
        zs_sv_slot_after_end(sl, lived, piling ? FAILED_START : JUDGE_BY_LIFETIME, 0, END_DETACH);
    zs_sv_gen_check_empty(g);
}

void zs_sv_chan_cb(struct ev_loop *loop, ev_io *w, int revents)
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
            if (!p->ready && !p->retiring)
                zs_sv_proc_arm(p, p->g->svc->ready_timeout);
            /* Asked for, not queued at spawn: a plain program never holds an fd in flight. */
            if (p->g->config_fd >= 0 && p->chan >= 0 &&
                zs_status_send_fd(p->chan, ZS_ST_CONFIG, p->g->gen, 0, p->g->config_fd) < 0)
                zerror("%s: pid %ld: cannot send its config: %s", p->g->svc->id, (long)p->pid, strerror(errno));
            zs_sv_board_offer(p);
            break;
        case ZS_ST_READY:
            p->spoke = 1;
            zs_sv_proc_set_ready(p);
            break;
        case ZS_ST_STOPPING:
            if (p->retiring && r.value >= 0) {
                double cap = p->g->svc->softstop_after > MIN_DRAIN_CAP ? p->g->svc->softstop_after : MIN_DRAIN_CAP;
                double d = (p->g->s->hurry ? 0 : r.value < cap ? r.value : cap) + KILL_GRACE;
                /* The first announcement sets the deadline (later than the default, for a hook
                 * server); later ones can only bring it closer, so a child cannot keep putting
                 * off its own kill, and after zs_supervisor_hurry() nothing extends it. */
                if ((!p->announced && !p->g->s->hurry) || d < ev_timer_remaining(p->g->s->loop, &p->deadline_w))
                    zs_sv_proc_arm(p, d);
                p->announced = 1;
            }
            break;
        case ZS_ST_DETACH:
            proc_detach(p);
            return;
        case ZS_ST_AVAIL: /* free client slots: allowed, not used by the supervisor */
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
        zs_sv_proc_close_chan(p); /* the child closed it; SIGCHLD will tell us the rest */
    }
}
