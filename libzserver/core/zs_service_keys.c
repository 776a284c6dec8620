/*
 * zs_service_keys.c — which key names are the master's (zs_service.h, doc/CONTRACT.md §2).
 *
 * Keys under a reserved prefix (server-, and lib-zc's master-) are matched in any case, since
 * a case variant would otherwise pass as one of the program's own keys and be silently
 * ignored: `Server-Proc-Count` is an error that gives the key's spelling, an unknown key
 * under server- is an error whatever its case, and lib-zc's master-chroot and master-chdir
 * are refused in any case.  Any other key is the program's, untouched.
 */
#include <string.h>
#include <strings.h>
#include "zs_service.h"

static const char *known_keys[] = {
    "server-command", "server-service", "server-proc-count", "server-log",
    "server-stop-on-softstop-after", "server-restart", "server-user", "server-unix-mode",
    "server-listen-backlog", "server-max-nofile", "server-core-size", "server-ready-timeout",
    "server-env", "server-env-clear", "server-chdir", "server-stop-signal",
    "server-config-path", /* alone mode's -server-config-path argument */
    "server-name",        /* the service id of a config built by zmaster_server_load_config */
    NULL,
};

/* lib-zc's master-* keys that masterd does not do, and why. */
static const struct { const char *key, *why; } unsupported[] = {
    { "master-chroot", "not supported: a chroot per service is not done; run masterd itself in a chroot or a "
                       "container" },
    { "master-chdir", "lib-zc's working directory of the service's processes is spelled server-chdir here "
                      "(relative paths taken from the config directory)" },
    { NULL, NULL },
};

/* Under these, in any case, a key is the master's.  Only server- is closed: an unknown
 * master-* key stays the program's, as lib-zc's programs may read their own. */
static const struct { const char *prefix; int closed; } reserved[] = {
    { "server-", 1 }, { "master-", 0 }, { NULL, 0 },
};

void zs_service_check_keys(const zs_config *cf, zs_errs *errs)
{
    char w[600];
    for (size_t i = 0; i < cf->n; i++) {
        const zs_kv *kv = &cf->kv[i];
        int r = 0;
        while (reserved[r].prefix && strncasecmp(kv->key, reserved[r].prefix, strlen(reserved[r].prefix)))
            r++;
        if (!reserved[r].prefix)
            continue;
        zs_kv_where(kv, w, sizeof(w));
        int u = 0;
        while (unsupported[u].key && strcasecmp(unsupported[u].key, kv->key))
            u++;
        if (unsupported[u].key) {
            zs_errs_add(errs, "%s: %s: %s", w, kv->key, unsupported[u].why);
            continue;
        }
        int k = 0;
        while (known_keys[k] && strcasecmp(known_keys[k], kv->key))
            k++;
        if (known_keys[k] && strcmp(known_keys[k], kv->key))
            zs_errs_add(errs, "%s: %s: keys are case-sensitive: this one is spelled %s", w, kv->key, known_keys[k]);
        else if (!known_keys[k] && reserved[r].closed)
            zs_errs_add(errs, "%s: %s: unknown key (keys starting with %s are reserved; a typo?)", w, kv->key,
                        reserved[r].prefix);
    }
}
