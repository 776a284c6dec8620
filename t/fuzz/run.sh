#!/bin/sh
# Runs the libFuzzer harnesses, one after the other, each for SECONDS (libFuzzer's
# -max_total_time; a `timeout` 60 s later is only a backstop).  Usage:
#   run.sh [-smoke] SECONDS [NAME...]      NAME: config, listen, args (default: all)
# Each harness starts from the seeds in t/fuzz/corpus/NAME/, copied into build/fuzz/corpus/NAME/
# (kept between runs, so `make fuzz` goes on where it stopped) or, with -smoke, into a fresh
# build/fuzz/smoke.XXXXXX/corpus/NAME/.  A crash, leak, timeout or failed check is written to
# artifacts/NAME-* and each run's log to logs/NAME.log, under build/fuzz/ (full run) or the
# smoke.XXXXXX directory (kept only when something was found).
# Prints one line per harness and a last line `fuzz: N passed, M failed`; exit 1 if M > 0.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
mode=full
[ "${1:-}" = "-smoke" ] && { mode=smoke; shift; }
secs=${1:-60}
[ "$#" -gt 0 ] && shift
case $secs in ''|*[!0-9]*) echo "fuzz: SECONDS must be a number, not '$secs'" >&2; exit 2 ;; esac
if [ "$#" -eq 0 ]; then
    for f in t/fuzz/fuzz_*.c; do n=${f##*/fuzz_}; set -- "$@" "${n%.c}"; done
fi

pass=0; fail=0
bins=""
for n in "$@"; do bins="$bins fuzz_$n"; done
# shellcheck disable=SC2086
if ! sh t/fuzz/build.sh $bins; then
    echo "fuzz: build failed"
    echo "fuzz: 0 passed, $# failed"
    exit 1
fi

out=build/fuzz
# A smoke run works in a directory of its own (two `make test` at once must not share a
# corpus or a log), removed when nothing was found; a full run keeps corpus, logs and artifacts.
if [ "$mode" = smoke ]; then
    work=$(mktemp -d "$top/$out/smoke.XXXXXX") || exit 1
else
    work=$top/$out
fi
mkdir -p "$work/logs" "$work/artifacts"
for n in "$@"; do
    bin=$out/fuzz_$n
    dir=$work/corpus/$n
    mkdir -p "$dir"
    cp -p t/fuzz/corpus/"$n"/* "$dir"/ 2>/dev/null
    dict=""
    [ -f "t/fuzz/$n.dict" ] && dict="-dict=t/fuzz/$n.dict"
    log=$work/logs/$n.log
    rm -f "$work/artifacts/$n-"*
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a runaway allocation is a bug.
    # shellcheck disable=SC2086
    timeout -k 5 $((secs + 60)) "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -max_len=4096 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/$n-" $dict "$dir" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    [ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    files=$(find "$dir" -type f | wc -l)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz_$n: ${runs:-?} executions in ${secs}s, corpus $files inputs, nothing found"
        pass=$((pass + 1))
    else
        what=$(grep -a -m 1 -E '^(==[0-9]+==ERROR|SUMMARY|.*check failed|.*runtime error)' "$log")
        [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && what="the run did not stop by itself (killed after $((secs + 60)) s)"
        echo "fuzz_$n: FOUND after ${runs:-?} executions (exit $rc): ${what:-see $log}"
        for a in "$work/artifacts/$n-"*; do
            [ -f "$a" ] && echo "  input: $a   reproduce: $bin $a"
        done
        echo "  log: $log (last lines below)"
        tail -n 30 "$log" | sed 's/^/  | /'
        fail=$((fail + 1))
    fi
done
[ "$mode" = smoke ] && [ "$fail" -eq 0 ] && rm -rf "$work"
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
