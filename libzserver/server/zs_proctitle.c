/*
 * zs_proctitle.c — the process title (zs_proctitle.h): zs_proctitle_init, zs_proctitle_set,
 * zs_proctitle_under_master.
 *
 * The kernel shows /proc/PID/cmdline from the process's original argument area.  That area
 * (argv strings followed by the environment strings, contiguous) is ours to overwrite once
 * nothing points into it: argv[i], environ and program_invocation_name are repointed to heap
 * copies first.  A title that fits in the argv strings stays there (the rest zeroed, so
 * cmdline reads the title and then NULs) and /proc/PID/environ keeps showing the environment
 * (tools find processes by it); a longer one runs on into the environment strings, which the
 * kernel then reads as part of cmdline up to the title's NUL.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/zs_err.h"
#include "core/zs_status.h"
#include "zs_proctitle.h"

extern char **environ;

static char *area;
static size_t argv_len;  /* argv's strings */
static size_t area_len;  /* argv's and environ's strings */
/* The environment strings as copied: unsetenv() drops entries from environ, yet they stay
 * ours (and reachable, for leak checkers). */
static char **env_copies;

void zs_proctitle_init(int argc, char **argv)
{
    if (area || argc < 1 || !argv[0])
        return;
    /* The area: argv[0]'s string and every string right after it, argv's then environ's. */
    char *end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc && argv[i] == end; i++)
        end = argv[i] + strlen(argv[i]) + 1;
    argv_len = (size_t)(end - argv[0]);
    size_t n = 0;
    while (environ && environ[n])
        n++;
    for (size_t i = 0; i < n && environ[i] == end; i++)
        end = environ[i] + strlen(environ[i]) + 1;
    char **env = zs_xcalloc(n + 1, sizeof(char *));
    env_copies = zs_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        env[i] = env_copies[i] = zs_xstrdup(environ[i]);
    environ = env;
    char *start = argv[0];
    for (int i = 0; i < argc && argv[i]; i++)
        argv[i] = zs_xstrdup(argv[i]);
    program_invocation_name = zs_xstrdup(program_invocation_name);
    char *slash = strrchr(program_invocation_name, '/');
    program_invocation_short_name = slash ? slash + 1 : program_invocation_name;
    area = start;
    area_len = (size_t)(end - start);
}

void zs_proctitle_set(const char *fmt, ...)
{
    char title[512];
    va_list ap;
    if (!area || area_len < 2)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(title, sizeof(title), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(title) ? (size_t)n : sizeof(title) - 1;
    if (len < argv_len) {
        memset(area, 0, argv_len);
        memcpy(area, title, len);
        return;
    }
    if (len > area_len - 1)
        len = area_len - 1;
    memcpy(area, title, len);
    area[len] = '\0';
}

void zs_proctitle_under_master(unsigned gen)
{
    /* The service id is the name of its file: ZMASTER_CONFIG = CONFIG_DIR/ID.cf. */
    const char *cf = getenv(ZS_ENV_CONFIG), *base = cf ? strrchr(cf, '/') : NULL;
    base = base ? base + 1 : cf;
    size_t len = base ? strlen(base) : 0;
    if (len > 3 && !strcmp(base + len - 3, ".cf"))
        zs_proctitle_set("%s: %.*s gen %u", program_invocation_short_name, (int)(len - 3), base, gen);
}
