#!/usr/bin/env bash
# Runs every test: the C test binaries in $BUILD/tests and the scripts tests/*.sh.
# Each prints "PASS name" / "FAIL name: why" lines; this counts them and closes with
# "N passed, N failed". A test that dies without printing FAIL counts as one failure.
# With PLM_COUNTS=FILE (make check, which runs two suites) the counts go to FILE and the
# closing line names the suite instead ("normal build: 681 passed / 0 failed"), so the
# one "N passed, N failed" line of make check is its total over both suites.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
# Threads sleep instead of spinning while they wait: tests must not crawl when the
# machine is shared (benchmarks in bench/ keep OpenMP's default).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
filter=${1:-}
pass=0
fail=0
logdir=$BUILD/test-logs
mkdir -p "$logdir"
run_one() {
    local name=$1
    shift
    [[ -n $filter && $name != *$filter* ]] && return
    local log=$logdir/$name.log
    local t0=$SECONDS
    "$@" >"$log" 2>&1
    local rc=$?
    local p f
    # -a: a log with stray binary bytes (generated text) is still read as text
    p=$(grep -ac '^PASS ' "$log")
    f=$(grep -ac '^FAIL ' "$log")
    if ((rc != 0 && f == 0)); then
        f=1
        echo "FAIL $name: exited with status $rc" >>"$log"
    fi
    pass=$((pass + p))
    fail=$((fail + f))
    printf '%-28s %4d passed %3d failed  (%ds)\n' "$name" "$p" "$f" $((SECONDS - t0))
    if ((f > 0)); then
        grep -a '^FAIL ' "$log" | head -20 | sed 's/^/    /'
        tail -5 "$log" | sed 's/^/    | /'
    fi
}
for t in "$BUILD"/tests/test_*; do
    [[ -x $t ]] || continue
    run_one "$(basename "$t")" "$t"
done
for s in tests/*.sh; do
    [[ $(basename "$s") == run.sh ]] && continue
    run_one "$(basename "$s" .sh)" bash "$s"
done
if [[ -n ${PLM_COUNTS:-} ]]; then
    echo "${PLM_SUITE:-$BUILD}: $pass passed / $fail failed"
    echo "$pass $fail" >"$PLM_COUNTS"
else
    echo "$pass passed, $fail failed"
fi
((fail == 0))
