#!/usr/bin/env bash
# plm ppo end to end on a tiny GPT-2 made here in seconds (ft_lib.bash's tiny_model) and a
# reward model trained from it with plm reward on reversal preferences (also the value
# model's start): a run writes the policy (a GPT2LMHeadModel whose config.json records
# ppo's settings) and OUTPUT/value_model (a GPT2ForSequenceClassification), metrics.jsonl
# with TRL's statistics per step (objective/kl 0 and val/ratio 1 at the first step's first
# update, where the policy is the reference and the rollout's), loss.svg; the same seed
# gives the same run bit for bit; a run resumed from a checkpoint (copied, or after
# SIGKILL) ends bit for bit as one never stopped, value model included; plm generate reads
# the result; --missing-eos-penalty lowers objective/scores. Hostile input: a missing
# --reward-model, a reward or value model that is a language model or missing, a policy
# that is not causal, bad options: one line, exit 3 (input) or 2 (usage).
# (The maths, the gradients and learning: test_ppo.c and the gpt2_ppo parity cases.)
set -u
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
t=$(mktemp -d)
[[ -n ${PLM_KEEP:-} ]] && echo "# kept $t" || trap 'rm -rf "$t"' EXIT
source "$(dirname "$0")/ft_lib.bash"

"$PLM" ppo --help >"$t/out" 2>&1 && grep -q "usage: plm ppo" "$t/out" && grep -q -- "--reward-model" "$t/out" &&
    grep -q -- "--value-model" "$t/out" && grep -q -- "--kl-coef" "$t/out" && grep -q -- "--cliprange-value" "$t/out" &&
    grep -q -- "--num-ppo-epochs" "$t/out" && grep -q -- "--missing-eos-penalty" "$t/out" &&
    pass help_ppo || fail help_ppo "no usage"
"$PLM" rloo --help 2>&1 | grep -q -- "--missing-eos-penalty" && pass help_rloo_missing_eos_penalty ||
    fail help_rloo_missing_eos_penalty "rloo has no --missing-eos-penalty"

python3 - "$t" <<'P'
import json, random, sys
d = sys.argv[1]
r = random.Random(7)
pairs = []
while len(pairs) < 120:
    w = [r.choice("abcdefgh") for _ in range(r.randint(3, 4))]
    if w != w[::-1]:
        pairs.append(("reverse: " + " ".join(w), " ".join(reversed(w)), " ".join(w)))
with open(d + "/pref.jsonl", "w") as f, open(d + "/text.txt", "w") as tx, open(d + "/prompts.jsonl", "w") as p:
    for q, c, j in pairs:
        f.write(json.dumps({"prompt": q, "chosen": c, "rejected": j}) + "\n")
        tx.write(f"User: {q}\nAssistant: {c}\n")
        p.write(json.dumps({"prompt": q}) + "\n")
P
tiny_model gpt bpe 300 64
"$PLM" reward --model "$t/gpt" --train "$t/pref.jsonl" --output-dir "$t/rm" --max-steps 10 --learning-rate 1e-3 \
    --quiet >/dev/null 2>"$t/err" && pass ppo_reward_model || fail ppo_reward_model "$(tail -2 "$t/err")"

# ---- a run: 5 steps of 4 prompts, 2 PPO epochs x 2 minibatches, up to 8 new tokens
pp=(--model "$t/gpt" --reward-model "$t/rm" --train "$t/prompts.jsonl" --per-device-train-batch-size 4
    --num-ppo-epochs 2 --num-mini-batches 2 --max-new-tokens 8 --max-steps 5 --learning-rate 1e-3)
"$PLM" ppo "${pp[@]}" --output-dir "$t/p1" >"$t/out" 2>"$t/err" && pass ppo_runs || fail ppo_runs "$(tail -3 "$t/err")"
grep -qE '^ppo: 120 prompts \(longest [0-9]+ tokens\), 0 validation; kl_coef 0.05, 2 PPO epochs x 2 minibatches, up to 8 new tokens at temperature 0.7; template plain; policy GPT2LMHeadModel' \
    "$t/err" && pass ppo_reports || fail ppo_reports "$(head -3 "$t/err")"
