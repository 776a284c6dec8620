/*
 * md_masterlog.c — receivers for `server-log = masterlog,PATH` (md_masterlog.h).
 *
 * Each datagram becomes one line of masterd's own log, in arrival order, so lines never
 * interleave.  The line is masterd's, not the sender's: it starts with a stamp made from the
 * sender's kernel credentials (SO_PASSCRED) — `[SERVICE pid PID] ` for a process masterd runs,
 * `[pid PID uid UID] ` for anyone else — and control characters in the datagram (a newline
 * above all, C1 controls, bytes that are not UTF-8) are escaped by zs_escape_line, as a
 * child's output lines are (md_relay.c), so nothing a sender writes can look like a line of
 * masterd's or drive the terminal of whoever reads the log.
 * Who may send at all is the socket's mode: 0600 when every service logging there runs as
 * masterd's user (or root), else 0660 with a group all their server-users are in.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <ev.h>
#include "md_masterlog.h"
#include "core/zs_escape.h"
#include "core/zs_listen.h"
#include "core/zs_log.h"
#include "core/zs_status.h"
#include "core/zserver_core.h"

/* Who may send to a receiver: masterd's user (and root) only, mode 0600; or also a group all
 * the services' server-users are in, mode 0660. */
enum senders { SENDERS_OWNER, SENDERS_GROUP };

typedef struct receiver {
    struct receiver *next;
    char *path;
    int fd;
    ev_io w;
    dev_t dev;          /* the socket file we made, to notice it being removed or replaced */
    ino_t ino;
    enum senders senders; /* who may send: the socket's mode (and group gid) */
    gid_t gid;
    int old_fd;         /* the previous socket after a re-creation (senders still connected), or -1 */
    ev_io old_w;
} receiver;

/* Who may send to one path, computed from the services that log there. */
typedef struct access {
    const char *path;
    enum senders senders;
    gid_t gid;
} access_t;

static receiver *receivers;
static const char *(*pid_service)(pid_t pid);

void md_masterlog_set_lookup(const char *(*fn)(pid_t pid))
{
    pid_service = fn;
}

static void recv_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    char buf[8192], out[8192];
    union {
        struct cmsghdr h;
        /* Room for as many descriptors as one message can carry (SCM_MAX_FD): what does not fit
         * would be closed by the kernel in our context, lingering if it is a TCP socket. */
        char b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(253 * sizeof(int))];
    } ctl;
    for (int i = 0; i < 64; i++) { /* bounded: other watchers get their turn */
        struct iovec iov = { buf, sizeof(buf) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
        ssize_t n = recvmsg(w->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0)
            return;
        struct ucred cr;
        int have = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
                c->cmsg_len >= CMSG_LEN(sizeof(cr))) {
                memcpy(&cr, CMSG_DATA(c), sizeof(cr));
                have = 1;
            }
        }
        (void)zs_status_take_fds(&mh, 0); /* nobody sends us fds: dropped, never a lingering close */
        while (n > 0 && buf[n - 1] == '\n')
            n--;
        if (n == 0)
            continue;
        const char *id = have && pid_service ? pid_service(cr.pid) : NULL;
        int o;
        if (id)
            o = snprintf(out, sizeof(out), "[%s pid %ld] ", id, (long)cr.pid);
        else if (have)
            o = snprintf(out, sizeof(out), "[pid %ld uid %ld] ", (long)cr.pid, (long)cr.uid);
        else
            o = snprintf(out, sizeof(out), "[unknown sender] ");
        if (o < 0 || (size_t)o >= sizeof(out))
            continue;
        out[o] = '\0';
        md_masterlog_emit(out, buf, (size_t)n);
    }
}

void md_masterlog_emit(const char *stamp, const char *text, size_t n)
{
    char out[8192 + 200];
    size_t o = strlen(stamp);
    if (o >= 200)
        o = 0;
    memcpy(out, stamp, o);
    size_t len = o + zs_escape_line(out + o, sizeof(out) - o, text, n);
    zs_log_emit(ZLOG_INFO, out, len);
}

