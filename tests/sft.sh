#!/usr/bin/env bash
# plm sft end to end on a tiny GPT-2 made here in seconds (a byte-level BPE and 30 CLM
# steps on the instructions' text): a run with a validation split writes the model,
# metrics.jsonl (eval loss, perplexity and token accuracy on the response tokens, the
# majority token's accuracy), eval_results.json, loss.svg and config.json recording the
# template; truncated examples are counted; a run resumed from a checkpoint (copied, or
# after SIGKILL) ends bit for bit as the uninterrupted one; plm generate --chat answers in
# the template the model was trained with; hostile files get one line naming file:line
# and exit 3, bad options exit 2. plm dpo likewise, with each --loss-type's first-step loss
# (policy = reference). --packing: the padded run's first-step loss on one batch of the same
# examples (dropout off), learning, the efficiency line. (Learning itself: tests/test_sft.c;
# packed = padded loss and gradients: tests/test_packing.c.)
set -u
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
source "$(dirname "$0")/ft_lib.bash"

"$PLM" sft --help >"$t/out" 2>&1 && grep -q "usage: plm sft" "$t/out" && grep -q -- "--template" "$t/out" &&
    grep -q -- "--validation-split" "$t/out" && grep -q "default 8)" "$t/out" && pass help_sft || fail help_sft "no usage"
"$PLM" generate --help >"$t/out" 2>&1 && grep -q -- "--chat" "$t/out" && pass help_generate_chat ||
    fail help_generate_chat "no --chat"

# ---- reversal instructions (a quarter as chat messages with a system turn) and a tiny GPT-2
python3 - "$t" <<'P'
import json, random, sys
d = sys.argv[1]
r = random.Random(5)
with open(d + "/sft.jsonl", "w") as f, open(d + "/text.txt", "w") as tx:
    for i in range(400):
        w = [r.choice("abcdefgh") for _ in range(r.randint(3, 4))]
        p, a = "reverse: " + " ".join(w), " ".join(reversed(w))
        if i % 4 == 0:
            m = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": p},
                 {"role": "assistant", "content": a}]
            f.write(json.dumps({"messages": m}) + "\n")
        else:
            f.write(json.dumps({"prompt": p, "response": a}) + "\n")
        tx.write(f"User: {p}\nAssistant: {a}\n")
P
tiny_model gpt bpe 300 64

# ---- a run with a held-out quarter, cut at 14 tokens
sft=(--model "$t/gpt" --train "$t/sft.jsonl" --validation-split 0.25 --per-device-train-batch-size 16
    --learning-rate 1e-3)
"$PLM" sft "${sft[@]}" --output-dir "$t/run" --num-train-epochs 2 --max-seq-length 14 >"$t/out" 2>"$t/err" &&
    pass sft_runs || fail sft_runs "$(tail -3 "$t/err")"
grep -qE '^sft: 300 training examples \([0-9]+ response tokens\), 100 validation; template plain' "$t/err" &&
    pass sft_reports_data || fail sft_reports_data "$(head -3 "$t/err")"
n=$(sed -nE 's/^sft: ([0-9]+) training and 0 validation examples truncated to 14 tokens.*/\1/p' "$t/err")
[[ -n $n && $n -gt 0 && $n -le 400 ]] && pass sft_counts_truncated || fail sft_counts_truncated "$(grep truncated "$t/err")"
grep -q "^sft seed 42: best eval_perplexity" "$t/out" && pass sft_prints_best || fail sft_prints_best "$(cat "$t/out")"
python3 - "$t/run" <<'P' && pass sft_outputs || fail sft_outputs "see above"
import json, math, os, sys
d = sys.argv[1]
c = json.load(open(d + "/config.json"))
assert c["architectures"] == ["GPT2LMHeadModel"], c["architectures"]
pt = c["plm_task"]
assert pt["type"] == "sft" and pt["chat_template"] == "plain" and pt["max_seq_length"] == 14, pt
lines = [json.loads(l) for l in open(d + "/metrics.jsonl")]
evals = [l for l in lines if "eval_loss" in l]
assert [e["step"] for e in evals] == [19, 38], [e["step"] for e in evals]  # 300 / 16 -> 19 steps per epoch
for e in evals:
    assert abs(math.exp(e["eval_loss"]) - e["eval_perplexity"]) < 1e-6 * e["eval_perplexity"], e
    assert 0 <= e["eval_token_accuracy"] <= 1 and 0 < e["eval_majority_token_accuracy"] < 1, e
    assert e["eval_samples"] == 100, e
