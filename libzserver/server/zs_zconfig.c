/*
 * zs_zconfig.c — zconfig_get_* (zserver.h) and lib-zc's zc_config_get_* on a zconfig_t (zc.h):
 * typed reads of a config view, with lib-zc's value rules (bool 1/y/yes/true, seconds with
 * s/m/h/d/w, sizes with b/k/m/g; core/zs_units.h).  A value that does not parse is fatal,
 * naming where it was set: a server must not run on a setting it half understood.
 */
#include <limits.h>
#include <stdio.h>
#include "core/zs_units.h"
#include "zs_server.h"
#include "zc.h"

zconfig_t *zvar_default_config = &zs_server_config;

/* "file:line" for a file setting, "argument -key" for a command-line one. */
static const char *setting_place(const zs_kv *kv, char *buf, size_t len)
{
    if (kv->line > 0)
        snprintf(buf, len, "%s:%d", kv->file, kv->line);
    else
        snprintf(buf, len, "argument -%s", kv->key);
    return buf;
}

/* ---- lib-zc's forms (zc.h): the config first ---- */

typedef int (*unit_parser)(const char *s, long min, long max, long *out, char *why, size_t whylen);

/* name's value in cf read by parse within [min, max], def when absent; fatal when it does not parse. */
static long get_number(const zconfig_t *cf, const char *name, long def, long min, long max, unit_parser parse)
{
    const zs_kv *kv = zs_config_find(cf ? cf : &zs_server_config, name);
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
    return (char *)zs_config_get(cf ? cf : &zs_server_config, name, def);
}

int zc_config_get_bool(const zconfig_t *cf, const char *name, int def)
{
    const zs_kv *kv = zs_config_find(cf ? cf : &zs_server_config, name);
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

long zs_server_config_seconds(const char *key, long def)
{
    return get_number(&zs_server_config, key, def, LONG_MIN, LONG_MAX, zs_parse_seconds);
}

/* ---- zserver.h's forms: the server's view ---- */

/* The parentheses keep zc.h's three-argument macros off these names. */
const char *(zconfig_get_str)(const char *key, const char *def)
{
    return zs_config_get(&zs_server_config, key, def);
}

long (zconfig_get_int)(const char *key, long def)
{
    return get_number(&zs_server_config, key, def, LONG_MIN, LONG_MAX, zs_parse_long);
}

int (zconfig_get_bool)(const char *key, int def)
{
    return zc_config_get_bool(&zs_server_config, key, def);
}
