/*
 * spawncost.c — what one spawn costs the spawning process: fork()+exec against vfork()+exec.
 *
 *   spawncost [-n COUNT] [-m fork|vfork] [-k] [-r] PROGRAM [ARG...]
 *
 * Mimics a supervisor's spawn path: before each spawn it builds a child environment (a few
 * dozen malloc'd strings, as masterd's zs_spawn.c does), spawns PROGRAM (which should exit at
 * once), frees the environment afterwards and logs one formatted line to /dev/null.  It reaps
 * the children as they exit; with -k it keeps them all alive (as a supervisor does: PROGRAM should
 * then wait, e.g. `sleep 60`), stops the clock once all are started, then kills and reaps them
 * (a task's kernel stack is reused from one that exited, so children that exit at once make
 * each spawn cheaper than a supervisor's are).  With -r each child also gets what a supervisor
 * with a status channel and an output pipe makes for it and keeps: a SEQPACKET socketpair and a
 * pipe (our ends kept and watched in an epoll set, the child's closed after the spawn) and 2.5 KB
 * of record.  Prints `MODE spawns=N parent_cpu_us_per_spawn=X wall_us_per_spawn=Y
 * minflt_per_spawn=Z`: the parent's own utime+stime and minor faults (getrusage RUSAGE_SELF),
 * not the children's.  After fork() every page the parent writes is copy-on-write: each one is a
 * page fault plus a TLB flush, which on a virtual machine is an inter-processor interrupt; vfork
 * shares the address space until exec and pays none of that.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_self(long *minflt)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *minflt = ru.ru_minflt;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* The child only execs or _exits, so it never returns from here (vfork's rule). */
__attribute__((noinline)) static pid_t spawn(int use_vfork, char *prog, char **cargv, char **env)
{
    pid_t pid = use_vfork ? vfork() : fork();
    if (pid == 0) {
        execve(prog, cargv, env);
        _exit(127);
    }
    return pid;
}

int main(int argc, char **argv)
{
    int n = 500, opt, use_vfork = 0, keep = 0, res = 0;
    while ((opt = getopt(argc, argv, "+n:m:kr")) != -1) {
        switch (opt) {
        case 'n': n = atoi(optarg); break;
        case 'm': use_vfork = !strcmp(optarg, "vfork"); break;
        case 'k': keep = 1; break;
        case 'r': res = 1; break;
        default: return 2;
        }
    }
    if (optind >= argc || n < 1 || n > 100000) {
        fprintf(stderr, "usage: spawncost [-n COUNT] [-m fork|vfork] [-k] [-r] PROGRAM [ARG...]\n");
        return 2;
    }
    char *prog = argv[optind];
    char **cargv = argv + optind;
    pid_t *kids = calloc((size_t)n, sizeof(pid_t));
    int ep = res ? epoll_create1(EPOLL_CLOEXEC) : -1;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    /* A supervisor-sized heap: 2 MiB touched, so the page tables have something to copy. */
    char *heap = malloc(2 << 20);
    if (!heap || devnull < 0)
        return 1;
    memset(heap, 1, 2 << 20);

    long f0, f1;
    double c0 = cpu_self(&f0), t0 = now();
    int live = 0;
    for (int i = 0; i < n; i++) {
        size_t ne = 0;
        while (environ[ne])
            ne++;
        char **env = calloc(ne + 8, sizeof(char *));
        for (size_t k = 0; k < ne; k++)
            env[k] = strdup(environ[k]);
        env[ne] = strdup("LISTEN_FDS=1");
        int sv[2] = { -1, -1 }, pp[2] = { -1, -1 };
        if (res && (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(pp, O_CLOEXEC) < 0)) {
            perror("spawncost: socketpair/pipe");
            return 1;
        }
        pid_t pid = spawn(use_vfork, prog, cargv, env);
        if (pid < 0) {
            perror("spawncost: fork");
            return 1;
        }
        kids[i] = pid;
        live++;
        if (res) {
            struct epoll_event ev = { .events = EPOLLIN };
            close(sv[1]);
            close(pp[1]);
            epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev);
            epoll_ctl(ep, EPOLL_CTL_ADD, pp[0], &ev);
            ((char *)calloc(1, 2560))[0] = 1; /* the record, kept (freed with the process) */
        }
        for (size_t k = 0; env[k]; k++)
            free(env[k]);
        free(env);
        dprintf(devnull, "%s: started pid %ld (slot %d, generation %d)\n", prog, (long)pid, i, 1);
        heap[(size_t)i * 4096 % (2 << 20)]++; /* the supervisor touches its own state, too */
        while (!keep && live > 0 && waitpid(-1, NULL, WNOHANG) > 0)
            live--;
    }
    while (!keep && live > 0 && waitpid(-1, NULL, 0) > 0)
        live--;
    double c1 = cpu_self(&f1), t1 = now();
    for (int i = 0; keep && i < n; i++)
        kill(kids[i], SIGKILL);
    while (live > 0 && waitpid(-1, NULL, 0) > 0)
        live--;
    printf("%s%s%s spawns=%d parent_cpu_us_per_spawn=%.0f wall_us_per_spawn=%.0f minflt_per_spawn=%.1f\n",
           use_vfork ? "vfork" : "fork", keep ? " kept" : "", res ? " with-resources" : "", n, (c1 - c0) * 1e6 / n, (t1 - t0) * 1e6 / n, (double)(f1 - f0) / n);
    free(heap);
    free(kids);
    return 0;
}
