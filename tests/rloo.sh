#!/usr/bin/env bash
# plm rloo end to end on a tiny GPT-2 made here in seconds (ft_lib.bash's tiny_model) and a
# reward model trained from it with plm reward on reversal preferences: a run writes the
# policy (a GPT2LMHeadModel whose config.json records rloo's settings), metrics.jsonl with
# one line per step (reward, score, kl, advantage, completion_length; kl 0 at the first
# step, where the policy is the reference), loss.svg; the same seed gives the same run bit
# for bit; plm generate reads the result. Hostile input: a missing --reward-model, a
# reward model that is a language model or has another tokenizer (another vocabulary
# size, or the same size with other ids), bad prompt files, a prompt that leaves no room
# for a completion: one line naming the file (and line), exit 3; bad options exit 2.
# (The loss, the weights and learning: test_rloo.c.)
set -u
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
source "$(dirname "$0")/ft_lib.bash"

"$PLM" rloo --help >"$t/out" 2>&1 && grep -q "usage: plm rloo" "$t/out" && grep -q -- "--reward-model" "$t/out" &&
    grep -q -- "--rloo-k" "$t/out" && grep -q -- "--beta" "$t/out" && grep -q -- "--max-new-tokens" "$t/out" &&
    pass help_rloo || fail help_rloo "no usage"

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
with open(d + "/other.txt", "w") as f:
    for i in range(300):
        f.write("".join(r.choice("0123456789+-*/=") for _ in range(40)) + "\n")
P
tiny_model gpt bpe 300 64
"$PLM" reward --model "$t/gpt" --train "$t/pref.jsonl" --output-dir "$t/rm" --max-steps 10 --learning-rate 1e-3 \
    --quiet >/dev/null 2>"$t/err" && pass rloo_reward_model || fail rloo_reward_model "$(tail -2 "$t/err")"

# ---- a run: 6 steps of 4 prompts x k 3, up to 8 new tokens
rl=(--model "$t/gpt" --reward-model "$t/rm" --train "$t/prompts.jsonl" --per-device-train-batch-size 4 --rloo-k 3
    --max-new-tokens 8 --max-steps 6 --learning-rate 1e-3)
"$PLM" rloo "${rl[@]}" --output-dir "$t/p1" >"$t/out" 2>"$t/err" && pass rloo_runs || fail rloo_runs "$(tail -3 "$t/err")"
grep -qE '^rloo: 120 prompts \(longest [0-9]+ tokens\), 0 validation; k 3, beta 0.05, up to 8 new tokens; template plain; policy GPT2LMHeadModel' \
    "$t/err" && pass rloo_reports || fail rloo_reports "$(head -3 "$t/err")"
python3 - "$t/p1" <<'P' && pass rloo_outputs || fail rloo_outputs "see above"
import json, math, os, sys
d = sys.argv[1]
c = json.load(open(d + "/config.json"))
assert c["architectures"] == ["GPT2LMHeadModel"], c["architectures"]
pt = c["plm_task"]
assert pt["type"] == "rloo" and pt["rloo_k"] == 3 and abs(pt["beta"] - 0.05) < 1e-7 and pt["max_new_tokens"] == 8, pt
assert pt["reward_model"].endswith("/rm") and pt["chat_template"] == "plain", pt
steps = [json.loads(l) for l in open(d + "/metrics.jsonl")]
assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6], [s["step"] for s in steps]
for s in steps:
    for k in ("loss", "reward", "score", "kl", "advantage", "completion_length", "learning_rate", "grad_norm"):
        assert k in s and math.isfinite(s[k]), (k, s)
    assert 1 <= s["completion_length"] <= 8 and s["advantage"] >= 0, s
    assert abs(s["reward"] - (s["score"] - 0.05 * s["kl"])) < 1e-5 * max(1, abs(s["reward"])), s
