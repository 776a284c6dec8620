/*
 * md_set.h — the service set: a config directory loaded and validated as a whole, and the
 * listening sockets its services use.
 *
 * Loading never touches the running system; binding happens separately and only for addresses
 * no running set already holds, so a reload keeps every socket whose address stays configured.
 */
#ifndef MD_SET_H
#define MD_SET_H
#include <sys/stat.h>
#include "core/zs_config.h"
#include "core/zs_service.h"
#include "super/zs_supervisor.h"
#include "super/zs_sv_stats.h"

typedef struct md_listener {
    struct md_listener *next;
    zs_listen l;        /* a copy of the entry that bound it */
    int fd;
    int refs;           /* services (of any running set) using it */
    int made_fifo;      /* masterd created this fifo (so it removes it again) */
    int backlog;        /* as last applied: a reload that changes them applies them */
    unsigned mode;
    int queue_max;      /* the longest accept queue md_status saw on it */
} md_listener;

typedef struct md_svc {
    zs_service svc;
    zs_config cf;       /* merged view (.gcf files, then the .cf): what the server reads */
    int cf_fd;          /* cf in a sealed memfd (zs_config_to_memfd): what its children get */
    struct stat bin;    /* server-command's binary when loaded: a change means a new generation */
    int *fds;           /* one per svc.listen, once bound */
    md_listener **lis;
    zs_generation *current; /* the current generation, NULL once retired */
    unsigned gen;
    int refs;           /* the running set, and every generation running this config */
    int held;           /* held down (masterctl stop) until start or a reload that changes it */
    zs_restarts past;   /* restarts of this service's generations already freed */
    zs_exit_info past_exit; /* and the last unexpected exit among them */
} md_svc;

typedef struct md_set {
    md_svc **v;
    int n;
    int *order;         /* v's indexes sorted by service id (md_set_find), once loaded */
    char *dir;
    zs_errs warn;       /* warnings of the load (unsafe permissions), for the caller to log */
} md_set;

/* The key lib-zc's loader records a service's file in (zmaster_server_load_config_from_dirname). */
#define MD_KEY_FILE "___Z_20181216_fn"
/* The services' configs (md_source.c): from zmaster_server_load_config when a program set it
 * (called by md_source_open; a config pushed twice is an error in errs, kept once), else from
 * DIR's *.cf files, each read when md_source_take asks for it (a directory that cannot be listed
 * gives one last config that carries only the errors, in its load_errs). */
typedef struct md_source md_source;
md_source *md_source_open(const char *dir, zs_errs *errs);
/* DIR's *.cf files whatever the hook (zmaster_server_load_config_from_dirname's source). */
md_source *md_source_open_dir(const char *dir);
int md_source_count(const md_source *src);
/* Config i (0 <= i < count, each once), the caller's to zconfig_free. */
struct zs_config *md_source_take(md_source *src, int i);
void md_source_close(md_source *src);
/* What messages call that source: the hook's name, or dir. */
const char *md_source_name(const char *dir);

/* Loads DIR: every *.gcf then each *.cf (sorted), validated, addresses unique across files.
 * With a zmaster_server_load_config hook the services are the hook's configs instead (DIR, which
 * may then be NULL, only gives the *.gcf files).
 * Returns 0, or -1 with every problem in errs (out is left empty).  Run as root, a config
 * file or the directory being writable by group or others (or owned by another user) is a
 * warning in out->warn: masterd runs what they say as root. */
int md_set_load(const char *dir, md_set *out, zs_errs *errs);
/* The same in steps, so that a reload never holds masterd's loop for long: md_set_load_begin
 * reads the *.gcf files and lists the services (or calls the hook); each md_set_load_step
 * loads services until `budget` seconds have passed or MD_LOAD_STEP_MAX are loaded (at least
 * one) and returns 1 once all are loaded; md_set_load_end checks the set as a whole and gives
 * what md_set_load would.  It, or md_set_load_abort, frees the loader. */
#define MD_LOAD_STEP_MAX 64
typedef struct md_set_loader md_set_loader;
md_set_loader *md_set_load_begin(const char *dir);
int md_set_load_step(md_set_loader *ld, double budget);
int md_set_load_end(md_set_loader *ld, md_set *out, zs_errs *errs);
void md_set_load_abort(md_set_loader *ld);
/* How many services the loader has loaded, of how many. */
void md_set_load_progress(const md_set_loader *ld, int *done, int *total);
/* A path masterd itself makes a socket at (what names it, e.g. "-control"): from now on every
 * md_set_load refuses a listen entry or masterlog socket at that path, however spelled.
 * NULL: none.  The path is copied. */
void md_set_reserve_path(const char *path, const char *what);
/* Logs set->warn with zwarning (each line after prefix) and empties it. */
void md_set_log_warnings(md_set *set, const char *prefix);
void md_set_free(md_set *set);
/* Frees one service (its listeners must be unbound). */
void md_svc_free(md_svc *m);
md_svc *md_set_find(const md_set *set, const char *id);

/* Adds an error for every pair of the set's listen entries that cannot both be bound, and for a
 * path md_set_reserve_path keeps (md_set_clash.c). */
void md_set_check_addresses(const md_set *set, zs_errs *errs);
/* Adds an error for every unix socket or fifo of set (not already in table) whose directory
 * another user could write (zs_listen_check_dir).  Returns 0, or -1 when any was added. */
int md_set_check_dirs(const md_set *set, const md_listener *table, zs_errs *errs);
/* Gives every service of set its listening fds, binding only addresses not already in *table.
 * On failure nothing new stays bound and err names the address.  Returns 0 or -1. */
int md_set_bind(md_set *set, md_listener **table, char *err, size_t errlen);
/* Drops svc's references; sockets no service uses any more are closed (unix files removed). */
void md_svc_unbind(md_svc *svc, md_listener **table);
/* True when a and b would run the same thing (same merged config and binary) apart from
 * server-proc-count, so a reload can scale the running generation instead of replacing it. */
int md_svc_same_but_count(const md_svc *a, const md_svc *b);
#endif
