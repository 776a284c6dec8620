/*
 * tlib_probe.c — a libzserver aio server that records what libzserver does to it.
 *
 * Every event is appended as one line `PID EVENT [detail]` (one write, O_APPEND) to the file
 * named by config key probe-out (default /dev/stderr): main, service_register NAME TYPE,
 * before_service, ready-to-serve, before_softstop, main_returned.  It serves each connection
 * with `pid=N gen=G\n` and closes it.  Behaviour keys:
 *   probe-softstop-hook = yes   set zaio_server_before_softstop (in before_service)
 *   probe-stop-notify = S       from the softstop hook, call zaio_server_stop_notify(S)
 *   probe-detach-after-ms = MS  call zaio_server_detach_from_master() MS ms after start, if the
 *                               file probe-detach-once names can be created (so only one does),
 *                               then zaio_server_stop_notify(probe-detach-stop-after, default 1)
 *   probe-print-keys = K1,K2    record `key K=VALUE` (or `key K unset`) for each
 *   probe-log-lines = N         log N numbered lines with zinfo right after start
 *   probe-crash = yes           exit 3 right in before_service (a crash-looping worker)
 *   probe-env = yes             record the ZMASTER_* / LISTEN_* variables still set after start
 *   probe-hang-before-ready = yes   block in before_service (never says READY), recording
 *                               `hanging` first: a server stuck in its start-up
 *   probe-grandchild = yes      fork a helper that sleeps in the same process group, recording
 *                               `grandchild PID`
 *   probe-stuck-softstop = yes  on soft-stop, ignore SIGTERM and block for good in the
 *                               before_softstop hook (recording `stuck`): a server that never
 *                               finishes stopping
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zserver.h>

static int out_fd = -1;

static void rec(const char *event, const char *detail)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "%ld %s%s%s\n", (long)getpid(), event, detail ? " " : "", detail ? detail : "");
    if (out_fd < 0) {
        const char *p = zconfig_get_str("probe-out", NULL);
        out_fd = p ? open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : 2;
        if (out_fd < 0)
            out_fd = 2;
    }
    if (n > 0)
        (void)!write(out_fd, buf, (size_t)n);
}

static void on_accept(int fd)
{
    char buf[128];
    const char *gen = zconfig_get_str("probe-gen", "?");
    int n = snprintf(buf, sizeof(buf), "pid=%ld gen=%s\n", (long)getpid(), gen);
    (void)!write(fd, buf, (size_t)n);
    close(fd);
}

static void service_register(const char *service, int fd, int fd_type)
{
    char d[256];
    snprintf(d, sizeof(d), "%s %c", service, fd_type);
    rec("service_register", d);
    zaio_server_general_aio_register(zvar_default_aio_base, fd, fd_type, on_accept);
}

/* Sleeps in one-second steps for at most an hour: only a signal ends it. */
static void block_for_good(void)
{
    for (int i = 0; i < 3600; i++)
        sleep(1);
}

static void before_softstop(void)
{
    rec("before_softstop", NULL);
    if (zconfig_get_bool("probe-stuck-softstop", 0)) {
        signal(SIGTERM, SIG_IGN);
        rec("stuck", NULL);
        block_for_good();
    }
    long s = zconfig_get_int("probe-stop-notify", -1);
    if (s >= 0)
        zaio_server_stop_notify((int)s);
}

static void detach_now(void *ctx)
{
    (void)ctx;
    const char *once = zconfig_get_str("probe-detach-once", NULL);
    if (once) {
        int fd = open(once, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            return;
        close(fd);
    }
    rec("detach", NULL);
    zaio_server_detach_from_master();
    zaio_server_stop_notify((int)zconfig_get_int("probe-detach-stop-after", 1));
}

static void print_keys(void)
{
    char list[512], d[600];
    snprintf(list, sizeof(list), "%s", zconfig_get_str("probe-print-keys", ""));
    for (char *save, *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        const char *v = zconfig_get_str(k, NULL);
        snprintf(d, sizeof(d), v ? "%s=%s" : "%s unset", k, v ? v : "");
        rec("key", d);
    }
}

static void before_service(void)
{
    rec("before_service", zvar_default_aio_base && zvar_default_aio_base->loop ? "loop-ready" : "no-loop");
    if (zconfig_get_bool("probe-grandchild", 0)) {
        pid_t pid = fork();
        if (pid == 0) {
            signal(SIGTERM, SIG_IGN); /* only the process group's SIGKILL ends it */
            block_for_good();
            _exit(0);
        }
        char d[32];
        snprintf(d, sizeof(d), "%ld", (long)pid);
        rec("grandchild", d);
    }
    if (zconfig_get_bool("probe-softstop-hook", 0) || zconfig_get_bool("probe-stuck-softstop", 0))
        zaio_server_before_softstop = before_softstop;
    long ms = zconfig_get_int("probe-detach-after-ms", -1);
    if (ms >= 0)
        zaio_timer_set(ms, detach_now, NULL);
    print_keys();
    if (zconfig_get_bool("probe-crash", 0))
        exit(3);
    if (zconfig_get_bool("probe-hang-before-ready", 0)) {
        rec("hanging", NULL);
        block_for_good();
    }
    long lines = zconfig_get_int("probe-log-lines", 0);
    for (long i = 0; i < lines; i++)
        zinfo("probe line %ld of %ld from %ld: %s", i, lines, (long)getpid(),
              "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789");
    if (zconfig_get_bool("probe-env", 0)) {
        static const char *vars[] = { "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "ZMASTER_STATUS_FD",
                                      "ZMASTER_GENERATION", "ZMASTER_CONFIG_PATH", "ZMASTER_CONFIG", NULL };
        for (int i = 0; vars[i]; i++)
            if (getenv(vars[i]))
                rec("env-left", vars[i]);
        rec("env-checked", NULL);
    }
}

int main(int argc, char **argv)
{
    zaio_server_service_register = service_register;
    zaio_server_before_service = before_service;
    int rc = zaio_server_main(argc, argv);
    rec("main_returned", NULL);
    return rc;
}
