/*
 * zs_zconfig.c — zconfig_get_* (zserver.h): typed reads of the merged config view.
 * A value that does not parse is fatal, naming where it was set: a server must not run on a
 * setting it half understood.
 */
#include <limits.h>
#include "zs_server.h"
#include "zserver.h"

const char *zconfig_get_str(const char *key, const char *def)
{
    return zs_config_get(&zs_server_config, key, def);
}

long zconfig_get_int(const char *key, long def)
{
    const zs_kv *kv = zs_config_find(&zs_server_config, key);
    char why[128];
    long v;
    if (!kv)
        return def;
    if (zs_parse_long(kv->value, LONG_MIN, LONG_MAX, &v, why, sizeof(why)) < 0)
        zfatal("%s:%d: %s: '%s': %s", kv->file, kv->line, key, kv->value, why);
    return v;
}

int zconfig_get_bool(const char *key, int def)
{
    const zs_kv *kv = zs_config_find(&zs_server_config, key);
    if (!kv)
        return def;
    int v = zs_parse_bool(kv->value);
    if (v < 0)
        zfatal("%s:%d: %s: '%s': expected yes or no", kv->file, kv->line, key, kv->value);
    return v;
}
