#!/usr/bin/env bash
# retrieval.sh - plm embed and plm retrieval-eval (src/tasks/embed.c, retrieval.c,
# src/cli/cmd_embed.c) against independent references (tests/ref/retrieval_ref.py):
#   - the metrics (ranks with ties, recall@1/10, nDCG@10, MRR@10) against numpy on seeded
#     random score matrices and fp32 dense vectors ($BUILD/tests/retrieval_tool);
#   - the vectors of a tiny plm-written BERT and GPT-2 (every pooling, .npy and
#     .safetensors, texts of 2..48 tokens in padded batches of 5) against a float64
#     PyTorch forward of each text alone (tests/ref/parity.py's backbones), <= 1e-4; a
#     mismatched pooling must FAIL there (the check can fail); numpy.load reads the .npy;
#   - the TF-IDF baseline's rank of every question of SQuAD dev part 1 against
#     scikit-learn's TfidfVectorizer (equal ranks);
#   - an end-to-end SQuAD retrieval run on the first 200 dev questions: the TF-IDF
#     baseline must beat a random-init encoder and chance by far; both are printed;
#   - the contrastive objective's loss and gradients (tests/contrastive_tool) against
#     float64 autograd, and `plm finetune-embed` raising recall@10 on held-out questions
#     above the untrained encoder's;
#   - TSV / JSONL columns, and bad input (empty, invalid UTF-8, empty line, output name,
#     missing column) with one-line errors and exit codes.
# Uses Debian's /usr/bin/python3 with numpy, python3-sklearn and python3-torch.
set -u
source "$(dirname "$0")/lib.bash"
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
TOOL=$BUILD/tests/retrieval_tool
TOOL_C=$BUILD/tests/contrastive_tool
PY=/usr/bin/python3
DATA=${PLM_DATA:-../shared/data}
SQUAD=$DATA/squad-v1.1/dev-v1.1.part1.json
REF=tests/ref/retrieval_ref.py
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
if ! "$PY" -c 'import numpy, sklearn, torch' >/dev/null 2>&1; then
    if [[ ${PLM_ALLOW_MISSING_REFS:-} == 1 ]]; then
        echo "SKIP retrieval: $PY with numpy, python3-sklearn and python3-torch missing (PLM_ALLOW_MISSING_REFS=1)"
        exit 0
    fi
    echo "FAIL retrieval: $PY with numpy, python3-sklearn and python3-torch missing (run scripts/setup.sh --test)"
    exit 1
fi
if [[ ! -x $TOOL || ! -x $TOOL_C || ! -x $PLM ]]; then
    echo "FAIL retrieval: $TOOL, $TOOL_C or $PLM is not built (run make)"
    exit 1
fi
if [[ ! -f $SQUAD ]]; then
    echo "FAIL retrieval: $SQUAD not found (set PLM_DATA)"
    exit 1
fi

# ---- the metrics against numpy
"$PY" $REF gen "$t/cases" && "$TOOL" <"$t/cases" >"$t/plm_metrics" && "$PY" $REF check "$t/cases" "$t/plm_metrics" ||
    fail metrics_vs_numpy "see above"

# ---- tiny models: a BERT (WordPiece) and a GPT-2 (byte-level BPE), 3 MLM / CLM steps
head -c 200000 "$DATA/wikitext-2/wiki.valid.tokens" >"$t/text.txt"
cat >"$t/bert.json" <<'J'
{"model_type": "bert", "vocab_size": 2000, "hidden_size": 36, "num_hidden_layers": 2, "num_attention_heads": 3,
 "intermediate_size": 70, "max_position_embeddings": 64}
