/*
 * zs_spawn.c — create one supervised child (zs_spawn.h).
 *
 * Everything that can allocate (environment, group list) is prepared before fork(); between
 * fork and exec the child only makes system calls and formats into prepared buffers.  Any
 * failure there is written where the child's output goes (its output pipe, relayed to the
 * owner's log, or the log file; never the master's own stderr when it has another target) and
 * the child exits 126 (setup) or 127 (exec), which the supervisor sees as a failed start and
 * backs off from.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "core/zs_log.h"
#include "zs_spawn.h"
#include "core/zs_status.h"
#include "core/zserver_core.h"

extern char **environ;

#define MAX_GROUPS 256

/* The PATH a child gets when server-env-clear starts it from nothing and server-env sets none
 * (systemd's default for services). */
#define CLEAR_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static int drop_env(const char *e)
{
    static const char *prefixes[] = { "LISTEN_", "ZMASTER_", "NOTIFY_SOCKET=", NULL };
    for (int i = 0; prefixes[i]; i++)
        if (!strncmp(e, prefixes[i], strlen(prefixes[i])))
            return 1;
    return 0;
}

/* server-env sets the variable e (NAME=...) names. */
static int env_overridden(const zs_service *svc, const char *e)
{
    size_t len = strcspn(e, "=");
    for (int i = 0; i < svc->nenv; i++)
        if (!strncmp(svc->env[i], e, len + 1))
            return 1;
    return 0;
}

/* The child's environment: ours (none with server-env-clear) minus the protocol variables and
 * what server-env sets, then server-env, then the contract's.  The LISTEN_PID entry is a buffer
 * the child fills in after fork. */
static char **build_env(const zs_spawn_req *r, char *pidbuf)
{
    const zs_service *svc = r->svc;
    size_t n = 0;
    while (!svc->env_clear && environ[n])
        n++;
    char **env = zs_xcalloc(n + (size_t)svc->nenv + 9, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!drop_env(environ[i]) && !env_overridden(svc, environ[i]))
            env[k++] = zs_xstrdup(environ[i]);
    for (int i = 0; i < svc->nenv; i++)
        env[k++] = zs_xstrdup(svc->env[i]);
    if (svc->env_clear && !env_overridden(svc, CLEAR_PATH))
        env[k++] = zs_xstrdup(CLEAR_PATH);
    size_t names = 1;
    for (int i = 0; i < svc->nlisten; i++)
        names += strlen(svc->listen[i].name) + 1;
    char *fdnames = zs_xcalloc(names, 1);
    for (int i = 0; i < svc->nlisten; i++) {
        if (i)
            strcat(fdnames, ":");
        strcat(fdnames, svc->listen[i].name);
    }
    env[k++] = zs_xasprintf(ZS_ENV_LISTEN_FDS "=%d", svc->nlisten);
    env[k++] = pidbuf;
    env[k++] = zs_xasprintf(ZS_ENV_LISTEN_FDNAMES "=%s", fdnames);
    env[k++] = zs_xasprintf(ZS_ENV_STATUS_FD "=%d", ZS_LISTEN_FDS_START + svc->nlisten);
    env[k++] = zs_xasprintf(ZS_ENV_GENERATION "=%u", r->gen);
    if (r->config_dir) {
        env[k++] = zs_xasprintf(ZS_ENV_CONFIG_PATH "=%s", r->config_dir);
        if (svc->cf_path)
            env[k++] = zs_xasprintf(ZS_ENV_CONFIG "=%s", svc->cf_path);
    }
    env[k] = NULL;
    free(fdnames);
    return env;
}

static void free_env(char **env, char *pidbuf)
{
    for (size_t i = 0; env[i]; i++)
        if (env[i] != pidbuf)
            free(env[i]);
    free(env);
}

/* In the child: where die() writes.  The output pipe (or the log file) from the fork on, its
 * lifted copy while place_fds moves descriptors, fd 2 once that is the pipe.  (Each child has
 * its own copy; the parent's stays 2 and is never used.) */
static int die_fd = 2;

static void die(const zs_spawn_req *r, const char *what, int code)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "%s: child %ld: %s: %s\n", r->svc->id, (long)getpid(), what,
                     strerror(errno));
    if (n > 0)
        (void)!write(die_fd, buf, (size_t)n);
    _exit(code);
}

