/*
 * zs_zconfig.c — zserver.h's two-argument zconfig_get_* on the server's view, over core's
 * lib-zc forms (core/zs_config_zc.c): a value that does not parse is fatal, naming where it
 * was set.
 */
#include <limits.h>
#include <stdio.h>
#include "core/zs_units.h"
#include "zs_server.h"
#include "zc.h"

long zs_server_config_seconds(const char *key, long def)
{
    return zc_config_get_second(&zs_process_config, key, def);
}

long (zconfig_get_second)(const char *key, long def)
{
    return zc_config_get_second(&zs_process_config, key, def);
}

/* ---- zserver.h's forms: the server's view ---- */

/* The parentheses keep zc.h's three-argument macros off these names. */
const char *(zconfig_get_str)(const char *key, const char *def)
{
    return zs_config_get(&zs_process_config, key, def);
}

long (zconfig_get_int)(const char *key, long def)
{
    return zc_config_get_long(&zs_process_config, key, def);
}

int (zconfig_get_bool)(const char *key, int def)
{
    return zc_config_get_bool(&zs_process_config, key, def);
}
