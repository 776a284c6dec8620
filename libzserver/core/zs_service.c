/*
 * zs_service.c — turn a merged config into a validated zs_service (doc/CONTRACT.md §2).
 *
 * Every server-* key is checked here, for masterd (`-t`, start, reload) and for a program run
 * `alone` alike; each problem becomes one `file:line: key: what` line and validation goes on,
 * so an operator sees every mistake at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "zs_log.h"
#include "zs_service.h"
#include "zs_units.h"

/* Reads a number key in [min, max] into *out with parse (unchanged when absent).  -1 on error. */
static int get_parsed(const zs_config *cf, const char *key, long min, long max, long *out, zs_errs *errs,
                      int (*parse)(const char *, long, long, long *, char *, size_t))
{
    const zs_kv *kv = zs_config_find(cf, key);
    char why[128], w[600];
    if (!kv)
        return 0;
    if (parse(kv->value, min, max, out, why, sizeof(why)) < 0) {
        zs_kv_where(kv, w, sizeof(w));
        zs_errs_add(errs, "%s: %s: '%s': %s", w, key, kv->value, why);
        return -1;
    }
    return 0;
}

/* An integer key. */
static int get_num(const zs_config *cf, const char *key, long min, long max, long *out, zs_errs *errs)
{
    return get_parsed(cf, key, min, max, out, errs, zs_parse_long);
}

/* A duration key: lib-zc's units (5s, 2m, 1h; zs_units.h), in seconds. */
static int get_secs(const zs_config *cf, const char *key, long min, long max, long *out, zs_errs *errs)
{
    return get_parsed(cf, key, min, max, out, errs, zs_parse_seconds);
}

/* Splits a command line on blanks into a NULL-terminated vector. */
static char **split_words(const char *s, int *argc)
{
    char **v = zs_xcalloc(strlen(s) / 2 + 2, sizeof(char *));
    int n = 0;
    while (*s) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        const char *b = s;
        while (*s && *s != ' ' && *s != '\t')
            s++;
        char *w = zs_xmalloc((size_t)(s - b) + 1);
        memcpy(w, b, (size_t)(s - b));
        w[s - b] = '\0';
        v[n++] = w;
    }
    v[n] = NULL;
    *argc = n;
    return v;
}

/* The absolute directory a relative path in kv's value is taken from: its file's (for masterd
 * the config directory), or NULL for a setting from the command line (the working directory). */
static char *kv_base(const zs_kv *kv)
{
    char real[PATH_MAX], cwd[PATH_MAX];
    if (kv->line <= 0 || !kv->file || !*kv->file)
        return NULL;
    const char *slash = strrchr(kv->file, '/');
    char *dir = slash ? zs_xasprintf("%.*s", slash == kv->file ? 1 : (int)(slash - kv->file), kv->file)
                      : zs_xstrdup(".");
    if (realpath(dir, real)) {
        free(dir);
        return zs_xstrdup(real);
    }
    if (dir[0] != '/' && getcwd(cwd, sizeof(cwd))) {
        char *abs = zs_xasprintf("%s/%s", cwd, dir);
        free(dir);
        return abs;
    }
    return dir;
}

char *zs_service_path(const zs_kv *kv, const char *path)
{
    char *base = path[0] == '/' ? NULL : kv_base(kv);
    char *out = zs_path_join(base, path);
    free(base);
    return out;
}

/* " (relative to DIR)" for a path written relative in kv, else "": every error about a
 * resolved path says where it was taken from. */
static void rel_note(const zs_kv *kv, const char *written, char *buf, size_t len)
{
    char *base = written[0] == '/' ? NULL : kv_base(kv);
    if (base)
        snprintf(buf, len, " (relative to the config directory %s)", base);
    else if (written[0] != '/')
        snprintf(buf, len, " (relative to the working directory)");
    else
        buf[0] = '\0';
    free(base);
}

