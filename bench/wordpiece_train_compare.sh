#!/usr/bin/env bash
# wordpiece_train_compare.sh - plm's WordPiece trainer next to HF's (npm tokenizers,
# Tokenizer.train with the default WordPieceTrainer: vocab_size 30000, min_frequency 0,
# no special tokens) on the pretraining corpus less a held-out part: training time,
# vocabulary overlap, and tokens per byte on the held-out text (wikitext-2 test + SQuAD
# dev text), each vocabulary encoding with plm's conformant encoder.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DATA=${PLM_DATA:-../shared/data}
OUT=${OUT:-$BUILD/wp-train-compare}
mkdir -p "$OUT"
make -s "$BUILD/tests/wordpiece_tool"
mapfile -t train < <(find "$DATA"/gutenberg "$DATA"/sotu "$DATA"/moby-dick "$DATA"/kjv "$DATA"/tinyshakespeare \
    -type f ! -name SOURCES.md ! -name copyright | sort)
train+=("$DATA/wikitext-2/wiki.valid.tokens")
node tests/ref/squad_text.js "$DATA"/squad-v1.1/dev-v1.1.part1.json >"$OUT/heldout_squad.txt"
heldout=("$DATA/wikitext-2/wiki.test.tokens" "$OUT/heldout_squad.txt")
echo "training on ${#train[@]} files, $(cat "${train[@]}" | wc -c) bytes"
t0=$(date +%s.%N)
"$BUILD/tests/wordpiece_tool" train "$OUT/plm_vocab.txt" 30000 nospecial "${train[@]}" 2>"$OUT/plm_train.log"
t1=$(date +%s.%N)
echo "plm train: $(tail -1 "$OUT/plm_train.log") (wall $(echo "$t1 - $t0" | bc)s)"
if [[ ! -d node_modules/tokenizers ]]; then
    echo "hf: skipped (node_modules absent)"
    exit 0
fi
node tests/ref/hf_wordpiece_train.js "$OUT/hf_vocab.txt" "${train[@]}" 2>/dev/null | tail -1
sort "$OUT/plm_vocab.txt" >"$OUT/a"
sort "$OUT/hf_vocab.txt" >"$OUT/b"
echo "vocab: plm $(wc -l <"$OUT/a"), hf $(wc -l <"$OUT/b"), common $(comm -12 "$OUT/a" "$OUT/b" | wc -l)"
# [UNK] appended so that characters outside a vocabulary count as one token each way
for v in plm hf; do
    { cat "$OUT/${v}_vocab.txt"; echo "[UNK]"; } >"$OUT/${v}_vocab_unk.txt"
    printf '%s held-out: ' $v
    "$BUILD/tests/wordpiece_tool" tpb "$OUT/${v}_vocab_unk.txt" "${heldout[@]}" | tee "$OUT/${v}_tpb"
done
p=$(awk '{print $5}' "$OUT/plm_tpb")
h=$(awk '{print $5}' "$OUT/hf_tpb")
awk -v p="$p" -v h="$h" 'BEGIN { printf "tokens/byte: plm %.6f hf %.6f, plm/hf - 1 = %+.3f%%\n", p, h, (p / h - 1) * 100 }'
