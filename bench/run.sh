#!/usr/bin/env bash
# plm benchmark: one training step (forward + backward + AdamW) of plm vs. tuned PyTorch.
#
#   bash bench/run.sh [--configs "tiny small medium"] [--objectives "mlm clm t5 mlm+nsp electra"]
#                     [--steps N] [--gemm-table] [--no-wait] [--profile] [--quick] [--check-only]
#
# Objectives: mlm (BertForMaskedLM), clm (GPT-2), t5 (span corruption, encoder-decoder),
#    mlm+nsp (BertForPreTraining: MLM + NSP), electra (discriminator of the config + a
#    generator of 1/4 its width sharing the embeddings; loss L_gen + 50 L_disc).
# Before timing, every mlm/mlm+nsp/electra/t5 row is checked: plm_step --dump writes plm's
#    initial weights, batch and loss; torch_step.py --check recomputes the loss with the
#    PyTorch model on them (dropout off) and the row is marked "loss MISMATCH" unless they
#    agree within 1e-4 (relative). --check-only: only these checks (seconds).
# --quick: about a minute on a quiet machine: the tiny config only, every objective, 3 timed
#    steps each, no GEMM peak (no %peak columns), 10 s of waiting for quiet at most.
# --bf16: also times every config in bf16: plm --bf16 (oneDNN bf16 matmul) next to
#    PyTorch's torch.autocast("cpu", dtype=torch.bfloat16); the table says which ISA ran.
# Every row records peak RSS (plm: VmHWM, PyTorch: ru_maxrss); the memory table compares them.
# --profile: only prints plm's per-op time table of one step per config x objective
#    (plm_step --profile; forward / backward / optimizer columns, GFLOP/s of the GEMMs and
#    attention), no PyTorch, no peak.
#
# 1. builds bench/gemm.c once per BLAS and measures the machine's fp32 GEMM peak (max over
#    OpenBLAS, BLIS, oneDNN of large square GEMMs, 2 threads);
#    --gemm-table also prints the per-shape table of bench/README.md (adds ~3 minutes);
# 2. for each config x objective runs bench/torch_step.py and, if it has been built,
#    $BUILD/bench/plm_step --config NAME --objective mlm|clm|t5; each prints one JSON line with
#    tokens_per_s, step_ms and gflops (FLOPs from the formula in bench/README.md);
# 3. prints the table: tokens/s of both, plm/torch ratio, GFLOP/s and % of the fp32 peak.
# The JSON lines are also saved to $BUILD/bench/results.jsonl.
#
# This VM's 2 vCPUs are shared with other work (builds, tests): before each measurement the
# script waits (up to PLM_BENCH_WAIT seconds, default 60) until other processes use less than
# 0.3 cores, and it reports the background load it saw. Disturbed rows are flagged with '!'.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3 # Debian's python3 with python3-torch (pyenv's python3 shadows it on PATH)
CONFIGS="tiny small medium"
OBJECTIVES="mlm clm t5 mlm+nsp electra"
STEPS=10
GEMM_TABLE=0
PROFILE=0
PRECISIONS="fp32"
WAIT=${PLM_BENCH_WAIT:-60}
QUICK=0
CHECK_ONLY=0
TORCH_TIME=()
while (($#)); do
    case $1 in
    --configs) CONFIGS=$2 && shift ;;
    --objectives) OBJECTIVES=$2 && shift ;;
    --steps) STEPS=$2 && shift ;;
    --gemm-table) GEMM_TABLE=1 ;;
    --no-wait) WAIT=0 ;;
    --profile) PROFILE=1 ;;
    --bf16) PRECISIONS="fp32 bf16" ;;
    --quick) QUICK=1 ;;
    --check-only) CHECK_ONLY=1 ;;
    -h | --help) sed -n '2,36p' "$0" && exit 0 ;;
    *) echo "bench/run.sh: unknown option '$1' (see --help)" >&2 && exit 2 ;;
    esac
    shift
done

# PyTorch's best setup on this machine (see issue 2, "Benchmark"): OpenMP OpenBLAS with kernels
# for this CPU (bench/torch_env.sh), no mmap/munmap of big buffers per step, 2 threads. plm
# gets the same malloc and thread settings.
. bench/torch_env.sh
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=2147483647:glibc.malloc.trim_threshold=4294967295
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# Cores kept busy by other processes, sampled over 0.5 s (call it while nothing of ours runs).
background_cores() {
    local a b
    a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat)
    sleep 0.5
    b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat)
    awk -v a="$a" -v b="$b" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/hz/0.5}'
}
wait_quiet() {
    local t0=$SECONDS bg
    while :; do
        bg=$(background_cores)
        awk -v x="$bg" 'BEGIN{exit !(x < 0.3)}' && return 0
        if ((SECONDS - t0 >= WAIT)); then
            echo "  (warning: other processes use $bg cores; measuring anyway)" >&2
            return 0
        fi
        sleep 2
    done
}