int zs_exec_interpreter_missing(const char *path, char *interp, size_t len)
{
    char head[256];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, head, sizeof(head) - 1);
    close(fd);
    if (n < 3 || head[0] != '#' || head[1] != '!')
        return 0;
    head[n] = '\0';
    char *p = head + 2 + strspn(head + 2, " \t");
    size_t k = strcspn(p, " \t\n");
    if (p[0] != '/' || k == 0 || k >= len || p[k] == '\0') /* relative, empty, or cut off */
        return 0;
    p[k] = '\0';
    if (access(p, X_OK) == 0)
        return 0;
    int e = errno;
    snprintf(interp, len, "%s", p);
    errno = e;
    return 1;
}

/* Finds the program like execvp would (a word with '/' is a path, taken from kv's file's
 * directory when relative); returns a malloc'd path, or NULL with why. */
static char *resolve_command(const zs_kv *kv, const char *word, char *why, size_t whylen)
{
    struct stat st;
    if (strchr(word, '/')) {
        char *full = zs_service_path(kv, word), note[PATH_MAX + 64];
        rel_note(kv, word, note, sizeof(note));
        if (stat(full, &st) < 0) {
            snprintf(why, whylen, "'%s'%s: %s", word, note, strerror(errno));
            free(full);
            return NULL;
        }
        if (!S_ISREG(st.st_mode) || access(full, X_OK) < 0) {
            snprintf(why, whylen, "'%s'%s is not an executable file", word, note);
            free(full);
            return NULL;
        }
        return full;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *c = strchr(path, ':');
        size_t len = c ? (size_t)(c - path) : strlen(path);
        char *cand = zs_xasprintf("%.*s/%s", (int)len, len ? path : ".", word);
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
            return cand;
        free(cand);
        path += len + (c ? 1 : 0);
    }
    snprintf(why, whylen, "'%s' not found in PATH", word);
    return NULL;
}

static void check_command(zs_service *s, const zs_config *cf, int need_command, zs_errs *errs)
{
    const zs_kv *kv = zs_config_find(cf, "server-command");
    char why[PATH_MAX + 700], w[600];
    if (!kv) {
        if (need_command)
            zs_errs_add(errs, "%s: server-command: missing (which program runs this service?)",
                        s->cf_path ? s->cf_path : s->id);
        return;
    }
    zs_kv_where(kv, w, sizeof(w));
    s->argv = split_words(kv->value, &s->argc);
    if (s->argc == 0) {
        zs_errs_add(errs, "%s: server-command: empty", w);
        return;
    }
    s->exec_path = resolve_command(kv, s->argv[0], why, sizeof(why));
    char interp[256]; /* what fits the #! line it reads */
    if (!s->exec_path)
        zs_errs_add(errs, "%s: server-command: %s", w, why);
    else if (zs_exec_interpreter_missing(s->exec_path, interp, sizeof(interp))) /* found in PATH too */
        zs_errs_add(errs, "%s: server-command: '%s': its interpreter '%s' (the #! line): %s", w, s->exec_path,
                    interp, strerror(errno));
}

/* As root, with server-user set: may that user execute path (a file) or search it (a
 * directory)?  Judged by its mode bits against the user, its group and supplementary groups:
 * 1 yes, 0 no (st filled), -1 not judged (not root, no server-user or root's, a file with an
 * ACL, which the kernel decides at exec, or more groups than we look at). */
static int user_may_x(const zs_service *s, const char *path, struct stat *st)
{
    if (!path || !s->user || s->uid == 0 || geteuid() != 0 || stat(path, st) < 0 ||
        getxattr(path, "system.posix_acl_access", NULL, 0) >= 0)
        return -1;
    mode_t bit = S_IXOTH;
    if (st->st_uid == s->uid) {
        bit = S_IXUSR;
    } else {
        gid_t groups[256];
        int n = 256;
        if (getgrouplist(s->user, s->gid, groups, &n) < 0)
            return -1;
        for (int i = 0; i < n; i++)
            if (groups[i] == st->st_gid)
                bit = S_IXGRP;
    }
    return (st->st_mode & bit) != 0;
}

/* The program and server-chdir, as server-user: or every start fails (EACCES) while -t said ok.
 * (Called once both keys and server-user are read.) */
