/*
 * md_masterlog.h — the `masterlog,PATH` receiver: a unix datagram socket per distinct PATH
 * that servers send whole log lines to; masterd appends each datagram to its own log, so
 * many servers share one ordered log without interleaving half-lines.
 */
#ifndef MD_MASTERLOG_H
#define MD_MASTERLOG_H
#include <sys/types.h>
#include "md_set.h"
struct ev_loop;

/* Opens a receiver for every masterlog path set uses (keeping ones already open, re-making one
 * whose senders now need another group).  Refuses (nothing changed) a path whose services'
 * users have no group in common, or whose directory another user could write.
 * Returns 0, or -1 with err. */
int md_masterlog_sync(struct ev_loop *loop, const md_set *set, char *err, size_t errlen);
/* What md_masterlog_sync would refuse, as errors (for -t).  0, or -1 when any was added. */
int md_masterlog_check(const md_set *set, zs_errs *errs);
/* Re-creates the socket file of every receiver whose file was removed or replaced (SIGUSR1,
 * and every reload).  Processes still connected to the old socket keep being read until the
 * next re-creation, so no line is lost to a rotation. */
void md_masterlog_reopen(struct ev_loop *loop);
void md_masterlog_close_all(struct ev_loop *loop);
/* fn names the service a pid belongs to (NULL: not a process masterd runs), for the stamp
 * every received line gets. */
void md_masterlog_set_lookup(const char *(*fn)(pid_t pid));
/* Writes stamp and then text[0..n), escaped (zs_escape_line: C0 and C1 controls, bytes that
 * are not UTF-8), as one line of
 * masterd's log: a child's line, from a masterlog datagram or its output pipe (md_relay.c). */
void md_masterlog_emit(const char *stamp, const char *text, size_t n);
#endif
