#!/usr/bin/env bash
# wordpiece_bench.sh - BERT WordPiece encode MB/s on the 74 MB pretraining corpus: plm on
# 1 and 2 threads next to HF tokenizers (npm) on 1 and 2 threads, in the same run.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DATA=${PLM_DATA:-../shared/data}
VOCAB=$DATA/tokenizers/bert-base-uncased-vocab.txt
make -s "$BUILD/libplm.a"
cc -O3 -march=native -std=c17 -Wall -Wextra -Werror -fopenmp -D_GNU_SOURCE -Isrc bench/wordpiece_bench.c \
    "$BUILD/libplm.a" -lcjson -lpcre2-8 -lutf8proc -lm -fopenmp -o "$BUILD/wordpiece_bench"
mapfile -t files < <(find "$DATA"/gutenberg "$DATA"/sotu "$DATA"/moby-dick "$DATA"/kjv "$DATA"/tinyshakespeare \
    "$DATA"/wikitext-2 -type f ! -name SOURCES.md | sort)
for th in 1 2; do "$BUILD/wordpiece_bench" "$VOCAB" $th "${files[@]}"; done
if [[ -d node_modules/tokenizers ]]; then
    for th in 1 2; do RAYON_NUM_THREADS=$th node bench/hf_wordpiece_bench.js "$VOCAB" "${files[@]}"; done
else
    echo "hf tokenizers: skipped (node_modules absent)"
fi
