/*
 * md_ctl_cmd.c — the control requests (doc/CONTRACT.md §12): status, restart, stop, start,
 * reload (synchronous: the reply waits until every generation it started is ready or failed)
 * and metrics.  Exit statuses: 0 done, 1 not done or a new generation failed, 2 bad request,
 * unknown service or invalid configuration.  Names, and the reload's lines (which quote file
 * names and config values), go into the reply escaped for a terminal (md_buf_text).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "md_ctl.h"
#include "core/zserver_core.h"

#define MAX_WORDS 64

static md_svc *find_svc(const char *id, md_buf *out)
{
    md_svc *m = md_set_find(md_master_set(), id);
    if (!m) {
        md_buf_printf(out, "error: no service '");
        md_buf_text(out, id);
        md_buf_printf(out, "'\n");
    }
    return m;
}

/* restart, stop and start of one service. */
static int svc_verb(const char *verb, char **w, int n, md_buf *out)
{
    if (n != 1) {
        md_buf_printf(out, "error: usage: %s SERVICE\n", verb);
        return 2;
    }
    md_svc *m = find_svc(w[0], out);
    if (!m)
        return 2;
    if (md_master_stopping()) {
        md_buf_printf(out, "error: masterd is stopping\n");
        return 1;
    }
    if (!strcmp(verb, "restart")) {
        md_master_restart(m);
        md_buf_printf(out, "%s: restarting as generation %u\n", m->svc.id, m->gen);
        return 0;
    }
    int down = !strcmp(verb, "stop");
    if (md_master_hold(m, down) < 0) {
        md_buf_printf(out, "%s: already %s\n", m->svc.id, down ? "held down" : "started");
        return 1;
    }
    if (down)
        md_buf_printf(out, "%s: held down (its processes retire, its sockets stay bound)\n", m->svc.id);
    else
        md_buf_printf(out, "%s: started as generation %u\n", m->svc.id, m->gen);
    return 0;
}

static int reload_cmd(md_buf *out, md_reload *rl)
{
    if (md_master_reload(rl) < 0) {
        md_buf_printf(out, "error: masterd is stopping\n");
        return 1;
    }
    return md_ctl_reload_poll(rl, out);
}

int md_ctl_reload_poll(md_reload *rl, md_buf *out)
{
    if (rl->reading)
        return -1;
    if (!rl->told) {
        /* The reload's lines (its errors, or what changed) go out before the wait. */
        rl->told = 1;
        rl->started = zs_sv_now();
        for (size_t i = 0; i < rl->lines.n; i++) {
            md_buf_text(out, rl->lines.msg[i]);
            md_buf_printf(out, "\n");
        }
        if (rl->invalid) {
            md_buf_printf(out, "reload: nothing changed\n");
            return 2;
        }
    }
    double now = zs_sv_now(), limit = 0, started = rl->started;
    int pending = 0;
    for (int i = 0; i < rl->nwaits; i++) {
        md_svc *m = md_set_find(md_master_set(), rl->waits[i].id);
        if (!m || m->gen != rl->waits[i].gen || !m->current)
            continue; /* replaced since (another reload, restart or stop): judged there */
        zs_gen_stats st;
        zs_gen_stats_get(m->current, &st);
        if (st.ready < st.want && st.restarts.total == rl->waits[i].restarts0)
            pending = 1;
        if (m->svc.ready_timeout + 1.0 > limit)
            limit = m->svc.ready_timeout + 1.0;
    }
    if (pending && now - started < limit)
        return -1;
    int failed = 0;
    for (int i = 0; i < rl->nwaits; i++) {
        md_svc *m = md_set_find(md_master_set(), rl->waits[i].id);
        char id[256];
        md_text_esc(rl->waits[i].id, id, sizeof(id));
        unsigned gen = rl->waits[i].gen;
        if (!m || m->gen != gen || !m->current) {
            md_buf_printf(out, "%s: generation %u was replaced or stopped since\n", id, gen);
            continue;
        }
        zs_gen_stats st;
        zs_gen_stats_get(m->current, &st);
        if (st.restarts.total > rl->waits[i].restarts0 && st.last_exit.valid) {
            char how[96];
            md_status_describe(st.last_exit.status, how, sizeof(how));
            md_buf_printf(out, "%s: generation %u failed: pid %ld %s after %.1f s\n", id, gen,
                          (long)st.last_exit.pid, how, st.last_exit.lived);
            failed = 1;
        } else if (st.ready < st.want) {
            md_buf_printf(out, "%s: generation %u failed: %d of %d processes ready after %.0f s\n", id, gen,
                          st.ready, st.want, now - started);
            failed = 1;
        } else {
            md_buf_printf(out, "%s: generation %u ready (%d process%s)\n", id, gen, st.ready,
                          st.ready == 1 ? "" : "es");
        }
    }
    return failed;
}

int md_ctl_command(const char *line, md_buf *out, md_reload *rl)
{
    char buf[MD_CTL_MAX_REQUEST + 1];
    char *w[MAX_WORDS];
    int n = 0;
    snprintf(buf, sizeof(buf), "%s", line);
    for (char *save = NULL, *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (n == MAX_WORDS) {
            md_buf_printf(out, "error: more than %d words\n", MAX_WORDS);
            return 2;
        }
        w[n++] = t;
    }
    if (n == 0) {
        md_buf_printf(out, "error: empty request\n");
        return 2;
    }
    if (!strcmp(w[0], "status")) {
        int json = n > 1 && !strcmp(w[1], "--json");
        return json ? md_status_json(out, w + 2, n - 2) : md_status_text(out, w + 1, n - 1);
    }
    if (!strcmp(w[0], "restart") || !strcmp(w[0], "stop") || !strcmp(w[0], "start"))
        return svc_verb(w[0], w + 1, n - 1, out);
    if (!strcmp(w[0], "reload") && n == 1)
        return reload_cmd(out, rl);
    if (!strcmp(w[0], "metrics") && n == 1) {
        md_status_metrics(out);
        return 0;
    }
    char word[65];
    md_buf_printf(out, "error: unknown request '%s' (status [--json] [SERVICE...], restart|stop|start SERVICE, "
                  "reload, metrics)\n", md_text_esc(w[0], word, sizeof(word)));
    return 2;
}
