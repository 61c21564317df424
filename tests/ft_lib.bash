# ft_lib.bash - helpers that tests/finetune.sh and tests/finetune_tokens.sh source (not a
# test itself: run.sh runs tests/*.sh). Needs $t (a scratch directory) and $PLM.
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash" # pass, fail, check, expect

# metrics.jsonl without the wall-clock field
strip_elapsed() { sed -E 's/, "elapsed_s": [0-9.]+//' "$1"; }

# resume_check PREFIX CUT FINAL ARGS...: `plm finetune ARGS` (plm $FT_CMD when set; it must checkpoint at
# step CUT and end at step FINAL with --save-total-limit 0) run uninterrupted into
# $t/PREFIXfull; (1) its checkpoint-CUT copied into a fresh directory with the log up to
# CUT and resumed, (2) a run killed (SIGKILL) once checkpoint-CUT exists and resumed:
# both must end with the uninterrupted run's model file, final training state and
# metrics.jsonl (every loss), bit for bit. Passes PREFIXresume_bit_exact,
# PREFIXresume_metrics, PREFIXresume_after_kill.
resume_check() {
    local p=$1 cut=$2 final=$3
    shift 3
    local full=$t/${p}full part=$t/${p}cut killed=$t/${p}killed
    "$PLM" "${FT_CMD:-finetune}" "$@" --output-dir "$full" >/dev/null 2>"$t/err" || fail "${p}resume_full" "$(tail -2 "$t/err")"
    mkdir -p "$part" && cp -r "$full/checkpoint-$cut" "$part/" &&
        python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if json.loads(l)["step"] <= int(sys.argv[2]): sys.stdout.write(l)' "$full/metrics.jsonl" "$cut" >"$part/metrics.jsonl"
    "$PLM" "${FT_CMD:-finetune}" "$@" --output-dir "$part" --resume-from-checkpoint "$part" >/dev/null 2>"$t/err" &&
        cmp -s "$full/model.safetensors" "$part/model.safetensors" &&
        cmp -s "$full/checkpoint-$final/training_state.safetensors" "$part/checkpoint-$final/training_state.safetensors" &&
        pass "${p}resume_bit_exact" || fail "${p}resume_bit_exact" "$(tail -2 "$t/err") model or state differs"
    [[ $(strip_elapsed "$full/metrics.jsonl") == "$(strip_elapsed "$part/metrics.jsonl")" ]] &&
        [[ $(grep -c '"loss"' "$full/metrics.jsonl") -gt 2 ]] && pass "${p}resume_metrics" ||
        fail "${p}resume_metrics" "logs differ"
    "$PLM" "${FT_CMD:-finetune}" "$@" --output-dir "$killed" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 1200); do [[ -d $killed/checkpoint-$cut ]] && break; sleep 0.05; done
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    "$PLM" "${FT_CMD:-finetune}" "$@" --output-dir "$killed" --resume-from-checkpoint "$killed" >/dev/null 2>"$t/err" &&
        cmp -s "$full/model.safetensors" "$killed/model.safetensors" &&
        [[ $(strip_elapsed "$full/metrics.jsonl") == "$(strip_elapsed "$killed/metrics.jsonl")" ]] &&
        pass "${p}resume_after_kill" || fail "${p}resume_after_kill" "$(tail -2 "$t/err") model or log differs"
}

# tiny_model NAME KIND VOCAB POSITIONS [TOKENIZER OPTIONS...]: a tokenizer (KIND
# wordpiece: a 2-layer, 64-wide BERT pretrained with MLM; bpe: a GPT-2 of that size with
# CLM) trained on $t/text.txt, 30 pretraining steps: $t/NAME. Passes tiny_NAME or exits.
tiny_model() {
    local name=$1 kind=$2 vocab=$3 pos=$4
    shift 4
    local obj=mlm cfg
    if [[ $kind == bpe ]]; then
        obj=clm
        cfg="{\"model_type\": \"gpt2\", \"vocab_size\": $vocab, \"n_embd\": 64, \"n_layer\": 2, \"n_head\": 2,
              \"n_positions\": $pos}"
        set -- --special '<|endoftext|>' "$@"
    else
        cfg="{\"model_type\": \"bert\", \"vocab_size\": $vocab, \"hidden_size\": 64, \"num_hidden_layers\": 2,
              \"num_attention_heads\": 2, \"intermediate_size\": 128, \"max_position_embeddings\": $pos}"
    fi
    echo "$cfg" >"$t/$name.json"
    "$PLM" tokenizer train --kind "$kind" --vocab-size "$vocab" "$@" --output "$t/$name.tok.json" --quiet \
        "$t/text.txt" &&
        "$PLM" pretrain --objective $obj --config "$t/$name.json" --tokenizer "$t/$name.tok.json" --train "$t/text.txt" \
            --output-dir "$t/$name" --max-steps 30 --batch-size 16 --seq-len 64 --learning-rate 1e-3 --warmup-steps 5 \
            --quiet >"$t/out" 2>"$t/err" && pass "tiny_$name" || {
        fail "tiny_$name" "$(tail -3 "$t/err")"
        exit 1
    }
}
