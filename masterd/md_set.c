/*
 * md_set.c — load a config directory into a validated service set, and hold the listening
 * sockets (md_set.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "md_set.h"
#include "core/zserver_core.h"

/* A .gcf may set defaults for every service, but not what only makes sense once. */
static void check_gcf(const zs_config *gcf, zs_errs *errs)
{
    static const char *once[] = { "server-command", "server-service", NULL };
    for (int i = 0; once[i]; i++) {
        const zs_kv *kv = zs_config_find(gcf, once[i]);
        if (kv)
            zs_errs_add(errs, "%s:%d: %s: belongs in a service's .cf file, not a .gcf", kv->file, kv->line, once[i]);
    }
}

static int is_wildcard(const zs_listen *l)
{
    if (l->kind == ZS_LISTEN_INET)
        return ((const struct sockaddr_in *)&l->sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&l->sa)->sin6_addr);
}

static int port_of(const zs_listen *l)
{
    return l->kind == ZS_LISTEN_INET ? ntohs(((const struct sockaddr_in *)&l->sa)->sin_port)
                                     : ntohs(((const struct sockaddr_in6 *)&l->sa)->sin6_port);
}

/* The same address, or a wildcard and a specific address of one family on one port: the second
 * bind would fail.  Families never overlap: every IPv6 socket is IPV6_V6ONLY (zs_listen_bind.c). */
static int overlaps(const zs_listen *a, const zs_listen *b)
{
    if (!strcmp(a->key, b->key))
        return 1;
    if (a->kind != b->kind || (a->kind != ZS_LISTEN_INET && a->kind != ZS_LISTEN_INET6))
        return 0;
    return port_of(a) == port_of(b) && (is_wildcard(a) || is_wildcard(b));
}

static void check_duplicates(md_set *set, zs_errs *errs)
{
    for (int a = 0; a < set->n; a++) {
        const md_svc *sa = set->v[a];
        for (int i = 0; i < sa->svc.nlisten; i++) {
            const zs_listen *la = &sa->svc.listen[i];
            for (int b = 0; b <= a; b++) {
                const md_svc *sb = set->v[b];
                int lim = b == a ? i : sb->svc.nlisten;
                for (int j = 0; j < lim; j++) {
                    const zs_listen *lb = &sb->svc.listen[j];
                    if (!overlaps(la, lb))
                        continue;
                    if (!strcmp(la->key, lb->key))
                        zs_errs_add(errs, "%s: server-service: '%s' is already listed at %s ('%s')", la->where,
                                    la->text, lb->where, lb->text);
                    else
                        zs_errs_add(errs, "%s: server-service: '%s' overlaps '%s' at %s (a wildcard address and "
                                    "a specific one on the same port cannot both be bound)", la->where, la->text,
                                    lb->text, lb->where);
                    goto next_entry;
                }
            }
        next_entry:;
        }
    }
}

/* fds masterd holds whatever the set: 0-2, pid file, log, libev's, masterlog and syslog
 * sockets, a socketpair being made, a reload's directory and files. */
#define NOFILE_BASE 32

/* An estimate of the fds masterd needs to run set, against its soft RLIMIT_NOFILE (main
 * raised it to the hard limit): per process its status channel and output pipe, per listener its socket, per
 * service its config memfd, the group's copy and the accept scoreboard.  A set that cannot fit
 * is refused up front instead of leaving processes that never start ("Too many open files"). */
