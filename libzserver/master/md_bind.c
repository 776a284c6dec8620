/*
 * md_bind.c — the listening sockets a service set holds (md_set.h): one table of bound
 * listeners shared by every set that runs (a reload's new set takes over what it keeps, by
 * reference count), binding all or nothing, what a reload changes about a kept socket
 * (backlog, mode), and the directory checks a unix socket or fifo needs before it is made.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "md_set.h"
#include "core/zserver_core.h"

static md_listener *table_find(md_listener *t, const char *key)
{
    for (; t; t = t->next)
        if (!strcmp(t->l.key, key))
            return t;
    return NULL;
}

static void listener_close(md_listener *li)
{
    close(li->fd);
    /* The socket file is ours: we created it when we bound.  A fifo is removed only when we
     * created it; one that was there before belongs to whoever made it. */
    if ((li->l.kind == ZS_LISTEN_UNIX || li->made_fifo) && li->l.path)
        unlink(li->l.path);
}

static void table_unref(md_listener **table, md_listener *li)
{
    if (--li->refs > 0)
        return;
    for (md_listener **pp = table; *pp; pp = &(*pp)->next) {
        if (*pp == li) {
            *pp = li->next;
            break;
        }
    }
    listener_close(li);
    zs_listen_free(&li->l);
    free(li);
}

static void copy_listen(zs_listen *dst, const zs_listen *src)
{
    *dst = *src;
    dst->name = zs_xstrdup(src->name);
    dst->text = zs_xstrdup(src->text);
    dst->key = zs_xstrdup(src->key);
    dst->path = src->path ? zs_xstrdup(src->path) : NULL;
    dst->where = src->where ? zs_xstrdup(src->where) : NULL;
}

void md_svc_unbind(md_svc *m, md_listener **table)
{
    for (int i = 0; i < m->svc.nlisten; i++) {
        if (m->lis[i])
            table_unref(table, m->lis[i]);
        m->lis[i] = NULL;
        m->fds[i] = -1;
    }
}

int md_set_check_dirs(const md_set *set, const md_listener *table, zs_errs *errs)
{
    char err[PATH_MAX + 600];
    size_t before = errs->n;
    for (int s = 0; s < set->n; s++) {
        const md_svc *m = set->v[s];
        for (int i = 0; i < m->svc.nlisten; i++) {
            const zs_listen *l = &m->svc.listen[i];
            if (table_find((md_listener *)table, l->key))
                continue; /* bound before and kept: nothing is made in that directory now */
            if (zs_listen_check_dir(l, m->svc.user ? m->svc.uid : (uid_t)-1, err, sizeof(err)) < 0)
                zs_errs_add(errs, "%s", err);
        }
    }
    return errs->n == before ? 0 : -1;
}

/* A fifo that was there before is taken only when root, masterd's user or the service's user
 * owns it: another owner could chmod it open again and write into the service. */
static int fifo_foreign(int fd, const zs_listen *l, const md_svc *m, char *err, size_t errlen)
{
    struct stat st;
    if (l->kind != ZS_LISTEN_FIFO || fstat(fd, &st) < 0)
        return 0;
    if (st.st_uid == 0 || st.st_uid == geteuid() || (m->svc.user && st.st_uid == m->svc.uid))
        return 0;
    snprintf(err, errlen, "%s: server-service: '%s': fifo %s belongs to uid %lu, not to root, masterd's user or "
             "the service's user (remove it and masterd creates it)", l->where ? l->where : m->svc.id, l->text,
             l->path, (unsigned long)st.st_uid);
    return -1;
}

/* A listener kept across a reload gets the backlog and mode the new config gives it: listen()
 * again takes a new backlog; a fifo's mode is set on its fd; a unix socket's file is reached
 * through an O_PATH descriptor opened without following links and checked to be a socket, so
 * a swapped path is never chmod'ed. */
static void reapply(md_listener *li, const md_svc *m)
{
    const zs_listen *l = &li->l;
    if (li->backlog != m->svc.backlog && l->kind != ZS_LISTEN_FIFO) {
        if (listen(li->fd, m->svc.backlog) < 0)
            zwarning("%s: listen backlog %d: %s", l->text, m->svc.backlog, strerror(errno));
        else
            li->backlog = m->svc.backlog;
    }
    if (li->mode == m->svc.unix_mode || (l->kind != ZS_LISTEN_UNIX && l->kind != ZS_LISTEN_FIFO))
        return;
    mode_t mode = (mode_t)(m->svc.unix_mode & 07777);
    int rc = -1;
    if (l->kind == ZS_LISTEN_FIFO) {
        rc = fchmod(li->fd, mode);
    } else {
        int pfd = open(l->path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        char proc[64];
        if (pfd >= 0 && fstat(pfd, &st) == 0 && S_ISSOCK(st.st_mode)) {
            snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
            rc = chmod(proc, mode & 0777);
        } else if (pfd >= 0) {
            errno = ENOTSOCK;
        }
        int e = errno;
        if (pfd >= 0)
            close(pfd);
        errno = e;
    }
    if (rc < 0)
        zwarning("%s: server-unix-mode %04o: %s", l->text, (unsigned)mode, strerror(errno));
    else
        li->mode = m->svc.unix_mode;
}

int md_set_bind(md_set *set, md_listener **table, char *err, size_t errlen)
{
    /* Every directory first: a refused one leaves nothing bound, not half the set. */
    zs_errs derrs = { 0 };
    if (md_set_check_dirs(set, *table, &derrs) < 0) {
        snprintf(err, errlen, "%s", derrs.msg[0]);
        for (size_t i = 1; i < derrs.n; i++)
            zerror("%s", derrs.msg[i]);
        zs_errs_free(&derrs);
        return -1;
    }
    for (int s = 0; s < set->n; s++) {
        md_svc *m = set->v[s];
        for (int i = 0; i < m->svc.nlisten; i++) {
            md_listener *li = table_find(*table, m->svc.listen[i].key);
            if (!li) {
                const zs_listen *l = &m->svc.listen[i];
                struct stat st;
                int new_fifo = l->kind == ZS_LISTEN_FIFO && lstat(l->path, &st) < 0 && errno == ENOENT;
                int fd = zs_listen_bind(l, m->svc.backlog, m->svc.unix_mode, err, errlen);
                if (fd < 0 && l->where) {
                    /* Name the file and line, as every config error does. */
                    char *why = zs_xstrdup(err);
                    snprintf(err, errlen, "%s: server-service: %s", l->where, why);
                    free(why);
                }
                if (fd < 0) {
                    for (int k = 0; k <= s; k++)
                        md_svc_unbind(set->v[k], table);
                    return -1;
                }
                if (!new_fifo && fifo_foreign(fd, l, m, err, errlen) < 0) {
                    close(fd);
                    for (int k = 0; k <= s; k++)
                        md_svc_unbind(set->v[k], table);
                    return -1;
                }
                li = zs_xcalloc(1, sizeof(*li));
                copy_listen(&li->l, &m->svc.listen[i]);
                li->fd = fd;
                li->made_fifo = new_fifo;
                li->backlog = m->svc.backlog;
                li->mode = m->svc.unix_mode;
                li->next = *table;
                *table = li;
            } else {
                reapply(li, m);
            }
            li->refs++;
            m->lis[i] = li;
            m->fds[i] = li->fd;
        }
    }
    return 0;
}
