#!/usr/bin/env bash
# Checkpoints against crashes (issue 6): a tiny GPT trained with --save-steps 2 is killed
# with SIGKILL at random moments (PLM_TEST_SLOW_SAVE widens the saves, so many kills land
# inside one) and resumed from its output directory each time; every checkpoint-N left
# behind must be complete, and the final weights and logged losses must equal an
# uninterrupted run bit for bit. Also: --resume-from-checkpoint on an output directory,
# --save-total-limit, stale temp dirs, and a diverging run that stops with exit 1.
# PLM_TEST_SEED=n replays the kill times of a failed run (printed on failure).
set -u
source "$(dirname "$0")/lib.bash"
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # as tests/run.sh: no spinning on a shared machine
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# "step": n, "loss"/"eval_loss": x lines: what must match bit for bit (timings differ)
losses() { grep -o '"step": [0-9]*, "\(loss\|eval_loss\)": [^,]*' "$1"; }
# every checkpoint-N directory is complete; in the output dir itself, training_state.safetensors
# (written last) implies the rest, and so does model.safetensors
check_dirs() {
    local o=$1 d f
    for d in "$o"/checkpoint-*; do
        [[ -e $d ]] || continue
        [[ $(basename "$d") =~ ^checkpoint-[0-9]+$ ]] || continue
        for f in config.json model.safetensors tokenizer.json training_state.safetensors; do
            [[ -s $d/$f ]] || { echo "$d lacks $f"; return 1; }
        done
    done
    if [[ -e $o/training_state.safetensors && ! -e $o/model.safetensors ]]; then echo "$o: state without model"; return 1; fi
    for f in config.json tokenizer.json; do
        if [[ -e $o/model.safetensors && ! -e $o/$f ]]; then echo "$o: model without $f"; return 1; fi
    done
    return 0
}

head -c 60000 data/demo/Carroll__Alice_s_Adventures_in_Wonderland.txt >"$t/a.txt"
cat >"$t/tiny.json" <<'J'
{"model_type": "gpt2", "vocab_size": 384, "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 64,
 "resid_pdrop": 0.1, "attn_pdrop": 0.1, "embd_pdrop": 0.1}
J
args=(--config "$t/tiny.json" --train "$t/a.txt" --batch-size 4 --seq-len 32 --logging-steps 1 --eval-steps 8
      --learning-rate 3e-3 --warmup-steps 3 --seed 7 --quiet)
"$PLM" pretrain "${args[@]}" --max-steps 1 --output-dir "$t/tok" >/dev/null 2>"$t/err" \
    || { fail setup "$(tail -3 "$t/err")"; exit 0; }
args+=(--tokenizer "$t/tok/tokenizer.json" --max-steps 24 --save-steps 2)

# the uninterrupted reference; its duration (with slowed saves) bounds the kill delays
slow=25
t0=$(now_ms)
PLM_TEST_SLOW_SAVE=$slow "$PLM" pretrain "${args[@]}" --output-dir "$t/ref" >/dev/null 2>"$t/err" \
    || { fail reference_run "$(tail -3 "$t/err")"; exit 0; }
span=$(($(now_ms) - t0 + 50))
((span > 4000)) && span=4000 # a loaded machine: kills still spread over start, steps and saves
losses "$t/ref/metrics.jsonl" >"$t/ref.losses"

