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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "md_master_int.h"
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

static void report_line(md_reload *r, md_svc *m, const char *what)
{
    if (r)
        zs_errs_add(&r->lines, "%s: %s (generation %u)", m->svc.id, what, m->gen);
    if (r && m->current) {
        r->waits = zs_xrealloc(r->waits, (size_t)(r->nwaits + 1) * sizeof(*r->waits));
        zs_gen_stats st;
        zs_gen_stats_get(m->current, &st);
        r->waits[r->nwaits].restarts0 = st.restarts.total; /* a scaled generation may have some */
        r->waits[r->nwaits].id = zs_xstrdup(m->svc.id);
        r->waits[r->nwaits++].gen = m->gen;
    }
}

void md_reload_free(md_reload *r)
{
    zs_errs_free(&r->lines);
    for (int i = 0; i < r->nwaits; i++)
        free(r->waits[i].id);
    free(r->waits);
    memset(r, 0, sizeof(*r));
}

void md_reload_apply(md_reload *r)
{
    zs_errs errs = { 0 };
    md_set next;
    char err[1024], msg[64];
    struct timespec now;

    /* Type=notify-reload wants the CLOCK_MONOTONIC time of the reload's start with it. */
    clock_gettime(CLOCK_MONOTONIC, &now);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_nsec / 1000ULL);
    md_sd_notify(msg);
    zinfo("reload: reading %s", md_source_name(md_M.o->config_dir));
    if (md_set_load(md_M.o->config_dir, &next, &errs) < 0) {
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
            if (r)
                zs_errs_add(&r->lines, "%s", line);
        }
        if (r)
            r->invalid = 1;
        zerror("reload: %zu error%s; nothing changed", errs.n, errs.n == 1 ? "" : "s");
        zs_errs_free(&errs);
        md_sd_notify("READY=1");
        return;
    }
    md_set_log_warnings(&next, "reload: ");
    if (md_set_bind(&next, &md_M.listeners, err, sizeof(err)) < 0 ||
        md_masterlog_sync(md_M.loop, &next, err, sizeof(err)) < 0) {
        zerror("reload: %s; nothing changed", err);
        if (r) {
            r->invalid = 1;
            zs_errs_add(&r->lines, "%s", err);
        }
        for (int i = 0; i < next.n; i++)
            md_svc_unbind(next.v[i], &md_M.listeners);
        md_set_free(&next);
        md_sd_notify("READY=1");
        return;
    }
    int started = 0, changed = 0, scaled = 0, removed = 0, same = 0;
    for (int i = 0; i < next.n; i++) {
        md_svc *m = next.v[i];
        m->refs = 1;
        md_svc *old = md_set_find(&md_M.set, m->svc.id);
        if (!old) {
            md_start_generation(m, 1);
            report_line(r, m, "started");
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
                report_line(r, old, "started");
                started++;
            } else if (old->current && zs_gen_want(old->current) != count) {
                zs_gen_set_want(old->current, count);
                report_line(r, old, "scaled");
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
            report_line(r, m, "new generation");
            changed++;
        }
    }
    for (int i = 0; i < md_M.set.n; i++) {
        md_svc *old = md_M.set.v[i];
        if (!md_set_find(&next, old->svc.id) && old->current) {
            zs_generation *g = old->current;
            old->current = NULL;
            md_retire_generation(g, NULL);
            if (r)
                zs_errs_add(&r->lines, "%s: removed", old->svc.id);
            removed++;
        }
    }
    for (int i = 0; i < md_M.set.n; i++)
        md_svc_unref(md_M.set.v[i]);
    free(md_M.set.v);
    free(md_M.set.dir);
    md_M.set = next;
    zinfo("reload: %d started, %d new generation%s, %d scaled, %d removed, %d unchanged", started,
          changed, changed == 1 ? "" : "s", scaled, removed, same);
    if (r)
        zs_errs_add(&r->lines, "reload: %d started, %d new generation%s, %d scaled, %d removed, %d unchanged",
                    started, changed, changed == 1 ? "" : "s", scaled, removed, same);
    md_sd_notify("READY=1");
}

int md_master_reload(md_reload *r)
{
    if (md_M.shutting_down)
        return -1;
    md_reload_apply(r);
    return 0;
}
