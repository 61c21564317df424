#!/usr/bin/env bash
# check_summary.sh - the closing line of `make check`: sums the "PASS FAIL" counts that
# tests/run.sh left for each suite (arguments "NAME=FILE") into one "N passed, N failed"
# line. A suite without a counts file (its build or run died first) is one failure.
# Exits non-zero when anything failed.
set -u
pass=0
fail=0
for arg in "$@"; do
    name=${arg%%=*}
    file=${arg#*=}
    if [[ -r $file ]] && read -r p f <"$file" && [[ $p =~ ^[0-9]+$ && $f =~ ^[0-9]+$ ]]; then
        pass=$((pass + p))
        fail=$((fail + f))
    else
        echo "$name: no results (the build or the test run stopped early)"
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
((fail == 0))
