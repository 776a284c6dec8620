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

/* A config that carries only errors (the directory could not be listed): md_set reports them. */
static void push_errors(zvector_t *cfs, zs_errs *errs)
{
    zconfig_t *cf = zconfig_create();
    cf->load_errs = zs_xmalloc(sizeof(*cf->load_errs));
    *cf->load_errs = *errs;
    memset(errs, 0, sizeof(*errs));
    zvector_push(cfs, cf);
}

void zmaster_server_load_config_from_dirname(const char *dir, zvector_t *cfs)
{
    zs_errs errs = { 0 };
    char **names = NULL;
    if (!dir || !*dir) {
        zs_errs_add(&errs, "zmaster_server_load_config_from_dirname: no config directory given");
        push_errors(cfs, &errs);
        return;
    }
    int n = zs_config_list_dir(dir, ".cf", &names, &errs);
    for (int i = 0; i < n; i++) {
        char *path = zs_xasprintf("%s/%s", dir, names[i]);
        zconfig_t *cf = zconfig_create();
        zconfig_load_from_pathname(cf, path);
        zconfig_update_string(cf, MD_KEY_FILE, path, -1);
        zvector_push(cfs, cf);
        free(path);
    }
    if (n > 0)
        zs_config_free_list(names, n);
    if (errs.n)
        push_errors(cfs, &errs);
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

zvector_t *md_source_load(const char *dir, zs_errs *errs)
{
    zvector_t *cfs = zvector_create(-1);
    if (zmaster_server_load_config)
        zmaster_server_load_config(cfs);
    else
        zmaster_server_load_config_from_dirname(dir, cfs);
    drop_repeats(cfs, errs);
    return cfs;
}
