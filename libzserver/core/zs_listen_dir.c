/*
 * zs_listen_dir.c — who could replace a unix socket or fifo in its directory
 * (zs_listen_check_dir, zs_path_dir_check; zs_listen.h).
 *
 * masterd binds as root, in directories a config names: a directory another user can write
 * lets that user swap the file masterd just made, or replace the socket clients trust.  Every
 * directory from / down is checked, along the path as written and as it resolves.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "zs_listen.h"
#include "zserver_core.h"

/* Why dir (a directory) would let a user other than root, masterd's euid or allow_uid replace
 * what we create in it, or NULL when it would not.  A sticky directory keeps others from
 * renaming or removing a file they do not own, so only its owner counts. */
static const char *dir_unsafe(const char *dir, uid_t allow_uid, char *why, size_t whylen)
{
    struct stat st;
    if (stat(dir, &st) < 0) {
        snprintf(why, whylen, "directory %s: %s", dir, strerror(errno));
        return why;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid() && st.st_uid != allow_uid) {
        snprintf(why, whylen, "directory %s is owned by uid %ld, not by root, masterd's user or the service's user",
                 dir, (long)st.st_uid);
        return why;
    }
    unsigned m = (unsigned)(st.st_mode & 07777);
    if (st.st_mode & S_ISVTX)
        return NULL;
    if (st.st_mode & S_IWOTH) {
        snprintf(why, whylen, "directory %s is writable by others (mode %04o) and not sticky", dir, m);
        return why;
    }
    if ((st.st_mode & S_IWGRP) && st.st_gid != 0 && st.st_gid != getegid()) {
        snprintf(why, whylen, "directory %s is writable by group %ld (mode %04o) and not sticky", dir,
                 (long)st.st_gid, m);
        return why;
    }
    return NULL;
}

/* Checks every directory from / down to abs_dir (an absolute path).  0, or -1 with why. */
static int chain_safe(const char *abs_dir, uid_t allow_uid, char *why, size_t whylen)
{
    char buf[PATH_MAX];
    size_t len = strlen(abs_dir);
    if (len >= sizeof(buf)) {
        snprintf(why, whylen, "directory path too long");
        return -1;
    }
    memcpy(buf, abs_dir, len + 1);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    if (dir_unsafe("/", allow_uid, why, whylen))
        return -1;
    for (size_t i = 1; i <= len; i++) {
        if (i < len && buf[i] != '/')
            continue;
        char save = buf[i];
        buf[i] = '\0';
        const char *bad = buf[i - 1] == '/' ? NULL : dir_unsafe(buf, allow_uid, why, whylen);
        buf[i] = save;
        if (bad)
            return -1;
    }
    return 0;
}

int zs_path_dir_check(const char *path, uid_t allow_uid, char *why, size_t whylen)
{
    char cwd[PATH_MAX], real[PATH_MAX], *abs;
    const char *slash = strrchr(path, '/');
    if (path[0] == '/') {
        abs = slash == path ? zs_xstrdup("/") : zs_xasprintf("%.*s", (int)(slash - path), path);
    } else {
        if (!getcwd(cwd, sizeof(cwd))) {
            snprintf(why, whylen, "getcwd: %s", strerror(errno));
            return -1;
        }
        abs = slash ? zs_xasprintf("%s/%.*s", cwd, (int)(slash - path), path) : zs_xstrdup(cwd);
    }
    /* The path as written (a symlink on the way lives in a directory checked before it), then
     * the directories it really resolves to. */
    int rc = chain_safe(abs, allow_uid, why, whylen);
    if (rc == 0) {
        if (!realpath(abs, real)) {
            snprintf(why, whylen, "directory %s: %s", abs, strerror(errno));
            rc = -1;
        } else {
            rc = chain_safe(real, allow_uid, why, whylen);
        }
    }
    free(abs);
    return rc;
}

int zs_listen_check_dir(const zs_listen *l, uid_t allow_uid, char *err, size_t errlen)
{
    char why[PATH_MAX + 200];
    if (l->kind != ZS_LISTEN_UNIX && l->kind != ZS_LISTEN_FIFO)
        return 0;
    if (zs_path_dir_check(l->path, allow_uid, why, sizeof(why)) == 0)
        return 0;
    if (l->where)
        snprintf(err, errlen, "%s: server-service: '%s': %s", l->where, l->text, why);
    else
        snprintf(err, errlen, "server-service: '%s': %s", l->text, why);
    return -1;
}