static const char *masterlog_path(const char *target)
{
    return target && !strncmp(target, "masterlog,", 10) ? target + 10 : NULL;
}

/* A socket file at path that answers (a datagram or a stream peer) belongs to a live process;
 * so does a stream listener too busy to take us (EAGAIN: the probe never waits). */
static int socket_in_use(const struct sockaddr_un *sun)
{
    static const int types[] = { SOCK_DGRAM, SOCK_STREAM, SOCK_SEQPACKET };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return 0;
        int rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
        int e = errno;
        close(fd);
        if (rc == 0 || e == EAGAIN || e == EINPROGRESS)
            return 1;
        if (e != EPROTOTYPE)
            return 0; /* ECONNREFUSED: stale */
    }
    return 0;
}

/* The listen entry of set bound at path (however either was spelled), or NULL: a masterlog
 * socket there would replace it. */
static const zs_listen *listener_at(const md_set *set, const char *path)
{
    char why[PATH_MAX + 64];
    char *canon = zs_path_canonical(path, why, sizeof(why));
    const zs_listen *found = NULL;
    for (int i = 0; i < set->n && !found; i++)
        for (int k = 0; k < set->v[i]->svc.nlisten && !found; k++) {
            const zs_listen *l = &set->v[i]->svc.listen[k];
            const char *bound = zs_listen_bound_path(l);
            if (bound && (!strcmp(l->path, path) || (canon && !strcmp(bound, canon))))
                found = l;
        }
    free(canon);
    return found;
}

/* Binds a datagram socket at path with its mode set by the umask at bind and its group by our
 * egid at bind (no chmod/chown of a path a swap could redirect); fills *made with the file.
 * A socket file already there is replaced when it is ours (the file we made before, as *ours;
 * NULL: none) or stale; one a live process answers on is an error.  Returns the fd, or -1. */
static int open_receiver(const char *path, enum senders senders, gid_t gid, const struct stat *ours,
                         struct stat *made, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct stat st;
    char why[PATH_MAX + 200];
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "masterlog,%s: path too long for a unix socket", path);
        return -1;
    }
    if (zs_path_dir_check(path, (uid_t)-1, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "masterlog,%s: %s: another user could replace the socket", path, why);
        return -1;
    }
    strcpy(sun.sun_path, path);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "masterlog,%s: exists and is not a socket", path);
            return -1;
        }
        int mine = ours && st.st_dev == ours->st_dev && st.st_ino == ours->st_ino;
        if (!mine && socket_in_use(&sun)) {
            snprintf(err, errlen, "masterlog,%s: is in use by another process (not removing it)", path);
            return -1;
        }
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "masterlog socket: %s", strerror(errno));
        return -1;
    }
    int one = 1, rcvbuf = 1 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
        snprintf(err, errlen, "masterlog,%s: SO_PASSCRED: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)); /* best effort: absorbs bursts */
    /* A sender's SCM_RIGHTS fails (EPERM) where the kernel has SO_PASSRIGHTS; elsewhere
     * recv_cb drops what arrives without lingering. */
    (void)zs_status_refuse_fds(fd);
    gid_t egid = getegid();
    int switch_gid = senders == SENDERS_GROUP && gid != egid;
    if (switch_gid && setegid(gid) < 0) {
        snprintf(err, errlen, "masterlog,%s: setegid(%ld): %s", path, (long)gid, strerror(errno));
        close(fd);
        return -1;
    }
    mode_t old = umask(senders == SENDERS_GROUP ? 0117 : 0177);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    int e = errno;
    umask(old);
    if (switch_gid && setegid(egid) < 0) {
        /* Root going back to its own group cannot fail; if it did, stop before doing more. */
        zfatal("masterlog,%s: setegid(%ld) back: %s", path, (long)egid, strerror(errno));
    }
    if (rc < 0 || lstat(path, made) < 0) {
        snprintf(err, errlen, "masterlog,%s: bind: %s", path, strerror(rc < 0 ? e : errno));
        close(fd);
        return -1;
    }
    if (senders == SENDERS_GROUP && made->st_gid != gid) {
        snprintf(err, errlen, "masterlog,%s: the socket got group %ld, not %ld (a set-group-ID directory?)", path,
                 (long)made->st_gid, (long)gid);
        unlink(path);
        close(fd);
        return -1;
    }
    return fd;
}

