/*
 * test_coroutine.c — the coroutine runtime (libzserver/co/zs_co*.c): many coroutines, sleeping,
 * the guard page, errno and FP state per coroutine, mutex and cond, and a blocking-style echo
 * server serving 1,000 concurrent clients in one process.
 *
 * Each test runs in its own process (Check forks), so each gets a fresh runtime on the default
 * libev loop; zs_co_run() returns when no coroutine can make progress any more.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <fenv.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>
#include "co/zs_co.h"
#include "zserver.h"
#include "check_run.h"

static double now(void)
{
    return zs_co_now();
}

static void run(void)
{
    zs_co_run();
    ck_assert_uint_eq(zs_co_live(), 0);
}

/* ---- 10,000 coroutines ---- */

static int started, finished, yields_total;

static void *yield_three(void *ctx)
{
    (void)ctx;
    started++;
    for (int i = 0; i < 3; i++) {
        zcoroutine_yield();
        yields_total++;
    }
    finished++;
    return NULL;
}

static int map_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    ck_assert_ptr_nonnull(f);
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

START_TEST(ten_thousand_at_once)
{
    double t0 = now();
    for (int i = 0; i < 10000; i++)
        ck_assert_int_eq(zcoroutine_go(yield_three, NULL, 0), 0);
    ck_assert_uint_eq(zs_co_live(), 10000);
    ck_assert_int_eq(started, 0); /* nothing runs before the loop does */
    run();
    ck_assert_int_eq(started, 10000);
    ck_assert_int_eq(finished, 10000);
    ck_assert_int_eq(yields_total, 30000);
    ck_assert_uint_le(zs_co_free_stacks(), 128);
    ck_assert_msg(now() - t0 < 20, "10,000 coroutines took %.1f s", now() - t0);
}
END_TEST

static int chain_left;
static void *chain(void *ctx)
{
    (void)ctx;
    if (--chain_left > 0)
        ck_assert_int_eq(zcoroutine_go(chain, NULL, 0), 0);
    finished++;
    return NULL;
}

/* 10,000 go/finish cycles one after another reuse one stack: no mapping is added for good. */
START_TEST(ten_thousand_cycles_reuse_stacks)
{
    /* Warm up: a chain needs two stacks at a time (the next one starts before this one ends). */
    ck_assert_int_eq(zcoroutine_go(chain, NULL, 0), 0);
    chain_left = 2;
    run();
    ck_assert_uint_eq(zs_co_free_stacks(), 2);
    int maps = map_count();
    double t0 = now();
    chain_left = 10000;
    finished = 0;
    ck_assert_int_eq(zcoroutine_go(chain, NULL, 0), 0);
    run();
    double dt = now() - t0;
    ck_assert_int_eq(finished, 10000);
    ck_assert_int_le(map_count(), maps + 2); /* + 2: malloc may grow meanwhile */
    ck_assert_uint_eq(zs_co_free_stacks(), 2);
    ck_assert_msg(dt < 5, "10,000 cycles took %.2f s", dt);
}
END_TEST

static void *small_stack_user(void *ctx)
{
    /* 40 KiB of locals fits a 64 KiB stack; the guard page sits right below it. */
    volatile char buf[40 * 1024];
    buf[0] = 1;
    buf[sizeof(buf) - 1] = 2;
    size_t glen;
    char *guard = zs_co_guard_page(&glen);
    *(int *)ctx = guard && glen > 0 && (char *)buf > guard && (char *)buf - guard < 64 * 1024 + (long)glen;
    return NULL;
}

static void *default_stack_user(void *ctx)
{
    volatile char buf[100 * 1024];
    buf[0] = 1;
    buf[sizeof(buf) - 1] = 2;
    size_t glen;
    char *guard = zs_co_guard_page(&glen);
    long above = (char *)buf - guard;
    *(int *)ctx = guard && above > 0 && above < ZS_CO_DEFAULT_STACK + (long)glen; /* 100 KiB fitted */
    return NULL;
}

