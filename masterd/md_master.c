/*
 * md_master.c — the running master (md_master.h): signals, start, shutdown, reload and
 * graceful restart, all on one libev loop with no periodic timer.
 *
 * A service's config (md_svc) is reference-counted: the running set holds one reference and
 * every generation running it holds one, so a retiring generation keeps its config and
 * sockets until its last process is gone.  A reload builds the new set beside the running one
 * and applies the difference (doc/CONTRACT.md §6):
 *   unchanged         -> the running md_svc moves into the new set, untouched;
 *   only proc-count   -> the same, and its current generation is scaled in place;
 *   changed           -> a new generation starts; the old one is retired one process per new
 *                        process that becomes ready, so capacity never dips;
 *   removed           -> retired; its sockets close when its last process is gone.
 * A shutdown (SIGTERM, SIGINT) retires every generation, then waits for the strays; a second
 * one hurries (every kill deadline 5 s at most).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>
#include "md_ctl.h"
#include "md_master.h"
#include "md_masterlog.h"
#include "core/zs_log.h"
#include "core/zserver_core.h"

/* A generation being retired, and the one whose readiness it waits for. */
typedef struct retiring {
    struct retiring *next;
    zs_generation *old;
    zs_generation *succ; /* the generation replacing it; NULL: retire it at once */
} retiring;

static struct {
    struct ev_loop *loop;
    zs_supervisor *super;
    md_set set;
    md_listener *listeners;
    retiring *retiring;
    int ngens;
    int shutting_down;
    const md_master_opts *o;
    ev_signal sig[6];
    ev_timer finish_w;  /* while shutting down: waits for the strays */
    double empty_at;    /* ev_now when the last generation went */
    int strays_killed;
} M;

#define STRAY_GRACE 5.0
#define STRAY_POLL 0.05

static void finish_shutdown(struct ev_loop *loop, ev_timer *w, int revents);

/* systemd's notify protocol, when masterd runs as a Type=notify unit. */
static void sd_notify_msg(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (!path || !*path || strlen(path) >= sizeof(sun.sun_path))
        return;
    memcpy(sun.sun_path, path, strlen(path));
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    if (sun.sun_path[0] == '@')
        sun.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0)
        zwarning("sd_notify %s: %s", path, strerror(errno));
    close(fd);
}

/* For the masterlog stamp: which service a sender's pid runs. */
static const char *pid_service(pid_t pid)
{
    const zs_service *svc = M.super ? zs_supervisor_pid_service(M.super, pid) : NULL;
    return svc ? svc->id : NULL;
}

static void svc_unref(md_svc *m)
{
    if (--m->refs > 0)
        return;
    md_svc_unbind(m, &M.listeners);
    md_svc_free(m);
}

static void start_generation(md_svc *m, unsigned gen)
{
    zs_generation *g = zs_gen_new(M.super, &m->svc, m->fds, gen, M.o->config_dir, NULL, NULL);
    zs_gen_set_user(g, m);
    if (zs_gen_set_config_fd(g, m->cf_fd) < 0)
        zerror("%s: cannot hand its config to children: %s", m->svc.id, strerror(errno));
    m->refs++;
    m->current = g;
    m->gen = gen;
    M.ngens++;
    zs_gen_set_want(g, m->svc.proc_count);
}

/* Puts g on the retiring list; whoever waited for g now waits for succ instead.  A generation
 * with no ready process serves nobody (it never became ready, or it is crash-looping): it is
 * retired at once instead of waiting for succ, so only a serving generation drains.
 * (zs_gen_retire never frees a generation from inside the call, so walking the list while
 * retiring is safe.) */
static void retire_generation(zs_generation *g, zs_generation *succ)
{
    retiring *r = zs_xcalloc(1, sizeof(*r));
    r->old = g;
    r->succ = zs_gen_ready_count(g) > 0 ? succ : NULL;
    r->next = M.retiring;
    M.retiring = r;
    for (retiring *o = M.retiring; o; o = o->next)
        if (o->succ == g)
            o->succ = succ;
    for (retiring *o = M.retiring; o; o = o->next)
        if (!o->succ)
            zs_gen_retire(o->old);
}