assert steps[0]["kl"] == 0, steps[0]
assert abs(steps[0]["learning_rate"] - 1e-3) < 1e-9, steps[0]
assert os.path.getsize(d + "/loss.svg") > 0 and os.path.exists(d + "/tokenizer.json")
P
"$PLM" rloo "${rl[@]}" --output-dir "$t/p2" --quiet >/dev/null 2>"$t/err" && cmp -s "$t/p1/model.safetensors" \
    "$t/p2/model.safetensors" && [[ $(strip_elapsed "$t/p1/metrics.jsonl") == "$(strip_elapsed "$t/p2/metrics.jsonl")" ]] &&
    pass rloo_reproducible || fail rloo_reproducible "$(tail -2 "$t/err") model or metrics differ"
"$PLM" rloo "${rl[@]}" --output-dir "$t/p3" --seed 7 --quiet >/dev/null 2>"$t/err" &&
    ! cmp -s "$t/p1/model.safetensors" "$t/p3/model.safetensors" && pass rloo_seed_matters ||
    fail rloo_seed_matters "$(tail -2 "$t/err") another seed gave the same model"
"$PLM" generate --model "$t/p1" --prompt "reverse: a b c" --max-new-tokens 4 >"$t/out" 2>"$t/err" &&
    pass rloo_model_generates || fail rloo_model_generates "$(tail -2 "$t/err")"

# ---- held-out prompts: evaluations with eval_reward / eval_score / eval_kl, checkpoints, the
# best model kept; a run resumed from a checkpoint (copied, or after SIGKILL) ends bit for bit
"$PLM" rloo "${rl[@]}" --validation-split 0.1 --eval-steps 3 --output-dir "$t/pv" --quiet >/dev/null 2>"$t/err" &&
    python3 - "$t/pv" <<'P' && pass rloo_validation || fail rloo_validation "$(tail -2 "$t/err")"
import json, math, os, sys
d = sys.argv[1]
lines = [json.loads(l) for l in open(d + "/metrics.jsonl")]
evals = [l for l in lines if "eval_loss" in l]
assert [e["step"] for e in evals] == [3, 6], evals
for e in evals:
    assert e["eval_samples"] == 12 and all(math.isfinite(e[k]) for k in ("eval_reward", "eval_score", "eval_kl")), e
r = json.load(open(d + "/eval_results.json"))
assert r["task"] == "rloo" and abs(r["eval_reward"] - max(e["eval_reward"] for e in evals)) < 1e-12, (r, evals)
assert os.path.isdir(d + "/checkpoint-6")
P
"$PLM" rloo "${rl[@]}" --validation-split 0.1 --max-steps 1 --output-dir "$t/pv2" >/dev/null 2>"$t/err"
grep -qE '^rloo: 108 prompts .*, 12 validation;' "$t/err" && pass rloo_validation_reported ||
    fail rloo_validation_reported "$(head -2 "$t/err")"
FT_CMD=rloo resume_check rloo_ 2 4 --model "$t/gpt" --reward-model "$t/rm" --train "$t/prompts.jsonl" \
    --per-device-train-batch-size 4 --rloo-k 2 --max-new-tokens 6 --learning-rate 1e-3 --validation-split 0.05 \
    --eval-steps 2 --max-steps 4 --save-total-limit 0 --quiet

# ---- hostile input: one line naming the file (and line), exit 3; bad options exit 2
base=(--model "$t/gpt" --output-dir "$t/x" --max-steps 1 --quiet)
printf '{"prompt": "a"}\n{"prompt": \n' >"$t/pbad.jsonl"
expect rloo_no_reward_model 2 'reward-model DIR are required' -- "$PLM" rloo "${base[@]}" --train "$t/prompts.jsonl"
expect rloo_no_train 2 '--train FILE and --reward-model DIR are required' -- "$PLM" rloo "${base[@]}" \
    --reward-model "$t/rm"
expect rloo_k_one 2 'rloo-k >= 2' -- "$PLM" rloo "${base[@]}" --reward-model "$t/rm" --train "$t/prompts.jsonl" \
    --rloo-k 1
