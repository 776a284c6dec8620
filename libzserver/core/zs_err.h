/*
 * zs_err.h — a list of error lines, so validation can report every problem at once
 * (`masterd -t`, reload) instead of stopping at the first.  Lines read `file:line: key: what`.
 */
#ifndef ZS_ERR_H
#define ZS_ERR_H
#include <stddef.h>

typedef struct zs_errs {
    char **msg;
    size_t n, cap;
} zs_errs;

void zs_errs_add(zs_errs *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void zs_errs_free(zs_errs *e);
/* Drops every message from index `from` on that repeats an earlier one (from `from` on),
 * keeping the first of each in order. */
void zs_errs_dedup(zs_errs *e, size_t from);
/* How many errors a report shows before `... and N more errors` (masterd -t, start, reload). */
#define ZS_ERRS_SHOWN 20

/* Small allocation helpers that abort loudly on out-of-memory: a supervisor that cannot
 * allocate a few bytes cannot keep any promise, so it stops instead of limping. */
void *zs_xmalloc(size_t n);
void *zs_xcalloc(size_t n, size_t size);
void *zs_xrealloc(void *p, size_t n);
char *zs_xstrdup(const char *s);
char *zs_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* path taken from the directory base: path itself when absolute or base is NULL, else
 * base/path without path's leading "./" (malloc'd). */
char *zs_path_join(const char *base, const char *path);
#endif
