#!/usr/bin/env bash
# tokenizer_bench.sh - tokenizer speed, plm next to the references in the same run:
# encode MB/s on the ~74 MB pretraining corpus (every line) for GPT-2 and BERT-uncased,
# plm on 1 and 2 threads, HF tokenizers (npm) on 1 and 2 threads, js-tiktoken; then BPE
# training time (vocab 30000, HF's default trainer settings) plm vs HF, with the
# vocab/merges comparison. Not a test: prints a table.
set -u
cd "$(dirname "$0")/.."
DATA=${PLM_DATA:-../shared/data}
TOK=$DATA/tokenizers
BUILD=${BUILD:-build}
mkdir -p "$BUILD/bench"
B=$BUILD/bench/tokenizer_bench
make -s "$BUILD/libplm.a" && cc -O3 -march=native -std=c17 -D_GNU_SOURCE -fopenmp -Isrc bench/tokenizer_bench.c \
    "$BUILD/libplm.a" -lcjson -lutf8proc -lpcre2-8 -lm -o "$B" || exit 1
make -s "$BUILD/tests/tok_train" || exit 1
mapfile -t CORPUS < <(find "$DATA"/{gutenberg,sotu,moby-dick,kjv,tinyshakespeare,wikitext-2} -type f ! -name SOURCES.md | sort)
echo "corpus: ${#CORPUS[@]} files, $(cat "${CORPUS[@]}" | wc -c) bytes; $(nproc) cores; load $(cut -d' ' -f1 /proc/loadavg)"
for th in 1 2; do
    "$B" gpt2 "$TOK/gpt2-encoder.json" "$TOK/gpt2-vocab.bpe" $th "${CORPUS[@]}"
    RAYON_NUM_THREADS=$th node bench/hf_tokenizer_bench.js gpt2 "${CORPUS[@]}"
done
node bench/hf_tokenizer_bench.js tiktoken "${CORPUS[@]}"
for th in 1 2; do
    "$B" wordpiece "$TOK/bert-base-uncased-vocab.txt" $th "${CORPUS[@]}"
    RAYON_NUM_THREADS=$th node bench/hf_tokenizer_bench.js bert "${CORPUS[@]}"
done
echo "BPE training, vocab 30000, whole corpus:"
W=$BUILD/bench
node tests/ref/hf_train.js "$W/hf30k.json" "${CORPUS[@]}" 2>/dev/null | sed 's/^/  hf-tokenizers(npm) /'
"$BUILD/tests/tok_train" "$W/plm30k.json" 30000 observed "${CORPUS[@]}" | sed 's/^/  plm /'
node tests/ref/cmp_train.js "$W/plm30k.json" "$W/hf30k.json" | sed 's/^/  /'
