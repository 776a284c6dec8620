/*
 * zs_sv_gen.c — generations (zs_supervisor.h): a generation is the set of slots one service
 * runs from one config.  A reload or graceful restart starts a new generation beside the old
 * one and retires the old; a scale-down retires the highest slots.  This file owns the slots
 * and `want`; starting goes through the start queue (zs_sv_queue.c), retiring one process
 * through zs_sv_proc_retire (zs_sv_proc.c).
 *
 * Exports: zs_gen_* (zs_supervisor.h) and zs_sv_gen_check_empty.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>
#include "core/zserver_core.h"
#include "zs_sv_int.h"

zs_generation *zs_gen_new(zs_supervisor *s, const zs_service *svc, const int *fds, unsigned gen,
                         const char *config_dir, zs_run_fn run, void *run_ctx)
{
    zs_generation *g = zs_xcalloc(1, sizeof(*g));
    g->s = s;
    g->svc = svc;
    g->fds = zs_xcalloc((size_t)svc->nlisten + 1, sizeof(int));
    if (svc->nlisten)
        memcpy(g->fds, fds, (size_t)svc->nlisten * sizeof(int));
    g->gen = gen;
    g->board_fd = -1;
    g->config_fd = -1;
    g->config_dir = config_dir ? zs_xstrdup(config_dir) : NULL;
    g->run = run;
    g->run_ctx = run_ctx;
    g->next = s->gens;
    s->gens = g;
    return g;
}

void zs_gen_set_want(zs_generation *g, int count)
{
    if (count > g->nslots) {
        g->slots = zs_xrealloc(g->slots, (size_t)count * sizeof(*g->slots));
        for (int i = g->nslots; i < count; i++) {
            zs_slot *sl = zs_xcalloc(1, sizeof(*sl));
            sl->g = g;
            sl->index = i;
            ev_init(&sl->backoff, zs_sv_backoff_cb);
            g->slots[i] = sl;
        }
        g->nslots = count;
    }
    int old = g->want;
    g->want = count;
    for (int i = count; i < old; i++) {
        ev_timer_stop(g->s->loop, &g->slots[i]->backoff);
        if (g->slots[i]->proc)
            zs_sv_proc_retire(g->slots[i]->proc);
    }
    for (int i = old; i < count; i++)
        if (!g->slots[i]->proc)
            zs_sv_queue_start(g->slots[i]);
}

int zs_gen_retire_one(zs_generation *g)
{
    if (g->want == 0)
        return -1;
    zs_gen_set_want(g, g->want - 1);
    return 0;
}

void zs_gen_retire(zs_generation *g)
{
    g->retiring = 1;
    zs_gen_set_want(g, 0);
    for (zs_proc *p = g->procs; p; p = p->gnext)
        zs_sv_proc_retire(p);
    zs_sv_gen_check_empty(g);
}

void zs_gen_free(zs_generation *g)
{
    zs_supervisor *s = g->s;
    for (zs_proc *p = g->procs, *nx; p; p = nx) {
        nx = p->gnext;
        zs_sv_proc_forget(p); /* only reached when the owner gives up on live children */
    }
    zs_sv_queue_drop_gen(s, g);
    for (int i = 0; i < g->nslots; i++) {
        ev_timer_stop(s->loop, &g->slots[i]->backoff);
        free(g->slots[i]);
    }
    for (zs_generation **pp = &s->gens; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    }
    zs_sv_board_close(g);
    if (g->config_fd >= 0)
        close(g->config_fd);
    free(g->slots);
    free(g->fds);
    free(g->config_dir);
    free(g);
}

int zs_gen_ready_count(const zs_generation *g) { return g->nready; }
int zs_gen_want(const zs_generation *g) { return g->want; }
void *zs_gen_user(const zs_generation *g) { return g->user; }
void zs_gen_set_user(zs_generation *g, void *user) { g->user = user; }

int zs_gen_set_config_fd(zs_generation *g, int fd)
{
    int copy = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (fd >= 0 && copy < 0)
        return -1;
    if (g->config_fd >= 0)
        close(g->config_fd);
    g->config_fd = copy;
    return 0;
}

int zs_gen_running_count(const zs_generation *g)
{
    return g->nrunning;
}

void zs_sv_gen_check_empty(zs_generation *g)
{
    if (!g->retiring || g->empty_fired || g->empty_pending || zs_gen_running_count(g) > 0)
        return;
    g->empty_pending = 1;
    zs_sv_queue_kick(g->s);
}
