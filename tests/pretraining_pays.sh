#!/usr/bin/env bash
# bench/pretraining_pays.sh (the "does pretraining pay" table) runs end to end on tiny
# slices: tokenizer, pretraining, random init, six tasks x two inits x two seeds, table.
# The full run takes hours and lives in bench/; this keeps the script from rotting.
set -u
BUILD=${BUILD:-build}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
# The sanitizer build runs the plumbing on two tasks and one seed.
tasks="cola sst2 stsb rte conll2003 squad" seeds=2
[[ -n ${PLM_SANITIZE:-} ]] && tasks="sst2 squad" seeds=1
if TASKS=$tasks SEEDS_SMOKE=$seeds SMOKE=1 OUT=$t/pp PLM=$PWD/$BUILD/plm bash bench/pretraining_pays.sh >"$t/out" 2>"$t/err"; then
    echo "PASS pretraining_pays_smoke"
else
    echo "FAIL pretraining_pays_smoke: $(tail -3 "$t/err" | tr '\n' ' ')"
fi
# one row per task, each with both inits' "mean ± std"
rows=$(grep -cE '^\| (cola|sst2|stsb|rte|conll2003|squad) \(.*\| .* ± .* \| .* ± .* \|' "$t/pp/table.md" 2>/dev/null)
want=$(wc -w <<<"$tasks")
if [[ $rows == "$want" ]]; then echo "PASS pretraining_pays_table"; else echo "FAIL pretraining_pays_table: $rows task rows"; fi
# bench/sst2_diagnosis.sh on the smoke checkpoints: five settings x two inits, its table
if [[ -z ${PLM_SANITIZE:-} ]]; then
    if SMOKE=1 OUT=$t/pp PLM=$PWD/$BUILD/plm bash bench/sst2_diagnosis.sh >"$t/diag" 2>"$t/diag.err" &&
        [[ $(grep -cE '^\| (low1k|probe|electra|plain|full) \| .* \| .* \| [+-][0-9.]+ \|$' "$t/pp/sst2-diagnosis/table.md") == 5 ]]; then
        echo "PASS sst2_diagnosis_smoke"
    else
        echo "FAIL sst2_diagnosis_smoke: $(tail -3 "$t/diag.err" "$t/diag" | tr '\n' ' ')"
    fi
fi
