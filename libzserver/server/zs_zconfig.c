/*
 * zs_zconfig.c — zconfig_get_* (zserver.h): typed reads of the merged config view.
 * A value that does not parse is fatal, naming where it was set: a server must not run on a
 * setting it half understood.
 */
#include <limits.h>
#include <stdio.h>
#include "zs_server.h"
#include "zserver.h"

/* "file:line" for a file setting, "argument -key" for a command-line one. */
static const char *setting_place(const zs_kv *kv, char *buf, size_t len)
{
    if (kv->line > 0)
        snprintf(buf, len, "%s:%d", kv->file, kv->line);
    else
        snprintf(buf, len, "argument -%s", kv->key);
    return buf;
}

const char *zconfig_get_str(const char *key, const char *def)
{
    return zs_config_get(&zs_server_config, key, def);
}

long zconfig_get_int(const char *key, long def)
{
    const zs_kv *kv = zs_config_find(&zs_server_config, key);
    char why[128], where[600];
    long v;
    if (!kv)
        return def;
    if (zs_parse_long(kv->value, LONG_MIN, LONG_MAX, &v, why, sizeof(why)) < 0)
        zfatal("%s: %s: '%s': %s", setting_place(kv, where, sizeof(where)), key, kv->value, why);
    return v;
}

int zconfig_get_bool(const char *key, int def)
{
    const zs_kv *kv = zs_config_find(&zs_server_config, key);
    char where[600];
    if (!kv)
        return def;
    int v = zs_parse_bool(kv->value);
    if (v < 0)
        zfatal("%s: %s: '%s': expected yes or no", setting_place(kv, where, sizeof(where)), key, kv->value);
    return v;
}