/* The old generation keeps as many processes as the new one still lacks. */
static void on_proc_ready(zs_generation *g, void *ctx)
{
    (void)ctx;
    for (retiring *r = M.retiring, *next; r; r = next) {
        next = r->next;
        if (r->succ != g)
            continue;
        int lack = zs_gen_want(g) - zs_gen_ready_count(g);
        if (lack < 0)
            lack = 0;
        while (zs_gen_want(r->old) > lack)
            zs_gen_retire_one(r->old);
        if (zs_gen_want(r->old) == 0)
            zs_gen_retire(r->old);
    }
}

static void on_gen_empty(zs_generation *g, void *ctx)
{
    (void)ctx;
    md_svc *m = zs_gen_user(g);
    for (retiring **pp = &M.retiring; *pp; pp = &(*pp)->next) {
        if ((*pp)->old == g) {
            retiring *r = *pp;
            *pp = r->next;
            free(r);
            break;
        }
    }
    if (m->current == g)
        m->current = NULL;
    /* Its restarts stay counted for the service (the running one of that name, if any). */
    md_svc *keep = M.shutting_down ? NULL : md_set_find(&M.set, m->svc.id);
    zs_gen_stats st;
    zs_gen_stats_get(g, &st);
    keep = keep ? keep : m;
    zs_restarts_merge(&keep->past, &st.restarts);
    if (st.last_exit.valid && (!keep->past_exit.valid || st.last_exit.at > keep->past_exit.at))
        keep->past_exit = st.last_exit;
    zs_gen_free(g);
    M.ngens--;
    svc_unref(m);
    if (M.shutting_down)
        finish_shutdown(M.loop, &M.finish_w, 0);
}

/* The last step of a shutdown: once every service's processes are gone, wait for the strays
 * (what daemonizing programs left, detached processes) that got SIGTERM when the shutdown
 * began, and SIGKILL them STRAY_GRACE seconds after the services were gone.  Polled while
 * shutting down only. */
