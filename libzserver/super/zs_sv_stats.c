/*
 * zs_sv_stats.c — the read-only accessors of zs_sv_stats.h: a generation's counters and slot
 * states, its live processes with their scoreboard connection counts, and the restart log.
 *
 * Exports: zs_sv_now, zs_gen_stats_get, zs_gen_procs, zs_supervisor_gens, zs_restarts_*.
 */
#include <string.h>
#include <unistd.h>
#include <ev.h>
#include "core/zs_board.h"
#include "zs_sv_int.h"

double zs_sv_now(void) { return zs_sv_mono_now(); }

void zs_gen_stats_get(const zs_generation *g, zs_gen_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->gen = g->gen;
    st->want = g->want;
    st->ready = g->nready;
    st->retiring = g->retiring;
    st->running = zs_gen_running_count(g);
    for (int i = 0; i < g->want && i < g->nslots; i++) {
        const zs_slot *sl = g->slots[i];
        /* Trying again after failing ZS_CRASH_LOOP times in a row is still the loop: only a
         * process that becomes ready ends it. */
        if (sl->failures >= ZS_CRASH_LOOP && (!sl->proc || !sl->proc->ready))
            st->crash_loop++;
        if (sl->proc && sl->proc->sigstopped)
            st->sigstopped++;
        if (!sl->proc && !sl->queued && !ev_is_active(&sl->backoff))
            st->idle++;
        if (ev_is_active(&sl->backoff)) {
            st->backoff++;
            if (st->next_try == 0 || sl->next_try < st->next_try)
                st->next_try = sl->next_try;
        }
    }
    st->restarts = g->restarts;
    st->last_exit = g->last_exit;
}

/* A worker's connection count from the board, read with pread (the supervisor never maps it):
 * -1 when the board is missing or the slot is no longer this pid's. */
static int board_live(const zs_generation *g, const zs_proc *p)
{
    zs_board_slot bs;
    if (g->board_fd < 0 || p->board_slot < 0 || p->board_slot >= ZS_BOARD_SLOTS)
        return -1;
    off_t off = (off_t)offsetof(zs_board, slot) + (off_t)p->board_slot * (off_t)sizeof(bs);
    if (pread(g->board_fd, &bs, sizeof(bs), off) != (ssize_t)sizeof(bs) || bs.pid != p->pid)
        return -1;
    return bs.live < 0 ? 0 : bs.live; /* a worker writes it: bounded before use */
}

static void proc_info(const zs_proc *p, zs_proc_info *o)
{
    o->pid = p->pid;
    o->slot = p->slot ? p->slot->index + 1 : 0;
    o->gen = p->g->gen;
    o->state = p->sigstopped ? ZS_PROC_STOPPED
             : p->retiring  ? ZS_PROC_RETIRING
             : p->ready     ? ZS_PROC_READY
                            : ZS_PROC_STARTING;
    o->started = p->started;
    o->live = board_live(p->g, p);
}

int zs_gen_procs(const zs_generation *g, zs_proc_info *out, int max)
{
    int n = 0;
    for (int i = 0; i < g->nslots; i++)
        if (g->slots[i]->proc && n++ < max)
            proc_info(g->slots[i]->proc, &out[n - 1]);
    for (const zs_proc *p = g->procs; p; p = p->gnext)
        if (!p->slot && n++ < max)
            proc_info(p, &out[n - 1]);
    return n;
}

int zs_supervisor_gens(const zs_supervisor *s, zs_generation **out, int max)
{
    int n = 0;
    for (zs_generation *g = s->gens; g; g = g->next)
        if (n++ < max)
            out[n - 1] = g;
    return n;
}

void zs_restarts_add(zs_restarts *r, double at)
{
    r->total++;
    r->at[r->head++ % ZS_RESTART_RING] = at;
}

unsigned zs_restarts_since(const zs_restarts *r, double since)
{
    unsigned n = 0, kept = r->total < ZS_RESTART_RING ? (unsigned)r->total : ZS_RESTART_RING;
    for (unsigned i = 0; i < kept; i++)
        n += r->at[i] >= since;
    return n;
}

void zs_restarts_merge(zs_restarts *dst, const zs_restarts *src)
{
    unsigned kept = src->total < ZS_RESTART_RING ? (unsigned)src->total : ZS_RESTART_RING;
    for (unsigned i = 0; i < kept; i++)
        dst->at[dst->head++ % ZS_RESTART_RING] = src->at[i];
    dst->total += src->total;
}