if ((QUICK)); then
    CONFIGS=tiny
    STEPS=3
    WAIT=${PLM_BENCH_WAIT:-10}
    TORCH_TIME=(--min-time 0.5 --warmup 1)
fi

mkdir -p "$BUILD/bench"
plm_bin=$BUILD/bench/plm_step

# The loss check: plm's weights, batch and loss -> the PyTorch model's loss on them.
declare -A LOSS_CHECK=()
check_losses() {
    [[ -x $plm_bin ]] || return 0
    local cfg obj dir out
    echo "== loss check: the PyTorch reference on plm's initial weights and batch (dropout off) =="
    for cfg in $CONFIGS; do
        for obj in $OBJECTIVES; do
            [[ $obj == clm ]] && continue # the CLM row has no check (GPT-2's names are not mapped)
            dir=$(mktemp -d)
            if "$plm_bin" --config "$cfg" --objective "$obj" --dump "$dir" >/dev/null &&
                out=$("${TORCH_ENV[@]}" "$PY" bench/torch_step.py --config "$cfg" --objective "$obj" --check "$dir"); then
                LOSS_CHECK[$cfg/$obj]=ok
            else
                LOSS_CHECK[$cfg/$obj]=MISMATCH
            fi
            echo "  $cfg $obj: ${out:-failed} -> ${LOSS_CHECK[$cfg/$obj]}"
            rm -rf "$dir"
            out=
        done
    done
}
if ((PROFILE)); then
    [[ -x $BUILD/bench/plm_step ]] || { echo "bench/run.sh: $BUILD/bench/plm_step is not built (make $BUILD/bench/plm_step)" >&2 && exit 1; }
    echo "load: $(uptime)"
    for cfg in $CONFIGS; do
        for obj in $OBJECTIVES; do
            wait_quiet
            "$BUILD/bench/plm_step" --config "$cfg" --objective "$obj" --steps "$STEPS" --profile
        done
    done
    exit 0
fi
results=$BUILD/bench/results.jsonl
: >"$results"
check_losses
((CHECK_ONLY)) && exit 0
for k in "${!LOSS_CHECK[@]}"; do
    echo "{\"impl\":\"check\",\"config\":\"${k%%/*}\",\"objective\":\"${k#*/}\",\"result\":\"${LOSS_CHECK[$k]}\"}" >>"$results"
done
peak=0
if ((QUICK)); then
    echo "(--quick: no GEMM peak)"
    echo "{\"impl\":\"gemm\",\"peak_gflops\":0,\"bf16_peak_gflops\":0}" >>"$results"
else
bash bench/build_gemm.sh

echo "== fp32 GEMM peak (2 threads, large square NN/NT/TN; best of 9 batches) =="
for lib in openblas blis dnnl; do
    wait_quiet
    out=$("$BUILD/bench/gemm_$lib" --peak)
    p=$(awk '$1=="PEAK"{print $3}' <<<"$out")
    grep -E '^(PEAK|MATMUL|# background)' <<<"$out" | sed 's/^/  /'
    peak=$(awk -v a="$peak" -v b="$p" 'BEGIN{print (b > a) ? b : a}')
    # oneDNN's bf16 matmul at 2048^3 (<= 0: no bf16 kernel on this CPU)
    [[ $lib == dnnl ]] && bf16_peak=$(awk '$1=="MATMUL" && $3=="bf16"{print ($5 > 0) ? $5 : 0}' <<<"$out")
done
echo "  measured fp32 peak: $peak GFLOP/s; oneDNN bf16 matmul: ${bf16_peak:-0} GFLOP/s"
echo "{\"impl\":\"gemm\",\"peak_gflops\":$peak,\"bf16_peak_gflops\":${bf16_peak:-0}}" >>"$results"

if ((GEMM_TABLE)); then
    for lib in openblas blis dnnl; do
        wait_quiet
        "$BUILD/bench/gemm_$lib" --table --attn
    done
fi
fi
[[ -x $plm_bin ]] || echo "(no $plm_bin yet: PyTorch only)"
echo "== training steps ($STEPS timed steps after warm-up, median) =="
for cfg in $CONFIGS; do
    for obj in $OBJECTIVES; do
        for prec in $PRECISIONS; do
            pflag=()
            [[ $prec == bf16 ]] && pflag=(--bf16)
            wait_quiet
            "${TORCH_ENV[@]}" "$PY" bench/torch_step.py --config "$cfg" --objective "$obj" --steps "$STEPS" "${TORCH_TIME[@]}" "${pflag[@]}" |
                tee -a "$results"
            if [[ -x $plm_bin ]]; then
                wait_quiet
                # the last line must be the JSON object; tag it so the table can find it
                if ! line=$("$plm_bin" --config "$cfg" --objective "$obj" --steps "$STEPS" "${pflag[@]}" | tail -n 1) ||
                    ! "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(impl="plm",
