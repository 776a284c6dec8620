/*
 * md_ctl_peer.c — who may use the control socket (doc/CONTRACT.md §12): the kernel's
 * credentials of the peer (SO_PEERCRED, SO_PEERGROUPS), never anything it says, and the
 * rate-limited log line of a refusal (a flood of refused connects cannot fill the log).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "md_ctl.h"
#include "core/zserver_core.h"

#define REFUSED_LOG_EVERY 60.0  /* seconds between two "refused" lines at most */

static double refused_at;       /* when the last "refused" line was logged, 0: never */
static unsigned refused_quiet;  /* refusals since, not logged */

/* Whether the peer on fd has gid among its groups (SO_PEERGROUPS: the groups it connected
 * with, not what it could claim). */
static int peer_in_group(int fd, gid_t gid)
{
    gid_t groups[256];
    socklen_t len = sizeof(groups);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
        return 0; /* ERANGE (over 256 groups) or an old kernel: not a member as far as we know */
    for (size_t i = 0; i < len / sizeof(gid_t); i++)
        if (groups[i] == gid)
            return 1;
    return 0;
}

/* Root, masterd's own user and -control-group's members only (a unix socket's mode alone
 * could be widened by anyone who can chmod it).  Refusals are logged once a minute at most,
 * with how many went unlogged since the last line. */
int md_ctl_peer_allowed(int fd, gid_t group, double now)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
        zwarning("control socket: SO_PEERCRED: %s", strerror(errno));
        return 0;
    }
    if (cr.uid == 0 || cr.uid == geteuid())
        return 1;
    if (group != (gid_t)-1 && (cr.gid == group || peer_in_group(fd, group)))
        return 1;
    if (refused_at == 0 || now - refused_at >= REFUSED_LOG_EVERY) {
        char quiet[64] = "";
        if (refused_quiet)
            snprintf(quiet, sizeof(quiet), " (and %u more since the last such line)", refused_quiet);
        zwarning("control socket: refused pid %ld uid %ld (only root and uid %ld may connect)%s", (long)cr.pid,
                 (long)cr.uid, (long)geteuid(), quiet);
        refused_at = now;
        refused_quiet = 0;
    } else {
        refused_quiet++;
    }
    return 0;
}
