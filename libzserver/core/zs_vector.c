/*
 * zs_vector.c — lib-zc's zvector_t (zc_core.h): a list of pointers, NULL-terminated.
 */
#include <stdlib.h>
#include <string.h>
#include "zc_core.h"
#include "zs_err.h"

zvector_t *zvector_create(int size)
{
    zvector_t *v = zs_xcalloc(1, sizeof(*v));
    v->size = size < 1 ? 16 : size;
    v->data = zs_xcalloc((size_t)v->size + 1, sizeof(char *));
    return v;
}

void zvector_free(zvector_t *v)
{
    if (!v)
        return;
    free(v->data);
    free(v);
}

static void room_for_one(zvector_t *v)
{
    if (v->len < v->size)
        return;
    v->size *= 2;
    v->data = zs_xrealloc(v->data, ((size_t)v->size + 1) * sizeof(char *));
}

void zvector_insert(zvector_t *v, int idx, void *val)
{
    if (idx < 0)
        idx = 0;
    if (idx > v->len)
        idx = v->len;
    room_for_one(v);
    memmove(v->data + idx + 1, v->data + idx, (size_t)(v->len - idx) * sizeof(char *));
    v->data[idx] = (char *)val;
    v->data[++v->len] = NULL;
}

zbool_t zvector_delete(zvector_t *v, int idx, void **val)
{
    if (val)
        *val = NULL;
    if (idx < 0 || idx >= v->len)
        return 0;
    if (val)
        *val = v->data[idx];
    memmove(v->data + idx, v->data + idx + 1, (size_t)(v->len - idx - 1) * sizeof(char *));
    v->data[--v->len] = NULL;
    return 1;
}

void zvector_push(zvector_t *v, const void *val)
{
    zvector_insert(v, v->len, (void *)val);
}

zbool_t zvector_pop(zvector_t *v, void **val)
{
    return zvector_delete(v, v->len - 1, val);
}

void zvector_unshift(zvector_t *v, const void *val)
{
    zvector_insert(v, 0, (void *)val);
}

zbool_t zvector_shift(zvector_t *v, void **val)
{
    return zvector_delete(v, 0, val);
}

void zvector_truncate(zvector_t *v, int new_len)
{
    if (new_len >= 0 && new_len < v->len) {
        v->len = new_len;
        v->data[new_len] = NULL;
    }
}

void zvector_reset(zvector_t *v)
{
    zvector_truncate(v, 0);
}
