/*
 * md_source.c — where the services' configs come from (doc/CONTRACT.md §13): lib-zc's
 * zmaster_server_load_config hook when a program built on zmaster_server_main sets it, else
 * zmaster_server_load_config_from_dirname over -C DIR, which is also the hook's default loader.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "md_set.h"
#include "core/zc_core.h"

void (*zmaster_server_before_service)(void) = NULL;
void (*zmaster_server_load_config)(zvector_t *cfs) = NULL;

/* DIR's file NAME, with the key naming it. */
static zconfig_t *load_named(const char *dir, const char *name)
{
    char *path = zs_xasprintf("%s/%s", dir, name);
    zconfig_t *cf = zconfig_create();
    zconfig_load_from_pathname(cf, path);
    zconfig_update_string(cf, MD_KEY_FILE, path, -1);
    free(path);
    return cf;
}

void zmaster_server_load_config_from_dirname(const char *dir, zvector_t *cfs)
{
    md_source *src = md_source_open_dir(dir);
    for (int i = 0; i < md_source_count(src); i++)
        zvector_push(cfs, md_source_take(src, i));
    md_source_close(src);
}

typedef struct pushed {
    const void *p;
    int idx;
} pushed;

static int by_pointer(const void *a, const void *b)
{
    const pushed *x = a, *y = b;
    if (x->p != y->p)
        return (uintptr_t)x->p < (uintptr_t)y->p ? -1 : 1;
    return x->idx - y->idx;
}

/* A config the hook pushed twice is one object: an error, kept (and freed) once. */
static void drop_repeats(zvector_t *cfs, zs_errs *errs)
{
    if (cfs->len < 2)
        return;
    pushed *v = zs_xcalloc((size_t)cfs->len, sizeof(*v));
    char *repeat = zs_xcalloc((size_t)cfs->len, 1);
    for (int i = 0; i < cfs->len; i++)
        v[i] = (pushed){ cfs->data[i], i };
    qsort(v, (size_t)cfs->len, sizeof(*v), by_pointer);
    for (int i = 1, first = 0; i < cfs->len; i++) {
        if (!v[i].p || v[i].p != v[i - 1].p) {
            first = v[i].idx;
            continue;
        }
        zs_errs_add(errs, "zmaster_server_load_config: config #%d is config #%d again (one zconfig_t pushed twice)",
                    v[i].idx + 1, first + 1);
        repeat[v[i].idx] = 1;
    }
    int k = 0;
    for (int i = 0; i < cfs->len; i++)
        if (!repeat[i])
            cfs->data[k++] = cfs->data[i];
    zvector_truncate(cfs, k);
    free(repeat);
    free(v);
}

const char *md_source_name(const char *dir)
{
    return zmaster_server_load_config ? "zmaster_server_load_config" : dir;
}

/* Either the configs a hook returned, or DIR's *.cf names, each read when taken (so a reload
 * can read a few files per loop iteration), and at the end what listing DIR said. */
struct md_source {
    zvector_t *cfs;
    char *dir;
    char **names;
    int nnames;
    zs_errs list_errs;
};

md_source *md_source_open_dir(const char *dir)
{
    md_source *src = zs_xcalloc(1, sizeof(*src));
    if (!dir || !*dir) {
        zs_errs_add(&src->list_errs, "zmaster_server_load_config_from_dirname: no config directory given");
        return src;
    }
    src->dir = zs_xstrdup(dir);
    src->nnames = zs_config_list_dir(dir, ".cf", &src->names, &src->list_errs);
    if (src->nnames < 0)
        src->nnames = 0;
    return src;
}

md_source *md_source_open(const char *dir, zs_errs *errs)
{
    if (!zmaster_server_load_config)
        return md_source_open_dir(dir);
    md_source *src = zs_xcalloc(1, sizeof(*src));
    src->cfs = zvector_create(-1);
    zmaster_server_load_config(src->cfs);
    drop_repeats(src->cfs, errs);
    return src;
}

int md_source_count(const md_source *src)
{
    if (src->cfs)
        return src->cfs->len;
    return src->nnames + (src->list_errs.n ? 1 : 0);
}

zconfig_t *md_source_take(md_source *src, int i)
{
    if (src->cfs) {
        zconfig_t *cf = (zconfig_t *)src->cfs->data[i];
        src->cfs->data[i] = NULL;
        return cf;
    }
    if (i < src->nnames)
        return load_named(src->dir, src->names[i]);
    zconfig_t *cf = zconfig_create(); /* only errors: the directory could not be listed */
    cf->load_errs = zs_xmalloc(sizeof(*cf->load_errs));
    *cf->load_errs = src->list_errs;
    memset(&src->list_errs, 0, sizeof(src->list_errs));
    return cf;
}

void md_source_close(md_source *src)
{
    if (!src)
        return;
    if (src->cfs) {
        for (int i = 0; i < src->cfs->len; i++)
            zconfig_free((zconfig_t *)src->cfs->data[i]);
        zvector_free(src->cfs);
    }
    if (src->nnames > 0)
        zs_config_free_list(src->names, src->nnames);
    zs_errs_free(&src->list_errs);
    free(src->dir);
    free(src);
}
