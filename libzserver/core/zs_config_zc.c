/*
 * zs_config_zc.c — lib-zc's zconfig_t calls (zc_core.h) on our zs_config store: the objects a
 * master's zmaster_server_load_config hook builds its services' configs with, and the typed
 * reads zconfig_get_str/int/bool/second/size (zc.h's macros name these zc_config_get_*), with
 * lib-zc's value rules (bool 1/y/yes/true, seconds with s/m/h/d/w, sizes with b/k/m/g;
 * zs_units.h).  A value that does not parse is fatal, naming where it was set: a program must
 * not run on a setting it half understood.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "zc_core.h"
#include "zs_config.h"
#include "zs_log.h"
#include "zs_units.h"
#include "zserver_core.h"

zconfig_t *zvar_default_config = &zs_process_config;

/* Where a setting made in code comes from, for messages (line 0: no file). */
#define SET_IN_CODE "(set in code)"

zconfig_t *zconfig_create(void)
{
    zs_config *c = zs_xmalloc(sizeof(*c));
    zs_config_init(c);
    return c;
}

void zconfig_free(zconfig_t *cf)
{
    if (!cf)
        return;
    zs_config_free(cf);
    free(cf);
}

void zconfig_update_string(zconfig_t *cf, const char *name, const char *value, ssize_t len)
{
    if (!value)
        value = "", len = 0;
    char *v = len < 0 ? zs_xstrdup(value) : zs_xasprintf("%.*s", (int)len, value);
    zs_config_unset(cf, name);
    zs_config_set(cf, name, v, SET_IN_CODE, 0);
    free(v);
}

void zconfig_delete(zconfig_t *cf, const char *name)
{
    zs_config_unset(cf, name);
}

void zconfig_reset(zconfig_t *cf)
{
    zs_config_free(cf); /* settings and load errors; cf stays usable */
}

int zconfig_len(const zconfig_t *cf)
{
    int n = 0;
    for (size_t i = 0; i < cf->n; i++)
        if (zs_config_find(cf, cf->kv[i].key) == &cf->kv[i])
            n++;
    return n;
}

int zconfig_load_from_pathname(zconfig_t *cf, const char *pathname)
{
    if (!cf->load_errs)
        cf->load_errs = zs_xcalloc(1, sizeof(*cf->load_errs));
    return zs_config_load_file(cf, pathname, cf->load_errs);
}

void zconfig_load_another(zconfig_t *cf, zconfig_t *another)
{
    zs_config_merge(cf, another);
}

/* ---- typed reads ---- */

/* "file:line" for a file setting, "argument -key" for a command-line one. */
static const char *setting_place(const zs_kv *kv, char *buf, size_t len)
{
    if (kv->line <= 0 && (!kv->file || !*kv->file || !strcmp(kv->file, "argv")))
        snprintf(buf, len, "argument -%s", kv->key);
    else
        zs_kv_where(kv, buf, len); /* file:line, or the name of a setting made in code */
    return buf;
}

/* ---- lib-zc's forms (zc.h): the config first ---- */

typedef int (*unit_parser)(const char *s, long min, long max, long *out, char *why, size_t whylen);

/* name's value in cf read by parse within [min, max], def when absent; fatal when it does not parse. */
static long get_number(const zconfig_t *cf, const char *name, long def, long min, long max, unit_parser parse)
{
    const zs_kv *kv = zs_config_find(cf ? cf : &zs_process_config, name);
    char why[128], where[600];
    long v;
    if (!kv)
        return def;
    if (parse(kv->value, min, max, &v, why, sizeof(why)) < 0)
        zfatal("%s: %s: '%s': %s", setting_place(kv, where, sizeof(where)), name, kv->value, why);
    return v;
}

char *zc_config_get_str(const zconfig_t *cf, const char *name, const char *def)
{
    /* lib-zc returns char *; the value is the view's and must not be changed */
    return (char *)zs_config_get(cf ? cf : &zs_process_config, name, def);
}

int zc_config_get_bool(const zconfig_t *cf, const char *name, int def)
{
    const zs_kv *kv = zs_config_find(cf ? cf : &zs_process_config, name);
    char where[600];
    if (!kv)
        return def;
    int v = zs_parse_bool(kv->value);
    if (v < 0)
        zfatal("%s: %s: '%s': expected 1/y/yes/true or 0/n/no/false", setting_place(kv, where, sizeof(where)), name, kv->value);
    return v;
}

int zc_config_get_int(const zconfig_t *cf, const char *name, int def)
{
    return (int)get_number(cf, name, def, INT_MIN, INT_MAX, zs_parse_long);
}

long zc_config_get_long(const zconfig_t *cf, const char *name, long def)
{
    return get_number(cf, name, def, LONG_MIN, LONG_MAX, zs_parse_long);
}

ssize_t zc_config_get_second(const zconfig_t *cf, const char *name, ssize_t def)
{
    return get_number(cf, name, def, LONG_MIN, LONG_MAX, zs_parse_seconds);
}

ssize_t zc_config_get_size(const zconfig_t *cf, const char *name, ssize_t def)
{
    return get_number(cf, name, def, LONG_MIN, LONG_MAX, zs_parse_size);
}