START_TEST(stack_size_argument)
{
    int ok = 0;
    ck_assert_int_eq(zcoroutine_go(small_stack_user, &ok, 64), 0);
    run();
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(zcoroutine_go(NULL, NULL, 0), -1);
    ck_assert_int_eq(errno, EINVAL);
    /* lib-zc's programs pass -1: the default stack, 128 KiB above the guard page */
    ok = 0;
    ck_assert_int_eq(zcoroutine_go(default_stack_user, &ok, -1), 0);
    run();
    ck_assert_int_eq(ok, 1);
}
END_TEST

/* ---- sleeping does not stall the others ---- */

static double t_start, t_sleeper_woke, t_usleeper_woke, t_nanosleeper_woke, t_poller_woke, t_spinner_done;
static int spinner_done_before_sleeper;

static void *sleeper(void *ctx)
{
    (void)ctx;
    zcoroutine_sleep_ms(400);
    t_sleeper_woke = now();
    spinner_done_before_sleeper = t_spinner_done > 0;
    return NULL;
}

static void *usleeper(void *ctx)
{
    (void)ctx;
    ck_assert_int_eq(usleep(300000), 0);
    t_usleeper_woke = now();
    ck_assert_uint_eq(sleep(0), 0);
    return NULL;
}

static void *nanosleeper(void *ctx)
{
    (void)ctx;
    struct timespec ts = { 0, 200 * 1000000L }, rem = { 7, 7 };
    ck_assert_int_eq(nanosleep(&ts, &rem), 0);
    ck_assert_int_eq(rem.tv_sec, 0);
    t_nanosleeper_woke = now();
    return NULL;
}

static void *poll_sleeper(void *ctx)
{
    (void)ctx;
    ck_assert_int_eq(poll(NULL, 0, 100), 0);
    t_poller_woke = now();
    return NULL;
}

static void *spinner(void *ctx)
{
    (void)ctx;
    for (int i = 0; i < 2000; i++)
        zcoroutine_yield();
    t_spinner_done = now();
    return NULL;
}

START_TEST(sleep_does_not_stall_others)
{
    t_start = now();
    ck_assert_int_eq(zcoroutine_go(sleeper, NULL, 0), 0);
    ck_assert_int_eq(zcoroutine_go(usleeper, NULL, 0), 0);
    ck_assert_int_eq(zcoroutine_go(nanosleeper, NULL, 0), 0);
    ck_assert_int_eq(zcoroutine_go(poll_sleeper, NULL, 0), 0);
    ck_assert_int_eq(zcoroutine_go(spinner, NULL, 0), 0);
    run();
    double total = now() - t_start;
    ck_assert_int_eq(spinner_done_before_sleeper, 1);
    ck_assert_msg(t_sleeper_woke - t_start >= 0.399, "sleep_ms(400) woke after %.3f s", t_sleeper_woke - t_start);
    ck_assert_msg(t_usleeper_woke - t_start >= 0.299, "usleep woke after %.3f s", t_usleeper_woke - t_start);
    ck_assert_msg(t_nanosleeper_woke - t_start >= 0.199, "nanosleep woke after %.3f s", t_nanosleeper_woke - t_start);
    ck_assert_msg(t_poller_woke - t_start >= 0.099, "poll woke after %.3f s", t_poller_woke - t_start);
    /* In parallel, not one after another (that would be >= 1 s). */
    ck_assert_msg(total < 0.95, "the sleeps took %.3f s together", total);
}
END_TEST

/* ---- yielding to ready work stays out of the kernel, but never starves I/O ---- */

static void *yield_many(void *ctx)
{
    for (int i = 0; i < *(int *)ctx; i++)
        zcoroutine_yield();
    return NULL;
}

/* 2 x 20,000 yields: the loop (an epoll_wait each) turns at most once per 64 rounds of the
 * ready queue, not once a round. */
START_TEST(yield_to_ready_work_skips_the_loop)
{
    static int n = 20000;
    ck_assert_int_eq(zs_co_init(ev_default_loop(0)), 0);
    unsigned before = ev_iteration(ev_default_loop(0));
    ck_assert_int_eq(zcoroutine_go(yield_many, &n, 0), 0);
    ck_assert_int_eq(zcoroutine_go(yield_many, &n, 0), 0);
    run();
    unsigned turns = ev_iteration(ev_default_loop(0)) - before;
    ck_assert_msg(turns <= 20000 / 64 + 10, "the loop turned %u times for 20,000 rounds", turns);
}
END_TEST