J
cat >"$t/gpt.json" <<'J'
{"model_type": "gpt2", "vocab_size": 2000, "n_embd": 36, "n_layer": 2, "n_head": 3, "n_positions": 64}
J
tiny() { # name kind objective config lr
    "$PLM" tokenizer train --kind "$2" --vocab-size 2000 --output "$t/$1.tok.json" --quiet "$t/text.txt" &&
        "$PLM" pretrain --objective "$3" --config "$t/$4.json" --tokenizer "$t/$1.tok.json" --train "$t/text.txt" \
            --output-dir "$t/$1" --max-steps 3 --batch-size 4 --seq-len 32 --learning-rate "$5" --quiet \
            >"$t/out" 2>"$t/err" && pass "tiny_$1" || { fail "tiny_$1" "$(tail -3 "$t/err")"; exit 1; }
}
tiny bert wordpiece mlm bert 1e-3
tiny gpt bpe clm gpt 1e-3
tiny rnd wordpiece mlm bert 0 # learning rate 0: the random initialisation, saved
# for the gradient check: weights N(0, 0.3) so that [CLS] states differ between texts. At
# N(0, 0.02) every text's [CLS] state is the same to cos 0.99997, and the InfoNCE gradient
# of cls pooling is then a difference of nearly equal fp32 terms (relative error ~1e-2 in
# any fp32 implementation): an ill-conditioned input, not a test of the code.
sed 's/"max_position_embeddings": 64/"max_position_embeddings": 64, "initializer_range": 0.3/' "$t/bert.json" >"$t/bert3.json"
tiny bert3 wordpiece mlm bert3 0

# ---- plm embed against a float64 PyTorch forward, one text at a time
"$PY" - "$t/text.txt" "$t/texts.txt" <<'P'
import random, sys
r = random.Random(1)
w = open(sys.argv[1]).read().split()
lines = [" ".join(w[i : i + r.randint(1, 80)]) for i in range(0, 3000, 97)]  # 1..80 words: some truncated at 48
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
P
for m in bert gpt; do
    "$PLM" tokenize --tokenizer "$t/$m/tokenizer.json" --quiet "$t/texts.txt" >"$t/ids_$m.txt"
    for pool in mean cls last; do
        for ext in npy safetensors; do
            [[ $m == gpt && $pool == cls && $ext == safetensors ]] && continue
            o=$t/$m.$pool.$ext
            if "$PLM" embed "$t/$m" --input "$t/texts.txt" --output "$o" --pooling $pool --max-seq-length 48 \
                --batch-size 5 --quiet 2>"$t/err"; then
                echo "$t/$m $t/texts.txt $t/ids_$m.txt $o $pool 48" >>"$t/embed.list"
            else
                fail "embed_$m.$pool.$ext" "$(tail -1 "$t/err")"
            fi
        done
    done
done
"$PY" $REF embed-list "$t/embed.list" || fail embed_vs_torch "see above"
# the check can fail: cls vectors are not the mean-pooled reference
if "$PY" $REF embed "$t/bert" "$t/texts.txt" "$t/ids_bert.txt" "$t/bert.cls.npy" mean 48 >"$t/neg"; then
    fail embed_reference_can_fail "cls vectors passed as mean-pooled: $(cat "$t/neg")"
else
    pass embed_reference_can_fail
fi
"$PY" -c 'import numpy, sys
a = numpy.load(sys.argv[1])
n = len(open(sys.argv[2]).read().splitlines())
raw = open(sys.argv[1], "rb").read(10)
hl = raw[8] | raw[9] << 8
ok = a.dtype == numpy.float32 and a.shape == (n, 36) and a.flags.c_contiguous and raw[6:8] == b"\x01\x00" and (10 + hl) % 64 == 0
ok = ok and abs(numpy.linalg.norm(a, axis=1) - 1).max() < 1e-5
sys.exit(0 if ok else 1)' "$t/bert.mean.npy" "$t/texts.txt" && pass npy_numpy_load || fail npy_numpy_load "numpy.load: wrong dtype, shape, version, alignment or norms"

# ---- the contrastive objective (InfoNCE, in-batch negatives, a shared passage masked):
# loss, the gradient of the final states and of every parameter against float64 autograd
for mp in "bert3 mean" "bert3 cls" "bert3 last" "gpt mean" "gpt last"; do
    set -- $mp
    if "$TOOL_C" "$t/$1" "$t/texts.txt" 6 "$2" 0.05 "$t/dump_$1_$2" >/dev/null 2>"$t/err"; then
        echo "$t/$1 $t/dump_$1_$2" >>"$t/contrastive.list"
    else
        fail "contrastive_$1_$2" "$(tail -1 "$t/err")"
    fi
