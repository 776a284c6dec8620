#!/bin/sh
# `make bench`: installs the peers if missing (t/bench/install.sh), builds the plain-C bench
# tools into build/bench/, then runs every benchmark (t/bench/bench.py; the coroutine one is
# t/bench/coroutine/run.sh, called from there when it exists).  Prints one table per benchmark
# and writes them all to build/bench/results.md.  Arguments select benchmarks:
#     sh t/bench/run.sh [respawn] [keepalive] [close] [coroutine] [scale]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$root/build/bench"
cc=${CC:-cc}

sh "$here/install.sh"
command -v python3 >/dev/null 2>&1 || sh "$root/scripts/install-deps.sh" python3
for b in "$root/build/masterd/masterd" "$root/build/sample/http_hello"; do
    [ -x "$b" ] || { echo "bench: $b is missing: run make first" >&2; exit 1; }
done
mkdir -p "$out"
for t in tinyserv respawn spawncost herd; do
    if [ ! -x "$out/$t" ] || [ "$here/$t.c" -nt "$out/$t" ]; then
        $cc -O2 -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE -o "$out/$t" "$here/$t.c"
    fi
done
exec python3 "$here/bench.py" "$@"
