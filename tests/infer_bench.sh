#!/usr/bin/env bash
# bench/infer_bench.sh in QUICK mode (the tiny config, short runs; its generate rows only,
# to keep CI short): the inference table comes out with a plm/PyTorch ratio on every
# row, and plm's greedy tokens equal those of the PyTorch KV-cache loop
# (bench/torch_infer.py, the same safetensors weights) for the first 8 tokens of every
# prompt, at batch 1 and 8. Also plm generate's CLI: a
# prompts file with no prompt, or a missing one, is refused naming it; --json lines come
# back in the order given. Speeds are not checked (bench/ is for speed).
set -u
BUILD=${BUILD:-build}
export BUILD
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

QUICK=1 TASKS=generate bash bench/infer_bench.sh --keep "$t/w" >"$t/out" 2>"$t/err"
rc=$?
if ((rc != 0)); then
    fail infer_bench.runs "exit $rc: $(tail -5 "$t/err")"
else
    pass infer_bench.runs
fi
rows=$(grep -c '^| tiny |' "$t/out")
bad=$(grep '^| tiny |' "$t/out" | grep -vc '\*\*[0-9][0-9.]*x\*\*')
warm=$(grep -c '^| tiny | generate prefill (warm) | [18] | prompt tok/s | [1-9]' "$t/out")
if ((rows == 6 && bad == 0 && warm == 2)) && grep -q '^| config | task | batch | unit | plm | torch | plm/torch |' "$t/out" &&
    grep -q 'threads, CPU: .*ISA: ' "$t/out"; then
    pass infer_bench.table
else
    fail infer_bench.table "$rows rows ($bad without a ratio, $warm warm prefill rates): $(grep '^|' "$t/out" | head -12)"
fi
for bs in 1 8; do
    if grep -q "greedy tokens agree (tiny, batch $bs): $bs/$bs prompts, first 8 tokens" "$t/out"; then
        pass "infer_bench.greedy_agrees_with_torch.batch$bs"
    else
        fail "infer_bench.greedy_agrees_with_torch.batch$bs" "$(grep "agree (tiny, batch $bs)" "$t/out")"
    fi
done

# the CLI around batches, on the bench's tiny GPT-2
G=$t/w/tiny-gpt
PLM=$BUILD/plm
printf ' the king\n\n and the\n' >"$t/p.txt"
"$PLM" generate --model "$G" --prompts-file "$t/p.txt" --prompt " you" --greedy --max-new-tokens 4 --json \
    >"$t/j" 2>"$t/e"
order=$(/usr/bin/python3 -c '
import json, sys
print("|".join(str(j["index"]) + ":" + j["prompt"] for j in map(json.loads, open(sys.argv[1]))))' "$t/j" 2>&1)
if [[ $order == "0: you|1: the king|2: and the" ]] && grep -q 'tokens/s' "$t/e"; then
    pass infer_bench.generate_json_in_order
else
    fail infer_bench.generate_json_in_order "$order / $(cat "$t/e")"
fi
printf '\n  \n\n' | tr -d ' ' >"$t/blank.txt"
"$PLM" generate --model "$G" --prompts-file "$t/blank.txt" --greedy >"$t/o" 2>"$t/e"
rc=$?
if ((rc == 3)) && grep -q "blank.txt: no prompt in it" "$t/e" && [[ ! -s $t/o && $(wc -l <"$t/e") -eq 1 ]]; then
    pass infer_bench.generate_no_prompt_in_file
else
    fail infer_bench.generate_no_prompt_in_file "exit $rc: $(cat "$t/e")"
fi
"$PLM" generate --model "$G" --prompts-file "$t/missing.txt" --greedy >"$t/o" 2>"$t/e"
rc=$?
if ((rc == 3)) && grep -q "missing.txt" "$t/e" && [[ $(wc -l <"$t/e") -eq 1 ]]; then
    pass infer_bench.generate_missing_prompts_file
else
    fail infer_bench.generate_missing_prompts_file "exit $rc: $(cat "$t/e")"
fi
