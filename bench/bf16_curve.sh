#!/usr/bin/env bash
# The bf16 loss curve against fp32 (issue 9): the same 500-step `plm pretrain` run (a
# small GPT-2 on tinyshakespeare, dropout on, eval every 50 steps) in fp32 and with
# --bf16; prints both evaluation curves and the largest relative gap, which must stay
# under 1%. Too slow for the test suite (two 500-step runs), hence here.
#   bash bench/bf16_curve.sh [--steps N] [--eval-steps N] [--tiny]   (BUILD=dir, PLM_DATA=dir)
# --tiny: 2 x 128 model, batch 8 x 64 (about 16x cheaper, for a busy machine).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DATA=${PLM_DATA:-../shared/data}
STEPS=500
EVAL=50
TINY=0
while (($#)); do
    case $1 in
    --steps) STEPS=$2 && shift ;;
    --eval-steps) EVAL=$2 && shift ;;
    --tiny) TINY=1 ;;
    *) echo "bench/bf16_curve.sh: unknown option '$1'" >&2 && exit 2 ;;
    esac
    shift
done
txt=$DATA/tinyshakespeare/input.txt
[[ -s $txt ]] || { echo "bench/bf16_curve.sh: $txt not found (set PLM_DATA)" >&2 && exit 1; }
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
cat >"$t/cfg.json" <<'J'
{"model_type": "gpt2", "vocab_size": 2048, "n_embd": 256, "n_layer": 4, "n_head": 4, "n_positions": 128,
 "resid_pdrop": 0.1, "attn_pdrop": 0.1, "embd_pdrop": 0.1}
J
B=16 T=128
if ((TINY)); then
    sed -i 's/"n_embd": 256, "n_layer": 4, "n_head": 4/"n_embd": 128, "n_layer": 2, "n_head": 2/' "$t/cfg.json"
    B=8 T=64
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
args=(--config "$t/cfg.json" --train "$txt" --vocab-size 2048 --batch-size $B --seq-len $T --max-steps "$STEPS"
      --eval-steps "$EVAL" --eval-batches 10 --learning-rate 1e-3 --warmup-steps 50 --seed 1 --quiet)
echo "isa: $("$BUILD/tests/test_ops" gemm_bf16 2>/dev/null | sed -n 's/^# bf16 ISA: //p')"
for prec in fp32 bf16; do
    extra=()
    [[ $prec == bf16 ]] && extra=(--bf16)
    s=$SECONDS
    "$BUILD/plm" pretrain "${args[@]}" "${extra[@]}" --output-dir "$t/$prec" >/dev/null
    echo "$prec: $((SECONDS - s)) s"
    grep -o '"step": [0-9]*, "eval_loss": [0-9.e+-]*' "$t/$prec/metrics.jsonl" | awk '{print $2, $4}' | tr -d ',' \
        >"$t/$prec.eval"
done
echo "| step | fp32 eval loss | bf16 eval loss | relative gap |"
echo "|---|---|---|---|"
join "$t/fp32.eval" "$t/bf16.eval" | awk '{g = ($3 - $2) / $2; a = g < 0 ? -g : g; if (a > m) m = a;
    printf "| %d | %.4f | %.4f | %+.3f%% |\n", $1, $2, $3, 100 * g} END {printf "max relative gap: %.3f%% (%s)\n",
    100 * m, m < 0.01 ? "within 1%" : "OVER 1%"; exit !(m < 0.01)}'
