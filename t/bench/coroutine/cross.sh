#!/bin/sh
# t/bench/coroutine/cross.sh — runs ctx_check.c (the context switch alone) natively and, when an
# aarch64 cross compiler and qemu-user are installed (Debian: gcc-aarch64-linux-gnu, qemu-user),
# for aarch64 under qemu: the hand-written switch, then the <ucontext.h> fallback.
# Binaries go to build/bench/.  Exit status: non-zero when a check fails.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out="$root/build/bench"
lib="$root/libzserver"
src="$here/ctx_check.c $lib/co/zs_co_ctx.c $lib/co/zs_co_switch_x86_64.S $lib/co/zs_co_switch_aarch64.S"
flags="-O2 -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE -I$lib -I$lib/core"
mkdir -p "$out"

${CC:-cc} $flags -o "$out/ctx_check" $src -lm
"$out/ctx_check"
${CC:-cc} $flags -DZS_CO_FORCE_UCONTEXT -o "$out/ctx_check_uc" $src -lm
"$out/ctx_check_uc"

if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1; then
    aarch64-linux-gnu-gcc $flags -static -o "$out/ctx_check_aarch64" $src -lm
    qemu-aarch64 "$out/ctx_check_aarch64"
    aarch64-linux-gnu-gcc $flags -static -DZS_CO_FORCE_UCONTEXT -o "$out/ctx_check_aarch64_uc" $src -lm
    qemu-aarch64 "$out/ctx_check_aarch64_uc"
else
    echo "cross: no aarch64-linux-gnu-gcc or qemu-aarch64: aarch64 not checked"
fi
