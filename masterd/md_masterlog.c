/*
 * md_masterlog.c — receivers for `server-log = masterlog,PATH` (md_masterlog.h).
 *
 * Each datagram is one whole line formatted by the sending server; it is appended to masterd's
 * own log target as it arrives, so ordering is arrival order and lines never interleave.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <ev.h>
#include "md_masterlog.h"
#include "zs_log.h"
#include "zserver.h"

typedef struct receiver {
    struct receiver *next;
    char *path;
    int fd;
    ev_io w;
    dev_t dev;          /* the socket file we made, to notice it being removed or replaced */
    ino_t ino;
    int old_fd;         /* the previous socket after a re-creation (senders still connected), or -1 */
    ev_io old_w;
} receiver;

static receiver *receivers;

static void recv_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    char buf[8192];
    for (int i = 0; i < 64; i++) { /* bounded: other watchers get their turn */
        ssize_t n = recv(w->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0)
            return;
        while (n > 0 && buf[n - 1] == '\n')
            n--;
        if (n > 0)
            zs_log_emit(ZLOG_INFO, buf, (size_t)n);
    }
}

static const char *masterlog_path(const char *target)
{
    return target && !strncmp(target, "masterlog,", 10) ? target + 10 : NULL;
}

/* Binds a datagram socket at path (replacing a stale socket file); fills *st with the file. */
static int open_receiver(const char *path, struct stat *made, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct stat st;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "masterlog,%s: path too long for a unix socket", path);
        return -1;
    }
    strcpy(sun.sun_path, path);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "masterlog,%s: exists and is not a socket", path);
            return -1;
        }
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "masterlog socket: %s", strerror(errno));
        return -1;
    }
    int rcvbuf = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)); /* best effort: absorbs bursts */
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(path, 0666) < 0 || lstat(path, made) < 0) {
        snprintf(err, errlen, "masterlog,%s: bind: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int md_masterlog_sync(struct ev_loop *loop, const md_set *set, char *err, size_t errlen)
{
    for (int i = 0; i < set->n; i++) {
        const char *path = masterlog_path(set->v[i]->svc.log);
        if (!path)
            continue;
        receiver *r;
        for (r = receivers; r; r = r->next)
            if (!strcmp(r->path, path))
                break;
        if (r)
            continue;
        struct stat st;
        int fd = open_receiver(path, &st, err, errlen);
        if (fd < 0)
            return -1;
        r = zs_xcalloc(1, sizeof(*r));
        r->path = zs_xstrdup(path);
        r->fd = fd;
        r->dev = st.st_dev;
        r->ino = st.st_ino;
        r->old_fd = -1;
        ev_io_init(&r->w, recv_cb, fd, EV_READ);
        ev_io_start(loop, &r->w);
        ev_init(&r->old_w, recv_cb);
        r->next = receivers;
        receivers = r;
    }
    md_masterlog_reopen(loop);
    return 0;
}

void md_masterlog_reopen(struct ev_loop *loop)
{
    char err[600];
    for (receiver *r = receivers; r; r = r->next) {
        struct stat st;
        if (lstat(r->path, &st) == 0 && st.st_dev == r->dev && st.st_ino == r->ino)
            continue;
        int fd = open_receiver(r->path, &st, err, sizeof(err));
        if (fd < 0) {
            zerror("re-creating %s (its file is gone): %s", r->path, err);
            continue;
        }
        zwarning("masterlog,%s: the socket file was removed or replaced; made a new one", r->path);
        if (r->old_fd >= 0) {
            ev_io_stop(loop, &r->old_w);
            close(r->old_fd);
        }
        ev_io_stop(loop, &r->w);
        r->old_fd = r->fd;
        ev_io_set(&r->old_w, r->old_fd, EV_READ);
        ev_io_start(loop, &r->old_w);
        r->fd = fd;
        r->dev = st.st_dev;
        r->ino = st.st_ino;
        ev_io_set(&r->w, fd, EV_READ);
        ev_io_start(loop, &r->w);
    }
}

void md_masterlog_close_all(struct ev_loop *loop)
{
    while (receivers) {
        receiver *r = receivers;
        receivers = r->next;
        ev_io_stop(loop, &r->w);
        close(r->fd);
        if (r->old_fd >= 0) {
            ev_io_stop(loop, &r->old_w);
            close(r->old_fd);
        }
        /* Only the file we made: another process may have put its own there since. */
        struct stat st;
        if (lstat(r->path, &st) == 0 && st.st_dev == r->dev && st.st_ino == r->ino)
            unlink(r->path);
        free(r->path);
        free(r);
    }
}
