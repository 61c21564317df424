#!/usr/bin/env bash
# bf16 mixed precision (issue 9): `plm pretrain --bf16` on a tiny GPT, and `generate` / `eval --bf16`.
#  - where oneDNN runs bf16 (AVX512_BF16 / AMX-BF16): two runs with one seed give the same
#    losses and weights bit for bit; a run resumed from its checkpoint-6 ends with the
#    same weights and step losses as the uninterrupted one; bf16 is really on (the losses
#    differ from fp32's) yet close to them (within 2%); the run that reuses bf16 copies
#    (AdamW's copy of the weights, dY rounded once) equals the run that rounds every
#    operand in every GEMM (PLM_BF16_REUSE=0) bit for bit; the note that bf16 training is
#    slower than fp32 appears once exactly where the bf16 dot product is (bf16_rate.h);
#  - everywhere: the fallback. With oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA, so this
#    runs on any machine) --bf16 prints one line and the run is the fp32 run bit for bit,
#    and test_ops' bf16 GEMM group tests the fallback product;
#  - inference: `generate --bf16` runs bf16 where it can (else its fallback gives fp32's
#    tokens), `eval --bf16`'s perplexity is within 2% of fp32's and `embed --bf16`'s
#    vectors within a cosine of 0.999, yet neither equal.
set -u
source "$(dirname "$0")/lib.bash"
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
[[ -n ${PLM_KEEP:-} ]] && trap - EXIT && echo "# kept $t"
losses() { grep -o '"step": [0-9]*, "\(loss\|eval_loss\)": [^,]*' "$1"; }

head -c 40000 data/demo/Carroll__Alice_s_Adventures_in_Wonderland.txt >"$t/a.txt"
cat >"$t/tiny.json" <<'J'
{"model_type": "gpt2", "vocab_size": 384, "n_embd": 64, "n_layer": 2, "n_head": 2, "n_positions": 64,
 "resid_pdrop": 0.1, "attn_pdrop": 0.1, "embd_pdrop": 0.1}
J
args=(--config "$t/tiny.json" --train "$t/a.txt" --batch-size 4 --seq-len 32 --logging-steps 1 --eval-steps 6
      --learning-rate 3e-3 --warmup-steps 3 --seed 7 --quiet)
"$PLM" pretrain "${args[@]}" --max-steps 1 --output-dir "$t/tok" >/dev/null 2>"$t/err" \
    || { fail bf16.setup "$(tail -3 "$t/err")"; exit 0; }
args+=(--tokenizer "$t/tok/tokenizer.json" --max-steps 12 --save-steps 6)
run() { # name, extra args...
    local o=$t/$1
    shift
    "$PLM" pretrain "${args[@]}" --output-dir "$o" "$@" >/dev/null 2>"$o.err" || { fail "bf16.run_$(basename "$o")" "$(tail -3 "$o.err")"; return 1; }
    losses "$o/metrics.jsonl" >"$o.losses"
}

# --- the fallback, on any machine
isa=$(ONEDNN_MAX_CPU_ISA=AVX2 "$BUILD/tests/test_ops" gemm_bf16 2>/dev/null)
if grep -q '^# bf16 ISA: none' <<<"$isa" && ! grep -q '^FAIL' <<<"$isa"; then
    pass bf16.fallback_gemm
else
    fail bf16.fallback_gemm "$(grep -m3 -E '^(#|FAIL)' <<<"$isa")"
fi
ONEDNN_MAX_CPU_ISA=AVX2 run fp32avx2 && ONEDNN_MAX_CPU_ISA=AVX2 run fallback --bf16 && {
    n=$(grep -c 'no bf16 matmul' "$t/fallback.err")
    [[ $n == 1 ]] && pass bf16.fallback_says_once || fail bf16.fallback_says_once "$n lines about bf16 on stderr"
    cmp -s "$t/fp32avx2/model.safetensors" "$t/fallback/model.safetensors" && cmp -s "$t/fp32avx2.losses" "$t/fallback.losses" \
        && pass bf16.fallback_is_fp32 || fail bf16.fallback_is_fp32 "weights or losses differ from the fp32 run"
}

# --- inference: generate / eval --bf16 (the fallback runs fp32: the same tokens)
gen() { # out-name, env..., then args
    "$PLM" generate --model "$t/tok" --prompt "Alice was" --prompt "The Queen" --greedy --max-new-tokens 12 \
        --ignore-eos --json "$@" 2>>"$t/gen.err"
}
gen >"$t/g32.jsonl" && ONEDNN_MAX_CPU_ISA=AVX2 gen --bf16 >"$t/g16fb.jsonl" && {
    cmp -s "$t/g32.jsonl" "$t/g16fb.jsonl" && pass bf16.generate_fallback_same_tokens \
        || fail bf16.generate_fallback_same_tokens "the fp32 fallback of generate --bf16 gave other tokens"
}

# --- bf16 proper, where the CPU has it
if ! "$BUILD/tests/test_ops" gemm_bf16 | grep -q '^# bf16 ISA: avx512'; then
    echo "# this CPU has no bf16 in oneDNN: bf16 runs are the fallback above"
    pass bf16.no_isa_fallback_only
    exit 0
