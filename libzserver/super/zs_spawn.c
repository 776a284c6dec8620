/*
 * zs_spawn.c — create one supervised child (zs_spawn.h): the parent's side.
 *
 * Everything that can allocate (environment, group list) is prepared here, before the child
 * exists; the child (zs_spawn_child.c) only makes system calls until it execs.  An exec-mode
 * child is started with clone(CLONE_VM|CLONE_VFORK) on a small stack of its own: it borrows
 * our memory until its exec instead of copying our page tables, and we do not run until it has
 * exec'd or exited, so nothing of ours is touched under it.  After fork() every page we wrote
 * would cost a copy-on-write fault (and, on a VM, a TLB-shootdown interrupt): that was most of
 * masterd's CPU per process started (doc/performance.md).  ZS_SPAWN=fork in the environment, a
 * build with -DZS_SPAWN_FORK, or a clone refused by the kernel (a seccomp filter) use fork().
 *
 * A step the child cannot take is reported back (which step, errno: in place with clone, over
 * a close-on-exec pipe after fork) and the child exits 126 (setup) or 127 (exec).  We log
 * `SERVICE: child PID: STEP: ERROR` and hand the pid over as usual: it is reaped as a failed
 * start, exactly as a child that exits at once, and its slot backs off.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include "core/zs_log.h"
#include "core/zs_status.h"
#include "core/zserver_core.h"
#include "zs_spawn_int.h"

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
 * what server-env sets, then server-env, then the contract's.  Ours and server-env's strings are
 * pointed at, not copied (they outlive the call); the contract's are allocated, from index
 * *owned on.  The LISTEN_PID entry is pidbuf, whose digits the child fills in. */
