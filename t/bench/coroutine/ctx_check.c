/*
 * ctx_check.c — checks the context switch alone (libzserver/co/zs_co_ctx.c + zs_co_switch_<arch>.S),
 * without libev or the hooks, so it also runs on another architecture under qemu-user
 * (t/bench/coroutine/cross.sh builds it for aarch64).
 *
 * What a switch must keep: every callee-saved register (each context pins its own values in
 * them across its switches, and the main context also keeps many ordinary values live), the FP
 * control word (a coroutine's rounding mode is its own), and an ABI-aligned stack in the new
 * context (16-byte aligned locals; printf of doubles uses aligned SSE stores on x86-64).
 * Exit 0 and one `ctx_check: ok` line when all hold.
 */
#include <fenv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "co/zs_co_ctx.h"

#define STACK (64 * 1024)
#define ROUNDS 100000

static zs_co_ctx main_ctx, a_ctx, b_ctx;
static volatile long seed = 7;
static int failures;
static long a_turns, b_turns;

static void fail(const char *what)
{
    printf("ctx_check: FAILED: %s\n", what);
    failures++;
}

/* Callee-saved registers pinned to values that differ per context: each context puts its own
 * values in them right before it switches away and checks them right after it is back, so a
 * switch that fails to save or restore one shows up as another context's value. */
#if defined(__x86_64__)
#define PINNED_DECL(b)                                                                           \
    register long g1 __asm__("rbx") = (b) + 1;                                                   \
    register long g2 __asm__("r12") = (b) + 2;                                                   \
    register long g3 __asm__("r13") = (b) + 3;                                                   \
    register long g4 __asm__("r14") = (b) + 4;                                                   \
    register long g5 __asm__("r15") = (b) + 5
#define PINNED_SYNC() __asm__ volatile("" : "+r"(g1), "+r"(g2), "+r"(g3), "+r"(g4), "+r"(g5))
#define PINNED_BAD(b) (g1 != (b) + 1 || g2 != (b) + 2 || g3 != (b) + 3 || g4 != (b) + 4 || g5 != (b) + 5)
#elif defined(__aarch64__)
#define PINNED_DECL(b)                                                                           \
    register long g1 __asm__("x19") = (b) + 1;                                                   \
    register long g2 __asm__("x20") = (b) + 2;                                                   \
    register long g3 __asm__("x21") = (b) + 3;                                                   \
    register long g4 __asm__("x22") = (b) + 4;                                                   \
    register long g5 __asm__("x23") = (b) + 5;                                                   \
    register long g6 __asm__("x24") = (b) + 6;                                                   \
    register long g7 __asm__("x25") = (b) + 7;                                                   \
    register long g8 __asm__("x26") = (b) + 8;                                                   \
    register long g9 __asm__("x27") = (b) + 9;                                                   \
    register long g10 __asm__("x28") = (b) + 10;                                                 \
    register double f8 __asm__("d8") = (b) + 0.5;                                               \
    register double f9 __asm__("d9") = (b) + 1.5;                                               \
    register double f10 __asm__("d10") = (b) + 2.5;                                             \
    register double f11 __asm__("d11") = (b) + 3.5;                                             \
    register double f12 __asm__("d12") = (b) + 4.5;                                             \
    register double f13 __asm__("d13") = (b) + 5.5;                                             \
    register double f14 __asm__("d14") = (b) + 6.5;                                             \
    register double f15 __asm__("d15") = (b) + 7.5
#define PINNED_SYNC()                                                                            \
    __asm__ volatile("" : "+r"(g1), "+r"(g2), "+r"(g3), "+r"(g4), "+r"(g5), "+r"(g6), "+r"(g7), \
                     "+r"(g8), "+r"(g9), "+r"(g10));                                             \
    __asm__ volatile("" : "+w"(f8), "+w"(f9), "+w"(f10), "+w"(f11), "+w"(f12), "+w"(f13),       \
                     "+w"(f14), "+w"(f15))
#define PINNED_BAD(b)                                                                            \
    (g1 != (b) + 1 || g2 != (b) + 2 || g3 != (b) + 3 || g4 != (b) + 4 || g5 != (b) + 5 ||      \
     g6 != (b) + 6 || g7 != (b) + 7 || g8 != (b) + 8 || g9 != (b) + 9 || g10 != (b) + 10 ||     \
     f8 != (b) + 0.5 || f9 != (b) + 1.5 || f10 != (b) + 2.5 || f11 != (b) + 3.5 ||              \
     f12 != (b) + 4.5 || f13 != (b) + 5.5 || f14 != (b) + 6.5 || f15 != (b) + 7.5)
#else
#define PINNED_DECL(b) (void)(b)
#define PINNED_SYNC() (void)0
#define PINNED_BAD(b) 0
#endif

/* Switches from -> to with the pinned registers holding base's values; checks them after. */
#define SWITCH_CHECKED(from, to, base, who)                                                      \
    do {                                                                                         \
        PINNED_DECL(base);                                                                       \
        PINNED_SYNC();                                                                           \
        zs_co_ctx_switch(from, to);                                                              \
        PINNED_SYNC();                                                                           \
        if (PINNED_BAD(base))                                                                    \
            fail(who " found another context's value in a callee-saved register");              \
    } while (0)

static void check_alignment(void)
{
    _Alignas(16) volatile char buf[16];
    if ((uintptr_t)buf % 16)
        fail("a 16-byte aligned local is not aligned: the new stack is misaligned");
    char line[64];
    snprintf(line, sizeof(line), "%.3f %.3Lf", 1.5, (long double)2.25);
    if (strcmp(line, "1.500 2.250"))
        fail("printf of doubles on the coroutine stack");
}

