#!/usr/bin/env bash
# plm unmask (iterative unmasking, Mask-Predict) end to end, on a tiny BERT made here (a
# BPE tokenizer and one MLM step on a slice of data/demo) whose weights are then replaced
# by non-trivial random ones (tests/ref/unmask_ref.py poison: peaked, position-dependent
# MLM distributions). tests/ref/unmask_ref.py recomputes every run in float64 PyTorch
# (BertForMaskedLM of parity.py, the loop written out again), each sequence alone while
# plm ran them as one padded batch: greedy tokens identical at every iteration, the
# probabilities within 1e-4 (near-ties closer than fp32 resolves follow plm, counted). Then the CLI: --text / --prompt --length / --input,
# --show-steps, sampling reproducible from --seed, and hostile input (no MLM head, a
# causal model, no mask token, no mask in the text, bad numbers): one line, exit 2 or 3.
# A missing python3-torch fails the test (PLM_ALLOW_MISSING_REFS=1 skips on purpose).
set -u
source "$(dirname "$0")/lib.bash"
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
PY=/usr/bin/python3 # Debian's python3-torch
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
refs=1
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    if [[ ${PLM_ALLOW_MISSING_REFS:-} == 1 ]]; then
        echo "SKIP unmask references: python3-torch missing (PLM_ALLOW_MISSING_REFS=1)"
        refs=0
    else
        fail refs "python3-torch missing (run scripts/setup.sh); set PLM_ALLOW_MISSING_REFS=1 to skip on purpose"
        exit 1
    fi
fi

"$PLM" unmask --help >"$t/out" 2>&1 && grep -q "usage: plm unmask" "$t/out" && grep -q -- "--iterations" "$t/out" &&
    grep -q -- "--show-steps" "$t/out" && pass help || fail help "no usage: $(head -c 300 "$t/out")"
"$PLM" --help | grep -q '^  unmask' && pass listed || fail listed "not in plm --help"

# ---- a tiny BERT (odd widths: hidden 30, 3 heads of 10, intermediate 37) and a tiny GPT-2
head -c 40000 data/demo/Carroll__Alice_s_Adventures_in_Wonderland.txt >"$t/text.txt"
head -c 20000 data/demo/Dickens__A_Christmas_Carol.txt >"$t/text2.txt"
printf 'text,label\nhello there,0\nbad day,1\ngood day,0\nawful,1\n' >"$t/cls.csv"
cat >"$t/bert.json" <<'J'
{"model_type": "bert", "vocab_size": 300, "hidden_size": 30, "num_hidden_layers": 2, "num_attention_heads": 3,
 "intermediate_size": 37, "max_position_embeddings": 64}
J
cat >"$t/gpt.json" <<'J'
{"model_type": "gpt2", "vocab_size": 300, "n_embd": 16, "n_layer": 1, "n_head": 2, "n_positions": 32}
J
"$PLM" tokenizer train --vocab-size 300 --output "$t/tok.json" --quiet "$t/text.txt" &&
    "$PLM" pretrain --objective mlm --config "$t/bert.json" --tokenizer "$t/tok.json" --train "$t/text.txt" \
        --output-dir "$t/bert" --max-steps 1 --batch-size 2 --seq-len 32 --quiet >"$t/out" 2>"$t/err" &&
    "$PLM" pretrain --objective clm --config "$t/gpt.json" --tokenizer "$t/tok.json" --train "$t/text.txt" \
        --output-dir "$t/gpt" --max-steps 1 --batch-size 2 --seq-len 16 --quiet >"$t/out" 2>"$t/err" &&
    "$PLM" pretrain --objective mlm+nsp --config "$t/bert.json" --tokenizer "$t/tok.json" --train "$t/text.txt" \
        "$t/text2.txt" --output-dir "$t/nsp" --max-steps 1 --batch-size 2 --seq-len 32 --quiet >"$t/out" 2>"$t/err" &&
    "$PLM" finetune --model "$t/bert" --train "$t/cls.csv" --validation "$t/cls.csv" --text-column text \
        --label-column label --output-dir "$t/cls" --num-train-epochs 1 --quiet >"$t/out" 2>"$t/err" &&
    pass tiny_models || { fail tiny_models "$(tail -3 "$t/err")"; exit 1; }