python3 - "$t/p1" <<'P' && pass ppo_outputs || fail ppo_outputs "see above"
import json, math, os, sys
d = sys.argv[1]
c = json.load(open(d + "/config.json"))
assert c["architectures"] == ["GPT2LMHeadModel"], c["architectures"]
pt = c["plm_task"]
assert pt["type"] == "ppo" and abs(pt["kl_coef"] - 0.05) < 1e-7 and pt["num_ppo_epochs"] == 2, pt
assert pt["num_mini_batches"] == 2 and pt["max_new_tokens"] == 8 and abs(pt["temperature"] - 0.7) < 1e-7, pt
assert abs(pt["vf_coef"] - 0.1) < 1e-7 and abs(pt["cliprange"] - 0.2) < 1e-7 and pt["reward_model"].endswith("/rm"), pt
v = json.load(open(d + "/value_model/config.json"))
assert v["architectures"] == ["GPT2ForSequenceClassification"] and len(v["id2label"]) == 1, v
assert os.path.getsize(d + "/value_model/model.safetensors") > 0 and os.path.exists(d + "/value_model/tokenizer.json")
steps = [json.loads(l) for l in open(d + "/metrics.jsonl")]
assert [s["step"] for s in steps] == [1, 2, 3, 4, 5], [s["step"] for s in steps]
keys = ("loss", "objective/kl", "objective/entropy", "objective/non_score_reward", "objective/rlhf_reward",
        "objective/scores", "policy/approxkl_avg", "policy/clipfrac_avg", "loss/policy_avg", "loss/value_avg",
        "val/clipfrac_avg", "val/ratio", "val/num_eos_tokens", "completion_length", "learning_rate", "grad_norm")
for s in steps:
    for k in keys:
        assert k in s and math.isfinite(s[k]), (k, s)
    assert 1 <= s["completion_length"] <= 8 and 0 <= s["policy/clipfrac_avg"] <= 1 and 0 <= s["val/clipfrac_avg"] <= 1, s
    assert abs(s["objective/rlhf_reward"] - (s["objective/scores"] + s["objective/non_score_reward"])) < 1e-5, s
    assert abs(s["objective/non_score_reward"] + 0.05 * s["objective/kl"]) < 1e-5, s
    assert abs(s["loss"] - (s["loss/policy_avg"] + 0.1 * s["loss/value_avg"])) < 1e-5 * max(1, abs(s["loss"])), s
assert steps[0]["objective/kl"] == 0, steps[0]
assert abs(steps[0]["learning_rate"] - 1e-3) < 1e-9, steps[0]
assert os.path.getsize(d + "/loss.svg") > 0 and os.path.exists(d + "/tokenizer.json")
P
"$PLM" ppo "${pp[@]}" --output-dir "$t/p2" --quiet >/dev/null 2>"$t/err" && cmp -s "$t/p1/model.safetensors" \
    "$t/p2/model.safetensors" && cmp -s "$t/p1/value_model/model.safetensors" "$t/p2/value_model/model.safetensors" &&
    [[ $(strip_elapsed "$t/p1/metrics.jsonl") == "$(strip_elapsed "$t/p2/metrics.jsonl")" ]] &&
    pass ppo_reproducible || fail ppo_reproducible "$(tail -2 "$t/err") model or metrics differ"
"$PLM" ppo "${pp[@]}" --output-dir "$t/p3" --seed 7 --quiet >/dev/null 2>"$t/err" &&
    ! cmp -s "$t/p1/model.safetensors" "$t/p3/model.safetensors" && pass ppo_seed_matters ||
    fail ppo_seed_matters "$(tail -2 "$t/err") another seed gave the same model"
! cmp -s "$t/rm/model.safetensors" "$t/p1/value_model/model.safetensors" && pass ppo_value_model_trained ||
    fail ppo_value_model_trained "the value model is the reward model's start"