steps = [l for l in lines if "loss" in l and "eval_loss" not in l]
assert steps[0]["step"] == 1 and steps[-1]["step"] == 38 and all(math.isfinite(s["loss"]) for s in steps)
# TRL's defaults: no warmup (the first step runs at the peak rate), linear decay
assert abs(steps[0]["learning_rate"] - 1e-3) < 1e-9, steps[0]
r = json.load(open(d + "/eval_results.json"))
assert r["task"] == "sft" and "eval_token_accuracy" in r and r["eval_samples"] == 100, r
assert os.path.getsize(d + "/loss.svg") > 0 and os.path.exists(d + "/tokenizer.json")
P
"$PLM" sft "${sft[@]}" --output-dir "$t/run64" --max-steps 2 --max-seq-length 64 --quiet >"$t/out" 2>"$t/err" &&
    [[ ! -s $t/err ]] && pass sft_quiet || fail sft_quiet "$(head -3 "$t/err")"

# ---- --packing: documents packed into rows of --max-seq-length, each attending to itself
# only with its own positions. Without dropout, one batch holding all 24 examples has the
# same first-step loss (mean over the response tokens) packed as padded one per row.
python3 - "$t/gpt" "$t/gpt0" <<'P'
import json, shutil, sys
shutil.copytree(sys.argv[1], sys.argv[2])
c = json.load(open(sys.argv[2] + "/config.json"))
for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
    c[k] = 0.0
json.dump(c, open(sys.argv[2] + "/config.json", "w"))
P
one=(--model "$t/gpt0" --train "$t/sft.jsonl" --max-train-samples 24 --per-device-train-batch-size 24 --max-steps 1
    --max-seq-length 64 --quiet)
"$PLM" sft "${one[@]}" --output-dir "$t/pad1" >"$t/out" 2>"$t/err" &&
    "$PLM" sft "${one[@]}" --packing --output-dir "$t/pack1" >"$t/out" 2>"$t/err" &&
    python3 - "$t/pad1" "$t/pack1" <<'P' && pass sft_packing_same_first_loss || fail sft_packing_same_first_loss "$(tail -3 "$t/err")"
import json, sys
a, b = ([json.loads(l) for l in open(d + "/metrics.jsonl") if '"loss"' in l][0] for d in sys.argv[1:3])
rel = abs(a["loss"] - b["loss"]) / a["loss"]
print(f"first-step loss padded {a['loss']:.7f} packed {b['loss']:.7f} relerr {rel:.2e}")
assert rel <= 1e-5 and b["packing_efficiency"] > 0, (a, b)
P
"$PLM" sft "${sft[@]}" --packing --output-dir "$t/pack" --max-seq-length 64 --num-train-epochs 3 >"$t/out" 2>"$t/err" &&
    grep -qE '^sft: packed 300 examples into [0-9]+ rows of 64 tokens: packing efficiency 0\.[0-9]+' "$t/out" &&
    python3 - "$t/pack" "$t/out" <<'P' && pass sft_packing_learns || fail sft_packing_learns "$(tail -3 "$t/err")"
import json, re, sys
lines = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
steps = [l for l in lines if "loss" in l and "eval_loss" not in l]
evals = [l for l in lines if "eval_loss" in l]
eff = float(re.search(r"packing efficiency ([0-9.]+)", open(sys.argv[2]).read()).group(1))
print(f"packing efficiency {eff:.4f}; {len(steps)} steps; loss {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}; "
      f"eval_loss {evals[0]['eval_loss']:.3f} -> {evals[-1]['eval_loss']:.3f}")
assert eff > 0.8 and all(0 < s["packing_efficiency"] <= 1 for s in steps)
assert evals[-1]["eval_samples"] == 100 and evals[-1]["eval_loss"] < evals[0]["eval_loss"]
assert steps[-1]["loss"] < steps[0]["loss"]
P

# ---- resume: checkpoints at every evaluation (5, 10), 15 steps
FT_CMD=sft resume_check sft_ 5 15 "${sft[@]}" --max-seq-length 32 --eval-steps 5 --max-steps 15 \
    --save-total-limit 0 --quiet

