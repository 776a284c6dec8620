/*
 * zs_server.c — the server skeleton (zs_server.h), shared by the aio and coroutine modes.
 *
 * Three ways in, one way through:
 *   under masterd   ZMASTER_STATUS_FD is set: say HELLO first, take the listeners at 3..,
 *                   unset the protocol variables, then take the config view masterd answers
 *                   HELLO with (never the files) and the arguments over it;
 *   alone           `prog alone [-server-service LIST] ...`: bind LIST ourselves;
 *   alone, workers  any `-server-proc-count N` (even 1): become the master of N forked workers,
 *                   supervised by the same core masterd uses (zs_supervisor.h); each worker
 *                   then runs the common path below with its own status channel.
 * The common path: register services, before_service, READY, run the loop until a soft-stop's
 * deadline; then return 0 from main.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>
#include "core/zs_listen.h"
#include "core/zs_log.h"
#include "core/zs_board.h"
#include "zs_proctitle.h"
#include "zs_server.h"
#include "core/zs_service.h"
#include "core/zs_status.h"
#include "super/zs_supervisor.h"
#include "zserver.h"


static zaio_base_t default_base;
zaio_base_t *zvar_default_aio_base = &default_base;
void (*zs_fd_forget_cb)(int fd);

void zs_server_adopt_loop(struct ev_loop *loop)
{
    if (!default_base.loop)
        default_base.loop = loop;
}

static struct {
    const zs_server_mode *mode;
    struct ev_loop *loop;
    int status_fd;
    unsigned gen;
    int *fds;
    char **names;
    int nfds;
    int softstopping, detached;
    ev_io status_w;
    ev_timer exit_timer;
    ev_signal sigterm, sigint;
} S = { .status_fd = -1 };

static __attribute__((noreturn)) void usage_exit(const char *prog)
{
    fprintf(stderr,
            "%s is a server run by masterd (see `man 8 masterd`): list it as server-command in a .cf file.\n"
            "To run it by hand:\n"
            "  %s alone [-server-service LIST] [-server-config-path DIR] [-config FILE] [-key value] [--flag]\n"
            "  %s alone -server-proc-count N ...   (its own master with N worker processes)\n",
            prog, prog, prog);
    exit(1);
}

int zs_server_parse_args(int argc, char **argv, zs_config *cfg, const char **command, char *why, size_t whylen)
{
    *command = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *eq = strchr(a + 2, '=');
            if (eq == a + 2) {
                snprintf(why, whylen, "argument '%s' has no key", a);
                return -1;
            }
            if (eq) {
                char *k = zs_xasprintf("%.*s", (int)(eq - a - 2), a + 2);
                zs_config_set(cfg, k, eq + 1, "argv", 0);
                free(k);
            } else {
                zs_config_set(cfg, a + 2, "yes", "argv", 0);
            }
        } else if (a[0] == '-' && a[1] && a[1] != '-') {
            if (i + 1 >= argc) {
                snprintf(why, whylen, "argument %s needs a value", a);
                return -1;
            }
            zs_config_set(cfg, a + 1, argv[++i], "argv", 0);
        } else if (!*command) {
            *command = a;
        } else {
            snprintf(why, whylen, "unexpected argument '%s'", a);
            return -1;
        }
    }
    return 0;
}

/* Under masterd: the view masterd validated at its last start or reload, from the sealed memfd
 * of the ZS_ST_CONFIG record that answers our HELLO.  Never the files: an edit not yet reloaded
 * (or a broken one) must not reach a respawned child. */
#define CONFIG_WAIT_MS 60000
static void receive_config(zs_config *c)
{
    struct pollfd pfd = { .fd = S.status_fd, .events = POLLIN };
    zs_status_rec r;
    int passed = -1, rc;
    char why[300];
    for (;;) {
        rc = poll(&pfd, 1, CONFIG_WAIT_MS);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            zfatal("no configuration from masterd within %d s%s%s", CONFIG_WAIT_MS / 1000, rc < 0 ? ": " : "",
                   rc < 0 ? strerror(errno) : "");
        rc = zs_status_recv_fd(S.status_fd, &r, &passed);
        if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            continue;
        break;
    }
    if (rc == 0)
        zfatal("masterd closed the status channel before sending the configuration");
    if (rc < 0)
        zfatal("status channel: %s", strerror(errno));
    if (r.type != ZS_ST_CONFIG || passed < 0)
        zfatal("expected the configuration from masterd, got record type %u%s", r.type,
               passed < 0 ? " without a descriptor" : "");
    if (zs_config_from_memfd(c, passed, why, sizeof(why)) < 0)
        zfatal("configuration from masterd: %s", why);
    close(passed);
}