"$PLM" generate --model "$t/p1" --prompt "reverse: a b c" --max-new-tokens 4 >"$t/out" 2>"$t/err" &&
    pass ppo_model_generates || fail ppo_model_generates "$(tail -2 "$t/err")"
# the missing-EOS penalty: 2 new tokens rarely hold EOS, so scores drop by about the penalty
"$PLM" ppo "${pp[@]}" --max-new-tokens 2 --max-steps 1 --output-dir "$t/e0" --quiet >/dev/null 2>"$t/err" &&
    "$PLM" ppo "${pp[@]}" --max-new-tokens 2 --max-steps 1 --missing-eos-penalty 5 --output-dir "$t/e5" --quiet \
        >/dev/null 2>>"$t/err" && python3 - "$t/e0" "$t/e5" <<'P' && pass ppo_missing_eos_penalty ||
import json, sys
a = json.loads(open(sys.argv[1] + "/metrics.jsonl").readline())
b = json.loads(open(sys.argv[2] + "/metrics.jsonl").readline())
n = 4 - b["val/num_eos_tokens"]  # responses without EOS among the 4
assert n > 0, b
assert abs((a["objective/scores"] - b["objective/scores"]) - 5 * n / 4) < 1e-4, (a["objective/scores"], b["objective/scores"], n)
P
    fail ppo_missing_eos_penalty "$(tail -2 "$t/err")"
# rloo's: the same shared penalty
"$PLM" rloo --model "$t/gpt" --reward-model "$t/rm" --train "$t/prompts.jsonl" --per-device-train-batch-size 4 \
    --max-new-tokens 2 --max-steps 1 --output-dir "$t/r0" --quiet >/dev/null 2>"$t/err" &&
    "$PLM" rloo --model "$t/gpt" --reward-model "$t/rm" --train "$t/prompts.jsonl" --per-device-train-batch-size 4 \
        --max-new-tokens 2 --max-steps 1 --missing-eos-penalty 5 --output-dir "$t/r5" --quiet >/dev/null 2>>"$t/err" &&
    python3 - "$t/r0" "$t/r5" <<'P' && pass rloo_missing_eos_penalty || fail rloo_missing_eos_penalty "$(tail -2 "$t/err")"
import json, sys
a = json.loads(open(sys.argv[1] + "/metrics.jsonl").readline())
b = json.loads(open(sys.argv[2] + "/metrics.jsonl").readline())
d = a["score"] - b["score"]  # 5 x the share of the 8 completions without EOS
assert d > 0 and abs(d * 8 / 5 - round(d * 8 / 5)) < 1e-4, (a["score"], b["score"])
assert json.load(open(sys.argv[2] + "/config.json"))["plm_task"]["missing_eos_penalty"] == 5
P

# ---- held-out prompts: evaluations, checkpoints (both models, both optimizers), the best
# models kept; a run resumed from a checkpoint (copied, or after SIGKILL) ends bit for bit
"$PLM" ppo "${pp[@]}" --validation-split 0.1 --eval-steps 2 --max-steps 4 --output-dir "$t/pv" --quiet >/dev/null \
    2>"$t/err" && python3 - "$t/pv" <<'P' && pass ppo_validation || fail ppo_validation "$(tail -2 "$t/err")"
import json, math, os, sys
d = sys.argv[1]
lines = [json.loads(l) for l in open(d + "/metrics.jsonl")]
evals = [l for l in lines if "eval_loss" in l]
assert [e["step"] for e in evals] == [2, 4], evals
for e in evals:
    assert e["eval_samples"] == 12 and all(math.isfinite(e[k]) for k in ("eval_reward", "eval_score", "eval_kl")), e
    assert abs(e["eval_reward"] - (e["eval_score"] - 0.05 * e["eval_kl"])) < 1e-5 and e["eval_loss"] == -e["eval_reward"], e