# ---- generate --chat: the template from config.json, the answer only, stops at EOS
"$PLM" generate --model "$t/run" --chat --greedy --prompt "reverse: a b c" --max-new-tokens 6 --json --quiet \
    >"$t/gen" 2>"$t/err" && python3 - "$t/gen" "$t/run/tokenizer.json" <<'P' && pass generate_chat || fail generate_chat "$(cat "$t/err")"
import json, sys
g = json.loads(open(sys.argv[1]).read())
vocab = json.load(open(sys.argv[2]))["model"]["vocab"]
inv = {v: k for k, v in vocab.items()}
toks = "".join(inv[i] for i in g["prompt_ids"]).replace("\u0120", " ").replace("\u010a", "\n")
assert toks == "User: reverse: a b c\nAssistant:", repr(toks)
assert g["prompt"] == "reverse: a b c" and 1 <= len(g["ids"]) <= 6, g
P
"$PLM" generate --model "$t/run" --chat --template chatml --greedy --prompt "reverse: a b" \
    --max-new-tokens 3 --quiet >"$t/out" 2>"$t/err" && pass generate_chat_chatml ||
    fail generate_chat_chatml "$(cat "$t/err")"
"$PLM" generate --model "$t/run" --chat --system "Answer briefly." --greedy --prompt "reverse: a b" --json \
    --max-new-tokens 3 --quiet >"$t/gen" 2>"$t/err" && python3 - "$t/gen" "$t/run/tokenizer.json" <<'P' &&
import json, sys
g = json.loads(open(sys.argv[1]).read())
inv = {v: k for k, v in json.load(open(sys.argv[2]))["model"]["vocab"].items()}
toks = "".join(inv[i] for i in g["prompt_ids"]).replace("\u0120", " ").replace("\u010a", "\n")
assert toks == "System: Answer briefly.\nUser: reverse: a b\nAssistant:", repr(toks)
P
    pass generate_chat_system || fail generate_chat_system "$(cat "$t/err")"

# ---- hostile input: one line naming the file (and line), exit 3; bad options exit 2
: >"$t/empty.jsonl"
printf '{"prompt": "a", "response": "b"}\n{"prompt": "a",\n' >"$t/bad.jsonl"
printf '{"prompt": "a"}\n' >"$t/nofield.jsonl"
printf '{"prompt": "a", "response": "b"}\n\n{"prompt": "a", "response": ""}\n' >"$t/emptyresp.jsonl"
printf '{"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}\n' >"$t/role.jsonl"
base=(--output-dir "$t/x" --quiet)
expect sft_empty_file 3 'empty.jsonl: no examples' -- "$PLM" sft "${base[@]}" --model "$t/gpt" --train "$t/empty.jsonl"
expect sft_bad_json 3 'bad.jsonl:2: bad JSON' -- "$PLM" sft "${base[@]}" --model "$t/gpt" --train "$t/bad.jsonl"
expect sft_missing_field 3 'nofield.jsonl:1: no field "response"' -- "$PLM" sft "${base[@]}" --model "$t/gpt" --train "$t/nofield.jsonl"
expect sft_empty_response 3 'emptyresp.jsonl:3: "response" is empty' -- "$PLM" sft "${base[@]}" --model "$t/gpt" \
    --train "$t/emptyresp.jsonl"
expect sft_bad_role 3 'role.jsonl:1: messages\[1\] has role "robot"' -- "$PLM" sft "${base[@]}" --model "$t/gpt" --train "$t/role.jsonl"
expect sft_bad_validation 3 'bad.jsonl:2: bad JSON' -- "$PLM" sft "${base[@]}" --model "$t/gpt" --train "$t/sft.jsonl" \
    --validation "$t/bad.jsonl"
expect sft_missing_file 3 'nope.jsonl' -- "$PLM" sft "${base[@]}" --model "$t/gpt" --train "$t/nope.jsonl"
expect sft_bad_template 2 'template plain or chatml' -- "$PLM" sft "${base[@]}" --model "$t/gpt" --train "$t/sft.jsonl" --template llama
expect sft_split_and_file 2 'not both' -- "$PLM" sft "${base[@]}" --model "$t/gpt" --train "$t/sft.jsonl" --validation "$t/sft.jsonl" \
    --validation-split 0.1