static int io_sv[2];
static volatile int io_got;
static long spins;

static void *io_reader(void *ctx)
{
    (void)ctx;
    char c;
    ck_assert_int_eq(read(io_sv[0], &c, 1), 1);  /* hooked: waits in the loop */
    io_got = 1;
    return NULL;
}

static void *io_writer(void *ctx)
{
    (void)ctx;
    zcoroutine_sleep_ms(20);
    ck_assert_int_eq(write(io_sv[1], "x", 1), 1);
    return NULL;
}

/* Yields forever (bounded) until the reader got its byte: the loop still polls for I/O and
 * timers while a coroutine is always ready. */
static void *spin_until_read(void *ctx)
{
    (void)ctx;
    for (spins = 0; !io_got && spins < 100000000L; spins++)
        zcoroutine_yield();
    return NULL;
}

START_TEST(endless_yields_do_not_starve_io)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, io_sv), 0);
    double t0 = now();
    ck_assert_int_eq(zcoroutine_go(io_reader, NULL, 0), 0);
    ck_assert_int_eq(zcoroutine_go(io_writer, NULL, 0), 0);
    ck_assert_int_eq(zcoroutine_go(spin_until_read, NULL, 0), 0);
    run();
    ck_assert_int_eq(io_got, 1);
    ck_assert_msg(spins < 100000000L, "the reader never ran while another coroutine yielded");
    ck_assert_msg(now() - t0 < 2.0, "the byte took %.3f s to arrive", now() - t0);
    close(io_sv[0]);
    close(io_sv[1]);
}
END_TEST

/* ---- the aio timers work on the coroutine runtime's loop ---- */

static int timer_fired;
static double t_timer;
static void on_timer(void *ctx)
{
    timer_fired = *(int *)ctx;
    t_timer = now();
}
static void *outlast_timer(void *ctx)
{
    (void)ctx;
    zcoroutine_sleep_ms(120);
    return NULL;
}

START_TEST(aio_timers_run_on_the_coroutine_loop)
{
    static int seven = 7;
    ck_assert_int_eq(zs_co_init(ev_default_loop(0)), 0);
    ck_assert_ptr_eq(zvar_default_aio_base->loop, ev_default_loop(0));
    double t0 = now();
    ck_assert_ptr_nonnull(zaio_timer_set(50, on_timer, &seven));
    zcoroutine_go(outlast_timer, NULL, 0);
    run();
    ck_assert_int_eq(timer_fired, 7);
    ck_assert_msg(t_timer - t0 >= 0.049 && t_timer - t0 < 2, "timer fired after %.3f s", t_timer - t0);
}
END_TEST

/* ---- stack overflow hits the guard page ---- */

static char *guard_lo;
static size_t guard_len;
static int report_fd = -1;

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    char *a = si->si_addr;
    char c = a >= guard_lo && a < guard_lo + guard_len ? 'G' : 'X';
    (void)!syscall(SYS_write, report_fd, &c, 1);
    /* Return: SA_RESETHAND restored the default action, the fault repeats and kills us. */
}

static int __attribute__((noinline)) recurse(int n)
{
    volatile char buf[512];
    buf[0] = (char)n;
    if (n > 10000000)
        return 0;
    return recurse(n + 1) + buf[0];
}

static void *overflow(void *ctx)
{
    (void)ctx;
    guard_lo = zs_co_guard_page(&guard_len);
    return (void *)(long)recurse(0);
}

START_TEST(stack_overflow_faults_on_guard_page)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        report_fd = p[1];
        stack_t ss = { .ss_sp = malloc(256 * 1024), .ss_size = 256 * 1024 };
        sigaltstack(&ss, NULL);
        struct sigaction sa = { 0 };
        sa.sa_sigaction = segv_handler;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
        sigaction(SIGSEGV, &sa, NULL);
        zcoroutine_go(overflow, NULL, 64);
        zs_co_run();
        _exit(0); /* not reached: the overflow must fault */
    }
    close(p[1]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "child status 0x%x, not SIGSEGV", st);
    char c = 0;
    ck_assert_int_eq(read(p[0], &c, 1), 1);
    ck_assert_msg(c == 'G', "the fault was not on the guard page");
    close(p[0]);
}
END_TEST