done
"$PY" $REF contrastive-list "$t/contrastive.list" || fail contrastive_vs_torch "see above"

# ---- columns of TSV / JSONL files give the rows the lines gave
"$PY" - "$t/texts.txt" "$t/texts.tsv" "$t/texts.jsonl" <<'P'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
with open(sys.argv[2], "w") as f:
    f.write("id\tsentence\n" + "".join(f"{i}\t{s}\n" for i, s in enumerate(lines)))
with open(sys.argv[3], "w") as f:
    f.write("".join(json.dumps({"id": i, "text": s}) + "\n" for i, s in enumerate(lines)))
P
"$PLM" embed "$t/bert" --input "$t/texts.tsv" --column sentence --output "$t/tsv.npy" --max-seq-length 48 --quiet &&
    "$PLM" embed --model "$t/bert" --input "$t/texts.jsonl" --column text --output "$t/jsonl.npy" --max-seq-length 48 \
        --batch-size 7 --quiet &&
    "$PY" -c 'import numpy, sys
a, b, c = (numpy.load(p) for p in sys.argv[1:])
sys.exit(0 if a.shape == b.shape == c.shape and numpy.abs(a - b).max() < 1e-6 and numpy.abs(a - c).max() < 1e-6 else 1)' \
        "$t/bert.mean.npy" "$t/tsv.npy" "$t/jsonl.npy" && pass embed_columns_tsv_jsonl ||
    fail embed_columns_tsv_jsonl "TSV / JSONL column vectors differ from the lines' (or failed)"

# ---- bad input
: >"$t/empty.txt"
printf 'good line\n\xff\xfe bad\n' >"$t/badutf8.txt"
printf 'one\n\ntwo\n' >"$t/blank.txt"
expect embed_empty_input 3 'empty.txt: empty input' -- "$PLM" embed "$t/bert" --input "$t/empty.txt" --output "$t/x.npy"
expect embed_invalid_utf8 3 'badutf8.txt:2: invalid UTF-8' -- "$PLM" embed "$t/bert" --input "$t/badutf8.txt" --output "$t/x.npy"
expect embed_empty_line 3 'blank.txt:2: empty line' -- "$PLM" embed "$t/bert" --input "$t/blank.txt" --output "$t/x.npy"
expect embed_bad_extension 2 'must end in .npy or .safetensors' -- "$PLM" embed "$t/bert" --input "$t/texts.txt" --output "$t/x.csv"
expect embed_missing_column 3 "texts.tsv:1: no column named 'nope'" -- "$PLM" embed "$t/bert" --input "$t/texts.tsv" \
    --column nope --output "$t/x.npy"
expect embed_jsonl_needs_column 2 'name the text column with --column' -- "$PLM" embed "$t/bert" --input "$t/texts.jsonl" \
    --output "$t/x.npy"
expect embed_no_model 3 'nowhere' -- "$PLM" embed "$t/nowhere" --input "$t/texts.txt" --output "$t/x.npy"
expect retrieval_bad_pooling 2 'pooling' -- "$PLM" retrieval-eval "$t/bert" --data "$SQUAD" --pooling max
expect retrieval_model_or_baseline 2 'one of them' -- "$PLM" retrieval-eval "$t/bert" --baseline tfidf --data "$SQUAD"
"$PLM" embed --help | grep -q -- '--pooling' && "$PLM" retrieval-eval --help | grep -q -- '--baseline' &&
    pass help || fail help "no --help text"

# ---- TF-IDF against scikit-learn, every question of dev part 1
"$PLM" retrieval-eval --baseline tfidf --data "$SQUAD" --ranks "$t/tfidf_ranks.tsv" --quiet >/dev/null &&
    "$PY" $REF tfidf "$SQUAD" "$t/tfidf_ranks.tsv" 0 || fail tfidf_vs_sklearn "see above"

# ---- end to end: the first 200 questions against every paragraph of dev part 1
NQ=200
E2E=$SQUAD
if [[ -n ${PLM_SANITIZE:-} ]]; then # the sanitizer build ranks against the first 10 articles' 397 paragraphs
    E2E=$t/slice.json
    "$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