static void check_nofile(const md_set *set, zs_errs *errs)
{
    struct rlimit rl;
    long long need = NOFILE_BASE, procs = 0, lis = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    for (int i = 0; i < set->n; i++) {
        procs += set->v[i]->svc.proc_count;
        lis += set->v[i]->svc.nlisten;
        need += 3;
    }
    need += 2 * procs + lis; /* per process its status channel and its output pipe (md_relay.c) */
    if (rl.rlim_cur != RLIM_INFINITY && (unsigned long long)need > (unsigned long long)rl.rlim_cur)
        zs_errs_add(errs, "%s: the services need about %lld file descriptors (%lld processes, %lld listeners), "
                    "but RLIMIT_NOFILE allows %llu (hard limit %llu): raise masterd's hard limit (ulimit -Hn, "
                    "systemd LimitNOFILE=) or lower server-proc-count", set->dir, need, procs, lis,
                    (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
}

/* masterd started by root runs whatever these files name, as root (before server-user drops
 * it): a file someone else may write is a way in.  Warned about, not refused. */
static void check_perms(const char *path, zs_errs *warn)
{
    struct stat st;
    if (geteuid() != 0 || stat(path, &st) < 0)
        return;
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        zs_errs_add(warn, "%s is writable by %s (mode %04o) and masterd reads it as root", path,
                    (st.st_mode & S_IWGRP) && (st.st_mode & S_IWOTH) ? "group and others"
                    : st.st_mode & S_IWGRP ? "its group" : "others",
                    (unsigned)(st.st_mode & 07777));
    if (st.st_uid != 0)
        zs_errs_add(warn, "%s is owned by uid %ld, not root, and masterd reads it as root", path, (long)st.st_uid);
}

static md_svc *load_one(const char *dir, const char *name, const zs_config *gcf, zs_errs *errs, zs_errs *warn)
{
    md_svc *m = zs_xcalloc(1, sizeof(*m));
    m->cf_fd = -1;
    char *path = zs_xasprintf("%s/%s", dir, name);
    char *id = zs_xstrdup(name);
    check_perms(path, warn);
    id[strlen(id) - 3] = '\0';
    zs_config_init(&m->cf);
    zs_config_merge(&m->cf, gcf);
    int ok = zs_config_load_file(&m->cf, path, errs) == 0 &&
             zs_service_from_config(&m->svc, id, path, &m->cf, 1, errs) == 0;
    if (ok && stat(m->svc.exec_path, &m->bin) < 0) {
        zs_errs_add(errs, "%s: server-command: '%s': %s", path, m->svc.exec_path, strerror(errno));
        zs_service_free(&m->svc);
        ok = 0;
    }
    /* Children get server-log with its path made absolute (they may run in a server-chdir). */
    const zs_kv *lkv = ok && m->svc.log ? zs_config_find(&m->cf, "server-log") : NULL;
    if (lkv && strcmp(lkv->value, m->svc.log)) {
        char *file = zs_xstrdup(lkv->file);
        zs_config_set(&m->cf, "server-log", m->svc.log, file, lkv->line);
        free(file);
    }
    char why[256];
    if (ok && (m->cf_fd = zs_config_to_memfd(&m->cf, why, sizeof(why))) < 0) {
        zs_errs_add(errs, "%s: cannot hold the config for its children: %s", path, why);
        zs_service_free(&m->svc);
        ok = 0;
    }
    free(path);
    free(id);
    if (!ok) {
        zs_config_free(&m->cf);
        free(m);
        return NULL;
    }
    m->fds = zs_xcalloc((size_t)m->svc.nlisten + 1, sizeof(int));
    m->lis = zs_xcalloc((size_t)m->svc.nlisten + 1, sizeof(md_listener *));
    for (int i = 0; i < m->svc.nlisten; i++)
        m->fds[i] = -1;
    return m;
}

int md_set_load(const char *dir, md_set *out, zs_errs *errs)
{
    size_t before = errs->n;
    char **gcfs = NULL, **cfs = NULL;
    zs_config gcf;
    struct stat st;

    memset(out, 0, sizeof(*out));
    out->dir = zs_xstrdup(dir);
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        zs_errs_add(errs, "%s: %s", dir, stat(dir, &st) < 0 ? strerror(errno) : "not a directory");
        md_set_free(out);
        return -1;
    }
    check_perms(dir, &out->warn);
    zs_config_init(&gcf);
    int ngcf = zs_config_list_dir(dir, ".gcf", &gcfs, errs);
    for (int i = 0; i < ngcf; i++) {
        char *p = zs_xasprintf("%s/%s", dir, gcfs[i]);
        check_perms(p, &out->warn);
        zs_config_load_file(&gcf, p, errs);
        free(p);
    }
    check_gcf(&gcf, errs);
    int ncf = zs_config_list_dir(dir, ".cf", &cfs, errs);
    if (ncf > 0)
        out->v = zs_xcalloc((size_t)ncf, sizeof(md_svc *));
    for (int i = 0; i < ncf; i++) {
        md_svc *m = load_one(dir, cfs[i], &gcf, errs, &out->warn);
        if (m)
            out->v[out->n++] = m;
    }
    check_duplicates(out, errs);
    if (errs->n == before)
        check_nofile(out, errs);
    if (ngcf > 0)
        zs_config_free_list(gcfs, ngcf);
    if (ncf > 0)
        zs_config_free_list(cfs, ncf);
    zs_config_free(&gcf);
    if (errs->n != before) {
        md_set_free(out);
        return -1;
    }
    return 0;
}

void md_svc_free(md_svc *m)
{
    zs_service_free(&m->svc);
    zs_config_free(&m->cf);
    if (m->cf_fd >= 0)
        close(m->cf_fd);
    free(m->fds);
    free(m->lis);
    free(m);
}

void md_set_free(md_set *set)
{
    for (int i = 0; i < set->n; i++)
        md_svc_free(set->v[i]);
    free(set->v);
    free(set->dir);
    zs_errs_free(&set->warn);
    memset(set, 0, sizeof(*set));
}

void md_set_log_warnings(md_set *set, const char *prefix)
{
    for (size_t i = 0; i < set->warn.n; i++)
        zwarning("%s%s", prefix, set->warn.msg[i]);
    zs_errs_free(&set->warn);
}

md_svc *md_set_find(const md_set *set, const char *id)
{
    for (int i = 0; i < set->n; i++)
        if (!strcmp(set->v[i]->svc.id, id))
            return set->v[i];
    return NULL;
}

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
                if (fd < 0) {
                    for (int k = 0; k <= s; k++)
                        md_svc_unbind(set->v[k], table);
                    return -1;
                }
                li = zs_xcalloc(1, sizeof(*li));
                copy_listen(&li->l, &m->svc.listen[i]);
                li->fd = fd;
                li->made_fifo = new_fifo;
                li->next = *table;
                *table = li;
            }
            li->refs++;
            m->lis[i] = li;
            m->fds[i] = li->fd;
        }
    }
    return 0;
}

int md_svc_same_but_count(const md_svc *a, const md_svc *b)
{
    if (a->bin.st_ino != b->bin.st_ino || a->bin.st_dev != b->bin.st_dev || a->bin.st_size != b->bin.st_size ||
        a->bin.st_mtim.tv_sec != b->bin.st_mtim.tv_sec || a->bin.st_mtim.tv_nsec != b->bin.st_mtim.tv_nsec)
        return 0;
    /* Compare what the server reads (every key but server-proc-count), in order, ignoring
     * where it was written. */
    size_t ia = 0, ib = 0;
    for (;;) {
        while (ia < a->cf.n && !strcmp(a->cf.kv[ia].key, "server-proc-count"))
            ia++;
        while (ib < b->cf.n && !strcmp(b->cf.kv[ib].key, "server-proc-count"))
            ib++;
        if (ia == a->cf.n || ib == b->cf.n)
            return ia == a->cf.n && ib == b->cf.n;
        if (strcmp(a->cf.kv[ia].key, b->cf.kv[ib].key) || strcmp(a->cf.kv[ia].value, b->cf.kv[ib].value))
            return 0;
        ia++;
        ib++;
    }
}
