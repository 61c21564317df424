#!/usr/bin/env bash
# Does plm's pretraining pay? One command reproduces docs/pretraining-pays.md:
#   1. a WordPiece tokenizer (16,384 tokens) trained on the public-domain corpus in
#      ../shared/data (Gutenberg, State of the Union, Moby-Dick, KJV, tinyshakespeare);
#   2. a BERT-Mini-sized model (4 layers, width 256, 4 heads) pretrained on that corpus for
#      PRETRAIN_STEPS steps with OBJECTIVE, its CPU time measured;
#   3. the same architecture from random initialisation (plm pretrain --max-steps 0);
#   4. both fine-tuned the same way (same hyperparameters, SEEDS seeds) on CoLA, SST-2,
#      STS-B, RTE, CoNLL-2003 NER and SQuAD v1.1, scored on the dev sets;
#   5. the table (mean +- std over seeds) written to OUT/table.md.
# Every step is skipped when its output exists and pretraining resumes from its newest
# checkpoint, so an interrupted run continues where it stopped. The CPU time adds up
# the parts.
#
#   bash bench/pretraining_pays.sh                   the full run (hours on 2 cores)
#   SMOKE=1 bash bench/pretraining_pays.sh           the same pipeline on tiny slices (a minute)
# Knobs (environment): OUT, PLM_DATA, OBJECTIVE (clm+mlm), CLM_FRACTION, PRETRAIN_STEPS,
# MLM_PROBABILITY, PRETRAIN_LR, PRE_LAYERNORM (true), BF16 (1: --bf16 for pretraining), SEEDS,
# TASKS, FT_LR, FT_EPOCHS (3), SQUAD_EPOCHS (1), SST2_TRAIN (cap on SST-2's 67k
# examples, default 20000), FT_BF16 (1: fine-tune with --bf16), FT_JOBS (parallel
# single-threaded fine-tunes, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/jobs.sh
PLM=${PLM:-$PWD/build/plm}
DATA=${PLM_DATA:-../shared/data}
OUT=${OUT:-out/pretraining-pays}
OBJECTIVE=${OBJECTIVE:-clm+mlm}
CLM_FRACTION=${CLM_FRACTION:-0.25}
PRE_LAYERNORM=${PRE_LAYERNORM:-true}
BF16=${BF16:-1}
SEEDS=${SEEDS:-3}
TASKS=${TASKS-"cola sst2 stsb rte conll2003 squad"}  # TASKS="" pretrains only
if [[ -n ${SMOKE:-} ]]; then
    VOCAB=2000 PRETRAIN_STEPS=${PRETRAIN_STEPS:-20} SEEDS=${SEEDS_SMOKE:-2} HIDDEN=64 LAYERS=2 HEADS=2 FF=128
    CORPUS_BYTES=400000 FT_TRAIN=200 FT_EVAL=100 FT_EPOCHS=1 SQUAD_LEN=128 SQUAD_STRIDE=48
else
    VOCAB=16384 HIDDEN=256 LAYERS=4 HEADS=4 FF=1024 CORPUS_BYTES=0 FT_TRAIN=0 FT_EVAL=0
    SQUAD_LEN=256 SQUAD_STRIDE=128
fi
PRETRAIN_STEPS=${PRETRAIN_STEPS:-9000}
MLM_PROBABILITY=${MLM_PROBABILITY:-0.3}
PRETRAIN_LR=${PRETRAIN_LR:-1e-3}
FT_LR=${FT_LR:-1e-4}
FT_EPOCHS=${FT_EPOCHS:-3}
SQUAD_EPOCHS=${SQUAD_EPOCHS:-1}
SST2_TRAIN=${SST2_TRAIN:-20000}
FT_BF16=${FT_BF16:-1}
mkdir -p "$OUT"
log() { echo "[pretraining-pays $(date +%H:%M:%S)] $*" >&2; }