/* Under masterd the view it sent, alone the gcf dir then the .cf file; then the arguments
 * (later wins; an argument's server-service replaces the list instead of adding to it). */
static void load_config(const char *dir, const char *file, const zs_config *args)
{
    zs_errs errs = { 0 };
    zs_config_init(&zs_process_config);
    if (S.status_fd >= 0) {
        receive_config(&zs_process_config);
    } else {
        if (dir)
            zs_config_load_gcf_dir(&zs_process_config, dir, &errs);
        if (file)
            zs_config_load_file(&zs_process_config, file, &errs);
    }
    if (zs_config_find(args, "server-service"))
        zs_config_unset(&zs_process_config, "server-service");
    zs_config_merge(&zs_process_config, args);
    for (size_t i = 0; i < errs.n; i++)
        zerror("%s", errs.msg[i]);
    if (errs.n)
        zfatal("config errors: not starting");
    zs_errs_free(&errs);
}

/* ---- soft-stop ---- */

static void exit_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    S.mode->loop_stop(loop);
}

static void arm_exit(int secs)
{
    if (secs < 0)
        secs = 0;
    if (ev_is_active(&S.exit_timer) && ev_timer_remaining(S.loop, &S.exit_timer) <= secs)
        return;
    ev_timer_stop(S.loop, &S.exit_timer);
    ev_timer_set(&S.exit_timer, secs, 0.);
    ev_timer_start(S.loop, &S.exit_timer);
}

static int softstop_after(void)
{
    int m = (int)zs_server_config_seconds("server-stop-on-softstop-after", 0);
    return m < 0 ? 0 : m;
}

/* Stop accepting (the listeners are closed in this process, so new connections go to the
 * processes that still listen), run the hook, and return from main M seconds later; secs >= 0
 * replaces M (master gone: 0, detach: 3600, stop_notify: the program's choice).  Once stopping,
 * a later deadline can only shorten the wait. */
static void softstop(int secs)
{
    if (S.softstopping) {
        if (secs >= 0)
            arm_exit(secs);
    } else {
        S.softstopping = 1;
        zs_board_accepting(0);
        for (int i = 0; i < S.nfds; i++) {
            if (S.fds[i] >= 0)
                S.mode->close_listener(S.fds[i]);
            S.fds[i] = -1;
        }
        int m = softstop_after();
        if (*S.mode->before_softstop) {
            (*S.mode->before_softstop)();
            if (m < 1)
                m = 3600;
        }
        arm_exit(secs >= 0 ? secs : m);
    }
    if (S.status_fd >= 0)
        zs_status_send(S.status_fd, ZS_ST_STOPPING, S.gen, (int32_t)(ev_timer_remaining(S.loop, &S.exit_timer) + 0.5));
}

static void close_status(void)
{
    if (S.status_fd < 0)
        return;
    ev_io_stop(S.loop, &S.status_w);
    /* Read what the master sent first: closing a socket with unread records resets the
     * connection, and the master would see the reset before our last records (a DETACH). */
    zs_status_rec r;
    int passed;
    for (int n = 0; n < 64 && zs_status_recv_fd(S.status_fd, &r, &passed) == 1; n++)
        if (passed >= 0)
            close(passed);
    close(S.status_fd);
    S.status_fd = -1;
}

static void status_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    zs_status_rec r;
    int rc, passed;
    while ((rc = zs_status_recv_fd(S.status_fd, &r, &passed)) == 1) {
        if (r.type == ZS_ST_SOFTSTOP)
            softstop(-1);
        else if (r.type == ZS_ST_BOARD && passed >= 0) {
            if (zs_board_attach(passed, r.value) == 0)
                zs_board_accepting(!S.softstopping);
            passed = -1; /* attach took it */
        }
        if (passed >= 0)
            close(passed);
    }
    if (rc == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        /* The master is gone: nobody will replace us or take our sockets, leave now. */
        close_status();
        softstop(0);
    }
}

/* SIGTERM is a soft-stop; for a detached process (already soft-stopping, with the detach's long
 * deadline) it is the end: the usual server-stop-on-softstop-after from now. */
static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    if (w->signum == SIGINT)
        zvar_sigint_flag = 1; /* lib-zc's programs look at it (zc.h) */
    softstop(S.detached ? softstop_after() : -1);
}

void zs_server_stop_notify(int secs)
{
    if (S.loop)
        softstop(secs < 0 ? 0 : secs);
}

void zs_server_detach(void)
{
    if (!S.loop || S.detached)
        return;
    S.detached = 1;
    if (S.status_fd >= 0) {
        zs_status_send(S.status_fd, ZS_ST_DETACH, S.gen, 0);
        close_status();
    }
    softstop(3600);
}

/* ---- the common path ---- */