if ((refs)); then
    "$PY" tests/ref/unmask_ref.py poison "$t/bert" 1234 >/dev/null && pass poison || fail poison "could not rewrite the weights"
fi

# ---- parity: several lengths in one padded batch, mask patterns inside and at the ends
texts=(--text "Alice [MASK] [MASK] [MASK] the [MASK] of her sister on the bank, and of having nothing to do."
    --text "[MASK] [MASK] [MASK] [MASK] [MASK] [MASK] [MASK]"
    --text "She went [MASK]."
    --text "[MASK] was the rabbit, [MASK] [MASK] [MASK] [MASK] watch out of its [MASK] pocket [MASK]"
    --prompt "So she was considering in her own mind")
outs=()
for run in "4 mask-predict" "10 mask-predict" "1 mask-predict" "3 confidence"; do
    set -- $run
    out=$t/parity_N$1_$2.jsonl
    if "$PLM" unmask --model "$t/bert" "${texts[@]}" --length 9 --iterations "$1" --strategy "$2" --json --show-steps \
        --batch-size 8 >"$out" 2>"$t/err" && [[ $(wc -l <"$out") -eq 5 ]]; then
        pass "run_N$1_$2"
        outs+=("$out")
    else
        fail "run_N$1_$2" "$(tail -3 "$t/err")"
    fi
done
if ((refs)); then
    "$PY" tests/ref/unmask_ref.py check "$t/bert" "${outs[@]}" || fail reference "unmask_ref.py failed (above)"
fi
# batch size does not change the result: one input per call against the batch of 5 above
"$PLM" unmask --model "$t/bert" "${texts[@]}" --length 9 --iterations 4 --json --show-steps --batch-size 1 >"$t/b1.jsonl" 2>"$t/err"
"$PY" - "$t/b1.jsonl" "$t/parity_N4_mask-predict.jsonl" <<'P' && pass batch_size_independent || fail batch_size_independent "ids differ"
import json, sys
a, b = ([json.loads(l) for l in open(f)] for f in sys.argv[1:])
sys.exit(0 if len(a) == 5 and [x["ids"] for x in a] == [x["ids"] for x in b] else 1)
P

# ---- the CLI
# BertForPreTraining (MLM + NSP heads): the NSP head runs on a batch without labels
"$PLM" unmask --model "$t/nsp" --text "Alice [MASK] [MASK] tired." >"$t/o" 2>"$t/err" && [[ $(wc -l <"$t/o") -eq 1 ]] &&
    pass mlm_nsp_model || fail mlm_nsp_model "$(cat "$t/err")"
"$PLM" fill-mask --model "$t/nsp" --text "Alice [MASK] tired." --top-k 2 >"$t/o" 2>"$t/err" && [[ $(grep -c '%' "$t/o") -eq 2 ]] &&
    pass fill_mask_mlm_nsp_model || fail fill_mask_mlm_nsp_model "$(cat "$t/err")"
"$PLM" unmask --model "$t/bert" --text "The [MASK] [MASK] sat on the mat." --iterations 3 --show-steps >"$t/s" 2>"$t/err"
[[ $? -eq 0 && $(grep -c '^t=' "$t/s") -ge 2 && $(grep -c '^=> ' "$t/s") -eq 1 ]] && grep -q '^t=0: .*\[MASK\].*\[MASK\]' "$t/s" &&
    [[ $(sed -n 1p "$t/s") == "t=0: The [MASK] [MASK] sat on the mat." ]] && ! grep -q '^=> .*\[MASK\]' "$t/s" &&
    pass show_steps || fail show_steps "$(cat "$t/err" "$t/s")"
"$PLM" unmask --model "$t/bert" --text "The [MASK] [MASK] sat on the mat." --iterations 3 >"$t/p" 2>"$t/err"
[[ $(wc -l <"$t/p") -eq 1 && "$(cat "$t/p")" == "$(sed -n 's/^=> //p' "$t/s")" ]] && pass plain_is_last_step ||
    fail plain_is_last_step "$(cat "$t/p" "$t/s")"