r = json.load(open(d + "/eval_results.json"))
assert r["task"] == "ppo" and abs(r["eval_reward"] - max(e["eval_reward"] for e in evals)) < 1e-12, (r, evals)
assert os.path.exists(d + "/checkpoint-4/value_state.safetensors") and os.path.isdir(d + "/checkpoint-4/value_model")
P
FT_CMD=ppo resume_check ppo_ 2 4 --model "$t/gpt" --reward-model "$t/rm" --train "$t/prompts.jsonl" \
    --per-device-train-batch-size 4 --num-ppo-epochs 2 --max-new-tokens 6 --learning-rate 1e-3 --validation-split 0.05 \
    --eval-steps 2 --max-steps 4 --save-total-limit 0 --quiet
cmp -s "$t/ppo_full/value_model/model.safetensors" "$t/ppo_cut/value_model/model.safetensors" &&
    cmp -s "$t/ppo_full/checkpoint-4/value_state.safetensors" "$t/ppo_cut/checkpoint-4/value_state.safetensors" &&
    pass ppo_resume_value_model_bit_exact || fail ppo_resume_value_model_bit_exact "value model or its state differs"

# ---- hostile input: one line, exit 3; bad options exit 2
base=(--model "$t/gpt" --output-dir "$t/x" --max-steps 1 --quiet)
expect ppo_no_reward_model 2 'reward-model DIR are required' -- "$PLM" ppo "${base[@]}" --train "$t/prompts.jsonl"
expect ppo_no_train 2 '--train FILE and --reward-model DIR are required' -- "$PLM" ppo "${base[@]}" \
    --reward-model "$t/rm"
for bad in "--kl-coef -1" "--cliprange 0" "--cliprange-value -0.1" "--vf-coef -1" "--gamma 1.5" "--lam -0.1" \
    "--num-ppo-epochs 0" "--num-mini-batches 0" "--missing-eos-penalty -1" "--temperature 0" "--max-new-tokens 0"; do
    # shellcheck disable=SC2086
    expect "ppo_bad_option_${bad%% *}" 2 'plm ppo: --train FILE' -- "$PLM" ppo "${base[@]}" --reward-model "$t/rm" \
        --train "$t/prompts.jsonl" $bad
done
expect ppo_resume_without_validation 2 'resume-from-checkpoint needs checkpoints' -- "$PLM" ppo "${base[@]}" \
    --reward-model "$t/rm" --train "$t/prompts.jsonl" --resume-from-checkpoint "$t/p1"
expect ppo_reward_model_missing 3 'nope' -- "$PLM" ppo "${base[@]}" --reward-model "$t/nope" --train "$t/prompts.jsonl"
expect ppo_reward_model_is_lm 3 'gpt/config.json: a language model, not a reward model' -- "$PLM" ppo "${base[@]}" \
    --reward-model "$t/gpt" --train "$t/prompts.jsonl"
expect ppo_value_model_missing 3 'vnope' -- "$PLM" ppo "${base[@]}" --reward-model "$t/rm" --value-model "$t/vnope" \
    --train "$t/prompts.jsonl"
expect ppo_value_model_is_lm 3 'gpt/config.json: a language model, not a reward model' -- "$PLM" ppo "${base[@]}" \
    --reward-model "$t/rm" --value-model "$t/gpt" --train "$t/prompts.jsonl"
expect ppo_policy_not_causal 3 'needs a causal language model' -- "$PLM" ppo --model "$t/rm" --output-dir "$t/x" \
    --max-steps 1 --quiet --reward-model "$t/rm" --train "$t/prompts.jsonl"
expect ppo_missing_prompts 3 'nope.jsonl' -- "$PLM" ppo "${base[@]}" --reward-model "$t/rm" --train "$t/nope.jsonl"
printf '{"prompt": "a"}\n{"prompt": \n' >"$t/pbad.jsonl"
expect ppo_bad_json 3 'pbad.jsonl:2: bad JSON' -- "$PLM" ppo "${base[@]}" --reward-model "$t/rm" --train "$t/pbad.jsonl"
expect ppo_prompt_too_long 3 'prompts.jsonl:1: the prompt has [0-9]+ tokens, leaving no room for a completion within 6' \
    -- "$PLM" ppo "${base[@]}" --reward-model "$t/rm" --train "$t/prompts.jsonl" --max-seq-length 6
