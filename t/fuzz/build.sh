#!/bin/sh
# Builds the libFuzzer harnesses t/fuzz/fuzz_*.c into build/fuzz/NAME with clang
# (-fsanitize=fuzzer,address,undefined), each linked with the real libzserver sources it needs.
# Installs Debian's clang and its fuzzer runtime when they are missing.  Rebuilds a harness only
# when a source or header is newer than it.  Usage: build.sh [NAME...] (default: every harness).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
out=build/fuzz
CLANG=${FUZZ_CC:-clang}
# The layers the harnesses reach: core, supervision and the server skeleton (no aio or
# coroutine runtime: the syscall hooks have no business in a fuzzer).
LIBSRC=$(cd libzserver && ls core/*.c super/*.c server/*.c)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
BASE="-g -O1 -fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE -Ilibzserver -Ilibzserver/core -DMASTERD_VERSION=\"fuzz\""
# The library is compiled with -w: clang warns about things gcc (the project's compiler, with
# -Werror) does not, and those belong to `make`, not here.  The harnesses are held to -Werror.
LIB_CFLAGS="$BASE -fsanitize=fuzzer-no-link $SAN -w"
HARNESS_CFLAGS="$BASE -fsanitize=fuzzer $SAN -Wall -Wextra -Werror"

# Links a probe into a temp file: a linker writing to /dev/null as root replaces the device.
have_fuzzer() {
    command -v "$CLANG" >/dev/null 2>&1 || return 1
    probe=$(mktemp) || return 1
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' |
        "$CLANG" -fsanitize=fuzzer,address,undefined -x c -o "$probe" - >/dev/null 2>&1
    rc=$?
    rm -f "$probe"
    return $rc
}
if ! have_fuzzer; then
    echo "fuzz: clang with libFuzzer not found; installing clang and libclang-rt-14-dev" >&2
    sh scripts/install-deps.sh clang libclang-rt-14-dev
    have_fuzzer || { echo "fuzz: $CLANG still cannot link -fsanitize=fuzzer" >&2; exit 1; }
fi

mkdir -p "$out"
# Two runs started at once (make fuzz beside a smoke) build one at a time.
if [ -z "${FUZZ_BUILD_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
    export FUZZ_BUILD_LOCKED=1
    exec flock "$out/.build-lock" sh "$top/t/fuzz/build.sh" "$@"
fi
if [ "$#" -eq 0 ]; then
    set --
    for f in t/fuzz/fuzz_*.c; do n=${f##*/}; set -- "$@" "${n%.c}"; done
fi
mkdir -p "$out/obj"
objs=""
for s in $LIBSRC; do
    o=$out/obj/${s%.c}.o
    mkdir -p "${o%/*}"
    objs="$objs $o"
    if [ -f "$o" ] && [ -z "$(find libzserver/$s libzserver/*.h libzserver/*/*.h t/fuzz/build.sh -newer "$o" 2>/dev/null)" ]; then
        continue
    fi
    echo "fuzz: compiling $o"
    # shellcheck disable=SC2086
    "$CLANG" $LIB_CFLAGS -c -o "$o.tmp" "libzserver/$s"
    mv "$o.tmp" "$o"
done
# An archive, so each harness links only the modules it reaches.
lib=$out/libzs-fuzz.a
# shellcheck disable=SC2086
if [ ! -f "$lib" ] || [ -n "$(find $objs -newer "$lib")" ]; then
    rm -f "$lib"
    # shellcheck disable=SC2086
    ar rcs "$lib" $objs
fi
for name in "$@"; do
    bin=$out/$name
    if [ -x "$bin" ] && [ -z "$(find t/fuzz/$name.c "$lib" -newer "$bin" 2>/dev/null)" ]; then
        continue
    fi
    echo "fuzz: building $bin"
    # shellcheck disable=SC2086
    "$CLANG" $HARNESS_CFLAGS -o "$bin.tmp" "t/fuzz/$name.c" "$lib" -linih -lev -ldl -lm
    mv "$bin.tmp" "$bin"
done
