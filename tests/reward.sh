#!/usr/bin/env bash
# plm reward end to end on a tiny GPT-2 made here in seconds (ft_lib.bash's tiny_model: a
# byte-level BPE and 30 CLM steps): a run on reversal preferences writes a
# GPT2ForSequenceClassification with one output (HF's names: score.weight, no bias;
# pad_token_id for HF's last-token rule), metrics.jsonl with TRL's reward statistics,
# eval_results.json and loss.svg; plm reward --score gives one reward per conversation, the
# rewards the evaluation read (its accuracy and margin recomputed from them); a reward model
# trains further; a run resumed from a checkpoint (copied, or after SIGKILL) ends bit for bit
# as the uninterrupted one; hostile files and mismatched checkpoints get one line naming the
# file and exit 3, bad options exit 2. (Parity: tests/parity.sh; learning: test_reward.c.)
set -u
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
source "$(dirname "$0")/ft_lib.bash"

"$PLM" reward --help >"$t/out" 2>&1 && grep -q "usage: plm reward" "$t/out" &&
    grep -q -- "--center-rewards-coefficient" "$t/out" && grep -q -- "--score" "$t/out" && grep -q "default 8)" "$t/out" &&
    pass help_reward || fail help_reward "no usage"
"$PLM" reward --score x --help >"$t/out" 2>&1 && grep -q -- "--output" "$t/out" && grep -q "one reward per line" \
    "$t/out" && pass help_reward_score || fail help_reward_score "$(head -3 "$t/out")"

# ---- reversal preferences (chosen the reversed letters, rejected them unreversed), a tiny GPT-2
python3 - "$t" <<'P'
import json, random, sys
d = sys.argv[1]
r = random.Random(6)
pairs = []
while len(pairs) < 240:
    w = [r.choice("abcdefgh") for _ in range(r.randint(3, 4))]
    if w != w[::-1]:
        pairs.append(("reverse: " + " ".join(w), " ".join(reversed(w)), " ".join(w)))
with open(d + "/pref.jsonl", "w") as f, open(d + "/text.txt", "w") as tx:
    for p, c, j in pairs[:200]:
        f.write(json.dumps({"prompt": p, "chosen": c, "rejected": j}) + "\n")
        tx.write(f"User: {p}\nAssistant: {c}\n")
with open(d + "/val.jsonl", "w") as f, open(d + "/val_conv.jsonl", "w") as g:
    for p, c, j in pairs[200:]:
        f.write(json.dumps({"prompt": p, "chosen": c, "rejected": j}) + "\n")
        g.write(json.dumps({"prompt": p, "response": c}) + "\n")
        g.write(json.dumps({"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": j}]}) + "\n")
P
tiny_model gpt bpe 300 64

# ---- a run with a held-out fifth and the centring term
rw=(--model "$t/gpt" --train "$t/pref.jsonl" --per-device-train-batch-size 8 --learning-rate 1e-3)
"$PLM" reward "${rw[@]}" --validation-split 0.2 --output-dir "$t/rm" --num-train-epochs 1 \
    --center-rewards-coefficient 0.01 >"$t/out" 2>"$t/err" && pass reward_runs || fail reward_runs "$(tail -3 "$t/err")"
grep -qE '^reward: 160 training pairs, 40 validation; template plain; model GPT2ForSequenceClassification' "$t/err" &&
    grep -q "newly initialized: \[score.weight\]" "$t/err" && pass reward_reports_data ||
    fail reward_reports_data "$(head -3 "$t/err")"
