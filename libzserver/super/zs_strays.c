/*
 * zs_strays.c — find the strays of this process (zs_strays.h).
 *
 * The kernel lists each thread's children in /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN),
 * which costs what the answer is worth; without it, one pass over every /proc/PID/stat.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "zs_strays.h"
#include "core/zs_err.h"
#include "core/zserver_core.h"

typedef struct pidv {
    pid_t *v;
    size_t n, cap;
} pidv;

static void pidv_add(pidv *p, pid_t pid)
{
    if (p->n == p->cap)
        p->v = zs_xrealloc(p->v, (p->cap = p->cap ? p->cap * 2 : 64) * sizeof(pid_t));
    p->v[p->n++] = pid;
}

static char *read_small(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = zs_xcalloc(cap, 1);
    for (;;) {
        if (n + 1 >= cap)
            buf = zs_xrealloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Appends the children of every thread of pid to out (nothing when pid is gone). */
static void children_of(pid_t pid, pidv *out)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char file[320];
        size_t len;
        snprintf(file, sizeof(file), "/proc/%ld/task/%s/children", (long)pid, e->d_name);
        char *buf = read_small(file, &len);
        if (!buf)
            continue;
        for (char *p = buf, *end; *p; p = end) {
            long v = strtol(p, &end, 10);
            if (end == p)
                break;
            if (v > 0)
                pidv_add(out, (pid_t)v);
        }
        free(buf);
    }
    closedir(d);
}

/* ppid of a live (non-zombie) process, or -1 (gone, a zombie, or unreadable). */
static pid_t read_ppid(const char *name)
{
    char path[320];
    size_t len;
    snprintf(path, sizeof(path), "/proc/%s/stat", name);
    char *buf = read_small(path, &len);
    if (!buf)
        return -1;
    /* "pid (comm) S ppid ...": comm may hold blanks and ')', so parse after the last ')'. */
    char *rp = strrchr(buf, ')');
    pid_t ppid = -1;
    if (rp && rp[1] == ' ' && rp[2] && rp[2] != 'Z' && rp[2] != 'X')
        ppid = (pid_t)strtol(rp + 4, NULL, 10);
    free(buf);
    return ppid;
}

double zs_strays_age(pid_t pid)
{
    char path[64];
    size_t len;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    char *buf = read_small(path, &len);
    if (!buf)
        return -1;
    /* starttime is field 22: the 20th after "pid (comm)" (comm parsed past its last ')'). */
    char *rp = strrchr(buf, ')'), *q = rp ? rp + 1 : NULL;
    for (int field = 3; q && field < 22; field++)
        q = strchr(q + 1, ' ');
    double start = q ? strtod(q + 1, NULL) / (double)sysconf(_SC_CLK_TCK) : -1;
    free(buf);
    struct timespec up;
    if (start < 0 || clock_gettime(CLOCK_BOOTTIME, &up) < 0)
        return -1;
    return (double)up.tv_sec + up.tv_nsec / 1e9 - start;
}

/* The fallback: every (pid, ppid) of the system. */
static int scan_all(pidv *pids, pidv *ppids)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        pid_t ppid = read_ppid(e->d_name);
        if (ppid < 0)
            continue;
        pidv_add(pids, (pid_t)strtol(e->d_name, NULL, 10));
        pidv_add(ppids, ppid);
    }
    closedir(d);
    return 0;
}

int zs_strays_find(int (*is_supervised)(pid_t pid, void *ctx), void *ctx, pid_t *out, size_t max)
{
    pidv found = { 0 }, kids = { 0 };
    int rc = 0;
    char self_children[96];
    snprintf(self_children, sizeof(self_children), "/proc/%ld/task/%ld/children", (long)getpid(), (long)getpid());
    /* ZS_STRAYS_SCAN=1 takes the fallback even where children files exist (tests use it). */
    const char *force = getenv("ZS_STRAYS_SCAN");
    if ((!force || strcmp(force, "1")) && access(self_children, R_OK) == 0) {
        children_of(getpid(), &kids);
        for (size_t i = 0; i < kids.n; i++)
            if (!is_supervised(kids.v[i], ctx))
                pidv_add(&found, kids.v[i]);
        /* Breadth first below the strays; a process is listed under one parent only. */
        for (size_t i = 0; i < found.n && found.n < 65536; i++) {
            pidv sub = { 0 };
            children_of(found.v[i], &sub);
            for (size_t j = 0; j < sub.n; j++)
                pidv_add(&found, sub.v[j]);
            free(sub.v);
        }
    } else {
        pidv pids = { 0 }, ppids = { 0 };
        if (scan_all(&pids, &ppids) < 0) {
            rc = -1;
        } else {
            pid_t self = getpid();
            for (size_t i = 0; i < pids.n; i++)
                if (ppids.v[i] == self && !is_supervised(pids.v[i], ctx))
                    pidv_add(&found, pids.v[i]);
            for (size_t k = 0; k < found.n; k++)
                for (size_t i = 0; i < pids.n; i++)
                    if (ppids.v[i] == found.v[k])
                        pidv_add(&found, pids.v[i]);
        }
        free(pids.v);
        free(ppids.v);
    }
    free(kids.v);
    if (rc == 0) {
        for (size_t i = 0; i < found.n && i < max; i++)
            out[i] = found.v[i];
        rc = (int)found.n;
    }
    free(found.v);
    return rc;
}
