#!/usr/bin/env bash
# retrieval_table.sh - reproduces the table of docs/retrieval.md: SQuAD v1.1 dev retrieval
# (10,570 questions -> 2,067 paragraphs) by TF-IDF, by a small BERT (2 layers, width 128)
# at random initialisation and after MLM pretraining, each also after one epoch of
# contrastive fine-tuning (plm finetune-embed) on the SQuAD train subset.
#   scripts/retrieval_table.sh [OUT_DIR]     (about 1.5 CPU-hours on 2 cores)
set -eu
cd "$(dirname "$0")/.."
PLM=$PWD/build/plm
DATA=${PLM_DATA:-../shared/data}
SQUAD=$DATA/squad-v1.1
OUT=${1:-runs/retrieval}
mkdir -p "$OUT"
TEXT=("$DATA"/wikitext-2/wiki.valid.tokens "$DATA"/wikitext-2/wiki.test.tokens "$DATA"/sotu/*.txt)
cat >"$OUT/mini.json" <<'J'
{"model_type": "bert", "vocab_size": 8192, "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
 "intermediate_size": 512, "max_position_embeddings": 256}
J
"$PLM" tokenizer train --kind wordpiece --vocab-size 8192 --output "$OUT/tok.json" --quiet "${TEXT[@]}"
# learning rate 0: one step that changes nothing, i.e. the initialisation, saved
"$PLM" pretrain --objective mlm --config "$OUT/mini.json" --tokenizer "$OUT/tok.json" --train "${TEXT[0]}" \
    --output-dir "$OUT/rnd" --max-steps 1 --batch-size 2 --seq-len 16 --learning-rate 0 --quiet
"$PLM" pretrain --objective mlm --config "$OUT/mini.json" --tokenizer "$OUT/tok.json" --train "${TEXT[@]}" \
    --output-dir "$OUT/mlm" --max-steps 1500 --batch-size 32 --seq-len 128 --learning-rate 5e-4 --warmup-steps 100 --quiet
for m in rnd mlm; do
    "$PLM" finetune-embed "$OUT/$m" --data-dir "$SQUAD" --output-dir "$OUT/$m-ft" --num-train-epochs 1 \
        --per-device-train-batch-size 32 --max-seq-length 128 --learning-rate 5e-4 --quiet
done
"$PLM" retrieval-eval --baseline tfidf --data-dir "$SQUAD" --output "$OUT/tfidf.json" --quiet
for m in rnd mlm rnd-ft mlm-ft; do
    "$PLM" retrieval-eval "$OUT/$m" --data-dir "$SQUAD" --output "$OUT/$m.json" --quiet
done
python3 - "$OUT" <<'P'
import json, sys
rows = [("TF-IDF (scikit-learn defaults)", "tfidf"), ("random init", "rnd"), ("MLM-pretrained, 1500 steps", "mlm"),
        ("random init + finetune-embed", "rnd-ft"), ("MLM-pretrained + finetune-embed", "mlm-ft")]
print("| ranker | recall@1 | recall@10 | nDCG@10 | MRR@10 |\n|---|---|---|---|---|")
for name, f in rows:
    r = json.load(open(f"{sys.argv[1]}/{f}.json"))
    print(f"| {name} | {r['recall@1']:.4f} | {r['recall@10']:.4f} | {r['ndcg@10']:.4f} | {r['mrr@10']:.4f} |")
P