/* ---- many coroutines: guard regions keep the mappings few ---- */

#define MANY 40000 /* above what vm.max_map_count's default (65530) allows two VMAs each */
static int many_alive, many_done;
static long many_maps;

static void *many_one(void *ctx)
{
    (void)ctx;
    if (++many_alive == MANY)
        many_maps = map_count(); /* every one is alive, with a touched stack, now */
    zcoroutine_yield();
    many_done++;
    return NULL;
}

START_TEST(many_coroutines_fit_under_max_map_count)
{
    /* Only kernels with guard regions (Linux 6.13) can; elsewhere the limit is documented. */
    void *probe = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int guards = probe != MAP_FAILED && madvise(probe, 4096, 102 /* MADV_GUARD_INSTALL */) == 0;
    if (probe != MAP_FAILED)
        munmap(probe, 8192);
    if (!guards) {
        fprintf(stderr, "many_coroutines_fit_under_max_map_count: no MADV_GUARD_INSTALL here: skipped\n");
        return;
    }
    long before = map_count();
    many_alive = many_done = 0;
    for (int i = 0; i < MANY; i++)
        ck_assert_msg(zcoroutine_go(many_one, NULL, 16) == 0, "coroutine %d: %s", i, strerror(errno));
    run();
    ck_assert_int_eq(many_alive, MANY);
    ck_assert_int_eq(many_done, MANY);
    ck_assert_msg(many_maps - before < 1000, "%ld mappings more with %d coroutines alive", many_maps - before, MANY);
}
END_TEST

/* ---- logging from the smallest stack a coroutine may have ---- */

static int logged;
static void *log_on_small_stack(void *ctx)
{
    (void)ctx;
    char v[600];
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    zinfo("a line from a 16 KiB stack: %s", v);  /* formatted, escaped, written: no overflow */
    zerror("and an error with \x1b control bytes: %s", v);
    logged++;
    return NULL;
}

START_TEST(logging_fits_the_smallest_stack)
{
    logged = 0;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(zcoroutine_go(log_on_small_stack, NULL, 16), 0);
    run();
    ck_assert_int_eq(logged, 3);
}
END_TEST

/* ---- per-coroutine errno and FP rounding mode ---- */

static int state_ok;
static void *errno_a(void *ctx)
{
    (void)ctx;
    errno = 111;
    ck_assert_int_eq(fesetround(FE_UPWARD), 0);
    zcoroutine_yield();
    state_ok += errno == 111;
    state_ok += fegetround() == FE_UPWARD;
    return NULL;
}
static void *errno_b(void *ctx)
{
    (void)ctx;
    state_ok += fegetround() == FE_TONEAREST; /* a new coroutine starts with its creator's */
    errno = 222;
    ck_assert_int_eq(fesetround(FE_DOWNWARD), 0);
    zcoroutine_yield();
    state_ok += errno == 222;
    state_ok += fegetround() == FE_DOWNWARD;
    return NULL;
}

START_TEST(errno_and_fp_state_per_coroutine)
{
    ck_assert_int_eq(fegetround(), FE_TONEAREST);
    zcoroutine_go(errno_a, NULL, 0);
    zcoroutine_go(errno_b, NULL, 0);
    errno = 0;
    run();
    ck_assert_int_eq(state_ok, 5);
    ck_assert_int_eq(fegetround(), FE_TONEAREST); /* the main context's survives */
}
END_TEST

/* ---- mutex ---- */

static zcoroutine_mutex_t *mtx;
static int in_cs, cs_violations, cs_count;

