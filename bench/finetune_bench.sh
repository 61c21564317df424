#!/usr/bin/env bash
# Fine-tuning and evaluation throughput of plm next to PyTorch on the same model, the same
# tokenization and the same padding (each batch padded to its longest row):
#   bash bench/finetune_bench.sh [STEPS]      (BUILD=dir; PLM_DATA as the tests)
# Makes a BERT of bench/README's "small" shape (4 layers, hidden 256, 4 heads, WordPiece
# vocabulary 8192 trained on SST-2), then times `plm finetune` on SST-2 (batch 32,
# max_seq_length 128, STEPS steps, examples/s from metrics.jsonl after 3 warm-up steps)
# and `plm evaluate` on the 872 dev sentences (batch 64, wall clock including the model
# load), and bench/torch_finetune.py on the same token ids. Prints a table with the
# plm/torch ratios and the load average: this machine is shared, so numbers are noisy.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
DATA=${PLM_DATA:-../shared/data}
GLUE=$DATA/glue
STEPS=${1:-40}
PY=/usr/bin/python3
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
export OMP_NUM_THREADS=2
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
cut -f1 "$GLUE/SST-2/train.tsv" | tail -n +2 >"$t/text.txt"
cat >"$t/cfg.json" <<'J'
{"model_type": "bert", "vocab_size": 8192, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
 "intermediate_size": 1024, "max_position_embeddings": 128}
J
"$PLM" tokenizer train --kind wordpiece --vocab-size 8192 --output "$t/tok.json" --quiet "$t/text.txt"
"$PLM" pretrain --objective mlm --config "$t/cfg.json" --tokenizer "$t/tok.json" --train "$t/text.txt" \
    --output-dir "$t/bert" --max-steps 1 --batch-size 8 --seq-len 64 --quiet >/dev/null
load0=$(cut -d' ' -f1 /proc/loadavg)
"$PLM" finetune --model "$t/bert" --task sst2 --data-dir "$GLUE" --max-steps "$STEPS" --logging-steps 1 \
    --eval-steps 1000000 --max-eval-samples 1 --per-device-train-batch-size 32 --max-seq-length 128 --quiet \
    --output-dir "$t/ft" >/dev/null 2>"$t/err" || { tail -3 "$t/err"; exit 1; }
s0=$(date +%s.%N)
"$PLM" evaluate --model "$t/ft" --data-dir "$GLUE" --per-device-eval-batch-size 64 >/dev/null
s1=$(date +%s.%N)
# the same sentences as plm's tokenizer encodes them, for torch
tail -n +2 "$GLUE/SST-2/train.tsv" | cut -f1 >"$t/train.txt"
tail -n +2 "$GLUE/SST-2/dev.tsv" | cut -f1 >"$t/dev.txt"
"$BUILD/tests/tok_tool" json "$t/tok.json" ids "$t/train.txt" >"$t/train.ids"
"$BUILD/tests/tok_tool" json "$t/tok.json" ids "$t/dev.txt" >"$t/dev.ids"
paste <(tail -n +2 "$GLUE/SST-2/train.tsv" | cut -f2) "$t/train.ids" >"$t/train.tsv"
paste <(tail -n +2 "$GLUE/SST-2/dev.tsv" | cut -f2) "$t/dev.ids" >"$t/dev.tsv"
ids=$($PY -c 'import json,sys; v=json.load(open(sys.argv[1]))["model"]["vocab"]; print(v["[CLS]"], v["[SEP]"], v["[PAD]"])' "$t/tok.json")
read -r cls sep pad <<<"$ids"
. bench/torch_env.sh
"${TORCH_ENV[@]}" GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296 \
    $PY bench/torch_finetune.py "$t/cfg.json" "$t/train.tsv" "$t/dev.tsv" --steps "$STEPS" --cls-id "$cls" \
    --sep-id "$sep" --pad-id "$pad" >"$t/torch.json"
load1=$(cut -d' ' -f1 /proc/loadavg)
$PY - "$t/ft/metrics.jsonl" "$s0" "$s1" "$t/torch.json" "$load0" "$load1" <<'P'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
a, b = steps[3], steps[-1]  # after 3 warm-up steps, as the torch side
plm_train = 32 * (b["step"] - a["step"]) / (b["elapsed_s"] - a["elapsed_s"])
plm_eval = 872 / (float(sys.argv[3]) - float(sys.argv[2]))
tr = json.loads(open(sys.argv[4]).read())
print("| what | plm ex/s | torch ex/s | plm/torch |")
print("|---|---|---|---|")
print("| fine-tune step (batch 32) | %.1f | %.1f | %.2f |" % (plm_train, tr["train_examples_per_s"],
                                                         plm_train / tr["train_examples_per_s"]))
print("| evaluation (batch 64) | %.1f | %.1f | %.2f |" % (plm_eval, tr["eval_examples_per_s"],
                                                      plm_eval / tr["eval_examples_per_s"]))
print("load average %s before, %s after; torch saw %.2f other busy cores" % (sys.argv[5], sys.argv[6], tr["bg_cores"]))
P