expect sft_no_train 2 '--train FILE is required' -- "$PLM" sft "${base[@]}" --model "$t/gpt"
expect sft_no_model 2 '--model DIR is required' -- "$PLM" sft --train "$t/sft.jsonl"
# every response cut away by --max-seq-length: no labelled token, which trained on NaN losses and
# wrote "eval_loss": nan (not JSON) with exit 0
expect sft_all_responses_cut 3 'sft.jsonl: no training example keeps a response token within its first 4 tokens' -- \
    "$PLM" sft "${base[@]}" --model "$t/gpt" --train "$t/sft.jsonl" --max-seq-length 4
printf '{"prompt": "reverse: a b c d e f g h a b c d e f g h a b c d", "response": "a"}\n' >"$t/longprompt.jsonl"
expect sft_validation_responses_cut 3 'longprompt.jsonl: no validation example keeps a response token' -- \
    "$PLM" sft "${base[@]}" --model "$t/gpt" --train "$t/sft.jsonl" --validation "$t/longprompt.jsonl" --max-seq-length 14
expect generate_template_without_chat 2 'go with --chat' -- "$PLM" generate --model "$t/run" --prompt a --template plain
tiny_model bert wordpiece 300 64
expect sft_bidirectional_model 3 'bert/config.json: .*sft needs a causal language model' -- "$PLM" sft "${base[@]}" \
    --model "$t/bert" --train "$t/sft.jsonl"

# ---- plm dpo: chosen the reversed letters, rejected them unreversed
"$PLM" dpo --help >"$t/out" 2>&1 && grep -q "usage: plm dpo" "$t/out" && grep -q -- "--beta" "$t/out" && grep -q -- "--loss-type" "$t/out" &&
    pass help_dpo || fail help_dpo "no usage"
python3 - "$t" <<'P'
import json, random, sys
r = random.Random(6)
with open(sys.argv[1] + "/pref.jsonl", "w") as f:
    n = 0
    while n < 200:
        w = [r.choice("abcdefgh") for _ in range(r.randint(3, 4))]
        if w == w[::-1]:
            continue
        f.write(json.dumps({"prompt": "reverse: " + " ".join(w), "chosen": " ".join(reversed(w)),
                            "rejected": " ".join(w)}) + "\n")
        n += 1
P
dpo=(--model "$t/gpt" --train "$t/pref.jsonl" --validation-split 0.2 --per-device-train-batch-size 8
    --learning-rate 1e-3)
"$PLM" dpo "${dpo[@]}" --output-dir "$t/dpo" --num-train-epochs 1 >"$t/out" 2>"$t/err" && pass dpo_runs ||
    fail dpo_runs "$(tail -3 "$t/err")"
grep -qE '^dpo: 160 training pairs, 40 validation; template plain, beta 0.1; .*reference log-probs of 400 sequences' \
    "$t/err" && pass dpo_reports_data || fail dpo_reports_data "$(head -3 "$t/err")"
python3 - "$t/dpo" <<'P' && pass dpo_outputs || fail dpo_outputs "see above"
import json, math, sys
d = sys.argv[1]
c = json.load(open(d + "/config.json"))
assert c["architectures"] == ["GPT2LMHeadModel"] and c["plm_task"]["type"] == "dpo", c
assert abs(c["plm_task"]["beta"] - 0.1) < 1e-7 and c["plm_task"]["chat_template"] == "plain", c["plm_task"]
assert c["plm_task"]["loss_type"] == "sigmoid", c["plm_task"]
lines = [json.loads(l) for l in open(d + "/metrics.jsonl")]
steps = [l for l in lines if "loss" in l and "eval_loss" not in l]
evals = [l for l in lines if "eval_loss" in l]
# the first step's policy is the reference: every reward 0, the loss log 2
s0 = steps[0]
assert s0["step"] == 1 and abs(s0["loss"] - math.log(2)) < 1e-4 and abs(s0["rewards/margins"]) < 1e-4, s0
for k in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "logps/chosen", "logps/rejected"):
    assert k in s0 and math.isfinite(s0[k]), k