static int serve(void)
{
    /* A peer that closed must cost a server an EPIPE, never its life (lib-zc does the same). */
    signal(SIGPIPE, SIG_IGN);
    S.loop = ev_default_loop(EVFLAG_AUTO);
    if (!S.loop)
        zfatal("cannot initialise libev");
    zs_server_adopt_loop(S.loop);
    if (S.mode->loop_init && S.mode->loop_init(S.loop) < 0)
        zfatal("cannot initialise the %s runtime", S.mode->name);
    ev_init(&S.exit_timer, exit_timer_cb);
    if (S.status_fd >= 0) {
        ev_io_init(&S.status_w, status_cb, S.status_fd, EV_READ);
        ev_io_start(S.loop, &S.status_w);
    }
    for (int i = 0; i < S.nfds; i++) {
        int type = zs_listen_fd_type(S.fds[i]);
        if (type < 0)
            zfatal("inherited fd %d (%s) is not a socket or fifo", S.fds[i], S.names[i]);
        if (*S.mode->service_register)
            (*S.mode->service_register)(S.names[i], S.fds[i], type);
        else
            zwarning("no %s_server_service_register hook: service %s (fd %d) is not served", S.mode->name,
                     S.names[i], S.fds[i]);
    }
    if (*S.mode->before_service)
        (*S.mode->before_service)();
    /* Only now is SIGTERM a soft-stop: until the loop runs nobody would look at it, and a
     * process stuck in before_service must still die of its master's death (PDEATHSIG). */
    ev_signal_init(&S.sigterm, signal_cb, SIGTERM);
    ev_signal_start(S.loop, &S.sigterm);
    ev_signal_init(&S.sigint, signal_cb, SIGINT);
    ev_signal_start(S.loop, &S.sigint);
    if (S.status_fd >= 0)
        zs_status_send(S.status_fd, ZS_ST_READY, S.gen, 0);
    S.mode->loop_run(S.loop);
    close_status();
    return 0;
}

static void split_names(const char *list, int n)
{
    S.names = zs_xcalloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const char *c = list ? strchr(list, ':') : NULL;
        if (list && *list)
            S.names[i] = c ? zs_xasprintf("%.*s", (int)(c - list), list) : zs_xstrdup(list);
        else
            S.names[i] = zs_xasprintf("fd%d", ZS_LISTEN_FDS_START + i);
        list = c ? c + 1 : NULL;
    }
}

static int under_master(const char *status_env, const zs_config *args)
{
    S.status_fd = atoi(status_env);
    const char *g = getenv(ZS_ENV_GENERATION);
    S.gen = g ? (unsigned)strtoul(g, NULL, 10) : 0;
    zs_proctitle_under_master(S.gen);
    /* HELLO before any user code: from now on the master holds us to server-ready-timeout. */
    zs_status_send(S.status_fd, ZS_ST_HELLO, S.gen, (int32_t)getpid());
    const char *nfds = getenv(ZS_ENV_LISTEN_FDS), *pid = getenv(ZS_ENV_LISTEN_PID);
    S.nfds = nfds && (!pid || atol(pid) == (long)getpid()) ? atoi(nfds) : 0;
    S.fds = zs_xcalloc((size_t)S.nfds + 1, sizeof(int));
    for (int i = 0; i < S.nfds; i++)
        S.fds[i] = ZS_LISTEN_FDS_START + i;
    split_names(getenv(ZS_ENV_LISTEN_FDNAMES), S.nfds);
    static const char *vars[] = { ZS_ENV_LISTEN_FDS, ZS_ENV_LISTEN_PID, ZS_ENV_LISTEN_FDNAMES, ZS_ENV_STATUS_FD,
                                  ZS_ENV_GENERATION, ZS_ENV_CONFIG_PATH, ZS_ENV_CONFIG, NULL };
    for (int i = 0; vars[i]; i++)
        unsetenv(vars[i]);
    load_config(NULL, NULL, args);
    const char *log = zconfig_get_str("server-log", "stderr");
    char err[600];
    if (zs_log_open(log, program_invocation_short_name, err, sizeof(err)) < 0)
        zerror("server-log: %s (logging to stderr)", err);
    return serve();
}

/* ---- alone, and its self-hosted multi-process mode ---- */

static zs_generation *workers;
static zs_supervisor *workers_sv;
static int shutting_down;
static ev_signal parent_sigs[2];

static int worker_main(void *ctx, int slot, int status_fd)
{
    (void)ctx;
    (void)slot;
    /* Same loop, fresh state: the supervision core already dropped its watchers
     * (zs_supervisor_after_fork); the parent's signal watchers go too, then libev re-arms its
     * backend. */
    struct ev_loop *loop = ev_default_loop(0);
    for (int i = 0; i < 2; i++)
        ev_signal_stop(loop, &parent_sigs[i]);
    ev_loop_fork(loop);
    S.status_fd = status_fd;
    /* As under masterd: the supervisor then expects READY in time, and answers with the
     * generation's accept scoreboard. */
    zs_status_send(S.status_fd, ZS_ST_HELLO, S.gen, (int32_t)getpid());
    return serve();
}

