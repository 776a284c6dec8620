/*
 * zs_listen.c — listen entries: parsing (`[NAME://]ADDRESS`, CONTRACT §3) and binding.
 *
 * Parsing is strict and does no DNS: an address is numeric or it is an error.  Binding is done
 * by masterd (or a program run `alone`): SO_REUSEADDR, IPV6_V6ONLY on IPv6 sockets (so `0:25`
 * and `[::]:25` can both be listed, as nginx does), close-on-exec; a unix socket file is only
 * ever removed when it is a socket nobody accepts on.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "zs_listen.h"
#include "zserver_core.h"

#define UNIX_PATH_MAX_LEN (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

static int parse_port(const char *s, int *port, char *why, size_t whylen)
{
    if (!*s) {
        snprintf(why, whylen, "missing port");
        return -1;
    }
    if (strspn(s, "0123456789") != strlen(s)) {
        snprintf(why, whylen, "bad port '%s' (a number 1..65535)", s);
        return -1;
    }
    long v = strlen(s) > 5 ? 0 : strtol(s, NULL, 10);
    if (v < 1 || v > 65535) {
        snprintf(why, whylen, "port %s out of range 1..65535", s);
        return -1;
    }
    *port = (int)v;
    return 0;
}

static int valid_name(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* The canonical form of a path for duplicate detection: the real parent directory plus the
 * last component (the socket itself may not exist yet).  NULL with why when the parent is
 * missing. */
static char *canonical_path(const char *path, char *why, size_t whylen)
{
    char *copy = zs_xstrdup(path);
    char *slash = strrchr(copy, '/');
    const char *dir = ".", *base = copy;
    if (slash) {
        *slash = '\0';
        dir = slash == copy ? "/" : copy;
        base = slash + 1;
    }
    if (!*base) {
        snprintf(why, whylen, "'%s' names a directory, not a socket", path);
        free(copy);
        return NULL;
    }
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(dir, real) || stat(real, &st) < 0) {
        if (errno == ENOENT)
            snprintf(why, whylen, "directory '%s' does not exist", dir);
        else
            snprintf(why, whylen, "directory '%s': %s", dir, strerror(errno));
        free(copy);
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, whylen, "'%s' is not a directory", dir);
        free(copy);
        return NULL;
    }
    char *out = zs_xasprintf("%s/%s", strcmp(real, "/") ? real : "", base);
    free(copy);
    return out;
}

static int parse_path(const char *path, int kind, zs_listen *out, char *why, size_t whylen)
{
    if (!*path) {
        snprintf(why, whylen, "empty path");
        return -1;
    }
    if (strlen(path) > UNIX_PATH_MAX_LEN) {
        snprintf(why, whylen, "path too long for a unix socket (%zu characters, at most %zu)", strlen(path),
                 UNIX_PATH_MAX_LEN);
        return -1;
    }
    char *canon = canonical_path(path, why, whylen);
    if (!canon)
        return -1;
    out->kind = kind;
    out->path = zs_xstrdup(path);
    out->key = zs_xasprintf("%s:%s", kind == ZS_LISTEN_FIFO ? "fifo" : "unix", canon);
    free(canon);
    if (kind == ZS_LISTEN_UNIX) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&out->sa;
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, path, strlen(path) + 1);
        out->salen = (socklen_t)sizeof(*sun);
    }
    return 0;
}

