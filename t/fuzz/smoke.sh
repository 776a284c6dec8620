#!/bin/sh
# `make fuzz-smoke` and part of `make test`: every harness for FUZZ_SMOKE_SECONDS (default 9, at
# most 20; three harnesses take about 35 s with start-up and exit), from fresh copies of the
# seeds.  Prints `fuzz: N passed, M failed` last; exit 1 on a crash, leak, hang or build failure.
set -u
secs=${FUZZ_SMOKE_SECONDS:-9}
[ "$secs" -le 20 ] 2>/dev/null || secs=20
exec sh "$(dirname "$0")/run.sh" -smoke "$secs"