static void a_entry(void)
{
    check_alignment();
    if (fesetround(FE_UPWARD))
        fail("fesetround");
    for (;;) {
        a_turns++;
        if (fegetround() != FE_UPWARD)
            fail("coroutine A lost its rounding mode");
        SWITCH_CHECKED(&a_ctx, &b_ctx, 0x1000, "coroutine A"); /* A -> B -> main: a chain of three */
    }
}

static void b_entry(void)
{
    check_alignment();
    if (fegetround() != FE_UPWARD)
        fail("coroutine B did not start with its creator's rounding mode");
    fesetround(FE_TOWARDZERO);
    for (;;) {
        b_turns++;
        if (fegetround() != FE_TOWARDZERO)
            fail("coroutine B lost its rounding mode");
        SWITCH_CHECKED(&b_ctx, &main_ctx, 0x2000, "coroutine B");
    }
}

static void *stack(void)
{
    void *p = malloc(STACK);
    if (!p)
        exit(2);
    return p;
}

/* Each value enters every round differently (no sum the compiler could compute once). */
#define MIX(a, b, c, d, e, f, g, h, j, k, l, m, n, o, i)                                                  \
    (((a) ^ (i)) + ((b) ^ ((i) << 1)) + ((c) ^ ((i) << 2)) + ((d) ^ ((i) << 3)) + ((e) ^ ((i) << 4)) +   \
     ((f) ^ ((i) << 5)) + ((g) ^ ((i) << 6)) + ((h) ^ ((i) << 7)) + ((j) ^ ((i) << 8)) +                  \
     ((k) ^ ((i) << 9)) + ((l) ^ ((i) << 10)) + ((m) ^ ((i) << 11)) + ((n) ^ ((i) << 12)) + ((o) ^ (i) * 3))
#define DMIX(a, b, c, d, e, f, g, h, j, k, l, m, i)                                                       \
    ((a) * ((i) & 1) + (b) * ((i) & 2) + (c) * ((i) & 4) + (d) * ((i) & 8) + (e) * ((i) & 16) +           \
     (f) * ((i) & 32) + (g) * ((i) & 64) + (h) * ((i) & 128) + (j) * ((i) & 256) + (k) * ((i) & 512) +    \
     (l) * ((i) & 1024) + (m) * ((i) & 2048))

int main(void)
{
    /* Many values live across every switch: the compiler keeps them in callee-saved
     * registers (and spills the rest), so a switch that loses one changes the sums. */
    long v0 = seed, v1 = v0 * 3, v2 = v1 + 5, v3 = v2 ^ 9, v4 = v3 * 7, v5 = v4 - 11, v6 = v5 * 13, v7 = v6 + 17;
    long v8 = v7 ^ 19, v9 = v8 * 23, v10 = v9 + 29, v11 = v10 * 31, v12 = v11 ^ 37, v13 = v12 + 41;
    double d0 = (double)seed / 3, d1 = d0 * 1.5, d2 = d1 + 0.25, d3 = d2 * 2.5, d4 = d3 - 0.75, d5 = d4 * 1.125;
    double d6 = d5 + 3.5, d7 = d6 * 0.5, d8 = d7 + 1, d9 = d8 * 0.75, d10 = d9 - 2, d11 = d10 * 1.25;
    long s = 0;
    double ds = 0;

    zs_co_ctx_make(&a_ctx, stack(), STACK, a_entry);
    if (fegetround() != FE_TONEAREST)
        fail("main does not start rounding to nearest");
    for (int i = 0; i < ROUNDS; i++) {
        if (i == 0) {
            /* B is made while rounding upward, so it must start rounding upward. */
            fesetround(FE_UPWARD);
            zs_co_ctx_make(&b_ctx, stack(), STACK, b_entry);
            fesetround(FE_TONEAREST);
        }
        if (i % 2)
            SWITCH_CHECKED(&main_ctx, &a_ctx, 0x3000, "main");
        else
            zs_co_ctx_switch(&main_ctx, &a_ctx); /* values the compiler keeps where it likes */
        s += MIX(v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, i);
        ds += DMIX(d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, i);
        if (fegetround() != FE_TONEAREST) {
            fail("main lost its rounding mode");
            break;
        }
    }
    long want_s = 0;
    double want_ds = 0;
    for (int i = 0; i < ROUNDS; i++) {
        want_s += MIX(v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, i);
        want_ds += DMIX(d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, i);
    }
    /* Recompute from scratch: if a register was lost, v* themselves may be wrong too. */
    long r0 = seed, r1 = r0 * 3, r2 = r1 + 5, r3 = r2 ^ 9, r4 = r3 * 7, r5 = r4 - 11, r6 = r5 * 13, r7 = r6 + 17;
    long r8 = r7 ^ 19, r9 = r8 * 23, r10 = r9 + 29, r11 = r10 * 31, r12 = r11 ^ 37, r13 = r12 + 41;
    long fresh = 0;
    for (int i = 0; i < ROUNDS; i++)
        fresh += MIX(r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, i);
    if (s != want_s || s != fresh)
        fail("integer values held across the switch changed");
    if (ds != want_ds)
        fail("floating-point values held across the switch changed");
    if (a_turns != ROUNDS || b_turns != ROUNDS)
        fail("the coroutines did not take exactly one turn per round");
    if (failures)
        return 1;
    printf("ctx_check: ok (%s, %d rounds of main -> A -> B -> main)\n", zs_co_ctx_kind(), ROUNDS);
    return 0;
}