static void check_user_access(zs_service *s, const zs_config *cf, zs_errs *errs)
{
    static const struct { const char *key, *what; } keys[] = {
        { "server-command", "is not executable" }, { "server-chdir", "cannot be entered" },
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *path = i == 0 ? s->exec_path : s->chdir;
        struct stat st;
        if (user_may_x(s, path, &st) != 0)
            continue;
        char w[600];
        zs_kv_where(zs_config_find(cf, keys[i].key), w, sizeof(w));
        zs_errs_add(errs, "%s: %s: '%s' %s by server-user %s (mode %04o, owner %ld, group %ld)", w, keys[i].key,
                    path, keys[i].what, s->user, (unsigned)(st.st_mode & 07777), (long)st.st_uid, (long)st.st_gid);
    }
}

static void check_enum_keys(zs_service *s, const zs_config *cf, zs_errs *errs)
{
    const zs_kv *kv;
    char why[300], w[600];
    if ((kv = zs_config_find(cf, "server-log"))) {
        zs_kv_where(kv, w, sizeof(w));
        const char *comma = strchr(kv->value, ',');
        if (zs_log_check_target(kv->value, why, sizeof(why)) < 0)
            zs_errs_add(errs, "%s: server-log: %s", w, why);
        else if (comma && (!strncmp(kv->value, "file,", 5) || !strncmp(kv->value, "masterlog,", 10))) {
            /* Absolute from here on: the children (maybe in a server-chdir) get this value. */
            char *p = zs_service_path(kv, comma + 1);
            s->log = zs_xasprintf("%.*s%s", (int)(comma - kv->value + 1), kv->value, p);
            free(p);
        } else
            s->log = zs_xstrdup(kv->value);
    }
    if ((kv = zs_config_find(cf, "server-restart"))) {
        zs_kv_where(kv, w, sizeof(w));
        const char *v = kv->value;
        if (!strcmp(v, "always") || !strcmp(v, "keepalive"))
            s->restart = ZS_RESTART_ALWAYS;
        else if (!strcmp(v, "on-failure"))
            s->restart = ZS_RESTART_ON_FAILURE;
        else if (!strcmp(v, "never") || !strcmp(v, "default"))
            s->restart = ZS_RESTART_NEVER;
        else
            zs_errs_add(errs, "%s: server-restart: '%s': expected always (or keepalive), on-failure, or never "
                        "(or default)", w, v);
    }
    if ((kv = zs_config_find(cf, "server-unix-mode"))) {
        zs_kv_where(kv, w, sizeof(w));
        const char *v = kv->value;
        size_t len = strlen(v);
        int ok = len >= 1 && len <= 4 && strspn(v, "01234567") == len;
        if (ok)
            s->unix_mode = (unsigned)strtoul(v, NULL, 8);
        else
            zs_errs_add(errs, "%s: server-unix-mode: '%s': expected an octal mode such as 0660", w, v);
    }
    if ((kv = zs_config_find(cf, "server-core-size"))) {
        zs_kv_where(kv, w, sizeof(w));
        long n;
        if (!strcmp(kv->value, "unlimited"))
            s->core_size = -2;
        else if (zs_parse_long(kv->value, 0, LONG_MAX, &n, why, sizeof(why)) == 0)
            s->core_size = n;
        else
            zs_errs_add(errs, "%s: server-core-size: '%s': %s (bytes or 'unlimited')", w, kv->value, why);
    }
    if ((kv = zs_config_find(cf, "server-user"))) {
        zs_kv_where(kv, w, sizeof(w));
        errno = 0;
        struct passwd *pw = getpwnam(kv->value);
        if (!pw) {
            zs_errs_add(errs, "%s: server-user: '%s': no such user", w, kv->value);
        } else {
            s->user = zs_xstrdup(kv->value);
            s->uid = pw->pw_uid;
            s->gid = pw->pw_gid;
        }
    }
}

static const struct { const char *name; int sig; } stop_signals[] = {
    { "TERM", SIGTERM }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "HUP", SIGHUP },
    { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { NULL, 0 },
};