static char **build_env(const zs_spawn_req *r, char *pidbuf, size_t *owned)
{
    const zs_service *svc = r->svc;
    size_t n = 0;
    while (!svc->env_clear && environ[n])
        n++;
    char **env = zs_xcalloc(n + (size_t)svc->nenv + 9, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!drop_env(environ[i]) && !env_overridden(svc, environ[i]))
            env[k++] = environ[i];
    for (int i = 0; i < svc->nenv; i++)
        env[k++] = svc->env[i];
    if (svc->env_clear && !env_overridden(svc, CLEAR_PATH))
        env[k++] = (char *)CLEAR_PATH;
    size_t names = 1;
    for (int i = 0; i < svc->nlisten; i++)
        names += strlen(svc->listen[i].name) + 1;
    char *fdnames = zs_xcalloc(names, 1);
    for (int i = 0; i < svc->nlisten; i++) {
        if (i)
            strcat(fdnames, ":");
        strcat(fdnames, svc->listen[i].name);
    }
    *owned = k;
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

static void free_env(char **env, size_t owned, char *pidbuf)
{
    for (size_t i = owned; env[i]; i++)
        if (env[i] != pidbuf)
            free(env[i]);
    free(env);
}

static int child_nofile_set;
static rlim_t child_nofile;

void zs_spawn_set_child_nofile(rlim_t soft)
{
    child_nofile = soft;
    child_nofile_set = 1;
}

/* How exec-mode children are started, and why not with clone when not. */
enum { M_UNSET, M_CLONE, M_FORK };
static int method = M_UNSET;
static const char *const method_name[] = { "?", "clone(CLONE_VM|CLONE_VFORK)", "fork()" };
static const char *fork_why; /* NULL with clone */

#if defined(__SANITIZE_ADDRESS__)
#define SPAWN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPAWN_ASAN 1
#endif
#endif

/* Why exec-mode children are started with fork() here, or NULL: with clone. */
static const char *fork_reason(void)
{
    const char *e = getenv("ZS_SPAWN"), *pre = getenv("LD_PRELOAD");
    if (e && !strcmp(e, "fork"))
        return "ZS_SPAWN=fork";
#ifdef SPAWN_ASAN
    /* ASan keeps its books on the stack it believes the thread runs on: a CLONE_VM child on a
     * stack of its own makes it poison and check memory it does not own (false reports). */
    return "AddressSanitizer build";
#endif
    /* valgrind runs a CLONE_VM|CLONE_VFORK child as a fork (no report would come back) and
     * gives up on CLONE_FILES altogether. */
    if (pre && strstr(pre, "/vgpreload_"))
        return "under valgrind";
#ifdef ZS_SPAWN_FORK
    if (!e || strcmp(e, "clone"))
        return "built with ZS_SPAWN_FORK";
#endif
    return NULL;
}

static int spawn_method(void)
{
    if (method == M_UNSET) {
        fork_why = fork_reason();
        method = fork_why ? M_FORK : M_CLONE;
    }
    return method;
}

/* The clone child's stack, made once and kept: a PROT_NONE guard page below CLONE_STACK
 * bytes, so an overflow is a SIGSEGV of the child, never a write into our memory.  One child
 * at a time uses it: the parent is suspended until that child has exec'd or exited. */
#define CLONE_STACK (256 * 1024)
static char *clone_stack;

static char *stack_top(void)
{
    if (!clone_stack) {
        long pg = sysconf(_SC_PAGESIZE);
        size_t guard = pg > 0 ? (size_t)pg : 4096;
        char *p = mmap(NULL, guard + CLONE_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                       -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        if (mprotect(p, guard, PROT_NONE) < 0) {
            munmap(p, guard + CLONE_STACK);
            return NULL;
        }
        clone_stack = p + guard;
    }
    return clone_stack + CLONE_STACK; /* page-aligned, so 16-byte aligned */
}

/* /dev/null for the children's fd 0, opened once (close-on-exec) instead of once per child, and
 * two low placeholders (copies of it) where the child's ends of its status channel and output
 * pipe sit while it starts: with every fd it needs low in the table, a clone child copies only
 * the bottom of our table (zs_spawn_child.c), however many fds we hold.  Made at the first
 * exec-mode start, when our table is still short. */
static int devnull_fd = -1;
static int low_slot[2] = { -1, -1 };

static void make_low_fds(void)
{
    if (devnull_fd < 0)
        devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int i = 0; i < 2 && devnull_fd >= 0; i++)
        if (low_slot[i] < 0)
            low_slot[i] = fcntl(devnull_fd, F_DUPFD_CLOEXEC, 0);
}

/* A forked worker (fork mode) has no use for them. */
static void forget_low_fds(void)
{
    for (int i = 0; i < 2; i++)
        if (low_slot[i] >= 0)
            close(low_slot[i]);
    if (devnull_fd >= 0)
        close(devnull_fd);
    low_slot[0] = low_slot[1] = devnull_fd = -1;
}

/* Below this, the bottom of our table the child copies is short anyway (the kernel copies 64
 * fds at least): moving an fd lower would save less than its two system calls cost. */
#define LOW_ENOUGH 128

/* Puts fd in low slot i for the child's start; returns where it is now. */
static int to_low_slot(int i, int fd)
{
    if (low_slot[i] < 0 || fd <= low_slot[i] || fd < LOW_ENOUGH || dup3(fd, low_slot[i], O_CLOEXEC) < 0)
        return fd;
    return low_slot[i];
}

/* Puts the placeholder back (dropping our copy of what the child was given). */
static void free_low_slot(int i, int fd)
{
    if (fd == low_slot[i] && dup3(devnull_fd, low_slot[i], O_CLOEXEC) < 0)
        close(low_slot[i]), low_slot[i] = -1;
}

/* Starts an exec-mode child with clone(CLONE_VM|CLONE_VFORK): returns once it has exec'd or
 * exited, its report (if any) in c->report.  -1 with errno: no child. */
static pid_t start_clone(zs_spawn_child *c)
{
    char *top = stack_top();
    if (!top)
        return -1;
    c->report_fd = -1;
    c->files_shared = 1;
    return clone(zs_spawn_child_exec, top, CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, c);
}

/* The same with fork(): waits for the child's exec (end of file on the close-on-exec report
 * pipe) or its report, so both ways tell the same story at the same moment. */
static pid_t start_fork(zs_spawn_child *c)
{
    int rp[2];
    if (pipe2(rp, O_CLOEXEC) < 0)
        return -1;
    c->report_fd = rp[1];
    c->files_shared = 0;
    pid_t pid = fork();
    if (pid == 0) {
        close(rp[0]);
        zs_spawn_child_exec(c);
    }
    int e = errno;
    close(rp[1]);
    if (pid > 0) {
        zs_spawn_report rep;
        ssize_t n;
        while ((n = read(rp[0], &rep, sizeof(rep))) < 0 && errno == EINTR)
            ;
        if (n == (ssize_t)sizeof(rep))
            c->report = rep;
    }
    close(rp[0]);
    errno = e;
    return pid;
}

static pid_t start_exec_child(zs_spawn_child *c)
{
    if (spawn_method() == M_CLONE) {
        pid_t pid = start_clone(c);
        if (pid >= 0 || (errno != ENOSYS && errno != EINVAL && errno != EPERM))
            return pid;
        /* A sandbox that refuses this clone: fork from now on, as ZS_SPAWN=fork would. */
        zwarning("spawn: clone(CLONE_VM|CLONE_VFORK): %s: starting children with fork() from now on",
                 strerror(errno));
        method = M_FORK;
        fork_why = "clone refused";
    }
    return start_fork(c);
}

/* The highest fd an exec-mode child is handed. */
static int max_child_fd(const zs_spawn_child *c)
{
    const zs_spawn_req *r = c->r;
    int m = c->chan > c->devnull ? c->chan : c->devnull;
    int lf = r->out_fd > 0 ? r->out_fd : zs_log_child_fd();
    if (lf > m)
        m = lf;
    for (int i = 0; i < r->svc->nlisten; i++)
        if (r->fds[i] > m)
            m = r->fds[i];
    return m;
}

pid_t zs_spawn(const zs_spawn_req *r, int *chan)
{
    int sv[2];
    gid_t groups[MAX_GROUPS];
    int ngroups = MAX_GROUPS;
    char *pidbuf = NULL;
    char **env = NULL;
    size_t owned = 0;

    if (r->svc->user && getgrouplist(r->svc->user, r->svc->gid, groups, &ngroups) < 0)
        ngroups = 0; /* more than MAX_GROUPS: keep only the primary group */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    /* Our end takes no descriptors: one we had to close could block us (zs_status.c).  An
     * older kernel lacks the option; what arrives there is dropped without lingering. */
    if (zs_status_refuse_fds(sv[0]) < 0 && errno != ENOPROTOOPT)
        zwarning("%s: status channel: SO_PASSRIGHTS: %s", r->svc->id, strerror(errno));
    zs_spawn_child c = {
        .r = r, .chan = sv[1], .chan_other = sv[0], .report_fd = -1, .parent = getpid(),
        .groups = groups, .ngroups = ngroups, .devnull = -1,
        .nofile_set = child_nofile_set, .nofile = child_nofile,
    };
    zs_spawn_req low_req;
    if (!r->run) {
        make_low_fds();
        c.devnull = devnull_fd;
        c.chan = to_low_slot(0, sv[1]);
        if (c.chan != sv[1])
            close(sv[1]);
        if (r->out_fd > 0) {
            low_req = *r;
            low_req.out_fd = to_low_slot(1, r->out_fd);
            c.r = &low_req;
        }
        c.maxfd = max_child_fd(&c);
        pidbuf = zs_xcalloc(32, 1);
        memcpy(pidbuf, ZS_ENV_LISTEN_PID "=", sizeof(ZS_ENV_LISTEN_PID));
        c.pid_digits = pidbuf + sizeof(ZS_ENV_LISTEN_PID);
        c.env = env = build_env(r, pidbuf, &owned);
    }
    /* Every signal is held across clone/fork: one sent to the new pid before the child has
     * put its handlers back to default (a stop of a generation just superseded) stays pending
     * until then, and acts with the default action, instead of running the master's handler
     * in the child, where it would be lost (or, with CLONE_VM, run on our memory). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t pid;
    if (r->run) {
        pid = fork();
        if (pid == 0) {
            forget_low_fds();
            zs_spawn_child_run(&c);
        }
    } else {
        pid = start_exec_child(&c);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* No setpgid(pid, pid) here (the shells' idiom): had it come first, the child would lead
     * a group already and its setsid() would fail.  Until the child's setsid() no group pid
     * exists, so every kill(-pid) of the supervisor fails with ESRCH and falls back to
     * kill(pid), which reaches the child: before exec it has no helpers to take along. */
    if (c.chan == sv[1])
        close(sv[1]);
    else
        free_low_slot(0, c.chan);
    if (c.r != r)
        free_low_slot(1, c.r->out_fd);
    if (env)
        free_env(env, owned, pidbuf);
    free(pidbuf);
    if (pid < 0) {
        close(sv[0]);
        errno = e;
        return -1;
    }
    if (r->run)
        zdebug("%s: pid %ld started with fork() (a worker: no exec)", r->svc->id, (long)pid);
    else
        zdebug("%s: pid %ld started with %s%s%s%s", r->svc->id, (long)pid, method_name[method],
               fork_why ? " (" : "", fork_why ? fork_why : "", fork_why ? ")" : "");
    if (c.report.step != ZS_STEP_NONE) {
        char interp[256];
        if (c.report.step == ZS_STEP_EXEC && c.report.err == ENOENT &&
            zs_exec_interpreter_missing(r->svc->exec_path, interp, sizeof(interp)))
            zerror("%s: child %ld: execve %s: its interpreter %s (the #! line): %s", r->svc->id, (long)pid,
                   r->svc->exec_path, interp, strerror(errno));
        else if (c.report.step == ZS_STEP_EXEC)
            zerror("%s: child %ld: execve %s: %s", r->svc->id, (long)pid, r->svc->exec_path,
                   strerror(c.report.err));
        else
            zerror("%s: child %ld: %s: %s", r->svc->id, (long)pid, zs_spawn_step_name(c.report.step),
                   strerror(c.report.err));
    }
    int on = 1;
    (void)ioctl(sv[0], FIONBIO, &on);
    *chan = sv[0];
    return pid;
}
