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
#include "core/zc_core.h"
#include "core/zserver_core.h"

/* A .gcf may set defaults for every service, but not what only makes sense once. */
static void check_gcf(const zs_config *gcf, zs_errs *errs)
{
    static const char *once[] = { "server-command", "server-service", "server-name", NULL };
    for (int i = 0; once[i]; i++) {
        const zs_kv *kv = zs_config_find(gcf, once[i]);
        if (kv)
            zs_errs_add(errs, "%s:%d: %s: belongs in a service's .cf file, not a .gcf", kv->file, kv->line, once[i]);
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

/* The longest service id: masterctl names services in a request line of 1024 bytes. */
#define MD_ID_MAX 200

/* The service id of src: its server-name when set in code, else its file's name without .cf,
 * else its server-name.  NULL after an error. */
/* A control character shown as '?', so a name cannot forge a log line. */
static void blank_controls(char *s)
{
    for (char *c = s; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
}

static char *service_id(const zs_config *src, const char *path, int idx, zs_errs *errs)
{
    const zs_kv *nkv = zs_config_find(src, "server-name");
    int from_file = path && !(nkv && nkv->line <= 0); /* server-name set in code wins */
    char *id;
    if (from_file) {
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        size_t len = strlen(base);
        id = zs_xstrdup(base);
        if (len > 3 && !strcmp(base + len - 3, ".cf"))
            id[len - 3] = '\0';
        if (nkv && strcmp(nkv->value, id))
            zs_errs_add(errs, "%s:%d: server-name: '%s' differs from the service id '%s' the file name gives "
                        "(in a file, server-name may only repeat it; a zmaster_server_load_config hook may "
                        "set another in code)", nkv->file, nkv->line, nkv->value, id);
    } else if (nkv) {
        id = zs_xstrdup(nkv->value);
    } else {
        zs_errs_add(errs, "zmaster_server_load_config: config #%d has no server-name: set server-name = ID "
                    "(the service id, as a .cf file's name gives it)", idx + 1);
        return NULL;
    }
    size_t len = strlen(id);
    int too_long = len > MD_ID_MAX || id[0] == '.', bad = !too_long && !zs_listen_name_ok(id, len);
    if (too_long || bad) {
        /* The id names the listeners (LISTEN_FDNAMES, ':'-separated) and every log line. */
        char *shown = zs_xstrdup(path ? path : "zmaster_server_load_config");
        blank_controls(shown);
        blank_controls(id);
        if (too_long)
            zs_errs_add(errs, "%s: %s: '%.40s%s' (%zu characters): a service id has at most %d characters and "
                        "does not start with '.'", shown, from_file ? "the file name" : "server-name", id,
                        len > 40 ? "..." : "", len, MD_ID_MAX);
        else
            zs_errs_add(errs, "%s: the %s makes the service id '%s', which may hold only letters, digits, '-', "
                        "'_' and '.'", shown, from_file ? "file name" : "server-name", id);
        free(shown);
        if (too_long) {
            free(id);
            return NULL;
        }
    }
    return id;
}

/* A key as a file could write it (doc/CONTRACT.md §2: no blanks, ':' or '=', no comment or section start). */
static int key_ok(const char *k)
{
    if (!*k || strchr("#;[", *k))
        return 0;
    for (const unsigned char *c = (const unsigned char *)k; *c; c++)
        if (*c <= ' ' || *c == 0x7f || *c == ':' || *c == '=')
            return 0;
    return 1;
}

/* The .cf file's ownership check for every file src's settings came from (a hook may read
 * several with zconfig_load_from_pathname), and for the file lib-zc's loader named. */
static void check_files(const zs_config *src, const char *file, zs_errs *warn, zs_errs *errs)
{
    int named_checked = 0;
    for (size_t i = 0; i < src->n; i++) {
        const zs_kv *kv = &src->kv[i];
        if (kv->line <= 0)
            continue;
        size_t j = 0;
        while (j < i && !(src->kv[j].line > 0 && !strcmp(src->kv[j].file, kv->file)))
            j++;
        if (j < i)
            continue; /* that file is checked already */
        check_perms(kv->file, warn, errs);
        named_checked |= file && !strcmp(file, kv->file);
    }
    if (file && !named_checked)
        check_perms(file, warn, errs);
}

/* Settings made in code hold what a file line could: a key without blanks, ':' or '=', a value
 * without a newline. */
static void check_code_settings(const zs_config *src, const char *label, zs_errs *errs)
{
    for (size_t i = 0; i < src->n; i++) {
        const zs_kv *kv = &src->kv[i];
        if (kv->line > 0 || !strcmp(kv->key, MD_KEY_FILE))
            continue;
        if (!key_ok(kv->key))
            zs_errs_add(errs, "%s: key '%s': not a key a file could set (no blanks, ':' or '=')", label, kv->key);
        else if (strchr(kv->value, '\n'))
            zs_errs_add(errs, "%s: %s: the value holds a newline", label, kv->key);
    }
}

/* One service from src (a file's config, or one a zmaster_server_load_config hook built) over
 * the .gcf defaults.  NULL after adding its errors. */
static md_svc *load_one(const zs_config *src, int idx, const zs_config *gcf, zs_errs *errs, zs_errs *warn)
{
    const char *file = zs_config_get(src, MD_KEY_FILE, NULL);
    size_t before = errs->n;
    if (src->load_errs)
        for (size_t i = 0; i < src->load_errs->n; i++)
            zs_errs_add(errs, "%s", src->load_errs->msg[i]);
    if (!file && src->n == 0 && errs->n != before)
        return NULL; /* only errors: the directory could not be listed */
    char *id = service_id(src, file, idx, errs);
    if (!id)
        return NULL;
    /* Settings made in code (line 0) are named by their service in messages. */
    char *label = zs_xasprintf("service '%s' (zmaster_server_load_config)", id);
    const char *path = file ? file : label;
    md_svc *m = zs_xcalloc(1, sizeof(*m));
    m->cf_fd = -1;
    check_files(src, file, warn, errs);
    check_code_settings(src, label, errs);
    zs_config_init(&m->cf);
    zs_config_merge(&m->cf, gcf);
    zs_config_merge(&m->cf, src);
    zs_config_unset(&m->cf, MD_KEY_FILE);
    zs_config_name_unfiled(&m->cf, label); /* settings made in code are named by their service */
    /* A file with refused lines (too long, no '='...) still has its other keys checked, so one
     * run shows every error; server-command is not required then (its line may be the bad one).
     * A file that could not be read at all added nothing to check. */
    int loaded = 0;
    if (src->load_errs && src->load_errs->n) {
        loaded = -2;
        for (size_t i = 0; i < src->n && loaded == -2; i++)
            if (src->kv[i].line > 0)
                loaded = -1;
    }
    int ok = loaded > -2 && zs_service_from_config(&m->svc, id, path, &m->cf, loaded == 0, errs) == 0;
    if (ok && (loaded < 0 || errs->n != before)) {
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
        char *lfile = zs_xstrdup(lkv->file);
        zs_config_set(&m->cf, "server-log", m->svc.log, lfile, lkv->line);
        free(lfile);
    }
    char why[256];
    if (ok && (m->cf_fd = zs_config_to_memfd(&m->cf, why, sizeof(why))) < 0) {
        zs_errs_add(errs, "%s: cannot hold the config for its children: %s", path, why);
        zs_service_free(&m->svc);
        ok = 0;
    }
    free(label);
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

static int by_id(const void *a, const void *b, void *set)
{
    int x = *(const int *)a, y = *(const int *)b;
    md_svc **v = ((md_set *)set)->v;
    int c = strcmp(v[x]->svc.id, v[y]->svc.id);
    return c ? c : (x > y) - (x < y);
}

/* set->order, and an error for a second config a hook returned for one service id (files
 * cannot clash). */
static void sort_ids(md_set *set, zs_errs *errs)
{
    set->order = zs_xcalloc((size_t)set->n + 1, sizeof(int));
    for (int i = 0; i < set->n; i++)
        set->order[i] = i;
    qsort_r(set->order, (size_t)set->n, sizeof(int), by_id, set);
    for (int i = 1; i < set->n; i++) {
        const md_svc *a = set->v[set->order[i - 1]], *b = set->v[set->order[i]];
        if (!strcmp(a->svc.id, b->svc.id))
            zs_errs_add(errs, "%s: service '%s' is defined twice", b->svc.cf_path, b->svc.id);
    }
}

struct md_set_loader {
    md_set out;
    zs_errs errs;
    zs_config gcf;
    md_source *src;
    int next, total;
};

md_set_loader *md_set_load_begin(const char *dir)
{
    md_set_loader *ld = zs_xcalloc(1, sizeof(*ld));
    char **gcfs = NULL;
    struct stat st;

    /* Resolved once, and every file read from there: a symlink swapped during the read (a
     * deploy) cannot make one load of two directories. */
    char real[PATH_MAX];
    if (dir && realpath(dir, real))
        dir = real;
    ld->out.dir = zs_xstrdup(md_source_name(dir));
    zs_config_init(&ld->gcf);
    if (dir && (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))) {
        zs_errs_add(&ld->errs, "%s: %s", dir, stat(dir, &st) < 0 ? strerror(errno) : "not a directory");
        return ld; /* nothing to load: md_set_load_end reports it */
    }
    int ngcf = 0;
    if (dir) {
        check_perms(dir, &ld->out.warn, NULL);
        ngcf = zs_config_list_dir(dir, ".gcf", &gcfs, &ld->errs);
    }
    for (int i = 0; i < ngcf; i++) {
        char *p = zs_xasprintf("%s/%s", dir, gcfs[i]);
        check_perms(p, &ld->out.warn, &ld->errs);
        zs_config_load_file(&ld->gcf, p, &ld->errs);
        free(p);
    }
    if (ngcf > 0)
        zs_config_free_list(gcfs, ngcf);
    check_gcf(&ld->gcf, &ld->errs);
    ld->src = md_source_open(dir, &ld->errs);
    ld->total = md_source_count(ld->src);
    if (ld->total > 0)
        ld->out.v = zs_xcalloc((size_t)ld->total, sizeof(md_svc *));
    return ld;
}

int md_set_load_step(md_set_loader *ld, double budget)
{
    double until = zs_sv_now() + budget;
    for (int loaded = 0; ld->next < ld->total && loaded < MD_LOAD_STEP_MAX; loaded++) {
        int i = ld->next++;
        zs_config *src = (zs_config *)md_source_take(ld->src, i);
        md_svc *m = NULL;
        if (!src)
            zs_errs_add(&ld->errs, "zmaster_server_load_config: config #%d is NULL", i + 1);
        else
            m = load_one(src, i, &ld->gcf, &ld->errs, &ld->out.warn);
        if (m)
            ld->out.v[ld->out.n++] = m;
        zconfig_free(src);
        if (zs_sv_now() >= until)
            break;
    }
    return ld->next >= ld->total;
}

void md_set_load_progress(const md_set_loader *ld, int *done, int *total)
{
    *done = ld->next;
    *total = ld->total;
}

void md_set_load_abort(md_set_loader *ld)
{
    if (!ld)
        return;
    md_source_close(ld->src);
    md_set_free(&ld->out);
    zs_errs_free(&ld->errs);
    zs_config_free(&ld->gcf);
    free(ld);
}

int md_set_load_end(md_set_loader *ld, md_set *out, zs_errs *errs)
{
    while (!md_set_load_step(ld, 1e9))
        ;
    sort_ids(&ld->out, &ld->errs);
    md_set_check_addresses(&ld->out, &ld->errs);
    /* A .gcf's error comes once per service that reads it: said once. */
    zs_errs_dedup(&ld->errs, 0);
    if (ld->errs.n == 0)
        check_nofile(&ld->out, &ld->errs);
    int rc = ld->errs.n ? -1 : 0;
    for (size_t i = 0; i < ld->errs.n; i++)
        zs_errs_add(errs, "%s", ld->errs.msg[i]);
    if (rc == 0) {
        *out = ld->out;
        memset(&ld->out, 0, sizeof(ld->out));
    } else {
        memset(out, 0, sizeof(*out));
    }
    md_set_load_abort(ld);
    return rc;
}

int md_set_load(const char *dir, md_set *out, zs_errs *errs)
{
    return md_set_load_end(md_set_load_begin(dir), out, errs);
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
    free(set->order);
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
    if (!set->order) {
        for (int i = 0; i < set->n; i++)
            if (!strcmp(set->v[i]->svc.id, id))
                return set->v[i];
        return NULL;
    }
    for (int lo = 0, hi = set->n; lo < hi;) {
        int mid = lo + (hi - lo) / 2;
        md_svc *m = set->v[set->order[mid]];
        int c = strcmp(id, m->svc.id);
        if (c == 0)
            return m;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int by_key_then_order(const void *x, const void *y)
{
    const zs_kv *a = *(const zs_kv *const *)x, *b = *(const zs_kv *const *)y;
    int c = strcmp(a->key, b->key);
    return c ? c : (a > b) - (a < b); /* one config's settings: address order is set order */
}

/* cf's settings but server-proc-count, by key, each key's in the order they were set.  Returns
 * the count; *out is malloc'd. */
static size_t sorted_settings(const zs_config *cf, const zs_kv ***out)
{
    const zs_kv **v = zs_xcalloc(cf->n + 1, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < cf->n; i++)
        if (strcmp(cf->kv[i].key, "server-proc-count"))
            v[n++] = &cf->kv[i];
    qsort(v, n, sizeof(*v), by_key_then_order);
    *out = v;
    return n;
}

int md_svc_same_but_count(const md_svc *a, const md_svc *b)
{
    if (a->bin.st_ino != b->bin.st_ino || a->bin.st_dev != b->bin.st_dev || a->bin.st_size != b->bin.st_size ||
        a->bin.st_mtim.tv_sec != b->bin.st_mtim.tv_sec || a->bin.st_mtim.tv_nsec != b->bin.st_mtim.tv_nsec)
        return 0;
    /* Compare what the server reads (every key but server-proc-count), ignoring where it was
     * written and in which order different keys were set (a hook may build a config from a hash
     * or database rows); the settings of one key (server-service, server-env) keep their order. */
    const zs_kv **va, **vb;
    size_t na = sorted_settings(&a->cf, &va), nb = sorted_settings(&b->cf, &vb);
    int same = na == nb;
    for (size_t i = 0; same && i < na; i++)
        same = !strcmp(va[i]->key, vb[i]->key) && !strcmp(va[i]->value, vb[i]->value);
    free(va);
    free(vb);
    return same;
}
