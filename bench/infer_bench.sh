#!/usr/bin/env bash
# Inference throughput of plm next to plain PyTorch (bench/torch_infer.py) on the same
# weights, in the same run: the inference table of issue 9 (bench/README.md).
#
#   bash bench/infer_bench.sh [--configs "small gpt2-mini"] [--keep DIR]
#   QUICK=1 bash bench/infer_bench.sh      # the tiny config, short runs: under a minute
#   TASKS="generate eval" ...              # a subset of generate generate-bf16 eval fill-mask embed
#
# Per config of bench/flops.py (layers, hidden, heads, vocab) it writes a GPT-2 and a BERT
# with random weights (plm pretrain --max-steps 0; one byte-level BPE tokenizer trained on
# tinyshakespeare, smaller than the models' vocabularies, which is allowed) and measures:
#   generate  greedy, KV cache, PROMPT-token prompts, NEW new tokens (--ignore-eos), at
#             batch 1 and batch 8: plm generate --prompts-file (its own tokens/s line on
#             stderr: prompt tokens/s of the prefill, generated tokens/s of the decoding)
#             vs torch_infer.py generate (a preallocated KV cache, torch.no_grad), which
#             also checks that its greedy tokens equal plm's for the first CHECK tokens;
#   generate-bf16  the same with plm generate --bf16 next to torch_infer.py generate
#             --bf16 (linear weights rounded to bf16 once, inputs rounded, fp32 results),
#             on CPUs with AVX512_BF16 only;
#   eval      plm eval --seq-len SEQ --stride SEQ (CLM perplexity: the forward pass, logits
#             and loss at every position) vs the GPT-2 forward + cross-entropy;
#   fill-mask plm fill-mask of FM_N sentences, one [MASK] each, --batch-size 1 and 32
#             vs the BERT forward of [B, T] + the MLM head at one position per row + softmax top-5;
#   embed     plm embed of EMB_N texts, batch 32 (mean pooling) vs the BERT forward of
#             [32, T] + mean pooling + L2 normalisation.
# plm's eval / fill-mask / embed rates are wall-clock rates of the command net of its
# fixed cost: the time of the same command on one window / sentence / text is subtracted
# (process start, model load, tokenizer). PyTorch's are the best of 3 timed calls.
# Environment as bench/run.sh: OMP_NUM_THREADS (default 2) threads for both, OpenMP
# OpenBLAS for PyTorch, no mmap/munmap of big buffers (GLIBC_TUNABLES).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PLM=$BUILD/plm
PY=${PY:-/usr/bin/python3} # Debian's python3 with python3-torch (pyenv's python3 shadows it on PATH)
QUICK=${QUICK:-0}
DATA=${PLM_DATA:-../shared/data}
TEXT=$DATA/tinyshakespeare/input.txt
CONFIGS="small gpt2-mini"
KEEP=
TASKS=${TASKS:-generate generate-bf16 eval fill-mask embed}
has_task() { [[ " $TASKS " == *" $1 "* ]]; }
while (($#)); do
    case $1 in
    --configs) CONFIGS=$2 && shift ;;
    --keep) KEEP=$2 && shift ;;
    -h | --help) sed -n '2,30p' "$0" && exit 0 ;;
    *) echo "bench/infer_bench.sh: unknown option '$1' (see --help)" >&2 && exit 2 ;;
    esac
    shift
done
if ((QUICK)); then
    CONFIGS=${QUICK_CONFIGS:-tiny}
    PROMPT=16 NEW=24 CHECK=8 FM_N=16 EMB_N=64 EVAL_WINDOWS=16 REPEATS=1
else
    PROMPT=32 NEW=128 CHECK=16 FM_N=128 EMB_N=512 EVAL_WINDOWS=64 REPEATS=3
fi
[[ -x $PLM ]] || { echo "bench/infer_bench.sh: $PLM not built (make all)" >&2 && exit 2; }
[[ -f $TEXT ]] || { echo "bench/infer_bench.sh: $TEXT not found (set PLM_DATA)" >&2 && exit 2; }

. bench/torch_env.sh
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=2147483647:glibc.malloc.trim_threshold=4294967295
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

W=${KEEP:-$(mktemp -d /tmp/plm-infer-bench.XXXXXX)}
mkdir -p "$W"
[[ -n $KEEP ]] || trap 'rm -rf "$W"' EXIT
ROWS=$W/rows.jsonl
: >"$ROWS"

