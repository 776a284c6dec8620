/*
 * zs_err.c — error lists and the allocation helpers (zs_err.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "zs_err.h"
#include "zs_escape.h"

static void oom(size_t n)
{
    char buf[96];
    int len = snprintf(buf, sizeof(buf), "out of memory (%zu bytes)\n", n);
    if (len > 0)
        (void)!write(2, buf, (size_t)len);
    abort();
}

void *zs_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *zs_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *zs_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *zs_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        oom(strlen(s) + 1);
    return p;
}

static char *vasprintf_x(const char *fmt, va_list ap)
{
    char *p = NULL;
    if (vasprintf(&p, fmt, ap) < 0)
        oom(strlen(fmt));
    return p;
}

char *zs_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = vasprintf_x(fmt, ap);
    va_end(ap);
    return p;
}

void zs_errs_add(zs_errs *e, const char *fmt, ...)
{
    va_list ap;
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->msg = zs_xrealloc(e->msg, e->cap * sizeof(char *));
    }
    va_start(ap, fmt);
    char *raw = vasprintf_x(fmt, ap);
    va_end(ap);
    /* Escaped here, once, for every place an error goes (masterd's stderr, its log, a control
     * client): a value or file name quoted in it may hold any byte (zs_escape.h). */
    size_t n = strlen(raw), cap = 4 * n + 1;
    char *msg = zs_xmalloc(cap);
    msg[zs_escape_line(msg, cap, raw, n)] = '\0';
    free(raw);
    e->msg[e->n++] = msg;
}

void zs_errs_free(zs_errs *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->msg[i]);
    free(e->msg);
    memset(e, 0, sizeof(*e));
}


char *zs_path_join(const char *base, const char *path)
{
    if (!base || path[0] == '/')
        return zs_xstrdup(path);
    while (path[0] == '.' && path[1] == '/')
        path += 2 + strspn(path + 2, "/");
    return *path ? zs_xasprintf("%s/%s", base, path) : zs_xstrdup(base);
}

/* Pointers to message slots, by text, then by slot (the earlier first). */
static int by_slot_text(const void *a, const void *b)
{
    char **const *x = a, **const *y = b;
    int c = strcmp(**x, **y);
    return c ? c : (*x < *y ? -1 : *x > *y);
}

void zs_errs_dedup(zs_errs *e, size_t from)
{
    if (e->n < from + 2)
        return;
    /* Sorted, a repeat comes right after the first of its text (O(n log n), for a directory of
     * thousands of services sharing a .gcf): it is freed and its slot emptied, then the slots
     * close up in their order. */
    size_t n = e->n - from, k = from;
    char ***v = zs_xcalloc(n, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = &e->msg[from + i];
    qsort(v, n, sizeof(*v), by_slot_text);
    const char *keep = *v[0];
    for (size_t i = 1; i < n; i++) {
        if (!strcmp(*v[i], keep)) {
            free(*v[i]);
            *v[i] = NULL;
        } else {
            keep = *v[i];
        }
    }
    free(v);
    for (size_t i = from; i < e->n; i++)
        if (e->msg[i])
            e->msg[k++] = e->msg[i];
    e->n = k;
}
