/*
 * zs_sv_board.c — the accept scoreboard of a generation (core/zs_board.h): one memfd per
 * generation, made when its first child says HELLO, each child handed it with its slot number
 * (ZS_ST_BOARD) and its slot cleared when it goes.  A generation that cannot have one runs
 * without: the board only makes accepting fairer.
 *
 * Exports: zs_sv_board_offer, zs_sv_board_release, zs_sv_board_close.
 */
#include <unistd.h>
#include "core/zs_board.h"
#include "core/zs_status.h"
#include "core/zserver_core.h"
#include "zs_sv_int.h"

void zs_sv_board_offer(zs_proc *p)
{
    zs_generation *g = p->g;
    if (!p->slot || p->board_slot >= 0 || p->chan < 0)
        return;
    if (g->board_fd < 0 && (g->board_fd = zs_board_create()) < 0) {
        zwarning("%s: no accept scoreboard: %m", g->svc->id);
        return;
    }
    zs_board_publish(g->board_fd, g->nslots);
    if (zs_status_send_fd(p->chan, ZS_ST_BOARD, g->gen, p->slot->index, g->board_fd) == 0)
        p->board_slot = p->slot->index;
}

void zs_sv_board_release(zs_proc *p)
{
    if (p->board_slot >= 0)
        zs_board_clear(p->g->board_fd, p->board_slot, p->pid);
    p->board_slot = -1;
}

void zs_sv_board_close(zs_generation *g)
{
    if (g->board_fd >= 0)
        close(g->board_fd);
    g->board_fd = -1;
}
