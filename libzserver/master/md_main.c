/*
 * md_main.c — zmaster_server_main: masterd's command line (doc/CONTRACT.md §1, §13), the
 * pid-file lock, and start-up.  masterd's main is lib-zc's three lines calling it; a program of
 * its own may set the zmaster_server_* hooks first (md_source.c).
 *
 * Start-up order is what makes "nothing half-applied" true: arguments, lock, whole config
 * validated, every socket bound (all or none), and only then children.  Exit codes: 0 clean
 * stop, 1 could not start, 2 config invalid.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "md_ctl.h"
#include "md_master.h"
#include "md_masterlog.h"
#include "md_set.h"
#include "zmaster.h"
#include "core/zc_core.h"
#include "core/zs_listen.h"
#include "core/zs_log.h"
#include "super/zs_spawn.h"
#include "core/zserver_core.h"

#ifndef MASTERD_VERSION
#define MASTERD_VERSION "0.0.0"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: masterd -C CONFIG_DIR [-pid-file FILE] [-control PATH|none] [-control-group GROUP]\n"
            "               [-metrics HOST:PORT] [--try-lock] [-t] [-log TARGET] [-v]\n"
            "       masterd --version | -h\n"
            "  -C DIR         config directory: every DIR/*.cf is a service, DIR/*.gcf global keys\n"
            "                 (optional in a master whose zmaster_server_load_config hook supplies the\n"
            "                 services: then only its *.gcf files count)\n"
            "  -pid-file FILE write the pid there and hold an flock on it while running\n"
            "  -control PATH  control socket for masterctl (default: the pid file's name with .ctl for\n"
            "                 .pid; none without -pid-file); -control none: no control socket\n"
            "  -control-group GROUP  the control socket is mode 0660 of GROUP, whose members may use it\n"
            "  -metrics ADDR  serve GET /metrics (Prometheus text) over HTTP on HOST:PORT\n"
            "  --try-lock     with -pid-file: exit 0 if no master holds the lock, 1 if one does\n"
            "  -t             validate the config directory, print 'configuration ok' or every error\n"
            "  -log TARGET    stderr (default), syslog,FACILITY or file,PATH (reopened on SIGUSR1)\n"
            "  -v             debug log lines\n"
            "signals: TERM/INT stop, HUP reload, USR2 restart every service, USR1 reopen the log\n"
            "exit: 0 clean stop, 1 could not start, 2 config invalid\n");
}

typedef struct args {
    const char *config_dir, *pid_file, *log, *control, *metrics, *control_group;
    int try_lock, test, verbose;
} args;

static int parse_args(int argc, char **argv, args *a)
{
    memset(a, 0, sizeof(*a));
    a->log = "stderr";
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char **val = NULL;
        if (!strcmp(o, "-C"))
            val = &a->config_dir;
        else if (!strcmp(o, "-pid-file") || !strcmp(o, "--pid-file"))
            val = &a->pid_file;
        else if (!strcmp(o, "-control") || !strcmp(o, "--control"))
            val = &a->control;
        else if (!strcmp(o, "-control-group") || !strcmp(o, "--control-group"))
            val = &a->control_group;
        else if (!strcmp(o, "-metrics") || !strcmp(o, "--metrics"))
            val = &a->metrics;
        else if (!strcmp(o, "-log") || !strcmp(o, "--log"))
            val = &a->log;
        else if (!strcmp(o, "--try-lock") || !strcmp(o, "-try-lock"))
            a->try_lock = 1;
        else if (!strcmp(o, "-t"))
            a->test = 1;
        else if (!strcmp(o, "-v"))
            a->verbose = 1;
        else if (!strcmp(o, "--version") || !strcmp(o, "-version")) {
            printf("masterd %s\n", MASTERD_VERSION);
            exit(0);
        } else if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "masterd: unknown argument '%s' (try -h)\n", o);
            return -1;
        }
        if (val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "masterd: %s needs a value (try -h)\n", o);
                return -1;
            }
            *val = argv[++i];
            if (!**val) {
                fprintf(stderr, "masterd: %s: the value is empty (try -h)\n", o);
                return -1;
            }
        }
    }
    if (a->try_lock && !a->pid_file) {
        fprintf(stderr, "masterd: --try-lock needs -pid-file FILE\n");
        return -1;
    }
    if (!a->try_lock && !a->config_dir && !zmaster_server_load_config) {
        fprintf(stderr, "masterd: -C CONFIG_DIR is required (try -h)\n");
        return -1;
    }
    return 0;
}

/* --try-lock: 0 when the lock is free (no master), 1 when held.  The file is never created
 * or written: a probe must not change what it looks at. */
static int try_lock(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 0 : (fprintf(stderr, "masterd: %s: %s\n", path, strerror(errno)), 1);
    int held = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd);
    return held ? 1 : 0;
}

/* A pid file someone else owns or may write is refused: they could put another pid there for
 * a stop to signal, or hold the lock to keep every master out.  0, or -1 after printing why. */