now() { date +%s.%N; }
# seconds the command takes (its output to $W/last.out / last.err)
timed() {
    local t0 t1
    t0=$(now)
    "$@" >"$W/last.out" 2>"$W/last.err" || { echo "failed: $*" >&2 && cat "$W/last.err" >&2 && exit 1; }
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.6f", b - a}'
}
row() { echo "$1" >>"$ROWS"; }
jget() { "$PY" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

echo "== tokenizer (byte-level BPE, 4096, tinyshakespeare) =="
[[ -f $W/tok.json ]] || "$PLM" tokenizer train --vocab-size 4096 --output "$W/tok.json" --quiet "$TEXT"
head -c 100000 "$TEXT" >"$W/train.txt"

# Texts made of words that are one token each (" word" is in the vocabulary), so that
# every prompt / sentence has a known number of tokens on both sides.
"$PY" - "$W" "$PROMPT" "$FM_N" "$EMB_N" <<'EOF'
import json, random, sys
w, prompt, fm_n, emb_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
vocab = json.load(open(f"{w}/tok.json"))["model"]["vocab"]
words = sorted(k[1:] for k in vocab if k.startswith("\u0120") and k[1:].isalpha() and k[1:].islower())
r = random.Random(5)
line = lambda n: " " + " ".join(r.choice(words) for _ in range(n))  # noqa: E731
with open(f"{w}/prompts8.txt", "w") as f:
    for _ in range(8):
        f.write(line(prompt) + "\n")
with open(f"{w}/prompts1.txt", "w") as f:
    f.write(open(f"{w}/prompts8.txt").readline())
for b in (1, 8):  # the same prompts 4 times: the warm prefill rate is (4 - 1) batches over the extra time
    with open(f"{w}/prompts{b}x4.txt", "w") as f:
        f.write(open(f"{w}/prompts{b}.txt").read() * 4)
with open(f"{w}/fill.txt", "w") as f:  # 30 words, the 15th masked: 32 tokens with [CLS] and [SEP]
    for _ in range(fm_n):
        ws = line(30).split()
        ws[14] = "[MASK]"
        f.write(" " + " ".join(ws) + "\n")
with open(f"{w}/embed.txt", "w") as f:  # 62 words: 64 tokens with [CLS] and [SEP]
    for _ in range(emb_n):
        f.write(line(62) + "\n")
EOF

ISA=$(grep -m1 -o 'avx512f\|avx2' /proc/cpuinfo | head -1 || true)
grep -q avx512f /proc/cpuinfo && ISA=avx512f
grep -q avx512_bf16 /proc/cpuinfo && ISA="$ISA+avx512_bf16"
grep -q amx_bf16 /proc/cpuinfo && ISA="$ISA+amx_bf16"
CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')

# generate rows of config $cfg (model $G): mode generate or generate-bf16, batch size $2.
gen_rows() {
    local mode=$1 bs=$2 flag=() tflag=() tag=""
    [[ $mode == generate-bf16 ]] && flag=(--bf16) tflag=(--bf16) tag=" --bf16"
    "$PLM" generate --model "$G" --prompts-file "$W/prompts$bs.txt" --batch-size "$bs" --greedy --ignore-eos \
        --max-new-tokens "$NEW" --json "${flag[@]}" >"$W/gen$bs.jsonl" 2>"$W/gen$bs.err"
    # the best of REPEATS runs (the first is a warm-up of the page cache). The cold
    # prefill rate is that of the command (its first GEMMs of each shape included); the
    # warm one comes from the same prompts 4 times in one command, the batches after
    # the first (plm's "after the first batch" line), as PyTorch's best of 3 after a warm-up.
    local best_p=0 best_g=0 best_w=0 p g w t
    for _ in $(seq "$REPEATS"); do
        "$PLM" generate --model "$G" --prompts-file "$W/prompts$bs.txt" --batch-size "$bs" --greedy --ignore-eos \
            --max-new-tokens "$NEW" --json "${flag[@]}" >/dev/null 2>"$W/gen$bs.err"
        read -r p g < <(sed -n 's/.*(\([0-9.]*\) tokens\/s).*(\([0-9.]*\) tokens\/s).*/\1 \2/p' "$W/gen$bs.err")
        "$PLM" generate --model "$G" --prompts-file "$W/prompts${bs}x4.txt" --batch-size "$bs" --greedy \
            --ignore-eos --max-new-tokens "$NEW" --json "${flag[@]}" >/dev/null 2>"$W/gen${bs}x4.err"
        w=$(sed -n 's/.*after the first batch: .*(\([0-9.]*\) tokens\/s).*/\1/p' "$W/gen${bs}x4.err")
        best_p=$(awk -v a="$best_p" -v b="$p" 'BEGIN{print (b > a ? b : a)}')
        best_g=$(awk -v a="$best_g" -v b="$g" 'BEGIN{print (b > a ? b : a)}')
        best_w=$(awk -v a="$best_w" -v b="${w:-0}" 'BEGIN{print (b > a ? b : a)}')
    done
    t=$("${TORCH_ENV[@]}" "$PY" bench/torch_infer.py generate --model "$G" --plm-json "$W/gen$bs.jsonl" \
        --new "$NEW" --check "$CHECK" --repeats "$REPEATS" "${tflag[@]}")
    row "{\"config\": \"$cfg\", \"task\": \"generate$tag prefill (cold)\", \"batch\": $bs, \"unit\": \"prompt tok/s\", \"plm\": $best_p, \"torch\": $(jget "$t" prompt_tok_s)}"
    row "{\"config\": \"$cfg\", \"task\": \"generate$tag prefill (warm)\", \"batch\": $bs, \"unit\": \"prompt tok/s\", \"plm\": $best_w, \"torch\": $(jget "$t" prompt_tok_s)}"
    row "{\"config\": \"$cfg\", \"task\": \"generate$tag\", \"batch\": $bs, \"unit\": \"new tok/s\", \"plm\": $best_g, \"torch\": $(jget "$t" gen_tok_s)}"
    # under bf16 the two sides round in different places (their GEMMs' orders of
    # summation differ), so a late difference is expected; in fp32 they should agree
    echo "greedy tokens agree ($cfg$tag, batch $bs): $(jget "$t" agree_rows)/$(jget "$t" rows) prompts," \
        "first $(jget "$t" check) tokens; first difference [prompt, token]: $(jget "$t" first_diff)"
}

for cfg in $CONFIGS; do
    read -r L H NH V SEQ < <("$PY" -c "
import sys; sys.path.insert(0, 'bench'); from flops import CONFIGS as C
c = C['$cfg']; print(c['layers'], c['hidden'], c['heads'], c['vocab'], c['seq'])")
    NPOS=$((SEQ > PROMPT + NEW ? SEQ : PROMPT + NEW))
    echo "== $cfg: $L layers, hidden $H, $NH heads, vocab $V, seq $SEQ =="
    cat >"$W/$cfg-gpt.json" <<EOF
{"model_type": "gpt2", "vocab_size": $V, "n_embd": $H, "n_layer": $L, "n_head": $NH, "n_positions": $NPOS,
 "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}
EOF
    cat >"$W/$cfg-bert.json" <<EOF
{"model_type": "bert", "vocab_size": $V, "hidden_size": $H, "num_hidden_layers": $L, "num_attention_heads": $NH,
 "intermediate_size": $((4 * H)), "max_position_embeddings": $NPOS, "hidden_act": "gelu"}
EOF
    for kind in gpt:clm bert:mlm; do
        d=$W/$cfg-${kind%:*}
        [[ -f $d/model.safetensors ]] || "$PLM" pretrain --config "$d.json" --objective "${kind#*:}" \
            --tokenizer "$W/tok.json" --train "$W/train.txt" --max-steps 0 --output-dir "$d" --quiet >/dev/null
    done
    G=$W/$cfg-gpt B=$W/$cfg-bert

    # generate, batch 1 and 8; generate-bf16: the same with --bf16 on both sides
    for mode in generate generate-bf16; do
        has_task $mode || continue
        if [[ $mode == generate-bf16 ]] && ! grep -q avx512_bf16 /proc/cpuinfo; then
            echo "generate-bf16: not run, this CPU has no AVX512_BF16 (plm generate --bf16 would run fp32)"
            continue
        fi
        for bs in 1 8; do gen_rows "$mode" "$bs"; done
    done

    # eval: perplexity forward over disjoint windows of SEQ tokens, batch 8
    if has_task eval; then
        head -c $((EVAL_WINDOWS * SEQ * 5)) "$TEXT" >"$W/eval.txt"
        head -c $((SEQ * 3)) "$TEXT" >"$W/eval1.txt"
        best=0
        for _ in $(seq "$REPEATS"); do
            t1=$(timed "$PLM" eval --model "$G" --data "$W/eval1.txt" --seq-len "$SEQ" --stride "$SEQ" --batch-size 8 --quiet)
            n1=$(jget "$(cat "$W/last.out")" tokens)
            tn=$(timed "$PLM" eval --model "$G" --data "$W/eval.txt" --seq-len "$SEQ" --stride "$SEQ" --batch-size 8 --quiet)
            nn=$(jget "$(cat "$W/last.out")" tokens)
            best=$(awk -v a="$best" -v n="$nn" -v m="$n1" -v x="$tn" -v y="$t1" 'BEGIN{r = (n - m) / (x - y); print (r > a ? r : a)}')
        done
        t=$("${TORCH_ENV[@]}" "$PY" bench/torch_infer.py forward --model "$G" --task eval --batch 8 --seq "$SEQ")
        row "{\"config\": \"$cfg\", \"task\": \"eval (CLM perplexity)\", \"batch\": 8, \"unit\": \"tok/s\", \"plm\": $best, \"torch\": $(jget "$t" tok_s)}"
    fi

    # fill-mask: one sentence per forward, then 32 (padded to the longest; all are 32 tokens)
    if has_task fill-mask; then
        mapfile -t sents <"$W/fill.txt"
        for bs in 1 32; do
            best=0
            for _ in $(seq "$REPEATS"); do
                t1=$(timed "$PLM" fill-mask --model "$B" --json --batch-size "$bs" --text "${sents[0]}")
                tn=$(timed "$PLM" fill-mask --model "$B" --json --batch-size "$bs" --text "${sents[@]}")
                best=$(awk -v a="$best" -v n="${#sents[@]}" -v x="$tn" -v y="$t1" 'BEGIN{r = (n - 1) / (x - y); print (r > a ? r : a)}')
            done
            t=$("${TORCH_ENV[@]}" "$PY" bench/torch_infer.py forward --model "$B" --task fill-mask --batch "$bs" --seq 32)
            row "{\"config\": \"$cfg\", \"task\": \"fill-mask\", \"batch\": $bs, \"unit\": \"seq/s\", \"plm\": $best, \"torch\": $(jget "$t" seq_s)}"
        done
    fi

    # embed: batch 32, mean pooling
    if has_task embed; then
        head -1 "$W/embed.txt" >"$W/embed1.txt"
        best=0
        for _ in $(seq "$REPEATS"); do
            t1=$(timed "$PLM" embed --model "$B" --input "$W/embed1.txt" --output "$W/e1.npy" --batch-size 32 --quiet)
            tn=$(timed "$PLM" embed --model "$B" --input "$W/embed.txt" --output "$W/e.npy" --batch-size 32 --quiet)
            best=$(awk -v a="$best" -v n="$EMB_N" -v x="$tn" -v y="$t1" 'BEGIN{r = (n - 1) / (x - y); print (r > a ? r : a)}')
        done
        t=$("${TORCH_ENV[@]}" "$PY" bench/torch_infer.py forward --model "$B" --task embed --batch 32 --seq 64)
        row "{\"config\": \"$cfg\", \"task\": \"embed (mean pooling)\", \"batch\": 32, \"unit\": \"seq/s\", \"plm\": $best, \"torch\": $(jget "$t" seq_s)}"
    fi
done

echo
echo "== inference: plm vs PyTorch (fp32 unless --bf16, $OMP_NUM_THREADS threads, CPU: $CPU, ISA: $ISA) =="
echo "generate: $PROMPT-token prompts, $NEW new tokens, greedy, KV cache; eval: windows of the config's seq, batch 8;"
echo "fill-mask: 32-token sentences, 1 or 32 per forward; embed: 64-token texts, batch 32"
echo
"$PY" - "$ROWS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| config | task | batch | unit | plm | torch | plm/torch |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    ratio = r["plm"] / r["torch"] if r["torch"] else float("nan")
    print(f"| {r['config']} | {r['task']} | {r['batch']} | {r['unit']} | {r['plm']:.1f} | {r['torch']:.1f} | **{ratio:.2f}x** |")
EOF
