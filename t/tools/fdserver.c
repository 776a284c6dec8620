/*
 * fdserver.c — a plain-C test server that knows nothing of libzserver.
 *
 * It takes its listeners the systemd way (LISTEN_FDS from fd 3) and answers every connection
 * with what it was given, then closes it:
 *     pid=<pid>
 *     pgid=<pgid>
 *     ppid=<ppid>
 *     argv=<word> <word> ...
 *     fds=<fd>:<target> <fd>:<target> ...      (from /proc/self/fd, before accepting)
 *     sigblk=<hex>  sigign=<hex>                (SigBlk/SigIgn of /proc/self/status at entry,
 *                                                before this program changes any disposition)
 *     env=<NAME=value>                          (one line per variable)
 *     end
 * So the end-to-end tests check the fd contract from the outside.
 *
 * Modes (first argument):
 *     serve            the above (default)
 *     exit CODE        exit at once with CODE (a crash-looping service)
 *     stubborn         like serve, but ignores SIGTERM and forks a grandchild that sleeps
 *     forker           like serve, and forks a grandchild that sleeps (default dispositions)
 *     sleep-then-exit MS   serve, and exit 0 after MS milliseconds
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char report[65536];
static size_t rlen;

static void add(const char *fmt, const char *a, const char *b)
{
    int n = snprintf(report + rlen, sizeof(report) - rlen, fmt, a, b);
    if (n > 0 && (size_t)n < sizeof(report) - rlen)
        rlen += (size_t)n;
}

/* SigBlk and SigIgn as exec left them: read first thing in main(). */
static char sigblk[32] = "?", sigign[32] = "?";

static void read_sigstate(void)
{
    char line[256];
    FILE *f = fopen("/proc/self/status", "re");
    while (f && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "SigBlk:\t", 8))
            snprintf(sigblk, sizeof(sigblk), "%.31s", line + 8);
        else if (!strncmp(line, "SigIgn:\t", 8))
            snprintf(sigign, sizeof(sigign), "%.31s", line + 8);
    }
    if (f)
        fclose(f);
}

static void build_report(int argc, char **argv)
{
    char num[64], link[512], target[512];
    snprintf(num, sizeof(num), "%ld", (long)getpid());
    add("pid=%s%s\n", num, "");
    snprintf(num, sizeof(num), "%ld", (long)getpgrp());
    add("pgid=%s%s\n", num, "");
    snprintf(num, sizeof(num), "%ld", (long)getppid());
    add("ppid=%s%s\n", num, "");
    add("argv=%s%s", "", "");
    for (int i = 0; i < argc; i++)
        add("%s%s", i ? " " : "", argv[i]);
    add("\nfds=%s%s", "", "");
    DIR *d = opendir("/proc/self/fd");
    int dfd = d ? dirfd(d) : -1;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' || atoi(de->d_name) == dfd)
            continue;
        snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = '\0';
        add(" %s:%s", de->d_name, target);
    }
    if (d)
        closedir(d);
    add("\nsigblk=%s\n", sigblk, "");
    add("sigign=%s\n", sigign, "");
    for (char **e = environ; *e; e++)
        add("env=%s%s\n", *e, "");
    add("end\n%s%s", "", "");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "serve";
    double deadline = -1;
    read_sigstate();
    if (!strcmp(mode, "exit"))
        return argc > 2 ? atoi(argv[2]) : 1;
    if (!strcmp(mode, "stubborn")) {
        signal(SIGTERM, SIG_IGN);
        if (fork() == 0) {
            for (;;)
                pause();
        }
    }
    if (!strcmp(mode, "forker") && fork() == 0) {
        for (;;)
            pause();
    }
    if (!strcmp(mode, "sleep-then-exit"))
        deadline = now_ms() + (argc > 2 ? atof(argv[2]) : 1000);
    signal(SIGPIPE, SIG_IGN);
    build_report(argc, argv);
    const char *n = getenv("LISTEN_FDS");
    int nfds = n ? atoi(n) : 0;
    struct pollfd pfd[64];
    if (nfds > 64)
        nfds = 64;
    for (int i = 0; i < nfds; i++) {
        pfd[i].fd = 3 + i;
        pfd[i].events = POLLIN;
    }
    for (;;) {
        int timeout = -1;
        if (deadline >= 0) {
            double left = deadline - now_ms();
            if (left <= 0)
                return 0;
            timeout = (int)left + 1;
        }
        int r = poll(pfd, (nfds_t)nfds, timeout);
        if (r < 0 && errno != EINTR)
            return 3;
        for (int i = 0; r > 0 && i < nfds; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            int c = accept(pfd[i].fd, NULL, NULL);
            if (c < 0)
                continue;
            size_t off = 0;
            while (off < rlen) {
                ssize_t w = write(c, report + off, rlen - off);
                if (w < 0 && errno == EAGAIN) {
                    struct pollfd wp = { c, POLLOUT, 0 };
                    poll(&wp, 1, 1000);
                    continue;
                }
                if (w <= 0)
                    break;
                off += (size_t)w;
            }
            close(c);
        }
    }
}