/* server-chdir and server-stop-signal (lib-zc's master-* keys: zs_service_keys.c). */
static void check_run_keys(zs_service *s, const zs_config *cf, zs_errs *errs)
{
    const zs_kv *kv;
    char w[600], note[PATH_MAX + 64];
    struct stat st;
    if ((kv = zs_config_find(cf, "server-chdir"))) {
        zs_kv_where(kv, w, sizeof(w));
        char *dir = zs_service_path(kv, kv->value);
        rel_note(kv, kv->value, note, sizeof(note));
        if (!*kv->value)
            zs_errs_add(errs, "%s: server-chdir: empty (a directory, e.g. /var/lib/imapd)", w);
        else if (stat(dir, &st) < 0)
            zs_errs_add(errs, "%s: server-chdir: '%s'%s: %s", w, kv->value, note, strerror(errno));
        else if (!S_ISDIR(st.st_mode))
            zs_errs_add(errs, "%s: server-chdir: '%s'%s is not a directory", w, kv->value, note);
        else {
            s->chdir = dir;
            dir = NULL;
        }
        free(dir);
    }
    if ((kv = zs_config_find(cf, "server-stop-signal"))) {
        zs_kv_where(kv, w, sizeof(w));
        const char *v = kv->value + (strncmp(kv->value, "SIG", 3) ? 0 : 3);
        int i = 0;
        while (stop_signals[i].name && strcmp(stop_signals[i].name, v))
            i++;
        if (stop_signals[i].name)
            s->stop_signal = stop_signals[i].sig;
        else
            zs_errs_add(errs, "%s: server-stop-signal: '%s': expected TERM, INT, QUIT, HUP, USR1 or USR2", w,
                        kv->value);
    }
}

/* The names masterd gives a child itself (zs_spawn.c): a server-env could only contradict them. */
static const char *reserved_env[] = { "LISTEN_", "ZMASTER_", "NOTIFY_SOCKET=", NULL };

static void check_env(zs_service *s, const zs_config *cf, zs_errs *errs)
{
    const zs_kv *kv;
    char w[600];
    if ((kv = zs_config_find(cf, "server-env-clear"))) {
        zs_kv_where(kv, w, sizeof(w));
        if (!strcmp(kv->value, "yes"))
            s->env_clear = 1;
        else if (strcmp(kv->value, "no"))
            zs_errs_add(errs, "%s: server-env-clear: '%s': expected yes or no", w, kv->value);
    }
    for (kv = zs_config_find(cf, "server-env"); kv; kv = zs_config_next(cf, "server-env", kv)) {
        zs_kv_where(kv, w, sizeof(w));
        const char *v = kv->value, *eq = strchr(v, '=');
        size_t len = eq ? (size_t)(eq - v) : 0;
        if (!eq) {
            zs_errs_add(errs, "%s: server-env: '%s': expected NAME=VALUE", w, v);
            continue;
        }
        if (!len) {
            zs_errs_add(errs, "%s: server-env: '%s': empty name", w, v);
            continue;
        }
        if ((v[0] >= '0' && v[0] <= '9') || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                      "0123456789_") != len) {
            zs_errs_add(errs, "%s: server-env: '%s': '%.*s' is not a valid name (letters, digits and _, not "
                        "starting with a digit)", w, v, (int)len, v);
            continue;
        }
        int bad = 0;
        for (int i = 0; reserved_env[i]; i++)
            bad |= !strncmp(v, reserved_env[i], strlen(reserved_env[i]));
        if (bad) {
            zs_errs_add(errs, "%s: server-env: '%s': %.*s is set by masterd (LISTEN_*, ZMASTER_*, NOTIFY_SOCKET)",
                        w, v, (int)len, v);
            continue;
        }
        int i = 0;
        while (i < s->nenv && strncmp(s->env[i], v, len + 1))
            i++;
        if (i == s->nenv) {
            s->env = zs_xrealloc(s->env, ((size_t)s->nenv + 2) * sizeof(char *));
            s->env[s->nenv++] = NULL;
            s->env[s->nenv] = NULL;
        }
        free(s->env[i]);
        s->env[i] = zs_xstrdup(v);
    }
}

/* The same address twice in one service, or a unix socket and a fifo at one path, could
 * never be bound; masterd also checks across services, with the same messages. */
