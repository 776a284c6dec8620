#!/bin/sh
# t/bench/coroutine/run.sh — the coroutine benchmarks:
#   1. the switch: what it keeps (cross.sh: ctx_check.c natively and, when a cross compiler and
#      qemu-user are installed, on aarch64), then its cost against glibc swapcontext (switch.c,
#      built here against build/libzserver.a into build/bench/co_switch); goal <= 1/20; what a
#      hooked call costs outside a coroutine (hookcost.c, build/bench/co_hookcost); goal <= 5 ns;
#   2. 100,000 coroutines alive at once, each in a sleep+yield loop (many.c): resident memory
#      growth against the stack pages they touched; goal <= 1.2x;
#   3. HTTP hello, coroutine mode vs aio mode, same worker count, under wrk (http.py); goal >= 0.9x.
# `make` first.  Arguments: `switch`, `many` or `http` to run one of them.  Environment: BENCH_SECONDS
# (wrk duration, 5), BENCH_COROUTINES (many.c's count, 100000), BENCH_ROUNDS (rounds per server, 3), BENCH_WORKERS (2), BENCH_CONNS (50).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out="$root/build/bench"
cc=${CC:-cc}
what=${1:-all}

[ -f "$root/build/libzserver.a" ] || { echo "bench: build/libzserver.a is missing: run make first" >&2; exit 1; }
mkdir -p "$out"

status=0
if [ "$what" = all ] || [ "$what" = switch ]; then
    $cc -O2 -g -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE -I"$root/libzserver" -I"$root/libzserver/core" -o "$out/co_switch" "$here/switch.c" \
        -Wl,--whole-archive "$root/build/libzserver.a" -Wl,--no-whole-archive -linih -lev -ldl -lm -lpthread
    echo "== context switch: correctness (t/bench/coroutine/cross.sh: native, and aarch64 under qemu if installed)"
    sh "$here/cross.sh" || status=1
    echo "== context switch: cost (build/bench/co_switch)"
    "$out/co_switch" || status=1
    $cc -O2 -g -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE -I"$root/libzserver" -I"$root/libzserver/core" -o "$out/co_hookcost" "$here/hookcost.c" \
        -Wl,--whole-archive "$root/build/libzserver.a" -Wl,--no-whole-archive -linih -lev -ldl -lm -lpthread
    echo "== a hooked call outside a coroutine (build/bench/co_hookcost)"
    "$out/co_hookcost" || status=1
fi
if [ "$what" = all ] || [ "$what" = many ]; then
    $cc -O2 -g -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE -I"$root/libzserver" -I"$root/libzserver/core" -o "$out/co_many" "$here/many.c" \
        -Wl,--whole-archive "$root/build/libzserver.a" -Wl,--no-whole-archive -linih -lev -ldl -lm -lpthread
    echo "== 100,000 live coroutines: memory against their stacks' touched pages (build/bench/co_many)"
    "$out/co_many" "${BENCH_COROUTINES:-100000}" || status=1
fi
if [ "$what" = all ] || [ "$what" = http ]; then
    command -v wrk >/dev/null 2>&1 || {
        echo "bench: installing wrk"; apt-get install -y wrk >/dev/null || { echo "bench: cannot install wrk" >&2; exit 1; }
    }
    echo "== HTTP hello: coroutine mode vs aio mode (t/bench/coroutine/http.py)"
    python3 "$here/http.py" || status=1
fi
exit $status
