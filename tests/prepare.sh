#!/usr/bin/env bash
# plm prepare and pretrain --data end to end (issue 8): a tiny BERT trained with
# --objective mlm+nsp from prepared shards logs exactly the losses of the same run from
# the text files; a run resumed from its checkpoint-3 logs the uninterrupted run's
# losses; hostile input (empty corpus, a shard cut short, another tokenizer, invalid
# UTF-8) fails with exit 3 and one line naming the file.
set -u
source "$(dirname "$0")/lib.bash"
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
losses() { grep -o '"step": [0-9]*, "\(loss\|eval_loss\)": [^,]*' "$1"; }

mkdir -p "$t/docs"
i=0
for f in data/demo/*.txt; do
    i=$((i + 1))
    head -n 250 "$f" >"$t/docs/d$i.txt"
    ((i == 6)) && break
done
docs=("$t"/docs/d1.txt "$t"/docs/d2.txt "$t"/docs/d3.txt "$t"/docs/d4.txt "$t"/docs/d5.txt "$t"/docs/d6.txt)
"$PLM" tokenizer train --vocab-size 400 --quiet --output "$t/tok.json" "${docs[@]}" >/dev/null 2>"$t/err" \
    || { fail setup "$(tail -3 "$t/err")"; exit 0; }
cat >"$t/tiny.json" <<'J'
{"model_type": "bert", "vocab_size": 400, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
 "intermediate_size": 64, "max_position_embeddings": 64}
J

"$PLM" prepare --help >/dev/null && pass prepare_help || fail prepare_help "no --help"
if "$PLM" prepare --input "$t/docs" --tokenizer "$t/tok.json" --output-dir "$t/data" --quiet >"$t/prep.json" \
    2>"$t/err" && [[ -s $t/data/manifest.json ]] && grep -q '"mb_per_s"' "$t/prep.json"; then
    pass prepare_runs
else
    fail prepare_runs "$(tail -3 "$t/err")"
fi

args=(--config "$t/tiny.json" --objective mlm+nsp --masking whole_word --batch-size 4 --seq-len 32
      --logging-steps 1 --learning-rate 3e-3 --warmup-steps 2 --seed 5 --max-steps 6 --quiet)
"$PLM" pretrain "${args[@]}" --data "$t/data" --save-steps 3 --output-dir "$t/a" >/dev/null 2>"$t/err" \
    || fail pretrain_data "$(tail -3 "$t/err")"
"$PLM" pretrain "${args[@]}" --tokenizer "$t/tok.json" --train "${docs[@]}" --validation-split 0 \
    --output-dir "$t/b" >/dev/null 2>"$t/err" || fail pretrain_text "$(tail -3 "$t/err")"
losses "$t/a/metrics.jsonl" >"$t/a.l"
losses "$t/b/metrics.jsonl" >"$t/b.l"
if [[ -s $t/a.l && $(wc -l <"$t/a.l") -eq 6 ]] && cmp -s "$t/a.l" "$t/b.l"; then
    pass pretrain_data_equals_text
else
    fail pretrain_data_equals_text "losses differ: $(diff "$t/a.l" "$t/b.l" | head -4 | tr '\n' ' ')"
fi
grep -q '"BertForPreTraining"' "$t/a/config.json" && pass saved_bert_for_pretraining \
    || fail saved_bert_for_pretraining "config.json: $(grep -o '"architectures[^]]*' "$t/a/config.json")"

# resume from checkpoint-3 with the shards: steps 4..6 as the uninterrupted run
mkdir -p "$t/r"
cp -r "$t/a/checkpoint-3" "$t/r/"
"$PLM" pretrain "${args[@]}" --data "$t/data" --resume-from-checkpoint "$t/r" --output-dir "$t/r" >/dev/null \
    2>"$t/err" || fail resume_data "$(tail -3 "$t/err")"
losses "$t/r/metrics.jsonl" >"$t/r.l"
grep -E '"step": [456],' "$t/a.l" >"$t/a456.l"
if [[ -s $t/r.l ]] && cmp -s "$t/r.l" "$t/a456.l"; then
    pass resume_data_exact
else
    fail resume_data_exact "$(diff "$t/r.l" "$t/a456.l" | head -4 | tr '\n' ' ')"
fi

# hostile input: exit 3, one line naming the file
expect_input_error() { # name, pattern, command...
    local name=$1 pat=$2
    shift 2
    "$@" >/dev/null 2>"$t/err"
    local rc=$?
    if ((rc == 3)) && [[ $(wc -l <"$t/err") -eq 1 ]] && grep -q -- "$pat" "$t/err"; then
        pass "$name"
    else
        fail "$name" "exit $rc: $(head -2 "$t/err" | tr '\n' ' ')"
    fi
}
: >"$t/empty.txt"
expect_input_error prepare_empty_corpus "empty.txt: empty corpus" \
    "$PLM" prepare --input "$t/empty.txt" --tokenizer "$t/tok.json" --output-dir "$t/e" --quiet
printf 'ok\nbad \xc3\x28 here\n' >"$t/bad.txt"
expect_input_error prepare_invalid_utf8 "bad.txt: invalid UTF-8 at byte 7" \
    "$PLM" prepare --input "$t/bad.txt" --tokenizer "$t/tok.json" --output-dir "$t/e" --quiet
"$PLM" tokenizer train --vocab-size 300 --quiet --output "$t/tok2.json" "${docs[@]}" >/dev/null 2>&1
expect_input_error pretrain_data_other_tokenizer "another tokenizer" \
    "$PLM" pretrain "${args[@]}" --data "$t/data" --tokenizer "$t/tok2.json" --output-dir "$t/x"
cp -r "$t/data" "$t/cut"
truncate -s -5 "$t/cut/train-00000.bin"
expect_input_error pretrain_data_truncated_shard "train-00000.bin.*truncated" \
    "$PLM" pretrain "${args[@]}" --data "$t/cut" --output-dir "$t/x"
exit 0
