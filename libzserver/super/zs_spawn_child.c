/*
 * zs_spawn_child.c — the child's side of a start (zs_spawn_int.h): what runs between
 * clone()/fork() and execve().
 *
 * In exec mode this runs in a clone(CLONE_VM|CLONE_VFORK) child: on a stack of its own but in
 * the parent's memory, with the parent suspended until the exec (or the exit).  So it makes
 * system calls only — no malloc, no stdio, no locks, nothing that keeps state in libc — and
 * writes no memory but its own stack, the LISTEN_PID digits the parent set aside for it, and
 * its report.  The credential calls go to the kernel directly: glibc's setuid() and friends
 * would, in a process it believes threaded, signal the parent's other threads to change theirs
 * too.  errno is the parent thread's (the same TLS); the parent reads it only after the child
 * is gone.  The same code runs after a plain fork() (ZS_SPAWN=fork, or where clone fails), the
 * report then going through a close-on-exec pipe.
 *
 * Signals: the parent blocks every signal around clone/fork; the child puts every disposition
 * back to SIG_DFL before it unblocks them, so no handler of the parent's can ever run here (with
 * CLONE_VM it would run on the parent's memory), and a signal sent to the new pid early acts
 * with its default action once the child is ready for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "core/zs_log.h"
#include "core/zs_status.h"
#include "zs_spawn_int.h"

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif

static const char *const step_names[ZS_STEP_COUNT] = {
    [ZS_STEP_NONE] = "no step",
    [ZS_STEP_UNSHARE] = "unshare(CLONE_FILES)",
    [ZS_STEP_SETSID] = "setsid",
    [ZS_STEP_DUP_LOG] = "fcntl(F_DUPFD) log",
    [ZS_STEP_DUP] = "fcntl(F_DUPFD)",
    [ZS_STEP_DUP2] = "dup2",
    [ZS_STEP_DEVNULL] = "/dev/null",
    [ZS_STEP_DUP2_LOG] = "dup2 log",
    [ZS_STEP_NONBLOCK] = "fcntl(O_NONBLOCK)",
    [ZS_STEP_NOFILE] = "setrlimit(RLIMIT_NOFILE) for server-max-nofile",
    [ZS_STEP_GETNOFILE] = "getrlimit(RLIMIT_NOFILE)",
    [ZS_STEP_NOFILE_BACK] = "setrlimit(RLIMIT_NOFILE) back to masterd's original soft limit",
    [ZS_STEP_CORE] = "setrlimit(RLIMIT_CORE) for server-core-size",
    [ZS_STEP_SETGROUPS] = "setgroups for server-user",
    [ZS_STEP_SETGID] = "setgid for server-user",
    [ZS_STEP_SETUID] = "setuid for server-user",
    [ZS_STEP_NOT_DROPPED] = "server-user: privileges not dropped",
    [ZS_STEP_REGAIN_ROOT] = "server-user: could regain root",
    [ZS_STEP_CHDIR] = "chdir for server-chdir",
    [ZS_STEP_PDEATHSIG] = "prctl(PR_SET_PDEATHSIG)",
    [ZS_STEP_ORPHANED] = "the parent exited before the child could ask for its parent-death signal",
    [ZS_STEP_EXEC] = "execve",
};

const char *zs_spawn_step_name(int step)
{
    return step > 0 && step < ZS_STEP_COUNT ? step_names[step] : "unknown step";
}

/* Gives up: reports the step and errno, exits 126 (setup) or 127 (exec). */
__attribute__((noreturn)) static void fail(zs_spawn_child *c, int step, int err)
{
    c->report.err = err;
    c->report.step = step;
    if (c->r->run) {
        /* A forked worker of a self-hosted master: nobody waits for a report, say it on fd 2. */
        char buf[512];
        int n = snprintf(buf, sizeof(buf), "%s: child %ld: %s: %s\n", c->r->svc->id, (long)getpid(),
                         zs_spawn_step_name(step), strerror(err));
        if (n > 0)
            (void)!write(2, buf, (size_t)n);
    } else if (c->report_fd >= 0) {
        zs_spawn_report rep = { step, err };
        (void)!write(c->report_fd, &rep, sizeof(rep));
    }
    _exit(step == ZS_STEP_EXEC ? 127 : 126);
}