static void check_duplicates(const zs_service *s, zs_errs *errs)
{
    for (int i = 0; i < s->nlisten; i++) {
        const zs_listen *a = &s->listen[i];
        const char *pa = zs_listen_bound_path(a);
        for (int j = 0; j < i; j++) {
            const zs_listen *b = &s->listen[j];
            const char *pb = zs_listen_bound_path(b);
            const char *wa = a->where ? a->where : "server-service", *wb = b->where ? b->where : "?";
            if (!strcmp(a->key, b->key))
                zs_errs_add(errs, "%s: server-service: '%s' is already listed at %s ('%s')", wa, a->text, wb, b->text);
            else if (pa && pb && !strcmp(pa, pb))
                zs_errs_add(errs, "%s: server-service: '%s' is the path '%s' of '%s' at %s (a unix socket and a "
                            "fifo cannot share a path)", wa, a->text, pa, b->text, wb);
            else
                continue;
            break;
        }
    }
}

/* A setting a later one replaced is checked as if it were alone, so a bad value is an error
 * even when another setting of its key won (doc/CONTRACT.md §2: every value is checked). */
static void check_replaced(const zs_config *cf, const char *id, zs_errs *errs)
{
    for (size_t i = 0; i < cf->nshadow; i++) {
        const zs_kv *kv = &cf->shadow[i];
        zs_config one;
        zs_service tmp;
        zs_config_init(&one);
        zs_config_set(&one, kv->key, kv->value, kv->file, kv->line);
        if (zs_service_from_config(&tmp, id, NULL, &one, 0, errs) == 0)
            zs_service_free(&tmp);
        zs_config_free(&one);
    }
}

int zs_service_from_config(zs_service *s, const char *id, const char *cf_path, const zs_config *cf,
                           int need_command, zs_errs *errs)
{
    size_t before = errs->n;
    long n;
    char w[600];

    memset(s, 0, sizeof(*s));
    s->id = zs_xstrdup(id);
    s->cf_path = cf_path ? zs_xstrdup(cf_path) : NULL;
    s->proc_count = 1;
    s->restart = ZS_RESTART_ALWAYS;
    s->unix_mode = 0666;
    s->backlog = 511;
    s->max_nofile = -1;
    s->core_size = -1;
    s->ready_timeout = 30;
    s->stop_signal = SIGTERM;

    zs_service_check_keys(cf, errs);
    check_replaced(cf, id, errs);
    check_command(s, cf, need_command, errs);
    check_enum_keys(s, cf, errs);
    check_env(s, cf, errs);
    check_run_keys(s, cf, errs);
    check_user_access(s, cf, errs);
    if (get_num(cf, "server-proc-count", 1, 4096, &n, errs) == 0 && zs_config_find(cf, "server-proc-count"))
        s->proc_count = (int)n;
    if (get_secs(cf, "server-stop-on-softstop-after", 0, 86400, &n, errs) == 0 && zs_config_find(cf, "server-stop-on-softstop-after"))
        s->softstop_after = (int)n;
    if (get_num(cf, "server-listen-backlog", 1, 65535, &n, errs) == 0 && zs_config_find(cf, "server-listen-backlog"))
        s->backlog = (int)n;
    if (get_num(cf, "server-max-nofile", 16, 1 << 24, &n, errs) == 0 && zs_config_find(cf, "server-max-nofile"))
        s->max_nofile = n;
    if (get_secs(cf, "server-ready-timeout", 1, 86400, &n, errs) == 0 && zs_config_find(cf, "server-ready-timeout"))
        s->ready_timeout = (int)n;

    for (const zs_kv *kv = zs_config_find(cf, "server-service"); kv; kv = zs_config_next(cf, "server-service", kv)) {
        zs_kv_where(kv, w, sizeof(w));
        char *base = kv_base(kv);
        zs_listen_parse_list_at(kv->value, id, w, base, &s->listen, &s->nlisten, errs);
        free(base);
    }
    check_duplicates(s, errs);
    if (errs->n != before) {
        zs_service_free(s);
        return -1;
    }
    return 0;
}

void zs_service_free(zs_service *s)
{
    free(s->id);
    free(s->cf_path);
    for (int i = 0; s->argv && i < s->argc; i++)
        free(s->argv[i]);
    free(s->argv);
    free(s->exec_path);
    zs_listen_free_array(s->listen, s->nlisten);
    free(s->log);
    free(s->user);
    for (int i = 0; i < s->nenv; i++)
        free(s->env[i]);
    free(s->env);
    free(s->chdir);
    memset(s, 0, sizeof(*s));
}