static int pid_file_trusted(const char *path, int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        fprintf(stderr, "masterd: pid file %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "masterd: pid file %s is not a regular file\n", path);
        return -1;
    }
    if (st.st_uid != geteuid()) {
        fprintf(stderr, "masterd: pid file %s is owned by uid %ld, not masterd's (uid %ld): its owner could change "
                "the pid that a stop signals, or hold the lock; remove it, and keep the pid file in a directory "
                "only masterd's user can write (e.g. /run)\n", path, (long)st.st_uid, (long)geteuid());
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        fprintf(stderr, "masterd: pid file %s is writable by %s (mode %04o): remove it (masterd makes it 0644)\n",
                path, st.st_mode & S_IWOTH ? "others" : "its group", (unsigned)(st.st_mode & 07777));
        return -1;
    }
    if (st.st_nlink != 1) {
        fprintf(stderr, "masterd: pid file %s has %lu hard links: remove it\n", path, (unsigned long)st.st_nlink);
        return -1;
    }
    return 0;
}

/* Whether fd is still the file at path: a master that stopped unlinks its file, and a lock
 * taken on an unlinked file keeps nobody out. */
static int pid_file_current(const char *path, int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Removes the pid file only while it is still ours (someone may have removed it and another
 * master made its own), then lets the lock go. */
static void pid_file_release(const char *path, int fd)
{
    if (fd < 0)
        return;
    if (pid_file_current(path, fd))
        unlink(path);
    close(fd);
}

/* Takes the pid-file lock for life (retrying 500 ms, since a --try-lock probe may hold it for
 * an instant, and reopening when the file we locked is no longer the one at the path) and
 * writes our pid.  Returns the fd, or -1 after printing why. */
static int pid_file_lock(const char *path)
{
    char why[PATH_MAX + 200];
    if (zs_path_dir_check(path, (uid_t)-1, why, sizeof(why)) < 0) {
        fprintf(stderr, "masterd: pid file %s: %s: another user could replace it\n", path, why);
        return -1;
    }
    int fd = -1;
    for (int tries = 0;; tries++) {
        if (fd < 0) {
            fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
            if (fd < 0) {
                fprintf(stderr, "masterd: pid file %s: %s\n", path, strerror(errno));
                return -1;
            }
            if (pid_file_trusted(path, fd) < 0) {
                close(fd);
                return -1;
            }
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            if (pid_file_current(path, fd))
                break;
            close(fd); /* its master unlinked it on the way out: the path is what counts */
            fd = -1;
        } else if (errno != EWOULDBLOCK) {
            fprintf(stderr, "masterd: flock %s: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (tries >= 50) {
            char buf[32] = "";
            ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : 0;
            buf[n > 0 ? n : 0] = '\0';
            buf[strcspn(buf, "\n")] = '\0';
            fprintf(stderr, "masterd: another masterd (pid %s) holds the lock on %s\n", *buf ? buf : "?", path);
            if (fd >= 0)
                close(fd);
            return -1;
        }
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    errno = 0;
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        /* A full disk: say so, and leave no empty pid file behind (it is ours: we hold its lock). */
        fprintf(stderr, "masterd: pid file %s: %s\n", path, errno ? strerror(errno) : "short write");
        pid_file_release(path, fd);
        return -1;
    }
    return fd;
}

/* Children get /dev/null and our 1/2; a closed 0-2 would let a socket land there. */
static void ensure_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            int n = open("/dev/null", O_RDWR);
            if (n >= 0 && n != fd)
                close(n);
        }
    }
}

/* masterd holds an fd per process and per listener: its soft RLIMIT_NOFILE goes up to the hard
 * limit (the services' needs are checked against it by md_set_load), and its children get the
 * soft limit it was started with back (server-max-nofile aside), as nginx keeps worker limits
 * explicit.  Runs before anything is opened, also for -t, so -t judges what a start would. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        fprintf(stderr, "masterd: getrlimit(RLIMIT_NOFILE): %s\n", strerror(errno));
        return;
    }
    zs_spawn_set_child_nofile(rl.rlim_cur);
    if (rl.rlim_cur == rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        fprintf(stderr, "masterd: raising RLIMIT_NOFILE to the hard limit %llu: %s\n",
                (unsigned long long)rl.rlim_max, strerror(errno));
}

static int run(const args *ap, const char *control);

/* The first ZS_ERRS_SHOWN errors, then how many more there are. */
static void print_errs(const zs_errs *e)
{
    for (size_t i = 0; i < e->n && i < ZS_ERRS_SHOWN; i++)
        fprintf(stderr, "masterd: %s\n", e->msg[i]);
    if (e->n > ZS_ERRS_SHOWN)
        fprintf(stderr, "masterd: ... and %zu more error%s\n", e->n - ZS_ERRS_SHOWN,
                e->n - ZS_ERRS_SHOWN == 1 ? "" : "s");
}

