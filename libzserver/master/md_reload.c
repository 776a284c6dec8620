/*
 * md_reload.c — the reload (doc/CONTRACT.md §6: SIGHUP, and `masterctl reload` with a report of
 * what changed) and the control socket's verbs on one service (restart, hold down, start;
 * §12).  The loop, generations and stop are md_master.c's (md_master_int.h).
 *
 * A reload builds the new set beside the running one and applies the difference:
 *   unchanged         -> the running md_svc moves into the new set, untouched (a hold stays);
 *   only proc-count   -> the same, and its current generation is scaled in place (a held-down
 *                        service starts: its file changed);
 *   changed           -> a new generation starts; the old one is retired one process per new
 *                        process that becomes ready, so capacity never dips;
 *   removed           -> retired; its sockets close when its last process is gone.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "md_master_int.h"
#include "md_ctl.h"
#include "md_masterlog.h"
#include "core/zs_log.h"
#include "core/zserver_core.h"

const md_set *md_master_set(void) { return &md_M.set; }
zs_supervisor *md_master_super(void) { return md_M.super; }
int md_master_stopping(void) { return md_M.shutting_down; }

int md_master_restart(md_svc *m)
{
    if (md_M.shutting_down)
        return -1;
    zinfo("%s: restart asked on the control socket: generation %u", m->svc.id, m->gen + 1);
    m->held = 0;
    md_restart_svc(m);
    return 0;
}

int md_master_hold(md_svc *m, int down)
{
    if (md_M.shutting_down || m->held == down)
        return -1;
    m->held = down;
    if (down) {
        zinfo("%s: held down on the control socket: its processes retire, its sockets stay bound", m->svc.id);
        zs_generation *g = m->current;
        m->current = NULL;
        if (g)
            md_retire_generation(g, NULL);
    } else {
        zinfo("%s: started on the control socket: generation %u", m->svc.id, m->gen + 1);
        md_start_generation(m, m->gen + 1);
    }
    return 0;
}

/* The reload under way (one at a time): its loader, read a slice per loop iteration so that
 * signals, children and control requests are served in between; the control clients waiting
 * for it (now) and for the one asked while it was reading (next). */
#define RELOAD_SLICE 0.005 /* seconds of reading per loop iteration */
static struct {
    md_set_loader *ld;
    ev_timer step_w;
    int again;               /* asked again while reading: another reload follows this one */
    md_reload **now, **next;
    int nnow, nnext;
    double began;
    int slices;
} R;

static void waiters_add(md_reload ***v, int *n, md_reload *r)
{
    *v = zs_xrealloc(*v, (size_t)(*n + 1) * sizeof(**v));
    (*v)[(*n)++] = r;
}

static void waiters_drop(md_reload **v, int *n, md_reload *r)
{
    for (int i = 0; i < *n; i++)
        if (v[i] == r) {
            v[i] = v[--*n];
            return;
        }
}

/* A line for every client waiting for this reload. */
static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    if (!R.nnow)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    for (int i = 0; i < R.nnow; i++)
        zs_errs_add(&R.now[i]->lines, "%s", line);
}

static void report_invalid(void)
{
    for (int i = 0; i < R.nnow; i++)
        R.now[i]->invalid = 1;
}

static void report_line(md_svc *m, const char *what)
{
    report("%s: %s (generation %u)", m->svc.id, what, m->gen);
    if (!m->current)
        return;
    zs_gen_stats st;
    zs_gen_stats_get(m->current, &st);
    for (int i = 0; i < R.nnow; i++) {
        md_reload *r = R.now[i];
        r->waits = zs_xrealloc(r->waits, (size_t)(r->nwaits + 1) * sizeof(*r->waits));
        r->waits[r->nwaits].restarts0 = st.restarts.total; /* a scaled generation may have some */
        r->waits[r->nwaits].id = zs_xstrdup(m->svc.id);
        r->waits[r->nwaits++].gen = m->gen;
    }
}

