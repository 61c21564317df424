#!/usr/bin/env bash
# tokenizer_conformance_bert.sh - plm's WordPiece against HF tokenizers (npm, the Rust
# library): ids, byte offsets and word ids must be equal on every line of the whole
# pretraining corpus, the GLUE, CoNLL and SQuAD text and a generated stress set
# (bert-base-uncased; the stress set also cased), and BERT's character classes must be
# HF's on every code point; decode and [CLS] A [SEP] B [SEP] model inputs (truncation,
# padding, masks) must be HF's; a plm-trained tokenizer.json must encode the same in HF, and
# plm's trainer must compress held-out text within 0.5% of HF's WordPieceTrainer.
# Prints PASS/FAIL lines. A missing reference (node, node_modules) or dataset FAILs;
# PLM_ALLOW_MISSING_REFS=1 turns a missing reference into a SKIP line.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DATA=${PLM_DATA:-../shared/data}
VOCAB=$DATA/tokenizers/bert-base-uncased-vocab.txt
TOOL=$BUILD/tests/wordpiece_tool
if [[ ! -d node_modules/tokenizers ]] || ! command -v node >/dev/null; then
    if [[ ${PLM_ALLOW_MISSING_REFS:-} == 1 ]]; then
        echo "SKIP tokenizer_conformance_bert: node or node_modules/tokenizers absent (run npm install) (PLM_ALLOW_MISSING_REFS=1)"
        exit 0
    fi
    echo "FAIL tokenizer_conformance_bert: node or node_modules/tokenizers absent (run npm install); set PLM_ALLOW_MISSING_REFS=1 to skip on purpose"
    exit 1
fi
if [[ ! -x $TOOL || ! -f $VOCAB ]]; then
    echo "FAIL tokenizer_conformance_bert: missing $TOOL or $VOCAB"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# compare NAME PLM_OUT HF_OUT: 0 mismatching lines, else show the first few
compare() {
    local name=$1 a=$2 b=$3 na nb bad
    na=$(wc -l <"$a")
    nb=$(wc -l <"$b")
    bad=$(paste -d $'\x1f' "$a" "$b" | awk -F $'\x1f' '$1 != $2' | wc -l)
    if ((na == nb && na > 0 && bad == 0)); then
        echo "PASS $name ($na lines, 0 mismatching)"
    else
        echo "FAIL $name: $bad of $nb lines differ (plm $na lines)"
        paste -d $'\x1f' "$a" "$b" | awk -F $'\x1f' '$1 != $2 { print NR": plm: "substr($1,1,300); print NR":  hf: "substr($2,1,300); if (++k == 3) exit }'
    fi
}

# 1. character classes on every code point
"$TOOL" unicode >"$tmp/plm_unicode.tsv"
node tests/ref/bert_unicode_dump.js >"$tmp/hf_unicode.tsv"
compare bert_unicode_every_code_point "$tmp/plm_unicode.tsv" "$tmp/hf_unicode.tsv"

# 2. stress set, uncased and cased normalisation
node tests/ref/gen_bert_stress.js "$tmp/stress.txt" 20000
for mode in uncased cased; do
    "$TOOL" encode "$VOCAB" $mode "$tmp/stress.txt" >"$tmp/plm_stress_$mode"
    node tests/ref/hf_wordpiece.js "$VOCAB" $mode "$tmp/stress.txt" >"$tmp/hf_stress_$mode"
    compare "bert_stress_$mode" "$tmp/plm_stress_$mode" "$tmp/hf_stress_$mode"
done

# decode: HF's WordPiece decoder ("##" joining, cleanup, special tokens skipped) on the
# stress set's ids and Moby-Dick's
"$TOOL" encode "$VOCAB" uncased "$tmp/stress.txt" "$DATA"/moby-dick/data.txt |
    sed -E 's/:[-0-9]+:[-0-9]+:[-0-9]+//g' >"$tmp/ids"
"$TOOL" decode "$VOCAB" "$tmp/ids" >"$tmp/plm_decoded"
node tests/ref/hf_wordpiece_decode.js "$VOCAB" "$tmp/ids" >"$tmp/hf_decoded"
compare bert_decode_vs_hf "$tmp/plm_decoded" "$tmp/hf_decoded"

# model inputs: [CLS] A [SEP] B [SEP] on GLUE sentence pairs, CoLA singles and stress lines,
# with each truncation strategy and padding: ids, type ids, attention and special-token
# masks, offsets, word ids and sequence ids as HF's BertProcessing (errors included)
{
    awk -F '\t' 'NR > 1 { print $2 "\t" $3 }' "$DATA"/glue/RTE/train.tsv
    awk -F '\t' 'NR > 1 { print $4 "\t" $5 }' "$DATA"/glue/MRPC/train.tsv
    awk -F '\t' 'NR > 1 && NR < 2000 { print $2 "\t" $3 }' "$DATA"/glue/QNLI/dev.tsv
    awk -F '\t' '{ print $4 }' "$DATA"/glue/CoLA/dev.tsv
    head -3000 "$tmp/stress.txt" | tr -d '\t'
} >"$tmp/pairs.txt"
for cfg in "64 longest_first pad" "48 only_first nopad" "48 only_second pad" "0 longest_first nopad"; do
    read -r ml st pd <<<"$cfg"
    "$TOOL" pairs "$VOCAB" "$ml" "$st" "$pd" "$tmp/pairs.txt" >"$tmp/plm_pairs"
    node tests/ref/hf_wordpiece_pairs.js "$VOCAB" "$ml" "$st" "$pd" "$tmp/pairs.txt" >"$tmp/hf_pairs"
    compare "bert_model_inputs_${st}_${ml}_${pd}" "$tmp/plm_pairs" "$tmp/hf_pairs"