/* lib-zc's zvar_default_config holds a master's command line: -C DIR is "C", and so on. */
static void remember_args(const args *a)
{
    const struct { const char *key, *value; } kv[] = {
        { "C", a->config_dir }, { "pid-file", a->pid_file }, { "log", a->log }, { "control", a->control },
        { "control-group", a->control_group }, { "metrics", a->metrics },
    };
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        if (kv[i].value)
            zs_config_set(zvar_default_config, kv[i].key, kv[i].value, "argv", 0);
    if (a->test)
        zs_config_set(zvar_default_config, "t", "yes", "argv", 0);
}

int zmaster_server_main(int argc, char **argv)
{
    static int ran;
    args a;
    if (ran++) {
        fprintf(stderr, "masterd: zmaster_server_main runs once per process\n");
        return 1;
    }
    ensure_std_fds();
    /* A file over RLIMIT_FSIZE (the pid file, the log; systemd's LimitFSIZE=) is a failed write,
     * handled where it happens, never the signal's default: death.  Children get it back. */
    signal(SIGXFSZ, SIG_IGN);
    if (parse_args(argc, argv, &a) < 0)
        return 1;
    if (a.try_lock)
        return try_lock(a.pid_file);
    /* Absolute from here on: children get it (ZMASTER_CONFIG_PATH), maybe in a server-chdir.
     * Symlinks are not resolved here but by each load (md_set_load_begin), so a reload follows a
     * -C symlink a deploy swapped (`ln -sfn release-2 current`). */
    char *cdir = NULL, cwd[PATH_MAX];
    if (a.config_dir && a.config_dir[0] != '/' && getcwd(cwd, sizeof(cwd)))
        a.config_dir = cdir = zs_path_join(cwd, a.config_dir); /* drops a leading ./ */
    remember_args(&a);
    if (zmaster_server_before_service)
        zmaster_server_before_service();
    raise_nofile();
    /* The control socket's path is masterd's: no listen entry or masterlog socket may take it. */
    char *control = NULL;
    if (a.control && strcmp(a.control, "none"))
        control = zs_xstrdup(a.control);
    else if (!a.control && a.pid_file)
        control = md_ctl_default_path(a.pid_file);
    md_set_reserve_path(control, "-control");
    int rc = run(&a, control);
    md_set_reserve_path(NULL, NULL);
    free(control);
    free(cdir);
    return rc;
}

/* -t, or the master itself, once the arguments are parsed. */
static int run(const args *ap, const char *control)
{
    args a = *ap;
    char err[1024];

    zs_errs errs = { 0 };
    md_set set;
    if (zs_log_check_target(a.log, err, sizeof(err)) < 0) {
        fprintf(stderr, "masterd: -log: %s\n", err);
        return 1;
    }
    if (a.test) {
        int rc = md_set_load(a.config_dir, &set, &errs);
        /* What start would refuse at bind time is an error here too: "ok" means it would bind. */
        if (rc == 0) {
            int bad = md_set_check_dirs(&set, NULL, &errs) < 0;
            bad |= md_masterlog_check(&set, &errs) < 0;
            if (bad) {
                md_set_free(&set);
                rc = -1;
            }
        }
        if (rc < 0) {
            print_errs(&errs);
            fprintf(stderr, "masterd: %zu error%s in %s\n", errs.n, errs.n == 1 ? "" : "s",
                    md_source_name(a.config_dir));
            zs_errs_free(&errs);
            return 2;
        }
        for (size_t i = 0; i < set.warn.n; i++)
            fprintf(stderr, "masterd: warning: %s\n", set.warn.msg[i]);
        printf("configuration ok (%d service%s)\n", set.n, set.n == 1 ? "" : "s");
        md_set_free(&set);
        return 0;
    }
    /* From the pid file on, a signal may come (logrotate's SIGUSR1, a reload script's SIGHUP):
     * it waits, blocked, until md_master_run's handlers take it, instead of killing masterd
     * with the default action while the config loads. */
    sigset_t held;
    sigemptyset(&held);
    for (size_t i = 0; i < sizeof(md_master_signals) / sizeof(md_master_signals[0]); i++)
        sigaddset(&held, md_master_signals[i]);
    sigprocmask(SIG_BLOCK, &held, NULL);
    int pid_fd = -1;
    if (a.pid_file && (pid_fd = pid_file_lock(a.pid_file)) < 0)
        return 1;
    if (md_set_load(a.config_dir, &set, &errs) < 0) {
        print_errs(&errs);
        zs_errs_free(&errs);
        pid_file_release(a.pid_file, pid_fd);
        return 2;
    }
    zvar_log_debug_enable = a.verbose;
    if (zs_log_open(a.log, "masterd", err, sizeof(err)) < 0) {
        fprintf(stderr, "masterd: -log: %s\n", err);
        md_set_free(&set);
        pid_file_release(a.pid_file, pid_fd);
        return 1;
    }
    md_set_log_warnings(&set, "");
    md_master_opts o = { .config_dir = a.config_dir, .pid_file = a.pid_file, .pid_fd = pid_fd,
                         .control = control, .metrics = a.metrics, .control_group = a.control_group };
    int rc = md_master_run(&set, &o);
    pid_file_release(a.pid_file, pid_fd);
    return rc;
}
