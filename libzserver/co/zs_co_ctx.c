/*
 * zs_co_ctx.c — building a coroutine's first frame, and the <ucontext.h> fallback (zs_co_ctx.h).
 *
 * With the assembly switch a new context is just a stack whose top holds the frame the switch
 * pops: zeroed callee-saved registers, the caller's FP control words, and entry() as the return
 * address, placed so that entry starts with the stack aligned as if it had been called (sp + 8
 * a multiple of 16 on x86-64, sp a multiple of 16 on aarch64).  A zero above it ends back-traces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "zs_co_ctx.h"

#ifdef ZS_CO_UCONTEXT

void zs_co_ctx_make(zs_co_ctx *ctx, void *lo, size_t size, void (*entry)(void))
{
    if (getcontext(&ctx->uc) < 0)
        abort(); /* cannot fail on Linux; a context we cannot build is not one we can run */
    ctx->uc.uc_stack.ss_sp = lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, entry, 0);
}

void zs_co_ctx_switch(zs_co_ctx *from, zs_co_ctx *to)
{
    if (swapcontext(&from->uc, &to->uc) < 0)
        abort();
}

const char *zs_co_ctx_kind(void)
{
    return "ucontext";
}

#elif defined(__x86_64__)

void zs_co_ctx_make(zs_co_ctx *ctx, void *lo, size_t size, void (*entry)(void))
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    uint64_t *f = (uint64_t *)(top - 72); /* the 9 words of zs_co_switch_x86_64.S's frame */
    uint32_t mxcsr;
    uint16_t fcw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fcw));
    memset(f, 0, 72);
    memcpy((char *)f, &mxcsr, 4);
    memcpy((char *)f + 4, &fcw, 2);
    f[7] = (uint64_t)(uintptr_t)entry; /* return address: entry runs with sp = top - 8 */
    f[8] = 0;                          /* entry's own (fake) return address */
    ctx->sp = f;
}

const char *zs_co_ctx_kind(void)
{
    return "x86_64 asm";
}

#elif defined(__aarch64__)

void zs_co_ctx_make(zs_co_ctx *ctx, void *lo, size_t size, void (*entry)(void))
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    uint64_t *f = (uint64_t *)(top - 176); /* zs_co_switch_aarch64.S's frame */
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    memset(f, 0, 176);
    f[11] = (uint64_t)(uintptr_t)entry; /* x30: `ret` jumps to entry with sp = top */
    f[20] = fpcr;
    ctx->sp = f;
}

const char *zs_co_ctx_kind(void)
{
    return "aarch64 asm";
}

#endif