assert [e["step"] for e in evals] == [20], [e["step"] for e in evals]  # 160 pairs / 8
e = evals[-1]
assert e["eval_samples"] == 40 and 0 <= e["eval_rewards/accuracies"] <= 1 and "eval_rewards/margins" in e, e
r = json.load(open(d + "/eval_results.json"))
assert r["task"] == "dpo" and "eval_rewards/accuracies" in r, r
P
# --max-eval-samples caps the held-out pairs of --validation-split too (it was ignored), as in plm sft
"$PLM" dpo "${dpo[@]}" --output-dir "$t/dpo5" --max-steps 1 --max-eval-samples 5 --max-seq-length 80 --quiet \
    >"$t/out" 2>"$t/err" && grep -q '"eval_samples": 5}' "$t/dpo5/metrics.jsonl" &&
    grep -q "max-seq-length 80 is beyond the model's 64 positions; using 64" "$t/err" && pass dpo_max_eval_samples ||
    fail dpo_max_eval_samples "$(cat "$t/err"; grep eval "$t/dpo5/metrics.jsonl")"
FT_CMD=dpo resume_check dpo_ 5 15 "${dpo[@]}" --eval-steps 5 --max-steps 15 --save-total-limit 0 --quiet
printf '{"prompt": "a", "chosen": "b"}\n' >"$t/nochosen.jsonl"
expect dpo_missing_field 3 'nochosen.jsonl:1: no field "rejected"' -- "$PLM" dpo "${base[@]}" --model "$t/gpt" \
    --train "$t/nochosen.jsonl"
printf '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": \n' >"$t/pbad.jsonl"
expect dpo_bad_json 3 'pbad.jsonl:2: bad JSON' -- "$PLM" dpo "${base[@]}" --model "$t/gpt" --train "$t/pbad.jsonl"
expect dpo_all_responses_cut 3 'pref.jsonl: no training pair keeps a response token within its first 4 tokens' -- \
    "$PLM" dpo "${base[@]}" --model "$t/gpt" --train "$t/pref.jsonl" --max-seq-length 4
expect dpo_beta 2 'beta > 0' -- "$PLM" dpo "${base[@]}" --model "$t/gpt" --train "$t/pref.jsonl" --beta 0
# 1e39 is inf as a float: refused with the options, not after the reference log-probs were computed
expect dpo_beta_overflow 2 'beta > 0' -- "$PLM" dpo "${base[@]}" --model "$t/gpt" --train "$t/pref.jsonl" --beta 1e39
expect dpo_bidirectional_model 3 'bert/config.json: .*dpo needs a causal language model' -- "$PLM" dpo "${base[@]}" \
    --model "$t/bert" --train "$t/pref.jsonl"
# --loss-type (TRL's): at the first step the policy is the reference, z = 0: hinge 1, ipo (1 / (2 beta))^2 = 25
for lt in hinge ipo; do
    "$PLM" dpo "${dpo[@]}" --output-dir "$t/dpo_$lt" --max-steps 2 --loss-type $lt --quiet >"$t/out" 2>"$t/err" &&
        python3 - "$t/dpo_$lt" $lt <<'P' && pass dpo_loss_type_$lt || fail dpo_loss_type_$lt "$(tail -2 "$t/err")"
import json, sys
d, lt = sys.argv[1], sys.argv[2]
c = json.load(open(d + "/config.json"))
assert c["plm_task"]["loss_type"] == lt, c["plm_task"]
s0 = json.loads(open(d + "/metrics.jsonl").readline())
want = {"hinge": 1.0, "ipo": 25.0}[lt]
assert s0["step"] == 1 and abs(s0["loss"] - want) < 1e-3 * want and abs(s0["rewards/margins"]) < 1e-4, s0
P
done
expect dpo_bad_loss_type 2 'loss-type sigmoid, hinge or ipo' -- "$PLM" dpo "${base[@]}" --model "$t/gpt" \
    --train "$t/pref.jsonl" --loss-type kto

# ---- bench/sft_packing.sh (the padded vs packed speed table) runs end to end on 40 examples
if N=40 ROUNDS=1 BUILD=$BUILD bash bench/sft_packing.sh >"$t/bench" 2>"$t/bench.err" &&
    grep -qE '^\| packed \| [0-9]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+x \|$' "$t/bench" &&
    grep -q "mean efficiency 0\.[0-9]" "$t/bench"; then
    pass sft_packing_bench_smoke
else
    fail sft_packing_bench_smoke "$(tail -3 "$t/bench.err" "$t/bench" | tr '\n' ' ')"
fi