/* The groups of user (primary gid first); *n their count.  NULL on failure. */
static gid_t *groups_of(const char *user, gid_t gid, int *n)
{
    int ng = 32;
    gid_t *g = zs_xcalloc((size_t)ng, sizeof(gid_t));
    if (getgrouplist(user, gid, g, &ng) < 0) {
        g = zs_xrealloc(g, (size_t)ng * sizeof(gid_t));
        if (getgrouplist(user, gid, g, &ng) < 0) {
            free(g);
            return NULL;
        }
    }
    *n = ng;
    return g;
}

/* Who may send to path: every server-user (other than root and masterd's user) of the
 * services logging there must be in the socket's group.  0, or -1 with err. */
static int access_for(const md_set *set, const char *path, access_t *a, char *err, size_t errlen)
{
    gid_t *common = NULL;
    int ncommon = 0, any = 0;
    char users[400] = "";
    size_t ulen = 0;
    a->path = path;
    a->senders = SENDERS_OWNER;
    a->gid = getegid();
    for (int i = 0; i < set->n; i++) {
        const zs_service *svc = &set->v[i]->svc;
        const char *p = masterlog_path(svc->log);
        if (!p || strcmp(p, path) || !svc->user || svc->uid == 0 || svc->uid == geteuid())
            continue;
        int ng = 0;
        gid_t *g = groups_of(svc->user, svc->gid, &ng);
        if (!g) {
            snprintf(err, errlen, "masterlog,%s: the groups of %s (server-user of %s): %s", path, svc->user, svc->id,
                     strerror(errno));
            free(common);
            return -1;
        }
        if (ulen < sizeof(users))
            ulen += (size_t)snprintf(users + ulen, sizeof(users) - ulen, "%s%s (%s)", any ? ", " : "", svc->id,
                                     svc->user);
        if (!any) {
            common = g;
            ncommon = ng;
            any = 1;
            continue;
        }
        int keep = 0;
        for (int k = 0; k < ncommon; k++)
            for (int j = 0; j < ng; j++)
                if (common[k] == g[j]) {
                    common[keep++] = common[k];
                    break;
                }
        ncommon = keep;
        free(g);
    }
    if (!any)
        return 0;
    if (ncommon == 0) {
        snprintf(err, errlen, "masterlog,%s: its services run as users with no group in common (%s): give them "
                 "one group, or each user a masterlog path of its own", path, users);
        free(common);
        return -1;
    }
    a->senders = SENDERS_GROUP;
    a->gid = common[0];
    free(common);
    return 0;
}

/* Replaces r's socket with a new one made with r's access; the old one is still read until the
 * next replacement, for senders connected to it. */
static int replace_socket(struct ev_loop *loop, receiver *r, char *err, size_t errlen)
{
    struct stat st;
    struct stat ours = { .st_dev = r->dev, .st_ino = r->ino };
    int fd = open_receiver(r->path, r->senders, r->gid, &ours, &st, err, errlen);
    if (fd < 0)
        return -1;
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
    return 0;
}