config=sys.argv[2], objective=sys.argv[3]); print(json.dumps(d))' "$line" "$cfg" "$obj" \
                        >>"$results"; then
                    echo "  (warning: $plm_bin --config $cfg --objective $obj $prec failed or printed no JSON)" >&2
                else
                    tail -n 1 "$results"
                fi
            fi
        done
    done
done
echo "load after the runs: $(uptime)"

"$PY" - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peak = next(r["peak_gflops"] for r in rows if r.get("impl") == "gemm")
bf16_peak = next((r["bf16_peak_gflops"] for r in rows if r.get("impl") == "gemm" and "bf16_peak_gflops" in r), 0)
prec = lambda r: r.get("precision", "fp32")  # noqa: E731
get = {(r["impl"], r["config"], r["objective"], prec(r)): r for r in rows if "config" in r and r["impl"] != "check"}
checks = {(r["config"], r["objective"]): r["result"] for r in rows if r.get("impl") == "check"}
order = ["tiny", "small", "medium", "small-512", "small-1024", "gpt2-mini", "gpt2-124m"]
objs = ["mlm", "clm", "t5", "mlm+nsp", "electra"]
keys = sorted({(r["config"], r["objective"]) for r in rows if "config" in r and r["impl"] != "check"},
              key=lambda k: (order.index(k[0]) if k[0] in order else 99, objs.index(k[1]) if k[1] in objs else 99))
noisy = False
for pr in ("fp32", "bf16"):
    if not any(k[3] == pr for k in get):
        continue
    pk = peak if pr == "fp32" else bf16_peak
    isa = next((r.get("isa") for r in rows if r.get("impl") == "plm" and prec(r) == pr), "")
    dot = next((r.get("bf16_dot_vs_fma") for r in rows if r.get("impl") == "plm" and prec(r) == pr), None)
    if pr == "bf16" and dot:  # bf16_rate.h: below 1, bf16 GEMMs cannot beat fp32 on this CPU
        isa = f"{isa}, bf16 dot product {dot:.2f}x the fp32 FMA rate"
    print(f"\n== {pr}: plm vs PyTorch{' autocast' if pr == 'bf16' else ''}, one training step; "
          f"{pr} GEMM peak {f'{pk:.1f} GFLOP/s' if pk else 'not measured'}"
          f"{'; plm ISA: ' + str(isa) if pr == 'bf16' else ''} ==")
    hdr = ("config", "obj", "plm tok/s", "torch tok/s", "plm/torch", "plm GF/s", "torch GF/s",
           "plm %peak", "torch %peak", "best-step ratio", "loss check")
    print("{:<10} {:<7} {:>10} {:>11} {:>9} {:>8} {:>10} {:>9} {:>11} {:>15} {:>10}".format(*hdr))
    for cfg, obj in keys:
        t, p = get.get(("torch", cfg, obj, pr)), get.get(("plm", cfg, obj, pr))
        f = lambda r, k, fmt: format(r[k], fmt) if r and k in r else "-"  # noqa: E731
        ratio = f"{p['tokens_per_s'] / t['tokens_per_s']:.2f}x" if p and t else "-"
        pp = f"{100 * p['gflops'] / pk:.0f}%" if p and pk else "-"
        tp = f"{100 * t['gflops'] / pk:.0f}%" if t and pk else "-"
        best = (f"{t['step_ms_min'] / p['step_ms_min']:.2f}x"
                if p and t and "step_ms_min" in p and "step_ms_min" in t else "-")
        flag = "!" if any(r and r.get("bg_cores", 0) > 0.2 for r in (t, p)) else ""
        noisy |= bool(flag)
        print(f"{cfg:<10} {obj:<7} {f(p, 'tokens_per_s', '10.0f'):>10} {f(t, 'tokens_per_s', '11.0f'):>11}"
              f" {ratio:>9} {f(p, 'gflops', '8.1f'):>8} {f(t, 'gflops', '10.1f'):>10} {pp:>9} {tp:>11}"
              f" {best:>15} {checks.get((cfg, obj), '-'):>10} {flag}")
print("\n== peak RSS (MB) of the whole process, plm vs PyTorch ==")
print("{:<10} {:<7} {:<5} {:>8} {:>9} {:>10}".format("config", "obj", "prec", "plm MB", "torch MB", "plm/torch"))
for cfg, obj in keys:
    for pr in ("fp32", "bf16"):
        t, p = get.get(("torch", cfg, obj, pr)), get.get(("plm", cfg, obj, pr))
        if not (t or p):
            continue
        pm, tm = (r.get("peak_rss_mb") if r else None for r in (p, t))
        ratio = f"{pm / tm:.2f}x" if pm and tm else "-"
        print(f"{cfg:<10} {obj:<7} {pr:<5} {pm or '-':>8} {tm or '-':>9} {ratio:>10}")
print("tok/s and GF/s from the median step; best-step ratio = torch / plm fastest step (if"
      " both report step_ms_min), the better estimate when the machine is shared")
if noisy:
    print("! = other processes kept > 0.2 cores busy during that measurement (bg_cores)")
EOF
