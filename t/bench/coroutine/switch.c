/*
 * switch.c — what a coroutine switch costs: libzserver's switch (zs_co_ctx_switch) against
 * glibc's swapcontext, measured in the same run on the same kind of stacks; then a whole
 * zcoroutine_yield round through the scheduler, and what a hooked call costs a program that
 * never starts a coroutine.  Goal: our switch <= 1/20 of swapcontext's.
 *
 *   build/bench/co_switch [rounds]     (t/bench/coroutine/run.sh builds and runs it)
 *
 * Each figure is the best of 5 runs of `rounds` round trips (2 switches each), so a preemption
 * on a busy machine does not count against either side.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include "co/zs_co.h"
#include "co/zs_co_ctx.h"
#include "zserver.h"

#define STACK (64 * 1024)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *stack(void)
{
    void *p = mmap(NULL, STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

/* ---- ours ---- */

static zs_co_ctx main_ctx, co_ctx;

static void ours_entry(void)
{
    for (;;)
        zs_co_ctx_switch(&co_ctx, &main_ctx);
}

static double ours(long rounds)
{
    double t0 = now();
    for (long i = 0; i < rounds; i++)
        zs_co_ctx_switch(&main_ctx, &co_ctx);
    return (now() - t0) / (double)(2 * rounds) * 1e9;
}

/* ---- glibc ---- */

static ucontext_t main_uc, co_uc;

static void uc_entry(void)
{
    for (;;)
        swapcontext(&co_uc, &main_uc);
}

static double glibc(long rounds)
{
    double t0 = now();
    for (long i = 0; i < rounds; i++)
        swapcontext(&main_uc, &co_uc);
    return (now() - t0) / (double)(2 * rounds) * 1e9;
}

/* ---- a whole yield through the scheduler: two coroutines taking turns ---- */

static long yield_rounds;
static void *yielder(void *ctx)
{
    (void)ctx;
    for (long i = 0; i < yield_rounds; i++)
        zcoroutine_yield();
    return NULL;
}

static double scheduler(long rounds)
{
    yield_rounds = rounds;
    zcoroutine_go(yielder, NULL, 0);
    zcoroutine_go(yielder, NULL, 0);
    double t0 = now();
    zs_co_run();
    return (now() - t0) / (double)(2 * rounds) * 1e9; /* per yield (each is two switches) */
}

/* ---- the pass-through path of a hooked call, outside any coroutine ---- */

static double hooked_close(long n)
{
    double t0 = now();
    for (long i = 0; i < n; i++)
        close(-1);
    return (now() - t0) / (double)n * 1e9;
}

static double raw_close(long n)
{
    double t0 = now();
    for (long i = 0; i < n; i++)
        syscall(SYS_close, -1);
    return (now() - t0) / (double)n * 1e9;
}

static double best(double (*fn)(long), long n)
{
    double b = 1e30;
    for (int i = 0; i < 5; i++) {
        double v = fn(n);
        if (v < b)
            b = v;
    }
    return b;
}

/* Apart from main: getcontext returns twice, and main's locals must not care. */
static void __attribute__((noinline)) make_contexts(void)
{
    zs_co_ctx_make(&co_ctx, stack(), STACK, ours_entry);
    getcontext(&co_uc);
    co_uc.uc_stack.ss_sp = stack();
    co_uc.uc_stack.ss_size = STACK;
    co_uc.uc_link = NULL;
    makecontext(&co_uc, uc_entry, 0);
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 2000000;
    if (rounds < 1000)
        rounds = 1000;
    make_contexts();

    /* Alternate, so a change in the machine's load falls on both. */
    ours(rounds / 10);
    glibc(rounds / 10);
    double a = 1e30, g = 1e30;
    for (int i = 0; i < 3; i++) {
        double x = best(ours, rounds), y = best(glibc, rounds / 4);
        a = x < a ? x : a;
        g = y < g ? y : g;
    }
    double s = best(scheduler, rounds / 4);
    /* A system call costs ~1 us on some VMs and varies a lot: many short alternating batches,
     * the fastest of each side. */
    double hc = 1e30, rc = 1e30;
    for (int i = 0; i < 300; i++) {
        double x = hooked_close(500), y = raw_close(500);
        hc = x < hc ? x : hc;
        rc = y < rc ? y : rc;
    }

    printf("switch (%s):      %7.2f ns/switch\n", zs_co_ctx_kind(), a);
    printf("glibc swapcontext:      %7.2f ns/switch\n", g);
    printf("ratio ours/swapcontext: %7.4f  (1/%.0f; goal <= 1/20: %s)\n", a / g, g / a, a * 20 <= g ? "met" : "NOT met");
    printf("zcoroutine_yield:       %7.2f ns/yield (scheduler round: ready queue, 2 switches)\n", s);
    printf("ratio yield/switch:     %7.2f  (goal <= 4, another coroutine ready: %s)\n", s / a,
           s <= 4 * a ? "met" : "NOT met");
    printf("close(-1) outside a coroutine: hooked %.1f ns/call, raw syscall %.1f ns/call (hook: %+.1f ns)\n", hc, rc,
           hc - rc);
    return a * 20 <= g ? 0 : 1;
}