/* The kernel's struct for rt_sigaction (no restorer needed for SIG_DFL). */
struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long mask[2];
};

/* Every disposition back to SIG_DFL, then nothing blocked.  Straight to the kernel: glibc's
 * sigaction() refuses its own signals (32, 33), which can arrive ignored (GNU make starts its
 * jobs so) and would stay ignored across exec. */
static void reset_signals(void)
{
    struct kernel_sigaction dfl = { SIG_DFL, 0, NULL, { 0, 0 } };
    unsigned long none[2] = { 0, 0 };
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)syscall(SYS_rt_sigaction, sig, &dfl, NULL, (size_t)8);
    (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, none, NULL, (size_t)8);
}

/* Closes every fd from lowfd up, except keep (-1: none). */
static void close_from(int lowfd, int keep)
{
    if (keep >= lowfd) {
        if ((keep == lowfd || syscall(SYS_close_range, (unsigned)lowfd, (unsigned)keep - 1, 0) == 0) &&
            syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0) == 0)
            return;
    } else if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0) {
        return;
    }
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = lowfd; fd < (max > 0 ? max : 65536); fd++)
        if (fd != keep)
            close((int)fd);
}

/* Places listeners at 3.., the channel after them, /dev/null on 0, the log (or the owner's
 * output pipe) on 1 and 2; closes everything else but the report pipe (close-on-exec). */