# ---- 1. corpus and tokenizer
corpus=("$DATA"/gutenberg/*.txt "$DATA"/sotu/*.txt "$DATA"/kjv/kjv_*.txt "$DATA"/moby-dick/*.txt
    "$DATA"/tinyshakespeare/input.txt)
for f in "${corpus[@]}"; do [[ -f $f ]] || { echo "pretraining_pays: missing corpus file $f (set PLM_DATA)" >&2; exit 1; }; done
if ((CORPUS_BYTES > 0)); then
    (cat "${corpus[@]}" || true) | head -c "$CORPUS_BYTES" >"$OUT/corpus-slice.txt" || true
    corpus=("$OUT/corpus-slice.txt")
fi
if [[ ! -f $OUT/tokenizer.json ]]; then
    log "training WordPiece ($VOCAB tokens) on ${#corpus[@]} files"
    "$PLM" tokenizer train --kind wordpiece --vocab-size "$VOCAB" --output "$OUT/tokenizer.json" --quiet "${corpus[@]}"
fi
cat >"$OUT/config.json" <<J
{"model_type": "bert", "vocab_size": $VOCAB, "hidden_size": $HIDDEN, "num_hidden_layers": $LAYERS,
 "num_attention_heads": $HEADS, "intermediate_size": $FF, "max_position_embeddings": 512,
 "pre_layernorm": $PRE_LAYERNORM}
J

# ---- 2. pretraining; its CPU time is the growth of this shell's cutime+cstime (/proc/PID/stat),
# the user+system time of waited-for children
if [[ ! -f $OUT/pretrained/model.safetensors ]]; then
    log "pretraining $OBJECTIVE for $PRETRAIN_STEPS steps"
    t0=$(date +%s)
    read -r cu0 cs0 < <(awk '{print $16, $17}' /proc/$$/stat)
    resume=() objective_args=()
    [[ $OBJECTIVE == clm+mlm ]] && objective_args+=(--clm-fraction "$CLM_FRACTION")
    [[ $BF16 == 1 ]] && objective_args+=(--bf16)
    compgen -G "$OUT/pretrained/checkpoint-*" >/dev/null && resume=(--resume-from-checkpoint "$OUT/pretrained")
    "$PLM" pretrain --objective "$OBJECTIVE" --config "$OUT/config.json" --tokenizer "$OUT/tokenizer.json" "${resume[@]}" \
        --train "${corpus[@]}" --output-dir "$OUT/pretrained" --max-steps "$PRETRAIN_STEPS" --batch-size 32 \
        --seq-len 128 --learning-rate "$PRETRAIN_LR" --warmup-steps $((PRETRAIN_STEPS / 20 + 1)) \
        --mlm-probability "$MLM_PROBABILITY" --eval-steps $((PRETRAIN_STEPS / 10 + 1)) --save-steps 1000 \
        --save-total-limit 1 ${QUIET:+--quiet} ${SMOKE:+--quiet} "${objective_args[@]}"
    read -r cu cs < <(awk '{print $16, $17}' /proc/$$/stat)
    tck=$(getconf CLK_TCK)
    # an interrupted and resumed pretraining adds up the CPU and wall time of its parts
    echo "$(((cu + cs - cu0 - cs0) / tck)) $(($(date +%s) - t0))" >>"$OUT/pretrain_parts"
    read -r cpu wall < <(awk '{c += $1; w += $2} END {print c, w}' "$OUT/pretrain_parts")
    echo "{\"wall_seconds\": $wall, \"cpu_seconds\": $cpu, \"steps\": $PRETRAIN_STEPS, \"tokens\": $((PRETRAIN_STEPS * 32 * 128)), \"objective\": \"$OBJECTIVE\", \"mlm_probability\": $MLM_PROBABILITY, \"learning_rate\": $PRETRAIN_LR, \"pre_layernorm\": $PRE_LAYERNORM, \"bf16\": $([[ $BF16 == 1 ]] && echo true || echo false), \"args\": \"${objective_args[*]}\"}" >"$OUT/pretrain_cost.json"
fi
if [[ ! -f $OUT/random/model.safetensors ]]; then
    log "random initialisation of the same architecture"
    # the same model class as the pretrained directory, so that fine-tuning puts the same head on both
    # (an ELECTRA discriminator takes ELECTRA's classification head, a BERT the pooler)
    random_objective=mlm
    [[ $OBJECTIVE == electra ]] && random_objective=electra
    "$PLM" pretrain --objective "$random_objective" --config "$OUT/config.json" --tokenizer "$OUT/tokenizer.json" \
        --train "${corpus[0]}" --output-dir "$OUT/random" --max-steps 0 --quiet
fi

# ---- 3. fine-tuning, the same way for both
finetune() { # init task seed
    local init=$1 task=$2 seed=$3 dir=$OUT/ft/$1/$2/seed-$3
    [[ -f $dir/eval_results.json ]] && return 0
    local epochs=$FT_EPOCHS
    [[ $task == squad && -z ${SMOKE:-} ]] && epochs=$SQUAD_EPOCHS
    local args=(--model "$OUT/$init" --task "$task" --output-dir "$dir" --seed "$seed" --learning-rate "$FT_LR"
        --num-train-epochs "$epochs" --quiet)
    [[ $FT_BF16 == 1 ]] && args+=(--bf16)
    case $task in
        conll2003) args+=(--data-dir "$DATA/conll2003") ;;
        squad) args+=(--data-dir "$DATA/squad-v1.1" --max-seq-length "$SQUAD_LEN" --doc-stride "$SQUAD_STRIDE"
            --per-device-train-batch-size 16) ;;
        *) args+=(--data-dir "$DATA/glue") ;;
    esac
    ((FT_TRAIN > 0)) && args+=(--max-train-samples "$FT_TRAIN")
    ((FT_EVAL > 0)) && args+=(--max-eval-samples "$FT_EVAL")
    [[ $task == sst2 ]] && ((SST2_TRAIN > 0 && FT_TRAIN == 0)) && args+=(--max-train-samples "$SST2_TRAIN")
    log "fine-tuning $init on $task, seed $seed"
    "$PLM" finetune "${args[@]}" >"$OUT/ft-$init-$task-$seed.log" 2>&1 ||
        { echo "pretraining_pays: fine-tuning failed, see $OUT/ft-$init-$task-$seed.log" >&2; tail -3 "$OUT/ft-$init-$task-$seed.log" >&2; exit 1; }
}
# FT_JOBS fine-tunes at a time, each on its own thread when there are several: on 2 cores
# two single-threaded runs finish sooner than one after the other on both cores.
FT_JOBS=${FT_JOBS:-2}
finetune_job() { # a fine-tune on its own thread when several run at once
    ((FT_JOBS > 1)) && export OMP_NUM_THREADS=1
    finetune "$@"
}
for task in $TASKS; do
    for init in pretrained random; do
        for ((s = 1; s <= SEEDS; s++)); do
            job_run finetune_job "$init" "$task" "$s"
        done
    done
done
jobs_wait || exit 1

# ---- 4. the table
python3 - "$OUT" "$SEEDS" $TASKS <<'PY'
import json, os, statistics, sys
out, seeds, tasks = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
main = {"cola": "mcc", "sst2": "accuracy", "stsb": "pearson", "rte": "accuracy", "conll2003": "f1", "squad": "f1"}
cost = json.load(open(os.path.join(out, "pretrain_cost.json")))
params = None
rows = ["| task (dev metric) | pretrained | random init | gain |", "|---|---|---|---|"]
summary = {"pretraining": cost, "tasks": {}}
for t in tasks:
    cells, means = [], []
    for init in ("pretrained", "random"):
        vals = []
        for s in range(1, seeds + 1):
            r = json.load(open(os.path.join(out, "ft", init, t, f"seed-{s}", "eval_results.json")))
            key = "eval_" + main.get(t, "accuracy")
            if key not in r:  # the first metric the task reports
                key = next(k for k in r if k.startswith("eval_") and k not in ("eval_loss", "eval_samples"))
            vals.append(r[key] if t == "squad" else 100 * r[key])  # SQuAD reports percent already
        m = statistics.mean(vals)
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        cells.append(f"{m:.1f} ± {sd:.1f}")
        means.append(m)
        summary["tasks"].setdefault(t, {})[init] = vals
    rows.append(f"| {t} ({main.get(t, 'accuracy')}) | {cells[0]} | {cells[1]} | {means[0] - means[1]:+.1f} |")
head = (f"Pretraining: {cost['objective']}, {cost['steps']} steps, {cost['tokens']:,} tokens, "
        f"{cost['cpu_seconds'] / 3600:.2f} CPU-hours ({cost['wall_seconds'] / 60:.0f} min wall). "
        f"Scores: mean ± std over {seeds} seeds, best dev evaluation of each run (both inits alike).")
text = head + "\n\n" + "\n".join(rows) + "\n"
open(os.path.join(out, "table.md"), "w").write(text)
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print(text)
PY