expect rloo_negative_beta 2 'beta >= 0' -- "$PLM" rloo "${base[@]}" --reward-model "$t/rm" --train \
    "$t/prompts.jsonl" --beta -1
expect rloo_resume_without_validation 2 'resume-from-checkpoint needs checkpoints' -- "$PLM" rloo "${base[@]}" --reward-model "$t/rm" \
    --train "$t/prompts.jsonl" --resume-from-checkpoint "$t/p1"
expect rloo_validation_both 2 'validation or --validation-split' -- "$PLM" rloo "${base[@]}" --reward-model \
    "$t/rm" --train "$t/prompts.jsonl" --validation "$t/prompts.jsonl" --validation-split 0.1
expect rloo_bad_validation 3 'pbad.jsonl:2: bad JSON' -- "$PLM" rloo "${base[@]}" --reward-model "$t/rm" --train \
    "$t/prompts.jsonl" --validation "$t/pbad.jsonl"
expect rloo_reward_model_missing 3 'nope' -- "$PLM" rloo "${base[@]}" --reward-model "$t/nope" --train \
    "$t/prompts.jsonl"
expect rloo_reward_model_is_lm 3 'gpt/config.json: a language model, not a reward model' -- "$PLM" rloo "${base[@]}" \
    --reward-model "$t/gpt" --train "$t/prompts.jsonl"
# a reward model with another vocabulary size: another tiny GPT-2 (vocab 280) and its reward model
mv "$t/gpt" "$t/gpt300"
tiny_model gpt bpe 280 64
"$PLM" reward --model "$t/gpt" --train "$t/pref.jsonl" --output-dir "$t/rm280" --max-steps 1 --quiet >/dev/null 2>&1
mv "$t/gpt" "$t/gpt280" && mv "$t/gpt300" "$t/gpt"
expect rloo_reward_model_other_vocab 3 'rm280: the reward model.s vocabulary \(280 ids.*is not the policy.s \(300' -- \
    "$PLM" rloo "${base[@]}" --reward-model "$t/rm280" --train "$t/prompts.jsonl"
# the same size, other ids: the reward model with the policy's tokenizer, the ids of "a" and "b" (and " a", " b") swapped
cp -r "$t/rm" "$t/rmo"
python3 - "$t/rmo/tokenizer.json" <<'P'
import json, sys
j = json.load(open(sys.argv[1]))
v = j["model"]["vocab"]
for a, b in (("a", "b"), ("\u0120a", "\u0120b")):  # also with GPT-2's space mark
    if a in v and b in v:
        v[a], v[b] = v[b], v[a]
json.dump(j, open(sys.argv[1], "w"))
P
expect rloo_reward_model_other_ids 3 'rmo: the reward model.s tokenizer is not the policy.s \(.*prompts.jsonl:1 encodes' \
    -- "$PLM" rloo "${base[@]}" --reward-model "$t/rmo" --train "$t/prompts.jsonl"
printf '{"prompt": "a"}\n{"response": "b"}\n' >"$t/noprompt.jsonl"
expect rloo_bad_json 3 'pbad.jsonl:2: bad JSON' -- "$PLM" rloo "${base[@]}" --reward-model "$t/rm" --train "$t/pbad.jsonl"
expect rloo_no_prompt 3 'noprompt.jsonl:2: no field "prompt"' -- "$PLM" rloo "${base[@]}" --reward-model "$t/rm" \
    --train "$t/noprompt.jsonl"
expect rloo_missing_file 3 'nope.jsonl' -- "$PLM" rloo "${base[@]}" --reward-model "$t/rm" --train "$t/nope.jsonl"
expect rloo_prompt_too_long 3 'prompts.jsonl:1: the prompt has [0-9]+ tokens, leaving no room for a completion within 6' \
    -- "$PLM" rloo "${base[@]}" --reward-model "$t/rm" --train "$t/prompts.jsonl" --max-seq-length 6