/* The kernel's struct for rt_sigaction (no restorer needed for SIG_DFL). */
struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long mask[2];
};

static void reset_signals(void)
{
    sigset_t none;
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, &dfl, NULL) == 0)
            continue;
        /* glibc refuses its own signals (32, 33), yet they can arrive ignored: GNU make, for
         * one, starts its jobs so.  An ignored signal stays ignored across exec; the kernel
         * lets us put them back. */
        struct kernel_sigaction k = { SIG_DFL, 0, NULL, { 0, 0 } };
        (void)syscall(SYS_rt_sigaction, sig, &k, NULL, (size_t)8);
    }
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static int child_nofile_set;
static rlim_t child_nofile;

void zs_spawn_set_child_nofile(rlim_t soft)
{
    child_nofile = soft;
    child_nofile_set = 1;
}

/* Rlimits, user, parent-death signal: what both modes need. */
static void common_setup(const zs_spawn_req *r, pid_t parent, const gid_t *groups, int ngroups)
{
    const zs_service *svc = r->svc;
    if (svc->max_nofile > 0) {
        struct rlimit rl = { (rlim_t)svc->max_nofile, (rlim_t)svc->max_nofile };
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            die(r, "setrlimit(RLIMIT_NOFILE) for server-max-nofile", 126);
    } else if (child_nofile_set) {
        /* The master raised its own soft limit for its fds; a server keeps the one it was given. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
            die(r, "getrlimit(RLIMIT_NOFILE)", 126);
        rl.rlim_cur = child_nofile < rl.rlim_max ? child_nofile : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            die(r, "setrlimit(RLIMIT_NOFILE) back to masterd's original soft limit", 126);
    }
    if (svc->core_size != -1) {
        rlim_t v = svc->core_size == -2 ? RLIM_INFINITY : (rlim_t)svc->core_size;
        struct rlimit rl = { v, v };
        if (setrlimit(RLIMIT_CORE, &rl) < 0)
            die(r, "setrlimit(RLIMIT_CORE) for server-core-size", 126);
    }
    if (svc->user) {
        if (geteuid() != svc->uid) {
            if (setgroups((size_t)ngroups, groups) < 0)
                die(r, "setgroups for server-user", 126);
            if (setgid(svc->gid) < 0)
                die(r, "setgid for server-user", 126);
            if (setuid(svc->uid) < 0)
                die(r, "setuid for server-user", 126);
        }
        /* Never run a service as root by accident: the drop must hold and be irreversible. */
        if (getuid() != svc->uid || geteuid() != svc->uid || getgid() != svc->gid)
            die(r, "server-user: privileges not dropped", 126);
        if (svc->uid != 0 && setuid(0) == 0) {
            errno = EPERM;
            die(r, "server-user: could regain root", 126);
        }
    }
    /* After the drop: the service's user must be able to enter it. */
    if (svc->chdir && chdir(svc->chdir) < 0)
        die(r, "chdir for server-chdir", 126);
    /* Last: the kernel clears the parent-death signal whenever the credentials change, so
     * asking before the setuid() above would leave a server-user child orphaned for good. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
        die(r, "prctl(PR_SET_PDEATHSIG)", 126);
    if (getppid() != parent)
        _exit(126); /* the master died before we could ask to be told */
}

static void close_from(int lowfd)
{
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = lowfd; fd < (max > 0 ? max : 65536); fd++)
        close((int)fd);
}

/* Places listeners at 3.., the channel after them, /dev/null on 0, the log (or the owner's
 * output pipe) on 1 and 2. */
