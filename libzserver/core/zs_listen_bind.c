/*
 * zs_listen_bind.c — listen entries made into fds (zs_listen_bind, zs_listen_fd_type;
 * zs_listen.h).
 *
 * Binding is done by masterd (or a program run `alone`): SO_REUSEADDR, IPV6_V6ONLY on IPv6
 * sockets (so `0:25` and `[::]:25` can both be listed, as nginx does), close-on-exec,
 * non-blocking; a unix socket file is only ever removed when it is a socket nobody accepts on,
 * and neither a socket file nor a fifo is ever chmod'ed by path.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "zs_listen.h"
#include "zserver_core.h"

/* A socket file nobody accepts on is stale (its owner died); one that answers is in use.  The
 * probe never waits: a live listener whose backlog is full (EAGAIN) is in use too, and
 * whoever owns it cannot hold masterd in connect(). */
static int unix_prepare(const zs_listen *l, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(l->path, &st) < 0)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", l->text, strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s: '%s' exists and is not a socket (not removing it)", l->text, l->path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket: %s", l->text, strerror(errno));
        return -1;
    }
    int rc = connect(fd, (const struct sockaddr *)&l->sa, l->salen);
    int e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
        snprintf(err, errlen, "%s: '%s' is in use by another process", l->text, l->path);
        return -1;
    }
    if (e != ECONNREFUSED && e != ENOENT) {
        snprintf(err, errlen, "%s: '%s': %s", l->text, l->path, strerror(e));
        return -1;
    }
    if (unlink(l->path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "%s: removing stale socket '%s': %s", l->text, l->path, strerror(errno));
        return -1;
    }
    return 0;
}

/* A fifo is opened without following a symlink and its mode set on the fd, so whoever can
 * write its directory cannot make us open or chmod another file by swapping the path; a second
 * hard link to the fifo (somebody else's fifo linked here) is refused for the same reason. */
static int bind_fifo(const zs_listen *l, unsigned mode, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(l->path, &st) == 0 && !S_ISFIFO(st.st_mode)) {
        snprintf(err, errlen, "%s: '%s' exists and is not a fifo", l->text, l->path);
        return -1;
    }
    mode_t old = umask(0077);
    int rc = mkfifo(l->path, 0600);
    umask(old);
    if (rc < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: mkfifo: %s", l->text, strerror(errno));
        return -1;
    }
    int fd = open(l->path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ELOOP)
            snprintf(err, errlen, "%s: '%s' is a symlink (not following it)", l->text, l->path);
        else if (errno == ENXIO || errno == EISDIR)
            snprintf(err, errlen, "%s: '%s' exists and is not a fifo", l->text, l->path);
        else
            snprintf(err, errlen, "%s: open: %s", l->text, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s: fstat: %s", l->text, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISFIFO(st.st_mode)) {
        snprintf(err, errlen, "%s: '%s' exists and is not a fifo", l->text, l->path);
        close(fd);
        return -1;
    }
    if (st.st_nlink != 1) {
        snprintf(err, errlen, "%s: '%s' has %lu hard links (a fifo linked from elsewhere is not ours to chmod)",
                 l->text, l->path, (unsigned long)st.st_nlink);
        close(fd);
        return -1;
    }
    if (fchmod(fd, (mode_t)(mode & 07777)) < 0) {
        snprintf(err, errlen, "%s: fchmod: %s", l->text, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* A unix socket's file gets its mode from the umask at bind(): no chmod(path) afterwards,
 * which would follow a symlink put there in between (fchmod on a socket changes the socket,
 * not its file).  Only the permission bits apply to a socket.  The umask is process-wide, so
 * this must run while no other thread creates files: masterd is single-threaded, and a
 * program run alone binds before it starts any thread. */
static int bind_unix(int fd, const zs_listen *l, unsigned mode)
{
    mode_t old = umask((mode_t)(~mode & 0777));
    int rc = bind(fd, (const struct sockaddr *)&l->sa, l->salen);
    int e = errno;
    umask(old);
    errno = e;
    return rc;
}

int zs_listen_bind(const zs_listen *l, int backlog, unsigned mode, char *err, size_t errlen)
{
    if (l->kind == ZS_LISTEN_FIFO)
        return bind_fifo(l, mode, err, errlen);
    if (l->kind == ZS_LISTEN_UNIX && unix_prepare(l, err, errlen) < 0)
        return -1;
    int fd = socket(l->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket: %s", l->text, strerror(errno));
        return -1;
    }
    int one = 1;
    if (l->kind != ZS_LISTEN_UNIX && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        goto fail;
    if (l->kind == ZS_LISTEN_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;
    if (l->kind == ZS_LISTEN_UNIX ? bind_unix(fd, l, mode) < 0
                                  : bind(fd, (const struct sockaddr *)&l->sa, l->salen) < 0)
        goto fail;
    if (listen(fd, backlog) < 0)
        goto fail;
    return fd;
fail:
    snprintf(err, errlen, "%s: cannot listen: %s", l->text, strerror(errno));
    close(fd);
    return -1;
}

int zs_listen_fd_type(int fd)
{
    struct stat st;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (fstat(fd, &st) < 0)
        return -1;
    if (S_ISFIFO(st.st_mode))
        return zvar_tcp_listen_type_fifo;
    if (!S_ISSOCK(st.st_mode) || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_UNIX)
        return zvar_tcp_listen_type_unix;
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
        return zvar_tcp_listen_type_inet;
    return -1;
}
