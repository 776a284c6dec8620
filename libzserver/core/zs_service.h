/*
 * zs_service.h — one service's run settings: the server-* keys of its merged config validated
 * (doc/CONTRACT.md §2) into what the supervision layer spawns it with (command, listen entries, count,
 * user, limits, environment).  masterd makes one per .cf file (`-t`, start, reload), a program
 * run `alone` one from its own config and arguments.  Filled once by zs_service_from_config and
 * read-only afterwards: a reload makes new ones beside the old.
 */
#ifndef ZS_SERVICE_H
#define ZS_SERVICE_H
#include <sys/types.h>
#include "zs_config.h"
#include "zs_listen.h"

enum zs_restart { ZS_RESTART_ALWAYS = 0, ZS_RESTART_ON_FAILURE, ZS_RESTART_NEVER };

typedef struct zs_service {
    char *id;            /* file name without .cf */
    char *cf_path;       /* CONFIG_DIR/ID.cf, or NULL (alone mode without -config) */
    char **argv;         /* server-command words, NULL-terminated */
    int argc;
    char *exec_path;     /* argv[0] resolved (PATH search when it has no '/') */
    zs_listen *listen;
    int nlisten;
    int proc_count;
    char *log;           /* server-log */
    int softstop_after;
    int restart;
    char *user;          /* NULL: masterd's user */
    uid_t uid;
    gid_t gid;
    unsigned unix_mode;
    int backlog;
    long long max_nofile;/* -1: inherited */
    long long core_size; /* -1: inherited, -2: unlimited */
    int ready_timeout;
    char **env;          /* server-env NAME=VALUE entries, NULL-terminated; a name once */
    int nenv;
    int env_clear;       /* server-env-clear: start from an empty environment */
    char *chdir;         /* server-chdir, absolute; NULL: masterd's working directory */
    int stop_signal;     /* server-stop-signal: what a plain program's soft-stop is (SIGTERM) */
} zs_service;

/* A relative path in a setting that came from a file is taken from that file's directory (for
 * masterd, the config directory -C); one from the command line (line 0) from the working
 * directory.  Returns a malloc'd path, absolute whenever the file's directory is known. */
char *zs_service_path(const zs_kv *kv, const char *path);
/* When path is a script ("#!" first) whose absolute interpreter cannot be executed: its path in
 * interp (at most len bytes with the NUL) and 1, errno the reason.  0 otherwise (no script, a
 * relative interpreter, which the kernel looks up in the child's directory, or one that runs). */
int zs_exec_interpreter_missing(const char *path, char *interp, size_t len);

/* Validates every server-* key of cf into s, and every setting of cf a later one replaced
 * (zs_config's shadow), so no value written goes unchecked.  Errors are `file:line: key: what`.
 * need_command: server-command is required (masterd) or not (alone mode).
 * Returns 0, or -1 with every problem added to errs (s is then freed). */
int zs_service_from_config(zs_service *s, const char *id, const char *cf_path, const zs_config *cf,
                           int need_command, zs_errs *errs);
void zs_service_free(zs_service *s);
/* (zs_service_keys.c) The key names of cf: under the reserved prefixes server- and master-,
 * matched in any case, a case variant of a known key, an unknown server-* key and lib-zc's
 * master-chroot / master-chdir are errors added to errs. */
void zs_service_check_keys(const zs_config *cf, zs_errs *errs);
#endif
