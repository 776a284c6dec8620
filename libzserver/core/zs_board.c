/*
 * zs_board.c — the accept scoreboard (zs_board.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>
#include "zs_board.h"

/* Connection counts read from the board are clamped to this (server-max-nofile's maximum):
 * a worker may write anything into a sibling's slot, and the arithmetic on them must hold. */
#define LIVE_MAX (1 << 24)

int zs_board_create(void)
{
    int fd = memfd_create("zserver-board", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    zs_board hdr = { .magic = ZS_BOARD_MAGIC };
    /* Sealed at its size: a worker that could shrink it would kill every sibling that touches
     * the lost pages (SIGBUS).  Writes stay allowed, so what is on it is only ever a hint. */
    if (ftruncate(fd, sizeof(zs_board)) < 0 ||
        pwrite(fd, &hdr, offsetof(zs_board, slot), 0) != (ssize_t)offsetof(zs_board, slot) ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

void zs_board_publish(int bfd, int n)
{
    uint32_t cur = 0, want = n > ZS_BOARD_SLOTS ? ZS_BOARD_SLOTS : (uint32_t)n;
    off_t at = offsetof(zs_board, nslots);
    if (bfd < 0 || pread(bfd, &cur, sizeof(cur), at) != sizeof(cur) || cur >= want)
        return;
    (void)!pwrite(bfd, &want, sizeof(want), at);
}

void zs_board_clear(int bfd, int i, pid_t pid)
{
    int32_t cur = 0;
    off_t at = (off_t)offsetof(zs_board, slot) + (off_t)i * (off_t)sizeof(zs_board_slot);
    if (bfd < 0 || i < 0 || i >= ZS_BOARD_SLOTS || pread(bfd, &cur, sizeof(cur), at) != sizeof(cur) || cur != pid)
        return;
    zs_board_slot empty = { 0, 0, 0, { 0 } };
    (void)!pwrite(bfd, &empty, sizeof(empty), at);
}

static zs_board *board;
static zs_board_slot *mine;
static int32_t my_pid;
/* Connections held, counted also before the board arrives: a connection accepted then and
 * closed after would otherwise take one off a board that never counted it. */
static int32_t held;

int zs_board_attach(int bfd, int i)
{
    if (board || i < 0 || i >= ZS_BOARD_SLOTS) {
        close(bfd);
        return -1;
    }
    void *p = mmap(NULL, sizeof(zs_board), PROT_READ | PROT_WRITE, MAP_SHARED, bfd, 0);
    close(bfd);
    if (p == MAP_FAILED)
        return -1;
    board = p;
    if (board->magic != ZS_BOARD_MAGIC) {
        munmap(p, sizeof(zs_board));
        board = NULL;
        return -1;
    }
    my_pid = (int32_t)getpid();
    mine = &board->slot[i];
    __atomic_store_n(&mine->live, __atomic_load_n(&held, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    __atomic_store_n(&mine->accepting, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&mine->pid, my_pid, __ATOMIC_RELEASE);
    return 0;
}

/* The slot is still ours (not yet handed to a replacement). */
static zs_board_slot *own(void)
{
    if (mine && __atomic_load_n(&mine->pid, __ATOMIC_ACQUIRE) != my_pid)
        mine = NULL;
    return mine;
}

void zs_board_accepting(int on)
{
    zs_board_slot *s = own();
    if (s)
        __atomic_store_n(&s->accepting, on ? 1 : 0, __ATOMIC_RELAXED);
}

static int clamp_live(int live)
{
    return live < 0 ? 0 : live > LIVE_MAX ? LIVE_MAX : live;
}

int zs_board_add_live(int delta)
{
    __atomic_add_fetch(&held, delta, __ATOMIC_RELAXED);
    zs_board_slot *s = own();
    if (!s)
        return 0;
    return clamp_live(__atomic_add_fetch(&s->live, delta, __ATOMIC_RELAXED));
}

int zs_board_live(void)
{
    zs_board_slot *s = own();
    return s ? clamp_live(__atomic_load_n(&s->live, __ATOMIC_RELAXED)) : 0;
}

int zs_board_fewest_others(void)
{
    if (!own())
        return -1;
    uint32_t n = __atomic_load_n(&board->nslots, __ATOMIC_RELAXED);
    if (n > ZS_BOARD_SLOTS)
        n = ZS_BOARD_SLOTS;
    int fewest = -1;
    for (uint32_t i = 0; i < n; i++) {
        zs_board_slot *s = &board->slot[i];
        if (s == mine || !__atomic_load_n(&s->pid, __ATOMIC_ACQUIRE) || !__atomic_load_n(&s->accepting, __ATOMIC_RELAXED))
            continue;
        int live = clamp_live(__atomic_load_n(&s->live, __ATOMIC_RELAXED));
        if (fewest < 0 || live < fewest)
            fewest = live;
    }
    return fewest;
}
