/*
 * zs_board.h — the accept scoreboard: one shared page per group of workers serving the same
 * listeners, where each worker publishes how many connections it holds and whether it is
 * accepting, so that a worker piling up connections can tell that a sibling holds fewer and
 * step back (aio/zs_accept.c).  Apache's scoreboard, reduced to what accepting needs.
 *
 * The supervisor (super/zs_sv_board.c, in masterd and in alone mode alike) owns one memfd per generation and
 * hands it to each child that said HELLO, with the child's slot, in a ZS_ST_BOARD record
 * (SCM_RIGHTS) on the status channel; it clears a slot when its process is reaped.  A child
 * writes only its own slot, and stops writing once the slot carries another pid (its slot was
 * given to a replacement while it was stopping).  Everything is a hint: a board that is missing,
 * torn, stale or scribbled over by a hostile worker only makes accepting less fair, never wrong:
 * the memfd is sealed at its size (no worker can shrink it under its siblings) and every value
 * read from it is bounded before use.
 */
#ifndef ZS_BOARD_H
#define ZS_BOARD_H
#include <stdint.h>
#include <sys/types.h>

#define ZS_BOARD_MAGIC 0x7a626431u /* "zbd1" */
#define ZS_BOARD_SLOTS 4096        /* server-proc-count's maximum */

typedef struct zs_board_slot {
    int32_t pid;        /* 0: free */
    int32_t accepting;  /* the worker's listeners are registered (not soft-stopping) */
    int32_t live;       /* connections it accepted and has not closed */
    int32_t pad[13];    /* one cache line a slot: writers never share a line */
} zs_board_slot;

typedef struct zs_board {
    uint32_t magic;
    uint32_t nslots;    /* slots in use are below this */
    int32_t pad[14];
    zs_board_slot slot[ZS_BOARD_SLOTS];
} zs_board;

/* ---- supervisor side: plain fd operations, no mapping ---- */
/* A new board (memfd, close-on-exec): its fd, or -1 with errno. */
int zs_board_create(void);
/* Raises the board's slot count to at least n. */
void zs_board_publish(int bfd, int n);
/* Frees slot i if pid still holds it. */
void zs_board_clear(int bfd, int i, pid_t pid);

/* ---- worker side ---- */
/* Maps the board received on the status channel and takes slot i for this process; takes
 * ownership of bfd (closed here).  0, or -1 when it cannot be used. */
int zs_board_attach(int bfd, int i);
/* This worker starts or stops accepting. */
void zs_board_accepting(int on);
/* This worker's connection count changes by delta; returns the new count (0 without a board). */
int zs_board_add_live(int delta);
/* This worker's connection count (0 without a board): a plain load, no atomic read-modify-write
 * on the shared line, for the check after every accept. */
int zs_board_live(void);
/* The fewest connections any other accepting worker of the group holds, or -1 when there is
 * no board or no such worker. */
int zs_board_fewest_others(void);
#endif
