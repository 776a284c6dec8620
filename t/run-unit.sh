#!/bin/sh
# Runs each Check unit-test binary given as an argument; prints one summary line.
# Exit status: 0 only if every binary passed.
fail=0; pass=0; failed=""
for t in "$@"; do
    echo "== $t"
    if CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-60} "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "failed:$failed"; exit 1; }
