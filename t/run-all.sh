#!/bin/sh
# `make test`: every Check unit test, then the end-to-end suite against the real binaries.
# Prints a final `N passed, N failed` line over both.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
sh "$here/run-unit.sh" "$@" 2>&1 | tee "$out"
ustat=$(tail -n 5 "$out" | sed -n 's/^unit: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
python3 "$here/e2e/run.py" 2>&1 | tee "$out"
estat=$(tail -n 3 "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*$/\1 \2/p')
rm -f "$out"
set -- ${ustat:-0 1} ${estat:-0 1}
passed=$(( $1 + $3 )); failed=$(( $2 + $4 ))
echo "all: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
