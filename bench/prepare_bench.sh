#!/usr/bin/env bash
# prepare_bench.sh - `plm prepare` MB/s on the ~74 MB pretraining corpus (gutenberg, sotu,
# moby-dick, kjv, tinyshakespeare) with BERT-uncased WordPiece on 2 threads, next to the
# tokenizer's own encode speed on the same files and threads (bench/tokenizer_bench.c).
# prepare's JSON line also gives tokenizer_mb_per_s: the bytes over the time spent inside
# its parallel encode (the rest is reading, flags, shard writing, sha256, fsync).
# Not a test: prints numbers. The machine is shared: numbers are noisy.
set -u
cd "$(dirname "$0")/.."
DATA=${PLM_DATA:-../shared/data}
BUILD=${BUILD:-build}
W=$BUILD/bench
mkdir -p "$W"
make -s "$BUILD/plm" "$BUILD/libplm.a" || exit 1
B=$W/tokenizer_bench
cc -O3 -march=native -std=c17 -D_GNU_SOURCE -fopenmp -Isrc bench/tokenizer_bench.c "$BUILD/libplm.a" -lcjson \
    -lutf8proc -lpcre2-8 -lm -o "$B" || exit 1
DIRS=("$DATA"/{gutenberg,sotu,moby-dick,kjv,tinyshakespeare})
mapfile -t CORPUS < <(find "${DIRS[@]}" -type f -name '*.txt' | sort)
VOCAB=$DATA/tokenizers/bert-base-uncased-vocab.txt
echo "corpus: ${#CORPUS[@]} files, $(cat "${CORPUS[@]}" | wc -c) bytes; load $(cut -d' ' -f1 /proc/loadavg)"
echo -n "plm prepare (2 threads): "
/usr/bin/time -f "peak RSS %M KB" "$BUILD/plm" prepare --input "${DIRS[@]}" --tokenizer "$VOCAB" \
    --output-dir "$W/prepared" --validation-split 0.05 --threads 2 --overwrite --quiet
echo -n "tokenizer alone (2 threads): "
"$B" wordpiece "$VOCAB" 2 "${CORPUS[@]}"
rm -rf "$W/prepared"