void md_reload_free(md_reload *r)
{
    waiters_drop(R.now, &R.nnow, r);
    waiters_drop(R.next, &R.nnext, r);
    zs_errs_free(&r->lines);
    for (int i = 0; i < r->nwaits; i++)
        free(r->waits[i].id);
    free(r->waits);
    memset(r, 0, sizeof(*r));
}

/* The set read: applied, or its errors reported (nothing changes). */
static void reload_apply(md_set_loader *ld)
{
    zs_errs errs = { 0 };
    md_set next;
    char err[1024];

    if (md_set_load_end(ld, &next, &errs) < 0) {
        /* The first ZS_ERRS_SHOWN, as masterd -t shows them, then how many more. */
        size_t shown = errs.n < ZS_ERRS_SHOWN ? errs.n : ZS_ERRS_SHOWN;
        char more[64] = "";
        if (errs.n > shown)
            snprintf(more, sizeof(more), "... and %zu more error%s", errs.n - shown, errs.n - shown == 1 ? "" : "s");
        for (size_t i = 0; i <= shown; i++) {
            const char *line = i < shown ? errs.msg[i] : more;
            if (!*line)
                continue;
            zerror("reload: %s", line);
            report("%s", line);
        }
        report_invalid();
        zerror("reload: %zu error%s; nothing changed", errs.n, errs.n == 1 ? "" : "s");
        zs_errs_free(&errs);
        return;
    }
    md_set_log_warnings(&next, "reload: ");
    if (md_set_bind(&next, &md_M.listeners, err, sizeof(err)) < 0 ||
        md_masterlog_sync(md_M.loop, &next, err, sizeof(err)) < 0) {
        zerror("reload: %s; nothing changed", err);
        report_invalid();
        report("%s", err);
        for (int i = 0; i < next.n; i++)
            md_svc_unbind(next.v[i], &md_M.listeners);
        md_set_free(&next);
        return;
    }
    int started = 0, changed = 0, scaled = 0, removed = 0, same = 0;
    for (int i = 0; i < next.n; i++) {
        md_svc *m = next.v[i];
        m->refs = 1;
        md_svc *old = md_set_find(&md_M.set, m->svc.id);
        if (!old) {
            /* Back while its removed self still drains: its numbers go on from there. */
            md_start_generation(m, md_draining_gen(m->svc.id) + 1);
            report_line(m, "started");
            started++;
        } else if (md_svc_same_but_count(old, m)) {
            int count = m->svc.proc_count;
            /* A held-down service whose file changed (its count, here) is started again. */
            int unhold = old->held && count != old->svc.proc_count;
            zs_config tmp = old->cf;
            old->cf = m->cf;
            m->cf = tmp;
            int fd = old->cf_fd;
            old->cf_fd = m->cf_fd;
            m->cf_fd = fd;
            if (old->current && zs_gen_set_config_fd(old->current, old->cf_fd) < 0)
                zerror("reload: %s: cannot hand its config to children: %s", m->svc.id, strerror(errno));
            old->svc.proc_count = count;
            next.v[i] = old;
            old->refs++;
            md_svc_unref(m);
            if (unhold) {
                old->held = 0;
                md_start_generation(old, old->gen + 1);
                report_line(old, "started");
                started++;
            } else if (old->current && zs_gen_want(old->current) != count) {
                zs_gen_set_want(old->current, count);
                report_line(old, "scaled");
                scaled++;
            } else {
                same++;
            }
        } else {
            zs_generation *g = old->current;
            m->past = old->past;
            m->past_exit = old->past_exit;
            md_start_generation(m, old->gen + 1);
            if (g) {
                old->current = NULL;
                md_retire_generation(g, m->current);
            }
            report_line(m, "new generation");
            changed++;
        }
    }
    for (int i = 0; i < md_M.set.n; i++) {
        md_svc *old = md_M.set.v[i];
        if (md_set_find(&next, old->svc.id))
            continue;
        zs_generation *g = old->current; /* none when held down: removed all the same */
        old->current = NULL;
        if (g)
            md_retire_generation(g, NULL);
        report("%s: removed", old->svc.id);
        removed++;
    }
    for (int i = 0; i < md_M.set.n; i++)
        md_svc_unref(md_M.set.v[i]);
    free(md_M.set.v);
    free(md_M.set.order);
    free(md_M.set.dir);
    md_M.set = next;
    zinfo("reload: %d started, %d new generation%s, %d scaled, %d removed, %d unchanged", started,
          changed, changed == 1 ? "" : "s", scaled, removed, same);
    report("reload: %d started, %d new generation%s, %d scaled, %d removed, %d unchanged",
           started, changed, changed == 1 ? "" : "s", scaled, removed, same);
}

