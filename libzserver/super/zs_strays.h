/*
 * zs_strays.h — processes a supervisor answers for without having started them.
 *
 * A supervisor that is a subreaper (PR_SET_CHILD_SUBREAPER) adopts whatever its children leave
 * behind when they exit: the daemon a double-forking program puts in the background, a
 * process that detached (ZS_ST_DETACH), helpers of a child that died first.  They are its
 * direct children without being any slot's process.  "Strays" are those direct children and
 * every process below them.
 */
#ifndef ZS_STRAYS_H
#define ZS_STRAYS_H
#include <stddef.h>
#include <sys/types.h>

/* Fills out[0..max) with the pids of the live strays of this process: its direct children for
 * which is_supervised(pid, ctx) is false, and all their descendants (read from /proc).
 * Returns how many there are (possibly more than max), or -1 when /proc cannot be read. */
int zs_strays_find(int (*is_supervised)(pid_t pid, void *ctx), void *ctx, pid_t *out, size_t max);
/* Seconds since pid started (its /proc starttime against CLOCK_BOOTTIME), -1 when unknown. */
double zs_strays_age(pid_t pid);
#endif
