/*
 * test_board.c — the accept scoreboard (zs_board.c): the supervisor's fd operations and a
 * worker's view.  One process plays both sides, as masterd and a child would through the memfd.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>
#include "check_run.h"
#include "core/zs_board.h"

/* The supervisor's view of slot i, read through the fd as masterd would. */
static zs_board_slot slot_at(int bfd, int i)
{
    zs_board_slot s = { 0, 0, 0, { 0 } };
    ck_assert_int_eq(pread(bfd, &s, sizeof(s), (off_t)offsetof(zs_board, slot) + (off_t)i * (off_t)sizeof(s)),
                     (ssize_t)sizeof(s));
    return s;
}

static void put_slot(int bfd, int i, int pid, int accepting, int live)
{
    zs_board_slot s = { pid, accepting, live, { 0 } };
    ck_assert_int_eq(pwrite(bfd, &s, sizeof(s), (off_t)offsetof(zs_board, slot) + (off_t)i * (off_t)sizeof(s)),
                     (ssize_t)sizeof(s));
}

START_TEST(test_board_roundtrip)
{
    int bfd = zs_board_create();
    ck_assert_int_ge(bfd, 0);
    ck_assert_int_eq(zs_board_fewest_others(), -1); /* not attached: no view */
    ck_assert_int_eq(zs_board_add_live(1), 0);
    zs_board_publish(bfd, 3);
    zs_board_publish(bfd, 2); /* never lowered */
    uint32_t n = 0;
    ck_assert_int_eq(pread(bfd, &n, sizeof(n), offsetof(zs_board, nslots)), (ssize_t)sizeof(n));
    ck_assert_uint_eq(n, 3);

    int dup_fd = dup(bfd);
    ck_assert_int_eq(zs_board_attach(dup_fd, 1), 0); /* this process takes slot 1 */
    zs_board_slot me = slot_at(bfd, 1);
    ck_assert_int_eq(me.pid, getpid());
    ck_assert_int_eq(me.accepting, 0);
    ck_assert_int_eq(me.live, 1); /* the connection held before the board came is published */
    ck_assert_int_eq(zs_board_add_live(-1), 0); /* and its close is not taken off a count it is not in */
    ck_assert_int_eq(zs_board_fewest_others(), -1); /* no accepting sibling */

    put_slot(bfd, 0, 4242, 1, 7);  /* an accepting sibling with 7 connections */
    put_slot(bfd, 2, 4343, 0, 1);  /* a soft-stopping one: not counted */
    ck_assert_int_eq(zs_board_fewest_others(), 7);
    put_slot(bfd, 2, 4343, 1, 3);
    ck_assert_int_eq(zs_board_fewest_others(), 3);

    zs_board_accepting(1);
    ck_assert_int_eq(zs_board_add_live(5), 5);
    ck_assert_int_eq(zs_board_add_live(-2), 3);
    ck_assert_int_eq(zs_board_live(), 3);
    me = slot_at(bfd, 1);
    ck_assert_int_eq(me.accepting, 1);
    ck_assert_int_eq(me.live, 3);

    /* the supervisor frees slot 2 when its pid is reaped, and only for that pid */
    zs_board_clear(bfd, 2, 9999);
    ck_assert_int_eq(slot_at(bfd, 2).pid, 4343);
    zs_board_clear(bfd, 2, 4343);
    ck_assert_int_eq(slot_at(bfd, 2).pid, 0);
    ck_assert_int_eq(zs_board_fewest_others(), 7);

    /* our slot handed to a replacement: we stop writing it and lose the view */
    put_slot(bfd, 1, 5555, 1, 0);
    ck_assert_int_eq(zs_board_add_live(1), 0);
    ck_assert_int_eq(zs_board_live(), 0);
    ck_assert_int_eq(slot_at(bfd, 1).live, 0);
    ck_assert_int_eq(zs_board_fewest_others(), -1);
    close(bfd);
}
END_TEST

START_TEST(test_board_refuses_junk)
{
    int fd = memfd_create("not-a-board", MFD_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, sizeof(zs_board)), 0); /* zeros: no magic */
    ck_assert_int_eq(zs_board_attach(fd, 0), -1);
    int bfd = zs_board_create();
    ck_assert_int_eq(zs_board_attach(dup(bfd), ZS_BOARD_SLOTS), -1); /* slot out of range */
    ck_assert_int_eq(zs_board_fewest_others(), -1);
    close(bfd);
}
END_TEST

/* What a hostile worker can do to the board it was handed: not resize it (the memfd is sealed;
 * shrinking it would SIGBUS every sibling), and whatever it writes reads back bounded. */
START_TEST(test_board_sealed_and_garbage_bounded)
{
    int bfd = zs_board_create();
    ck_assert_int_ge(bfd, 0);
    ck_assert_int_eq(zs_board_attach(dup(bfd), 1), 0);
    errno = 0;
    ck_assert_int_eq(ftruncate(bfd, 0), -1);
    ck_assert_int_eq(errno, EPERM);
    ck_assert_int_eq(ftruncate(bfd, 2 * (off_t)sizeof(zs_board)), -1);
    ck_assert_int_eq(fcntl(bfd, F_ADD_SEALS, F_SEAL_WRITE), -1); /* the seals themselves are sealed */
    ck_assert_int_eq(fcntl(bfd, F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);

    uint32_t all = 0xffffffffu;
    ck_assert_int_eq(pwrite(bfd, &all, sizeof(all), offsetof(zs_board, nslots)), (ssize_t)sizeof(all));
    for (int i = 0; i < ZS_BOARD_SLOTS; i++)
        put_slot(bfd, i, i == 1 ? getpid() : 0x7f7f7f7f, 1, INT32_MAX);
    int fewest = zs_board_fewest_others();
    ck_assert_int_eq(fewest, 1 << 24);
    ck_assert_int_gt(fewest + fewest / 2, fewest); /* the fairness check's arithmetic holds */
    ck_assert_int_eq(zs_board_live(), 1 << 24);
    put_slot(bfd, 1, getpid(), 1, -5);
    ck_assert_int_eq(zs_board_live(), 0);
    ck_assert_int_eq(zs_board_add_live(1), 0);
    zs_board_publish(bfd, 4);  /* the supervisor's operations cope too */
    zs_board_clear(bfd, 0, 1);
    close(bfd);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("board");
    TCase *tc = tcase_create("board");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_board_roundtrip);
    tcase_add_test(tc, test_board_refuses_junk);
    tcase_add_test(tc, test_board_sealed_and_garbage_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
