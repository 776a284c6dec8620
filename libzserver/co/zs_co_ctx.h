/*
 * zs_co_ctx.h — machine contexts for coroutines: make one on a fresh stack, switch between two.
 *
 * On x86-64 and aarch64 the switch is hand-written (zs_co_switch_<arch>.S): it saves only what
 * the ABI says a callee must preserve (callee-saved registers, stack pointer, return address)
 * plus the floating-point control words (mxcsr and the x87 control word on x86-64, fpcr on
 * aarch64), so a coroutine that changes rounding modes does not leak them into others.  Every
 * other machine uses <ucontext.h> (swapcontext also saves the signal mask: a system call per
 * switch, correct but slow).  -DZS_CO_FORCE_UCONTEXT selects the fallback anywhere (tests).
 */
#ifndef ZS_CO_CTX_H
#define ZS_CO_CTX_H
#include <stddef.h>

#if defined(ZS_CO_FORCE_UCONTEXT) || !(defined(__x86_64__) || defined(__aarch64__))
#define ZS_CO_UCONTEXT 1
#include <ucontext.h>
typedef struct zs_co_ctx {
    ucontext_t uc;
} zs_co_ctx;
#else
typedef struct zs_co_ctx {
    void *sp; /* the saved stack pointer; everything else lives on that stack */
} zs_co_ctx;
#endif

/* Prepares ctx so that switching to it runs entry() on the stack [lo, lo + size).  entry must
 * never return (it switches away for the last time instead).  The new context starts with the
 * caller's floating-point control words. */
void zs_co_ctx_make(zs_co_ctx *ctx, void *lo, size_t size, void (*entry)(void));

/* Saves the running context in *from and resumes *to; returns when something switches back
 * to *from. */
void zs_co_ctx_switch(zs_co_ctx *from, zs_co_ctx *to);

/* The name of the switch in use ("x86_64 asm", "aarch64 asm" or "ucontext"). */
const char *zs_co_ctx_kind(void);
#endif