static void place_fds(zs_spawn_child *c)
{
    const zs_spawn_req *r = c->r;
    int n = r->svc->nlisten, top = ZS_LISTEN_FDS_START + n + 1;
    int tmp[n + 1];
    int lf = r->out_fd > 0 ? r->out_fd : zs_log_child_fd();
    int nul = c->devnull;
    /* First lift every source above the targets, so no dup2 overwrites a source still needed:
     * the log file's fd too, which may well sit where a listener goes (3, 4...), and the
     * report pipe (fork mode only: in clone mode c is the parent's memory), which must outlive
     * them all. */
    if (c->report_fd >= 0 && c->report_fd < top) {
        int rf = fcntl(c->report_fd, F_DUPFD_CLOEXEC, top);
        if (rf < 0)
            fail(c, ZS_STEP_DUP, errno);
        c->report_fd = rf;
    }
    if (lf != 2 && (lf = fcntl(lf, F_DUPFD_CLOEXEC, top)) < 0)
        fail(c, ZS_STEP_DUP_LOG, errno);
    if (nul >= 0 && nul < top && (nul = fcntl(nul, F_DUPFD_CLOEXEC, top)) < 0)
        fail(c, ZS_STEP_DEVNULL, errno);
    for (int i = 0; i <= n; i++)
        if ((tmp[i] = fcntl(i < n ? r->fds[i] : c->chan, F_DUPFD_CLOEXEC, top)) < 0)
            fail(c, ZS_STEP_DUP, errno);
    for (int i = 0; i <= n; i++)
        if (dup2(tmp[i], ZS_LISTEN_FDS_START + i) < 0)
            fail(c, ZS_STEP_DUP2, errno);
    if (nul < 0 && (nul = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
        fail(c, ZS_STEP_DEVNULL, errno);
    if (dup2(nul, 0) < 0)
        fail(c, ZS_STEP_DEVNULL, errno);
    if (lf != 2 && (dup2(lf, 1) < 0 || dup2(lf, 2) < 0))
        fail(c, ZS_STEP_DUP2_LOG, errno);
    close_from(top, c->report_fd);
    /* Listeners are non-blocking in the child (the flag lives on the shared open file). */
    for (int i = 0; i < n; i++) {
        int fl = fcntl(ZS_LISTEN_FDS_START + i, F_GETFL);
        if (fl < 0 || fcntl(ZS_LISTEN_FDS_START + i, F_SETFL, fl | O_NONBLOCK) < 0)
            fail(c, ZS_STEP_NONBLOCK, errno);
    }
}

/* Rlimits, user, directory, parent-death signal: what both modes need. */
static void common_setup(zs_spawn_child *c)
{
    const zs_service *svc = c->r->svc;
    if (svc->max_nofile > 0) {
        struct rlimit rl = { (rlim_t)svc->max_nofile, (rlim_t)svc->max_nofile };
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            fail(c, ZS_STEP_NOFILE, errno);
    } else if (c->nofile_set) {
        /* The master raised its own soft limit for its fds; a server keeps the one it was given. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
            fail(c, ZS_STEP_GETNOFILE, errno);
        rl.rlim_cur = c->nofile < rl.rlim_max ? c->nofile : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            fail(c, ZS_STEP_NOFILE_BACK, errno);
    }
    if (svc->core_size != -1) {
        rlim_t v = svc->core_size == -2 ? RLIM_INFINITY : (rlim_t)svc->core_size;
        struct rlimit rl = { v, v };
        if (setrlimit(RLIMIT_CORE, &rl) < 0)
            fail(c, ZS_STEP_CORE, errno);
    }
    if (svc->user) {
        if (geteuid() != svc->uid) {
            if (syscall(SYS_setgroups, (size_t)c->ngroups, c->groups) < 0)
                fail(c, ZS_STEP_SETGROUPS, errno);
            if (syscall(SYS_setgid, svc->gid) < 0)
                fail(c, ZS_STEP_SETGID, errno);
            if (syscall(SYS_setuid, svc->uid) < 0)
                fail(c, ZS_STEP_SETUID, errno);
        }
        /* Never run a service as root by accident: the drop must hold and be irreversible. */
        if (getuid() != svc->uid || geteuid() != svc->uid || getgid() != svc->gid)
            fail(c, ZS_STEP_NOT_DROPPED, EPERM);
        if (svc->uid != 0 && syscall(SYS_setuid, 0) == 0)
            fail(c, ZS_STEP_REGAIN_ROOT, EPERM);
    }
    /* After the drop: the service's user must be able to enter it. */
    if (svc->chdir && chdir(svc->chdir) < 0)
        fail(c, ZS_STEP_CHDIR, errno);
    /* Last: the kernel clears the parent-death signal whenever the credentials change, so
     * asking before the setuid() above would leave a server-user child orphaned for good. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
        fail(c, ZS_STEP_PDEATHSIG, errno);
    if (getppid() != c->parent)
        fail(c, ZS_STEP_ORPHANED, ESRCH); /* the master died before we could ask to be told */
}

/* A session of its own, hence no controlling terminal: a child sharing masterd's could TIOCSTI
 * commands into the terminal masterd was started from.  It also makes the child the leader of
 * its own process group (pgid == pid), which the supervisor's kill(-pid) relies on. */
static void begin(zs_spawn_child *c)
{
    reset_signals(); /* before anything: the master's handlers must never run here; this also
                      * unblocks what the parent held across clone/fork */
    /* A table of our own, copied only up to the highest fd we need: sharing the parent's at
     * clone spared it copying (and taking a reference on) every one of its fds, a cost that
     * grows with the number of children it has.  Nothing touched the shared table before. */
    if (c->files_shared &&
        syscall(SYS_close_range, (unsigned)c->maxfd + 1, ~0U, CLOSE_RANGE_UNSHARE) < 0 && unshare(CLONE_FILES) < 0)
        fail(c, ZS_STEP_UNSHARE, errno);
    if (setsid() < 0)
        fail(c, ZS_STEP_SETSID, errno);
}

/* The decimal digits of v and a NUL into buf (at least 21 bytes). */
static void put_digits(char *buf, long v)
{
    char tmp[24];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0 && n < 23);
    while (n > 0)
        *buf++ = tmp[--n];
    *buf = '\0';
}

int zs_spawn_child_exec(void *arg)
{
    zs_spawn_child *c = arg;
    begin(c);
    /* The parent's buffer, in the environment it handed over; it is suspended (clone) or has
     * its own copy (fork), and reads nothing there before freeing it after the exec. */
    put_digits(c->pid_digits, (long)getpid());
    place_fds(c);
    common_setup(c);
    execve(c->r->svc->exec_path, c->r->svc->argv, c->env);
    fail(c, ZS_STEP_EXEC, errno);
}

void zs_spawn_child_run(zs_spawn_child *c)
{
    const zs_spawn_req *r = c->r;
    begin(c);
    close(c->chan_other);
    if (c->devnull >= 0)
        close(c->devnull); /* close-on-exec, but there is no exec here */
    if (r->after_fork)
        r->after_fork(r->after_fork_ctx);
    common_setup(c);
    exit(r->run(r->run_ctx, r->slot, c->chan));
}