static int parse_inet(const char *addr, zs_listen *out, char *why, size_t whylen)
{
    char host[INET6_ADDRSTRLEN + 8], buf[INET6_ADDRSTRLEN];
    const char *port_s;
    int port, v6 = 0;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb) {
            snprintf(why, whylen, "missing ']' after an IPv6 address");
            return -1;
        }
        if (rb[1] != ':') {
            snprintf(why, whylen, "expected ':PORT' after ']'");
            return -1;
        }
        if ((size_t)(rb - addr - 1) >= sizeof(host)) {
            snprintf(why, whylen, "bad IPv6 address '%.*s'", (int)(rb - addr - 1), addr + 1);
            return -1;
        }
        memcpy(host, addr + 1, (size_t)(rb - addr - 1));
        host[rb - addr - 1] = '\0';
        port_s = rb + 2;
        v6 = 1;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon) {
            snprintf(why, whylen, "expected HOST:PORT, [IPV6]:PORT or a unix socket path");
            return -1;
        }
        if (memchr(addr, ':', (size_t)(colon - addr))) {
            snprintf(why, whylen, "an IPv6 address needs brackets: [ADDRESS]:PORT");
            return -1;
        }
        if ((size_t)(colon - addr) >= sizeof(host)) {
            snprintf(why, whylen, "bad address '%.*s'", (int)(colon - addr), addr);
            return -1;
        }
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        port_s = colon + 1;
    }
    if (parse_port(port_s, &port, why, whylen) < 0)
        return -1;
    if (v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
            snprintf(why, whylen, "bad IPv6 address '%s'", host);
            return -1;
        }
        out->kind = ZS_LISTEN_INET6;
        out->salen = (socklen_t)sizeof(*s6);
        inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf));
        out->key = zs_xasprintf("inet6:[%s]:%d", buf, port);
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)&out->sa;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (!*host || !strcmp(host, "0")) {
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
        if (strspn(host, "0123456789.") == strlen(host))
            snprintf(why, whylen, "bad IPv4 address '%s'", host);
        else
            snprintf(why, whylen, "'%s' is not a numeric address (host names are not resolved at start-up)", host);
        return -1;
    }
    out->kind = ZS_LISTEN_INET;
    out->salen = (socklen_t)sizeof(*s4);
    inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf));
    out->key = zs_xasprintf("inet:%s:%d", buf, port);
    return 0;
}

int zs_listen_parse(const char *entry, const char *default_name, zs_listen *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    const char *addr = entry, *sep = strstr(entry, "://");
    size_t nlen = 0;
    if (sep) {
        nlen = (size_t)(sep - entry);
        if (!valid_name(entry, nlen)) {
            snprintf(why, whylen, "bad service name '%.*s' (letters, digits, '-', '_', '.')", (int)nlen, entry);
            return -1;
        }
        addr = sep + 3;
    }
    if (!*addr) {
        snprintf(why, whylen, "missing address");
        return -1;
    }
    int rc;
    if (!strncmp(addr, "local:", 6))
        rc = parse_path(addr + 6, ZS_LISTEN_UNIX, out, why, whylen);
    else if (!strncmp(addr, "fifo:", 5))
        rc = parse_path(addr + 5, ZS_LISTEN_FIFO, out, why, whylen);
    else if (strchr(addr, '/'))
        rc = parse_path(addr, ZS_LISTEN_UNIX, out, why, whylen);
    else
        rc = parse_inet(addr, out, why, whylen);
    if (rc < 0) {
        zs_listen_free(out);
        return -1;
    }
    out->name = sep ? zs_xasprintf("%.*s", (int)nlen, entry) : zs_xstrdup(default_name);
    out->text = zs_xstrdup(entry);
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        s[--len] = '\0';
    return s;
}

int zs_listen_parse_list(const char *list, const char *default_name, const char *where,
                         zs_listen **v, int *n, zs_errs *errs)
{
    char *copy = zs_xstrdup(list), *save = NULL, why[300];
    int bad = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *e = trim(tok);
        if (!*e)
            continue;
        zs_listen l;
        if (zs_listen_parse(e, default_name, &l, why, sizeof(why)) < 0) {
            if (where)
                zs_errs_add(errs, "%s: server-service: '%s': %s", where, e, why);
            else
                zs_errs_add(errs, "server-service: '%s': %s", e, why);
            bad = 1;
            continue;
        }
        l.where = where ? zs_xstrdup(where) : NULL;
        *v = zs_xrealloc(*v, (size_t)(*n + 1) * sizeof(zs_listen));
        (*v)[(*n)++] = l;
    }
    free(copy);
    return bad ? -1 : 0;
}

void zs_listen_free(zs_listen *l)
{
    free(l->name);
    free(l->text);
    free(l->key);
    free(l->path);
    free(l->where);
    memset(l, 0, sizeof(*l));
}

void zs_listen_free_array(zs_listen *v, int n)
{
    for (int i = 0; i < n; i++)
        zs_listen_free(&v[i]);
    free(v);
}

/* Why dir (a directory) would let a user other than root, masterd's euid or allow_uid replace
 * what we create in it, or NULL when it would not.  A sticky directory keeps others from
 * renaming or removing a file they do not own, so only its owner counts. */
