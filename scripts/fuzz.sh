#!/usr/bin/env bash
# fuzz.sh - builds the libFuzzer targets (make fuzz) and runs each for a bounded time
# (FUZZ_SECONDS, default 60) with ASan + UBSan. Prints PASS/FAIL per target; a crash
# leaves its reproducer in build-fuzz/crash-*.
set -u
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
make -s fuzz || { echo "FAIL fuzz_build"; exit 1; }
rc=0
for bin in build-fuzz/fuzz_*; do
    [[ -x $bin && ! $bin == *.* ]] || continue
    name=$(basename "$bin")
    corpus=build-fuzz/corpus-$name
    mkdir -p "$corpus"
    seeds=()
    [[ -d fuzz/seeds/$name ]] && seeds=(fuzz/seeds/"$name")
    if ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix=build-fuzz/ "$corpus" "${seeds[@]}" >"build-fuzz/$name.log" 2>&1; then
        echo "PASS $name ($(grep -o 'stat::number_of_executed_units: [0-9]*' "build-fuzz/$name.log" | grep -o '[0-9]*$' || echo '?') runs, ${secs}s)"
    else
        echo "FAIL $name: see build-fuzz/$name.log"
        grep -E 'ERROR|SUMMARY|runtime error' "build-fuzz/$name.log" | head -5 | sed 's/^/# /'
        rc=1
    fi
done
exit $rc