grep -q "^reward seed 42: best eval_accuracy" "$t/out" && pass reward_prints_best || fail reward_prints_best "$(cat "$t/out")"
python3 - "$t/rm" <<'P' && pass reward_outputs || fail reward_outputs "see above"
import json, math, os, struct, sys
d = sys.argv[1]
c = json.load(open(d + "/config.json"))
assert c["architectures"] == ["GPT2ForSequenceClassification"], c["architectures"]
assert len(c["id2label"]) == 1 and c["pad_token_id"] == c["eos_token_id"], c
pt = c["plm_task"]
assert pt["type"] == "reward" and pt["chat_template"] == "plain" and abs(pt["center_rewards_coefficient"] - 0.01) < 1e-7, pt
raw = open(d + "/model.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8 : 8 + n])
assert h["score.weight"]["shape"] == [1, 64], h["score.weight"]
assert "score.bias" not in h and not any(k.startswith("lm_head") for k in h), sorted(h)
lines = [json.loads(l) for l in open(d + "/metrics.jsonl")]
steps = [l for l in lines if "loss" in l and "eval_loss" not in l]
evals = [l for l in lines if "eval_loss" in l]
assert [e["step"] for e in evals] == [20], [e["step"] for e in evals]  # 160 pairs / 8
for s in steps:
    assert math.isfinite(s["loss"]) and 0 <= s["accuracy"] <= 1 and s["min_reward"] <= s["mean_reward"] <= s["max_reward"], s
    assert "margin" in s, s
e = evals[-1]
assert e["eval_samples"] == 40 and 0 <= e["eval_accuracy"] <= 1 and "eval_margin" in e and "eval_mean_reward" in e, e
# no warmup (TRL's RewardConfig), the first step at the peak rate
assert abs(steps[0]["learning_rate"] - 1e-3) < 1e-9, steps[0]
r = json.load(open(d + "/eval_results.json"))
assert r["task"] == "reward" and "eval_accuracy" in r and r["eval_samples"] == 40, r
assert os.path.getsize(d + "/loss.svg") > 0 and os.path.exists(d + "/tokenizer.json")
P

# ---- --score: a validation file's pairs as conversations (chosen, then rejected) give the
# evaluation's accuracy and margin (the same token read, the same batches of 16 rows)
"$PLM" reward "${rw[@]}" --validation "$t/val.jsonl" --output-dir "$t/rmv" --max-steps 12 --quiet >/dev/null \
    2>"$t/err" && "$PLM" reward --score "$t/val_conv.jsonl" --model "$t/rmv" --quiet >"$t/scores" 2>"$t/err" &&
    python3 - "$t/rmv/eval_results.json" "$t/scores" <<'P' && pass reward_score_matches_eval || fail reward_score_matches_eval "$(tail -2 "$t/err")"
import json, math, sys
r = json.load(open(sys.argv[1]))
s = [float(x) for x in open(sys.argv[2]).read().split()]
assert len(s) == 80 and all(math.isfinite(x) for x in s), len(s)
acc = sum(s[2 * i] > s[2 * i + 1] for i in range(40)) / 40
margin = sum(s[2 * i] - s[2 * i + 1] for i in range(40)) / 40
assert abs(acc - r["eval_accuracy"]) < 1e-12, (acc, r)
assert abs(margin - r["eval_margin"]) <= 1e-5 * max(1.0, abs(margin)), (margin, r)
P
"$PLM" reward --score "$t/val_conv.jsonl" --model "$t/rmv" --output "$t/scores2" --per-device-eval-batch-size 16 \
    >"$t/out" 2>"$t/err" && cmp -s "$t/scores" "$t/scores2" && [[ ! -s $t/out ]] &&
    grep -q "reward: 80 conversations scored" "$t/err" && pass reward_score_output || fail reward_score_output "$(cat "$t/err")"
# a batch size beyond the file's 80 conversations: one batch of 80 (the same scores), no activations reserved
# for 10^8 rows
"$PLM" reward --score "$t/val_conv.jsonl" --model "$t/rmv" --quiet --per-device-eval-batch-size 80 >"$t/scores80" &&
    "$PLM" reward --score "$t/val_conv.jsonl" --model "$t/rmv" --quiet --per-device-eval-batch-size 100000000 \
        >"$t/scores4" 2>"$t/err" && cmp -s "$t/scores80" "$t/scores4" && pass reward_score_batch_beyond_file ||
    fail reward_score_batch_beyond_file "$(cat "$t/err")"
# --score=FILE (args.c takes --opt=value everywhere) scores too, rather than asking for --train
"$PLM" reward --score="$t/val_conv.jsonl" --model="$t/rmv" --quiet >"$t/scores3" 2>"$t/err" &&
    cmp -s "$t/scores" "$t/scores3" && pass reward_score_inline_value || fail reward_score_inline_value "$(cat "$t/err")"

# ---- a reward model trains further (its own head, not a new one)
"$PLM" reward --model "$t/rmv" --train "$t/pref.jsonl" --output-dir "$t/rm2" --max-steps 2 --quiet >"$t/out" 2>"$t/err" &&
    [[ ! -s $t/err ]] && pass reward_trains_further || fail reward_trains_further "$(head -3 "$t/err")"

# ---- resume: checkpoints at every evaluation (5, 10), 15 steps
FT_CMD=reward resume_check reward_ 5 15 "${rw[@]}" --validation-split 0.2 --eval-steps 5 --max-steps 15 \
    --save-total-limit 0 --quiet

# ---- hostile input: one line naming the file (and line), exit 3; bad options exit 2
base=(--output-dir "$t/x" --quiet)
printf '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": \n' >"$t/pbad.jsonl"
printf '{"prompt": "a", "chosen": "b"}\n' >"$t/nochosen.jsonl"
printf '{"prompt": "a", "chosen": "b", "rejected": ""}\n' >"$t/emptyrej.jsonl"
expect reward_bad_json 3 'pbad.jsonl:2: bad JSON' -- "$PLM" reward "${base[@]}" --model "$t/gpt" --train "$t/pbad.jsonl"
expect reward_missing_field 3 'nochosen.jsonl:1: no field "rejected"' -- "$PLM" reward "${base[@]}" --model "$t/gpt" \
    --train "$t/nochosen.jsonl"
expect reward_empty_response 3 'emptyrej.jsonl:1: "rejected" is empty' -- "$PLM" reward "${base[@]}" --model "$t/gpt" \
    --train "$t/emptyrej.jsonl"
expect reward_bad_validation 3 'pbad.jsonl:2: bad JSON' -- "$PLM" reward "${base[@]}" --model "$t/gpt" \
    --train "$t/pref.jsonl" --validation "$t/pbad.jsonl"
expect reward_missing_file 3 'nope.jsonl' -- "$PLM" reward "${base[@]}" --model "$t/gpt" --train "$t/nope.jsonl"
expect reward_all_responses_cut 3 'pref.jsonl: no training pair keeps a response token within its first 4 tokens' -- \
    "$PLM" reward "${base[@]}" --model "$t/gpt" --train "$t/pref.jsonl" --max-seq-length 4
expect reward_center_negative 2 'center-rewards-coefficient >= 0' -- "$PLM" reward "${base[@]}" --model "$t/gpt" \
    --train "$t/pref.jsonl" --center-rewards-coefficient -1
expect reward_no_train 2 '--train FILE is required' -- "$PLM" reward "${base[@]}" --model "$t/gpt"
expect reward_bad_template 2 'template plain or chatml' -- "$PLM" reward "${base[@]}" --model "$t/gpt" \
    --train "$t/pref.jsonl" --template llama
tiny_model bert wordpiece 300 64
expect reward_encoder_model 3 'bert/config.json: .*reward model needs a causal GPT-2' -- "$PLM" reward "${base[@]}" \
    --model "$t/bert" --train "$t/pref.jsonl"
# a checkpoint whose config.json says 3 labels while its score.weight has one row
cp -r "$t/rmv" "$t/rm3"
python3 - "$t/rm3/config.json" <<'P'
import json, sys
c = json.load(open(sys.argv[1]))
c["id2label"] = {str(i): f"LABEL_{i}" for i in range(3)}
c["label2id"] = {f"LABEL_{i}": i for i in range(3)}
for h in c.get("plm_heads", []):
    h["num_labels"] = 3
json.dump(c, open(sys.argv[1], "w"))
P
expect reward_mismatched_checkpoint 3 'rm3.*score.weight' -- "$PLM" reward "${base[@]}" --model "$t/rm3" \
    --train "$t/pref.jsonl"
# resuming from a checkpoint that is no reward model (a language model's): one line naming its config.json
expect reward_resume_not_reward 3 'gpt/config.json: a language model, not a reward model' -- "$PLM" reward "${base[@]}" \
    --model "$t/gpt" --train "$t/pref.jsonl" --resume-from-checkpoint "$t/gpt"
# --score: a reward model only, conversations only
expect reward_score_lm 3 'gpt/config.json: a language model, not a reward model' -- "$PLM" reward --score \
    "$t/val_conv.jsonl" --model "$t/gpt"
expect reward_score_pairs_file 3 'pref.jsonl:1: no field "response"' -- "$PLM" reward --score "$t/pref.jsonl" \
    --model "$t/rmv"
printf '{"prompt": "a", "response": "b"}\n{"prompt": "a",\n' >"$t/bad.jsonl"
expect reward_score_bad_json 3 'bad.jsonl:2: bad JSON' -- "$PLM" reward --score "$t/bad.jsonl" --model "$t/rmv"
# a reward model whose config.json names a template plm does not have: the file's fault (exit 3), not --template's
cp -r "$t/rmv" "$t/rmt"
python3 - "$t/rmt/config.json" <<'P'
import json, sys
c = json.load(open(sys.argv[1]))
c["plm_task"]["chat_template"] = "llama"
json.dump(c, open(sys.argv[1], "w"))
P
expect reward_score_config_template 3 'rmt/config.json: unknown plm_task.chat_template "llama"' -- "$PLM" reward \
    --score "$t/val_conv.jsonl" --model "$t/rmt"
expect reward_score_bad_template 2 'template plain or chatml' -- "$PLM" reward --score "$t/val_conv.jsonl" \
    --model "$t/rmv" --template llama
expect reward_score_no_model 2 '--score FILE needs --model DIR' -- "$PLM" reward --score "$t/bad.jsonl"
# plm predict / evaluate on a reward model point at plm reward --score
printf 'sentence\treverse: a b\n' >"$t/x.tsv"
expect reward_predict_points_to_score 3 'plm_task.type "reward".*plm reward --score FILE' -- "$PLM" predict \
    --model "$t/rmv" --test "$t/x.tsv" --output "$t/o.tsv"
