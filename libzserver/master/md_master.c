/*
 * md_master.c — the running master (md_master.h): signals, start, generations, shutdown
 * and graceful restart, all on one libev loop with no periodic timer; the reload and the
 * control verbs are md_reload.c's (md_master_int.h holds what both share).
 *
 * A service's config (md_svc) is reference-counted: the running set holds one reference and
 * every generation running it holds one, so a retiring generation keeps its config and
 * sockets until its last process is gone.  A shutdown (SIGTERM, SIGINT) retires every
 * generation, then waits for the strays; a second one hurries (every kill deadline 5 s at most).
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
#include "md_master_int.h"
#include "md_masterlog.h"
#include "md_relay.h"
#include "core/zs_log.h"
#include "core/zserver_core.h"

md_state md_M;
#define M md_M /* its name in this file, which owns it */
#define STRAY_GRACE 5.0
#define STRAY_POLL 0.05

static void finish_shutdown(struct ev_loop *loop, ev_timer *w, int revents);

/* systemd's notify protocol, when masterd runs as a Type=notify unit.  Never waits: a receiver
 * that does not read (its queue full) costs a warning, never supervision. */
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
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sun, len) < 0)
        zwarning("sd_notify %s: %s", path, strerror(errno));
    close(fd);
}

/* For the masterlog stamp: which service a sender's pid runs. */
static const char *pid_service(pid_t pid)
{
    const zs_service *svc = M.super ? zs_supervisor_pid_service(M.super, pid) : NULL;
    return svc ? svc->id : NULL;
}

/* A child's stdout/stderr pipe: its lines go to our log, stamped with its service. */
static void on_child_output(zs_generation *g, pid_t pid, int fd, void *ctx)
{
    (void)ctx;
    md_svc *m = zs_gen_user(g);
    md_relay_add(M.loop, m->svc.id, pid, fd);
}

/* A child is gone: what it printed is relayed now, and its pipe closed, whoever else (an
 * orphan it left) still holds the write end. */
static void on_child_reaped(pid_t pid, void *ctx)
{
    (void)ctx;
    md_relay_reaped(M.loop, pid);
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
    /* One walk: a reload retires a generation per service, and each went over the whole list
     * twice (retiring again every one already retired). */
    for (retiring *o = M.retiring; o; o = o->next)
        if (o->succ == g) {
            o->succ = succ;
            if (!succ)
                zs_gen_retire(o->old);
        }
    if (!r->succ)
        zs_gen_retire(g);
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
    md_reload_abort();
    md_ctl_stopping(); /* a reload waited for on the control socket is answered now */
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
        md_master_reload(NULL);
        break;
    case SIGUSR2:
        if (!M.shutting_down)
            restart_all();
        break;
    case SIGUSR1: {
        int ok = zs_log_reopen() == 0; /* if not, it said why and that the old one is still written */
        md_masterlog_reopen(M.loop);
        if (ok)
            zinfo("log reopened");
        break;
    }
    }
}

const int md_master_signals[5] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 };

/* What md_reload.c uses (md_master_int.h). */
void md_sd_notify(const char *msg) { sd_notify_msg(msg); }
void md_svc_unref(md_svc *m) { svc_unref(m); }
void md_start_generation(md_svc *m, unsigned gen) { start_generation(m, gen); }
void md_retire_generation(zs_generation *g, zs_generation *succ) { retire_generation(g, succ); }
void md_restart_svc(md_svc *m) { restart_svc(m); }

unsigned md_draining_gen(const char *id)
{
    unsigned gen = 0;
    for (retiring *r = M.retiring; r; r = r->next) {
        const md_svc *m = zs_gen_user(r->old);
        if (m && m->gen > gen && !strcmp(m->svc.id, id))
            gen = m->gen;
    }
    return gen;
}

int md_master_run(md_set *set, const md_master_opts *o)
{
    const int *sigs = md_master_signals;
    size_t nsigs = sizeof(md_master_signals) / sizeof(md_master_signals[0]);
    char err[1024];
    zs_supervisor_hooks hooks = { .proc_ready = on_proc_ready, .gen_empty = on_gen_empty,
                                  .child_output = on_child_output, .child_reaped = on_child_reaped };

    M.o = o;
    M.set = *set;
    /* The control socket first: a path another masterd answers on means it runs already. */
    if (md_ctl_start(ev_default_loop(0), o->control, o->control_group, o->metrics, err, sizeof(err)) < 0) {
        zerror("%s", err);
        if (zs_log_child_fd() != 2)
            fprintf(stderr, "masterd: %s\n", err);
        md_set_free(&M.set);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN); /* SIGXFSZ: zmaster_server_main, before the pid file */
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
    sigset_t held;
    sigemptyset(&held);
    for (size_t i = 0; i < nsigs; i++) {
        ev_signal_init(&M.sig[i], signal_cb, sigs[i]);
        ev_signal_start(M.loop, &M.sig[i]);
        sigaddset(&held, sigs[i]);
    }
    /* main held them from the pid file on: what came meanwhile is handled now. */
    sigprocmask(SIG_UNBLOCK, &held, NULL);
    M.super = zs_supervisor_new(M.loop, &hooks);
    zinfo("masterd %s started (pid %ld): %d service%s from %s", MASTERD_VERSION, (long)getpid(), M.set.n,
          M.set.n == 1 ? "" : "s", M.set.dir);
    for (int i = 0; i < M.set.n; i++) {
        M.set.v[i]->refs = 1;
        start_generation(M.set.v[i], 1);
    }
    sd_notify_msg("READY=1");
    if (M.set.n == 0)
        zwarning("no service in %s: nothing to supervise (add one and send SIGHUP)", M.set.dir);
    ev_run(M.loop, 0);
    ev_timer_stop(M.loop, &M.finish_w);
    md_ctl_stop();

    for (int i = 0; i < M.set.n; i++)
        svc_unref(M.set.v[i]);
    free(M.set.v);
    free(M.set.order);
    free(M.set.dir);
    md_relay_close_all(M.loop);
    md_masterlog_close_all(M.loop);
    zs_supervisor_free(M.super);
    zinfo("masterd stopped");
    return 0;
}