# --- kill at random moments, resume from the output dir, until `kills` kills have landed
kills=20
[[ -n ${PLM_SANITIZE:-} ]] && kills=3
seed=${PLM_TEST_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$seed
o=$t/run
landed=0 runs=0 resumed=0 in_ckpt=0 in_final=0 bad=""
while ((runs < 200)); do
    runs=$((runs + 1))
    resume=()
    if ls "$o" 2>/dev/null | grep -qE '^(checkpoint-[0-9]+|training_state.safetensors)$'; then
        resume=(--resume-from-checkpoint "$o")
    fi
    PLM_TEST_SLOW_SAVE=$slow "$PLM" pretrain "${args[@]}" --save-total-limit 3 --output-dir "$o" "${resume[@]}" \
        >/dev/null 2>"$t/err" &
    pid=$!
    if ((landed < kills)); then
        d=$(((RANDOM * 32768 + RANDOM) % span))
        sleep "$(printf '%d.%03d' $((d / 1000)) $((d % 1000)))"
        kill -KILL "$pid" 2>/dev/null
    fi
    { wait "$pid"; } 2>/dev/null # no "Killed" line from bash
    rc=$?
    if ((rc == 137)); then
        landed=$((landed + 1))
        # where it landed: inside a checkpoint save (its temp dir is left), inside the final save
        compgen -G "$o/checkpoint-*.tmp-*" >/dev/null && in_ckpt=$((in_ckpt + 1))
        [[ -e $o/config.json && ! -e $o/training_state.safetensors ]] && in_final=$((in_final + 1))
        if ! why=$(check_dirs "$o"); then bad="after kill $landed: $why"; break; fi
        continue
    fi
    if ((rc != 0)); then bad="run $runs (resume: ${resume[*]:-none}) exit $rc: $(head -c 300 "$t/err")"; break; fi
    ((${#resume[@]})) && resumed=$((resumed + 1))
    ((landed >= kills)) && break
    rm -rf "$o" # finished before the kill: start over
done
if [[ -n $bad ]]; then
    fail kill_resume "$bad (PLM_TEST_SEED=$seed)"
elif ((landed < kills)); then
    fail kill_resume "only $landed kills landed in $runs runs (PLM_TEST_SEED=$seed)"
else
    pass kill_resume
    losses "$o/metrics.jsonl" >"$t/run.losses"
    if cmp -s "$t/ref.losses" "$t/run.losses"; then pass kill_resume_same_losses; else
        fail kill_resume_same_losses "$(diff "$t/ref.losses" "$t/run.losses" | head -4 | tr '\n' ' ') (PLM_TEST_SEED=$seed)"
    fi
    if cmp -s "$t/ref/model.safetensors" "$o/model.safetensors"; then pass kill_resume_same_weights; else
        fail kill_resume_same_weights "final model.safetensors differs (PLM_TEST_SEED=$seed)"
    fi
    left=$(cd "$o" && ls -d checkpoint-* | sort -t- -k2n | tr '\n' ' ')
    [[ $left == "checkpoint-18 checkpoint-20 checkpoint-22 " ]] && pass kill_save_total_limit \
        || fail kill_save_total_limit "left: $left"
fi
echo "# $landed kills in $runs runs ($in_ckpt inside a checkpoint save, $in_final inside the final save)," \
    "$resumed resumed runs completed, PLM_TEST_SEED=$seed"

# --- kills inside the final save (written into the output dir itself, not renamed into
# place): resume from checkpoint-22 with very slow saves, so the final save is most of the run
fkills=5
[[ -n ${PLM_SANITIZE:-} ]] && fkills=2
f=$t/fin
mkdir -p "$f"
cp -r "$t/ref/checkpoint-22" "$f/"
bad="" in_final=0
for ((i = 0; i < fkills; i++)); do
    PLM_TEST_SLOW_SAVE=250 "$PLM" pretrain "${args[@]}" --output-dir "$f" --resume-from-checkpoint "$f" >/dev/null 2>"$t/err" &
    pid=$!
    d=$((150 + (RANDOM * 32768 + RANDOM) % 700))
    sleep "0.$(printf '%03d' "$d")"
    kill -KILL "$pid" 2>/dev/null
    { wait "$pid"; } 2>/dev/null
    rc=$?
    if ((rc != 137 && rc != 0)); then bad="resume exit $rc: $(head -c 300 "$t/err")"; break; fi
    [[ -e $f/config.json && ! -e $f/training_state.safetensors ]] && in_final=$((in_final + 1))
    if ! why=$(check_dirs "$f"); then bad="after kill $((i + 1)): $why"; break; fi
done
if [[ -z $bad ]] && ! "$PLM" pretrain "${args[@]}" --output-dir "$f" --resume-from-checkpoint "$f" >/dev/null 2>"$t/err"; then
    bad="last resume: $(head -c 300 "$t/err")"
fi
if [[ -n $bad ]]; then fail kill_final_save "$bad (PLM_TEST_SEED=$seed)"
elif ! cmp -s "$t/ref/model.safetensors" "$f/model.safetensors"; then fail kill_final_save "final weights differ"
elif [[ $(losses "$f/metrics.jsonl") != $(losses "$t/ref/metrics.jsonl" | awk -F'[:,]' '$2 > 22') ]]; then
    fail kill_final_save "losses differ"
else pass kill_final_save; fi
echo "# $fkills kills at the end of a run, $in_final inside the final save"

# --- --resume-from-checkpoint on an output dir: the newest checkpoint that loads
cp -r "$t/ref" "$t/r1"
rm "$t/r1/training_state.safetensors"                        # as if killed during the final save
truncate -s -100 "$t/r1/checkpoint-22/training_state.safetensors" # damaged (e.g. by an older plm)
"$PLM" pretrain "${args[@]}" --output-dir "$t/r1" --resume-from-checkpoint "$t/r1" >/dev/null 2>"$t/err"
rc=$?
if ((rc == 0)) && grep -q "^resuming from $t/r1/checkpoint-20 (step 20)" "$t/err" \
    && cmp -s "$t/ref/model.safetensors" "$t/r1/model.safetensors"; then
    pass resume_output_dir_newest_complete
else
    fail resume_output_dir_newest_complete "exit $rc: $(head -c 300 "$t/err")"
fi
# a finished output dir is itself the newest checkpoint: nothing left to train
"$PLM" pretrain "${args[@]}" --output-dir "$t/r1" --resume-from-checkpoint "$t/r1" >/dev/null 2>"$t/err"
rc=$?
((rc == 0)) && grep -q "^resuming from $t/r1 (step 24)" "$t/err" && cmp -s "$t/ref/model.safetensors" "$t/r1/model.safetensors" \
    && pass resume_finished_output_dir || fail resume_finished_output_dir "exit $rc: $(head -c 300 "$t/err")"
mkdir -p "$t/none"
"$PLM" pretrain "${args[@]}" --output-dir "$t/o" --resume-from-checkpoint "$t/none" >/dev/null 2>"$t/err"
rc=$?
((rc == 3)) && grep -q "none: no checkpoint to resume from" "$t/err" && pass resume_no_checkpoint \
    || fail resume_no_checkpoint "exit $rc: $(head -c 300 "$t/err")"

# --- --save-total-limit and stale temp dirs of a killed run
sleep 0 &
dead=$!
wait
mkdir -p "$t/lim/checkpoint-4.tmp-$dead" "$t/lim/checkpoint-6.tmp-$$"
: >"$t/lim/checkpoint-4.tmp-$dead/model.safetensors"
"$PLM" pretrain "${args[@]}" --save-total-limit 2 --output-dir "$t/lim" >/dev/null 2>"$t/err"
rc=$?
left=$(cd "$t/lim" && ls -d checkpoint-* | sort -t- -k2n | tr '\n' ' ')
((rc == 0)) && [[ $left == "checkpoint-6.tmp-$$ checkpoint-20 checkpoint-22 " ]] && pass save_total_limit_and_stale_tmp \
    || fail save_total_limit_and_stale_tmp "exit $rc, left: $left $(head -c 200 "$t/err")"
expect_rc=$("$PLM" pretrain "${args[@]}" --save-total-limit -1 --output-dir "$t/o" >/dev/null 2>&1; echo $?)
((expect_rc == 2)) && pass save_total_limit_negative || fail save_total_limit_negative "exit $expect_rc"

# --- divergence: exit 1 naming the step and a tensor; the checkpoints before it are good
div=(--config "$t/tiny.json" --train "$t/a.txt" --tokenizer "$t/tok/tokenizer.json" --batch-size 4 --seq-len 32
     --seed 7 --quiet --max-steps 12 --save-steps 2 --learning-rate 1e3 --warmup-steps 0)
PLM_TEST_NAN_GRAD_AT_STEP=7 "$PLM" pretrain "${div[@]}" --output-dir "$t/div" >/dev/null 2>"$t/err"
rc=$?
if ((rc == 1)) && [[ $(wc -l <"$t/err") -eq 1 ]] \
    && grep -qE 'diverged at step 7: gradient of transformer\.[a-z0-9_.]+ is not finite' "$t/err"; then
    pass diverge_message
else
    fail diverge_message "exit $rc: $(head -c 300 "$t/err")"
fi
[[ -d $t/div/checkpoint-6 && ! -e $t/div/checkpoint-8 && ! -e $t/div/model.safetensors ]] && pass diverge_no_checkpoint_after \
    || fail diverge_no_checkpoint_after "$(ls "$t/div" | tr '\n' ' ')"
"$PLM" eval --model "$t/div/checkpoint-6" --data "$t/a.txt" --seq-len 32 >"$t/e" 2>"$t/err" \
    && grep -q '"perplexity"' "$t/e" && ! grep -qiE 'nan|inf"' "$t/e" && pass diverge_last_checkpoint_loads \
    || fail diverge_last_checkpoint_loads "$(cat "$t/err" "$t/e" | head -c 300)"
"$PLM" pretrain "${div[@]}" --output-dir "$t/div" --resume-from-checkpoint "$t/div" >/dev/null 2>"$t/err"
rc=$?
((rc == 0)) && grep -q "^resuming from $t/div/checkpoint-6 (step 6)" "$t/err" && pass diverge_resume \
    || fail diverge_resume "exit $rc: $(head -c 300 "$t/err")"
# the same without the hook: weights grow until a forward pass overflows; the run must
# stop with the message (cross-entropy survives NaN logits), never crash.
{ timeout 120 "$PLM" pretrain "${div[@]}" --max-steps 40 --output-dir "$t/div2" >/dev/null 2>"$t/err"; } 2>/dev/null
rc=$?
if grep -q 'diverged at step' "$t/err"; then
    step=$(grep -o 'diverged at step [0-9]*' "$t/err" | grep -o '[0-9]*$')
    if ((rc == 1)) && grep -qE 'diverged at step [0-9]+: .*(gradient of|parameter|loss)' "$t/err" \
        && ! compgen -G "$t/div2/checkpoint-$(((step + 1) / 2 * 2))" >/dev/null; then
        pass diverge_lr_1e3
    else
        fail diverge_lr_1e3 "exit $rc: $(head -c 300 "$t/err")"
    fi
else
    fail diverge_lr_1e3 "exit $rc: $(head -c 300 "$t/err")"
fi
exit 0
