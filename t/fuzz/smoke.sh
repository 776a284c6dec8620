#!/bin/sh
# `make fuzz-smoke` and part of `make test`: every harness for FUZZ_SMOKE_SECONDS (default 10,
# so three harnesses stay under 45 s), from fresh copies of the seeds.  Prints
# `fuzz: N passed, M failed` last; exit 1 on a crash, leak, timeout or build failure.
set -u
secs=${FUZZ_SMOKE_SECONDS:-10}
[ "$secs" -le 20 ] 2>/dev/null || secs=20
exec sh "$(dirname "$0")/run.sh" -smoke "$secs"
