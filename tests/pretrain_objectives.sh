#!/usr/bin/env bash
# `plm pretrain` with the objectives beyond plain CLM/MLM (issue 8), on tiny models:
#  - clm+mlm: the switch from causal CLM to bidirectional MLM is logged (stderr and
#    metrics.jsonl); runs resumed from the checkpoint before, at and after the switch log
#    the uninterrupted run's losses bit for bit, with and without --reset-optimizer-at-switch
#    (which must change the steps after the switch, and only those);
#  - electra: the directory holds ElectraForPreTraining + generator/ElectraForMaskedLM,
#    validation reports the discriminator's AUC next to "always original", and a resumed
#    run matches the uninterrupted one;
#  - continued pretraining across objectives (--init-from): a CLM checkpoint starts an MLM
#    run and an MLM checkpoint a CLM run, from the checkpoint's weights;
#  - --right-to-left CLM and --lr-scheduler wsd from the command line.
set -u
source "$(dirname "$0")/lib.bash"
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
# "step": n, "loss"/"eval_loss": x lines: what must match bit for bit (timings differ)
losses() { grep -o '"step": [0-9]*, "\(loss\|eval_loss\)": [^,]*' "$1"; }
after() { awk -v k="$2" '{ split($0, a, /[:,]/); if (a[2] + 0 > k) print }' "$1"; }

