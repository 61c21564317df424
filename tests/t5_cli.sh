#!/usr/bin/env bash
# plm pretrain --objective t5 and plm generate on a T5 model, end to end: a tiny
# T5ForConditionalGeneration trains with span corruption (the tokenizer gets its
# <extra_id_N> sentinels at the top), logs eval_span_corruption_loss, saves a T5Config
# checkpoint; a run resumed from checkpoint-4 logs the same losses as the uninterrupted
# run; the same from shards of plm prepare; generate runs it text-to-text; mismatched objective / model and bad T5 settings
# are refused with one line and exit code 2 or 3.
set -u
source "$(dirname "$0")/lib.bash"
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
head -c 60000 data/demo/Carroll__Alice_s_Adventures_in_Wonderland.txt >"$t/a.txt"
cat >"$t/t5.json" <<'J'
{"model_type": "t5", "vocab_size": 512, "d_model": 32, "d_kv": 8, "d_ff": 48, "num_layers": 2, "num_decoder_layers": 1,
 "num_heads": 4, "dropout_rate": 0.1, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false}
J
cat >"$t/bert.json" <<'J'
{"model_type": "bert", "vocab_size": 512, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
 "intermediate_size": 64, "max_position_embeddings": 64}
J
args=(--objective t5 --config "$t/t5.json" --train "$t/a.txt" --batch-size 4 --seq-len 32 --logging-steps 1
      --eval-steps 4 --eval-batches 2 --learning-rate 3e-3 --warmup-steps 2 --quiet --seed 3)
if "$PLM" pretrain "${args[@]}" --max-steps 8 --save-steps 4 --output-dir "$t/full" >"$t/out" 2>"$t/err"; then
    pass t5_pretrain
else
    fail t5_pretrain "$(tail -3 "$t/err")"
fi
grep -q '"eval_span_corruption_loss"' "$t/full/metrics.jsonl" && pass t5_eval_span_corruption_loss ||
    fail t5_eval_span_corruption_loss "not in metrics.jsonl"
/usr/bin/python3 - "$t/full" <<'P' && pass t5_checkpoint_layout || fail t5_checkpoint_layout "see above"
import json, sys
d = sys.argv[1]
c = json.load(open(d + "/config.json"))
tok = json.load(open(d + "/tokenizer.json"))
ids = {a["content"]: a["id"] for a in tok["added_tokens"]}
vocab = len(tok["model"]["vocab"]) + sum(1 for a in tok["added_tokens"] if a["content"] not in tok["model"]["vocab"])
ok = c["model_type"] == "t5" and c["architectures"] == ["T5ForConditionalGeneration"] and c["num_decoder_layers"] == 1
ok = ok and ids.get("<extra_id_0>") == vocab - 1 and ids.get("<extra_id_99>") == vocab - 100 and vocab == c["vocab_size"]
ok = ok and c["decoder_start_token_id"] == c["pad_token_id"]
if not ok:
    print("FAIL t5_checkpoint_layout:", c.get("model_type"), c.get("architectures"), ids.get("<extra_id_0>"), vocab)
sys.exit(0 if ok else 1)
P
# resumed from checkpoint-4: the same losses as the uninterrupted run
cp -r "$t/full/checkpoint-4" "$t/resume"
head -n "$(grep -n '"step": 4, "eval' "$t/full/metrics.jsonl" | cut -d: -f1)" "$t/full/metrics.jsonl" >"$t/resume/metrics.jsonl"
if "$PLM" pretrain "${args[@]}" --max-steps 8 --output-dir "$t/resume" --resume-from-checkpoint "$t/resume" \
    >"$t/out" 2>"$t/err"; then
    strip() { sed -E 's/, "tokens_per_s"[^}]*//' "$1"; }
    if diff <(strip "$t/full/metrics.jsonl") <(strip "$t/resume/metrics.jsonl") >"$t/diff"; then
        pass t5_resume_same_losses
    else
        fail t5_resume_same_losses "$(head -4 "$t/diff")"
    fi
else
    fail t5_resume_same_losses "$(tail -3 "$t/err")"
fi
# from shards (plm prepare, read through mmap) with the sentinel-carrying tokenizer
n=$(wc -l <"$t/a.txt")
head -n $((n / 2)) "$t/a.txt" >"$t/p1.txt"
sed -n "$((n / 2 + 1)),$((n - 1))p" "$t/a.txt" >"$t/p2.txt" # whole lines: a.txt may end inside a character
sargs=("${args[@]}")
for i in "${!sargs[@]}"; do [[ ${sargs[i]} == --train ]] && sargs[i]=--data && sargs[i + 1]=$t/shards; done
if "$PLM" prepare --input "$t/p1.txt" "$t/p2.txt" --tokenizer "$t/full/tokenizer.json" --output-dir "$t/shards" \
    --validation-split 0.5 --quiet >"$t/out" 2>"$t/err" &&
    "$PLM" pretrain "${sargs[@]}" --max-steps 8 --output-dir "$t/from_shards" >"$t/out" 2>"$t/err"; then
    /usr/bin/python3 - "$t/from_shards/metrics.jsonl" <<'P' && pass t5_from_shards || fail t5_from_shards "see above"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
loss = [r["loss"] for r in rows if "loss" in r]
ev = [r["eval_span_corruption_loss"] for r in rows if "eval_span_corruption_loss" in r]
ok = len(loss) == 8 and all(math.isfinite(x) for x in loss + ev) and ev and loss[-1] < loss[0]
if not ok:
    print("FAIL t5_from_shards: losses", loss, "eval", ev)
sys.exit(0 if ok else 1)
P
else
    fail t5_from_shards "$(tail -3 "$t/err")"
fi
if "$PLM" generate --model "$t/full" --prompt "Alice was <extra_id_0> by her sister" --greedy --max-new-tokens 8 \
    >"$t/gen" 2>"$t/err" && [[ -s $t/gen ]]; then
    pass t5_generate
else
    fail t5_generate "$(tail -3 "$t/err")"
fi
expect t5_objective_needs_t5_model 2 'objective t5 needs a T5 model' -- "$PLM" pretrain --objective t5 \
    --config "$t/bert.json" --train "$t/a.txt" --output-dir "$t/o" --quiet --max-steps 1
expect t5_model_needs_t5_objective 2 'trains with --objective t5' -- "$PLM" pretrain --objective mlm \
    --config "$t/t5.json" --train "$t/a.txt" --output-dir "$t/o" --quiet --max-steps 1
expect t5_bad_noise_density 3 'noise_density' -- "$PLM" pretrain "${args[@]}" --max-steps 1 --output-dir "$t/o" \
    --noise-density 0.7
expect t5_bad_extra_ids 2 'extra-ids' -- "$PLM" pretrain "${args[@]}" --max-steps 1 --output-dir "$t/o" --extra-ids 0
echo '{"model_type": "t5", "d_model": 32, "num_heads": 4, "d_kv": -6}' >"$t/kv.json"
expect t5_bad_d_kv 3 'kv.json: d_kv must be in 1..65536' -- "$PLM" pretrain --objective t5 \
    --config "$t/kv.json" --train "$t/a.txt" --output-dir "$t/o" --quiet
