/*
 * zs_co_switch_x86_64.S — zs_co_ctx_switch for x86-64 (System V ABI); see zs_co_ctx.h.
 *
 * void zs_co_ctx_switch(zs_co_ctx *from, zs_co_ctx *to)     rdi = from, rsi = to
 *
 * The caller's return address is already on its stack; we push the callee-saved registers and
 * the FP control words below it, store rsp in from->sp, load to->sp and undo the same frame.
 * Frame, from the saved sp upwards (zs_co_ctx.c builds the first one of a new coroutine):
 *   +0 mxcsr (4 bytes)  +4 x87 control word (2 bytes)  +8 r15  +16 r14  +24 r13  +32 r12
 *   +40 rbx  +48 rbp  +56 return address
 */
#if defined(__x86_64__) && !defined(ZS_CO_FORCE_UCONTEXT)
    .text
    .globl  zs_co_ctx_switch
    .hidden zs_co_ctx_switch
    .type   zs_co_ctx_switch, @function
    .p2align 4
zs_co_ctx_switch:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    movq    (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq    %r15
    .cfi_adjust_cfa_offset -8
    popq    %r14
    .cfi_adjust_cfa_offset -8
    popq    %r13
    .cfi_adjust_cfa_offset -8
    popq    %r12
    .cfi_adjust_cfa_offset -8
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    ret
    .cfi_endproc
    .size   zs_co_ctx_switch, .-zs_co_ctx_switch
#endif
    .section .note.GNU-stack,"",%progbits