static void finish_shutdown(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    (void)w;
    if (M.ngens > 0)
        return;
    double now = ev_now(loop);
    int left;
    if (M.empty_at == 0) {
        /* What the services' last processes left (helpers that had left their process group)
         * hears it too, not only the strays of when the shutdown began. */
        M.empty_at = now;
        left = zs_supervisor_strays(M.super, SIGTERM);
    } else {
        left = zs_supervisor_strays(M.super, 0);
    }
    if (left <= 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    if (now - M.empty_at >= STRAY_GRACE + 1.0) {
        zerror("stopping: %d process%s left behind by services would not die; leaving them", left,
               left == 1 ? "" : "es");
        ev_break(loop, EVBREAK_ALL);
    } else if (now - M.empty_at >= STRAY_GRACE && !M.strays_killed) {
        M.strays_killed = 1;
        zwarning("stopping: killing %d process%s left behind by services", left, left == 1 ? "" : "es");
        zs_supervisor_strays(M.super, SIGKILL);
    } else if (M.strays_killed) {
        zs_supervisor_strays(M.super, SIGKILL); /* what was below them came to us */
    }
}

/* The first SIGTERM or SIGINT: retire every generation, signal the strays, and wait for both
 * (finish_shutdown). */
static void shutdown_all(void)
{
    M.shutting_down = 1;
    zinfo("stopping: soft-stopping every service");
    sd_notify_msg("STOPPING=1");
    int strays = zs_supervisor_strays(M.super, SIGTERM);
    if (strays > 0)
        zinfo("stopping: sent SIGTERM to %d process%s left behind by services", strays, strays == 1 ? "" : "es");
    ev_timer_init(&M.finish_w, finish_shutdown, STRAY_POLL, STRAY_POLL);
    ev_timer_start(M.loop, &M.finish_w);
    /* Collected first, so the walk never depends on what retiring does to the lists
     * (zs_gen_retire frees nothing: gen_empty comes later, from the loop). */
    zs_generation **gs = zs_xcalloc((size_t)M.ngens + 1, sizeof(*gs));
    int n = 0;
    for (int i = 0; i < M.set.n; i++)
        if (M.set.v[i]->current)
            gs[n++] = M.set.v[i]->current;
    for (retiring *r = M.retiring; r; r = r->next)
        gs[n++] = r->old;
    for (int i = 0; i < n; i++)
        zs_gen_retire(gs[i]);
    free(gs);
}

/* A second SIGTERM or SIGINT: every kill deadline becomes 5 s at most. */
static void hurry_all(void)
{
    zinfo("stopping again: every process still running is killed in 5 s");
    zs_supervisor_hurry(M.super);
}

/* A new generation of m; the current one drains as in a reload. */
static void restart_svc(md_svc *m)
{
    zs_generation *old = m->current;
    start_generation(m, m->gen + 1);
    if (old)
        retire_generation(old, m->current);
}

static void restart_all(void)
{
    zinfo("graceful restart: new generation of every service");
    for (int i = 0; i < M.set.n; i++)
        if (!M.set.v[i]->held)
            restart_svc(M.set.v[i]);
}

const md_set *md_master_set(void) { return &M.set; }
zs_supervisor *md_master_super(void) { return M.super; }
int md_master_stopping(void) { return M.shutting_down; }

int md_master_restart(md_svc *m)
{
    if (M.shutting_down)
        return -1;
    zinfo("%s: restart asked on the control socket: generation %u", m->svc.id, m->gen + 1);
    m->held = 0;
    restart_svc(m);
    return 0;
}

int md_master_hold(md_svc *m, int down)
{
    if (M.shutting_down || m->held == down)
        return -1;
    m->held = down;
    if (down) {
        zinfo("%s: held down on the control socket: its processes retire, its sockets stay bound", m->svc.id);
        zs_generation *g = m->current;
        m->current = NULL;
        if (g)
            retire_generation(g, NULL);
    } else {
        zinfo("%s: started on the control socket: generation %u", m->svc.id, m->gen + 1);
        start_generation(m, m->gen + 1);
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

/* The reload of doc/CONTRACT.md §6; r (may be NULL) gets what changed, or the errors. */
static void reload(md_reload *r)
{
    zs_errs errs = { 0 };
    md_set next;
    char err[1024], msg[64];
    struct timespec now;

    /* Type=notify-reload wants the CLOCK_MONOTONIC time of the reload's start with it. */
    clock_gettime(CLOCK_MONOTONIC, &now);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_nsec / 1000ULL);
    sd_notify_msg(msg);
    zinfo("reload: reading %s", M.o->config_dir);
    if (md_set_load(M.o->config_dir, &next, &errs) < 0) {
        for (size_t i = 0; i < errs.n; i++)
            zerror("reload: %s", errs.msg[i]);
        if (r) {
            r->invalid = 1;
            for (size_t i = 0; i < errs.n; i++)
                zs_errs_add(&r->lines, "%s", errs.msg[i]);
        }
        zerror("reload: %zu error%s; nothing changed", errs.n, errs.n == 1 ? "" : "s");
        zs_errs_free(&errs);
        sd_notify_msg("READY=1");
        return;
    }
    md_set_log_warnings(&next, "reload: ");
    if (md_set_bind(&next, &M.listeners, err, sizeof(err)) < 0 ||
        md_masterlog_sync(M.loop, &next, err, sizeof(err)) < 0) {
        zerror("reload: %s; nothing changed", err);
        if (r) {
            r->invalid = 1;
            zs_errs_add(&r->lines, "%s", err);
        }
        for (int i = 0; i < next.n; i++)
            md_svc_unbind(next.v[i], &M.listeners);
        md_set_free(&next);
        sd_notify_msg("READY=1");
        return;
    }
    int started = 0, changed = 0, scaled = 0, removed = 0, same = 0;
    for (int i = 0; i < next.n; i++) {
        md_svc *m = next.v[i];
        m->refs = 1;
        md_svc *old = md_set_find(&M.set, m->svc.id);
        if (!old) {
            start_generation(m, 1);
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
            svc_unref(m);
            if (unhold) {
                old->held = 0;
                start_generation(old, old->gen + 1);
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
            start_generation(m, old->gen + 1);
            if (g) {
                old->current = NULL;
                retire_generation(g, m->current);
            }
            report_line(r, m, "new generation");
            changed++;
        }
    }
    for (int i = 0; i < M.set.n; i++) {
        md_svc *old = M.set.v[i];
        if (!md_set_find(&next, old->svc.id) && old->current) {
            zs_generation *g = old->current;
            old->current = NULL;
            retire_generation(g, NULL);
            if (r)
                zs_errs_add(&r->lines, "%s: removed", old->svc.id);
            removed++;
        }
    }
    for (int i = 0; i < M.set.n; i++)
        svc_unref(M.set.v[i]);
    free(M.set.v);
    free(M.set.dir);
    M.set = next;
    zinfo("reload: %d started, %d new generation%s, %d scaled, %d removed, %d unchanged", started,
          changed, changed == 1 ? "" : "s", scaled, removed, same);
    if (r)
        zs_errs_add(&r->lines, "reload: %d started, %d new generation%s, %d scaled, %d removed, %d unchanged",
                    started, changed, changed == 1 ? "" : "s", scaled, removed, same);
    sd_notify_msg("READY=1");
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    switch (w->signum) {
    case SIGTERM:
    case SIGINT:
        if (M.shutting_down)
            hurry_all();
        else
            shutdown_all();
        break;
    case SIGHUP:
        if (!M.shutting_down)
            reload(NULL);
        break;
    case SIGUSR2:
        if (!M.shutting_down)
            restart_all();
        break;
    case SIGUSR1:
        zs_log_reopen();
        md_masterlog_reopen(M.loop);
        zinfo("log reopened");
        break;
    }
}

int md_master_reload(md_reload *r)
{
    if (M.shutting_down)
        return -1;
    reload(r);
    return 0;
}

int md_master_run(md_set *set, const md_master_opts *o)
{
    static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 };
    char err[1024];
    zs_supervisor_hooks hooks = { on_proc_ready, on_gen_empty, NULL };

    M.o = o;
    M.set = *set;
    /* The control socket first: a path another masterd answers on means it runs already. */
    if (md_ctl_start(ev_default_loop(0), o->control, o->metrics, err, sizeof(err)) < 0) {
        zerror("%s", err);
        if (zs_log_child_fd() != 2)
            fprintf(stderr, "masterd: %s\n", err);
        md_set_free(&M.set);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    /* As PID 1 in a container, or under a supervisor that exits, orphans come to us. */
    md_masterlog_set_lookup(pid_service);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        zwarning("prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
    if (md_set_bind(&M.set, &M.listeners, err, sizeof(err)) < 0 ||
        md_masterlog_sync(ev_default_loop(0), &M.set, err, sizeof(err)) < 0) {
        zerror("%s", err);
        if (zs_log_child_fd() != 2)
            fprintf(stderr, "masterd: %s\n", err);
        for (int i = 0; i < M.set.n; i++)
            md_svc_unbind(M.set.v[i], &M.listeners);
        md_masterlog_close_all(ev_default_loop(0));
        md_ctl_stop();
        md_set_free(&M.set);
        return 1;
    }
    M.loop = ev_default_loop(EVFLAG_AUTO);
    if (!M.loop) {
        zerror("cannot initialise libev");
        return 1;
    }
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        ev_signal_init(&M.sig[i], signal_cb, sigs[i]);
        ev_signal_start(M.loop, &M.sig[i]);
    }
    M.super = zs_supervisor_new(M.loop, &hooks);
    zinfo("masterd %s started (pid %ld): %d service%s from %s", MASTERD_VERSION, (long)getpid(), M.set.n,
          M.set.n == 1 ? "" : "s", o->config_dir);
    for (int i = 0; i < M.set.n; i++) {
        M.set.v[i]->refs = 1;
        start_generation(M.set.v[i], 1);
    }
    sd_notify_msg("READY=1");
    if (M.set.n == 0)
        zwarning("no *.cf file in %s: nothing to supervise (add one and send SIGHUP)", o->config_dir);
    ev_run(M.loop, 0);
    ev_timer_stop(M.loop, &M.finish_w);
    md_ctl_stop();

    for (int i = 0; i < M.set.n; i++)
        svc_unref(M.set.v[i]);
    free(M.set.v);
    free(M.set.dir);
    md_masterlog_close_all(M.loop);
    zs_supervisor_free(M.super);
    zinfo("masterd stopped");
    return 0;
}
