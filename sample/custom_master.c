/*
 * custom_master.c — a master of one's own, as lib-zc's seed describes it: masterd is
 * zmaster_server_main, and this program sets its hooks first (doc/CONTRACT.md §13).  Its
 * services are built in code, not read from *.cf files: zmaster_server_load_config runs at start
 * and again on every reload (SIGHUP, masterctl reload), and what it returns is validated exactly
 * as a file would be (errors name the service; a bad reload changes nothing).
 *
 * The "database" it builds them from is a text file named by $CUSTOM_MASTER_DB (re-read on every
 * reload), one service a line:
 *     NAME LISTEN PROCS [BANNER...]   a greeter service (sample/greeter.c) NAME, PROCS processes
 *     @DIR                            every DIR/ *.cf as well, through lib-zc's default loader
 *     # ...                           a comment
 * NAME "-" leaves server-name unset (to see the error).  With no $CUSTOM_MASTER_DB, one service:
 * greeter on 127.0.0.1:8899, two processes.  Build: cc custom_master.c -lzmaster -linih -lev.
 *     CUSTOM_MASTER_DB=services.txt ./custom_master -pid-file /tmp/cm.pid
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "zc.h"

static char greeter[PATH_MAX];
static int loads;

/* One greeter service, its config made in code. */
static void add_greeter(zvector_t *cfs, const char *name, const char *listen, const char *procs, const char *banner)
{
    zconfig_t *cf = zconfig_create();
    if (strcmp(name, "-"))
        zconfig_update_string(cf, "server-name", name, -1);
    zconfig_update_string(cf, "server-command", greeter, -1);
    zconfig_update_string(cf, "server-service", listen, -1);
    zconfig_update_string(cf, "server-proc-count", procs, -1);
    zconfig_update_string(cf, "server-stop-on-softstop-after", "5s", -1);
    if (banner && *banner)
        zconfig_update_string(cf, "banner", banner, -1); /* a key the server itself reads */
    zvector_push(cfs, cf);
}

static void load_services(zvector_t *cfs)
{
    const char *db = getenv("CUSTOM_MASTER_DB");
    char line[1024];
    fprintf(stderr, "custom_master: building the services' configs (load %d)\n", ++loads);
    if (!db) {
        add_greeter(cfs, "greeter", "127.0.0.1:8899", "2", "220 custom master's greeter");
        return;
    }
    FILE *f = fopen(db, "r");
    if (!f) {
        /* Nothing pushed: no services.  A real master would rather keep what runs: push a config
         * that fails validation, and the reload is refused. */
        fprintf(stderr, "custom_master: %s: cannot read it\n", db);
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        char name[128], listen[256], procs[32];
        int used = 0;
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        if (line[0] == '@') {
            zmaster_server_load_config_from_dirname(line + 1, cfs);
            continue;
        }
        if (sscanf(line, "%127s %255s %31s %n", name, listen, procs, &used) < 3) {
            fprintf(stderr, "custom_master: %s: '%s': want NAME LISTEN PROCS [BANNER]\n", db, line);
            continue;
        }
        add_greeter(cfs, name, listen, procs, line + used);
    }
    fclose(f);
}

static void before_service(void)
{
    fprintf(stderr, "custom_master: before_service (config dir: %s)\n",
            zconfig_get_str(zvar_default_config, "C", "none"));
}

int main(int argc, char **argv)
{
    /* The greeter beside this program. */
    ssize_t n = readlink("/proc/self/exe", greeter, sizeof(greeter) - 16);
    if (n < 0) {
        perror("custom_master: /proc/self/exe");
        return 1;
    }
    greeter[n] = '\0';
    strcpy(strrchr(greeter, '/') + 1, "greeter");
    zmaster_server_before_service = before_service;
    zmaster_server_load_config = load_services;
    return zmaster_server_main(argc, argv);
}