static void *locker(void *ctx)
{
    (void)ctx;
    for (int i = 0; i < 100; i++) {
        zcoroutine_mutex_lock(mtx);
        if (++in_cs != 1)
            cs_violations++;
        zcoroutine_yield(); /* suspended inside the critical section */
        cs_count++;
        in_cs--;
        zcoroutine_mutex_unlock(mtx);
        zcoroutine_yield();
    }
    return NULL;
}

static int order[3], norder;
static void *fifo_waiter(void *ctx)
{
    zcoroutine_mutex_lock(mtx);
    order[norder++] = (int)(long)ctx;
    zcoroutine_mutex_unlock(mtx);
    return NULL;
}
static void *fifo_holder(void *ctx)
{
    (void)ctx;
    zcoroutine_mutex_lock(mtx);
    ck_assert_int_eq(zcoroutine_mutex_trylock(mtx), -1);
    ck_assert_int_eq(errno, EBUSY);
    for (long i = 1; i <= 3; i++)
        zcoroutine_go(fifo_waiter, (void *)i, 0);
    zcoroutine_sleep_ms(20); /* all three queue up meanwhile */
    zcoroutine_mutex_unlock(mtx);
    return NULL;
}

START_TEST(mutex_excludes_and_hands_over_in_order)
{
    mtx = zcoroutine_mutex_create();
    for (int i = 0; i < 10; i++)
        zcoroutine_go(locker, NULL, 0);
    run();
    ck_assert_int_eq(cs_violations, 0);
    ck_assert_int_eq(cs_count, 1000);
    zcoroutine_go(fifo_holder, NULL, 0);
    run();
    ck_assert_int_eq(norder, 3);
    ck_assert_int_eq(order[0], 1);
    ck_assert_int_eq(order[1], 2);
    ck_assert_int_eq(order[2], 3);
    /* The main context may take a free mutex. */
    ck_assert_int_eq(zcoroutine_mutex_trylock(mtx), 0);
    zcoroutine_mutex_unlock(mtx);
    zcoroutine_mutex_free(mtx);
}
END_TEST

/* ---- cond: a bounded queue ---- */

#define QCAP 4
static zcoroutine_cond_t *not_empty, *not_full;
static int queue[QCAP], qhead, qlen, producers_left;
static long consumed_sum, consumed_n;

static void *producer(void *ctx)
{
    int base = (int)(long)ctx;
    for (int i = 1; i <= 200; i++) {
        zcoroutine_mutex_lock(mtx);
        while (qlen == QCAP)
            zcoroutine_cond_wait(not_full, mtx);
        queue[(qhead + qlen++) % QCAP] = base + i;
        zcoroutine_cond_signal(not_empty);
        zcoroutine_mutex_unlock(mtx);
        if (i % 7 == 0)
            zcoroutine_yield();
    }
    zcoroutine_mutex_lock(mtx);
    producers_left--;
    zcoroutine_cond_broadcast(not_empty);
    zcoroutine_mutex_unlock(mtx);
    return NULL;
}

static void *consumer(void *ctx)
{
    (void)ctx;
    zcoroutine_mutex_lock(mtx);
    for (;;) {
        while (qlen == 0 && producers_left)
            zcoroutine_cond_wait(not_empty, mtx);
        if (qlen == 0)
            break;
        consumed_sum += queue[qhead];
        consumed_n++;
        qhead = (qhead + 1) % QCAP;
        qlen--;
        zcoroutine_cond_signal(not_full);
    }
    zcoroutine_mutex_unlock(mtx);
    return NULL;
}

static double timedwait_took;
static int timedwait_rc, timedwait_errno, ticks;
static void *timed_waiter(void *ctx)
{
    (void)ctx;
    zcoroutine_mutex_lock(mtx);
    double t0 = now();
    timedwait_rc = zcoroutine_cond_timedwait(not_empty, mtx, 150);
    timedwait_errno = errno;
    timedwait_took = now() - t0;
    zcoroutine_mutex_unlock(mtx);
    return NULL;
}
static void *ticker(void *ctx)
{
    (void)ctx;
    for (int i = 0; i < 10; i++) {
        zcoroutine_sleep_ms(5);
        ticks++;
    }
    return NULL;
}
static int signalled_rc = -2;
static void *signalled_waiter(void *ctx)
{
    (void)ctx;
    zcoroutine_mutex_lock(mtx);
    signalled_rc = zcoroutine_cond_timedwait(not_empty, mtx, 5000);
    zcoroutine_mutex_unlock(mtx);
    return NULL;
}
static void *signaller(void *ctx)
{
    (void)ctx;
    zcoroutine_sleep_ms(20);
    zcoroutine_mutex_lock(mtx);
    zcoroutine_cond_signal(not_empty);
    zcoroutine_mutex_unlock(mtx);
    return NULL;
}

