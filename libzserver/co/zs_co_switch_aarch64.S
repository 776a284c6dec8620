/*
 * zs_co_switch_aarch64.S — zs_co_ctx_switch for aarch64 (AAPCS64); see zs_co_ctx.h.
 *
 * void zs_co_ctx_switch(zs_co_ctx *from, zs_co_ctx *to)     x0 = from, x1 = to
 *
 * Saves the callee-saved registers x19-x28, the frame pointer x29, the return address x30, the
 * low halves d8-d15 of v8-v15 and fpcr in a 176-byte frame below sp, stores sp in from->sp,
 * loads to->sp and undoes the same frame; `ret` goes to the restored x30.
 * Frame, from the saved sp upwards (zs_co_ctx.c builds the first one of a new coroutine):
 *   +0 x19 x20  +16 x21 x22  +32 x23 x24  +48 x25 x26  +64 x27 x28  +80 x29 x30
 *   +96 d8 d9  +112 d10 d11  +128 d12 d13  +144 d14 d15  +160 fpcr  (+168 padding)
 */
#if defined(__aarch64__) && !defined(ZS_CO_FORCE_UCONTEXT)
    .text
    .globl  zs_co_ctx_switch
    .hidden zs_co_ctx_switch
    .type   zs_co_ctx_switch, %function
    .p2align 4
zs_co_ctx_switch:
    .cfi_startproc
    sub     sp, sp, #176
    .cfi_adjust_cfa_offset 176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    .cfi_offset x29, -96
    .cfi_offset x30, -88
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x9, sp
    str     x9, [x0]
    ldr     x9, [x1]
    mov     sp, x9
    ldr     x9, [sp, #160]
    msr     fpcr, x9
    ldp     d14, d15, [sp, #144]
    ldp     d12, d13, [sp, #128]
    ldp     d10, d11, [sp, #112]
    ldp     d8, d9, [sp, #96]
    ldp     x29, x30, [sp, #80]
    ldp     x27, x28, [sp, #64]
    ldp     x25, x26, [sp, #48]
    ldp     x23, x24, [sp, #32]
    ldp     x21, x22, [sp, #16]
    ldp     x19, x20, [sp, #0]
    add     sp, sp, #176
    .cfi_adjust_cfa_offset -176
    ret
    .cfi_endproc
    .size   zs_co_ctx_switch, .-zs_co_ctx_switch
#endif
    .section .note.GNU-stack,"",%progbits
