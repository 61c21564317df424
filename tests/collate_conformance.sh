#!/usr/bin/env bash
# collate_conformance.sh - plm's padded batches (src/data/collate.c) against HF tokenizers
# (npm, the Rust library) with padding and truncation enabled and encodeBatch: BERT
# sentence pairs from GLUE (RTE, MRPC, QNLI), single sentences (CoLA, SST-2) and batches
# mixing both, max_length 128, batches of 8..32; and GPT-2 byte-level single sentences
# padded with <|endoftext|>. Every row's input ids, token type ids and attention mask
# must equal HF's (for BERT also the special-token mask, word ids, sequence ids and byte
# offsets), padding included. Prints PASS/FAIL lines; FAILs when node or the npm package
# is missing unless PLM_ALLOW_MISSING_REFS=1 (then SKIP).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DATA=${PLM_DATA:-../shared/data}
TOK=$DATA/tokenizers
TOOL=$BUILD/tests/collate_tool
GLUE=$DATA/glue
for f in "$TOK"/bert-base-uncased-vocab.txt "$TOK"/gpt2-encoder.json "$TOK"/gpt2-vocab.bpe "$GLUE"/RTE/train.tsv \
    "$GLUE"/MRPC/train.tsv "$GLUE"/QNLI/dev.tsv "$GLUE"/CoLA/dev.tsv "$GLUE"/SST-2/dev.tsv; do
    [[ -f $f ]] || { echo "FAIL collate_conformance: missing $f (set PLM_DATA)"; exit 1; }
done
if [[ ! -d node_modules/tokenizers ]] || ! command -v node >/dev/null; then
    if [[ ${PLM_ALLOW_MISSING_REFS:-} == 1 ]]; then
        echo "SKIP collate_conformance: node or node_modules/tokenizers absent"
        exit 0
    fi
    echo "FAIL collate_conformance: node or node_modules/tokenizers absent (run npm install)"
    exit 1
fi
[[ -x $TOOL ]] || make -s "$TOOL" >/dev/null || { echo "FAIL collate_conformance: cannot build $TOOL"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1000 pairs: RTE's long premises exercise truncation at 128, MRPC and QNLI are shorter
{
    awk -F '\t' 'NR > 1 && NR <= 401 { print $2 "\t" $3 }' "$GLUE"/RTE/train.tsv
    awk -F '\t' 'NR > 1 && NR <= 301 { print $4 "\t" $5 }' "$GLUE"/MRPC/train.tsv
    awk -F '\t' 'NR > 1 && NR <= 301 { print $2 "\t" $3 }' "$GLUE"/QNLI/dev.tsv
} >"$tmp/pairs.txt"
{
    awk -F '\t' 'NR <= 300 { print $4 }' "$GLUE"/CoLA/dev.tsv
    awk -F '\t' 'NR > 1 && NR <= 301 { print $1 }' "$GLUE"/SST-2/dev.tsv
} >"$tmp/singles.txt"
# pairs and singles interleaved, so batches mix [CLS] A [SEP] B [SEP] and [CLS] A [SEP]
paste -d '\n' <(head -300 "$tmp/pairs.txt") <(head -300 "$tmp/singles.txt") >"$tmp/mixed.txt"

# run NAME KIND INPUT MAXLEN STRATEGY PADDING MULTIPLE PADID FIELDS
run() {
    local name=$1 kind=$2 in=$3
    shift 3
    if ! "$TOOL" "$TOK" "$kind" "$@" "$in" >"$tmp/plm" 2>"$tmp/plm.err"; then
        echo "FAIL $name: collate_tool failed: $(tail -1 "$tmp/plm.err")"
        return
    fi
    if ! node tests/ref/hf_pairs_batch.js "$TOK" "$kind" "$@" "$in" >"$tmp/hf" 2>"$tmp/hf.err"; then
        echo "FAIL $name: hf_pairs_batch.js failed: $(tail -1 "$tmp/hf.err")"
        return
    fi
    local n nh bad errs
    n=$(wc -l <"$tmp/plm")
    nh=$(wc -l <"$tmp/hf")
    bad=$(paste -d $'\x1f' "$tmp/plm" "$tmp/hf" | awk -F $'\x1f' '$1 != $2' | wc -l)
    errs=$(grep -c '^ERROR' "$tmp/plm")
    if ((n == nh && n == $(wc -l <"$in") && bad == 0 && errs < n)); then
        echo "PASS $name ($n rows, 0 mismatching, $errs in rejected batches)"
    else
        echo "FAIL $name: $bad of $nh rows differ (plm $n rows, input $(wc -l <"$in"))"
        paste -d $'\x1f' "$tmp/plm" "$tmp/hf" | awk -F $'\x1f' '$1 != $2 { print NR": plm: "substr($1,1,300); print NR":  hf: "substr($2,1,300); if (++k == 3) exit }'
    fi
}

run collate_bert_pairs_longest_128 bert "$tmp/pairs.txt" 128 longest_first longest 0 -1 full
run collate_bert_pairs_max_length_128 bert "$tmp/pairs.txt" 128 longest_first max_length 0 -1 full
run collate_bert_pairs_only_second_multiple_8 bert "$tmp/pairs.txt" 128 only_second longest 8 -1 full
run collate_bert_pairs_only_first_64 bert "$tmp/pairs.txt" 64 only_first longest 0 -1 full
run collate_bert_singles_longest_128 bert "$tmp/singles.txt" 128 longest_first longest 0 -1 full
run collate_bert_mixed_longest_128_multiple_16 bert "$tmp/mixed.txt" 128 longest_first longest 16 -1 full
run collate_gpt2_singles_longest_128 gpt2 "$tmp/singles.txt" 128 longest_first longest 0 50256 ids
run collate_gpt2_singles_max_length_100_multiple_64 gpt2 "$tmp/singles.txt" 100 longest_first max_length 64 50256 ids

# GPT-2 has no pad token: plm must refuse to pad without an explicit pad id
if "$TOOL" "$TOK" gpt2 128 longest_first longest 0 -1 ids "$tmp/singles.txt" >/dev/null 2>"$tmp/err"; then
    :
fi
if grep -q "pad token" "$tmp/err" && ! grep -qv "^batch" "$tmp/err"; then
    echo "PASS collate_gpt2_no_pad_token_is_an_error ($(head -1 "$tmp/err"))"
else
    echo "FAIL collate_gpt2_no_pad_token_is_an_error: stderr: $(head -1 "$tmp/err")"
fi

# the reference's own two paths agree: encodeBatch with setPadding, and row-by-row
# encode + Encoding.pad (which it uses for batches holding pairs)
for cfg in "bert 128 longest 0" "bert 128 longest 16" "gpt2 128 longest 8"; do
    read -r kind ml pd mult <<<"$cfg"
    pid=-1
    [[ $kind == gpt2 ]] && pid=50256
    a=$(node tests/ref/hf_pairs_batch.js "$TOK" "$kind" "$ml" longest_first "$pd" "$mult" "$pid" full "$tmp/singles.txt" | md5sum)
    b=$(HF_PER_ROW=1 node tests/ref/hf_pairs_batch.js "$TOK" "$kind" "$ml" longest_first "$pd" "$mult" "$pid" full "$tmp/singles.txt" | md5sum)
    if [[ $a == "$b" ]]; then
        echo "PASS collate_reference_paths_agree_${kind}_${pd}_${mult}"
    else
        echo "FAIL collate_reference_paths_agree_${kind}_${pd}_${mult}: encodeBatch and encode+pad differ"
    fi
done
