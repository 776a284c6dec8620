/*
 * md_set_clash.c — addresses that cannot all be bound (md_set.h): a listen entry listed twice, a
 * wildcard and a specific address on one port, one filesystem path as a unix socket and a fifo,
 * and a path masterd keeps for itself (the control socket).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "md_set.h"
#include "core/zserver_core.h"

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

void md_set_check_addresses(const md_set *set, zs_errs *errs)
{
    check_duplicates((md_set *)set, errs);
    check_reserved_path(set, errs);
}
