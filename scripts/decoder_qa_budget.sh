#!/usr/bin/env bash
# Is the GPT-2's SQuAD F1 below the first-k-words baseline in tests/finetune_tokens.sh
# (4.4 vs 6.7) a budget effect? The CI test gives the GPT-2 a quarter of the BERT's steps
# (1000 questions x 1 epoch vs 2000 x 2). This fine-tunes the same tiny BERT and GPT-2
# (tests/ft_lib.bash's tiny_model: 2 layers, width 64, 30 pretraining steps) on the same
# slices, both at the CI's GPT-2 budget and at the BERT's, and prints dev F1 / EM (first
# 500 questions of dev part 1) next to the baseline. Usage: bash scripts/decoder_qa_budget.sh
# [OUT_DIR]; BUILD, PLM_DATA as for the tests. A few minutes on a quiet 2-core machine.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
DATA=${PLM_DATA:-../shared/data}
CONLL=$DATA/conll2003
SQUAD=$DATA/squad-v1.1
t=${1:-$(mktemp -d)}
mkdir -p "$t"
source tests/ft_lib.bash
{
    awk 'NF >= 4 && $1 != "-DOCSTART-" { printf "%s ", $1 } NF == 0 { print "" }' "$CONLL/eng.train" | head -8000
    head -c 300000 "$DATA/wikitext-2/wiki.valid.tokens"
} >"$t/text.txt"
[[ -f $t/bert/model.safetensors ]] || tiny_model bert wordpiece 3000 256 --cased
[[ -f $t/gpt/model.safetensors ]] || tiny_model gpt bpe 3000 256
# run NAME MODEL QUESTIONS EPOCHS: the CI test's squad_run options
run() {
    local name=$1 model=$2 n=$3 ep=$4
    [[ -f $t/$name/eval_results.json ]] ||
        "$PLM" finetune --model "$t/$model" --task squad --train "$SQUAD/train-v1.1.du2017-test-subset.json" \
            --validation "$SQUAD/dev-v1.1.part1.json" --max-train-samples "$n" --max-eval-samples 500 \
            --max-seq-length 192 --doc-stride 64 --num-train-epochs "$ep" --per-device-train-batch-size 16 \
            --learning-rate 1e-3 --quiet --output-dir "$t/$name" >/dev/null 2>"$t/$name.err" ||
        { echo "$name failed: $(tail -2 "$t/$name.err")"; return; }
    python3 -c 'import json, sys
r = json.load(open(sys.argv[1] + "/eval_results.json"))
print("%-16s %5s questions x %s epochs (%4d steps): F1 %5.2f EM %5.2f" % (sys.argv[2], sys.argv[3], sys.argv[4],
      r["train_steps"], r["eval_f1"], r["eval_exact_match"]))' "$t/$name" "$name" "$n" "$ep"
}
run gpt_ci gpt 1000 1
run gpt_bert_budget gpt 2000 2
run bert_ci bert 2000 2
run bert_gpt_budget bert 1000 1
python3 - "$SQUAD" <<'P'
import json, sys, re, string, collections
squad = sys.argv[1]
def questions(path, n):
    out = [(p["context"], q) for a in json.load(open(path))["data"] for p in a["paragraphs"] for q in p["qas"]]
    return out[:n]
def norm(s):  # evaluate-v1.1.py
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())
def f1(p, g):
    pt, gt = norm(p).split(), norm(g).split()
    c = sum((collections.Counter(pt) & collections.Counter(gt)).values())
    return 0 if c == 0 else 2 * (c / len(pt)) * (c / len(gt)) / (c / len(pt) + c / len(gt))
def score(qs, k):
    return 100 * sum(max(f1(" ".join(c.split()[:k]), a["text"]) for a in q["answers"]) for c, q in qs) / len(qs)
train = questions(squad + "/train-v1.1.du2017-test-subset.json", 2000)
dev = questions(squad + "/dev-v1.1.part1.json", 500)
k = max(range(1, 11), key=lambda k: score(train, k))
print("%-16s first %d context words: F1 %5.2f" % ("baseline", k, score(dev, k)))
P
