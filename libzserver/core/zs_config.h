/*
 * zs_config.h — the `key = value` store behind every .cf / .gcf file and `-key value` argument.
 *
 * Files are read with inih through our own line reader, which knows the line number and refuses
 * a line longer than ZS_CONFIG_MAX_LINE characters (Debian's inih would split it into garbage).
 * A later setting of a key replaces an earlier one, except `server-service`, whose settings
 * accumulate (each kept as its own entry), so long listen lists can span lines and every listen
 * entry's error names its own line.  Every value remembers the file and line it came from.  A
 * replaced setting is kept aside (shadow), out of the view, so validation can check every
 * value an operator wrote, not only the one that won.
 * The reader strips leading blanks before inih sees a line, so inih's multi-line continuation
 * can never glue an indented line onto the previous value.
 */
#ifndef ZS_CONFIG_H
#define ZS_CONFIG_H
#include <stddef.h>
#include "zs_err.h"

#define ZS_CONFIG_MAX_LINE 199

typedef struct zs_kv {
    char *key;
    char *value;
    char *file;   /* where it was set: a path, or "argv" */
    int line;     /* 0 for arguments */
    size_t next;  /* index of the next setting of the same key, SIZE_MAX when none */
} zs_kv;

/* Settings in the order they were made, and a hash index from each key to its first and last
 * setting, so that a lookup costs the same with 10 keys or 100,000.  Members are read-only
 * outside zs_config.c; a zs_config may be moved (assigned) whole. */
typedef struct zs_config {
    zs_kv *kv;
    size_t n, cap;
    zs_kv *shadow;  /* settings a later one replaced, in the order they were replaced */
    size_t nshadow, capshadow;
    struct zs_config_slot *slots; /* open addressing, nslots a power of two (0: none yet) */
    size_t nslots;
    zs_errs *load_errs;  /* errors of files loaded through zconfig_load_from_pathname (zc_core.h) */
} zs_config;

void zs_config_init(zs_config *c);
void zs_config_free(zs_config *c);
/* Sets key (replacing; `server-service` adds an entry). */
void zs_config_set(zs_config *c, const char *key, const char *value, const char *file, int line);
/* The first (for server-service) or only setting of key; NULL when unset. */
const zs_kv *zs_config_find(const zs_config *c, const char *key);
/* The setting of key after prev (NULL: the first); NULL when there is no other. */
const zs_kv *zs_config_next(const zs_config *c, const char *key, const zs_kv *prev);
/* Removes every setting of key (and every replaced one). */
void zs_config_unset(zs_config *c, const char *key);
const char *zs_config_get(const zs_config *c, const char *key, const char *def);
/* The process's own config (a server's merged view; a master's command line): zvar_default_config. */
extern zs_config zs_process_config;
/* "file:line" of a setting (just "file" for one without a line), for messages. */
void zs_kv_where(const zs_kv *kv, char *buf, size_t len);
/* Gives every setting (and replaced one) made without a file and line the name file, for messages. */
void zs_config_name_unfiled(zs_config *c, const char *file);
/* Copies every setting of src into c, in order (its replaced ones as replaced ones). */
void zs_config_merge(zs_config *c, const zs_config *src);

/* Reads one file into c (a FIFO, directory, device or dangling symlink is an error naming it;
 * opening never blocks).  Syntax errors and over-long lines are added to errs as
 * `path:line: ...` and the other lines are still read; returns 0, -1 when any line was refused,
 * -2 when the file could not be read at all (nothing was added to c). */
int zs_config_load_file(zs_config *c, const char *path, zs_errs *errs);
/* The same reader over len bytes in memory (NULs and all); name stands for the path in messages. */
int zs_config_load_mem(zs_config *c, const char *name, const char *buf, size_t len, zs_errs *errs);
/* Reads every DIR/NAME.gcf in sorted order.  Returns -1 on any error. */
int zs_config_load_gcf_dir(zs_config *c, const char *dir, zs_errs *errs);

/* Sorted list of the DIR/NAME+SUFFIX entry names (not paths; NAME not starting with a dot), of any
 * type: loading one that is not a readable regular file is the error.  Returns the count or -1. */
int zs_config_list_dir(const char *dir, const char *suffix, char ***names, zs_errs *errs);
void zs_config_free_list(char **names, int n);

/* The whole view in a sealed memfd (close-on-exec): what masterd hands a child (ZS_ST_CONFIG)
 * instead of letting it read the files.  Returns the fd, or -1 with the reason in why. */
int zs_config_to_memfd(const zs_config *c, char *why, size_t whylen);
/* Adds every setting of such a memfd to c (in order; file:line kept).  The memfd must be sealed
 * and well-formed (lengths, no NUL bytes); else -1 with the reason and c untouched. */
int zs_config_from_memfd(zs_config *c, int fd, char *why, size_t whylen);

/* Strict number parsing: the whole string must be a base-10 integer in [min, max].
 * Return 0 and set *out, or -1 and write the reason ("not a number", "out of range 1..4096"). */
int zs_parse_long(const char *s, long min, long max, long *out, char *why, size_t whylen);
/* yes/no/true/false/on/off/1/0/y/n (lib-zc's words and ours); -1 when it is none of them. */
int zs_parse_bool(const char *s);
#endif