head -c 60000 data/demo/Carroll__Alice_s_Adventures_in_Wonderland.txt >"$t/a.txt"
cat >"$t/bert.json" <<'J'
{"model_type": "bert", "vocab_size": 384, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
 "intermediate_size": 64, "max_position_embeddings": 64, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
J
common=(--train "$t/a.txt" --batch-size 4 --seq-len 32 --logging-steps 1 --learning-rate 3e-3 --warmup-steps 3
        --seed 7 --quiet)
"$PLM" pretrain --config "$t/bert.json" "${common[@]}" --objective mlm --max-steps 1 --output-dir "$t/tok" \
    >/dev/null 2>"$t/err" || { fail setup "$(tail -3 "$t/err")"; exit 0; }
common+=(--tokenizer "$t/tok/tokenizer.json")

# ---------------------------------------------------------------- clm+mlm
# 12 steps, the switch before step 7 (0-based 6): checkpoints 5, 6 and 7 are before, at, after
tp=(--config "$t/bert.json" "${common[@]}" --objective clm+mlm --clm-fraction 0.5 --max-steps 12 --save-steps 1
    --eval-steps 4)
for reset in 0 1; do
    extra=()
    ((reset)) && extra=(--reset-optimizer-at-switch)
    name=two_phase$( ((reset)) && echo _reset)
    "$PLM" pretrain "${tp[@]}" "${extra[@]}" --output-dir "$t/ref$reset" --logging-steps 1 >/dev/null \
        2>"$t/err$reset" && rc=0 || rc=$?
    [[ $rc == 0 ]] || { fail "$name.reference" "exit $rc: $(tail -2 "$t/err$reset")"; continue; }
    m=$t/ref$reset/metrics.jsonl
    check "$name.switch_logged" \
        "grep -q '\"step\": 7, \"event\": \"phase_switch\", \"from\": \"clm\", \"to\": \"mlm\"' '$m' &&
         grep -q 'phase switch: CLM (causal attention) -> MLM' '$t/err$reset'" \
        "no phase_switch line before step 7 in metrics.jsonl or on stderr"
    check "$name.objective_per_step" \
        "grep -q '\"step\": 6, \"loss\".*\"objective\": \"clm\"' '$m' && grep -q '\"step\": 7, \"loss\".*\"objective\": \"mlm\"' '$m' &&
         grep -q '\"step\": 4, \"eval_loss\".*\"eval_next_token_accuracy\"' '$m' &&
         grep -q '\"step\": 8, \"eval_loss\".*\"eval_masked_accuracy\".*\"eval_mask_token_accuracy\".*\"eval_mask_token_majority_accuracy\"' '$m'" \
        "steps 1-6 are not CLM and 7-12 MLM (train and eval lines)"
    losses "$m" >"$t/ref$reset.losses"
    for k in 5 6 7; do
        o=$t/res$reset-$k
        if ! "$PLM" pretrain "${tp[@]}" "${extra[@]}" --output-dir "$o" \
            --resume-from-checkpoint "$t/ref$reset/checkpoint-$k" >/dev/null 2>"$t/err"; then
            fail "$name.resume_at_$k" "$(tail -2 "$t/err")"
            continue
        fi
        losses "$o/metrics.jsonl" >"$t/got"
        after "$t/ref$reset.losses" "$k" >"$t/want"
        check "$name.resume_at_$k" "[[ -s '$t/want' ]] && cmp -s '$t/got' '$t/want' &&
             cmp -s '$o/model.safetensors' '$t/ref$reset/model.safetensors'" \
            "losses or final weights differ from the uninterrupted run: $(diff "$t/got" "$t/want" | head -3 | tr '\n' ' ')"
    done
done
# the reset changes the MLM steps only
head -n 6 "$t/ref0.losses" | grep -v eval >"$t/a0"
head -n 6 "$t/ref1.losses" | grep -v eval >"$t/a1"
check two_phase.reset_changes_only_mlm_steps \
    "cmp -s '$t/a0' '$t/a1' && ! cmp -s <(grep '\"step\": 8, \"loss\"' '$t/ref0.losses') <(grep '\"step\": 8, \"loss\"' '$t/ref1.losses')" \
    "--reset-optimizer-at-switch changed the CLM steps or did nothing after the switch"
check two_phase.saved_as_bert "grep -q '\"BertForMaskedLM\"' '$t/ref0/config.json' && grep -q '\"is_decoder\":.*false' '$t/ref0/config.json'" \
    "the two-phase model is not saved as a bidirectional BertForMaskedLM"

# ---------------------------------------------------------------- electra
cat >"$t/electra.json" <<'J'
{"model_type": "electra", "vocab_size": 384, "embedding_size": 32, "hidden_size": 64, "num_hidden_layers": 2,
 "num_attention_heads": 2, "intermediate_size": 128, "max_position_embeddings": 64}
J
el=(--config "$t/electra.json" "${common[@]}" --objective electra --generator-size 0.25 --max-steps 8 --save-steps 2
    --eval-steps 4)
if "$PLM" pretrain "${el[@]}" --output-dir "$t/el" >/dev/null 2>"$t/err"; then
    pass electra.run
    check electra.layout \
        "grep -q '\"ElectraForPreTraining\"' '$t/el/config.json' && grep -q '\"ElectraForMaskedLM\"' '$t/el/generator/config.json' &&
         grep -q '\"hidden_size\":.*16,' '$t/el/generator/config.json' && ! grep -q 'generator' '$t/el/model.safetensors' &&
         grep -q 'discriminator_predictions.dense_prediction.weight' '$t/el/model.safetensors' &&
         grep -q 'generator_lm_head.bias' '$t/el/generator/model.safetensors' &&
         grep -q 'electra.embeddings.word_embeddings.weight' '$t/el/generator/model.safetensors'" \
        "not ElectraForPreTraining + generator/ElectraForMaskedLM (width 16) with HF names"
    check electra.generator_fill_mask "'$PLM' fill-mask --model '$t/el/generator' --text 'the [MASK] of it' >/dev/null 2>'$t/err'" \
        "$(tail -1 "$t/err")"
    check electra.eval_metrics \
        "grep -q '\"step\": 8, \"eval_loss\".*\"eval_masked_accuracy\".*\"eval_discriminator_accuracy\".*\"eval_discriminator_auc\".*\"eval_always_original_accuracy\"' '$t/el/metrics.jsonl'" \
        "no generator / discriminator / AUC / always-original validation line"
    losses "$t/el/metrics.jsonl" >"$t/el.losses"
    if "$PLM" pretrain "${el[@]}" --output-dir "$t/el2" --resume-from-checkpoint "$t/el/checkpoint-4" \
        >/dev/null 2>"$t/err"; then
        losses "$t/el2/metrics.jsonl" >"$t/got"
        after "$t/el.losses" 4 >"$t/want"
        check electra.resume "cmp -s '$t/got' '$t/want' && cmp -s '$t/el2/model.safetensors' '$t/el/model.safetensors' &&
             cmp -s '$t/el2/generator/model.safetensors' '$t/el/generator/model.safetensors'" \
            "resumed losses or weights differ: $(diff "$t/got" "$t/want" | head -3 | tr '\n' ' ')"
    else
        fail electra.resume "$(tail -2 "$t/err")"
    fi
    # continued ELECTRA pretraining from the finished directory
    check electra.init_from "'$PLM' pretrain --objective electra ${common[*]} --max-steps 2 --init-from '$t/el' \
        --output-dir '$t/el3' >/dev/null 2>'$t/err'" "$(tail -1 "$t/err")"
else
    fail electra.run "$(tail -3 "$t/err")"
fi
"$PLM" pretrain --config "$t/bert.json" "${common[@]}" --objective electra --max-steps 1 --init-from "$t/tok" \
    --output-dir "$t/el4" >/dev/null 2>"$t/err" && rc=0 || rc=$?
check electra.init_from_non_electra_refused "[[ $rc != 0 ]] && grep -q 'ELECTRA pretraining directory' '$t/err'" \
    "exit $rc: $(tail -1 "$t/err")"

# ---------------------------------------------------------------- continued pretraining
cat >"$t/gpt.json" <<'J'
{"model_type": "gpt2", "vocab_size": 384, "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 64}
J
# first-step loss of a fresh model vs one initialised from a checkpoint of the other objective
first_loss() { grep -o '"step": 1, "loss": [^,]*' "$1/metrics.jsonl" | sed 's/.*: //'; }
cross=(${common[@]} --max-steps 1 --eval-steps 0)
"$PLM" pretrain --config "$t/gpt.json" "${common[@]}" --objective clm --max-steps 60 --output-dir "$t/clm" \
    >/dev/null 2>"$t/err" || fail continued.clm_base "$(tail -1 "$t/err")"
"$PLM" pretrain --config "$t/bert.json" "${common[@]}" --objective mlm --max-steps 60 --output-dir "$t/mlm" \
    >/dev/null 2>"$t/err" || fail continued.mlm_base "$(tail -1 "$t/err")"
for pair in "clm mlm gpt" "mlm clm bert"; do
    set -- $pair
    "$PLM" pretrain "${cross[@]}" --objective "$2" --init-from "$t/$1" --output-dir "$t/$1-$2" >/dev/null \
        2>"$t/err" && rc=0 || rc=$?
    "$PLM" pretrain "${cross[@]}" --config "$t/$3.json" --objective "$2" --output-dir "$t/fresh-$2" >/dev/null 2>&1
    a=$(first_loss "$t/$1-$2") b=$(first_loss "$t/fresh-$2")
    check "continued.$1_to_$2" "[[ $rc == 0 && -n '$a' && -n '$b' ]] && awk -v a='$a' -v b='$b' 'BEGIN { exit !(a < b) }'" \
        "exit $rc, first loss from the $1 checkpoint $a vs fresh $b: $(tail -1 "$t/err")"
done

# the continued models are what their last objective made them: fill-mask reads the
# CLM-then-MLM GPT-2 (bidirectional now), generate the MLM-then-CLM BERT (causal now)
check continued.clm_to_mlm_is_bidirectional \
    "grep -q '\"is_decoder\":.*false' '$t/clm-mlm/config.json' &&
     '$PLM' fill-mask --model '$t/clm-mlm' --text 'the [MASK] of it' >/dev/null 2>'$t/err'" \
    "$(tail -1 "$t/err")"
check continued.mlm_to_clm_is_causal \
    "grep -q '\"is_decoder\":.*true' '$t/mlm-clm/config.json' &&
     '$PLM' generate --model '$t/mlm-clm' --prompt 'Alice' --max-new-tokens 3 >/dev/null 2>'$t/err'" \
    "$(tail -1 "$t/err")"

# ---------------------------------------------------------------- right-to-left, wsd
"$PLM" pretrain --config "$t/gpt.json" "${common[@]}" --objective clm --right-to-left --max-steps 3 \
    --output-dir "$t/rtl" >/dev/null 2>"$t/err" && rc=0 || rc=$?
"$PLM" pretrain --config "$t/gpt.json" "${common[@]}" --objective clm --max-steps 3 --output-dir "$t/ltr" >/dev/null 2>&1
check right_to_left.cli "[[ $rc == 0 ]] && ! cmp -s <(losses '$t/rtl/metrics.jsonl') <(losses '$t/ltr/metrics.jsonl')" \
    "exit $rc, or the same losses as left-to-right"
# 20 steps, warmup 4, decay 25% (steps 15-19, 0-based): lr before update 17 (logged at step 18) is
# 3e-3 * (1 - sqrt(2/5)); the stable phase logs 3e-3
"$PLM" pretrain --config "$t/gpt.json" "${common[@]}" --objective clm --max-steps 20 --warmup-steps 4 \
    --lr-scheduler wsd --decay-fraction 0.25 --output-dir "$t/wsd" >/dev/null 2>"$t/err" && rc=0 || rc=$?
lr() { grep -o "\"step\": $1, \"loss\": [^,]*, \"learning_rate\": [^,]*" "$t/wsd/metrics.jsonl" | sed 's/.*: //'; }
check wsd.cli "[[ $rc == 0 ]] && awk -v a=\"\$(lr 10)\" -v b=\"\$(lr 18)\" -v c=\"\$(lr 16)\" \
    'BEGIN { w = 3e-3 * (1 - sqrt(0.4)); exit !((a - 0.003) ^ 2 < 1e-18 && (b - w) ^ 2 < 1e-18 && (c - 0.003) ^ 2 < 1e-18) }'" \
    "exit $rc, learning rates at steps 10, 16, 18: $(lr 10) $(lr 16) $(lr 18)"
exit 0
