/*
 * md_set.c — load a config directory into a validated service set (md_set.h); the listening
 * sockets it holds are md_bind.c's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
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

/* One listen entry of the set, numbered in the order the set lists them. */
typedef struct entry_ref {
    const zs_listen *l;
    size_t order;
    size_t first_same;  /* order of the first entry with the same key */
} entry_ref;

static int by_key(const void *a, const void *b)
{
    const entry_ref *x = a, *y = b;
    int c = strcmp(x->l->key, y->l->key);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* inet and inet6 entries by family and port (where overlaps happen), then the order. */
static int by_port(const void *a, const void *b)
{
    const entry_ref *x = a, *y = b;
    int inx = x->l->kind == ZS_LISTEN_INET || x->l->kind == ZS_LISTEN_INET6;
    int iny = y->l->kind == ZS_LISTEN_INET || y->l->kind == ZS_LISTEN_INET6;
    if (inx != iny)
        return inx - iny;
    if (inx && x->l->kind != y->l->kind)
        return x->l->kind - y->l->kind;
    if (inx && port_of(x->l) != port_of(y->l))
        return port_of(x->l) - port_of(y->l);
    return (x->order > y->order) - (x->order < y->order);
}

/* Path entries first, by resolved path, then the order. */
static int by_path(const void *a, const void *b)
{
    const entry_ref *x = a, *y = b;
    const char *px = zs_listen_bound_path(x->l), *py = zs_listen_bound_path(y->l);
    if (!px || !py)
        return !px - !py;
    int c = strcmp(px, py);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* Two entries overlap when they have the same address, or a wildcard and a specific address of
 * one family on one port, or a unix socket and a fifo at one filesystem path (however it was
 * spelled): the second bind would fail (families never overlap: every IPv6 socket is
 * IPV6_V6ONLY, zs_listen_bind.c).  Each entry that overlaps an earlier one is an error naming
 * the first of those.
 * Sorting three times (by key, by family and port, by path) finds them in O(n log n): a reload
 * of thousands of services must not compare every entry with every other. */
static void check_duplicates(md_set *set, zs_errs *errs)
{
    size_t n = 0;
    for (int a = 0; a < set->n; a++)
        n += (size_t)set->v[a]->svc.nlisten;
    if (n < 2)
        return;
    entry_ref *r = zs_xcalloc(n, sizeof(*r));
    const zs_listen **by_order = zs_xcalloc(n, sizeof(*by_order));
    size_t *first_clash = zs_xcalloc(n, sizeof(*first_clash));
    size_t k = 0;
    for (int a = 0; a < set->n; a++)
        for (int i = 0; i < set->v[a]->svc.nlisten; i++, k++) {
            r[k].l = by_order[k] = &set->v[a]->svc.listen[i];
            r[k].order = k;
            first_clash[k] = SIZE_MAX;
        }
    qsort(r, n, sizeof(*r), by_key);
    for (size_t x = 0; x < n; x++) {
        r[x].first_same = x > 0 && !strcmp(r[x - 1].l->key, r[x].l->key) ? r[x - 1].first_same : r[x].order;
        if (r[x].first_same != r[x].order)
            first_clash[r[x].order] = r[x].first_same;
    }
    /* Within one family and port, in order: a wildcard clashes with the first entry before it,
     * a specific address with the first wildcard before it (or an equal key, found above). */
    qsort(r, n, sizeof(*r), by_port);
    size_t group = 0, first_wild = SIZE_MAX;
    for (size_t x = 0; x < n; x++) {
        const zs_listen *l = r[x].l;
        if (l->kind != ZS_LISTEN_INET && l->kind != ZS_LISTEN_INET6)
            continue;
        if (x == 0 || r[x - 1].l->kind != l->kind || port_of(r[x - 1].l) != port_of(l)) {
            group = x;
            first_wild = SIZE_MAX;
        }
        size_t clash = is_wildcard(l) && x > group ? r[group].order : first_wild;
        if (is_wildcard(l) && first_wild == SIZE_MAX)
            first_wild = r[x].order;
        if (clash < first_clash[r[x].order])
            first_clash[r[x].order] = clash;
    }
    /* One path, two kinds (a unix socket, a fifo): the first entry at a path is what the others
     * clash with. */
    qsort(r, n, sizeof(*r), by_path);
    for (size_t x = 1, first = 0; x < n && zs_listen_bound_path(r[x].l); x++) {
        if (strcmp(zs_listen_bound_path(r[x].l), zs_listen_bound_path(r[x - 1].l)))
            first = x;
        else if (r[first].order < first_clash[r[x].order])
            first_clash[r[x].order] = r[first].order;
    }
    for (size_t x = 0; x < n; x++) {
        if (first_clash[x] == SIZE_MAX)
            continue;
        const zs_listen *la = by_order[x], *lb = by_order[first_clash[x]];
        if (!strcmp(la->key, lb->key))
            zs_errs_add(errs, "%s: server-service: '%s' is already listed at %s ('%s')", la->where, la->text,
                        lb->where, lb->text);
        else if (zs_listen_bound_path(la))
            zs_errs_add(errs, "%s: server-service: '%s' is the path '%s' of '%s' at %s (a unix socket and a fifo "
                        "cannot share a path)", la->where, la->text, zs_listen_bound_path(la), lb->text, lb->where);
        else
            zs_errs_add(errs, "%s: server-service: '%s' overlaps '%s' at %s (a wildcard address and "
                        "a specific one on the same port cannot both be bound)", la->where, la->text, lb->text,
                        lb->where);
    }
    free(first_clash);
    free(by_order);
    free(r);
}

static char *reserved_path, *reserved_what;

void md_set_reserve_path(const char *path, const char *what)
{
    free(reserved_path);
    free(reserved_what);
    reserved_path = path ? zs_xstrdup(path) : NULL;
    reserved_what = path ? zs_xstrdup(what) : NULL;
}

/* A listen entry or masterlog socket of set at the reserved path (the control socket's)
 * would fail to bind there, or take its place. */
static void check_reserved_path(const md_set *set, zs_errs *errs)
{
    char why[PATH_MAX + 64];
    char *canon = reserved_path ? zs_path_canonical(reserved_path, why, sizeof(why)) : NULL;
    for (int i = 0; canon && i < set->n; i++) {
        const md_svc *m = set->v[i];
        for (int k = 0; k < m->svc.nlisten; k++) {
            const char *bound = zs_listen_bound_path(&m->svc.listen[k]);
            if (bound && !strcmp(bound, canon))
                zs_errs_add(errs, "%s: server-service: '%s' is the path of masterd's %s socket '%s'",
                            m->svc.listen[k].where, m->svc.listen[k].text, reserved_what, reserved_path);
        }
        const zs_kv *kv = zs_config_find(&m->cf, "server-log");
        char *log = m->svc.log && !strncmp(m->svc.log, "masterlog,", 10)
                        ? zs_path_canonical(m->svc.log + 10, why, sizeof(why)) : NULL;
        if (kv && log && !strcmp(log, canon))
            zs_errs_add(errs, "%s:%d: server-log: '%s' is the path of masterd's %s socket '%s'", kv->file, kv->line,
                        kv->value, reserved_what, reserved_path);
        free(log);
    }
    free(canon);
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
    /* Per process its status channel and its output pipe (md_relay.c); a reload or a restart
     * runs a new generation beside the old until the old has drained: each process and each
     * generation's memfds twice, the listeners once. */
    need += need - NOFILE_BASE + 4 * procs + lis;
    if (rl.rlim_cur != RLIM_INFINITY && (unsigned long long)need > (unsigned long long)rl.rlim_cur)
        zs_errs_add(errs, "%s: the services need about %lld file descriptors (%lld processes, twice while a reload runs old and new generations side by side, %lld listeners), "
                    "but RLIMIT_NOFILE allows %llu (hard limit %llu): raise masterd's hard limit (ulimit -Hn, "
                    "systemd LimitNOFILE=) or lower server-proc-count", set->dir, need, procs, lis,
                    (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
}

/* As root, masterd runs what its config files say as root: a file anyone but root can change
 * (owned by another user, writable by others or by a group other than root's) is refused;
 * for the directory, and a file root's group may write, a warning says so.  errs NULL: the
 * directory, which only gets warnings (a file put there by someone else is refused itself). */
static void check_perms(const char *path, zs_errs *warn, zs_errs *errs)
{
    struct stat st;
    if (geteuid() != 0 || stat(path, &st) < 0)
        return;
    int foreign_group = (st.st_mode & S_IWGRP) && st.st_gid != 0;
    zs_errs *to = errs && ((st.st_mode & S_IWOTH) || foreign_group) ? errs : warn;
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        zs_errs_add(to, "%s is writable by %s (mode %04o) and masterd reads it as root%s", path,
                    (st.st_mode & S_IWGRP) && (st.st_mode & S_IWOTH) ? "group and others"
                    : st.st_mode & S_IWGRP ? "its group" : "others",
                    (unsigned)(st.st_mode & 07777), to == errs ? ": refusing it" : "");
    if (st.st_uid != 0)
        zs_errs_add(errs ? errs : warn, "%s is owned by uid %ld, not root, and masterd reads it as root%s", path,
                    (long)st.st_uid, errs ? ": refusing it" : "");
}

static md_svc *load_one(const char *dir, const char *name, const zs_config *gcf, zs_errs *errs, zs_errs *warn)
{
    md_svc *m = zs_xcalloc(1, sizeof(*m));
    m->cf_fd = -1;
    char *path = zs_xasprintf("%s/%s", dir, name);
    char *id = zs_xstrdup(name);
    check_perms(path, warn, errs);
    id[strlen(id) - 3] = '\0';
    if (!zs_listen_name_ok(id, strlen(id))) {
        /* The id names the listeners (LISTEN_FDNAMES, ':'-separated) and every log line; the
         * message shows a control character as '?' so a file name cannot forge a log line. */
        for (char *c = id; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
        zs_errs_add(errs, "%s/%s.cf: the file name makes the service id '%s', which may hold only letters, "
                    "digits, '-', '_' and '.'", dir, id, id);
    }
    zs_config_init(&m->cf);
    zs_config_merge(&m->cf, gcf);
    /* A file with refused lines (too long, no '='...) still has its other keys checked, so one
     * run shows every error; server-command is not required then (its line may be the bad one). */
    int loaded = zs_config_load_file(&m->cf, path, errs);
    int ok = loaded > -2 && zs_service_from_config(&m->svc, id, path, &m->cf, loaded == 0, errs) == 0;
    if (ok && loaded < 0) {
        zs_service_free(&m->svc);
        ok = 0;
    }
    const zs_kv *ukv = ok && m->svc.user && geteuid() != 0 && m->svc.uid != geteuid()
                           ? zs_config_find(&m->cf, "server-user") : NULL;
    if (ukv) {
        /* Only root can switch users: every start would fail at setuid, forever. */
        zs_errs_add(errs, "%s:%d: server-user: masterd runs as uid %ld and cannot start processes as '%s'",
                    ukv->file, ukv->line, (long)geteuid(), m->svc.user);
        zs_service_free(&m->svc);
        ok = 0;
    }
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
    check_perms(dir, &out->warn, NULL);
    zs_config_init(&gcf);
    int ngcf = zs_config_list_dir(dir, ".gcf", &gcfs, errs);
    for (int i = 0; i < ngcf; i++) {
        char *p = zs_xasprintf("%s/%s", dir, gcfs[i]);
        check_perms(p, &out->warn, errs);
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
    check_reserved_path(out, errs);
    /* A .gcf's error comes once per service that reads it: said once. */
    zs_errs_dedup(errs, before);
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
