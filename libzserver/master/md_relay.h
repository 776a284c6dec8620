/*
 * md_relay.h — what children print on stdout and stderr, relayed into masterd's log: one pipe
 * per child, each line stamped `[SERVICE pid PID] ` like a masterlog line (md_masterlog.c).
 */
#ifndef MD_RELAY_H
#define MD_RELAY_H
#include <sys/types.h>
struct ev_loop;

/* Takes ownership of fd, the read end of child pid's output pipe, and relays its lines until
 * end of file or until pid is reaped (md_relay_reaped). */
void md_relay_add(struct ev_loop *loop, const char *service, pid_t pid, int fd);
/* pid was reaped: relays what is already in its pipe (bounded), writes a partial last line and
 * closes the pipe, even when an orphan of pid still holds the write end.  No-op for a pid
 * without a pipe. */
void md_relay_reaped(struct ev_loop *loop, pid_t pid);
/* At masterd's exit: reads what is already in every pipe (bounded), writes every partial last
 * line, closes them all. */
void md_relay_close_all(struct ev_loop *loop);
#endif
