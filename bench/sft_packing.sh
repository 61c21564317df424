#!/usr/bin/env bash
# What `plm sft --packing` buys in speed: one epoch of the same instructions padded (each
# batch padded to its longest example) and packed (rows of --max-seq-length tokens, each
# example attending only to itself, attention tiles between different examples skipped),
# on the same randomly initialised GPT-2, the same machine, back to back.
#
#   bash bench/sft_packing.sh            # about 5 minutes on 2 cores
#   N=500 ROUNDS=1 bash bench/sft_packing.sh
#
# The instructions are SQuAD v1.1 questions with their paragraph, answered by the first
# gold answer ("Context: ...\nQuestion: ..." -> answer), paragraphs up to 1500
# characters: lengths from ~40 to ~400 tokens, as in instruction data. Model: bench/
# flops.py's "small" GPT-2 (4 layers, width 256, vocabulary 8192), positions MAX_LEN (512).
# Printed: per mode the steps of the epoch, their wall clock (metrics.jsonl's elapsed_s,
# from the second step: the first creates oneDNN's primitives), the training examples per
# second, and the mean packing efficiency of the packed batches. Each mode runs ROUNDS
# times, alternating; the table keeps the best of each.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
DATA=${PLM_DATA:-../shared/data}
N=${N:-2000}
MAX_LEN=${MAX_LEN:-512}
BATCH=${BATCH:-8}
ROUNDS=${ROUNDS:-2}
[[ -x $PLM ]] || { echo "bench/sft_packing.sh: $PLM not built (make all)" >&2 && exit 2; }
SQUAD=$DATA/squad-v1.1/train-v1.1.du2017-test-subset.json
[[ -f $SQUAD ]] || { echo "bench/sft_packing.sh: $SQUAD not found (set PLM_DATA)" >&2 && exit 2; }
W=$(mktemp -d /tmp/plm-sft-packing.XXXXXX)
trap 'rm -rf "$W"' EXIT

python3 - "$SQUAD" "$W" "$N" <<'PY'
import json, sys
squad, w, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = []
for art in json.load(open(squad))["data"]:
    for para in art["paragraphs"]:
        if len(para["context"]) > 1500:  # --packing needs every example within max_seq_length
            continue
        for qa in para["qas"]:
            rows.append({"prompt": "Context: " + para["context"] + "\nQuestion: " + qa["question"],
                         "response": qa["answers"][0]["text"]})
with open(w + "/sft.jsonl", "w") as f:
    for r in rows[:n]:
        f.write(json.dumps(r) + "\n")
with open(w + "/text.txt", "w") as f:
    for r in rows[:n]:
        f.write(r["prompt"] + "\n" + r["response"] + "\n")
PY
"$PLM" tokenizer train --vocab-size 8192 --output "$W/tok.json" --quiet "$W/text.txt"
cat >"$W/gpt.json" <<EOF
{"model_type": "gpt2", "vocab_size": 8192, "n_embd": 256, "n_layer": 4, "n_head": 4, "n_positions": $MAX_LEN,
 "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}
EOF
"$PLM" pretrain --config "$W/gpt.json" --objective clm --tokenizer "$W/tok.json" --train "$W/text.txt" \
    --max-steps 0 --output-dir "$W/gpt" --quiet >/dev/null

run() { # mode round
    local out=$W/$1-$2 extra=()
    [[ $1 == packed ]] && extra=(--packing)
    "$PLM" sft --model "$W/gpt" --train "$W/sft.jsonl" --max-seq-length "$MAX_LEN" --num-train-epochs 1 \
        --per-device-train-batch-size "$BATCH" --logging-steps 1 --quiet --output-dir "$out" "${extra[@]}" \
        >"$out.log" 2>&1 || { echo "bench/sft_packing.sh: $1 run failed, see $out.log" >&2 && tail -3 "$out.log" >&2 && exit 1; }
}
for ((r = 1; r <= ROUNDS; r++)); do
    for mode in padded packed; do
        echo "[sft-packing $(date +%H:%M:%S)] $mode, round $r" >&2
        run "$mode" "$r"
    done
done

python3 - "$W" "$N" "$ROUNDS" "$MAX_LEN" "$BATCH" <<'PY'
import json, sys
w, n, rounds, max_len, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
effs = [json.loads(l)["packing_efficiency"] for l in open(f"{w}/packed-1/metrics.jsonl") if "packing_efficiency" in l]
best = {}
for mode in ("padded", "packed"):
    for r in range(1, rounds + 1):
        lines = [json.loads(l) for l in open(f"{w}/{mode}-{r}/metrics.jsonl") if '"step"' in l and '"loss"' in l]
        # the steps after the first (its oneDNN primitives are created on first use)
        t = lines[-1]["elapsed_s"] - lines[0]["elapsed_s"]
        steps = len(lines) - 1
        best[mode] = min(best.get(mode, (1e30, 0)), (t, steps))
print(f"SFT, one epoch of {n} SQuAD instructions, GPT-2 4 x 256 (vocabulary 8192), batch {batch} rows, "
      f"max_seq_length {max_len}; packed rows' mean efficiency {sum(effs) / len(effs):.3f}")
print("| mode | steps | seconds (steps 2..) | examples/s | speed-up |")
print("|---|---|---|---|---|")
base = None
for mode in ("padded", "packed"):
    t, steps = best[mode]
    rate = n * steps / (steps + 1) / t  # the epoch's examples, less the first step's share
    base = base or rate
    print(f"| {mode} | {steps + 1} | {t:.1f} | {rate:.1f} | {rate / base:.2f}x |")
PY