START_TEST(cond_bounded_queue_and_timeout)
{
    mtx = zcoroutine_mutex_create();
    not_empty = zcoroutine_cond_create();
    not_full = zcoroutine_cond_create();
    producers_left = 3;
    for (long p = 0; p < 3; p++)
        zcoroutine_go(producer, (void *)(p * 1000), 0);
    zcoroutine_go(consumer, NULL, 0);
    zcoroutine_go(consumer, NULL, 0);
    run();
    ck_assert_int_eq(consumed_n, 600);
    /* sum over p of (200 * p*1000 + 200*201/2) */
    ck_assert_int_eq(consumed_sum, 200L * 3000 + 3L * 20100);

    zcoroutine_go(timed_waiter, NULL, 0);
    zcoroutine_go(ticker, NULL, 0);
    run();
    ck_assert_int_eq(timedwait_rc, -1);
    ck_assert_int_eq(timedwait_errno, ETIMEDOUT);
    ck_assert_msg(timedwait_took >= 0.149 && timedwait_took < 3, "timedwait took %.3f s", timedwait_took);
    ck_assert_int_eq(ticks, 10);

    zcoroutine_go(signalled_waiter, NULL, 0);
    zcoroutine_go(signaller, NULL, 0);
    double t0 = now();
    run();
    ck_assert_int_eq(signalled_rc, 0);
    ck_assert_msg(now() - t0 < 3, "signal did not wake the waiter early");
    zcoroutine_cond_free(not_empty);
    zcoroutine_cond_free(not_full);
    zcoroutine_mutex_free(mtx);
}
END_TEST

/* ---- a blocking-style echo server, 1,000 concurrent clients ---- */

#define NCLIENTS 1000

static int live_handlers, peak_handlers, handlers_done;
static long bytes_echoed;

static void *echo_conn(void *ctx)
{
    int fd = (int)(long)ctx;
    char buf[4096];
    if (++live_handlers > peak_handlers)
        peak_handlers = live_handlers;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        ssize_t w = write(fd, buf, (size_t)n); /* a blocking write: all of it */
        ck_assert_int_eq(w, n);
        bytes_echoed += n;
    }
    close(fd);
    live_handlers--;
    handlers_done++;
    return NULL;
}

static void *echo_accept(void *ctx)
{
    int lfd = (int)(long)ctx;
    for (int i = 0; i < NCLIENTS; i++) {
        int fd = accept(lfd, NULL, NULL);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(zcoroutine_go(echo_conn, (void *)(long)fd, 0), 0);
    }
    close(lfd);
    return NULL;
}

static size_t client_len(int i)
{
    return 1000 + (size_t)(i * 7919) % 9000; /* 1,000 .. 9,999 bytes */
}
static unsigned char client_byte(int i, size_t k)
{
    return (unsigned char)((i * 131 + k * 7 + (k >> 8)) & 0xff);
}

/* The clients: a plain epoll loop in a forked process (outside any coroutine, so libc's calls).
 * Connects all, sends each its pattern, reads each echo back and checks every byte; closes
 * nothing until every client is verified, so the server holds 1,000 connections at once. */