fi
: >"$t/gen.err"
gen --bf16 >"$t/g16.jsonl" && "$PLM" eval --model "$t/tok" --data "$t/a.txt" --bf16 --quiet >"$t/e16.txt" 2>>"$t/gen.err" \
    && "$PLM" eval --model "$t/tok" --data "$t/a.txt" --quiet >"$t/e32.txt" 2>>"$t/gen.err" && {
    n=$(wc -l <"$t/g16.jsonl")
    grep -q 'no bf16' "$t/gen.err" && fail bf16.generate_runs "it fell back to fp32: $(tail -2 "$t/gen.err")"
    [[ $n == 2 ]] && pass bf16.generate_runs || fail bf16.generate_runs "$n JSON lines for 2 prompts"
    p16=$(grep -o 'perplexity[^0-9]*[0-9.]*' "$t/e16.txt" | grep -o '[0-9.]*$') p32=$(grep -o 'perplexity[^0-9]*[0-9.]*' "$t/e32.txt" | grep -o '[0-9.]*$')
    awk -v a="$p16" -v b="$p32" 'BEGIN{d = (a - b) / b; d = d < 0 ? -d : d; exit !(a > 0 && a != b && d < 0.02)}' \
        && pass "bf16.eval_close_to_fp32 ($p16 vs $p32)" || fail bf16.eval_close_to_fp32 "perplexity $p16 (bf16) vs $p32 (fp32)"
}
# embed --bf16: the same vectors within bf16 rounding (cosine > 0.999 each), yet not equal
printf 'Alice was beginning to get very tired\nThe Queen said nothing\nDown the rabbit hole\n' >"$t/texts.txt"
"$PLM" embed --model "$t/tok" --input "$t/texts.txt" --output "$t/e32.npy" --quiet 2>>"$t/gen.err" &&
    "$PLM" embed --model "$t/tok" --input "$t/texts.txt" --output "$t/e16.npy" --bf16 --quiet 2>>"$t/gen.err" && {
    cos=$(/usr/bin/python3 -c 'import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
c = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
print("%.6f %d" % (c.min(), int((a == b).all())))' "$t/e32.npy" "$t/e16.npy")
    read -r cmin same <<<"$cos"
    awk -v c="$cmin" -v s="$same" 'BEGIN{exit !(c > 0.999 && s == 0)}' && pass "bf16.embed_close_to_fp32 (min cosine $cmin)" \
        || fail bf16.embed_close_to_fp32 "min cosine $cmin, identical $same"
}
run fp32 && run a --bf16 && run b --bf16 && PLM_BF16_REUSE=0 run noreuse --bf16 && {
    cmp -s "$t/a/model.safetensors" "$t/noreuse/model.safetensors" && cmp -s "$t/a.losses" "$t/noreuse.losses" \
        && pass bf16.reuse_same_bits || fail bf16.reuse_same_bits "PLM_BF16_REUSE=0 changes the weights or losses"
    cmp -s "$t/a/model.safetensors" "$t/b/model.safetensors" && cmp -s "$t/a.losses" "$t/b.losses" \
        && pass bf16.reproducible || fail bf16.reproducible "two runs with one seed differ"
    grep -q 'no bf16' "$t/a.err" && fail bf16.engaged "it fell back to fp32: $(cat "$t/a.err")"
    # the note of bf16_rate.h: once, exactly where the dot product is slow and oneDNN has no AMX
    rate=$("$BUILD/tests/test_bf16" 2>/dev/null | grep -o '^# bf16 dot product: [0-9.]*' | grep -o '[0-9.]*$')
    amx=$("$BUILD/tests/test_ops" gemm_bf16 | grep -c '^# bf16 ISA: avx512_core_amx')
    want=$(awk -v r="$rate" -v a="$amx" 'BEGIN{print (r > 0 && r < 0.8 && a == 0) ? 1 : 0}')
    n=$(grep -c 'bf16 training is slower than fp32 here' "$t/a.err")
    [[ -n $rate && $n == "$want" ]] && pass "bf16.slow_dot_note (ratio $rate, $n note)" \
        || fail bf16.slow_dot_note "ratio '$rate', AMX $amx: $n notes on stderr, want $want"
    if cmp -s "$t/a.losses" "$t/fp32.losses"; then
        fail bf16.engaged "bf16 losses equal fp32's bit for bit: bf16 did not run"
    else
        pass bf16.engaged
    fi
    # relative gap of every logged loss (train and eval) to fp32's
    gap=$(paste -d' ' <(grep -o '[0-9.e+-]*$' "$t/a.losses") <(grep -o '[0-9.e+-]*$' "$t/fp32.losses") |
        awk '{d = ($1 - $2) / $2; d = d < 0 ? -d : d; if (d > m) m = d} END {printf "%.2g", m}')
    awk -v g="$gap" 'BEGIN{exit !(g < 0.02)}' && pass "bf16.close_to_fp32 (max rel gap $gap)" \
        || fail bf16.close_to_fp32 "max relative loss gap $gap >= 0.02"
    cp -r "$t/a/checkpoint-6" "$t/ck6"
    mkdir -p "$t/resumed"
    run resumed --bf16 --resume-from-checkpoint "$t/ck6" && {
        cmp -s "$t/a/model.safetensors" "$t/resumed/model.safetensors" \
            && pass bf16.resume_same_weights || fail bf16.resume_same_weights "final weights differ"
        tail_a=$(grep -E '"step": ([7-9]|1[0-2]),' "$t/a.losses") tail_r=$(grep -E '"step": ([7-9]|1[0-2]),' "$t/resumed.losses")
        [[ -n $tail_a && $tail_a == "$tail_r" ]] && pass bf16.resume_same_losses \
            || fail bf16.resume_same_losses "steps 7-12 differ: $(diff <(echo "$tail_a") <(echo "$tail_r") | head -4)"
    }
}
