/*
 * zs_listen.h — listen entries (`[NAME://]ADDRESS`, doc/CONTRACT.md §3): parsing (zs_listen.c),
 * binding (zs_listen_bind.c) and the check of a unix socket's directory (zs_listen_dir.c).
 *
 * Parsing does no I/O but the checks a config error must catch early (a unix path whose parent
 * directory is missing).  Binding returns a listening, non-blocking, close-on-exec fd.
 */
#ifndef ZS_LISTEN_H
#define ZS_LISTEN_H
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "zs_err.h"

enum zs_listen_kind { ZS_LISTEN_INET = 1, ZS_LISTEN_INET6, ZS_LISTEN_UNIX, ZS_LISTEN_FIFO };

typedef struct zs_listen {
    char *name;       /* service name handed to the server (NAME, or the default) */
    char *text;       /* the entry as written, for messages */
    char *key;        /* canonical address, for duplicate detection: "inet:1.2.3.4:25", "unix:/abs" */
    int kind;
    struct sockaddr_storage sa;
    socklen_t salen;
    char *path;       /* unix and fifo */
    char *where;      /* `file:line` of the server-service setting, for messages (may be NULL) */
} zs_listen;

/* Whether s[0..len) may name a service (letters, digits, '-', '_', '.'): it goes into
 * LISTEN_FDNAMES, whose separator is ':', and into log lines. */
int zs_listen_name_ok(const char *s, size_t len);
/* Parses one entry; a relative unix or fifo path is relative to the working directory.
 * Returns 0, or -1 with the reason in why. */
int zs_listen_parse(const char *entry, const char *default_name, zs_listen *out, char *why, size_t whylen);
/* The same, a relative path taken from the absolute directory base (NULL: the working
 * directory); path is then the absolute path, text the entry as written. */
int zs_listen_parse_at(const char *entry, const char *default_name, const char *base, zs_listen *out,
                       char *why, size_t whylen);
/* Parses a comma-separated list; appends to *v / *n.  Each bad entry adds `where: server-service:
 * 'entry': reason` to errs.  Empty items between commas are ignored.  Returns -1 on any error. */
int zs_listen_parse_list(const char *list, const char *default_name, const char *where,
                         zs_listen **v, int *n, zs_errs *errs);
/* The same, relative paths taken from base (as zs_listen_parse_at). */
int zs_listen_parse_list_at(const char *list, const char *default_name, const char *where, const char *base,
                            zs_listen **v, int *n, zs_errs *errs);
/* The canonical form of a path a socket or fifo is made at, for comparing paths however they
 * were spelled: the real parent directory plus the last component (the file itself may not
 * exist yet).  Malloc'd, or NULL with why when the parent is missing. */
char *zs_path_canonical(const char *path, char *why, size_t whylen);
/* The resolved filesystem path a unix socket or fifo entry binds (two entries with one path
 * clash, whatever their kinds), or NULL for an inet entry. */
const char *zs_listen_bound_path(const zs_listen *l);
void zs_listen_free(zs_listen *l);
void zs_listen_free_array(zs_listen *v, int n);

/* Binds and listens (or creates and opens the fifo).  unix sockets / fifos get mode (a socket
 * through the umask at bind, a fifo by fchmod on the fd opened O_NOFOLLOW: never a chmod of
 * the path, which a swap could point elsewhere); a stale
 * unix socket file nobody listens on is removed first, any other file is left alone.
 * Returns the fd, or -1 with `address: reason` in err. */
int zs_listen_bind(const zs_listen *l, int backlog, unsigned mode, char *err, size_t errlen);
/* Refuses a unix socket or fifo whose directory (or any directory above it, as written or as
 * resolved) another user could write: owned by someone other than root, masterd's euid or
 * allow_uid (the service's user; (uid_t)-1 for none), or writable by others or by a group other
 * than root's or masterd's egid, unless sticky.  Such a user could swap the file masterd just
 * made, or replace the socket clients trust.  0 (inet entries too), or -1 with
 * `where: server-service: 'entry': why` in err. */
int zs_listen_check_dir(const zs_listen *l, uid_t allow_uid, char *err, size_t errlen);
/* The same check for the directory of any file path: 0, or -1 with why ("directory D is ..."). */
int zs_path_dir_check(const char *path, uid_t allow_uid, char *why, size_t whylen);
/* What fd type (zvar_tcp_listen_type_*) an inherited fd is, from the kernel: -1 if unknown. */
int zs_listen_fd_type(int fd);
#endif