static void reload_begin(void);

/* One slice of reading; the last one applies, answers the waiting clients and starts the
 * reload asked meanwhile, if any. */
static void reload_step(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    R.slices++;
    if (!md_set_load_step(R.ld, RELOAD_SLICE)) {
        ev_timer_set(w, 0., 0.);
        ev_timer_start(loop, w);
        return;
    }
    md_set_loader *ld = R.ld;
    R.ld = NULL;
    int done, total; /* all of them: done == total */
    md_set_load_progress(ld, &done, &total);
    zdebug("reload: %d service%s read in %.1f ms, %d slice%s", total, total == 1 ? "" : "s",
           (ev_time() - R.began) * 1e3, R.slices, R.slices == 1 ? "" : "s");
    double t1 = ev_time();
    reload_apply(ld);
    zdebug("reload: checked and applied in %.1f ms", (ev_time() - t1) * 1e3);
    for (int i = 0; i < R.nnow; i++)
        R.now[i]->reading = 0;
    R.nnow = 0;
    md_sd_notify("READY=1");
    md_ctl_reload_wake();
    if (R.again) {
        R.again = 0;
        md_reload **v = R.now;
        R.now = R.next;
        R.nnow = R.nnext;
        R.next = v;
        R.nnext = 0;
        reload_begin();
    }
}

static void reload_begin(void)
{
    char msg[64];
    struct timespec now;
    /* Type=notify-reload wants the CLOCK_MONOTONIC time of the reload's start with it. */
    clock_gettime(CLOCK_MONOTONIC, &now);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_nsec / 1000ULL);
    md_sd_notify(msg);
    zinfo("reload: reading %s", md_source_name(md_M.o->config_dir));
    R.began = ev_time();
    R.slices = 0;
    R.ld = md_set_load_begin(md_M.o->config_dir);
    /* Read after whatever else this iteration has pending (the lowest priority), a slice per
     * iteration. */
    ev_timer_init(&R.step_w, reload_step, 0., 0.);
    ev_set_priority(&R.step_w, EV_MINPRI);
    ev_timer_start(md_M.loop, &R.step_w);
}

int md_master_reload(md_reload *r)
{
    if (md_M.shutting_down)
        return -1;
    if (r) {
        r->reading = 1;
        if (R.ld)
            waiters_add(&R.next, &R.nnext, r);
        else
            waiters_add(&R.now, &R.nnow, r);
    }
    if (!R.ld) {
        reload_begin();
    } else if (!R.again) {
        R.again = 1;
        zinfo("reload: asked again while reading: another reload follows this one");
    }
    return 0;
}

int md_master_reload_progress(int *done, int *total)
{
    if (!R.ld)
        return 0;
    md_set_load_progress(R.ld, done, total);
    return 1;
}

void md_reload_abort(void)
{
    if (!R.ld)
        return;
    ev_timer_stop(md_M.loop, &R.step_w);
    md_set_load_abort(R.ld);
    R.ld = NULL;
    R.again = 0;
    R.nnow = R.nnext = 0; /* their clients are answered by md_ctl_stopping (still reading) */
    zinfo("reload: abandoned: masterd is stopping");
}