static int run_clients(int port)
{
    struct client {
        int fd;
        size_t len, sent, got;
    } *c = calloc(NCLIENTS, sizeof(*c));
    int ep = epoll_create1(0), ok = 0;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    for (int i = 0; i < NCLIENTS; i++) {
        c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        c[i].len = client_len(i);
        if (c[i].fd < 0 || (connect(c[i].fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)) {
            fprintf(stderr, "client %d: socket/connect: %s\n", i, strerror(errno));
            return 2;
        }
        struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i };
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
    }
    double deadline = now() + 20;
    unsigned char buf[16384];
    while (ok < NCLIENTS && now() < deadline) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 1000);
        for (int e = 0; e < n; e++) {
            int i = (int)evs[e].data.u32;
            struct client *x = &c[i];
            if ((evs[e].events & EPOLLOUT) && x->sent < x->len) {
                size_t chunk = x->len - x->sent;
                if (chunk > sizeof(buf))
                    chunk = sizeof(buf);
                for (size_t k = 0; k < chunk; k++)
                    buf[k] = client_byte(i, x->sent + k);
                ssize_t w = send(x->fd, buf, chunk, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN) {
                    fprintf(stderr, "client %d: send: %s\n", i, strerror(errno));
                    return 3;
                }
                if (w > 0)
                    x->sent += (size_t)w;
                if (x->sent == x->len) {
                    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
                    epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &ev);
                }
            }
            if (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = recv(x->fd, buf, sizeof(buf), 0);
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    fprintf(stderr, "client %d: connection ended after %zu of %zu bytes\n", i, x->got, x->len);
                    return 4;
                }
                for (ssize_t k = 0; k < r; k++) {
                    if (buf[k] != client_byte(i, x->got + (size_t)k)) {
                        fprintf(stderr, "client %d: byte %zu differs\n", i, x->got + (size_t)k);
                        return 5;
                    }
                }
                if (r > 0) {
                    x->got += (size_t)r;
                    if (x->got > x->len)
                        return 6;
                    if (x->got == x->len) {
                        ok++;
                        epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
                    }
                }
            }
        }
    }
    if (ok < NCLIENTS) {
        fprintf(stderr, "only %d of %d clients verified in time\n", ok, NCLIENTS);
        return 7;
    }
    for (int i = 0; i < NCLIENTS; i++)
        close(c[i].fd);
    return 0;
}

START_TEST(echo_server_1000_concurrent_clients)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * NCLIENTS + 64) {
        rl.rlim_cur = rl.rlim_max < 2 * NCLIENTS + 64 ? rl.rlim_max : 2 * NCLIENTS + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ck_assert_int_ge(rl.rlim_cur, NCLIENTS + 64);
    /* A blocking listener, as a program would make one: accept() in a coroutine must wait. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(lfd, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 2048), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    /* Not the default loop: that one reaps every child on SIGCHLD, and we want the status. */
    ck_assert_int_eq(zs_co_init(ev_loop_new(EVFLAG_AUTO)), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(run_clients(ntohs(sa.sin_port)));
    zcoroutine_go(echo_accept, (void *)(long)lfd, 0);
    run();
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "clients failed (status 0x%x)", st);
    ck_assert_int_eq(handlers_done, NCLIENTS);
    ck_assert_int_eq(peak_handlers, NCLIENTS);
    long want = 0;
    for (int i = 0; i < NCLIENTS; i++)
        want += (long)client_len(i);
    ck_assert_int_eq(bytes_echoed, want);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("coroutine");
    TCase *tc = tcase_create("runtime");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ten_thousand_at_once);
    tcase_add_test(tc, yield_to_ready_work_skips_the_loop);
    tcase_add_test(tc, endless_yields_do_not_starve_io);
    tcase_add_test(tc, ten_thousand_cycles_reuse_stacks);
    tcase_add_test(tc, stack_size_argument);
    tcase_add_test(tc, sleep_does_not_stall_others);
    tcase_add_test(tc, aio_timers_run_on_the_coroutine_loop);
    tcase_add_test(tc, stack_overflow_faults_on_guard_page);
    tcase_add_test(tc, many_coroutines_fit_under_max_map_count);
    tcase_add_test(tc, logging_fits_the_smallest_stack);
    tcase_add_test(tc, errno_and_fp_state_per_coroutine);
    tcase_add_test(tc, mutex_excludes_and_hands_over_in_order);
    tcase_add_test(tc, cond_bounded_queue_and_timeout);
    tcase_add_test(tc, echo_server_1000_concurrent_clients);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
