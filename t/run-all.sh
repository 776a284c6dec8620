#!/bin/sh
# `make test`: every Check unit test, then the end-to-end suite against the real binaries, then
# a short libFuzzer run of every harness (t/fuzz/smoke.sh).  Prints a final `all: N passed,
# N failed` line over the three.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
sh "$here/run-unit.sh" "$@" 2>&1 | tee "$out"
ustat=$(tail -n 5 "$out" | sed -n 's/^unit: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
python3 "$here/e2e/run.py" 2>&1 | tee "$out"
estat=$(tail -n 3 "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*$/\1 \2/p')
sh "$here/fuzz/smoke.sh" 2>&1 | tee "$out"
fstat=$(tail -n 3 "$out" | sed -n 's/^fuzz: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
rm -f "$out"
set -- ${ustat:-0 1} ${estat:-0 1} ${fstat:-0 1}
passed=$(( $1 + $3 + $5 )); failed=$(( $2 + $4 + $6 ))
echo "all: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