static void workers_empty(zs_generation *g, void *ctx)
{
    (void)g;
    ev_break((struct ev_loop *)ctx, EVBREAK_ALL);
}

static void parent_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    int n = zs_gen_running_count(workers);
    if (shutting_down) {
        zinfo("signal %d again: %d worker%s killed in 5 s unless they stop first", w->signum, n, n == 1 ? "" : "s");
        zs_supervisor_hurry(workers_sv);
        return;
    }
    shutting_down = 1;
    zinfo("signal %d: stopping %d worker%s", w->signum, n, n == 1 ? "" : "s");
    zs_gen_retire(workers);
}

/* Self-hosted multi-process mode (doc/CONTRACT.md §9): this process becomes the master of
 * svc->proc_count forked workers, supervised by the same core as masterd's children.  A first
 * SIGTERM/SIGINT retires them (a shutdown), a second one hurries. */
static int run_workers(zs_service *svc)
{
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    zs_supervisor_hooks hooks = { .gen_empty = workers_empty, .ctx = loop };
    static const int sigs[2] = { SIGTERM, SIGINT };
    signal(SIGPIPE, SIG_IGN);
    zs_supervisor *sv = workers_sv = zs_supervisor_new(loop, &hooks);
    workers = zs_gen_new(sv, svc, S.fds, 0, NULL, worker_main, NULL);
    for (int i = 0; i < 2; i++) {
        ev_signal_init(&parent_sigs[i], parent_signal_cb, sigs[i]);
        ev_signal_start(loop, &parent_sigs[i]);
    }
    zinfo("%s: master of %d worker process%s (pid %ld)", svc->id, svc->proc_count,
          svc->proc_count == 1 ? "" : "es", (long)getpid());
    zs_gen_set_want(workers, svc->proc_count);
    ev_run(loop, 0);
    for (int i = 0; i < 2; i++)
        ev_signal_stop(loop, &parent_sigs[i]);
    zs_gen_free(workers);
    zs_supervisor_free(sv);
    zinfo("%s: every worker stopped", svc->id);
    return 0;
}

static int alone(const zs_config *args)
{
    const char *file = zs_config_get(args, "config", NULL);
    load_config(zs_config_get(args, "server-config-path", NULL), file, args);
    zs_errs errs = { 0 };
    zs_service svc;
    if (zs_service_from_config(&svc, program_invocation_short_name, file, &zs_process_config, 0, &errs) < 0) {
        for (size_t i = 0; i < errs.n; i++)
            zerror("%s", errs.msg[i]);
        zfatal("invalid arguments or config: not starting");
    }
    S.nfds = svc.nlisten;
    S.fds = zs_xcalloc((size_t)S.nfds + 1, sizeof(int));
    S.names = zs_xcalloc((size_t)S.nfds + 1, sizeof(char *));
    for (int i = 0; i < svc.nlisten; i++) {
        char err[600];
        S.fds[i] = zs_listen_bind(&svc.listen[i], svc.backlog, svc.unix_mode, err, sizeof(err));
        if (S.fds[i] < 0)
            zfatal("%s", err);
        S.names[i] = zs_xstrdup(svc.listen[i].name);
    }
    /* Any -server-proc-count (even 1) asks for a master that restarts what dies. */
    int rc = zs_config_find(&zs_process_config, "server-proc-count") ? run_workers(&svc) : serve();
    zs_service_free(&svc);
    return rc;
}

int zs_server_main(const zs_server_mode *mode, int argc, char **argv)
{
    zs_config args;
    const char *command;
    char why[300];
    S.mode = mode;
    const char *status = getenv(ZS_ENV_STATUS_FD);
    if (status && *status)
        zs_proctitle_init(argc, argv); /* before anything keeps a pointer into argv */
    zs_config_init(&args);
    if (zs_server_parse_args(argc, argv, &args, &command, why, sizeof(why)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], why);
        usage_exit(argv[0]);
    }
    const char *dbg = zs_config_get(&args, "debug", NULL);
    if (dbg && zs_parse_bool(dbg) == 1)
        zvar_log_debug_enable = 1;
    status = getenv(ZS_ENV_STATUS_FD);
    int rc;
    if (status && *status)
        rc = under_master(status, &args);
    else if (command && !strcmp(command, "alone"))
        rc = alone(&args);
    else
        usage_exit(argv[0]);
    zs_config_free(&args);
    return rc;
}
