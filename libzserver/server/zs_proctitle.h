/*
 * zs_proctitle.h — the process title `ps` shows (/proc/PID/cmdline), set the way Postfix and
 * nginx do: the argument strings and the environment are moved to the heap, then the memory
 * they occupied holds the title.
 */
#ifndef ZS_PROCTITLE_H
#define ZS_PROCTITLE_H

/* Moves argv's strings, environ and program_invocation_name to the heap (argv[i] and environ
 * are repointed, so everything reading them later sees the same text) and remembers the area
 * they used.  Call once, before anything keeps a pointer into argv or the environment. */
void zs_proctitle_init(int argc, char **argv);
/* Writes the title (cut to the area's size); a no-op before zs_proctitle_init. */
void zs_proctitle_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Under masterd, before the ZMASTER_* variables are unset: `PROGRAM: SERVICE gen N`, so `ps`
 * tells services apart as Postfix's children do (`greeter: imapd gen 2`). */
void zs_proctitle_under_master(unsigned gen);
#endif