static const char *dir_unsafe(const char *dir, uid_t allow_uid, char *why, size_t whylen)
{
    struct stat st;
    if (stat(dir, &st) < 0) {
        snprintf(why, whylen, "directory %s: %s", dir, strerror(errno));
        return why;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid() && st.st_uid != allow_uid) {
        snprintf(why, whylen, "directory %s is owned by uid %ld, not by root, masterd's user or the service's user",
                 dir, (long)st.st_uid);
        return why;
    }
    unsigned m = (unsigned)(st.st_mode & 07777);
    if (st.st_mode & S_ISVTX)
        return NULL;
    if (st.st_mode & S_IWOTH) {
        snprintf(why, whylen, "directory %s is writable by others (mode %04o) and not sticky", dir, m);
        return why;
    }
    if ((st.st_mode & S_IWGRP) && st.st_gid != 0 && st.st_gid != getegid()) {
        snprintf(why, whylen, "directory %s is writable by group %ld (mode %04o) and not sticky", dir,
                 (long)st.st_gid, m);
        return why;
    }
    return NULL;
}

/* Checks every directory from / down to abs_dir (an absolute path).  0, or -1 with why. */
static int chain_safe(const char *abs_dir, uid_t allow_uid, char *why, size_t whylen)
{
    char buf[PATH_MAX];
    size_t len = strlen(abs_dir);
    if (len >= sizeof(buf)) {
        snprintf(why, whylen, "directory path too long");
        return -1;
    }
    memcpy(buf, abs_dir, len + 1);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    if (dir_unsafe("/", allow_uid, why, whylen))
        return -1;
    for (size_t i = 1; i <= len; i++) {
        if (i < len && buf[i] != '/')
            continue;
        char save = buf[i];
        buf[i] = '\0';
        const char *bad = buf[i - 1] == '/' ? NULL : dir_unsafe(buf, allow_uid, why, whylen);
        buf[i] = save;
        if (bad)
            return -1;
    }
    return 0;
}

int zs_path_dir_check(const char *path, uid_t allow_uid, char *why, size_t whylen)
{
    char cwd[PATH_MAX], real[PATH_MAX], *abs;
    const char *slash = strrchr(path, '/');
    if (path[0] == '/') {
        abs = slash == path ? zs_xstrdup("/") : zs_xasprintf("%.*s", (int)(slash - path), path);
    } else {
        if (!getcwd(cwd, sizeof(cwd))) {
            snprintf(why, whylen, "getcwd: %s", strerror(errno));
            return -1;
        }
        abs = slash ? zs_xasprintf("%s/%.*s", cwd, (int)(slash - path), path) : zs_xstrdup(cwd);
    }
    /* The path as written (a symlink on the way lives in a directory checked before it), then
     * the directories it really resolves to. */
    int rc = chain_safe(abs, allow_uid, why, whylen);
    if (rc == 0) {
        if (!realpath(abs, real)) {
            snprintf(why, whylen, "directory %s: %s", abs, strerror(errno));
            rc = -1;
        } else {
            rc = chain_safe(real, allow_uid, why, whylen);
        }
    }
    free(abs);
    return rc;
}

int zs_listen_check_dir(const zs_listen *l, uid_t allow_uid, char *err, size_t errlen)
{
    char why[PATH_MAX + 200];
    if (l->kind != ZS_LISTEN_UNIX && l->kind != ZS_LISTEN_FIFO)
        return 0;
    if (zs_path_dir_check(l->path, allow_uid, why, sizeof(why)) == 0)
        return 0;
    if (l->where)
        snprintf(err, errlen, "%s: server-service: '%s': %s", l->where, l->text, why);
    else
        snprintf(err, errlen, "server-service: '%s': %s", l->text, why);
    return -1;
}

/* A socket file nobody accepts on is stale (its owner died); one that answers is in use. */
static int unix_prepare(const zs_listen *l, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(l->path, &st) < 0)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", l->text, strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s: '%s' exists and is not a socket (not removing it)", l->text, l->path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket: %s", l->text, strerror(errno));
        return -1;
    }
    int rc = connect(fd, (const struct sockaddr *)&l->sa, l->salen);
    int e = errno;
    close(fd);
    if (rc == 0) {
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