json.dump({"version": d.get("version"), "data": d["data"][:10]}, open(sys.argv[2], "w"))' "$SQUAD" "$E2E"
fi
"$PLM" retrieval-eval --baseline tfidf --data "$E2E" --max-questions $NQ --output "$t/tfidf.json" --quiet \
    >"$t/tfidf.line" && pass retrieval_tfidf_runs || fail retrieval_tfidf_runs "$(cat "$t/tfidf.line")"
"$PLM" retrieval-eval "$t/rnd" --data "$E2E" --max-questions $NQ --max-seq-length 64 --output "$t/rnd.json" \
    --quiet >"$t/rnd.line" && pass retrieval_random_encoder_runs || fail retrieval_random_encoder_runs "see stderr"
"$PLM" retrieval-eval --model "$t/gpt" --data "$E2E" --max-questions 20 --pooling last --max-seq-length 64 \
    --output "$t/gpt.json" --quiet >"$t/gpt.line" && pass retrieval_decoder_runs || fail retrieval_decoder_runs "see stderr"
"$PY" - "$t/tfidf.json" "$t/rnd.json" "$t/gpt.json" "$t/tfidf.line" $NQ <<'P' && pass retrieval_tfidf_beats_random_init || fail retrieval_tfidf_beats_random_init "see above"
import json, sys
tf, rnd, gpt = (json.load(open(p)) for p in sys.argv[1:4])
line = json.loads(open(sys.argv[4]).read())
nq = int(sys.argv[5])
keys = ("recall@1", "recall@10", "ndcg@10", "mrr@10")
for name, r in (("tfidf", tf), ("random-init BERT", rnd), ("GPT-2 (3 steps), last token", gpt)):
    print(f"# {name}: " + ", ".join(f"{k} {r[k]:.4f}" for k in keys) + f" ({r['n_queries']} questions, {r['n_docs']} paragraphs)")
chance10 = 10 / tf["n_docs"]
ok = tf["n_queries"] == rnd["n_queries"] == nq and tf["n_docs"] == rnd["n_docs"] and line["recall@10"] == tf["recall@10"]
ok &= all(0 <= r[k] <= 1 for r in (tf, rnd, gpt) for k in keys) and tf["ties"] == "pessimistic"
ok &= tf["recall@1"] <= tf["mrr@10"] <= tf["recall@10"] and tf["recall@1"] <= tf["ndcg@10"] <= tf["recall@10"]
# the lexical baseline must be far above chance and above a random-init encoder
ok &= tf["recall@10"] > 0.6 and tf["recall@10"] > 10 * chance10 and tf["recall@10"] > rnd["recall@10"] + 0.3
sys.exit(0 if ok else 1)
P

# ---- contrastive fine-tuning (plm finetune-embed) of the random-init encoder on the SQuAD
# train subset raises recall@10 on held-out dev questions above the untrained model's
"$PLM" finetune-embed "$t/rnd" --data-dir "$(dirname "$SQUAD")" --output-dir "$t/ft" --max-steps 60 \
    --per-device-train-batch-size 16 --max-seq-length 64 --learning-rate 1e-3 --quiet 2>"$t/err" &&
    "$PLM" retrieval-eval "$t/ft" --data "$E2E" --max-questions $NQ --max-seq-length 64 --output "$t/ft.json" \
        --quiet >/dev/null && pass finetune_embed_runs || fail finetune_embed_runs "$(tail -2 "$t/err")"
"$PY" - "$t/rnd.json" "$t/ft.json" "$t/ft/metrics.jsonl" <<'P' && pass finetune_embed_raises_recall || fail finetune_embed_raises_recall "see above"
import json, sys
before, after = (json.load(open(p)) for p in sys.argv[1:3])
log = [json.loads(l) for l in open(sys.argv[3])]
print(f"# random-init encoder {before['recall@10']:.4f} -> after 60 contrastive steps {after['recall@10']:.4f} recall@10 "
      f"(held-out dev questions); training loss {log[0]['loss']:.3f} -> {log[-1]['loss']:.3f}")
sys.exit(0 if after["recall@10"] >= before["recall@10"] + 0.05 and log[-1]["loss"] < log[0]["loss"] else 1)
P
exit 0