# WordPiece: the masks decoded in place (words spaced, punctuation attached, as HF's decode)
"$PLM" tokenizer train --kind wordpiece --vocab-size 300 --output "$t/wp.json" --quiet "$t/text.txt" &&
    "$PLM" pretrain --objective mlm --config "$t/bert.json" --tokenizer "$t/wp.json" --train "$t/text.txt" \
        --output-dir "$t/wp" --max-steps 1 --batch-size 2 --seq-len 32 --quiet >"$t/out" 2>"$t/err" &&
    "$PLM" unmask --model "$t/wp" --text "The [MASK] [MASK] sat on the [MASK]." --iterations 3 --show-steps >"$t/s" 2>"$t/err" &&
    [[ $(sed -n 1p "$t/s") == "t=0: the [MASK] [MASK] sat on the [MASK]." ]] && ! grep -q '^=> .*\[MASK\]' "$t/s" &&
    pass show_steps_wordpiece || fail show_steps_wordpiece "$(cat "$t/err" "$t/s")"
printf 'Alice was [MASK] tired.\n\n[MASK] rabbit [MASK].\r\n' >"$t/in.txt"
"$PLM" unmask --model "$t/bert" --input "$t/in.txt" --json >"$t/j" 2>"$t/err" && [[ $(wc -l <"$t/j") -eq 2 ]] &&
    "$PY" -c 'import json, sys; l = [json.loads(x) for x in open(sys.argv[1])]; sys.exit(0 if [len(x["positions"]) for x in l] == [1, 2] else 1)' "$t/j" &&
    pass input_file || fail input_file "$(cat "$t/err" "$t/j")"
printf 'ok \xff\xfe [MASK] bytes\n' >"$t/bytes.txt" # a byte-level BPE takes them; the JSON must stay UTF-8
"$PLM" unmask --model "$t/bert" --input "$t/bytes.txt" --json >"$t/j" 2>"$t/err" &&
    "$PY" -c 'import json, sys; o = json.loads(open(sys.argv[1], encoding="utf-8").read()); sys.exit(0 if "\ufffd" in o["text"] else 1)' "$t/j" &&
    pass json_invalid_utf8 || fail json_invalid_utf8 "$(cat "$t/err")"
"$PLM" unmask --model "$t/bert" --prompt "Alice was" --length 4 --json >"$t/j" 2>"$t/err" &&
    "$PY" -c 'import json, sys; o = json.loads(open(sys.argv[1]).read()); n = len(o["ids"]); sys.exit(0 if o["positions"] == list(range(n - 5, n - 1)) else 1)' "$t/j" &&
    pass prompt_length || fail prompt_length "$(cat "$t/err" "$t/j")"
for s in 1 2; do
    "$PLM" unmask --model "$t/bert" --text "[MASK] [MASK] [MASK] rabbit [MASK] [MASK]" --temperature 1.5 --top-k 20 --seed 7 \
        --text "Alice [MASK] [MASK]" >"$t/r$s" 2>"$t/err"
done
"$PLM" unmask --model "$t/bert" --text "[MASK] [MASK] [MASK] rabbit [MASK] [MASK]" --sample --seed 8 >"$t/r3" 2>"$t/err"
"$PLM" unmask --model "$t/bert" --text "[MASK] [MASK] [MASK] rabbit [MASK] [MASK]" --sample --seed 9 >"$t/r4" 2>"$t/err"
"$PLM" unmask --model "$t/bert" --text "[MASK] [MASK] [MASK] rabbit [MASK] [MASK]" --sample --seed 10 >"$t/r5" 2>"$t/err"
[[ -s $t/r1 ]] && cmp -s "$t/r1" "$t/r2" && pass sampling_reproducible || fail sampling_reproducible "$(cat "$t/r1" "$t/r2")"
[[ -s $t/r3 ]] && ! { cmp -s "$t/r3" "$t/r4" && cmp -s "$t/r4" "$t/r5"; } &&
    pass sampling_seed_matters || fail sampling_seed_matters "seeds 7..10 all gave $(cat "$t/r3")"
