#!/usr/bin/env bash
# Why does pretraining not pay on SST-2? (docs/pretraining-pays.md). Runs on the checkpoints
# bench/pretraining_pays.sh leaves in OUT (OUT/pretrained, OUT/random) and fine-tunes both the
# same way under five settings, FT_JOBS single-threaded runs at a time:
#   low1k    the first 1,000 training examples, 10 epochs, lr 1e-4 (seeds 1-3)
#   probe    a frozen body: mean pooling, head lr 1e-3, layer-wise decay 0.001 (every body
#            layer at <= 1e-6: a linear probe of what pretraining put in the features)
#   electra  ELECTRA-Small's fine-tuning recipe: lr 3e-4, layer-wise lr decay 0.8 (seeds 1-3)
#   plain    the table's recipe: lr 1e-4 (seed 1)
#   full     all 67,349 training examples, 2 epochs, lr 1e-4 (seeds 1-2)
# All but low1k and full train on the table's 20,000 examples for 3 epochs, --bf16. Each run's best dev
# score lands in OUT/sst2-diagnosis/NAME/INIT/seed-S/eval_results.json; the summary in
# OUT/sst2-diagnosis/table.md. Resumable: finished runs are skipped.
#   OUT=out/pretraining-pays TASKS="" bash bench/pretraining_pays.sh && bash bench/sst2_diagnosis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/jobs.sh
PLM=${PLM:-$PWD/build/plm}
DATA=${PLM_DATA:-../shared/data}
OUT=${OUT:-out/pretraining-pays}
FT_JOBS=${FT_JOBS:-2}
D=$OUT/sst2-diagnosis
N_LOW=1000 N=20000 LOW_EPOCHS=10 EPOCHS=3 extra=() full=()
# SMOKE=1: the same runs on slices, a few seconds each (tests/pretraining_pays.sh)
[[ -n ${SMOKE:-} ]] && N_LOW=32 N=64 LOW_EPOCHS=2 EPOCHS=1 extra=(--max-eval-samples 64) full=(--max-train-samples 64)
for init in pretrained random; do
    [[ -f $OUT/$init/model.safetensors ]] || { echo "sst2_diagnosis: no $OUT/$init/model.safetensors (run bench/pretraining_pays.sh first)" >&2; exit 1; }
done
[[ -f $DATA/glue/SST-2/train.tsv ]] || { echo "sst2_diagnosis: missing $DATA/glue/SST-2/train.tsv (set PLM_DATA)" >&2; exit 1; }
mkdir -p "$D"
run() { # name init seed finetune-args...
    local name=$1 init=$2 seed=$3 dir=$D/$1/$2/seed-$3
    shift 3
    [[ -f $dir/eval_results.json ]] && return 0
    echo "[sst2-diagnosis $(date +%H:%M:%S)] $name $init seed $seed" >&2
    OMP_NUM_THREADS=1 "$PLM" finetune --model "$OUT/$init" --task sst2 --data-dir "$DATA/glue" --output-dir "$dir" \
        --seed "$seed" --bf16 --quiet "${extra[@]}" "$@" >"$D/$name-$init-$seed.log" 2>&1 ||
        { echo "sst2_diagnosis: fine-tuning failed, see $D/$name-$init-$seed.log" >&2; return 1; }
}
runs=()
for s in 1 2 3; do for i in pretrained random; do
    runs+=("low1k $i $s --max-train-samples $N_LOW --num-train-epochs $LOW_EPOCHS --learning-rate 1e-4"); done; done
for i in pretrained random; do
    runs+=("probe $i 1 --max-train-samples $N --num-train-epochs $EPOCHS --pooling mean --learning-rate 1e-3 --layerwise-lr-decay 0.001"); done
for s in 1 2 3; do for i in pretrained random; do
    runs+=("electra $i $s --max-train-samples $N --num-train-epochs $EPOCHS --learning-rate 3e-4 --layerwise-lr-decay 0.8"); done; done
for i in pretrained random; do runs+=("plain $i 1 --max-train-samples $N --num-train-epochs $EPOCHS --learning-rate 1e-4"); done
for s in 1 2; do for i in pretrained random; do
    runs+=("full $i $s ${full[*]} --num-train-epochs 2 --learning-rate 1e-4"); done; done
for r in "${runs[@]}"; do
    # shellcheck disable=SC2086 # each entry is a word list on purpose
    job_run run $r
done
jobs_wait || exit 1
python3 - "$D" <<'PY'
import glob, json, os, statistics, sys
d = sys.argv[1]
rows = ["| setting | pretrained | random init | gain |", "|---|---|---|---|"]
for name in ("low1k", "probe", "electra", "plain", "full"):
    cells, means = [], []
    for init in ("pretrained", "random"):
        vals = [100 * json.load(open(f))["eval_accuracy"] for f in sorted(glob.glob(os.path.join(d, name, init, "seed-*", "eval_results.json")))]
        sd = f" ± {statistics.stdev(vals):.1f}" if len(vals) > 1 else ""
        cells.append(f"{statistics.mean(vals):.1f}{sd} ({', '.join(f'{v:.1f}' for v in vals)})")
        means.append(statistics.mean(vals))
    rows.append(f"| {name} | {cells[0]} | {cells[1]} | {means[0] - means[1]:+.1f} |")
text = "SST-2 dev accuracy (best evaluation of each run)\n\n" + "\n".join(rows) + "\n"
open(os.path.join(d, "table.md"), "w").write(text)
print(text)
PY