done

# 3. a vocabulary plm trains, saved as tokenizer.json, encodes the same in HF
if "$TOOL" train "$tmp/trained.json" 4000 special "$DATA"/moby-dick/data.txt 2>"$tmp/train.log"; then
    "$TOOL" encode "$tmp/trained.json" - "$tmp/stress.txt" "$DATA"/kjv/kjv_new_testament.txt >"$tmp/plm_trained"
    node tests/ref/hf_wordpiece.js "$tmp/trained.json" - "$tmp/stress.txt" "$DATA"/kjv/kjv_new_testament.txt >"$tmp/hf_trained"
    compare bert_plm_trained_tokenizer_json_in_hf "$tmp/plm_trained" "$tmp/hf_trained"
else
    echo "FAIL bert_plm_trained_tokenizer_json_in_hf: training failed: $(tail -1 "$tmp/train.log")"
fi
# the same on words made of combining marks, with a vocabulary trained on them: sub-word
# offsets must follow HF's alignments through canonical reordering
node tests/ref/gen_bert_stress.js "$tmp/marks.txt" 20000 marks
if "$TOOL" train "$tmp/marks.json" 3000 special "$tmp/marks.txt" 2>"$tmp/train.log"; then
    "$TOOL" encode "$tmp/marks.json" - "$tmp/marks.txt" >"$tmp/plm_marks"
    node tests/ref/hf_wordpiece.js "$tmp/marks.json" - "$tmp/marks.txt" >"$tmp/hf_marks"
    compare bert_combining_marks_subword_offsets "$tmp/plm_marks" "$tmp/hf_marks"
else
    echo "FAIL bert_combining_marks_subword_offsets: training failed: $(tail -1 "$tmp/train.log")"
fi

# 4. the trainer against HF's WordPieceTrainer (vocab_size 30000, no special tokens) on
# Moby-Dick + the KJV New Testament: tokens per byte on held-out text within 0.5%
tr=("$DATA"/moby-dick/data.txt "$DATA"/kjv/kjv_new_testament.txt)
if "$TOOL" train "$tmp/plm_vocab.txt" 30000 nospecial "${tr[@]}" 2>"$tmp/train.log" &&
    node tests/ref/hf_wordpiece_train.js "$tmp/hf_vocab.txt" "${tr[@]}" >/dev/null 2>&1; then
    for v in plm hf; do
        { cat "$tmp/${v}_vocab.txt"; echo "[UNK]"; } >"$tmp/${v}_unk.txt"
        "$TOOL" tpb "$tmp/${v}_unk.txt" "$DATA"/wikitext-2/wiki.test.tokens >"$tmp/${v}_tpb"
    done
    common=$(comm -12 <(sort "$tmp/plm_vocab.txt") <(sort "$tmp/hf_vocab.txt") | wc -l)
    awk -v c="$common" -v np="$(wc -l <"$tmp/plm_vocab.txt")" -v nh="$(wc -l <"$tmp/hf_vocab.txt")" \
        'NR == FNR { p = $5; next } { h = $5 } END {
            d = (p / h - 1) * 100; if (d < 0) d = -d
            msg = sprintf("vocab plm %d hf %d common %d; tokens/byte plm %.6f hf %.6f (%.3f%%)", np, nh, c, p, h, d)
            if (d <= 0.5) print "PASS bert_trainer_vs_hf (" msg ")"; else print "FAIL bert_trainer_vs_hf: " msg }' \
        "$tmp/plm_tpb" "$tmp/hf_tpb"
else
    echo "FAIL bert_trainer_vs_hf: training failed: $(tail -1 "$tmp/train.log")"
fi

# 5. every line of the corpora (a sample under the sanitizers)
node tests/ref/squad_text.js "$DATA"/squad-v1.1/*.json >"$tmp/squad.txt"
mapfile -t files < <(find "$DATA"/gutenberg "$DATA"/sotu "$DATA"/moby-dick "$DATA"/kjv "$DATA"/tinyshakespeare \
    "$DATA"/wikitext-2 "$DATA"/glue "$DATA"/conll2003 "$DATA"/squad-v1.1 -type f 2>/dev/null | sort)
files+=("$tmp/squad.txt")
if [[ -n ${PLM_SANITIZE:-} ]]; then
    files=("$DATA"/moby-dick/data.txt "$DATA"/glue/CoLA/dev.tsv "$tmp/squad.txt")
fi
# identical lines give identical encodings: compare each distinct line once
awk -v out="$tmp/corpus.txt" '!seen[$0]++ { print > out } END { print NR > "/dev/stderr" }' "${files[@]}" 2>"$tmp/nlines"
t0=$SECONDS
"$TOOL" encode "$VOCAB" uncased "$tmp/corpus.txt" >"$tmp/plm_corpus"
t1=$SECONDS
node tests/ref/hf_wordpiece.js "$VOCAB" uncased "$tmp/corpus.txt" >"$tmp/hf_corpus"
echo "# corpus: ${#files[@]} files, $(cat "$tmp/nlines") lines, $(wc -l <"$tmp/corpus.txt") distinct; plm $((t1 - t0))s, HF $((SECONDS - t1))s"
compare bert_uncased_corpus_every_line "$tmp/plm_corpus" "$tmp/hf_corpus"