# four copies of one input are four samples (one stream per input), the same ones with --batch-size 1
same=(--text "[MASK] [MASK] [MASK] rabbit [MASK] [MASK]")
same+=("${same[@]}" "${same[@]}" "${same[@]}")
"$PLM" unmask --model "$t/bert" "${same[@]}" --temperature 1.5 --seed 7 >"$t/c1" 2>"$t/err"
"$PLM" unmask --model "$t/bert" "${same[@]}" --temperature 1.5 --seed 7 --batch-size 1 >"$t/c2" 2>"$t/err"
[[ $(wc -l <"$t/c1") -eq 4 && $(sort -u "$t/c1" | wc -l) -gt 1 ]] && cmp -s "$t/c1" "$t/c2" &&
    pass sampling_copies_differ || fail sampling_copies_differ "$(cat "$t/c1" "$t/c2")"

"$PLM" unmask --model "$t/bert" --text "Alice [MASK] [MASK] tired." --bf16 --json >"$t/o" 2>"$t/err" &&
    [[ $(wc -l <"$t/o") -eq 1 ]] && pass bf16_runs || fail bf16_runs "$(cat "$t/err")"
"$PLM" fill-mask --model "$t/bert" --text "Alice [MASK] tired." --top-k 3 --bf16 >"$t/o" 2>"$t/err" &&
    [[ $(grep -c '%' "$t/o") -eq 3 ]] && pass fill_mask_bf16_runs || fail fill_mask_bf16_runs "$(cat "$t/err" "$t/o")"

# ---- hostile input: one line on stderr, exit 2 (usage) or 3 (bad input)
m=(--model "$t/bert")
expect no_args 2 'required' -- "$PLM" unmask
expect no_input 2 'required' -- "$PLM" unmask "${m[@]}"
expect iterations_zero 2 'iterations >= 1' -- "$PLM" unmask "${m[@]}" --text "[MASK]" --iterations 0
expect iterations_not_number 2 'expects an integer' -- "$PLM" unmask "${m[@]}" --text "[MASK]" --iterations ten
expect length_negative 2 'length >= 0' -- "$PLM" unmask "${m[@]}" --text "[MASK]" --length -1
expect prompt_without_length 2 '--prompt needs --length' -- "$PLM" unmask "${m[@]}" --prompt "Alice"
expect bad_top_p 2 'top-p' -- "$PLM" unmask "${m[@]}" --text "[MASK]" --top-p 1.5
expect bad_temperature 2 'temperature > 0' -- "$PLM" unmask "${m[@]}" --text "[MASK]" --temperature 0
expect bad_strategy 2 'mask-predict or confidence' -- "$PLM" unmask "${m[@]}" --text "[MASK]" --strategy random
expect no_mask_in_text 3 '--text 2: no \[MASK\] token' -- "$PLM" unmask "${m[@]}" --text "[MASK] ok" --text "no mask here"
printf 'a [MASK] b\nno mask\n' >"$t/bad.txt"
expect no_mask_in_line 3 'bad.txt:2: no \[MASK\] token' -- "$PLM" unmask "${m[@]}" --input "$t/bad.txt"
expect missing_input 3 'nope.txt' -- "$PLM" unmask "${m[@]}" --input "$t/nope.txt"
expect too_long 3 'exceed max_position_embeddings' -- "$PLM" unmask "${m[@]}" --prompt "Alice" --length 70
# the largest int: prompt + length + [CLS] + [SEP] overflowed int into a negative length
expect too_long_int_max 3 'exceed max_position_embeddings' -- "$PLM" unmask "${m[@]}" --prompt "Alice" --length 2147483647
expect causal_model 3 'is_decoder is true.*unmask needs a bidirectional' -- "$PLM" unmask --model "$t/gpt" --text "a [MASK]"
expect no_mlm_head 3 'BertForSequenceClassification has no language-model head' -- "$PLM" unmask --model "$t/cls" --text "a [MASK]"
expect missing_model 3 'nope' -- "$PLM" unmask --model "$t/nope" --text "a [MASK]"
cp -r "$t/bert" "$t/nomask"
"$PLM" tokenizer train --vocab-size 200 --special '[PAD],[UNK],[CLS],[SEP]' --output "$t/nomask/tokenizer.json" \
    --quiet "$t/text.txt"
expect no_mask_token 3 'tokenizer.json: no mask token' -- "$PLM" unmask --model "$t/nomask" --text "a b"
exit 0
