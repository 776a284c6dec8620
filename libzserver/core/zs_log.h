/*
 * zs_log.h — where log lines go.  Targets: `stderr`, `syslog,FACILITY`, `file,PATH` (reopened
 * by zs_log_reopen, e.g. on SIGUSR1) and `masterlog,PATH` (a unix datagram socket served by
 * masterd).  Writing never blocks the caller and never kills it: a vanished target drops lines.
 */
#ifndef ZS_LOG_H
#define ZS_LOG_H
#include <stddef.h>

/* Checks a target's syntax without opening anything.  0, or -1 with the reason in why. */
int zs_log_check_target(const char *target, char *why, size_t whylen);
/* Switches to target (ident names the program for syslog).  0, or -1 with the reason in err;
 * on failure the previous target stays. */
int zs_log_open(const char *target, const char *ident, char *err, size_t errlen);
int zs_log_reopen(void);
/* The fd a child should get as stdout/stderr (the log file when logging to a file, else 2). */
int zs_log_child_fd(void);
/* Writes an already formatted line (a newline is added) to the current target. */
void zs_log_emit(int level, const char *line, size_t len);
#endif