int md_masterlog_check(const md_set *set, zs_errs *errs)
{
    char err[PATH_MAX + 600], why[PATH_MAX + 200];
    size_t before = errs->n;
    for (int i = 0; i < set->n; i++) {
        const char *path = masterlog_path(set->v[i]->svc.log);
        int seen = 0;
        for (int k = 0; path && k < i && !seen; k++) {
            const char *q = masterlog_path(set->v[k]->svc.log);
            seen = q && !strcmp(q, path);
        }
        if (!path || seen)
            continue;
        access_t a;
        const zs_kv *kv = zs_config_find(&set->v[i]->cf, "server-log");
        char where[PATH_MAX + 32];
        snprintf(where, sizeof(where), "%s:%d", kv ? kv->file : set->v[i]->svc.id, kv ? kv->line : 0);
        const zs_listen *l = listener_at(set, path);
        if (l)
            zs_errs_add(errs, "%s: server-log: masterlog,%s: is also a listening socket (%s)", where, path,
                        l->where ? l->where : l->text);
        else if (access_for(set, path, &a, err, sizeof(err)) < 0)
            zs_errs_add(errs, "%s: server-log: %s", where, err);
        else if (zs_path_dir_check(path, (uid_t)-1, why, sizeof(why)) < 0)
            zs_errs_add(errs, "%s: server-log: masterlog,%s: %s: another user could replace the socket", where,
                        path, why);
    }
    return errs->n == before ? 0 : -1;
}

int md_masterlog_sync(struct ev_loop *loop, const md_set *set, char *err, size_t errlen)
{
    /* Every path's access first: a refused one changes nothing. */
    access_t *acc = zs_xcalloc((size_t)set->n + 1, sizeof(*acc));
    int nacc = 0;
    for (int i = 0; i < set->n; i++) {
        const char *path = masterlog_path(set->v[i]->svc.log);
        int seen = 0;
        for (int k = 0; path && k < nacc && !seen; k++)
            seen = !strcmp(acc[k].path, path);
        if (!path || seen)
            continue;
        const zs_listen *l = listener_at(set, path);
        if (l) {
            snprintf(err, errlen, "server-log: masterlog,%s: is also a listening socket (%s)", path,
                     l->where ? l->where : l->text);
            free(acc);
            return -1;
        }
        if (access_for(set, path, &acc[nacc], err, errlen) < 0) {
            free(acc);
            return -1;
        }
        nacc++;
    }
    int rc = 0;
    for (int k = 0; k < nacc && rc == 0; k++) {
        receiver *r;
        for (r = receivers; r; r = r->next)
            if (!strcmp(r->path, acc[k].path))
                break;
        if (r) {
            if (r->senders == acc[k].senders && r->gid == acc[k].gid)
                continue;
            enum senders was = r->senders;
            gid_t was_gid = r->gid;
            r->senders = acc[k].senders;
            r->gid = acc[k].gid;
            if (replace_socket(loop, r, err, errlen) < 0) {
                r->senders = was;
                r->gid = was_gid;
                rc = -1;
            }
            continue;
        }
        struct stat st;
        int fd = open_receiver(acc[k].path, acc[k].senders, acc[k].gid, NULL, &st, err, errlen);
        if (fd < 0) {
            rc = -1;
            break;
        }
        r = zs_xcalloc(1, sizeof(*r));
        r->path = zs_xstrdup(acc[k].path);
        r->fd = fd;
        r->dev = st.st_dev;
        r->ino = st.st_ino;
        r->senders = acc[k].senders;
        r->gid = acc[k].gid;
        r->old_fd = -1;
        ev_io_init(&r->w, recv_cb, fd, EV_READ);
        ev_io_start(loop, &r->w);
        ev_init(&r->old_w, recv_cb);
        r->next = receivers;
        receivers = r;
    }
    free(acc);
    if (rc == 0)
        md_masterlog_reopen(loop);
    return rc;
}

void md_masterlog_reopen(struct ev_loop *loop)
{
    char err[PATH_MAX + 600];
    for (receiver *r = receivers; r; r = r->next) {
        struct stat st;
        if (lstat(r->path, &st) == 0 && st.st_dev == r->dev && st.st_ino == r->ino)
            continue;
        if (replace_socket(loop, r, err, sizeof(err)) < 0) {
            zerror("re-creating %s (its file is gone): %s", r->path, err);
            continue;
        }
        zwarning("masterlog,%s: the socket file was removed or replaced; made a new one", r->path);
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