static void place_fds(const zs_spawn_req *r, int chan)
{
    int n = r->svc->nlisten, top = ZS_LISTEN_FDS_START + n + 1;
    int tmp[n + 1];
    int lf = r->out_fd > 0 ? r->out_fd : zs_log_child_fd();
    /* First lift every source above the targets, so no dup2 overwrites a source still needed:
     * the log file's fd too, which may well sit where a listener goes (3, 4...). */
    if (lf != 2 && (lf = fcntl(lf, F_DUPFD_CLOEXEC, top)) < 0)
        die(r, "fcntl(F_DUPFD) log", 126);
    die_fd = lf; /* the original's number may be a target below */
    for (int i = 0; i <= n; i++) {
        tmp[i] = fcntl(i < n ? r->fds[i] : chan, F_DUPFD_CLOEXEC, top);
        if (tmp[i] < 0)
            die(r, "fcntl(F_DUPFD)", 126);
    }
    for (int i = 0; i <= n; i++)
        if (dup2(tmp[i], ZS_LISTEN_FDS_START + i) < 0)
            die(r, "dup2", 126);
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul < 0 || dup2(nul, 0) < 0)
        die(r, "/dev/null", 126);
    if (lf != 2 && (dup2(lf, 1) < 0 || dup2(lf, 2) < 0))
        die(r, "dup2 log", 126);
    die_fd = 2;
    close_from(top);
    /* Listeners are non-blocking in the child (the flag lives on the shared open file). */
    for (int i = 0; i < n; i++) {
        int fl = fcntl(ZS_LISTEN_FDS_START + i, F_GETFL);
        if (fl < 0 || fcntl(ZS_LISTEN_FDS_START + i, F_SETFL, fl | O_NONBLOCK) < 0)
            die(r, "fcntl(O_NONBLOCK)", 126);
    }
}

pid_t zs_spawn(const zs_spawn_req *r, int *chan)
{
    int sv[2];
    gid_t groups[MAX_GROUPS];
    int ngroups = MAX_GROUPS;
    char *pidbuf = NULL;
    char **env = NULL;

    if (r->svc->user && getgrouplist(r->svc->user, r->svc->gid, groups, &ngroups) < 0)
        ngroups = 0; /* more than MAX_GROUPS: keep only the primary group */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    /* Our end takes no descriptors: one we had to close could block us (zs_status.c).  An
     * older kernel lacks the option; what arrives there is dropped without lingering. */
    if (zs_status_refuse_fds(sv[0]) < 0 && errno != ENOPROTOOPT)
        zwarning("%s: status channel: SO_PASSRIGHTS: %s", r->svc->id, strerror(errno));
    if (!r->run) {
        pidbuf = zs_xcalloc(32, 1);
        env = build_env(r, pidbuf);
    }
    pid_t parent = getpid();
    /* Every signal is held across fork: one sent to the new pid before the child has put its
     * handlers back to default (a stop of a generation just superseded) stays pending until
     * then, and acts with the default action, instead of running the master's handler in
     * the child, where it would be lost. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid != 0)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        if (env)
            free_env(env, pidbuf);
        free(pidbuf);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        die_fd = r->out_fd > 0 ? r->out_fd : zs_log_child_fd();
        reset_signals(); /* before anything: the master's handlers must never run here; this
                          * also unblocks what the parent held across fork */
        /* A session of its own, hence no controlling terminal: a child sharing masterd's could
         * TIOCSTI commands into the terminal masterd was started from.  It also makes the
         * child the leader of its own process group (pgid == pid), which the supervisor's
         * kill(-pid) relies on. */
        if (setsid() < 0)
            die(r, "setsid", 126);
        close(sv[0]);
        if (r->run) {
            if (r->after_fork)
                r->after_fork(r->after_fork_ctx);
            common_setup(r, parent, groups, ngroups);
            exit(r->run(r->run_ctx, r->slot, sv[1]));
        }
        snprintf(pidbuf, 32, ZS_ENV_LISTEN_PID "=%ld", (long)getpid());
        place_fds(r, sv[1]);
        common_setup(r, parent, groups, ngroups);
        execve(r->svc->exec_path, r->svc->argv, env);
        die(r, r->svc->exec_path, 127);
    }
    /* No setpgid(pid, pid) here (the shells' idiom): had it come first, the child would lead
     * a group already and its setsid() would fail.  Until the child's setsid() no group pid
     * exists, so every kill(-pid) of the supervisor fails with ESRCH and falls back to
     * kill(pid), which reaches the child: before exec it has no helpers to take along. */
    close(sv[1]);
    if (env)
        free_env(env, pidbuf);
    free(pidbuf);
    int fl = fcntl(sv[0], F_GETFL);
    if (fl >= 0)
        fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
    *chan = sv[0];
    return pid;
}
